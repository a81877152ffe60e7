#!/usr/bin/env bash
# Management API throughput: h2load (h2c, prior knowledge) against okod's `GET /v1/bridges/br0/flows`
# (a two-rule list) and `GET /metrics`, and in the same run against nghttpd serving static files with
# the same bytes (taken from okod just before). The server under test runs on CPU 0 and h2load on
# CPU 1 (taskset). okod's poll-mode thread (DPDK lcore 1) also sits on CPU 1 and keeps polling its
# idle ports during both measurements, so both servers face the same client. Release build.
# Usage: Benchmarks/http/run.sh [requests] [clients] [streams per client]
# Writes Benchmarks/http/results.md (or $RESULTS).
set -euo pipefail
cd "$(dirname "$0")/../.."
REQUESTS=${1:-100000}
CLIENTS=${2:-8}
STREAMS=${3:-16}
RESULTS=${RESULTS:-Benchmarks/http/results.md}
NGHTTPD_PORT=${NGHTTPD_PORT:-18482}
for tool in h2load nghttpd taskset python3 curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nghttp2-client nghttp2-server util-linux python3 curl)" >&2; exit 1; }
done

swift build -c release --product okod >/dev/null
OKOD=$(swift build -c release --show-bin-path)/okod

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

printf 'admin %s bench\n' "$(python3 -c 'import secrets; print(secrets.token_hex(24))')" > "$WORK/tokens"
cat > "$WORK/okod.yaml" <<YAML
dpdk:
  eal_args: ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256"]
  mbufs: 4096
stats_interval: 0
api: {listen: "127.0.0.1:0", token_file: "$WORK/tokens"}
openflow: {listen: "127.0.0.1:0"}
bridges:
  - name: br0
    ports:
      - devargs: "net_null0,no-rx=1"
      - devargs: "net_null1,no-rx=1"
    flows:
      - "priority=10,in_port=1,actions=output:2"
      - "priority=10,in_port=2,actions=output:1"
YAML
# EAL pins the main thread (and so the API's event loop) to lcore 0 = CPU 0, the PMD to CPU 1.
"$OKOD" --config "$WORK/okod.yaml" > "$WORK/okod.log" 2>&1 &
OKOD_PID=$!
PIDS+=($OKOD_PID)
OKO_PORT=
for _ in $(seq 300); do
    OKO_PORT=$(grep -o 'management API listening on 127.0.0.1:[0-9]*' "$WORK/okod.log" | grep -o '[0-9]*$' || true)
    [ -n "$OKO_PORT" ] && break
    sleep 0.1
done
[ -n "$OKO_PORT" ] || { echo "okod did not start:" >&2; cat "$WORK/okod.log" >&2; exit 1; }

