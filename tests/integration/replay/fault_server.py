#!/usr/bin/env python3
"""A deliberately bad serverB: 'slow' answers each request after --delay seconds,
'garbage' answers with bytes that are not HTTP and closes, 'close-second': the first
connection answers its first request (keep-alive) and is closed on the second without
a byte of answer (a stale keep-alive connection); later connections answer normally.
Logs one line per request head received to --log."""
import argparse
import socket
import threading
import time


def handle(c, args, lock, first):
    buf = b""
    served = 0
    try:
        while True:
            d = c.recv(65536)
            if not d:
                return
            buf += d
            while b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        n = int(v.strip())
                if len(rest) < n:
                    break
                buf = rest[n:]
                with lock, open(args.log, "a") as f:
                    f.write(head.split(b"\r\n")[0].decode("latin-1") + "\n")
                if args.mode == "garbage":
                    c.sendall(b"\x00\x01garbage garbage garbage\r\n\r\n")
                    return
                if args.mode == "close-second":
                    if served and first:
                        return
                    served += 1
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    continue
                time.sleep(args.delay)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
    except OSError:
        pass
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["slow", "garbage", "close-second"], required=True)
    ap.add_argument("--delay", type=float, default=1.0)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", args.port))
    s.listen(512)
    lock = threading.Lock()
    first = True
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c, args, lock, first), daemon=True).start()
        first = False


if __name__ == "__main__":
    main()
