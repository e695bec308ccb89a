#!/usr/bin/env bash
# --metrics: a real Prometheus server scrapes the agent during a live replay run; the
# scraped counters equal the agent's own exit summary and the client's count;
# promtool accepts the exposition; /healthz and /readyz answer; garbage requests, slow
# clients and 1,000 concurrent scrapes neither stop the endpoint nor cost a record.
set -u
. "$(dirname "$0")/lib.sh"
st_need_root "metrics"
for t in prometheus promtool curl; do
	command -v $t >/dev/null || { fail "metrics: $t not installed (scripts/setup.sh installs it)"; exit 0; }
done
NS=st-metrics
N=300
st_ns $NS
st_nginx $NS 80 serverA || { fail "metrics: nginx serverA"; exit 0; }
st_nginx $NS 81 serverB || { fail "metrics: nginx serverB"; exit 0; }
st_agent $NS "$ST_TMP/agent.log" -i lo -p 80 -r http://127.0.0.1:81 --metrics 127.0.0.1:9464 \
	--pin-dir /sys/fs/bpf/st-metrics -o "$ST_TMP/records.ndjson" ||
	{ fail "metrics: agent did not start: $(tail -n 3 "$ST_TMP/agent.log")"; exit 0; }

cat > "$ST_TMP/prom.yml" <<YML
global: { scrape_interval: 1s, scrape_timeout: 900ms }
scrape_configs:
  - job_name: shadowtap
    static_configs: [ { targets: ['127.0.0.1:9464'] } ]
YML
ip netns exec $NS prometheus --config.file="$ST_TMP/prom.yml" --storage.tsdb.path="$ST_TMP/tsdb" \
	--web.listen-address=127.0.0.1:9090 >"$ST_TMP/prom.log" 2>&1 &
ST_PIDS+=($!)
in_ns() { ip netns exec $NS "$@"; }
promq() { # the value of an instant query, or empty
	in_ns curl -s -m 3 "http://127.0.0.1:9090/api/v1/query" --data-urlencode "query=$1" |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null
}
ok=0
for _ in $(seq 1 150); do [ "$(promq 'up{job="shadowtap"}')" = 1 ] && { ok=1; break; }; sleep 0.2; done
[ $ok = 1 ] && pass "metrics: Prometheus scrapes the agent (up == 1)" ||
	{ fail "metrics: Prometheus never scraped the agent: $(tail -n 3 "$ST_TMP/prom.log")"; exit 0; }

in_ns curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9464/healthz > "$ST_TMP/h" 2>/dev/null
in_ns curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9464/readyz > "$ST_TMP/r" 2>/dev/null
[ "$(cat "$ST_TMP/h")" = 200 ] && [ "$(cat "$ST_TMP/r")" = 200 ] && pass "metrics: /healthz and /readyz answer 200 while capturing" ||
	fail "metrics: /healthz $(cat "$ST_TMP/h"), /readyz $(cat "$ST_TMP/r")"

# the client: N keep-alive requests; its own count is the oracle
urls=(); for i in $(seq 1 $N); do urls+=("http://127.0.0.1/m/$i"); done
in_ns curl -s -o /dev/null -w '%{http_code}\n' "${urls[@]}" > "$ST_TMP/client.codes"
sent=$(grep -c '^200$' "$ST_TMP/client.codes")
[ "$sent" = $N ] || fail "metrics: client got $sent of $N answers"

# hostile clients while the scrapes go on: garbage, half a request left open, a flood
in_ns python3 - <<'PY' > "$ST_TMP/flood.txt" 2>&1
import socket, threading, time
def one(payload, keep=False):
    try:
        s = socket.create_connection(("127.0.0.1", 9464), timeout=10)
        s.sendall(payload)
        if keep:
            return s
        data = b""
        while True:
            b = s.recv(65536)
            if not b: break
            data += b
        s.close()
        return data
    except Exception as e:
        return repr(e).encode()
for p in (b"\x16\x03\x01\x00\xff garbage\r\n\r\n", b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n", b"\x00\x01\x02\r\n\r\n"):
    one(p)
slow = [one(b"GET /metr", keep=True) for _ in range(50)]
res = []
def scrape():
    res.append(one(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
ts = [threading.Thread(target=scrape) for _ in range(1000)]
t0 = time.time()
for t in ts: t.start()
for t in ts: t.join()
ok = sum(1 for r in res if r.startswith(b"HTTP/1.1 200") and b"shadowtap_http_records_total" in r)
print(f"concurrent_ok={ok} of {len(res)} in {time.time()-t0:.1f}s")
for s in slow:
    if hasattr(s, "close"): s.close()
PY
conc=$(grep -o 'concurrent_ok=[0-9]*' "$ST_TMP/flood.txt" | cut -d= -f2)
[ "${conc:-0}" -ge 1000 ] && pass "metrics: 1,000 concurrent scrapes answered with garbage and slow clients around ($(cat "$ST_TMP/flood.txt"))" ||
	fail "metrics: concurrent scrapes: $(tail -n 2 "$ST_TMP/flood.txt")"

# settle: the agent's record count stops moving, then Prometheus must see the final value
prev=""; stable=0
for _ in $(seq 1 100); do
	cur=$(in_ns curl -s -m 2 http://127.0.0.1:9464/metrics | grep -E '^shadowtap_output_written_total ' | cut -d' ' -f2)
	if [ -n "$cur" ] && [ "$cur" = "$prev" ]; then stable=$((stable + 1)); else stable=0; fi
	[ $stable -ge 3 ] && break
	prev=$cur; sleep 0.5
done
for _ in $(seq 1 40); do [ "$(promq shadowtap_output_written_total)" = "$cur" ] && break; sleep 0.25; done
in_ns curl -s http://127.0.0.1:9464/metrics > "$ST_TMP/exposition.txt"
if out=$(promtool check metrics < "$ST_TMP/exposition.txt" 2>&1); then
	pass "metrics: promtool check metrics accepts the exposition ($(grep -c '^shadowtap_' "$ST_TMP/exposition.txt") samples)"
else
	fail "metrics: promtool: $(echo "$out" | head -n 3)"
fi
p_records=$(promq shadowtap_http_records_total)
p_written=$(promq shadowtap_output_written_total)
p_replayed=$(promq shadowtap_replay_succeeded_total)
p_hist=$(promq shadowtap_serverb_duration_seconds_count)
st_agent_stop
summary() { grep -E "^$1:" "$ST_TMP/agent.log" | grep -oE "(^| )$2=[0-9]+" | head -n 1 | cut -d= -f2; }
s_records=$(summary http records); s_written=$(summary output written); s_replayed=$(summary replay succeeded)
[ "$ST_AGENT_RC" = 0 ] || fail "metrics: agent exited $ST_AGENT_RC"
if [ "$p_records" = "$s_records" ] && [ "$p_written" = "$s_written" ] && [ "$p_replayed" = "$s_replayed" ] &&
   [ "$s_records" = "$N" ] && [ "$s_replayed" = "$N" ]; then
	pass "metrics: Prometheus saw records=$p_records written=$p_written replayed=$p_replayed, as the exit summary and the client ($N)"
else
	fail "metrics: Prometheus records=$p_records written=$p_written replayed=$p_replayed; summary $s_records/$s_written/$s_replayed; client $N"
fi
[ "$p_hist" = "$s_replayed" ] && pass "metrics: serverB latency histogram counted every replayed request ($p_hist)" ||
	fail "metrics: serverB histogram count $p_hist, replayed $s_replayed"
