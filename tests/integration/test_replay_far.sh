#!/usr/bin/env bash
# Replay to a distant serverB: nginx serverA in a namespace, 64 client connections
# from another namespace over veth (client.go, /NAME/c/<conn>/<seq> and X-Seq per
# request), serverB the latency-injecting slow_server.go 5 ms away. Checks, in every
# --replay-order: 0% loss at a sustained rate (serverA's nginx log against serverB's
# log, both ways, and one record per request), per-client-connection order at serverB
# in session and session-parallel order (serverB logs the kernel's receive timestamp),
# connections used within --replay-connections-max (the agent's peak_open and
# serverB's own count of connections open at once), and the faults (serverB down, a
# serverB that closes connections mid-pipeline, a slow serverB): every request
# answered or failed on its own, no silent duplicate, no POST sent twice.
# FAR_RATE (default 8000) requests/s for FAR_SECS (default 6) is the asserted rate:
# with other work saturating both cores the whole chain still ran 9,600-14,000/s with
# 0% loss here, and 20,000/s when the machine was otherwise idle (README);
# FAR_BENCH=1 also measures the benchmark rows (20k/s at 5 ms, 10k/s at 20 ms, every
# order, 10 s each, with each process's CPU), printed, not asserted; FAR_BENCH=only
# measures just those (README, "Which --replay-order").
. "$(dirname "$0")/lib.sh"
st_need_root "replay far"
D=$ST_ROOT/tests/integration/far
NS=st-far-srv
CNS=st-far-cli
ADDR=198.18.22.1
PIN=/sys/fs/bpf/shadowtap-test-far
RATE=${FAR_RATE:-8000}
SECS=${FAR_SECS:-6}
MAX=64
SB_PID=

for t in nginx python3; do
	command -v $t >/dev/null || { skip "replay far ($t not installed)"; exit 0; }
done
GO=$(st_go)
[ -n "$GO" ] || { skip "replay far (no Go toolchain: scripts/setup.sh installs it)"; exit 0; }
for b in slow_server client; do
	if ! "$GO" build -o "$ST_TMP/$b" "$D/$b.go" 2>"$ST_TMP/$b.build.log"; then
		fail "replay far: cannot build $b.go ($(head -2 "$ST_TMP/$b.build.log" | tr '\n' ' '))"
		exit 0
	fi
done

# serverB NAME DELAY [ARGS]: (re)start slow_server on 127.0.0.1:81 in the namespace
serverB() {
	local name=$1 delay=$2; shift 2
	serverB_stop
	ip netns exec $NS "$ST_TMP/slow_server" -listen 127.0.0.1:81 -delay "$delay" \
		-log "$ST_TMP/$name.serverB.log" "$@" 2>>"$ST_TMP/serverB.err" &
	SB_PID=$!
	ST_PIDS+=("$SB_PID")
	st_poll 10 sh -c "ip netns exec $NS ss -Hltn 'sport = :81' | grep -q ." ||
		fail "$name: serverB did not listen"
}
# SIGTERM: serverB flushes its log and appends its summary line
serverB_stop() {
	[ -n "$SB_PID" ] || return 0
	kill "$SB_PID" 2>/dev/null
	wait "$SB_PID" 2>/dev/null
	SB_PID=
}

agent_run() { # NAME ARGS...
	local name=$1; shift
	rm -rf "$PIN-$name"
	if ! st_agent $NS "$ST_TMP/$name.agent.log" -i st-fara0 -p 80 -o "$ST_TMP/$name.ndjson" \
		--pin-dir "$PIN-$name" -r http://127.0.0.1:81 --replay-connections-max $MAX "$@"; then
		fail "$name: agent did not start ($(tail -3 "$ST_TMP/$name.agent.log" | tr '\n' ' '))"
		return 1
	fi
}

agent_stop() { # NAME
	st_agent_stop
	[ "$ST_AGENT_RC" = 0 ] || fail "$1: agent exit code $ST_AGENT_RC"
	rm -rf "$PIN-$1"
	grep -E '^(shadowtap: )?replay:' "$ST_TMP/$1.agent.log" | sed "s/^/    $1 /"
}

stat_of() { # log key: last value of key=N on replay: lines
	grep -E 'replay:' "$1" | grep -oE "(^| )$2=[0-9]+" | tail -1 | cut -d= -f2
}

