#!/usr/bin/python3
"""serverA's requests/s with a tool over without it, from run.sh's ratio mode
(BENCH_PAIRS, deploy/bench/ratio.sh): ratio_runs.csv holds every load window in the
order it ran, per mix:  none  T1a T1b  none  T2a T2b  none ...  Each tool window is
paired with its adjacent none window (a: the one before, b: the one after), so a
linear drift over a block adds to one pair and takes from the other.

Per tool and mix: the median of the per-pair ratios with a distribution-free
interval for that median from order statistics (the k-th smallest and k-th largest
ratio, k the largest with P(Binomial(n, 1/2) < k) <= 2.5%; its exact coverage is
printed: 96.1% for 12 pairs; below 6 pairs no such k exists and the interval is
min..max with its lower coverage), and the decision against the tool's target,
fixed before any run: met if the interval's lower end >= the target, not met if its
upper end < the target, otherwise undecided at this noise. none-b starts nothing: its
interval is the noise floor of a ratio (it should contain 1)."""
import argparse
import csv
import math
import os
import statistics
import sys
import time

COLUMNS = ["mix", "tool", "target", "pairs", "median_ratio", "ci_lo", "ci_hi", "ci_coverage_pct",
           "min_ratio", "max_ratio", "block_median", "none_rps", "tool_rps", "capture_pct",
           "replayed_b", "verdict", "status"]


