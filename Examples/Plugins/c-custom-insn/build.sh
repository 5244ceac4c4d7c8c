#!/bin/sh
# Builds the custom-instruction plugin (libcustom_insn.so) with the Swift toolchain's clang.
# OUT (default: this folder) receives it.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
CLANG="${CLANG:-clang}"
OUT="${OUT:-$here}"
header="$here/../../../Sources/CMimicPlugin/include"
"$CLANG" -O2 -Wall -Wextra -fPIC -shared -fvisibility=hidden -I"$header" \
    "$here/custom_insn.c" -o "$OUT/libcustom_insn.so"
echo "built $OUT/libcustom_insn.so"
