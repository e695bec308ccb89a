#!/usr/bin/env python3
"""--workers N, checked against oracles shadowtap did not produce: the client's
manifest (what it sent on which connection, in which order), serverA's nginx access
log (what was served, so what the agent had to record) and serverB's (what the replay
delivered, in the order nginx served it). Every request serverA served must be
recorded exactly once, every request the client sent must reach serverB exactly
once, and the requests of one client connection must reach serverB, and appear in
the NDJSON, in the client's order. Prints PASS:/FAIL: lines."""
import argparse
import collections
import json
import re

ap = argparse.ArgumentParser()
ap.add_argument("--manifest", required=True)
ap.add_argument("--server-b-log", help="omit for a capture-only agent")
ap.add_argument("--server-a-log")
ap.add_argument("--records", help="the agent's NDJSON")
ap.add_argument("--name", required=True)
args = ap.parse_args()


def report(ok, what, detail=""):
    print(("PASS: " if ok else "FAIL: ") + args.name + ": " + what + ("" if ok else " (" + detail + ")"))


sent = {}
for l in open(args.manifest):
    s = json.loads(l)
    sent["%d-%d" % (s["conn"], s["i"])] = s

def log_ids(path):
    """nginx "st" format: ... "$http_x_st_id" last"""
    ids = []
    for l in open(path):
        m = re.search(r'"([0-9]+-[0-9]+)"\s*$', l)
        if m:
            ids.append(m.group(1))
    return ids


def in_order(ids):
    """per client connection, the request numbers in the given order must be the
    client's order: the connections where they are not"""
    per_conn = collections.defaultdict(list)
    for k in ids:
        c, i = map(int, k.split("-"))
        per_conn[c].append(i)
    return per_conn, [c for c, l in per_conn.items() if l != sorted(l)]


if args.records:
    by_target = {s["target"]: k for k, s in sent.items()}
    rec_ids = []
    for l in open(args.records):
        try:
            r = json.loads(l)
        except ValueError:
            continue
        k = by_target.get(r.get("url", {}).get("original"))
        if "http" in r and k:
            rec_ids.append(k)
    if args.server_a_log:
        served = collections.Counter(log_ids(args.server_a_log))
        recd = collections.Counter(rec_ids)
        off = [k for k in set(served) | set(recd) if served[k] != recd[k]]
        report(sum(served.values()) == len(sent) and not off,
               "every request serverA served (%d, its access log) recorded exactly once" % sum(served.values()),
               "%d ids whose record count differs from serverA's, e.g. %s" % (
                   len(off), ["%s served %d recorded %d" % (k, served[k], recd[k]) for k in off[:3]]))
    per_conn, bad = in_order(rec_ids)
    report(not bad, "per-connection order of the records equals the client's (%d connections)" % len(per_conn),
           "out of order on connections %s: %s" % (bad[:5], [per_conn[c][:10] for c in bad[:2]]))
if not args.server_b_log:
    raise SystemExit(0)
got = log_ids(args.server_b_log)
cnt = collections.Counter(got)
missing = [k for k in sent if cnt[k] == 0]
dups = [k for k, n in cnt.items() if n > 1]
extra = [k for k in cnt if k not in sent]
report(not missing, "every request reached serverB (%d of %d)" % (len(sent) - len(missing), len(sent)),
       "missing %d, e.g. %s" % (len(missing), missing[:5]))
report(not dups, "no request reached serverB twice", "%d twice, e.g. %s" % (len(dups), dups[:5]))
report(not extra, "serverB got nothing the client did not send", "e.g. %s" % extra[:5])
per_conn, bad = in_order(got)
report(not bad, "per-connection order on serverB equals the client's (%d connections)" % len(per_conn),
       "out of order on connections %s: %s" % (bad[:5], [per_conn[c][:10] for c in bad[:2]]))
