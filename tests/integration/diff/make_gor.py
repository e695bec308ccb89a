#!/usr/bin/env python3
"""Sends N mixed requests to serverA over a few keep-alive connections and writes
them with serverA's answers as a GoReplay recording (what shadowtap --input-file
replays: request and original response per exchange, flows by ID prefix)."""
import random, socket, sys, time

host, port, n, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
random.seed(11)
SEP = "\n\U0001f435\U0001f648\U0001f649\n".encode()


def request():
    r = random.random()
    if r < 0.45:
        return "GET /api/item/%d HTTP/1.1\r\nHost: shop\r\n\r\n" % random.randint(1, 400), b""
    if r < 0.70:
        return "GET /api/user/%d HTTP/1.1\r\nHost: shop\r\n\r\n" % random.randint(1, 999), b""
    if r < 0.75:
        return "GET /health HTTP/1.1\r\nHost: shop\r\n\r\n", b""
    if r < 0.90:
        body = ('{"item":%d,"qty":%d}' % (random.randint(1, 400), random.randint(1, 5))).encode()
        path = "/api/orders"
    else:
        body = ('{"n":%d}' % random.randint(0, 9)).encode()
        path = "/api/cart"
    head = ("POST %s HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (path, len(body)))
    return head, body


def read_response(s, buf):
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        rest += s.recv(65536)
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


conns = 8
socks = [socket.create_connection((host, port)) for _ in range(conns)]
bufs = [b""] * conns
idx = [0] * conns
with open(out, "wb") as f:
    for k in range(n):
        c = k % conns
        head, body = request()
        raw = head.encode() + body
        t0 = time.time_ns()
        socks[c].sendall(raw)
        resp, bufs[c] = read_response(socks[c], bufs[c])
        t1 = time.time_ns()
        rid = "%016x%08x" % (0x5eed0000 + c, idx[c])
        idx[c] += 1
        f.write(("1 %s %d 0\n" % (rid, t0)).encode() + raw + SEP)
        f.write(("2 %s %d %d\n" % (rid, t0, t1 - t0)).encode() + resp + SEP)
