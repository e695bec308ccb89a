#!/usr/bin/env bash
# HTTPS capture with --tls openssl: Debian's nginx (dynamically linked to libssl3)
# serves HTTPS on 443 in a network namespace with a certificate made here; serverB
# (nginx) on 81 plain HTTP. Clients: the record-checking client over TLS 1.2 and 1.3
# (keep-alive, pipelined connections, POST bodies 0 B .. 1 MiB), curl reusing one
# connection for 200 URLs, wrk over https. Every request appears once as a record
# (capture.source "openssl", tls.established) with its response, and serverB's log
# shows each replayed request once, in per-connection order. Then an nginx reload
# (new workers) is captured without restarting the agent.
. "$(dirname "$0")/lib.sh"
st_need_root "tls capture"
NS=st-tls
N=${TLS_REQUESTS:-2000}

if [ ! -e /sys/bus/event_source/devices/uprobe/type ]; then skip "tls: kernel has no uprobes"; exit 0; fi
if ! ldd "$(command -v nginx)" 2>/dev/null | grep -q 'libssl\.so'; then
	skip "tls: nginx is not dynamically linked to libssl"; exit 0
fi
for tool in openssl curl; do
	command -v $tool >/dev/null || { skip "tls: $tool not installed"; exit 0; }
done

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ST_TMP/key.pem" -out "$ST_TMP/cert.pem" \
	-days 2 -subj /CN=shadowtap-test 2>/dev/null || { fail "tls: cannot make a certificate"; exit 0; }

st_ns $NS
# serverA: HTTPS only. st_nginx's listen line gets " ssl" through the extra config
# being placed after it: give a second listen with ssl and leave the first on 8080.
st_nginx $NS 8080 serverA "listen 443 ssl reuseport backlog=4096; ssl_certificate $ST_TMP/cert.pem; ssl_certificate_key $ST_TMP/key.pem; ssl_protocols TLSv1.2 TLSv1.3;" \
	|| { fail "tls: nginx (https) did not start"; exit 0; }
st_nginx $NS 81 serverB || { fail "tls: serverB did not start"; exit 0; }
NGINX_A_PID=$(cat "$ST_TMP/nginx-serverA/nginx.pid")

rec=$ST_TMP/tls.ndjson log=$ST_TMP/agent.log
if ! st_agent $NS "$log" -i lo -p 80 --tls openssl --tls-port 443 -r http://127.0.0.1:81 \
	-o "$rec" --pin-dir /sys/fs/bpf/shadowtap-test-tls --stats 5; then
	fail "tls: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"; exit 0
fi
if grep -q "tls: attached to .*libssl" "$log"; then
	pass "tls: found and attached the libssl nginx maps"
else
	fail "tls: libssl not attached ($(grep tls: "$log" | head -3 | tr '\n' ' '))"; exit 0
fi

# phase NAME COUNT: wait until COUNT more records and COUNT more serverB log lines
# have arrived, then cut this phase's records and serverB lines into their own files
REC_AT=0 BLOG_AT=0
blog=$ST_TMP/serverB.access.log
phase() {
	local name=$1 n=$2
	st_poll 60 st_lines_ge "$rec" $((REC_AT + n))
	st_poll 30 st_lines_ge "$blog" $((BLOG_AT + n))
	sleep 0.5
	tail -n +$((REC_AT + 1)) "$rec" > "$ST_TMP/$name.rec"
	tail -n +$((BLOG_AT + 1)) "$blog" > "$ST_TMP/$name.blog"
	REC_AT=$((REC_AT + $(wc -l < "$ST_TMP/$name.rec")))
	BLOG_AT=$((BLOG_AT + $(wc -l < "$ST_TMP/$name.blog")))
}
check() { python3 "$ST_ROOT/tests/integration/tls_check.py" "$@"; }

