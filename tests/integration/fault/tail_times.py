#!/usr/bin/env python3
"""Stamps each NDJSON record with the wall-clock time it appeared in FILE: writes
"UNIX-TIME URL.ORIGINAL" per record to OUT, polling every 50 ms until killed (or 600 s).
The time a record is written is the end of its replay, seen from outside the agent.

Usage: tail_times.py FILE OUT"""
import json
import os
import sys
import time


def main():
    path, out = sys.argv[1], sys.argv[2]
    pos, part = 0, b""
    end = time.time() + 600
    with open(out, "a") as o:
        while time.time() < end:
            try:
                with open(path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
            except OSError:
                data = b""
            now = time.time()
            pos += len(data)
            part += data
            *lines, part = part.split(b"\n")
            for line in lines:
                try:
                    url = json.loads(line).get("url", {}).get("original", "")
                except ValueError:
                    continue
                if url:
                    o.write("%.3f %s\n" % (now, url))
            o.flush()
            time.sleep(0.05)
    os._exit(0)


if __name__ == "__main__":
    main()
