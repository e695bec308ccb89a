#!/usr/bin/env bash
# README claims that no other test reaches, each checked live on lo in one namespace
# (nginx serverA :80 on IPv4 and IPv6, nginx serverB1 :81 and serverB2 :84):
#  - several -r targets: each client connection goes to one target, every request
#    reaches exactly one of them, both targets are used
#  - live IPv6 capture (::1)
#  - redaction: Authorization, Cookie, Proxy-Authorization and the response's
#    Set-Cookie by default; --redact-header adds one; --no-redact keeps them all
#  - --stats N prints counters every N s; SIGUSR1 prints them once
#  - a reused keep-alive connection that closes under a request: sent again once
#  - --max-held-bytes: past the bound a raw request is not kept (counted)
#  - --output-file-interval rotates recordings by time, losing nothing
#  - --input-loop replays a recording over and over
#  - the reconnect back-off: with serverB down, the connection attempts seen on the
#    wire (tcpdump: SYNs to serverB's port) follow 100 ms doubling to 1 s; a serverB
#    that comes back is used again within 1 s
#  - socket mode with -i all captures an interface created after the start
. "$(dirname "$0")/lib.sh"
st_need_root "README claims"
NS=st-claims
PIN=/sys/fs/bpf/shadowtap-test-claims
D=$ST_ROOT/tests/integration
N=${CLAIMS_REQUESTS:-2000}
FAULT_PID=

for t in nginx python3 curl; do
	command -v $t >/dev/null || { skip "claims ($t not installed)"; exit 0; }
done
TCPDUMP_PID=
trap '[ -n "$FAULT_PID" ] && kill "$FAULT_PID" 2>/dev/null; [ -n "$TCPDUMP_PID" ] && kill "$TCPDUMP_PID" 2>/dev/null
	ip netns del st-claims-c 2>/dev/null; rm -rf "$PIN"-*; st_cleanup' EXIT

st_ns $NS
st_nginx $NS 80 serverA 'listen [::1]:80; add_header Set-Cookie "sid=s3cr3t-cookie";' ||
	{ fail "claims: serverA nginx did not start"; exit 0; }
st_nginx $NS 81 serverB1 || { fail "claims: serverB1 did not start"; exit 0; }
st_nginx $NS 84 serverB2 || { fail "claims: serverB2 did not start"; exit 0; }

agent() { # name args...: live agent on lo (AGENT_IF) in the namespace
	local name=$1; shift
	if ! st_agent $NS "$ST_TMP/$name.log" -i "${AGENT_IF:-lo}" -p 80 -o "$ST_TMP/$name.ndjson" --pin-dir "$PIN-$name" "$@"; then
		fail "$name: agent did not start ($(tail -2 "$ST_TMP/$name.log" | tr '\n' ' '))"
		return 1
	fi
}
in_ns() { ip netns exec $NS "$@"; }
# secret_curl URL [curl args]: one request carrying every header the README redacts
secret_curl() {
	local u=$1; shift
	in_ns curl -sS -o /dev/null --max-time 10 -H 'Authorization: Bearer s3cr3t-auth' \
		-H 'Cookie: sid=s3cr3t-cookie' -H 'Proxy-Authorization: Basic s3cr3t-proxy' \
		-H 'X-Secret: s3cr3t-custom' "$@" "$u"
}
# headers NDJSON PATH-PREFIX: "name=value" lines of the record's request and response headers
headers() {
	python3 - "$1" "$2" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if not r.get("url", {}).get("original", "").startswith(sys.argv[2]):
        continue
    for side in ("request", "response"):
        for k, v in r.get("http", {}).get(side, {}).get("headers", {}).items():
            print("%s:%s=%s" % (side, k, v))
    print("source %s" % r.get("source", {}).get("ip"))
    break
PY
}
# redacted NDJSON PREFIX WANT-REDACTED WANT-KEPT: check header values
redacted() {
	local h n bad=""
	h=$(headers "$1" "$2")
	[ -n "$h" ] || { echo "no record for $2"; return 1; }
	for n in $3; do grep -qx "$n=\[REDACTED\]" <<<"$h" || bad="$bad $n not redacted;"; done
	for n in $4; do grep -q "^$n=.*s3cr3t" <<<"$h" || bad="$bad $n not kept;"; done
	[ -z "$bad" ] || { echo "$bad"; return 1; }
}
DEFAULT_REDACTED="request:authorization request:cookie request:proxy-authorization response:set-cookie"

