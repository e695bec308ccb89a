#!/usr/bin/env bash
# The container HEALTHCHECK script (deploy/docker/healthcheck.sh) finds the pin
# directory the agent was started with: --pin-dir DIR, --pin-dir=DIR, SHADOWTAP_PIN_DIR
# in PID 1's environment, or the default; it is unhealthy when PID 1 is not the agent
# or the stats map is not pinned there. A fake /proc stands in for the container's.
set -u
cd "$(dirname "$0")/../.."
HC=deploy/docker/healthcheck.sh
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
mkdir -p "$T/1" "$T/pins/with space" "$T/pins/eq" "$T/pins/env" "$T/default"
: > "$T/1/environ"
hc() { SHADOWTAP_HC_PROC=$T sh "$HC" >/dev/null 2>&1; }
expect() { # name want(0|1)
	hc; local rc=$?
	if [ "$rc" = "$2" ]; then echo "PASS: healthcheck $1"; else echo "FAIL: healthcheck $1 (exit $rc, want $2)"; fi
}
cmdline() { printf '%s\0' "$@" > "$T/1/cmdline"; }

echo shadowtap > "$T/1/comm"
cmdline shadowtap -p 80 --pin-dir "$T/pins/with space"
expect "--pin-dir DIR, map not pinned yet" 1
touch "$T/pins/with space/stats"
expect "--pin-dir DIR (with a space), map pinned" 0
cmdline shadowtap --pin-dir="$T/pins/eq"
expect "--pin-dir=DIR ignores other pins" 1
touch "$T/pins/eq/stats"
expect "--pin-dir=DIR, map pinned" 0
cmdline shadowtap -p 80
printf 'PATH=/bin\0SHADOWTAP_PIN_DIR=%s\0' "$T/pins/env" > "$T/1/environ"
expect "SHADOWTAP_PIN_DIR, map not pinned" 1
touch "$T/pins/env/stats"
expect "SHADOWTAP_PIN_DIR, map pinned" 0
echo nginx > "$T/1/comm"
expect "PID 1 is not the agent" 1