# nghttpd serves the very bytes okod answers (the metrics file is the size of one scrape).
mkdir -p "$WORK/www/v1/bridges/br0"
curl -sS -f --http2-prior-knowledge -o "$WORK/www/v1/bridges/br0/flows" "http://127.0.0.1:$OKO_PORT/v1/bridges/br0/flows"
curl -sS -f --http2-prior-knowledge -o "$WORK/www/metrics" "http://127.0.0.1:$OKO_PORT/metrics"
FLOWS_BYTES=$(stat -c %s "$WORK/www/v1/bridges/br0/flows")
METRICS_BYTES=$(stat -c %s "$WORK/www/metrics")
taskset -c 0 nghttpd --no-tls -d "$WORK/www" "$NGHTTPD_PORT" >/dev/null 2>&1 &
NGHTTPD_PID=$!
PIDS+=($NGHTTPD_PID)
# okod's NIO event-loop threads pinned to CPU 0 (the EAL main thread's affinity, inherited): which
# loop serves a connection is NIO's choice, so the API's CPU time is summed over all of them.
OKO_STAT=
for t in /proc/$OKOD_PID/task/*; do
    if grep -q '^NIO-ELT' "$t/comm" && [ "$(awk '/Cpus_allowed_list/ {print $2}' "$t/status")" = 0 ]; then
        OKO_STAT="$OKO_STAT $t/stat"
    fi
done
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$NGHTTPD_PORT") 2>/dev/null && break
    sleep 0.1
done

# CPU time (utime + stime, clock ticks) of a /proc/.../stat file.
# (summed over the files given, one per thread).
ticks() { local f; for f in "$@"; do cat "$f" 2>/dev/null || true; done | awk '{s += $14 + $15} END {print s + 0}'; }

# Runs h2load; prints "req/s mean_us p50_us p99_us succeeded server_cpu_us_per_request" (the server's CPU
# time during the run divided by the requests: what each request costs, whatever share of CPU 0 the
# server got from the other processes on this shared machine).
measure() {
    local url=$1 stat=$2 log=$WORK/h2load-$RANDOM.log
    taskset -c 1 h2load -n 5000 -c "$CLIENTS" -m "$STREAMS" "$url" >/dev/null   # warm-up
    local before after
    before=$(ticks $stat)
    taskset -c 1 h2load -n "$REQUESTS" -c "$CLIENTS" -m "$STREAMS" --log-file="$log" "$url" > "$WORK/out.txt"
    after=$(ticks $stat)
    local rps ok
    rps=$(grep -oE 'finished in [^,]+, [0-9.]+ req/s' "$WORK/out.txt" | grep -oE '[0-9.]+ req/s' | cut -d' ' -f1)
    ok=$(grep -oE '[0-9]+ succeeded' "$WORK/out.txt" | cut -d' ' -f1)
    python3 - "$log" "$rps" "$ok" "$((after - before))" "$(getconf CLK_TCK)" "$REQUESTS" <<'PY'
import sys
lat = sorted(int(line.split('\t')[2]) for line in open(sys.argv[1]) if line.strip())
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
cpu_us = int(sys.argv[4]) / int(sys.argv[5]) * 1e6 / int(sys.argv[6])
print(sys.argv[2], sum(lat) // len(lat), p(0.50), p(0.99), sys.argv[3], f"{cpu_us:.1f}")
PY
}

# okod's API threads: the EAL main thread's affinity (CPU 0) is inherited by NIO's event loop.
NG_STAT=/proc/$NGHTTPD_PID/stat
read -r OF_RPS OF_MEAN OF_P50 OF_P99 OF_OK OF_CPU < <(measure "http://127.0.0.1:$OKO_PORT/v1/bridges/br0/flows" "$OKO_STAT")
read -r NF_RPS NF_MEAN NF_P50 NF_P99 NF_OK NF_CPU < <(measure "http://127.0.0.1:$NGHTTPD_PORT/v1/bridges/br0/flows" "$NG_STAT")
read -r OM_RPS OM_MEAN OM_P50 OM_P99 OM_OK OM_CPU < <(measure "http://127.0.0.1:$OKO_PORT/metrics" "$OKO_STAT")
read -r NM_RPS NM_MEAN NM_P50 NM_P99 NM_OK NM_CPU < <(measure "http://127.0.0.1:$NGHTTPD_PORT/metrics" "$NG_STAT")
RATIO_F=$(python3 -c "print(f'{$OF_RPS / $NF_RPS:.2f}')")
RATIO_M=$(python3 -c "print(f'{$OM_RPS / $NM_RPS:.2f}')")
CPU_RATIO_F=$(python3 -c "print(f'{$NF_CPU / max($OF_CPU, 0.1):.2f}')")
CPU_RATIO_M=$(python3 -c "print(f'{$NM_CPU / max($OM_CPU, 0.1):.2f}')")
API_CPUS=$(for t in /proc/$OKOD_PID/task/*; do
    grep -h Cpus_allowed_list "$t/status" | awk '{print $2}'; done | sort | uniq -c | tr '\n' ';' | tr -s ' ')

REPORT=$(cat <<MD
# Management API benchmark (h2c, h2load)

$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r). Servers on CPU 0, h2load on CPU 1 (taskset); okod's
poll-mode thread also runs on CPU 1 (DPDK lcore 1) during every measurement, so both servers face the same
client. okod: release build, DPDK ports net_null x2, two rules. nghttpd serves files with the bytes okod
answered just before (flows: $FLOWS_BYTES bytes, metrics: $METRICS_BYTES bytes).
h2load -n $REQUESTS -c $CLIENTS -m $STREAMS after a 5000-request warm-up; no token (reads on loopback are open).
Load average when the run started: $LOAD -- the machine is shared with other engineers' builds, so
absolute figures move run to run; the ratios compare servers measured minutes apart in the same run.
Latency = time from request start to end of response per request (h2load --log-file), microseconds.
CPU affinity of okod's threads (count, CPUs): $API_CPUS

| server, resource | req/s | mean µs | p50 µs | p99 µs | succeeded | server CPU µs/request |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| okod GET /v1/bridges/br0/flows | $OF_RPS | $OF_MEAN | $OF_P50 | $OF_P99 | $OF_OK | $OF_CPU |
| nghttpd, same bytes | $NF_RPS | $NF_MEAN | $NF_P50 | $NF_P99 | $NF_OK | $NF_CPU |
| okod GET /metrics | $OM_RPS | $OM_MEAN | $OM_P50 | $OM_P99 | $OM_OK | $OM_CPU |
| nghttpd, same bytes | $NM_RPS | $NM_MEAN | $NM_P50 | $NM_P99 | $NM_OK | $NM_CPU |

okod / nghttpd requests per second: flows **${RATIO_F}x**, metrics **${RATIO_M}x** (target >= 0.5x).
By CPU cost per request (nghttpd / okod; less sensitive to the machine's load): flows **${CPU_RATIO_F}x**,
metrics **${CPU_RATIO_M}x**. Server CPU = utime + stime of okod's event-loop threads on CPU 0, or of the nghttpd
process, during the measured run (clock-tick resolution, 10 ms).
MD
)
NOTES=$(cat <<'MD'

## Where okod's time goes (perf, release build)

Per request on the API event loop: /healthz about 4.5-5.5 µs (the HTTP layer: NIO, nghttp2, the task
okod's PersistingHandler needs, routing), the two-rule flow list 8.3-9.9 µs, a scrape 12.7-15.3 µs
(before this work 14.4 and 30.2 µs). What was changed: the flow list is written straight into one byte
buffer from the datapath's rules, each rule's definition (match, actions, instructions, ovs-ofctl text)
rendered once as JSON fragments and reused while the rule is unchanged, the id, origin and live counters
spliced in per request (no JSONValue tree, no intermediate arrays); `/metrics` is written directly with
prebuilt family headers, one label set per port reused by its eight families, rule counters read without
rendering rule specs, the buffer reserved from the last scrape's size; the request path is decoded once
and routing and query lookup work on bytes; the HTTP/2 output buffer is reused across flushes (malloc
was trimming and regrowing its arena on every ~100 KB flush); handlers that answer synchronously
(`ManagementAPI`) skip the per-request task. Counters stay current: nothing is cached across requests
except rule definitions (keyed by the rule's full definition) and text headers.
What remains: okod wraps the API in its PersistingHandler, which only has the async `handle`, so every
request still pays a Swift task and a path split there (about 10% of a request); `Bridge.flows()` copies
and sorts every rule per request (5-10%); NIO and nghttp2 themselves. (Since then okod's
PersistingHandler answers reads on the API's synchronous fast path.)
MD
)
echo "$REPORT"
printf '%s\n%s\n' "$REPORT" "$NOTES" > "$RESULTS"
