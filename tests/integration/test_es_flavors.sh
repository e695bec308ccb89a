#!/usr/bin/env bash
# Which server the agent detects at start (GET /) and what it does with it:
#  1. a real Elasticsearch 7.17 and a real Elasticsearch 8.19 (scripts/opensearch with
#     OPENSEARCH_FLAVOR=es7 / es8: the server jars from Maven Central (Elastic License
#     2.0), embedded like the OpenSearch node): each is detected as elasticsearch 7.17.x /
#     8.19.x, the component + index templates are installed and used, every record of a
#     pcap is a document equal field by field to the NDJSON record (oracle for the count:
#     tshark), and --es-retention-days on a cluster without ILM (no x-pack here) is warned
#     about once while records still flow. On 8.19 the GET / answer is the embedder's
#     (the rest-root module is not on Maven Central; its values come from the server
#     jar's Build), everything else is the server's.
#  2. FIXTURE checks: recorded root responses (tests/integration/es_roots: 8.12.1 and
#     7.4.2) are served by a stub (es_root_server.py); only the agent's reaction is
#     checked: the version it names, composable templates (>= 7.8) or a legacy _template
#     (7.4), and an ILM policy (not ISM) for retention. They say nothing about a real
#     server's answers; 8.12.1's is the answer shape a real distribution gives to GET /.
# OpenSearch itself is detected in test_es_claims.sh.
. "$(dirname "$0")/lib.sh"
ES_PORT=19220
ES_URL=http://127.0.0.1:$ES_PORT
STUB_PORT=19221
PCAP=$ST_ROOT/../shared/corpus/zeek-http/206_example_c.pcap
CHECK="python3 $ST_ROOT/tests/integration/es_check.py"
D=$ST_ROOT/tests/integration
export OPENSEARCH_PORT=$ES_PORT
ES_STARTED=

if [ ! -x "$ST_BIN" ]; then skip "es flavors (build/shadowtap not built)"; exit 0; fi
[ -f "$PCAP" ] || { skip "es flavors (corpus pcap $PCAP missing)"; exit 0; }
flavor_cleanup() {
	[ -n "$ES_STARTED" ] && "$ST_ROOT/scripts/opensearch" stop >/dev/null 2>&1
	st_cleanup
}
trap flavor_cleanup EXIT
es_stat() { grep -o "[ :]$1=[0-9]*" "$2" | tail -1 | cut -d= -f2; }

N=$("$ST_BIN" --input-pcap "$PCAP" -p 80 -o - 2>/dev/null | wc -l)
if command -v tshark >/dev/null; then
	NW=$(tshark -r "$PCAP" -Y http.request 2>/dev/null | wc -l)
	[ "$NW" = "$N" ] || { fail "es flavors: the pcap holds $NW requests (tshark), the agent made $N records"; N=$NW; }
fi

