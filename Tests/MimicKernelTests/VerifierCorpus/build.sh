#!/bin/sh
# Rebuilds the verifier corpus objects from their C sources:
#   clang -O2 -g -target bpf -I../../../Examples -DMIMIC_BPF_XDP_ACTION_MACROS -c <name>.c -o <name>.o
# then re-record manifest.json with the running kernel's verdicts (as root):
#   MIMIC_RECORD_VERIFIER_CORPUS=1 swift test --filter VerifierCorpusTests
set -eu
cd "$(dirname "$0")"
CLANG="${CLANG:-clang}"
HEADERS=../../../Examples
for source in *.c; do
    name="${source%.c}"
    "$CLANG" -O2 -g -target bpf -I"$HEADERS" -DMIMIC_BPF_XDP_ACTION_MACROS -c "$source" -o "$name.o"
    echo "built $name.o"
done
