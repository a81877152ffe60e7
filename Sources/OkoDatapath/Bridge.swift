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
// Thread model and reclamation: control-plane calls serialise on the bridge's control mutex, build an
// immutable `BridgeSnapshot` and publish it with one atomic pointer store. PMD threads load the pointer once
// per batch without locking or reference counting, and announce quiescence after every batch; a replaced
// snapshot is retired to the `EpochReclaimer` and released only after every online PMD passed a quiescent
// point. So a packet sees one whole snapshot, changes apply within one batch, and readers never lock.
// Counters are relaxed atomics; per-rule counts are aggregated per megaflow entry and flushed once per batch.
//
// Known limits: the NORMAL action's MAC table takes a mutex per packet (only for NORMAL traffic); SCTP's
// CRC32c is not updated by set-field; busy/idle "cycles" are CLOCK_MONOTONIC nanoseconds; groups do not chain.
//
// Control API (Swift, serialised per bridge): addFlow / modifyFlows / deleteFlows (strict or not, cookie
// masks, out_port), flows(table:), expireFlows(now:), setGroup / deleteGroup, addPort / removePort / ports(),
// attachProgram / detachProgram / programs(), packetOut / takePacketIns, trace(bytes:inPort:programs:).
// Packet threads: PMDThread(bridges:index:threadCount:).start()/stop(), or pollOnce() to drive it inline.
import Synchronization

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

/// A software bridge: ports, flow tables, groups, filter programs.
public final class Bridge: @unchecked Sendable {
    public let name: String
    public let tableCount: Int
    public let buffers: any PacketBufferBackend
    let reclaimer: EpochReclaimer
    private let published: Atomic<UnsafeMutableRawPointer>
    private let control: Mutex<ControlState>
    let macTable = MACLearningTable()
    let packetInQueue: BoundedQueue<PacketIn>
    let packetOutQueue: BoundedQueue<PendingPacketOut>

    struct PendingPacketOut: Sendable {
        var bytes: [UInt8]
        var inPort: UInt32
        var actions: [FlowAction]
    }

    private struct ControlState: @unchecked Sendable {
        var current: BridgeSnapshot
        var rules: [[FlowRule]]
        var ports: [PortSlot] = []
        var groups: [UInt32: GroupDescription] = [:]
        var programs: [UInt32: FilterProgram] = [:]
        var nextProgramID: UInt32 = 1
    }

    public init(name: String, buffers: any PacketBufferBackend, tableCount: Int = 16,
                reclaimer: EpochReclaimer = EpochReclaimer(), packetInCapacity: Int = 1024,
                packetOutCapacity: Int = 1024) {
        self.name = name
        self.tableCount = tableCount
        self.buffers = buffers
        self.reclaimer = reclaimer
        let empty = BridgeSnapshot(generation: 1, tables: (0..<tableCount).map { _ in TableSnapshot(subtables: []) },
                                   ports: [], groups: [:], programs: [:])
        published = Atomic(Unmanaged.passUnretained(empty).toOpaque())
        control = Mutex(ControlState(current: empty, rules: Array(repeating: [], count: tableCount)))
        packetInQueue = BoundedQueue(capacity: packetInCapacity)
        packetOutQueue = BoundedQueue(capacity: packetOutCapacity)
    }

    /// The snapshot packet threads use; valid until the caller's next quiescent point.
    @inline(__always)
    func loadSnapshot() -> Unmanaged<BridgeSnapshot> {
        Unmanaged.fromOpaque(published.load(ordering: .acquiring))
    }

    public var generation: UInt64 { control.withLock { $0.current.generation } }

    // MARK: publication

