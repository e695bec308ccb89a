#!/usr/bin/env python3
"""Compare shadowtap's records for one trace with tshark's HTTP dissection.
Prints one JSON line: {"trace", "clean", "agree", "ours": {...}, "tshark": {...}, "diff"}.
Requests are compared as a multiset of (method, URI) and responses as a multiset
of status codes, per trace (tshark's stream numbering differs from ours)."""
import collections
import json
import subprocess
import sys

trace, records, ports = sys.argv[1], sys.argv[2], sys.argv[3].split(",")

decode = []
for p in ports:
    decode += ["-d", "tcp.port==%s,http" % p]
# a reassembled view, as shadowtap reassembles too
base = ["tshark", "-n", "-r", trace, "-o", "tcp.desegment_tcp_streams:TRUE",
        "-o", "http.desegment_headers:TRUE", "-o", "http.desegment_body:TRUE"] + decode


def tshark(filt, fields):
    out = subprocess.run(base + ["-Y", filt, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
                         + sum([["-e", f] for f in fields], []),
                         capture_output=True, text=True, timeout=300).stdout
    return [l.split("\t") for l in out.splitlines() if l.strip()]


ts_req = collections.Counter((r[0], r[1]) for r in tshark("http.request", ["http.request.method", "http.request.uri"]))
# 1xx answers (100 Continue, 103) are not exchanges of their own in shadowtap's
# records: the final response is paired with the request
ts_resp = collections.Counter(r[0] for r in tshark("http.response", ["http.response.code"])
                              if not (r[0].startswith("1") and r[0] != "101"))
bad = tshark("_ws.malformed || _ws.expert.severity == error", ["frame.number"])
clean = len(bad) == 0

our_req, our_resp = collections.Counter(), collections.Counter()
for l in open(records):
    r = json.loads(l)
    http = r.get("http", {})
    m = http.get("request", {}).get("method")
    if m:
        our_req[(m, r.get("url", {}).get("original", ""))] += 1
    sc = http.get("response", {}).get("status_code")
    if sc:
        our_resp[str(sc)] += 1

diff = {
    "requests_only_ours": [list(k) + [v] for k, v in (our_req - ts_req).items()],
    "requests_only_tshark": [list(k) + [v] for k, v in (ts_req - our_req).items()],
    "status_only_ours": [[k, v] for k, v in (our_resp - ts_resp).items()],
    "status_only_tshark": [[k, v] for k, v in (ts_resp - our_resp).items()],
}
agree = not any(diff.values())
print(json.dumps({"trace": trace.split("/")[-1], "clean": clean, "agree": agree,
                  "ours": {"requests": sum(our_req.values()), "responses": sum(our_resp.values())},
                  "tshark": {"requests": sum(ts_req.values()), "responses": sum(ts_resp.values())},
                  "diff": diff if not agree else {}}))
