// Poll-mode threads: receive a burst, run the pipeline over it, transmit per port.
//
// Design note
// - Per burst (up to 32 packets of one port): parse each packet into a FlowKey (prefetching a few packets
//   ahead), find its decision -- the previous packet's entry if the key still falls in its region, else the
//   EMC (only with two or more megaflow masks), else the megaflow tables, else an upcall (table walk) that
//   installs a new entry -- then either stage the packet for its single output port directly or run the action
//   interpreter. Staged packets go out in one tx burst per port at the end of the batch.
// - Nothing per packet allocates, locks, calls the clock or touches an atomic: program, port and PMD counters
//   accumulate in plain fields and are flushed once per batch, rule counters once per `counterFlushInterval`
//   batches or idle poll (see FlowCache.swift); caches, ports, bridges and programs are
//   reached through unretained references kept alive by their owners (and by epoch reclamation for snapshots).
// - Busy/idle time is measured with the TSC (`TSCClock`) and reported in nanoseconds.
// - Threads: a PMDThread is driven by one thread (its own, a DPDK lcore, or a test calling `pollOnce()`);
//   its statistics are atomics any thread may read.
import CDPDK
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Per-packet filter program memo: each program runs at most once per packet; the walk's dependencies
/// are recorded in the order it consulted them. Run statistics accumulate in per-batch, per-program slots
/// that the PMD flushes to the program's atomic counters once per batch; run time is measured with the TSC on
/// one run in `timingSample` and scaled to all runs, so that counting costs no clock call or atomic per packet.
struct PacketPrograms: ProgramEvaluator {
    var programs: UnsafeMutableBufferPointer<Unmanaged<FilterProgram>?>
    var data: UnsafeMutableRawPointer
    var length: UInt32
    /// (program id, result) of the programs run on the current packet; capacity `programs.count`.
    let memo: UnsafeMutablePointer<(UInt32, UInt64)>
    var memoCount = 0
    /// Indexed by program id: runs, matches and sampled TSC ticks in the current batch.
    let runs: UnsafeMutablePointer<UInt64>
    let matches: UnsafeMutablePointer<UInt64>
    let ticks: UnsafeMutablePointer<UInt64>
    var recorded: [(UInt32, UInt64)] = []
    var recording = false
    static let timingSample: UInt64 = 16

    @inline(__always)
    mutating func reset(_ p: PacketView) {
        data = p.data
        length = p.length
        memoCount = 0
        if recording {
            recorded.removeAll(keepingCapacity: true)
            recording = false
        }
    }

    mutating func result(of id: UInt32) -> UInt64 {
        var r: UInt64 = 0
        var found = false
        for k in 0..<memoCount where memo[k].0 == id {
            r = memo[k].1
            found = true
            break
        }
        if !found {
            let i = Int(id)
            if i < programs.count, let p = programs[i] {
                let timed = runs[i] % Self.timingSample == 0
                let t0 = timed ? oko_rdtsc() : 0
                r = p._withUnsafeGuaranteedRef { $0.entry(data, UInt64(length)) }
                if timed { ticks[i] &+= oko_rdtsc() &- t0 }
                runs[i] &+= 1
                if r == 1 { matches[i] &+= 1 }
            }
            if i < programs.count {
                memo[memoCount] = (id, r)
                memoCount += 1
            }
        }
        if recording && !recorded.contains(where: { $0.0 == id }) { recorded.append((id, r)) }
        return r
    }
}

/// Statistics of one PMD thread.
public struct PMDStatistics: Sendable, Equatable {
    public var packets: UInt64
    public var batches: UInt64
    public var emcHits: UInt64
    public var megaflowHits: UInt64
    public var misses: UInt64
    public var upcalls: UInt64
    public var malformed: UInt64
    public var invalidTTLDrops: UInt64
    public var busyNanoseconds: UInt64
    public var idleNanoseconds: UInt64
    public var megaflows: Int
}

final class PMDCounters: Sendable {
    let packets = Atomic<UInt64>(0), batches = Atomic<UInt64>(0), emcHits = Atomic<UInt64>(0)
    let megaflowHits = Atomic<UInt64>(0), misses = Atomic<UInt64>(0), upcalls = Atomic<UInt64>(0)
    let malformed = Atomic<UInt64>(0), invalidTTL = Atomic<UInt64>(0), busy = Atomic<UInt64>(0)
    let idle = Atomic<UInt64>(0), megaflows = Atomic<Int>(0)
}

