#!/bin/sh
# Builds the Swift counter plugin (libCounterPlugin.so) and its eBPF demo (counter_demo.bpf.o).
# SCRATCH (default .build) is SwiftPM's build folder; CONFIGURATION is debug or release.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
CLANG="${CLANG:-clang}"
SCRATCH="${SCRATCH:-$here/.build}"
CONFIGURATION="${CONFIGURATION:-release}"
swift build --package-path "$here" --scratch-path "$SCRATCH" -c "$CONFIGURATION" --product CounterPlugin
echo "built $SCRATCH/$CONFIGURATION/libCounterPlugin.so"
if [ "${SKIP_BPF:-0}" != 1 ]; then
    "$CLANG" -O2 -g -target bpf -c "$here/counter_demo.bpf.c" -o "$here/counter_demo.bpf.o"
    echo "built $here/counter_demo.bpf.o"
fi
