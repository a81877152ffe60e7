// Per-PMD flow caches of one bridge: megaflow cache and exact-match cache (EMC).
//
// Design note
// - Megaflow cache: one `MegaflowTable` per distinct megaflow mask, each an open-addressing (linear
//   probing) hash table of masked keys -> a chain of `MegaflowEntry` variants that differ only in the
//   filter-program results they depend on (at most 8, newest first). A packet probes the tables in order and
//   takes the first valid variant; any match is correct, because a packet that agrees with an entry on its
//   mask walks the same subtables with the same outcomes (programs are re-checked per packet).
// - EMC: direct-mapped, full key -> entry; only used when there are at least two masks (with one mask a
//   megaflow probe costs the same as an EMC probe, and an EMC smaller than the flow count only thrashes).
// - Ownership: `entries` owns the live entries; tables and the EMC hold unretained references. A removed
//   entry is marked dead and parked in `graveyard` (the EMC may still point at it; an EMC hit checks
//   `dead`) until the graveyard is large enough to scrub the EMC. Removal and flushes happen only between
//   batches, so no batch ever holds a reference to a freed entry. Entries count their hits in plain fields;
//   `flushCounters` adds them to the rules' atomic counters every `counterFlushInterval` batches, on idle polls
//   and on a flush; an invalidated entry hands over its hits when it dies.
// - Rule changes: a new snapshot whose tables carry a change list relative to the tables this cache was built
//   against invalidates only the entries whose region overlaps a changed rule's match (plus every entry
//   whose walk rewrote the key between tables); anything else (ports, skipped versions, big changes) flushes.
// - Threads: owned by one PMD thread; nothing here is shared.
import CDPDK

/// A cached pipeline decision.
final class MegaflowEntry {
    let mask: FlowKey
    let maskedKey: FlowKey
    /// `maskedKey.fastHash`.
    let hash: UInt32
    let dependencies: UnsafeMutableBufferPointer<(UInt32, UInt64)>
    let actions: UnsafeMutableBufferPointer<CompiledAction>
    /// The port slot when the actions are exactly one plain output (the common case), else -1.
    let singleOutput: Int32
    /// The walk changed the key between tables (set-field, VLAN, metadata, groups): any table change
    /// invalidates the entry, since its region no longer describes what later tables saw.
    let volatile: Bool
    let rules: [FlowRule]
    /// Unretained view of `rules` for the per-batch counter flush.
    let ruleRefs: UnsafeMutableBufferPointer<Unmanaged<FlowRule>>
    @exclusivity(unchecked) var pendingPackets: UInt64 = 0
    @exclusivity(unchecked) var pendingBytes: UInt64 = 0
    @exclusivity(unchecked) var dead = false
    /// Next variant with the same masked key.
    @exclusivity(unchecked) var nextVariant: Unmanaged<MegaflowEntry>?
    /// Position in `BridgeCaches.entries`.
    @exclusivity(unchecked) var index = 0
    @exclusivity(unchecked) var table: Unmanaged<MegaflowTable>?

    init(mask: FlowKey, maskedKey: FlowKey, dependencies: [(UInt32, UInt64)], actions: [CompiledAction], rules: [FlowRule],
         volatile: Bool) {
        self.mask = mask
        self.maskedKey = maskedKey
        hash = maskedKey.fastHash
        self.dependencies = .allocate(capacity: dependencies.count)
        _ = self.dependencies.initialize(from: dependencies)
        self.actions = .allocate(capacity: actions.count)
        _ = self.actions.initialize(from: actions)
        if actions.count == 1, case .output(let slot) = actions[0] { singleOutput = slot } else { singleOutput = -1 }
        self.volatile = volatile
        self.rules = rules
        ruleRefs = .allocate(capacity: rules.count)
        _ = ruleRefs.initialize(from: rules.map { Unmanaged.passUnretained($0) })
    }

    deinit {
        ruleRefs.deallocate()
        dependencies.deallocate()
        actions.deallocate()
    }

