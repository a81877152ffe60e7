// OkoDatapath: bridges, parser, classifier, caches, actions and PMD threads.
//
// Pipeline stages (per packet, in a batch of up to 32 received on one port by one PMD thread):
//   1. parse the frame into a FlowKey (+ header offsets); malformed headers are counted, never fatal;
//   2. exact-match cache (EMC, per PMD) keyed by the full key -> megaflow entry;
//   3. megaflow cache (per PMD, tuple space over masks) keyed by the key masked with the fields the
//      classifier looked at when the entry was made;
//   4. miss ("upcall"): walk the OpenFlow 1.3 tables (tuple-space classifier per table, apply/write/clear
//      actions, write-metadata, goto-table, table miss = drop) producing a flat action list (apply-actions in
//      order, then the action set in OpenFlow order) and install it in both caches;
//   5. execute the action list (set-field with incremental checksums, VLAN push/pop, dec-TTL, output,
//      group, flood/all, normal MAC learning, controller), buffer outputs per port, transmit per burst.
//
// Caching invariants: a cached entry stores the snapshot generation it was computed under, the megaflow
// mask, and the ordered list of (filter program, result) the walk consulted. A hit re-runs exactly those
// programs on the packet (each program runs at most once per packet, results are memoised) and is used only
// if every result is the same; a program verdict itself is never cached. Any control-plane change publishes
// a new snapshot with a new generation; a PMD seeing a new generation flushes its caches before use.
// Filter programs see the packet as received (before apply-actions of earlier tables); later tables' field
// matches see set-field changes through the key.
//
// Thread model and reclamation: control-plane calls serialise on the bridge's control mutex, change the
// control-side state (rules grouped by mask in `TableRules`, see RuleStore.swift) and publish an immutable
// `BridgeSnapshot` with one atomic pointer store. PMD threads load the pointer once
// per batch without locking or reference counting, and announce quiescence after every batch; a replaced
// snapshot is retired to the `EpochReclaimer` and released only after every online PMD passed a quiescent
// point. So a packet sees one whole snapshot, changes apply within one batch, and readers never lock.
// Counters are relaxed atomics; per-rule counts are aggregated per megaflow entry and flushed once per batch.
//
// Publication is incremental and coalesced: a snapshot reuses the subtables of unchanged rule chunks, and a
// mutation publishes at once only if the last publication is older than `publicationWindow` (default
// 0.5 ms); otherwise it is marked pending and the bridge's publisher thread publishes at the window's end. So
// a stream of mutations publishes at most once per window and every change is in effect within about one
// window (plus scheduling delay). `publishPendingChanges()` publishes now: callers use it where an
// acknowledgement must imply the change is in effect (REST replies, OpenFlow barrier replies); trace and
// packet-out call it themselves. Program attach/replace/detach publish at once.
//
// The NORMAL action's MAC table (MACLearning.swift) is shared by the PMDs without locks (per-slot seqlocks).
//
// Known limits: busy/idle "cycles" are CLOCK_MONOTONIC nanoseconds; groups do not chain; a packet-out is run
// against the snapshot its PMD loaded for that poll, which may predate the packet-out by one publication.
//
// Control API (Swift, serialised per bridge): addFlow / addFlows (batch, all-or-nothing) / modifyFlows /
// deleteFlows (strict or not, cookie masks, out_port), flows(table:), flow(table:priority:match:),
// expireFlows(now:), setGroup / deleteGroup, addPort / removePort / ports(), attachProgram / replaceProgram /
// detachProgram / programs(), publishPendingChanges(), statistics, packetOut / takePacketIns,
// trace(bytes:inPort:programs:).
// Packet threads: PMDThread(bridges:index:threadCount:).start()/stop(), or pollOnce() to drive it inline.
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct GroupBucket: Sendable, Equatable {
    public var weight: UInt16
    public var actions: [FlowAction]
    public init(weight: UInt16 = 1, actions: [FlowAction]) {
        self.weight = weight
        self.actions = actions
    }
}

public enum GroupType: Sendable, Equatable { case all, select, indirect }

public struct GroupDescription: Sendable, Equatable {
    public var type: GroupType
    public var buckets: [GroupBucket]
    public init(type: GroupType, buckets: [GroupBucket]) {
        self.type = type
        self.buckets = buckets
    }
}

/// A message for the controller layer.
public struct PacketIn: Sendable, Equatable {
    public enum Reason: Sendable, Equatable { case noMatch, action, invalidTTL }
    public var bytes: [UInt8]
    public var totalLength: Int
    public var inPort: UInt32
    public var reason: Reason
    public var table: UInt8
    public var cookie: UInt64
    public var metadata: UInt64
}

/// Flat datapath action (compiled from OpenFlow actions against one snapshot).
enum CompiledAction: Sendable {
    case output(slot: Int32)
    case outputInPort
    case flood
    case all
    case normal
    /// `tableMiss`: emitted by a table-miss rule (priority 0, match-all), reported as reason no-match.
    case controller(maxLength: UInt16, table: UInt8, cookie: UInt64, tableMiss: Bool)
    case group(UInt32)
    case setField(FlowField, UInt64)
    case pushVLAN(UInt16)
    case popVLAN
    case decTTL
    case sendMaps(SendMapsTrigger)
}

struct CompiledGroup: Sendable {
    var type: GroupType
    var buckets: [[CompiledAction]]
    var weights: [UInt16]
}

