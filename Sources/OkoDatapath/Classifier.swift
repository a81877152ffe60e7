import Synchronization

// Tuple-space-search classifier over immutable snapshots.
//
// A table snapshot holds one subtable per distinct mask; each subtable is an open-addressing hash table of
// masked keys -> a run of rules sorted by descending priority. Subtables are ordered by their highest
// priority, so a lookup stops as soon as no remaining subtable can beat the best rule found. Every subtable
// actually probed contributes its mask to the caller's wildcard accumulator (the megaflow mask).

/// Runs filter programs for the classifier (memoised per packet by the implementation).
protocol ProgramEvaluator {
    /// The result of program `id` on the current packet (1 = match).
    mutating func result(of id: UInt32) -> UInt64
}

struct RuleRef {
    let priority: Int32
    /// Filter program id, or -1.
    let program: Int64
    let rule: Unmanaged<FlowRule>
}

final class Subtable: @unchecked Sendable {
    let mask: FlowKey
    let maxPriority: Int32
    let rules: [FlowRule]  // ownership
    private let slotMask: Int
    private let slotKeys: UnsafeMutablePointer<FlowKey>
    private let slotHashes: UnsafeMutablePointer<UInt32>
    /// Per slot: start index into `refs` (-1 = empty slot) and run length.
    private let slotStart: UnsafeMutablePointer<Int32>
    private let slotCount: UnsafeMutablePointer<Int32>
    private let refs: UnsafeMutablePointer<RuleRef>

    init(mask: FlowKey, rules unsorted: [FlowRule]) {
        self.mask = mask
        let sorted = unsorted.sorted { $0.priority > $1.priority }
        rules = sorted
        maxPriority = Int32(sorted.first?.priority ?? 0)
        var groups: [FlowKey: [FlowRule]] = [:]
        var order: [FlowKey] = []
        for r in sorted {
            let k = r.match.key.masked(by: mask)
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(r)
        }
        var cap = 4
        while cap < order.count * 2 { cap <<= 1 }
        slotMask = cap - 1
        slotKeys = .allocate(capacity: cap)
        slotKeys.initialize(repeating: FlowKey(), count: cap)
        slotHashes = .allocate(capacity: cap)
        slotHashes.initialize(repeating: 0, count: cap)
        slotStart = .allocate(capacity: cap)
        slotStart.initialize(repeating: -1, count: cap)
        slotCount = .allocate(capacity: cap)
        slotCount.initialize(repeating: 0, count: cap)
        refs = .allocate(capacity: max(1, sorted.count))
        var next = 0
        for k in order {
            let h = k.fastHash
            var i = Int(h) & slotMask
            while slotStart[i] >= 0 { i = (i + 1) & slotMask }
            slotKeys[i] = k
            slotHashes[i] = h
            slotStart[i] = Int32(next)
            let run = groups[k]!
            slotCount[i] = Int32(run.count)
            for r in run {
                (refs + next).initialize(to: RuleRef(priority: Int32(r.priority),
                                                     program: r.match.filterProgram.map { Int64($0) } ?? -1,
                                                     rule: Unmanaged.passUnretained(r)))
                next += 1
            }
        }
    }

    deinit {
        slotKeys.deallocate()
        slotHashes.deallocate()
        slotStart.deallocate()
        slotCount.deallocate()
        refs.deallocate()
    }

    /// Best rule in this subtable with priority above `floor` whose program (if any) returns 1.
    @inline(__always)
    func lookup<E: ProgramEvaluator>(_ key: FlowKey, above floor: Int32, programs: inout E) -> RuleRef? {
        let mk = key.masked(by: mask)
        let h = mk.fastHash
        var i = Int(h) & slotMask
        while true {
            let start = slotStart[i]
            if start < 0 { return nil }
            if slotHashes[i] == h && slotKeys[i] == mk {
                let end = Int(start) + Int(slotCount[i])
                var j = Int(start)
                while j < end {
                    let r = refs[j]
                    if r.priority <= floor { return nil }
                    if r.program < 0 || programs.result(of: UInt32(r.program)) == 1 { return r }
                    j += 1
                }
                return nil
            }
            i = (i + 1) & slotMask
        }
    }
}

/// Source of `TableSnapshot.version` (unique per process, never reused, unlike object addresses).
private let tableVersionCounter = Atomic<UInt64>(1)

/// One flow table: subtables ordered by max priority (immutable).
final class TableSnapshot: Sendable {
    let subtables: [Subtable]
    /// Unique identity of this table version.
    let version: UInt64
    /// The version `changes` is relative to (0 = none).
    let previousVersion: UInt64
    /// Matches of the rules added, removed or modified since `previousVersion` (nil = unknown), so that
    /// flow caches can drop only the entries these rules could affect.
    let changes: [FlowMatch]?

    /// `previous`: the table this one replaces, to record what changed (rules are compared by identity: an
    /// unchanged rule keeps its `FlowRule` object, a modified one gets a new object).
    init(subtables: [Subtable], previous: TableSnapshot? = nil) {
        self.subtables = subtables.sorted { $0.maxPriority > $1.maxPriority }
        version = tableVersionCounter.add(1, ordering: .relaxed).newValue
        guard let previous else {
            previousVersion = 0
            changes = nil
            return
        }
        previousVersion = previous.version
        var before = Set<ObjectIdentifier>()
        for st in previous.subtables { for r in st.rules { before.insert(ObjectIdentifier(r)) } }
        var delta: [FlowMatch] = []
        var kept = 0
        for st in subtables {
            for r in st.rules {
                if before.contains(ObjectIdentifier(r)) { kept += 1 } else { delta.append(r.match) }
            }
        }
        if kept < before.count {
            var after = Set<ObjectIdentifier>()
            for st in subtables { for r in st.rules { after.insert(ObjectIdentifier(r)) } }
            for st in previous.subtables { for r in st.rules where !after.contains(ObjectIdentifier(r)) { delta.append(r.match) } }
        }
        changes = delta
    }

    var ruleCount: Int { subtables.reduce(0) { $0 + $1.rules.count } }

    /// The highest-priority matching rule; `wildcards` gains the masks of the subtables probed.
    @inline(__always)
    func lookup<E: ProgramEvaluator>(_ key: FlowKey, wildcards: inout FlowKey, programs: inout E) -> FlowRule? {
        var best: RuleRef?
        var floor: Int32 = -1
        for st in subtables {
            if st.maxPriority <= floor { break }
            wildcards.formUnion(st.mask)
            if let r = st.lookup(key, above: floor, programs: &programs) {
                best = r
                floor = r.priority
            }
        }
        return best?.rule.takeUnretainedValue()
    }
}
