#!/usr/bin/env bash
# Every trace in ../shared/corpus/zeek-http goes through `shadowtap --input-pcap`
# built with ASan/UBSan: no crash, no sanitizer report. Where tshark dissects a
# trace cleanly, requests (method, URI) and status codes must match tshark's, or
# the difference must be explained in corpus-explained.tsv (trace<TAB>why).
. "$(dirname "$0")/lib.sh"
CORPUS=${CORPUS:-$ST_ROOT/../shared/corpus/zeek-http}
SAN_BIN=${SAN_BIN:-$ST_ROOT/build/asan/shadowtap}
PORTS=80,8000,8001,8080,1080,3128
EXPLAINED=$ST_ROOT/tests/integration/corpus-explained.tsv
[ -d "$CORPUS" ] || { skip "corpus (no $CORPUS)"; exit 0; }
command -v tshark >/dev/null || { skip "corpus (tshark not installed)"; exit 0; }
if [ ! -x "$SAN_BIN" ]; then
	make -C "$ST_ROOT" --no-print-directory OUT=build/asan SAN=1 build/asan/shadowtap >/dev/null || { fail "corpus: ASan build failed"; exit 0; }
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

total=0 crashed=0 clean=0 agree=0 explained=0
: > "$ST_TMP/results.jsonl"
while IFS= read -r -d '' f; do
	total=$((total + 1))
	name=${f#"$CORPUS"/}
	in=$f
	case "$f" in *.gz) in=$ST_TMP/$(basename "${f%.gz}"); gzip -dc "$f" > "$in" ;; esac
	out=$ST_TMP/out.ndjson err=$ST_TMP/err.log
	# server ports: the usual HTTP ports plus any port that answered a SYN, as a
	# user would pass the port their server listens on
	ports=$( (echo "$PORTS" | tr , '\n'; tshark -n -r "$in" -Y 'tcp.flags.syn==1 && tcp.flags.ack==1' \
		-T fields -e tcp.srcport 2>/dev/null) | sort -un | head -16 | paste -sd,)
	"$SAN_BIN" --input-pcap "$in" -p "$ports" -o "$out" 2>"$err"; rc=$?
	if [ $rc -ne 0 ] || grep -qE 'AddressSanitizer|runtime error|LeakSanitizer' "$err"; then
		crashed=$((crashed + 1))
		echo "crash or sanitizer report on $name (exit $rc):"; grep -m5 -E 'ERROR|runtime error|SUMMARY' "$err"
		continue
	fi
	python3 "$ST_ROOT/tests/integration/corpus_compare.py" "$in" "$out" "$ports" > "$ST_TMP/one.json" || { echo "compare failed on $name"; continue; }
	sed "s|\"trace\": \"[^\"]*\"|\"trace\": \"$name\"|" "$ST_TMP/one.json" >> "$ST_TMP/results.jsonl"
done < <(find "$CORPUS" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.pcap.gz' \) -print0 | sort -z)

[ $crashed = 0 ] && pass "corpus: $total traces through --input-pcap, no crash, no sanitizer report" \
	|| fail "corpus: $crashed of $total traces crashed or hit a sanitizer"

python3 - "$ST_TMP/results.jsonl" "$EXPLAINED" <<'PY'
import json, sys
res = [json.loads(l) for l in open(sys.argv[1])]
expl = {}
try:
    for l in open(sys.argv[2]):
        if l.strip() and not l.startswith("#"):
            t, why = l.rstrip("\n").split("\t", 1)
            expl[t] = why
except FileNotFoundError:
    pass
clean = [r for r in res if r["clean"]]
agree = [r for r in clean if r["agree"]]
unexplained = [r for r in clean if not r["agree"] and r["trace"] not in expl]
explained = [r for r in clean if not r["agree"] and r["trace"] in expl]
for r in res:
    tag = "agree" if r["agree"] else ("explained" if r["trace"] in expl else "DIFFERS")
    if not r["clean"]:
        tag += " (tshark not clean)"
    print("  %-55s ours %3d req %3d resp | tshark %3d req %3d resp  %s" % (
        r["trace"], r["ours"]["requests"], r["ours"]["responses"],
        r["tshark"]["requests"], r["tshark"]["responses"], tag))
    if not r["agree"]:
        print("      diff: %s" % json.dumps(r["diff"]))
        if r["trace"] in expl:
            print("      why: %s" % expl[r["trace"]])
print("corpus agreement with tshark: %d of %d cleanly dissected traces agree, %d differ with an explanation, %d unexplained (%d traces in all)" % (
    len(agree), len(clean), len(explained), len(unexplained), len(res)))
ok = not unexplained
print(("PASS: " if ok else "FAIL: ") + "corpus: requests and status codes match tshark on clean traces (%d/%d agree, %d explained)" % (len(agree), len(clean), len(explained))
      + ("" if ok else " (unexplained: %s)" % ", ".join(r["trace"] for r in unexplained)))
PY
