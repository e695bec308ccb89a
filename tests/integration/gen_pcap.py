#!/usr/bin/env python3
"""Write a pcap of N HTTP/1.1 exchanges on keep-alive connections, fast (no scapy).

usage: gen_pcap.py OUT EXCHANGES [CONNECTIONS]
Each connection has a handshake, requests interleaved round-robin with the other
connections (so many flows are open at once), and a FIN pair at the end. Ethernet
framing, IPv4, client 10.0.x.y:ephemeral -> server 10.1.0.1:80; checksums are zero
(the agent does not verify them, as a capture with offload would not)."""
import struct
import sys


def main():
    out, total = sys.argv[1], int(sys.argv[2])
    nconn = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    per = (total + nconn - 1) // nconn
    req = b"GET /item HTTP/1.1\r\nHost: shadow.test\r\nUser-Agent: gen\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    srv = bytes([10, 1, 0, 1])
    pk = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
    rec = struct.Struct("<IIII")
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    t = [1700000000 * 1000000]

    def emit(cli, cport, to_server, seq, ack, flags, payload):
        src, dst, sp, dp = (cli, srv, cport, 80) if to_server else (srv, cli, 80, cport)
        ip_len = 40 + len(payload)
        hdr = pk.pack(0x45, 0, ip_len, 0, 0x4000, 64, 6, 0, src, dst,
                      sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
        frame = eth + hdr + payload
        t[0] += 3
        chunks.append(rec.pack(t[0] // 1000000, t[0] % 1000000, len(frame), len(frame)))
        chunks.append(frame)

    conns = []
    for c in range(nconn):
        cli = bytes([10, 0, (c >> 8) & 255, c & 255])
        cport = 20000 + c
        cs, ss = 1000, 5000000
        emit(cli, cport, True, cs, 0, 0x02, b"")            # SYN
        emit(cli, cport, False, ss, cs + 1, 0x12, b"")      # SYN-ACK
        emit(cli, cport, True, cs + 1, ss + 1, 0x10, b"")   # ACK
        conns.append([cli, cport, cs + 1, ss + 1])
    done = 0
    for r in range(per):
        for st in conns:
            if done == total:
                break
            cli, cport, cs, ss = st
            emit(cli, cport, True, cs, ss, 0x18, req)
            cs += len(req)
            emit(cli, cport, False, ss, cs, 0x18, resp)
            ss += len(resp)
            st[2], st[3] = cs, ss
            done += 1
    for cli, cport, cs, ss in conns:
        emit(cli, cport, True, cs, ss, 0x11, b"")           # FIN
        emit(cli, cport, False, ss, cs + 1, 0x11, b"")      # FIN
    with open(out, "wb") as f:
        f.write(b"".join(chunks))


if __name__ == "__main__":
    main()
