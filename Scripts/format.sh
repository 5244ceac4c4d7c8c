#!/usr/bin/env bash
# Formats the package's Swift sources with the toolchain's swift-format and the repository's
# .swift-format (4-space indents, 120-character lines). `Scripts/format.sh --check` only lints.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(Package.swift Sources Tests Benchmarks Examples Fuzz)
existing=()
for path in "${paths[@]}"; do [ -e "$path" ] && existing+=("$path"); done
if [ "${1:-}" = "--check" ]; then
    swift-format lint --recursive --parallel "${existing[@]}"
else
    swift-format format --in-place --recursive --parallel "${existing[@]}"
fi