# --- 1. real Elasticsearch 7.17 and 8.19 ------------------------------------------------
# real_es FLAVOR NAME VERSION-GLOB: start the embedded node of FLAVOR (es7, es8), run the
# pcap into it, check detection, templates, documents, mapping and retention, stop it
real_es() {
	local fl=$1 name=$2 glob=$3 idx=st-$1 real rc tpl out m w
	export OPENSEARCH_HOME=$ST_TMP/$fl OPENSEARCH_FLAVOR=$fl
	if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
		skip "es flavors: real $name (java or mvn not installed)"
		return
	fi
	if ! "$ST_ROOT/scripts/opensearch" start > "$ST_TMP/$fl-start.log" 2>&1; then
		fail "es flavors: $name did not start ($(tail -3 "$ST_TMP/$fl-start.log" | tr '\n' ' '))"
		return
	fi
	ES_STARTED=1
	real=$(curl -s "$ES_URL/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"]["number"])')
	timeout 120 "$ST_BIN" --input-pcap "$PCAP" -p 80 -o "$ST_TMP/$fl.ndjson" -e "$ES_URL" --es-index $idx \
		--es-retention-days 7 --spool-dir "$ST_TMP/spool-$fl" 2> "$ST_TMP/$fl.log"
	rc=$?
	# shellcheck disable=SC2053
	if grep -q "es: $ES_URL is elasticsearch $real" "$ST_TMP/$fl.log" && [[ $real == $glob ]]; then
		pass "es flavors: a real Elasticsearch $real is detected as such"
	else
		fail "es flavors: Elasticsearch $real detected as '$(grep -o ' is [a-z]* [0-9.?]*' "$ST_TMP/$fl.log" | head -1)'"
	fi
	tpl=$(curl -s "$ES_URL/_index_template/$idx" | python3 -c '
import json, sys
t = json.load(sys.stdin)["index_templates"][0]["index_template"]
print(",".join(t["index_patterns"]), ",".join(t["composed_of"]))' 2>&1)
	if [ "$tpl" = "$idx-* $idx-mappings" ] && curl -sf -o /dev/null "$ES_URL/_component_template/$idx-mappings"; then
		pass "es flavors: $name holds the agent's index template ($idx-*) composed of its component template"
	else
		fail "es flavors: templates on $name: '$tpl'"
	fi
	if out=$($CHECK compare "$ES_URL" "$idx-*" "$ST_TMP/$fl.ndjson") && [ "$(wc -l < "$ST_TMP/$fl.ndjson")" = "$N" ] &&
		[ "$rc" = 0 ]; then
		pass "es flavors: $name: all $N records are documents equal to the NDJSON records ($out)"
	else
		fail "es flavors: $name: exit $rc, $(wc -l < "$ST_TMP/$fl.ndjson") of $N records: $out"
	fi
	# the mapping the agent asked for is the one in force (not dynamic guesses)
	m=$(curl -s "$ES_URL/$idx-*/_mapping" | python3 -c '
import json, sys
m = next(iter(json.load(sys.stdin).values()))["mappings"]["properties"]
print(m["source"]["properties"]["ip"]["type"], m["url"]["properties"]["original"]["type"],
      m["http"]["properties"]["response"]["properties"]["status_code"]["type"])' 2>&1)
	if [ "$m" = "ip keyword integer" ]; then
		pass "es flavors: $name index mapping is the agent's (source.ip ip, url.original keyword, status_code integer)"
	else
		fail "es flavors: $name index mapping: $m"
	fi
	# the template must not name a policy this cluster refused (an unknown
	# index.lifecycle.name setting makes Elasticsearch refuse the whole template)
	# the refusal quoted in the warning is the server's answer to an ILM request (an
	# agent that took it for OpenSearch would have asked for an ISM policy): 8.19 names
	# the uri /_ilm/policy/..., 7.17 takes _ilm for an index name
	w=$(grep -c 'retention policy not installed' "$ST_TMP/$fl.log")
	if [ "$w" = 1 ] && [ "$(es_stat indexed "$ST_TMP/$fl.log")" = "$N" ] &&
		grep 'retention policy not installed' "$ST_TMP/$fl.log" | grep -q '_ilm[]/]' &&
		grep -q "shadowtap deletes $idx-YYYY.MM.DD" "$ST_TMP/$fl.log"; then
		pass "es flavors: no ILM on this $name (no x-pack): --es-retention-days (an ILM policy) warned once, the agent's own retention took over, records flowed"
	else
		fail "es flavors: retention on $name without ILM: $w warnings ($(grep -m1 'retention policy not installed' "$ST_TMP/$fl.log")), indexed=$(es_stat indexed "$ST_TMP/$fl.log")"
	fi
	"$ST_ROOT/scripts/opensearch" stop > /dev/null 2>&1
	ES_STARTED=
}
real_es es7 "Elasticsearch 7.17" "7.17.*"
real_es es8 "Elasticsearch 8.19" "8.19.*"

# --- 2. fixtures: recorded root responses of 8.12.1 and 7.4.2 ---------------------------
# fixture NAME ROOT WANT-VERSION WANT-PATHS...: the agent's requests, in order, after
# GET / answered with ROOT (the bulk may repeat)
fixture() {
	local name=$1 root=$2 ver=$3 log=$ST_TMP/stub-$1.log pid got want
	shift 3
	: > "$log"
	python3 "$D/es_root_server.py" $STUB_PORT "$D/es_roots/$root" "$log" &
	pid=$!
	ST_PIDS+=("$pid")
	st_poll 20 curl -s -o /dev/null "http://127.0.0.1:$STUB_PORT/_ping"
	: > "$log"
	timeout 60 "$ST_BIN" --input-pcap "$PCAP" -p 80 -o /dev/null -e "http://127.0.0.1:$STUB_PORT" \
		--es-index st-fx --es-retention-days 7 --spool-dir "$ST_TMP/spool-$name" 2> "$ST_TMP/$name.log"
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	got=$(awk '!($0 in s) { s[$0] = 1; print }' "$log" | tr '\n' '|')
	want=$(printf '%s|' "$@")
	if grep -q "is elasticsearch $ver\$" "$ST_TMP/$name.log" && [ "$got" = "$want" ] &&
		[ "$(es_stat indexed "$ST_TMP/$name.log")" = "$N" ]; then
		pass "es flavors: FIXTURE (recorded root response, stub server) $name: detected as elasticsearch $ver; requests $got"
	else
		fail "es flavors: FIXTURE $name: '$(grep -o 'is [a-z]* [0-9.?]*' "$ST_TMP/$name.log" | head -1)', requests $got (want $want)"
	fi
}
# on Elasticsearch the ILM policy goes first: the template names it (+lifecycle) only
# once it exists
fixture es8 elasticsearch-8.12.1.json 8.12.1 "GET /" "PUT /_ilm/policy/st-fx-retention" \
	"PUT /_component_template/st-fx-mappings +lifecycle" "PUT /_index_template/st-fx" "POST /_bulk"
fixture es7.4 elasticsearch-7.4.2.json 7.4.2 "GET /" "PUT /_ilm/policy/st-fx-retention" \
	"PUT /_template/st-fx +lifecycle" "POST /_bulk"
exit 0
