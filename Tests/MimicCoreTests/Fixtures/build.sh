#!/bin/sh
# Rebuilds every fixture object from its C source with the toolchain's clang.
# Needs no kernel or libbpf headers: bpf_helpers.h here declares what the fixtures use.
set -eu
cd "$(dirname "$0")"
CLANG="${CLANG:-clang}"
for source in *.c; do
    name="${source%.c}"
    target=bpf
    [ "$name" = bigendian ] && target=bpfeb
    "$CLANG" -O2 -g -target "$target" -I. -c "$source" -o "$name.o"
    echo "built $name.o ($target)"
done
