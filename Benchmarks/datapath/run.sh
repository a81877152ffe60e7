#!/usr/bin/env bash
# Datapath benchmark: okod against dpdk-testpmd (the machine's ceiling) and Open vSwitch 3.1 with DPDK, in
# one run, on the same input: 64-byte UDP frames replayed by net_pcap (infinite_rx=1) into port 1, net_null
# (no-rx=1) as the sink on port 2, one poll-mode core (lcore 1; lcore 0 runs okod's control plane).
#
#   sudo Benchmarks/datapath/run.sh [CASE...]        CASE: a b c d e (default: all)
#
# Cases (issue #5):
#   a  in_port=1,actions=output:2, 1 flow
#   b  in_port=1,udp,actions=output:2, 10,000 flows (exercises the caches)
#   c  1,000 rules on distinct nw_dst /32 plus a default drop, 10,000 flows
#   d  a with a filter program (compiled here by clang) that updates a hash map per packet, loaded through
#      the REST API: priority=10,in_port=1,filter_prog=1,actions=output:2
#   e  c while a client applies RATE rule changes per second (alternately adds and deletes a priority-20 /32
#      rule on a destination of the traffic) through OpenFlow (default) or the REST API (CHURN=rest)
#
# Environment knobs:
#   DUR=10      measurement window per run (s)        WARM=3   warm-up before the window (s)
#   REPS=3      runs per case; the median is reported  RATE=1000 rule changes per second in (e)
#   CHURN=openflow  how (e) changes rules: openflow (pipelined flow-mods on one connection, then a barrier)
#               or rest (POST/DELETE on one keep-alive HTTP/1.1 connection, each waiting for its answer)
#   PEER=1      also run dpdk-testpmd io and OVS-DPDK (Benchmarks/datapath/ovs-peer.sh) in the same run
#   INTERLEAVE=1  peers and okod alternate rep by rep, so slow drift of a shared host hits both alike
#   OKOD=path   use this okod binary instead of building one (swift build -c release)
#   PERF=0      1 = `perf stat` the poll-mode core during each okod window (output in the work directory)
#   KEEP=0      1 = keep the work directory (/tmp/oko-bench.*: configs, logs, raw TSV)
#
# Figures: Mpps = delta of port 2's tx packets over the window (REST /metrics); cycles/packet = PMD busy
# time over the window (ns, from okod's PMD counters) x TSC GHz / packets the PMD processed. On a loaded
# machine compare ratios measured in the same run, not absolute figures.
#
# Writes Benchmarks/datapath/results.md (table + raw runs) and prints the table.
set -uo pipefail
export LC_ALL=C
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
DUR=${DUR:-10} WARM=${WARM:-3} REPS=${REPS:-3} PEER=${PEER:-1} RATE=${RATE:-1000} INTERLEAVE=${INTERLEAVE:-1}
PERF=${PERF:-0} KEEP=${KEEP:-0} CHURN=${CHURN:-openflow}
CASES=${*:-a b c d e}
PY=/usr/bin/python3
work=$(mktemp -d /tmp/oko-bench.XXXXXX)
results=Benchmarks/datapath/results.md
raw=$work/runs.tsv
: > "$raw"
T_START=$(date +%s)
OKOD_PID= CHURN_PID=