    private func publish(_ s: inout ControlState, rebuild tables: Set<Int>) {
        var newTables = s.current.tables
        for t in tables {
            var byMask: [FlowKey: [FlowRule]] = [:]
            for r in s.rules[t] { byMask[r.match.mask, default: []].append(r) }
            newTables[t] = TableSnapshot(subtables: byMask.map { Subtable(mask: $0.key, rules: $0.value) }, previous: newTables[t])
        }
        let next = BridgeSnapshot(generation: s.current.generation + 1, tables: newTables, ports: s.ports,
                                  groups: [:], programs: s.programs)
        // Groups compile against the new port set.
        let groups = s.groups.mapValues { g in
            CompiledGroup(type: g.type, buckets: g.buckets.map { next.compile($0.actions, table: 0, cookie: 0) },
                          weights: g.buckets.map(\.weight))
        }
        let final = BridgeSnapshot(generation: next.generation, tables: newTables, ports: s.ports, groups: groups,
                                   programs: s.programs)
        let old = s.current
        s.current = final
        published.store(Unmanaged.passUnretained(final).toOpaque(), ordering: .releasing)
        reclaimer.retire(old)
    }

    // MARK: flows

    private func validate(_ match: FlowMatch, _ instructions: FlowInstructions, table: UInt8,
                          _ s: ControlState) throws(FlowError) {
        guard Int(table) < tableCount else { throw .badTable(table) }
        try match.validate()
        if let p = match.filterProgram, s.programs[p] == nil { throw .unknownProgram(p) }
        if let g = instructions.gotoTable {
            guard Int(g) < tableCount else { throw .badTable(g) }
            guard g > table else { throw .gotoNotForward(from: table, to: g) }
        }
        for a in (instructions.applyActions ?? []) + (instructions.writeActions ?? []) {
            try validate(a, s)
        }
    }

    private func validate(_ a: FlowAction, _ s: ControlState) throws(FlowError) {
        switch a {
        case .output(let p, _):
            if p < OFPort.max && !s.ports.contains(where: { $0.number == p }) { throw .unknownPort(p) }
        case .group(let g):
            if s.groups[g] == nil { throw .unknownGroup(g) }
        default: break
        }
    }

    /// Adds a rule; an identical (table, priority, match) rule is replaced (counters reset unless `resetCounts` false).
    public func addFlow(table: UInt8 = 0, priority: UInt16, match: FlowMatch, instructions: FlowInstructions,
                        cookie: UInt64 = 0, idleTimeout: UInt16 = 0, hardTimeout: UInt16 = 0,
                        sendFlowRemoved: Bool = false, checkOverlap: Bool = false) throws(FlowError) {
        try control.withLock { s throws(FlowError) in
            try validate(match, instructions, table: table, s)
            let t = Int(table)
            if checkOverlap {
                let overlapping = s.rules[t].contains { r in
                    r.priority == priority && r.match != match
                        && r.match.key.masked(by: match.mask).masked(by: r.match.mask)
                            == match.key.masked(by: r.match.mask).masked(by: match.mask)
                }
                if overlapping { throw .overlap }
            }
            s.rules[t].removeAll { $0.priority == priority && $0.match == match }
            s.rules[t].append(FlowRule(table: table, priority: priority, match: match, instructions: instructions,
                                       cookie: cookie, idleTimeout: idleTimeout, hardTimeout: hardTimeout,
                                       sendFlowRemoved: sendFlowRemoved, counters: RuleCounters(),
                                       created: monotonicNanoseconds()))
            publish(&s, rebuild: [t])
        }
    }

    private static func selects(_ r: FlowRule, match: FlowMatch, priority: UInt16?, strict: Bool,
                                cookie: UInt64, cookieMask: UInt64) -> Bool {
        guard r.cookie & cookieMask == cookie & cookieMask else { return false }
        if strict { return r.match == match && r.priority == priority }
        return r.match.isSubsumed(by: match) && (match.filterProgram == nil || r.match.filterProgram == match.filterProgram)
    }

