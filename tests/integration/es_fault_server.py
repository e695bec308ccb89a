#!/usr/bin/env python3
"""A fault-injecting Elasticsearch look-alike for tests/integration/test_es.sh.

Answers GET / like OpenSearch 2.19, accepts the template PUTs and implements
POST /_bulk with "create" semantics (201 first time, 409 for a known _id), keeping
every indexed document in memory. Faults apply to the next `count` bulk requests:

  ok        no fault
  429       whole request answered 429
  500       whole request answered 500
  garbage   200 with a body that is not JSON
  partial   errors:true: items 0, 3, 6, ... 429 (retryable), items 1 and 4
            400 mapper_parsing_exception (dead letter), the rest indexed
  413       any request whose decompressed body exceeds `limit` bytes gets 413
            (count is ignored: it holds until changed)
  slow      sleep `delay` seconds before answering normally
Hostile modes (tests/integration/test_hostile.sh); nothing is indexed while they last:
  huge      500 with a `size`-byte body (default 300 MB), streamed
  nested    200 whose first item's error is nested `depth` levels (default 100,000)
  endless   200, chunked, an items array that never ends
  extra     200 with one item more than the request had
  wrong_ids 200 with every item's _id changed (an answer for other documents)
  trickle   200, a valid answer sent one byte every `delay` seconds
In mode endless a _search?scroll=2m (shadowtap report --es) never ends either.
Each streamed answer (huge, endless, trickle) is logged in /_state "streams" as
{"mode", "bytes" sent before the client hung up, "seconds"}.

Control: POST /_fault {"mode": ..., "count": N, "limit": B, "delay": S}
         POST /_reset forgets documents, counters and the fault
State:   GET /_state -> {"docs": n, "ids": [...], "requests": {...}, "attempts": n}
Usage:   es_fault_server.py PORT
"""
import gzip
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
DOCS = {}
STATE = {"mode": "ok", "count": 0, "limit": 1 << 30, "delay": 0.0, "size": 300 << 20,
         "depth": 100000}
STREAMS = []
HOSTILE = ("huge", "nested", "endless", "extra", "wrong_ids", "trickle")
REQUESTS = {}
ATTEMPTS = [0]


