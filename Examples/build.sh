#!/bin/sh
# Rebuilds the example objects from their C sources with the toolchain's clang, and the
# example capture from gen_traffic.py. Needs no kernel or libbpf headers (mimic_bpf.h).
set -eu
cd "$(dirname "$0")"
CLANG="${CLANG:-clang}"
for source in xdp_firewall.c tc_rewrite.c trace_exec.c packet_counter.c; do
    name="${source%.c}"
    "$CLANG" -O2 -g -target bpf -I. -c "$source" -o "$name.o"
    echo "built $name.o"
done
if [ "${1:-}" = "--pcap" ]; then
    python3 gen_traffic.py traffic.pcap
fi
