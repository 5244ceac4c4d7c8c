#!/bin/sh
# Rebuilds every end-to-end fixture object from its C source:
#   clang -O2 -g -target bpf -c <name>.c -o <name>.o
# Needs no kernel or libbpf headers: bpf_helpers.h here declares what the fixtures use.
set -eu
cd "$(dirname "$0")"
CLANG="${CLANG:-clang}"
for source in *.c; do
    name="${source%.c}"
    "$CLANG" -O2 -g -target bpf -I. -c "$source" -o "$name.o"
    echo "built $name.o"
done
