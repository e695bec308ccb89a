#!/usr/bin/python3
"""Splice the benchmark's results into README.md, so a new run updates the README with
one command:

    deploy/bench/readme_table.py [--results deploy/bench/results] [--readme README.md]

Between <!-- bench-table:begin --> and <!-- bench-table:end -->: every row of
results/latest.csv (the same rows as latest.md; the row count is checked against
latest.md's table) in the README's column subset. Between <!-- bench-ab:begin --> and
<!-- bench-ab:end -->: the before/after table at the maximum rate, from the rows of the
-old binary (BENCH_ST_OLD) beside the current one, when the run has them; otherwise
that block is left as it is. Between <!-- bench-workers:begin --> and
<!-- bench-workers:end --> (when present): --workers 1 against 2 (the -w2 rows). Exits 1 (README untouched) when a marker is missing or
the results disagree with latest.md."""
import argparse
import csv
import os
import re
import sys

COLS = [("mix", "mix"), ("offered req/s", "offered_rps"), ("tool", "tool"),
        ("serverA req/s", "served_rps"), ("÷ baseline", "a_ratio"), ("÷ none", "a_ratio_none"),
        ("CPU µs/req", "cpu_us_req"), ("ns/byte", "ns_per_byte"), ("p99 ms", "p99_ms"),
        ("replayed", "replayed"), ("loss %", "loss_pct"), ("extra %", "extra_pct"),
        ("RSS MB", "rss_mb"), ("drops", "drops"), ("status", "status")]
THOUSANDS = ("offered_rps", "served_rps", "replayed")


def cell(key, v):
    if key == "status":
        return "" if v == "ok" else v
    if v in ("", None):
        return ""
    if key in THOUSANDS:
        try:
            return "{:,}".format(int(float(v)))
        except ValueError:
            return v
    if key == "cpu_us_req":
        try:
            f = float(v)
            return "{:,}".format(round(f)) if f >= 1000 else v
        except ValueError:
            return v
    return v


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def main_table(rows, title):
    out = [title, "",
           "| " + " | ".join(h for h, _ in COLS) + " |",
           "|" + "---|" * len(COLS)]
    for r in rows:
        out.append("| " + " | ".join(cell(k, r.get(k, "")) for _, k in COLS) + " |")
    return out


def ab_table(rows, title_run):
    """Before/after at the maximum rate: shadowtap vs shadowtap-old and
    shadowtap-capture vs shadowtap-capture-old, GET and POST."""
    at = {(r["tool"], r["mix"]): r for r in rows if r["offered_rps"] == "max"}
    if not any(t.endswith("-old") for t, _ in at):
        return None

    def pair(tool, mix, key, nd=None):
        vals = []
        for t in (tool + "-old", tool):
            v = at.get((t, mix), {}).get(key, "")
            vals.append(v if v != "" else "n/a")
        return vals

    def both(tool, key):
        g, p = pair(tool, "get", key), pair(tool, "post", key)
        return ["%s / %s" % (g[0], p[0]), "%s / %s" % (g[1], p[1])]
    lines = [
        ("agent CPU per replayed request, GET / POST (µs, BPF included)", both("shadowtap", "cpu_us_req")),
        ("agent CPU per capture-only request, GET / POST (µs)", both("shadowtap-capture", "cpu_us_req")),
        ("ns per client byte, replayed / capture-only POST",
         ["%s / %s" % (pair("shadowtap", "post", "ns_per_byte")[0], pair("shadowtap-capture", "post", "ns_per_byte")[0]),
          "%s / %s" % (pair("shadowtap", "post", "ns_per_byte")[1], pair("shadowtap-capture", "post", "ns_per_byte")[1])]),
        ("serverA ÷ baseline (none-loaded), replaying GET / POST", both("shadowtap", "a_ratio")),
        ("serverA ÷ none, replaying GET / POST", both("shadowtap", "a_ratio_none")),
        ("serverA ÷ none, capture-only GET / POST", both("shadowtap-capture", "a_ratio_none")),
        ("peak RSS, replaying GET / POST (MB)", both("shadowtap", "rss_mb")),
        ("loss %, replaying GET / POST", both("shadowtap", "loss_pct")),
    ]
    old = sorted(set(r["tool"] for r in rows if r["tool"].endswith("-old")))
    out = ["Both binaries were measured side by side in the run above (%s): the `-old` rows "
           "(%s) are the binary built from `BENCH_ST_OLD_COMMIT` or given as `BENCH_ST_OLD` "
           "(\"before\"; the run's notes in results/latest.md name it), the others this tree "
           "(\"after\"), interleaved at each rate; closed loop at the maximum rate, medians over "
           "the run's repeats." % (title_run, ", ".join("`%s`" % t for t in old)), "",
           "| at the maximum rate | before | after |", "|---|---|---|"]
    for name, (b, a) in lines:
        out.append("| %s | %s | %s |" % (name, b, a))
    return out


