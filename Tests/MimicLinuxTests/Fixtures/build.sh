#!/bin/sh
# Rebuilds every end-to-end fixture object from its C source:
#   clang -O2 -g -target bpf -I../../../Examples -DMIMIC_BPF_XDP_ACTION_MACROS -c <name>.c -o <name>.o
# Needs no kernel or libbpf headers: the fixtures include Examples/mimic_bpf.h (by relative
# path; -I names its directory too), with XDP_* as plain #defines (MIMIC_BPF_XDP_ACTION_MACROS).
set -eu
cd "$(dirname "$0")"
CLANG="${CLANG:-clang}"
HEADERS=../../../Examples
for source in *.c; do
    name="${source%.c}"
    "$CLANG" -O2 -g -target bpf -I"$HEADERS" -DMIMIC_BPF_XDP_ACTION_MACROS -c "$source" -o "$name.o"
    echo "built $name.o"
done
