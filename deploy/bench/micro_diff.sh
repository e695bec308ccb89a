#!/usr/bin/env bash
# Difference cost per record (deploy/bench/micro_diff.c) with the agent's -O2 objects.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-build}
make --no-print-directory -s all || exit 1
objs=$(ls "$OUT"/agent/*.o | grep -v '/main\.o$')
mkdir -p "$OUT/bench"
cc -O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Icommon -Iagent -I"$OUT" -pthread deploy/bench/micro_diff.c \
	$objs -lbpf -lelf -lz -lpcap -lcurl -lcrypto -lmsgpackc -lpthread -lm -o "$OUT/bench/micro_diff" &&
	"$OUT/bench/micro_diff"
