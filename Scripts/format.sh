#!/usr/bin/env bash
# Formats the package's Swift sources with the toolchain's swift-format and the repository's
# .swift-format (4-space indents, 120-character lines). `Scripts/format.sh --check` only lints.
# Left alone: generated files (*.generated.swift, rewritten by their generators) and
# Examples/, whose sources the docs quote character for character (a test checks that).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find Package.swift Sources Tests Benchmarks Fuzz -name '*.swift' ! -name '*.generated.swift' 2>/dev/null | sort)
if [ "${1:-}" = "--check" ]; then
    swift-format lint --parallel "${files[@]}"
else
    swift-format format --in-place --parallel "${files[@]}"
fi
