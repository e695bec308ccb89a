#!/usr/bin/env python3
"""serverB's back end in test_tls_replay.sh: nginx (TLS) proxies to this plain HTTP/1.1
server, which answers every request and logs one line per request with what nginx
forwarded: "ID METHOD TARGET BODY_LEN SHA256" (ID is the X-St-Id header or -). The
body digest is the oracle for "serverB received the body byte-identical".
With --cert/--key it serves HTTPS itself (Python's ssl module, dynamically linked to
libssl3): the "second server started after the agent" of the same test."""
import argparse
import hashlib
import http.server
import socketserver
import sys
import threading

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--cert")
ap.add_argument("--key")
args = ap.parse_args()
out = open(args.log, "a", buffering=1)
lock = threading.Lock()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with lock:
            out.write("%s %s %s %d %s\n" % (self.headers.get("X-St-Id") or "-", self.command, self.path,
                                            len(body), hashlib.sha256(body).hexdigest()))
        ans = b"sink %d\n" % len(body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(ans)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(ans)

    do_GET = do_POST = do_HEAD = do_PUT = handle_any

    def log_message(self, *a):
        pass


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 256


srv = S(("127.0.0.1", args.port), H)
if args.cert:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
