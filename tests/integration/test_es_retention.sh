#!/usr/bin/env bash
# --es-retention-days against the local OpenSearch (scripts/opensearch, port 19220):
# the agent PUTs the ISM policy after its templates. With the ISM plugin present the
# policy must exist with min_index_age N d and be attached to a fake-dated daily index
# created afterwards. Without it (the embedded node: ISM is not on Maven Central) the
# agent reports the refusal once, indexes every record, and deletes its own old daily
# indices itself: back-dated indices of its prefix go, every other index stays (the
# oracle is the cluster's own _cat/indices, before and after).
. "$(dirname "$0")/lib.sh"

PORT=${ES_RET_PORT:-19220}
URL=http://127.0.0.1:$PORT
PCAP=$ST_ROOT/../shared/corpus/zeek-http/206_example_c.pcap
CHECK="python3 $ST_ROOT/tests/integration/es_check.py"
export OPENSEARCH_HOME=$ST_TMP/opensearch OPENSEARCH_PORT=$PORT
OS_STARTED=
ret_cleanup() { [ -n "$OS_STARTED" ] && "$ST_ROOT/scripts/opensearch" stop >/dev/null 2>&1; st_cleanup; }
trap ret_cleanup EXIT

if [ ! -x "$ST_BIN" ] || [ ! -f "$PCAP" ]; then
	skip "es-retention: all checks (no build/shadowtap or no pcap)"
	exit 0
fi
if ! "$ST_ROOT/scripts/opensearch" start > "$ST_TMP/os.log" 2>&1; then
	skip "es-retention: all checks (OpenSearch did not start: $(tail -1 "$ST_TMP/os.log"))"
	exit 0
fi
OS_STARTED=1
# the ISM plugin decides which path the agent must take
ISM=$(curl -s "$URL/_cat/plugins?h=component" | grep -c index-management)
D_OLD=$(date -u -d '-10 days' +%Y.%m.%d)    # past 7 days: goes
D_KEEP=$(date -u -d '-5 days' +%Y.%m.%d)    # within 7 days: stays
D_NOW=$(date -u +%Y.%m.%d)
GOES="st-ret-2020.01.01 st-ret-$D_OLD"
STAYS="st-ret-$D_KEEP st-ret-$D_NOW other-2020.01.01 st-ret-x-2020.01.01 st-ret-2020.01.01-x st-retx-2020.01.01"
if [ "$ISM" = 0 ]; then
	for i in $GOES $STAYS; do
		code=$(curl -s -o /dev/null -w '%{http_code}' -XPUT "$URL/$i")
		[ "$code" = 200 ] || { fail "es-retention: could not create the fixture index $i (http $code)"; exit 0; }
	done
fi
"$ST_BIN" --input-pcap "$PCAP" -p 80 -o "$ST_TMP/r.ndjson" -e "$URL" --es-index st-ret \
	--es-retention-days 7 --spool-dir "$ST_TMP/spool" > /dev/null 2> "$ST_TMP/agent.log"
n=$(wc -l < "$ST_TMP/r.ndjson")
c=$($CHECK count "$URL" 'st-ret-*' 2>/dev/null || echo 0)
[ "$n" -gt 0 ] && [ "$c" = "$n" ] && pass "es-retention: $c/$n records indexed with --es-retention-days 7" ||
	fail "es-retention: $c of $n records indexed"
if [ "$ISM" != 0 ]; then
	code=$(curl -s -o "$ST_TMP/pol.json" -w '%{http_code}' "$URL/_plugins/_ism/policies/st-ret-retention")
	[ "$code" = 200 ] && grep -q '"min_index_age":"7d"' "$ST_TMP/pol.json" &&
		pass "es-retention: ISM policy st-ret-retention deletes at 7d" ||
		fail "es-retention: ISM policy (http $code: $(head -c 300 "$ST_TMP/pol.json"))"
	curl -s -XPUT "$URL/st-ret-2020.01.01" > /dev/null
	sleep 2
	curl -s "$URL/_plugins/_ism/explain/st-ret-2020.01.01" | grep -q st-ret-retention &&
		pass "es-retention: the fake-dated index st-ret-2020.01.01 is managed by the policy" ||
		fail "es-retention: st-ret-2020.01.01 has no policy attached"
	skip "es-retention: the deletion itself (ISM runs its jobs every 5 minutes by default)"
	exit 0
fi
if grep -q "retention policy not installed: http 400" "$ST_TMP/agent.log" &&
   [ "$(grep -c 'retention policy' "$ST_TMP/agent.log")" = 1 ]; then
	pass "es-retention: the cluster's refusal reported once ($(grep -o 'http 400: .\{0,60\}' "$ST_TMP/agent.log"))"
else
	fail "es-retention: no single refusal message ($(grep retention "$ST_TMP/agent.log" | head -2 | tr '\n' ' '))"
fi
curl -s "$URL/_cat/indices?h=index&expand_wildcards=all" | tr -d ' ' | sort > "$ST_TMP/after.txt"
bad=
for i in $GOES; do grep -qx "$i" "$ST_TMP/after.txt" && bad="$bad $i(still there)"; done
for i in $STAYS; do grep -qx "$i" "$ST_TMP/after.txt" || bad="$bad $i(deleted)"; done
[ -z "$bad" ] && pass "es-retention: without ISM the agent deleted exactly $(echo $GOES) and kept $(echo $STAYS)" ||
	fail "es-retention: wrong indices deleted or kept:$bad"
# its own account agrees, in one check (hourly at most) that is logged
ctr=$(grep -o 'retention_checks=[0-9]* retention_deleted=[0-9]* retention_errors=[0-9]*' "$ST_TMP/agent.log" | head -1)
[ "$ctr" = "retention_checks=1 retention_deleted=2 retention_errors=0" ] &&
   grep -q "retention: deleting 2 indices older than 7 days" "$ST_TMP/agent.log" &&
	pass "es-retention: one check, counted and logged ($ctr)" ||
	fail "es-retention: counters '$ctr' or log ($(grep 'retention:' "$ST_TMP/agent.log" | head -3 | tr '\n' ' '))"
