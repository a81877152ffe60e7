#!/bin/sh
# BPF engine benchmark: Oko interpreter + JIT vs DPDK librte_bpf (interpreter + JIT) vs the Linux
# kernel (BPF_PROG_TEST_RUN, XDP, kernel JIT), same programs, same packet, same run.
# Usage: [PASSES=3] Benchmarks/bpf/run.sh [ITERATIONS]   (from anywhere; root for the kernel column)
# Prints a table and writes Benchmarks/bpf/results.md.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ITERATIONS=${1:-2000000}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cd "$ROOT"
swift build -c release --product oko-bpf-bench >/dev/null 2>&1 || swift build -c release --product oko-bpf-bench
BIN=$(swift build -c release --show-bin-path)
gcc -O2 -o "$WORK/bench_c" "$HERE/bench_c.c" $(pkg-config --cflags --libs libdpdk) -lbpf

"$BIN/oko-bpf-bench" "$HERE/programs" "$WORK" 1 >/dev/null  # writes packet.bin and the foreign binaries
set --
for program in "$HERE"/programs/*.s; do
    name=$(basename "$program" .s)
    # librte_bpf's validator rejects backward jumps (loops); bench_c then times Oko's code alone.
    set -- "$@" "$name" "$WORK/$name.dpdk.bin" "$WORK/$name.kernel.bin"
done
# The machine is shared: alternate the harnesses PASSES times and keep each engine's best figure.
PASSES=${PASSES:-3}
: >"$WORK/oko.txt"; : >"$WORK/c.txt"
for pass in $(seq "$PASSES"); do
    "$BIN/oko-bpf-bench" "$HERE/programs" "$WORK" "$ITERATIONS" >>"$WORK/oko.txt"
    "$WORK/bench_c" "$WORK/packet.bin" "$ITERATIONS" "$@" >>"$WORK/c.txt" 2>"$WORK/c.err" || true
done

cat "$WORK/oko.txt" "$WORK/c.txt" | python3 "$HERE/report.py" "$ITERATIONS" "$(uname -r)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" >"$HERE/results.md"
cat "$HERE/results.md"
if grep -q '^ERROR' "$WORK/c.txt" "$WORK/oko.txt"; then
    echo; echo "Errors:"; grep -h '^ERROR' "$WORK/oko.txt" "$WORK/c.txt" | sort -u; head -40 "$WORK/c.err"
fi