    func sameDependencies(_ other: MegaflowEntry) -> Bool {
        dependencies.count == other.dependencies.count
            && zip(dependencies, other.dependencies).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    /// True if some packet in this entry's region also matches `match` (programs aside).
    func overlaps(_ match: FlowMatch) -> Bool {
        let k = match.key, m = match.mask
        for w in 0..<FlowKey.wordCount where (maskedKey[word: w] ^ k[word: w]) & mask[word: w] & m[word: w] != 0 {
            return false
        }
        return true
    }
}

/// Megaflow entries of one mask: masked key -> chain of variants.
final class MegaflowTable {
    let mask: FlowKey
    /// The key words the mask keeps (a "miniflow"): slots store only these, so a table of /32 destinations
    /// holds 16 bytes per key instead of 96 and a probe touches one cache line.
    private let wordIndexes: UnsafeMutablePointer<Int>
    let wordCount: Int
    private var slotMask: Int
    /// `wordCount` words per slot.
    private var keys: UnsafeMutablePointer<UInt64>
    private var hashes: UnsafeMutablePointer<UInt32>
    /// nil = empty slot.
    private var heads: UnsafeMutablePointer<Unmanaged<MegaflowEntry>?>
    private(set) var used = 0
    static let maxVariants = 8

    init(mask: FlowKey, capacity: Int = 16) {
        self.mask = mask
        var indexes: [Int] = []
        for w in 0..<FlowKey.wordCount where mask[word: w] != 0 { indexes.append(w) }
        wordCount = indexes.count
        wordIndexes = .allocate(capacity: max(1, indexes.count))
        wordIndexes.initialize(from: indexes, count: indexes.count)
        slotMask = capacity - 1
        keys = .allocate(capacity: max(1, capacity * wordCount))
        keys.initialize(repeating: 0, count: max(1, capacity * wordCount))
        hashes = .allocate(capacity: capacity)
        hashes.initialize(repeating: 0, count: capacity)
        heads = .allocate(capacity: capacity)
        heads.initialize(repeating: nil, count: capacity)
    }

    deinit {
        wordIndexes.deallocate()
        keys.deallocate()
        hashes.deallocate()
        heads.deallocate()
    }

    /// `key` masked and packed: the kept words first, zeros after.
    @inline(__always)
    func compact(_ key: FlowKey) -> FlowKey {
        var c = FlowKey()
        withUnsafeMutableBytes(of: &c) { out in
            withUnsafeBytes(of: key) { k in
                withUnsafeBytes(of: mask) { m in
                    for j in 0..<wordCount {
                        let w = wordIndexes[j] &* 8
                        out.storeBytes(of: k.load(fromByteOffset: w, as: UInt64.self) & m.load(fromByteOffset: w, as: UInt64.self),
                                       toByteOffset: j &* 8, as: UInt64.self)
                    }
                }
            }
        }
        return c
    }

    @inline(__always)
    private func slotMatches(_ i: Int, _ c: FlowKey) -> Bool {
        withUnsafeBytes(of: c) { ck in
            let slot = keys + i &* wordCount
            for j in 0..<wordCount where slot[j] != ck.load(fromByteOffset: j &* 8, as: UInt64.self) { return false }
            return true
        }
    }

    @inline(__always)
    private func store(_ i: Int, _ c: FlowKey) {
        withUnsafeBytes(of: c) { ck in
            let slot = keys + i &* wordCount
            for j in 0..<wordCount { slot[j] = ck.load(fromByteOffset: j &* 8, as: UInt64.self) }
        }
    }

    /// The newest variant whose masked key equals `key` masked by this table's mask, or nil.
    @inline(__always)
    func find(_ key: FlowKey) -> Unmanaged<MegaflowEntry>? {
        let c = compact(key)
        let h = c.fastHash
        var i = Int(h) & slotMask
        while let head = heads[i] {
            if hashes[i] == h && slotMatches(i, c) { return head }
            i = (i &+ 1) & slotMask
        }
        return nil
    }

    /// Adds `e` as the newest variant of its masked key; entries it displaces (same dependencies, or beyond
    /// `maxVariants`) are passed to `displaced`.
    func insert(_ e: MegaflowEntry, displaced: (MegaflowEntry) -> Void) {
        if (used + 1) * 2 > slotMask + 1 { grow() }
        e.nextVariant = nil
        let c = compact(e.maskedKey)
        let h = c.fastHash
        var i = Int(h) & slotMask
        while let head = heads[i] {
            if hashes[i] == h && slotMatches(i, c) {
                var last = e
                var kept = 1
                var next: Unmanaged<MegaflowEntry>? = head
                while let n = next {
                    let old = n.takeUnretainedValue()
                    next = old.nextVariant
                    old.nextVariant = nil
                    if old.sameDependencies(e) || kept >= Self.maxVariants {
                        displaced(old)
                    } else {
                        last.nextVariant = n
                        last = old
                        kept += 1
                    }
                }
                heads[i] = Unmanaged.passUnretained(e)
                return
            }
            i = (i &+ 1) & slotMask
        }
        store(i, c)
        hashes[i] = h
        heads[i] = Unmanaged.passUnretained(e)
        used += 1
    }