# 1. two targets, IPv6, default redaction, --stats
if agent multi -r http://127.0.0.1:81 -r http://127.0.0.1:84 --stats 1; then
	in_ns python3 "$D/http_client.py" --host 127.0.0.1 --port 80 -n "$N" -c 8 \
		--manifest "$ST_TMP/multi.manifest" 2>"$ST_TMP/multi.client.err" ||
		fail "multi: client failed ($(tail -1 "$ST_TMP/multi.client.err"))"
	secret_curl "http://[::1]:80/v6/secret" -g
	st_poll 30 st_lines_ge "$ST_TMP/multi.ndjson" $((N + 1))
	sleep 2.2 # two more --stats periods, so at least two blocks are due
	st_agent_stop
	[ "$ST_AGENT_RC" = 0 ] || fail "multi: agent exit code $ST_AGENT_RC"
	python3 - "$ST_TMP/multi.manifest" "$ST_TMP/serverB1.access.log" "$ST_TMP/serverB2.access.log" "$N" <<'PY'
import collections, json, re, sys
man, b1, b2, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sent = {"%d-%d" % (m["conn"], m["i"]) for m in map(json.loads, open(man))}
seen = collections.Counter()
where = collections.defaultdict(set)
per = []
for tgt, path in (("b1", b1), ("b2", b2)):
    c = 0
    for l in open(path):
        m = re.search(r'"([0-9]+-[0-9]+)"$', l.strip())
        if m and m.group(1) in sent:
            seen[m.group(1)] += 1
            where[m.group(1).split("-")[0]].add(tgt)
            c += 1
    per.append(c)
once = len(sent) == n and all(seen[i] == 1 for i in sent)
print(("PASS: " if once else "FAIL: ") + "multi: with two -r targets every request reached exactly one "
      "(%d sent, %d seen, %d not once)" % (len(sent), sum(seen.values()), sum(1 for i in sent if seen[i] != 1)))
split = [c for c, t in where.items() if len(t) != 1]
print(("PASS: " if not split and all(per) else "FAIL: ") +
      "multi: each client connection went to one target, both targets used (serverB1 %d, serverB2 %d, %d split)"
      % (per[0], per[1], len(split)))
PY
	[ $? = 0 ] || fail "multi: the check itself failed"
	h=$(headers "$ST_TMP/multi.ndjson" /v6/)
	if grep -qx 'source ::1' <<<"$h"; then
		pass "ipv6: request over ::1 captured live (source.ip ::1)"
	else
		fail "ipv6: no record with source.ip ::1 ($(head -c 200 <<<"$h"))"
	fi
	if why=$(redacted "$ST_TMP/multi.ndjson" /v6/ "$DEFAULT_REDACTED" "request:x-secret"); then
		pass "redaction: Authorization, Cookie, Proxy-Authorization and Set-Cookie redacted by default, others kept"
	else
		fail "redaction: defaults ($why)"
	fi
	k=$(grep -c '^--- shadowtap stats:' "$ST_TMP/multi.log")
	if [ "$k" -ge 2 ] && grep -q '^--- shadowtap exit:' "$ST_TMP/multi.log"; then
		pass "stats: --stats 1 printed $k periodic blocks before the exit summary"
	else
		fail "stats: --stats 1 printed $k periodic blocks"
	fi
fi

# 2. --redact-header, SIGUSR1
if agent extra --redact-header X-Secret; then
	secret_curl "http://127.0.0.1:80/extra/secret"
	st_poll 10 st_lines_ge "$ST_TMP/extra.ndjson" 1
	before=$(grep -c '^--- shadowtap stats:' "$ST_TMP/extra.log")
	kill -USR1 "$ST_AGENT_PID"
	if st_poll 10 sh -c "grep -q '^--- shadowtap stats:' '$ST_TMP/extra.log'" && [ "$before" = 0 ] &&
		kill -0 "$ST_AGENT_PID" 2>/dev/null && grep -q '^http: requests=1 ' "$ST_TMP/extra.log"; then
		pass "stats: SIGUSR1 prints the counters once (http: requests=1) and the agent keeps running"
	else
		fail "stats: SIGUSR1 (blocks before $before; $(grep -m1 '^http:' "$ST_TMP/extra.log"))"
	fi
	st_agent_stop
	if why=$(redacted "$ST_TMP/extra.ndjson" /extra/ "$DEFAULT_REDACTED request:x-secret" ""); then
		pass "redaction: --redact-header X-Secret redacts it too"
	else
		fail "redaction: --redact-header ($why)"
	fi
