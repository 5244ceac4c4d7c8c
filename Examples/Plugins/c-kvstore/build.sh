#!/bin/sh
# Builds the kvstore plugin (libkvstore.so) and its eBPF demo (kv_demo.bpf.o) with the Swift
# toolchain's clang. OUT (default: this folder) receives the plugin; the .o stays here.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
CLANG="${CLANG:-clang}"
OUT="${OUT:-$here}"
header="$here/../../../Sources/CMimicPlugin/include"
"$CLANG" -O2 -Wall -Wextra -fPIC -shared -fvisibility=hidden -I"$header" \
    "$here/kvstore.c" -o "$OUT/libkvstore.so" -lpthread
echo "built $OUT/libkvstore.so"
if [ "${SKIP_BPF:-0}" != 1 ]; then
    "$CLANG" -O2 -g -target bpf -c "$here/kv_demo.bpf.c" -o "$here/kv_demo.bpf.o"
    echo "built $here/kv_demo.bpf.o"
fi