    /// Replaces the instructions (and cookie) of matching rules, keeping their counters; returns how many.
    @discardableResult
    public func modifyFlows(table: UInt8? = nil, match: FlowMatch, strict: Bool = false, priority: UInt16? = nil,
                            instructions: FlowInstructions, cookie: UInt64 = 0, cookieMask: UInt64 = 0) throws(FlowError) -> Int {
        try control.withLock { s throws(FlowError) -> Int in
            var changed = Set<Int>()
            var count = 0
            for t in 0..<tableCount where table == nil || Int(table!) == t {
                try validate(FlowMatch(), instructions, table: UInt8(t), s)
                for (i, r) in s.rules[t].enumerated()
                where Bridge.selects(r, match: match, priority: priority, strict: strict, cookie: cookie, cookieMask: cookieMask) {
                    s.rules[t][i] = r.with(instructions: instructions, cookie: r.cookie)
                    changed.insert(t)
                    count += 1
                }
            }
            if !changed.isEmpty { publish(&s, rebuild: changed) }
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
            var changed = Set<Int>()
            let now = monotonicNanoseconds()
            for t in 0..<tableCount where table == nil || Int(table!) == t {
                s.rules[t].removeAll { r in
                    guard Bridge.selects(r, match: match, priority: priority, strict: strict, cookie: cookie,
                                         cookieMask: cookieMask) else { return false }
                    if outPort != OFPort.any {
                        let acts = (r.instructions.applyActions ?? []) + (r.instructions.writeActions ?? [])
                        guard acts.contains(where: { if case .output(outPort, _) = $0 { return true } else { return false } })
                        else { return false }
                    }
                    removed.append(FlowRemoved(entry: Bridge.entry(r, now: now), reason: .delete))
                    changed.insert(t)
                    return true
                }
            }
            if !changed.isEmpty { publish(&s, rebuild: changed) }
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

    /// Rules of one table (or all), highest priority first.
    public func flows(table: UInt8? = nil, match: FlowMatch = FlowMatch()) -> [FlowEntry] {
        control.withLock { s in
            let now = monotonicNanoseconds()
            var out: [FlowEntry] = []
            for t in 0..<tableCount where table == nil || Int(table!) == t {
                for r in s.rules[t].sorted(by: { $0.priority > $1.priority }) where r.match.isSubsumed(by: match) {
                    out.append(Bridge.entry(r, now: now))
                }
            }
            return out
        }
    }

    /// Number of rules in one table (or all) without copying them.
    public func flowCount(table: UInt8? = nil) -> Int {
        control.withLock { s in
            guard let table else { return s.rules.reduce(0) { $0 + $1.count } }
            return Int(table) < tableCount ? s.rules[Int(table)].count : 0
        }
    }

    /// Removes rules whose idle or hard timeout expired (call periodically); returns them.
    public func expireFlows(now: UInt64 = monotonicNanoseconds()) -> [FlowRemoved] {
        control.withLock { s in
            var removed: [FlowRemoved] = []
            var changed = Set<Int>()
            for t in 0..<tableCount {
                s.rules[t].removeAll { r in
                    var reason: FlowRemovedReason?
                    if r.hardTimeout > 0 && now &- r.created >= UInt64(r.hardTimeout) * 1_000_000_000 {
                        reason = .hardTimeout
                    } else if r.idleTimeout > 0 {
                        let last = max(r.counters.lastUsed.load(ordering: .relaxed), r.created)
                        if now > last && now - last >= UInt64(r.idleTimeout) * 1_000_000_000 { reason = .idleTimeout }
                    }
                    guard let reason else { return false }
                    removed.append(FlowRemoved(entry: Bridge.entry(r, now: now), reason: reason))
                    changed.insert(t)
                    return true
                }
            }
            if !changed.isEmpty { publish(&s, rebuild: changed) }
            return removed
        }
    }

    // MARK: groups, ports, programs

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
            publish(&s, rebuild: [])
        }
    }

    /// The groups as configured, by id.
    public func groups() -> [UInt32: GroupDescription] { control.withLock { $0.groups } }