    /// Unlinks `e` if present.
    func remove(_ e: MegaflowEntry) {
        let target = Unmanaged.passUnretained(e).toOpaque()
        let c = compact(e.maskedKey)
        let h = c.fastHash
        var i = Int(h) & slotMask
        while let head = heads[i] {
            if hashes[i] == h && slotMatches(i, c) {
                if head.toOpaque() == target {
                    if let n = e.nextVariant { heads[i] = n } else { deleteSlot(i) }
                } else {
                    var previous = head.takeUnretainedValue()
                    while let n = previous.nextVariant {
                        if n.toOpaque() == target {
                            previous.nextVariant = e.nextVariant
                            break
                        }
                        previous = n.takeUnretainedValue()
                    }
                }
                e.nextVariant = nil
                return
            }
            i = (i &+ 1) & slotMask
        }
    }

    /// Calls `body` with every entry (all variants). `body` must not change the table.
    func forEachEntry(_ body: (MegaflowEntry) -> Void) {
        for s in 0...slotMask {
            var next = heads[s]
            while let n = next {
                let e = n.takeUnretainedValue()
                next = e.nextVariant
                body(e)
            }
        }
    }

    private func moveSlot(from j: Int, to i: Int) {
        (keys + i &* wordCount).update(from: keys + j &* wordCount, count: wordCount)
        hashes[i] = hashes[j]
        heads[i] = heads[j]
        heads[j] = nil
    }

    /// Backward-shift deletion keeps linear probing free of tombstones.
    private func deleteSlot(_ start: Int) {
        var hole = start
        heads[hole] = nil
        var j = hole
        while true {
            j = (j + 1) & slotMask
            guard heads[j] != nil else { break }
            let home = Int(hashes[j]) & slotMask
            // Move slot j into the hole unless its home lies cyclically in (hole, j].
            if (j - home) & slotMask >= (j - hole) & slotMask {
                moveSlot(from: j, to: hole)
                hole = j
            }
        }
        used -= 1
    }

    private func grow() {
        let oldKeys = keys, oldHashes = hashes, oldHeads = heads, oldCapacity = slotMask + 1
        let capacity = oldCapacity * 2
        keys = .allocate(capacity: max(1, capacity * wordCount))
        keys.initialize(repeating: 0, count: max(1, capacity * wordCount))
        hashes = .allocate(capacity: capacity)
        hashes.initialize(repeating: 0, count: capacity)
        heads = .allocate(capacity: capacity)
        heads.initialize(repeating: nil, count: capacity)
        slotMask = capacity - 1
        for s in 0..<oldCapacity {
            guard let head = oldHeads[s] else { continue }
            var i = Int(oldHashes[s]) & slotMask
            while heads[i] != nil { i = (i + 1) & slotMask }
            (keys + i &* wordCount).update(from: oldKeys + s &* wordCount, count: wordCount)
            hashes[i] = oldHashes[s]
            heads[i] = head
        }
        oldKeys.deallocate()
        oldHashes.deallocate()
        oldHeads.deallocate()
    }
}

/// Per-bridge caches owned by one PMD thread.
final class BridgeCaches {
    static let emcSize = 4096
    static let maxMegaflows = 65536
    /// Changed rules beyond which a flush is cheaper than checking every entry against each.
    static let maxIncrementalChanges = 64
    var generation: UInt64 = 0
    /// What the cached decisions were computed against.
    private var portIdentities: [ObjectIdentifier] = []
    private var tableVersions: [UInt64] = []
    /// OpenFlow port number per port slot of the current snapshot (plain-output fast path).
    private(set) var portNumbers = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    private(set) var portCount = 0

