#!/usr/bin/env bash
# serverA's requests/s with each tool over without it, measured tightly enough to read
# against issue 19's 0.90 (capturing) and 0.80 (replaying): run.sh's ratio mode
# (BENCH_PAIRS) with these defaults, into results/ratio.md, ratio.csv and
# ratio_runs.csv. ABBA blocks none / tool / tool / none of BENCH_DURATION s windows,
# BENCH_PAIRS pairs per tool; none-b (nothing started) is the control. About 5 minutes
# for GET with the defaults (12 pairs x 2 s, 4 tools). Run under the shared lock:
#   flock /tmp/shadowtap-integ.lock deploy/bench/ratio.sh
# Knobs as run.sh's (BENCH_TOOLS, BENCH_MIXES, BENCH_RESULTS, BENCH_ST_ARGS, ...) plus
# BENCH_PAIRS, BENCH_RATIO_RATE (offered rate, default max = closed loop).
# Skips setup.sh and make unless BENCH_SETUP=1.
export BENCH_PAIRS=${BENCH_PAIRS:-12}
export BENCH_DURATION=${BENCH_DURATION:-2}
export BENCH_TOOLS=${BENCH_TOOLS:-"none-b shadowtap-capture tcpdump shadowtap"}
export BENCH_MIXES=${BENCH_MIXES:-get}
export BENCH_MICRO=0
[ "${BENCH_SETUP:-0}" = 1 ] || export BENCH_NO_SETUP=1
exec "$(dirname "$0")/run.sh" --quick
