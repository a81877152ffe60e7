// Persistence: okod's configuration (bridges, ports, rules, filter programs) kept in the OkoStore, so that
// okod comes back after a crash exactly as it was acknowledged.
//
// Design note
// - What is stored is derived from the live control plane: `flush()` reads the switch service and the
//   program catalogue, compares them with what the store holds and commits the difference as ONE
//   transaction (nothing to commit: no write, no fsync). Rules are the exception to reading everything:
//   each bridge keeps a journal of the rules any path changed (REST, OpenFlow FLOW_MOD, expiry), and a
//   flush looks up only those, so a barrier after one FLOW_MOD on a 100,000-rule table costs one rule.
//   A bridge seen for the first time, or whose journal overflowed, is compared whole. A bulk upload of
//   100,000 rules costs one commit.
// - Acknowledgement rule: a change is acknowledged only after a `flush()` that started after the change
//   completed has returned. REST: `PersistingHandler` flushes after every successful mutating request and
//   before the response leaves. OpenFlow: the agent's `beforeBarrierReply` hook flushes before every
//   BARRIER_REPLY. A change still in flight when okod dies may be stored or not; nothing that was refused
//   (4xx, OpenFlow error) changed anything, so it cannot be stored.
// - Cost: rules are rendered only when new or changed (a per-rule cache). Ports, groups and programs are
//   re-read on every flush (few, and their service-side details are written after the bridge publishes).
// - Records: kind "bridge" (scope "", key name, JSON), "port" (scope bridge, key number, JSON), "program"
//   (scope bridge, key id, JSON header line + ELF bytes), "group" (scope bridge, key id, JSON with the
//   buckets' actions in ovs-ofctl syntax), "controller" (scope bridge, key "switch_config": what an
//   OpenFlow controller set with SET_CONFIG), "flow" (scope bridge, key table/priority/match,
//   ovs-ofctl text with the operator's filter_prog ids), "maps" (scope bridge/program, key map name,
//   entries; written on request and at clean shutdown only, deleted with their program), "meta".
// - Restore order: bridges, ports (by number), programs with their map snapshots, groups, rules; then `/readyz` says ready.
// - Threads: `flush`, `snapshotMaps` and `restore` serialise on one Mutex; callable from any thread.
import Foundation
import Logging
import OkoAPI
import OkoDatapath
import OkoHTTP
import OkoOpenFlow
import OkoStore
import OkoSyntax
import Synchronization

final class Persistence: Sendable {
    struct RecordKey: Hashable, Sendable {
        var kind: String
        var scope: String
        var key: String
    }

    private struct State {
        /// What the store holds, rules excepted (kinds bridge, port, program, group, controller, meta).
        var stored: [RecordKey: [UInt8]] = [:]
        /// Per bridge whose rule journal this component reads: each stored rule, by identity (what the
        /// store holds for that bridge's rules; re-rendered only when the rule's settings change).
        var flows: [String: [RuleIdentity: RenderedRule]] = [:]
        /// Per bridge not tracked yet (after a restore or a failed commit): its stored rule records.
        var untrackedFlows: [String: [RecordKey: [UInt8]]] = [:]
        /// The OpenFlow agent whose controller-set switch configuration (SET_CONFIG) is stored.
        var controller: (bridge: String, agent: DatapathAgent)?
    }

    let store: ConfigurationStore
    private let service: SwitchService
    private let catalogue: LoadedProgramCatalogue
    private let logger: Logger
    private let state = Mutex(State())

    init(store: ConfigurationStore, service: SwitchService, catalogue: LoadedProgramCatalogue, logger: Logger) {
        self.store = store
        self.service = service
        self.catalogue = catalogue
        self.logger = logger
    }

    /// True when the store was never written: okod seeds it from the configuration file.
    var isEmpty: Bool { get throws { try store.revision == 0 } }

    // MARK: flush

