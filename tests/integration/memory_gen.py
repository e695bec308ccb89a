#!/usr/bin/env python3
"""Inputs for test_memory.sh: pcaps of clients that make the agent hold memory.

  memory_gen.py heads OUT N SIZE RESP_N
      N connections, each sending SIZE bytes of a request head that never ends
      (RESP_N of them also get SIZE bytes of a response head that never ends),
      1448-byte segments interleaved across the connections so all of them are
      unfinished at once; then 3 normal exchanges on new connections.
  memory_gen.py flood OUT N SYNS SRV_IP SRV_MAC CLI_MAC
      for tcpreplay onto a veth: N client connections (SYN, ACK, then a partial
      request head in 3 small segments sent one round after another, never
      finished) and SYNS half-open connections (a SYN only), from many source
      addresses in 198.19.0.0/16 and ports, to SRV_IP:80.
  memory_gen.py holes OUT N SIZE SRV_IP SRV_MAC CLI_MAC
      for tcpreplay onto a veth: N client connections from 198.19.0.0/16 to SRV_IP:80,
      each a SYN, then SIZE bytes of request in 1448-byte segments after a hole (the
      first segment never sent), interleaved across the connections: every byte is
      out of order, for the agent to buffer until the hole times out."""
import socket
import struct
import sys

PK = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
REC = struct.Struct("<IIII")


class Pcap:
    def __init__(self, path, dst_mac=b"\x02\x00\x00\x00\x00\x02", src_mac=b"\x02\x00\x00\x00\x00\x01"):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.t = 1700000000 * 1000000
        self.eth_c2s = dst_mac + src_mac + b"\x08\x00"
        self.eth_s2c = src_mac + dst_mac + b"\x08\x00"

    def pkt(self, src, dst, sp, dp, seq, ack, flags, payload, c2s=True):
        hdr = PK.pack(0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst, sp, dp,
                      seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
        # IPv4 header checksum: tcpreplay onto a real interface needs it right
        words = struct.unpack("!10H", hdr[:20])
        s = sum(words)
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        hdr = hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:]
        frame = (self.eth_c2s if c2s else self.eth_s2c) + hdr + payload
        self.t += 10
        self.f.write(REC.pack(self.t // 1000000, self.t % 1000000, len(frame), len(frame)))
        self.f.write(frame)

    def close(self):
        self.f.close()


SRV = bytes([10, 1, 0, 1])


def cli_addr(i):
    return bytes([10, 2 + (i >> 16), (i >> 8) & 255, i & 255])


def heads(out, n, size, resp_n):
    p = Pcap(out)
    conns = []
    for i in range(n):
        c, port = cli_addr(i), 20000 + i % 40000
        cs, ss = 1000, 5000000
        p.pkt(c, SRV, port, 80, cs, 0, 0x02, b"")
        p.pkt(SRV, c, 80, port, ss, cs + 1, 0x12, b"", False)
        p.pkt(c, SRV, port, 80, cs + 1, ss + 1, 0x10, b"")
        conns.append([c, port, cs + 1, ss + 1])
    req = b"GET /held HTTP/1.1\r\nHost: held.test\r\nX-Pad: " + b"a" * size
    resp = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"b" * size
    req, resp = req[:size], resp[:size]
    for off in range(0, size, 1448):
        for i, cn in enumerate(conns):
            c, port, cs, ss = cn
            seg = req[off:off + 1448]
            p.pkt(c, SRV, port, 80, cs, ss, 0x18, seg)
            cn[2] += len(seg)
            if i < resp_n:
                seg = resp[off:off + 1448]
                p.pkt(SRV, c, 80, port, ss, cn[2], 0x18, seg, False)
                cn[3] += len(seg)
    for k in range(3):
        c, port, cs, ss = bytes([10, 3, 0, 1 + k]), 40000 + k, 7000, 9000000
        rq = b"GET /normal/%d HTTP/1.1\r\nHost: held.test\r\n\r\n" % k
        rs = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        p.pkt(c, SRV, port, 80, cs, 0, 0x02, b"")
        p.pkt(SRV, c, 80, port, ss, cs + 1, 0x12, b"", False)
        p.pkt(c, SRV, port, 80, cs + 1, ss + 1, 0x18, rq)
        p.pkt(SRV, c, 80, port, ss + 1, cs + 1 + len(rq), 0x18, rs, False)
        p.pkt(c, SRV, port, 80, cs + 1 + len(rq), ss + 1 + len(rs), 0x11, b"")
        p.pkt(SRV, c, 80, port, ss + 1 + len(rs), cs + 2 + len(rq), 0x11, b"", False)
    p.close()


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def flood(out, n, syns, srv_ip, srv_mac, cli_mac):
    p = Pcap(out, mac(srv_mac), mac(cli_mac))
    srv = socket.inet_aton(srv_ip)
    head = [b"GET /trickle HTTP/1.1\r\n", b"Host: flood.test\r\n", b"X-Never-Ends: " + b"t" * 40]

    # 198.19.0.0/16 and 198.18.128.0/17: 96,999 addresses (7 x 13,857), each used with
    # ports that differ for every i sharing it
    def addr(i):
        a = i % 96999
        if a < 65000:
            return bytes([198, 19, a >> 8, a & 255 or 1])
        a -= 65000
        return bytes([198, 18, 128 + (a >> 8), a & 255 or 1])

    def port(i):
        return 10000 + (i // 96999) * 7 + i % 7

    # round 0: every client connects and sends its first piece; the SYN flood is mixed in
    for i in range(max(n, syns)):
        if i < n:
            c, sp = addr(i), port(i)
            p.pkt(c, srv, sp, 80, 1000, 0, 0x02, b"")
            p.pkt(c, srv, sp, 80, 1001, 1, 0x10, b"")
            p.pkt(c, srv, sp, 80, 1001, 1, 0x18, head[0])
        if i < syns:
            c, sp = addr(n + i), port(n + i)
            p.pkt(c, srv, sp, 80, 5000, 0, 0x02, b"")
    # rounds 1, 2: the next pieces, long after the first (every other client came between)
    for r in (1, 2):
        off = 1001 + sum(len(h) for h in head[:r])
        for i in range(n):
            p.pkt(addr(i), srv, port(i), 80, off, 1, 0x18, head[r])
    p.close()


def holes(out, n, size, srv_ip, srv_mac, cli_mac):
    p = Pcap(out, mac(srv_mac), mac(cli_mac))
    srv = socket.inet_aton(srv_ip)
    body = b"POST /hole HTTP/1.1\r\nHost: holes.test\r\nContent-Length: 9999999\r\n\r\n"
    body = (body + b"h" * (size + 1448))[:size + 1448]

    def addr(i):
        return bytes([198, 19, 200 + (i >> 8), i & 255 or 1])

    for i in range(n):
        p.pkt(addr(i), srv, 30000 + i, 80, 1000, 0, 0x02, b"")
    for off in range(1448, len(body), 1448):
        for i in range(n):
            p.pkt(addr(i), srv, 30000 + i, 80, 1001 + off, 1, 0x18, body[off:off + 1448])
    p.close()


def main():
    what, out = sys.argv[1], sys.argv[2]
    if what == "heads":
        heads(out, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif what == "flood":
        flood(out, int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7])
    elif what == "holes":
        holes(out, int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7])
    else:
        sys.exit("usage: see the docstring")


if __name__ == "__main__":
    main()
