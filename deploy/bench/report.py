#!/usr/bin/python3
"""Summarise deploy/bench runs: medians over repeats of every (tool, mix, offered rate)
into latest.csv and latest.md, and plot loss, CPU and serverA throughput against the
offered rate (one line per tool) when matplotlib is available."""
import argparse
import csv
import os
import re
import statistics
import sys
import time

TOOLS = ["none", "none-b", "none-loaded", "replay-bare", "none-mirror", "shadowtap", "shadowtap-capture", "shadowtap-w2", "shadowtap-capture-w2",
         "shadowtap-tc", "shadowtap-xdp", "goreplay",
         "goreplay-nosnap", "goreplay-raw", "tcpdump"]
REPLAYING = ("shadowtap", "goreplay")
# Replaying tools make serverB work; their baseline is none-loaded (a second load
# generator follows serverA's count and sends serverB the same mix at the rate serverA
# serves, outside serverA's request path); the capture-only tools' baseline is none.
# none-mirror is not a baseline: nginx's mirror holds each request until serverB answers.
# none-b (only when named) is a twin of none: nothing runs; its ratio to none is the
# noise floor of a ratio
BASELINE = {"tcpdump": "none", "shadowtap-capture": "none", "none-b": "none"}
REPLAY_BASELINE = "none-loaded"
NONE_TOOLS = ("none", "none-b", "none-loaded", "none-mirror", "replay-bare")
# rows whose cpu_s is a follower's (none-loaded's loadgen, replay-bare's C client):
# their CPU per request is per request they sent serverB
FOLLOWERS = ("none-loaded", "replay-bare")
# none-loaded's own check, fixed before any run: serverB's count within this many % of
# serverA's in every run, else the row's status says so
B_TOL_PCT = 10.0
COLUMNS = ["tool", "mix", "offered_rps", "served_rps", "vs_baseline_pct", "baseline", "a_ratio",
           "a_ratio_none", "cpu_us_req", "ns_per_byte", "p50_ms",
           "p99_ms", "captured", "replayed", "loss_pct", "extra_pct", "after_stop", "cpu_s",
           "bpf_cpu_s", "rss_mb", "bpf_ns_per_pkt", "drops", "errors", "runs", "status"]
LABELS = {"goreplay-nosnap": "goreplay without --input-raw-override-snaplen (packets cut at MTU+200)",
          "none-loaded": "none + an independent loadgen sending serverB what serverA serves, as it serves it (baseline of the replaying tools; its cpu_s is that loadgen's CPU)",
          "replay-bare": "none + deploy/bench/replay_bare.c following serverA's count as none-loaded does: it only writes each GET to serverB on 32 kept-alive pipelined connections (each POST on a new connection) and reads the answers (its CPU per request and byte: the kernel's work for a replay at its requests per write, a reference for the replaying tools, not a lower bound)",
          "none-mirror": "none + nginx mirror to serverB (not a baseline: nginx holds each request until its mirror is answered, which throttles serverA)",
          "none": "none (serverB idle)",
          "none-b": "a second none row (nothing runs): its a_ratio against none is the noise floor of a ratio",
          "shadowtap-capture": "shadowtap capturing and writing records (-o /dev/null), no replay",
          "shadowtap-w2": "shadowtap with --workers 2 (the rows above: 1, this box's default)",
          "shadowtap-capture-w2": "shadowtap-capture with --workers 2"}


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def rate_key(r):
    return float("inf") if r == "max" else float(r)


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, nd=1):
    if v is None:
        return ""
    if nd == 0:
        return "%d" % round(v)
    return "%.*f" % (nd, v)


