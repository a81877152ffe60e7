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
//   half its size (the logarithmic method). So a mask holds O(log n) chunks and each rule is rebuilt
//   O(log n) times over its life: adding n rules one by one costs O(n log n) subtable work, not O(n^2).
// - Several chunks of one mask become several subtables with that mask. The classifier already returns the
//   best rule over all subtables (ordered by max priority), so the split is invisible to packets; it costs
//   one more probe per chunk on a cache miss only, and the megaflow mask is unchanged.
// - Not thread-safe: it lives in the bridge's control state, under the bridge's control mutex.

/// A rule's identity inside its table.
struct RuleIdentity: Hashable {
    let priority: UInt16
    let match: FlowMatch
}

/// Rules that back one subtable.
final class RuleChunk {
    var rules: [RuleIdentity: FlowRule] = [:]
    /// The subtable built from `rules`; nil while the chunk has unpublished changes.
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
    static let tailCapacity = 256

    private struct Stored {
        var rule: FlowRule
        /// Insertion order, for listings (equal priorities list oldest first).
        let sequence: UInt64
        var chunk: RuleChunk
    }

    private var groups: [FlowKey: MaskGroup] = [:]
    private var index: [RuleIdentity: Stored] = [:]
    /// Rules with an idle or hard timeout (the only ones expiry has to look at).
    private(set) var timed: Set<RuleIdentity> = []
    private var nextSequence: UInt64 = 0
    /// True when the table changed since `snapshot()` last ran.
    private(set) var changed = false
    private var published = TableSnapshot(subtables: [])

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

    /// Inserts `rule`, replacing (and returning) a rule with the same priority and match.
    @discardableResult
    mutating func insert(_ rule: FlowRule) -> FlowRule? {
        let id = RuleIdentity(priority: rule.priority, match: rule.match)
        let replaced = remove(id)
        let group: MaskGroup
        if let g = groups[rule.match.mask] {
            group = g
        } else {
            group = MaskGroup(mask: rule.match.mask)
            groups[rule.match.mask] = group
        }
        if group.chunks.isEmpty || group.chunks[group.chunks.count - 1].rules.count >= Self.tailCapacity {
            seal(group)
            group.chunks.append(RuleChunk())
        }
        let tail = group.chunks[group.chunks.count - 1]
        tail.rules[id] = rule
        tail.subtable = nil
        index[id] = Stored(rule: rule, sequence: nextSequence, chunk: tail)
        nextSequence &+= 1
        if rule.idleTimeout > 0 || rule.hardTimeout > 0 { timed.insert(id) }
        changed = true
        return replaced
    }

    /// Swaps in a new version of an existing rule (same identity), keeping its place in listings.
    mutating func update(_ rule: FlowRule) {
        let id = RuleIdentity(priority: rule.priority, match: rule.match)
        guard var stored = index[id] else { return }
        stored.rule = rule
        stored.chunk.rules[id] = rule
        stored.chunk.subtable = nil
        index[id] = stored
        changed = true
    }

    /// Removes and returns the rule with this identity.
    @discardableResult
    mutating func remove(_ id: RuleIdentity) -> FlowRule? {
        guard let stored = index.removeValue(forKey: id) else { return nil }
        timed.remove(id)
        let chunk = stored.chunk
        chunk.rules[id] = nil
        chunk.subtable = nil
        if chunk.rules.isEmpty, let group = groups[id.match.mask] {
            group.chunks.removeAll { $0 === chunk }
            if group.chunks.isEmpty { groups[id.match.mask] = nil }
        }
        changed = true
        return stored.rule
    }

    /// Merges the newest sealed chunks while the newer is at least half the older.
    private mutating func seal(_ group: MaskGroup) {
        while group.chunks.count >= 2 {
            let newer = group.chunks[group.chunks.count - 1]
            let older = group.chunks[group.chunks.count - 2]
            guard newer.rules.count * 2 >= older.rules.count else { break }
            for (id, rule) in newer.rules {
                older.rules[id] = rule
                index[id]?.chunk = older
            }
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
                if chunk.subtable == nil { chunk.subtable = Subtable(mask: group.mask, rules: Array(chunk.rules.values)) }
                subtables.append(chunk.subtable!)
            }
        }
        published = TableSnapshot(subtables: subtables)
        changed = false
        return published
    }

    /// Number of subtables backing the published table (for tests and diagnostics).
    var chunkCount: Int { groups.values.reduce(0) { $0 + $1.chunks.count } }
}
