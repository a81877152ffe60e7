// SwitchService: the control plane the management API (and later the OpenFlow endpoint and okod) drives.
//
// - Holds bridges (`OkoDatapath.Bridge`) by name with what the datapath does not keep: datapath id, fail
//   mode, each port's devargs, and stable rule ids. Rules themselves (match, instructions, counters) live
//   only in the bridge; a rule id is a service-side number keyed by (table, priority, match), assigned the
//   first time the service sees the rule (added here or found in a listing), so rules added by OpenFlow
//   get ids too.
// - Ports are created through an injected `PortFactory` (devargs -> DatapathPort): okod plugs in DPDK,
//   tests use in-memory ports.
// - Converts `FlowSpec` (syntax, OkoSyntax) to datapath `FlowMatch`/`FlowInstructions`/`FlowAction` and
//   back; what the datapath cannot do (ipv6_flabel, send_maps, ...) is a `SwitchError.unprocessable`.
// - Threads: every method may be called concurrently (HTTP handlers run in parallel). Service state sits
//   behind one Mutex held only for dictionary work; bridge calls serialise on the bridge's own mutex.
//   Bulk adds are all-or-nothing: converted first, then handed to the bridge as one batch (validated whole,
//   one publication), under the service's per-bridge change lock so concurrent changes do not interleave.
// - Every mutating method publishes the bridge's pending changes before it returns: an acknowledged change
//   is in effect for packets (the bridge otherwise coalesces publications over a short window).
import Foundation
import OkoDatapath
import OkoSyntax
import Synchronization

/// Errors of the control plane, each mapping to one HTTP status.
public enum SwitchError: Error, CustomStringConvertible, Sendable, Equatable {
    case notFound(String)
    case conflict(String)
    /// Well-formed but not doable (unknown port in an action, missing prerequisite, unsupported field).
    case unprocessable(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .notFound(let s), .conflict(let s), .unprocessable(let s), .invalid(let s): s
        }
    }
}

/// Creates datapath ports from DPDK-style devargs (`net_af_packet0,iface=veth0`).
public protocol PortFactory: Sendable {
    func makePort(devargs: String, name: String?, buffers: any PacketBufferBackend) throws -> any DatapathPort
}

/// Seam for the program runtime (loading ELF objects, maps): implemented elsewhere, not routed yet.
public protocol ProgramCatalogue: Sendable {
    /// Number of programs loaded on `bridge` (for the bridge summary).
    func programCount(bridge: String) -> Int
    /// Metric families of programs and maps (`oko_program_*`, `oko_map_*`).
    func metricFamilies() -> [MetricFamily]
    /// The datapath program id behind the operator's `filter_prog=N` (nil: no such program).
    func datapathProgramID(bridge: String, program: UInt32) -> UInt32?
    /// The operator's id for a datapath program id (for listing rules).
    func operatorProgramID(bridge: String, datapathID: UInt32) -> UInt32?
}

extension ProgramCatalogue {
    public func datapathProgramID(bridge: String, program: UInt32) -> UInt32? { program }
    public func operatorProgramID(bridge: String, datapathID: UInt32) -> UInt32? { datapathID }
}

/// A rule as the service reports it.
public struct FlowRecord: Sendable {
    public var id: UInt64
    public var spec: FlowSpec
    public var entry: FlowEntry
    /// Who added the rule through this service (`rest`, `config`, ...); `openflow` for rules the service
    /// first saw in the bridge (added by the OpenFlow endpoint directly).
    public var origin: String
    /// The spec's JSON, ovs-ofctl text and JSON fragments, rendered once per rule definition (see
    /// `BridgeRecord.specs`); listing splices the live counters between the fragments.
    var rendered: RenderedFlow? = nil
}

public struct BridgeSummary: Sendable {
    public var name: String
    public var datapathID: UInt64
    public var failMode: String
    public var ports: Int
    public var flows: Int
    public var programs: Int
}

public struct PortRecord: Sendable {
    public var statistics: PortStatistics
    public var devargs: String
}

public final class SwitchService: Sendable {
    private struct RuleKey: Hashable {
        var table: UInt8
        var priority: UInt16
        var match: FlowMatch
    }

