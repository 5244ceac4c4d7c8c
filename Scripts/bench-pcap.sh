#!/bin/sh
# Throughput of `mimic run --pcap`: the XDP firewall example over a generated 100,000-packet
# capture (Examples/gen_traffic.py; nothing big is committed), release build, five runs.
# Usage: Scripts/bench-pcap.sh [PACKETS]   (set SCRATCH to choose the build directory)
# WORKERS=N adds --workers N; FLOWS=F generates F flows with Scripts/gen-flows.py instead (the
# example pattern has ~15 flows, too few to spread evenly over workers). REALTIME=1 runs each
# timing at real-time priority (`chrt -f 50`, root only): on a machine that builds or tests in
# the background, the runs then get the cores they ask for, and the figures hold to a few %.
set -eu
cd "$(dirname "$0")/.."
packets="${1:-100000}"
scratch="${SCRATCH:-.build}"
swift build -c release --scratch-path "$scratch" --product mimic >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -n "${FLOWS:-}" ]; then
    python3 Scripts/gen-flows.py "$work/bench.pcap" "$packets" "$FLOWS"
else
    python3 Examples/gen_traffic.py "$work/bench.pcap" --count "$packets"
fi
priority=""
[ -n "${REALTIME:-}" ] && priority="chrt -f 50"
for run in 1 2 3 4 5; do
    $priority "$scratch/release/mimic" run Examples/xdp_firewall.o --pcap "$work/bench.pcap" \
        --map blocklist=Examples/blocklist.json --out "$work/out.pcap" ${WORKERS:+--workers "$WORKERS"} | grep '^time:'
done
