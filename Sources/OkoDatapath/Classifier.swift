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
        // Built without Dictionaries (this runs on every rule change of the table): pass 1 places each distinct
        // masked key in the open-addressing table and counts its rules, prefix sums lay the runs out, pass 2
        // fills them in priority order.
        let n = sorted.count
        var cap = 4
        while cap < n * 2 { cap <<= 1 }
        slotMask = cap - 1
        slotKeys = .allocate(capacity: cap)
        slotKeys.initialize(repeating: FlowKey(), count: cap)
        slotHashes = .allocate(capacity: cap)
        slotHashes.initialize(repeating: 0, count: cap)
        slotStart = .allocate(capacity: cap)
        slotStart.initialize(repeating: -1, count: cap)
        slotCount = .allocate(capacity: cap)
        slotCount.initialize(repeating: 0, count: cap)
        refs = .allocate(capacity: max(1, n))
        let ruleSlot = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, n))
        defer { ruleSlot.deallocate() }
        for (j, r) in sorted.enumerated() {
            let k = r.match.key.masked(by: mask)
            let h = k.fastHash
            var i = Int(h) & slotMask
            while slotStart[i] >= 0 && !(slotHashes[i] == h && slotKeys[i] == k) { i = (i + 1) & slotMask }
            if slotStart[i] < 0 {
                slotStart[i] = 0
                slotKeys[i] = k
                slotHashes[i] = h
            }
            slotCount[i] += 1
            ruleSlot[j] = Int32(i)
        }
        var next: Int32 = 0
        for i in 0..<cap where slotStart[i] >= 0 {
            slotStart[i] = next
            next += slotCount[i]
        }
        let filled = UnsafeMutablePointer<Int32>.allocate(capacity: cap)
        filled.initialize(repeating: 0, count: cap)
        defer { filled.deallocate() }
        for (j, r) in sorted.enumerated() {
            let i = Int(ruleSlot[j])
            (refs + Int(slotStart[i] + filled[i])).initialize(to: RuleRef(
                priority: Int32(r.priority), program: r.match.filterProgram.map { Int64($0) } ?? -1,
                rule: Unmanaged.passUnretained(r)))
            filled[i] += 1
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
    /// The last `historyDepth` steps that led to this version, newest first: (version before the step, matches
    /// of the rules the step added, removed or modified). Flow caches replay the steps since the version they
    /// were built against and drop only the entries those rules could affect, even when a poll-mode thread
    /// did not see every intermediate version. Empty when unknown.
    let history: [(version: UInt64, changes: [FlowMatch])]
    static let historyDepth = 128
    static let maxTrackedChanges = 64

    /// A table with no known predecessor (flow caches built on another version flush).
    init(subtables: [Subtable]) {
        self.subtables = subtables.sorted { $0.maxPriority > $1.maxPriority }
        version = tableVersionCounter.add(1, ordering: .relaxed).newValue
        history = []
    }

    /// A table that replaces `previous` after exactly `changes` (the matches of the rules added, removed or
    /// modified, as the rule store recorded them; nil when unknown): no scan of the rules, so publishing a
    /// change to a large table stays cheap.
    init(subtables: [Subtable], previous: TableSnapshot, changes: [FlowMatch]?) {
        self.subtables = subtables.sorted { $0.maxPriority > $1.maxPriority }
        version = tableVersionCounter.add(1, ordering: .relaxed).newValue
        guard let changes, changes.count <= Self.maxTrackedChanges else {
            history = []
            return
        }
        var h = [(version: previous.version, changes: changes)]
        h.reserveCapacity(Self.historyDepth)
        h.append(contentsOf: previous.history.prefix(Self.historyDepth - 1))
        history = h
    }

    /// The rules changed since `version`, or nil when that is not known (too old or too many).
    func changes(since version: UInt64) -> [FlowMatch]? {
        if version == self.version { return [] }
        var all: [FlowMatch] = []
        for step in history {
            all += step.changes
            if all.count > Self.maxTrackedChanges { return nil }
            if step.version == version { return all }
        }
        return nil
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