    private final class BridgeRecord: @unchecked Sendable {
        let bridge: Bridge
        let datapathID: UInt64
        let failMode: String
        // Guarded by the service's mutex.
        var devargs: [UInt32: String] = [:]
        var ids: [RuleKey: UInt64] = [:]
        var origins: [RuleKey: String] = [:]
        /// The FlowSpec rendered for each rule, with the rule it was rendered from (counters zeroed):
        /// listing rules reuses it while the rule is unchanged (rendering is most of a list's cost).
        var specs: [RuleKey: (definition: FlowEntry, spec: FlowSpec, rendered: RenderedFlow)] = [:]
        var nextID: UInt64 = 1
        /// Serialises multi-step changes (bulk add with rollback) on this bridge.
        let changeLock = Mutex(())
        init(bridge: Bridge, datapathID: UInt64, failMode: String) {
            self.bridge = bridge
            self.datapathID = datapathID
            self.failMode = failMode
        }
    }

    private let state = Mutex<[String: BridgeRecord]>([:])
    private let portFactory: any PortFactory
    private let makeBuffers: @Sendable () -> any PacketBufferBackend
    public let programs: (any ProgramCatalogue)?
    private let pmds = Mutex<[PMDThread]>([])
    public let ready = Atomic<Bool>(true)
    /// Rules one table may hold (okod's `limits.max_rules_per_table`); a bulk add beyond it changes nothing.
    public let maxRulesPerTable = Atomic<Int>(Int.max)
    private let bridgesChanged = Mutex<(@Sendable ([Bridge]) -> Void)?>(nil)

    /// Called (outside the service's lock) with every bridge after one is created or deleted: okod uses it
    /// to give its poll-mode threads the new set.
    public func onBridgesChanged(_ handler: @escaping @Sendable ([Bridge]) -> Void) {
        bridgesChanged.withLock { $0 = handler }
    }

    /// Every bridge, ordered by name.
    public var bridges: [Bridge] { state.withLock { records in records.keys.sorted().map { records[$0]!.bridge } } }

    private func notifyBridgesChanged() {
        guard let handler = bridgesChanged.withLock({ $0 }) else { return }
        handler(bridges)
    }

    public init(portFactory: any PortFactory, programs: (any ProgramCatalogue)? = nil,
                buffers: @escaping @Sendable () -> any PacketBufferBackend = { InMemoryPacketBuffers() }) {
        self.portFactory = portFactory
        self.programs = programs
        self.makeBuffers = buffers
    }

    /// Registers a PMD thread so its counters are exported (scheduling PMDs is okod's business).
    public func register(pmd: PMDThread) { pmds.withLock { $0.append(pmd) } }
    /// Replaces the exported poll-mode threads (okod restarts them when the bridge set changes).
    public func replacePMDs(_ threads: [PMDThread]) { pmds.withLock { $0 = threads } }
    public var pmdThreads: [PMDThread] { pmds.withLock { $0 } }

