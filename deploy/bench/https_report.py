#!/usr/bin/python3
"""The HTTPS rows of deploy/bench (mixes https-get and https-post) as one table,
results/https.md: serverA's req/s with and without shadowtap --tls openssl, replay
loss, the agent's CPU per request, and what the uprobes cost per SSL call, from the
agent's own "tls: bpf_runs" / "tls: bpf_run_ns" exit-summary lines (the programs'
run_cnt and run_time_ns with kernel.bpf_stats_enabled). Medians over repeats."""
import argparse
import csv
import os
import re
import statistics
import time

ap = argparse.ArgumentParser()
ap.add_argument("--runs", required=True)
ap.add_argument("--logs", required=True, help="build/bench/logs: each run's tool log")
ap.add_argument("--out", required=True)
a = ap.parse_args()

ENTRIES = ("read_ent", "read_ex_ent", "write_ent", "write_ex_ent")


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, nd=1):
    return "" if v is None else "%.*f" % (nd, v)


def bpf_cost(path):
    """(ns per SSL call: entry + return, ns per sys_enter run, total tls BPF ns)"""
    runs = ns = None
    try:
        for line in open(path):
            m = re.match(r"^tls: bpf_(runs|run_ns) (.*)", line)
            if m:
                d = {k: int(v) for k, v in (kv.split("=") for kv in m.group(2).split())}
                if m.group(1) == "runs":
                    runs = d
                else:
                    ns = d
    except OSError:
        return None, None, None
    if not runs or not ns or not runs.get("rw_ret"):
        return None, None, None
    per_call = (sum(ns[k] for k in ENTRIES) + ns["rw_ret"]) / runs["rw_ret"]
    sys_run = ns["sys_enter"] / runs["sys_enter"] if runs.get("sys_enter") else None
    return per_call, sys_run, sum(ns.values())


rows = [r for r in csv.DictReader(open(a.runs)) if r["mix"].startswith("https-")]
groups = {}
for r in rows:
    groups.setdefault((r["mix"], r["offered_rps"], r["tool"]), []).append(r)
served = {}
for (mix, rate, tool), rs in groups.items():
    served[(mix, rate, tool)] = med([num(r["served_rps"]) for r in rs if r["status"] == "ok"])

# the baseline: none-loaded (serverB loaded by a generator following serverA's count,
# outside serverA's request path); runs made before it existed have none-mirror
BASE = "none-loaded" if any(t == "none-loaded" for (_, _, t) in groups) else "none-mirror"
cols = ["mix", "offered_rps", "tool", "served_rps", "vs_baseline_pct", "loss_pct", "cpu_us_req",
        "uprobe_ns_per_ssl_call", "sys_enter_ns", "tls_bpf_us_req", "runs", "status"]
out = []
order = {"none": 0, "none-loaded": 1, "none-mirror": 1, "shadowtap": 2}
for (mix, rate, tool), rs in sorted(groups.items(), key=lambda kv: (
        kv[0][0], float("inf") if kv[0][1] == "max" else float(kv[0][1]), order.get(kv[0][2], 9))):
    ok = [r for r in rs if r["status"] == "ok"]
    loss, cpu, call, sysr, bpf_req = [], [], [], [], []
    for r in ok:
        sa, rep = num(r["served_a"]), num(r["replayed"])
        if sa and rep is not None and tool != "none":
            loss.append(100.0 * max(0.0, sa - rep) / sa)
        # CPU over the load window when the runner measured it, else the whole run
        w, wn = num(r.get("win_cpu_s")), num(r.get("win_served_a"))
        if w is not None and wn:
            cpu.append(1e6 * w / wn)
        elif num(r["cpu_s"]) is not None and sa:
            cpu.append(1e6 * num(r["cpu_s"]) / sa)
        if tool.startswith("shadowtap"):
            c, s_, tot = bpf_cost(os.path.join(a.logs, "%s-%s-%s-%s.log" % (r["repeat"], tool, mix, rate)))
            call.append(c)
            sysr.append(s_)
            if tot is not None and sa:
                bpf_req.append(tot / sa / 1000.0)
    v, b = served.get((mix, rate, tool)), served.get((mix, rate, BASE))
    statuses = sorted(set(r["status"] for r in rs))
    out.append({
        "mix": mix, "offered_rps": rate, "tool": tool, "served_rps": fmt(v, 0),
        "vs_baseline_pct": fmt(100.0 * v / b, 1) if v and b and tool != BASE else "",
        "loss_pct": fmt(med(loss), 2) if tool.startswith("shadowtap") else "",
        "cpu_us_req": fmt(med(cpu), 1) if tool.startswith("shadowtap") else "",
        "uprobe_ns_per_ssl_call": fmt(med(call), 0), "sys_enter_ns": fmt(med(sysr), 0),
        "tls_bpf_us_req": fmt(med(bpf_req), 2), "runs": str(len(ok)),
        "status": "ok" if statuses == ["ok"] else ";".join(statuses),
    })

with open(a.out, "w") as f:
    f.write("# HTTPS rows of the shadowtap benchmark (%s)\n\n" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    f.write("serverA's nginx serves https on 443 (TLS 1.3, a certificate made for the run); loadgen's "
            "https-get is keep-alive GETs on 32 connections, https-post a new TLS connection per POST "
            "(1-256 KiB bodies). shadowtap runs with `--tls openssl --tls-port 443` and replays to "
            "serverB over http. Host: %d CPUs, kernel %s.\n\n" % (os.cpu_count(), os.uname().release))
    f.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
    for o in out:
        f.write("| " + " | ".join(o[c] for c in cols) + " |\n")
    f.write("\nserved_rps: serverA's answers per second (loadgen); vs_baseline_pct: in %% of the "
            "%s row (no capturing tool; %s); loss_pct: requests serverA counted that serverB did not "
            "receive; cpu_us_req: the agent's user+sys CPU, BPF run time included, per request "
            "serverA served; uprobe_ns_per_ssl_call: BPF run time of the entry program plus the "
            "return program (tls_rw_ret) per SSL_read/SSL_write call, from the programs' run_time_ns "
            "and run_cnt (kernel.bpf_stats_enabled); the uprobe trap itself is not included; "
            "sys_enter_ns: the raw tracepoint that runs on every syscall of the host while the "
            "agent runs; tls_bpf_us_req: all TLS programs' run time per request. GoReplay has no "
            "HTTPS capture: its rows say so instead of a number.\n" % (BASE, "serverB loaded by a second loadgen that follows serverA's count, the baseline of the replaying tools" if BASE == "none-loaded" else "serverA's nginx mirrors each request to serverB, which holds each request until serverB answers"))
print("https report: %s (%d rows)" % (a.out, len(out)))