    /// Commits the difference between the live control plane and the store; returns the number of
    /// records written or deleted.
    @discardableResult
    func flush() throws -> Int {
        let started = ContinuousClock.now
        return try state.withLock { state in
            var current = self.currentRecords(controller: state.controller)
            current[RecordKey(kind: "meta", scope: "", key: "initialised")] = Array("1".utf8)
            var mutations: [StoreMutation] = []
            for (key, payload) in current where state.stored[key] != payload {
                mutations.append(.put(kind: key.kind, scope: key.scope, key: key.key, payload: payload))
                // A replaced program's map snapshot belongs to the old object.
                if key.kind == "program", state.stored[key] != nil {
                    mutations.append(.deleteScope(kind: "maps", scope: "\(key.scope)/\(key.key)"))
                }
            }
            for key in state.stored.keys where current[key] == nil {
                mutations.append(.delete(kind: key.kind, scope: key.scope, key: key.key))
                if key.kind == "program" { mutations.append(.deleteScope(kind: "maps", scope: "\(key.scope)/\(key.key)")) }
            }
            self.ruleChanges(&state, into: &mutations)
            guard !mutations.isEmpty else { return 0 }
            let compared = ContinuousClock.now
            do {
                try store.apply(mutations)
            } catch {
                // The journals were taken: forget what we believed stored and read it back, so the next
                // flush compares every rule with the store again.
                resynchronise(&state)
                throw error
            }
            state.stored = current
            logger.debug("store: \(mutations.count) changes committed (diff \(compared - started), commit \(ContinuousClock.now - compared))")
            return mutations.count
        }
    }

    /// Rule records to write or delete. A tracked bridge costs only the rules its journal names; a bridge
    /// seen for the first time (or whose journal overflowed) is read whole and compared with the store.
    private func ruleChanges(_ state: inout State, into mutations: inout [StoreMutation]) {
        let names = service.bridgeNames()
        for name in names {
            guard let bridge = try? service.bridge(named: name) else { continue }
            var rendered = state.flows.removeValue(forKey: name)
            if rendered != nil, let journal = bridge.takeRuleJournal() {
                var seen = Set<Bridge.RuleKey>(minimumCapacity: journal.count)
                for key in journal where seen.insert(key).inserted {
                    let identity = RuleIdentity(table: key.table, priority: key.priority, match: key.match)
                    if let entry = bridge.flow(table: key.table, priority: key.priority, match: key.match) {
                        let settings = RuleSettings(entry)
                        if let old = rendered![identity], old.settings == settings { continue }
                        let rule = render(entry, settings: settings, bridge: name)
                        rendered![identity] = rule
                        mutations.append(.put(kind: "flow", scope: name, key: rule.key.key, payload: rule.payload))
                    } else if let old = rendered!.removeValue(forKey: identity) {
                        mutations.append(.delete(kind: "flow", scope: name, key: old.key.key))
                    }
                }
                state.flows[name] = rendered
                continue
            }
            // Whole-table comparison; the journal starts (or restarts) before the rules are read, so a change
            // made meanwhile is seen again next time.
            bridge.startRuleJournal()
            _ = bridge.takeRuleJournal()
            var storedRecords: [RecordKey: [UInt8]] = [:]
            if let rendered {
                for rule in rendered.values { storedRecords[rule.key] = rule.payload }
            } else {
                storedRecords = state.untrackedFlows.removeValue(forKey: name) ?? [:]
            }
            var fresh: [RuleIdentity: RenderedRule] = [:]
            for entry in bridge.flows() {
                let identity = RuleIdentity(table: entry.table, priority: entry.priority, match: entry.match)
                let settings = RuleSettings(entry)
                let rule: RenderedRule
                if let old = rendered?[identity], old.settings == settings {
                    rule = old
                } else {
                    rule = render(entry, settings: settings, bridge: name)
                }
                fresh[identity] = rule
                if storedRecords.removeValue(forKey: rule.key) != rule.payload {
                    mutations.append(.put(kind: "flow", scope: name, key: rule.key.key, payload: rule.payload))
                }
            }
            for key in storedRecords.keys { mutations.append(.delete(kind: "flow", scope: name, key: key.key)) }
            state.flows[name] = fresh
        }
        // Rules of bridges that are gone.
        for (name, rendered) in state.flows where !names.contains(name) {
            for rule in rendered.values { mutations.append(.delete(kind: "flow", scope: name, key: rule.key.key)) }
            state.flows[name] = nil
        }
        for (name, records) in state.untrackedFlows where !names.contains(name) {
            for key in records.keys { mutations.append(.delete(kind: "flow", scope: name, key: key.key)) }
            state.untrackedFlows[name] = nil
        }
    }