def workers_table(rows, title_run):
    """--workers 1 against 2 at the maximum rate: the shadowtap and shadowtap-capture
    rows (this box's default, 1 worker) beside shadowtap-w2 and shadowtap-capture-w2."""
    at = {(r["tool"], r["mix"]): r for r in rows if r["offered_rps"] == "max"}
    if not any(t.endswith("-w2") for t, _ in at):
        return None
    out = ["`--workers` 1 and 2 side by side in one run (%s), closed loop at the maximum "
           "rate, medians over the run's repeats; the runs of one rate are interleaved." % title_run, "",
           "| mix | agent | workers | serverA req/s | ÷ none | CPU µs/req | ns/byte | replayed | loss % | RSS MB | drops |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for mix in ("get", "post"):
        for base, what in (("shadowtap", "replaying"), ("shadowtap-capture", "capture-only")):
            for tool, nw in ((base, 1), (base + "-w2", 2)):
                r = at.get((tool, mix))
                if not r:
                    continue
                out.append("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    mix, what, nw, cell("served_rps", r["served_rps"]), r["a_ratio_none"],
                    cell("cpu_us_req", r["cpu_us_req"]), r["ns_per_byte"],
                    cell("replayed", r["replayed"]), r["loss_pct"], r["rss_mb"], r["drops"]))
    return out


def baseline_note(rows):
    """Which baseline ÷ baseline used in this run, and whether none-loaded's own check
    (serverB's count within report.py's tolerance of serverA's) held in every row."""
    loaded = [r for r in rows if r["tool"] == "none-loaded"]
    if not loaded:
        if any(r["tool"] == "none-mirror" for r in rows):
            return ["This run predates the `none-loaded` baseline: ÷ baseline of the replaying "
                    "tools is against `none-mirror`, which nginx's mirror throttles (a request ends "
                    "only when its mirror subrequest is answered); read ÷ none."]
        return ["This run has no serverB-loaded baseline: ÷ baseline of the replaying tools is empty."]
    bad = [r for r in loaded if "serverB count off" in r["status"]]
    gaps = []
    for r in loaded:
        l, x = num(r["loss_pct"]), num(r["extra_pct"])
        if l is not None and x is not None:
            gaps.append(max(l, x))
    s = ("÷ baseline of the replaying tools is against `none-loaded`; in its %d rows serverB's count "
         "was within %.2f%% of serverA's (largest gap, medians over repeats)" % (len(loaded), max(gaps) if gaps else float("nan")))
    if bad:
        s += "; rows flagged outside the tolerance: " + ", ".join(
            "%s %s" % (r["mix"], r["offered_rps"]) for r in bad)
    return [s + "."]


def run_notes(md):
    """latest.md's notes on what was run and the machine's load."""
    return [l[2:] for l in md if l.startswith("- run: ") or l.startswith("- load runs took ")]


def splice(text, name, lines):
    begin, end = "<!-- %s:begin -->" % name, "<!-- %s:end -->" % name
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise ValueError("README has no %s ... %s markers" % (begin, end))
    return text[:i + len(begin)] + "\n" + "\n".join(lines) + "\n" + text[j:]


def main():
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=os.path.join(root, "deploy", "bench", "results"))
    ap.add_argument("--readme", default=os.path.join(root, "README.md"))
    a = ap.parse_args()
    with open(os.path.join(a.results, "latest.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    md = open(os.path.join(a.results, "latest.md")).read().splitlines()
    md_rows = [l for l in md if l.startswith("| ") and not l.startswith("| tool |")]
    if len(md_rows) != len(rows) or not rows:
        print("readme_table: latest.csv has %d rows, latest.md's table %d: run report.py again"
              % (len(rows), len(md_rows)), file=sys.stderr)
        return 1
    # latest.md's first two lines: "# shadowtap benchmark (MODE mode, DATE)" and the
    # run's shape ("N s per run, R repeat(s), ...")
    head = md[0].lstrip("# ").strip()
    shape = next((l for l in md[1:] if l.strip()), "")
    m = re.match(r"(\S+) s per run, (\S+) repeat", shape)
    title = ("Generated by `deploy/bench/readme_table.py` from results/latest.md (%s%s): "
             "all %d rows." % (head.replace("shadowtap benchmark ", "").strip("()"),
                                 "; %s s per run, %s repeat(s), medians" % m.groups() if m else "",
                                 len(rows)))
    text = open(a.readme).read()
    try:
        notes = ["- " + n for n in run_notes(md)]
        extra = baseline_note(rows) + ([""] + notes if notes else [])
        text = splice(text, "bench-table", [title, ""] + extra + [""] + main_table(rows, "")[2:])
        ab = ab_table(rows, "%s; %s s per run, %s repeat(s)" % ((head.replace("shadowtap benchmark ", "").strip("()"),) + m.groups())
                      if m else head)
        if ab is not None:
            text = splice(text, "bench-ab", ab)
        wk = workers_table(rows, "%s; %s s per run, %s repeat(s)" % ((head.replace("shadowtap benchmark ", "").strip("()"),) + m.groups())
                           if m else head)
        if wk is not None and "<!-- bench-workers:begin -->" in text:
            text = splice(text, "bench-workers", wk)
    except ValueError as e:
        print("readme_table: %s" % e, file=sys.stderr)
        return 1
    with open(a.readme, "w") as f:
        f.write(text)
    print("readme_table: %d rows%s spliced into %s" % (len(rows), " and the before/after table" if ab else "",
                                                      a.readme))
    return 0


if __name__ == "__main__":
    sys.exit(main())
