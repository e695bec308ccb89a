#!/usr/bin/env bash
# Replay end to end: real nginx serverA (:80) and serverB (:81) in one namespace,
# clients in another over veth, shadowtap capturing serverA's port on the veth and
# replaying to serverB over loopback. Checks exactly-once and per-connection order
# in serverB's log, the pool size, the diff, and the fault cases (serverB down for a
# while, answering after 1 s, answering garbage). Prints serverA's wrk throughput
# with and without shadowtap (information only: no timing asserts on a shared box).
. "$(dirname "$0")/lib.sh"
st_need_root "replay"
N=${REPLAY_REQUESTS:-10000}
POOL=8
D=$ST_ROOT/tests/integration/replay
NS=st-rp-srv
CNS=st-rp-cli
ADDR=198.18.20.1
PIN=/sys/fs/bpf/shadowtap-test-replay
FAULT_PIDS=()

for t in nginx python3 wrk; do
	command -v $t >/dev/null || { skip "replay ($t not installed)"; exit 0; }
done

# rp_nginx NAME PORT STATUS X-VERSION JSON-DIFF JSON-SAME: the answers that differ
rp_nginx() {
	local name=$1 port=$2 st=$3 hv=$4 jd=$5 js=$6 dir=$ST_TMP/$1
	mkdir -p "$dir"
	nginx_conf "$dir" "$(cat <<NGX
	server {
		listen $port reuseport backlog=4096;
		access_log $ST_TMP/$name.access.log rp;
		location /diff/status/ { return $st "status\n"; }
		location /diff/header/ { add_header X-Version $hv; return 200 "header\n"; }
		location /diff/json/ { default_type application/json; return 200 '$jd'; }
		location /same/json/ { default_type application/json; return 200 '$js'; }
		location / { return 200 "same \$request_uri\n"; }
	}
NGX
)"
	ip netns exec $NS nginx -c "$dir/nginx.conf" -p "$dir" || return 1
	for _ in $(seq 1 50); do [ -s "$dir/nginx.pid" ] && break; sleep 0.1; done
	ST_PIDS+=("$(cat "$dir/nginx.pid")")
}

serverA() { rp_nginx serverA 80 200 1 '{"a":1,"b":{"c":[1,2,3]}}' '{"a":1,"b":[true,null,"x"]}'; }
serverB() { rp_nginx serverB 81 404 2 '{"b":{"c":[1,2,4]},"a":1}' '{"b": [true, null, "x"], "a": 1.0}'; }
serverB_kill() {
	local pid
	pid=$(cat "$ST_TMP/serverB/nginx.pid")
	kill "$pid" 2>/dev/null
	st_poll 10 sh -c "! kill -0 $pid 2>/dev/null" || fail "down: serverB did not stop"
}
listening() { ip netns exec $NS ss -Hltn "sport = :$1" | grep -q .; }

cleanup_faults() {
	local p
	for p in "${FAULT_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$PIN"-*
}
trap 'cleanup_faults; st_cleanup' EXIT

# agent_run NAME ARGS...: start the agent capturing serverA's port on the veth
agent_run() {
	local name=$1; shift
	if ! st_agent $NS "$ST_TMP/$name.agent.log" -i st-rpa0 -p 80 -o "$ST_TMP/$name.ndjson" \
		--pin-dir "$PIN-$name" "$@"; then
		fail "$name: agent did not start ($(tail -3 "$ST_TMP/$name.agent.log" | tr '\n' ' '))"
		return 1
	fi
}

client() { # name n conns rate
	ip netns exec $CNS python3 "$D/client.py" --host $ADDR --port 80 -n "$2" --conns "$3" \
		--rate "$4" --manifest "$ST_TMP/$1.manifest" 2>"$ST_TMP/$1.client.err" ||
		fail "$1: client errors ($(head -2 "$ST_TMP/$1.client.err" | tr '\n' ' '))"
}

agent_stop() { # name: SIGINT, exit code checked, VmHWM echoed to the log
	local name=$1 hwm rc
	hwm=$(awk '/VmHWM/ {print $2}' /proc/"$ST_AGENT_PID"/status 2>/dev/null)
	echo "vmhwm_kb=${hwm:-0}" >> "$ST_TMP/$name.hwm"
	# not in $(...): wait only works on a child of this shell
	st_agent_stop
	rc=$ST_AGENT_RC
	[ "$rc" = 0 ] && pass "$name: SIGINT drains and exits 0" || fail "$name: agent exit code $rc"
	grep -E '^(shadowtap: )?replay:' "$ST_TMP/$name.agent.log" | sed "s/^/    $name /"
}

stat_of() { # log key: first value of key=N on replay: lines
	grep -E 'replay:' "$1" | grep -oE "(^| )$2=[0-9]+" | tail -1 | cut -d= -f2
}