log() { printf '[bench %4ds] %s\n' $(( $(date +%s) - T_START )) "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
stop_pid() {   # TERM one pid we started, then KILL it if it lingers
    local p=$1 i
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
    kill -TERM "$p" 2>/dev/null
    for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
}
cleanup() {
    stop_pid "$CHURN_PID"; stop_pid "$OKOD_PID"
    if [ "$KEEP" = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "must run as root (DPDK, hugepages, OVS)"
for tool in clang curl "$PY"; do command -v "$tool" > /dev/null || die "missing $tool"; done
for c in $CASES; do case $c in a|b|c|d|e) ;; *) die "unknown case '$c' (a b c d e)";; esac; done

if [ -n "${OKOD:-}" ]; then
    okod=$OKOD
else
    log "building okod (release)"
    swift build -c release --product okod >&2 || die "swift build failed"
    okod="$(swift build -c release --show-bin-path)/okod"
fi
[ -x "$okod" ] || die "no okod at $okod"
tsc_ghz=$(awk -F': ' '/^cpu MHz/{printf "%.3f", $2 / 1000; exit}' /proc/cpuinfo)

# ---------------------------------------------------------------- inputs
# The same traffic as the peer script: flow i has dst 198.19.0.0 + (i % 1000), sport 1024 + i / 1000.
$PY - "$work" <<'PY' || die "pcap generation failed"
import struct, sys
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def frame(i):
    d, sp = i % 1000, 1024 + i // 1000
    src, dst = (198 << 24) | (18 << 16) | 1, (198 << 24) | (19 << 16) | d
    udp = struct.pack("!HHHH", sp, 5001, 8 + 18, 0) + bytes(18)
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + udp
def write(path, n):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            fr = frame(i); f.write(struct.pack("<IIII", 0, 0, len(fr), len(fr)) + fr)
write(sys.argv[1] + "/n1.pcap", 1); write(sys.argv[1] + "/n10k.pcap", 10000)
PY

printf 'priority=10,in_port=1,actions=output:2\n' > "$work/of_a.txt"
printf 'priority=10,in_port=1,udp,actions=output:2\n' > "$work/of_b.txt"
{ for i in $(seq 0 999); do echo "priority=10,ip,nw_dst=198.19.$((i/256)).$((i%256)),actions=output:2"; done
  echo "priority=0,actions=drop"; } > "$work/of_c.txt"
: > "$work/of_none.txt"

# (d): count packets per destination address in a hash map (lookup + atomic add; insert on a miss).
cat > "$work/count.c" <<'C'
#include "oko.h"
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, __be32);
    __type(value, __u64);
} packets SEC(".maps");

OKO_PROGRAM(count_destinations) {
    if (len < OKO_ETH_HLEN + sizeof(struct oko_ipv4)) return 1;
    struct oko_ipv4 *ip = pkt + OKO_ETH_HLEN;
    __be32 destination = ip->destination;
    __u64 *count = bpf_map_lookup_elem(&packets, &destination);
    if (count) {
        __sync_fetch_and_add(count, 1);
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&packets, &destination, &one, BPF_ANY);
    }
    return 1;
}
char LICENSE[] SEC("license") = "Dual BSD/GPL";
C
if [[ " $CASES " == *" d "* ]]; then
    clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -I"$root/examples/bpf" -c "$work/count.c" -o "$work/count.o" \
        || die "clang could not build the (d) filter program"
fi

# (e): rule churn over one keep-alive HTTP/1.1 connection, paced to RATE changes/s; prints the achieved rate.
cat > "$work/churn.py" <<'PY'
import http.client, sys, time, signal
port, token, rate, out = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
rule = "priority=20,ip,nw_dst=198.19.0.7,actions=output:2"
delete = "/v1/bridges/br0/flows?strict=true&priority=20&eth_type=0x0800&ipv4_dst=198.19.0.7"
headers = {"Authorization": "Bearer " + token}
stop = False
def handler(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, handler)
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
done = errors = 0
start = time.monotonic()
while not stop:
    due = start + done / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
        continue
    try:
        if done % 2 == 0:
            conn.request("POST", "/v1/bridges/br0/flows", body=rule, headers=dict(headers, **{"Content-Type": "text/plain"}))
        else:
            conn.request("DELETE", delete, headers=headers)
        r = conn.getresponse(); r.read()
        if r.status >= 300: errors += 1
    except Exception:
        errors += 1
        conn.close(); conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    done += 1
elapsed = time.monotonic() - start
with open(out, "w") as f:
    f.write("%.0f %d %d\n" % (done / elapsed if elapsed > 0 else 0, done, errors))
PY

