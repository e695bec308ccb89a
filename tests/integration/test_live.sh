#!/usr/bin/env bash
# Live capture end to end: real nginx as serverA, a real client sending 10,000
# keep-alive and pipelined requests (GET, HEAD, chunked POST, POST bodies of 0 B,
# 1 KiB and 1 MiB), shadowtap capturing with its BPF socket filter. Run twice:
# over veth between two namespaces, and on lo inside one namespace.
. "$(dirname "$0")/lib.sh"
st_need_root "live capture"
N=${LIVE_REQUESTS:-10000}

run_case() { # name agent-ns iface client-ns server-addr
	local name=$1 ans=$2 ifc=$3 cns=$4 addr=$5 rc
	local rec=$ST_TMP/$name.ndjson log=$ST_TMP/$name.agent.log man=$ST_TMP/$name.manifest
	if ! st_agent "$ans" "$log" -i "$ifc" -p 80 -o "$rec" --pin-dir /sys/fs/bpf/shadowtap-test-$name; then
		fail "$name: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"
		return
	fi
	if ! ip netns exec "$cns" python3 "$ST_ROOT/tests/integration/http_client.py" --host "$addr" \
		--port 80 -n "$N" --manifest "$man" 2>"$ST_TMP/$name.client.err"; then
		fail "$name: client failed ($(tail -2 "$ST_TMP/$name.client.err" | tr '\n' ' '))"
	fi
	# records still in flight are drained by SIGINT; wait for them only as a courtesy
	st_poll 10 st_lines_ge "$rec" "$N"
	st_agent_stop; rc=$ST_AGENT_RC
	[ "$rc" = 0 ] && pass "$name: SIGINT drains and exits 0" || fail "$name: agent exit code $rc"
	grep -E '^(bpf|tcp|http|output):' "$log" | sed "s/^/    $name /"
	python3 "$ST_ROOT/tests/integration/check_records.py" --manifest "$man" --records "$rec" --name "$name" --expect "$N"
	if grep -qE 'ringbuf_full=0 ' "$log"; then pass "$name: no ring-buffer drops"; else fail "$name: ring-buffer drops"; fi
	if grep -qE 'dup_skipped=[1-9]' "$log" || [ "$ifc" != lo ]; then
		pass "$name: lo duplicate copies skipped or not applicable"
	else
		fail "$name: no lo duplicates skipped"
	fi
}

# veth: client namespace -> server namespace, agent in the server namespace
st_ns st-live-srv; st_ns st-live-cli
st_link st-live-srv st-a0 198.18.10.1/24 st-live-cli st-c0 198.18.10.2/24
st_nginx st-live-srv 80 serverA || { fail "nginx did not start"; exit 0; }
run_case veth st-live-srv st-a0 st-live-cli 198.18.10.1

# lo: everything inside one namespace on 127.0.0.1
st_ns st-live-lo
st_nginx st-live-lo 80 serverA-lo || { fail "nginx (lo) did not start"; exit 0; }
run_case lo st-live-lo lo st-live-lo 127.0.0.1