    let emcKeys = UnsafeMutablePointer<FlowKey>.allocate(capacity: emcSize)
    let emcEntries = UnsafeMutablePointer<Unmanaged<MegaflowEntry>?>.allocate(capacity: emcSize)
    /// Unretained view of `tables` for the packet path.
    private(set) var tableRefs = UnsafeMutablePointer<Unmanaged<MegaflowTable>>.allocate(capacity: 8)
    private var tableRefCapacity = 8
    private(set) var tableCount = 0
    private var tables: [MegaflowTable] = []
    private var entries: [MegaflowEntry] = []
    private var graveyard: [MegaflowEntry] = []
    /// Live entries with `volatile` set (they force a full scan on a table change).
    private var volatileCount = 0
    var overflow = false
    /// Batches since the per-rule counters were last flushed (entries accumulate their hits meanwhile).
    @exclusivity(unchecked) var batchesSinceCounterFlush = 0
    /// Flush at least every this many batches (a few milliseconds at line rate).
    static let counterFlushInterval = 256
    /// Monotonic ns of the current poll (rule last-used times), set by the PMD.
    @exclusivity(unchecked) var now: UInt64 = 0
    /// Statistics of incremental invalidation (tests, diagnostics).
    private(set) var flushes = 0
    private(set) var invalidated = 0

    init() {
        emcKeys.initialize(repeating: FlowKey(), count: BridgeCaches.emcSize)
        emcEntries.initialize(repeating: nil, count: BridgeCaches.emcSize)
    }

    deinit {
        emcKeys.deallocate()
        emcEntries.deallocate()
        tableRefs.deallocate()
        portNumbers.deallocate()
    }

    var count: Int { entries.count }
    /// The EMC pays off only when a megaflow lookup may probe several masks.
    @inline(__always) var usesEMC: Bool { tableCount > 1 }

    /// Adds the hits entries accumulated to their rules' shared counters: once per interval rather than per
    /// batch, since with thousands of flows a batch touches a different entry per packet and three atomic
    /// updates per entry would cost more than the lookup.
    func flushCounters() {
        for e in entries { drain(e) }
        batchesSinceCounterFlush = 0
    }

    @inline(__always)
    private func drain(_ e: MegaflowEntry) {
        guard e.pendingPackets != 0 else { return }
        for r in e.ruleRefs {
            r._withUnsafeGuaranteedRef { $0.counters.add(packets: e.pendingPackets, bytes: e.pendingBytes, now: now) }
        }
        e.pendingPackets = 0
        e.pendingBytes = 0
    }

    func flush() {
        flushCounters()
        for i in 0..<BridgeCaches.emcSize { emcEntries[i] = nil }
        for e in entries {
            e.nextVariant = nil
            e.table = nil
        }
        entries = []
        graveyard = []
        volatileCount = 0
        tables = []
        tableCount = 0
        overflow = false
        flushes += 1
    }

    /// Brings the caches in line with `snap`: keeps what is still valid, drops the rest.
    func update(to snap: BridgeSnapshot) {
        let ports = snap.ports.map { ObjectIdentifier($0) }
        let versions = snap.tables.map(\.version)
        defer {
            generation = snap.generation
            portIdentities = ports
            tableVersions = versions
            portNumbers.deallocate()
            portNumbers = .allocate(capacity: max(1, snap.ports.count))
            for (i, slot) in snap.ports.enumerated() { (portNumbers + i).initialize(to: slot.number) }
            portCount = snap.ports.count
        }
        guard ports == portIdentities, versions.count == tableVersions.count else {
            flush()
            return
        }
        var changes: [FlowMatch] = []
        for (t, table) in snap.tables.enumerated() where table.version != tableVersions[t] {
            guard let delta = table.changes(since: tableVersions[t]) else {
                flush()
                return
            }
            changes += delta
        }
        if changes.isEmpty { return }
        if changes.count > BridgeCaches.maxIncrementalChanges {
            flush()
            return
        }
        if volatileCount > 0 {
            var i = 0
            while i < entries.count {
                let e = entries[i]
                if e.volatile || changes.contains(where: { e.overlaps($0) }) {
                    remove(e)  // swaps the last entry into slot i
                } else {
                    i += 1
                }
            }
        } else {
            // Per table: all its entries share one mask M, so an entry overlaps a rule (K, R) iff its key agrees
            // with K on M & R. When M is within R, that is one key: probe it instead of scanning the table.
            var doomed: [MegaflowEntry] = []
            for table in tables {
                for change in changes {
                    let common = table.mask.masked(by: change.mask)
                    if common == table.mask {
                        var next = table.find(change.key)
                        while let n = next {
                            let e = n.takeUnretainedValue()
                            next = e.nextVariant
                            doomed.append(e)
                        }
                    } else {
                        let key = change.key.masked(by: common)
                        table.forEachEntry { e in if e.maskedKey.masked(by: common) == key { doomed.append(e) } }
                    }
                }
            }
            for e in doomed where !e.dead { remove(e) }
        }
        if graveyard.count > BridgeCaches.emcSize { scrubEMC() }
    }

