#!/usr/bin/env bash
# Issue 16 item 9: a message with more header fields than --max-headers (default 100)
# is recorded with its method, URL and status, replayed byte for byte and flagged
# (capture.headers_over_limit); with fewer it is not flagged. Real nginx as serverA
# and serverB, curl sending 50, 150 and 1,000 header fields (curl's own Host,
# User-Agent and Accept included; nginx 1.22 answers 1,000 with 200 and 1,001 with
# 400 whatever large_client_header_buffers allows, measured here). Oracles: curl's
# status, both nginx logs (request length and the last header's value).
. "$(dirname "$0")/lib.sh"
st_need_root "header count"
NS=st-hd
PIN=/sys/fs/bpf/shadowtap-test-hd
hd_cleanup() { st_cleanup; rm -rf "$PIN"; }
trap hd_cleanup EXIT

st_ns $NS
# nginx's default (4 buffers of 8k) is enough bytes for these heads; a little room
big="large_client_header_buffers 8 16k;"
if ! st_nginx $NS 80 serverA "$big" || ! st_nginx $NS 81 serverB "$big"; then
	fail "headers: nginx did not start"; exit 0
fi
rec=$ST_TMP/hd.ndjson log=$ST_TMP/hd.agent.log
if ! st_agent $NS "$log" -i lo -p 80 -r http://127.0.0.1:81 -o "$rec" --pin-dir "$PIN"; then
	fail "headers: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"; exit 0
fi

# hdrs N ID: N header lines for curl -H @file, the last one X-St-Id: ID
hdrs() {
	local i f=$ST_TMP/h-$2
	for i in $(seq 1 $(($1 - 1))); do echo "X-Hdr-$i: value-$i"; done > "$f"
	echo "X-St-Id: $2" >> "$f"
	echo "$f"
}
head -c 1000 /dev/urandom | base64 -w0 | head -c 1000 > "$ST_TMP/body"
declare -A want=([h50]=GET [h150]=GET [h1000]=GET [p150]=POST)
for id in h50 h150 h1000 p150; do
	n=${id#?}
	args=(-H @"$(hdrs $((n - 3)) "$id")")	# curl adds Host, User-Agent, Accept
	[ "$id" = p150 ] && args+=(--data-binary @"$ST_TMP/body")
	code=$(ip netns exec $NS curl -s -o /dev/null -w '%{http_code}' "${args[@]}" "http://127.0.0.1/$id")
	[ "$code" = 200 ] && pass "headers: nginx answers $id (${want[$id]} with $n headers) with 200" \
		|| fail "headers: nginx answered $id with $code"
done
st_poll 20 st_lines_ge "$rec" 4
st_agent_stop

python3 - "$rec" <<'PY'
import json, sys
recs = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "url" in r:
        recs[r["url"].get("original")] = r
for url, method, flagged, body in (("/h50", "GET", False, 0), ("/h150", "GET", True, 0),
                                   ("/h1000", "GET", True, 0), ("/p150", "POST", True, 1000)):
    r = recs.get(url)
    if not r:
        print("FAIL: headers: no record for %s (records: %s)" % (url, sorted(recs)))
        continue
    h, c = r.get("http", {}), r.get("capture", {})
    got = (h.get("request", {}).get("method"), h.get("response", {}).get("status_code"),
           r.get("replay", {}).get("status_code"), bool(c.get("headers_over_limit")),
           c.get("malformed"), h.get("request", {}).get("body", {}).get("bytes", 0))
    exp = (method, 200, 200, flagged, None, body)
    print(("PASS: headers: %s recorded as %s, status 200, replayed 200, headers_over_limit %s%s"
           % (url, method, flagged, ", body %d bytes" % body if body else ""))
          if got == exp else "FAIL: headers: %s: got %s, want %s" % (url, got, exp))
PY

# byte for byte: serverB saw each request with serverA's length and its last header
for id in h50 h150 h1000 p150; do
	a=$(grep "\"$id\"\$" "$ST_TMP/serverA.access.log" | awk '{print $(NF-2)}')
	b=$(grep "\"$id\"\$" "$ST_TMP/serverB.access.log" | awk '{print $(NF-2)}')
	if [ -n "$a" ] && [ "$a" = "$b" ]; then
		pass "headers: serverB got $id once, $b bytes like serverA, last header intact"
	else
		fail "headers: $id at serverA [$a] serverB [$b] (request length; X-St-Id last)"
	fi
done
grep -qE 'headers_over_limit=3\b' "$log" && pass "headers: counted (http: headers_over_limit=3)" \
	|| fail "headers: counter ($(grep -oE 'headers_over_limit=[0-9]+' "$log" | tail -1))"
