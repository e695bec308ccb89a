#!/usr/bin/env bash
# A hostile serverB and a hostile Elasticsearch (issue 15 item 2). Real nginx is
# serverA in one namespace, real curl the client in another over veth; shadowtap
# captures serverA's port and replays to a scripted serverB (tests/integration/fault/
# serverb.py, one port per behaviour) or writes to a scripted Elasticsearch
# (es_fault_server.py). For each behaviour, with limits fixed here before the run:
#   - bounded memory: the agent's VmHWM stays under HWM_MAX_KB
#   - bounded time: each record is written within the replay timeout plus MARGIN_S
#     of its request (stamped from outside by fault/tail_times.py)
#   - every affected record says why (replay.error names the cause)
#   - capture and serverA unaffected: every curl request answered 200 by serverA, in
#     nginx's log, and recorded with serverA's response.
# Elasticsearch faults then check the counters, that no record is lost (the fault
# server's documents after it turns healthy equal serverA's log) and the same memory
# bound. Prints each behaviour's VmHWM and time.
. "$(dirname "$0")/lib.sh"
st_need_root "hostile"
for t in nginx python3 curl; do
	command -v $t >/dev/null || { skip "hostile ($t not installed)"; exit 0; }
done
F=$ST_ROOT/tests/integration/fault
NS=st-ho-srv
CNS=st-ho-cli
ADDR=198.18.22.1
PIN=/sys/fs/bpf/shadowtap-test-hostile
BASE=8610                  # serverb.py ports: BASE + index of the behaviour
ESPORT=9291
TIMEOUT_MS=2000            # --replay-timeout
MARGIN_S=3                 # output flush and a busy machine
N=6                        # client requests per behaviour
# Memory: the agent's footprint with a well-behaved serverB (BPF ring mappings, thread
# stacks) is measured first (phase "b-ok", about 60 MB here); every hostile phase must
# stay within that plus HWM_SLACK_KB. A serverB connection holds at most an 80 KiB
# read buffer and a 64 KiB body; an ES answer is read up to 8 MiB + 4 KiB per
# document. Reading a hostile stream (a 10 MB header, a 300 MB error) goes past it.
HWM_SLACK_KB=$((12 * 1024))
HWM_MAX_KB=0               # set from b-ok
# The ES agent's footprint (curl, the bulk buffers) is measured the same way in phase
# es-ok; its hostile phases may add the 8 MiB answer cap twice (a buffer grows by
# copying) and 8 MiB more.
ES_SLACK_KB=$((24 * 1024))
T_START=$(date +%s)
FAULT_PIDS=()

cleanup_faults() {
	local p
	for p in "${FAULT_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$PIN"-*
}
trap 'cleanup_faults; st_cleanup' EXIT

listening() { ip netns exec $NS ss -Hltn "sport = :$1" | grep -q .; }

# agent_run NAME ARGS...: start the agent on serverA's port, and the record tailer
agent_run() {
	local name=$1; shift
	: > "$ST_TMP/$name.ndjson"
	if ! st_agent $NS "$ST_TMP/$name.agent.log" -i st-hoa0 -p 80 -o "$ST_TMP/$name.ndjson" \
		--pin-dir "$PIN-$name" "$@"; then
		fail "$name: agent did not start ($(tail -3 "$ST_TMP/$name.agent.log" | tr '\n' ' '))"
		return 1
	fi
	: > "$ST_TMP/$name.arrivals"
	python3 "$F/tail_times.py" "$ST_TMP/$name.ndjson" "$ST_TMP/$name.arrivals" &
	TAIL_PID=$!
	FAULT_PIDS+=("$TAIL_PID")
}

hwm_kb() { awk '/VmHWM/ {print $2}' /proc/"$ST_AGENT_PID"/status 2>/dev/null; }

