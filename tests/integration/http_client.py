#!/usr/bin/env python3
"""Send exactly N HTTP/1.1 requests over keep-alive connections (some pipelined),
with a mix of GETs, HEADs, Content-Length POSTs (0 B, 1 KiB, 1 MiB) and chunked
POSTs, and write a manifest line per request: what was sent and what came back.
The manifest is what the record checker compares shadowtap's records against."""
import argparse
import contextlib
import json
import socket
import ssl
import sys
import threading


def build(conn, i):
    tgt = "/r/%d/%d?k=%d" % (conn, i, i * 7)
    method, body, chunked, extra = "GET", b"", None, ""
    m = i % 20
    if i % 1000 == 7:
        method, body = "POST", bytes((j * 31 + i) & 0xFF for j in range(1 << 20))
    elif m == 0:
        method, body = "POST", (b"abcdefgh" * 128)
    elif m == 1:
        method, body = "POST", b""
    elif m == 2:
        method = "POST"
        chunked = [b"x" * 1000, b"y" * 700, b"z" * 300]
        body = b"".join(chunked)
    elif m == 3:
        tgt = "/static/text.txt?c=%d&i=%d" % (conn, i)
        extra = "Accept-Encoding: gzip\r\n"
    elif m == 4:
        method = "HEAD"
    elif m == 5:
        tgt = "/static/big.bin?c=%d&i=%d" % (conn, i)
    head = "%s %s HTTP/1.1\r\nHost: serverA\r\nUser-Agent: st-test\r\nX-St-Id: %d-%d\r\n%s" % (
        method, tgt, conn, i, extra)
    if chunked is not None:
        head += "Transfer-Encoding: chunked\r\n\r\n"
        wire = head.encode()
        for c in chunked:
            wire += b"%x\r\n" % len(c) + c + b"\r\n"
        wire += b"0\r\nX-Trailer: t\r\n\r\n" if i % 40 == 2 else b"0\r\n\r\n"
    else:
        if method == "POST":
            head += "Content-Length: %d\r\n" % len(body)
        wire = (head + "\r\n").encode() + body
    return {"conn": conn, "i": i, "method": method, "target": tgt, "req_body": len(body)}, wire


class Reader:
    def __init__(self, sock):
        self.s, self.buf = sock, b""

    def fill(self):
        d = self.s.recv(262144)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def response(self, head_only):
        status = int(self.line().split()[1])
        hdrs = {}
        while True:
            l = self.line()
            if not l:
                break
            k, v = l.split(b":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = 0
        if head_only or status in (204, 304) or status < 200:
            pass
        elif hdrs.get(b"transfer-encoding", b"").lower() == b"chunked":
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():
                        pass
                    break
                n += len(self.take(size))
                self.take(2)
        else:
            n = len(self.take(int(hdrs.get(b"content-length", b"0"))))
        return status, n


def run_conn(args, conn, ids, out, lock, errors):
    """One connection; any failure, the connect included, is recorded in errors
    (never lost with the thread), and what was answered is still written."""
    results = []
    try:
        conn_requests(args, conn, ids, results, errors)
    except Exception as e:  # noqa: BLE001 - reported and counted by main
        errors.append("conn %d: %r" % (conn, e))
    with lock:
        for r in results:
            out.write(json.dumps(r) + "\n")


def conn_requests(args, conn, ids, results, errors):
    depth = args.depth if conn < args.pipelined else 1
    window = threading.Semaphore(depth)
    s = socket.create_connection((args.host, args.port), timeout=args.timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if args.tls:
        # test servers have self-signed certificates: no verification
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if args.tls == "1.2":
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        s = ctx.wrap_socket(s, server_hostname=args.host)
    # one SSL object must not be read and written by two threads at once: over TLS
    # the reader and the writer take turns, and a request is readable only once sent
    io = threading.Lock() if args.tls else contextlib.nullcontext()
    sent = []
    rd = Reader(s)

    def reader():
        try:
            for k in range(len(ids)):
                while len(sent) <= k:
                    if errors:
                        return
                    threading.Event().wait(0.0005)
                rec = sent[k]
                with io:
                    st, n = rd.response(rec["method"] == "HEAD")
                rec["status"], rec["resp_body"] = st, n
                results.append(rec)
                window.release()
        except Exception as e:  # noqa: BLE001 - reported and counted
            errors.append("conn %d: %r" % (conn, e))
            for _ in range(depth):
                window.release()

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in ids:
            window.acquire()
            if errors:
                break
            rec, wire = build(conn, i)
            if not args.tls:
                sent.append(rec)
            with io:
                s.sendall(wire)
            if args.tls:
                sent.append(rec)
    finally:
        t.join()
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("-c", "--connections", type=int, default=8)
    ap.add_argument("--pipelined", type=int, default=4, help="connections that pipeline")
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--timeout", type=float, default=30, help="socket timeout, s")
    ap.add_argument("--tls", choices=["1.2", "1.3"], help="speak HTTPS (TLS 1.2 or newest)")
    args = ap.parse_args()
    lock, errors, threads = threading.Lock(), [], []
    with open(args.manifest, "w") as out:
        for c in range(args.connections):
            ids = list(range(c, args.n, args.connections))
            th = threading.Thread(target=run_conn, args=(args, c, ids, out, lock, errors))
            th.start()
            threads.append(th)
        for th in threads:
            th.join()
    with open(args.manifest) as f:
        answered = sum(1 for _ in f)
    if errors or answered != args.n:
        print("client: %d of %d requests answered; errors: %s" % (answered, args.n, errors[:5]),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
