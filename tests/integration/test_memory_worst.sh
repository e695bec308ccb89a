#!/usr/bin/env bash
# Every default memory bound a remote client controls, full at once (issue 19 target 4,
# session 10): with default options (no --memory-limit, no other limit given) the
# agent's peak RSS (VmHWM) stays <= 256 MB while, at the same time,
#  - slow uploads (real sockets to real nginx serverA: POSTs whose bodies stop short
#    of their Content-Length and stay open) hold more than --max-held-bytes,
#  - crafted connections with a hole at their start (a pcap sent with tcpreplay onto
#    the veth: a real TCP stack never leaves a hole open) bring more out-of-order
#    bytes than --max-buffered-bytes within the hole timeout,
#  - complete POSTs (real sockets, real nginx) are replayed to a serverB that accepts
#    and never reads or answers, so the replay budget (--replay-max-bytes) fills.
# The bounds are shown reached by the agent's counters (http: evicted_budget, tcp:
# overflows_total and buffered_peak, replay: dropped memory_limit) and its "memory bound
# reached" warnings; serverA's nginx access log and the POST client's count of 200s
# say the load happened.
. "$(dirname "$0")/lib.sh"
if [ ! -x "$ST_BIN" ]; then skip "memory worst (build/shadowtap not built)"; exit 0; fi
if [ "$(id -u)" != 0 ]; then skip "memory worst (needs root)"; exit 0; fi
for t in nginx tcpreplay python3; do
	command -v $t >/dev/null || { skip "memory worst ($t not installed)"; exit 0; }
done
PY=$ST_ROOT/tests/integration/memory_worst.py
GEN=$ST_ROOT/tests/integration/memory_gen.py
LIMIT_KB=250000                 # 256 MB (256,000,000 bytes) in KiB
UPLOADS=${WORST_UPLOADS:-48}    # 48 x 600 KB = 28.8 MB against --max-held-bytes 16M
HOLES=${WORST_HOLES:-40}        # 40 x 400 KiB = 15.6 MiB against --max-buffered-bytes 8M
POST_SECS=${WORST_POST_SECS:-10}
kv() { grep -oE "(^| )$2=[0-9]+" "$1" | tail -1 | cut -d= -f2; }

st_ns st-mw-srv; st_ns st-mw-cli
st_link st-mw-srv st-w0 198.18.21.1/24 st-mw-cli st-wc0 198.18.21.2/24
# /upload reads the whole body before it answers (proxied to a closed port: a 502
# once the body is in, never while it trickles); / answers at once
st_nginx st-mw-srv 80 serverA "client_max_body_size 64m; location /upload { proxy_pass http://127.0.0.1:9; }" ||
	{ fail "memory worst: serverA nginx did not start"; exit 0; }
ip netns exec st-mw-srv python3 "$PY" mute 81 120 &
ST_PIDS+=("$!")
srv_mac=$(ip -n st-mw-srv -o link show st-w0 | grep -oE 'link/ether [0-9a-f:]+' | cut -d' ' -f2)
cli_mac=$(ip -n st-mw-cli -o link show st-wc0 | grep -oE 'link/ether [0-9a-f:]+' | cut -d' ' -f2)
python3 "$GEN" holes "$ST_TMP/holes.pcap" "$HOLES" 409600 198.18.21.1 "$srv_mac" "$cli_mac" ||
	{ fail "memory worst: could not generate the holes"; exit 0; }
log=$ST_TMP/worst.agent.log
if ! st_agent st-mw-srv "$log" -i st-w0 -p 80 -r http://127.0.0.1:81 -o "$ST_TMP/worst.ndjson" \
	--pin-dir /sys/fs/bpf/shadowtap-test-memory-worst; then
	fail "memory worst: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"
	exit 0
fi
hwm() { awk '/^VmHWM:/ { print $2 }' /proc/"$ST_AGENT_PID"/status 2>/dev/null; }
start_hwm=$(hwm)
# 1. the slow uploads, held open to the end
ip netns exec st-mw-cli python3 "$PY" uploads 198.18.21.1 "$UPLOADS" 600000 1000000 $((POST_SECS + 20)) \
	>"$ST_TMP/uploads.log" 2>&1 &
