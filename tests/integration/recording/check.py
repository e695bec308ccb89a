#!/usr/bin/env python3
"""Compare a serverB access log from a replayed recording with serverA's log.

Log lines: $msec $connection $connection_requests "$request" $status $request_length "$http_x_st_id"
X-St-Id is "conn-i" (http_client.py), unique per request. Prints PASS/FAIL lines:
exactly once, byte-identical (request line + request length), per-connection
order, and with --timing the deviation of serverB's inter-request timing from
serverA's: its p95 must stay within a fraction of the recording's span (so a
replay that ignores timing fails it; --timing-control asserts exactly that)."""
import argparse
import json
import os
import re
import statistics
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from http_client import build  # noqa: E402 - the client's exact bytes per request

LINE = re.compile(r'^(\S+) (\d+) (\d+) "(.*)" (\d+) (-?\d+) "(.*)"$')


def load(path):
    out = []
    with open(path, errors="replace") as f:
        for ln in f:
            m = LINE.match(ln.rstrip("\n"))
            if m:
                out.append({"t": float(m.group(1)), "req": m.group(4), "len": int(m.group(6)),
                            "id": m.group(7)})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--manifest", required=True, help="http_client.py manifest (what was sent)")
    ap.add_argument("--a", required=True, help="serverA log (the original)")
    ap.add_argument("--b", required=True, help="serverB log (the replay)")
    ap.add_argument("--ids", help="file of ids expected (default: all ids in serverA's log)")
    ap.add_argument("--timing", type=float, default=0,
                    help="assert p95 deviation below this fraction of the original span (e.g. 0.05)")
    ap.add_argument("--timing-control", type=float, default=0,
                    help="negative control: assert p95 deviation ABOVE this fraction of the span "
                         "(a max-speed replay must not pass for a timed one)")
    ap.add_argument("--records", help="NDJSON records of the replay: check serverA's responses")
    ap.add_argument("--gor", nargs="*", default=[],
                    help="the GoReplay files the records were read from: a wrong serverA "
                         "response that the file itself gives that request (GoReplay paired it "
                         "so when recording) is reported as GoReplay's, not the reader's")
    ap.add_argument("--unreplayable", type=int, default=-1,
                    help="the agent's replay: skipped unreplayable= count: an --ids entry of "
                         "'?' (a request GoReplay wrote without its X-St-Id header: cut or "
                         "mangled when it recorded) cannot be matched by id, so each must "
                         "either reach serverB without an id or be counted unreplayable")
    ap.add_argument("--all-responses", action="store_true",
                    help="every record must carry serverA's response (native recordings)")
    a = args = ap.parse_args()
    la, lb = load(a.a), load(a.b)
    byid_a = {}
    for r in la:
        byid_a.setdefault(r["id"], r)
    sent = {}
    with open(args.manifest) as f:
        for ln in f:
            m = json.loads(ln)
            rec, wire = build(m["conn"], m["i"])
            sent["%d-%d" % (m["conn"], m["i"])] = ("%s %s HTTP/1.1" % (rec["method"], rec["target"]), len(wire))
    want = {i: 1 for i in sent}
    if args.ids:
        # a file may hold a request more than once (GoReplay does): expect it as often
        want = {}
        with open(args.ids) as f:
            for l in f:
                if l.strip():
                    want[l.strip()] = want.get(l.strip(), 0) + 1
    seen = {}
    for r in lb:
        seen.setdefault(r["id"], []).append(r)
    noid = want.pop("?", 0)
    if noid or args.unreplayable > 0:
        # requests without an id on serverB's side log "-"; with an id every one
        # is still held to exactly-once below
        b_noid = len(seen.pop("-", []))
        unrep = max(args.unreplayable, 0)
        if args.unreplayable >= 0 and b_noid + unrep == noid:
            print("PASS: %s: the file's %d request(s) without an id are accounted for "
                  "(%d reached serverB, %d counted unreplayable)" % (args.name, noid, b_noid, unrep))
        else:
            print("FAIL: %s: the file's %d request(s) without an id: %d reached serverB, "
                  "%s counted unreplayable" % (args.name, noid, b_noid,
                                                unrep if args.unreplayable >= 0 else "not"))
    missing = [i for i in want if len(seen.get(i, [])) < want[i]]
    dup = [i for i, v in seen.items() if i in want and len(v) > want[i]]
    extra = [i for i in seen if i not in want]
    total = sum(want.values())
    if not missing and not dup and not extra and want:
        print("PASS: %s: serverB got all %d requests exactly once%s" % (
            args.name, total, " (as often as the file holds them)" if total != len(want) else ""))
    else:
        print("FAIL: %s: serverB exactly-once (%d expected, %d missing, %d duplicated, %d unexpected; e.g. %s)"
              % (args.name, total, len(missing), len(dup), len(extra), (missing + dup + extra)[:3]))
    diff = [i for i in want if i in seen and i in sent and
            (seen[i][0]["req"], seen[i][0]["len"]) != sent[i]]
    if not diff and want:
        print("PASS: %s: replayed requests byte-identical (request line and exact length as the client sent)"
              % args.name)
    else:
        print("FAIL: %s: %d requests differ from what the client sent (e.g. %s)"
              % (args.name, len(diff), [(i, seen[i][0]["req"], seen[i][0]["len"], sent[i]) for i in diff[:2]]))
    # per-connection order: conn-i ids, i increasing along serverB's log
    last, bad = {}, 0
    for r in lb:
        try:
            c, i = r["id"].split("-")
            c, i = int(c), int(i)
        except ValueError:
            continue
        if c in last and i < last[c]:
            bad += 1
        last[c] = i
    if bad == 0:
        print("PASS: %s: per-connection order kept" % args.name)
    else:
        print("FAIL: %s: %d requests out of connection order" % (args.name, bad))
    if args.timing or args.timing_control:
        timing(args, byid_a, seen, want)
    return args


