#!/usr/bin/env python3
"""Replay test client: CONNS keep-alive connections send N requests in all, each
request-target ending in /c/<conn>/<seq> so serverB's log can be checked for
exactly-once and per-connection order. Every 50th request is pipelined with the
next one. Writes one line per request sent to --manifest: conn seq target status."""
import argparse
import socket
import sys
import threading
import time

MIX = ["/diff/status", "/diff/header", "/diff/json", "/same/json", None, None, None, None, None, None]


def target(conn, i):
    pre = MIX[i % len(MIX)]
    return "%s/c/%d/%d" % (pre or "/plain", conn, i)


def request(conn, i):
    t = target(conn, i)
    if i % 10 == 4:
        body = ("payload-%d-%d" % (conn, i)).encode() * 4
        return t, ("POST %s HTTP/1.1\r\nHost: serverA\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %d\r\n\r\n" % (t, len(body))).encode() + body
    return t, ("GET %s HTTP/1.1\r\nHost: serverA\r\nUser-Agent: st-replay-test\r\n"
               "Accept: */*\r\n\r\n" % t).encode()


def read_response(f):
    line = f.readline()
    if not line:
        raise EOFError("connection closed")
    status = int(line.split()[1])
    length = 0
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    if length:
        f.read(length)
    return status


def worker(args, conn, count, out, lock, errors):
    gap = args.conns / args.rate if args.rate else 0
    i = 0
    lines = []
    s = None
    try:  # the connect too: a refused connection is an error, not a lost thread
        s = socket.create_connection((args.host, args.port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        while i < count:
            batch = 2 if i % 50 == 49 and i + 1 < count else 1
            reqs = [request(conn, i + k) for k in range(batch)]
            s.sendall(b"".join(r[1] for r in reqs))
            for k in range(batch):
                lines.append("%d %d %s %d" % (conn, i + k, reqs[k][0], read_response(f)))
            i += batch
            if gap:
                time.sleep(gap * batch)
    except Exception as e:  # counted, reported by the caller
        with lock:
            errors.append("conn %d: %r" % (conn, e))
    if s:
        s.close()
    with lock:
        out.extend(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--conns", type=int, default=10)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=0, help="requests/s in all, 0 = as fast as possible")
    ap.add_argument("--manifest", required=True)
    args = ap.parse_args()
    out, errors, lock, threads = [], [], threading.Lock(), []
    for c in range(args.conns):
        cnt = args.n // args.conns + (1 if c < args.n % args.conns else 0)
        t = threading.Thread(target=worker, args=(args, c, cnt, out, lock, errors))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    with open(args.manifest, "w") as m:
        m.write("\n".join(out) + "\n")
    for e in errors:
        print(e, file=sys.stderr)
    if len(out) != args.n:
        print("client: %d of %d requests answered" % (len(out), args.n), file=sys.stderr)
    return 1 if errors or len(out) != args.n else 0


if __name__ == "__main__":
    sys.exit(main())
