#!/usr/bin/env python3
"""Checks for test_replay.sh: compares the client's manifest, shadowtap's NDJSON
records and serverB's access log. Prints PASS:/FAIL: lines; always exits 0."""
import argparse
import collections
import json
import re

ID = re.compile(r"/c/(\d+)/(\d+)")


def out(ok, name, why=""):
    print("PASS: %s" % name if ok else "FAIL: %s (%s)" % (name, why))


def load_records(path):
    recs = {}
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            t = r.get("url", {}).get("original", "")
            if ID.search(t):
                recs.setdefault(t, []).append(r)
    return recs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--records", required=True)
    ap.add_argument("--serverb-log")
    ap.add_argument("--max-conns", type=int, default=0)
    ap.add_argument("--mode", choices=["healthy", "down", "slow", "garbage"], required=True)
    ap.add_argument("--expect", type=int, required=True, help="requests the client was asked to send")
    a = ap.parse_args()
    n = a.name
    sent = []
    with open(a.manifest) as f:
        for line in f:
            p = line.split()
            if len(p) == 4:
                sent.append(p[2])
    recs = load_records(a.records)
    out(len(sent) == a.expect, "%s: client manifest holds all %d requests" % (n, a.expect),
        "%d in the manifest" % len(sent))
    missing = [t for t in sent if t not in recs]
    dup = [t for t, v in recs.items() if len(v) > 1]
    out(sent and not missing and not dup, "%s: every request has exactly one record (%d)" % (n, len(sent)),
        "%d missing, %d duplicated, e.g. %s" % (len(missing), len(dup), (missing or dup or [""])[0]))
    rs = [recs[t][0] for t in sent if t in recs]
    errs = collections.Counter(r.get("replay", {}).get("error") for r in rs)
    ok = [r for r in rs if "status_code" in r.get("replay", {})]
    skipped = sum(1 for r in rs if "skipped" in r.get("replay", {}))
    print("    %s: replayed ok=%d errors=%s skipped=%d" % (n, len(ok), dict((k, v) for k, v in errs.items() if k), skipped))

    if a.mode == "healthy":
        out(len(ok) == len(sent), "%s: every record has serverB's response" % n,
            "%d of %d, errors %s" % (len(ok), len(sent), dict(errs)))
        order = collections.defaultdict(list)
        count = collections.Counter()
        conns = set()
        with open(a.serverb_log) as f:
            for line in f:
                m = re.match(r'(\d+) \d+ "\S+ (\S+) [^"]*"', line)
                if not m:
                    continue
                conns.add(m.group(1))
                count[m.group(2)] += 1
                i = ID.search(m.group(2))
                if i:
                    order[int(i.group(1))].append(int(i.group(2)))
        bad = [t for t in sent if count[t] != 1]
        extra = [t for t in count if t not in set(sent)]
        out(not bad and not extra, "%s: serverB saw each request exactly once" % n,
            "%d not once (e.g. %s x%d), %d unknown" % (len(bad), bad[0] if bad else "", count[bad[0]] if bad else 0, len(extra)))
        unordered = [c for c, s in order.items() if s != sorted(s)]
        out(order and not unordered, "%s: serverB order per client connection" % n,
            "%d connections out of order" % len(unordered))
        out(0 < len(conns) <= a.max_conns, "%s: serverB TCP connections %d <= pool + reconnects %d" % (n, len(conns), a.max_conns),
            "%d connections" % len(conns))

        def pick(pre):
            return [r for r in ok if r["url"]["original"].startswith(pre)]
        st = pick("/diff/status/")
        out(st and all(not r["diff"]["status"] and not r["diff"]["match"] for r in st),
            "%s: diff flags a different status (%d)" % (n, len(st)), "some not flagged")
        hd = pick("/diff/header/")
        out(hd and all("x-version" in r["diff"]["headers"] and not r["diff"]["match"] for r in hd),
            "%s: diff flags a different header (%d)" % (n, len(hd)), "some not flagged")
        js = pick("/diff/json/")
        out(js and all("$.b.c[2]" in r["diff"].get("body_paths", []) and not r["diff"]["match"] for r in js),
            "%s: diff lists the differing JSON path (%d)" % (n, len(js)), "e.g. %s" % (js[0].get("diff") if js else None))
        same = pick("/same/json/") + pick("/plain/")
        bad = [r for r in same if not r["diff"]["match"]]
        out(same and not bad, "%s: identical answers match (%d, reordered JSON included)" % (n, len(same)),
            "%d mismatched, e.g. %s" % (len(bad), bad[0].get("diff") if bad else ""))
    elif a.mode == "down":
        down = errs["connection refused"] + errs["timeout"]
        out(down > 0, "%s: records carry replay.error while serverB is down (%d)" % (n, down), "none")
        # The manifest is written a connection at a time, so its order is not time
        # order. Each connection sends at the same pace, so a connection's last 10%
        # by its own sequence number were all sent after serverB came back.
        seq = collections.defaultdict(list)
        for t in sent:
            if t in recs:
                c, i = ID.search(t).groups()
                seq[int(c)].append((int(i), recs[t][0]))
        tail = []
        for c, v in seq.items():
            v.sort(key=lambda x: x[0])
            tail += [r for _, r in v[-max(1, len(v) // 10):]]
        tail_ok = sum(1 for r in tail if "status_code" in r.get("replay", {}))
        out(tail and tail_ok >= 0.9 * len(tail),
            "%s: replay recovers after serverB is back (%d of the last %d per connection ok)"
            % (n, tail_ok, len(tail)), "%d of %d ok at the end, errors %s" % (
                tail_ok, len(tail), dict(collections.Counter(r.get("replay", {}).get("error") for r in tail))))
    elif a.mode == "slow":
        out(errs["timeout"] > 0 and all("status_code" in r.get("replay", {}) or "error" in r.get("replay", {}) for r in rs),
            "%s: records carry replay.error timeout (%d)" % (n, errs["timeout"]), dict(errs))
    elif a.mode == "garbage":
        out(errs["malformed response"] == len(rs) and rs,
            "%s: records carry replay.error malformed response (%d)" % (n, errs["malformed response"]), dict(errs))


if __name__ == "__main__":
    main()
