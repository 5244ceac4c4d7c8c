#!/bin/sh
# Rebuilds the tracing fixtures, written the way libbpf-bootstrap writes its examples:
#   clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I. -c <name>.bpf.c -o <name>.bpf.o
# Needs libbpf's BPF headers (<bpf/bpf_helpers.h>, bpf_tracing.h, bpf_core_read.h: Debian's
# libbpf-dev). vmlinux.h here is a subset of the kernel's types; CO-RE relocations make the
# objects read the target kernel's layouts.
set -eu
cd "$(dirname "$0")"
CLANG="${CLANG:-clang}"
for source in *.bpf.c; do
    name="${source%.bpf.c}"
    "$CLANG" -O2 -g -target bpf -D__TARGET_ARCH_x86 -I. -c "$source" -o "$name.bpf.o"
    echo "built $name.bpf.o"
done
