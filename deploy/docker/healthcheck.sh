#!/bin/sh
# Container HEALTHCHECK: healthy while PID 1 is the agent and its stats map is pinned.
# The pin directory is the one the agent was started with: --pin-dir DIR or
# --pin-dir=DIR on PID 1's command line, else $SHADOWTAP_PIN_DIR from PID 1's
# environment, else the default.
set -u
proc=${SHADOWTAP_HC_PROC:-/proc}   # another root for /proc, for tests
[ "$(cat $proc/1/comm 2>/dev/null)" = shadowtap ] || { echo "unhealthy: PID 1 is not shadowtap"; exit 1; }
dir=""
prev=""
for a in $(tr '\0' '\n' < $proc/1/cmdline | sed 's/ /\\040/g'); do
	case "$prev" in --pin-dir) dir=$a ;; esac
	case "$a" in --pin-dir=*) dir=${a#--pin-dir=} ;; esac
	prev=$a
done
if [ -z "$dir" ]; then
	dir=$(tr '\0' '\n' < $proc/1/environ 2>/dev/null | sed -n 's/^SHADOWTAP_PIN_DIR=//p' | tail -n 1)
fi
dir=$(printf '%b' "${dir:-/sys/fs/bpf/shadowtap}")
[ -e "$dir/stats" ] || { echo "unhealthy: no stats map pinned in $dir"; exit 1; }
echo "healthy: $dir/stats pinned"