    // MARK: bridges

    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 32,
            first.isASCII, first.properties.isAlphabetic || ("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0))
        }
    }

    @discardableResult
    public func createBridge(name: String, datapathID: UInt64? = nil, failMode: String = "secure") throws(SwitchError) -> Bridge {
        guard Self.isValidName(name) else {
            throw .invalid("name: '\(name)' must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
        }
        let created = try state.withLock { bridges throws(SwitchError) -> Bridge in
            guard bridges[name] == nil else { throw .conflict("bridge '\(name)' already exists") }
            let dpid = datapathID ?? UInt64(truncatingIfNeeded: name.utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 }) & 0xFFFF_FFFF_FFFF
            let bridge = Bridge(name: name, buffers: makeBuffers())
            bridges[name] = BridgeRecord(bridge: bridge, datapathID: dpid, failMode: failMode)
            return bridge
        }
        notifyBridgesChanged()
        return created
    }

    public func deleteBridge(name: String) throws(SwitchError) {
        (programs as? LoadedProgramCatalogue)?.forgetBridge(name)
        try state.withLock { bridges throws(SwitchError) in
            guard bridges.removeValue(forKey: name) != nil else { throw .notFound("bridge '\(name)' does not exist") }
        }
        notifyBridgesChanged()
    }

    public func bridge(named name: String) throws(SwitchError) -> Bridge { try record(name).bridge }

    private func record(_ name: String) throws(SwitchError) -> BridgeRecord {
        guard let r = state.withLock({ $0[name] }) else { throw .notFound("bridge '\(name)' does not exist") }
        return r
    }

    public func bridgeNames() -> [String] { state.withLock { $0.keys.sorted() } }

    public func summary(_ name: String) throws(SwitchError) -> BridgeSummary {
        let r = try record(name)
        return BridgeSummary(name: name, datapathID: r.datapathID, failMode: r.failMode, ports: r.bridge.ports().count,
                             flows: r.bridge.flowCount(),
                             programs: programs?.programCount(bridge: name) ?? r.bridge.programs().count)
    }

    // MARK: ports

    public func ports(bridge name: String) throws(SwitchError) -> [PortRecord] {
        let r = try record(name)
        let devargs = state.withLock { _ in r.devargs }
        return r.bridge.ports().sorted { $0.number < $1.number }.map { PortRecord(statistics: $0, devargs: devargs[$0.number] ?? "") }
    }

    public func port(bridge name: String, number: UInt32) throws(SwitchError) -> PortRecord {
        guard let p = try ports(bridge: name).first(where: { $0.statistics.number == number }) else {
            throw .notFound("port \(number) does not exist on bridge '\(name)'")
        }
        return p
    }

    public func addPort(bridge name: String, devargs: String, number: UInt32?, portName: String?) throws(SwitchError) -> PortRecord {
        let r = try record(name)
        if let portName, r.bridge.ports().contains(where: { $0.name == portName }) {
            throw .conflict("a port named '\(portName)' already exists on bridge '\(name)'")
        }
        let port: any DatapathPort
        do {
            port = try portFactory.makePort(devargs: devargs, name: portName, buffers: r.bridge.buffers)
        } catch {
            throw .unprocessable("devargs '\(devargs)': \(error)")
        }
        let assigned: UInt32
        do {
            assigned = try r.bridge.addPort(port, number: number)
        } catch {
            switch error {
            case .portNumberTaken: throw .conflict(error.description)
            default: throw .unprocessable(error.description)
            }
        }
        r.bridge.publishPendingChanges()
        state.withLock { _ in r.devargs[assigned] = devargs }
        return try self.port(bridge: name, number: assigned)
    }

    public func removePort(bridge name: String, number: UInt32) throws(SwitchError) {
        let r = try record(name)
        do { try r.bridge.removePort(number) } catch { throw .notFound("port \(number) does not exist on bridge '\(name)'") }
        r.bridge.publishPendingChanges()
        state.withLock { _ in r.devargs[number] = nil }
    }

    // MARK: flows

    /// Adds rules all-or-nothing; returns them with their ids.
    public func addFlows(bridge name: String, _ specs: [FlowSpec], origin: String = "rest") throws(SwitchError) -> [FlowRecord] {
        let r = try record(name)
        // Convert everything first so syntax/semantic errors refuse the whole batch before any change.
        var converted: [(FlowSpec, FlowMatch, FlowInstructions)] = []
        for (index, spec) in specs.enumerated() {
            do {
                var match = try FlowConversion.match(spec)
                if let program = match.filterProgram, let programs {
                    guard let datapathID = programs.datapathProgramID(bridge: name, program: program) else {
                        throw SwitchError.unprocessable("filter_prog=\(program): no such program on bridge \(name)")
                    }
                    match.filterProgram = datapathID
                }
                converted.append((spec, match, try FlowConversion.instructions(spec)))
            } catch SwitchError.unprocessable(let message) {
                throw .unprocessable(specs.count > 1 ? "flows[\(index)]: \(message)" : message)
            } catch {
                throw .unprocessable(specs.count > 1 ? "flows[\(index)]: \(error)" : "\(error)")
            }
        }
        return try r.changeLock.withLock { _ throws(SwitchError) -> [FlowRecord] in
            try checkRuleLimit(converted.map { RuleKey(table: $0.0.table, priority: $0.0.priority, match: $0.1) },
                               bridge: r.bridge)
            // One all-or-nothing batch and one publication, in effect when this returns.
            let additions = converted.map { spec, match, instructions in
                FlowAddition(table: spec.table, priority: spec.priority, match: match, instructions: instructions,
                             cookie: spec.cookie, idleTimeout: spec.idleTimeout, hardTimeout: spec.hardTimeout,
                             sendFlowRemoved: spec.sendFlowRemoved, checkOverlap: spec.checkOverlap)
            }
            do throws(FlowBatchError) {
                try r.bridge.addFlows(additions)
            } catch {
                let prefix = specs.count > 1 ? "flows[\(error.index)]: " : ""
                if error.error == .overlap { throw .conflict(prefix + "\(error.error)") }
                throw .unprocessable(prefix + "\(error.error)")
            }
            r.bridge.publishPendingChanges()
            let added = additions.map { RuleKey(table: $0.table, priority: $0.priority, match: $0.match) }
            state.withLock { _ in for key in added { r.origins[key] = origin } }
            return added.compactMap { key in
                r.bridge.flow(table: key.table, priority: key.priority, match: key.match).map { self.record(for: $0, in: r) }
            }
        }
    }

    /// Refuses a batch that would take a table over `maxRulesPerTable` (rules it replaces do not count);
    /// costs the batch, not the table.
    private func checkRuleLimit(_ keys: [RuleKey], bridge: Bridge) throws(SwitchError) {
        let limit = maxRulesPerTable.load(ordering: .relaxed)
        guard limit != Int.max else { return }
        var added: [UInt8: Int] = [:]
        for key in Set(keys) where bridge.flow(table: key.table, priority: key.priority, match: key.match) == nil {
            added[key.table, default: 0] += 1
        }
        for (table, extra) in added.sorted(by: { $0.key < $1.key }) {
            let count = bridge.flowCount(table: table) + extra
            guard count > limit else { continue }
            throw .unprocessable("limits.max_rules_per_table: table \(table) would hold \(count) rules; the limit is \(limit)")
        }
    }

    /// A filter match with the operator's program id replaced by the datapath's; an unknown program
    /// becomes an id no rule can use, so the filter selects nothing.
    private func datapathMatch(_ match: FlowMatch, bridge: String) -> FlowMatch {
        guard let p = match.filterProgram, let programs else { return match }
        var m = match
        m.filterProgram = programs.datapathProgramID(bridge: bridge, program: p) ?? UInt32.max
        return m
    }

    private func record(for entry: FlowEntry, in r: BridgeRecord) -> FlowRecord {
        let key = RuleKey(table: entry.table, priority: entry.priority, match: entry.match)
        var named = entry
        if let p = entry.match.filterProgram, let programs {
            named.match.filterProgram = programs.operatorProgramID(bridge: r.bridge.name, datapathID: p) ?? p
        }
        named.packets = 0
        named.bytes = 0
        named.durationSeconds = 0
        named.idleSeconds = 0
        let definition = named
        // One lock round for the id, the origin and the cached rendering (listing is per request).
        let (id, origin, cached) = state.withLock { _ -> (UInt64, String, (definition: FlowEntry, spec: FlowSpec, rendered: RenderedFlow)?) in
            let origin = r.origins[key] ?? "openflow"
            let cached = r.specs[key]
            if let id = r.ids[key] { return (id, origin, cached) }
            let id = r.nextID
            r.nextID += 1
            r.ids[key] = id
            return (id, origin, cached)
        }
        if let cached, cached.definition == definition {
            return FlowRecord(id: id, spec: cached.spec, entry: entry, origin: origin, rendered: cached.rendered)
        }
        let spec = FlowConversion.spec(definition)
        let rendered = RenderedFlow(spec: spec)
        state.withLock { _ in r.specs[key] = (definition, spec, rendered) }
        return FlowRecord(id: id, spec: spec, entry: entry, origin: origin, rendered: rendered)
    }

    /// Rules at least as specific as `filter`'s match (and of its table/cookie when given), by id order
    /// within priority order as the bridge lists them.
    public func flows(bridge name: String, table: UInt8? = nil, filter: FlowSpec = FlowSpec(),
                      cookie: UInt64? = nil, cookieMask: UInt64 = ~0) throws(SwitchError) -> [FlowRecord] {
        let r = try record(name)
        let match: FlowMatch
        do { match = datapathMatch(try FlowConversion.match(filter, checkPrerequisites: false), bridge: name) } catch { throw .invalid("\(error)") }
        var entries = r.bridge.flows(table: table, match: match)
        if cookie != nil || match.filterProgram != nil {  // (a plain listing copies nothing)
            entries = entries
                .filter { cookie == nil || $0.cookie & cookieMask == cookie! & cookieMask }
                .filter { match.filterProgram == nil || $0.match.filterProgram == match.filterProgram }
        }
        let records = entries.map { record(for: $0, in: r) }
        // An unfiltered list is the live rule set already; a filtered one asks the bridge again.
        let unfiltered = table == nil && match == FlowMatch() && cookie == nil
        pruneIDs(r, live: unfiltered ? entries : nil)
        return records.sorted { $0.id < $1.id }
    }

    /// Every rule's id, table and live counters, by id: what a scrape needs, without rendering specs
    /// (ids are assigned and forgotten exactly as `flows(bridge:)` does).
    public func ruleCounters(bridge name: String) throws(SwitchError) -> [(id: UInt64, table: UInt8, packets: UInt64, bytes: UInt64)] {
        let r = try record(name)
        let entries = r.bridge.flows()
        var out: [(id: UInt64, table: UInt8, packets: UInt64, bytes: UInt64)] = []
        out.reserveCapacity(entries.count)
        state.withLock { _ in
            for entry in entries {
                let key = RuleKey(table: entry.table, priority: entry.priority, match: entry.match)
                let id: UInt64
                if let known = r.ids[key] {
                    id = known
                } else {
                    id = r.nextID
                    r.nextID += 1
                    r.ids[key] = id
                }
                out.append((id, entry.table, entry.packets, entry.bytes))
            }
        }
        pruneIDs(r, live: entries)
        out.sort { $0.id < $1.id }
        return out
    }

    /// Forgets ids of rules that no longer exist (expired, deleted by OpenFlow).
    private func pruneIDs(_ r: BridgeRecord, live entries: [FlowEntry]? = nil) {
        // After an unfiltered list every live rule (unique by table, priority and match) has an id: equal
        // counts mean nothing to forget, checked before hashing every match into a set.
        if let entries, state.withLock({ _ in r.ids.count == entries.count && r.specs.count <= entries.count }) { return }
        let live = Set((entries ?? r.bridge.flows()).map { RuleKey(table: $0.table, priority: $0.priority, match: $0.match) })
        state.withLock { _ in
            r.ids = r.ids.filter { live.contains($0.key) }
            r.origins = r.origins.filter { live.contains($0.key) }
            r.specs = r.specs.filter { live.contains($0.key) }
        }
    }

    public func flow(bridge name: String, id: UInt64) throws(SwitchError) -> FlowRecord {
        let r = try record(name)
        guard let key = state.withLock({ _ in r.ids.first { $0.value == id }?.key }),
            let entry = r.bridge.flows(table: key.table, match: key.match).first(where: { $0.priority == key.priority && $0.match == key.match })
        else { throw .notFound("flow \(id) does not exist on bridge '\(name)'") }
        return record(for: entry, in: r)
    }

    /// ovs-ofctl mod-flows: replaces the instructions of the rules `spec`'s match selects.
    public func modifyFlows(bridge name: String, _ spec: FlowSpec, strict: Bool) throws(SwitchError) -> Int {
        let r = try record(name)
        do {
            let match = datapathMatch(try FlowConversion.match(spec, checkPrerequisites: false), bridge: name)
            let instructions = try FlowConversion.instructions(spec)
            let count = try r.bridge.modifyFlows(table: spec.table, match: match, strict: strict,
                                                 priority: strict ? spec.priority : nil, instructions: instructions)
            r.bridge.publishPendingChanges()
            return count
        } catch let error as SwitchError { throw error } catch let error as FlowError {
            throw .unprocessable(error.description)
        } catch { throw .unprocessable("\(error)") }
    }

    /// Changes one rule: instructions (when given), cookie, timeouts; `resetCounts` zeroes its counters.
    public func modifyFlow(bridge name: String, id: UInt64, instructions: FlowInstructions?, cookie: UInt64?,
                           idleTimeout: UInt16?, hardTimeout: UInt16?, resetCounts: Bool) throws(SwitchError) -> FlowRecord {
        let r = try record(name)
        let current = try flow(bridge: name, id: id).entry
        do {
            let needsReplace = resetCounts || cookie != nil || idleTimeout != nil || hardTimeout != nil
            if needsReplace {
                // The datapath keeps counters only through modify; a re-add replaces the rule (new counters).
                try r.bridge.addFlow(table: current.table, priority: current.priority, match: current.match,
                                     instructions: instructions ?? current.instructions, cookie: cookie ?? current.cookie,
                                     idleTimeout: idleTimeout ?? current.idleTimeout, hardTimeout: hardTimeout ?? current.hardTimeout)
            } else if let instructions {
                try r.bridge.modifyFlows(table: current.table, match: current.match, strict: true,
                                         priority: current.priority, instructions: instructions)
            }
        } catch { throw .unprocessable(error.description) }
        r.bridge.publishPendingChanges()
        return try flow(bridge: name, id: id)
    }

    public func deleteFlow(bridge name: String, id: UInt64) throws(SwitchError) {
        let r = try record(name)
        let entry = try flow(bridge: name, id: id).entry
        r.bridge.deleteFlows(table: entry.table, match: entry.match, strict: true, priority: entry.priority)
        r.bridge.publishPendingChanges()
        pruneIDs(r)
    }

    /// ovs-ofctl del-flows; returns how many rules were removed.
    public func deleteFlows(bridge name: String, table: UInt8?, filter: FlowSpec, strict: Bool, priority: UInt16?,
                            cookie: UInt64?, cookieMask: UInt64, outPort: UInt32?) throws(SwitchError) -> Int {
        let r = try record(name)
        let match: FlowMatch
        do { match = datapathMatch(try FlowConversion.match(filter, checkPrerequisites: false), bridge: name) } catch { throw .invalid("\(error)") }
        let removed = r.bridge.deleteFlows(table: table, match: match, strict: strict, priority: strict ? (priority ?? filter.priority) : priority,
                                           cookie: cookie ?? 0, cookieMask: cookie == nil ? 0 : cookieMask,
                                           outPort: outPort ?? OFPort.any)
        r.bridge.publishPendingChanges()
        pruneIDs(r)
        return removed.count
    }

    // MARK: groups (okod's store; groups are set over OpenFlow)

    /// A group with each bucket's actions in ovs-ofctl action syntax (`output:2,dec_ttl`, `drop`).
    public struct GroupText: Sendable, Equatable {
        public var id: UInt32
        public var type: String
        public var buckets: [(weight: UInt16, actions: String)]
        public init(id: UInt32, type: String, buckets: [(weight: UInt16, actions: String)]) {
            self.id = id
            self.type = type
            self.buckets = buckets
        }
        public static func == (a: GroupText, b: GroupText) -> Bool {
            a.id == b.id && a.type == b.type && a.buckets.map(\.weight) == b.buckets.map(\.weight)
                && a.buckets.map(\.actions) == b.buckets.map(\.actions)
        }
    }

    public func groups(bridge name: String) throws(SwitchError) -> [GroupText] {
        let groups = try record(name).bridge.groups()
        return groups.keys.sorted().map { id in
            let g = groups[id]!
            let type = switch g.type { case .all: "all"; case .select: "select"; case .indirect: "indirect" }
            return GroupText(id: id, type: type, buckets: g.buckets.map { bucket in
                var spec = FlowSpec()
                spec.instructions = [.applyActions(bucket.actions.map(FlowConversion.action))]
                let text = spec.ofctlText
                return (bucket.weight, String(text[text.range(of: " actions=")!.upperBound...]))
            })
        }
    }

    public func setGroup(bridge name: String, _ group: GroupText) throws(SwitchError) {
        let type: GroupType
        switch group.type {
        case "all": type = .all
        case "select": type = .select
        case "indirect": type = .indirect
        default: throw .invalid("group \(group.id): unknown type '\(group.type)'")
        }
        var buckets: [GroupBucket] = []
        for bucket in group.buckets {
            do {
                let spec = try FlowSpec(ofctlText: "priority=0 actions=" + bucket.actions)
                buckets.append(GroupBucket(weight: bucket.weight, actions: try FlowConversion.instructions(spec).applyActions ?? []))
            } catch { throw .unprocessable("group \(group.id): actions '\(bucket.actions)': \(error)") }
        }
        do { try record(name).bridge.setGroup(group.id, GroupDescription(type: type, buckets: buckets)) } catch {
            throw .unprocessable("group \(group.id): \(error)")
        }
    }

    public func trace(bridge name: String, bytes: [UInt8], inPort: UInt32) throws(SwitchError) -> TraceReport {
        try record(name).bridge.trace(bytes: bytes, inPort: inPort)
    }
}

/// In-memory ports for tests and lab use: devargs starting with `memory` or `net_memory`; the port's name
/// is the given name or the devargs. Keeps the ports it made so tests can inject and collect frames.
public final class InMemoryPortFactory: PortFactory {
    private let made = Mutex<[String: InMemoryPort]>([:])
    public init() {}

    public func port(named name: String) -> InMemoryPort? { made.withLock { $0[name] } }

    public func makePort(devargs: String, name: String?, buffers: any PacketBufferBackend) throws -> any DatapathPort {
        guard devargs.hasPrefix("memory") || devargs.hasPrefix("net_memory") else {
            throw SwitchError.unprocessable("the in-memory port factory only accepts 'memory...' devargs")
        }
        guard let memoryBuffers = buffers as? InMemoryPacketBuffers else {
            throw SwitchError.unprocessable("in-memory ports need in-memory packet buffers")
        }
        let port = InMemoryPort(name: name ?? devargs, buffers: memoryBuffers)
        made.withLock { $0[port.name] = port }
        return port
    }
}