# agent_stop NAME: VmHWM checked against the bound, SIGINT, exit code checked
agent_stop() {
	local name=$1 hwm
	hwm=$(hwm_kb)
	st_agent_stop
	kill "$TAIL_PID" 2>/dev/null
	[ "$ST_AGENT_RC" = 0 ] && pass "$name: SIGINT drains and exits 0" ||
		fail "$name: agent exit code $ST_AGENT_RC ($(tail -2 "$ST_TMP/$name.agent.log" | tr '\n' ' '))"
	if [ "$HWM_MAX_KB" = 0 ]; then
		HWM_MAX_KB=$(( ${hwm:-0} + HWM_SLACK_KB ))
		echo "    $name: footprint ${hwm:-?} kB: the bound for the hostile phases is $HWM_MAX_KB kB"
	elif [ "${hwm:-0}" -gt 0 ] && [ "$hwm" -le $HWM_MAX_KB ]; then
		pass "$name: agent memory bounded (VmHWM $hwm kB <= $HWM_MAX_KB kB)"
	else
		fail "$name: agent VmHWM ${hwm:-unknown} kB (bound $HWM_MAX_KB kB)"
	fi
	echo "    $name: vmhwm_kb=${hwm:-?}"
	grep -E '^(shadowtap: )?(replay|es):' "$ST_TMP/$name.agent.log" | sed "s/^/    $name /"
}

# curl_one NAME URL: one request on its own connection; "SENT-TIME URL CODE" logged
curl_one() {
	local t code
	t=$(date +%s.%N)
	code=$(ip netns exec $CNS curl -s -o /dev/null -m 10 -w '%{http_code}' "http://$ADDR$2")
	echo "$t $2 ${code:-000}" >> "$ST_TMP/$1.client"
}

# clients NAME PATH-PREFIX: N requests, each on its own connection, in parallel
clients() {
	local i pids=()
	for i in $(seq 1 $N); do curl_one "$1" "$2$i" & pids+=($!); done
	wait "${pids[@]}"   # not a bare wait: the agent and servers are children too
}

# clients_keepalive NAME PATH-PREFIX: N requests one after another on one connection
clients_keepalive() {
	local t args=() i
	for i in $(seq 1 $N); do args+=(-o /dev/null "http://$ADDR$2$i"); done
	t=$(date +%s.%N)
	ip netns exec $CNS curl -s -m 10 -w '%{url_effective} %{http_code}\n' "${args[@]}" |
		sed "s|^http://$ADDR|$t |" >> "$ST_TMP/$1.client"
}

st_ns $NS
st_ns $CNS
st_link $NS st-hoa0 $ADDR/24 $CNS st-hoc0 198.18.22.2/24
st_nginx $NS 80 serverA || { fail "hostile: serverA nginx did not start"; exit 0; }
ip netns exec $NS python3 "$F/serverb.py" --base $BASE --log "$ST_TMP/serverb.log" &
FAULT_PIDS+=($!)
st_poll 20 listening $((BASE + 9)) || { fail "hostile: serverb.py did not listen"; exit 0; }

# ---- serverB ----
# behaviour index errors-allowed [answers-ok] [keepalive] [retried]
# A behaviour whose requests may be sent twice (nothing came back and the request is
# idempotent, RFC 9110 9.2.2) gets two replay timeouts.
serverb_case() {
	local mode=$1 idx=$2 errors=$3 flags=${4:-} name=b-$1 t0 t1 max extra=()
	max=$(( TIMEOUT_MS / 1000 + MARGIN_S ))
	case $flags in *retried*) max=$(( 2 * TIMEOUT_MS / 1000 + MARGIN_S + 1 ));; esac
	case $flags in *answers*) extra+=(--answers);; esac
	case $flags in *some-error*) extra+=(--some-error);; esac
	agent_run "$name" -r "http://127.0.0.1:$((BASE + idx))" --replay-timeout $TIMEOUT_MS \
		--replay-connect-timeout 1000 || return
	t0=$(date +%s%N)
	case $flags in
	*keepalive*) clients_keepalive "$name" "/hostile/$mode/" ;;
	*) clients "$name" "/hostile/$mode/" ;;
	esac
	st_poll $((max + 5)) st_lines_ge "$ST_TMP/$name.arrivals" $N
	t1=$(date +%s%N)
	agent_stop "$name"
	python3 "$F/check_hostile.py" --name "$name" --prefix "/hostile/$mode/" \
		--client "$ST_TMP/$name.client" --nginx "$ST_TMP/serverA.access.log" \
		--records "$ST_TMP/$name.ndjson" --arrivals "$ST_TMP/$name.arrivals" \
		--errors "$errors" --max-seconds "$max" "${extra[@]}"
	echo "    $name: all records after $(( (t1 - t0) / 1000000 )) ms"
}

