// Control-side rule storage of one flow table, grouped by mask into chunks, so that a publication rebuilds
// only the subtables whose rules changed.
//
// Design note
// - A rule is identified in its table by (priority, match): an OpenFlow add with the same pair replaces it.
// - Each distinct mask has a `MaskGroup`, a list of `RuleChunk`s. Every chunk backs one immutable `Subtable`
//   of the published table. A chunk whose rules changed since the last publication has no subtable and is
//   rebuilt (cost proportional to its size) at the next publication; clean chunks hand over the subtable
//   object they already built, so a publication costs O(changed chunks + number of chunks).
// - New rules go into the group's newest ("tail") chunk. A tail holding `tailCapacity` rules is sealed and
//   a new tail opened; sealing merges the newest sealed chunk into the previous one while it is at least
//   as large (the logarithmic method, a binary counter of chunk sizes). So a mask holds O(log n) chunks
//   and each rule is rebuilt O(log n) times over its life: adding n rules one by one costs O(n log n)
//   subtable work, not O(n^2).
// - Several chunks of one mask become several subtables with that mask. The classifier already returns the
//   best rule over all subtables (ordered by max priority), so the split is invisible to packets; it costs
//   one more probe per chunk on a cache miss only, and the megaflow mask is unchanged. Once changes stop,
//   the bridge compacts each mask back into one chunk (`compact()`), so a quiet table probes once per mask.
// - Not thread-safe: it lives in the bridge's control state, under the bridge's control mutex.

/// A rule's identity inside its table. The hash is computed once, with the classifier's cheap key hash
/// (the store hashes an identity several times per change; synthesized hashing of 25 words dominated).
struct RuleIdentity: Hashable {
    let priority: UInt16
    let match: FlowMatch
    private let cachedHash: UInt32

    init(priority: UInt16, match: FlowMatch) {
        self.priority = priority
        self.match = match
        var h = match.key.fastHash &* 0x9E37_79B1 ^ match.mask.fastHash ^ UInt32(priority) << 7
        if let p = match.filterProgram { h = (h ^ p) &* 0x85EB_CA6B }
        cachedHash = h
    }

    static func == (a: RuleIdentity, b: RuleIdentity) -> Bool {
        a.cachedHash == b.cachedHash && a.priority == b.priority && a.match == b.match
    }

    func hash(into hasher: inout Hasher) { hasher.combine(cachedHash) }
}

/// A rule in the store: where it lives, so removal and merges need no dictionary work.
final class StoredRule {
    var rule: FlowRule
    let identity: RuleIdentity
    /// Insertion order, for listings (equal priorities list oldest first).
    let sequence: UInt64
    /// The chunk holding it; chunks outlive their members (emptied before they are dropped).
    unowned(unsafe) var chunk: RuleChunk
    /// Index in `chunk.members`.
    var position: Int

    init(rule: FlowRule, identity: RuleIdentity, sequence: UInt64, chunk: RuleChunk, position: Int) {
        self.rule = rule
        self.identity = identity
        self.sequence = sequence
        self.chunk = chunk
        self.position = position
    }
}

/// Rules that back one subtable.
final class RuleChunk {
    var members: [StoredRule] = []
    /// The subtable built from `members`; nil while the chunk has unpublished changes.
    var subtable: Subtable?
}

/// Every chunk of one mask, oldest (largest) first; the last one receives new rules.
final class MaskGroup {
    let mask: FlowKey
    var chunks: [RuleChunk] = []
    init(mask: FlowKey) { self.mask = mask }
}

struct TableRules {
    /// Rules a tail chunk takes before it is sealed (bounds the work of publishing one more rule).
    static let tailCapacity = 32

    private var groups: [FlowKey: MaskGroup] = [:]
    /// The group used last (bulk loads add many rules of one mask in a row).
    private var lastGroup: MaskGroup?
    private var index: [RuleIdentity: StoredRule] = [:]
    /// Rules with an idle or hard timeout (the only ones expiry has to look at).
    private(set) var timed: Set<RuleIdentity> = []
    private var nextSequence: UInt64 = 0
    /// True when the table changed since `snapshot()` last ran.
    private(set) var changed = false
    private var published = TableSnapshot(subtables: [])
    /// Matches of the rules changed since the last snapshot, for the flow caches' selective invalidation;
    /// nil once more changed than the caches track (they then flush).
    private var changedMatches: [FlowMatch]? = []

    /// Identities of the rules changed since the journal was last taken (nil: not recording); for one
    /// consumer outside the datapath, the configuration store. `journalOverflowed`: it outgrew its bound
    /// and the consumer must read the whole table again.
    private(set) var journal: [RuleIdentity]?
    private(set) var journalOverflowed = false
    static let journalBound = 4_000_000

    mutating func startJournal() {
        if journal == nil { journal = [] }
    }

    /// The journal so far (nil when it overflowed), and a fresh one.
    mutating func takeJournal() -> [RuleIdentity]? {
        guard let current = journal else { return nil }
        journal = []
        if journalOverflowed {
            journalOverflowed = false
            return nil
        }
        return current
    }

    private mutating func noteChange(priority: UInt16, _ match: FlowMatch) {
        if journal != nil, !journalOverflowed {
            if journal!.count >= Self.journalBound {
                journalOverflowed = true
                journal = []
            } else {
                journal!.append(RuleIdentity(priority: priority, match: match))
            }
        }
        guard var list = changedMatches else { return }
        changedMatches = nil  // keep the array uniquely referenced while appending
        if list.last != match { list.append(match) }
        changedMatches = list.count > TableSnapshot.maxTrackedChanges ? nil : list
    }

