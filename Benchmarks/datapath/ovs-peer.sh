#!/bin/bash
# ovs-peer.sh - repeatable OVS-DPDK (userspace datapath) vs dpdk-testpmd baseline
# on DPDK virtual devices only (net_pcap infinite_rx -> net_null).  No NICs,
# no PCI, no kernel interfaces carry any of the traffic.
#
#   usage: sudo ./ovs-peer.sh   (env knobs: DUR=10 WARM=2 REPS=3 EXTRA=1 FORCE_NOHUGE=0
#                                 TP_CASES="io-n10k macswap-n10k io-n1" OVS_CASES="a b c a2 b2 b2s")
#
# Adapted for Oko's datapath benchmark (Benchmarks/datapath/run.sh) from the team's shared copy
# (../shared/bench/ovs-peer.sh): TP_CASES / OVS_CASES choose the cases, so that run.sh can run just the
# peers of its own cases; OVSBENCH_DIR picks the work directory; results.tsv gains a 5th column, the
# forwarding thread's on-CPU cycles per packet (schedstat), which preemption on a shared host does not inflate.
#
# What it does:
#   1. generates two pcaps with scapy: 64-byte-on-wire (60 B + FCS) UDP/IPv4
#      frames over N=1 and N=10,000 distinct 5-tuples
#   2. reference: dpdk-testpmd io and macswap forwarding, net_pcap -> net_null,
#      one forwarding core (lcore 1)
#   3. starts a private ovsdb-server + ovs-vswitchd-dpdk (own db/run/log dirs
#      under $W, nothing in /etc or /var/run is touched), PMD on core 1,
#      DPDK main lcore on core 0, bridge datapath_type=netdev,
#      in0 = net_pcap0 (infinite_rx), out0 = net_null1 (no-rx=1)
#   4. cases (each REPS times, fresh port + flow table each rep, WARM s warm-up,
#      rate = delta of out-port tx pkts via `ovs-ofctl dump-ports` over DUR s,
#      cycles/pkt from `ovs-appctl dpif-netdev/pmd-stats-show` over same window)
#   5. stops every process it started by pid, removes the bridge/tap, prints table
set -u
export LC_ALL=C

W=${OVSBENCH_DIR:-/tmp/ovsbench}
DUR=${DUR:-10}            # measurement window (s)
WARM=${WARM:-2}           # warm-up after port add / testpmd start (s)
REPS=${REPS:-3}
EXTRA=${EXTRA:-1}         # 1 = also run the EMC/SMC path cases (a2,b2,b2s)
if [ "$EXTRA" = 1 ]; then OVS_CASES=${OVS_CASES:-a b c a2 b2 b2s}; else OVS_CASES=${OVS_CASES:-a b c}; fi
TP_CASES=${TP_CASES:-io-n10k macswap-n10k io-n1}
want() { case " $2 " in *" $1 "*) return 0;; esac; return 1; }   # want CASE "LIST"
PY=/usr/bin/python3       # Debian python (scapy); NOT a pyenv shim
VSWITCHD=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
TESTPMD=/usr/bin/dpdk-testpmd
BR=ovsbench0
SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
PCAP1=$W/flows64_n1.pcap
PCAP10K=$W/flows64_n10k.pcap
MEM_MB=256                # DPDK memory per process (testpmd -m / OVS socket-mem)
NEED_PAGES=$(( MEM_MB / 2 + 32 ))   # 2 MiB pages needed free

export OVS_RUNDIR=$W/run OVS_LOGDIR=$W/log OVS_DBDIR=$W/db
# explicit control socket: the binary is ovs-vswitchd-dpdk, so the default
# socket would be ovs-vswitchd-dpdk.<pid>.ctl, which `ovs-appctl -t ovs-vswitchd` misses
VSCTL_SOCK=$W/run/ovs-vswitchd.ctl
appctl() { ovs-appctl -t "$VSCTL_SOCK" "$@"; }
T_START=$(date +%s)
OVSDB_PID= ; VSWD_PID= ; TP_PID= ; HP_ORIG= ; MOUNTED_HP=0 ; NOHUGE=${FORCE_NOHUGE:-0}
RES=$W/results.tsv

