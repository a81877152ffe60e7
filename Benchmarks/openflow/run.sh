#!/usr/bin/env bash
# Rule installation rate over OpenFlow 1.3: `ovs-ofctl -O OpenFlow13 add-flows` of N rules (ends with a
# barrier) against okod and against Open vSwitch 3.1 (ovs-vswitchd, netdev bridge, no ports), same file,
# same run. Prints rules/s per peer and the ratio; writes Benchmarks/openflow/last-run.txt.
#   Benchmarks/openflow/run.sh [RULES] [REPS]      default 100000 rules, 3 repetitions (median shown)
#   LIMIT=SECONDS stops an add-flows that takes longer (default 600) and reports the rules installed by then
#   PERF=1 also records okod with `perf record -g` during one add-flows (report in $W/perf.txt)
# Needs: a release build (swift build -c release --product okod), openvswitch-switch (ovs-vswitchd, ovsdb-server).
# Every process it starts is stopped by pid at exit; OVS runs from its own directory $W (nothing in /etc, /var/run).
set -u
export LC_ALL=C
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RULES=${1:-100000}
REPS=${2:-3}
W=${OFBENCH_DIR:-/tmp/oko-ofbench}
OKOD=${OKOD:-$root/.build/release/okod}
OF_PORT_OKO=16653
OF_PORT_OVS=16654
BR=ofbench0
OKOD_PID= ; OVSDB_PID= ; VSWD_PID=

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
stop_pid() {
    local p=$1 i
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
    kill -TERM "$p" 2>/dev/null
    for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
}
cleanup() {
    set +e
    stop_pid "$OKOD_PID"; OKOD_PID=
    if [ -n "$VSWD_PID" ]; then
        OVS_RUNDIR=$W/ovs ovs-vsctl --db=unix:$W/ovs/db.sock --timeout=5 --if-exists del-br $BR >/dev/null 2>&1
        stop_pid "$VSWD_PID"; VSWD_PID=
    fi
    stop_pid "$OVSDB_PID"; OVSDB_PID=
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$OKOD" ] || die "no okod at $OKOD (swift build -c release --product okod)"
for b in ovs-ofctl ovs-vsctl ovsdb-server ovsdb-tool ovs-vswitchd; do command -v $b >/dev/null || die "missing $b"; done
rm -rf "$W"; mkdir -p "$W/ovs"

# The rules: distinct /32 destinations and UDP ports, all of one mask (the common controller workload).
python3 - "$RULES" > "$W/flows.txt" <<'EOF'
import sys
n = int(sys.argv[1])
for i in range(n):
    print("priority=100,udp,nw_dst=10.%d.%d.%d,tp_dst=%d,actions=drop" % ((i >> 16) & 255, (i >> 8) & 255, i & 255, 1000 + i % 5000))
EOF
log "$RULES rules in $W/flows.txt"

# ---- okod: one bridge without ports, like the OVS bridge below (no poll-mode work on either side), OpenFlow on 127.0.0.1:$OF_PORT_OKO. Started afresh (empty store)
# for each measurement with store.sync $1: "full" (the default: one fsync per acknowledged change, i.e.
# per barrier, and ovs-ofctl add-flows sends a barrier after every FLOW_MOD) or "normal" (acknowledged
# changes survive kill -9 but not power loss; OVS keeps no flows across restarts at all).
start_okod() {
    stop_pid "$OKOD_PID"; OKOD_PID=
    rm -f "$W"/okod.db*
    cat > "$W/okod.yaml" <<EOF
dpdk:
  eal_args: ["-l", "0-1", "--no-pci"]
  mbufs: 4096
stats_interval: 0
log_level: notice
api: {listen: "127.0.0.1:0", token_file: "$W/tokens"}
openflow: {listen: "127.0.0.1:$OF_PORT_OKO"}
store: {path: "$W/okod.db", sync: $1}
bridges:
  - name: br0
EOF
    "$OKOD" --config "$W/okod.yaml" > "$W/okod.log" 2>&1 &
    OKOD_PID=$!
    for i in $(seq 1 300); do grep -q "okod ready" "$W/okod.log" && return 0; kill -0 $OKOD_PID 2>/dev/null || break; sleep 0.1; done
    cat "$W/okod.log" >&2; die "okod did not start"
}

# ---- OVS: private ovsdb + ovs-vswitchd, netdev bridge, passive OpenFlow on 127.0.0.1:$OF_PORT_OVS
start_ovs() {
    export OVS_RUNDIR=$W/ovs OVS_LOGDIR=$W/ovs OVS_DBDIR=$W/ovs
    ovsdb-tool create $W/ovs/conf.db /usr/share/openvswitch/vswitch.ovsschema || die "ovsdb-tool"
    ovsdb-server $W/ovs/conf.db --remote=punix:$W/ovs/db.sock --pidfile=$W/ovs/ovsdb-server.pid \
        --unixctl=$W/ovs/ovsdb-server.ctl --log-file=$W/ovs/ovsdb-server.log -vconsole:off --no-chdir --detach || die "ovsdb-server"
    OVSDB_PID=$(cat $W/ovs/ovsdb-server.pid)
    ovs-vsctl --db=unix:$W/ovs/db.sock --no-wait init
    ovs-vswitchd unix:$W/ovs/db.sock --pidfile=$W/ovs/ovs-vswitchd.pid --unixctl=$W/ovs/ovs-vswitchd.ctl \
        --log-file=$W/ovs/ovs-vswitchd.log -vconsole:off --no-chdir --detach || die "ovs-vswitchd"
    VSWD_PID=$(cat $W/ovs/ovs-vswitchd.pid)
    ovs-vsctl --db=unix:$W/ovs/db.sock --timeout=10 add-br $BR -- set bridge $BR datapath_type=netdev fail_mode=secure \
        protocols=OpenFlow13 -- set-controller $BR ptcp:$OF_PORT_OVS:127.0.0.1 || die "add-br"
    for i in $(seq 1 100); do ovs-ofctl -O OpenFlow13 show tcp:127.0.0.1:$OF_PORT_OVS >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "OVS does not answer on tcp:127.0.0.1:$OF_PORT_OVS"
}

# add-flows (ends with a barrier) from an empty table; prints "SECONDS RULES": RULES is $RULES when it
# finished, or the rules installed when it was stopped after $LIMIT seconds (then SECONDS = $LIMIT).
LIMIT=${LIMIT:-600}
measure() {   # target
    ovs-ofctl -O OpenFlow13 del-flows "$1" || { log "del-flows $1 failed"; return 1; }
    local t0 t1 count status
    t0=$(date +%s.%N)
    timeout "$LIMIT" ovs-ofctl -O OpenFlow13 add-flows "$1" "$W/flows.txt"
    status=$?
    t1=$(date +%s.%N)
    count=$(timeout 600 ovs-ofctl -O OpenFlow13 dump-aggregate "$1" | sed -n 's/.*flow_count=\([0-9]*\).*/\1/p')
    if [ $status = 124 ]; then
        log "$1: add-flows stopped after ${LIMIT}s with $count of $RULES rules installed"
        echo "$LIMIT $count"
        return 0
    fi
    [ $status = 0 ] || { log "add-flows $1 failed ($status)"; return 1; }
    [ "$count" = "$RULES" ] || { log "$1 holds $count rules after add-flows, not $RULES"; return 1; }
    awk -v a=$t0 -v b=$t1 -v n=$RULES 'BEGIN{printf "%.3f %d\n", b-a, n}'
}
median() { sort -g | awk '{a[NR]=$1} END{printf "%.3f\n", (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

start_ovs
log "ovs-vswitchd pid $VSWD_PID ($(ovs-vswitchd --version | head -1))"
: > "$W/times.tsv"
for r in $(seq 1 "$REPS"); do   # interleaved, so machine load drifts hit both alike
    for peer in okod okod-sync-normal ovs; do
        port=$OF_PORT_OKO; [ $peer = ovs ] && port=$OF_PORT_OVS
        case $peer in okod) start_okod full ;; okod-sync-normal) start_okod normal ;; esac
        m=$(measure tcp:127.0.0.1:$port) || die "$peer rep $r failed"
        set -- $m
        log "$peer rep $r: $2 rules in ${1}s"
        printf '%s\t%s\t%s\n' "$peer" "$1" "$2" >> "$W/times.tsv"
    done
