#!/usr/bin/env bash
# `shadowtap convert` applies the --redact-* rules (issue 12): a raw recording (made
# from a pcap with --record-pii --record-secrets, so it holds every planted secret)
# converted with the live agent's rules and key has no planted secret in .ndjson,
# .stap or .gor, the .gor still frames (Content-Length of the shortened body), and the
# tokens equal those of the records the agent wrote live from the same packets (also
# after redacting the redacted output again: no tokens of tokens).
# --record-pii keeps bodies and query strings in .stap/.gor (and says so), .ndjson
# still redacted. Offline (--input-pcap): no root, no network namespace, no lock.
set -u
. "$(dirname "$0")/lib.sh"
[ -x "$ST_BIN" ] || { skip "pii-convert (build/shadowtap not built)"; exit 0; }
command -v python3 >/dev/null || { skip "pii-convert (no python3)"; exit 0; }
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
export SHADOWTAP_REDACT_KEY=test-key-0123
SECRETS="Bearer-s3cr3t-AAA sess-77c0ffee QTOKEN998877 hunter2-pw 4111111111111111 jane.doe@example.com"
RULES=(--redact-mode hash --redact-json '$..password' --redact-query token
       --redact-pattern credit-card --redact-pattern email)
python3 "$ST_ROOT/tests/integration/pii_pcap.py" "$D/pii.pcap" || { fail "pii-convert: pcap generator"; exit 0; }
"$ST_BIN" --input-pcap "$D/pii.pcap" -p 80 -o "$D/live.ndjson" "${RULES[@]}" \
	--output-file "$D/raw.stap" --record-pii --record-secrets 2> "$D/agent.log" ||
	{ fail "pii-convert: agent: $(tail -n 3 "$D/agent.log")"; exit 0; }
# the key is read (hash mode works), so it must not be called "unknown ... ignored"
if grep -q "unknown environment variable SHADOWTAP_REDACT_KEY" "$D/agent.log"; then
	fail "pii-convert: the agent calls SHADOWTAP_REDACT_KEY unknown and ignored, yet uses it"
else
	pass "pii-convert: SHADOWTAP_REDACT_KEY is not reported as an unknown environment variable"
fi
missing=""
for s in $SECRETS; do grep -qaF "$s" "$D/raw.stap" || missing="$missing $s"; done
# the input really holds the secrets, or "none leaked" below proves nothing
[ -z "$missing" ] && [ "$(wc -l < "$D/live.ndjson")" = 3 ] ||
	{ fail "pii-convert: raw recording lacks:$missing; $(wc -l < "$D/live.ndjson") live records"; exit 0; }
ok=1
for o in conv.ndjson conv.stap conv.gor; do
	"$ST_BIN" convert "${RULES[@]}" "$D/raw.stap" "$D/$o" 2> "$D/$o.log" ||
		{ ok=0; fail "pii-convert: convert to $o: $(tail -1 "$D/$o.log")"; }
done
leaked=""
for s in $SECRETS; do
	for f in "$D"/conv.* "$D"/*.log; do
		grep -qaF "$s" "$f" && [ "$f" != "$D/agent.log" ] && leaked="$leaked $s(${f##*/})"
	done
done
[ $ok = 1 ] && [ -z "$leaked" ] &&
	pass "pii-convert: no planted secret in the converted .ndjson, .stap, .gor or convert's log (raw recording held all six)" ||
	fail "pii-convert: leaked:$leaked"
# read the converted recordings back as they are (tokens kept: --no-redact)
"$ST_BIN" convert --no-redact "$D/conv.stap" "$D/stap.ndjson" 2>/dev/null &&
"$ST_BIN" convert --no-redact "$D/conv.gor" "$D/gor.ndjson" 2>/dev/null ||
	fail "pii-convert: converted recordings do not read back"
# redacting twice changes nothing: the redacted .stap through the same rules again
"$ST_BIN" convert "${RULES[@]}" "$D/conv.stap" "$D/twice.ndjson" 2>/dev/null ||
	fail "pii-convert: convert of the converted .stap"
python3 - "$D/live.ndjson" "$D/conv.ndjson" "$D/stap.ndjson" "$D/gor.ndjson" "$D/conv.gor" "$D/twice.ndjson" <<'PY'
import json, re, sys
def load(p):
    return {json.loads(l)["url"]["path"]: json.loads(l) for l in open(p)}
live = load(sys.argv[1])
ok = True
def check(cond, what):
    global ok
    if not cond:
        ok = False
        print("FAIL: pii-convert: " + what)
tok = re.compile(r"REDACTED-[0-9a-f]{16}")
def fields(r):
    q = r["http"]["request"]
    return (q["headers"].get("cookie"), q["headers"].get("authorization"), r["url"].get("query"),
            q.get("body", {}).get("content"))
check(tok.search(live["/a"]["http"]["request"]["headers"]["cookie"]) and
      tok.search(live["/a"]["url"]["query"]), "live records carry no tokens")
for name, path in (("convert .ndjson", sys.argv[2]), ("convert .stap", sys.argv[3]), ("convert .gor", sys.argv[4]),
                   ("converted .stap redacted again", sys.argv[6])):
    conv = load(path)
    check(sorted(conv) == sorted(live), "%s: paths %s" % (name, sorted(conv)))
    for p in live:
        if p in conv:
            check(fields(conv[p]) == fields(live[p]), "%s %s: %s, live %s" % (name, p, fields(conv[p]), fields(live[p])))
# the .gor frames: each request's Content-Length is the body that follows
raw = open(sys.argv[5], "rb").read().decode("utf-8", "replace")
reqs = [e.split("\n", 1)[1] for e in raw.split("\n\U0001f435\U0001f648\U0001f649\n") if e.startswith("1 ")]
check(len(reqs) == 3, "%d requests in the .gor" % len(reqs))
for r in reqs:
    head, _, b = r.partition("\r\n\r\n")
    m = re.search(r"(?im)^content-length: *(\d+)", head)
    if m:
        check(int(m.group(1)) == len(b.encode()), "gor framing: Content-Length %s for %d bytes" % (m.group(1), len(b.encode())))
if ok:
    print("PASS: pii-convert: converted .ndjson, .stap and .gor carry the live records' tokens (cookie, authorization, query, JSON field, card, e-mail), also when redacted twice; .gor frames")
PY
# the explicit opt-out, as in the agent: --record-pii keeps bodies and query strings
"$ST_BIN" convert "${RULES[@]}" --record-pii "$D/raw.stap" "$D/keep.gor" 2> "$D/keep.log"
"$ST_BIN" convert "${RULES[@]}" --record-pii "$D/raw.stap" "$D/keep.ndjson" 2>/dev/null
kept=""
for s in QTOKEN998877 hunter2-pw 4111111111111111 jane.doe@example.com; do
	grep -qaF "$s" "$D/keep.gor" && kept="$kept $s"
done
if [ "$kept" = " QTOKEN998877 hunter2-pw 4111111111111111 jane.doe@example.com" ] &&
   ! grep -qaF sess-77c0ffee "$D/keep.gor" && [ -s "$D/keep.ndjson" ] && ! grep -qaF hunter2-pw "$D/keep.ndjson" &&
   grep -q -- "--record-pii: .* will hold bodies and query strings" "$D/keep.log"; then
	pass "pii-convert: --record-pii keeps bodies and query strings in .gor (said), headers still redacted, .ndjson still redacted"
else
	fail "pii-convert: --record-pii: kept '$kept'; $(head -c 300 "$D/keep.log")"
fi