    var count: Int { index.count }
    var isEmpty: Bool { index.isEmpty }

    func rule(_ id: RuleIdentity) -> FlowRule? { index[id]?.rule }

    /// Every rule, unordered.
    var rules: some Sequence<FlowRule> { index.values.lazy.map(\.rule) }

    /// Every rule, highest priority first, then oldest first.
    func sortedRules() -> [FlowRule] {
        index.values.sorted { a, b in
            a.rule.priority != b.rule.priority ? a.rule.priority > b.rule.priority : a.sequence < b.sequence
        }.map(\.rule)
    }

    private mutating func group(for mask: FlowKey) -> MaskGroup {
        if let g = lastGroup, g.mask == mask { return g }
        let g: MaskGroup
        if let existing = groups[mask] {
            g = existing
        } else {
            g = MaskGroup(mask: mask)
            groups[mask] = g
        }
        lastGroup = g
        return g
    }

    /// Inserts `rule`, replacing (and returning) a rule with the same priority and match.
    @discardableResult
    mutating func insert(_ rule: FlowRule) -> FlowRule? {
        let id = RuleIdentity(priority: rule.priority, match: rule.match)
        let replaced = remove(id)
        let group = group(for: rule.match.mask)
        if group.chunks.isEmpty || group.chunks[group.chunks.count - 1].members.count >= Self.tailCapacity {
            seal(group)
            group.chunks.append(RuleChunk())
        }
        let tail = group.chunks[group.chunks.count - 1]
        let stored = StoredRule(rule: rule, identity: id, sequence: nextSequence, chunk: tail, position: tail.members.count)
        tail.members.append(stored)
        tail.subtable = nil
        index[id] = stored
        nextSequence &+= 1
        if rule.idleTimeout > 0 || rule.hardTimeout > 0 { timed.insert(id) }
        changed = true
        noteChange(priority: rule.priority, rule.match)
        return replaced
    }

    /// Swaps in a new version of an existing rule (same identity), keeping its place in listings.
    mutating func update(_ rule: FlowRule) {
        guard let stored = index[RuleIdentity(priority: rule.priority, match: rule.match)] else { return }
        stored.rule = rule
        stored.chunk.subtable = nil
        changed = true
        noteChange(priority: rule.priority, rule.match)
    }

    /// Removes and returns the rule with this identity.
    @discardableResult
    mutating func remove(_ id: RuleIdentity) -> FlowRule? {
        guard let stored = index.removeValue(forKey: id) else { return nil }
        if stored.rule.idleTimeout > 0 || stored.rule.hardTimeout > 0 { timed.remove(id) }
        let chunk = stored.chunk
        let last = chunk.members.removeLast()
        if last !== stored {
            chunk.members[stored.position] = last
            last.position = stored.position
        }
        chunk.subtable = nil
        if chunk.members.isEmpty {
            let g = group(for: id.match.mask)
            g.chunks.removeAll { $0 === chunk }
            if g.chunks.isEmpty {
                groups[id.match.mask] = nil
                lastGroup = nil
            }
        }
        changed = true
        noteChange(priority: id.priority, id.match)
        return stored.rule
    }

    /// Merges the newest sealed chunks while the newer is at least as large as the older (a binary counter:
    /// chunk sizes double from newest to oldest).
    private mutating func seal(_ group: MaskGroup) {
        while group.chunks.count >= 2 {
            let newer = group.chunks[group.chunks.count - 1]
            let older = group.chunks[group.chunks.count - 2]
            guard newer.members.count >= older.members.count else { break }
            for m in newer.members {
                m.chunk = older
                m.position = older.members.count
                older.members.append(m)
            }
            newer.members = []
            older.subtable = nil
            group.chunks.removeLast()
        }
    }

    /// The table as packet threads see it: rebuilds the subtables of changed chunks only.
    mutating func snapshot() -> TableSnapshot {
        guard changed else { return published }
        var subtables: [Subtable] = []
        for group in groups.values {
            for chunk in group.chunks {
                if chunk.subtable == nil { chunk.subtable = Subtable(mask: group.mask, rules: chunk.members.map(\.rule)) }
                subtables.append(chunk.subtable!)
            }
        }
        published = TableSnapshot(subtables: subtables, previous: published, changes: changedMatches)
        changedMatches = []
        changed = false
        return published
    }

    /// Number of subtables backing the published table (for tests and diagnostics).
    var chunkCount: Int { groups.values.reduce(0) { $0 + $1.chunks.count } }

    /// True when some mask is split over several chunks.
    var isFragmented: Bool { groups.values.contains { $0.chunks.count > 1 } }

    /// Merges every mask's chunks into one, so a quiet table costs one probe per mask again (the next
    /// snapshot rebuilds those masks' subtables once).
    mutating func compact() {
        for group in groups.values where group.chunks.count > 1 {
            let first = group.chunks[0]
            for chunk in group.chunks.dropFirst() {
                for m in chunk.members {
                    m.chunk = first
                    m.position = first.members.count
                    first.members.append(m)
                }
                chunk.members = []
            }
            group.chunks = [first]
            first.subtable = nil
            changed = true
        }
    }
}
