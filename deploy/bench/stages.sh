#!/usr/bin/env bash
# Per-stage cost of shadowtap per request (deploy/bench/stages.py): shadowtap with
# replay and capture-only, and the bare replay client (replay-bare), GET and POST at
# the maximum rate, one repeat each, with perf record --call-graph dwarf over each load
# window; writes deploy/bench/results/stages.md (or $BENCH_RESULTS/stages.md): the stage
# table and the split of the replay's system calls (serverB's receive that veth runs in
# the sender's softirq, copies, entry/exit). About 3 minutes.
# Same knobs as run.sh (BENCH_DURATION, BENCH_MIXES, BENCH_NO_SETUP, ...);
# BENCH_STAGES_KEEP=DIR keeps the perf data and runs.csv there.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RESULTS=${BENCH_RESULTS:-$ROOT/deploy/bench/results}
command -v perf >/dev/null || { echo "stages: perf not installed" >&2; exit 1; }
TMP=$(mktemp -d /tmp/shadowtap-stages.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
KEEP=${BENCH_STAGES_KEEP:-}
BENCH_PERF=$TMP/perf BENCH_PERF_CG=dwarf BENCH_RESULTS=$TMP/res BENCH_MICRO=0 \
	BENCH_TOOLS=${BENCH_TOOLS:-"shadowtap shadowtap-capture replay-bare"} BENCH_RATES_GET=${BENCH_RATES_GET:-max} \
	BENCH_RATES_POST=${BENCH_RATES_POST:-max} BENCH_REPEATS=1 BENCH_DURATION=${BENCH_DURATION:-3} \
	"$ROOT/deploy/bench/run.sh" --quick >"$TMP/run.log" 2>&1 || { tail -5 "$TMP/run.log" >&2; exit 1; }
mkdir -p "$RESULTS"
/usr/bin/python3 "$ROOT/deploy/bench/stages.py" --runs "$TMP/res/runs.csv" --perf "$TMP/perf" \
	--out "$RESULTS/stages.md"
rc=$?
if [ -n "$KEEP" ]; then mkdir -p "$KEEP" && cp -r "$TMP/perf" "$TMP/res/runs.csv" "$KEEP/"; fi
exit $rc
