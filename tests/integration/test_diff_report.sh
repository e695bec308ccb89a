#!/usr/bin/env bash
# Noise-cancelled differences end to end. A test service (tests/integration/diff/
# service.py) runs as serverA, as a baseline (a second copy of production) and as
# serverB with two planted regressions: $.price one more for 5% of GET
# /api/item/{int}, $.currency missing on POST /api/orders. Every answer also carries
# noise (millisecond timestamp, random request id, a set-like array in random
# order, Date/ETag/X-Request-Id headers, the instance's hostname).
#
# 1500 mixed requests (DIFF_REQUESTS) are sent to serverA and recorded with its answers as
# a GoReplay file; shadowtap replays it (--input-file, no capture needed) to serverB:
#   - with --replay-baseline: the report lists exactly the two regressions;
#   - with --noise-probe (and --diff-ignore for the hostname, which a probe of one
#     serverB cannot see as noise): the same on safe endpoints, and the POST
#     regression is still found;
#   - with neither: the noisy fields are reported as real (the contrast);
#   - the agent's own summary documents agree with the report;
#   - the HTML report, opened in headless Chromium, has the expected rows in its DOM,
#     and a screenshot is taken;
#   - with a real local OpenSearch (scripts/opensearch, when java and mvn are there):
#     the summary documents land in shadowtap-diff-YYYY.MM.DD and `shadowtap report
#     --es URL` ranks the same real differences as the report from NDJSON.
set -u
. "$(dirname "$0")/lib.sh"
[ -x "$ST_BIN" ] || { skip "diff report (build/shadowtap not built)"; exit 0; }
D=$ST_ROOT/tests/integration/diff
N=${DIFF_REQUESTS:-1500}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PA=$(free_port); PBASE=$(free_port); PB=$(free_port)
python3 "$D/service.py" --name prod-1 --port "$PA" & ST_PIDS+=($!)
python3 "$D/service.py" --name prod-2 --port "$PBASE" & ST_PIDS+=($!)
python3 "$D/service.py" --name canary --port "$PB" --regress & ST_PIDS+=($!)
for p in $PA $PBASE $PB; do
	st_poll 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" 2>/dev/null || { fail "diff report: test service on $p did not start"; exit 0; }
done
python3 "$D/make_gor.py" 127.0.0.1 "$PA" "$N" "$ST_TMP/traffic.gor" || { fail "diff report: recording the traffic failed"; exit 0; }

run() {  # run NAME ARGS...: replay the recording to serverB, then report
	local name=$1; shift
	"$ST_BIN" --input-file "$ST_TMP/traffic.gor" --replay-speed max -r "http://127.0.0.1:$PB" \
		--stats 3600 -o "$ST_TMP/$name.ndjson" "$@" 2>"$ST_TMP/$name.log" ||
		{ fail "diff report: agent failed ($name)"; tail -5 "$ST_TMP/$name.log"; return 1; }
	"$ST_BIN" report --format json "$ST_TMP/$name.ndjson" > "$ST_TMP/$name.json" &&
		"$ST_BIN" report "$ST_TMP/$name.ndjson" > "$ST_TMP/$name.txt" ||
		{ fail "diff report: report failed ($name)"; return 1; }
}

# check NAME MODE: the verdicts in the report (and the agent's summaries) against
# what was planted
check() {
	python3 - "$ST_TMP/$1.json" "$ST_TMP/$1.ndjson" "$1" "$N" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1])); name = sys.argv[3]; n = int(sys.argv[4])
real = {(d["endpoint"], d["path"], d["kind"]) for d in rep["differences"] if d["verdict"] == "real"}
planted = {("GET /api/item/{int}", "$.price", "value"), ("POST /api/orders", "$.currency", "missing")}
safe = lambda ep: ep.split(" ")[0] in ("GET", "HEAD", "OPTIONS")
ok = True
def check(cond, what):
    global ok
    print(("PASS: " if cond else "FAIL: ") + f"diff report ({name}): {what}")
    ok = ok and cond
