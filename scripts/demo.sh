#!/usr/bin/env bash
# `make demo`: the main job on this machine. serverA (nginx, port 80) and serverB
# (nginx, port 81, a "new version" that differs on a few paths) on loopback, a local
# OpenSearch, and shadowtap capturing port 80 on lo, replaying to :81 and indexing
# every exchange. Then a realistic request mix with curl and wrk, and a summary read
# back from OpenSearch. Ctrl-C stops everything. DEMO_HOLD=0 exits after the summary.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
. "$ROOT/tests/nginx/conf.sh"
DEMO=${DEMO_DIR:-/tmp/shadowtap-demo}
ES_PORT_DEMO=${OPENSEARCH_PORT:-9200}
ES=http://127.0.0.1:$ES_PORT_DEMO
mkdir -p "$DEMO"
pids=()
cleanup() {
	echo; echo "demo: stopping"
	[ -n "${AGENT:-}" ] && kill -INT "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	[ -x scripts/opensearch ] && OPENSEARCH_HOME=$DEMO/opensearch scripts/opensearch stop >/dev/null 2>&1
	echo "demo: stopped (records kept in $DEMO/records.ndjson)"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

[ "$(id -u)" = 0 ] || { echo "demo: run as root (BPF capture needs CAP_BPF/CAP_NET_RAW)"; exit 1; }
command -v nginx >/dev/null || { echo "demo: nginx missing; run scripts/setup.sh"; exit 1; }
for p in 80 81; do
	if ss -ltnH "sport = :$p" | grep -q .; then echo "demo: port $p is in use; stop that server first"; exit 1; fi
done

# serverA and serverB: same app, serverB is "v2" and differs on /api/user and /api/price
mk_server() { # name port version
	local d=$DEMO/$1
	mkdir -p "$d/html"
	echo "<h1>hello from the shop</h1>" > "$d/html/index.html"
	# the shared template (tests/nginx) with the demo's own server
	NGINX_WORKER_CONNECTIONS=1024 NGINX_ACCESS_LOG=$d/access.log nginx_conf "$d" "$(cat <<NGX
	server {
		listen 127.0.0.1:$2;
		root $d/html;
		default_type application/json;
		location = / { default_type text/html; }
		location = /api/user { return 200 '{"id":42,"name":"ada","plan":"$( [ "$3" = v2 ] && echo pro || echo free )"}'; }
		location = /api/price { return $( [ "$3" = v2 ] && echo 500 || echo 200 ) '{"price":10}'; }
		location = /api/order { return 201 '{"ok":true}'; }
		location /api/ { return 200 '{"path":"\$uri","v":1}'; }
	}
NGX
)"
	nginx -c "$d/nginx.conf" -p "$d" && sleep 0.3 && pids+=("$(cat "$d/nginx.pid")")
}
mk_server serverA 80 v1 || exit 1
mk_server serverB 81 v2 || exit 1
echo "demo: serverA on :80, serverB on :81"

echo "demo: starting OpenSearch on $ES (first run builds it from Maven Central, a few minutes)"
if ! OPENSEARCH_HOME=$DEMO/opensearch OPENSEARCH_PORT=$ES_PORT_DEMO scripts/opensearch start; then
	echo "demo: OpenSearch did not start; continuing with NDJSON output only"; ES=
fi

# each demo starts from empty indices, so the summary counts this run only
[ -n "$ES" ] && curl -s -XDELETE "$ES/shadowtap-*" >/dev/null
rm -rf "$DEMO/spool"

args=(-i lo -p 80 -r http://127.0.0.1:81 -o "$DEMO/records.ndjson" --spool-dir "$DEMO/spool" --stats 10)
[ -n "$ES" ] && args+=(-e "$ES")
build/shadowtap "${args[@]}" 2> "$DEMO/agent.log" &
AGENT=$!
for _ in $(seq 1 50); do grep -q "capturing TCP" "$DEMO/agent.log" && break; sleep 0.1; done
grep -q "capturing TCP" "$DEMO/agent.log" || { echo "demo: agent failed:"; cat "$DEMO/agent.log"; exit 1; }
echo "demo: shadowtap capturing port 80 on lo (log: $DEMO/agent.log)"

echo "demo: sending traffic to serverA"
for i in $(seq 1 20); do
	curl -s -o /dev/null http://127.0.0.1/
	curl -s -o /dev/null "http://127.0.0.1/api/user?session=$i" -H "Authorization: Bearer secret-$i" -H "Cookie: sid=$i"
	curl -s -o /dev/null http://127.0.0.1/api/price
	curl -s -o /dev/null -X POST http://127.0.0.1/api/order -H 'Content-Type: application/json' -d "{\"item\":$i,\"qty\":2}"
	curl -s -o /dev/null http://127.0.0.1/api/items/$i
done
wrk -t2 -c8 -d2s http://127.0.0.1/api/items/wrk 2>&1 | grep -E 'Requests/sec|requests in'
sleep 2
kill -USR1 "$AGENT"; sleep 0.5
if [ -n "$ES" ]; then
	# a single local node indexes a few thousand documents a second: wait for it
	want=$(wc -l < "$DEMO/records.ndjson")
	echo "demo: waiting for OpenSearch to index all $want records"
	for _ in $(seq 1 120); do
		curl -s -XPOST "$ES/shadowtap-*/_refresh" >/dev/null
		have=$(curl -s "$ES/shadowtap-*/_count" | jq -r '.count // 0')
		[ "${have:-0}" -ge "$want" ] && break
		sleep 1
	done
fi

echo
echo "=== summary ==="
if [ -n "$ES" ]; then
	curl -s -XPOST "$ES/shadowtap-*/_refresh" >/dev/null
	total=$(curl -s "$ES/shadowtap-*/_count" | jq .count)
	match=$(curl -s "$ES/shadowtap-*/_count?q=diff.match:true" | jq .count)
	echo "records indexed in OpenSearch: $total   serverB matched serverA: $match"
	echo "mismatches by path:"
	curl -s -H 'Content-Type: application/json' "$ES/shadowtap-*/_search?size=0" -d '{"query":{"term":{"diff.match":false}},"aggs":{"p":{"terms":{"field":"url.path"}}}}' \
		| jq -r '.aggregations.p.buckets[] | "  \(.key): \(.doc_count)"'
	echo "example records:"
	curl -s -H 'Content-Type: application/json' "$ES/shadowtap-*/_search?size=2" -d '{"query":{"term":{"url.path":"/api/user"}}}' \
		| jq -c '.hits.hits[]._source | {url: .url.original, status: .http.response.status_code, replay: .replay.status_code, diff: .diff, auth: .http.request.headers.authorization}'
	echo "query them yourself:  curl '$ES/shadowtap-*/_search?q=diff.match:false&pretty'"
else
	echo "records written: $(wc -l < "$DEMO/records.ndjson")"
	head -2 "$DEMO/records.ndjson" | jq -c '{url: .url.original, status: .http.response.status_code, replay: .replay.status_code, diff: .diff}'
fi
echo "NDJSON copy: $DEMO/records.ndjson"
if [ "${DEMO_HOLD:-1}" = 1 ] && [ -t 0 ]; then
	echo "demo: still capturing; try  curl http://127.0.0.1/api/user  — Ctrl-C to stop"
	wait "$AGENT"
fi
