#!/usr/bin/env bash
# README claims about the Elasticsearch/OpenSearch sink that test_es.sh does not reach,
# against a real OpenSearch (scripts/opensearch) in one namespace:
#  1. credentials and TLS, through nginx terminating TLS with a certificate from a CA
#     this test makes, and checking the Authorization header (Basic for one user,
#     ApiKey for one key) before proxying to OpenSearch:
#     - ES_USERNAME/ES_PASSWORD, their _FILE forms, ES_API_KEY and ES_API_KEY_FILE with
#       --es-ca: every record of a pcap becomes a document (oracle: tshark's request
#       count); nginx's log shows the credential form that arrived
#     - a wrong password: refused (nginx logs 401), counted, reported, every record
#       spooled; a later run with the right one delivers them all, no duplicate
#     - no --es-ca: certificate verification fails with a message naming it, nothing
#       reaches nginx's HTTP layer, records spooled; --es-insecure delivers
#     - the agent detects OpenSearch (its log names the distribution and version)
#  2. a SIGKILL while the cluster is up loses at most what arrived in the last batch
#     interval: the oracle is the client's own log of answered requests with times;
#     the kill is asserted to land mid-delivery (documents indexed, client still
#     sending), and every request answered before kill - (batch interval + slack) is a
#     document exactly once.
. "$(dirname "$0")/lib.sh"
st_need_root "es claims"
NS=st-esclaims
OS_PORT=19210
TLS_PORT=19443
OS_URL=http://127.0.0.1:$OS_PORT
TLS_URL=https://127.0.0.1:$TLS_PORT
PCAP=$ST_ROOT/../shared/corpus/zeek-http/206_example_c.pcap
EMPTY_PCAP=$ST_ROOT/../shared/corpus/zeek-http/bro.org-filtered.pcap
CHECK="python3 $ST_ROOT/tests/integration/es_check.py"
PIN=/sys/fs/bpf/shadowtap-test-esclaims
export OPENSEARCH_HOME=$ST_TMP/opensearch OPENSEARCH_PORT=$OS_PORT OPENSEARCH_FLAVOR=opensearch
OS_STARTED=

for t in nginx openssl python3 curl java mvn; do
	command -v $t >/dev/null || { skip "es claims ($t not installed)"; exit 0; }
done
[ -f "$PCAP" ] || { skip "es claims (corpus pcap $PCAP missing)"; exit 0; }
es_cleanup() {
	[ -n "$OS_STARTED" ] && ip netns exec $NS "$ST_ROOT/scripts/opensearch" stop >/dev/null 2>&1
	rm -rf "$PIN"
	st_cleanup
}
trap es_cleanup EXIT
in_ns() { ip netns exec $NS "$@"; }
es_stat() { grep -o "[ :]$1=[0-9]*" "$2" | tail -1 | cut -d= -f2; }

st_ns $NS
if ! in_ns "$ST_ROOT/scripts/opensearch" start > "$ST_TMP/os-start.log" 2>&1; then
	fail "es claims: OpenSearch did not start ($(tail -3 "$ST_TMP/os-start.log" | tr '\n' ' '))"
	exit 0
fi
OS_STARTED=1

# --- the CA, the server certificate (for 127.0.0.1) and a second, foreign CA --------
C=$ST_TMP/pki
mkdir -p "$C"
(
	cd "$C" || exit 1
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=st-test-ca
	openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1
	printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > ext.cnf
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext.cnf
) > "$ST_TMP/pki.log" 2>&1 || { fail "es claims: openssl could not make the test CA"; exit 0; }

USER=st-writer PASS='s3cret-pw' KEY=c3Q6a2V5LWZvci10ZXN0cw==
BASIC=$(printf '%s:%s' "$USER" "$PASS" | base64 -w0)
# nginx: TLS with the test certificate; one Basic credential and one API key pass,
# anything else is 401. $st_cred names the form that arrived, for the oracle.
dir=$ST_TMP/nginx-esfront
mkdir -p "$dir"
nginx_conf "$dir" "
	log_format esf '\$status \$st_cred \"\$request\"';
	map \$http_authorization \$st_cred {
		\"Basic $BASIC\" basic;
		\"ApiKey $KEY\" apikey;
		\"\" none;
		default wrong;
	}
	server {
		listen 127.0.0.1:$TLS_PORT ssl;
		ssl_certificate $C/srv.pem;
		ssl_certificate_key $C/srv.key;
		access_log $ST_TMP/esfront.access.log esf;
		client_max_body_size 200m;
		location / {
			if (\$st_cred !~ ^(basic|apikey)\$) { return 401 '{\"error\":\"unauthorized\"}'; }
			proxy_pass $OS_URL;
			# bodies stream through: nginx's worker cannot write temp files in \$ST_TMP
			proxy_request_buffering off;
			proxy_buffering off;
			proxy_http_version 1.1;
			proxy_set_header Connection \"\";
		}
	}"
