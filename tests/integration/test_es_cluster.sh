#!/usr/bin/env bash
# Elasticsearch sink against a real three-node OpenSearch cluster (issue 12):
# live load through the agent (nginx on lo, wrk; wrk's own answered count is the
# oracle), node 2 SIGKILLed for ES_CLUSTER_OUTAGE_S (30) seconds mid-run and
# started again. Every record is indexed exactly once (count, no duplicate _id, no
# record lost), capture never stalls (records keep arriving in the NDJSON output
# during the outage), and the spool is empty at the end. One replica per index
# (the agent's template in cluster mode), so the killed node loses nothing.
# Then --es-sniff live: a second agent given node 1 only discovers nodes 2 and 3, node
# 1 is SIGKILLed under load, and every record (wrk's count) is indexed exactly once
# through the discovered nodes.
# Tunables: ES_CLUSTER_PORT (19210: nodes on 19210-19212), ES_CLUSTER_OUTAGE_S,
# ES_CLUSTER_SNIFF=0 to leave the sniff part out.
. "$(dirname "$0")/lib.sh"

BASE=${ES_CLUSTER_PORT:-19210}
OUTAGE=${ES_CLUSTER_OUTAGE_S:-30}
NGX_PORT=18082
URLS=(http://127.0.0.1:$BASE http://127.0.0.1:$((BASE + 1)) http://127.0.0.1:$((BASE + 2)))
CHECK="python3 $ST_ROOT/tests/integration/es_check.py"
export OPENSEARCH_HOME=$ST_TMP/opensearch-cluster OPENSEARCH_PORT=$BASE OPENSEARCH_HEAP=${ES_CLUSTER_HEAP:-512m}
OS=$ST_ROOT/scripts/opensearch
OS_STARTED=

cl_cleanup() {
	[ -n "$OS_STARTED" ] && "$OS" stop >/dev/null 2>&1
	st_cleanup
	rm -rf /sys/fs/bpf/shadowtap-escl 2>/dev/null
}
trap cl_cleanup EXIT

if [ ! -x "$ST_BIN" ]; then
	skip "es-cluster: all checks (build/shadowtap not built)"
	exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
	skip "es-cluster: all checks (need root, nginx and wrk)"
	exit 0
fi
if ! OPENSEARCH_START_TIMEOUT=600 "$OS" start --nodes 3 > "$ST_TMP/os-start.log" 2>&1; then
	skip "es-cluster: all checks (a 3-node OpenSearch did not start: $(tail -2 "$ST_TMP/os-start.log" | tr '\n' ' '))"
	exit 0
fi
OS_STARTED=1
nodes=$(curl -s "${URLS[0]}/_cat/nodes" | wc -l)
[ "$nodes" = 3 ] && pass "es-cluster: OpenSearch cluster of $nodes nodes" ||
	fail "es-cluster: cluster has $nodes nodes, not 3"

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
	fail "es-cluster: nginx did not start on $NGX_PORT"
	exit 0
fi
for _ in $(seq 1 30); do [ -s "$ngx/nginx.pid" ] && break; sleep 0.1; done
ST_PIDS+=("$(cat "$ngx/nginx.pid")")
printf 'function delay() return 10 end\n' > "$ST_TMP/rate.lua"

sp=$ST_TMP/spool
"$ST_BIN" -i lo -p "$NGX_PORT" -e "${URLS[0]}" -e "${URLS[1]}" -e "${URLS[2]}" --spool-dir "$sp" \
	--es-index st-cluster -o "$ST_TMP/cl.ndjson" --stats 5 --pin-dir /sys/fs/bpf/shadowtap-escl \
	2> "$ST_TMP/agent.log" &
APID=$!
ST_PIDS+=("$APID")
for _ in $(seq 1 100); do grep -q capturing "$ST_TMP/agent.log" && break; sleep 0.1; done
if ! grep -q capturing "$ST_TMP/agent.log"; then
	fail "es-cluster: agent did not start ($(tail -3 "$ST_TMP/agent.log" | tr '\n' ' '))"
	exit 0
fi

# load for OUTAGE + 40 s: node 2 killed at 10 s, started again OUTAGE s later
wrk -t2 -c40 -d$((OUTAGE + 40))s -s "$ST_TMP/rate.lua" "http://127.0.0.1:$NGX_PORT/" > "$ST_TMP/wrk.out" 2>&1 &
wpid=$!
sleep 10
"$OS" kill-node 2 > /dev/null 2>&1
n_kill=$(wc -l < "$ST_TMP/cl.ndjson")
stalled=0
for ((t = 0; t < OUTAGE; t += 5)); do
	a=$(wc -l < "$ST_TMP/cl.ndjson"); sleep 5; b=$(wc -l < "$ST_TMP/cl.ndjson")
	[ "$b" -gt "$a" ] || stalled=$((stalled + 1))
done
n_back=$(wc -l < "$ST_TMP/cl.ndjson")
"$OS" start-node 2 > "$ST_TMP/os-restart.log" 2>&1 &
spid=$!
wait "$wpid"
wait "$spid"
[ "$stalled" = 0 ] && pass "es-cluster: capture went on during the outage ($((n_back - n_kill)) records in $OUTAGE s with node 2 down)" ||
	fail "es-cluster: capture stalled in $stalled of the 5 s windows of the outage"

# until every record is indexed and the spool is empty (or 300 s)
n=$(wc -l < "$ST_TMP/cl.ndjson")
for _ in $(seq 1 150); do
	c=$($CHECK count "${URLS[0]}" 'st-cluster-*' 2>/dev/null || echo 0)
	[ "$c" -ge "$n" ] && [ -z "$(ls "$sp"/*.seg 2>/dev/null)" ] && break
	sleep 2
done
kill -INT "$APID"; wait "$APID" 2>/dev/null
w=$(grep -o '[0-9]* requests in' "$ST_TMP/wrk.out" | cut -d' ' -f1)
n=$(wc -l < "$ST_TMP/cl.ndjson")
if [ -n "$w" ] && [ "$n" -ge "$w" ] && [ "$n" -le $((w + 40)) ]; then
	pass "es-cluster: $n records for the $w requests wrk had answered (+ at most 40 in flight)"
else
	fail "es-cluster: $n records for the ${w:-?} requests wrk had answered"
fi
ex=$($CHECK exact "${URLS[0]}" 'st-cluster-*' "$ST_TMP/cl.ndjson" 2>&1)
case $ex in *duplicated=0\ lost=0\ unexpected=0*) pass "es-cluster: exactly once through the node kill ($ex)" ;;
	*) fail "es-cluster: not exactly once ($ex)" ;; esac
