#!/usr/bin/env bash
# Fuzzes Oko's parsers of untrusted input with libFuzzer + AddressSanitizer.
#   Fuzz/run.sh [SECONDS] [TARGET...]     default: 60 seconds per target, every target
# Targets: json, flow-text (REST request bodies), loader (ELF objects and BTF-typed JSON values),
# verifier (instruction sequences; accepted ones must run without faults), openflow (controller messages:
# codec round trip and a session over a real in-memory switch agent).
# Fails (non-zero) on any crash, hang, leak or sanitizer report; the reproducer is left in Fuzz/artifacts/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json flow-text loader verifier openflow)

scratch=.build-fuzz
swift build --scratch-path "$scratch" -c debug --product oko-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld -Xswiftc -D -Xswiftc OKO_FUZZING >&2
binary="$(swift build --scratch-path "$scratch" -c debug --show-bin-path)/oko-fuzz"
mkdir -p Fuzz/artifacts
status=0
for target in "${targets[@]}"; do
    corpus=$(mktemp -d)
    cp -r "Fuzz/corpus/$target/." "$corpus/" 2>/dev/null || true
    echo "fuzzing $target for ${seconds}s" >&2
    if ! SWIFT_BACKTRACE=enable=no OKO_FUZZ_TARGET=$target "$binary" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
        -max_len=65536 -artifact_prefix="Fuzz/artifacts/$target-" -print_final_stats=1 2> "Fuzz/artifacts/$target.log"; then
        echo "fuzz target $target FAILED; see Fuzz/artifacts/$target.log" >&2
        tail -40 "Fuzz/artifacts/$target.log" >&2
        status=1
    else
        grep -E "^stat::number_of_executed_units|^Done" "Fuzz/artifacts/$target.log" | tr '\n' ' ' >&2; echo >&2
    fi
    rm -rf "$corpus"
done
exit $status
