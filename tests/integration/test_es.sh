#!/usr/bin/env bash
# Elasticsearch sink end to end.
#  1. Fault injection (tests/integration/es_fault_server.py): 429, 500, garbage,
#     partial errors, 413 and slow answers; an unreachable cluster fills the spool,
#     which a later run drains.
#  2. A real single-node OpenSearch (scripts/opensearch, port 19200, its own home
#     under the test directory): records from pcaps become documents equal field by
#     field to the NDJSON output; a re-run is all 409s, no duplicates.
#  3. Live on lo (nginx on 18081, wrk at ~5,000 requests/s: 80 connections each
#     waiting 10 ms between requests, as Debian's wrk has no -R): steady state rate
#     and capture-to-searchable delay; OpenSearch stopped for 60 s mid-run; an agent
#     SIGKILLed while draining its spool and restarted. Every record exactly once.
# Tunables: ES_TEST_PORT, ES_TEST_OUTAGE_S (60), ES_TEST_CONNS (80), ES_TEST_DELAY_MS (10).
. "$(dirname "$0")/lib.sh"

OS_PORT=${ES_TEST_PORT:-19200}
FAULT_PORT=${ES_TEST_FAULT_PORT:-19290}
DEAD_PORT=19291            # nothing listens here: an unreachable cluster
NGX_PORT=18081
OUTAGE=${ES_TEST_OUTAGE_S:-60}
CONNS=${ES_TEST_CONNS:-80}
DELAY_MS=${ES_TEST_DELAY_MS:-10}
OS_URL=http://127.0.0.1:$OS_PORT
FAULT_URL=http://127.0.0.1:$FAULT_PORT
CHECK="python3 $ST_ROOT/tests/integration/es_check.py"
PCAP=$ST_ROOT/../shared/corpus/zeek-http/206_example_c.pcap
EMPTY_PCAP=$ST_ROOT/../shared/corpus/zeek-http/bro.org-filtered.pcap
export OPENSEARCH_HOME=$ST_TMP/opensearch OPENSEARCH_PORT=$OS_PORT
OS_STARTED=

es_cleanup() {
	[ -n "$OS_STARTED" ] && "$ST_ROOT/scripts/opensearch" stop >/dev/null 2>&1
	st_cleanup
	# a SIGKILLed agent leaves its pinned maps behind
	rm -rf /sys/fs/bpf/shadowtap-es-* 2>/dev/null
}
trap es_cleanup EXIT

if [ ! -x "$ST_BIN" ]; then
	skip "es: all checks (build/shadowtap not built)"
	exit 0
fi

# stat KEY LOG: the value of an "es: ... KEY=N" counter in an agent log
es_stat() { grep -o "[ :]$1=[0-9]*" "$2" | tail -1 | cut -d= -f2; }

# pcap_run LOG URL SPOOL [PCAP] [extra args]: one agent run over a pcap
pcap_run() {
	local log=$1 url=$2 spool=$3 pcap=${4:-$PCAP}
	shift 4 2>/dev/null || shift $#
	"$ST_BIN" --input-pcap "$pcap" -p 80 -o "$log.ndjson" -e "$url" --spool-dir "$spool" "$@" \
		> /dev/null 2> "$log"
}

# --- 1. fault injection -------------------------------------------------------
python3 "$ST_ROOT/tests/integration/es_fault_server.py" "$FAULT_PORT" &
ST_PIDS+=("$!")
for _ in $(seq 1 50); do curl -s -o /dev/null "$FAULT_URL/" && break; sleep 0.1; done
N=$("$ST_BIN" --input-pcap "$PCAP" -p 80 -o - 2>/dev/null | wc -l)
# the oracle is the pcap's own request count (tshark), not the agent's output alone
if command -v tshark >/dev/null; then
	NW=$(tshark -r "$PCAP" -Y http.request 2>/dev/null | wc -l)
	[ "$NW" = "$N" ] && pass "es: the pcap's $NW HTTP requests (tshark) give $N records" ||
		fail "es: the pcap holds $NW HTTP requests (tshark), the agent made $N records"