fi

# 3. --no-redact
if agent noredact --no-redact; then
	secret_curl "http://127.0.0.1:80/noredact/secret"
	st_poll 10 st_lines_ge "$ST_TMP/noredact.ndjson" 1
	st_agent_stop
	if why=$(redacted "$ST_TMP/noredact.ndjson" /noredact/ "" \
		"request:authorization request:cookie request:proxy-authorization response:set-cookie request:x-secret"); then
		pass "redaction: --no-redact keeps every header value"
	else
		fail "redaction: --no-redact ($why)"
	fi
fi

# 4. serverB's first connection goes stale: it is closed under the second request
# with nothing answered. What was written on it is sent again once, on a new
# connection, and succeeds (GET: idempotent)
in_ns python3 "$D/replay/fault_server.py" --port 85 --mode close-second --log "$ST_TMP/close.log" &
FAULT_PID=$!
st_poll 20 sh -c "ip netns exec $NS ss -Hltn 'sport = :85' | grep -q ." || fail "retry: fault server did not listen"
if agent retry -r http://127.0.0.1:85 --replay-connections 1; then
	urls=()
	for i in $(seq 1 10); do urls+=(-o /dev/null "http://127.0.0.1:80/retry/$i"); done
	in_ns curl -sS --max-time 20 "${urls[@]}" || fail "retry: curl failed"
	st_poll 20 st_lines_ge "$ST_TMP/retry.ndjson" 10
	st_agent_stop
	ok=$(grep -c '"replay":{[^}]*"status_code":200' "$ST_TMP/retry.ndjson")
	retries=$(grep -oE 'retries=[0-9]+' "$ST_TMP/retry.log" | tail -1 | cut -d= -f2)
	if [ "$ok" = 10 ] && [ "${retries:-0}" -ge 1 ]; then
		pass "retry: 10 requests answered though serverB closed a reused connection under them ($retries retried)"
	else
		fail "retry: $ok of 10 answered, retries=${retries:-?} ($(grep -o '"error":"[^"]*"' "$ST_TMP/retry.ndjson" | sort | uniq -c | tr '\n' ' '))"
	fi
fi

# 5. --max-held-bytes: a 1 MiB POST does not fit in 256 KiB
head -c 1048576 /dev/urandom > "$ST_TMP/big.bin"
if agent held -r http://127.0.0.1:81 --max-held-bytes 256K; then
	in_ns curl -sS -o /dev/null --max-time 20 --data-binary @"$ST_TMP/big.bin" http://127.0.0.1:80/held/big || fail "held: curl failed"
	in_ns curl -sS -o /dev/null --max-time 20 http://127.0.0.1:80/held/small || fail "held: curl failed"
	st_poll 20 st_lines_ge "$ST_TMP/held.ndjson" 2
	st_agent_stop
	grep -E '^(http|replay):' "$ST_TMP/held.log" | sed 's/^/    held /'
	# the claim: held bytes stay under the bound; the raw request that did not fit is
	# not kept (counted as raw_truncated), so it is not replayed, while the record
	# still counts the whole body; a small request is replayed as usual
	python3 - "$ST_TMP/held.ndjson" "$ST_TMP/held.log" <<'PY'
import json, re, sys
recs = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    recs[r.get("url", {}).get("original")] = r
big, small = recs.get("/held/big", {}), recs.get("/held/small", {})
b = big.get("http", {}).get("request", {}).get("body", {})
log = open(sys.argv[2]).read()
st = lambda k: int((re.findall(r"^http: .*\b%s=(\d+)" % k, log, re.M) or ["-1"])[-1])
ok = (b.get("bytes") == 1048576 and "skipped" in big.get("replay", {})
      and st("raw_truncated") >= 1 and 0 < st("held_peak") <= 256 * 1024
      and small.get("replay", {}).get("status_code") == 200)
print(("PASS: " if ok else "FAIL: ") + "held: --max-held-bytes 256K bounds held bytes (peak %d); the 1 MiB "
      "request is counted whole (%s bytes), its raw copy not kept (raw_truncated=%d) so not replayed "
      "(%s); a small request is (%s)" % (st("held_peak"), b.get("bytes"), st("raw_truncated"),
      big.get("replay"), small.get("replay", {}).get("status_code")))
PY
	[ $? = 0 ] || fail "held: the check itself failed"
fi

# 6. --output-file-interval 1: traffic for ~3.5 s lands in several files, all of it
if agent rot --output-file "$ST_TMP/rot-%Y%m%d-%H%M%S.stap" --output-file-interval 1; then
	for i in $(seq 1 35); do
		in_ns curl -sS -o /dev/null --max-time 5 "http://127.0.0.1:80/rot/$i" || fail "rot: curl failed"
		sleep 0.1
	done
	st_agent_stop
	files=$(ls "$ST_TMP"/rot-*.stap 2>/dev/null | wc -l)
	written=$(grep -oE 'recording: submitted=[0-9]+ written=[0-9]+' "$ST_TMP/rot.log" | grep -oE '[0-9]+$')
	if [ "$files" -ge 3 ] && [ "${written:-0}" = 35 ]; then
		pass "rotation: --output-file-interval 1 wrote $files files over ~3.5 s, all 35 exchanges"
	else
		fail "rotation: $files files, ${written:-?} of 35 written"
	fi
	# 7. --input-loop: the 35-request recording replayed over and over for 3 s
	b0=$(wc -l < "$ST_TMP/serverB1.access.log")
	timeout 60 ip netns exec $NS "$ST_BIN" --input-file "$ST_TMP/rot-*.stap" --input-loop --replay-speed max \
		-r http://127.0.0.1:81 -o /dev/null --exit-after 3 2>"$ST_TMP/loop.log"; rc=$?
	got=$(( $(grep -c '"GET /rot/' "$ST_TMP/serverB1.access.log") ))
	if [ "$rc" = 0 ] && [ "$got" -ge 70 ]; then
		pass "input-loop: the 35-request recording reached serverB $got times over (more than one pass) until --exit-after"
	else
		fail "input-loop: exit $rc, serverB got $got requests from a 35-request recording (want >= 70; before: $b0 lines)"
	fi
fi

# 8. reconnect back-off. Nothing listens on :86 at first, so every connect is refused
# at once; a request arrives every ~20 ms, so an attempt is made as soon as the
# back-off allows. The wire (tcpdump: SYNs to :86, SYN-ACKs from it) is the oracle.
# Attempt rounds are SYNs more than 30 ms apart (the first round may open several
# connections together). Tolerances, fixed before any run: gap k is within
# [want - 10 ms, want + 300 ms] for want = 100, 200, 400, 800, 1000, 1000, and 1000 for
# every later gap; serverB started mid-run is connected to (SYN-ACK) at the next
# attempt, at most 1000 + 300 ms after the last refused one.
if ! command -v tcpdump >/dev/null; then
	skip "backoff: tcpdump not installed"
else
	in_ns tcpdump -i lo -n -tt -l -U 'tcp port 86 and tcp[tcpflags] & tcp-syn != 0' \
		> "$ST_TMP/syn.txt" 2> "$ST_TMP/tcpdump.err" &
	TCPDUMP_PID=$!
	st_poll 20 grep -q 'listening on' "$ST_TMP/tcpdump.err" || fail "backoff: tcpdump did not start"
	# rounds_ge N: at least N attempt rounds on the wire so far
	rounds_ge() {
		python3 - "$ST_TMP/syn.txt" "$1" <<'PY'
import sys
r = []
for l in open(sys.argv[1]):
    if l[:1].isdigit() and "> 127.0.0.1.86:" in l:
        t = float(l.split()[0])
        if not r or t - r[-1] > 0.030:
            r.append(t)
sys.exit(0 if len(r) >= int(sys.argv[2]) else 1)
PY
	}
	if agent backoff -r http://127.0.0.1:86; then
		in_ns python3 - "$ST_TMP/backoff.client" <<'PY' &
import http.client, sys, time
h, end, i = http.client.HTTPConnection("127.0.0.1", 80, timeout=10), time.time() + 9, 0
with open(sys.argv[1], "w") as out:
    while time.time() < end:
        h.request("GET", "/backoff/%d" % i)
        h.getresponse().read()
        i += 1
        time.sleep(0.02)
    out.write("%d\n" % i)
PY
		BCLIENT=$!
		# serverB comes up once the back-off has been at its cap for a while
		st_poll 30 rounds_ge 8 || fail "backoff: fewer than 8 connection attempts in 30 s"
		T0=$(date +%s.%N)
		st_nginx $NS 86 serverB3 || fail "backoff: serverB3 did not start"
		T1=$(date +%s.%N)
		wait $BCLIENT || fail "backoff: client failed"
		st_poll 20 st_lines_ge "$ST_TMP/backoff.ndjson" "$(cat "$ST_TMP/backoff.client")"
		st_agent_stop
		kill "$TCPDUMP_PID" 2>/dev/null; wait "$TCPDUMP_PID" 2>/dev/null; TCPDUMP_PID=
		python3 - "$ST_TMP/syn.txt" "$T0" "$T1" "$ST_TMP/serverB3.access.log" <<'PY'
import sys
syn, ack = [], []
for l in open(sys.argv[1]):
    if not l[:1].isdigit():
        continue
    t = float(l.split()[0])
    (syn if "> 127.0.0.1.86:" in l else ack if "127.0.0.1.86 >" in l else []).append(t)
t0, t1 = float(sys.argv[2]), float(sys.argv[3])
first_ack = ack[0] if ack else float("inf")
rounds = []
for t in syn:
    if t > first_ack:
        break
    if not rounds or t - rounds[-1] > 0.030:
        rounds.append(t)
gaps = [round((b - a) * 1000) for a, b in zip(rounds, rounds[1:])]
refused = gaps[:-1] if ack else gaps
want = [100, 200, 400, 800, 1000, 1000]
ok = len(refused) >= len(want) and all(w - 10 <= g <= w + 300 for g, w in zip(refused, want)) and \
    all(990 <= g <= 1300 for g in refused[len(want):])
print(("PASS: " if ok else "FAIL: ") + "backoff: with serverB refusing, connection attempts on the wire "
      "came %s ms apart (want 100, 200, 400, 800, then 1000 each, -10/+300 ms)" % refused)
served = sum(1 for l in open(sys.argv[4]) if "/backoff/" in l)
last = gaps[-1] if ack and gaps else -1
ok = bool(ack) and 0 <= last <= 1300 and t0 <= first_ack and served > 0
print(("PASS: " if ok else "FAIL: ") + "backoff: serverB back: connected to at the next attempt, %d ms after "
      "the last refused one (want <= 1300), %.0f ms after nginx began starting; it then served %d replayed "
      "requests" % (last, (first_ack - t0) * 1000 if ack else -1, served))
PY
		[ $? = 0 ] || fail "backoff: the check itself failed"
	fi
fi

# 9. socket mode, -i all: an interface created after the start is captured. A second
# namespace (the client) is joined to this one by a veth made after the agent is up.
if AGENT_IF=all agent hotplug --capture socket; then
	ip netns add st-claims-c && ip -n st-claims-c link set lo up
	st_link $NS hp0 198.18.77.1/24 st-claims-c hp1 198.18.77.2/24
	st_poll 10 ip netns exec st-claims-c curl -s -o /dev/null --max-time 1 http://198.18.77.1:80/probe
	for i in $(seq 1 20); do
		ip netns exec st-claims-c curl -sS -o /dev/null --max-time 5 "http://198.18.77.1:80/hotplug/$i" ||
			fail "hotplug: curl failed"
	done
	got() { [ "$(grep -c '"original":"/hotplug/' "$ST_TMP/hotplug.ndjson")" -ge 20 ]; }
	st_poll 20 got
	st_agent_stop
	n=$(grep -c '"original":"/hotplug/' "$ST_TMP/hotplug.ndjson")
	from=$(grep '"original":"/hotplug/' "$ST_TMP/hotplug.ndjson" | grep -c '"ip":"198.18.77.2"')
	if [ "$n" = 20 ] && [ "$from" = 20 ]; then
		pass "hotplug: socket mode -i all captured all 20 requests over a veth created after the start"
	else
		fail "hotplug: socket mode -i all: $n of 20 records ($from from 198.18.77.2) over the new veth"
	fi
	ip netns del st-claims-c
fi
exit 0
