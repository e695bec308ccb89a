#!/usr/bin/env bash
# The capture path of the benchmark's GET in user space (deploy/bench/micro_capture.c):
# reassembly + exchange + HTTP/1 parsing + record build/free, linked with the agent's
# own -O2 objects. Prints ns per GET (best of RUNS), allocations per GET, and
# Callgrind instructions per GET (steady on a busy machine), capture-only and with
# keep_raw (as when replaying).
#   micro_capture.sh [RUNS]
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-build}
RUNS=${1:-7}
objs=()
for c in agent/*.c; do
	[ "$c" = agent/main.c ] || objs+=("$OUT/agent/$(basename "${c%.c}").o")
done
make --no-print-directory -s "${objs[@]}" || { echo "micro_capture: cannot build the agent objects" >&2; exit 1; }
mkdir -p "$OUT/bench"
BIN=$OUT/bench/micro_capture
cc -O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Icommon -Iagent -I"$OUT" -pthread \
	-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc \
	deploy/bench/micro_capture.c "${objs[@]}" -lbpf -lelf -lz -lpcap -lcurl -lssl -lcrypto \
	-lmsgpackc -lpthread -lm -o "$BIN" || { echo "micro_capture: build failed" >&2; exit 1; }
TMP=$(mktemp -d /tmp/shadowtap-microcap.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
for mode in "" raw; do
	"$BIN" "$RUNS" $mode | grep -v '^units=' || exit 1
	if command -v valgrind >/dev/null; then
		units=$(valgrind --tool=callgrind --callgrind-out-file="$TMP/cg" \
			--toggle-collect=micro_capture_pass "$BIN" --once $mode 2>"$TMP/cg.log" |
			sed -n 's/^units=//p')
		total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$TMP/cg" | head -1)
		[ -n "$total" ] || total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$TMP/cg" | head -1)
		[ -n "$units" ] && [ -n "$total" ] &&
			awk -v t="$total" -v u="$units" -v m="${mode:+_raw}" \
				'BEGIN {printf "callgrind capture%s ir_per_get=%.0f\n", m, t / u}'
	else
		echo "SKIP: callgrind: valgrind not installed"
	fi
done