/// A poll-mode thread: receives bursts from its ports, runs the pipeline, transmits, announces quiescence.
public final class PMDThread: @unchecked Sendable {
    public let index: Int
    public let threadCount: Int
    private let bridges: [Bridge]
    private let readerSlots: [EpochReclaimer.ReaderSlot]
    /// One cache set per bridge, same order as `bridges`.
    private let caches: [BridgeCaches]
    private let bridgeRefs: UnsafeMutablePointer<Unmanaged<Bridge>>
    private let cacheRefs: UnsafeMutablePointer<Unmanaged<BridgeCaches>>
    private let readerSlotRefs: UnsafeMutablePointer<Unmanaged<EpochReclaimer.ReaderSlot>>
    @exclusivity(unchecked) private var polls: UInt64 = 0
    /// Per port slot: up to `txCapacity` packets staged for transmission (flushed at the end of a batch, or
    /// when full). Unsafe memory so that staging a packet costs a store, not an Array append.
    @exclusivity(unchecked) private var txPackets = UnsafeMutablePointer<PacketView>.allocate(capacity: 1)
    @exclusivity(unchecked) private var txCounts = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    @exclusivity(unchecked) private var txSlots = 0
    static let txCapacity = 64
    @exclusivity(unchecked) private var freeList: [PacketView] = []
    /// Scratch for `PacketPrograms`, sized to the program table (grown between batches).
    @exclusivity(unchecked) private var programMemo = UnsafeMutablePointer<(UInt32, UInt64)>.allocate(capacity: 1)
    @exclusivity(unchecked) private var programRuns = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    @exclusivity(unchecked) private var programMatches = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    @exclusivity(unchecked) private var programTicks = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    @exclusivity(unchecked) private var programCapacity = 0
    private let rxBuffer = UnsafeMutableBufferPointer<PacketView>.allocate(capacity: maxBatchSize)
    private let running = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(true)
    /// Monotonic nanoseconds at the start of the current poll (rule last-used times).
    @exclusivity(unchecked) private var now: UInt64 = 0
    private let clock = TSCClock.shared

    // Statistics (written by the owner thread only, read by anyone). busy/idle are in TSC ticks.
    private let stats = PMDCounters()

    /// Polls port slot i of each bridge when `i % threadCount == index`.
    public init(bridges: [Bridge], index: Int = 0, threadCount: Int = 1) {
        self.bridges = bridges
        self.index = index
        self.threadCount = threadCount
        readerSlots = bridges.map { $0.reclaimer.register() }
        caches = bridges.map { _ in BridgeCaches() }
        bridgeRefs = .allocate(capacity: max(1, bridges.count))
        cacheRefs = .allocate(capacity: max(1, bridges.count))
        readerSlotRefs = .allocate(capacity: max(1, bridges.count))
        for i in 0..<bridges.count {
            (bridgeRefs + i).initialize(to: .passUnretained(bridges[i]))
            (cacheRefs + i).initialize(to: .passUnretained(caches[i]))
            (readerSlotRefs + i).initialize(to: .passUnretained(readerSlots[i]))
        }
    }

    deinit {
        for (b, s) in zip(bridges, readerSlots) { b.reclaimer.unregister(s) }
        rxBuffer.deallocate()
        bridgeRefs.deallocate()
        cacheRefs.deallocate()
        readerSlotRefs.deallocate()
        txPackets.deallocate()
        txCounts.deallocate()
        for p in [programRuns, programMatches, programTicks] { p.deallocate() }
        programMemo.deallocate()
    }

    @inline(__always)
    private func bump(_ a: borrowing Atomic<UInt64>, _ n: UInt64) {
        if n != 0 { a.store(a.load(ordering: .relaxed) &+ n, ordering: .relaxed) }
    }

    public var statistics: PMDStatistics {
        PMDStatistics(packets: stats.packets.load(ordering: .relaxed), batches: stats.batches.load(ordering: .relaxed),
                      emcHits: stats.emcHits.load(ordering: .relaxed), megaflowHits: stats.megaflowHits.load(ordering: .relaxed),
                      misses: stats.misses.load(ordering: .relaxed), upcalls: stats.upcalls.load(ordering: .relaxed),
                      malformed: stats.malformed.load(ordering: .relaxed), invalidTTLDrops: stats.invalidTTL.load(ordering: .relaxed),
                      busyNanoseconds: clock.nanoseconds(ticks: stats.busy.load(ordering: .relaxed)),
                      idleNanoseconds: clock.nanoseconds(ticks: stats.idle.load(ordering: .relaxed)),
                      megaflows: stats.megaflows.load(ordering: .relaxed))
    }

