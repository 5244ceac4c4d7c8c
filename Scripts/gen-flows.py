#!/usr/bin/env python3
"""A capture of many flows for `mimic run --pcap --workers N` (Examples/gen_traffic.py repeats
20 packets of ~15 flows, too few to spread evenly over workers by flow hash).

usage: Scripts/gen-flows.py OUT.pcap COUNT FLOWS
FLOWS IPv4 flows (TCP and UDP alternately, each from its own address and port; every tenth
from the example blocklist's 192.0.2.66), visited in a fixed scrambled order, COUNT packets.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Examples"))
import gen_traffic as g  # noqa: E402


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: gen-flows.py OUT.pcap COUNT FLOWS")
    count, flows = int(sys.argv[2]), int(sys.argv[3])
    if count < 1 or flows < 1:
        sys.exit("COUNT and FLOWS must be at least 1")
    frames = []
    for f in range(flows):
        src = "10.%d.%d.%d" % (f // 65536 % 256, f // 256 % 256, f % 256 or 1)
        if f % 10 == 0:
            frames.append(g.tcp("192.0.2.66", "10.0.0.2", 2000 + f % 60000, 22, 0x02, f & 0xFFFF))
        elif f % 2:
            frames.append(g.udp(src, "10.0.0.2", 1024 + f % 60000, 53, b"\x12\x34query", f & 0xFFFF))
        else:
            frames.append(g.tcp(src, "10.0.0.2", 1024 + f % 60000, 80, 0x10, f & 0xFFFF))
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(count):
        frame = frames[(i * 7919) % flows]
        out += struct.pack("<IIII", 1_700_000_000 + i // 1000, (i % 1000) * 1000, len(frame), len(frame)) + frame
    with open(sys.argv[1], "wb") as handle:
        handle.write(out)


if __name__ == "__main__":
    main()
