#!/bin/sh
# Rebuilds kernel_types.o, the stand-in kernel BTF of KernelTypesTests:
#   clang -O2 -g -target bpf -c kernel_types.c -o kernel_types.o
set -eu
cd "$(dirname "$0")"
"${CLANG:-clang}" -O2 -g -target bpf -c kernel_types.c -o kernel_types.o
echo "built kernel_types.o"
