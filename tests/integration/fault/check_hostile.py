#!/usr/bin/env python3
"""Checks one phase of tests/integration/test_hostile.sh against oracles the agent did
not produce: the client's own log (what curl sent and what serverA answered it),
serverA's nginx access log, and the arrival time of each record in the NDJSON output
(stamped by the tailer in this directory).

  check_hostile.py --name N --prefix /hostile/MODE/ --client FILE --nginx FILE
                   --records FILE --arrivals FILE --errors 'a|b' [--answers]
                   --max-seconds S [--some-error]

--errors: replay.error values a record of this phase may carry; --answers: a serverB
answer (replay.status_code) is also acceptable for a record; --some-error: at least one
record must carry an error. Prints PASS:/FAIL: lines and the slowest record."""
import argparse
import json
import re
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--nginx", required=True)
    ap.add_argument("--records", required=True)
    ap.add_argument("--arrivals", required=True)
    ap.add_argument("--errors", required=True)
    ap.add_argument("--answers", action="store_true")
    ap.add_argument("--some-error", action="store_true")
    ap.add_argument("--max-seconds", type=float, required=True)
    a = ap.parse_args()
    ok = True

    def res(good, msg):
        nonlocal ok
        print(("PASS: " if good else "FAIL: ") + a.name + ": " + msg)
        ok = ok and good

    sent = {}
    for line in open(a.client):
        t, url, code = line.split()
        sent[url] = (float(t), code)
    nginx = sum(1 for line in open(a.nginx) if a.prefix in line)
    res(all(c == "200" for _, c in sent.values()) and len(sent) > 0,
        "every client request answered 200 by serverA (%d sent)" % len(sent))
    res(nginx == len(sent), "serverA's log has %d of the client's %d requests" % (nginx, len(sent)))

    arrived = {}
    for line in open(a.arrivals):
        t, url = line.split(None, 1)
        arrived.setdefault(url.strip(), float(t))
    recs = {}
    for line in open(a.records):
        try:
            r = json.loads(line)
        except ValueError:
            res(False, "unreadable NDJSON line")
            continue
        url = r.get("url", {}).get("original", "")
        if url.startswith(a.prefix):
            recs[url] = r
    missing = [u for u in sent if u not in recs]
    res(not missing, "a record for every client request (%d missing%s)" %
        (len(missing), (": " + missing[0]) if missing else ""))
    wrong_a = [u for u, r in recs.items() if r.get("http", {}).get("response", {}).get("status_code") != 200]
    res(not wrong_a, "every record carries serverA's 200 (%d do not)" % len(wrong_a))

    allowed = re.compile("^(" + a.errors + ")$")
    bad, errors, answers = [], {}, 0
    for u, r in recs.items():
        rp = r.get("replay", {})
        err = rp.get("error")
        if err is not None:
            errors[err] = errors.get(err, 0) + 1
            if not allowed.match(err):
                bad.append("%s: error %r" % (u, err))
        elif a.answers and rp.get("status_code"):
            answers += 1
        else:
            bad.append("%s: replay %s" % (u, json.dumps(rp)[:120]))
    res(not bad, "every record says why (errors %s, serverB answers %d)%s" %
        (json.dumps(errors, sort_keys=True), answers, (": " + bad[0]) if bad else ""))
    if a.some_error:
        res(sum(errors.values()) > 0, "at least one record carries an error")

    slow, worst = [], 0.0
    for u, (t, _) in sent.items():
        if u not in arrived:
            continue
        d = arrived[u] - t
        worst = max(worst, d)
        if d > a.max_seconds:
            slow.append("%s %.1fs" % (u, d))
    res(not slow and len(arrived) > 0, "every record written within %.1f s of its request (slowest %.2f s)%s" %
        (a.max_seconds, worst, (": " + slow[0]) if slow else ""))
    print("    %s: slowest_record_s=%.2f" % (a.name, worst))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