    /// Flow-cache bookkeeping summed over bridges: full flushes, entries invalidated by rule changes, live
    /// entries. Read it only while the thread is stopped or from the thread driving `pollOnce()` (tests).
    var cacheCounts: (flushes: Int, invalidated: Int, entries: Int) {
        caches.reduce((0, 0, 0)) { ($0.0 + $1.flushes, $0.1 + $1.invalidated, $0.2 + $1.count) }
    }

    /// Starts the polling loop on a new thread.
    public func start() {
        guard !running.exchange(true, ordering: .sequentiallyConsistent) else { return }
        finished.store(false, ordering: .sequentiallyConsistent)
        let me = Unmanaged.passRetained(self)
        var tid = pthread_t()
        pthread_create(&tid, nil, { arg in
            let pmd = Unmanaged<PMDThread>.fromOpaque(arg!).takeRetainedValue()
            pmd.loop(yieldWhenIdle: true)
            return nil
        }, me.toOpaque())
        pthread_detach(tid)
    }

    /// Runs the polling loop on the calling thread (a dedicated DPDK lcore) until `stop()`; an idle
    /// dedicated core keeps polling instead of yielding.
    public func run() {
        guard !running.exchange(true, ordering: .sequentiallyConsistent) else { return }
        finished.store(false, ordering: .sequentiallyConsistent)
        loop(yieldWhenIdle: false)
    }

    private func loop(yieldWhenIdle: Bool) {
        while running.load(ordering: .relaxed) {
            guard pollOnce() == 0 else { continue }
            if portsPolled == 0 {
                // Nothing to poll (no port assigned to this thread): don't burn the core the control plane
                // may share; a port added later is picked up within a millisecond.
                usleep(1000)
            } else if yieldWhenIdle {
                sched_yield()
            }
        }
        for c in caches { c.flushCounters() }
        for (b, s) in zip(bridges, readerSlots) {
            b.reclaimer.offline(s)
        }
        finished.store(true, ordering: .sequentiallyConsistent)
    }

    /// Stops the loop and waits for the thread to leave it.
    public func stop() {
        running.store(false, ordering: .sequentiallyConsistent)
        // The thread left its reader slots offline, so a stopped PMD never holds back reclamation.
        while !finished.load(ordering: .sequentiallyConsistent) { sched_yield() }
    }

    /// One iteration over all assigned ports; returns the number of packets processed.
    @discardableResult
    public func pollOnce() -> Int {
        let t0 = oko_rdtsc()
        now = clock.nanoseconds(at: t0)
        polls &+= 1
        portsPolled = 0
        var total = 0
        for bi in 0..<bridges.count {
            // Unretained: `bridges`, `readerSlots` and `caches` keep these alive; no reference counting per poll.
            total += bridgeRefs[bi]._withUnsafeGuaranteedRef { bridge in
                cacheRefs[bi]._withUnsafeGuaranteedRef { cache in
                    readerSlotRefs[bi]._withUnsafeGuaranteedRef { reader in
                        pollBridge(bridge, cache: cache, reader: reader)
                    }
                }
            }
        }
        let t1 = oko_rdtsc()
        if total > 0 {
            bump(stats.busy, t1 &- t0)
            bump(stats.batches, 1)
        } else {
            bump(stats.idle, t1 &- t0)
        }
        return total
    }

    @inline(__always)
    /// Receive queues the last `pollOnce` read (0: this thread has no port to poll).
    private(set) var portsPolled = 0