# 1. the record-checking client (keep-alive, 2 of 8 connections pipelined, POST
#    bodies up to 1 MiB): TLS 1.3, then TLS 1.2
for v in 1.3 1.2; do
	man=$ST_TMP/client-$v.manifest
	if ip netns exec $NS python3 "$ST_ROOT/tests/integration/http_client.py" --host 127.0.0.1 \
		--port 443 --tls $v -n "$N" -c 8 --pipelined 2 --manifest "$man" 2>"$ST_TMP/client-$v.err"; then
		pass "tls $v: client sent $N requests"
	else
		fail "tls $v: client failed ($(tail -2 "$ST_TMP/client-$v.err" | tr '\n' ' '))"
	fi
	phase "client-$v" "$N"
	python3 "$ST_ROOT/tests/integration/check_records.py" --manifest "$man" \
		--records "$ST_TMP/client-$v.rec" --name "tls $v" --expect "$N"
	check --name "tls $v" --kind client --records "$ST_TMP/client-$v.rec" \
		--blog "$ST_TMP/client-$v.blog" --expect "$N"
done

# 2. curl: one keep-alive connection for 200 URLs
urls=()
for i in $(seq 1 200); do urls+=("https://127.0.0.1/curl/$i"); done
ip netns exec $NS curl -sk --http1.1 "${urls[@]}" >/dev/null 2>"$ST_TMP/curl.err" \
	&& pass "tls curl: 200 URLs on one connection" || fail "tls curl: curl failed"
phase curl 200
check --name "tls curl" --kind curl --records "$ST_TMP/curl.rec" --blog "$ST_TMP/curl.blog" \
	--expect 200 --prefix /curl/

# 3. wrk over https, 32 connections (its count of answered requests is the oracle)
if command -v wrk >/dev/null; then
	ip netns exec $NS wrk -t2 -c32 -d3s https://127.0.0.1/wrk/x >"$ST_TMP/wrk.out" 2>&1
	WRK_N=$(awk '/requests in/ {print $1}' "$ST_TMP/wrk.out")
	if [ "${WRK_N:-0}" -gt 0 ]; then
		pass "tls wrk: $WRK_N requests over https"
		phase wrk "$WRK_N"
		check --name "tls wrk" --kind wrk --records "$ST_TMP/wrk.rec" --blog "$ST_TMP/wrk.blog" \
			--expect "$WRK_N" --prefix /wrk/ --slack 32
	else
		fail "tls wrk: no request answered ($(tail -2 "$ST_TMP/wrk.out" | tr '\n' ' '))"
	fi
else
	skip "tls wrk: wrk not installed"
fi

# 4. nginx reload: new worker processes, same libssl, agent not restarted
old_workers=$(pgrep -P "$NGINX_A_PID" | sort | tr '\n' ' ')
ip netns exec $NS nginx -c "$ST_TMP/nginx-serverA/nginx.conf" -p "$ST_TMP/nginx-serverA" -s reload 2>/dev/null
st_poll 10 bash -c "[ \"\$(pgrep -P $NGINX_A_PID | sort | tr '\n' ' ')\" != \"$old_workers\" ]"
sleep 0.5
ip netns exec $NS curl -sk --http1.1 https://127.0.0.1/curl/reload-1 https://127.0.0.1/curl/reload-2 >/dev/null
phase reload 2
check --name "tls reload" --kind curl --records "$ST_TMP/reload.rec" --blog "$ST_TMP/reload.blog" \
	--expect 2 --prefix /curl/reload-

st_agent_stop
[ "$ST_AGENT_RC" = 0 ] && pass "tls: SIGINT drains and exits 0" || fail "tls: agent exit code $ST_AGENT_RC"
grep -E '^(tls|tcp|http):' "$log" | tail -3 | sed 's/^/    /'
if grep -qE '^tls: .*unmapped_calls=0 .*gap_bytes=0 ' "$log"; then
	pass "tls: every SSL call mapped to its connection, no byte lost"
else
	fail "tls: unmapped calls or lost bytes ($(grep '^tls:' "$log" | tail -1))"
fi
