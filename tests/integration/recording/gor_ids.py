#!/usr/bin/env python3
"""Print the X-St-Id of every request (type 1) entry in GoReplay files (gzip or not)."""
import gzip
import re
import sys

SEP = "\n\U0001f435\U0001f648\U0001f649\n".encode()
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    for ent in data.split(SEP):
        if ent.startswith(b"1 "):
            m = re.search(rb"\r\nX-St-Id: ([^\r\n]*)", ent, re.I)
            print(m.group(1).decode() if m else "?")
