#!/usr/bin/env python3
"""Bodies that reached serverB in test_tls_replay.sh, judged from tls_sink.py's log
(written behind serverB's nginx, so nothing shadowtap produced):
  --kind client: every http_client.py request to /r/ arrived once, its body
                 byte-identical to what the client sent (rebuilt with http_client.build)
  --kind ab:     COUNT requests to TARGET arrived, each body equal to FILE"""
import argparse
import collections
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_client  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--name", required=True)
ap.add_argument("--kind", choices=["client", "ab"], required=True)
ap.add_argument("--sink", required=True)
ap.add_argument("--manifest")
ap.add_argument("--target")
ap.add_argument("--file")
ap.add_argument("--expect", type=int)
args = ap.parse_args()


def report(ok, what, detail=""):
    print(("PASS: " if ok else "FAIL: ") + args.name + ": " + what + ("" if ok else " (" + detail + ")"))


def dechunk(b):
    out = b""
    while True:
        line, b = b.split(b"\r\n", 1)
        n = int(line.split(b";")[0], 16)
        if n == 0:
            return out
        out, b = out + b[:n], b[n + 2:]


lines = [l.split() for l in open(args.sink) if l.strip()]
if args.kind == "client":
    import json
    want = {}
    for l in open(args.manifest):
        m = json.loads(l)
        if not m["target"].startswith("/r/"):
            continue
        _, wire = http_client.build(m["conn"], m["i"])
        head, rest = wire.split(b"\r\n\r\n", 1)
        body = dechunk(rest) if b"chunked" in head.lower() else rest
        want["%d-%d" % (m["conn"], m["i"])] = (len(body), hashlib.sha256(body).hexdigest())
    got = collections.defaultdict(list)
    for f in lines:
        got[f[0]].append((int(f[3]), f[4]))
    missing = [k for k in want if k not in got]
    dup = [k for k, v in got.items() if len(v) > 1]
    wrong = [k for k, v in want.items() if k in got and got[k][0] != v]
    big = sum(1 for v in want.values() if v[0] >= 1 << 20)
    report(not missing and not dup, "serverB's back end got each of %d requests once" % len(want),
           "%d missing, %d duplicated, e.g. %s" % (len(missing), len(dup), (missing + dup)[:3]))
    report(want and not wrong, "every body byte-identical (%d of 1 MiB)" % big,
           "%d differ, e.g. %s" % (len(wrong), wrong[:3]))
else:
    data = open(args.file, "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    mine = [f for f in lines if f[2] == args.target]
    same = [f for f in mine if int(f[3]) == len(data) and f[4] == sha]
    report(len(mine) == args.expect and len(same) == len(mine),
           "serverB got %d POSTs of %d B to %s, each byte-identical" % (args.expect, len(data), args.target),
           "%d arrived, %d identical" % (len(mine), len(same)))