log() { printf '[%4ds] %s\n' $(( $(date +%s) - T_START )) "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

stop_pid() {   # stop_pid PID NAME : TERM, wait, then KILL - only that pid
    local p=$1 n=$2 i
    [ -n "$p" ] || return 0
    kill -0 "$p" 2>/dev/null || return 0
    kill -TERM "$p" 2>/dev/null
    for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || { log "stopped $n (pid $p)"; return 0; }; sleep 0.1; done
    log "$n (pid $p) ignored TERM, sending KILL"; kill -KILL "$p" 2>/dev/null
}

cleanup() {
    set +e
    [ -n "$TP_PID" ] && stop_pid "$TP_PID" dpdk-testpmd
    if [ -n "$VSWD_PID" ] && kill -0 "$VSWD_PID" 2>/dev/null; then
        ovs-vsctl --timeout=5 --if-exists del-br $BR >/dev/null 2>&1
        # graceful exit removes the netdev datapath and its tap; then by pid
        timeout 10 ovs-appctl -t "$VSCTL_SOCK" exit --cleanup >/dev/null 2>&1
        for i in $(seq 1 50); do kill -0 "$VSWD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$VSWD_PID" 2>/dev/null || log "stopped ovs-vswitchd (pid $VSWD_PID) via exit --cleanup"
        stop_pid "$VSWD_PID" ovs-vswitchd
    fi
    VSWD_PID= ; TP_PID=
    [ -n "$OVSDB_PID" ] && stop_pid "$OVSDB_PID" ovsdb-server
    OVSDB_PID=
    rm -rf /run/dpdk/ovsbench_ovs /run/dpdk/ovsbench_tp 2>/dev/null
    if [ -n "$HP_ORIG" ]; then echo "$HP_ORIG" > /proc/sys/vm/nr_hugepages; log "restored nr_hugepages=$HP_ORIG"; HP_ORIG=; fi
    [ "$MOUNTED_HP" = 1 ] && umount /dev/hugepages && log "unmounted /dev/hugepages (we mounted it)"
    MOUNTED_HP=0
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap '' PIPE     # a dead testpmd must not kill us via its command fifo

# On-CPU time (ns, /proc schedstat) of a process's threads whose name matches a pattern: on a shared host
# this measures what a forwarding thread cost, however often it was preempted.
oncpu() {   # oncpu PID REGEX
    local t sum=0 v
    for t in /proc/$1/task/*; do
        grep -q -E "$2" "$t/comm" 2>/dev/null || continue
        v=$(awk '{print $1}' "$t/schedstat" 2>/dev/null); sum=$(( sum + ${v:-0} ))
    done
    echo $sum
}
GHZ=$(awk -F': ' '/^cpu MHz/{printf "%.3f", $2 / 1000; exit}' /proc/cpuinfo)

median() { sort -g | awk -v f="${1:-%.2f}" '{a[NR]=$1} END{ if(NR==0){print "n/a"; exit} printf f"\n", (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2 }'; }

# ---------------------------------------------------------------- preflight
[ "$(id -u)" = 0 ] || die "must run as root"
for b in $VSWITCHD $TESTPMD ovsdb-server ovsdb-tool ovs-vsctl ovs-ofctl ovs-appctl; do
    command -v $b >/dev/null || die "missing $b (apt-get install openvswitch-switch-dpdk dpdk)"
done
$PY -c 'import scapy' 2>/dev/null || die "python3-scapy missing for $PY"
for f in "$OVS_RUNDIR/ovs-vswitchd.pid" "$OVS_RUNDIR/ovsdb-server.pid"; do   # stale run of this script?
    if [ -f "$f" ] && p=$(cat "$f") && kill -0 "$p" 2>/dev/null && grep -q -e ovs-vswitchd -e ovsdb-server /proc/$p/comm; then
        die "a previous instance (pid $p from $f) is still running; stop it first"
    fi
done
# keep this shell and its helpers (ovs-vsctl, awk, sleep, ovsdb-server) on cpu0;
# the DPDK processes are started with all cpus and pin their own threads
ALLCPUS=$(cat /sys/devices/system/cpu/online)
taskset -p -c 0 $$ >/dev/null 2>&1 || log "taskset failed (continuing unpinned)"
mkdir -p "$W"; rm -rf "$OVS_RUNDIR" "$OVS_LOGDIR" "$OVS_DBDIR"; mkdir -p "$OVS_RUNDIR" "$OVS_LOGDIR" "$OVS_DBDIR"
: > "$RES"; rm -f $W/testpmd.*.log $W/pmd.*.txt $W/dpflows.*.txt $W/testpmd.fifo

# hugepages: use what is there, grow only if short, restore on exit
if ! mount -t hugetlbfs | grep -q .; then
    mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages && MOUNTED_HP=1
fi
free_pages=$(awk '/HugePages_Free/{print $2}' /proc/meminfo)
if [ "$free_pages" -lt "$NEED_PAGES" ]; then
    HP_ORIG=$(cat /proc/sys/vm/nr_hugepages)
    echo $(( HP_ORIG + NEED_PAGES - free_pages )) > /proc/sys/vm/nr_hugepages 2>/dev/null
    free_pages=$(awk '/HugePages_Free/{print $2}' /proc/meminfo)
fi
if [ $NOHUGE = 1 ] || [ "$free_pages" -lt "$NEED_PAGES" ] || ! mount -t hugetlbfs | grep -q .; then
    NOHUGE=1; log "hugepages unavailable ($free_pages free) -> falling back to --no-huge -m 512"
fi
# --no-huge implies legacy memory, which EAL refuses together with --in-memory
if [ $NOHUGE = 1 ]; then TP_MEM="--no-huge -m 512 --no-shconf"; else TP_MEM="-m $MEM_MB --in-memory"; fi
log "hugepages: $(awk '/HugePages_Total/{t=$2}/HugePages_Free/{f=$2}END{print t" total, "f" free"}' /proc/meminfo) (2 MiB); nohuge=$NOHUGE"

# ---------------------------------------------------------------- pcaps
log "generating pcaps with scapy"
$PY - "$PCAP1" "$PCAP10K" <<'EOF' || die "pcap generation failed"
import sys
from scapy.all import Ether, IP, UDP, Raw, wrpcap
# 60 B frame in the pcap = 64 B on the wire with FCS.  RFC 2544 benchmark
# address range 198.18.0.0/15; the frames never leave DPDK (net_null sink).
# flow i: dst 198.19.0.0 + (i % 1000), sport 1024 + i // 1000  -> N distinct 5-tuples
def gen(n, path):
    pkts = []
    for i in range(n):
        d, sp = i % 1000, 1024 + i // 1000
        p = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
             IP(src="198.18.0.1", dst="198.19.%d.%d" % (d // 256, d % 256)) /
             UDP(sport=sp, dport=5001))
        p = p / Raw(b"\x00" * (60 - len(p)))
        pkts.append(p)
    wrpcap(path, pkts)
gen(1, sys.argv[1]); gen(10000, sys.argv[2])
EOF
# OpenFlow tables
printf 'priority=10,in_port=1,actions=output:2\n' > $W/of_simple.txt
printf 'priority=10,in_port=1,udp,actions=output:2\n' > $W/of_udp.txt
{ for i in $(seq 0 999); do echo "priority=10,ip,nw_dst=198.19.$((i/256)).$((i%256)),actions=output:2"; done
  echo "priority=0,actions=drop"; } > $W/of_1000.txt

# ---------------------------------------------------------------- testpmd reference
# io / macswap, port0 = net_pcap infinite_rx, port1 = net_null no-rx=1 (else
# net_null *generates* packets on its rx and the core forwards those too).
# --in-memory: no hugepage files, no clearing of other processes' hugepage files.
run_testpmd() {   # name mode pcap rep
    local name=$1 mode=$2 pcap=$3 r=$4 out fifo=$W/testpmd.fifo i
    out=$W/testpmd.$name.$r.log; rm -f $fifo; mkfifo $fifo
    taskset -c $ALLCPUS $TESTPMD -l 0,1 --no-pci --file-prefix=ovsbench_tp $TP_MEM \
        --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev "net_null1,no-rx=1" -- \
        -i --auto-start --forward-mode=$mode --nb-cores=1 --total-num-mbufs=32768 \
        --record-core-cycles < $fifo > $out 2>&1 &
    TP_PID=$!
    exec 3> $fifo
    sleep $WARM
    kill -0 $TP_PID 2>/dev/null || log "testpmd $name died at start: $(grep -m3 -E 'EAL: (Error|Option)|Cause|Fail' $out | tr '\n' ' ')"
    { echo "clear fwd stats all"; echo "show port stats 1"; } >&3
    local c0 c1
    c0=$(oncpu $TP_PID '^(rte|lcore)-worker')
    sleep $DUR
    c1=$(oncpu $TP_PID '^(rte|lcore)-worker')
    { echo "show port stats 1"; echo "show fwd stats all"; echo stop; echo quit; } >&3
    exec 3>&-
    for i in $(seq 1 100); do kill -0 $TP_PID 2>/dev/null || break; sleep 0.1; done
    stop_pid $TP_PID dpdk-testpmd; wait $TP_PID 2>/dev/null; TP_PID=
    rm -f $fifo
    local mpps cpp
    mpps=$(awk '/Tx-pps:/{v=$2} END{printf "%.3f", v/1e6}' $out)
    cpp=$(awk -F'[= ]' '/CPU cycles\/packet=/{for(i=1;i<=NF;i++) if($i=="cycles/packet"){print $(i+1); exit}}' $out)
    [ -n "$cpp" ] || cpp=n/a
    if grep -q -E "EAL: Error|Cause:|Start ports failed" $out; then log "testpmd $name rep $r failed: $(grep -m3 -E 'EAL: (Error|Option)|Cause|fail' $out | tr '\n' ' ')"; mpps=0; cpp=n/a; fi
    local ccpp
    ccpp=$(awk -v a=$c0 -v b=$c1 -v m=$mpps -v d=$DUR -v g=$GHZ 'BEGIN{if (m > 0 && b > a) printf "%.0f", (b-a)*g/(m*1e6*d); else print "n/a"}')
    log "testpmd $name rep $r: $mpps Mpps, $cpp cycles/pkt, $ccpp on-CPU cycles/pkt"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$mpps" "$cpp" "-" "$ccpp" >> $RES
}
# reps are round-robin over the cases, so slow host-side drift (this is a VM;
# 2 s samples of one steady run vary by +-15 %) hits every case alike
log "=== dpdk-testpmd reference ==="
for r in $(seq 1 $REPS); do
    want io-n10k "$TP_CASES"      && run_testpmd tp-io-n10k      io      $PCAP10K $r
    want macswap-n10k "$TP_CASES" && run_testpmd tp-macswap-n10k macswap $PCAP10K $r
    want io-n1 "$TP_CASES"        && run_testpmd tp-io-n1        io      $PCAP1   $r
done

# ---------------------------------------------------------------- OVS
log "=== starting ovsdb-server / ovs-vswitchd (DPDK) ==="
ovsdb-tool create $OVS_DBDIR/conf.db $SCHEMA || die "ovsdb-tool create failed"
ovsdb-server $OVS_DBDIR/conf.db --remote=punix:$OVS_RUNDIR/db.sock \
    --pidfile=$OVS_RUNDIR/ovsdb-server.pid --unixctl=$OVS_RUNDIR/ovsdb-server.ctl \
    --log-file=$OVS_LOGDIR/ovsdb-server.log -vconsole:off --no-chdir --detach 2>$OVS_LOGDIR/ovsdb-server.console || {
        cat $OVS_LOGDIR/ovsdb-server.console >&2; die "ovsdb-server failed"; }
OVSDB_PID=$(cat $OVS_RUNDIR/ovsdb-server.pid)
ovs-vsctl --no-wait init
if [ $NOHUGE = 1 ]; then
    # OVS 3.x appends --in-memory unless --in-memory/--legacy-mem is given, and
    # EAL rejects --no-huge (implies legacy mem) together with --in-memory
    ovs-vsctl --no-wait set Open_vSwitch . other_config:dpdk-extra="--no-pci --file-prefix=ovsbench_ovs --no-huge --legacy-mem -m 512"
else
    ovs-vsctl --no-wait set Open_vSwitch . other_config:dpdk-extra="--no-pci --file-prefix=ovsbench_ovs" \
        other_config:dpdk-socket-mem=$MEM_MB
fi
ovs-vsctl --no-wait set Open_vSwitch . other_config:dpdk-init=true \
    other_config:dpdk-lcore-mask=0x1 other_config:pmd-cpu-mask=0x2 \
    other_config:per-port-memory=true
taskset -c $ALLCPUS $VSWITCHD unix:$OVS_RUNDIR/db.sock --pidfile=$OVS_RUNDIR/ovs-vswitchd.pid --unixctl=$VSCTL_SOCK \
    --log-file=$OVS_LOGDIR/ovs-vswitchd.log -vconsole:off --no-chdir --detach 2>$OVS_LOGDIR/ovs-vswitchd.console || {
        cat $OVS_LOGDIR/ovs-vswitchd.console >&2
        grep -E 'EAL|ERR|EMER' $OVS_LOGDIR/ovs-vswitchd.log | tail -20 >&2; die "ovs-vswitchd failed to start"; }
VSWD_PID=$(cat $OVS_RUNDIR/ovs-vswitchd.pid)
for i in $(seq 1 100); do
    [ "$(ovs-vsctl --timeout=2 get Open_vSwitch . dpdk_initialized 2>/dev/null)" = true ] && break; sleep 0.1
done
[ "$(ovs-vsctl get Open_vSwitch . dpdk_initialized)" = true ] || {
    grep -E 'EAL|dpdk|ERR|EMER' $OVS_LOGDIR/ovs-vswitchd.log | tail -20 >&2; die "DPDK init in ovs-vswitchd failed"; }
log "ovsdb-server pid $OVSDB_PID, ovs-vswitchd pid $VSWD_PID; $(grep -o 'EAL ARGS:.*' $OVS_LOGDIR/ovs-vswitchd.log)"
log "ovs-vswitchd $(ovs-vsctl get Open_vSwitch . dpdk_version) other_config: $(ovs-vsctl get Open_vSwitch . other_config)"

# fail_mode=secure: no implicit NORMAL flow, so nothing is ever flooded to the bridge's tap
ovs-vsctl add-br $BR -- set bridge $BR datapath_type=netdev fail_mode=secure || die "add-br failed"
ovs-ofctl del-flows $BR
ovs-vsctl add-port $BR out0 -- set Interface out0 type=dpdk \
    options:dpdk-devargs="net_null1,no-rx=1" ofport_request=2 || die "add out0 failed"

port_stat() {   # port_stat PORTNO rx|tx -> packet counter (live, not the 5 s DB copy)
    ovs-ofctl dump-ports $BR $1 | awk -v w="$2" -F'[=,]' '$0 ~ w" pkts" {print $2; exit}'
}
pmd_field() {   # pmd_field FILE "label" -> first number after "label:" in the pmd section
    awk -v l="$2" '/^main thread/{exit} index($0, l":"){sub(/.*: */,""); print $1+0; exit}' "$1"
}