    private func pollBridge(_ bridge: Bridge, cache: BridgeCaches, reader: EpochReclaimer.ReaderSlot) -> Int {
        // Going (or staying) online: publish our epoch before loading the snapshot pointer.
        bridge.reclaimer.quiescent(reader)
        let snapshot = bridge.loadSnapshot()
        var total = 0
        var polledHere = 0
        snapshot._withUnsafeGuaranteedRef { snap in
            cache.now = now
            if cache.generation != snap.generation { cache.update(to: snap) }
            let portCount = snap.ports.count
            if txSlots < portCount { growTransmitSlots(portCount) }
            var pi = index
            while pi < portCount {
                let slot = snap.ports[pi]
                pi += threadCount
                polledHere += 1
                let n = slot.receiveBurst(queue: index, into: rxBuffer)
                if n == 0 { continue }
                total += n
                let bytes = process(UnsafeMutableBufferPointer(rebasing: rxBuffer[0..<n]), bridge: bridge, snap: snap,
                                    cache: cache, slot: slot)
                slot.rxPackets.add(UInt64(n), ordering: .relaxed)
                slot.rxBytes.add(bytes, ordering: .relaxed)
            }
            // Idle: publish the rule counters the caches accumulated.
            if total == 0 && cache.batchesSinceCounterFlush != 0 { cache.flushCounters() }
            // Packet-outs (a locked queue): on idle polls, and on every 8th busy one.
            if index == 0 && (total == 0 || polls & 7 == 0) { total += drainPacketOuts(bridge, snap) }
        }
        bridge.reclaimer.quiescent(reader)
        portsPolled += polledHere
        return total
    }

    private func growProgramScratch(_ count: Int) {
        for p in [programRuns, programMatches, programTicks] { p.deallocate() }
        programMemo.deallocate()
        programMemo = .allocate(capacity: count)
        programRuns = .allocate(capacity: count)
        programRuns.initialize(repeating: 0, count: count)
        programMatches = .allocate(capacity: count)
        programMatches.initialize(repeating: 0, count: count)
        programTicks = .allocate(capacity: count)
        programTicks.initialize(repeating: 0, count: count)
        programCapacity = count
    }

    /// Only between batches (every staging area is empty then).
    private func growTransmitSlots(_ count: Int) {
        txPackets.deallocate()
        txCounts.deallocate()
        txPackets = .allocate(capacity: count * PMDThread.txCapacity)
        txCounts = .allocate(capacity: count)
        txCounts.initialize(repeating: 0, count: count)
        txSlots = count
    }

    private func drainPacketOuts(_ bridge: Bridge, _ snap: BridgeSnapshot) -> Int {
        guard !bridge.packetOutQueue.isEmpty else { return 0 }
        let outs = bridge.packetOutQueue.take(max: maxBatchSize)
        for po in outs {
            guard var p = bridge.buffers.allocate(po.bytes, inPort: po.inPort) else { continue }
            var key = FlowKey()
            var off = PacketParser.parse(p.data, length: Int(p.length), inPort: po.inPort, key: &key)
            let actions = snap.compile(po.actions, table: 0xFF, cookie: ~0)
            execute(actions, &p, &key, &off, bridge: bridge, snap: snap, mayConsume: true)
        }
        flush(bridge: bridge, snap: snap)
        return outs.count
    }

    // MARK: per-batch processing