# (e) over OpenFlow 1.3: flow-mods are asynchronous, so one connection can carry RATE changes/s without
# waiting for each; a barrier at the end makes the reported rate the rate okod actually applied them at.
cat > "$work/churn_of.py" <<'PY'
import socket, struct, sys, time, signal, threading
port, rate, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def msg(t, body, xid=0): return struct.pack("!BBHI", 4, t, 8 + len(body), xid) + body
oxm = struct.pack("!IH", 0x80000A02, 0x0800) + struct.pack("!I", 0x80001804) + bytes([198, 19, 0, 7])
match = struct.pack("!HH", 1, 4 + len(oxm)) + oxm
match += bytes((8 - len(match) % 8) % 8)
output = struct.pack("!HHIH6x", 0, 16, 2, 0xFFFF)
apply = struct.pack("!HH4x", 4, 8 + len(output)) + output
def flow_mod(command):
    head = struct.pack("!QQBBHHHIIIH2x", 0, 0, 0, command, 0, 0, 20, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return msg(14, head + match + (apply if command == 0 else b""))
add, delete = flow_mod(0), flow_mod(4)   # OFPFC_ADD, OFPFC_DELETE_STRICT
errors = 0; barrier = threading.Event()
def reader():
    global errors
    buf = b""
    while True:
        try: data = s.recv(65536)
        except OSError: return
        if not data: return
        buf += data
        while len(buf) >= 8:
            v, t, n, xid = struct.unpack("!BBHI", buf[:8])
            if len(buf) < n: break
            body, buf = buf[8:n], buf[n:]
            if t == 1: errors += 1
            elif t == 2: s.sendall(msg(3, body, xid))
            elif t == 21: barrier.set()
s.sendall(msg(0, b""))
threading.Thread(target=reader, daemon=True).start()
stop = False
def handler(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, handler)
done = 0; start = time.monotonic()
while not stop:
    due = start + done / rate; now = time.monotonic()
    if due > now: time.sleep(min(due - now, 0.01)); continue
    s.sendall(add if done % 2 == 0 else delete); done += 1
s.sendall(msg(20, b"", 7)); barrier.wait(10)
elapsed = time.monotonic() - start
with open(out, "w") as f:
    f.write("%.0f %d %d\n" % (done / elapsed if elapsed > 0 else 0, done, errors))
PY

# ---------------------------------------------------------------- okod runs
metric() {   # metric FILE NAME [LABEL_SUBSTRING] -> sum of the samples
    awk -v n="$2" -v l="${3:-}" '$1 ~ "^"n"({|$)" && index($1, l) {s += $NF} END {printf "%.0f", s}' "$1"
}
pmd_tid() {   # pmd_tid PID: the poll-mode thread (DPDK names worker lcore threads lcore-worker-N)
    local t
    for t in /proc/$1/task/*; do
        grep -q -E '^(rte|lcore)-worker' "$t/comm" 2>/dev/null && { basename "$t"; return; }
    done
}
sample() {   # sample PORT OUTFILE [TID]: timestamp, on-CPU ns of the PMD thread (schedstat), /metrics
    date +%s.%N > "$2"
    local cpu=0
    [ -n "${3:-}" ] && cpu=$(awk '{print $1}' "/proc/$OKOD_PID/task/$3/schedstat" 2>/dev/null)
    echo "pmd_oncpu_ns ${cpu:-0}" >> "$2"
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" >> "$2"
}

run_okod() {   # run_okod CASE REP
    local c=$1 rep=$2 pcap flows
    case $c in
        a) pcap=n1.pcap;   flows=of_a.txt;;
        b) pcap=n10k.pcap; flows=of_b.txt;;
        c) pcap=n10k.pcap; flows=of_c.txt;;
        d) pcap=n1.pcap;   flows=of_none.txt;;
        e) pcap=n10k.pcap; flows=of_c.txt;;
    esac
    local dir=$work/okod-$c-$rep
    mkdir -p "$dir"
    {
        echo 'dpdk: {eal_args: ["-l", "0-1", "--no-pci"], mbufs: 32768}'
        echo "stats_interval: 0"
        echo "log_level: info"
        echo "api: {listen: \"127.0.0.1:0\", token_file: \"$dir/tokens\"}"
        echo "openflow: {listen: \"127.0.0.1:0\"}"
        echo "bridges:"
        echo "  - name: br0"
        echo "    ports:"
        echo "      - devargs: \"net_pcap0,rx_pcap=$work/$pcap,infinite_rx=1\""
        echo "      - devargs: \"net_null0,no-rx=1\""
        if [ -s "$work/$flows" ]; then
            echo "    flows:"
            sed 's/.*/      - "&"/' "$work/$flows"
        fi
    } > "$dir/okod.yaml"
    "$okod" --config "$dir/okod.yaml" > "$dir/okod.log" 2>&1 &
    OKOD_PID=$!
    local i port=
    for i in $(seq 1 300); do
        grep -q "okod ready" "$dir/okod.log" 2>/dev/null && break
        kill -0 $OKOD_PID 2>/dev/null || break
        sleep 0.1
    done
    port=$(sed -n 's/.*management API listening on .*:\([0-9]*\)$/\1/p' "$dir/okod.log" | head -1)
    if [ -z "$port" ] || ! grep -q "okod ready" "$dir/okod.log"; then
        log "okod $c rep $rep did not start: $(tail -3 "$dir/okod.log" | tr '\n' ' ')"
        stop_pid $OKOD_PID; OKOD_PID=
        printf '%s\t%s\t%s\t%s\n' "$c" 0 n/a "okod failed" >> "$raw"
        return
    fi
    local token api=http://127.0.0.1:$port/v1/bridges/br0
    token=$(awk '/^admin/ {print $2; exit}' "$dir/tokens")
    if [ "$c" = d ]; then
        local st
        st=$(curl -s -o "$dir/prog.json" -w '%{http_code}' -X PUT -H "Authorization: Bearer $token" \
            -H 'Content-Type: application/octet-stream' --data-binary "@$work/count.o" "$api/programs/1")
        [ "$st" = 201 ] || log "okod d: program load answered $st: $(head -c 300 "$dir/prog.json")"
        st=$(curl -s -o "$dir/flow.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $token" \
            -H 'Content-Type: text/plain' --data 'priority=10,in_port=1,filter_prog=1,actions=output:2' "$api/flows")
        [ "$st" = 201 ] || log "okod d: rule answered $st: $(head -c 300 "$dir/flow.json")"
    fi
    sleep "$WARM"
    if [ "$c" = e ]; then
        if [ "$CHURN" = rest ]; then
            taskset -c 0 $PY "$work/churn.py" "$port" "$token" "$RATE" "$dir/churn.txt" &
        else
            local ofport
            ofport=$(sed -n 's/.*OpenFlow 1.3 listening on .*:\([0-9]*\) for bridge.*/\1/p' "$dir/okod.log" | head -1)
            taskset -c 0 $PY "$work/churn_of.py" "$ofport" "$RATE" "$dir/churn.txt" &
        fi
        CHURN_PID=$!
        sleep 1
    fi
    local perf_pid=
    if [ "$PERF" = 1 ] && command -v perf > /dev/null; then
        perf stat -C 1 -e cycles,instructions,cache-misses,branch-misses -o "$dir/perf-stat.txt" -- sleep "$DUR" &
        perf_pid=$!
    fi
    local tid
    tid=$(pmd_tid $OKOD_PID)
    sample "$port" "$dir/m0" "$tid"
    sleep "$DUR"
    sample "$port" "$dir/m1" "$tid"
    [ -n "$perf_pid" ] && wait "$perf_pid"
    local extra=""
    if [ -n "$CHURN_PID" ]; then
        stop_pid "$CHURN_PID"; wait "$CHURN_PID" 2>/dev/null; CHURN_PID=
        local achieved errors
        read -r achieved _ errors < "$dir/churn.txt" || achieved=0
        extra="churn ${achieved}/s (${errors:-?} errors); "
    fi
    if [ "$c" = d ]; then
        extra="program runs $(( $(metric "$dir/m1" oko_program_runs_total) - $(metric "$dir/m0" oko_program_runs_total) )); "
    fi
    curl -s "$api/flows?limit=3" > "$dir/flows.json" 2>/dev/null
    stop_pid $OKOD_PID; wait $OKOD_PID 2>/dev/null; OKOD_PID=
    local t0 t1
    t0=$(head -1 "$dir/m0"); t1=$(head -1 "$dir/m1")
    local tx0 tx1 busy0 busy1 pk0 pk1 emc0 emc1 mf0 mf1 up0 up1
    tx0=$(metric "$dir/m0" oko_port_tx_packets_total 'port="2"'); tx1=$(metric "$dir/m1" oko_port_tx_packets_total 'port="2"')
    busy0=$(metric "$dir/m0" oko_pmd_busy_seconds_total); busy1=$(metric "$dir/m1" oko_pmd_busy_seconds_total)
    pk0=$(metric "$dir/m0" oko_pmd_packets_total); pk1=$(metric "$dir/m1" oko_pmd_packets_total)
    emc0=$(metric "$dir/m0" oko_pmd_emc_hits_total); emc1=$(metric "$dir/m1" oko_pmd_emc_hits_total)
    mf0=$(metric "$dir/m0" oko_pmd_megaflow_hits_total); mf1=$(metric "$dir/m1" oko_pmd_megaflow_hits_total)
    up0=$(metric "$dir/m0" oko_pmd_upcalls_total); up1=$(metric "$dir/m1" oko_pmd_upcalls_total)
    local cpu0 cpu1 ccpp
    cpu0=$(metric "$dir/m0" pmd_oncpu_ns); cpu1=$(metric "$dir/m1" pmd_oncpu_ns)
    ccpp=$(awk -v a="$cpu0" -v b="$cpu1" -v p="$pk0" -v q="$pk1" -v g="$tsc_ghz" \
        'BEGIN {if (q > p && b > a) printf "%.0f", (b - a) * g / (q - p); else print "n/a"}')
    local mpps cpp mix
    mpps=$(awk -v a="$tx0" -v b="$tx1" -v s="$t0" -v e="$t1" 'BEGIN {printf "%.3f", (b - a) / (e - s) / 1e6}')
    cpp=$(awk -v a="$busy0" -v b="$busy1" -v p="$pk0" -v q="$pk1" -v g="$tsc_ghz" \
        'BEGIN {if (q > p) printf "%.0f", (b - a) * 1e9 * g / (q - p); else print "n/a"}')
    mix=$(awk -v p="$pk0" -v q="$pk1" -v e0="$emc0" -v e1="$emc1" -v m0="$mf0" -v m1="$mf1" -v u0="$up0" -v u1="$up1" \
        'BEGIN {n = q - p; if (n <= 0) n = 1; printf "emc %.0f%% megaflow %.0f%% upcalls %d", 100 * (e1 - e0) / n, 100 * (m1 - m0) / n, u1 - u0}')
    log "okod $c rep $rep: $mpps Mpps, $cpp cycles/pkt (busy), $ccpp on-CPU cycles/pkt; $extra$mix"
    printf '%s\t%s\t%s\t%s\t%s\n' "$c" "$mpps" "$cpp" "$extra$mix" "$ccpp" >> "$raw"
}

