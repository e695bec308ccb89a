#!/usr/bin/env bash
# HTTPS both ways: --tls openssl captures serverA (Debian's nginx on 443, dynamically
# linked to libssl3) and the agent replays to an https:// serverB (nginx with TLS on
# 8443, certificate made here, proxying to tls_sink.py, which logs each body's
# SHA-256). Oracles: serverB's nginx log (once, per-connection order), the sink's log
# (bodies byte-identical), the clients' own counts (curl, http_client.py's manifest,
# ab). Covered:
#   1. without --replay-ca the self-signed serverB fails verification: every request
#      is a counted replay error ("tls: certificate verify failed"), serverB gets none;
#   2. with --replay-ca: curl keep-alive (200 URLs, one serverB connection, in order),
#      the record-checking client over TLS 1.3 (pipelined, POSTs up to 1 MiB);
#   3. ApacheBench -k over https, POST bodies of 1 KiB, 64 KiB and 1 MiB;
#   4. a second HTTPS server (Python's ssl) started after the agent, on another
#      --tls-port, is captured without a restart;
#   5. plain HTTP on port 80 through the same agent (both sources in one ring).
. "$(dirname "$0")/lib.sh"
st_need_root "tls replay"
NS=st-tlsr
N=${TLS_REPLAY_REQUESTS:-600}

if [ ! -e /sys/bus/event_source/devices/uprobe/type ]; then skip "tls replay: kernel has no uprobes"; exit 0; fi
if ! ldd "$(command -v nginx)" 2>/dev/null | grep -q 'libssl\.so'; then
	skip "tls replay: nginx is not dynamically linked to libssl"; exit 0
fi
for tool in openssl curl ab; do
	command -v $tool >/dev/null || { skip "tls replay: $tool not installed (scripts/setup.sh)"; exit 0; }
done

# serverB's certificate names 127.0.0.1, so with --replay-ca it verifies
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ST_TMP/key.pem" -out "$ST_TMP/cert.pem" \
	-days 2 -subj /CN=shadowtap-test -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
	2>/dev/null || { fail "tls replay: cannot make a certificate"; exit 0; }
TLSCONF="ssl_certificate $ST_TMP/cert.pem; ssl_certificate_key $ST_TMP/key.pem; ssl_protocols TLSv1.2 TLSv1.3;"
PROXY="proxy_pass http://127.0.0.1:8091; proxy_http_version 1.1; proxy_set_header Connection \"\";"

st_ns $NS
st_nginx $NS 8080 serverA "listen 443 ssl reuseport backlog=4096; $TLSCONF" \
	|| { fail "tls replay: nginx (https) did not start"; exit 0; }
st_nginx $NS 80 plainA || { fail "tls replay: plain serverA did not start"; exit 0; }
st_nginx $NS 8090 serverB "listen 8443 ssl; $TLSCONF client_body_buffer_size 2m;
	location /r/ { $PROXY } location /ab/ { $PROXY }" \
	|| { fail "tls replay: serverB (https) did not start"; exit 0; }
sink=$ST_TMP/sink.log
: > "$sink"
ip netns exec $NS python3 "$ST_ROOT/tests/integration/tls_sink.py" --port 8091 --log "$sink" &
ST_PIDS+=($!)
blog=$ST_TMP/serverB.access.log
st_poll 10 ip netns exec $NS curl -skf -o /dev/null https://127.0.0.1:8443/r/ready \
	|| { fail "tls replay: serverB's sink did not answer"; exit 0; }
BLOG0=$(wc -l < "$blog")
SINK0=$(wc -l < "$sink")

# --- 0. an https:// target on a captured --tls-port of this host would loop ----------
if "$ST_BIN" -i lo -p 80 --tls openssl --tls-port 443,8443 -r https://127.0.0.1:8443 -o /dev/null \
	2>"$ST_TMP/loop.err"; then
	fail "tls replay: a replay target on a captured --tls-port was accepted"