    /// Runs the pipeline over one received burst; returns its byte count.
    private func process(_ batch: UnsafeMutableBufferPointer<PacketView>, bridge: Bridge, snap: BridgeSnapshot,
                         cache: BridgeCaches, slot: PortSlot) -> UInt64 {
        let packets = batch.baseAddress!
        let n = batch.count
        if programCapacity < snap.programTable.count { growProgramScratch(snap.programTable.count) }
        var programs = PacketPrograms(programs: snap.programTable, data: packets[0].data, length: 0, memo: programMemo,
                                      runs: programRuns, matches: programMatches, ticks: programTicks)
        var emcHits: UInt64 = 0, megaHits: UInt64 = 0, misses: UInt64 = 0, malformed: UInt64 = 0, bytes: UInt64 = 0
        let useEMC = cache.usesEMC
        let portNumbers = cache.portNumbers
        let portCount = cache.portCount
        var previous: Unmanaged<MegaflowEntry>?
        for i in 0..<min(n, 4) { oko_prefetch(packets[i].data) }
        for i in 0..<n {
            if i + 4 < n { oko_prefetch(packets[i + 4].data) }
            var p = packets[i]
            bytes &+= UInt64(p.length)
            var key = FlowKey()
            var off = PacketParser.parse(p.data, length: Int(p.length), inPort: p.inPort, key: &key)
            if off.malformed { malformed += 1 }
            programs.reset(p)
            var entry: Unmanaged<MegaflowEntry>?
            var emcSlot = -1
            // Packets of a burst often share a decision: try the previous packet's entry first (a masked
            // compare, no hashing). Only for entries that depend on no program, so nothing runs twice.
            if let last = previous, last._withUnsafeGuaranteedRef({ e in
                e.dependencies.isEmpty && !e.dead && key.masked(by: e.mask) == e.maskedKey
            }) {
                entry = last
                megaHits += 1
            } else if useEMC {
                emcSlot = Int(key.fastHash) & (BridgeCaches.emcSize - 1)
                if let e = cache.emcEntries[emcSlot], cache.emcKeys[emcSlot] == key,
                   e._withUnsafeGuaranteedRef({ !$0.dead && valid($0, &programs) }) {
                    entry = e
                    emcHits += 1
                }
            }
            if entry == nil {
                let tables = cache.tableRefs
                for t in 0..<cache.tableCount {
                    entry = tables[t]._withUnsafeGuaranteedRef { table -> Unmanaged<MegaflowEntry>? in
                        var candidate = table.find(key)
                        while let c = candidate {
                            if c._withUnsafeGuaranteedRef({ valid($0, &programs) }) { return c }
                            candidate = c._withUnsafeGuaranteedRef { $0.nextVariant }
                        }
                        return nil
                    }
                    if entry != nil {
                        megaHits += 1
                        if emcSlot >= 0 {
                            cache.emcKeys[emcSlot] = key
                            cache.emcEntries[emcSlot] = entry
                        }
                        break
                    }
                }
            }
            if entry == nil {
                misses += 1
                entry = upcall(key, &programs, bridge: bridge, snap: snap, cache: cache)
            }
            previous = entry
            entry!._withUnsafeGuaranteedRef { e in
                e.pendingPackets &+= 1
                e.pendingBytes &+= UInt64(p.length)
                let out = Int(e.singleOutput)
                if out >= 0 {
                    // Plain `output:N` (the common decision): same semantics as execute(), without the interpreter.
                    if out < portCount && portNumbers[out] != p.inPort {
                        stage(p, slot: out, bridge: bridge, snap: snap)
                    } else {
                        freeList.append(p)
                    }
                } else {
                    execute(UnsafeBufferPointer(e.actions), &p, &key, &off, bridge: bridge, snap: snap, mayConsume: true)
                }
            }
        }
        cache.batchesSinceCounterFlush += 1
        if cache.batchesSinceCounterFlush >= BridgeCaches.counterFlushInterval { cache.flushCounters() }
        // Flush program statistics once per batch.
        for id in 0..<snap.programTable.count where programRuns[id] != 0 {
            if let p = snap.programTable[id] {
                p._withUnsafeGuaranteedRef { prog in
                    prog.counters.runs.add(programRuns[id], ordering: .relaxed)
                    if programMatches[id] != 0 { prog.counters.matches.add(programMatches[id], ordering: .relaxed) }
                    // Runs 0, 16, 32... of the batch were timed: scale their time to all runs.
                    let runs = programRuns[id], timed = (runs + PacketPrograms.timingSample - 1) / PacketPrograms.timingSample
                    prog.counters.totalNanoseconds.add(clock.nanoseconds(ticks: programTicks[id] / timed * runs), ordering: .relaxed)
                }
            }
            programRuns[id] = 0
            programMatches[id] = 0
            programTicks[id] = 0
        }
        if cache.overflow { cache.flush() }
        if malformed != 0 { slot.rxErrors.add(malformed, ordering: .relaxed) }
        bump(stats.packets, UInt64(n))
        bump(stats.emcHits, emcHits)
        bump(stats.megaflowHits, megaHits)
        bump(stats.misses, misses)
        bump(stats.upcalls, misses)
        bump(stats.malformed, malformed)
        if misses != 0 { stats.megaflows.store(cache.count, ordering: .relaxed) }
        flush(bridge: bridge, snap: snap)
        return bytes
    }

    /// Slow path: walks the tables and caches the decision.
    @inline(never)
    private func upcall(_ key: FlowKey, _ programs: inout PacketPrograms, bridge: Bridge, snap: BridgeSnapshot,
                        cache: BridgeCaches) -> Unmanaged<MegaflowEntry> {
        programs.recording = true
        let d = bridge.walk(snap, key: key, programs: &programs)
        var volatile = d.rules.contains { $0.instructions.writeMetadata != nil }
        for a in d.actions {
            switch a {
            case .setField, .pushVLAN, .popVLAN, .group: volatile = true
            default: break
            }
        }
        let e = MegaflowEntry(mask: d.wildcards, maskedKey: key.masked(by: d.wildcards), dependencies: programs.recorded,
                              actions: d.actions, rules: d.rules, volatile: volatile)
        cache.insert(e, key: key, hash: key.fastHash)
        return Unmanaged.passUnretained(e)
    }