if ! in_ns nginx -c "$dir/nginx.conf" -p "$dir"; then
	fail "es claims: the TLS front did not start"; exit 0
fi
st_poll 10 test -s "$dir/nginx.pid"
ST_PIDS+=("$(cat "$dir/nginx.pid")")
if ! in_ns curl -sf --cacert "$C/ca.pem" -u "$USER:$PASS" -o /dev/null "$TLS_URL/"; then
	fail "es claims: the TLS front does not answer with the right credential"; exit 0
fi

N=$("$ST_BIN" --input-pcap "$PCAP" -p 80 -o - 2>/dev/null | wc -l)
if command -v tshark >/dev/null; then
	NW=$(tshark -r "$PCAP" -Y http.request 2>/dev/null | wc -l)
	[ "$NW" = "$N" ] || { fail "es claims: the pcap holds $NW requests (tshark), the agent made $N records"; N=$NW; }
fi

# run NAME PCAP [env and agent args...]: one pcap run into index st-NAME-* through the
# front; env assignments (A=B) come first
run() {
	local name=$1 pcap=$2 envs=()
	shift 2
	while [ $# -gt 0 ] && [[ $1 == *=* && $1 != -* ]]; do envs+=("$1"); shift; done
	FRONT_AT=$(wc -l < "$ST_TMP/esfront.access.log")
	in_ns env -u ES_USERNAME -u ES_PASSWORD -u ES_API_KEY "${envs[@]}" \
		timeout 120 "$ST_BIN" --input-pcap "$pcap" -p 80 -o /dev/null -e "$TLS_URL" \
		--es-index "st-$name" --spool-dir "$ST_TMP/spool-$name" "$@" 2> "$ST_TMP/$name.log"
}
docs() { in_ns $CHECK count "$OS_URL" "st-$1-*" 2>/dev/null | grep -oE '[0-9]+' | head -1; }
# front FORM: bulk requests of the last run that nginx passed on (2xx) with FORM
front() { tail -n +$((FRONT_AT + 1)) "$ST_TMP/esfront.access.log" | grep -cE "^2[0-9][0-9] $1 \"POST /_bulk"; }
delivered() { # NAME FORM WHAT: N documents, the front saw FORM
	local d f
	d=$(docs "$1") f=$(front "$2")
	if [ "${d:-0}" = "$N" ] && [ "$f" -ge 1 ] && [ "$(es_stat indexed "$ST_TMP/$1.log")" = "$N" ]; then
		pass "es auth: $3: all $N records are documents (the TLS front passed $f bulk requests with $2 credentials)"
	else
		fail "es auth: $3: ${d:-?} of $N documents, front passed $f bulk requests with $2 ($(grep -m2 'es:' "$ST_TMP/$1.log" | tr '\n' ' '))"
	fi
}

printf '%s\n' "$USER" > "$ST_TMP/user.txt"
printf '%s\n' "$PASS" > "$ST_TMP/pass.txt"
printf '%s\n' "$KEY" > "$ST_TMP/key.txt"
chmod 600 "$ST_TMP"/*.txt

run basic "$PCAP" ES_USERNAME=$USER ES_PASSWORD=$PASS --es-ca "$C/ca.pem"
delivered basic basic "ES_USERNAME/ES_PASSWORD over TLS with --es-ca"
if grep -q "es: $TLS_URL is opensearch 2\." "$ST_TMP/basic.log"; then
	pass "es detect: OpenSearch detected ($(grep -o 'is opensearch [0-9.]*' "$ST_TMP/basic.log"))"
else
	fail "es detect: OpenSearch not named ($(grep -m1 ' is ' "$ST_TMP/basic.log"))"
fi
run basicfile "$PCAP" ES_USERNAME_FILE="$ST_TMP/user.txt" ES_PASSWORD_FILE="$ST_TMP/pass.txt" --es-ca "$C/ca.pem"
delivered basicfile basic "ES_USERNAME_FILE/ES_PASSWORD_FILE"
run apikey "$PCAP" ES_API_KEY=$KEY --es-ca "$C/ca.pem"
delivered apikey apikey "ES_API_KEY (Authorization: ApiKey)"
run apikeyfile "$PCAP" ES_API_KEY_FILE="$ST_TMP/key.txt" --es-ca "$C/ca.pem"
delivered apikeyfile apikey "ES_API_KEY_FILE"

# a wrong password: refused, counted, reported, spooled; the right one later delivers
run wrong "$PCAP" ES_USERNAME=$USER ES_PASSWORD=not-it --es-ca "$C/ca.pem"
rc=$?
refused=$(tail -n +$((FRONT_AT + 1)) "$ST_TMP/esfront.access.log" | grep -cE '^401 wrong ')
d=$(docs wrong)
sf=$(es_stat setup_failures "$ST_TMP/wrong.log") sp=$(es_stat spooled "$ST_TMP/wrong.log")
if [ "$rc" = 0 ] && [ "$refused" -ge 1 ] && [ "${d:-0}" = 0 ] && [ "${sf:-0}" -ge 1 ] && [ "$sp" = "$N" ] &&
	grep -q "es: $TLS_URL not ready (http 401)" "$ST_TMP/wrong.log"; then
	pass "es auth: a wrong password is refused (front: $refused x 401), counted (setup_failures=$sf), reported ('$(grep -o 'not ready ([^)]*)' "$ST_TMP/wrong.log" | head -1)'), all $sp records spooled"
else
	fail "es auth: wrong password: exit $rc, front 401s $refused, documents ${d:-?}, setup_failures=${sf:-?}, spooled=${sp:-?} of $N ($(grep -m2 'es:' "$ST_TMP/wrong.log" | tr '\n' ' '))"
fi
mv "$ST_TMP/wrong.log" "$ST_TMP/wrong-1.log"
run wrong "$EMPTY_PCAP" ES_USERNAME=$USER ES_PASSWORD=$PASS --es-ca "$C/ca.pem"
d=$(docs wrong)
ex=$(in_ns $CHECK count "$OS_URL" "st-wrong-*" 2>&1)
if [ "${d:-0}" = "$N" ] && [ "$(es_stat indexed "$ST_TMP/wrong.log")" = "$N" ]; then
	pass "es auth: the spooled records are delivered once the password is right: $d of $N, nothing lost"
else
	fail "es auth: after the right password ${d:-?} of $N documents ($ex; $(grep -m3 'es:' "$ST_TMP/wrong.log" | tr '\n' ' '))"
fi

# TLS: no CA given; the test CA is not in the system store
before=$(wc -l < "$ST_TMP/esfront.access.log")
run noca "$PCAP" ES_USERNAME=$USER ES_PASSWORD=$PASS
after=$(wc -l < "$ST_TMP/esfront.access.log")
msg=$(grep -m1 "es: $TLS_URL not ready" "$ST_TMP/noca.log")
sp=$(es_stat spooled "$ST_TMP/noca.log")
if grep -qi 'certificate' <<<"$msg" && [ "$after" = "$before" ] && [ "$sp" = "$N" ] && [ "$(docs noca)" = 0 ]; then
	pass "es tls: without --es-ca verification fails ('$msg'), no request reached the front, $sp records spooled"
else
	fail "es tls: without --es-ca: '$msg', front lines $before -> $after, spooled=${sp:-?} of $N"
fi
run insecure "$PCAP" ES_USERNAME=$USER ES_PASSWORD=$PASS --es-insecure
delivered insecure basic "--es-insecure without a CA"
# a CA that did not sign the server certificate is refused as well
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$C/other.key" -out "$C/other.pem" -days 2 \
	-subj /CN=other-ca > /dev/null 2>&1
run otherca "$PCAP" ES_USERNAME=$USER ES_PASSWORD=$PASS --es-ca "$C/other.pem"
if grep -qi "not ready.*certificate" "$ST_TMP/otherca.log" && [ "$(docs otherca)" = 0 ]; then
	pass "es tls: --es-ca with a CA that did not sign the server's certificate is refused"
else
	fail "es tls: a foreign --es-ca: $(grep -m2 'es:' "$ST_TMP/otherca.log" | tr '\n' ' ')"
fi

# --- 2. SIGKILL with the cluster up ----------------------------------------------------
BATCH_MS=500
SLACK_MS=1500 # capture, pairing and one bulk round trip on a busy 2-core machine
st_nginx $NS 80 serverA || { fail "es kill: serverA did not start"; exit 0; }
if ! st_agent $NS "$ST_TMP/kill.log" -i lo -p 80 -o /dev/null --pin-dir "$PIN" -e "$OS_URL" \
	--es-index st-kill --es-batch-ms $BATCH_MS --spool-dir "$ST_TMP/spool-kill"; then
	fail "es kill: agent did not start ($(tail -2 "$ST_TMP/kill.log" | tr '\n' ' '))"
	exit 0
fi
# the client: 4 keep-alive connections, ~200 requests/s for 12 s; one line per answered
# request with the wall-clock time of its answer
in_ns python3 - "$ST_TMP/kill.client" <<'PY' &
import http.client, sys, threading, time
out, lock, end = open(sys.argv[1], "w", buffering=1), threading.Lock(), time.time() + 12
def conn(c):
    h, i = http.client.HTTPConnection("127.0.0.1", 80, timeout=10), 0
    while time.time() < end:
        h.request("GET", "/kill/%d-%d" % (c, i))
        r = h.getresponse(); r.read()
        if r.status == 200:
            with lock:
                out.write("%d-%d %.3f\n" % (c, i, time.time()))
        i += 1
        time.sleep(0.02)
ts = [threading.Thread(target=conn, args=(c,)) for c in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
PY
CLIENT=$!
# kill once documents are searchable and the client is still sending
kill_ready() {
	local d
	d=$(in_ns $CHECK count "$OS_URL" "st-kill-*" 2>/dev/null | grep -oE '[0-9]+' | head -1)
	[ "${d:-0}" -ge 200 ]
}
st_poll 60 kill_ready
sleep 1.$((RANDOM % 10))
pre=$(wc -l < "$ST_TMP/kill.client")
kill -9 "$ST_AGENT_PID"
T_KILL=$(date +%s.%N)
wait "$ST_AGENT_PID" 2>/dev/null
sleep 1
post=$(wc -l < "$ST_TMP/kill.client")
wait $CLIENT
crc=$?
in_ns curl -s -XPOST "$OS_URL/st-kill-*/_refresh" > /dev/null
in_ns python3 - "$OS_URL" "$ST_TMP/kill.client" "$T_KILL" "$BATCH_MS" "$SLACK_MS" "$pre" "$post" "$crc" <<'PY'
import collections, json, sys, urllib.request
url, client, t_kill, batch, slack, pre, post, crc = sys.argv[1], sys.argv[2], float(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
sent = {}
for l in open(client):
    k, t = l.split()
    sent[k] = float(t)
def q(body):
    r = urllib.request.Request(url + "/st-kill-*/_search", json.dumps(body).encode(),
                               {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(r, timeout=60))
res = q({"size": 10000, "_source": ["url.original"], "query": {"match_all": {}}})
seen = collections.Counter(h["_source"]["url"]["original"].split("/kill/")[1]
                           for h in res["hits"]["hits"])
before = [k for k, t in sent.items() if t < t_kill]
bound = t_kill - (batch + slack) / 1000.0
old = [k for k in before if sent[k] < bound]
lost_old = [k for k in old if k not in seen]
lost = [k for k in before if k not in seen]
dups = [k for k, n in seen.items() if n > 1]
mid = len(seen) > 0 and post > pre and crc == 0
print(("PASS: " if mid else "FAIL: ") + "es kill: the SIGKILL landed mid-delivery (%d documents indexed, the "
      "client answered %d requests before and %d more after the kill; client exit %d)" %
      (len(seen), pre, post - pre, crc))
print(("PASS: " if not lost_old and not dups else "FAIL: ") +
      "es kill: every request answered more than %d ms (batch %d + slack %d) before the SIGKILL is a "
      "document exactly once (%d of %d; lost: %d, all from the last %.2f s: %s; duplicates: %d)" %
      (batch + slack, batch, slack, len(old) - len(lost_old), len(old), len(lost),
       max([t_kill - sent[k] for k in lost] or [0]), lost_old[:5], len(dups)))
PY