# ---------------------------------------------------------------- peers
peer_tsv=$work/peer.tsv
: > "$peer_tsv"
run_peer() {   # run_peer REPS
    local ovs_cases="" tp_cases="" c
    for c in $CASES; do
        case $c in a|d) ovs_cases+=" a"; tp_cases+=" io-n1";; b) ovs_cases+=" b2"; tp_cases+=" io-n10k";;
                   c|e) ovs_cases+=" c"; tp_cases+=" io-n10k";; esac
    done
    ovs_cases=$(echo $ovs_cases | tr ' ' '\n' | sort -u | tr '\n' ' ')
    tp_cases=$(echo $tp_cases | tr ' ' '\n' | sort -u | tr '\n' ' ')
    log "peers: testpmd [$tp_cases] OVS-DPDK [$ovs_cases], $1 rep(s)"
    OVSBENCH_DIR=$work/peer DUR=$DUR WARM=$WARM REPS=$1 OVS_CASES="$ovs_cases" TP_CASES="$tp_cases" \
        bash "$root/Benchmarks/datapath/ovs-peer.sh" > "$work/peer.out" 2> "$work/peer.log" \
        || log "peer script failed: $(tail -3 "$work/peer.log" | tr '\n' ' ')"
    cat "$work/peer/results.tsv" >> "$peer_tsv" 2>/dev/null
    grep -E '^\[.*(testpmd|ovs) .* rep ' "$work/peer.log" | sed 's/^/  /' >&2
}

