#!/usr/bin/env python3
"""Checks for tests/integration/test_es.sh against a live Elasticsearch/OpenSearch.

  es_check.py compare URL INDEX NDJSON...   every NDJSON record is one document whose
                                             _source equals it field by field
  es_check.py exact URL INDEX NDJSON...     the set of _ids equals the set of event.ids,
                                             each exactly once; prints counts
  es_check.py count URL INDEX               documents (after a refresh)
  es_check.py latency URL INDEX TARGET N    N probes: GET TARGET/probe-<id>, time until
                                             the record is searchable; prints ms
Each prints one summary line; exit status 0 on success, 1 on a mismatch.
"""
import json
import sys
import time
import urllib.request
import uuid


def req(url, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(url, data=data, method=method,
                               headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=60) as resp:
        return json.loads(resp.read())


def all_docs(url, index, source=True):
    req("%s/%s/_refresh" % (url, index), "POST")
    out = []
    body = {"size": 5000, "sort": ["_doc"], "_source": source}
    res = req("%s/%s/_search?scroll=2m" % (url, index), "POST", body)
    sid = res.get("_scroll_id")
    while res["hits"]["hits"]:
        out.extend(res["hits"]["hits"])
        res = req("%s/_search/scroll" % url, "POST", {"scroll": "2m", "scroll_id": sid})
        sid = res.get("_scroll_id", sid)
    try:
        req("%s/_search/scroll" % url, "DELETE", {"scroll_id": [sid]})
    except Exception:
        pass
    return out


def records(files):
    recs = []
    for f in files:
        with open(f, "rb") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    recs.append(json.loads(line))
    return recs


def compare(url, index, files):
    recs = records(files)
    docs = all_docs(url, index)
    by_id = {}
    for d in docs:
        by_id.setdefault(d["_id"], []).append(d["_source"])
    bad = 0
    for r in recs:
        got = by_id.get(r["event"]["id"], [])
        if len(got) != 1 or got[0] != r:
            bad += 1
            if bad <= 3:
                print("mismatch for %s: %d docs" % (r["event"]["id"], len(got)), file=sys.stderr)
    print("records=%d docs=%d mismatched=%d" % (len(recs), len(docs), bad))
    return 0 if bad == 0 and len(docs) == len(recs) and recs else 1


def exact(url, index, files):
    ids = [r["event"]["id"] for r in records(files)]
    docs = all_docs(url, index, source=False)
    got = [d["_id"] for d in docs]
    want, have = set(ids), set(got)
    lost = len(want - have)
    extra = len(have - want)
    dup = len(got) - len(have)
    print("records=%d unique_records=%d docs=%d duplicated=%d lost=%d unexpected=%d"
          % (len(ids), len(want), len(got), dup, lost, extra))
    return 0 if ids and lost == 0 and extra == 0 and dup == 0 and len(ids) == len(want) else 1


def count(url, index):
    req("%s/%s/_refresh" % (url, index), "POST")
    print(req("%s/%s/_count" % (url, index))["count"])
    return 0


def latency(url, index, target, n):
    delays = []
    for _ in range(n):
        path = "/probe-" + uuid.uuid4().hex
        t0 = time.time()
        urllib.request.urlopen(target + path, timeout=10).read()
        q = {"size": 0, "query": {"term": {"url.path": path}}}
        while time.time() - t0 < 60:
            res = req("%s/%s/_search" % (url, index), "POST", q)
            total = res["hits"]["total"]
            if (total["value"] if isinstance(total, dict) else total) > 0:
                delays.append((time.time() - t0) * 1000)
                break
            time.sleep(0.02)
        time.sleep(0.1)
    if not delays:
        print("probes=%d found=0" % n)
        return 1
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print("probes=%d found=%d median_ms=%.0f p99_ms=%.0f max_ms=%.0f"
          % (n, len(delays), delays[len(delays) // 2], p99, delays[-1]))
    return 0 if len(delays) == n else 1


def main():
    cmd, url, index = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
    if cmd == "compare":
        return compare(url, index, sys.argv[4:])
    if cmd == "exact":
        return exact(url, index, sys.argv[4:])
    if cmd == "count":
        return count(url, index)
    if cmd == "latency":
        return latency(url, index, sys.argv[4], int(sys.argv[5]))
    print("unknown command " + cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
