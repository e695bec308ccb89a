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
STATE = {"mode": "ok", "count": 0, "limit": 1 << 30, "delay": 0.0}
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
                                 "attempts": ATTEMPTS[0], "mode": STATE["mode"]})
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
                STATE.update({"mode": "ok", "count": 0, "limit": 1 << 30, "delay": 0.0})
            self.reply(200, {"acknowledged": True})
            return
        if self.path == "/_fault":
            cfg = json.loads(data or b"{}")
            with LOCK:
                STATE.update(cfg)
            self.reply(200, STATE)
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


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