/// Everything a packet thread needs, immutable once published.
final class BridgeSnapshot: @unchecked Sendable {
    let generation: UInt64
    let tables: [TableSnapshot]
    let ports: [PortSlot]
    let portIndex: [UInt32: Int32]
    let groups: [UInt32: CompiledGroup]
    let programs: [UInt32: FilterProgram]
    /// Unretained program table indexed by id (owned by `programs`) for the packet path.
    let programTable: UnsafeMutableBufferPointer<Unmanaged<FilterProgram>?>

    init(generation: UInt64, tables: [TableSnapshot], ports: [PortSlot], groups: [UInt32: CompiledGroup],
         programs: [UInt32: FilterProgram]) {
        self.generation = generation
        self.tables = tables
        self.ports = ports
        var idx: [UInt32: Int32] = [:]
        for (i, p) in ports.enumerated() { idx[p.number] = Int32(i) }
        portIndex = idx
        self.groups = groups
        self.programs = programs
        programTable = .allocate(capacity: Int(programs.keys.max() ?? 0) + 1)
        programTable.initialize(repeating: nil)
        for (id, p) in programs { programTable[Int(id)] = Unmanaged.passUnretained(p) }
    }

    deinit { programTable.deallocate() }

    func compile(_ actions: [FlowAction], table: UInt8, cookie: UInt64, tableMiss: Bool = false) -> [CompiledAction] {
        actions.compactMap { a -> CompiledAction? in
            switch a {
            case .output(let port, let maxLength):
                switch port {
                case OFPort.inPort: return .outputInPort
                case OFPort.flood: return .flood
                case OFPort.all: return .all
                case OFPort.normal: return .normal
                case OFPort.controller: return .controller(maxLength: maxLength, table: table, cookie: cookie, tableMiss: tableMiss)
                default: return portIndex[port].map { .output(slot: $0) }
                }
            case .group(let g): return .group(g)
            case .setField(let f, let v): return .setField(f, v)
            case .pushVLAN(let t): return .pushVLAN(t)
            case .popVLAN: return .popVLAN
            case .decTTL: return .decTTL
            case .sendMaps(let program, let maps, let rate):
                return .sendMaps(SendMapsTrigger(MapsNotice(program: program, maps: maps, table: table, cookie: cookie),
                                                 maxPerSecond: rate))
            }
        }
    }
}

/// Result of one classifier walk over the tables.
struct PipelineDecision {
    var actions: [CompiledAction] = []
    var rules: [FlowRule] = []
    var wildcards = FlowKey()
    var tablesVisited: [(table: UInt8, rule: FlowRule?)] = []
}

/// One rule of a batch add (`Bridge.addFlows`).
public struct FlowAddition: Sendable {
    public var table: UInt8
    public var priority: UInt16
    public var match: FlowMatch
    public var instructions: FlowInstructions
    public var cookie: UInt64
    public var idleTimeout: UInt16
    public var hardTimeout: UInt16
    public var sendFlowRemoved: Bool
    public var checkOverlap: Bool

    public init(table: UInt8 = 0, priority: UInt16, match: FlowMatch, instructions: FlowInstructions, cookie: UInt64 = 0,
                idleTimeout: UInt16 = 0, hardTimeout: UInt16 = 0, sendFlowRemoved: Bool = false, checkOverlap: Bool = false) {
        self.table = table
        self.priority = priority
        self.match = match
        self.instructions = instructions
        self.cookie = cookie
        self.idleTimeout = idleTimeout
        self.hardTimeout = hardTimeout
        self.sendFlowRemoved = sendFlowRemoved
        self.checkOverlap = checkOverlap
    }
}

/// A refused batch: the index of the first rule at fault and why (nothing of the batch was applied).
public struct FlowBatchError: Error, Equatable, CustomStringConvertible {
    public var index: Int
    public var error: FlowError
    public var description: String { "flows[\(index)]: \(error)" }
}

/// A software bridge: ports, flow tables, groups, filter programs.
public final class Bridge: @unchecked Sendable {
    public let name: String
    public let tableCount: Int
    public let buffers: any PacketBufferBackend
    let reclaimer: EpochReclaimer
    /// Longest a change waits for publication when changes arrive faster than this (0: publish every change).
    public let publicationWindowNanoseconds: UInt64
    private let published: Atomic<UnsafeMutableRawPointer>
    private let control: Mutex<ControlState>
    let macTable = MACLearningTable()
    let packetInQueue: BoundedQueue<PacketIn>
    let packetOutQueue: BoundedQueue<PendingPacketOut>
    /// SEND_MAPS notices from packet threads (bounded: `MapsNotice.queueCapacity`, extra ones dropped).
    let mapsNoticeQueue = BoundedQueue<MapsNotice>(capacity: MapsNotice.queueCapacity)
    private let publicationCount = Atomic<UInt64>(0)

    struct PendingPacketOut: Sendable {
        var bytes: [UInt8]
        var inPort: UInt32
        var actions: [FlowAction]
    }

