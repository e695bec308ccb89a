#!/usr/bin/env bash
# Issue 16: the README's commands are true. Every fenced block of README.md is found
# and classified by its first command line; each block runs here (with the stated,
# minimal substitutions: eth0 is a veth named eth0 in a namespace, the placeholder
# hosts staging/canary are 127.0.0.1 servers, paths move under a temporary
# directory, --exit-after ends live runs) or is listed as SKIP with the reason it
# cannot run here. A block this script does not know is a FAIL, so a new README
# command cannot go untested unnoticed. `make demo` and `make test` are not run
# here: `make test` is the run this script is part of, and `make demo` takes
# minutes (scripts/demo.sh; test_claims.sh runs its pieces).
. "$(dirname "$0")/lib.sh"
README=$ST_ROOT/README.md
NS=st-readme
T=$ST_TMP

# blocks as "LINE<TAB>first command" (comments and '$ ' prompts stripped)
mapfile -t BLOCKS < <(python3 - "$README" <<'PY'
import re, sys
inb, start, first = False, 0, None
for i, l in enumerate(open(sys.argv[1]).read().split("\n"), 1):
    if not inb and re.match(r"^\s*```", l):
        inb, start, first = True, i, None
    elif inb and re.match(r"^\s*```\s*$", l):
        inb = False
        print("%d\t%s" % (start, first or ""))
    elif inb and first is None:
        c = re.sub(r"^\$ ", "", l.strip())
        if c and not c.startswith("#"):
            first = c
PY
)

rm_pins() { rm -rf /sys/fs/bpf/shadowtap-test-readme* 2>/dev/null; }
rd_cleanup() { st_cleanup; rm_pins; }
trap rd_cleanup EXIT

# --- the blocks that run ---

blk_build() { # scripts/setup.sh, make, sudo build/shadowtap ..., make install/uninstall
	skip "README:$1 scripts/setup.sh (installs packages system-wide; make test runs it first)"
	if (cd "$ST_ROOT" && make -s >/dev/null 2>&1) && [ -x "$ST_ROOT/build/shadowtap" ]; then
		pass "README:$1 make: builds build/shadowtap"
	else
		fail "README:$1 make failed"
	fi
	if [ "$(id -u)" != 0 ]; then
		skip "README:$1 sudo build/shadowtap -i eth0 ... (needs root)"
	else
		st_ns $NS
		ip link add eth0 netns $NS type veth peer name st-rd-peer netns $NS
		ip -n $NS link set eth0 up; ip -n $NS link set st-rd-peer up
		local log=$T/run.log
		# the README line, with staging -> 127.0.0.1 and a spool and pin dir of the test's own
		ip netns exec $NS "$ST_BIN" -i eth0 -p 80 -r http://127.0.0.1:81 -e http://127.0.0.1:9200 \
			--spool-dir "$T/spool" --pin-dir /sys/fs/bpf/shadowtap-test-readme --exit-after 2 \
			--shutdown-timeout 1 >/dev/null 2>"$log"
		local rc=$?
		if [ $rc = 0 ] && grep -q 'capturing TCP' "$log"; then
			pass "README:$1 build/shadowtap -i eth0 -p 80 -r http://staging:81 -e http://127.0.0.1:9200 starts and exits 0"
		else
			fail "README:$1 build/shadowtap -i eth0 ... exit $rc ($(head -3 "$log" | tr '\n' ' '))"
		fi
	fi
	local d=$T/destdir
	if (cd "$ST_ROOT" && make -s install DESTDIR="$d" >/dev/null 2>&1) &&
		[ -x "$d/usr/local/bin/shadowtap" ] && [ -e "$d/usr/local/lib/systemd/system/shadowtap.service" ] &&
		[ -e "$d/etc/default/shadowtap" ] &&
		(cd "$ST_ROOT" && make -s uninstall DESTDIR="$d" >/dev/null 2>&1) &&
		[ -z "$(find "$d" -type f)" ]; then
		pass "README:$1 make install / make uninstall (DESTDIR): binary, unit and /etc/default/shadowtap in, then all out"
	else
		fail "README:$1 make install/uninstall with DESTDIR=$d ($(find "$d" -type f 2>/dev/null | tr '\n' ' '))"
	fi
}

