#!/usr/bin/env python3
"""Compare shadowtap's records for one trace with two oracles nobody on this project
wrote, and print one JSON line:
  {"trace", "clean", "agree", "ours", "tshark", "diff", "zeek": {...}}

tshark: requests as a multiset of (method, URI), responses as a multiset of status
codes, per trace (tshark's stream numbering differs from ours). "clean" says whether
tshark dissected the trace without errors.

Zeek (with --zeek BASELINES --name TRACE): the rows of Zeek's own expected http.log
for the trace (zeek-baselines.json, see ../shared/corpus/README.md), compared as a
multiset of tuples of the fields that baseline keeps (method, uri, status_code,
request_body_len, response_body_len), ours converted to Zeek's conventions: URIs
percent-decoded and written with Zeek's log escapes, status 0 for a reply without
a status line, "-" for unset, body lengths after gzip/deflate decoding.
"zeek": {"kind": "rows"|"none"|"missing", "agree", "ours": N, "zeek": N, "diff"}."""
import argparse
import collections
import json
import subprocess
import sys
import zlib
import base64

ap = argparse.ArgumentParser()
ap.add_argument("trace")
ap.add_argument("records")
ap.add_argument("ports")
ap.add_argument("--zeek", help="zeek-baselines.json")
ap.add_argument("--name", help="the trace's key in the baselines (its path in the corpus)")
args = ap.parse_args()
trace, records, ports = args.trace, args.records, args.ports.split(",")

decode = []
for p in ports:
    decode += ["-d", "tcp.port==%s,http" % p]
# a reassembled view, as shadowtap reassembles too
base = ["tshark", "-n", "-r", trace, "-o", "tcp.desegment_tcp_streams:TRUE",
        "-o", "http.desegment_headers:TRUE", "-o", "http.desegment_body:TRUE"] + decode


