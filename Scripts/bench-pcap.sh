#!/bin/sh
# Throughput of `mimic run --pcap`: the XDP firewall example over a generated 100,000-packet
# capture (Examples/gen_traffic.py; nothing big is committed), release build, five runs.
# Usage: Scripts/bench-pcap.sh [PACKETS]   (set SCRATCH to choose the build directory)
set -eu
cd "$(dirname "$0")/.."
packets="${1:-100000}"
scratch="${SCRATCH:-.build}"
swift build -c release --scratch-path "$scratch" --product mimic >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 Examples/gen_traffic.py "$work/bench.pcap" --count "$packets"
for run in 1 2 3 4 5; do
    "$scratch/release/mimic" run Examples/xdp_firewall.o --pcap "$work/bench.pcap" \
        --map blocklist=Examples/blocklist.json --out "$work/out.pcap" | grep '^time:'
done
