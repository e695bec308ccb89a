#!/usr/bin/env python3
"""A stub that answers GET / with a recorded Elasticsearch root response (a file) and
acknowledges the setup requests and bulks that follow, logging "METHOD PATH" per
request ("+lifecycle" after a body that names an ILM policy). It is a fixture for version detection, not an Elasticsearch: only what the
agent does after reading GET / is checked against it.

  es_root_server.py PORT ROOT.json LOG"""
import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, ROOT, LOG = int(sys.argv[1]), open(sys.argv[2], "rb").read(), sys.argv[3]


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with open(LOG, "a") as f:
            # a template that names the ILM policy is marked, for the check
            f.write("%s %s%s\n" % (self.command, self.path.split("?")[0],
                                    " +lifecycle" if b'"lifecycle"' in body else ""))
        if self.path == "/" and self.command == "GET":
            return self.reply(ROOT)
        if self.path.startswith("/_bulk"):
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            items = []
            for line in body.splitlines()[0::2]:
                act = json.loads(line).get("create", {})
                items.append({"create": {"_index": act.get("_index"), "_id": act.get("_id"),
                                         "status": 201, "result": "created"}})
            return self.reply(json.dumps({"took": 1, "errors": False, "items": items}).encode())
        return self.reply(b'{"acknowledged":true}')

    do_GET = do_PUT = do_POST = do_HEAD = handle_any


ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