    private struct ControlState: @unchecked Sendable {
        var current: BridgeSnapshot
        var tables: [TableRules]
        var ports: [PortSlot] = []
        var groups: [UInt32: GroupDescription] = [:]
        var programs: [UInt32: FilterProgram] = [:]
        var nextProgramID: UInt32 = 1
        /// Changes not yet published.
        var pending = false
        var lastPublished: UInt64 = 0
        /// A publisher thread runs (it exits after a quiet spell).
        var publisherRunning = false
        /// Match shapes that passed prerequisite validation.
        var validShapes: Set<MatchShape> = []
        /// Rules changed since the last compaction (chunks may be split).
        var mayBeFragmented = false
        /// When the last change was made.
        var lastChange: UInt64 = 0
    }

    public init(name: String, buffers: any PacketBufferBackend, tableCount: Int = 16,
                reclaimer: EpochReclaimer = EpochReclaimer(), packetInCapacity: Int = 1024,
                packetOutCapacity: Int = 1024, publicationWindow: Duration = .microseconds(500)) {
        self.name = name
        self.tableCount = tableCount
        self.buffers = buffers
        self.reclaimer = reclaimer
        let (seconds, attoseconds) = publicationWindow.components
        publicationWindowNanoseconds = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds / 1_000_000_000))
        let empty = BridgeSnapshot(generation: 1, tables: (0..<tableCount).map { _ in TableSnapshot(subtables: []) },
                                   ports: [], groups: [:], programs: [:])
        published = Atomic(Unmanaged.passUnretained(empty).toOpaque())
        control = Mutex(ControlState(current: empty, tables: Array(repeating: TableRules(), count: tableCount)))
        packetInQueue = BoundedQueue(capacity: packetInCapacity)
        packetOutQueue = BoundedQueue(capacity: packetOutCapacity)
    }

    /// The snapshot packet threads use; valid until the caller's next quiescent point.
    @inline(__always)
    func loadSnapshot() -> Unmanaged<BridgeSnapshot> {
        Unmanaged.fromOpaque(published.load(ordering: .acquiring))
    }

    /// Generation of the published snapshot (pending changes are not counted until published).
    public var generation: UInt64 { control.withLock { $0.current.generation } }

    /// True while some change waits for its publication.
    public var hasPendingChanges: Bool { control.withLock { $0.pending } }

    /// Number of snapshots published so far (diagnostics: how well changes coalesce).
    public var publications: UInt64 { publicationCount.load(ordering: .relaxed) }

    // MARK: publication

    /// Publishes every pending change now; on return, packets classified from now on see them.
    public func publishPendingChanges() {
        control.withLock { s in
            if s.pending { publish(&s) }
        }
    }

    /// Builds and publishes a snapshot of the control state (only changed rule chunks are rebuilt).
    private func publish(_ s: inout ControlState) {
        var tables: [TableSnapshot] = []
        tables.reserveCapacity(tableCount)
        for t in 0..<tableCount { tables.append(s.tables[t].snapshot()) }
        var next = BridgeSnapshot(generation: s.current.generation + 1, tables: tables, ports: s.ports,
                                  groups: [:], programs: s.programs)
        if !s.groups.isEmpty {
            // Groups compile against the new port set.
            let ports = next
            let groups = s.groups.mapValues { g in
                CompiledGroup(type: g.type, buckets: g.buckets.map { ports.compile($0.actions, table: 0, cookie: 0) },
                              weights: g.buckets.map(\.weight))
            }
            next = BridgeSnapshot(generation: ports.generation, tables: tables, ports: s.ports, groups: groups,
                                  programs: s.programs)
        }
        let old = s.current
        s.current = next
        s.pending = false
        s.lastPublished = monotonicNanoseconds()
        published.store(Unmanaged.passUnretained(next).toOpaque(), ordering: .releasing)
        publicationCount.add(1, ordering: .relaxed)
        reclaimer.retire(old)
    }

    /// Called after every change: publishes now, or within the window when the last publication is recent.
    private func changed(_ s: inout ControlState) {
        s.pending = true
        s.mayBeFragmented = true
        let now = monotonicNanoseconds()
        s.lastChange = now
        if publicationWindowNanoseconds == 0 || now &- s.lastPublished >= publicationWindowNanoseconds {
            publish(&s)
            // The publisher thread also compacts split masks once changes stop.
            if !s.publisherRunning && publicationWindowNanoseconds > 0 && s.tables.contains(where: \.isFragmented) {
                schedulePublisher(&s, due: now)
            }
        } else {
            schedulePublisher(&s, due: s.lastPublished &+ publicationWindowNanoseconds)
        }
    }

    private func schedulePublisher(_ s: inout ControlState, due: UInt64) {
        guard !s.publisherRunning else { return }
        s.publisherRunning = true
        if !PublisherThread.start(for: self) {
            s.publisherRunning = false
            publish(&s)  // no thread to wait for the window: publish now rather than late
        }
    }

    /// One step of the publisher thread: publishes what is due. Returns how long to sleep before the next
    /// step, or nil when the thread should exit (nothing pending for a while; the next deferral restarts it).
    fileprivate func publisherStep(idleSince: inout UInt64) -> UInt64? {
        control.withLock { s -> UInt64? in
            let now = monotonicNanoseconds()
            if s.pending {
                idleSince = now
                let due = s.lastPublished &+ publicationWindowNanoseconds
                if now >= due {
                    publish(&s)
                    return publicationWindowNanoseconds
                }
                return due - now
            }
            // Quiet since the last change (which may have published itself without this thread).
            let quiet = now &- max(idleSince, s.lastChange)
            if quiet > PublisherThread.compactAfter && s.mayBeFragmented {
                // Changes stopped: merge split masks back into one subtable each (one rebuild, off the
                // path of any acknowledgement).
                s.mayBeFragmented = false
                var fragmented = false
                for t in 0..<tableCount where s.tables[t].isFragmented {
                    s.tables[t].compact()
                    fragmented = true
                }
                if fragmented { publish(&s) }
            }
            if quiet > PublisherThread.idleExit {
                s.publisherRunning = false
                return nil
            }
            return publicationWindowNanoseconds
        }
    }

    // MARK: flows

    /// What OpenFlow prerequisite checking depends on: the mask and the prerequisite fields' values.
    private struct MatchShape: Hashable {
        let mask: FlowKey
        let prerequisites: FlowKey
        static let prerequisiteFields: FlowKey = {
            var m = FlowKey()
            for f in [FlowField.ethType, .ipProto, .vlanVID] { m.setAllBits(f) }
            return m
        }()
        init(_ match: FlowMatch) {
            mask = match.mask
            prerequisites = match.key.masked(by: MatchShape.prerequisiteFields).masked(by: match.mask)
        }
    }

    private func validate(_ match: FlowMatch, _ instructions: FlowInstructions, table: UInt8,
                          _ s: inout ControlState) throws(FlowError) {
        guard Int(table) < tableCount else { throw .badTable(table) }
        // Bulk loads repeat a few shapes: remember the ones that passed (the check walks every field).
        let shape = MatchShape(match)
        if !s.validShapes.contains(shape) {
            try match.validate()
            if s.validShapes.count >= 4096 { s.validShapes.removeAll(keepingCapacity: true) }
            s.validShapes.insert(shape)
        }
        if let p = match.filterProgram, s.programs[p] == nil { throw .unknownProgram(p) }
        if let g = instructions.gotoTable {
            guard Int(g) < tableCount else { throw .badTable(g) }
            guard g > table else { throw .gotoNotForward(from: table, to: g) }
        }
        for a in (instructions.applyActions ?? []) + (instructions.writeActions ?? []) {
            try validate(a, s)
        }
    }

    private func validate(_ a: FlowAction, _ s: borrowing ControlState) throws(FlowError) {
        switch a {
        case .output(let p, _):
            if p < OFPort.max && !s.ports.contains(where: { $0.number == p }) { throw .unknownPort(p) }
        case .group(let g):
            if s.groups[g] == nil { throw .unknownGroup(g) }
        default: break
        }
    }

    private static func overlaps(_ r: FlowRule, priority: UInt16, match: FlowMatch) -> Bool {
        r.priority == priority && r.match != match
            && r.match.key.masked(by: match.mask).masked(by: r.match.mask)
                == match.key.masked(by: r.match.mask).masked(by: match.mask)
    }

    private static func makeRule(_ a: FlowAddition, now: UInt64) -> FlowRule {
        FlowRule(table: a.table, priority: a.priority, match: a.match, instructions: a.instructions,
                 cookie: a.cookie, idleTimeout: a.idleTimeout, hardTimeout: a.hardTimeout,
                 sendFlowRemoved: a.sendFlowRemoved, counters: RuleCounters(), created: now)
    }

    /// Adds a rule; an identical (table, priority, match) rule is replaced (its counters start again).
    public func addFlow(table: UInt8 = 0, priority: UInt16, match: FlowMatch, instructions: FlowInstructions,
                        cookie: UInt64 = 0, idleTimeout: UInt16 = 0, hardTimeout: UInt16 = 0,
                        sendFlowRemoved: Bool = false, checkOverlap: Bool = false) throws(FlowError) {
        let addition = FlowAddition(table: table, priority: priority, match: match, instructions: instructions, cookie: cookie,
                                    idleTimeout: idleTimeout, hardTimeout: hardTimeout, sendFlowRemoved: sendFlowRemoved,
                                    checkOverlap: checkOverlap)
        try control.withLock { s throws(FlowError) in
            try validate(match, instructions, table: table, &s)
            let t = Int(table)
            if checkOverlap, s.tables[t].rules.contains(where: { Bridge.overlaps($0, priority: priority, match: match) }) {
                throw .overlap
            }
            s.tables[t].insert(Bridge.makeRule(addition, now: monotonicNanoseconds()))
            changed(&s)
        }
    }

    /// Adds rules all-or-nothing with one publication: every rule is validated (against the bridge and the
    /// rules before it in the batch) before any is added. Later rules replace earlier identical ones.
    public func addFlows(_ additions: [FlowAddition]) throws(FlowBatchError) {
        try control.withLock { s throws(FlowBatchError) in
            for (i, a) in additions.enumerated() {
                do throws(FlowError) {
                    try validate(a.match, a.instructions, table: a.table, &s)
                    if a.checkOverlap {
                        let inTable = s.tables[Int(a.table)].rules.contains { Bridge.overlaps($0, priority: a.priority, match: a.match) }
                        let inBatch = additions[..<i].contains { b in
                            b.table == a.table && b.priority == a.priority && b.match != a.match
                                && b.match.key.masked(by: a.match.mask).masked(by: b.match.mask)
                                    == a.match.key.masked(by: b.match.mask).masked(by: a.match.mask)
                        }
                        if inTable || inBatch { throw .overlap }
                    }
                } catch {
                    throw FlowBatchError(index: i, error: error)
                }
            }
            guard !additions.isEmpty else { return }
            let now = monotonicNanoseconds()
            for a in additions { s.tables[Int(a.table)].insert(Bridge.makeRule(a, now: now)) }
            changed(&s)
        }
    }

    private static func selects(_ r: FlowRule, match: FlowMatch, priority: UInt16?, strict: Bool,
                                cookie: UInt64, cookieMask: UInt64) -> Bool {
        guard r.cookie & cookieMask == cookie & cookieMask else { return false }
        if strict { return r.match == match && r.priority == priority }
        return r.match.isSubsumed(by: match) && (match.filterProgram == nil || r.match.filterProgram == match.filterProgram)
    }

    /// The rules of table `t` that a modify/delete selects; strict requests are index lookups, not scans.
    private func selected(_ s: ControlState, table t: Int, match: FlowMatch, strict: Bool, priority: UInt16?,
                          cookie: UInt64, cookieMask: UInt64) -> [FlowRule] {
        if strict {
            guard let priority, let r = s.tables[t].rule(RuleIdentity(priority: priority, match: match)),
                  Bridge.selects(r, match: match, priority: priority, strict: true, cookie: cookie, cookieMask: cookieMask)
            else { return [] }
            return [r]
        }
        return s.tables[t].rules.filter {
            Bridge.selects($0, match: match, priority: priority, strict: false, cookie: cookie, cookieMask: cookieMask)
        }
    }

    /// Replaces the instructions (and cookie) of matching rules, keeping their counters; returns how many.
    @discardableResult
    public func modifyFlows(table: UInt8? = nil, match: FlowMatch, strict: Bool = false, priority: UInt16? = nil,
                            instructions: FlowInstructions, cookie: UInt64 = 0, cookieMask: UInt64 = 0) throws(FlowError) -> Int {
        try control.withLock { s throws(FlowError) -> Int in
            var count = 0
            for t in 0..<tableCount where table == nil || Int(table!) == t {
                try validate(FlowMatch(), instructions, table: UInt8(t), &s)
                for r in selected(s, table: t, match: match, strict: strict, priority: priority, cookie: cookie, cookieMask: cookieMask) {
                    s.tables[t].update(r.with(instructions: instructions, cookie: r.cookie))
                    count += 1
                }
            }
            if count > 0 { changed(&s) }
            return count
        }
    }

    /// Deletes matching rules (`table` nil = all tables); returns the removed entries.
    @discardableResult
    public func deleteFlows(table: UInt8? = nil, match: FlowMatch = FlowMatch(), strict: Bool = false,
                            priority: UInt16? = nil, cookie: UInt64 = 0, cookieMask: UInt64 = 0,
                            outPort: UInt32 = OFPort.any) -> [FlowRemoved] {
        control.withLock { s -> [FlowRemoved] in
            var removed: [FlowRemoved] = []
            let now = monotonicNanoseconds()
            for t in 0..<tableCount where table == nil || Int(table!) == t {
                for r in selected(s, table: t, match: match, strict: strict, priority: priority, cookie: cookie, cookieMask: cookieMask) {
                    if outPort != OFPort.any {
                        let acts = (r.instructions.applyActions ?? []) + (r.instructions.writeActions ?? [])
                        guard acts.contains(where: { if case .output(outPort, _) = $0 { return true } else { return false } })
                        else { continue }
                    }
                    s.tables[t].remove(RuleIdentity(priority: r.priority, match: r.match))
                    removed.append(FlowRemoved(entry: Bridge.entry(r, now: now), reason: .delete))
                }
            }
            if !removed.isEmpty { changed(&s) }
            return removed
        }
    }

    static func entry(_ r: FlowRule, now: UInt64) -> FlowEntry {
        let last = r.counters.lastUsed.load(ordering: .relaxed)
        return FlowEntry(table: r.table, priority: r.priority, match: r.match, instructions: r.instructions,
                         cookie: r.cookie, idleTimeout: r.idleTimeout, hardTimeout: r.hardTimeout,
                         packets: r.counters.packets.load(ordering: .relaxed),
                         bytes: r.counters.bytes.load(ordering: .relaxed),
                         durationSeconds: Double(now &- r.created) / 1e9,
                         idleSeconds: Double(now &- max(last, r.created)) / 1e9,
                         sendFlowRemoved: r.sendFlowRemoved)
    }

    /// Rules of one table (or all), highest priority first (equal priorities oldest first).
    public func flows(table: UInt8? = nil, match: FlowMatch = FlowMatch()) -> [FlowEntry] {
        control.withLock { s in
            let now = monotonicNanoseconds()
            var out: [FlowEntry] = []
            for t in 0..<tableCount where table == nil || Int(table!) == t {
                for r in s.tables[t].sortedRules() where r.match.isSubsumed(by: match) {
                    out.append(Bridge.entry(r, now: now))
                }
            }
            return out
        }
    }

    /// The rule with exactly this table, priority and match, if any (an index lookup).
    /// A rule's identity: what `flow(table:priority:match:)` looks up.
    public struct RuleKey: Hashable, Sendable {
        public let table: UInt8
        public let priority: UInt16
        public let match: FlowMatch
    }

    /// Starts recording which rules are added, modified or removed (by any path: REST, OpenFlow, expiry),
    /// for one consumer, the configuration store, so it need not rescan every rule per change.
    public func startRuleJournal() {
        control.withLock { s in for t in s.tables.indices { s.tables[t].startJournal() } }
    }

    /// The rules changed since the last call, possibly repeated (look each up with `flow(table:priority:match:)`:
    /// absent means removed); nil when the journal was not started or outgrew its bound: read all rules.
    public func takeRuleJournal() -> [RuleKey]? {
        control.withLock { s in
            var keys: [RuleKey] = []
            var complete = true
            for t in s.tables.indices {
                guard let ids = s.tables[t].takeJournal() else {
                    complete = false
                    continue
                }
                for id in ids { keys.append(RuleKey(table: UInt8(t), priority: id.priority, match: id.match)) }
            }
            return complete ? keys : nil
        }
    }

    public func flow(table: UInt8, priority: UInt16, match: FlowMatch) -> FlowEntry? {
        control.withLock { s in
            guard Int(table) < tableCount, let r = s.tables[Int(table)].rule(RuleIdentity(priority: priority, match: match))
            else { return nil }
            return Bridge.entry(r, now: monotonicNanoseconds())
        }
    }

    /// Number of rules in one table (or all) without copying them.
    public func flowCount(table: UInt8? = nil) -> Int {
        control.withLock { s in
            guard let table else { return s.tables.reduce(0) { $0 + $1.count } }
            return Int(table) < tableCount ? s.tables[Int(table)].count : 0
        }
    }

    /// Subtables backing a table's published classifier (diagnostics: chunks of the incremental store).
    func subtableCount(table: UInt8) -> Int { control.withLock { $0.tables[Int(table)].chunkCount } }

    /// Removes rules whose idle or hard timeout expired (call periodically); returns them.
    public func expireFlows(now: UInt64 = monotonicNanoseconds()) -> [FlowRemoved] {
        control.withLock { s in
            var removed: [FlowRemoved] = []
            for t in 0..<tableCount where !s.tables[t].timed.isEmpty {
                for id in s.tables[t].timed {
                    guard let r = s.tables[t].rule(id) else { continue }
                    var reason: FlowRemovedReason?
                    if r.hardTimeout > 0 && now &- r.created >= UInt64(r.hardTimeout) * 1_000_000_000 {
                        reason = .hardTimeout
                    } else if r.idleTimeout > 0 {
                        let last = max(r.counters.lastUsed.load(ordering: .relaxed), r.created)
                        if now > last && now - last >= UInt64(r.idleTimeout) * 1_000_000_000 { reason = .idleTimeout }
                    }
                    guard let reason else { continue }
                    s.tables[t].remove(id)
                    removed.append(FlowRemoved(entry: Bridge.entry(r, now: now), reason: reason))
                }
            }
            if !removed.isEmpty { changed(&s) }
            return removed
        }
    }

    // MARK: groups, ports, programs

    private func allRules(_ s: ControlState) -> some Sequence<FlowRule> { s.tables.lazy.flatMap { $0.rules } }

    public func setGroup(_ id: UInt32, _ group: GroupDescription) throws(FlowError) {
        try control.withLock { s throws(FlowError) in
            if group.type == .indirect && group.buckets.count != 1 { throw .badGroup("indirect group needs exactly one bucket") }
            for b in group.buckets {
                for a in b.actions {
                    if case .group = a { throw .badGroup("groups may not chain in this datapath") }
                    try validate(a, s)
                }
            }
            s.groups[id] = group
            changed(&s)
        }
    }

    /// The groups as configured, by id.
    public func groups() -> [UInt32: GroupDescription] { control.withLock { $0.groups } }

    public func deleteGroup(_ id: UInt32) throws(FlowError) {
        try control.withLock { s throws(FlowError) in
            guard s.groups[id] != nil else { throw .unknownGroup(id) }
            let used = allRules(s).contains { r in
                ((r.instructions.applyActions ?? []) + (r.instructions.writeActions ?? [])).contains(.group(id))
            }
            if used { throw .groupInUse(id) }
            s.groups[id] = nil
            changed(&s)
        }
    }

    /// Attaches a port; returns its OpenFlow port number (`requested` or the lowest free number).
    @discardableResult
    public func addPort(_ port: any DatapathPort, number requested: UInt32? = nil, noFlood: Bool = false) throws(FlowError) -> UInt32 {
        try control.withLock { s throws(FlowError) -> UInt32 in
            let number: UInt32
            if let requested {
                guard requested > 0 && requested < OFPort.max else { throw .badPortNumber(requested) }
                guard !s.ports.contains(where: { $0.number == requested }) else { throw .portNumberTaken(requested) }
                number = requested
            } else {
                var n: UInt32 = 1
                while s.ports.contains(where: { $0.number == n }) { n += 1 }
                number = n
            }
            s.ports.append(PortSlot(number: number, port: port, noFlood: noFlood))
            // Tables need no rebuild: actions are compiled against the snapshot's ports during the walk.
            changed(&s)
            return number
        }
    }

    public func removePort(_ number: UInt32) throws(FlowError) {
        try control.withLock { s throws(FlowError) in
            guard s.ports.contains(where: { $0.number == number }) else { throw .unknownPort(number) }
            s.ports.removeAll { $0.number == number }
            changed(&s)
        }
    }

    public func ports() -> [PortStatistics] { control.withLock { $0.ports.map(\.statistics) } }

    /// Loads a filter program on this bridge; rules name it by the returned id.
    public func attachProgram(_ program: FilterProgram) -> UInt32 {
        control.withLock { s in
            let id = s.nextProgramID
            s.nextProgramID += 1
            s.programs[id] = program
            // Published at once: rules naming the id are validated against the control state anyway.
            publish(&s)
            return id
        }
    }

    /// Atomically replaces program `id` (rules keep naming `id`): each packet runs either the old or the new
    /// program, never neither. The returned program is the one attached: it continues the old one's
    /// statistics (runs, matches, time), so exported counters never go backwards.
    @discardableResult
    public func replaceProgram(_ id: UInt32, with program: FilterProgram) throws(FlowError) -> FilterProgram {
        try control.withLock { s throws(FlowError) -> FilterProgram in
            guard let old = s.programs[id] else { throw .unknownProgram(id) }
            let attached = program.continuingStatistics(of: old)
            s.programs[id] = attached
            publish(&s)
            return attached
        }
    }

    public func detachProgram(_ id: UInt32) throws(FlowError) {
        try control.withLock { s throws(FlowError) in
            guard s.programs[id] != nil else { throw .unknownProgram(id) }
            if allRules(s).contains(where: { $0.match.filterProgram == id }) { throw .programInUse(id) }
            s.programs[id] = nil
            publish(&s)
        }
    }

    public func programs() -> [UInt32: FilterProgramStatistics] {
        control.withLock { $0.programs.mapValues(\.statistics) }
    }

    // MARK: controller channel

    /// Packet-ins queued for the controller layer (oldest first).
    public func takePacketIns(max: Int = .max) -> [PacketIn] { packetInQueue.take(max: max) }
    public var packetInDrops: UInt64 { packetInQueue.drops.load(ordering: .relaxed) }
    /// Control-channel and control-plane counters of this bridge in one read.
    public var statistics: BridgeStatistics {
        let rules = flowCount()
        return BridgeStatistics(
            rules: rules, publications: publications,
            packetInsQueued: packetInQueue.accepted.load(ordering: .relaxed), packetInDrops: packetInDrops,
            packetInQueueDepth: packetInQueueDepth, packetInCapacity: packetInCapacity,
            packetOutsQueued: packetOutQueue.accepted.load(ordering: .relaxed), packetOutDrops: packetOutDrops,
            packetOutQueueDepth: packetOutQueueDepth, packetOutCapacity: packetOutCapacity,
            learnedMACs: macTable.count(now: monotonicNanoseconds()), macTableCapacity: macTable.capacity)
    }

    /// Packet-ins waiting for the controller layer, and the queue's bound.
    public var packetInQueueDepth: Int { packetInQueue.count }
    public var packetInCapacity: Int { packetInQueue.capacity }

    /// Queues a packet-out (executed by the bridge's first PMD against the rules in effect now, pending
    /// changes included); false if the queue is full.
    @discardableResult
    public func packetOut(bytes: [UInt8], inPort: UInt32 = OFPort.controller, actions: [FlowAction]) throws(FlowError) -> Bool {
        try control.withLock { s throws(FlowError) in
            for a in actions { try validate(a, s) }
            if s.pending { publish(&s) }
        }
        return packetOutQueue.push(PendingPacketOut(bytes: bytes, inPort: inPort, actions: actions))
    }
    public var packetOutDrops: UInt64 { packetOutQueue.drops.load(ordering: .relaxed) }
    public var packetOutQueueDepth: Int { packetOutQueue.count }
    public var packetOutCapacity: Int { packetOutQueue.capacity }

    /// The snapshot with every pending change published (trace and tests see what the API acknowledged).
    func currentSnapshotForControl() -> BridgeSnapshot {
        control.withLock { s in
            if s.pending { publish(&s) }
            return s.current
        }
    }

    // MARK: classifier walk (shared by the packet slow path and trace)

    func walk<E: ProgramEvaluator>(_ snapshot: BridgeSnapshot, key original: FlowKey, programs: inout E) -> PipelineDecision {
        var d = PipelineDecision()
        var key = original
        var table: UInt8 = 0
        var actionSet: [CompiledAction] = []
        var setFields: [FlowField: UInt64] = [:]
        var setOrder: [FlowField] = []
        var pushVLAN: UInt16?
        var popVLAN = false
        var decTTL = false
        var group: UInt32?
        var output: CompiledAction?
        while true {
            guard let rule = snapshot.tables[Int(table)].lookup(key, wildcards: &d.wildcards, programs: &programs) else {
                d.tablesVisited.append((table, nil))
                break  // OpenFlow 1.3 table miss without a miss rule: drop (the action set is not executed)
            }
            d.tablesVisited.append((table, rule))
            d.rules.append(rule)
            let ins = rule.instructions
            let miss = rule.priority == 0 && rule.match.mask.isZero && rule.match.filterProgram == nil
            if let apply = ins.applyActions {
                for a in snapshot.compile(apply, table: table, cookie: rule.cookie, tableMiss: miss) {
                    d.actions.append(a)
                    Bridge.applyToKey(a, &key)
                }
            }
            if ins.clearActions {
                setFields = [:]; setOrder = []; pushVLAN = nil; popVLAN = false; decTTL = false; group = nil; output = nil
            }
            if let write = ins.writeActions {
                for a in snapshot.compile(write, table: table, cookie: rule.cookie, tableMiss: miss) {
                    switch a {
                    case .setField(let f, let v):
                        if setFields[f] == nil { setOrder.append(f) }
                        setFields[f] = v
                    case .pushVLAN(let t): pushVLAN = t
                    case .popVLAN: popVLAN = true
                    case .decTTL: decTTL = true
                    case .group(let g): group = g
                    case .sendMaps: d.actions.append(a)  // a notice, not a packet action: fires on match
                    default: output = a
                    }
                }
            }
            if let (v, m) = ins.writeMetadata { key.w1 = (key.w1 & ~m) | (v & m) }
            guard let next = ins.gotoTable else {
                // End of pipeline: execute the action set in OpenFlow order.
                if popVLAN { actionSet.append(.popVLAN) }
                if let t = pushVLAN { actionSet.append(.pushVLAN(t)) }
                if decTTL { actionSet.append(.decTTL) }
                for f in setOrder { actionSet.append(.setField(f, setFields[f]!)) }
                if let g = group { actionSet.append(.group(g)) } else if let o = output { actionSet.append(o) }
                d.actions += actionSet
                break
            }
            table = next
        }
        // Actions whose effect depends on more than the classifier's fields make the entry exact-match.
        for a in d.actions {
            switch a {
            case .normal: d.wildcards = .all
            case .group(let g) where snapshot.groups[g]?.type == .select: d.wildcards = .all
            default: break
            }
        }
        return d
    }

    static func applyToKey(_ a: CompiledAction, _ key: inout FlowKey) {
        switch a {
        case .setField(let f, let v):
            if f == .vlanVID { key.set(f, v | 0x1000) } else { key.set(f, v) }
        case .popVLAN: key.w0 &= 0x0000_FFFF_FFFF_FFFF
        case .pushVLAN:
            if key.value(.vlanVID) & 0x1000 == 0 { key.set(.vlanVID, 0x1000) }
        default: break
        }
    }
}

