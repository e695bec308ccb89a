#!/usr/bin/env python3
"""Compare shadowtap's NDJSON records with the client's manifest: every request
appears exactly once, complete, with the right method, URL, status and body sizes.
Prints PASS:/FAIL: lines (prefix given by --name); --expect is the number of
requests the client was asked to send."""
import argparse
import collections
import json
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--manifest", required=True)
ap.add_argument("--records", required=True)
ap.add_argument("--name", required=True)
ap.add_argument("--expect", type=int, required=True,
                help="requests the client was asked to send: the manifest must hold them all")
args = ap.parse_args()

sent = [json.loads(l) for l in open(args.manifest)]
recs, bad_json = [], 0
for l in open(args.records):
    try:
        r = json.loads(l)
        if "http" in r:  # exchanges only: periodic diff_summary documents are not requests
            recs.append(r)
    except ValueError:
        bad_json += 1

by_url = collections.defaultdict(list)
for r in recs:
    u = r.get("url", {}).get("original")
    if u:
        by_url[u].append(r)

missing, dup, wrong, incomplete = [], [], [], []
for s in sent:
    rs = by_url.get(s["target"], [])
    if not rs:
        missing.append(s["target"])
        continue
    if len(rs) > 1:
        dup.append(s["target"])
    r = rs[0]
    http = r.get("http", {})
    got = (http.get("request", {}).get("method"), http.get("response", {}).get("status_code"),
           http.get("request", {}).get("body", {}).get("bytes"),
           http.get("response", {}).get("body", {}).get("bytes"))
    want = (s["method"], s["status"], s["req_body"], s["resp_body"])
    if got != want:
        wrong.append("%s got %s want %s" % (s["target"], got, want))
    if not r.get("capture", {}).get("complete"):
        incomplete.append(s["target"])

extra = len(recs) - len(sent)
def report(ok, what, detail):
    print(("PASS: " if ok else "FAIL: ") + args.name + ": " + what + ("" if ok else " (" + detail + ")"))

# the oracle is the count the client was asked for, not the manifest's own length:
# a client that lost a connection writes a short manifest that would otherwise pass
report(len(sent) == args.expect and args.expect > 0, "client manifest holds all %d requests" % args.expect,
       "%d in the manifest" % len(sent))
report(bad_json == 0, "records are valid JSON", "%d bad lines" % bad_json)
report(not missing, "all %d requests recorded" % len(sent), "%d missing, e.g. %s" % (len(missing), missing[:3]))
report(not dup and extra == 0, "each request exactly once", "%d duplicated, %d records vs %d requests" % (len(dup), len(recs), len(sent)))
report(not wrong, "method, URL, status and body sizes match", "%d wrong, e.g. %s" % (len(wrong), wrong[:3]))
report(not incomplete, "every record complete", "%d incomplete, e.g. %s" % (len(incomplete), incomplete[:3]))