run_ovs() {   # name flowsfile pcap smc rep
    local name=$1 of=$2 pcap=$3 smc=$4 r=$5
    ovs-vsctl set Open_vSwitch . other_config:smc-enable=$smc
    ovs-vsctl --if-exists del-port $BR in0
    ovs-ofctl replace-flows $BR $of || die "replace-flows $of failed"
    appctl dpctl/del-flows >/dev/null
    ovs-vsctl add-port $BR in0 -- set Interface in0 type=dpdk \
        options:dpdk-devargs="net_pcap0,rx_pcap=$pcap,infinite_rx=1" ofport_request=1 || die "add in0 failed"
    local err; err=$(ovs-vsctl get Interface in0 error 2>/dev/null)
    [ "$err" = "[]" ] || die "in0: $err"
    sleep $WARM
    appctl dpif-netdev/pmd-stats-clear >/dev/null
    local t0 tx0 rx0 t1 tx1 rx1
    local c0 c1
    c0=$(oncpu $VSWD_PID '^pmd')
    t0=$(date +%s.%N); tx0=$(port_stat 2 tx); rx0=$(port_stat 1 rx)
    sleep $DUR
    t1=$(date +%s.%N); tx1=$(port_stat 2 tx); rx1=$(port_stat 1 rx)
    c1=$(oncpu $VSWD_PID '^pmd')
    local ps=$W/pmd.$name.$r.txt
    appctl dpif-netdev/pmd-stats-show > $ps
    appctl dpctl/dump-flows > $W/dpflows.$name.$r.txt 2>&1
    local mpps rxm cpp pk emc smc_h mf sm up nflows mix
    mpps=$(awk -v a=$tx0 -v b=$tx1 -v s=$t0 -v e=$t1 'BEGIN{printf "%.3f", (b-a)/(e-s)/1e6}')
    rxm=$(awk -v a=$rx0 -v b=$rx1 -v s=$t0 -v e=$t1 'BEGIN{printf "%.3f", (b-a)/(e-s)/1e6}')
    cpp=$(pmd_field $ps "avg processing cycles per packet")
    pk=$(pmd_field $ps "packets received"); [ "${pk:-0}" -gt 0 ] || pk=1
    sm=$(pmd_field $ps "simple match hits"); emc=$(pmd_field $ps "emc hits")
    smc_h=$(pmd_field $ps "smc hits"); mf=$(pmd_field $ps "megaflow hits")
    up=$(pmd_field $ps "miss with success upcall")
    nflows=$(grep -c 'recirc_id' $W/dpflows.$name.$r.txt)
    mix=$(awk -v p=$pk -v a=$sm -v b=$emc -v c=$smc_h -v d=$mf -v u=$up -v f=$nflows \
        'BEGIN{printf "simple %.0f%% emc %.0f%% smc %.0f%% mf %.0f%% upc %d; %d dp-flows", 100*a/p, 100*b/p, 100*c/p, 100*d/p, u, f}')
    local ccpp
    ccpp=$(awk -v a=$c0 -v b=$c1 -v x=$tx0 -v y=$tx1 -v g=$GHZ 'BEGIN{if (y > x && b > a) printf "%.0f", (b-a)*g/(y-x); else print "n/a"}')
    log "ovs $name rep $r: $mpps Mpps out (in $rxm), $cpp cycles/pkt, $ccpp on-CPU cycles/pkt, $mix"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$mpps" "$cpp" "$mix" "$ccpp" >> $RES
    ovs-vsctl --if-exists del-port $BR in0
}