client() { # NAME RATE SECS [ARGS]: prints the client's summary, sets SENT
	local name=$1 rate=$2 secs=$3; shift 3
	ip netns exec $CNS "$ST_TMP/client" -addr $ADDR:80 -conns 64 -rate "$rate" -duration "${secs}s" \
		-path "/$name" "$@" >"$ST_TMP/$name.client.out" 2>"$ST_TMP/$name.client.err" ||
		fail "$name: client errors ($(head -2 "$ST_TMP/$name.client.err" | tr '\n' ' '))"
	SENT=$(grep -oE 'sent=[0-9]+' "$ST_TMP/$name.client.out" | cut -d= -f2)
	echo "    $name client: $(cat "$ST_TMP/$name.client.out")"
}

# wait until the agent wrote a record per request sent (or give up), then stop it
# and serverB
finish() { # NAME
	st_poll 30 st_lines_ge "$ST_TMP/$1.ndjson" "${SENT:-1}"
	agent_stop "$1"
	serverB_stop
}

check_pool() { # NAME [MAX]
	local peak max=${2:-$MAX}
	peak=$(stat_of "$ST_TMP/$1.agent.log" peak_open)
	if [ -n "$peak" ] && [ "$peak" -ge 1 ] && [ "$peak" -le "$max" ]; then
		pass "$1: connections used (the agent's peak_open): $peak <= max $max"
	else
		fail "$1: peak_open ${peak:-missing} (max $max)"
	fi
}

check() { # NAME ARGS...: records, serverB's and serverA's logs
	local name=$1; shift
	python3 "$D/check_far.py" --name "$name" --records "$ST_TMP/$name.ndjson" \
		--serverb-log "$ST_TMP/$name.serverB.log" --nginx-log "$ST_TMP/serverA.access.log" \
		--prefix "/$name/" --sent "${SENT:-0}" --retries "$(stat_of "$ST_TMP/$name.agent.log" retries)" "$@"
}

# CPU seconds (user+system, all threads) of a process so far
cpu_of() { awk '{printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pct() { awk -v a="$1" -v b="$2" -v s="$3" 'BEGIN { printf "%.0f", (b - a) * 100 / s }'; }
# "tid run_ns wait_ns name" of each thread (wait: time runnable but not running)
sched_snap() {
	for t in /proc/"$1"/task/*; do
		echo "${t##*/} $(cut -d' ' -f1,2 "$t/schedstat" 2>/dev/null) $(cat "$t/comm" 2>/dev/null)"
	done
}
# per thread of BEFORE and AFTER snapshots over SECS: "name run%/waited%", busiest first
sched_diff() {
	awk -v s="$3" 'NR == FNR { r[$1] = $2; w[$1] = $3; next }
		{ printf "%d %d %s\n", ($2 - r[$1]) / s / 1e7, ($3 - w[$1]) / s / 1e7, $4 }' "$1" "$2" |
		sort -rn | awk '$1 + $2 > 0 { printf "%s%s %d/%d", n++ ? ", " : "", $3, $1, $2 }'
}
# busy and total jiffies of the whole machine
machine_cpu() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

st_ns $NS
st_ns $CNS
st_link $NS st-fara0 $ADDR/24 $CNS st-farc0 198.18.22.2/24
st_nginx $NS 80 serverA || { fail "replay far: serverA nginx did not start"; exit 0; }