if [ "$PEER" = 1 ]; then
    command -v dpdk-testpmd > /dev/null || die "dpdk-testpmd missing: apt-get install dpdk-dev (PEER=0 skips the peers)"
    [ -x /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk ] || die "OVS-DPDK missing: apt-get install openvswitch-switch-dpdk"
fi
for rep in $(seq 1 "$REPS"); do
    if [ "$PEER" = 1 ] && [ "$INTERLEAVE" = 1 ]; then run_peer 1; fi
    for c in $CASES; do run_okod "$c" "$rep"; done
done
if [ "$PEER" = 1 ] && [ "$INTERLEAVE" != 1 ]; then run_peer "$REPS"; fi

# ---------------------------------------------------------------- report
median() { grep -v -e '^$' -e 'n/a' | sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "n/a"; else printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { awk -F'\t' -v c="$2" -v k="$3" '$1 == c {print $k}' "$1"; }
okod_mpps() { col "$raw" "$1" 2 | median; }
okod_cpp() { col "$raw" "$1" 3 | median | awk '{printf ($1 == "n/a") ? "n/a" : "%.0f", $1}'; }
okod_ccpp() { col "$raw" "$1" 5 | median | awk '{printf ($1 == "n/a") ? "n/a" : "%.0f", $1}'; }
okod_notes() { col "$raw" "$1" 4 | tail -1; }
churn_rate() { col "$raw" e 4 | sed -n 's/.*churn \([0-9]*\)\/s.*/\1/p' | median | awk '{printf ($1 == "n/a") ? "n/a" : "%.0f", $1}'; }
peer_mpps() { col "$peer_tsv" "$1" 2 | median; }
peer_cpp() { col "$peer_tsv" "$1" 3 | median | awk '{printf ($1 == "n/a") ? "n/a" : "%.0f", $1}'; }
peer_ccpp() { col "$peer_tsv" "$1" 5 | median | awk '{printf ($1 == "n/a") ? "n/a" : "%.0f", $1}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b}'; }
verdict() { awk -v r="$1" -v t="$2" -v op="$3" 'BEGIN {if (r == "n/a") print "n/a"; else if (op == ">=") print (r + 0 >= t) ? "yes" : "NO"; else print (r + 0 <= t) ? "yes" : "NO"}'; }
describe() { case $1 in
    a) echo "(a) in_port=1 -> 2, 1 flow";;
    b) echo "(b) in_port=1,udp -> 2, 10k flows";;
    c) echo "(c) 1,000 nw_dst /32 + default, 10k flows";;
    d) echo "(d) (a) + filter program updating a hash map";;
    e) echo "(e) (c) + ${RATE} rule changes/s ($CHURN)";; esac; }
