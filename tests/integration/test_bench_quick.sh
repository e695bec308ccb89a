#!/usr/bin/env bash
# The benchmark harness end to end: deploy/bench/run.sh --quick into a scratch results
# directory, then the CSV must have every column and one row per tool and mix, the
# markdown table and plots must exist, and no namespace may be left behind. Numbers
# are checked for presence and consistency only, never for speed, except the
# none-loaded baseline's own conditions (tolerances fixed here before any run):
# serverB's count within 10% of serverA's at every rate (its load generator follows
# serverA's count), and at the lowest rate serverA serves >= 95% of the offered rate
# (the serverB load does not hold serverA's requests, as nginx's mirror did).
. "$(dirname "$0")/lib.sh"
st_need_root "bench quick"
RES=$ST_TMP/results
mkdir -p "$RES"
LOG=$ST_TMP/bench.log

if [ -z "$(st_go)" ]; then
	skip "bench quick (no Go toolchain for the load generator)"
	exit 0
fi
# setup.sh (run by make test) built GoReplay into ~/go/bin; not rebuilt here.
if ! GO=$(st_go) BENCH_NO_SETUP=1 BENCH_GOREPLAY_BUILD=0 BENCH_MICRO=0 BENCH_RESULTS=$RES \
	timeout 420 "$ST_ROOT/deploy/bench/run.sh" --quick >"$LOG" 2>&1; then
	fail "bench quick: run.sh exits 0 ($(grep '^bench:' "$LOG" | tail -2 | tr '\n' ' '))"
	exit 0
fi
pass "bench quick: run.sh exits 0"

CSV=$RES/latest.csv
if [ ! -s "$CSV" ]; then
	fail "bench quick: latest.csv written"
	exit 0
fi
pass "bench quick: latest.csv written"

/usr/bin/python3 - "$CSV" <<'PY'
import csv, sys
need = ["tool", "mix", "offered_rps", "served_rps", "vs_baseline_pct", "baseline", "captured",
        "replayed", "loss_pct", "extra_pct", "after_stop", "cpu_s", "bpf_cpu_s", "rss_mb",
        "p50_ms", "p99_ms", "bpf_ns_per_pkt", "a_ratio", "a_ratio_none", "cpu_us_req", "ns_per_byte"]
rows = list(csv.DictReader(open(sys.argv[1])))
cols = rows[0].keys() if rows else []
missing = [c for c in need if c not in cols]
print("FAIL: bench quick: csv columns (missing %s)" % ",".join(missing) if missing
      else "PASS: bench quick: csv has all columns")
def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
def lowest(rs):
    return min(rs, key=lambda r: float("inf") if r["offered_rps"] == "max" else float(r["offered_rps"]))