else
	grep -q -- "--tls-port): it would capture its own replays" "$ST_TMP/loop.err" \
		&& pass "tls replay: a replay target on a captured --tls-port is refused" \
		|| fail "tls replay: refused without the reason ($(head -1 "$ST_TMP/loop.err"))"
fi

# --- 1. verification on by default: a self-signed serverB is refused --------------
rec=$ST_TMP/verify.ndjson log=$ST_TMP/agent-verify.log
if ! st_agent $NS "$log" -i lo -p 80 --tls openssl --tls-port 443 -r https://127.0.0.1:8443 \
	-o "$rec" --pin-dir /sys/fs/bpf/shadowtap-test-tlsr; then
	fail "tls replay: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"; exit 0
fi
st_poll 20 grep -q "tls: attached to .*libssl" "$log"
urls=()
for i in $(seq 1 10); do urls+=("https://127.0.0.1/vf/$i"); done
ip netns exec $NS curl -sk --http1.1 "${urls[@]}" >/dev/null
st_poll 30 st_lines_ge "$rec" 10
st_agent_stop
nerr=$(grep -c '"error":"tls: certificate verify failed"' "$rec")
[ "$nerr" = 10 ] && pass "tls replay: without --replay-ca all 10 records say replay.error 'tls: certificate verify failed'" \
	|| fail "tls replay: $nerr of 10 records carry the verification error ($(wc -l < "$rec") records)"
grep -q "certificate verify failed: self-signed certificate" "$log" \
	&& pass "tls replay: the failure is reported once with its reason" \
	|| fail "tls replay: no verification message in the log"
grep -qE '^replay: failed .*other=10( |$)' "$log" && grep -qE '^replay: tls .*verify_failures=[1-9]' "$log" \
	&& pass "tls replay: counted (failed other=10, verify_failures > 0)" \
	|| fail "tls replay: not counted ($(grep -E '^replay: (failed|tls)' "$log" | tr '\n' ' '))"
