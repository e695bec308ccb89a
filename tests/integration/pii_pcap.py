#!/usr/bin/env python3
"""Write a pcap of the test_pii.sh exchanges (planted secrets in a header, a query
parameter, a JSON field and a text body), one TCP connection each, for checks that
need no network namespace: usage: pii_pcap.py OUT. Ethernet, IPv4, zero checksums
(the agent does not verify them), client 10.0.0.N -> server 10.1.0.1:80."""
import struct
import sys

RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def req(method, target, headers, body=b""):
    h = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, target)
    for k, v in headers:
        h += "%s: %s\r\n" % (k, v)
    if body:
        h += "Content-Length: %d\r\n" % len(body)
    return (h + "\r\n").encode() + body


EXCHANGES = [
    req("GET", "/a?token=QTOKEN998877&page=2",
        [("Authorization", "Bearer-s3cr3t-AAA"), ("Cookie", "sess-77c0ffee")]),
    req("POST", "/login", [("Cookie", "sess-77c0ffee"), ("Content-Type", "application/json")],
        b'{"user":{"name":"kept-name","password":"hunter2-pw"},"n":1}'),
    req("POST", "/note", [("Content-Type", "text/plain")],
        b"pay with 4111111111111111 and mail jane.doe@example.com, order kept-order-17"),
]


def main():
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    srv = bytes([10, 1, 0, 1])
    pk = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
    rec = struct.Struct("<IIII")
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    t = [1700000000 * 1000000]

    def emit(cli, cport, to_server, seq, ack, flags, payload=b""):
        src, dst, sp, dp = (cli, srv, cport, 80) if to_server else (srv, cli, 80, cport)
        hdr = pk.pack(0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst,
                      sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
        frame = eth + hdr + payload
        t[0] += 1000
        chunks.append(rec.pack(t[0] // 1000000, t[0] % 1000000, len(frame), len(frame)))
        chunks.append(frame)

    for n, q in enumerate(EXCHANGES):
        cli, cport, cs, ss = bytes([10, 0, 0, n + 1]), 30000 + n, 1000, 5000000
        emit(cli, cport, True, cs, 0, 0x02)
        emit(cli, cport, False, ss, cs + 1, 0x12)
        emit(cli, cport, True, cs + 1, ss + 1, 0x10)
        emit(cli, cport, True, cs + 1, ss + 1, 0x18, q)
        emit(cli, cport, False, ss + 1, cs + 1 + len(q), 0x18, RESP)
        emit(cli, cport, True, cs + 1 + len(q), ss + 1 + len(RESP), 0x11)
        emit(cli, cport, False, ss + 1 + len(RESP), cs + 2 + len(q), 0x11)
    with open(sys.argv[1], "wb") as f:
        f.write(b"".join(chunks))


if __name__ == "__main__":
    main()