    public func deleteGroup(_ id: UInt32) throws(FlowError) {
        try control.withLock { s throws(FlowError) in
            guard s.groups[id] != nil else { throw .unknownGroup(id) }
            let used = s.rules.joined().contains { r in
                ((r.instructions.applyActions ?? []) + (r.instructions.writeActions ?? [])).contains(.group(id))
            }
            if used { throw .groupInUse(id) }
            s.groups[id] = nil
            publish(&s, rebuild: [])
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
            publish(&s, rebuild: Set(0..<tableCount))
            return number
        }
    }

    public func removePort(_ number: UInt32) throws(FlowError) {
        try control.withLock { s throws(FlowError) in
            guard s.ports.contains(where: { $0.number == number }) else { throw .unknownPort(number) }
            s.ports.removeAll { $0.number == number }
            publish(&s, rebuild: Set(0..<tableCount))
        }
    }

    public func ports() -> [PortStatistics] { control.withLock { $0.ports.map(\.statistics) } }

    /// Loads a filter program on this bridge; rules name it by the returned id.
    public func attachProgram(_ program: FilterProgram) -> UInt32 {
        control.withLock { s in
            let id = s.nextProgramID
            s.nextProgramID += 1
            s.programs[id] = program
            publish(&s, rebuild: [])
            return id
        }
    }

    public func detachProgram(_ id: UInt32) throws(FlowError) {
        try control.withLock { s throws(FlowError) in
            guard s.programs[id] != nil else { throw .unknownProgram(id) }
            if s.rules.joined().contains(where: { $0.match.filterProgram == id }) { throw .programInUse(id) }
            s.programs[id] = nil
            publish(&s, rebuild: [])
        }
    }

    public func programs() -> [UInt32: FilterProgramStatistics] {
        control.withLock { $0.programs.mapValues(\.statistics) }
    }

    // MARK: controller channel

    /// Packet-ins queued for the controller layer (oldest first).
    public func takePacketIns(max: Int = .max) -> [PacketIn] { packetInQueue.take(max: max) }
    public var packetInDrops: UInt64 { packetInQueue.drops.load(ordering: .relaxed) }

    /// Queues a packet-out (executed by the bridge's first PMD); false if the queue is full.
    @discardableResult
    public func packetOut(bytes: [UInt8], inPort: UInt32 = OFPort.controller, actions: [FlowAction]) throws(FlowError) -> Bool {
        try control.withLock { s throws(FlowError) in
            for a in actions { try validate(a, s) }
        }
        return packetOutQueue.push(PendingPacketOut(bytes: bytes, inPort: inPort, actions: actions))
    }
    public var packetOutDrops: UInt64 { packetOutQueue.drops.load(ordering: .relaxed) }

    func currentSnapshotForControl() -> BridgeSnapshot { control.withLock { $0.current } }

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

/// Bounded multi-producer queue for the controller channel (not on the per-packet fast path).
final class BoundedQueue<T: Sendable>: Sendable {
    private let items = Mutex<[T]>([])
    let capacity: Int
    let drops = Atomic<UInt64>(0)

    init(capacity: Int) { self.capacity = capacity }

    func push(_ item: T) -> Bool {
        let ok = items.withLock { q -> Bool in
            guard q.count < capacity else { return false }
            q.append(item)
            return true
        }
        if !ok { drops.add(1, ordering: .relaxed) }
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

/// MAC learning table for the NORMAL action (keyed by MAC and VLAN, aged).
final class MACLearningTable: Sendable {
    private let entries = Mutex<[UInt64: (port: UInt32, seen: UInt64)]>([:])
    let agingNanoseconds: UInt64 = 300 * 1_000_000_000

    func learn(mac: UInt64, vlan: UInt64, port: UInt32, now: UInt64) {
        guard mac & 0x0100_0000_0000 == 0 else { return }  // never learn multicast sources
        entries.withLock { $0[mac | vlan << 48] = (port, now) }
    }

    func lookup(mac: UInt64, vlan: UInt64, now: UInt64) -> UInt32? {
        entries.withLock { t in
            guard let e = t[mac | vlan << 48] else { return nil }
            if now &- e.seen > agingNanoseconds {
                t[mac | vlan << 48] = nil
                return nil
            }
            return e.port
        }
    }
}