log "=== OVS cases ==="
for r in $(seq 1 $REPS); do
    want a "$OVS_CASES"   && run_ovs a-1rule-n1           $W/of_simple.txt $PCAP1   false $r
    want b "$OVS_CASES"   && run_ovs b-1rule-n10k         $W/of_simple.txt $PCAP10K false $r
    want c "$OVS_CASES"   && run_ovs c-1000rules-n10k     $W/of_1000.txt   $PCAP10K false $r
    want a2 "$OVS_CASES"  && run_ovs a2-udprule-n1        $W/of_udp.txt $PCAP1   false $r
    want b2 "$OVS_CASES"  && run_ovs b2-udprule-n10k      $W/of_udp.txt $PCAP10K false $r
    want b2s "$OVS_CASES" && run_ovs b2s-udprule-n10k-smc $W/of_udp.txt $PCAP10K true  $r
done
ovs-vsctl set Open_vSwitch . other_config:smc-enable=false

# ---------------------------------------------------------------- report
cleanup; trap - EXIT
desc() { case $1 in
    tp-io-n10k)        echo "testpmd io, pcap(N=10k)->null";;
    tp-macswap-n10k)   echo "testpmd macswap, pcap(N=10k)->null";;
    tp-io-n1)          echo "testpmd io, pcap(N=1)->null";;
    a-1rule-n1)        echo "OVS in_port=1->2, N=1";;
    b-1rule-n10k)      echo "OVS in_port=1->2, N=10k";;
    c-1000rules-n10k)  echo "OVS 1000x nw_dst/32 + default, N=10k";;
    a2-udprule-n1)     echo "OVS in_port=1,udp->2, N=1";;
    b2-udprule-n10k)   echo "OVS in_port=1,udp->2, N=10k";;
    b2s-udprule-n10k-smc) echo "OVS in_port=1,udp->2, N=10k, SMC on";;
    *) echo "$1";; esac; }
