#!/usr/bin/env bash
# Stop the processes network-up.sh and deploy-chaincode.sh started (by their pid files,
# nothing else), and with --clean remove build/ (ledgers, crypto material, profiles).
set -euo pipefail
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

shopt -s nullglob
for pidfile in "$BUILD"/pids/*.pid; do
	pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
		echo "stopped $(basename "$pidfile" .pid) ($pid)"
	fi
	rm -f "$pidfile"
done
if [[ "${1:-}" == "--clean" ]]; then
	rm -rf "$BUILD"
	echo "removed $BUILD"
fi