compared = rep["requests"]
check(compared >= 0.9 * n, f"{compared} of {n} requests compared")
price = [d for d in rep["differences"] if d["path"] == "$.price"]
if price:
    check(0.02 < price[0]["share"] < 0.09, f"$.price differs in {price[0]['share']:.1%} of item requests (5% planted)")
if name == "baseline":
    check(real == planted, "exactly the two planted regressions are real: " + ", ".join(map(" ".join, sorted(real))))
    # the agent's last summary per endpoint says the same
    last = {}
    for l in open(sys.argv[2]):
        d = json.loads(l)
        if d.get("event", {}).get("dataset") == "shadowtap.diff_summary":
            last[d["diff_summary"]["endpoint"]] = d["diff_summary"]
    agent = {(ep, f["path"], f["kind"]) for ep, s in last.items() for f in s["fields"] if f["verdict"] == "real"}
    check(agent == planted, "the agent's summary documents agree")
    noisy = {(d["endpoint"], d["path"]) for d in rep["differences"] if d["verdict"] == "noise"}
    check(("GET /api/user/{int}", "$.ts") in noisy and ("GET /api/item/{int}", "$.tags") in noisy
          and ("POST /api/orders", "$.host") in noisy, "timestamps, shuffled arrays and hostnames are noise")
elif name == "probe":
    got = {r for r in real if safe(r[0])}
    check(got == {p for p in planted if safe(p[0])}, "safe endpoints: only $.price is real: " + ", ".join(map(" ".join, sorted(got))))
    check(("POST /api/orders", "$.currency", "missing") in real, "the POST regression is still found")
    probed = [e for e in rep["endpoints"] if safe(e["endpoint"])]
    check(all(e["noise_requests"] > 0 for e in probed) and
          not any(e["noise_requests"] for e in rep["endpoints"] if not safe(e["endpoint"])),
          "probes went to safe endpoints only")
else:
    check(planted <= real, "the planted regressions are found")
    check({("GET /api/user/{int}", "$.ts", "value"), ("GET /api/item/{int}", "$.tags", "order"),
           ("GET /api/item/{int}", "$.request_id", "value")} <= real,
          f"without noise cancellation the noise is reported as real ({len(real)} real differences)")
sys.exit(0 if ok else 1)
PY
}

# OpenSearch for the baseline run, on its own port and home
OS_PORT=${DIFF_OS_PORT:-19230}
OS_URL=http://127.0.0.1:$OS_PORT
OS_STARTED=
ES_ARGS=()
diff_cleanup() {
	[ -n "$OS_STARTED" ] && OPENSEARCH_HOME=$ST_TMP/opensearch OPENSEARCH_PORT=$OS_PORT \
		"$ST_ROOT/scripts/opensearch" stop >/dev/null 2>&1
	st_cleanup
}
trap diff_cleanup EXIT
if [ "${DIFF_ES:-1}" = 0 ] || ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
	skip "diff report: OpenSearch checks (DIFF_ES=0, or java/mvn missing)"
elif OPENSEARCH_HOME=$ST_TMP/opensearch OPENSEARCH_PORT=$OS_PORT OPENSEARCH_HEAP=${OPENSEARCH_HEAP:-512m} \
	"$ST_ROOT/scripts/opensearch" start > "$ST_TMP/os-start.log" 2>&1; then
	OS_STARTED=1
	# a busy machine can make OpenSearch slower than the default 10 s drain at exit, which
	# spools the rest for the next start and leaves report --es short of records
	ES_ARGS=(-e "$OS_URL" --spool-dir "$ST_TMP/spool" --es-batch-ms 200 --shutdown-timeout 120)
else
	fail "diff report: scripts/opensearch start ($(tail -2 "$ST_TMP/os-start.log" | tr '\n' ' '))"