orders="session session-parallel request"
[ "${FAR_BENCH:-}" = only ] && orders=
for order in $orders; do
	# sustained rate, serverB 5 ms away: nothing lost, order kept in the session modes
	case $order in
	session | session-parallel) ordered=--order ;;
	*) ordered= ;;
	esac
	name=$order-rate
	serverB $name 5ms
	if agent_run $name --replay-order $order; then
		client $name "$RATE" "$SECS" -post-every 10
		finish $name
		check $name --lossless --max $MAX $ordered
		check_pool $name
		# negative control: the same log with two of a client connection's requests
		# swapped in time must fail the order check
		if [ -n "$ordered" ]; then
			awk 'NF == 5 && $4 == 0 && n < 2 { i[++n] = NR; t[n] = $1 } { a[NR] = $0 }
				END { for (k = 1; k <= NR; k++) { x = a[k]
					if (k == i[1]) { x = a[i[2]]; sub(/^[0-9]+/, t[1], x) }
					if (k == i[2]) { x = a[i[1]]; sub(/^[0-9]+/, t[2], x) }
					print x } }' \
				"$ST_TMP/$name.serverB.log" > "$ST_TMP/$name.swapped.log"
			if python3 "$D/check_far.py" --name "$name" --records "$ST_TMP/$name.ndjson" --sent "${SENT:-0}" \
				--serverb-log "$ST_TMP/$name.swapped.log" --order | grep -q "^FAIL: .*out of order"; then
				pass "$name: the order check fails on the log with two requests swapped"
			else
				fail "$name: the order check missed two swapped requests"
			fi
		fi
	fi

	# serverB closes every connection at its 7th request, unanswered, mid-pipeline
	name=$order-close
	serverB $name 5ms -close-after 7
	if agent_run $name --replay-order $order; then
		client $name 2000 3 -post-every 5
		finish $name
		check $name --fault --max $MAX $ordered
		check_pool $name
	fi

	# serverB down for 1.5 s in the middle of the run, then back
	name=$order-down
	serverB $name 5ms
	if agent_run $name --replay-order $order; then
		client $name 1000 5 -post-every 10 &
		cpid=$!
		sleep 1.5
		serverB_stop
		sleep 1.5
		serverB $name-back 5ms
		wait $cpid
		SENT=$(grep -oE 'sent=[0-9]+' "$ST_TMP/$name.client.out" | cut -d= -f2)
		finish $name
		cat "$ST_TMP/$name-back.serverB.log" >> "$ST_TMP/$name.serverB.log"
		check $name --fault $ordered
		ok_after=$(grep -vc '^#' "$ST_TMP/$name-back.serverB.log")
		[ "${ok_after:-0}" -gt 0 ] && pass "$name: replay resumed after serverB came back ($ok_after requests)" ||
			fail "$name: nothing replayed after serverB came back"
	fi

	# serverB answers after 1 s, the replay timeout is 300 ms
	name=$order-slow
	serverB $name 1s
	if agent_run $name --replay-order $order --replay-timeout 300 --replay-queue 2000; then
		client $name 500 3 -post-every 10
		finish $name
		check $name --fault --max $MAX
		t=$(stat_of "$ST_TMP/$name.agent.log" timeout)
		[ "${t:-0}" -gt 0 ] && pass "$name: timeouts counted ($t)" || fail "$name: no timeout counted"
		check_pool $name
	fi
done

# Benchmark rows: measured and printed ("bench ok/short"), never asserted. The
# default ceiling (256): request order needs rate x latency connections. The client
# is open loop (FAR_BENCH_PIPELINE, default 16 unanswered per connection; 0: closed
# loop), so the rate offered does not fall when a busy machine slows serverA's
# answers.
if [ -n "${FAR_BENCH:-}" ]; then
	nginx_worker=$(pgrep -P "$(cat "$ST_TMP/nginx-serverA/nginx.pid")" | head -1)
	for row in ${FAR_BENCH_ROWS:-session:5ms:20000 session-parallel:5ms:20000 request:5ms:20000 \
		session:20ms:10000 session-parallel:20ms:10000 request:20ms:10000}; do
		IFS=: read -r order delay rate <<<"$row"
		name=bench-$order-$delay
		serverB $name "$delay"
		agent_run $name --replay-order "$order" --replay-connections-max 256 || continue
		a0=$(cpu_of "$ST_AGENT_PID") n0=$(cpu_of "$nginx_worker") b0=$(cpu_of "$SB_PID")
		read -r m0 t0 < <(machine_cpu)
		sched_snap "$ST_AGENT_PID" > "$ST_TMP/$name.sched0"
		w0=$(date +%s%N)
		client $name "$rate" "${FAR_BENCH_SECS:-10}" -pipeline "${FAR_BENCH_PIPELINE:-16}"
		read -r m1 t1 < <(machine_cpu)
		sched_snap "$ST_AGENT_PID" > "$ST_TMP/$name.sched1"
		a1=$(cpu_of "$ST_AGENT_PID") n1=$(cpu_of "$nginx_worker") b1=$(cpu_of "$SB_PID")
		c1=$(grep -oE 'cpu=[0-9.]+' "$ST_TMP/$name.client.out" | cut -d= -f2)
		secs=$(awk -v a="$w0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
		echo "    $name cpu during the load, % of one core: agent $(pct "$a0" "$a1" "$secs")," \
			"nginx $(pct "$n0" "$n1" "$secs"), serverB $(pct "$b0" "$b1" "$secs"), client $(pct 0 "${c1:-0}" "$secs");" \
			"machine busy $(( (m1 - m0) * 100 / (t1 - t0) ))% of $(nproc) cores;" \
			"agent threads ran/waited for a CPU, % of the time: $(sched_diff "$ST_TMP/$name.sched0" "$ST_TMP/$name.sched1" "$secs")"
		finish $name
		check $name --lossless --max 256 $([ "$order" = request ] || echo --order) |
			sed -e 's/^PASS: /    bench ok: /' -e 's/^FAIL: /    bench short: /'
	done
fi
serverB_stop
exit 0
