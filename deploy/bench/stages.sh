#!/usr/bin/env bash
# Per-stage cost of shadowtap per request (deploy/bench/stages.py): shadowtap with
# replay and capture-only, and the bare replay client (replay-bare), GET and POST at
# the maximum rate, one repeat each, with perf record --call-graph dwarf over each load
# window; writes deploy/bench/results/stages.md (or $BENCH_RESULTS/stages.md): the stage
# table and the split of the replay's system calls (serverB's receive that veth runs in
# the sender's softirq, copies, entry/exit). About 3 minutes.
# Same knobs as run.sh (BENCH_DURATION, BENCH_MIXES, BENCH_NO_SETUP, ...);
# BENCH_STAGES_KEEP=DIR keeps the perf data and runs.csv there.
# BENCH_STAGES_SYSTEM=1 adds a system-wide pass (about 1 minute more): shadowtap and
# shadowtap-capture at the GET maximum under perf record -a -g -F 999, with ps
# snapshots to tell the agent, both nginx and the client apart: a third table of whose
# context runs which network receive (the agent's receive of serverB's answers runs in
# serverB's nginx) and the BPF program.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RESULTS=${BENCH_RESULTS:-$ROOT/deploy/bench/results}
command -v perf >/dev/null || { echo "stages: perf not installed" >&2; exit 1; }
TMP=$(mktemp -d /tmp/shadowtap-stages.XXXXXX)
pp= psp=
# the system-wide recording must not outlive the script
trap '[ -n "$pp" ] && kill -INT "$pp" 2>/dev/null; [ -n "$psp" ] && kill "$psp" 2>/dev/null; rm -rf "$TMP"' EXIT
KEEP=${BENCH_STAGES_KEEP:-}
BENCH_PERF=$TMP/perf BENCH_PERF_CG=dwarf BENCH_RESULTS=$TMP/res BENCH_MICRO=0 \
	BENCH_TOOLS=${BENCH_TOOLS:-"shadowtap shadowtap-capture replay-bare"} BENCH_RATES_GET=${BENCH_RATES_GET:-max} \
	BENCH_RATES_POST=${BENCH_RATES_POST:-max} BENCH_REPEATS=1 BENCH_DURATION=${BENCH_DURATION:-3} \
	"$ROOT/deploy/bench/run.sh" --quick >"$TMP/run.log" 2>&1 || { tail -5 "$TMP/run.log" >&2; exit 1; }
SYS=()
if [ -n "${BENCH_STAGES_SYSTEM:-}" ]; then
	mkdir -p "$TMP/sys"
	perf record -q -a -g -F 999 -o "$TMP/sys/perf.data" >/dev/null 2>&1 &
	pp=$!
	( while kill -0 "$pp" 2>/dev/null; do ps -eo pid=,ppid=,args=; sleep 0.5; done ) >"$TMP/sys/ps.txt" 2>/dev/null &
	psp=$!
	BENCH_RESULTS=$TMP/sys/res BENCH_MICRO=0 BENCH_TOOLS="shadowtap shadowtap-capture" BENCH_MIXES=get \
		BENCH_RATES_GET=max BENCH_REPEATS=1 BENCH_DURATION=${BENCH_DURATION:-3} \
		"$ROOT/deploy/bench/run.sh" --quick >"$TMP/sys/run.log" 2>&1
	src=$?
	kill -INT "$pp" 2>/dev/null; wait "$pp"; kill "$psp" 2>/dev/null; wait "$psp" 2>/dev/null
	pp= psp=
	if [ $src = 0 ] && [ -s "$TMP/sys/perf.data" ]; then
		SYS=(--system "$TMP/sys/perf.data" --system-ps "$TMP/sys/ps.txt" --system-runs "$TMP/sys/res/runs.csv")
	else
		echo "stages: the system-wide pass failed (run.sh $src, or no perf data):" >&2
		tail -5 "$TMP/sys/run.log" >&2
	fi
fi
mkdir -p "$RESULTS"
/usr/bin/python3 "$ROOT/deploy/bench/stages.py" --runs "$TMP/res/runs.csv" --perf "$TMP/perf" \
	--out "$RESULTS/stages.md" "${SYS[@]}"
rc=$?
if [ -n "$KEEP" ]; then mkdir -p "$KEEP" && cp -r "$TMP/perf" "$TMP/res/runs.csv" "$KEEP/"; fi
if [ -n "$KEEP" ] && [ ${#SYS[@]} -gt 0 ]; then cp -r "$TMP/sys" "$KEEP/"; fi
exit $rc
