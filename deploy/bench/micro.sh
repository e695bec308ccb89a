#!/usr/bin/env bash
# Micro-benchmarks of the hot paths (deploy/bench/micro.c) linked with the agent
# objects build/agent/*.o except main.o (the same -O2 objects as the agent), then
# Callgrind instruction counts per unit, which stay comparable on a noisy machine.
#   micro.sh [--out FILE] [--runs N] [--no-callgrind]
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-build}
MD=$ROOT/deploy/bench/results/micro.md
RUNS=7
CALLGRIND=1
while [ $# -gt 0 ]; do
	case $1 in
	--out) MD=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--no-callgrind) CALLGRIND=0 ;;
	*) echo "usage: $0 [--out FILE] [--runs N] [--no-callgrind]" >&2; exit 2 ;;
	esac
	shift
done

# the objects of today's sources only: a stale object of a renamed file must not link
objs=()
for c in agent/*.c; do
	o=$OUT/agent/$(basename "${c%.c}").o
	[ "$c" = agent/main.c ] || objs+=("$o")
done
make --no-print-directory -s "${objs[@]}" || { echo "micro: cannot build the agent objects" >&2; exit 1; }
[ ${#objs[@]} -gt 0 ] || { echo "micro: no agent objects in $OUT/agent (run make)" >&2; exit 1; }
mkdir -p "$OUT/bench" "$(dirname "$MD")"
BIN=$OUT/bench/micro
cc -O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Icommon -Iagent -I"$OUT" -pthread \
	deploy/bench/micro.c "${objs[@]}" -lbpf -lelf -lz -lpcap -lcurl -lssl -lcrypto -lmsgpackc -lpthread -lm \
	-o "$BIN" || { echo "micro: build failed" >&2; exit 1; }

TMP=$(mktemp -d /tmp/shadowtap-micro.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
"$BIN" "$RUNS" >"$TMP/timing.txt" || { echo "micro: benchmark failed" >&2; exit 1; }
cat "$TMP/timing.txt"

# Instructions per unit: only the pass function is collected (--toggle-collect),
# so corpus generation and setup do not count.
declare -A IR
if [ "$CALLGRIND" = 1 ] && command -v valgrind >/dev/null; then
	for phase in parse reasm exchange encode encode_get record_get post_b64_43k post_b64_256k post_text; do
		units=$(valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$phase" \
			--toggle-collect="micro_${phase}_pass" "$BIN" --once "$phase" 2>"$TMP/cg.$phase.log" |
			sed -n 's/^units=//p')
		total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$TMP/cg.$phase" | head -1)
		[ -n "$total" ] || total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$TMP/cg.$phase" | head -1)
		if [ -n "$units" ] && [ -n "$total" ] && [ "$units" -gt 0 ]; then
			IR[$phase]=$(awk -v t="$total" -v u="$units" 'BEGIN {printf "%.0f", t / u}')
			echo "callgrind $phase ir_total=$total units=$units ir_per_unit=${IR[$phase]}"
		fi
	done
fi

val() { # line-name key
	sed -n "s/^$1 .*\<$2=\([^ ]*\).*/\1/p" "$TMP/timing.txt"
}
{
	echo "# shadowtap micro-benchmarks ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "deploy/bench/micro.c linked with build/agent/*.o (-O2 -g), $(nproc) CPUs, $(uname -r)."
	echo "Corpus (fixed seed): $(sed -n 's/^corpus //p' "$TMP/timing.txt")."
	echo "Requests: 45% browser GETs with cookies, 30% API GETs with bearer tokens, 22% JSON POSTs"
	echo "(0.2-3 KB), 3% chunked PUT uploads (8-32 KB); responses: JSON (Content-Length), HTML"
	echo "(4-32 KB), chunked JSON, 304 and 404. Reassembly: the same bytes over 200 keep-alive"
	echo "connections in 1448-byte segments, 1 pair in 32 swapped, interleaved across connections."
	echo "Medians of the runs; each run repeats a pass for at least 0.2 s."
	echo "Machine load (load average 1/5/15 min) at the start: $LOAD0; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "(the wall-clock columns move with it; Callgrind's instruction counts do not)."
	echo
	echo "| benchmark | unit | GB/s | units/s | ns/unit | instructions/unit (Callgrind) |"
	echo "|---|---|---|---|---|---|"
	for b in parse reasm exchange encode encode_get record_get post_b64_43k post_b64_256k post_text; do
		echo "| $b | $(val "$b" unit) | $(val "$b" gbps) | $(val "$b" units_per_s) | $(val "$b" ns_per_unit) | ${IR[$b]:-n/a} |"
	done
	echo
	echo "- parse: http1_parse_request/response + framing + http1_body_feed over every message;"
	echo "  GB/s counts all wire bytes (Content-Length bodies are skipped, chunked ones scanned);"
	echo "  over the head bytes alone it is $(val parse head_gbps) GB/s."
	echo "- reasm: reasm_segment for every segment (handshake, data, FIN) + reasm_flush_all,"
	echo "  null callbacks; GB/s of payload delivered."
	echo "- exchange: exchange_reasm_ops fed in-order bytes (parse, pair, copy heads, bodies up"
	echo "  to 64 KiB and raw request bytes) until every record is emitted; GB/s of wire bytes."
	echo "- encode: record_to_json of those records with the default redaction list; GB/s of"
	echo "  JSON written ($(val encode json_bytes) bytes for $(val corpus exchanges) records)."
	echo "- encode_get: record_to_json of the benchmark's replayed GET (loadgen's request, nginx's"
	echo "  answers from serverA and serverB, their diff): $(val encode_get json_bytes) bytes for 4000 records."
	echo "- record_get: the same record's whole life on one thread: exchange assembly, serverB's"
	echo "  answer attached as replay_conn.c does, diff_compare, record_to_json, record_free."
	echo "- post_b64_43k, post_b64_256k, post_text: record_to_json of one POST record (the body a"
	echo "  view into the raw request, nginx's answer): $(val post_b64_43k body_bytes) random bytes"
	echo "  (base64; $(val post_b64_43k ns_per_body_byte) ns per body byte), $(val post_b64_256k body_bytes)"
	echo "  random bytes with --body-limit 256K ($(val post_b64_256k ns_per_body_byte) ns/B), and a"
	echo "  $(val post_text body_bytes)-byte JSON text body, escaped ($(val post_text ns_per_body_byte) ns/B)."
} >"$MD"
echo "micro: wrote $MD"
