#!/usr/bin/env bash
# Personal data: planted secrets in a header, a query parameter, a JSON field and a
# text body (a card number, an e-mail address) appear nowhere in the records or the
# agent's log with --redact-mode hash, --redact-json, --redact-query, --redact-pattern;
# the hashed tokens of two requests with the same cookie are equal, and other values
# stay as sent. The client's own requests are the oracle. Also: hash mode without a
# key refuses to start with one line.
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
st_agent $NS "$ST_TMP/agent.log" -i lo -p 80 --pin-dir /sys/fs/bpf/st-pii -o "$ST_TMP/records.ndjson" \
	--redact-mode hash --redact-json '$..password' --redact-query token \
	--redact-pattern credit-card --redact-pattern email -v ||
	{ fail "pii: agent did not start: $(tail -n 3 "$ST_TMP/agent.log")"; exit 0; }
SECRETS="Bearer-s3cr3t-AAA sess-77c0ffee QTOKEN998877 hunter2-pw 4111111111111111 jane.doe@example.com"
in_ns() { ip netns exec $NS "$@"; }
in_ns curl -s -o /dev/null -H 'Authorization: Bearer-s3cr3t-AAA' -H 'Cookie: sess-77c0ffee' \
	"http://127.0.0.1/a?token=QTOKEN998877&page=2"
in_ns curl -s -o /dev/null -H 'Cookie: sess-77c0ffee' -H 'Content-Type: application/json' \
	--data '{"user":{"name":"kept-name","password":"hunter2-pw"},"n":1}' "http://127.0.0.1/login"
in_ns curl -s -o /dev/null -H 'Content-Type: text/plain' \
	--data 'pay with 4111111111111111 and mail jane.doe@example.com, order kept-order-17' "http://127.0.0.1/note"
for _ in $(seq 50); do [ "$(wc -l < "$ST_TMP/records.ndjson" 2>/dev/null)" -ge 3 ] && break; sleep 0.1; done
st_agent_stop
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