peer_of() { case $1 in a) echo a-1rule-n1;; b) echo b2-udprule-n10k;; c) echo c-1000rules-n10k;; esac; }
tp_of() { case $1 in a|d) echo tp-io-n1;; *) echo tp-io-n10k;; esac; }

table=$work/table.md
{
    echo "| case | okod Mpps | okod cycles/pkt on-CPU (busy) | OVS-DPDK Mpps | OVS cycles/pkt on-CPU (pmd-stats) | testpmd io Mpps (on-CPU cyc/pkt) | measure | CPU-cost ratio | target | met (Mpps) |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for c in $CASES; do
        m=$(okod_mpps "$c"); cy="$(okod_ccpp "$c") ($(okod_cpp "$c"))"
        tp=$([ "$PEER" = 1 ] && echo "$(peer_mpps "$(tp_of "$c")") ($(peer_ccpp "$(tp_of "$c")"))" || echo n/a)
        occ=$(okod_ccpp "$c")
        case $c in
            a|b|c)
                p=$(peer_of "$c"); om=$([ "$PEER" = 1 ] && peer_mpps "$p" || echo n/a)
                occ_ovs=$([ "$PEER" = 1 ] && peer_ccpp "$p" || echo n/a)
                oc=$([ "$PEER" = 1 ] && echo "$occ_ovs ($(peer_cpp "$p"))" || echo n/a)
                r=$(ratio "$m" "$om"); t=$([ "$c" = c ] && echo 2.0 || echo 1.2)
                cr=$(ratio "$occ_ovs" "$occ")
                echo "| $(describe "$c") | $m | $cy | $om | $oc | $tp | ${r}x OVS | ${cr}x | >= ${t}x | $(verdict "$r" "$t" '>=') |";;
            d|e)
                base=$([ "$c" = d ] && echo a || echo c); bm=$(okod_mpps "$base")
                loss=$(awk -v a="$m" -v b="$bm" 'BEGIN {if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.1f", 100 * (1 - a / b)}')
                t=$([ "$c" = d ] && echo 15 || echo 5)
                bc=$(okod_ccpp "$base")
                closs=$(awk -v a="$occ" -v b="$bc" 'BEGIN {if (a == "n/a" || b == "n/a" || a + 0 == 0) print "n/a"; else printf "%.1f%% loss", 100 * (1 - b / a)}')
                echo "| $(describe "$c") | $m | $cy | - | - | $tp | ${loss}% loss vs ($base) | $closs | <= ${t}% | $(verdict "$loss" "$t" '<=') |";;
        esac
    done
} > "$table"