    @inline(__always)
    private func valid(_ e: MegaflowEntry, _ programs: inout PacketPrograms) -> Bool {
        if e.dependencies.isEmpty { return true }
        for (id, expected) in e.dependencies where programs.result(of: id) != expected { return false }
        return true
    }

    /// Stages a packet for transmission on port slot `slot` (transmits the slot first when it is full).
    @inline(__always)
    private func stage(_ p: PacketView, slot: Int, bridge: Bridge, snap: BridgeSnapshot) {
        var count = txCounts[slot]
        if count == PMDThread.txCapacity {
            transmit(slot: slot, snap: snap)
            count = 0
        }
        (txPackets + slot * PMDThread.txCapacity + count).initialize(to: p)
        txCounts[slot] = count + 1
    }

    private func transmit(slot si: Int, snap: BridgeSnapshot) {
        let count = txCounts[si]
        txCounts[si] = 0
        let staged = UnsafeMutableBufferPointer(start: txPackets + si * PMDThread.txCapacity, count: count)
        guard si < snap.ports.count else {
            freeList.append(contentsOf: staged)
            return
        }
        let slot = snap.ports[si]
        var bytes: UInt64 = 0
        for p in staged { bytes &+= UInt64(p.length) }
        let sent = slot.transmitBurst(queue: index, staged)
        if sent < count {
            for p in staged[sent...] { bytes &-= UInt64(p.length) }
            freeList.append(contentsOf: staged[sent...])
            slot.txDrops.add(UInt64(count - sent), ordering: .relaxed)
        }
        slot.txPackets.add(UInt64(sent), ordering: .relaxed)
        slot.txBytes.add(bytes, ordering: .relaxed)
    }

    private func flush(bridge: Bridge, snap: BridgeSnapshot) {
        for si in 0..<txSlots where txCounts[si] != 0 { transmit(slot: si, snap: snap) }
        if !freeList.isEmpty {
            freeList.withUnsafeMutableBufferPointer { bridge.buffers.free($0) }
            freeList.removeAll(keepingCapacity: true)
        }
    }

    // MARK: action execution

    @inline(__always)
    private func emit(_ p: inout PacketView, slot: Int, consume: Bool, consumed: inout Bool, bridge: Bridge, snap: BridgeSnapshot) {
        if consume && !consumed {
            stage(p, slot: slot, bridge: bridge, snap: snap)
            consumed = true
        } else if let c = bridge.buffers.clone(p) {
            stage(c, slot: slot, bridge: bridge, snap: snap)
        }
    }

    /// Executes `actions` on the packet; the packet buffer is handed to the last output or freed.
    func execute(_ actions: [CompiledAction], _ p: inout PacketView, _ key: inout FlowKey, _ off: inout HeaderOffsets,
                 bridge: Bridge, snap: BridgeSnapshot, mayConsume: Bool) {
        actions.withUnsafeBufferPointer { execute($0, &p, &key, &off, bridge: bridge, snap: snap, mayConsume: mayConsume) }
    }

