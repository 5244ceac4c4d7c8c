#!/bin/sh
# Builds and runs one libFuzzer harness of Fuzz/ against the package's libraries.
#
#   Scripts/fuzz.sh TARGET [SECONDS] [libFuzzer options...]
#
# TARGET is a file name in Fuzz/ without .swift (elf, btf, assembler, interpreter, contexts,
# pcap); SECONDS defaults to 60. The libraries are compiled with coverage and AddressSanitizer
# (`-sanitize=fuzzer,address`) into .build-fuzz (never part of the products); the harness links
# their objects. The corpus lives in .build-fuzz/corpus/TARGET, seeded from Fuzz/seeds/TARGET and
# the repository's fixtures; crashes are written to Fuzz/crashes/TARGET/, which `swift test`
# replays (FuzzRegressionTests).
#
# MIMIC_FUZZ_RELEASE=1 builds the libraries and the harness optimised (`-c release`, `-O`, still
# with coverage and AddressSanitizer) into .build-fuzz-release: the long runs of Docs/Testing.md.
set -eu
cd "$(dirname "$0")/.."
target=${1:?usage: Scripts/fuzz.sh TARGET [SECONDS] [libFuzzer options...]}
seconds=${2:-60}
[ $# -ge 2 ] && shift 2 || shift $#
[ -f "Fuzz/$target.swift" ] || { echo "no harness Fuzz/$target.swift" >&2; exit 2; }

scratch=.build-fuzz
configuration=debug
optimisation=-Onone
if [ "${MIMIC_FUZZ_RELEASE:-0}" = 1 ]; then
    scratch=.build-fuzz-release
    configuration=release
    optimisation=-O
fi
for library in MimicLinux MimicPcap; do
    swift build -c "$configuration" --scratch-path "$scratch" --target "$library" \
        -Xswiftc -sanitize=fuzzer,address >&2
done
build=$(swift build -c "$configuration" --scratch-path "$scratch" --show-bin-path)
# The libraries' objects: MimicLinux with its dependency closure, and MimicPcap.
objects=$(find "$build/MimicMemory.build" "$build/MimicJSON.build" "$build/MimicCore.build" \
    "$build/MimicLinux.build" "$build/MimicPcap.build" "$build/CMimicAtomics.build" \
    "$build/CMimicPlugin.build" -name '*.o')
mkdir -p "$scratch/bin"
rm -f "$scratch/bin/$target"
swiftc -sanitize=fuzzer,address -parse-as-library -g "$optimisation" \
    -I "$build/Modules" \
    -Xcc -fmodule-map-file="$build/CMimicAtomics.build/module.modulemap" \
    -Xcc -fmodule-map-file="$build/CMimicPlugin.build/module.modulemap" \
    Fuzz/Support.swift "Fuzz/$target.swift" $objects -o "$scratch/bin/$target" 2>&1 \
    | grep -v 'Cannot export local symbol' >&2 || true
[ -x "$scratch/bin/$target" ] || { echo "building the $target harness failed" >&2; exit 1; }

corpus="$scratch/corpus/$target"
mkdir -p "$corpus" "Fuzz/crashes/$target"
seed() { for file in "$@"; do [ -f "$file" ] && cp "$file" "$corpus/" 2>/dev/null || true; done; }
case $target in
    elf|btf|interpreter) seed Tests/*/Fixtures/*.o Examples/*.o ;;
    assembler) seed Examples/*.s ;;
    contexts) seed Examples/contexts/*.json Examples/*.json ;;
    pcap) seed Examples/*.pcap ;;
esac
[ -d "Fuzz/seeds/$target" ] && seed Fuzz/seeds/"$target"/*
exec "$scratch/bin/$target" -max_total_time="$seconds" -artifact_prefix="Fuzz/crashes/$target/" \
    -print_final_stats=1 "$@" "$corpus"