    /// Clears EMC slots that point at dead entries, then releases them.
    private func scrubEMC() {
        for i in 0..<BridgeCaches.emcSize {
            if let e = emcEntries[i], e._withUnsafeGuaranteedRef({ $0.dead }) { emcEntries[i] = nil }
        }
        graveyard = []
    }

    private func remove(_ e: MegaflowEntry) {
        e.table?._withUnsafeGuaranteedRef { $0.remove(e) }
        retire(e)
    }

    /// Marks an entry already unlinked from its table dead and parks it until the EMC is scrubbed.
    private func retire(_ e: MegaflowEntry) {
        drain(e)  // a dead entry gets no more hits
        e.table = nil
        e.dead = true
        if e.volatile { volatileCount -= 1 }
        let last = entries.count - 1
        if e.index != last {
            entries[e.index] = entries[last]
            entries[e.index].index = e.index
        }
        entries.removeLast()
        graveyard.append(e)
        invalidated += 1
    }

    /// Installs a new entry (never flushes mid-batch: the EMC and the batch hold unretained references).
    func insert(_ e: MegaflowEntry, key: FlowKey, hash: UInt32) {
        if entries.count >= BridgeCaches.maxMegaflows { overflow = true }
        var table: MegaflowTable
        if let existing = tables.first(where: { $0.mask == e.mask }) {
            table = existing
        } else {
            table = MegaflowTable(mask: e.mask)
            tables.append(table)
            if tableCount == tableRefCapacity {
                let bigger = UnsafeMutablePointer<Unmanaged<MegaflowTable>>.allocate(capacity: tableRefCapacity * 2)
                bigger.moveInitialize(from: tableRefs, count: tableCount)
                tableRefs.deallocate()
                tableRefs = bigger
                tableRefCapacity *= 2
            }
            (tableRefs + tableCount).initialize(to: Unmanaged.passUnretained(table))
            tableCount += 1
        }
        e.table = Unmanaged.passUnretained(table)
        e.index = entries.count
        entries.append(e)
        if e.volatile { volatileCount += 1 }
        table.insert(e) { old in retire(old) }
        if usesEMC {
            let slot = Int(hash) & (BridgeCaches.emcSize - 1)
            emcKeys[slot] = key
            emcEntries[slot] = Unmanaged.passUnretained(e)
        }
    }
}

/// Time-stamp counter as a clock: the poll loop reads the TSC (a few cycles) instead of clock_gettime, and
/// converts to nanoseconds with a rate calibrated once per process against CLOCK_MONOTONIC.
final class TSCClock: Sendable {
    static let shared = TSCClock()
    private let baseTicks: UInt64
    private let baseNanoseconds: UInt64
    private let nanosecondsPerTick: Double

    private init() {
        let t0 = monotonicNanoseconds(), c0 = oko_rdtsc()
        var t1 = t0
        while t1 &- t0 < 5_000_000 { t1 = monotonicNanoseconds() }
        let c1 = oko_rdtsc()
        baseTicks = c1
        baseNanoseconds = t1
        nanosecondsPerTick = c1 > c0 ? Double(t1 &- t0) / Double(c1 &- c0) : 1
    }

    @inline(__always)
    func nanoseconds(ticks: UInt64) -> UInt64 { UInt64(Double(ticks) * nanosecondsPerTick) }

    /// CLOCK_MONOTONIC nanoseconds at TSC value `ticks`.
    @inline(__always)
    func nanoseconds(at ticks: UInt64) -> UInt64 {
        baseNanoseconds &+ UInt64(Double(ticks &- baseTicks) * nanosecondsPerTick)
    }
}