for tool in ["none", "none-loaded", "shadowtap", "shadowtap-capture", "goreplay", "tcpdump"]:
    for mix in ["get", "post"]:
        name = "bench quick: rows for %s/%s" % (tool, mix)
        rs = [r for r in rows if r.get("tool") == tool and r.get("mix") == mix]
        if not rs:
            print("FAIL: %s (no row)" % name)
            continue
        bad = [r for r in rs if r["status"] != "ok"]
        if bad:
            print("FAIL: %s (status %s)" % (name, bad[0]["status"]))
            continue
        why = []
        for r in rs:
            if not (num(r["served_rps"]) or 0) > 0:
                why.append("served_rps=%r at %s" % (r["served_rps"], r["offered_rps"]))
            if tool not in ("none", "none-loaded") and not (num(r["captured"]) or 0) > 0:
                why.append("captured=%r at %s" % (r["captured"], r["offered_rps"]))
            if tool != "none" and not (num(r["cpu_s"]) or 0) > 0:
                why.append("no cpu_s at %s" % r["offered_rps"])
            if tool in ("shadowtap", "goreplay") and (r["baseline"] != "none-loaded" or num(r["vs_baseline_pct"]) is None):
                why.append("not reported against none-loaded at %s" % r["offered_rps"])
            if tool == "none-loaded":
                # serverB got what serverA served (the baseline's defining property)
                l, x = num(r["loss_pct"]), num(r["extra_pct"])
                if l is None or x is None or l > 10.0 or x > 10.0:
                    why.append("serverB count off serverA's at %s: loss %s%% extra %s%% (want <= 10%%)"
                               % (r["offered_rps"], r["loss_pct"], r["extra_pct"]))
            if tool == "shadowtap" and not (num(r["bpf_cpu_s"]) or 0) > 0:
                why.append("BPF kernel time not in cpu_s at %s" % r["offered_rps"])
            # the cost columns: CPU per request over the load window, a plausible
            # figure (below 10 ms; above zero for shadowtap, whose BPF run time is
            # counted in ns, and for every tool at the maximum rate: the process part
            # is read in 10 ms clock ticks, which tcpdump at 5,000/s may not reach),
            # and serverA's with/without ratio against the tool's own baseline
            if tool not in ("none", "none-loaded"):
                c = num(r["cpu_us_req"])
                must_move = tool.startswith("shadowtap") or r["offered_rps"] == "max"
                if c is None or not c < 10000 or (must_move and not c > 0.05):
                    why.append("cpu_us_req=%r at %s" % (r["cpu_us_req"], r["offered_rps"]))
                a = num(r["a_ratio"])
                if a is None or not 0 < a < 20:
                    why.append("a_ratio=%r at %s" % (r["a_ratio"], r["offered_rps"]))
                if mix == "post" and num(r["ns_per_byte"]) is None:
                    why.append("no ns_per_byte at %s" % r["offered_rps"])
            if tool == "shadowtap-capture" and (r["baseline"] != "none" or num(r["replayed"]) is not None):
                why.append("capture-only row not against none, or replayed set, at %s" % r["offered_rps"])
        # quality where the README promises it: at the lowest offered rate shadowtap
        # replays every request (no loss, no extras), and the loaded baseline sends
        # serverB every request without slowing serverA below the offered rate
        if tool in ("shadowtap", "none-loaded"):
            r = lowest(rs)
            l, x = num(r["loss_pct"]), num(r["extra_pct"])
            if l is None or x is None or l > 1.0 or x > 1.0:
                why.append("at %s/s loss %s%% extra %s%% (want <= 1%%)" % (r["offered_rps"], r["loss_pct"], r["extra_pct"]))
        if tool == "none-loaded":
            r = lowest(rs)
            s, o = num(r["served_rps"]), num(r["offered_rps"])
            if s is None or o is None or s < 0.95 * o:
                why.append("serverA served %s/s of %s/s offered under the serverB load (want >= 95%%)"
                           % (r["served_rps"], r["offered_rps"]))
        print("FAIL: %s (%s)" % (name, "; ".join(why[:3])) if why else "PASS: %s" % name)
PY

if grep -q '^| tool | mix | offered_rps' "$RES/latest.md" 2>/dev/null; then
	pass "bench quick: latest.md has the results table"
else
	fail "bench quick: latest.md has the results table"
fi
if grep -q 'matplotlib not' "$RES/latest.md" 2>/dev/null; then
	skip "bench quick: plots (python3-matplotlib not installed)"
elif [ -s "$RES/loss.png" ] && [ -s "$RES/cpu.png" ] && [ -s "$RES/throughput.png" ] &&
	[ -s "$RES/cpu_per_req.png" ] && [ -s "$RES/ratio.png" ]; then
	pass "bench quick: loss, cpu, cpu per request, ratio and throughput plots written"
else
	fail "bench quick: loss, cpu, cpu per request, ratio and throughput plots written"
fi
# Ratio mode (deploy/bench/ratio.sh, run.sh with BENCH_PAIRS), briefly: one ABBA block
# per tool of 1 s windows. The table must be well formed, each tool have its 2 pairs,
# the median agree with one recomputed here from the windows (each tool window over its
# adjacent none window), the control none-b's median lie within 0.5-2 (nothing runs in
# it: a wrong pairing or an empty window puts it far out), shadowtap-capture have
# captured what the client had answered (90-110%, the client's count the oracle) and
# serverB's count stay 0 in capture-only blocks (stub_status).
RRES=$ST_TMP/ratio
mkdir -p "$RRES"
if ! GO=$(st_go) BENCH_PAIRS=2 BENCH_DURATION=1 BENCH_TOOLS="none-b shadowtap-capture" BENCH_MIXES=get \
	BENCH_RESULTS=$RRES timeout 120 "$ST_ROOT/deploy/bench/ratio.sh" >"$ST_TMP/ratio.log" 2>&1; then
	fail "bench ratio: ratio.sh exits 0 ($(grep '^bench:' "$ST_TMP/ratio.log" | tail -2 | tr '\n' ' '))"