def summarise(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["tool"], r["mix"], r["offered_rps"]), []).append(r)
    out = []
    for (tool, mix, rate), rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        # missing and extra replays in their own columns: a clamp at 0 would let
        # duplicates hide losses or read as a perfect run
        losses, extras = [], []
        for r in ok:
            served, rep = num(r["served_a"]), num(r["replayed"])
            if served and rep is not None:
                losses.append(100.0 * max(0.0, served - rep) / served)
                extras.append(100.0 * max(0.0, rep - served) / served)
        m = lambda k: median([num(r[k]) for r in ok])
        # the tool's CPU over the load window (load + drain, BPF run time included) per
        # request serverA served in that window; per byte the client sent (POST bodies)
        per_req, per_byte = [], []
        for r in ok:
            w, n, mb = num(r.get("win_cpu_s")), num(r.get("win_served_a")), num(r.get("mb_out"))
            if w is not None and n:
                per_req.append(1e6 * w / n)
            if w is not None and mb:
                per_byte.append(1e9 * w / (mb * 1e6))
        statuses = sorted(set(r["status"] for r in rs))
        if tool in FOLLOWERS:
            off = [max(a, b) for a, b in zip(losses, extras) if max(a, b) > B_TOL_PCT]
            if off:
                statuses.append("serverB count off serverA's by up to %.1f%% (tolerance %g%%) in %d run(s)"
                                % (max(off), B_TOL_PCT, len(off)))
        out.append({
            "tool": tool, "mix": mix, "offered_rps": rate,
            "served_rps": fmt(m("served_rps"), 0), "p50_ms": fmt(m("p50_ms"), 3),
            "p99_ms": fmt(m("p99_ms"), 3), "captured": fmt(m("captured"), 0),
            "replayed": fmt(m("replayed"), 0), "loss_pct": fmt(median(losses), 2),
            "extra_pct": fmt(median(extras), 2), "after_stop": fmt(m("after_stop"), 0),
            "cpu_s": fmt(m("cpu_s"), 2), "bpf_cpu_s": fmt(m("bpf_cpu_s"), 3), "rss_mb": fmt(m("rss_mb"), 1),
            "bpf_ns_per_pkt": fmt(m("bpf_ns_per_pkt"), 0), "drops": fmt(m("drops"), 0),
            "errors": fmt(m("errors"), 0), "runs": str(len(ok)),
            # none-loaded: its serverB load generator's CPU per request it sent serverB
            # (what a replaying tool's own sending replaces), for reading ÷ baseline
            "cpu_us_req": (fmt(median(per_req), 2) if tool not in NONE_TOOLS else
                           fmt(median([1e6 * num(r["cpu_s"]) / num(r["replayed"]) for r in ok
                                       if num(r["cpu_s"]) is not None and num(r["replayed"])]), 2)
                           if tool in FOLLOWERS else ""),
            "ns_per_byte": (fmt(median(per_byte), 2) if tool not in NONE_TOOLS else
                            fmt(median([1e3 * num(r["cpu_s"]) / num(r["mb_out"]) for r in ok
                                        if num(r["cpu_s"]) is not None and num(r["mb_out"])]), 2)
                            if tool == "replay-bare" else "") if mix == "post" else "",
            "status": "ok" if statuses == ["ok"] else ";".join(statuses),
        })
    served = {(s["tool"], s["mix"], s["offered_rps"]): num(s["served_rps"]) for s in out}
    # serverA's throughput with the tool over without it, paired per repeat (the runs of
    # one repeat and rate are adjacent in time, so a noisy moment hits both), then the
    # median of those ratios
    per_rep = {(r["repeat"], r["tool"], r["mix"], r["offered_rps"]): num(r["served_rps"])
               for r in rows if r["status"] == "ok"}
    def ratio(tool, base, mix, rate):
        rs = []
        for (rep, t, mx, rt), v in per_rep.items():
            if (t, mx, rt) == (tool, mix, rate):
                b = per_rep.get((rep, base, mix, rate))
                if b and v is not None:
                    rs.append(v / b)
        return fmt(median(rs), 3)
    for s in out:
        t = s["tool"][:-4] if s["tool"].endswith("-old") else s["tool"]
        t = re.sub(r"-w[0-9]+$", "", t)   # shadowtap-capture-w2: the baseline of its row
        base = BASELINE.get(t, REPLAY_BASELINE if t.startswith(REPLAYING) else "")
        b, v = served.get((base, s["mix"], s["offered_rps"])), num(s["served_rps"])
        s["baseline"] = base
        s["vs_baseline_pct"] = fmt(100.0 * v / b, 1) if b and v is not None else ""
        s["a_ratio"] = ratio(s["tool"], base, s["mix"], s["offered_rps"]) if base else ""
        s["a_ratio_none"] = (ratio(s["tool"], "none", s["mix"], s["offered_rps"])
                             if s["tool"] != "none" else "")
    order = {t: i for i, t in enumerate(TOOLS)}
    order.update({t + "-old": i + 0.5 for i, t in enumerate(TOOLS)})
    out.sort(key=lambda s: (s["mix"] != "get", s["mix"], rate_key(s["offered_rps"]),
                            order.get(s["tool"], 99)))
    return out


