#!/usr/bin/env bash
# Difference cost per record (deploy/bench/micro_diff.c) with the agent's -O2 objects.
#   micro_diff.sh [--out FILE]   FILE gets a Markdown section (make bench writes
#                                 deploy/bench/results/micro_diff.md); stdout always
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-build}
DEST=
[ "${1:-}" = --out ] && DEST=${2:?--out needs a file}
make --no-print-directory -s all || exit 1
# the objects of today's sources only: a stale object of a renamed file must not link
objs=
for c in agent/*.c; do
	[ "$c" = agent/main.c ] || objs="$objs $OUT/agent/$(basename "${c%.c}").o"
done
mkdir -p "$OUT/bench"
cc -O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Icommon -Iagent -I"$OUT" -pthread deploy/bench/micro_diff.c \
	$objs -lbpf -lelf -lz -lpcap -lcurl -lssl -lcrypto -lmsgpackc -lpthread -lm -o "$OUT/bench/micro_diff" || exit 1
res=$("$OUT/bench/micro_diff") || exit 1
# Instructions per record on the benchmark's shape: only micro_diff_pass is collected,
# so setup does not count (far steadier than the times on a shared machine).
if [ "${MICRO_DIFF_CALLGRIND:-1}" = 1 ] && command -v valgrind >/dev/null; then
	cg=$(mktemp /tmp/shadowtap-cg.XXXXXX)
	units=$(valgrind --tool=callgrind --callgrind-out-file="$cg" --toggle-collect=micro_diff_pass \
		"$OUT/bench/micro_diff" --once bench 2000 2>/dev/null | sed -n 's/^units=//p')
	total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$cg" | head -1)
	[ -n "$total" ] || total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$cg" | head -1)
	rm -f "$cg"
	if [ -n "$units" ] && [ -n "$total" ] && [ "$units" -gt 0 ]; then
		res="$res
callgrind benchmark shape: $(awk -v t="$total" -v u="$units" 'BEGIN {printf "%.0f", t / u}') instructions per record (diff_compare + free + fields_sum_observe, $units records)"
	fi
fi
echo "$res"
if [ -n "$DEST" ]; then
	{
		echo "## Difference cost per record (deploy/bench/micro_diff.sh)"
		echo
		echo "$(nproc) CPUs, $(uname -m), $(date -u +%Y-%m-%dT%H:%MZ), load average $(cut -d" " -f1-3 /proc/loadavg) (times move with it), one thread, -O2; each line is the"
		echo "mean over the loop of one record with serverA, serverB and noise answers (see micro_diff.c)."
		echo
		echo '```'
		echo "$res"
		echo '```'
	} > "$DEST"
fi
