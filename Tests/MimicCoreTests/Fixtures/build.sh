#!/bin/sh
# Rebuilds every fixture object from its C source with the toolchain's clang.
# Needs no kernel or libbpf headers: the fixtures include Examples/mimic_bpf.h (by relative
# path; -I names its directory too), with XDP_* as plain #defines (MIMIC_BPF_XDP_ACTION_MACROS).
set -eu
cd "$(dirname "$0")"
CLANG="${CLANG:-clang}"
HEADERS=../../../Examples
for source in *.c; do
    name="${source%.c}"
    target=bpf
    [ "$name" = bigendian ] && target=bpfeb
    "$CLANG" -O2 -g -target "$target" -I"$HEADERS" -DMIMIC_BPF_XDP_ACTION_MACROS -c "$source" -o "$name.o"
    echo "built $name.o ($target)"
done
