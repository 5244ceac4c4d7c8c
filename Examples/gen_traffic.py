#!/usr/bin/env python3
"""Writes a deterministic Ethernet capture (classic pcap, microsecond timestamps) for the examples.

    python3 gen_traffic.py OUT.pcap [--count N]

Without --count it writes the 20-packet Examples/traffic.pcap: TCP, UDP and ICMP over IPv4 from
four sources (two of them, 192.0.2.66 and 198.51.100.7, are in Examples/blocklist.json), a UDP
packet to port 8080, an ARP request, an IPv6 packet and a 10-byte runt frame. With --count it
repeats that pattern N packets long (the throughput benchmark uses 100,000).
"""
import struct
import sys

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def ip(a):
    return bytes(int(x) for x in a.split("."))


def ipv4(src, dst, proto, payload, ident):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0, ip(src), ip(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def l4(src, dst, proto, header, body):
    pseudo = ip(src) + ip(dst) + struct.pack("!BBH", 0, proto, len(header) + len(body))
    return checksum(pseudo + header + body)


def udp(src, dst, sport, dport, body, ident):
    header = struct.pack("!HHHH", sport, dport, 8 + len(body), 0)
    header = header[:6] + struct.pack("!H", l4(src, dst, 17, header, body)) + header[8:]
    return ethernet(0x0800, ipv4(src, dst, 17, header + body, ident))


def tcp(src, dst, sport, dport, flags, ident):
    header = struct.pack("!HHIIBBHHH", sport, dport, 1000 + ident, 0, 5 << 4, flags, 65535, 0, 0)
    header = header[:16] + struct.pack("!H", l4(src, dst, 6, header, b"")) + header[18:]
    return ethernet(0x0800, ipv4(src, dst, 6, header, ident))


def icmp_echo(src, dst, ident):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"mimic-ping"
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return ethernet(0x0800, ipv4(src, dst, 1, body, ident))


def ethernet(ethertype, payload):
    return MAC_B + MAC_A + struct.pack("!H", ethertype) + payload


def arp_request():
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_A, ip("10.0.0.1"), b"\0" * 6, ip("10.0.0.2"))
    return b"\xff" * 6 + MAC_A + struct.pack("!H", 0x0806) + body


def ipv6_udp():
    src = bytes.fromhex("20010db8000000000000000000000001")
    dst = bytes.fromhex("20010db8000000000000000000000002")
    body = struct.pack("!HHHH", 5353, 5353, 12, 0) + b"mdns"
    return ethernet(0x86DD, struct.pack("!IHBB", 0x60000000, len(body), 17, 64) + src + dst + body)


def pattern():
    server = "10.0.0.2"
    return [
        tcp("10.0.0.1", server, 40000, 80, 0x02, 1),
        tcp("10.0.0.1", server, 40000, 80, 0x10, 2),
        udp("10.0.0.3", server, 5353, 53, b"\x12\x34query", 3),
        tcp("192.0.2.66", server, 31337, 22, 0x02, 4),             # blocked
        icmp_echo("10.0.0.1", server, 5),
        udp("10.0.0.3", server, 40001, 8080, b"hello, port 8080", 6),
        arp_request(),
        tcp("198.51.100.7", server, 6666, 443, 0x02, 8),           # blocked
        tcp("10.0.0.4", server, 50000, 443, 0x18, 9),
        ipv6_udp(),
        udp("10.0.0.4", server, 123, 123, b"\x23" + b"\0" * 47, 11),
        tcp("192.0.2.66", server, 31338, 23, 0x02, 12),            # blocked
        tcp("10.0.0.1", server, 40000, 80, 0x11, 13),
        icmp_echo("198.51.100.7", server, 14),                     # blocked
        b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00",               # runt: 10 bytes, no Ethernet header
        udp("10.0.0.3", server, 40002, 8080, b"second 8080 datagram", 16),
        tcp("10.0.0.4", server, 50001, 80, 0x02, 17),
        udp("10.0.0.1", server, 68, 67, b"\x01\x01\x06\x00" + b"\0" * 20, 18),
        tcp("10.0.0.4", server, 50001, 80, 0x10, 19),
        icmp_echo("10.0.0.3", server, 20),
    ]


def main():
    if len(sys.argv) not in (2, 4) or (len(sys.argv) == 4 and sys.argv[2] != "--count"):
        sys.exit("usage: gen_traffic.py OUT.pcap [--count N]")
    frames = pattern()
    count = int(sys.argv[3]) if len(sys.argv) == 4 else len(frames)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    start = 1_700_000_000
    for index in range(count):
        frame = frames[index % len(frames)]
        seconds, micros = start + index // 1000, (index % 1000) * 1000
        out += struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame
    with open(sys.argv[1], "wb") as handle:
        handle.write(out)


if __name__ == "__main__":
    main()
