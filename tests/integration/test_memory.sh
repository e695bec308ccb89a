#!/usr/bin/env bash
# One memory budget against remote clients (issue 15 item 1).
#  1. --input-pcap regression: 2,000 connections each sending 60 KB of a request head
#     that never ends (500 of them also 60 KB of a response head) used to drive the
#     agent's peak RSS to ~190 MB with --max-held-bytes 64K while held_bytes said 0 and
#     no record or counter showed them. Now: held_peak <= 64K, the peak RSS stays
#     within 16 MiB of the same agent's on a pcap without them, and every one of
#     those connections has a record marked incomplete and evicted.
#  2. live (root): see the second half.
. "$(dirname "$0")/lib.sh"
if [ ! -x "$ST_BIN" ]; then skip "memory (build/shadowtap not built)"; exit 0; fi
GEN=$ST_ROOT/tests/integration/memory_gen.py

# peak RSS (ru_maxrss, the kernel's VmHWM of the child) in KiB, printed to stderr
maxrss() {
	python3 -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
print("maxrss_kb=%d" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(rc)' "$@"
}
kv() { grep -oE "(^| )$2=[0-9]+" "$1" | tail -1 | cut -d= -f2; }

python3 "$GEN" heads "$ST_TMP/heads.pcap" 2000 61440 500
python3 "$GEN" heads "$ST_TMP/base.pcap" 0 100 0
maxrss "$ST_BIN" --input-pcap "$ST_TMP/base.pcap" --max-held-bytes 64K -o "$ST_TMP/base.ndjson" 2>"$ST_TMP/base.log"
maxrss "$ST_BIN" --input-pcap "$ST_TMP/heads.pcap" --max-held-bytes 64K -o "$ST_TMP/heads.ndjson" 2>"$ST_TMP/heads.log"
rc=$?
base=$(kv "$ST_TMP/base.log" maxrss_kb); peak=$(kv "$ST_TMP/heads.log" maxrss_kb)
held_peak=$(kv "$ST_TMP/heads.log" held_peak); held=$(kv "$ST_TMP/heads.log" held_bytes)
echo "    pcap: peak RSS ${peak} KiB (${base} KiB without the unfinished heads); $(grep -E '^http:' "$ST_TMP/heads.log" | grep -oE '(held_bytes|held_peak|unfinished_heads|evicted_[a-z_]+)=[0-9]+' | tr '\n' ' ')"
if [ "$rc" = 0 ] && [ -n "$peak" ] && [ -n "$base" ] && [ "$peak" -le $((base + 16384)) ]; then
	pass "pcap: 2,000 unfinished 60 KB heads raise the peak RSS by $((peak - base)) KiB (bound 16 MiB)"
else
	fail "pcap: peak RSS ${peak:-?} KiB vs ${base:-?} KiB without the heads (rc $rc)"
fi
if [ -n "$held_peak" ] && [ "$held_peak" -gt 32768 ] && [ "$held_peak" -le 65536 ] && [ "$held" = 0 ]; then
	pass "pcap: held_bytes tells the truth: peak $held_peak within --max-held-bytes 64K, 0 at the end"
else
	fail "pcap: held_peak=${held_peak:-?} held_bytes=${held:-?} (want 32K < peak <= 64K: 2,000 heads press on it; 0 at the end)"
fi
python3 - "$ST_TMP/heads.ndjson" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
held = [r for r in recs if r["destination"]["port"] == 80 and r["source"]["ip"].startswith("10.2.")]
ev = [r for r in held if r["capture"].get("incomplete") and r["capture"].get("evicted") == "memory budget"
      and r["capture"].get("malformed") == "request head not finished"]
ports = {(r["source"]["ip"], r["source"]["port"]) for r in ev}
normal = [r for r in recs if r.get("url", {}).get("path", "").startswith("/normal/")
          and r["capture"].get("complete")]
ok = len(ports) == 2000 and len(held) == 2000 and len(normal) == 3
print(("PASS: " if ok else "FAIL: ") + "pcap: %d of 2000 held connections have a record marked incomplete, "
      "evicted (memory budget); %d of 3 normal exchanges complete" % (len(ports), len(normal)))
PY

# 2. live, under the budget. The capture sees packets, not sockets, so the 100,000
#    trickling clients and the SYN flood are crafted packets (memory_gen.py flood,
#    sent with tcpreplay from the client namespace onto the veth toward serverA's
#    address, from ~98,000 source addresses): 100,000 real kernel sockets would need
#    as many file descriptors and port pairs on this 2-core machine, and would
#    measure the kernel, not the agent, which only ever sees their packets. Meanwhile
#    a real client (curl, one connection per request) talks to real nginx serverA,
#    and the agent replays to real nginx serverB. Fixed before the run: the agent's
#    VmHWM stays under --memory-limit 64M, and at least 99% of the requests curl got
#    a 200 for are in serverB's access log.
if [ "$(id -u)" != 0 ]; then skip "memory live (needs root)"; exit 0; fi
for t in nginx tcpreplay curl; do
	command -v $t >/dev/null || { skip "memory live ($t not installed)"; exit 0; }
done
LIMIT_MB=64
CONNS=${MEMORY_CONNS:-100000}
SYNS=${MEMORY_SYNS:-100000}
PPS=${MEMORY_PPS:-25000}
st_ns st-mem-srv; st_ns st-mem-cli
st_link st-mem-srv st-m0 198.18.20.1/24 st-mem-cli st-mc0 198.18.20.2/24
st_nginx st-mem-srv 80 serverA || { fail "memory live: serverA nginx did not start"; exit 0; }
st_nginx st-mem-srv 81 serverB || { fail "memory live: serverB nginx did not start"; exit 0; }
srv_mac=$(ip -n st-mem-srv -o link show st-m0 | grep -oE 'link/ether [0-9a-f:]+' | cut -d' ' -f2)
cli_mac=$(ip -n st-mem-cli -o link show st-mc0 | grep -oE 'link/ether [0-9a-f:]+' | cut -d' ' -f2)
python3 "$GEN" flood "$ST_TMP/flood.pcap" "$CONNS" "$SYNS" 198.18.20.1 "$srv_mac" "$cli_mac" ||
	{ fail "memory live: could not generate the flood"; exit 0; }
log=$ST_TMP/live.agent.log
if ! st_agent st-mem-srv "$log" -i st-m0 -p 80 --memory-limit ${LIMIT_MB}M -r http://127.0.0.1:81 \
	-o "$ST_TMP/live.ndjson" --pin-dir /sys/fs/bpf/shadowtap-test-memory --stats 10; then
	fail "memory live: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"
	exit 0
fi
ip netns exec st-mem-cli tcpreplay -q -i st-mc0 --pps="$PPS" "$ST_TMP/flood.pcap" >"$ST_TMP/tcpreplay.log" 2>&1 &
flood=$!
# the normal client: one request after another for as long as the flood lasts
: >"$ST_TMP/client.ok"
i=0
while kill -0 $flood 2>/dev/null; do
	i=$((i + 1))
	code=$(ip netns exec st-mem-cli curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
		"http://198.18.20.1/normal/$i" 2>/dev/null)
	[ "$code" = 200 ] && echo "/normal/$i" >>"$ST_TMP/client.ok"
	sleep 0.05
done
wait $flood; frc=$?
sent=$(wc -l <"$ST_TMP/client.ok")
inb() { grep -c ' /normal/' "$ST_TMP/serverB.access.log" 2>/dev/null || echo 0; }
st_poll 30 sh -c "[ \$(grep -c ' /normal/' '$ST_TMP/serverB.access.log' 2>/dev/null || echo 0) -ge $sent ]"
hwm=$(awk '/^VmHWM:/ { print $2 }' /proc/"$ST_AGENT_PID"/status 2>/dev/null)
st_agent_stop
echo "    live: tcpreplay exit $frc: $(grep -oE 'Actual: [0-9]+ packets[^)]*\)' "$ST_TMP/tcpreplay.log" | head -1)"
grep -E '^(tcp|http|replay|bpf|output):' "$log" | tail -5 | sed 's/^/    live /'
echo "    live: peak RSS (VmHWM) ${hwm:-?} KiB under --memory-limit ${LIMIT_MB}M; evictions:" \
	"$(grep -E '^http:' "$log" | tail -1 | grep -oE '(unfinished_heads|evicted_[a-z_]+)=[0-9]+' | tr '\n' ' ')" \
	"flow table: $(grep -E '^tcp:' "$log" | tail -1 | grep -oE ' (flows|evicted|overflows)=[0-9]+' | tr '\n' ' ')"
inB=$(inb)
rec=$(grep -c '"path":"/normal/' "$ST_TMP/live.ndjson" 2>/dev/null || echo 0)
echo "    live: the client got $sent answers; $rec records of them; serverB logged $inB"
if [ -n "$hwm" ] && [ "$hwm" -lt $((LIMIT_MB * 1024)) ]; then
	pass "live: $CONNS trickling clients + $SYNS half-open SYNs: peak RSS $hwm KiB < ${LIMIT_MB} MiB"
else
	fail "live: peak RSS ${hwm:-?} KiB, budget ${LIMIT_MB} MiB"
fi
if [ "$frc" = 0 ] && [ "$sent" -ge 50 ] && [ $((inB * 100)) -ge $((sent * 99)) ] && [ $((rec * 100)) -ge $((sent * 99)) ]; then
	pass "live: the normal client's requests were captured ($rec) and replayed ($inB) of $sent during the flood"
else
	fail "live: the normal client sent $sent (need >= 50), $rec recorded, $inB replayed (need >= 99%), tcpreplay exit $frc"
fi