[ "$(grep -c ' "GET /vf/' "$blog")" = 0 ] && pass "tls replay: serverB got none of them" \
	|| fail "tls replay: serverB got requests over an unverified connection"

# --- 2.-5. with --replay-ca ----------------------------------------------------------
rec=$ST_TMP/tls.ndjson log=$ST_TMP/agent.log
if ! st_agent $NS "$log" -i lo -p 80 --tls openssl --tls-port 443,8444 -r https://127.0.0.1:8443 \
	--replay-ca "$ST_TMP/cert.pem" -o "$rec" --pin-dir /sys/fs/bpf/shadowtap-test-tlsr --stats 5; then
	fail "tls replay: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"; exit 0
fi
st_poll 20 grep -q "tls: attached to .*libssl" "$log" || { fail "tls replay: libssl not attached"; exit 0; }

REC_AT=0 BLOG_AT=$(wc -l < "$blog") SINK_AT=$(wc -l < "$sink")
# phase NAME RECORDS BLOG: wait for that many more records and serverB log lines, then
# cut this phase's records, serverB lines and sink lines into their own files
phase() {
	local name=$1 n=$2 nb=$3
	st_poll 90 st_lines_ge "$rec" $((REC_AT + n))
	st_poll 60 st_lines_ge "$blog" $((BLOG_AT + nb))
	sleep 0.5
	tail -n +$((REC_AT + 1)) "$rec" > "$ST_TMP/$name.rec"
	tail -n +$((BLOG_AT + 1)) "$blog" > "$ST_TMP/$name.blog"
	tail -n +$((SINK_AT + 1)) "$sink" > "$ST_TMP/$name.sink"
	REC_AT=$((REC_AT + $(wc -l < "$ST_TMP/$name.rec")))
	BLOG_AT=$((BLOG_AT + $(wc -l < "$ST_TMP/$name.blog")))
	SINK_AT=$((SINK_AT + $(wc -l < "$ST_TMP/$name.sink")))
}
check() { python3 "$ST_ROOT/tests/integration/tls_check.py" "$@"; }

# 2a. curl: 200 URLs on one keep-alive connection -> one serverB TLS connection, in order
urls=()
for i in $(seq 1 200); do urls+=("https://127.0.0.1/curl/$i"); done
ip netns exec $NS curl -sk --http1.1 "${urls[@]}" >/dev/null 2>"$ST_TMP/curl.err" \
	&& pass "tls replay curl: 200 URLs on one connection" || fail "tls replay curl: curl failed"
phase curl 200 200
check --name "tls replay curl" --kind curl --records "$ST_TMP/curl.rec" --blog "$ST_TMP/curl.blog" \
	--expect 200 --prefix /curl/

# 2b. the record-checking client over TLS 1.3: pipelined connections, POSTs to 1 MiB
man=$ST_TMP/client.manifest
if ip netns exec $NS python3 "$ST_ROOT/tests/integration/http_client.py" --host 127.0.0.1 \
	--port 443 --tls 1.3 -n "$N" -c 8 --pipelined 2 --manifest "$man" 2>"$ST_TMP/client.err"; then
	pass "tls replay client: sent $N requests"
else
	fail "tls replay client: failed ($(tail -2 "$ST_TMP/client.err" | tr '\n' ' '))"
fi
phase client "$N" "$N"
python3 "$ST_ROOT/tests/integration/check_records.py" --manifest "$man" \
	--records "$ST_TMP/client.rec" --name "tls replay client" --expect "$N"
check --name "tls replay client" --kind client --records "$ST_TMP/client.rec" \
	--blog "$ST_TMP/client.blog" --expect "$N"
python3 "$ST_ROOT/tests/integration/tls_body_check.py" --name "tls replay client" --kind client \
	--sink "$ST_TMP/client.sink" --manifest "$man"

# 3. ApacheBench -k over https: POST bodies split over many TLS records and partial reads
for size in 1024 65536 1048576; do
	n=$(( size >= 1048576 ? 20 : (size >= 65536 ? 100 : 300) ))
	head -c $size /dev/urandom > "$ST_TMP/body-$size"
	ip netns exec $NS ab -k -n $n -c 4 -p "$ST_TMP/body-$size" -T application/octet-stream \
		https://127.0.0.1/ab/$size > "$ST_TMP/ab-$size.out" 2>&1
	done_n=$(awk '/^Complete requests:/ {print $3}' "$ST_TMP/ab-$size.out")
	failed_n=$(awk '/^Failed requests:/ {print $3}' "$ST_TMP/ab-$size.out")
	ka_n=$(awk '/^Keep-Alive requests:/ {print $3}' "$ST_TMP/ab-$size.out")
	if [ "$done_n" = $n ] && [ "$failed_n" = 0 ] && [ "${ka_n:-0}" -gt 0 ]; then
		pass "tls replay ab $size: $n POSTs answered, $ka_n on kept-alive connections"
	else
		fail "tls replay ab $size: ab says complete=$done_n failed=$failed_n keep-alive=$ka_n"
	fi
	phase ab-$size $n $n
	python3 - "$ST_TMP/ab-$size.rec" $n $size <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n, size = int(sys.argv[2]), int(sys.argv[3])
mine = [r for r in recs if r.get("url", {}).get("original") == "/ab/%d" % size]
good = [r for r in mine if r.get("capture", {}).get("complete")
        and r["http"]["request"]["body"]["bytes"] == size
        and r["http"].get("response", {}).get("status_code") == 200
        and r.get("replay", {}).get("status_code") == 200
        and r.get("capture", {}).get("source") == "openssl"]
ok = len(mine) == n and len(good) == n and len(recs) == n
print(("PASS: " if ok else "FAIL: ") + "tls replay ab %d: %d records, each complete with its %d B body, "
      "serverA's and serverB's 200" % (size, n, size)
      + ("" if ok else " (%d records, %d for the URL, %d good)" % (len(recs), len(mine), len(good))))
EOF
	python3 "$ST_ROOT/tests/integration/tls_body_check.py" --name "tls replay ab $size" --kind ab \
		--sink "$ST_TMP/ab-$size.sink" --target /ab/$size --file "$ST_TMP/body-$size" --expect $n
done

# 4. a second HTTPS server, started now, on the other --tls-port
ip netns exec $NS python3 "$ST_ROOT/tests/integration/tls_sink.py" --port 8444 \
	--log "$ST_TMP/second.log" --cert "$ST_TMP/cert.pem" --key "$ST_TMP/key.pem" &
ST_PIDS+=($!)
st_poll 10 ip netns exec $NS curl -skf -o /dev/null https://127.0.0.1:8444/warmup \
	|| fail "tls replay second: the Python https server did not answer"
# the new process maps the libssl already attached (a uprobe is per file, so its
# SSL_set_fd is seen at once); the warm-up request is its own phase
phase warmup 1 1
urls=()
for i in $(seq 1 20); do urls+=("https://127.0.0.1:8444/second/$i"); done
ip netns exec $NS curl -sk --http1.1 "${urls[@]}" >/dev/null \
	&& pass "tls replay second: 20 URLs on one connection to the new server" \
	|| fail "tls replay second: curl failed"
phase second 20 20
check --name "tls replay second server" --kind curl --records "$ST_TMP/second.rec" \
	--blog "$ST_TMP/second.blog" --expect 20 --prefix /second/

# 5. plain HTTP through the same agent: the packet source beside the openssl one
pman=$ST_TMP/plain.manifest
if ip netns exec $NS python3 "$ST_ROOT/tests/integration/http_client.py" --host 127.0.0.1 \
	--port 80 -n "$N" -c 8 --pipelined 2 --manifest "$pman" 2>"$ST_TMP/plain.err"; then
	pass "tls replay plain: sent $N requests to port 80"
else
	fail "tls replay plain: client failed ($(tail -2 "$ST_TMP/plain.err" | tr '\n' ' '))"
fi
phase plain "$N" "$N"
python3 "$ST_ROOT/tests/integration/check_records.py" --manifest "$pman" \
	--records "$ST_TMP/plain.rec" --name "tls replay plain (with --tls on)" --expect "$N"
n_pkt=$(grep -c '"source":"packet"' "$ST_TMP/plain.rec")
[ "$n_pkt" = "$N" ] && pass "tls replay plain: all $N records say capture.source packet" \
	|| fail "tls replay plain: $n_pkt of $N records say capture.source packet"

st_agent_stop
[ "$ST_AGENT_RC" = 0 ] && pass "tls replay: SIGINT drains and exits 0" || fail "tls replay: agent exit code $ST_AGENT_RC"
grep -E '^(tls|replay: tls|replay: failed|replay: conn)' "$log" | tail -4 | sed 's/^/    /'
grep -qE '^replay: failed timeout=0 connection_refused=0 connection_reset=0 malformed_response=0 other=0' "$log" \
	&& pass "tls replay: no replay failed" || fail "tls replay: replay failures ($(grep '^replay: failed' "$log" | tail -1))"
grep -qE '^replay: tls .*resumed=[1-9]' "$log" \
	&& pass "tls replay: serverB sessions resumed across reconnects" \
	|| fail "tls replay: no session resumed ($(grep '^replay: tls' "$log" | tail -1))"
if grep -qE '^tls: .*unmapped_calls=0 .*gap_bytes=0 ' "$log"; then
	pass "tls replay: every SSL call mapped to its connection, no byte lost"
else
	fail "tls replay: unmapped calls or lost bytes ($(grep '^tls:' "$log" | tail -1))"
fi
