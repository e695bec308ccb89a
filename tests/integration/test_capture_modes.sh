#!/usr/bin/env bash
# The live end-to-end case of test_live.sh (real nginx, http_client.py with keep-alive,
# pipelining, chunked and 1 MiB POSTs) once per --capture mode: socket, tc, xdp
# (native on veth, generic on lo with --xdp-generic). Checks every mode's records
# against the client's manifest and against each other, that a SIGKILLed agent's
# leftovers do not block the next start nor double the attachment, that a second
# agent on the same interface is refused, the legacy clsact path and interfaces
# hot-plugged under `-i all`. Prints, per
# mode, wrk requests/s relative to no capture, BPF ns per packet and agent CPU.
# Agents run under nsenter --net (not ip netns exec) so their pins live in the host
# bpffs and survive a SIGKILL, as they would in production.
. "$(dirname "$0")/lib.sh"
st_need_root "capture modes"
N=${CM_REQUESTS:-3000}
WRK_SECS=${WRK_SECS:-4}
BENCH_PATH=${BENCH_PATH:-/}
# which parts to run (all by default): live,kill,hotplug,bench
CM_PARTS=${CM_PARTS:-live,kill,hotplug,bench}
part() { case ",$CM_PARTS," in *",$1,"*) return 0 ;; esac; return 1; }
PIN=/sys/fs/bpf/shadowtap-test-cm
SRV=st-cm-srv CLI=st-cm-cli LONS=st-cm-lo IFC=st-cm-a0 ADDR=198.18.20.1
BPF_STATS_OLD=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo 0)

cm_cleanup() {
	st_cleanup
	rm -rf "$PIN"-* 2>/dev/null
	sysctl -qw kernel.bpf_stats_enabled="$BPF_STATS_OLD" 2>/dev/null
}
trap cm_cleanup EXIT