    func execute(_ actions: UnsafeBufferPointer<CompiledAction>, _ p: inout PacketView, _ key: inout FlowKey, _ off: inout HeaderOffsets,
                 bridge: Bridge, snap: BridgeSnapshot, mayConsume: Bool) {
        var consumed = false
        let last = actions.count - 1
        var i = 0
        while i < actions.count {
            let isLast = mayConsume && i == last
            switch actions[i] {
            case .output(let slot):
                // OpenFlow: never back out of the ingress port unless OFPP_IN_PORT is used.
                if Int(slot) < snap.ports.count && snap.ports[Int(slot)].number != p.inPort {
                    emit(&p, slot: Int(slot), consume: isLast, consumed: &consumed, bridge: bridge, snap: snap)
                }
            case .outputInPort:
                if let s = snap.portIndex[p.inPort] { emit(&p, slot: Int(s), consume: isLast, consumed: &consumed, bridge: bridge, snap: snap) }
            case .flood, .all:
                let flood: Bool
                if case .flood = actions[i] { flood = true } else { flood = false }
                floodOut(&p, snap: snap, flood: flood, consume: isLast, consumed: &consumed, bridge: bridge)
            case .normal:
                normal(&p, key: key, snap: snap, consume: isLast, consumed: &consumed, bridge: bridge)
            case .controller(let maxLength, let table, let cookie, let tableMiss):
                let n = min(Int(p.length), Int(maxLength))
                let bytes = Array(UnsafeRawBufferPointer(start: p.data, count: n))
                _ = bridge.packetInQueue.push(PacketIn(bytes: bytes, totalLength: Int(p.length), inPort: p.inPort,
                                                       reason: tableMiss ? .noMatch : .action,
                                                       table: table, cookie: cookie, metadata: key.w1))
            case .group(let gid):
                guard let g = snap.groups[gid], !g.buckets.isEmpty else { break }
                switch g.type {
                case .indirect:
                    execute(g.buckets[0], &p, &key, &off, bridge: bridge, snap: snap, mayConsume: false)
                case .select:
                    var total = 0
                    for w in g.weights { total += Int(w) }
                    var pick = total > 0 ? Int(key.masked(by: Bridge.selectHashMask).fastHash) % total : 0
                    var b = 0
                    while b < g.weights.count - 1 && pick >= Int(g.weights[b]) {
                        pick -= Int(g.weights[b])
                        b += 1
                    }
                    execute(g.buckets[b], &p, &key, &off, bridge: bridge, snap: snap, mayConsume: false)
                case .all:
                    for bucket in g.buckets {
                        guard var c = bridge.buffers.clone(p) else { continue }
                        var k = key
                        var o = off
                        execute(bucket, &c, &k, &o, bridge: bridge, snap: snap, mayConsume: true)
                    }
                }
            case .setField(let f, let v):
                PacketEditor.setField(&p, f, v, &off)
                Bridge.applyToKey(.setField(f, v), &key)
            case .pushVLAN(let tpid):
                if PacketEditor.pushVLAN(&p, tpid: tpid, &off) { Bridge.applyToKey(.pushVLAN(tpid), &key) }
            case .popVLAN:
                if PacketEditor.popVLAN(&p, &off) { Bridge.applyToKey(.popVLAN, &key) }
            case .sendMaps(let trigger):
                trigger.fire(now: now, into: bridge.mapsNoticeQueue)
            case .decTTL:
                if !PacketEditor.decrementTTL(&p, off) {
                    bump(stats.invalidTTL, 1)
                    i = actions.count
                    continue
                }
            }
            i += 1
        }
        if mayConsume && !consumed { freeList.append(p) }
    }

    private func floodOut(_ p: inout PacketView, snap: BridgeSnapshot, flood: Bool, consume: Bool,
                          consumed: inout Bool, bridge: Bridge) {
        var targets: [Int] = []
        for (i, s) in snap.ports.enumerated() where s.number != p.inPort && !(flood && s.noFlood) { targets.append(i) }
        for (n, t) in targets.enumerated() {
            emit(&p, slot: t, consume: consume && n == targets.count - 1, consumed: &consumed, bridge: bridge, snap: snap)
        }
    }

    private func normal(_ p: inout PacketView, key: FlowKey, snap: BridgeSnapshot, consume: Bool, consumed: inout Bool,
                        bridge: Bridge) {
        let vlan = key.value(.vlanVID) & 0xFFF
        bridge.macTable.learn(mac: key.value(.ethSrc), vlan: vlan, port: p.inPort, now: now)
        let dst = key.value(.ethDst)
        if dst & 0x0100_0000_0000 == 0, let port = bridge.macTable.lookup(mac: dst, vlan: vlan, now: now) {
            if port != p.inPort, let s = snap.portIndex[port] {
                emit(&p, slot: Int(s), consume: consume, consumed: &consumed, bridge: bridge, snap: snap)
            }
            return
        }
        floodOut(&p, snap: snap, flood: true, consume: consume, consumed: &consumed, bridge: bridge)
    }
}

extension Bridge {
    /// Fields hashed by select groups (the L2-L4 addresses and ports).
    static let selectHashMask: FlowKey = {
        var m = FlowKey()
        for f in [FlowField.ethSrc, .ethDst, .ipv4Src, .ipv4Dst, .ipv6SrcHigh, .ipv6SrcLow, .ipv6DstHigh, .ipv6DstLow,
                  .ipProto, .tcpSrc, .tcpDst] { m.setAllBits(f) }
        return m
    }()
}
