#!/usr/bin/env bash
# Issue 16 item 4: while serverB is down the agent says so on stderr, rate-limited:
# "replay: serverB URL unreachable (connection refused), N requests failed in the
# last 10 s" at the first failure and then at most every 10 s, and one line when it
# is back. Real nginx as serverA and serverB; serverB is stopped mid-run for ~15 s
# while a client keeps sending. Oracles: the client's own count of requests sent
# during the outage, and the number of warning lines against the outage's length.
. "$(dirname "$0")/lib.sh"
st_need_root "serverB down"
NS=st-sbd PIN=/sys/fs/bpf/shadowtap-test-sbd
sbd_cleanup() { st_cleanup; rm -rf "$PIN"; }
trap sbd_cleanup EXIT
st_ns $NS
st_nginx $NS 80 serverA && st_nginx $NS 81 serverB || { fail "serverB down: nginx did not start"; exit 0; }
B_PID=${ST_PIDS[-1]}
log=$ST_TMP/agent.log rec=$ST_TMP/rec.ndjson
st_agent $NS "$log" -i lo -p 80 -r http://127.0.0.1:81 -o "$rec" --pin-dir "$PIN" \
	|| { fail "serverB down: agent did not start ($(tail -2 "$log" | tr '\n' ' '))"; exit 0; }
send() { # N TAG: N requests, 0.1 s apart
	for i in $(seq 1 "$1"); do
		ip netns exec $NS curl -s -o /dev/null "http://127.0.0.1/$2/$i"; sleep 0.1
	done
}
send 10 up1
st_poll 10 st_lines_ge "$rec" 10
kill "$B_PID"; st_poll 10 bash -c "! kill -0 $B_PID 2>/dev/null"
t0=$(date +%s)
send 120 down            # about 15 s on this machine
st_poll 15 st_lines_ge "$rec" 130
outage=$(( $(date +%s) - t0 ))
ip netns exec $NS nginx -c "$ST_TMP/nginx-serverB/nginx.conf" -p "$ST_TMP/nginx-serverB"
send 10 up2
back() { grep -q 'serverB http://127.0.0.1:81 reachable again' "$log"; }
st_poll 25 back
st_agent_stop
kill "$(cat "$ST_TMP/nginx-serverB/nginx.pid")" 2>/dev/null

w=$(grep -c 'replay: serverB http://127.0.0.1:81 unreachable (connection refused), [0-9]* requests failed in the last 10 s' "$log")
# every failure is in one line or the next: the last window may end after serverB is back
n=$(grep 'replay: serverB http://127.0.0.1:81' "$log" | grep -oE '[0-9]+ requests failed' | awk '{s+=$1} END {print s+0}')
maxw=$(( outage / 10 + 2 ))
# every one of the 120 sent during the outage fails; a few of the 10 sent just after
# it may too (reconnect back-off, at most 1 s); the records' replay.error count agrees
rf=$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l).get("replay",{}).get("error")))' "$rec")
if [ "$w" -ge 1 ] && [ "$w" -le "$maxw" ] && [ "$n" -ge 120 ] && [ "$n" -le 130 ] && [ "$n" = "$rf" ]; then
	pass "serverB down: $w warning lines over a ${outage} s outage (at most $maxw), $n requests reported failed (120 sent during it, $rf records with a replay.error)"
else
	fail "serverB down: $w warning lines (want 1..$maxw for ${outage} s), $n requests reported failed (want 120..130 and = $rf records with a replay.error): $(grep 'serverB' "$log" | head -3 | tr '\n' ' ')"
fi
back && pass "serverB down: 'reachable again' once serverB was back" \
	|| fail "serverB down: no 'reachable again' line ($(grep 'serverB' "$log" | tail -2 | tr '\n' ' '))"