blk_bpftool() { # bpftool map dump / prog show / sysctl, against a running agent
	if [ "$(id -u)" != 0 ] || ! command -v bpftool >/dev/null; then
		skip "README:$1 bpftool commands (need root and bpftool)"; return
	fi
	if [ -e /sys/fs/bpf/shadowtap ]; then
		skip "README:$1 bpftool commands (/sys/fs/bpf/shadowtap is in use by an agent on this host)"; return
	fi
	st_ns $NS-b
	# nsenter --net, not ip netns exec: the pins must land in this mount namespace's bpffs
	nsenter --net=/run/netns/$NS-b "$ST_BIN" -i lo -p 80 -o /dev/null 2>"$T/bpftool.agent.log" &
	ST_AGENT_PID=$!; ST_PIDS+=("$ST_AGENT_PID")
	started() { grep -q "capturing TCP" "$T/bpftool.agent.log"; }
	if ! st_poll 10 started; then
		fail "README:$1 agent with the default pin dir did not start ($(tail -2 "$T/bpftool.agent.log" | tr '\n' ' '))"
		return
	fi
	local dump prog old
	dump=$(bpftool map dump pinned /sys/fs/bpf/shadowtap/stats 2>&1)
	prog=$(bpftool prog show name st_capture 2>&1)
	old=$(sysctl -n kernel.bpf_stats_enabled)
	sysctl -q kernel.bpf_stats_enabled=1 && sysctl -q kernel.bpf_stats_enabled="$old"; local sc=$?
	st_agent_stop
	for k in packets matched events ringbuf_full; do
		grep -q "\"$k\"" <<<"$dump" || { fail "README:$1 bpftool map dump: no '$k' ($(head -c 200 <<<"$dump"))"; return; }
	done
	pass "README:$1 bpftool map dump pinned /sys/fs/bpf/shadowtap/stats shows packets, matched, events, ringbuf_full"
	grep -q 'name st_capture' <<<"$prog" && pass "README:$1 bpftool prog show name st_capture lists the socket filter" \
		|| fail "README:$1 bpftool prog show name st_capture: $(head -c 200 <<<"$prog")"
	[ $sc = 0 ] && pass "README:$1 sysctl kernel.bpf_stats_enabled=1 (restored to $old)" \
		|| fail "README:$1 sysctl kernel.bpf_stats_enabled=1 failed"
}