fi

if run baseline --replay-baseline "http://127.0.0.1:$PBASE" "${ES_ARGS[@]}"; then
	check baseline
	grep -q '^diff: GET /api/item/{int} \$.price value' "$ST_TMP/baseline.log" &&
		pass "diff report: --stats lists the top real differences" ||
		fail "diff report: --stats has no 'diff:' line for \$.price"
fi
if [ -n "$OS_STARTED" ]; then
	pend=$(grep -o 'spool_pending_bytes=[0-9]*' "$ST_TMP/baseline.log" | tail -1)
	[ -z "$pend" ] || [ "${pend#*=}" = 0 ] ||
		echo "note: the agent left records in its spool at exit ($pend): report --es will miss them"
	curl -s -XPOST "$OS_URL/_refresh" >/dev/null
	"$ST_BIN" report --es "$OS_URL" --format json > "$ST_TMP/es.json" 2>"$ST_TMP/es-report.log" ||
		fail "diff report: report --es failed ($(tail -1 "$ST_TMP/es-report.log"))"
	curl -s "$OS_URL/shadowtap-diff-*/_search?size=100&q=event.dataset:%22shadowtap.diff_summary%22" \
		> "$ST_TMP/summaries.json"
	python3 - "$ST_TMP/baseline.json" "$ST_TMP/es.json" "$ST_TMP/summaries.json" <<'PY'
import json, sys
def real(f):
    try:
        d = json.load(open(f))
    except ValueError:
        return None, 0
    return [(x["endpoint"], x["path"], x["kind"], x["raw"]) for x in d["differences"] if x["verdict"] == "real"], d["requests"]
nd, nn = real(sys.argv[1]); es, ne = real(sys.argv[2])
if es == nd and nn == ne:
    print(f"PASS: diff report: report --es ranks the same real differences as from NDJSON ({ne} requests): {es}")
else:
    print(f"FAIL: diff report: report --es {es} ({ne} requests) vs NDJSON {nd} ({nn} requests)")
hits = json.load(open(sys.argv[3])).get("hits", {}).get("hits", [])
idx = {h["_index"] for h in hits}
item = [h["_source"]["diff_summary"] for h in hits if h["_source"]["diff_summary"]["endpoint"] == "GET /api/item/{int}"]
price = [f for s in item for f in s["fields"] if f["path"] == "$.price" and f["verdict"] == "real"]
if hits and all(i.startswith("shadowtap-diff-") for i in idx) and price:
    print(f"PASS: diff report: {len(hits)} summary documents in {sorted(idx)}, $.price real in them")
else:
    print(f"FAIL: diff report: summary documents: {len(hits)} in {sorted(idx)}, $.price real: {bool(price)}")
PY
	# the Kibana differences dashboard's panel query, as the panel sends it (the
	# dashboard's context becomes match_all), needs diff_summary.fields mapped nested
	python3 - "$OS_URL" "$ST_ROOT/deploy/kibana/shadowtap-diff.ndjson" "$ST_TMP/baseline.json" <<'PY'
import json, sys, urllib.request
url, saved, nd = sys.argv[1:4]
m = json.load(urllib.request.urlopen(url + "/shadowtap-diff-*/_mapping"))
types = {i: v["mappings"]["properties"]["diff_summary"]["properties"]["fields"].get("type") for i, v in m.items()}
print(("PASS" if types and set(types.values()) == {"nested"} else "FAIL") +
      f": diff report: diff_summary.fields is mapped nested in {sorted(types)} ({set(types.values())})")
real = None
for l in open(saved):
    o = json.loads(l)
    if o["id"] == "shadowtap-diff-real":
        real = json.loads(json.loads(o["attributes"]["visState"])["params"]["spec"])["data"]["url"]
