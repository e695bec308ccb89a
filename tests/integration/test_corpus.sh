#!/usr/bin/env bash
# Every trace in ../shared/corpus/zeek-http goes through `shadowtap --input-pcap`
# built with ASan/UBSan: no crash, no sanitizer report. Then two oracles:
# - tshark: where it dissects a trace cleanly, requests (method, URI) and status codes
#   must match tshark's;
# - Zeek: for each of the traces Zeek's own test suite keeps an http.log for
#   (zeek-baselines.json), method, URI, status and body lengths per transaction must
#   match Zeek's rows.
# A difference is accepted only when corpus-explained.tsv holds exactly that
# difference for that trace and oracle, with the reason shadowtap's answer is right
# (trace<TAB>oracle<TAB>difference as JSON<TAB>why). A new difference, a changed one,
# a listed one that is gone, or a trace whose comparison fails, fails the test.
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
	rm -f "$out"     # -o appends
	# server ports: the usual HTTP ports plus any port that answered a SYN, as a
	# user would pass the port their server listens on
	ports=$( (echo "$PORTS" | tr , '\n'; tshark -n -r "$in" -Y 'tcp.flags.syn==1 && tcp.flags.ack==1' \
		-T fields -e tcp.srcport 2>/dev/null) | sort -un | head -16 | paste -sd,)
	# whole bodies, so that gzip/deflate bodies can be decoded to Zeek's lengths
	"$SAN_BIN" --input-pcap "$in" -p "$ports" --body-limit 64M -o "$out" 2>"$err"; rc=$?
	if [ $rc -ne 0 ] || grep -qE 'AddressSanitizer|runtime error|LeakSanitizer' "$err"; then
		crashed=$((crashed + 1))
		echo "crash or sanitizer report on $name (exit $rc):"; grep -m5 -E 'ERROR|runtime error|SUMMARY' "$err"
		continue
	fi
	if ! python3 "$ST_ROOT/tests/integration/corpus_compare.py" "$in" "$out" "$ports" \
		--zeek "$CORPUS/zeek-baselines.json" --name "$name" > "$ST_TMP/one.json"; then
		echo "compare failed on $name"
		echo "{\"trace\": \"$name\", \"error\": true}" >> "$ST_TMP/results.jsonl"
		continue
	fi
	python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); r["trace"] = sys.argv[2]; print(json.dumps(r, sort_keys=True))' \
		"$ST_TMP/one.json" "$name" >> "$ST_TMP/results.jsonl"
done < <(find "$CORPUS" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.pcap.gz' \) -print0 | sort -z)

[ $crashed = 0 ] && pass "corpus: $total traces through --input-pcap, no crash, no sanitizer report" \
	|| fail "corpus: $crashed of $total traces crashed or hit a sanitizer"

python3 - "$ST_TMP/results.jsonl" "$EXPLAINED" "$total" <<'PY'
import json, sys
res = [json.loads(l) for l in open(sys.argv[1])]
total = int(sys.argv[3])
expl = {}
for n, l in enumerate(open(sys.argv[2]), 1):
    if not l.strip() or l.startswith("#"):
        continue
    try:
        t, oracle, d, why = l.rstrip("\n").split("\t", 3)
        expl[(t, oracle)] = (json.loads(d), why)
    except ValueError as e:
        print("FAIL: corpus: %s line %d is not trace<TAB>oracle<TAB>json<TAB>why (%s)" % (sys.argv[2], n, e))
        sys.exit(0)
canon = lambda d: json.dumps(d, sort_keys=True)
problems, used = [], set()
counts = {"tshark": [0, 0, 0], "zeek": [0, 0, 0]}   # compared, agree, explained

def check(trace, oracle, agree, diff):
    c = counts[oracle]
    c[0] += 1
    e = expl.get((trace, oracle))
    if e:
        used.add((trace, oracle))
    if agree and not e:
        c[1] += 1
        return "agree"
    if agree:
        problems.append("%s: %s now agrees; remove its corpus-explained.tsv line" % (trace, oracle))
        return "AGREES NOW (stale explanation)"
    if not e:
        problems.append("%s: new difference with %s" % (trace, oracle))
        return "DIFFERS"
    if canon(e[0]) != canon(diff):
        problems.append("%s: difference with %s changed" % (trace, oracle))
        return "DIFFERENCE CHANGED (listed: %s)" % canon(e[0])
    c[2] += 1
    return "explained"

errors = [r["trace"] for r in res if r.get("error")]
for r in res:
    if r.get("error"):
        print("  %-55s COMPARISON FAILED" % r["trace"])
        continue
    tag = check(r["trace"], "tshark", r["agree"], r["diff"]) if r["clean"] else "tshark not clean"
    print("  %-55s ours %3d req %3d resp | tshark %3d req %3d resp  %s" % (
        r["trace"], r["ours"]["requests"], r["ours"]["responses"],
        r["tshark"]["requests"], r["tshark"]["responses"], tag))
    if not r["agree"] and r["clean"]:
        print("      tshark diff: %s" % canon(r["diff"]))
        if (r["trace"], "tshark") in expl:
            print("      why: %s" % expl[(r["trace"], "tshark")][1])
    z = r.get("zeek", {})
    if z.get("kind") == "rows":
        ztag = check(r["trace"], "zeek", z["agree"], z["diff"])
        print("  %-55s ours %3d rows | zeek %3d rows  %s" % ("", z["ours"], z["zeek"], ztag))
        if not z["agree"]:
            print("      zeek diff: %s" % canon(z["diff"]))
            if (r["trace"], "zeek") in expl:
                print("      why: %s" % expl[(r["trace"], "zeek")][1])
for k in sorted(set(expl) - used):
    problems.append("%s: %s explanation for a trace not compared" % k)
if len(res) != total:
    problems.append("%d traces but %d results" % (total, len(res)))
problems += ["%s: comparison failed" % t for t in errors]
t, z = counts["tshark"], counts["zeek"]
print("corpus agreement with tshark: %d of %d cleanly dissected traces agree, %d differ as listed (%d traces in all)" % (t[1], t[0], t[2], len(res)))
print("corpus agreement with Zeek's baselines: %d of %d baselined traces agree, %d differ as listed" % (z[1], z[0], z[2]))
ok = not problems
print(("PASS: " if ok else "FAIL: ") + "corpus: tshark %d/%d agree, Zeek %d/%d agree, every other difference exactly as listed in corpus-explained.tsv" % (t[1], t[0], z[1], z[0])
      + ("" if ok else " (%s)" % "; ".join(problems)))
PY