def count(kind):
    REQUESTS[kind] = REQUESTS.get(kind, 0) + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            data = gzip.decompress(data)
        return data

    def do_GET(self):
        if self.path == "/":
            count("probe")
            self.reply(200, {"name": "fault", "cluster_name": "fault",
                             "version": {"distribution": "opensearch", "number": "2.19.6"},
                             "tagline": "The OpenSearch Project: https://opensearch.org/"})
        elif self.path == "/_state":
            with LOCK:
                self.reply(200, {"docs": len(DOCS), "ids": sorted(DOCS), "requests": REQUESTS,
                                 "attempts": ATTEMPTS[0], "mode": STATE["mode"],
                                 "streams": STREAMS})
        elif self.path.startswith("/_doc/"):
            with LOCK:
                doc = DOCS.get(self.path[6:])
            self.reply(200 if doc is not None else 404, doc if doc is not None else {})
        else:
            self.reply(404, {"error": "no such path"})

    def do_PUT(self):
        self.body()
        count("template")
        self.reply(200, {"acknowledged": True})

    def do_POST(self):
        data = self.body()
        if self.path == "/_reset":
            with LOCK:
                DOCS.clear()
                REQUESTS.clear()
                ATTEMPTS[0] = 0
                del STREAMS[:]
                STATE.update({"mode": "ok", "count": 0, "limit": 1 << 30, "delay": 0.0})
            self.reply(200, {"acknowledged": True})
            return
        if self.path == "/_fault":
            cfg = json.loads(data or b"{}")
            with LOCK:
                STATE.update(cfg)
            self.reply(200, STATE)
            return
        if self.path.endswith("/_search?scroll=2m") and STATE["mode"] == "endless":
            # shadowtap report's first scroll page, never ending
            def gen():
                yield b'{"_scroll_id":"x","hits":{"hits":['
                while True:
                    yield b'{"_id":"a","_source":{"event":{"id":"a"}}},' * 1000
            self.stream("report", 200, gen())
            return
        if self.path != "/_bulk":
            self.reply(404, {"error": "no such path"})
            return
        with LOCK:
            mode = STATE["mode"]
            active = mode == "413" or STATE["count"] > 0
            if active and mode != "413":
                STATE["count"] -= 1
            if not active:
                mode = "ok"
            count("bulk_" + mode)
        if mode == "413" and len(data) > STATE["limit"]:
            self.reply(413, b"request entity too large", "text/plain")
            return
        if mode == "429":
            self.reply(429, {"error": {"type": "es_rejected_execution_exception"}, "status": 429})
            return
        if mode == "500":
            self.reply(500, {"error": {"type": "internal"}, "status": 500})
            return
        if mode == "garbage":
            self.reply(200, b"<html>\x00\x01 not json {\"items\":[", "text/html")
            return
        if mode == "slow":
            time.sleep(float(STATE["delay"]))
        if mode in HOSTILE:
            self.hostile(mode, data)
            return
        lines = data.split(b"\n")
        items, errors = [], False
        for i in range(0, len(lines) - 1, 2):
            action = json.loads(lines[i])["create"]
            doc = json.loads(lines[i + 1])
            _id = action["_id"]
            with LOCK:
                ATTEMPTS[0] += 1
                if mode == "partial" and (i // 2) % 3 == 0:
                    res = {"status": 429, "error": {"type": "es_rejected_execution_exception",
                                                    "reason": "queue full"}}
                elif mode == "partial" and i // 2 in (1, 4):
                    res = {"status": 400, "error": {"type": "mapper_parsing_exception",
                                                    "reason": "failed to parse field [url.path]"}}
                elif _id in DOCS:
                    res = {"status": 409, "error": {"type": "version_conflict_engine_exception",
                                                    "reason": "[%s]: version conflict" % _id}}
                else:
                    DOCS[_id] = doc
                    res = {"status": 201, "result": "created"}
            if res["status"] >= 300:
                errors = True
            res.update({"_index": action["_index"], "_id": _id})
            items.append({"create": res})
        self.reply(200, {"took": 1, "errors": errors, "items": items})


    def stream(self, mode, code, parts, length=None, delay=0.0):
        """Send the parts (an iterator) until it ends or the client hangs up."""
        self.close_connection = True
        t0, sent = time.time(), 0
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            if length is None:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(length))
            self.end_headers()
            for p in parts:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p) if length is None else p)
                self.wfile.flush()
                sent += len(p)
                if delay:
                    time.sleep(delay)
        except OSError:
            pass
        with LOCK:
            STREAMS.append({"mode": mode, "bytes": sent, "seconds": round(time.time() - t0, 2)})

    def hostile(self, mode, data):
        lines = data.split(b"\n")
        ids = [json.loads(lines[i])["create"]["_id"] for i in range(0, len(lines) - 1, 2)]
        ok = [{"create": {"_index": "x", "_id": i, "status": 201, "result": "created"}} for i in ids]
        if mode == "huge":
            size = int(STATE["size"])
            blk = b"x" * (1 << 20)
            self.stream(mode, 500, (blk[:min(len(blk), size - k)] for k in range(0, size, len(blk))),
                        length=size)
        elif mode == "nested":
            d = int(STATE["depth"])
            bad = b'{"create":{"_index":"x","_id":"%s","status":400,"error":%s1%s}}' % (
                ids[0].encode(), b"[" * d, b"]" * d)
            rest = b"".join(b"," + json.dumps(i).encode() for i in ok[1:])
            self.reply(200, b'{"took":1,"errors":true,"items":[' + bad + rest + b"]}")
        elif mode == "endless":
            def gen():
                yield b'{"took":1,"errors":false,"items":['
                item = json.dumps(ok[0]).encode() + b","
                while True:
                    yield item * 1000
            self.stream(mode, 200, gen())
        elif mode == "extra":
            self.reply(200, {"took": 1, "errors": False, "items": ok + ok[:1]})
        elif mode == "wrong_ids":
            for o in ok:
                o["create"]["_id"] = "not-" + o["create"]["_id"]
            self.reply(200, {"took": 1, "errors": False, "items": ok})
        elif mode == "trickle":
            body = json.dumps({"took": 1, "errors": False, "items": ok}).encode()
            self.stream(mode, 200, (body[k:k + 1] for k in range(len(body))), length=len(body),
                        delay=float(STATE["delay"]) or 1.0)


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
