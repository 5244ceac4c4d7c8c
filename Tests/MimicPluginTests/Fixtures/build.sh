#!/bin/sh
# Rebuilds the eBPF objects of the plugin tests with the toolchain's clang.
set -eu
cd "$(dirname "$0")"
CLANG="${CLANG:-clang}"
for source in *.c; do
    "$CLANG" -O2 -g -target bpf -c "$source" -o "${source%.c}.o"
    echo "built ${source%.c}.o"
done