left=$(grep -o 'spool_pending_bytes=[0-9]*' "$ST_TMP/agent.log" | tail -1)
[ "$left" = spool_pending_bytes=0 ] && pass "es-cluster: spool drained ($left)" || fail "es-cluster: spool not drained ($left)"
nf=$(grep -o 'node_failures=[0-9]*' "$ST_TMP/agent.log" | tail -1)
grep -q "node .* back" "$ST_TMP/agent.log" && grep -q "node .* out" "$ST_TMP/agent.log" &&
	pass "es-cluster: node 2 taken out and back ($nf)" || fail "es-cluster: node 2 not seen out and back ($nf)"
rep=$(curl -s "${URLS[0]}/st-cluster-*/_settings/index.number_of_replicas" | grep -o '"number_of_replicas":"[0-9]*"' | sort -u)
[ "$rep" = '"number_of_replicas":"1"' ] && pass "es-cluster: one replica per index" || fail "es-cluster: replicas $rep"
echo "    $(grep -E '^es: (submitted|nodes)' "$ST_TMP/agent.log" | tail -2 | tr '\n' ' ')"

# ---- --es-sniff: given node 1 only, the agent finds nodes 2 and 3 in _nodes/http;
# node 1 stopped under load, delivery goes on through the sniffed nodes. wrk's count
# of answered requests is the oracle; every record indexed exactly once.
if [ "${ES_CLUSTER_SNIFF:-1}" = 0 ]; then
	skip "es-cluster: --es-sniff (ES_CLUSTER_SNIFF=0)"
	exit 0
fi
sp2=$ST_TMP/spool-sniff
"$ST_BIN" -i lo -p "$NGX_PORT" -e "${URLS[0]}" --es-sniff --spool-dir "$sp2" --es-index st-sniff \
	-o "$ST_TMP/sn.ndjson" --stats 5 --pin-dir /sys/fs/bpf/shadowtap-escl 2> "$ST_TMP/sniff.log" &
SPID=$!
ST_PIDS+=("$SPID")
for _ in $(seq 1 300); do
	[ "$(grep -c 'es: discovered node' "$ST_TMP/sniff.log")" -ge 2 ] && grep -q capturing "$ST_TMP/sniff.log" && break
	sleep 0.1
done
found=$(grep -o 'discovered node [^ ]*' "$ST_TMP/sniff.log" | awk '{print $3}' | sort | tr '\n' ' ')
[ "$found" = "${URLS[1]} ${URLS[2]} " ] &&
	pass "es-cluster: --es-sniff given ${URLS[0]} discovered $found" ||
	fail "es-cluster: --es-sniff discovered '$found' (want ${URLS[1]} ${URLS[2]})"
wrk -t1 -c4 -d20s -s "$ST_TMP/rate.lua" "http://127.0.0.1:$NGX_PORT/" > "$ST_TMP/wrk2.out" 2>&1 &
wpid=$!
sleep 5
"$OS" kill-node 1 > /dev/null 2>&1
wait "$wpid"
# node 1 stays down: the count is asked of node 2, until every record is there (120 s)
n=$(wc -l < "$ST_TMP/sn.ndjson")
for _ in $(seq 1 60); do
	c=$($CHECK count "${URLS[1]}" 'st-sniff-*' 2>/dev/null || echo 0)
	[ "$c" -ge "$n" ] && break
	sleep 2
done
kill -INT "$SPID"; wait "$SPID" 2>/dev/null
w=$(grep -o '[0-9]* requests in' "$ST_TMP/wrk2.out" | cut -d' ' -f1)
n=$(wc -l < "$ST_TMP/sn.ndjson")
ex=$($CHECK exact "${URLS[1]}" 'st-sniff-*' "$ST_TMP/sn.ndjson" 2>&1)
nodes=$(grep -E '^es: nodes=' "$ST_TMP/sniff.log" | tail -1)
# requests reached the sniffed nodes after node 1 died: node1/node2 are the discovered ones
late=0
for v in $(echo "$nodes" | grep -o 'node[12]_requests=[0-9]*' | cut -d= -f2); do late=$((late + v)); done
if [ -n "$w" ] && [ "$n" -ge "$w" ] && [ "$n" -le $((w + 4)) ] &&
   case $ex in *duplicated=0\ lost=0\ unexpected=0*) true ;; *) false ;; esac && [ "${late:-0}" -gt 0 ]; then
	pass "es-cluster: --es-sniff: node 1 stopped, $n records for wrk's $w answers indexed exactly once through the sniffed nodes ($ex; $nodes)"
else
	fail "es-cluster: --es-sniff: $n records, wrk ${w:-?}, $ex, sniffed-node requests ${late:-?} ($nodes)"
fi