    /// Reloads what the store holds (after a failed commit, or at restore).
    private func resynchronise(_ state: inout State) {
        state.stored = [:]
        state.flows = [:]
        state.untrackedFlows = [:]
        for kind in ["bridge", "port", "program", "group", "controller", "meta"] {
            for record in (try? store.records(kind: kind)) ?? [] {
                state.stored[RecordKey(kind: kind, scope: record.scope, key: record.key)] = record.payload
            }
        }
        for record in (try? store.records(kind: "flow")) ?? [] {
            state.untrackedFlows[record.scope, default: [:]][RecordKey(kind: "flow", scope: record.scope, key: record.key)] = record.payload
        }
    }

    /// A rule's identity in its table, as the datapath holds it.
    struct RuleIdentity: Hashable {
        var table: UInt8
        var priority: UInt16
        var match: FlowMatch
    }

    /// What else the stored text of a rule depends on (not counters).
    struct RuleSettings: Equatable {
        var instructions: FlowInstructions
        var cookie: UInt64
        var idleTimeout: UInt16
        var hardTimeout: UInt16
        var sendFlowRemoved: Bool
        init(_ e: FlowEntry) {
            instructions = e.instructions
            cookie = e.cookie
            idleTimeout = e.idleTimeout
            hardTimeout = e.hardTimeout
            sendFlowRemoved = e.sendFlowRemoved
        }
    }

    struct RenderedRule {
        var settings: RuleSettings
        var key: RecordKey
        var payload: [UInt8]
    }

    /// The rule as ovs-ofctl text with the operator's filter_prog id (what a REST listing shows).
    private func render(_ entry: FlowEntry, settings: RuleSettings, bridge: String) -> RenderedRule {
        var named = entry
        if let p = entry.match.filterProgram {
            named.match.filterProgram = catalogue.operatorProgramID(bridge: bridge, datapathID: p) ?? p
        }
        let spec = FlowConversion.spec(named)
        return RenderedRule(settings: settings, key: RecordKey(kind: "flow", scope: bridge, key: Self.flowKey(spec)),
                            payload: Array(spec.ofctlText.utf8))
    }

    /// Every record but the rules (those are `ruleChanges`).
    private func currentRecords(controller: (bridge: String, agent: DatapathAgent)?) -> [RecordKey: [UInt8]] {
        var records: [RecordKey: [UInt8]] = [:]
        let names = service.bridgeNames()
        for name in names {
            guard let summary = try? service.summary(name) else { continue }
            records[RecordKey(kind: "bridge", scope: "", key: name)] = Self.json([
                ("datapath_id", .unsigned(summary.datapathID)), ("fail_mode", .string(summary.failMode)),
            ])
            for port in (try? service.ports(bridge: name)) ?? [] {
                records[RecordKey(kind: "port", scope: name, key: Self.numberKey(port.statistics.number))] = Self.json([
                    ("number", .unsigned(UInt64(port.statistics.number))), ("name", .string(port.statistics.name)),
                    ("devargs", .string(port.devargs)),
                ])
            }
            for group in (try? service.groups(bridge: name)) ?? [] {
                records[RecordKey(kind: "group", scope: name, key: Self.numberKey(group.id))] = Self.json([
                    ("type", .string(group.type)),
                    ("buckets", .array(group.buckets.map { .object([("weight", .integer(Int64($0.weight))), ("actions", .string($0.actions))]) })),
                ])
            }
        }
        if let (bridge, agent) = controller, names.contains(bridge) {
            let config = agent.switchConfig()
            records[RecordKey(kind: "controller", scope: bridge, key: "switch_config")] = Self.json([
                ("flags", .integer(Int64(config.flags))), ("miss_send_len", .integer(Int64(config.missSendLength))),
            ])
        }
        for source in catalogue.sources() where names.contains(source.bridge) {
            var header = Self.json([("section", source.section.map { .string($0) } ?? .null)])
            header.append(UInt8(ascii: "\n"))
            records[RecordKey(kind: "program", scope: source.bridge, key: Self.numberKey(source.id))] = header + source.objectBytes
        }
        return records
    }

    /// A rule's identity in its table: table, priority and match (canonical field order and values).
    static func flowKey(_ spec: FlowSpec) -> String {
        "\(spec.table)/\(spec.priority)/" + spec.match.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
    }

