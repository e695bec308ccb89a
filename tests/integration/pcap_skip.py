#!/usr/bin/env python3
"""Make a classic pcap (Ethernet, IPv4) look like what the agent's BPF program hands
over under its test-only loss injection (SHADOWTAP_TEST_SKIP_EVERY), so that a live
capture of test_loss.sh's traffic can be replayed offline with every phase of the
skip pattern:

  pcap_skip.py IN OUT --every N [--phase P | --seed S] [--port 80]

Among TCP packets to or from the port: those that carry payload or SYN/FIN/RST are
counted, and every Nth is dropped (the count starts at P), or each with probability
1/N (--seed). Pure ACKs are dropped too: the BPF program never emits them, so the
agent learns the peer's acknowledgments only from segments with data. Other packets
are kept. Plain Python (struct) so that it needs no packet library."""
import argparse
import random
import struct

ap = argparse.ArgumentParser()
ap.add_argument("inp")
ap.add_argument("out")
ap.add_argument("--every", type=int, required=True)
ap.add_argument("--phase", type=int, default=0)
ap.add_argument("--seed", type=int)
ap.add_argument("--port", type=int, default=80)
args = ap.parse_args()
rnd = random.Random(args.seed) if args.seed is not None else None

raw = open(args.inp, "rb").read()
magic = struct.unpack("<I", raw[:4])[0]
assert magic in (0xa1b2c3d4, 0xa1b23c4d, 0xd4c3b2a1, 0x4d3cb2a1), "classic pcap only"
endian = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
assert struct.unpack(endian + "I", raw[20:24])[0] == 1, "Ethernet captures only"
out, off, seen, dropped = [raw[:24]], 24, args.phase, 0
while off + 16 <= len(raw):
    incl = struct.unpack(endian + "I", raw[off + 8:off + 12])[0]
    rec = raw[off:off + 16 + incl]
    off += 16 + incl
    d = rec[16:]
    if len(d) >= 54 and d[12:14] == b"\x08\x00" and d[23] == 6:
        ihl = (d[14] & 15) * 4
        tot = struct.unpack(">H", d[16:18])[0]
        t = 14 + ihl
        sport, dport = struct.unpack(">HH", d[t:t + 4])
        flags = d[t + 13]
        plen = tot - ihl - (d[t + 12] >> 4) * 4
        if args.port in (sport, dport):
            if plen <= 0 and not flags & 0x07:
                continue
            if rnd is not None:
                drop = rnd.randrange(args.every) == 0
            else:
                seen += 1
                drop = seen % args.every == 0
            if drop:
                dropped += 1
                continue
    out.append(rec)
open(args.out, "wb").write(b"".join(out))
print("dropped %d segments" % dropped)