done
if [ "${PERF:-0}" = 1 ] && command -v perf >/dev/null; then
    start_okod "${PERF_SYNC:-full}"
    ovs-ofctl -O OpenFlow13 del-flows tcp:127.0.0.1:$OF_PORT_OKO
    perf record -g -o "$W/perf.data" -p "$OKOD_PID" -- sleep 600 > /dev/null 2>&1 &
    perf_pid=$!
    sleep 1
    ovs-ofctl -O OpenFlow13 add-flows tcp:127.0.0.1:$OF_PORT_OKO "$W/flows.txt"
    kill -INT $perf_pid; wait $perf_pid 2>/dev/null
    perf report -i "$W/perf.data" --no-children --percent-limit 2 --stdio 2>/dev/null | grep -v '^$' | head -80 > "$W/perf.txt"
    log "perf profile of okod: $W/perf.txt"
fi
rate() { awk -F'\t' -v p=$1 '$1==p{printf "%.0f\n", $3/$2}' "$W/times.tsv" | median | awk '{printf "%.0f", $1}'; }
runs() { awk -F'\t' -v p=$1 '$1==p{printf "%s%s rules/%ss", c, $3, $2; c=", "}' "$W/times.tsv"; }
oko=$(rate okod)
okn=$(rate okod-sync-normal)
ovs=$(rate ovs)
{
    echo "OpenFlow rule installation, $(date -u +%FT%TZ), $(getconf _NPROCESSORS_ONLN) vCPU, load average $(cut -d' ' -f1-3 /proc/loadavg), $RULES rules, $REPS reps (median rate), add-flows incl. final barrier, limit ${LIMIT}s"
    printf '%-18s %10s rules/s   runs: %s\n' "okod (sync full)" "$oko" "$(runs okod)"
    printf '%-18s %10s rules/s   runs: %s\n' "okod (sync normal)" "$okn" "$(runs okod-sync-normal)"
    printf '%-18s %10s rules/s   runs: %s\n' ovs "$ovs" "$(runs ovs)"
    echo "okod/OVS rate ratio: sync full $(awk -v a=$oko -v b=$ovs 'BEGIN{printf "%.3f", a/b}')x, sync normal $(awk -v a=$okn -v b=$ovs 'BEGIN{printf "%.3f", a/b}')x"
} | tee "$root/Benchmarks/openflow/last-run.txt"
