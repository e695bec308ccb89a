#!/usr/bin/env python3
"""Checks for test_replay_far.sh: shadowtap's NDJSON records against serverB's log
(slow_server.go: "<ns> <conn> <method> <client conn> <seq>" per request) and the
agent's counters. Prints PASS:/FAIL: lines and one info line; always exits 0."""
import argparse
import collections
import json
import re

ID = re.compile(r"/c/(\d+)/(\d+)")


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
    ap.add_argument("--order-info", action="store_true",
                    help="only print how many connections serverB saw out of order")
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
    with open(a.serverb_log) as f:
        for line in f:
            p = line.split()
            if len(p) != 5:
                continue
            key = (int(p[3]), int(p[4]))
            seen[key] += 1
            conns.add(p[1])
            order[key[0]].append((int(p[0]), key[1]))
    print("    %s: client sent %d, records %d, replay results %s, serverB saw %d requests on %d connections"
          % (n, a.sent, sum(recs.values()), dict(res), sum(seen.values()), len(conns)))
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
    if a.order or a.order_info:
        bad = 0
        for c, v in order.items():
            v.sort()
            # a request sent again after a broken connection shows twice: order
            # is about when each request first reached serverB
            first, seqs = set(), []
            for _, s in v:
                if s not in first:
                    first.add(s)
                    seqs.append(s)
            if any(b < x for x, b in zip(seqs, seqs[1:])):
                bad += 1
        if a.order:
            out(order and bad == 0, "%s: serverB got each client connection's requests in order (%d connections)"
                % (n, len(order)), "%d connections out of order" % bad)
        else:
            print("    %s: %d of %d client connections reached serverB out of order (overlapping requests"
                  " on separate connections)" % (n, bad, len(order)))


if __name__ == "__main__":
    main()
