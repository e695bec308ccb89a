#!/usr/bin/env python3
"""Test service for the differences test: run as serverA, baseline and serverB.

Every answer carries real noise: a millisecond timestamp, a random request id, a
set-like array in random order, Date and ETag headers and the instance's hostname.
--regress plants serverB's two regressions: $.price is one more for item ids that
are multiples of 20 (5% of GET /api/item/{int}), and POST /api/orders loses
$.currency."""
import argparse, hashlib, json, random, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--name", required=True)
ap.add_argument("--regress", action="store_true")
args = ap.parse_args()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_json(self, obj, code=200):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("ETag", '"%s"' % hashlib.md5(body).hexdigest())
        self.send_header("X-Request-Id", obj.get("request_id", ""))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def noise(self):
        tags = ["new", "sale", "eco", "gift"]
        random.shuffle(tags)
        return {"ts": int(time.time() * 1000), "request_id": str(uuid.uuid4()), "tags": tags,
                "host": args.name}

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["api", "item"] and parts[2].isdigit():
            i = int(parts[2])
            price = 10 + i % 7
            if args.regress and i % 20 == 0:
                price += 1
            return self.send_json(dict(id=i, name="item %d" % i, price=price, stock=i % 3,
                                       **self.noise()))
        if len(parts) == 3 and parts[:2] == ["api", "user"] and parts[2].isdigit():
            i = int(parts[2])
            return self.send_json(dict(id=i, name="user %d" % i, roles=["reader"], **self.noise()))
        if parts == ["health"]:
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_json({"error": "not found"}, 404)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            req = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            req = {}
        if self.path == "/api/orders":
            qty = int(req.get("qty", 1))
            out = dict(status="created", item=req.get("item"), total=qty * 12, currency="EUR",
                       **self.noise())
            if args.regress:
                del out["currency"]
            return self.send_json(out, 201)
        if self.path == "/api/cart":
            return self.send_json(dict(ok=True, items=int(req.get("n", 0)), **self.noise()))
        self.send_json({"error": "not found"}, 404)


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 128   # the replay opens its connections at once
ThreadingHTTPServer(("127.0.0.1", args.port), H).serve_forever()
