#!/bin/sh
# Rebuilds the CLI test fixtures with the toolchain's clang (headers: Examples/mimic_bpf.h).
set -eu
cd "$(dirname "$0")"
"${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -c unknown_helper.c -o unknown_helper.o
echo "built unknown_helper.o"
"${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -c sampler.c -o sampler.o
echo "built sampler.o"
# The example firewall without -g: no BTF, so its .maps section cannot be read.
"${CLANG:-clang}" -O2 -target bpf -I../../../Examples -c ../../../Examples/xdp_firewall.c -o no_btf.o
echo "built no_btf.o"
# Configured before load (issue 16): .rodata constants and a max_entries 0 map, a legacy section
# run with --type, a tc program reading and writing mark and cb; tc_redirect (issue 14): tc
# redirects, a clone, stolen and pass verdicts for `mimic run --pcap --out-dir`.
for name in configured legacy_section tc_mark tc_redirect; do
    "${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -DMIMIC_BPF_XDP_ACTION_MACROS -c "$name.c" -o "$name.o"
    echo "built $name.o"
done
# Output per interface (issue 14): an XDP router redirecting through bpf_redirect, a devmap, a
# cpumap and an xskmap, for `mimic run --pcap --out-dir`.
"${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -DMIMIC_BPF_XDP_ACTION_MACROS -c xdp_router.c -o xdp_router.o
echo "built xdp_router.o"
# The emulated network (issue 14): an XDP router asking bpf_fib_lookup, run with --net router_net.json.
"${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -DMIMIC_BPF_XDP_ACTION_MACROS -c fib_router.c -o fib_router.o
echo "built fib_router.o"
# ... and a tc router leaving the MAC addresses to bpf_redirect_neigh, with bpf_redirect_peer.
"${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -DMIMIC_BPF_XDP_ACTION_MACROS -c tc_neigh_router.c -o tc_neigh_router.o
echo "built tc_neigh_router.o"
# --workers (issue 17): per-flow sequence numbers written into the packets, for flow order.
"${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -DMIMIC_BPF_XDP_ACTION_MACROS -c flow_sequence.c -o flow_sequence.o
echo "built flow_sequence.o"
# Devmap and cpumap entries that carry their own program (issue 14): xdp/devmap and xdp/cpumap
# programs run on the redirected frame, for `mimic run --pcap --out-dir`.
"${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -DMIMIC_BPF_XDP_ACTION_MACROS -c xdp_devmap_prog.c -o xdp_devmap_prog.o
echo "built xdp_devmap_prog.o"
# Entry programs whose trace lines and failures `mimic run --pcap` reports.
"${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -DMIMIC_BPF_XDP_ACTION_MACROS -c xdp_devmap_trace.c -o xdp_devmap_trace.o
echo "built xdp_devmap_trace.o"
# sk_lookup over a capture (issue 14): TCP connection requests steered with bpf_sk_assign to a
# sockmap's socket, UDP to port 53 dropped, for `mimic run --pcap --out-dir`.
"${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -c sk_lookup_steer.c -o sk_lookup_steer.o
echo "built sk_lookup_steer.o"
# The --out capture (issue 17): packets grown at the front, shortened at the end, dropped.
"${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -c xdp_resize.c -o xdp_resize.o
echo "built xdp_resize.o"
