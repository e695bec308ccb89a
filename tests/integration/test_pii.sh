#!/usr/bin/env bash
# Personal data: planted secrets in a header, a query parameter, a JSON field and a
# text body (a card number, an e-mail address) appear nowhere in the records or the
# agent's log with --redact-mode hash, --redact-json, --redact-query, --redact-pattern;
# the hashed tokens of two requests with the same cookie are equal, and other values
# stay as sent. The client's own requests are the oracle. Also: hash mode without a
# key refuses to start with one line. Recordings (.stap and .gor) get the same rules by
# default, stay readable and framed (Content-Length of the shortened body), carry the
# same tokens; --record-pii keeps bodies and query strings as captured (headers stay
# redacted: that is --record-secrets).
set -u
. "$(dirname "$0")/lib.sh"
st_need_root "pii"
NS=st-pii
st_ns $NS
st_nginx $NS 80 serverA || { fail "pii: nginx"; exit 0; }

out=$("$ST_BIN" --redact-mode hash -p 80 --input-pcap /dev/null 2>&1); rc=$?
[ $rc = 2 ] && [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q SHADOWTAP_REDACT_KEY &&
	pass "pii: --redact-mode hash without a key exits 2 with one line naming SHADOWTAP_REDACT_KEY" ||
	fail "pii: hash without key: exit $rc: $out"

export SHADOWTAP_REDACT_KEY=test-key-0123
SECRETS="Bearer-s3cr3t-AAA sess-77c0ffee QTOKEN998877 hunter2-pw 4111111111111111 jane.doe@example.com"
in_ns() { ip netns exec $NS "$@"; }
# one agent run: the three requests, their three records in $ST_TMP/$1.ndjson
pii_run() {
	local name=$1
	shift
	st_agent $NS "$ST_TMP/$name.log" -i lo -p 80 --pin-dir /sys/fs/bpf/st-pii -o "$ST_TMP/$name.ndjson" \
		--redact-mode hash --redact-json '$..password' --redact-query token \
		--redact-pattern credit-card --redact-pattern email -v "$@" || return 1
	in_ns curl -s -o /dev/null -H 'Authorization: Bearer-s3cr3t-AAA' -H 'Cookie: sess-77c0ffee' \
		"http://127.0.0.1/a?token=QTOKEN998877&page=2"
	in_ns curl -s -o /dev/null -H 'Cookie: sess-77c0ffee' -H 'Content-Type: application/json' \
		--data '{"user":{"name":"kept-name","password":"hunter2-pw"},"n":1}' "http://127.0.0.1/login"
	in_ns curl -s -o /dev/null -H 'Content-Type: text/plain' \
		--data 'pay with 4111111111111111 and mail jane.doe@example.com, order kept-order-17' "http://127.0.0.1/note"
	for _ in $(seq 50); do [ "$(wc -l < "$ST_TMP/$name.ndjson" 2>/dev/null)" -ge 3 ] && break; sleep 0.1; done
	st_agent_stop
}
pii_run agent --output-file "$ST_TMP/rec.stap" ||
	{ fail "pii: agent did not start: $(tail -n 3 "$ST_TMP/agent.log")"; exit 0; }
mv "$ST_TMP/agent.ndjson" "$ST_TMP/records.ndjson"
n=$(wc -l < "$ST_TMP/records.ndjson")
[ "$n" = 3 ] || fail "pii: $n records for 3 requests"
leaked=""
for s in $SECRETS; do
	grep -qF "$s" "$ST_TMP/records.ndjson" "$ST_TMP/agent.log" && leaked="$leaked $s"
done
[ -z "$leaked" ] && pass "pii: no planted secret in the records or the log (header, query, JSON field, card, e-mail)" ||
	fail "pii: leaked:$leaked"
python3 - "$ST_TMP/records.ndjson" <<'PY'
import json, re, sys
recs = {json.loads(l)["url"]["path"]: json.loads(l) for l in open(sys.argv[1])}
a, l, t = recs.get("/a"), recs.get("/login"), recs.get("/note")
ok = True
def check(cond, what):
    global ok
    if not cond:
        ok = False
        print("FAIL: pii: " + what)
tok = re.compile(r"^REDACTED-[0-9a-f]{16}$")
check(a and tok.match(a["http"]["request"]["headers"]["cookie"]), "cookie is not a token")
check(a and l and a["http"]["request"]["headers"]["cookie"] == l["http"]["request"]["headers"]["cookie"],
      "the same cookie gave different tokens")
check(a and tok.match(a["http"]["request"]["headers"]["authorization"]), "authorization is not a token")
check(a and re.match(r"^token=REDACTED-[0-9a-f]{16}&page=2$", a["url"]["query"]), "query: %s" % (a and a["url"]["query"]))
body = json.loads(l["http"]["request"]["body"]["content"]) if l else {}
check(tok.match(str(body.get("user", {}).get("password", ""))) and body["user"]["name"] == "kept-name" and body["n"] == 1,
      "JSON body: %s" % body)
tc = t["http"]["request"]["body"]["content"] if t else ""
check(re.match(r"^pay with REDACTED-[0-9a-f]{16} and mail REDACTED-[0-9a-f]{16}, order kept-order-17$", tc), "text body: " + tc)
sent = "pay with 4111111111111111 and mail jane.doe@example.com, order kept-order-17"
check(t and t["http"]["request"]["body"]["bytes"] == len(sent), "body.bytes is no longer the wire length")
if ok:
    print("PASS: pii: tokens correlate (same cookie, same token), other values kept byte for byte")
PY

# ---- recordings: the same rules, by default ----
pii_run gor --output-file "$ST_TMP/rec.gor" --output-format gor ||
	fail "pii: agent (gor recording) did not start: $(tail -n 3 "$ST_TMP/gor.log")"
leaked=""
for s in $SECRETS; do
	for f in "$ST_TMP/rec.stap" "$ST_TMP/rec.gor" "$ST_TMP/gor.log"; do
		[ -s "$f" ] && grep -qaF "$s" "$f" && leaked="$leaked $s(${f##*/})"
	done
done
[ -s "$ST_TMP/rec.stap" ] && [ -s "$ST_TMP/rec.gor" ] && [ -z "$leaked" ] &&
	pass "pii: no planted secret in the .stap and .gor recordings (header, query, JSON field, card, e-mail)" ||
	fail "pii: recordings: leaked:$leaked (sizes $(wc -c < "$ST_TMP/rec.stap" 2>/dev/null)/$(wc -c < "$ST_TMP/rec.gor" 2>/dev/null))"
"$ST_BIN" convert "$ST_TMP/rec.stap" "$ST_TMP/rec-stap.ndjson" 2> "$ST_TMP/convert.log" ||
	fail "pii: convert rec.stap: $(tail -1 "$ST_TMP/convert.log")"
python3 - "$ST_TMP/records.ndjson" "$ST_TMP/rec-stap.ndjson" "$ST_TMP/rec.gor" <<'PY'
import json, re, sys
tok = r"REDACTED-[0-9a-f]{16}"
recs = {json.loads(l)["url"]["path"]: json.loads(l) for l in open(sys.argv[1])}
conv = {json.loads(l)["url"]["path"]: json.loads(l) for l in open(sys.argv[2])}
ok = True
def check(cond, what):
    global ok
    if not cond:
        ok = False
        print("FAIL: pii: recordings: " + what)
a, l, t = conv.get("/a"), conv.get("/login"), conv.get("/note")
check(len(conv) == 3, "%d exchanges read back from the .stap" % len(conv))
check(a and re.match("^token=" + tok + "&page=2$", a["url"]["query"]), "stap query: %s" % (a and a["url"]["query"]))
body = json.loads(l["http"]["request"]["body"]["content"]) if l else {}
check(re.match("^" + tok + "$", str(body.get("user", {}).get("password", ""))) and body["user"]["name"] == "kept-name",
      "stap JSON body: %s" % body)
tc = t["http"]["request"]["body"]["content"] if t else ""
check(re.match("^pay with %s and mail %s, order kept-order-17$" % (tok, tok), tc), "stap text body: " + tc)
# the same tokens as the records: recordings and records correlate
check(l and recs["/login"]["http"]["request"]["body"]["content"] == l["http"]["request"]["body"]["content"],
      "stap JSON body differs from the record's")
# .gor: every request still frames (Content-Length = the body that follows) and
# the cookie's token is the record's
raw = open(sys.argv[3], "rb").read().decode("utf-8", "replace")
entries = [e for e in raw.split("\n\U0001f435\U0001f648\U0001f649\n") if e.strip()]
reqs = [e.split("\n", 1)[1] for e in entries if e.startswith("1 ")]
check(len(reqs) == 3, "%d requests in the .gor" % len(reqs))
for r in reqs:
    head, _, b = r.partition("\r\n\r\n")
    m = re.search(r"(?im)^content-length: *(\d+)", head)
    if m:
        check(int(m.group(1)) == len(b.encode()), "gor framing: Content-Length %s for a %d-byte body: %r" % (m.group(1), len(b.encode()), b[:80]))
cookie = re.findall(r"(?im)^cookie: *(\S+)", raw)
check(cookie and set(cookie) == {recs["/a"]["http"]["request"]["headers"]["cookie"]},
      "gor cookie tokens %s, record's %s" % (set(cookie), recs["/a"]["http"]["request"]["headers"]["cookie"]))
if ok:
    print("PASS: pii: recordings read back with the records' tokens (query, JSON field, card, e-mail, cookie) and frame (Content-Length)")
PY
pii_run keep --output-file "$ST_TMP/keep.gor" --output-format gor --record-pii ||
	fail "pii: agent (--record-pii) did not start: $(tail -n 3 "$ST_TMP/keep.log")"
kept=""
for s in QTOKEN998877 hunter2-pw 4111111111111111 jane.doe@example.com; do
	grep -qaF "$s" "$ST_TMP/keep.gor" && kept="$kept $s"
done
if [ "$kept" = " QTOKEN998877 hunter2-pw 4111111111111111 jane.doe@example.com" ] &&
   ! grep -qaF Bearer-s3cr3t-AAA "$ST_TMP/keep.gor" && ! grep -qaF hunter2-pw "$ST_TMP/keep.ndjson" &&
   grep -q -- "--record-pii: .* will hold bodies and query strings as captured" "$ST_TMP/keep.log"; then
	pass "pii: --record-pii keeps bodies and query strings in the recording (said at start), headers still redacted, records still redacted"
else
	fail "pii: --record-pii: kept '$kept', warning: $(grep -c -- --record-pii "$ST_TMP/keep.log")"
fi
