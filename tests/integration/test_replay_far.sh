#!/usr/bin/env bash
# Replay to a distant serverB: nginx serverA in a namespace, 64 client connections
# from another namespace over veth (client.go, X-Seq per request), serverB the
# latency-injecting slow_server.go 5 ms away. Checks, in every --replay-order:
# 0% loss at a sustained rate, per-client-connection order at serverB (session;
# session-parallel only keeps the order of writing, printed), connections used within
# --replay-connections-max, and the faults (serverB
# down, a serverB that closes connections mid-pipeline, a slow serverB): every
# request answered or failed on its own, no silent duplicate, no POST sent twice.
# FAR_RATE (default 4000) requests/s for FAR_SECS (default 6) is the asserted rate;
# FAR_BENCH=1 also measures the benchmark rows (20k/s at 5 ms, 10k/s at 20 ms),
# printed, not asserted; FAR_BENCH=only measures just those.
. "$(dirname "$0")/lib.sh"
st_need_root "replay far"
D=$ST_ROOT/tests/integration/far
NS=st-far-srv
CNS=st-far-cli
ADDR=198.18.22.1
PIN=/sys/fs/bpf/shadowtap-test-far
RATE=${FAR_RATE:-4000}
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
		"$@" >"$ST_TMP/$name.client.out" 2>"$ST_TMP/$name.client.err" ||
		fail "$name: client errors ($(head -2 "$ST_TMP/$name.client.err" | tr '\n' ' '))"
	SENT=$(grep -oE 'sent=[0-9]+' "$ST_TMP/$name.client.out" | cut -d= -f2)
	echo "    $name client: $(cat "$ST_TMP/$name.client.out")"
}

# wait until the agent wrote a record per request sent (or give up), then stop it
finish() { # NAME
	st_poll 30 st_lines_ge "$ST_TMP/$1.ndjson" "${SENT:-1}"
	agent_stop "$1"
}

check_pool() { # NAME
	local peak
	peak=$(stat_of "$ST_TMP/$1.agent.log" peak_open)
	if [ -n "$peak" ] && [ "$peak" -ge 1 ] && [ "$peak" -le $MAX ]; then
		pass "$1: connections used: peak $peak <= max $MAX"
	else
		fail "$1: peak_open ${peak:-missing} (max $MAX)"
	fi
}

check() { python3 "$D/check_far.py" "$@"; }

st_ns $NS
st_ns $CNS
st_link $NS st-fara0 $ADDR/24 $CNS st-farc0 198.18.22.2/24
st_nginx $NS 80 serverA || { fail "replay far: serverA nginx did not start"; exit 0; }

orders="session session-parallel request"
[ "${FAR_BENCH:-}" = only ] && orders=
for order in $orders; do
	# sustained rate, serverB 5 ms away: nothing lost
	name=$order-rate
	serverB $name 5ms
	if agent_run $name --replay-order $order; then
		client $name "$RATE" "$SECS" -post-every 10
		finish $name
		# session-parallel writes a connection's requests in order, but serverB may
		# take overlapping ones, on separate connections, in any order
		case $order in
		session) ordered=--order ;;
		session-parallel) ordered=--order-info ;;
		*) ordered= ;;
		esac
		check --name $name --records "$ST_TMP/$name.ndjson" --serverb-log "$ST_TMP/$name.serverB.log" \
			--sent "${SENT:-0}" --retries "$(stat_of "$ST_TMP/$name.agent.log" retries)" --lossless $ordered
		check_pool $name
	fi

	# serverB closes every connection at its 7th request, unanswered, mid-pipeline
	name=$order-close
	serverB $name 5ms -close-after 7
	if agent_run $name --replay-order $order; then
		client $name 2000 3 -post-every 5
		finish $name
		check --name $name --records "$ST_TMP/$name.ndjson" --serverb-log "$ST_TMP/$name.serverB.log" \
			--sent "${SENT:-0}" --retries "$(stat_of "$ST_TMP/$name.agent.log" retries)" --fault $ordered
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
		check --name $name --records "$ST_TMP/$name.ndjson" --serverb-log "$ST_TMP/$name.serverB.log" \
			--sent "${SENT:-0}" --retries "$(stat_of "$ST_TMP/$name.agent.log" retries)" --fault $ordered
		ok_after=$(wc -l < "$ST_TMP/$name-back.serverB.log")
		[ "${ok_after:-0}" -gt 0 ] && pass "$name: replay resumed after serverB came back ($ok_after requests)" ||
			fail "$name: nothing replayed after serverB came back"
	fi

	# serverB answers after 1 s, the replay timeout is 300 ms
	name=$order-slow
	serverB $name 1s
	if agent_run $name --replay-order $order --replay-timeout 300 --replay-queue 2000; then
		client $name 500 3 -post-every 10
		finish $name
		check --name $name --records "$ST_TMP/$name.ndjson" --serverb-log "$ST_TMP/$name.serverB.log" \
			--sent "${SENT:-0}" --retries "$(stat_of "$ST_TMP/$name.agent.log" retries)" --fault
		t=$(stat_of "$ST_TMP/$name.agent.log" timeout)
		[ "${t:-0}" -gt 0 ] && pass "$name: timeouts counted ($t)" || fail "$name: no timeout counted"
		check_pool $name
	fi
done

if [ -n "${FAR_BENCH:-}" ]; then
	for row in "session 5ms 20000" "request 5ms 20000" "session 20ms 10000" "request 20ms 10000"; do
		set -- $row
		name=bench-$1-$2
		serverB $name "$2"
		# the default ceiling (256): request order needs rate x latency connections
		if agent_run $name --replay-order "$1" --replay-connections-max 256; then
			client $name "$3" 10
			finish $name
			python3 "$D/check_far.py" --name "$name" --records "$ST_TMP/$name.ndjson" \
				--serverb-log "$ST_TMP/$name.serverB.log" --sent "${SENT:-0}" \
				--retries "$(stat_of "$ST_TMP/$name.agent.log" retries)" --lossless |
				sed -e 's/^PASS: /    bench ok: /' -e 's/^FAIL: /    bench short: /'
		fi
	done
fi
serverB_stop
exit 0