    /// Fixed-width so that the store's key order is numeric order.
    static func numberKey(_ n: UInt32) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 10 - digits.count)) + digits
    }

    private static func json(_ pairs: [(String, JSONValue)]) -> [UInt8] { Array(JSONValue.object(pairs).text.utf8) }

    // MARK: map snapshots

    /// Stores the entries of every map of program `id` on `bridge` (all programs when nil); returns
    /// (maps, entries) saved.
    @discardableResult
    func snapshotMaps(bridge: String? = nil, program id: UInt32? = nil) throws -> (maps: Int, entries: Int) {
        try state.withLock { _ in
            var mutations: [StoreMutation] = []
            var maps = 0, entries = 0
            for source in catalogue.sources() where (bridge == nil || source.bridge == bridge) && (id == nil || source.id == id) {
                let scope = "\(source.bridge)/\(Self.numberKey(source.id))"
                mutations.append(.deleteScope(kind: "maps", scope: scope))
                for (name, loaded) in catalogue.maps(bridge: source.bridge, id: source.id) ?? [] {
                    let contents: [(key: [UInt8], value: [UInt8])]
                    do { contents = try loaded.map.entries().map { ($0.key, $0.value) } } catch {
                        throw SwitchError.unprocessable("map \(name) of program \(source.id): \(error)")
                    }
                    var payload: [UInt8] = []
                    Self.append(UInt32(loaded.spec.keySize), to: &payload)
                    Self.append(UInt32(loaded.spec.valueSize), to: &payload)
                    Self.append(UInt32(contents.count), to: &payload)
                    for entry in contents { payload += entry.key + entry.value }
                    mutations.append(.put(kind: "maps", scope: scope, key: name, payload: payload))
                    maps += 1
                    entries += contents.count
                }
            }
            if !mutations.isEmpty { try store.apply(mutations) }
            return (maps, entries)
        }
    }

    private static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    private static func readU32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }

    // MARK: restore

    struct RestoreSummary: CustomStringConvertible {
        var bridges = 0, ports = 0, programs = 0, groups = 0, flows = 0, mapEntries = 0
        var description: String {
            "\(bridges) bridges, \(ports) ports, \(programs) programs, \(groups) groups, \(flows) rules, \(mapEntries) map entries"
        }
    }

    /// Rebuilds bridges, ports, programs, rules and map contents from the store. A record that cannot be
    /// applied stops start-up with an error naming it (nothing is silently dropped from the store).
    func restore() throws -> RestoreSummary {
        try state.withLock { state in
            var summary = RestoreSummary()
            for record in try store.records(kind: "bridge") {
                let fields = try Self.object(record)
                try service.createBridge(name: record.key, datapathID: fields["datapath_id"]?.unsignedValue,
                                         failMode: fields["fail_mode"]?.stringValue ?? "secure")
                summary.bridges += 1
                for portRecord in try store.records(kind: "port", scope: record.key) {
                    let port = try Self.object(portRecord)
                    guard let devargs = port["devargs"]?.stringValue, let number = port["number"]?.unsignedValue else {
                        throw StoreError("port record \(record.key)/\(portRecord.key) lacks devargs or number")
                    }
                    do {
                        _ = try service.addPort(bridge: record.key, devargs: devargs, number: UInt32(number), portName: port["name"]?.stringValue)
                    } catch {
                        throw StoreError("cannot restore port \(number) ('\(devargs)') of bridge \(record.key): \(error)")
                    }
                    summary.ports += 1
                }
                let bridge = try service.bridge(named: record.key)
                for programRecord in try store.records(kind: "program", scope: record.key) {
                    guard let newline = programRecord.payload.firstIndex(of: UInt8(ascii: "\n")), let id = UInt32(programRecord.key) else {
                        throw StoreError("program record \(record.key)/\(programRecord.key) is malformed")
                    }
                    let header = try JSONValue.parse(Array(programRecord.payload[..<newline]))
                    let source = LoadedProgramCatalogue.ProgramSource(
                        bridge: record.key, id: id, objectBytes: Array(programRecord.payload[(newline + 1)...]),
                        section: header["section"]?.stringValue)
                    try catalogue.restore(source, bridge: bridge)
                    summary.programs += 1
                    summary.mapEntries += try restoreMaps(bridge: record.key, id: id)
                }
                for groupRecord in try store.records(kind: "group", scope: record.key) {
                    let group = try Self.object(groupRecord)
                    guard let id = UInt32(groupRecord.key), let type = group["type"]?.stringValue,
                          case .array(let buckets)? = group["buckets"]
                    else { throw StoreError("group record \(record.key)/\(groupRecord.key) is malformed") }
                    let text = SwitchService.GroupText(id: id, type: type, buckets: buckets.map {
                        (UInt16($0["weight"]?.unsignedValue ?? 1), $0["actions"]?.stringValue ?? "drop")
                    })
                    do { try service.setGroup(bridge: record.key, text) } catch {
                        throw StoreError("cannot restore group \(id) of bridge \(record.key): \(error)")
                    }
                    summary.groups += 1
                }
                var specs: [FlowSpec] = []
                for flowRecord in try store.records(kind: "flow", scope: record.key) {
                    let text = String(decoding: flowRecord.payload, as: UTF8.self)
                    do { specs.append(try FlowSpec(ofctlText: text)) } catch {
                        throw StoreError("stored rule '\(text)' of bridge \(record.key) no longer parses: \(error)")
                    }
                }
                if !specs.isEmpty {
                    do { _ = try service.addFlows(bridge: record.key, specs, origin: "store") } catch {
                        throw StoreError("cannot restore the rules of bridge \(record.key): \(error)")
                    }
                }
                summary.flows += specs.count
            }
            // What was just rebuilt is what the store holds: the first flush writes nothing.
            resynchronise(&state)
            return summary
        }
    }

    /// Gives the OpenFlow agent of `bridge` its stored switch configuration (SET_CONFIG from a controller)
    /// and stores that configuration from now on.
    func attach(agent: DatapathAgent, bridge: String) throws {
        try state.withLock { state in
            if let record = try store.record(kind: "controller", scope: bridge, key: "switch_config") {
                let fields = try Self.object(record)
                let config = SwitchConfig(flags: UInt16(clamping: fields["flags"]?.unsignedValue ?? 0),
                                          missSendLength: UInt16(clamping: fields["miss_send_len"]?.unsignedValue ?? 128))
                do { try agent.setSwitchConfig(config) } catch {
                    throw StoreError("cannot restore the OpenFlow switch configuration of \(bridge): \(error)")
                }
            }
            state.controller = (bridge, agent)
        }
    }

    private func restoreMaps(bridge: String, id: UInt32) throws -> Int {
        var restored = 0
        let maps = catalogue.maps(bridge: bridge, id: id) ?? []
        for record in try store.records(kind: "maps", scope: "\(bridge)/\(Self.numberKey(id))") {
            guard let loaded = maps.first(where: { $0.name == record.key })?.map else {
                logger.warning("map snapshot \(record.key) of program \(id) on \(bridge): the program has no such map; skipped")
                continue
            }
            let bytes = record.payload
            guard bytes.count >= 12 else { throw StoreError("map snapshot \(bridge)/\(id)/\(record.key) is truncated") }
            let keySize = Int(Self.readU32(bytes, 0)), valueSize = Int(Self.readU32(bytes, 4)), count = Int(Self.readU32(bytes, 8))
            guard keySize == Int(loaded.spec.keySize), valueSize == Int(loaded.spec.valueSize),
                  bytes.count == 12 + count * (keySize + valueSize)
            else {
                logger.warning("map snapshot \(record.key) of program \(id) on \(bridge) does not fit the map's key/value sizes; skipped")
                continue
            }
            var offset = 12
            for _ in 0..<count {
                let key = Array(bytes[offset..<offset + keySize])
                let value = Array(bytes[offset + keySize..<offset + keySize + valueSize])
                offset += keySize + valueSize
                do { try loaded.map.update(key: key, value: value) } catch {
                    logger.warning("map snapshot \(record.key) of program \(id) on \(bridge): \(error)")
                    continue
                }
                restored += 1
            }
        }
        return restored
    }

    private static func object(_ record: StoredRecord) throws -> JSONValue {
        let value = try JSONValue.parse(record.payload)
        guard case .object = value else { throw StoreError("\(record.kind) record \(record.scope)/\(record.key) is not a JSON object") }
        return value
    }
}

