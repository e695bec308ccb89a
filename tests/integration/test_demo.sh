#!/usr/bin/env bash
# `make demo`, run as the README tells a user to, non-interactively (stdin is not a
# terminal, so the demo exits after its summary). Oracles are the two nginx access logs
# and OpenSearch itself: every request serverA logged must have reached serverB, be
# indexed in OpenSearch exactly once, and the planted v2 differences (/api/user,
# /api/price) must be the only paths reported as mismatches.
. "$(dirname "$0")/lib.sh"
st_need_root "make demo"
for p in 80 81; do
	if ss -ltnH "sport = :$p" | grep -q .; then skip "make demo (port $p is in use on this host)"; exit 0; fi
done
D=$ST_TMP/demo
port=9287 # away from the other tests' OpenSearch ports
out=$ST_TMP/demo.out
cd "$ST_ROOT"
if ! DEMO_DIR=$D OPENSEARCH_PORT=$port DEMO_HOLD=0 timeout 900 make --no-print-directory demo < /dev/null > "$out" 2>&1; then
	fail "make demo exited non-zero"; tail -30 "$out"; exit 1
fi
# the demo stops its servers on exit; make sure nothing is left either way
OPENSEARCH_HOME=$D/opensearch scripts/opensearch stop >/dev/null 2>&1

a=$(wc -l < "$D/serverA/access.log"); b=$(wc -l < "$D/serverB/access.log")
curls=100 # 20 rounds of 5 curl requests in scripts/demo.sh
wrkn=$(grep -oE '^ *[0-9]+ requests in' "$out" | grep -oE '[0-9]+' | head -1)
# wrk counts the answers it read before its 2 s ended; each of its 8 connections may
# have had one more request in flight, which nginx still answered and logged
if [ -n "$wrkn" ] && [ "$a" -ge $((curls + wrkn)) ] && [ "$a" -le $((curls + wrkn + 8)) ]; then
	pass "serverA logged $a requests: 100 curl + $wrkn wrk answered (+ at most 8 in flight)"
else fail "serverA logged $a requests; clients sent 100 curl + ${wrkn:-?} wrk answered (+ at most 8)"; fi
# serverB's log against the agent's own exit summary: every replay it calls succeeded
# arrived exactly once, and every request serverA logged is either succeeded or counted
# as failed/dropped/skipped with a reason (the demo's wrk runs at the box's maximum, so a
# busy machine may drop replays: that is a counted loss, not a silent one)
ex=$(sed -n '/^--- shadowtap exit/,$p' "$D/agent.log")
kv() { echo "$ex" | grep -E "^$1" | grep -oE "(^| )$2=[0-9]+" | head -1 | cut -d= -f2; }
succ=$(kv 'replay: submitted' succeeded)
lost=0
for k in timeout connection_refused connection_reset malformed_response other; do lost=$((lost + $(kv 'replay: failed' $k))); done
for k in queue_full memory_limit shutting_down; do lost=$((lost + $(kv 'replay: dropped' $k))); done
for k in filtered sampled_out unreplayable; do lost=$((lost + $(kv 'replay: skipped' $k))); done
if [ -n "$succ" ] && [ "$b" -eq "$succ" ]; then pass "serverB received $b replays = the agent's succeeded count (exactly once)"
else fail "serverB received $b replays; the agent says ${succ:-?} succeeded"; fi
if [ -n "$succ" ] && [ $((succ + lost)) -eq "$a" ]; then pass "all $a requests accounted for: $succ replayed, $lost failed/dropped/skipped with a counter"
else fail "serverA served $a; agent: ${succ:-?} replayed + $lost counted losses"; echo "$ex" | grep '^replay'; fi
echo "demo replay loss: $((a - b)) of $a"

total=$(grep -oE 'records indexed in OpenSearch: [0-9]+' "$out" | grep -oE '[0-9]+$')
if [ "${total:-x}" = "$a" ]; then pass "OpenSearch holds $total records, one per request serverA logged"
else fail "OpenSearch holds ${total:-no} records for $a requests"; grep -n 'OpenSearch\|demo:' "$out" | head; fi
match=$(grep -oE 'serverB matched serverA: [0-9]+' "$out" | grep -oE '[0-9]+$')
# /api/user and /api/price differ in v2: 20 + 20 curl requests
if [ -n "$match" ] && [ "$match" -eq $((b - 40)) ]; then pass "$match of $b replayed matched (40 planted differences)"
else fail "matched ${match:-?} of $b replayed, expected $((b - 40))"; fi
paths=$(sed -n '/mismatches by path:/,/example records:/p' "$out" | grep -oE '^  /[^:]+' | tr -d ' ' | sort | tr '\n' ' ')
if [ "$paths" = "/api/price /api/user " ]; then pass "mismatched paths are exactly the planted ones: $paths"
else fail "mismatched paths: '$paths'"; fi
# the demo sends Authorization and Cookie; records keep them redacted
if grep -q 'secret-' "$D/records.ndjson"; then fail "a bearer token reached the records"
else pass "Authorization values redacted in the records"; fi