/// The thread that publishes coalesced changes at the end of their window and compacts split masks once
/// changes stop. A dedicated thread (not a
/// shared pool that busy tests or services can starve) started on the first deferred change; it holds the
/// bridge weakly and exits after `idleExit` without changes.
private enum PublisherThread {
    /// Quiet time after which split masks are compacted, and after which the thread exits.
    static let compactAfter: UInt64 = 100_000_000
    static let idleExit: UInt64 = 200_000_000

    final class Context: @unchecked Sendable {
        weak var bridge: Bridge?
        init(_ bridge: Bridge) { self.bridge = bridge }
    }

    static func start(for bridge: Bridge) -> Bool {
        let context = Unmanaged.passRetained(Context(bridge))
        var tid = pthread_t()
        let created = pthread_create(&tid, nil, { arg in
            let context = Unmanaged<Context>.fromOpaque(arg!).takeRetainedValue()
            var idleSince = monotonicNanoseconds()
            while true {
                guard let bridge = context.bridge, let pause = bridge.publisherStep(idleSince: &idleSince) else { break }
                var ts = timespec(tv_sec: Int(pause / 1_000_000_000), tv_nsec: Int(pause % 1_000_000_000))
                nanosleep(&ts, nil)
            }
            return nil
        }, context.toOpaque())
        guard created == 0 else {
            context.release()
            return false
        }
        pthread_detach(tid)
        return true
    }
}