def target(tool):
    """issue 19 target 2: >= 0.90 capturing and writing records, >= 0.80 replaying;
    tcpdump is held to the capture target as a reference, none-b is the control"""
    if tool == "none-b":
        return None
    if tool.startswith("shadowtap") and "capture" not in tool:
        return 0.80
    return 0.90


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def median_ci(xs, level=0.95):
    """(median, lo, hi, coverage) of xs: order-statistic interval for the median"""
    xs = sorted(xs)
    n = len(xs)
    tail = (1.0 - level) / 2
    k, cum = 0, 0.0
    # cum = P(B <= i) for B ~ Binomial(n, 1/2); k = largest with P(B <= k-1) <= tail
    for i in range(n // 2 + 1):
        cum += math.comb(n, i) / 2.0 ** n
        if cum <= tail:
            k = i + 1
        else:
            break
    if k == 0:
        k = 1
    p_out = sum(math.comb(n, i) for i in range(k)) / 2.0 ** n
    return statistics.median(xs), xs[k - 1], xs[n - k], 100.0 * (1 - 2 * p_out)


def verdict(tool, lo, hi):
    t = target(tool)
    if t is None:
        return "control: contains 1" if lo <= 1.0 <= hi else "control: does not contain 1"
    if lo >= t:
        return "met (lower end >= %.2f)" % t
    if hi < t:
        return "not met (upper end < %.2f)" % t
    return "undecided (interval spans %.2f)" % t


def pairs_of(rows):
    """{(mix, tool): [(ratio, none_rps, tool_rps, block)]} and the blocks' extras"""
    out, blocks = {}, {}
    by_mix = {}
    for r in rows:   # windows pair only within one run (file) and mix
        by_mix.setdefault((r.get("_run", 0), r["mix"]), []).append(r)
    for (run, mix), rs in by_mix.items():
        rs.sort(key=lambda r: int(r["slot"]))
        nones = [(int(r["slot"]), num(r["served_rps"])) for r in rs
                 if r["tool"] == "none" and r["status"] == "ok" and num(r["served_rps"])]
        for r in rs:
            if r["tool"] == "none":
                continue
            key = (mix, r["tool"])
            out.setdefault(key, [])
            b = blocks.setdefault((mix, r["tool"], (run, r["block"])), {"rps": {}, "ok": 0, "status": r["status"]})
            if r["status"] != "ok":
                b["status"] = r["status"]
                continue
            v, slot = num(r["served_rps"]), int(r["slot"])
            b["ok"] += int(num(r["ok"]) or 0)
            if r["pos"] == "b":
                b["captured"], b["replayed"] = num(r["captured"]), num(r["replayed_b"])
            if v is None:
                continue
            if r["pos"] == "a":
                cand = [n for s, n in nones if s < slot]
                base = cand[-1] if cand else None
            else:
                cand = [n for s, n in nones if s > slot]
                base = cand[0] if cand else None
            b["rps"][r["pos"]] = (v, base)
            if base:
                out[key].append((v / base, base, v, r["block"]))
    return out, blocks


def summarise(rows):
    pairs, blocks = pairs_of(rows)
    summary = []
    for (mix, tool), ps in sorted(pairs.items(), key=lambda kv: (kv[0][0] != "get", kv[0][0])):
        bl = [b for (m, t, _), b in blocks.items() if (m, t) == (mix, tool)]
        statuses = sorted(set(b["status"] for b in bl))
        s = {"mix": mix, "tool": tool, "pairs": str(len(ps)),
             "target": "" if target(tool) is None else "%.2f" % target(tool),
             "status": "ok" if statuses == ["ok"] else ";".join(statuses)}
        if ps:
            ratios = [p[0] for p in ps]
            med, lo, hi, cov = median_ci(ratios)
            # the block's drift-cancelled ratio: both tool windows over both none windows
            br = [(b["rps"]["a"][0] + b["rps"]["b"][0]) / (b["rps"]["a"][1] + b["rps"]["b"][1])
                  for b in bl if set(b["rps"]) == {"a", "b"} and b["rps"]["a"][1] and b["rps"]["b"][1]]
            cp = [100.0 * b["captured"] / b["ok"] for b in bl
                  if tool.startswith("shadowtap") and b.get("captured") is not None and b["ok"]]
            rb = [b["replayed"] for b in bl if b.get("replayed") is not None]
            s.update({"median_ratio": "%.3f" % med, "ci_lo": "%.3f" % lo, "ci_hi": "%.3f" % hi,
                      "ci_coverage_pct": "%.1f" % cov, "min_ratio": "%.3f" % min(ratios),
                      "max_ratio": "%.3f" % max(ratios),
                      "block_median": "%.3f" % statistics.median(br) if br else "",
                      "none_rps": "%d" % statistics.median(p[1] for p in ps),
                      "tool_rps": "%d" % statistics.median(p[2] for p in ps),
                      "capture_pct": "%.1f" % statistics.median(cp) if cp else "",
                      "replayed_b": "%d" % statistics.median(rb) if rb else "",
                      "verdict": verdict(tool, lo, hi),
                      "_ratios": ratios})
        summary.append(s)
    return summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True, action="append",
                    help="ratio_runs.csv; repeat to pool runs (pairs stay within their run)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", default="")
    ap.add_argument("--rate", default="max")
    ap.add_argument("--notes", action="append", default=[])
    a = ap.parse_args()
    rows = []
    for i, path in enumerate(a.runs):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                r["_run"] = (i, r.get("run", ""))   # a pooled file: its run column
                rows.append(r)
    if not rows:
        print("ratio: no windows", file=sys.stderr)
        return 1
    summary = summarise(rows)
    with open(os.path.join(a.out, "ratio.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for s in summary:
            w.writerow({c: s.get(c, "") for c in COLUMNS})
    notes = []
    for path in a.notes:
        if os.path.exists(path):
            notes += [l.strip() for l in open(path) if l.strip() and not l.startswith("goreplay:")]
    with open(os.path.join(a.out, "ratio.md"), "w") as f:
        f.write("# serverA's requests/s with each tool over without it (ratio mode, %s)\n\n"
                % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        f.write("Windows of %s s at offered rate %s, back to back in ABBA order (none, tool, tool, "
                "none, next tool, ...; the tool order rotates every round; the tool started before "
                "its two windows and stopped after them); each tool window over its adjacent none "
                "window is one pair. median_ratio = median of the pairs, ci_lo..ci_hi its "
                "order-statistic interval (coverage in ci_coverage_pct), block_median = median over "
                "blocks of (both tool windows) / (both none windows). Decision rule, fixed before "
                "the run: met if ci_lo >= target, not met if ci_hi < target, otherwise undecided at "
                "this noise (target 0.90 capturing, 0.80 replaying; tcpdump held to 0.90 as a "
                "reference). none-b starts nothing: its interval is the noise floor of a ratio. "
                "capture_pct = shadowtap's captured requests (exit summary) over the requests the "
                "client had answered in the block's two windows; replayed_b = requests serverB "
                "counted over the block (0 unless the tool replays). Host: %s CPUs, kernel %s.\n\n"
                % (a.duration, a.rate, os.cpu_count(), os.uname().release))
        f.write("| " + " | ".join(COLUMNS) + " |\n")
        f.write("|" + "---|" * len(COLUMNS) + "\n")
        for s in summary:
            f.write("| " + " | ".join(s.get(c, "") for c in COLUMNS) + " |\n")
        f.write("\nPer-pair ratios (in the order run):\n\n")
        for s in summary:
            f.write("- %s %s: %s\n" % (s["mix"], s["tool"], " ".join("%.3f" % x for x in s.get("_ratios", []))))
        for mix in sorted(set(r["mix"] for r in rows), key=lambda m: (m != "get", m)):
            nones = [num(r["served_rps"]) for r in rows
                     if r["mix"] == mix and r["tool"] == "none" and num(r["served_rps"])]
            if nones:
                f.write("\n%s: none windows %d, served_rps median %d, min %d, max %d, coefficient of "
                        "variation %.1f%%.\n" % (mix, len(nones), statistics.median(nones), min(nones),
                                                  max(nones), 100.0 * statistics.pstdev(nones) / statistics.mean(nones)))
        f.write("\n")
        for n in notes:
            f.write("- %s\n" % n)
    print(open(os.path.join(a.out, "ratio.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