body = dict(real["body"], query={"match_all": {}})
req = urllib.request.Request(url + "/" + real["index"] + "/_search", json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
r = json.load(urllib.request.urlopen(req))
got = {(ep["key"], p["key"], p["kind"]["buckets"][0]["key"]) for ep in r["aggregations"]["ep"]["buckets"]
       for p in ep["f"]["sel"]["path"]["buckets"]}
want = {(d["endpoint"], d["path"], d["kind"]) for d in json.load(open(nd))["differences"] if d["verdict"] == "real"}
print(("PASS" if got == want and got else "FAIL") +
      f": diff report: the dashboard's real-differences panel query lists the report's real rows: {sorted(got)} (report: {sorted(want)})")
PY
fi
run probe --noise-probe 30% --diff-ignore '* $.host' && check probe
run none && check none

# the HTML report in a real browser
CHROME=$(command -v chromium || command -v chromium-browser || true)
"$ST_BIN" report --html "$ST_TMP/report.html" "$ST_TMP/baseline.ndjson" >/dev/null
if [ -z "$CHROME" ]; then
	skip "diff report: HTML in a browser (no chromium; scripts/setup.sh installs it)"
else
	flags="--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir=$ST_TMP/chrome"
	timeout 60 "$CHROME" $flags --dump-dom "file://$ST_TMP/report.html" > "$ST_TMP/dom.html" 2>"$ST_TMP/chrome.log"
	python3 - "$ST_TMP/dom.html" <<'PY'
import sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(s):
        super().__init__(); s.rows = []; s.cur = None; s.cell = None; s.eps = 0; s.details = 0
    def handle_starttag(s, tag, a):
        a = dict(a)
        if tag == "tr" and "diff" in (a.get("class") or "").split():
            s.cur = {"class": a["class"].split()[1]}
        if tag == "tr" and a.get("class") == "endpoint":
            s.eps += 1
        if tag == "td" and s.cur is not None:
            s.cell = a.get("class") or ""
        if tag == "details" and s.cur is not None:
            s.details += 1
    def handle_endtag(s, tag):
        if tag == "tr" and s.cur is not None:
            s.rows.append(s.cur); s.cur = None
    def handle_data(s, d):
        if s.cur is not None and s.cell in ("ep", "path", "kind") and d.strip():
            s.cur[s.cell] = s.cur.get(s.cell, "") + d.strip()
p = P(); p.feed(open(sys.argv[1]).read())
real = sorted((r.get("ep"), r.get("path"), r.get("kind")) for r in p.rows if r["class"] == "real")
want = [("GET /api/item/{int}", "$.price", "value"), ("POST /api/orders", "$.currency", "missing")]
if real == want and p.eps >= 5 and p.details >= 2 and any(r["class"] == "noise" for r in p.rows):
    print(f"PASS: diff report: Chromium's DOM has the two real rows, {p.eps} endpoint bars, expandable examples")
else:
    print(f"FAIL: diff report: Chromium's DOM: real rows {real}, {p.eps} endpoint bars, {p.details} examples")
PY
	timeout 60 "$CHROME" $flags --hide-scrollbars --window-size=1280,900 \
		--screenshot="$ST_TMP/report.png" "file://$ST_TMP/report.html" >>"$ST_TMP/chrome.log" 2>&1
	if [ -s "$ST_TMP/report.png" ] && head -c 8 "$ST_TMP/report.png" | grep -q PNG; then
		pass "diff report: screenshot taken ($(stat -c %s "$ST_TMP/report.png") bytes)"
		[ -n "${DIFF_SHOT:-}" ] && cp "$ST_TMP/report.png" "$DIFF_SHOT"
	else
		fail "diff report: no screenshot"; tail -3 "$ST_TMP/chrome.log"
	fi
fi
if [ -n "${DIFF_KEEP:-}" ]; then
	mkdir -p "$DIFF_KEEP" && cp "$ST_TMP"/{baseline,probe,none}.txt "$ST_TMP/report.html" "$DIFF_KEEP"/
fi