serverb_case ok              9 'none' answers
serverb_case garbage         0 'malformed response'
serverb_case chunked_forever 1 'timeout'
serverb_case trickle         2 'timeout'
serverb_case huge_length     3 'timeout'
serverb_case reset           4 'connection reset'
# serverB's early answer is taken for the request's own when it comes after the
# request was written (HTTP/1.1 cannot tell them apart); otherwise it is an error
serverb_case early           5 'connection reset|malformed response|response before request' answers,retried
serverb_case many_headers    6 'response head too large'
serverb_case long_header     7 'response head too large'
serverb_case pipeline_close  8 'connection reset' answers,keepalive,retried,some-error

# ---- Elasticsearch ----
# One agent writes to es_fault_server.py; each fault lasts until the agent has met it
# twice (tried and retried), then the server turns healthy and every record so far
# must be delivered. No record is indexed while a fault lasts.
ES_TIMEOUT_MS=3000
ESURL=http://127.0.0.1:$ESPORT
ip netns exec $NS python3 "$ST_ROOT/tests/integration/es_fault_server.py" $ESPORT &
FAULT_PIDS+=($!)
st_poll 20 listening $ESPORT || { fail "hostile: es_fault_server.py did not listen"; exit 0; }
es() { ip netns exec $NS curl -s -m 5 "$@"; }
es_state() { es "$ESURL/_state" | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
es_attempts_ge() { [ "$(es_state "s['requests'].get('bulk_$1', 0)")" -ge "$2" ]; }
es_docs_ge() { [ "$(es_state "s['docs']")" -ge "$1" ]; }
es_counter() { grep -o "[ :]$1=[0-9]*" "$ST_TMP/es.agent.log" | tail -1 | cut -d= -f2; }

if agent_run es -e "$ESURL" --spool-dir "$ST_TMP/spool" --es-batch-ms 200 \
	--es-timeout $ES_TIMEOUT_MS; then
	total=0
	for mode in ok huge nested endless extra wrong_ids trickle; do
		t0=$(date +%s%N)
		es -XPOST "$ESURL/_fault" -d "{\"mode\": \"$mode\", \"count\": 1000000, \"delay\": 1}" > /dev/null
		clients es "/hostile/es-$mode/"
		total=$((total + N))
		if [ $mode = ok ]; then
			st_poll 30 es_docs_ge $total
		elif st_poll 40 es_attempts_ge "$mode" 2; then
			pass "es-$mode: the agent met the fault and retried ($(es_state "s['requests']['bulk_$mode']") bulk requests)"
		else
			fail "es-$mode: the agent did not retry (bulk requests: $(es_state "s['requests']"))"
		fi
		hwm=$(hwm_kb)
		es -XPOST "$ESURL/_fault" -d '{"mode": "ok", "count": 0}' > /dev/null
		if [ $mode = ok ]; then
			ES_HWM_MAX_KB=$(( ${hwm:-0} + ES_SLACK_KB ))
			echo "    es-ok: footprint ${hwm:-?} kB: the bound for the hostile phases is $ES_HWM_MAX_KB kB"
		elif [ "${hwm:-0}" -gt 0 ] && [ "$hwm" -le $ES_HWM_MAX_KB ]; then
			pass "es-$mode: agent memory bounded (VmHWM $hwm kB <= $ES_HWM_MAX_KB kB)"
		else
			fail "es-$mode: agent VmHWM ${hwm:-unknown} kB (bound $ES_HWM_MAX_KB kB)"
		fi
		if st_poll 30 es_docs_ge $total; then
			pass "es-$mode: recovered: all $total records so far indexed once the server is healthy"
		else
			fail "es-$mode: $(es_state "s['docs']") of $total records indexed after recovery"
		fi
		echo "    es-$mode: vmhwm_kb=${hwm:-?} fault+recovery_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
	done
	HWM_MAX_KB=$ES_HWM_MAX_KB agent_stop es
	# every record (and no other) is a document: the ids are the records' event ids
	es_state "'\\n'.join(s['ids'])" | sort > "$ST_TMP/es.ids"
	python3 -c 'import json,sys
for l in open(sys.argv[1]):
    print(json.loads(l)["event"]["id"])' "$ST_TMP/es.ndjson" | sort > "$ST_TMP/es.rec_ids"
	nginx_n=$(grep -c '/hostile/es-' "$ST_TMP/serverA.access.log")
	if cmp -s "$ST_TMP/es.ids" "$ST_TMP/es.rec_ids" && [ "$(wc -l < "$ST_TMP/es.ids")" = "$nginx_n" ]; then
		pass "es: the $nginx_n requests in serverA's log are $nginx_n records and $nginx_n documents, ids equal"
	else
		fail "es: serverA logged $nginx_n, records $(wc -l < "$ST_TMP/es.rec_ids"), documents $(wc -l < "$ST_TMP/es.ids") (ids equal: $(cmp -s "$ST_TMP/es.ids" "$ST_TMP/es.rec_ids" && echo yes || echo no))"
	fi
	# what the agent read of each streamed answer, and how long it let it run
	cap=$(( (8 << 20) + 4096 * N + (8 << 20) ))   # the cap plus loopback socket buffers
	es_state "'\\n'.join('%s %d %s' % (x['mode'], x['bytes'], x['seconds']) for x in s['streams'])" |
	while read -r mode bytes secs; do
		case $mode in
		huge|endless)
			[ "$bytes" -le $cap ] && pass "es-$mode: the agent stopped reading after $bytes bytes (<= $cap) in $secs s" ||
				fail "es-$mode: the agent read $bytes bytes (cap $cap) over $secs s" ;;
		trickle)
			awk -v s="$secs" -v m=$((ES_TIMEOUT_MS / 1000 + MARGIN_S)) 'BEGIN { exit !(s <= m) }' &&
				pass "es-trickle: the request ended after $secs s (--es-timeout $ES_TIMEOUT_MS ms)" ||
				fail "es-trickle: the request lasted $secs s (--es-timeout $ES_TIMEOUT_MS ms)" ;;
		esac
	done
	# shadowtap report --es reads pages of hits: an endless page is cut at 256 MiB
	es -XPOST "$ESURL/_fault" -d '{"mode": "endless", "count": 1000000}' > /dev/null
	t0=$(date +%s%N)
	ip netns exec $NS /usr/bin/time -f 'maxrss_kb=%M' timeout 60 "$ST_BIN" report --es "$ESURL" \
		> /dev/null 2> "$ST_TMP/report.err"
	rc=$? ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	rss=$(grep -o 'maxrss_kb=[0-9]*' "$ST_TMP/report.err" | cut -d= -f2)
	es -XPOST "$ESURL/_fault" -d '{"mode": "ok", "count": 0}' > /dev/null
	if [ $rc != 0 ] && [ $rc != 124 ] && grep -q 'answer over 256 MiB' "$ST_TMP/report.err" &&
		[ "${rss:-999999999}" -le $(( 600 * 1024 )) ]; then
		pass "report: an endless search answer: exit $rc in $ms ms, 'answer over 256 MiB', peak RSS $rss kB"
	else
		fail "report: an endless search answer: exit $rc in $ms ms, peak RSS ${rss:-?} kB: $(head -2 "$ST_TMP/report.err" | tr '\n' ' ')"
	fi
	bad=$(es_counter err_bad_response) cut=$(es_counter responses_cut)
	to=$(es_counter err_timeout) h5=$(es_counter err_http_5xx)
	# nested, extra, wrong_ids, endless (cut 2xx): 4 modes, each met at least twice
	[ "${bad:-0}" -ge 8 ] && pass "es: unusable answers counted (err_bad_response=$bad)" ||
		fail "es: err_bad_response=${bad:-?} (want >= 8)"
	[ "${cut:-0}" -ge 4 ] && pass "es: answers over the cap counted (responses_cut=$cut)" ||
		fail "es: responses_cut=${cut:-?} (want >= 4: huge and endless, twice each)"
	[ "${to:-0}" -ge 2 ] && [ "${h5:-0}" -ge 2 ] && pass "es: timeouts ($to) and 5xx ($h5) counted" ||
		fail "es: err_timeout=${to:-?} err_http_5xx=${h5:-?} (want >= 2 each)"
fi
echo "    hostile: $(( $(date +%s) - T_START )) s in all"
exit 0
