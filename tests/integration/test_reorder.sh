#!/usr/bin/env bash
# Reorder and duplication: the client mix of test_live.sh is captured to a pcap over
# veth (tcpdump), then shuffled within a window of 8 packets with 5% of the payload
# segments duplicated (pcap_shuffle.py: never past the peer's ACK of a segment, as no
# capture point sees that). The shuffled capture must give records identical to the
# clean one (timing fields aside), both offline (--input-pcap) and live: tcpreplay
# sends each file onto a veth where a live agent captures it.
. "$(dirname "$0")/lib.sh"
st_need_root "reorder/duplication"
N=${REORDER_REQUESTS:-1000}
for t in nginx python3 tcpdump tcpreplay; do
	command -v $t >/dev/null || { skip "reorder ($t not installed)"; exit 0; }
done

st_ns st-ro-srv; st_ns st-ro-cli
st_link st-ro-srv st-r0 198.18.40.1/24 st-ro-cli st-rc0 198.18.40.2/24
st_nginx st-ro-srv 80 serverA || { fail "reorder: nginx did not start"; exit 0; }
ip netns exec st-ro-srv tcpdump -i st-r0 -s 0 -U -w "$ST_TMP/clean.pcap" 'tcp port 80' 2>"$ST_TMP/tcpdump.err" &
TD=$!; ST_PIDS+=("$TD")
st_poll 5 grep -q "listening on" "$ST_TMP/tcpdump.err"
if ! ip netns exec st-ro-cli python3 "$ST_ROOT/tests/integration/http_client.py" --host 198.18.40.1 \
	--port 80 -n "$N" --manifest "$ST_TMP/manifest" 2>"$ST_TMP/client.err"; then
	fail "reorder: client failed ($(tail -2 "$ST_TMP/client.err" | tr '\n' ' '))"
fi
sleep 1; kill -INT "$TD"; wait "$TD" 2>/dev/null
python3 "$ST_ROOT/tests/integration/pcap_shuffle.py" "$ST_TMP/clean.pcap" "$ST_TMP/shuffled.pcap" \
	--window 8 --dup 5 --seed 13 || { fail "reorder: shuffle failed"; exit 0; }

# records without what depends on the capture clock, sorted by event id
norm() {
	python3 - "$1" <<'PY'
import json, sys
out = []
def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if k not in ("@timestamp", "duration", "ts", "start", "end")}
    if isinstance(o, list):
        return [strip(v) for v in o]
    return o
for l in open(sys.argv[1]):
    out.append(json.dumps(strip(json.loads(l)), sort_keys=True))
print("\n".join(sorted(out)))
PY
}

for f in clean shuffled; do
	"$ST_BIN" --input-pcap "$ST_TMP/$f.pcap" -p 80 -o "$ST_TMP/$f.offline.ndjson" 2>"$ST_TMP/$f.offline.log" \
		|| fail "reorder: --input-pcap $f failed"
	norm "$ST_TMP/$f.offline.ndjson" > "$ST_TMP/$f.offline.norm"
done
grep -E '^tcp:' "$ST_TMP/shuffled.offline.log" | sed 's/^/    shuffled /'
python3 "$ST_ROOT/tests/integration/check_records.py" --manifest "$ST_TMP/manifest" \
	--records "$ST_TMP/clean.offline.ndjson" --name "reorder: clean capture (offline)" --expect "$N"
if grep -qE ' ooo=[1-9].* retrans=[1-9]| retrans=[1-9].*ooo=[1-9]' "$ST_TMP/shuffled.offline.log"; then
	pass "reorder: the shuffled capture has out-of-order and duplicate segments"
else
	fail "reorder: the shuffled capture shows no reordering or duplicates"
fi
if cmp -s "$ST_TMP/clean.offline.norm" "$ST_TMP/shuffled.offline.norm"; then
	pass "reorder: offline, shuffled+duplicated capture gives the clean run's $(wc -l < "$ST_TMP/clean.offline.norm") records"
else
	fail "reorder: offline records differ ($(diff "$ST_TMP/clean.offline.norm" "$ST_TMP/shuffled.offline.norm" | grep -c '^[<>]') lines)"
fi

# live: tcpreplay onto a veth, the agent capturing its far end (MTU 65535: the capture
# holds GSO/GRO segments up to 64 KiB)
st_ns st-ro-tx; st_ns st-ro-rx
st_link st-ro-tx st-t0 198.18.41.1/24 st-ro-rx st-t1 198.18.41.2/24
ip -n st-ro-tx link set st-t0 mtu 65535; ip -n st-ro-rx link set st-t1 mtu 65535
for f in clean shuffled; do
	log=$ST_TMP/$f.live.log rec=$ST_TMP/$f.live.ndjson
	if ! st_agent st-ro-rx "$log" -i st-t1 -p 80 -o "$rec" --pin-dir /sys/fs/bpf/shadowtap-test-ro-$f; then
		fail "reorder: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"; continue
	fi
	ip netns exec st-ro-tx tcpreplay -q -i st-t0 "$ST_TMP/$f.pcap" >"$ST_TMP/$f.tcpreplay.log" 2>&1 \
		|| fail "reorder: tcpreplay $f failed ($(tail -2 "$ST_TMP/$f.tcpreplay.log" | tr '\n' ' '))"
	st_poll 10 st_lines_ge "$rec" "$N"
	st_agent_stop
	norm "$rec" > "$ST_TMP/$f.live.norm"
done
if cmp -s "$ST_TMP/clean.live.norm" "$ST_TMP/clean.offline.norm"; then
	pass "reorder: live (tcpreplay onto veth), the clean capture gives the offline records"
else
	fail "reorder: live clean records differ from offline ($(diff "$ST_TMP/clean.offline.norm" "$ST_TMP/clean.live.norm" | grep -c '^[<>]') lines)"
fi
if cmp -s "$ST_TMP/shuffled.live.norm" "$ST_TMP/clean.live.norm"; then
	pass "reorder: live (tcpreplay onto veth), shuffled+duplicated gives the clean run's records"
else
	fail "reorder: live shuffled records differ ($(diff "$ST_TMP/clean.live.norm" "$ST_TMP/shuffled.live.norm" | grep -c '^[<>]') lines)"
fi
