#!/usr/bin/env python3
"""Inputs for test_safety_files.sh (no scapy, no network).

  safety_gen.py pcap OUT KIND     a pcap, one connection per exchange; KIND:
      secrets  3 POSTs carrying Authorization/Cookie, answers with Set-Cookie
      forge    2 POSTs, the second's body holding GoReplay's separator and a
               forged "DELETE /forged-admin-action" entry
  safety_gen.py gor OUT N         N requests with distinct IDs, never answered
  safety_gen.py gap OUT           2 requests 2^62 ns apart, then one 1 ms later"""
import struct
import sys

SEP = b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n"


def pcap(out, exchanges):
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    srv = bytes([10, 1, 0, 1])
    pk = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
    rec = struct.Struct("<IIII")
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    t = [1700000000 * 1000000]

    def emit(cli, cport, to_server, seq, ack, flags, payload):
        src, dst, sp, dp = (cli, srv, cport, 80) if to_server else (srv, cli, 80, cport)
        hdr = pk.pack(0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst,
                      sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
        frame = eth + hdr + payload
        t[0] += 1000
        chunks.append(rec.pack(t[0] // 1000000, t[0] % 1000000, len(frame), len(frame)))
        chunks.append(frame)

    for c, (req, resp) in enumerate(exchanges):
        cli, cport, cs, ss = bytes([10, 0, 0, 1 + c]), 30000 + c, 1000, 5000000
        emit(cli, cport, True, cs, 0, 0x02, b"")
        emit(cli, cport, False, ss, cs + 1, 0x12, b"")
        emit(cli, cport, True, cs + 1, ss + 1, 0x10, b"")
        cs, ss = cs + 1, ss + 1
        emit(cli, cport, True, cs, ss, 0x18, req)
        cs += len(req)
        emit(cli, cport, False, ss, cs, 0x18, resp)
        ss += len(resp)
        emit(cli, cport, True, cs, ss, 0x11, b"")
        emit(cli, cport, False, ss, cs + 1, 0x11, b"")
    with open(out, "wb") as f:
        f.write(b"".join(chunks))


def post(path, body, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: shadow.test\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def main():
    what, out = sys.argv[1], sys.argv[2]
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    if what == "pcap" and sys.argv[3] == "secrets":
        pcap(out, [(post(b"/login/%d" % i, b'{"u":1}',
                         b"Authorization: Bearer sk-live-SECRET-TOKEN\r\nCookie: sid=SECRET-COOKIE\r\n"),
                    b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=SECRET-SETCOOKIE\r\nContent-Length: 2\r\n\r\nok")
                   for i in range(3)])
    elif what == "pcap" and sys.argv[3] == "forge":
        forged = (b"x" + SEP + b"1 0000000000000000deadbeef 1 0\n"
                  b"DELETE /forged-admin-action HTTP/1.1\r\nHost: shadow.test\r\n\r\n")
        pcap(out, [(post(b"/ok", b"{}"), ok), (post(b"/upload", forged), ok)])
    elif what == "gor":
        with open(out, "wb") as f:
            for i in range(int(sys.argv[3])):
                f.write(b"1 %016x00000001 1000 5\nGET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i, i) + SEP)
    elif what == "gap":
        with open(out, "wb") as f:
            for i, ts in enumerate([1000, 1000 + (1 << 62), 1000 + (1 << 62) + 1000000]):
                f.write(b"1 %016x00000001 %d 5\nGET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i, ts, i) + SEP)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
