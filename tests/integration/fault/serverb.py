#!/usr/bin/env python3
"""A hostile serverB for tests/integration/test_hostile.sh: one listening port per
behaviour, port = --base + index in MODES. Each connection logs one line per request
head it received ("MODE REQUEST-LINE") to --log, then misbehaves:

  garbage         answers bytes that are not HTTP, then closes
  chunked_forever a chunked 200 whose chunks never end
  trickle         the response head one byte per second
  huge_length     Content-Length: 10 GB, then sends body bytes for ever
  reset           half a response (head + 100 of 1000 body bytes), then a TCP RST
  early           answers as soon as it accepts, before any request byte, then closes
  many_headers    a response head with 100,000 header lines
  long_header     a response head with one 10 MB header line
  pipeline_close  answers the first request on a connection; the second after 0.3 s
                  (so the client pipelines more behind it), then closes without
                  answering the rest
  ok              a well-behaved server (keep-alive, 200 "ok")

Usage: serverb.py --base PORT --log FILE
"""
import argparse
import socket
import struct
import threading
import time

MODES = ["garbage", "chunked_forever", "trickle", "huge_length", "reset", "early",
         "many_headers", "long_header", "pipeline_close", "ok"]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
LOCK = threading.Lock()


def log(args, mode, line):
    with LOCK, open(args.log, "a") as f:
        f.write("%s %s\n" % (mode, line.decode("latin-1")))


def read_request(c, buf):
    """One request (head + Content-Length body) from buf + the socket: (line, rest) or
    (None, buf) when the peer closed first."""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None, buf
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v.strip())
    while len(rest) < n:
        d = c.recv(65536)
        if not d:
            return None, buf
        rest += d
    return head.split(b"\r\n")[0], rest[n:]


def send_forever(c, chunk):
    """Until the peer goes away (a write fails) or 120 s pass: the test is over by then."""
    end = time.time() + 120
    while time.time() < end:
        c.sendall(chunk)


def handle(c, mode, args):
    buf = b""
    try:
        if mode == "early":
            c.sendall(OK)
            log(args, mode, b"(answered before any request)")
            c.shutdown(socket.SHUT_WR)
            line, buf = read_request(c, buf)
            if line:
                log(args, mode, line)
            return
        line, buf = read_request(c, buf)
        if not line:
            return
        log(args, mode, line)
        if mode == "ok":
            while line:
                c.sendall(OK)
                line, buf = read_request(c, buf)
                if line:
                    log(args, mode, line)
        elif mode == "garbage":
            c.sendall(b"\x00\x01\x02 this is not HTTP \xff\xfe\r\n\r\n" * 8)
        elif mode == "chunked_forever":
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            send_forever(c, b"4000\r\n" + b"c" * 0x4000 + b"\r\n")
        elif mode == "trickle":
            for b in OK:
                c.sendall(bytes([b]))
                time.sleep(1)
        elif mode == "huge_length":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10737418240\r\n\r\n")
            send_forever(c, b"h" * 65536)
        elif mode == "reset":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"r" * 100)
            time.sleep(0.2)
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "many_headers":
            c.sendall(b"HTTP/1.1 200 OK\r\n" +
                      b"".join(b"X-H%d: v\r\n" % i for i in range(100000)) +
                      b"Content-Length: 3\r\n\r\nok\n")
        elif mode == "long_header":
            c.sendall(b"HTTP/1.1 200 OK\r\nX-Long: " + b"L" * (10 << 20) +
                      b"\r\nContent-Length: 3\r\n\r\nok\n")
        elif mode == "pipeline_close":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            line, buf = read_request(c, buf)
            if not line:
                return
            log(args, mode, line)
            time.sleep(0.3)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
    except OSError:
        pass
    finally:
        c.close()


def serve(s, mode, args):
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c, mode, args), daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=int, required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    socks = []
    for i, mode in enumerate(MODES):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", args.base + i))
        s.listen(128)
        socks.append((s, mode))
    for s, mode in socks[1:]:
        threading.Thread(target=serve, args=(s, mode, args), daemon=True).start()
    serve(socks[0][0], socks[0][1], args)


if __name__ == "__main__":
    main()