{
    echo "# Datapath benchmark"
    echo
    echo "$(date -u +%FT%TZ), $(hostname), $(getconf _NPROCESSORS_ONLN) vCPU $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
    echo "(TSC ${tsc_ghz} GHz), kernel $(uname -r), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "64-byte UDP frames (60 B + FCS), net_pcap infinite_rx -> net_null no-rx, one poll-mode core (cpu 1);"
    echo "median of $REPS runs of ${DUR}s after ${WARM}s warm-up; peers $([ "$INTERLEAVE" = 1 ] && echo "interleaved rep by rep with okod" || echo "after okod")."
    echo "Mpps: port 2 transmit rate. okod cycles/pkt: on-CPU time of the poll-mode thread (schedstat) x TSC GHz /"
    echo "packets, which a loaded host does not inflate; in brackets its busy time (wall clock while it had packets)."
    echo "OVS and testpmd cycles/pkt: the same on-CPU measure of their forwarding thread; in brackets OVS's pmd-stats"
    echo "(TSC cycles while busy). CPU-cost ratio: OVS on-CPU cycles / okod on-CPU cycles, i.e. the Mpps ratio if each had"
    echo "a whole core (for (d)/(e): the loss that cost implies). The verdict uses the measured Mpps, as the issue asks."
    echo "Peers: \`dpdk-testpmd\` io forwarding (the ceiling here) and OVS 3.1 DPDK (Benchmarks/datapath/ovs-peer.sh);"
    echo "OVS (a) is its simple-match path, OVS (b) is \`in_port=1,udp\` with 10k flows (EMC overflow)."
    echo
    cat "$table"
    echo
    if [[ " $CASES " == *" e "* ]]; then
        echo "(e): rule changes applied at a median $(churn_rate)/s of the $RATE/s asked for ($CHURN)."
        echo
    fi
    echo "Cache paths in the last okod run of each case:"
    echo
    for c in $CASES; do echo "- ($c) $(okod_notes "$c")"; done
    echo
    echo "Raw runs (case, Mpps, busy cycles/pkt, notes, on-CPU cycles/pkt; peers: case, Mpps, cycles/pkt, path mix):"
    echo
    echo '```'
    sed 's/\t/  /g' "$raw"
    [ "$PEER" = 1 ] && sed 's/\t/  /g' "$peer_tsv"
    echo '```'
    echo
    echo "Command: \`DUR=$DUR WARM=$WARM REPS=$REPS RATE=$RATE PEER=$PEER Benchmarks/datapath/run.sh $CASES\`; total $(( $(date +%s) - T_START )) s."
} > "$results"
echo
cat "$table"
log "wrote $results"
