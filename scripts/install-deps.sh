#!/usr/bin/env bash
# Installs what building, running and testing Switchboard need, when missing.
# Usage: scripts/install-deps.sh [run|test]   (run: build needs only; test: also the SIP peers)
set -euo pipefail
mode=${1:-test}

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
want() { for p in "$@"; do have_pkg "$p" || need+=("$p"); done; }

want pkg-config libopus-dev # Opus codec (cgo)
# hraban/opus's headers for a bare `go build` or `go vet ./...` (gopls too); the Makefile's
# nolibopusfile tag keeps libopusfile out of the binary itself
want libopusfile-dev
if [ "$mode" = test ]; then
	# real peers and signal tools the suite drives: sipp, baresip (+ its modules), sox
	want sip-tester baresip-core sox espeak-ng iproute2
	# tshark captures on lo for the DTMF and SRTP end-to-end tests (what went on the wire)
	want tshark
	# PostgreSQL binaries: the CDR tests run their own throwaway server (initdb on a temp dir)
	want postgresql
	# SIP scanners the abuse tests point at the gateway (svmap, svwar, svcrack), 127.0.0.1 only
	want sipvicious
	# headless Chromium joins the built-in WebRTC room (cmd/switchboard/webroom_test.go); ~1 min
	want chromium
fi

if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "Go 1.26 is required (https://go.dev/dl/)" >&2; exit 1; }

# The Node.js example bot the suite runs against the gateway needs npm's `ws`
# (pinned in its package-lock.json).
if [ "$mode" = test ] && command -v npm >/dev/null; then
	dir="$(dirname "$0")/../examples/twilio-echo-node"
	[ -d "$dir/node_modules/ws" ] || (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

# livekit-server for the LiveKit room tests (cmd/switchboard/livekit_test.go),
# built once into .cache/bin (ignored by git). v1.13.5: later versions carry
# replace directives that `go install` refuses. About 75 s.
if [ "$mode" = test ]; then
	lkbin="$(cd "$(dirname "$0")/.." && pwd)/.cache/bin"
	if [ ! -x "$lkbin/livekit-server" ]; then
		echo "building livekit-server v1.13.5 into $lkbin"
		mkdir -p "$lkbin/tmp"
		GOBIN="$lkbin/tmp" GOFLAGS= go install github.com/livekit/livekit-server/cmd/server@v1.13.5
		mv "$lkbin/tmp/server" "$lkbin/livekit-server" && rmdir "$lkbin/tmp"
	fi
fi