/// The management API with persistence: every successful mutating request is made durable before its
/// response leaves; also serves `POST /v1/bridges/{b}/programs/{id}/maps/snapshot`.
struct PersistingHandler: HTTPHandler {
    let api: ManagementAPI
    let persistence: Persistence
    let audit: Logger

    /// Reads commit nothing: they take the API's fast path (answered on the event loop, no task).
    var answersWithoutSuspending: Bool { true }

    func handleWithoutSuspending(_ request: HTTPRequest) -> HTTPResponse? {
        guard request.method == "GET" || request.method == "HEAD" else { return nil }
        return api.handleWithoutSuspending(request)
    }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        if request.method == "POST", let target = Self.snapshotTarget(request.path) {
            guard let program = target.program else {
                let id = request.path.split(separator: "/")[4]
                return Self.problem(400, "program: '\(id)' is not a program id (1...65535)", instance: request.path)
            }
            return snapshot(request, bridge: target.bridge, program: program)
        }
        let response = await api.handle(request)
        let mutating = !["GET", "HEAD"].contains(request.method) && !request.path.hasSuffix("/trace")
        // Map entries are not configuration (snapshots save them): a map update needs no commit.
        let mapEntries = Self.isMapEntriesPath(request.path)
        guard mutating, !mapEntries, response.status < 400 else { return response }
        do {
            try persistence.flush()
        } catch {
            audit.critical("change applied but NOT saved: \(error)", metadata: ["method": .string(request.method), "target": .string(request.target)])
            return Self.problem(503, "the change was applied but could not be saved to the store: \(error)", instance: request.path)
        }
        return response
    }

    /// `/v1/bridges/{b}/programs/{id}/maps/{map}`: a map's entries.
    static func isMapEntriesPath(_ path: String) -> Bool {
        let parts = path.split(separator: "/")
        return parts.count == 7 && parts[0] == "v1" && parts[1] == "bridges" && parts[3] == "programs" && parts[5] == "maps"
    }

    /// `/v1/bridges/{b}/programs/{id}/maps/snapshot` -> (b, id).
    /// The (bridge, program) of a snapshot request; program nil when the path's id is not a program id.
    static func snapshotTarget(_ path: String) -> (bridge: String, program: UInt32?)? {
        let parts = path.split(separator: "/")
        guard parts.count == 7, parts[0] == "v1", parts[1] == "bridges", parts[3] == "programs", parts[5] == "maps",
              parts[6] == "snapshot"
        else { return nil }
        let id = UInt32(parts[4]).flatMap { (1...65535).contains($0) ? $0 : nil }
        return (String(parts[2]), id)
    }

    private func snapshot(_ request: HTTPRequest, bridge: String, program: UInt32) -> HTTPResponse {
        let who: String
        switch api.access.decide(authorization: request.headers["authorization"], mutating: true) {
        case .allowed(let principal): who = principal
        case .unauthenticated(let why):
            return Self.problem(401, why, instance: request.path, headers: [("www-authenticate", "Bearer")])
        case .forbidden(let why):
            return Self.problem(403, why, instance: request.path)
        }
        let response: HTTPResponse
        if (try? api.service.bridge(named: bridge)) == nil {
            response = Self.problem(404, "bridge '\(bridge)' does not exist", instance: request.path)
        } else if (api.service.programs as? LoadedProgramCatalogue)?.maps(bridge: bridge, id: program) == nil {
            response = Self.problem(404, "no program \(program) on bridge \(bridge)", instance: request.path)
        } else {
            do {
                let saved = try persistence.snapshotMaps(bridge: bridge, program: program)
                let body = JSONValue.object([("maps", .integer(Int64(saved.maps))), ("entries", .integer(Int64(saved.entries)))])
                response = HTTPResponse(status: 200, headers: HTTPHeaders([("content-type", "application/json")]), body: Array((body.text + "\n").utf8))
            } catch {
                response = Self.problem(503, "map snapshot not saved: \(error)", instance: request.path)
            }
        }
        audit.info("audit", metadata: [
            "who": .string(who), "method": .string(request.method), "target": .string(request.target),
            "status": .stringConvertible(response.status), "result": .string(response.status < 400 ? "ok" : "refused"),
            "peer": .string(request.remoteAddress ?? "?"),
        ])
        return response
    }

    static func problem(_ status: Int, _ detail: String, instance: String, headers: [(String, String)] = []) -> HTTPResponse {
        let titles = [401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 503: "Service Unavailable"]
        let body = JSONValue.object([
            ("type", .string("about:blank")), ("title", .string(titles[status] ?? "Error")), ("status", .integer(Int64(status))),
            ("detail", .string(detail)), ("instance", .string(instance)),
        ])
        var h = HTTPHeaders([("content-type", "application/problem+json")])
        for (name, value) in headers { h.add(name, value) }
        return HTTPResponse(status: status, headers: h, body: Array(body.text.utf8))
    }
}
