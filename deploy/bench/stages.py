#!/usr/bin/python3
"""Per-stage cost of shadowtap under load, from the bench's own runs: for every
shadowtap run recorded with BENCH_PERF (perf record --call-graph dwarf of the agent
over the load window), the share of the agent's samples spent inside each stage's
entry function (inclusive), times the run's user+sys CPU per request, gives
microseconds per request per stage. The BPF program's time comes from its own
counters (run_time_ns), which perf's process samples do not see.

    stages.py --runs runs.csv --perf DIR --out stages.md
"""
import argparse
import csv
import os
import re
import subprocess
import sys

# stage -> (entry functions, functions inside them that belong to another stage)
STAGES = [
    ("ring drain, reassembly, HTTP parsing, record building", ["capture_poll", "pcapin_step"], []),
    # the system call itself (a tuple: one function under any of its names): a new
    # connection's first write is sent outside replay_send (replay_send_early)
    ("replay: request sent (sendmsg, kernel TCP, veth delivery to serverB)",
     [("__libc_sendmsg", "sendmsg", "__sendmsg")], []),
    ("replay: connect (new serverB connections)", ["__libc_connect"], []),
    ("replay: response read and parsed", ["replay_readable"], ["diff_compare"]),
    ("diff of serverA and serverB answers", ["diff_compare"], []),
    ("JSON encoding of the record", ["record_to_json"], []),
    ("NDJSON write", ["fwrite", "_IO_fwrite", "fflush", "_IO_fflush"], []),
    ("hand-offs between threads (queues, wake-ups)", ["bq_pop", "bq_push", "bq_push_many",
                                                     "epoll_wait"], []),
]


def children_pct(data):
    """{symbol: inclusive %} from perf report --children."""
    out = subprocess.run(["perf", "report", "-i", data, "--children", "--sort", "sym", "--stdio",
                          "-g", "none", "--percent-limit", "0.05"],
                         capture_output=True, text=True, check=False).stdout
    pct = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+([\d.]+)%\s+\[[.k]\]\s+(\S+)", line)
        if m:
            sym = m.group(3)
            pct[sym] = max(pct.get(sym, 0.0), float(m.group(1)))
    return pct


def share(pct, e):
    """Inclusive % of an entry function; a tuple names one function by its aliases."""
    if isinstance(e, tuple):
        return max(pct.get(a, 0.0) for a in e)
    return pct.get(e, 0.0)


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--perf", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = [r for r in csv.DictReader(open(a.runs)) if r["tool"].startswith("shadowtap")
            and r["status"] == "ok"]
    cols = []
    for r in rows:
        rid = "%s-%s-%s-%s" % (r["repeat"], r["tool"], r["mix"], r["offered_rps"])
        data = os.path.join(a.perf, rid + ".data")
        w, n, bpf = num(r.get("win_cpu_s")), num(r.get("win_served_a")), num(r.get("bpf_cpu_s"))
        if not os.path.exists(data) or not w or not n:
            continue
        bpf_us = 1e6 * (bpf or 0) / n
        user_us = 1e6 * w / n - bpf_us
        pct = children_pct(data)
        stages = []
        for name, entries, minus in STAGES:
            p = sum(share(pct, e) for e in entries) - sum(pct.get(m, 0.0) for m in minus
                                                         if any(share(pct, e) for e in entries))
            stages.append((name, max(0.0, p) * user_us / 100.0))
        other = user_us - sum(v for _, v in stages)
        cols.append(("%s %s %s" % (r["tool"], r["mix"], r["offered_rps"]), bpf_us, stages,
                     max(0.0, other), user_us + bpf_us))
    if not cols:
        print("stages: no perf data", file=sys.stderr)
        return 1
    with open(a.out, "w") as f:
        f.write("# shadowtap cost per request by stage\n\n")
        f.write("us of CPU per request served. BPF: the capture program's run time "
                "(run_time_ns / requests). The other rows: the agent's user+sys CPU over the load "
                "window per request, split by the share of perf samples (--call-graph dwarf) inside "
                "each stage's entry function; the perf recording itself slows the agent, so compare "
                "rows within a column. Columns: tool, mix, offered rate.\n\n")
        f.write("| stage | " + " | ".join(c[0] for c in cols) + " |\n")
        f.write("|---|" + "---|" * len(cols) + "\n")
        f.write("| BPF program (kernel) | " + " | ".join("%.2f" % c[1] for c in cols) + " |\n")
        for i, (name, _, _) in enumerate(STAGES):
            f.write("| %s | " % name + " | ".join("%.2f" % c[2][i][1] for c in cols) + " |\n")
        f.write("| other (kernel scheduling, allocation, timers, ...) | " +
                " | ".join("%.2f" % c[3] for c in cols) + " |\n")
        f.write("| **total** | " + " | ".join("**%.2f**" % c[4] for c in cols) + " |\n")
    print(open(a.out).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
