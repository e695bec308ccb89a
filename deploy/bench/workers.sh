#!/usr/bin/env bash
# --workers 1 vs 2 at the box's maximum GET rate with replay (issue 19, "scale with
# cores"): deploy/bench/run.sh's topology and loadgen (closed loop, "max"), its
# shadowtap row (socket mode, -r serverB, -o /dev/null) with BENCH_ST_ARGS="--workers
# N", alternated (1,2 then 2,1 ...) so neither always runs first, medians of
# WB_REPEATS (3). Per run: served req/s (loadgen), replayed req/s (serverB's
# stub_status over the load window), loss (1 - replayed/served by serverA) and the
# agent's CPU per request (its user+sys over the load window / requests serverA
# served in it). Writes deploy/bench/results/workers.md and workers.csv.
#
#   deploy/bench/workers.sh            (root; run it under /tmp/shadowtap-integ.lock)
#
# Knobs: WB_REPEATS (3), WB_DURATION (s per run, 5), WB_WORKERS ("1 2"),
# WB_OUT (deploy/bench/results), WB_ST_ARGS (more shadowtap flags for every run).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
REPEATS=${WB_REPEATS:-3}
DURATION=${WB_DURATION:-5}
read -ra WORKERS <<<"${WB_WORKERS:-1 2}"
OUTDIR=${WB_OUT:-$ROOT/deploy/bench/results}
TMP=$(mktemp -d /tmp/shadowtap-wbench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
[ "$(id -u)" = 0 ] || { echo "workers.sh: needs root" >&2; exit 1; }
[ -x build/shadowtap ] || { echo "workers.sh: build/shadowtap not built (make)" >&2; exit 1; }

CSV=$TMP/workers.csv
echo "repeat,workers,served_rps,served_a,replayed,loss_pct,cpu_us_req,win_cpu_s,win_served_a,rss_mb,drops,status" >"$CSV"
t0=$(date +%s)
for rep in $(seq 1 "$REPEATS"); do
	order=("${WORKERS[@]}")
	# alternate: reverse the order on even repeats
	if [ $((rep % 2)) = 0 ]; then
		order=(); for ((k = ${#WORKERS[@]} - 1; k >= 0; k--)); do order+=("${WORKERS[k]}"); done
	fi
	for w in "${order[@]}"; do
		res=$TMP/r$rep-w$w
		echo "workers.sh: repeat $rep, --workers $w" >&2
		BENCH_NO_SETUP=1 BENCH_TOOLS=shadowtap BENCH_MIXES=get BENCH_RATES_GET=max \
			BENCH_REPEATS=1 BENCH_DURATION="$DURATION" BENCH_MICRO=0 BENCH_RESULTS="$res" \
			BENCH_ST_ARGS="--workers $w ${WB_ST_ARGS:-}" deploy/bench/run.sh --quick \
			>"$res.log" 2>&1 || echo "workers.sh: run.sh failed (see $res.log)" >&2
		/usr/bin/python3 - "$res/runs.csv" "$rep" "$w" >>"$CSV" <<'PYEOF'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["tool"] == "shadowtap"] if sys.argv[1] else []
if not rows:
    print("%s,%s,,,,,,,,,,no row" % (sys.argv[2], sys.argv[3])); sys.exit()
r = rows[-1]
f = lambda k: float(r[k]) if r.get(k) else 0.0
sa, rb = f("served_a"), f("replayed")
wc, wa = f("win_cpu_s"), f("win_served_a")
print(",".join([sys.argv[2], sys.argv[3], r["served_rps"], r["served_a"], r["replayed"],
                "%.2f" % (100 * (1 - rb / sa) if sa else 0), "%.2f" % (wc / wa * 1e6 if wa else 0),
                r["win_cpu_s"], r["win_served_a"], r["rss_mb"], r["drops"], r["status"]]))
PYEOF
		tail -1 "$CSV" >&2
	done
done
mkdir -p "$OUTDIR"
cp "$CSV" "$OUTDIR/workers.csv"
/usr/bin/python3 - "$CSV" "$OUTDIR/workers.md" "$DURATION" "$REPEATS" "$(($(date +%s) - t0))" "$(nproc)" \
	"$(cut -d' ' -f1-3 /proc/loadavg)" "$(git rev-parse --short HEAD 2>/dev/null)" <<'PYEOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
out, dur, reps, took, ncpu, load, rev = sys.argv[2:9]
by = {}
for r in rows:
    if r["served_rps"]:
        by.setdefault(r["workers"], []).append(r)
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
L = ["# --workers 1 vs 2 at the maximum GET rate, with replay", "",
     "`deploy/bench/workers.sh` (commit %s): deploy/bench/run.sh's topology and closed-loop loadgen "
     "(`max`), its `shadowtap` row (socket mode, `-r` serverB, `-o /dev/null`) with "
     "`BENCH_ST_ARGS=\"--workers N\"`, %s s per run, %s repeats alternated (1,2 / 2,1 / ...), medians. "
     "%s CPUs shared by nginx serverA and serverB, the load generator and the agent. The runs took %s s; "
     "load average at the end %s." % (rev, dur, reps, ncpu, took, load), "",
     "| workers | served req/s | replayed req/s | loss % | agent CPU µs/request | RSS MB | runs |",
     "|---|---|---|---|---|---|---|"]
for w in sorted(by, key=int):
    rs = by[w]
    # replayed req/s: the served rate times the share serverB got (serverB's count
    # includes the drain after the load window, so it is not divided by the window)
    rep_rps = statistics.median(float(r["served_rps"]) * (1 - float(r["loss_pct"]) / 100) for r in rs)
    L.append("| %s | %.0f | %.0f | %.2f | %.2f | %.0f | %d |" % (
        w, med(rs, "served_rps"), rep_rps, med(rs, "loss_pct"), med(rs, "cpu_us_req"), med(rs, "rss_mb"), len(rs)))
L += ["", "Every run (workers.csv):", "", "| repeat | workers | served req/s | served by A | replayed | loss % | µs/request | status |",
      "|---|---|---|---|---|---|---|---|"]
for r in rows:
    L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (r["repeat"], r["workers"], r["served_rps"], r["served_a"],
             r["replayed"], r["loss_pct"], r["cpu_us_req"], r["status"]))
if by:
    best = min(med(rs, "cpu_us_req") for rs in by.values())
    L += ["", "Projection: at %.1f µs of agent CPU per replayed request, one core of a larger host carries "
          "about %.0f requests/s of agent work; N workers on N free cores scale that by N as long as "
          "nothing shared (the output thread, the counters) saturates first." % (best, 1e6 / best if best else 0)]
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PYEOF
