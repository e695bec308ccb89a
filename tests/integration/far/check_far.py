#!/usr/bin/env python3
"""Checks for test_replay_far.sh: shadowtap's NDJSON records against serverB's log
(slow_server.go: "<kernel receive ns> <conn> <method> <client conn> <seq>" per request,
then "# connections=N peak_open=N requests=N"), serverA's nginx access log and the
agent's counters. Prints PASS:/FAIL: lines and info lines; always exits 0."""
import argparse
import collections
import json
import re

ID = re.compile(r"/c/(\d+)/(\d+)")
SUMMARY = re.compile(r"^# .*peak_open=(\d+)")


def out(ok, name, why=""):
    print("PASS: %s" % name if ok else "FAIL: %s (%s)" % (name, why))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--records", required=True)
    ap.add_argument("--serverb-log", required=True)
    ap.add_argument("--sent", type=int, required=True, help="requests the client sent")
    ap.add_argument("--retries", type=int, default=0, help="the agent's retries counter")
    ap.add_argument("--order", action="store_true", help="check per-connection order at serverB")
    ap.add_argument("--nginx-log", help="serverA's access log: requests counted both ways against serverB's")
    ap.add_argument("--prefix", default="", help="only nginx log requests whose target starts with this")
    ap.add_argument("--max", type=int, help="serverB's peak of open connections must be within this")
    ap.add_argument("--lossless", action="store_true", help="every request answered by serverB")
    ap.add_argument("--fault", action="store_true", help="every request has a result or an error")
    a = ap.parse_args()
    n = a.name
    recs = collections.Counter()
    res = collections.Counter()
    post = set()
    with open(a.records, errors="replace") as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            m = ID.search(r.get("url", {}).get("original", ""))
            if not m:
                continue
            key = (int(m.group(1)), int(m.group(2)))
            recs[key] += 1
            rp = r.get("replay", {})
            if "status_code" in rp:
                res["ok"] += 1
            else:
                res[rp.get("error") or ("skipped: %s" % rp.get("skipped"))] += 1
            if r.get("http", {}).get("request", {}).get("method") == "POST":
                post.add(key)
    seen = collections.Counter()
    order = collections.defaultdict(list)
    conns = set()
    peak = None
    with open(a.serverb_log) as f:
        for line in f:
            m = SUMMARY.match(line)
            if m:
                peak = int(m.group(1))
                continue
            p = line.split()
            if len(p) != 5:
                continue
            key = (int(p[3]), int(p[4]))
            seen[key] += 1
            conns.add(p[1])
            # in log order: one serverB connection's requests are logged in stream order
            order[key[0]].append((int(p[0]), key[1]))
    print("    %s: client sent %d, records %d, replay results %s, serverB saw %d requests on %d connections"
          " (peak %s open at once)" % (n, a.sent, sum(recs.values()), dict(res), sum(seen.values()), len(conns), peak))
    if a.nginx_log:
        served = collections.Counter()
        with open(a.nginx_log, errors="replace") as f:
            for line in f:
                q = line.split('"')
                if len(q) < 2:
                    continue
                rl = q[1].split()
                if len(rl) < 2 or not rl[1].startswith(a.prefix):
                    continue
                m = ID.search(rl[1])
                if m:
                    served[(int(m.group(1)), int(m.group(2)))] += 1
        missing = sum(1 for k in served if k not in seen)
        extra = sum(1 for k in seen if k not in served)
        print("    %s: serverA's log %d requests, serverB's %d distinct: %d missing at serverB (%.3f%%),"
              " %d at serverB only" % (n, sum(served.values()), len(seen), missing,
                                        100.0 * missing / max(1, len(served)), extra))
        out(extra == 0, "%s: serverB got no request serverA's log lacks" % n, "%d extra" % extra)
        if a.lossless:
            out(served and missing == 0 and sum(served.values()) == a.sent,
                "%s: every request in serverA's log (%d) reached serverB" % (n, sum(served.values())),
                "%d of %d missing, client sent %d" % (missing, len(served), a.sent))
    if a.max is not None:
        out(peak is not None and 1 <= peak <= a.max,
            "%s: serverB saw at most %s connections open at once (max %d)" % (n, peak, a.max),
            "peak %s" % peak)
    dup = [k for k, v in recs.items() if v > 1]
    out(sum(recs.values()) == a.sent and not dup, "%s: one record per request sent (%d)" % (n, a.sent),
        "%d records, %d duplicated" % (sum(recs.values()), len(dup)))
    extra = sum(v - 1 for v in seen.values() if v > 1)
    out(extra <= a.retries, "%s: requests seen twice by serverB (%d) <= retries counted (%d)" % (n, extra, a.retries),
        "a silent duplicate")
    pdup = [k for k in post if seen[k] > 1]
    out(not pdup, "%s: no POST reached serverB twice (%d POSTs)" % (n, len(post)), "e.g. %s" % (pdup[:3],))
    if a.lossless:
        out(res["ok"] == a.sent, "%s: 0%% loss, serverB answered all %d" % (n, a.sent),
            "%d of %d answered: %s" % (res["ok"], a.sent, dict(res)))
        missing = [k for k in recs if seen[k] == 0]
        out(not missing, "%s: serverB's log holds every request" % n, "%d missing" % len(missing))
    if a.fault:
        other = sum(v for k, v in res.items() if k != "ok")
        out(res["ok"] + other == sum(recs.values()) and other > 0,
            "%s: each request answered or failed on its own (%d ok, %d failed)" % (n, res["ok"], other), dict(res))
    if a.order:
        bad, pairs, example = 0, 0, None
        for c, v in order.items():
            # by receive time; stable, so requests that came in one read keep the
            # connection's stream order
            v.sort(key=lambda x: x[0])
            # a request sent again after a broken connection shows twice: order
            # is about when each request first reached serverB
            first, seqs = set(), []
            for _, s in v:
                if s not in first:
                    first.add(s)
                    seqs.append(s)
            pairs += max(0, len(seqs) - 1)
            inv = [(x, b) for x, b in zip(seqs, seqs[1:]) if b < x]
            if inv:
                bad += 1
                example = example or (c, inv[0])
        out(order and bad == 0, "%s: serverB received each client connection's requests in order"
            " (%d connections, %d consecutive pairs)" % (n, len(order), pairs),
            "%d connections out of order, e.g. client conn %s: seq %s reached serverB before seq %s"
            % (bad, example and example[0], example and example[1][0], example and example[1][1]))


if __name__ == "__main__":
    main()
