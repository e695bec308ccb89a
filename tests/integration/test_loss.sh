#!/usr/bin/env bash
# Fidelity under loss on the live path: the agent misses packets that serverA still
# receives (as with a full ring or a busy NIC queue), injected by the BPF program's
# test-only setting (SHADOWTAP_TEST_SKIP_EVERY: skip every Nth segment that would
# make an event). At 0.1%, 1% and 5% under the same client mix as test_live.sh over
# veth, every record must be correct or flagged (capture.gap / capture.incomplete),
# never another request's response, and replay must send serverB only requests
# captured whole. Prints the share of complete records per loss rate. The 1-in-20
# round's traffic is also captured with tcpdump and replayed offline with each of the
# 20 phases of the skip pattern (tests/integration/pcap_skip.py), checked the same way.
. "$(dirname "$0")/lib.sh"
st_need_root "loss injection"
N=${LOSS_REQUESTS:-2000}
for t in nginx python3; do
	command -v $t >/dev/null || { skip "loss injection ($t not installed)"; exit 0; }
done

st_ns st-loss-srv; st_ns st-loss-cli
st_link st-loss-srv st-l0 198.18.30.1/24 st-loss-cli st-lc0 198.18.30.2/24
st_nginx st-loss-srv 80 serverA || { fail "loss: nginx serverA did not start"; exit 0; }
st_nginx st-loss-srv 81 serverB || { fail "loss: nginx serverB did not start"; exit 0; }

SHARES=()
for every in 1000 100 20; do
	name=loss-1in$every
	rec=$ST_TMP/$name.ndjson log=$ST_TMP/$name.agent.log man=$ST_TMP/$name.manifest
	: > "$ST_TMP/serverA.access.log"; : > "$ST_TMP/serverB.access.log"
	export SHADOWTAP_TEST_SKIP_EVERY=$every
	if ! st_agent st-loss-srv "$log" -i st-l0 -p 80 -o "$rec" -r http://127.0.0.1:81 \
		--pin-dir /sys/fs/bpf/shadowtap-test-$name; then
		unset SHADOWTAP_TEST_SKIP_EVERY
		fail "$name: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"
		continue
	fi
	unset SHADOWTAP_TEST_SKIP_EVERY
	# the 1-in-20 round's traffic is also captured whole, for the offline phase sweep
	TCPDUMP_PID=
	if [ "$every" = 20 ] && command -v tcpdump >/dev/null; then
		ip netns exec st-loss-srv tcpdump -i st-l0 -s 0 -U -w "$ST_TMP/$name.pcap" 'tcp port 80' \
			2>"$ST_TMP/$name.tcpdump.err" &
		TCPDUMP_PID=$!; ST_PIDS+=("$TCPDUMP_PID")
		st_poll 10 grep -q "listening on" "$ST_TMP/$name.tcpdump.err" || TCPDUMP_PID=
	fi
	if ! ip netns exec st-loss-cli python3 "$ST_ROOT/tests/integration/http_client.py" --host 198.18.30.1 \
		--port 80 -n "$N" --manifest "$man" 2>"$ST_TMP/$name.client.err"; then
		fail "$name: client failed ($(tail -2 "$ST_TMP/$name.client.err" | tr '\n' ' '))"
	fi
	# the client has closed its connections: records and replays settle within a few s
	st_poll 10 st_lines_ge "$rec" $((N * 9 / 10))
	prev=-1
	for _ in $(seq 1 20); do
		cur=$(wc -l < "$ST_TMP/serverB.access.log")
		[ "$cur" = "$prev" ] && break
		prev=$cur; sleep 0.5
	done
	st_agent_stop
	[ -n "$TCPDUMP_PID" ] && { kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID"; }
	[ "$ST_AGENT_RC" = 0 ] && pass "$name: agent exits 0" || fail "$name: agent exit code $ST_AGENT_RC"
	grep -q "TEST ONLY: capture skips every $every-th" "$log" && pass "$name: loss injection on" \
		|| fail "$name: loss injection not reported by the agent"
	grep -E '^(bpf|tcp|http):' "$log" | sed "s/^/    $name /"
	if grep -qE 'test_skipped=[1-9]' "$log" || grep -qE 'gaps=[1-9]' "$log"; then
		pass "$name: segments were skipped and gaps seen"
	else
		fail "$name: no skipped segment shows in the agent's counters"
	fi
	python3 "$ST_ROOT/tests/integration/check_loss.py" --manifest "$man" --records "$rec" --name "$name" \
		--server-b-log "$ST_TMP/serverB.access.log" | tee "$ST_TMP/$name.check"
	SHARES+=("$(grep '^share:' "$ST_TMP/$name.check")")
	[ "$every" = 20 ] || continue
	# The live skip pattern depends on timing and CPUs; offline, the same traffic is
	# replayed with each of the 20 phases of 1-in-20 loss (and, as the BPF program
	# emits it, without pure ACKs), every phase checked like the live run. A
	# mis-pairing that shows live once in 15-20 runs showed here in 1 phase of 20.
	if [ -z "$TCPDUMP_PID" ] || [ ! -s "$ST_TMP/$name.pcap" ]; then
		skip "$name offline: every phase of the skip pattern (tcpdump not available or captured nothing)"
		continue
	fi
	bad=()
	for ph in $(seq 0 19); do
		f=$ST_TMP/$name.ph
		python3 "$ST_ROOT/tests/integration/pcap_skip.py" "$ST_TMP/$name.pcap" "$f.pcap" --every 20 \
			--phase "$ph" >/dev/null
		rm -f "$f.ndjson"
		"$ST_BIN" --input-pcap "$f.pcap" -p 80 -o "$f.ndjson" 2>"$f.log"
		python3 "$ST_ROOT/tests/integration/check_loss.py" --manifest "$man" --records "$f.ndjson" \
			--name "$name-phase$ph" > "$f.check$ph"
		grep -q '^FAIL' "$f.check$ph" && bad+=("$ph: $(grep -m1 '^FAIL' "$f.check$ph")")
	done
	if [ ${#bad[@]} = 0 ]; then
		pass "$name offline: all 20 phases of the skip pattern replayed from a capture are correct or flagged"
	else
		fail "$name offline: ${#bad[@]} of 20 phases fail, e.g. phase ${bad[0]}"
	fi
done
echo "Fidelity under loss ($N requests per rate, veth, client mix of test_live.sh):"
printf '  %s\n' "${SHARES[@]}"