/// Counters of a bridge's controller channel and control plane (`Bridge.statistics`).
public struct BridgeStatistics: Sendable, Equatable {
    public var rules: Int
    /// Snapshots published (each a batch of coalesced changes).
    public var publications: UInt64
    /// Packet-ins accepted into the bounded queue, refused because it was full, waiting, and the bound.
    public var packetInsQueued: UInt64
    public var packetInDrops: UInt64
    public var packetInQueueDepth: Int
    public var packetInCapacity: Int
    /// The same for packet-outs waiting for the bridge's first PMD.
    public var packetOutsQueued: UInt64
    public var packetOutDrops: UInt64
    public var packetOutQueueDepth: Int
    public var packetOutCapacity: Int
    /// Live entries of the NORMAL action's MAC table, and its size.
    public var learnedMACs: Int
    public var macTableCapacity: Int
}

/// Bounded multi-producer queue for the controller channel (controller and packet-out paths only, never
/// taken by plain forwarding); counts what it accepted and what it refused when full.
final class BoundedQueue<T: Sendable>: Sendable {
    private let items = Mutex<[T]>([])
    let capacity: Int
    let drops = Atomic<UInt64>(0)
    let accepted = Atomic<UInt64>(0)

    var count: Int { items.withLock { $0.count } }

    init(capacity: Int) { self.capacity = capacity }

    func push(_ item: T) -> Bool {
        let ok = items.withLock { q -> Bool in
            guard q.count < capacity else { return false }
            q.append(item)
            return true
        }
        if ok { accepted.add(1, ordering: .relaxed) } else { drops.add(1, ordering: .relaxed) }
        return ok
    }

    func take(max: Int) -> [T] {
        items.withLock { q in
            let n = Swift.min(max, q.count)
            let out = Array(q.prefix(n))
            q.removeFirst(n)
            return out
        }
    }

    var isEmpty: Bool { items.withLock { $0.isEmpty } }
}