def tshark(filt, fields):
    proc = subprocess.run(base + ["-Y", filt, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
                          + sum([["-e", f] for f in fields], []),
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        sys.exit("tshark failed on %s: %s" % (trace, proc.stderr.strip()[:300]))
    return [l.split("\t") for l in proc.stdout.splitlines() if l.strip()]


ts_req = collections.Counter((r[0], r[1]) for r in tshark("http.request", ["http.request.method", "http.request.uri"]))
# 1xx answers (100 Continue, 103) are not exchanges of their own in shadowtap's
# records: the final response is paired with the request
ts_resp = collections.Counter(r[0] for r in tshark("http.response", ["http.response.code"])
                              if not (r[0].startswith("1") and r[0] != "101"))
bad = tshark("_ws.malformed || _ws.expert.severity == error", ["frame.number"])
clean = len(bad) == 0

recs = [json.loads(l) for l in open(records)]
our_req, our_resp = collections.Counter(), collections.Counter()
for r in recs:
    http = r.get("http", {})
    m = http.get("request", {}).get("method")
    if m:
        our_req[(m, r.get("url", {}).get("original", ""))] += 1
    sc = http.get("response", {}).get("status_code")
    if sc:
        our_resp[str(sc)] += 1

diff = {
    "requests_only_ours": sorted(list(k) + [v] for k, v in (our_req - ts_req).items()),
    "requests_only_tshark": sorted(list(k) + [v] for k, v in (ts_req - our_req).items()),
    "status_only_ours": sorted([k, v] for k, v in (our_resp - ts_resp).items()),
    "status_only_tshark": sorted([k, v] for k, v in (ts_resp - our_resp).items()),
}
agree = not any(diff.values())
out = {"trace": trace.split("/")[-1], "clean": clean, "agree": agree,
       "ours": {"requests": sum(our_req.values()), "responses": sum(our_resp.values())},
       "tshark": {"requests": sum(ts_req.values()), "responses": sum(ts_resp.values())},
       "diff": diff if not agree else {}}


def unescape_uri(s):
    """Percent-decoding as Zeek's unescape_URI: %XX with two hex digits becomes the
    byte, anything else stays as it is."""
    b = s.encode("utf-8", "surrogateescape")
    o = bytearray()
    i = 0
    while i < len(b):
        if b[i] == 0x25 and i + 3 <= len(b) and all(c in b"0123456789abcdefABCDEF" for c in b[i + 1:i + 3]):
            o.append(int(b[i + 1:i + 3], 16))
            i += 3
        else:
            o.append(b[i])
            i += 1
    return bytes(o)


def zeek_escape(b):
    """Zeek's ASCII log escaping: printable UTF-8 as is, other bytes as \\xNN, a
    backslash doubled, '' as (empty)."""
    if not b:
        return "(empty)"
    o = []
    i = 0
    while i < len(b):
        c = b[i]
        if c == 0x5c:
            o.append("\\\\")
            i += 1
            continue
        if 0x20 <= c < 0x7f:
            o.append(chr(c))
            i += 1
            continue
        if c >= 0xc0:
            n = 2 if c < 0xe0 else 3 if c < 0xf0 else 4
            try:
                o.append(b[i:i + n].decode("utf-8"))
                i += n
                continue
            except UnicodeDecodeError:
                pass
        o.append("\\x%02x" % c)
        i += 1
    return "".join(o)


def body_bytes(body):
    content = body.get("content")
    if content is None:
        return b""
    return base64.b64decode(content) if body.get("encoding") == "base64" else content.encode("utf-8")


def body_len(msg, close_delimited=False):
    """Entity length after gzip/deflate decoding when the stored body is whole; Zeek
    counts 2 bytes more for a close-delimited HTTP/1.x body whose last line is not
    terminated (see the baselines' _meta)."""
    body = msg.get("body", {})
    n = body.get("bytes", 0)
    if close_delimited and n and not body_bytes(body).endswith(b"\n"):
        n += 2
    enc = msg.get("headers", {}).get("content-encoding", "").lower().strip()
    content = body.get("content")
    if enc in ("gzip", "x-gzip", "deflate") and content is not None and not body.get("truncated"):
        raw = body_bytes(body)
        for wbits in ((16 + 15,) if "gzip" in enc else (15, -15)):
            try:
                d = zlib.decompressobj(wbits)
                n = len(d.decompress(raw)) + len(d.flush())
                break
            except zlib.error:
                continue
    return str(n)


def close_delimited(r):
    http = r.get("http", {})
    resp = http.get("response") or {}
    h = resp.get("headers", {})
    sc = resp.get("status_code", 0)
    return (http.get("version", "0.9") != "0.9" and sc >= 200 and sc not in (204, 304)
            and http.get("request", {}).get("method") != "HEAD"
            and "content-length" not in h and "transfer-encoding" not in h)


if args.zeek:
    zb = json.load(open(args.zeek))["traces"].get(args.name)
    if zb is None:
        out["zeek"] = {"kind": "missing"}
    elif zb["kind"] != "rows":
        out["zeek"] = {"kind": zb["kind"]}
    else:
        fields = zb["fields"]
        zrows = collections.Counter()
        for row in zb["rows"]:
            # Zeek bookkeeping rows carry no transaction
            if all(row.get(f, "-") in ("-", "0") for f in fields):
                continue
            zrows[tuple(row.get(f, "-") for f in fields)] += 1
        orows = collections.Counter()
        for r in recs:
            http = r.get("http", {})
            req, resp = http.get("request", {}), http.get("response")
            v = {
                "method": req.get("method", "-"),
                "uri": zeek_escape(unescape_uri(r["url"]["original"])) if "url" in r else "-",
                "status_code": "-" if resp is None else str(resp.get("status_code", 0)),
                "request_body_len": body_len(req),
                "response_body_len": "0" if resp is None else body_len(resp, close_delimited(r)),
            }
            orows[tuple(v[f] for f in fields)] += 1
        zdiff = {"only_ours": sorted(list(k) + [c] for k, c in (orows - zrows).items()),
                 "only_zeek": sorted(list(k) + [c] for k, c in (zrows - orows).items()),
                 "fields": fields}
        zagree = not zdiff["only_ours"] and not zdiff["only_zeek"]
        out["zeek"] = {"kind": "rows", "agree": zagree, "ours": sum(orows.values()),
                       "zeek": sum(zrows.values()), "diff": {} if zagree else zdiff}
print(json.dumps(out, sort_keys=True))