else
	skip "es: pcap request count oracle (tshark not installed)"
fi

fault_case() { # name fault-json check...
	local name=$1 fault=$2 log=$ST_TMP/fault-$1.log docs
	curl -s -XPOST "$FAULT_URL/_reset" > /dev/null
	curl -s -XPOST "$FAULT_URL/_fault" -d "$fault" > /dev/null
	pcap_run "$log" "$FAULT_URL" "$ST_TMP/spool-$name"
	docs=$(curl -s "$FAULT_URL/_state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["docs"])')
	FDOCS=$docs FLOG=$log
}

if [ "$N" -lt 10 ]; then
	fail "es: fault tests (pcap $PCAP gave $N records)"
else
	fault_case 429 '{"mode":"429","count":3}'
	if [ "$FDOCS" = "$N" ] && [ "$(es_stat err_http_429 "$FLOG")" = 3 ] && [ "$(es_stat duplicates "$FLOG")" = 0 ]; then
		pass "es: 3 whole-request 429s retried, $N/$N delivered once"
	else
		fail "es: 429 retry (docs $FDOCS/$N, err_http_429=$(es_stat err_http_429 "$FLOG"))"
	fi
	fault_case 500 '{"mode":"500","count":2}'
	if [ "$FDOCS" = "$N" ] && [ "$(es_stat err_http_5xx "$FLOG")" = 2 ]; then
		pass "es: 2 whole-request 500s retried, $N/$N delivered"
	else
		fail "es: 500 retry (docs $FDOCS/$N, err_http_5xx=$(es_stat err_http_5xx "$FLOG"))"
	fi
	fault_case garbage '{"mode":"garbage","count":2}'
	if [ "$FDOCS" = "$N" ] && [ "$(es_stat err_bad_response "$FLOG")" = 2 ]; then
		pass "es: 2 unparsable answers retried, $N/$N delivered"
	else
		fail "es: garbage answers (docs $FDOCS/$N, err_bad_response=$(es_stat err_bad_response "$FLOG"))"
	fi
	fault_case partial '{"mode":"partial","count":1}'
	dl=$ST_TMP/spool-partial/dead-letter.ndjson
	want429=$(( (N + 2) / 3 ))
	if [ "$FDOCS" = $((N - 2)) ] && [ "$(es_stat dead_lettered "$FLOG")" = 2 ] &&
	   [ "$(wc -l < "$dl" 2>/dev/null)" = 2 ] && grep -q mapper_parsing_exception "$dl" &&
	   [ "$(es_stat err_item_429 "$FLOG")" = "$want429" ]; then
		pass "es: errors:true: $want429 item 429s retried, 2 item 400s dead-lettered with the reason, $((N - 2)) indexed"
	else
		fail "es: partial errors (docs $FDOCS, dead_lettered=$(es_stat dead_lettered "$FLOG"), item_429=$(es_stat err_item_429 "$FLOG")/$want429)"
	fi
	# the 413 limit: a quarter of the whole batch, but above the largest single document
	limit=$(python3 -c '
import sys
ls = [len(l) + 120 for l in open(sys.argv[1], "rb")]
print(max(max(ls) + 1024, sum(ls) // 4))' "$ST_TMP/fault-partial.log.ndjson")
	fault_case 413 "{\"mode\":\"413\",\"limit\":$limit}"
	if [ "$FDOCS" = "$N" ] && [ "$(es_stat splits "$FLOG")" -gt 0 ] && [ "$(es_stat dead_lettered "$FLOG")" = 0 ]; then
		pass "es: 413 splits the batch ($(es_stat splits "$FLOG") splits), $N/$N delivered, nothing dead-lettered"
	else
		fail "es: 413 split (docs $FDOCS/$N, splits=$(es_stat splits "$FLOG"), dead_lettered=$(es_stat dead_lettered "$FLOG"))"
	fi
	fault_case slow '{"mode":"slow","count":1,"delay":3}'
	if [ "$FDOCS" = "$N" ] && [ "$(es_stat duplicates "$FLOG")" = 0 ]; then
		pass "es: a 3 s answer is waited for, $N/$N delivered once"
	else
		fail "es: slow answer (docs $FDOCS/$N)"
	fi
	# unreachable: everything spools, the exit does not wait out the timeout; a
	# later run drains the spool and leaves it empty
	curl -s -XPOST "$FAULT_URL/_reset" > /dev/null
	sp=$ST_TMP/spool-unreachable
	t0=$(date +%s)
	pcap_run "$ST_TMP/unreach.log" "http://127.0.0.1:$DEAD_PORT" "$sp"
	t1=$(date +%s)
	if [ "$(es_stat spooled "$ST_TMP/unreach.log")" = "$N" ] && [ "$(es_stat spool_pending_bytes "$ST_TMP/unreach.log")" -gt 0 ] &&
	   [ $((t1 - t0)) -lt 20 ]; then
		pass "es: unreachable cluster: $N records spooled, exit in $((t1 - t0)) s"
	else
		fail "es: unreachable cluster (spooled=$(es_stat spooled "$ST_TMP/unreach.log"), $((t1 - t0)) s)"
	fi
	pcap_run "$ST_TMP/drain.log" "$FAULT_URL" "$sp" "$EMPTY_PCAP"
	docs=$(curl -s "$FAULT_URL/_state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["docs"])')
	if [ "$docs" = "$N" ] && [ -z "$(ls "$sp"/*.seg 2>/dev/null)" ] && [ "$(es_stat spool_pending_bytes "$ST_TMP/drain.log")" = 0 ]; then
		pass "es: the spool drains on the next run ($N delivered, no segment left)"
	else
		fail "es: spool drain (docs $docs/$N, segments: $(ls "$sp" | tr '\n' ' '))"
	fi
fi

# --- 2. real OpenSearch ---------------------------------------------------------
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
	skip "es: opensearch checks (java or mvn missing: apt-get install openjdk-17-jdk-headless maven)"
	exit 0
fi
t0=$(date +%s)
if ! "$ST_ROOT/scripts/opensearch" start > "$ST_TMP/os-start.log" 2>&1; then
	fail "es: scripts/opensearch start ($(tail -3 "$ST_TMP/os-start.log" | tr '\n' ' '))"
	exit 0
fi
OS_STARTED=1
pass "es: scripts/opensearch start: healthy in $(( $(date +%s) - t0 )) s on port $OS_PORT"
"$ST_ROOT/scripts/opensearch" status > /dev/null && pass "es: scripts/opensearch status" || fail "es: scripts/opensearch status"

outs=()
for p in 206_example_c http-body-match vnd.ms-cab-compressed-multi-conn http_09 http-non-printable-characters \
	 invalid-content-ranges concurrent-range-requests get post multipart; do
	f=$ST_ROOT/../shared/corpus/zeek-http/$p.pcap
	[ -f "$f" ] || continue
	pcap_run "$ST_TMP/os-$p.log" "$OS_URL" "$ST_TMP/spool-os" "$f" --es-index st-pcap
	outs+=("$ST_TMP/os-$p.log.ndjson")
done
if r=$($CHECK compare "$OS_URL" 'st-pcap-*' "${outs[@]}"); then
	pass "es: pcap records indexed, each document equal to its NDJSON record ($r)"
else
	fail "es: pcap records vs documents ($r)"
fi
tmpl=$(curl -s "$OS_URL/st-pcap-*/_mapping")
if echo "$tmpl" | python3 -c '
import json, sys
m = list(json.load(sys.stdin).values())[0]["mappings"]
p = m["properties"]
assert p["@timestamp"]["type"] == "date"
assert p["event"]["properties"]["id"]["type"] == "keyword"
assert p["event"]["properties"]["duration"]["type"] == "long"
assert p["source"]["properties"]["ip"]["type"] == "ip"
h = p["http"]["properties"]["request"]["properties"]
assert all(v["type"] == "keyword" for v in h["headers"]["properties"].values())
assert h["body"]["properties"]["content"]["type"] == "text"
' 2>/dev/null && curl -s "$OS_URL/_index_template/st-pcap" | grep -q '"composed_of":\["st-pcap-mappings"\]'; then
	pass "es: composable templates installed: date, keyword ids, ip, headers as keywords, bodies as text"
else
	fail "es: template mappings ($(echo "$tmpl" | head -c 200))"
fi
pcap_run "$ST_TMP/os-rerun.log" "$OS_URL" "$ST_TMP/spool-os" "$PCAP" --es-index st-pcap
if [ "$(es_stat duplicates "$ST_TMP/os-rerun.log")" = "$N" ] && [ "$(es_stat indexed "$ST_TMP/os-rerun.log")" = 0 ] &&
   $CHECK compare "$OS_URL" 'st-pcap-*' "${outs[@]}" > /dev/null; then
	pass "es: the same records again are $N 409s, no duplicate documents"
else
	fail "es: re-run (duplicates=$(es_stat duplicates "$ST_TMP/os-rerun.log"), indexed=$(es_stat indexed "$ST_TMP/os-rerun.log"))"
fi

# --- 3. live on lo -------------------------------------------------------------------
if [ "$(id -u)" != 0 ] || ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
	skip "es: live checks (need root, nginx and wrk)"
	exit 0
fi
ngx=$ST_TMP/nginx
mkdir -p "$ngx"
nginx_conf "$ngx" "$(cat <<NGX
	server {
		listen 127.0.0.1:$NGX_PORT;
		location / { default_type text/plain; return 200 "hello \$request_uri\n"; }
	}
NGX
)"
if ! nginx -c "$ngx/nginx.conf" -p "$ngx"; then
	fail "es: live checks (nginx did not start on $NGX_PORT)"
	exit 0
fi
for _ in $(seq 1 30); do [ -s "$ngx/nginx.pid" ] && break; sleep 0.1; done
ST_PIDS+=("$(cat "$ngx/nginx.pid")")
printf 'local d = tonumber(os.getenv("ST_WRK_DELAY_MS") or "10")\nfunction delay() return d end\n' > "$ST_TMP/rate.lua"

# agent_start NAME URL SPOOL INDEX: live agent on lo; sets APID
agent_start() {
	local name=$1
	"$ST_BIN" -i lo -p "$NGX_PORT" -e "$2" --spool-dir "$3" --es-index "$4" -o "$ST_TMP/$name.ndjson" \
		--pin-dir "/sys/fs/bpf/shadowtap-es-$name" 2> "$ST_TMP/$name.log" &
	APID=$!
	ST_PIDS+=("$APID")
	for _ in $(seq 1 100); do
		grep -q "capturing" "$ST_TMP/$name.log" && return 0
		kill -0 "$APID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
agent_stop() { kill -INT "$APID" 2>/dev/null; wait "$APID" 2>/dev/null; }
# load SECS OUT: wrk at the test rate
load() {
	ST_WRK_DELAY_MS=$DELAY_MS wrk -t2 -c"$CONNS" -d"$1"s -s "$ST_TMP/rate.lua" "http://127.0.0.1:$NGX_PORT/" > "$2" 2>&1
}
wrk_total() { grep -o '[0-9]* requests in' "$1" | cut -d' ' -f1; }
# client_oracle NAME WRK-OUT NDJSON CONNS: the client's count is the oracle, not the
# agent's own output. wrk counts answered requests; up to one per connection can be
# in flight when it stops, so the records must number between that and CONNS more.
client_oracle() {
	local w n
	w=$(wrk_total "$2"); n=$(wc -l < "$3")
	if [ -n "$w" ] && [ "$w" -gt 0 ] && [ "$n" -ge "$w" ] && [ "$n" -le $((w + $4)) ]; then
		pass "es: $1: $n records for the $w requests wrk had answered (+ at most $4 in flight)"
	else
		fail "es: $1: $n records for the ${w:-?} requests wrk had answered"
	fi
}
# wait_indexed INDEX NDJSON SECS SPOOL: until the index holds every record and the spool is empty
wait_indexed() {
	local i c n
	for ((i = 0; i < $3; i += 2)); do
		n=$(wc -l < "$2")
		c=$($CHECK count "$OS_URL" "$1" 2>/dev/null || echo 0)
		[ "$c" -ge "$n" ] && [ -z "$(ls "$4"/*.seg 2>/dev/null)" ] && return 0
		sleep 2
	done
	return 1
}

# capture-to-searchable delay at a rate the node keeps up with (4 connections,
# ~350 requests/s): a probe request, then polling until its record is searchable
sp=$ST_TMP/spool-latency
if agent_start latency "$OS_URL" "$sp" st-latency; then
	ST_WRK_DELAY_MS=$DELAY_MS wrk -t1 -c4 -d40s -s "$ST_TMP/rate.lua" "http://127.0.0.1:$NGX_PORT/" \
		> "$ST_TMP/wrk-latency.out" 2>&1 &
	wrkpid=$!
	sleep 3
	lat=$($CHECK latency "$OS_URL" 'st-latency-*' "http://127.0.0.1:$NGX_PORT" 40 2>&1)
	wait "$wrkpid"
	agent_stop
	echo "    capture-to-searchable at $(grep -o '[0-9.]*$' <<< "$(grep Requests/sec "$ST_TMP/wrk-latency.out")") requests/s: $lat"
	case $lat in *found=40*) pass "es: capture-to-searchable delay measured ($lat)" ;; *) fail "es: capture-to-searchable ($lat)" ;; esac
else
	fail "es: latency agent did not start"
fi

# steady state at ~5,000 requests/s: what the node indexes per second
sp=$ST_TMP/spool-steady
if ! agent_start steady "$OS_URL" "$sp" st-steady; then
	fail "es: live agent did not start ($(tail -3 "$ST_TMP/steady.log" | tr '\n' ' '))"
	exit 0
fi
t0=$(date +%s.%N)
load 30 "$ST_TMP/wrk-steady.out"
c30=$($CHECK count "$OS_URL" 'st-steady-*' 2>/dev/null)
t30=$(date +%s.%N)
if wait_indexed 'st-steady-*' "$ST_TMP/steady.ndjson" 600 "$sp"; then
	t1=$(date +%s.%N)
	n=$(wc -l < "$ST_TMP/steady.ndjson")
	echo "    steady: wrk sent $(wrk_total "$ST_TMP/wrk-steady.out") requests in 30 s, $n records;" \
		"$(python3 -c "print(int($c30 / ($t30 - $t0)))") docs/s indexed during the load," \
		"all indexed after $(python3 -c "print(round($t1 - $t0, 1))") s: $(python3 -c "print(int($n / ($t1 - $t0)))") docs/s overall"
fi
agent_stop
grep '^es:' "$ST_TMP/steady.log" | head -2 | sed 's/^/    steady /'
client_oracle steady "$ST_TMP/wrk-steady.out" "$ST_TMP/steady.ndjson" "$CONNS"
if r=$($CHECK exact "$OS_URL" 'st-steady-*' "$ST_TMP/steady.ndjson"); then
	pass "es: live steady state, every record exactly once ($r)"
else
	fail "es: live steady state ($r)"
fi

# outage: OpenSearch stopped for $OUTAGE s in the middle of a live run
sp=$ST_TMP/spool-outage
if agent_start outage "$OS_URL" "$sp" st-outage; then
	load $((OUTAGE + 30)) "$ST_TMP/wrk-outage.out" &
	wrkpid=$!
	sleep 15
	"$ST_ROOT/scripts/opensearch" stop > /dev/null
	sleep "$OUTAGE"
	spooled_mid=$(du -sb "$sp" | cut -f1)
	if ! "$ST_ROOT/scripts/opensearch" start > "$ST_TMP/os-restart.log" 2>&1; then
		fail "es: opensearch restart ($(tail -3 "$ST_TMP/os-restart.log" | tr '\n' ' '))"
	fi
	wait "$wrkpid"
	wait_indexed 'st-outage-*' "$ST_TMP/outage.ndjson" 900 "$sp"
	drained=$?
	agent_stop
	grep '^es:' "$ST_TMP/outage.log" | sed 's/^/    outage /'
	client_oracle outage "$ST_TMP/wrk-outage.out" "$ST_TMP/outage.ndjson" "$CONNS"
	r=$($CHECK exact "$OS_URL" 'st-outage-*' "$ST_TMP/outage.ndjson")
	ok=$?
	echo "    outage: wrk sent $(wrk_total "$ST_TMP/wrk-outage.out") requests; spool held $spooled_mid bytes after the ${OUTAGE} s outage; $r"
	if [ $ok = 0 ] && [ $drained = 0 ] && [ "$(es_stat spool_drops "$ST_TMP/outage.log")" = 0 ] &&
	   [ "$(es_stat spooled "$ST_TMP/outage.log")" -gt 0 ]; then
		pass "es: ${OUTAGE} s OpenSearch outage at load: spooled, drained to empty, every record exactly once ($r)"
	else
		fail "es: outage ($r, drained=$drained, spool: $(ls "$sp" | tr '\n' ' '))"
	fi
else
	fail "es: outage agent did not start"
fi

# crash: fill a spool (cluster unreachable), SIGKILL the agent that drains it
# half-way, let a third run finish: every record exactly once
sp=$ST_TMP/spool-crash
if agent_start crash-a "http://127.0.0.1:$DEAD_PORT" "$sp" st-crash; then
	load 15 "$ST_TMP/wrk-crash.out"
	agent_stop
	n=$(wc -l < "$ST_TMP/crash-a.ndjson")
	client_oracle crash "$ST_TMP/wrk-crash.out" "$ST_TMP/crash-a.ndjson" "$CONNS"
	agent_start crash-b "$OS_URL" "$sp" st-crash || fail "es: crash: run B did not start ($(tail -2 "$ST_TMP/crash-b.log" | tr '\n' ' '))"
	for _ in $(seq 1 300); do
		c=$($CHECK count "$OS_URL" 'st-crash-*' 2>/dev/null || echo 0)
		[ "$c" -ge $((n / 4)) ] && break
		sleep 0.2
	done
	kill -9 "$APID"
	wait "$APID" 2>/dev/null
	killed_at=$($CHECK count "$OS_URL" 'st-crash-*' 2>/dev/null)
	# the kill must land mid-drain: B had started indexing and spool segments remain
	if [ "${killed_at:-0}" -gt 0 ] && [ "$killed_at" -lt "$n" ] && [ -n "$(ls "$sp"/*.seg 2>/dev/null)" ]; then
		pass "es: crash: run B SIGKILLed mid-drain ($killed_at of $n indexed, spool segments left)"
	else
		fail "es: crash: SIGKILL did not land mid-drain ($killed_at of $n indexed, segments: $(ls "$sp" | tr '\n' ' '))"
	fi
	agent_start crash-c "$OS_URL" "$sp" st-crash || fail "es: crash: run C did not start"
	wait_indexed 'st-crash-*' "$ST_TMP/crash-a.ndjson" 600 "$sp"
	agent_stop
	r=$($CHECK exact "$OS_URL" 'st-crash-*' "$ST_TMP/crash-a.ndjson")
	ok=$?
	echo "    crash: $n records spooled by run A (spooled=$(es_stat spooled "$ST_TMP/crash-a.log")); run B SIGKILLed at $killed_at indexed; run C: indexed=$(es_stat indexed "$ST_TMP/crash-c.log") duplicates(409)=$(es_stat duplicates "$ST_TMP/crash-c.log"); $r"
	if [ $ok = 0 ] && [ "$(es_stat spooled "$ST_TMP/crash-a.log")" = "$n" ] && [ -z "$(ls "$sp"/*.seg 2>/dev/null)" ]; then
		pass "es: SIGKILL while draining the spool, restart: every record exactly once ($r)"
	else
		fail "es: crash recovery ($r)"
	fi
else
	fail "es: crash agent did not start"
fi

if "$ST_ROOT/scripts/opensearch" stop > /dev/null && ! "$ST_ROOT/scripts/opensearch" status > /dev/null; then
	OS_STARTED=
	pass "es: scripts/opensearch stop"
else
	fail "es: scripts/opensearch stop"
fi
exit 0