echo
echo "OVS-DPDK peer baseline  $(date -u +%FT%TZ)  host=$(hostname) cpu='$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)' $(getconf _NPROCESSORS_ONLN) vCPU kernel $(uname -r)"
echo "ovs-vswitchd $($VSWITCHD --version | awk 'NR==1{print $NF}') / $($VSWITCHD --version | grep -i dpdk)  testpmd: $(dpkg-query -W -f='${Version}' dpdk)"
echo "frames 60 B (+4 FCS = 64 B), window ${DUR}s after ${WARM}s warm-up, ${REPS} reps, median shown; 1 forwarding core (cpu1); memory: $([ $NOHUGE = 1 ] && echo 'NO hugepages (--no-huge)' || echo '2 MiB hugepages')"
printf '%-22s %-40s %10s %10s   %s\n' case description "Mpps(med)" "cyc/pkt" "runs (Mpps) | datapath path mix (last run)"
for c in $(cut -f1 $RES | awk '!s[$0]++'); do
    m=$(awk -F'\t' -v c=$c '$1==c{print $2}' $RES | median)
    cy=$(awk -F'\t' -v c=$c '$1==c && $3!="n/a"{print $3}' $RES | median %.0f)
    runs=$(awk -F'\t' -v c=$c '$1==c{printf "%s%s", s, $2; s=","}' $RES)
    mix=$(awk -F'\t' -v c=$c '$1==c{m=$4} END{print m}' $RES)
    printf '%-22s %-40s %10s %10s   %s | %s\n' "$c" "$(desc $c)" "$m" "$cy" "$runs" "$mix"
done
echo "total runtime $(( $(date +%s) - T_START )) s; raw data in $RES, logs in $W"