else
	pass "bench ratio: ratio.sh exits 0"
	/usr/bin/python3 - "$RRES/ratio.csv" "$RRES/ratio_runs.csv" <<'PY'
import csv, statistics, sys
need = ["mix", "tool", "target", "pairs", "median_ratio", "ci_lo", "ci_hi", "ci_coverage_pct",
        "block_median", "none_rps", "tool_rps", "capture_pct", "replayed_b", "verdict", "status"]
try:
    rows = list(csv.DictReader(open(sys.argv[1])))
    wins = list(csv.DictReader(open(sys.argv[2])))
except OSError as e:
    print("FAIL: bench ratio: ratio.csv and ratio_runs.csv written (%s)" % e)
    sys.exit(0)
cols = rows[0].keys() if rows else []
missing = [c for c in need if c not in cols]
print("FAIL: bench ratio: columns (missing %s)" % ",".join(missing) if missing or not rows
      else "PASS: bench ratio: ratio.csv has all columns")
def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
wins.sort(key=lambda w: int(w["slot"]))
nones = [(int(w["slot"]), num(w["served_rps"])) for w in wins if w["tool"] == "none"]
for tool in ["none-b", "shadowtap-capture"]:
    name = "bench ratio: %s" % tool
    rs = [r for r in rows if r.get("tool") == tool and r.get("mix") == "get"]
    if not rs:
        print("FAIL: %s (no row)" % name)
        continue
    r, why = rs[0], []
    if r["status"] != "ok" or r["pairs"] != "2":
        why.append("status %r, pairs %r (want ok, 2)" % (r["status"], r["pairs"]))
    ratios = []
    for w in wins:
        if w["tool"] != tool:
            continue
        s = int(w["slot"])
        base = ([n for t, n in nones if t < s][-1:] if w["pos"] == "a" else [n for t, n in nones if t > s][:1])
        if base and base[0] and num(w["served_rps"]):
            ratios.append(num(w["served_rps"]) / base[0])
    m, lo, hi = num(r["median_ratio"]), num(r["ci_lo"]), num(r["ci_hi"])
    if len(ratios) != 2 or m is None or abs(statistics.median(ratios) - m) > 0.001:
        why.append("median_ratio %r, recomputed from the windows %s" % (r["median_ratio"], ratios))
    if m is None or lo is None or hi is None or not lo <= m <= hi:
        why.append("interval %r..%r around %r" % (r["ci_lo"], r["ci_hi"], r["median_ratio"]))
    if tool == "none-b" and (m is None or not 0.5 <= m <= 2.0):
        why.append("control ratio %r outside 0.5-2" % r["median_ratio"])
    if tool == "none-b" and not r["verdict"].startswith("control"):
        why.append("verdict %r" % r["verdict"])
    if tool == "shadowtap-capture":
        c = num(r["capture_pct"])
        if c is None or not 90.0 <= c <= 110.0:
            why.append("captured %r%% of the client's answered requests (want 90-110)" % r["capture_pct"])
        if r["target"] != "0.90" or not r["verdict"].split()[0] in ("met", "not", "undecided"):
            why.append("target %r verdict %r" % (r["target"], r["verdict"]))
    if num(r["replayed_b"]) != 0:
        why.append("serverB counted %r requests in a capture-only block" % r["replayed_b"])
    print("FAIL: %s (%s)" % (name, "; ".join(why)) if why else "PASS: %s" % name)
PY
	if grep -q '^| mix | tool | target | pairs | median_ratio' "$RRES/ratio.md" 2>/dev/null; then
		pass "bench ratio: ratio.md has the table"
	else
		fail "bench ratio: ratio.md has the table"
	fi
fi

left=$(ip netns list 2>/dev/null | grep -c '^stb-')
if [ "$left" = 0 ] && ! ls -d /sys/fs/bpf/shadowtap-bench-* >/dev/null 2>&1; then
	pass "bench quick: namespaces and pins cleaned up"
else
	fail "bench quick: namespaces and pins cleaned up ($left namespaces left)"
fi
