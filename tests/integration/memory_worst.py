#!/usr/bin/env python3
"""Clients and a mute server for test_memory_worst.sh (real sockets).

  memory_worst.py mute PORT SECS
      listen on 127.0.0.1:PORT, accept every connection and never read or answer
      (serverB that has stopped: the agent's replay budget fills); exit after SECS.
  memory_worst.py uploads HOST N SENT TOTAL SECS
      N slow uploads: POST /upload with Content-Length TOTAL, SENT bytes of it sent
      at once, then the connection held open without the rest for SECS seconds
      (the agent holds each request until it ends). Prints uploads_sent=N.
  memory_worst.py posts HOST THREADS SIZE SECS
      complete POSTs of SIZE-byte bodies, one connection each, from THREADS threads
      for SECS seconds; prints posts_ok=N (answers with status 200)."""
import socket
import sys
import threading
import time


def mute(port, secs):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4096)
    s.settimeout(0.5)
    held, end = [], time.time() + secs
    while time.time() < end:
        try:
            c, _ = s.accept()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            held.append(c)
        except socket.timeout:
            pass


def uploads(host, n, sent, total, secs):
    socks, ok = [], 0
    body = b"u" * sent
    for i in range(n):
        try:
            s = socket.create_connection((host, 80), timeout=10)
            s.sendall(b"POST /upload/%d HTTP/1.1\r\nHost: upload.test\r\nContent-Type: "
                      b"application/octet-stream\r\nContent-Length: %d\r\n\r\n" % (i, total) + body)
            socks.append(s)
            ok += 1
        except OSError as e:
            print("upload %d: %s" % (i, e), file=sys.stderr)
    print("uploads_sent=%d" % ok, flush=True)
    time.sleep(secs)


def posts(host, threads, size, secs):
    body = b"p" * size
    count = [0]
    lock = threading.Lock()
    end = time.time() + secs

    def run(t):
        i = 0
        while time.time() < end:
            i += 1
            try:
                s = socket.create_connection((host, 80), timeout=10)
                s.sendall(b"POST /flood/%d/%d HTTP/1.1\r\nHost: flood.test\r\nContent-Length: %d\r\n"
                          b"Connection: close\r\n\r\n" % (t, i, size) + body)
                resp = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    resp += d
                s.close()
                if resp.startswith(b"HTTP/1.1 200"):
                    with lock:
                        count[0] += 1
            except OSError:
                pass

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("posts_ok=%d" % count[0], flush=True)


def main():
    a = sys.argv
    if a[1] == "mute":
        mute(int(a[2]), float(a[3]))
    elif a[1] == "uploads":
        uploads(a[2], int(a[3]), int(a[4]), int(a[5]), float(a[6]))
    elif a[1] == "posts":
        posts(a[2], int(a[3]), int(a[4]), float(a[5]))
    else:
        sys.exit("usage: see the docstring")


if __name__ == "__main__":
    main()