def timing(args, byid_a, seen, want):
    """serverB's offsets from its first request against serverA's."""
    common = [i for i in want if i in seen and i in byid_a]
    if not common:
        print("FAIL: %s: timing (no common requests)" % args.name)
        return
    t0a = min(byid_a[i]["t"] for i in common)
    t0b = min(seen[i][0]["t"] for i in common)
    # serverB's log time minus serverA's, per request; its median is the constant
    # shift of the whole replay, the spread around it is the timing error
    shift = sorted((seen[i][0]["t"] - byid_a[i]["t"]) * 1000 for i in common)
    med = statistics.median(shift)
    dev = sorted(abs(x - med) for x in shift)
    span = (max(byid_a[i]["t"] for i in common) - t0a) * 1000
    spanb = (max(seen[i][0]["t"] for i in common) - t0b) * 1000
    p50 = statistics.median(dev)
    p95 = dev[max(0, int(len(dev) * 0.95) - 1)]
    p99 = dev[max(0, int(len(dev) * 0.99) - 1)]
    print("    %s timing: original span %.0f ms, replay span %.0f ms; each request's offset from "
          "its original time, around the median: median %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms "
          "(nginx $msec, 1 ms resolution)" % (args.name, span, spanb, p50, p95, p99, dev[-1]))
    # A bound in absolute ms cannot tell "timing kept" from "timing ignored" when
    # the whole recording lasts about as long as the bound: scale it by the span.
    if span < 500:
        print("FAIL: %s: timing (original span %.0f ms is too short to tell kept from ignored)"
              % (args.name, span))
        return
    if args.timing:
        bound = args.timing * span
        if p95 <= bound:
            print("PASS: %s: timing kept (p95 deviation %.1f ms <= %.0f%% of the %.0f ms span)"
                  % (args.name, p95, 100 * args.timing, span))
        else:
            print("FAIL: %s: timing (p95 deviation %.1f ms > %.0f%% of the %.0f ms span)"
                  % (args.name, p95, 100 * args.timing, span))
    if args.timing_control:
        bound = args.timing_control * span
        if p95 > bound:
            print("PASS: %s: timing check rejects this replay (p95 deviation %.1f ms > %.0f%% of the "
                  "%.0f ms span)" % (args.name, p95, 100 * args.timing_control, span))
        else:
            print("FAIL: %s: timing check cannot tell this replay from a timed one (p95 deviation "
                  "%.1f ms <= %.0f%% of the %.0f ms span)" % (args.name, p95, 100 * args.timing_control, span))


GOR_SEP = b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n"


def gor_pairs(paths):
    """Read the .gor files independently of shadowtap: request URL -> the set of serverA
    bodies GoReplay wrote under that request's id (type 1 = request, 2 = response)."""
    req, resp = {}, {}
    for p in paths:
        for it in open(p, "rb").read().split(GOR_SEP):
            hdr, _, payload = it.lstrip(b"\n").partition(b"\n")
            f = hdr.split()
            if len(f) < 2:
                continue
            if f[0] == b"1":
                line = payload.split(b"\r\n", 1)[0].split()
                if len(line) >= 2:
                    req.setdefault(f[1], []).append(line[1].decode(errors="replace"))
            elif f[0] == b"2":
                resp.setdefault(f[1], []).append(
                    payload.partition(b"\r\n\r\n")[2].decode(errors="replace").strip())
    out = {}
    for i, urls in req.items():
        for u in urls:
            out.setdefault(u, set()).update(resp.get(i, []))
    return out


def check_responses(args):
    """serverA answers "hello from serverA: URI": a record's serverA response must be
    the answer to its own request. With --gor, a wrong answer that the GoReplay file
    itself holds under that request's id is GoReplay's pairing (counted apart)."""
    filepairs = gor_pairs(args.gor) if args.gor else {}
    ok = wrong = none = other = by_recorder = 0
    with open(args.records) as f:
        for ln in f:
            r = json.loads(ln)
            if "http" not in r:
                continue  # not an exchange (e.g. a periodic diff_summary document)
            resp = r.get("http", {}).get("response", {})
            body = resp.get("body", {}).get("content")
            url = r.get("url", {}).get("original", "")
            if not resp.get("status_code"):
                none += 1
            elif isinstance(body, str) and body.startswith("hello from serverA: "):
                if body.strip() == "hello from serverA: " + url:
                    ok += 1
                elif body.strip() in filepairs.get(url, ()):
                    by_recorder += 1
                    print("    %s: %s holds %r: GoReplay's file gives that request this "
                          "answer (GoReplay paired it so when recording)" % (args.name, url, body.strip()))
                else:
                    wrong += 1
            else:
                other += 1
    print("    %s serverA responses: %d matched their request, %d mismatched, %d static/other, %d none"
          % (args.name, ok, wrong, other, none)
          + (", %d mis-paired in the GoReplay file itself" % by_recorder if args.gor else ""))
    # The README promises that a response whose request cannot be told apart (GoReplay
    # ids can repeat) is left unpaired rather than guessed: no mis-pairing is allowed,
    # in GoReplay files as in native ones.
    if wrong == 0 and (none == 0 or not args.all_responses) and ok:
        print("PASS: %s: serverA responses from the file belong to their requests%s"
              % (args.name, "" if not args.all_responses else ", all present"))
    else:
        print("FAIL: %s: serverA responses (%d mismatched, %d missing)" % (args.name, wrong, none))


if __name__ == "__main__":
    a = main()
    if a.records:
        check_responses(a)
