#!/usr/bin/env bash
# Live demo: the rate limiter between two network namespaces.
#
#   ns "client" (10.77.0.1 for ping, 10.77.0.11 for the flood)          ns "server" (10.77.0.2)
#        veth ----- okA<id> = okod port 1  ==[ br0 ]==  okod port 2 = okB<id> ----- veth
#
# okod forwards between two net_af_packet ports on the root-side veth ends. examples/bpf/rate-limiter.c
# is compiled, loaded through the REST API as program 1 and configured (RATE packets/s, BURST), then:
#   priority=1,in_port=1,filter_prog=1,actions=output:2   client -> server, rate-limited per source
#   priority=1,in_port=2,actions=output:1                 server -> client
#   priority=0,actions=drop                               what the limiter refuses
# ping runs from 10.77.0.1 while a UDP flood leaves from 10.77.0.11: the flood's bucket empties, ping's
# does not. The script prints ping's summary, the /metrics lines of the rules and the program, and the
# limiter's maps, then a summary line `DEMO ping_received=N flood_sent=N rule_dropped=N program_runs=N
# program_matches=N drops_map=N buckets=N`. Everything it creates is removed on exit (trap).
#
# Usage (root): examples/demo/run.sh   Environment: OKOD, CLANG, FLOOD_SECONDS (3), FLOOD_PPS (1000),
# RATE (100), BURST (20). The flood is paced: far above the limit, but below what okod's af_packet
# ports can take in a debug build on a busy machine, so that the limiter, not the port, drops it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -z "${OKOD:-}" ]]; then
    OKOD=$ROOT/.build/release/okod
    [[ -x $OKOD ]] || OKOD=$ROOT/.build/debug/okod
fi
CLANG=${CLANG:-clang}
FLOOD_SECONDS=${FLOOD_SECONDS:-3}
FLOOD_PPS=${FLOOD_PPS:-1000}
RATE=${RATE:-100}
BURST=${BURST:-20}
[[ $(id -u) == 0 ]] || { echo "run.sh: needs root (network namespaces, af_packet)" >&2; exit 2; }
[[ -x $OKOD ]] || { echo "run.sh: no okod at '$OKOD' (swift build, or set OKOD)" >&2; exit 2; }
for tool in ip ping curl python3 "$CLANG"; do
    command -v "$tool" >/dev/null || { echo "run.sh: '$tool' is not installed" >&2; exit 2; }
done

ID=$$
NS_CLIENT=oko-client-$ID
NS_SERVER=oko-server-$ID
PORT_A=okA$ID      # root-side veth ends, okod's ports (interface names stay under 16 bytes)
PORT_B=okB$ID
WORK=$(mktemp -d /tmp/oko-demo.XXXXXX)
OKOD_PID=

cleanup() {
    set +e
    if [[ -n $OKOD_PID ]] && kill -0 "$OKOD_PID" 2>/dev/null; then
        kill -TERM "$OKOD_PID"
        for _ in $(seq 50); do kill -0 "$OKOD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$OKOD_PID" 2>/dev/null
    fi
    ip netns del "$NS_CLIENT" 2>/dev/null   # deleting a namespace deletes its veth ends and their peers
    ip netns del "$NS_SERVER" 2>/dev/null
    ip link del "$PORT_A" 2>/dev/null
    ip link del "$PORT_B" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }

step "namespaces $NS_CLIENT and $NS_SERVER, veth pairs $PORT_A and $PORT_B"
ip netns add "$NS_CLIENT"
ip netns add "$NS_SERVER"
ip link add "$PORT_A" type veth peer name eth0 netns "$NS_CLIENT"
ip link add "$PORT_B" type veth peer name eth0 netns "$NS_SERVER"
ip -n "$NS_CLIENT" addr add 10.77.0.1/24 dev eth0
ip -n "$NS_CLIENT" addr add 10.77.0.11/24 dev eth0
ip -n "$NS_SERVER" addr add 10.77.0.2/24 dev eth0
for ns in "$NS_CLIENT" "$NS_SERVER"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    # veth hands packets on with checksums left to "hardware"; okod re-sends them through af_packet as
    # they are, so the namespaces compute checksums themselves. No GRO/TSO: frames stay MTU-sized.
    ip netns exec "$ns" ethtool -K eth0 tx off rx off gso off tso off gro off >/dev/null 2>&1 || true
done
for port in "$PORT_A" "$PORT_B"; do
    ip link set "$port" up
    ethtool -K "$port" tx off rx off gso off tso off gro off >/dev/null 2>&1 || true
    # no IPv6 on the switch ports: the kernel would send its own router solicitations into the demo
    sysctl -qw "net.ipv6.conf.$port.disable_ipv6=1" 2>/dev/null || true
done

step "okod with two net_af_packet ports"
cat > "$WORK/okod.yaml" <<EOF
dpdk:
  eal_args: ["-l", "0-1", "--no-pci", "--no-huge", "-m", "512"]
  mbufs: 8192
stats_interval: 60
api: {listen: "127.0.0.1:0", token_file: "$WORK/api.tokens"}
openflow: {listen: "127.0.0.1:0"}
bridges:
  - name: br0
    ports:
      - {devargs: "net_af_packet$ID,iface=$PORT_A", ofport: 1}
      - {devargs: "net_af_packet$((ID + 1)),iface=$PORT_B", ofport: 2}
