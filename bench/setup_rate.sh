#!/usr/bin/env bash
# Call-setup rate: sipp's built-in `uac` scenario (INVITE, 200, ACK, 1 s pause,
# BYE; no media) against the gateway's echo route at rising rates, each for
# SECONDS seconds (-m bounds every run), until a run has a failed call. Prints
# per rate the calls, failures and the INVITE-to-200 time (sipp's rtd) p50/p99,
# the gateway's own p99 of it (gw_p99_ms: the bound of the bucket of its
# invite_to_200 stage histogram, INVITE at the SIP handler to 200 sent, under
# which 99 % fell), then the highest rate with no failure. sipp reads a coarse
# clock (4 ms steps here), so its times are multiples of 4 ms. 127.0.0.1 only.
#
#   bench/setup_rate.sh [RATE ...]      (default 200 400 600 800 1000 1200)
#   SECONDS_PER_RATE=5 BIN=path/to/switchboard PROFILE_DIR=/tmp bench/setup_rate.sh
# PROFILE_DIR: a CPU profile of the gateway over each rate's run (setup-RATE.pprof)
# and the allocations made during it (setup-RATE.allocs.pprof: divide by the calls).
set -euo pipefail
cd "$(dirname "$0")/.."
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(200 400 600 800 1000 1200)
secs=${SECONDS_PER_RATE:-${SECONDS_:-5}}
dir=$(mktemp -d /tmp/switchboard-setup-XXXXXX)
trap 'kill "$gw" 2>/dev/null || true; wait "$gw" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
ulimit -n "$(ulimit -Hn)"

bin=${BIN:-}
if [ -z "$bin" ]; then
	bin=$dir/switchboard
	GOFLAGS=-tags=nolibopusfile go build -o "$bin" ./cmd/switchboard
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sip_port=$(free_port)
http_port=$(free_port)
uac_port=$(free_port)
cat >"$dir/dialplan.yaml" <<EOF
routes:
  - name: echo
    match: { to: echo }
    target: { type: echo }
default:
  target: { type: echo }
EOF
cat >"$dir/switchboard.yaml" <<EOF
sip:
  listen:
    - { transport: udp, addr: 127.0.0.1:$sip_port }
  codecs: [PCMU, PCMA]
rtp:
  ip: 127.0.0.1
  port_min: 20000
  port_max: 29999
  timeout: 10s
http:
  listen: 127.0.0.1:$http_port
dialplan: dialplan.yaml
drain_timeout: 2s
cdr: { driver: sqlite, dsn: cdr.db }
api: { token_env: SWITCHBOARD_LOAD_TOKEN }
log:
  level: ${LOG_LEVEL:-info}
EOF
export SWITCHBOARD_LOAD_TOKEN=setup-rate-token
(cd "$dir" && exec "$bin" run -c switchboard.yaml >gateway.log 2>&1) &
gw=$!
for _ in $(seq 100); do
	curl -fs "http://127.0.0.1:$http_port/healthz" >/dev/null && break
	sleep 0.1
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%6s %7s %7s %9s %9s %9s %14s\n' rate calls failed p50_ms p99_ms max_ms gw_p99_ms
best=0
for rate in "${rates[@]}"; do
	run=$dir/r$rate
	mkdir -p "$run"
	total=$((rate * secs))
	if [ -n "${PROFILE_DIR:-}" ]; then
		curl -fs -H "Authorization: Bearer $SWITCHBOARD_LOAD_TOKEN" -o "$PROFILE_DIR/setup-$rate.pprof" \
			"http://127.0.0.1:$http_port/debug/pprof/profile?seconds=$((secs + 1))" &
		prof=$!
		curl -fs -H "Authorization: Bearer $SWITCHBOARD_LOAD_TOKEN" -o "$PROFILE_DIR/setup-$rate.allocs.pprof" \
			"http://127.0.0.1:$http_port/debug/pprof/allocs?seconds=$((secs + 1))" &
		allocs=$!
	fi
	curl -fs "http://127.0.0.1:$http_port/metrics" >"$run/metrics0" || true
	(cd "$run" && timeout $((secs + 60)) sipp -sn uac -s echo "127.0.0.1:$sip_port" -i 127.0.0.1 -p "$uac_port" \
		-r "$rate" -m "$total" -l $((rate * 3)) -d 1000 -recv_timeout 10000 -timeout $((secs + 50))s \
		-nostdin -trace_stat -stf stat.csv -trace_rtt -rtt_freq 1 >sipp.out 2>&1) || true
	read -r ok failed < <(python3 - "$run/stat.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
h, last = rows[0], rows[-1]
print(last[h.index('SuccessfulCall(C)')], last[h.index('FailedCall(C)')])
PY
)
	read -r p50 p99 pmax < <(cat "$run"/*_rtt.csv 2>/dev/null | python3 -c '
import sys
v = sorted(float(l.split(";")[1]) for l in sys.stdin if l[:1].isdigit())
q = lambda p: v[min(len(v) - 1, max(0, int(p * len(v) + 0.5) - 1))] if v else 0
print("%.2f %.2f %.2f" % (q(0.5), q(0.99), v[-1] if v else 0))')
	[ -z "${prof:-}" ] || wait "$prof" "$allocs" || true
	curl -fs "http://127.0.0.1:$http_port/metrics" >"$run/metrics1" || true
	# The gateway's own view, from its stage histogram over this rate's run: the
	# bucket bound under which 99 % of INVITE->200 fell.
	gw_p99=$(python3 - "$run/metrics0" "$run/metrics1" <<'PY'
import re, sys
def buckets(path):
    b = {}
    try:
        for line in open(path):
            m = re.match(r'switchboard_call_stage_seconds_bucket\{stage="invite_to_200",le="([^"]+)"\} (\S+)', line)
            if m:
                b[float(m.group(1))] = float(m.group(2))
    except OSError:
        pass
    return b
b0, b1 = buckets(sys.argv[1]), buckets(sys.argv[2])
rows = [(le, n - b0.get(le, 0)) for le, n in sorted(b1.items())]
total = rows[-1][1] if rows else 0
le = next((le for le, n in rows if total and n >= 0.99 * total), None)
print("?" if le is None else "<=" + ("inf" if le == float("inf") else "%g" % (le * 1000)))
PY
)
	printf '%6s %7s %7s %9s %9s %9s %14s\n' "$rate" "$ok" "$failed" "$p50" "$p99" "$pmax" "$gw_p99"
	if [ "$failed" != 0 ] || [ "$ok" != "$total" ]; then
		break
	fi
	best=$rate
	sleep 3 # let the last calls' BYEs and the gateway's RTP sockets go
done
echo "highest rate with no failed call: $best calls/s (calls of 1 s, ${secs} s per rate)"