def plot(summary, outdir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not available: no plots"
    made = []
    for key, label, fname in (("loss_pct", "replay loss %", "loss.png"),
                              ("cpu_s", "tool CPU seconds per run", "cpu.png"),
                              ("cpu_us_req", "tool CPU µs per request (BPF included)", "cpu_per_req.png"),
                              ("a_ratio", "serverA req/s with tool / its baseline", "ratio.png"),
                              ("served_rps", "serverA responses/s", "throughput.png")):
        mixes = sorted(set(s["mix"] for s in summary), key=lambda x: (x != "get", x))
        fig, axes = plt.subplots(1, len(mixes), figsize=(6 * len(mixes), 4.2), squeeze=False)
        for ax, mix in zip(axes[0], mixes):
            rows = [s for s in summary if s["mix"] == mix]
            rates = sorted(set(s["offered_rps"] for s in rows), key=rate_key)
            for tool in TOOLS + sorted(set(s["tool"] for s in rows) - set(TOOLS)):
                xs, ys = [], []
                for i, rate in enumerate(rates):
                    for s in rows:
                        if s["tool"] == tool and s["offered_rps"] == rate and num(s[key]) is not None:
                            xs.append(i)
                            ys.append(num(s[key]))
                if xs:
                    ax.plot(xs, ys, marker="o", label=tool)
            ax.set_xticks(range(len(rates)))
            ax.set_xticklabels(rates)
            ax.set_xlabel("offered requests/s (%s)" % ("keep-alive GET" if mix == "get"
                                                       else "new-connection POST"))
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, fname), dpi=90)
        plt.close(fig)
        made.append(fname)
    return "plots: " + ", ".join(made)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", default="quick")
    ap.add_argument("--duration", default="")
    ap.add_argument("--repeats", default="")
    ap.add_argument("--notes", default="")
    a = ap.parse_args()
    with open(a.runs, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        print("report: no runs", file=sys.stderr)
        return 1
    summary = summarise(rows)
    with open(os.path.join(a.out, "latest.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(summary)
    notes = []
    if a.notes and os.path.exists(a.notes):
        notes = [l.strip() for l in open(a.notes) if l.strip()]
    notes.append(plot(summary, a.out))
    with open(os.path.join(a.out, "latest.md"), "w") as f:
        f.write("# shadowtap benchmark (%s mode, %s)\n\n" % (a.mode, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
        f.write("%s s per run, %s repeat(s), each column the median over repeats (loss_pct: median of per-run losses; a_ratio: median of per-repeat ratios); tools interleaved at each rate. "
                "Host: %s CPUs, kernel %s.\n\n" % (a.duration, a.repeats, os.cpu_count(), os.uname().release))
        f.write("| " + " | ".join(COLUMNS) + " |\n")
        f.write("|" + "---|" * len(COLUMNS) + "\n")
        # every row is published, whichever tool it favours
        for s in summary:
            f.write("| " + " | ".join(s[c] for c in COLUMNS) + " |\n")
        f.write("\nTools: " + "; ".join("%s = %s" % kv for kv in LABELS.items()) + ".\n")
        f.write("\nSetup: client, serverA and serverB are network namespaces joined by veth "
                "(198.18.30.0/24 client-serverA, 198.18.31.0/24 serverA-serverB); nginx (one worker each) "
                "serves a ~150-byte JSON body on serverA:80 and serverB:81 and counts requests in "
                "stub_status on a port nobody captures. The tool under test runs in serverA's namespace "
                "on its client-facing veth. Load: deploy/bench/loadgen (Go, standard library), open "
                "loop: every request has a scheduled send time and latency counts from it, so a stalled "
                "server cannot lower the offered rate (coordinated omission); offered 'max' is closed "
                "loop. Mix get: keep-alive GETs over 32 connections; mix post: one new connection per "
                "POST (Connection: close) from 64 workers, bodies log-uniform 1-256 KiB. All four "
                "processes share the host's CPUs, so a tool's CPU comes out of serverA's throughput.\n")
        f.write("\nColumns: served_rps and p50/p99 latency from the load generator (latency from the "
                "intended send time, so stalls are not hidden); captured = shadowtap's parsed HTTP "
                "requests, GoReplay's requests handed to its HTTP output, tcpdump's packets; "
                "replayed = requests serverB's nginx counted (stub_status) once its count stopped "
                "moving after the load (at most 8 s; the same rule for every tool, read before the "
                "tool is signalled); after_stop = what serverB received after the stop signal (not "
                "in replayed); a_ratio = serverA's served_rps with the tool over its baseline's in the same "
                "repeat (median over repeats), a_ratio_none the same against none; cpu_us_req = the "
                "tool's user+sys CPU over the load window (from just before the load to the end of the "
                "drain, start-up excluded; for shadowtap plus its BPF programs' run time in that "
                "window; the process part is read in clock ticks of 10 ms, so a tool using less than a tick "
                "in the window reads 0) divided by the requests serverA served in it; ns_per_byte = that CPU per byte "
                "the client sent (POST mix); loss_pct = requests serverA counted that serverB did not, extra_pct = "
                "serverB's count above serverA's (duplicates or extra replays; counts are net, so a "
                "run can hide a loss behind as many duplicates), both in % of serverA's count; "
                "vs_baseline_pct = served_rps in % of the baseline row's (none-loaded for the "
                "replaying tools: serverB does the same work, sent by a second loadgen that follows "
                "serverA's count, so serverB competes for the same CPUs without holding serverA's "
                "requests; its loss_pct/extra_pct are serverB's count against serverA's, and a row "
                "beyond B_TOL%% says so in status; none for tcpdump and shadowtap-capture); cpu_s = user+sys "
                "CPU of the tool's whole process tree (its rusage as reaped by the runner: every "
                "thread and reaped child) plus, for shadowtap, bpf_cpu_s = its BPF programs' kernel "
                "time (run_time_ns, kernel.bpf_stats_enabled), which rusage does not see (libpcap's "
                "and tcpdump's in-kernel packet copies are not measurable the same way and are not "
                "included); rss_mb peak RSS; bpf_ns_per_pkt = run_time_ns / run_cnt of shadowtap's "
                "BPF program; drops = shadowtap ringbuf_full, tcpdump kernel drops; for none-loaded, "
                "cpu_s is the serverB load generator's CPU (no tool runs) and cpu_us_req that CPU "
                "per request it sent serverB: a replaying tool's own sending takes its place, so "
                "÷ baseline asks whether the tool costs serverA more than that generator does.\n\n".replace("B_TOL%%", "%g%%" % B_TOL_PCT))
        for n in notes:
            f.write("- %s\n" % n)
    print(open(os.path.join(a.out, "latest.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
