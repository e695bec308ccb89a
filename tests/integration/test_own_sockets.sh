#!/usr/bin/env bash
# Issue 16 item 2: the agent never captures its own connections (replay to serverB,
# Elasticsearch), in any --capture mode. serverA and serverB both listen on port 8080,
# in different namespaces; the agent captures port 8080 and replays to serverB's 8080
# across a veth, so every replay crosses a captured interface towards a captured port.
# Without the exclusion each replay is captured and replayed again, without end. The
# oracle is serverB's nginx access log: every client request exactly once.
#   client (st-os-c) --veth-- agent + serverA (st-os-a) --veth-- serverB (st-os-b)
# Then --es at serverB's 8080 (nginx, not Elasticsearch: the agent's probes are still
# HTTP requests to a captured port): no record may be one of the agent's own requests.
. "$(dirname "$0")/lib.sh"
st_need_root "own sockets"
N=${OS_REQUESTS:-60}
OS_MODES=${OS_MODES:-socket tc xdp}
PIN=/sys/fs/bpf/shadowtap-test-os
NSA=st-os-a NSB=st-os-b NSC=st-os-c
A_CLI=198.18.40.1 C=198.18.40.2 A_B=198.18.41.1 B=198.18.41.2

os_cleanup() {
	st_cleanup
	rm -rf "$PIN"-* 2>/dev/null
}
trap os_cleanup EXIT

# like st_agent, but only the network namespace is entered (pins in the host bpffs)
os_agent() {
	local log=$1; shift
	nsenter --net=/run/netns/$NSA "$ST_BIN" "$@" 2>"$log" &
	ST_AGENT_PID=$!
	ST_PIDS+=("$ST_AGENT_PID")
	for _ in $(seq 1 100); do
		grep -q "capturing TCP" "$log" 2>/dev/null && return 0
		kill -0 "$ST_AGENT_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

os_stop() {
	kill -INT "$ST_AGENT_PID" 2>/dev/null
	wait "$ST_AGENT_PID"; OS_RC=$?
}

# lines of serverB's log (from line $1 on) whose request is one of this run's URLs
b_count() { tail -n +"$1" "$ST_TMP/serverB.access.log" 2>/dev/null | grep -c "GET /own/$2/"; }
b_ge() { [ "$(b_count "$1" "$2")" -ge "$3" ]; }

st_ns $NSA; st_ns $NSB; st_ns $NSC
st_link $NSC st-os-c0 $C/24 $NSA st-os-a0 $A_CLI/24
st_link $NSA st-os-a1 $A_B/24 $NSB st-os-b0 $B/24
if ! st_nginx $NSA 8080 serverA || ! st_nginx $NSB 8080 serverB; then
	fail "own sockets: nginx did not start"; exit 0
fi

run_mode() { # mode
	local mode=$1 log=$ST_TMP/$1.agent.log rec=$ST_TMP/$1.ndjson start n dup extra own
	start=$(( $(wc -l < "$ST_TMP/serverB.access.log" 2>/dev/null || echo 0) + 1 ))
	if ! os_agent "$log" -i st-os-a0,st-os-a1 -p 8080 --capture "$mode" --pin-dir "$PIN-$mode" \
		-r "http://$B:8080" -o "$rec"; then
		fail "own sockets $mode: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"; return
	fi
	# one curl, keep-alive, N distinct URLs
	if ! ip netns exec $NSC curl -sf -o /dev/null "http://$A_CLI:8080/own/$mode/[1-$N]"; then
		fail "own sockets $mode: client requests failed"
	fi
	st_poll 20 b_ge "$start" "$mode" "$N"
	os_stop
	n=$(b_count "$start" "$mode")
	dup=$(tail -n +"$start" "$ST_TMP/serverB.access.log" | grep -o "GET /own/$mode/[0-9]*" | sort | uniq -d | wc -l)
	extra=$(tail -n +"$start" "$ST_TMP/serverB.access.log" | grep -vc "GET /own/$mode/[0-9]* ")
	if [ "$n" = "$N" ] && [ "$dup" = 0 ] && [ "$extra" = 0 ]; then
		pass "own sockets $mode: serverB got each of the $N client requests exactly once"
	else
		fail "own sockets $mode: serverB got $n requests for $N client requests ($dup URLs more than once, $extra others): the agent captured its own replays"
	fi
	n=$(grep -c '"original":"/own/' "$rec")
	[ "$n" = "$N" ] && pass "own sockets $mode: $N records for $N requests" \
		|| fail "own sockets $mode: $n records for $N requests"
	own=$(grep -oE 'own_skipped=[0-9]+' "$log" | tail -1 | cut -d= -f2)
	if [ "${own:-0}" -gt 0 ] && grep -qE '^own: registered=[1-9]' "$log"; then
		pass "own sockets $mode: $own segments of its own connections skipped in the kernel ($(grep '^own:' "$log" | tail -1))"
	else
		fail "own sockets $mode: own_skipped=${own:-none} ($(grep '^own:' "$log" | tail -1))"
	fi
	[ "$OS_RC" = 0 ] || fail "own sockets $mode: agent exit code $OS_RC"
}

for mode in $OS_MODES; do run_mode "$mode"; done

# Elasticsearch connections: serverB's nginx stands in for a node on a captured port
log=$ST_TMP/es.agent.log rec=$ST_TMP/es.ndjson
start=$(( $(wc -l < "$ST_TMP/serverB.access.log") + 1 ))
if os_agent "$log" -i st-os-a0,st-os-a1 -p 8080 --pin-dir "$PIN-es" -e "http://$B:8080" \
	--spool-dir "$ST_TMP/spool" -o "$rec"; then
	ip netns exec $NSC curl -sf -o /dev/null "http://$A_CLI:8080/own/es/[1-10]" || fail "own sockets es: client failed"
	# the agent's own requests to the "node" reached serverB (so they could have been captured)
	es_seen() { [ "$(tail -n +"$start" "$ST_TMP/serverB.access.log" | grep -vc 'GET /own/')" -ge 1 ]; }
	st_poll 20 es_seen
	st_poll 10 st_lines_ge "$rec" 10
	os_stop
	esreq=$(tail -n +"$start" "$ST_TMP/serverB.access.log" | grep -vc 'GET /own/')
	n=$(grep -c . "$rec")
	ownrec=$(grep -vc '"original":"/own/es/' "$rec")
	if [ "$esreq" -ge 1 ] && [ "$n" = 10 ] && [ "$ownrec" = 0 ]; then
		pass "own sockets es: $esreq requests of the agent to its --es node, none recorded ($n records, all the client's)"
	else
		fail "own sockets es: $esreq agent requests to the node, $n records, $ownrec not the client's"
	fi
else
	fail "own sockets es: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"
fi
