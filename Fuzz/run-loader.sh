#!/bin/sh
# Fuzzes OkoLoader's ELF/BTF parser with libFuzzer + AddressSanitizer.
#   Fuzz/run-loader.sh [seconds]      (default 60; exits non-zero on any crash or sanitizer report)
# Builds OkoBPF and OkoLoader with swiftc into .build/fuzz-loader, then runs the target over a
# scratch copy of the committed seed corpus Fuzz/corpus/loader/ (compiled test programs).
# Crash inputs are written to .build/fuzz-loader/crash-*.
set -eu
SECONDS_TO_RUN="${1:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/.build/fuzz-loader"
SWIFTC="${SWIFTC:-swiftc}"
FLAGS="-sanitize=fuzzer,address -parse-as-library -swift-version 6 -g -O"
mkdir -p "$OUT/corpus"

echo "building OkoBPF"
$SWIFTC $FLAGS -module-name OkoBPF -emit-library -static -emit-module \
    -emit-module-path "$OUT/OkoBPF.swiftmodule" -o "$OUT/libOkoBPF.a" \
    "$ROOT"/Sources/OkoBPF/*.swift
echo "building OkoLoader"
$SWIFTC $FLAGS -module-name OkoLoader -emit-library -static -emit-module \
    -emit-module-path "$OUT/OkoLoader.swiftmodule" -o "$OUT/libOkoLoader.a" \
    -I "$OUT" -I "$ROOT/Sources/CElf" "$ROOT"/Sources/OkoLoader/*.swift
echo "building the fuzzer"
$SWIFTC $FLAGS -module-name LoaderFuzzer -I "$OUT" -I "$ROOT/Sources/CElf" \
    "$ROOT/Fuzz/loader/LoaderFuzzer.swift" -L "$OUT" -lOkoLoader -lOkoBPF -lelf \
    -o "$OUT/loader-fuzzer"

cp "$ROOT"/Fuzz/corpus/loader/* "$OUT/corpus/"
echo "fuzzing for $SECONDS_TO_RUN s"
cd "$OUT"
./loader-fuzzer -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 corpus