ST_PIDS+=("$!")
st_poll 30 grep -q uploads_sent= "$ST_TMP/uploads.log"
# 2. the POSTs whose replays serverB never answers
ip netns exec st-mw-cli python3 "$PY" posts 198.18.21.1 4 262144 "$POST_SECS" >"$ST_TMP/posts.log" 2>&1 &
posts=$!
# 3. the holes, while both of the above hold
sleep $((POST_SECS / 2))
ip netns exec st-mw-cli tcpreplay -q -i st-wc0 --topspeed "$ST_TMP/holes.pcap" >"$ST_TMP/tcpreplay.log" 2>&1
trc=$?
wait $posts
sleep 1
peak=$(hwm)
kill -USR1 "$ST_AGENT_PID"; sleep 0.5
st_agent_stop
ok_posts=$(kv "$ST_TMP/posts.log" posts_ok)
na=$(grep -c ' /flood/' "$ST_TMP/serverA.access.log" 2>/dev/null || echo 0)
echo "    load: $(cat "$ST_TMP/uploads.log" | tr '\n' ' ')posts answered 200: ${ok_posts:-?} (serverA logged $na);" \
	"tcpreplay exit $trc: $(grep -oE 'Actual: [0-9]+ packets[^)]*\)' "$ST_TMP/tcpreplay.log" | head -1)"
grep -E '^(tcp|http|replay|bpf|output|records):' "$log" | tail -12 | sed 's/^/    /'
grep 'memory bound reached' "$log" | sed 's/^/    log: /'
held_peak=$(kv "$log" held_peak); ev=$(kv "$log" evicted_budget)
buf_peak=$(kv "$log" buffered_peak); ovf=$(kv "$log" overflows_total)
dmem=$(grep -E '^replay: dropped' "$log" | tail -1 | grep -oE 'memory_limit=[0-9]+' | cut -d= -f2)
rfull=$(grep -E '^bpf:' "$log" | tail -1 | grep -oE 'ringbuf_full=[0-9]+' | cut -d= -f2)
echo "    peak RSS (VmHWM) ${peak:-?} KiB (${start_hwm:-?} KiB after start); held_peak=$held_peak" \
	"evicted_budget=$ev buffered_peak=$buf_peak overflows_total=$ovf replay dropped memory_limit=$dmem ring full=$rfull"
if [ -n "$held_peak" ] && [ "${ev:-0}" -gt 0 ] && [ "$held_peak" -gt $((15 << 20)) ] &&
	[ "$held_peak" -le $((16 << 20)) ] && grep -q 'memory bound reached: --max-held-bytes' "$log"; then
	pass "held bytes: the slow uploads filled --max-held-bytes 16M (peak $held_peak, $ev connections evicted, logged)"
else
	fail "held bytes: held_peak=${held_peak:-?} evicted_budget=${ev:-?} (want > 15 MiB, <= 16 MiB, evictions, a log line)"
fi
if [ -n "$buf_peak" ] && [ "${ovf:-0}" -gt 0 ] && [ "$buf_peak" -gt $((7 << 20)) ] &&
	[ "$buf_peak" -le $((8 << 20)) ] && grep -q 'memory bound reached: --max-buffered-bytes' "$log"; then
	pass "out-of-order bytes: the holes filled --max-buffered-bytes 8M (peak $buf_peak, $ovf holes made gaps by it, logged)"
else
	fail "out-of-order bytes: buffered_peak=${buf_peak:-?} overflows_total=${ovf:-?} (want > 7 MiB, <= 8 MiB, overflows_total > 0, a log line)"
fi
if [ "${dmem:-0}" -gt 0 ] && [ "${ok_posts:-0}" -gt 0 ] && grep -q 'memory bound reached: --replay-max-bytes' "$log"; then
	pass "replay budget: serverB never answering filled --replay-max-bytes 80M ($dmem records dropped as memory_limit of ${ok_posts} POSTs, logged)"
else
	fail "replay budget: dropped memory_limit=${dmem:-?} with ${ok_posts:-?} POSTs answered (want > 0 and a log line)"
fi
if [ -n "$peak" ] && [ "$peak" -le "$LIMIT_KB" ]; then
	pass "peak RSS $peak KiB <= 256 MB with every bound above full, default options"
else
	fail "peak RSS ${peak:-?} KiB > 256 MB ($LIMIT_KB KiB) with default options"
fi