wrk_rps() {
	ip netns exec $CNS wrk -t2 -c32 -d4s "http://$ADDR/plain/c/999/0" 2>/dev/null |
		awk '/Requests\/sec/ {print $2}'
}

check() { python3 "$D/check.py" "$@"; }

st_ns $NS
st_ns $CNS
st_link $NS st-rpa0 $ADDR/24 $CNS st-rpc0 198.18.20.2/24
serverA || { fail "replay: serverA nginx did not start"; exit 0; }
serverB || { fail "replay: serverB nginx did not start"; exit 0; }

base_rps=$(wrk_rps)

# healthy: N requests, exactly once and in order at serverB
# a fixed pool (floor = ceiling): the connection count below is checked against it
if agent_run healthy -r http://127.0.0.1:81 --replay-connections $POOL --replay-connections-max $POOL; then
	client healthy "$N" 10 0
	st_poll 30 st_lines_ge "$ST_TMP/healthy.ndjson" "$N"
	agent_stop healthy
	rec=$(stat_of "$ST_TMP/healthy.agent.log" reconnects)
	check --name healthy --mode healthy --expect "$N" --manifest "$ST_TMP/healthy.manifest" \
		--records "$ST_TMP/healthy.ndjson" --serverb-log "$ST_TMP/serverB.access.log" \
		--max-conns $((POOL + ${rec:-0}))
fi

# serverA throughput while shadowtap captures and replays everything
if agent_run wrk -r http://127.0.0.1:81 --replay-connections $POOL; then
	tap_rps=$(wrk_rps)
	agent_stop wrk
	echo "    wrk serverA requests/s: without shadowtap ${base_rps:-?}, with shadowtap ${tap_rps:-?}"
fi

# serverB down for about a second in the middle of the run
if agent_run down -r http://127.0.0.1:81 --replay-connections $POOL --replay-connect-timeout 1000; then
	before=$(wc -l < "$ST_TMP/serverB.access.log" 2>/dev/null || echo 0)
	# 5 s of traffic: after serverB is back there is well over the 1 s maximum
	# reconnect back-off left, so the last requests must succeed again
	client down 5000 10 1000 &
	cpid=$!
	# take serverB down once replay is under way (progress, not wall time: a
	# loaded machine runs the client slower), for long enough that requests
	# arrive while it is down
	for _ in $(seq 1 100); do
		[ $(( $(wc -l < "$ST_TMP/serverB.access.log") - before )) -ge 300 ] && break
		sleep 0.05
	done
	serverB_kill
	sleep 1.5
	serverB || fail "down: serverB did not restart"
	wait $cpid
	st_poll 30 st_lines_ge "$ST_TMP/down.ndjson" 5000
	agent_stop down
	check --name down --mode down --expect 5000 --manifest "$ST_TMP/down.manifest" --records "$ST_TMP/down.ndjson"
fi

# serverB answers after 1 s; the replay timeout is 500 ms
ip netns exec $NS python3 "$D/fault_server.py" --port 82 --mode slow --delay 1 --log "$ST_TMP/slow.log" &
FAULT_PIDS+=($!)
ip netns exec $NS python3 "$D/fault_server.py" --port 83 --mode garbage --log "$ST_TMP/garbage.log" &
FAULT_PIDS+=($!)
st_poll 20 listening 82 || fail "slow: fault server did not listen"
st_poll 20 listening 83 || fail "garbage: fault server did not listen"
if agent_run slow -r http://127.0.0.1:82 --replay-connections 4 --replay-timeout 500 --replay-queue 1000; then
	client slow 3000 10 0
	st_poll 10 st_lines_ge "$ST_TMP/slow.ndjson" 3000
	agent_stop slow
	check --name slow --mode slow --expect 3000 --manifest "$ST_TMP/slow.manifest" --records "$ST_TMP/slow.ndjson"
	hwm=$(cut -d= -f2 "$ST_TMP/slow.hwm")
	if [ "${hwm:-0}" -gt 0 ] && [ "$hwm" -lt 262144 ]; then
		pass "slow: agent memory bounded (VmHWM ${hwm} kB)"
	else
		fail "slow: agent VmHWM ${hwm:-unknown} kB"
	fi
	drops=$(stat_of "$ST_TMP/slow.agent.log" queue_full)
	echo "    slow: dropped queue_full=${drops:-?}"
fi

# one request at a time per connection: this case is about spotting a malformed
# answer, not about what a pipelined request behind it meets when the server closes
if agent_run garbage -r http://127.0.0.1:83 --replay-connections 4 --replay-pipeline 1; then
	client garbage 500 5 0
	st_poll 10 st_lines_ge "$ST_TMP/garbage.ndjson" 500
	agent_stop garbage
	check --name garbage --mode garbage --expect 500 --manifest "$ST_TMP/garbage.manifest" --records "$ST_TMP/garbage.ndjson"
fi
exit 0
