#!/usr/bin/env bash
# Installs what building, running and testing Switchboard need, when missing.
# Usage: scripts/install-deps.sh [run|test]   (run: build needs only; test: also the SIP peers)
set -euo pipefail
mode=${1:-test}

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
want() { for p in "$@"; do have_pkg "$p" || need+=("$p"); done; }

want pkg-config
if [ "$mode" = test ]; then
	# real peers and signal tools the suite drives: sipp, baresip (+ its modules), sox
	want sip-tester baresip-core sox espeak-ng iproute2
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
