#!/usr/bin/env bash
# Datapath benchmark: okod against dpdk-testpmd (the machine's ceiling) and Open vSwitch 3.1 with DPDK,
# in one run, on the same input: 64-byte UDP frames replayed by net_pcap (infinite_rx=1) into port 1,
# net_null (no-rx=1) as the sink on port 2, one poll-mode core.
#
#   Benchmarks/datapath/run.sh            (root; env: DUR=8 WARM=2 REPS=3 PEER=1)
#
# Writes Benchmarks/datapath/results.md. The peer figures come from ../shared/bench/ovs-peer.sh, run in
# the same invocation; set PEER=0 to measure okod alone.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
DUR=${DUR:-8} WARM=${WARM:-2} REPS=${REPS:-3} PEER=${PEER:-1}
work=$(mktemp -d /tmp/oko-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
results=Benchmarks/datapath/results.md

log() { printf '[bench] %s\n' "$*" >&2; }

swift build -c release --product okod >&2
okod="$(swift build -c release --show-bin-path)/okod"

# The same traffic as the peer script: flow i has dst 198.19.0.0 + (i % 1000), sport 1024 + i / 1000.
/usr/bin/python3 - "$work" <<'PY'
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

# Rule sets of the issue's cases, as in the peer script.
printf 'priority=10,in_port=1,actions=output:2\n' > "$work/of_a.txt"
printf 'priority=10,in_port=1,udp,actions=output:2\n' > "$work/of_b.txt"
{ for i in $(seq 0 999); do echo "priority=10,ip,nw_dst=198.19.$((i/256)).$((i%256)),actions=output:2"; done
  echo "priority=0,actions=drop"; } > "$work/of_c.txt"

# run_okod NAME PCAP FLOWS_FILE: median port-2 transmit rate (Mpps) over the window.
run_okod() {
    local name=$1 pcap=$2 flows=$3
    local config=$work/$name.yaml out=$work/$name.log
    {
        echo 'dpdk: {eal_args: ["-l", "0-1", "--no-pci"], mbufs: 32768}'
        echo "stats_interval: 1"
        echo "log_level: info"
        echo "api: {listen: \"127.0.0.1:0\", token_file: \"$work/tokens\"}"
        echo "bridges:"
        echo "  - name: br0"
        echo "    ports:"
        echo "      - devargs: \"net_pcap0,rx_pcap=$pcap,infinite_rx=1\""
        echo "      - devargs: \"net_null0,no-rx=1\""
        echo "    flows:"
        sed 's/.*/      - "&"/' "$flows"
    } > "$config"
    "$okod" --config "$config" > "$out" 2>&1 &
    local pid=$!
    sleep $((WARM + DUR))
    kill -TERM $pid; wait $pid || true
    grep "br0 port 2:" "$out" | sed -n 's/.*tx_mpps=\([0-9.]*\).*/\1/p' | tail -n +$((WARM + 1)) | head -n "$DUR" \
        | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else printf "%.2f\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

declare -A oko
cases=("a-1rule-n1:$work/n1.pcap:$work/of_a.txt" "b-udprule-n10k:$work/n10k.pcap:$work/of_b.txt"
       "c-1000rules-n10k:$work/n10k.pcap:$work/of_c.txt")
for rep in $(seq 1 "$REPS"); do
    for entry in "${cases[@]}"; do
        IFS=: read -r name pcap flows <<< "$entry"
        rate=$(run_okod "$name" "$pcap" "$flows")
        log "okod $name rep $rep: $rate Mpps"
        oko[$name]="${oko[$name]:-} $rate"
    done
done

peer_table="(peer not run)"
if [ "$PEER" = 1 ]; then
    peer_out=$work/peer.txt
    DUR=$DUR WARM=$WARM REPS=$REPS bash "$root/../shared/bench/ovs-peer.sh" > "$peer_out" 2> "$work/peer.log" || log "peer script failed: $(tail -3 "$work/peer.log")"
    peer_table=$(sed -n '/^case /,/^total runtime/p' "$peer_out")
fi

median() { tr ' ' '\n' | grep -v '^$' | grep -v n/a | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
{
    echo "# Datapath benchmark"
    echo
    echo "$(date -u +%FT%TZ), $(getconf _NPROCESSORS_ONLN) vCPU, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), kernel $(uname -r);"
    echo "64-byte UDP frames, net_pcap infinite_rx -> net_null, one poll-mode core, median of $REPS runs of ${DUR}s."
    echo
    echo "| case | okod Mpps (median) | runs |"
    echo "|---|---|---|"
    for entry in "${cases[@]}"; do
        name=${entry%%:*}
        echo "| $name | $(echo "${oko[$name]}" | median) | ${oko[$name]} |"
    done
    echo
    echo "Peers measured in the same run (../shared/bench/ovs-peer.sh):"
    echo
    echo '```'
    echo "$peer_table"
    echo '```'
} > "$results"
cat "$results"