blk_record() { # record live, replay the recording, convert
	if [ "$(id -u)" != 0 ]; then
		skip "README:$1 recording commands (the live one needs root)"; return
	fi
	st_ns $NS-r
	st_nginx $NS-r 80 serverA || { fail "README:$1 nginx did not start"; return; }
	st_nginx $NS-r 81 staging || { fail "README:$1 nginx (staging) did not start"; return; }
	mkdir -p "$T/rec"
	# line 1: /var/lib/shadowtap -> the test's directory, eth0 -> lo, ended by SIGINT
	if ! st_agent $NS-r "$T/rec.log" -i lo -p 80 --output-file "$T/rec/rec-%Y%m%d-%H%M.stap" \
		--output-file-interval 3600 --pin-dir /sys/fs/bpf/shadowtap-test-readme-r; then
		fail "README:$1 shadowtap --output-file ... did not start ($(tail -2 "$T/rec.log" | tr '\n' ' '))"; return
	fi
	ip netns exec $NS-r curl -s -o /dev/null "http://127.0.0.1/readme/[1-20]"
	st_agent_stop
	local n
	n=$(ls "$T"/rec/rec-*.stap 2>/dev/null | wc -l)
	[ "$ST_AGENT_RC" = 0 ] && [ "$n" = 1 ] && pass "README:$1 --output-file 'rec-%Y%m%d-%H%M.stap' wrote $(basename "$T"/rec/rec-*.stap)" \
		|| { fail "README:$1 recording: exit $ST_AGENT_RC, $n files"; return; }
	# line 2: staging -> nginx on 127.0.0.1:81
	ip netns exec $NS-r "$ST_BIN" --input-file "$T/rec/rec-*.stap" -r http://127.0.0.1:81 --replay-speed max \
		-o "$T/replayed.ndjson" 2>"$T/replay.log"
	n=$(grep -c '/readme/' "$T/staging.access.log" 2>/dev/null)
	[ "$(grep -c '"original":"/readme/' "$T/replayed.ndjson")" = 20 ] && [ "$n" = 20 ] \
		&& pass "README:$1 --input-file 'rec-*.stap' -r ... --replay-speed max: 20 records, staging got 20 requests" \
		|| fail "README:$1 replay of the recording: $(grep -c . "$T/replayed.ndjson") records, staging got $n"
	# line 3: convert capture.gor capture.stap (the .gor made from the recording first)
	(cd "$T" && "$ST_BIN" convert rec/rec-*.stap capture.gor 2>/dev/null &&
		"$ST_BIN" convert capture.gor capture.stap 2>"$T/convert.log" &&
		"$ST_BIN" convert capture.stap capture.ndjson 2>/dev/null)
	[ "$(grep -c '"original":"/readme/' "$T/capture.ndjson" 2>/dev/null)" = 20 ] \
		&& pass "README:$1 shadowtap convert capture.gor capture.stap (and on to .ndjson): 20 exchanges" \
		|| fail "README:$1 convert: $(cat "$T/convert.log" | head -2 | tr '\n' ' ')"
}

blk_promql() { # the series the PromQL examples use exist in /metrics
	if [ "$(id -u)" != 0 ]; then skip "README:$1 PromQL series (live agent needs root)"; return; fi
	st_ns $NS-m
	if ! st_agent $NS-m "$T/m.log" -i lo -p 80 -r http://127.0.0.1:81 -o /dev/null --metrics 127.0.0.1:19099 \
		--pin-dir /sys/fs/bpf/shadowtap-test-readme-m; then
		fail "README:$1 agent with --metrics did not start"; return
	fi
	local m miss=""
	scraped() { m=$(ip netns exec $NS-m curl -s http://127.0.0.1:19099/metrics); grep -q shadowtap_bpf <<<"$m"; }
	st_poll 10 scraped
	st_agent_stop
	for s in shadowtap_replay_failed_total shadowtap_replay_dropped_total shadowtap_bpf_bytes_lost_ringbuf_total \
		shadowtap_serverb_duration_seconds_bucket shadowtap_servera_duration_seconds_bucket; do
		grep -q "^$s" <<<"$m" || miss="$miss $s"
	done
	[ -z "$miss" ] && pass "README:$1 every series the PromQL examples use is in /metrics" \
		|| fail "README:$1 series missing from /metrics:$miss"
}

# --- classification: first command of a block -> what to do with it ---
for b in "${BLOCKS[@]}"; do
	line=${b%%$'\t'*} cmd=${b#*$'\t'}
	case "$cmd" in
	"make demo"*)
		skip "README:$line make demo / make test (not run here: make test is the run this test is part of; test_demo.sh runs make demo and checks it against the nginx logs)" ;;
	"scripts/setup.sh"*) blk_build "$line" ;;
	"bpftool map dump pinned /sys/fs/bpf/shadowtap/stats"*) blk_bpftool "$line" ;;
	"shadowtap -p 80 --tls openssl"*)
		skip "README:$line --tls openssl examples (need an OpenSSL HTTPS server and https://serverb.internal; test_tls.sh and test_tls_replay.sh run them)" ;;
	"shadowtap --input-file traffic.gor -r http://canary:8080"*)
		skip "README:$line report example (needs traffic.gor and canary/prod-2 hosts; test_diff_report.sh runs --replay-baseline and report on its own traffic)" ;;
	"2984 requests compared"*)
		skip "README:$line output listing, no command" ;;
	"sudo shadowtap -i eth0 -p 80 --output-file"*) blk_record "$line" ;;
	"sum by (reason)"*) blk_promql "$line" ;;
	*) fail "README:$line a command block this test does not know: '$cmd' (add it here: run it or say why it cannot run)" ;;
	esac
done
