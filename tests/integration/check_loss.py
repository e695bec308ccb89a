#!/usr/bin/env python3
"""Records captured with deliberate packet loss (test_loss.sh), checked against the
client's own log (manifest) and, for replay, serverB's nginx log.
Every record must be either correct (complete, and method, URL, status and body
sizes as the client sent and received them) or flagged (capture.gap or
capture.incomplete); none may carry another request's response (a status other
than the one the client got for that URL); no request twice. Every request serverB
got must be the one the client sent, as long (captured whole), at most once.
Prints PASS:/FAIL: lines and one "share:" line."""
import argparse
import collections
import json
import re
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--manifest", required=True)
ap.add_argument("--records", required=True)
ap.add_argument("--name", required=True)
ap.add_argument("--server-b-log")
args = ap.parse_args()


def report(ok, what, detail=""):
    print(("PASS: " if ok else "FAIL: ") + args.name + ": " + what + ("" if ok else " (" + detail + ")"))


sent = {}
for l in open(args.manifest):
    s = json.loads(l)
    sent[s["target"]] = s
# exchanges only: the output also carries the periodic diff_summary documents
recs = [r for r in (json.loads(l) for l in open(args.records) if l.strip())
        if r.get("event", {}).get("dataset") != "shadowtap.diff_summary"]

seen = collections.Counter()
complete = flagged = 0
wrong, mispaired, unflagged_orphans = [], [], []
for r in recs:
    cap = r.get("capture", {})
    is_flagged = bool(cap.get("gap") or cap.get("incomplete"))
    http = r.get("http", {})
    req, resp = http.get("request", {}), http.get("response")
    url = r.get("url", {}).get("original")
    s = sent.get(url)
    if s is None:
        if not is_flagged:
            unflagged_orphans.append(url)
        flagged += 1
        continue
    seen[url] += 1
    if resp is not None and resp.get("status_code") is not None and resp.get("status_code") != s["status"]:
        mispaired.append("%s got %s want %s" % (url, resp.get("status_code"), s["status"]))
    if req.get("method") is not None and req.get("method") != s["method"]:
        mispaired.append("%s method %s want %s" % (url, req.get("method"), s["method"]))
    if is_flagged:
        flagged += 1
        continue
    got = (req.get("method"), (resp or {}).get("status_code"), req.get("body", {}).get("bytes"),
           (resp or {}).get("body", {}).get("bytes"))
    want = (s["method"], s["status"], s["req_body"], s["resp_body"])
    if got != want or not cap.get("complete"):
        wrong.append("%s got %s want %s" % (url, got, want))
    else:
        complete += 1

dups = [u for u, c in seen.items() if c > 1]
report(not wrong, "every unflagged record is correct", "%d wrong, e.g. %s" % (len(wrong), wrong[:3]))
report(not mispaired, "no record carries another request's response", "%d, e.g. %s" % (len(mispaired), mispaired[:3]))
report(not unflagged_orphans, "records without a known request are flagged", "%d" % len(unflagged_orphans))
report(not dups, "no request recorded twice", "%d, e.g. %s" % (len(dups), dups[:3]))
print("share: %s: %d of %d requests have a complete, correct record (%.1f%%); %d flagged records" % (
    args.name, complete, len(sent), 100.0 * complete / max(1, len(sent)), flagged))

if args.server_b_log:
    # serverB's log: $connection $connection_requests "$request" $status $request_length
    # $bytes_sent "$http_x_st_id". Each replayed request is compared with what the client
    # sent (rebuilt by http_client.build): the same request line and head length (nginx
    # counts the head; a body its `return` discards is not counted); the record it was
    # replayed from must hold the request's whole body.
    import os
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import http_client
    # $request_length may be negative for pipelined requests (see below)
    pat = re.compile(r'^\S+ \S+ "(.*)" \d+ (-?\d+) \d+ "([^"]*)"$')
    got = collections.defaultdict(list)
    for l in open(args.server_b_log):
        m = pat.match(l.rstrip("\n"))
        if m:
            got[m.group(3)].append((m.group(1), int(m.group(2))))
    rec_by_url = {r.get("url", {}).get("original"): r for r in recs}
    by_id = {"%d-%d" % (s["conn"], s["i"]): s for s in sent.values()}
    bad = []
    for rid, reqs in got.items():
        if len(reqs) > 1:
            bad.append("%s replayed %d times" % (rid, len(reqs)))
        s = by_id.get(rid)
        if s is None:
            bad.append("%s: not a request the client sent" % rid)
            continue
        rec, wire = http_client.build(s["conn"], s["i"])
        line = wire.split(b"\r\n", 1)[0].decode()
        head = len(wire.split(b"\r\n\r\n", 1)[0]) + 4
        # nginx mis-measures $request_length for some requests that arrive pipelined
        # (negative, or the request line alone): only a plausible length is compared
        plausible = reqs[0][1] >= len(line) + 4
        if reqs[0][0] != line or (plausible and reqs[0][1] != head):
            bad.append("%s: serverB got %s, the client sent %r (head %d bytes)" % (rid, reqs[0], line, head))
        r = rec_by_url.get(s["target"])
        if r is None or r.get("http", {}).get("request", {}).get("body", {}).get("bytes") != s["req_body"]:
            bad.append("%s replayed from a record without the whole request" % rid)
    n = sum(len(v) for v in got.values())
    report(n > 0 and not bad, "replay sent %d requests, each as the client sent it (line and length)" % n,
           "%d bad, e.g. %s" % (len(bad), bad[:3]) if bad else "nothing replayed")