EOF
"$OKOD" --config "$WORK/okod.yaml" > "$WORK/okod.log" 2>&1 &
OKOD_PID=$!
for _ in $(seq 300); do
    grep -q "okod ready" "$WORK/okod.log" && break
    kill -0 "$OKOD_PID" 2>/dev/null || { cat "$WORK/okod.log"; echo "run.sh: okod exited" >&2; exit 1; }
    sleep 0.1
done
grep -q "okod ready" "$WORK/okod.log" || { cat "$WORK/okod.log"; echo "run.sh: okod did not start" >&2; exit 1; }
API=http://$(sed -n 's/.*management API listening on \([0-9.]*:[0-9]*\).*/\1/p' "$WORK/okod.log" | head -1)
TOKEN=$(awk '/^admin/ {print $2; exit}' "$WORK/api.tokens")
echo "okod pid $OKOD_PID, API $API"
api() {   # api METHOD PATH [curl arguments...]: prints the body, fails on an HTTP error
    local method=$1 path=$2; shift 2
    curl -sS --fail-with-body -X "$method" -H "Authorization: Bearer $TOKEN" "$@" "$API$path"
}

step "compile rate-limiter.c and load it as program 1 (rate $RATE packets/s, burst $BURST)"
"$CLANG" -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c "$ROOT/examples/bpf/rate-limiter.c" -o "$WORK/rate-limiter.o"
api PUT /v1/bridges/br0/programs/1 -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/rate-limiter.o" >/dev/null
api PUT /v1/bridges/br0/programs/1/maps/config -H 'Content-Type: application/json' \
    --data "{\"entries\": [{\"key\": \"00000000\", \"value_typed\": {\"rate\": $RATE, \"burst\": $BURST}}]}"
echo
api POST /v1/bridges/br0/flows -H 'Content-Type: text/plain' --data-binary $'priority=1,in_port=1,filter_prog=1,actions=output:2\npriority=1,in_port=2,actions=output:1\npriority=0,actions=drop' >/dev/null
api GET /v1/bridges/br0/flows -H 'Accept: text/plain'

step "ping 10.77.0.1 -> 10.77.0.2 while 10.77.0.11 floods UDP at $FLOOD_PPS/s for ${FLOOD_SECONDS}s"
ip netns exec "$NS_CLIENT" ping -c 1 -W 2 10.77.0.2 >/dev/null || true   # ARP resolution first
ip netns exec "$NS_CLIENT" python3 - "$FLOOD_SECONDS" "$FLOOD_PPS" > "$WORK/flood.out" <<'EOF' &
import socket, sys, time
seconds, rate = float(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.77.0.11", 0))
payload = bytes(64)
start = time.monotonic()
sent = 0
while (now := time.monotonic()) < start + seconds:
    # paced: as many datagrams as the rate allows by now, in bursts every millisecond
    while sent < (now - start) * rate:
        try:
            s.sendto(payload, ("10.77.0.2", 9))
        except OSError:   # a full socket buffer
            pass
        sent += 1
    time.sleep(0.001)
print(sent)
EOF
FLOOD_PID=$!
PING_COUNT=$(( FLOOD_SECONDS * 4 + 2 ))
ip netns exec "$NS_CLIENT" ping -I 10.77.0.1 -c "$PING_COUNT" -i 0.25 -W 1 10.77.0.2 > "$WORK/ping.out" || true
wait "$FLOOD_PID" || true
tail -2 "$WORK/ping.out"
FLOOD_SENT=$(cat "$WORK/flood.out")
echo "UDP flood: $FLOOD_SENT datagrams sent"
sleep 0.5

step "/metrics: rules and the program"
curl -sS "$API/metrics" > "$WORK/metrics"
grep -E '^oko_(rule_packets_total|program_(runs|matches)_total)\{bridge="br0"' "$WORK/metrics" || true

step "the limiter's maps: drops and buckets (one per source address)"
api GET /v1/bridges/br0/programs/1/maps/drops
echo
api GET /v1/bridges/br0/programs/1/maps/buckets
echo

# Summary for scripts and the CI test.
received=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$WORK/ping.out")
metric() { awk -v pattern="$1" 'index($0, pattern) == 1 { sum += $NF } END { printf "%d", sum }' "$WORK/metrics"; }
dropped_rule_id=$(api GET /v1/bridges/br0/flows | python3 -c 'import json,sys; print(next(f["id"] for f in json.load(sys.stdin)["flows"] if f["priority"] == 0))')
rule_dropped=$(metric "oko_rule_packets_total{bridge=\"br0\",table=\"0\",rule=\"$dropped_rule_id\"")
runs=$(metric 'oko_program_runs_total{bridge="br0"')
matches=$(metric 'oko_program_matches_total{bridge="br0"')
drops_map=$(api GET '/v1/bridges/br0/programs/1/maps/drops?key=00000000' | python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"][0]["value_typed"])')
buckets=$(api GET /v1/bridges/br0/programs/1/maps/buckets | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')
echo
echo "DEMO ping_sent=$PING_COUNT ping_received=${received:-0} flood_sent=${FLOOD_SENT:-0} rule_dropped=$rule_dropped program_runs=$runs program_matches=$matches drops_map=$drops_map buckets=$buckets"
