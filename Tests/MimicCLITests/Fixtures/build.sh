#!/bin/sh
# Rebuilds the CLI test fixtures with the toolchain's clang (headers: Examples/mimic_bpf.h).
set -eu
cd "$(dirname "$0")"
"${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -c unknown_helper.c -o unknown_helper.o
echo "built unknown_helper.o"
"${CLANG:-clang}" -O2 -g -target bpf -I../../../Examples -c sampler.c -o sampler.o
echo "built sampler.o"
