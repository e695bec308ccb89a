#!/usr/bin/env bash
# --workers N end to end: real nginx serverA and serverB, the test client
# (http_client.py: keep-alive and pipelined connections, GET/HEAD/POST/chunked)
# against serverA over veth, shadowtap with N workers capturing and replaying to
# serverB. For N = 2 and 4 in socket mode, 2 in tc and xdp mode: every request is recorded exactly
# once and complete (client manifest), reaches serverB exactly once and in the
# client's per-connection order (serverB's access log), and every worker's ring got
# events (the per-worker counters of the exit summary): a hash that sent everything
# to one ring, or split a connection's directions, fails here.
. "$(dirname "$0")/lib.sh"
st_need_root "workers"
N=${WORKERS_REQUESTS:-3000}
CONNS=32     # spread: with 4 workers, P(a worker gets no connection) = 4 * (3/4)^32 < 0.1%
for t in nginx python3; do
	command -v $t >/dev/null || { skip "workers ($t not installed)"; exit 0; }
done

st_ns st-wk-srv; st_ns st-wk-cli
st_link st-wk-srv st-w0 198.18.40.1/24 st-wk-cli st-wc0 198.18.40.2/24
# bodies up to 16 MB (the shared replay budget's case below)
st_nginx st-wk-srv 80 serverA "client_max_body_size 16m;" || { fail "workers: nginx serverA did not start"; exit 0; }
st_nginx st-wk-srv 81 serverB "client_max_body_size 16m;" || { fail "workers: nginx serverB did not start"; exit 0; }

run_case() { # mode workers [capture: no replay]
	local mode=$1 nw=$2 name=$1-w$2${3:+-$3} rc i ev replay=(-r http://127.0.0.1:81)
	local rec=$ST_TMP/$name.ndjson log=$ST_TMP/$name.agent.log man=$ST_TMP/$name.manifest
	[ "${3:-}" = capture ] && replay=()
	: > "$ST_TMP/serverA.access.log"; : > "$ST_TMP/serverB.access.log"
	if ! st_agent st-wk-srv "$log" -i st-w0 -p 80 --capture "$mode" --workers "$nw" -o "$rec" \
		"${replay[@]}" --pin-dir /sys/fs/bpf/shadowtap-test-$name; then
		fail "$name: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"
		return
	fi
	if ! ip netns exec st-wk-cli python3 "$ST_ROOT/tests/integration/http_client.py" --host 198.18.40.1 \
		--port 80 -n "$N" -c "$CONNS" --pipelined 8 --manifest "$man" 2>"$ST_TMP/$name.client.err"; then
		fail "$name: client failed ($(tail -2 "$ST_TMP/$name.client.err" | tr '\n' ' '))"
	fi
	# records and replays settle within seconds once the client is done
	st_poll 20 st_lines_ge "$rec" "$N"
	[ ${#replay[@]} = 0 ] || st_poll 20 st_lines_ge "$ST_TMP/serverB.access.log" "$N"
	st_agent_stop; rc=$ST_AGENT_RC
	[ "$rc" = 0 ] && pass "$name: SIGINT drains and exits 0" || fail "$name: agent exit code $rc"
	grep -E '^(bpf|workers|http|output):|^replay: submitted' "$log" | sed "s/^/    $name /"
	python3 "$ST_ROOT/tests/integration/check_records.py" --manifest "$man" --records "$rec" \
		--name "$name" --expect "$N"
	python3 "$ST_ROOT/tests/integration/check_workers.py" --manifest "$man" \
		--server-a-log "$ST_TMP/serverA.access.log" --records "$rec" \
		${replay[0]:+--server-b-log "$ST_TMP/serverB.access.log"} --name "$name"
	if grep -q "^workers: threads=$nw " "$log"; then
		for i in $(seq 0 $((nw - 1))); do
			ev=$(grep '^workers:' "$log" | tail -1 | grep -oE " read_$i=[0-9]+" | cut -d= -f2)
			[ "${ev:-0}" -gt 0 ] && pass "$name: worker $i got events ($ev)" \
				|| fail "$name: worker $i got no events"
		done
	else
		fail "$name: no 'workers: threads=$nw' line in the exit summary"
	fi
	grep -qE '^bpf:.* ringbuf_full=0 ' "$log" && pass "$name: no ring-buffer drops" \
		|| fail "$name: ring-buffer drops"
	[ ${#replay[@]} = 0 ] && return
	# the workers' replay counters are added, their settings (the defaults here) are
	# printed once: a sum of settings would read floor=$((16 * nw))
	if grep -qE "^replay: connections .* max=256 floor=16 order=session pipeline=16$" "$log"; then
		pass "$name: replay settings printed once (max=256 floor=16 pipeline=16)"
	else
		fail "$name: replay settings line: $(grep '^replay: connections' "$log" | tail -1)"
	fi
	ev=$(grep '^replay: submitted' "$log" | tail -1 | grep -oE ' succeeded=[0-9]+' | cut -d= -f2)
	[ "${ev:-0}" = "$N" ] && pass "$name: replay succeeded summed over workers ($ev)" \
		|| fail "$name: replay succeeded=${ev:-none}, expected $N"
}

run_case socket 2
run_case socket 4
run_case tc 2
run_case xdp 2
# capture-only: the worker threads encode their records themselves (no replay thread)
run_case socket 2 capture

# --replay-max-bytes is one budget the workers share: a 4 MB POST with a 6 MiB budget
# and 2 workers is replayed (each worker's half, 3 MiB, could not hold it: that
# split refused it as "dropped: memory limit")
budget_case() {
	local name=budget-w2 log=$ST_TMP/budget-w2.agent.log rec=$ST_TMP/budget-w2.ndjson code mem
	: > "$ST_TMP/serverB.access.log"
	head -c 4000000 /dev/urandom > "$ST_TMP/big-post.bin"
	if ! st_agent st-wk-srv "$log" -i st-w0 -p 80 --workers 2 --replay-max-bytes 6M -o "$rec" \
		-r http://127.0.0.1:81 --pin-dir /sys/fs/bpf/shadowtap-test-$name; then
		fail "$name: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"
		return
	fi
	code=$(ip netns exec st-wk-cli curl -s -o /dev/null -w '%{http_code}' -H 'Expect:' \
		--data-binary @"$ST_TMP/big-post.bin" http://198.18.40.1/big-post)
	[ "$code" = 200 ] || fail "$name: serverA answered the POST with $code"
	st_poll 20 grep -q 'big-post' "$ST_TMP/serverB.access.log"
	st_poll 20 st_lines_ge "$rec" 1
	st_agent_stop
	if grep -q 'big-post' "$ST_TMP/serverB.access.log"; then
		pass "$name: a 4 MB POST under a 6 MiB budget shared by 2 workers reached serverB"
	else
		fail "$name: serverB never saw the 4 MB POST ($(grep '^replay: dropped' "$log" | tail -1))"
	fi
	mem=$(grep '^replay: dropped' "$log" | tail -1 | grep -oE 'memory_limit=[0-9]+' | cut -d= -f2)
	[ "${mem:-x}" = 0 ] && pass "$name: replay dropped memory_limit=0" \
		|| fail "$name: replay dropped memory_limit=${mem:-none}"
}
budget_case
