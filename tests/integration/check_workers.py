#!/usr/bin/env python3
"""--workers N, checked against oracles shadowtap did not produce: the client's
manifest (what it sent on which connection, in which order) and serverB's nginx
access log (what the replay delivered, in the order nginx served it). Every request
the client sent must reach serverB exactly once, and the requests of one client
connection must reach serverB in the client's order. Prints PASS:/FAIL: lines."""
import argparse
import collections
import json
import re

ap = argparse.ArgumentParser()
ap.add_argument("--manifest", required=True)
ap.add_argument("--server-b-log", required=True)
ap.add_argument("--name", required=True)
args = ap.parse_args()


def report(ok, what, detail=""):
    print(("PASS: " if ok else "FAIL: ") + args.name + ": " + what + ("" if ok else " (" + detail + ")"))


sent = {}
for l in open(args.manifest):
    s = json.loads(l)
    sent["%d-%d" % (s["conn"], s["i"])] = s
# nginx "st" format: ... "$http_x_st_id" last
got = []
for l in open(args.server_b_log):
    m = re.search(r'"([0-9]+-[0-9]+)"\s*$', l)
    if m:
        got.append(m.group(1))
cnt = collections.Counter(got)
missing = [k for k in sent if cnt[k] == 0]
dups = [k for k, n in cnt.items() if n > 1]
extra = [k for k in cnt if k not in sent]
report(not missing, "every request reached serverB (%d of %d)" % (len(sent) - len(missing), len(sent)),
       "missing %d, e.g. %s" % (len(missing), missing[:5]))
report(not dups, "no request reached serverB twice", "%d twice, e.g. %s" % (len(dups), dups[:5]))
report(not extra, "serverB got nothing the client did not send", "e.g. %s" % extra[:5])
# per client connection, the ids in serverB's order must be the client's order
per_conn = collections.defaultdict(list)
for k in got:
    c, i = map(int, k.split("-"))
    per_conn[c].append(i)
bad = [c for c, ids in per_conn.items() if ids != sorted(ids)]
report(not bad, "per-connection order on serverB equals the client's (%d connections)" % len(per_conn),
       "out of order on connections %s: %s" % (bad[:5], [per_conn[c][:10] for c in bad[:2]]))
