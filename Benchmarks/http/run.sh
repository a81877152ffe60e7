#!/usr/bin/env bash
# HTTP/2 (h2c, prior knowledge) throughput: oko-http-bench vs nghttpd serving a file with the same JSON
# bytes. Each server is pinned to CPU 0 and h2load to CPU 1 (taskset). Release build.
# Usage: Benchmarks/http/run.sh [requests] [clients] [streams per client]
# Writes Benchmarks/http/results.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
REQUESTS=${1:-200000}
CLIENTS=${2:-8}
STREAMS=${3:-16}
OKO_PORT=${OKO_PORT:-18481}
NGHTTPD_PORT=${NGHTTPD_PORT:-18482}
for tool in h2load nghttpd taskset python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nghttp2-client nghttp2-server util-linux python3)" >&2; exit 1; }
done

swift build -c release --product oko-http-bench >/dev/null
BIN=$(swift build -c release --show-bin-path)/oko-http-bench

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# The same bytes oko-http-bench serves.
printf '%s' '{"status":"ok","switch":"oko","ports":4,"flows":128}' > "$WORK/bench.json"

taskset -c 0 "$BIN" "$OKO_PORT" >/dev/null 2>&1 &
PIDS+=($!)
taskset -c 0 nghttpd --no-tls -d "$WORK" "$NGHTTPD_PORT" >/dev/null 2>&1 &
PIDS+=($!)
for port in "$OKO_PORT" "$NGHTTPD_PORT"; do
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
done

# Runs h2load; prints "req/s mean_us p99_us succeeded".
measure() {
    local url=$1 log=$WORK/h2load-$RANDOM.log
    # warm-up, then the measured run
    taskset -c 1 h2load -n 5000 -c "$CLIENTS" -m "$STREAMS" "$url" >/dev/null
    taskset -c 1 h2load -n "$REQUESTS" -c "$CLIENTS" -m "$STREAMS" --log-file="$log" "$url" > "$WORK/out.txt"
    local rps ok
    rps=$(grep -oE 'finished in [^,]+, [0-9.]+ req/s' "$WORK/out.txt" | grep -oE '[0-9.]+ req/s' | cut -d' ' -f1)
    ok=$(grep -oE '[0-9]+ succeeded' "$WORK/out.txt" | cut -d' ' -f1)
    python3 - "$log" "$rps" "$ok" <<'PY'
import sys
lat = sorted(int(line.split('\t')[2]) for line in open(sys.argv[1]) if line.strip())
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(sys.argv[2], sum(lat) // len(lat), p(0.50), p(0.99), sys.argv[3])
PY
}

read -r OKO_RPS OKO_MEAN OKO_P50 OKO_P99 OKO_OK < <(measure "http://127.0.0.1:$OKO_PORT/bench.json")
read -r NG_RPS NG_MEAN NG_P50 NG_P99 NG_OK < <(measure "http://127.0.0.1:$NGHTTPD_PORT/bench.json")
RATIO=$(python3 -c "print(f'{$OKO_RPS / $NG_RPS:.2f}')")

REPORT=$(cat <<MD
# OkoHTTP benchmark (h2c, h2load)

$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r). Server on CPU 0, h2load on CPU 1 (taskset).
h2load -n $REQUESTS -c $CLIENTS -m $STREAMS (after a 5000-request warm-up); body: 52-byte JSON.
Load average when the run started: $LOAD (the machine is shared; req/s varies run to run with it).
Latency = time from request start to end of response, per request (h2load --log-file), in microseconds.

| server | req/s | mean µs | p50 µs | p99 µs | succeeded |
| --- | ---: | ---: | ---: | ---: | ---: |
| oko-http-bench (OkoHTTP, release) | $OKO_RPS | $OKO_MEAN | $OKO_P50 | $OKO_P99 | $OKO_OK |
| nghttpd --no-tls (static file) | $NG_RPS | $NG_MEAN | $NG_P50 | $NG_P99 | $NG_OK |

OkoHTTP / nghttpd requests per second: **${RATIO}x** (target >= 0.5x).
MD
)
echo "$REPORT"
echo "$REPORT" > Benchmarks/http/results.md
