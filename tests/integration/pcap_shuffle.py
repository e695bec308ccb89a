#!/usr/bin/env python3
"""Reorder and duplicate TCP segments of a classic pcap (Ethernet, IPv4), as a capture
point that reorders within a small window and sees retransmitted copies would:

  pcap_shuffle.py IN OUT --window W --dup P --seed S

Payload-carrying segments move by up to W places within their connection's traffic;
P% of them are repeated once, up to W places later. A segment never moves past a
packet of the other direction that acknowledges it (the peer cannot acknowledge what
was not yet sent, so no capture point sees that), and SYN, FIN and RST packets keep
their places. The k-th packet written gets the k-th timestamp read, so the file stays monotonic.
Plain Python (struct) so that it needs no packet library."""
import argparse
import random
import struct

ap = argparse.ArgumentParser()
ap.add_argument("inp")
ap.add_argument("out")
ap.add_argument("--window", type=int, default=8)
ap.add_argument("--dup", type=float, default=5.0)
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()
rnd = random.Random(args.seed)

raw = open(args.inp, "rb").read()
magic = struct.unpack("<I", raw[:4])[0]
endian = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
ghdr, off, pkts = raw[:24], 24, []
linktype = struct.unpack(endian + "I", raw[20:24])[0]
assert linktype == 1, "Ethernet captures only (linktype %d)" % linktype
while off + 16 <= len(raw):
    ts_s, ts_f, incl, orig = struct.unpack(endian + "IIII", raw[off:off + 16])
    pkts.append({"ts": (ts_s, ts_f), "data": raw[off + 16:off + 16 + incl], "orig": orig})
    off += 16 + incl


def tcp_info(p):
    d = p["data"]
    if len(d) < 14 + 20 or d[12:14] != b"\x08\x00":
        return None
    ihl = (d[14] & 15) * 4
    if d[14 + 9] != 6:
        return None
    tot = struct.unpack(">H", d[16:18])[0]
    t = 14 + ihl
    sport, dport, seq, ack = struct.unpack(">HHII", d[t:t + 12])
    thl = (d[t + 12] >> 4) * 4
    flags = d[t + 13]
    plen = tot - ihl - thl
    src, dst = d[26:30], d[30:34]
    return {"a": (src, sport), "b": (dst, dport), "seq": seq, "ack": ack, "flags": flags, "len": plen}


for p in pkts:
    p["tcp"] = tcp_info(p)


def acks(q, p):
    """q (other direction) acknowledges p's last byte"""
    tq, tp = q["tcp"], p["tcp"]
    if not tq or not tp or tq["a"] != tp["b"] or tq["b"] != tp["a"] or not (tq["flags"] & 0x10):
        return False
    end = (tp["seq"] + tp["len"]) & 0xffffffff
    return ((tq["ack"] - end) & 0xffffffff) < 0x80000000


def movable(p):
    t = p["tcp"]
    return t is not None and t["len"] > 0 and not (t["flags"] & 0x07)


# sort keys: a movable segment may move forward by up to W places, but not past a
# packet that acknowledges it, nor past a fixed (control) packet of its connection
n = len(pkts)
keys = [float(i) for i in range(n)]
out = []
for i, p in enumerate(pkts):
    if not movable(p):
        continue
    limit = i + args.window
    for j in range(i + 1, min(n, i + args.window + 1)):
        q = pkts[j]
        if acks(q, p) or (q["tcp"] and not movable(q) and {q["tcp"]["a"], q["tcp"]["b"]} == {p["tcp"]["a"], p["tcp"]["b"]}):
            limit = j - 0.5
            break
    keys[i] = rnd.uniform(i, limit)
order = sorted(range(n), key=lambda k: keys[k])
seq = [pkts[k] for k in order]
# duplicates: a copy of a segment a few places later (never past its acknowledgment)
res = []
pending = []   # (position, packet)
for idx, p in enumerate(seq):
    res.append(p)
    if movable(p) and rnd.random() * 100 < args.dup:
        pending.append((idx + rnd.randint(1, max(1, args.window // 2)), p))
    keep = []
    for pos, q in pending:
        if pos <= idx or (idx + 1 < len(seq) and acks(seq[idx + 1], q)):
            res.append(q)
        else:
            keep.append((pos, q))
    pending = keep
res += [q for _, q in pending]

# the k-th packet out gets the k-th timestamp in: pacing (tcpreplay) stays as captured
times = [p["ts"] for p in pkts]
with open(args.out, "wb") as f:
    f.write(ghdr)
    for k, p in enumerate(res):
        ts = times[min(k, n - 1)]
        f.write(struct.pack(endian + "IIII", ts[0], ts[1], len(p["data"]), p["orig"]))
        f.write(p["data"])
moved = sum(1 for a, b in zip(order, range(n)) if a != b)
print("pcap_shuffle: %d packets, %d out of place, %d duplicated" % (n, moved, len(res) - n))