# cm_agent NS LOG ARGS...: like st_agent, but only the network namespace is entered
cm_agent() {
	local ns=$1 log=$2; shift 2
	nsenter --net=/run/netns/"$ns" "$ST_BIN" "$@" 2>"$log" &
	ST_AGENT_PID=$!
	ST_PIDS+=("$ST_AGENT_PID")
	for _ in $(seq 1 100); do
		grep -q "capturing TCP" "$log" 2>/dev/null && return 0
		kill -0 "$ST_AGENT_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

mode_args() { # mode iface
	echo "--capture $1"
	[ "$1" = xdp ] && [ "$2" = lo ] && echo "--xdp-generic"
}

# how many of our links/filters are attached: tcx links (bpftool 7.1 prints them as
# "type 11") and xdp links whose program is one of ours, plus clsact filters on IFC
count_attached() {
	local ids n=0 id
	ids=$(bpftool prog show 2>/dev/null | awk -F'[: ]+' '/name st_(tc|xdp)_capture/ {print $1}')
	for id in $ids; do
		n=$((n + $(bpftool link show 2>/dev/null | grep -c " prog $id\b")))
	done
	n=$((n + $(ip netns exec "$SRV" bpftool net show dev "$IFC" 2>/dev/null | grep -c 'st_tc_capture')))
	echo "$n"
}

# SIGINT and wait, in this shell (a $(...) subshell cannot wait for our child)
cm_stop() {
	kill -INT "$ST_AGENT_PID" 2>/dev/null
	wait "$ST_AGENT_PID"; CM_RC=$?
}

tuples() { # records -> sorted (method url status req_body resp_body) lines
	python3 - "$1" <<'PY'
import json, sys
out = []
for l in open(sys.argv[1]):
    try:
        r = json.loads(l)
    except ValueError:
        continue
    h = r.get("http", {})
    out.append("%s %s %s %s %s" % (h.get("request", {}).get("method"), r.get("url", {}).get("original"),
               h.get("response", {}).get("status_code"), h.get("request", {}).get("body", {}).get("bytes"),
               h.get("response", {}).get("body", {}).get("bytes")))
print("\n".join(sorted(out)))
PY
}

run_case() { # mode case agent-ns iface client-ns addr
	local mode=$1 case=$2 ans=$3 ifc=$4 cns=$5 addr=$6 name=$1-$2 rc
	local rec=$ST_TMP/$name.ndjson log=$ST_TMP/$name.agent.log man=$ST_TMP/$name.manifest
	# shellcheck disable=SC2046
	if ! cm_agent "$ans" "$log" -i "$ifc" -p 80 -o "$rec" --pin-dir "$PIN-$name" $(mode_args "$mode" "$ifc"); then
		fail "$name: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"
		return
	fi
	if ! ip netns exec "$cns" python3 "$ST_ROOT/tests/integration/http_client.py" --host "$addr" \
		--port 80 -n "$N" --manifest "$man" 2>"$ST_TMP/$name.client.err"; then
		fail "$name: client failed ($(tail -2 "$ST_TMP/$name.client.err" | tr '\n' ' '))"
	fi
	st_poll 10 st_lines_ge "$rec" "$N"
	cm_stop
	[ "$CM_RC" = 0 ] && pass "$name: SIGINT drains and exits 0" || fail "$name: agent exit code $CM_RC"
	grep -E '^(bpf|process):' "$log" | sed "s/^/    $name /"
	python3 "$ST_ROOT/tests/integration/check_records.py" --manifest "$man" --records "$rec" --name "$name" --expect "$N"
	if grep -qE 'ringbuf_full=0 .*bytes_too_large=0 load_errors=0' "$log"; then
		pass "$name: no ring drops, no oversize or load losses"
	else
		fail "$name: capture losses ($(grep '^bpf:' "$log"))"
	fi
	local big_sent big_ok
	big_sent=$(grep -c '"req_body": 1048576' "$man")
	big_ok=$(grep '"bytes":1048576' "$rec" | grep -c '"complete":true')
	if [ "$big_sent" -gt 0 ] && [ "$big_ok" = "$big_sent" ]; then
		pass "$name: all $big_sent 1 MiB POSTs captured whole"
	else
		fail "$name: 1 MiB POSTs complete $big_ok of $big_sent"
	fi
	[ -e "$PIN-$name" ] && fail "$name: pins left after a clean exit ($(ls -R "$PIN-$name" | tr '\n' ' '))" \
		|| pass "$name: clean exit removes every pin"
	tuples "$rec" > "$ST_TMP/$name.tuples"
}

# SIGKILL, restart over the leftovers, refuse a second agent, clean up on exit
run_kill() { # mode[-legacy]
	local mode=${1%-legacy} name=kill-$1 log1 log2 n want rc
	log1=$ST_TMP/$name.1.log log2=$ST_TMP/$name.2.log
	want=0; [ "$mode" = tc ] && want=2; [ "$mode" = xdp ] && want=2
	if ! cm_agent "$SRV" "$log1" -i "$IFC" -p 80 -o /dev/null --pin-dir "$PIN-$name" --capture "$mode"; then
		fail "$name: agent did not start ($(tail -2 "$log1" | tr '\n' ' '))"; return
	fi
	kill -9 "$ST_AGENT_PID"; wait "$ST_AGENT_PID" 2>/dev/null
	if ! cm_agent "$SRV" "$log2" -i "$IFC" -p 80 -o "$ST_TMP/$name.ndjson" --pin-dir "$PIN-$name" --capture "$mode"; then
		fail "$name: restart after SIGKILL failed ($(tail -2 "$log2" | tr '\n' ' '))"; return
	fi
	pass "$name: restarts after SIGKILL"
	if [ "$mode" != socket ]; then
		grep -q 'stale' "$log2" && pass "$name: restart reports the stale pins it replaced" \
			|| fail "$name: no stale-pin message"
	fi
	n=$(count_attached)
	[ "$n" = "$want" ] && pass "$name: $n attachments after restart, no duplicate" \
		|| fail "$name: $n attachments after restart, want $want ($(ip netns exec "$SRV" bpftool net show dev "$IFC" | tr '\n' ' '))"
	if [ "$mode" = xdp ]; then
		n=$(ip netns exec "$SRV" bpftool net show dev "$IFC" | grep -c 'driver id')
		[ "$n" = 1 ] && pass "$name: bpftool net show lists one native xdp program" \
			|| fail "$name: bpftool net show lists $n xdp programs"
	fi
	if [ "$mode" != socket ]; then
		nsenter --net=/run/netns/"$SRV" "$ST_BIN" -i "$IFC" -p 80 -o /dev/null --capture "$mode" \
			--pin-dir "$PIN-$name-2nd" --exit-after 2 2>"$ST_TMP/$name.2nd.log"; rc=$?
		if [ "$rc" != 0 ] && grep -qE 'already captures|filter .* is attached' "$ST_TMP/$name.2nd.log"; then
			pass "$name: a second agent on $IFC is refused ($(grep -m1 -E 'already captures|is attached' "$ST_TMP/$name.2nd.log" | cut -c1-110))"
		else
			fail "$name: second agent rc=$rc ($(head -2 "$ST_TMP/$name.2nd.log" | tr '\n' ' '))"
		fi
		nsenter --net=/run/netns/"$SRV" "$ST_BIN" -i "$IFC" -p 80 -o /dev/null --capture "$mode" \
			--pin-dir "$PIN-$name" --exit-after 2 2>"$ST_TMP/$name.same.log"; rc=$?
		if [ "$rc" != 0 ] && grep -q 'owns' "$ST_TMP/$name.same.log"; then
			pass "$name: a second agent on the same pin dir is refused"
		else
			fail "$name: second agent (same pin dir) rc=$rc"
		fi
	fi
	ip netns exec "$CLI" python3 "$ST_ROOT/tests/integration/http_client.py" --host "$ADDR" \
		--port 80 -n 200 --manifest "$ST_TMP/$name.manifest" 2>"$ST_TMP/$name.client.err" ||
		fail "$name: client failed ($(tail -1 "$ST_TMP/$name.client.err"))"
	st_poll 10 st_lines_ge "$ST_TMP/$name.ndjson" 200
	cm_stop
	[ "$CM_RC" = 0 ] && pass "$name: SIGINT after the restart exits 0" || fail "$name: exit code $CM_RC after restart"
	python3 "$ST_ROOT/tests/integration/check_records.py" --manifest "$ST_TMP/$name.manifest" \
		--records "$ST_TMP/$name.ndjson" --name "$name" --expect 200 | grep -E 'all .* recorded|FAIL'
	n=$(count_attached)
	if [ "$n" = 0 ] && [ ! -e "$PIN-$name" ]; then
		pass "$name: nothing attached or pinned after the clean exit"
	else
		fail "$name: $n attachments / pins left after exit"
	fi
}

# `-i all` in tc mode follows RTNLGRP_LINK: a veth created after the start is captured,
# and its pins go when it is deleted
hotplug() {
	local name=hotplug log=$ST_TMP/hotplug.log rec=$ST_TMP/hotplug.ndjson
	if ! cm_agent "$SRV" "$log" -i all -p 80 -o "$rec" --pin-dir "$PIN-$name" --capture tc; then
		fail "$name: agent did not start ($(tail -2 "$log" | tr '\n' ' '))"; return
	fi
	st_link $SRV st-cm-a1 198.18.21.1/24 $CLI st-cm-c1 198.18.21.2/24
	st_poll 10 test -e "$PIN-$name/links/st-cm-a1-tc-ingress" && pass "$name: new interface attached and pinned" \
		|| fail "$name: no pin for the new interface ($(ls "$PIN-$name/links" | tr '\n' ' '))"
	ip netns exec "$CLI" python3 "$ST_ROOT/tests/integration/http_client.py" --host 198.18.21.1 \
		--port 80 -n 100 --manifest "$ST_TMP/$name.manifest" 2>"$ST_TMP/$name.client.err" ||
		fail "$name: client failed ($(tail -1 "$ST_TMP/$name.client.err"))"
	st_poll 10 st_lines_ge "$rec" 100
	ip -n $SRV link del st-cm-a1
	st_poll 10 test ! -e "$PIN-$name/links/st-cm-a1-tc-ingress" && pass "$name: deleted interface's pins removed" \
		|| fail "$name: pins of the deleted interface left"
	cm_stop
	[ "$CM_RC" = 0 ] || fail "$name: exit code $CM_RC"
	python3 "$ST_ROOT/tests/integration/check_records.py" --manifest "$ST_TMP/$name.manifest" \
		--records "$rec" --name "$name" --expect 100
}

# wrk against serverA over veth: no capture and each mode, interleaved for ROUNDS
# rounds (the 2-core box is noisy), medians reported. BPF ns per packet from
# kernel.bpf_stats_enabled, agent CPU (per WRK_SECS run) from its exit summary.
bench() {
	local mode rps log stats r res=$ST_TMP/bench.txt
	if ! command -v wrk >/dev/null; then skip "bench (wrk not installed)"; return; fi
	sysctl -qw kernel.bpf_stats_enabled=1
	: > "$res"
	for r in $(seq 1 "${ROUNDS:-3}"); do
		for mode in none socket tc xdp; do
			log=$ST_TMP/bench-$mode-$r.log
			if [ "$mode" != none ] && ! cm_agent "$SRV" "$log" -i "$IFC" -p 80 -o /dev/null \
				--pin-dir "$PIN-bench-$mode" --capture "$mode"; then
				fail "bench $mode: agent did not start"; continue
			fi
			rps=$(ip netns exec "$CLI" wrk -t2 -c32 -d"${WRK_SECS}s" "http://$ADDR$BENCH_PATH" 2>/dev/null |
				awk '/Requests\/sec/ {print $2}')
			stats="0 0"
			if [ "$mode" != none ]; then
				stats=$(bpftool -j prog show 2>/dev/null | python3 -c '
import json, sys
t = c = 0
for p in json.load(sys.stdin):
    if p.get("name") in ("st_capture", "st_tc_capture", "st_xdp_capture"):
        t += p.get("run_time_ns", 0); c += p.get("run_cnt", 0)
print(t, c)')
				cm_stop
			fi
			echo "$mode ${rps:-0} $stats $(grep '^process:' "$log" 2>/dev/null | sed 's/[^0-9. ]//g' | awk '{print $1 + $2}')" >> "$res"
		done
	done
	sysctl -qw kernel.bpf_stats_enabled="$BPF_STATS_OLD"
	python3 - "$res" "$BENCH_PATH" <<'PY'
import statistics, sys
rows = {}
for l in open(sys.argv[1]):
    f = l.split()
    rows.setdefault(f[0], []).append([float(x) for x in f[1:]] + [0.0] * (4 - len(f[1:])))
base = statistics.median(r[0] for r in rows.get("none", [[1]]))
for m in ("none", "socket", "tc", "xdp"):
    rs = rows.get(m, [])
    if not rs:
        continue
    rps = statistics.median(r[0] for r in rs)
    ns = sum(r[1] for r in rs) / max(1, sum(r[2] for r in rs))
    cpu = statistics.median(r[3] for r in rs)
    print("    bench " + sys.argv[2] + " %-6s requests/s=%.0f (%.1f%% of no capture) bpf_ns_per_packet=%.0f agent_cpu_s=%.2f runs=%s"
          % (m, rps, 100 * rps / base if base else 0, ns, cpu, ",".join("%.0f" % r[0] for r in rs)))
    if m != "none":
        # the capture program must have run on wrk's packets and cost a plausible
        # amount per packet (0 means it was not attached to the path wrk used)
        runs = sum(r[2] for r in rs)
        ok = rps > 0 and runs > 0 and 0 < ns < 100000
        print(("PASS: " if ok else "FAIL: ") + "bench %s: the %s program ran on wrk's packets "
              "(runs=%d, %.0f ns each, serverA %.0f requests/s)" % (m, m, runs, ns, rps))
PY
}

st_ns $SRV; st_ns $CLI
st_link $SRV $IFC $ADDR/24 $CLI st-cm-c0 198.18.20.2/24
st_nginx $SRV 80 serverA || { fail "nginx did not start"; exit 0; }
st_ns $LONS
st_nginx $LONS 80 serverA-lo || { fail "nginx (lo) did not start"; exit 0; }

if part live; then
	for mode in socket tc xdp; do
		run_case "$mode" veth $SRV $IFC $CLI $ADDR
		run_case "$mode" lo $LONS lo $LONS 127.0.0.1
	done
	for c in veth lo; do
		for mode in tc xdp; do
			if [ -s "$ST_TMP/socket-$c.tuples" ] && cmp -s "$ST_TMP/socket-$c.tuples" "$ST_TMP/$mode-$c.tuples"; then
				pass "$c: $mode records identical to socket records ($(wc -l < "$ST_TMP/$mode-$c.tuples") requests)"
			else
				fail "$c: $mode records differ from socket ($(diff "$ST_TMP/socket-$c.tuples" "$ST_TMP/$mode-$c.tuples" 2>&1 | head -3 | tr '\n' ' '))"
			fi
		done
	done
fi
if part kill; then
	for mode in socket tc xdp; do run_kill "$mode"; done
	SHADOWTAP_TC_LEGACY=1 run_kill tc-legacy
fi
part hotplug && hotplug
part bench && bench
exit 0
