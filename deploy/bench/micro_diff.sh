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
objs=$(ls "$OUT"/agent/*.o | grep -v '/main\.o$')
mkdir -p "$OUT/bench"
cc -O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Icommon -Iagent -I"$OUT" -pthread deploy/bench/micro_diff.c \
	$objs -lbpf -lelf -lz -lpcap -lcurl -lssl -lcrypto -lmsgpackc -lpthread -lm -o "$OUT/bench/micro_diff" || exit 1
res=$("$OUT/bench/micro_diff") || exit 1
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
