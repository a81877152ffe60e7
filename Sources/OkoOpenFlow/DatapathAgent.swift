// DatapathAgent: the OpenFlow switch agent over one `OkoDatapath.Bridge`.
//
// Design note
// -----------
// `DatapathAgent` implements `SwitchAgent` by translating the typed OpenFlow model (Match, Instruction,
// Action, FlowMod, GroupMod, PacketOut, multipart requests) to the datapath's types (FlowMatch,
// FlowInstructions, FlowAction, ...) and back. It keeps no copy of the tables: every request reads or
// changes the Bridge it was given, which is the same object the REST API uses, so both see one table set
// and the counters and cookies reported are the datapath's own.
//
// Datapath errors map to OpenFlow errors: missing prerequisite -> BAD_MATCH/BAD_PREREQ, unknown port ->
// BAD_ACTION/BAD_OUT_PORT, unknown group -> BAD_ACTION/BAD_OUT_GROUP, overlap -> FLOW_MOD_FAILED/OVERLAP,
// bad table -> FLOW_MOD_FAILED/BAD_TABLE_ID (BAD_INSTRUCTION/BAD_TABLE_ID for goto-table), a full table
// (`maxEntriesPerTable`) -> FLOW_MOD_FAILED/TABLE_FULL, unsupported action/instruction/field ->
// BAD_ACTION/BAD_TYPE, BAD_INSTRUCTION/UNSUP_INST, BAD_MATCH/BAD_FIELD.
//
// The Oko extension messages (LOAD_FILTER_PROG, UPDATE_MAP, DUMP_MAP) go through an injected
// `FilterProgramCatalogue`; without one they are answered with BAD_REQUEST/BAD_EXP_TYPE.
// SEND_MAPS (Nicira action 200) becomes the datapath's `sendMaps` action, limited to `sendMapsPerSecond` per
// rule; the packet thread only queues a notice, and `pollEvents` (the event pump) dumps the maps through the
// catalogue and sends them to the controllers as asynchronous DUMP_MAP_REPLY messages (xid 0).
//
// Threads: one agent may serve several connections. Each `OpenFlowSession` calls the agent on its
// connection's event loop, so calls can arrive concurrently from different loops; the Bridge serialises
// its control calls itself, and the agent's own state (switch config, event sink, catalogue) sits behind a
// Mutex. Asynchronous events are produced by `DatapathEventPump`, which polls the bridge's packet-in queue
// and `expireFlows()` on a timer on one event loop and hands PACKET_IN / FLOW_REMOVED to the agent's event
// sink (normally `OpenFlowListener.broadcast`). FLOW_REMOVED for FLOW_MOD deletes is emitted by the
// calling session's thread through the same sink. Packet threads (PMD) never call into this file.

import NIOCore
import OkoDatapath
import Synchronization

/// Filter-program catalogue: loads BPF programs from ELF objects and manages their maps. Implemented by the
/// loader side; the agent only forwards the Oko extension messages to it.
public protocol FilterProgramCatalogue: AnyObject, Sendable {
    /// Loads (or replaces) program `id` from an ELF object.
    func load(id: UInt16, elf: [UInt8]) throws(OpenFlowError)
    /// Inserts or overwrites entries of one map of program `programID`.
    func updateMap(programID: UInt16, map: MapDump) throws(OpenFlowError)
    /// The contents of the listed maps of program `programID`.
    func dumpMap(programID: UInt16, mapIDs: [UInt16]) throws(OpenFlowError) -> [MapDump]
    /// The bridge's program id for the `filter_prog` OXM value, nil if no such program is loaded.
    func datapathProgramID(forFilterProg id: UInt32) -> UInt32?
    /// The `filter_prog` value controllers use for a datapath program id (dump-flows, FLOW_REMOVED).
    func filterProgID(forDatapathProgram id: UInt32) -> UInt32?
}

extension FilterProgramCatalogue {
    public func filterProgID(forDatapathProgram id: UInt32) -> UInt32? { id }
}

/// Where asynchronous messages (PACKET_IN, FLOW_REMOVED, PORT_STATUS) go.
public typealias SwitchEventSink = @Sendable (MessageBody) -> Void

public final class DatapathAgent: SwitchAgent, @unchecked Sendable {
    public let bridge: Bridge
    public let datapathID: UInt64
    /// Per-table capacity; an add beyond it fails with FLOW_MOD_FAILED/TABLE_FULL.
    public let maxEntriesPerTable: Int

    private struct State {
        var config = SwitchConfig(flags: 0, missSendLength: 128)
        var sink: SwitchEventSink?
        var catalogue: FilterProgramCatalogue?
        var lastExpiryScan: Double = -.infinity
        var beforeBarrierReply: (@Sendable () throws -> Void)?
    }
    /// Shortest time between two flow-expiry scans in `pollEvents` (seconds).
    static let expiryScanInterval = 0.1
    private let state = Mutex(State())

    /// Runs before every BARRIER_REPLY (okod: commit the configuration store, so a barrier reply means
    /// every earlier FLOW_MOD is durable). A throw becomes an OFPT_ERROR instead of the reply.
    public func setBeforeBarrierReply(_ hook: (@Sendable () throws -> Void)?) { state.withLock { $0.beforeBarrierReply = hook } }

    /// A barrier reply promises that earlier flow-mods are in effect (the bridge coalesces publications)
    /// and, with okod's hook, durable.
    public func barrier() throws(OpenFlowError) {
        bridge.publishPendingChanges()
        guard let hook = state.withLock({ $0.beforeBarrierReply }) else { return }
        do { try hook() } catch {
            throw OpenFlowError(.badRequest, BadRequestCode.eperm, "changes before this barrier were not saved: \(error)")
        }
    }

    public init(bridge: Bridge, datapathID: UInt64, maxEntriesPerTable: Int = 1_000_000,
                catalogue: FilterProgramCatalogue? = nil) {
        self.bridge = bridge
        self.datapathID = datapathID
        self.maxEntriesPerTable = maxEntriesPerTable
        state.withLock { $0.catalogue = catalogue }
    }

    /// Sets where asynchronous messages go (e.g. `{ listener.broadcast($0) }`).
    public func setEventSink(_ sink: SwitchEventSink?) { state.withLock { $0.sink = sink } }
    public func setCatalogue(_ catalogue: FilterProgramCatalogue?) { state.withLock { $0.catalogue = catalogue } }
    public var missSendLength: UInt16 { state.withLock { $0.config.missSendLength } }

    func emit(_ event: MessageBody) {
        let sink = state.withLock { $0.sink }
        sink?(event)
    }

    // MARK: SwitchAgent

    public static let capabilities: UInt32 = 1 | 2 | 4  // FLOW_STATS | TABLE_STATS | PORT_STATS

    /// SEND_MAPS rate limit: a rule sends its maps at most this many times per second (the OpenFlow action
    /// has no rate field; notices beyond it are not even queued by the datapath).
    public static let sendMapsPerSecond: UInt32 = 10

    public func features() -> SwitchFeatures {
        SwitchFeatures(datapathID: datapathID, bufferCount: 0, tableCount: UInt8(clamping: bridge.tableCount),
                       capabilities: Self.capabilities)
    }

    public func switchConfig() -> SwitchConfig { state.withLock { $0.config } }

    public func setSwitchConfig(_ config: SwitchConfig) throws(OpenFlowError) {
        // Only OFPC_FRAG_NORMAL: the datapath does not reassemble or drop fragments.
        guard config.flags & 3 == 0 else {
            throw OpenFlowError(.switchConfigFailed, SwitchConfigFailedCode.badFlags,
                                "fragment handling 0x\(String(config.flags & 3, radix: 16)) unsupported (only FRAG_NORMAL)")
        }
        state.withLock { $0.config = config }
    }

    public func apply(_ flowMod: FlowMod) throws(OpenFlowError) {
        guard flowMod.bufferID == openFlowNoBuffer else {
            throw OpenFlowError(.badRequest, BadRequestCode.bufferUnknown, "switch has no packet buffers")
        }
        let match = try datapathMatch(flowMod.match)
        let table: UInt8? = flowMod.tableID == 0xff ? nil : flowMod.tableID
        if let table, Int(table) >= bridge.tableCount {
            throw OpenFlowError(.flowModFailed, FlowModFailedCode.badTableID, "table \(table) does not exist")
        }
        switch flowMod.command {
        case .add:
            guard let table else {
                throw OpenFlowError(.flowModFailed, FlowModFailedCode.badTableID, "cannot add to OFPTT_ALL")
            }
            let instructions = try datapathInstructions(flowMod.instructions)
            if bridge.flowCount(table: table) >= maxEntriesPerTable,
               !bridge.flows(table: table, match: match).contains(where: { $0.priority == flowMod.priority && $0.match == match }) {
                throw OpenFlowError(.flowModFailed, FlowModFailedCode.tableFull, "table \(table) is full (\(maxEntriesPerTable) entries)")
            }
            do {
                try bridge.addFlow(table: table, priority: flowMod.priority, match: match, instructions: instructions,
                                   cookie: flowMod.cookie, idleTimeout: flowMod.idleTimeout,
                                   hardTimeout: flowMod.hardTimeout,
                                   sendFlowRemoved: flowMod.flags.contains(.sendFlowRemoved),
                                   checkOverlap: flowMod.flags.contains(.checkOverlap))
            } catch {
                throw Self.openFlowError(error)
            }
        case .modify, .modifyStrict:
            let instructions = try datapathInstructions(flowMod.instructions)
            do {
                try bridge.modifyFlows(table: table, match: match, strict: flowMod.command == .modifyStrict,
                                       priority: flowMod.priority, instructions: instructions,
                                       cookie: flowMod.cookie, cookieMask: flowMod.cookieMask)
            } catch {
                throw Self.openFlowError(error)
            }
        case .delete, .deleteStrict:
            let strict = flowMod.command == .deleteStrict
            var removed: [OkoDatapath.FlowRemoved] = []
            if flowMod.outGroup == OpenFlowGroup.any {
                removed = bridge.deleteFlows(table: table, match: match, strict: strict, priority: flowMod.priority,
                                             cookie: flowMod.cookie, cookieMask: flowMod.cookieMask,
                                             outPort: flowMod.outPort)
            } else {
                // The bridge filters by out_port only: pick the rules here, then delete each one strictly.
                let selected = bridge.flows(table: table, match: match).filter { entry in
                    (!strict || (entry.match == match && entry.priority == flowMod.priority))
                        && Self.selects(entry, outPort: flowMod.outPort, outGroup: flowMod.outGroup,
                                        cookie: flowMod.cookie, cookieMask: flowMod.cookieMask)
                }
                for entry in selected {
                    removed += bridge.deleteFlows(table: entry.table, match: entry.match, strict: true,
                                                  priority: entry.priority, cookie: entry.cookie, cookieMask: ~0)
                }
            }
            for r in removed where r.entry.sendFlowRemoved { emit(.flowRemoved(flowRemovedMessage(r))) }
        }
    }

    public func apply(_ groupMod: GroupMod) throws(OpenFlowError) {
        let existing = bridge.groups()
        switch groupMod.command {
        case .add, .modify:
            if groupMod.command == .add, existing[groupMod.groupID] != nil {
                throw OpenFlowError(.groupModFailed, GroupModFailedCode.groupExists, "group \(groupMod.groupID) exists")
            }
            if groupMod.command == .modify, existing[groupMod.groupID] == nil {
                throw OpenFlowError(.groupModFailed, GroupModFailedCode.unknownGroup, "group \(groupMod.groupID) does not exist")
            }
            guard groupMod.groupID <= OpenFlowGroup.max else {
                throw OpenFlowError(.groupModFailed, GroupModFailedCode.invalidGroup, "group id \(groupMod.groupID) is reserved")
            }
            let type: OkoDatapath.GroupType
            switch groupMod.type {
            case .all: type = .all
            case .select: type = .select
            case .indirect: type = .indirect
            case .fastFailover:
                throw OpenFlowError(.groupModFailed, GroupModFailedCode.badType, "fast-failover groups are unsupported")
            }
            var buckets: [GroupBucket] = []
            for bucket in groupMod.buckets {
                buckets.append(GroupBucket(weight: type == .select ? max(bucket.weight, 1) : 1,
                                           actions: try datapathActions(bucket.actions)))
            }
            do {
                try bridge.setGroup(groupMod.groupID, OkoDatapath.GroupDescription(type: type, buckets: buckets))
            } catch {
                switch error {
                case .badGroup(let why):
                    throw OpenFlowError(.groupModFailed, GroupModFailedCode.invalidGroup, why)
                default: throw Self.openFlowError(error)
                }
            }
        case .delete:
            let ids = groupMod.groupID == OpenFlowGroup.all ? Array(existing.keys) : [groupMod.groupID]
            for id in ids where existing[id] != nil {
                // OpenFlow: deleting a group removes the flows that forward to it.
                for entry in bridge.flows() where Self.actions(of: entry).contains(.group(id)) {
                    let removed = bridge.deleteFlows(table: entry.table, match: entry.match, strict: true,
                                                     priority: entry.priority, cookie: entry.cookie, cookieMask: ~0)
                    for r in removed where r.entry.sendFlowRemoved {
                        var message = flowRemovedMessage(r)
                        message.reason = .groupDelete
                        emit(.flowRemoved(message))
                    }
                }
                do { try bridge.deleteGroup(id) } catch { throw Self.openFlowError(error) }
            }
        }
    }

    public func execute(_ packetOut: PacketOut) throws(OpenFlowError) {
        guard packetOut.bufferID == openFlowNoBuffer else {
            throw OpenFlowError(.badRequest, BadRequestCode.bufferUnknown, "switch has no packet buffers")
        }
        guard !packetOut.data.isEmpty else {
            throw OpenFlowError(.badRequest, BadRequestCode.badPacket, "packet-out carries no packet")
        }
        let inPort = packetOut.inPort
        let known = bridge.ports().contains { $0.number == inPort }
        guard inPort == OpenFlowPort.controller || inPort == OpenFlowPort.any || known else {
            throw OpenFlowError(.badRequest, BadRequestCode.badPort, "packet-out in_port \(inPort) does not exist")
        }
        let actions = try datapathActions(packetOut.actions)
        let queued: Bool
        do {
            queued = try bridge.packetOut(bytes: packetOut.data,
                                          inPort: inPort == OpenFlowPort.any ? OpenFlowPort.controller : inPort,
                                          actions: actions)
        } catch {
            throw Self.openFlowError(error)
        }
        guard queued else {
            throw OpenFlowError(.badRequest, BadRequestCode.eperm, "packet-out queue is full")
        }
    }

    public func apply(_ portMod: PortMod) throws(OpenFlowError) {
        guard bridge.ports().contains(where: { $0.number == portMod.portNumber }) else {
            throw OpenFlowError(.portModFailed, 0, "port \(portMod.portNumber) does not exist")  // OFPPMFC_BAD_PORT
        }
        throw OpenFlowError(.portModFailed, 4, "port configuration is not supported")  // OFPPMFC_EPERM
    }

    public func multipart(_ request: MultipartRequest.Body) throws(OpenFlowError) -> MultipartReply.Body {
        switch request {
        case .desc:
            return .desc(SwitchDescription(manufacturer: "Oko", hardware: "Oko software switch",
                                           software: "Oko OpenFlow 1.3 agent", serialNumber: "none",
                                           datapath: bridge.name))
        case .flow(let filter):
            return .flow(try selectFlows(filter).map(flowStats))
        case .aggregate(let filter):
            let entries = try selectFlows(filter)
            return .aggregate(AggregateStats(packetCount: entries.reduce(0) { $0 &+ $1.packets },
                                             byteCount: entries.reduce(0) { $0 &+ $1.bytes },
                                             flowCount: UInt32(clamping: entries.count)))
        case .table:
            let all = bridge.flows()
            return .table((0..<bridge.tableCount).map { t in
                let entries = all.filter { Int($0.table) == t }
                let matched = entries.reduce(UInt64(0)) { $0 &+ $1.packets }
                // The datapath counts per rule only: lookups are reported as the packets matched.
                return TableStats(tableID: UInt8(t), activeCount: UInt32(clamping: entries.count),
                                  lookupCount: matched, matchedCount: matched)
            })
        case .portStats(let number):
            let ports = bridge.ports().filter { number == OpenFlowPort.any || $0.number == number }
            if ports.isEmpty && number != OpenFlowPort.any {
                throw OpenFlowError(.badRequest, BadRequestCode.badPort, "port \(number) does not exist")
            }
            return .portStats(ports.map { p in
                PortStats(portNumber: p.number, counters: [
                    p.rxPackets, p.txPackets, p.rxBytes, p.txBytes, p.backend.rxDrops, p.txDrops + p.backend.txDrops,
                    p.rxErrors, p.backend.errors, 0, 0, 0, 0,
                ])
            })
        case .portDesc:
            return .portDesc(bridge.ports().map(Self.portDescription))
        case .tableFeatures(let tables):
            guard tables.isEmpty else {
                throw OpenFlowError(.tableFeaturesFailed, 5, "table features cannot be reconfigured")  // OFPTFFC_EPERM
            }
            return .tableFeatures((0..<bridge.tableCount).map(tableFeatures))
        case .groupDesc:
            return .groupDesc(bridge.groups().sorted { $0.key < $1.key }.map { id, group in
                OkoOpenFlow.GroupDescription(type: Self.openFlowGroupType(group.type), groupID: id,
                                             buckets: group.buckets.map { b in
                                                 Bucket(weight: group.type == .select ? b.weight : 0,
                                                        actions: b.actions.map(Self.openFlowAction))
                                             })
            })
        case .groupFeatures:
            let actionBits = Self.supportedActionTypes.reduce(UInt32(0)) { $0 | (1 << UInt32($1)) }
            return .groupFeatures(GroupFeatures(types: 0b111, capabilities: 1,  // OFPGFC_SELECT_WEIGHT
                                                maxGroups: [OpenFlowGroup.max, OpenFlowGroup.max, OpenFlowGroup.max, 0],
                                                actions: [actionBits, actionBits, actionBits, 0]))
        case .meterConfig:
            return .meterConfig([])
        case .meterFeatures:
            return .meterFeatures(MeterFeatures(maxMeter: 0, bandTypes: 0, capabilities: 0, maxBands: 0, maxColor: 0))
        }
    }

    public func handle(_ message: OkoMessage) throws(OpenFlowError) -> [OkoMessage] {
        guard let catalogue = state.withLock({ $0.catalogue }) else {
            throw OpenFlowError(.badRequest, BadRequestCode.badExpType,
                                "no filter-program catalogue is configured on this switch")
        }
        switch message {
        case .loadFilterProgram(let id, let elf):
            try catalogue.load(id: id, elf: elf)
            return []
        case .updateMap(let id, let map):
            try catalogue.updateMap(programID: id, map: map)
            return []
        case .dumpMapRequest(let id, let mapIDs):
            return [.dumpMapReply(programID: id, maps: try catalogue.dumpMap(programID: id, mapIDs: mapIDs))]
        case .dumpMapReply:
            throw OpenFlowError(.badRequest, BadRequestCode.badExpType, "DUMP_MAP_REPLY is sent by switches only")
        }
    }

    // MARK: events

    /// Attaches a port to the bridge and announces it to the controllers (PORT_STATUS ADD).
    @discardableResult
    public func addPort(_ port: any DatapathPort, number: UInt32? = nil) throws(OpenFlowError) -> UInt32 {
        let assigned: UInt32
        do { assigned = try bridge.addPort(port, number: number) } catch { throw Self.openFlowError(error) }
        portChanged(number: assigned, name: port.name, added: true)
        return assigned
    }

    /// Detaches a port from the bridge and announces it (PORT_STATUS DELETE).
    public func removePort(_ number: UInt32) throws(OpenFlowError) {
        guard let port = bridge.ports().first(where: { $0.number == number }) else {
            throw OpenFlowError(.badRequest, BadRequestCode.badPort, "port \(number) does not exist")
        }
        do { try bridge.removePort(number) } catch { throw Self.openFlowError(error) }
        portChanged(number: number, name: port.name, added: false)
    }

    /// Announces a port that was added to / removed from the bridge by someone else (e.g. the REST API).
    public func portChanged(number: UInt32, name: String, added: Bool) {
        let description = PortDescription(portNumber: number, hardwareAddress: Self.hardwareAddress(number), name: name,
                                          state: added ? 4 : 1, current: Self.portFeatures, supported: Self.portFeatures,
                                          currentSpeed: 10_000_000, maxSpeed: 10_000_000)
        emit(.portStatus(PortStatus(reason: added ? .add : .delete, port: description)))
    }

    /// Converts a datapath packet-in to PACKET_IN (no buffer; table-miss data cut to miss_send_len).
    public func packetInMessage(_ p: OkoDatapath.PacketIn) -> OkoOpenFlow.PacketIn {
        let reason: PacketInReason
        switch p.reason {
        case .noMatch: reason = .noMatch
        case .action: reason = .action
        case .invalidTTL: reason = .invalidTTL
        }
        var data = p.bytes
        let missSendLength = self.missSendLength
        if p.reason == .noMatch, missSendLength != 0xffff, data.count > Int(missSendLength) {
            data = Array(data.prefix(Int(missSendLength)))
        }
        var fields: [MatchField] = [.inPort(p.inPort)]
        if p.metadata != 0 { fields.append(.metadata(p.metadata)) }
        return OkoOpenFlow.PacketIn(totalLength: UInt16(clamping: p.totalLength), reason: reason, tableID: p.table,
                                    cookie: p.cookie, match: Match(fields), data: data)
    }

    func flowRemovedMessage(_ r: OkoDatapath.FlowRemoved) -> OkoOpenFlow.FlowRemoved {
        let reason: OkoOpenFlow.FlowRemovedReason
        switch r.reason {
        case .idleTimeout: reason = .idleTimeout
        case .hardTimeout: reason = .hardTimeout
        case .delete: reason = .delete
        }
        let (seconds, nanoseconds) = Self.split(r.entry.durationSeconds)
        return OkoOpenFlow.FlowRemoved(cookie: r.entry.cookie, priority: r.entry.priority, reason: reason,
                                       tableID: r.entry.table, durationSeconds: seconds, durationNanoseconds: nanoseconds,
                                       idleTimeout: r.entry.idleTimeout, hardTimeout: r.entry.hardTimeout,
                                       packetCount: r.entry.packets, byteCount: r.entry.bytes,
                                       match: openFlowMatch(r.entry.match))
    }

    /// Drains the datapath's packet-in queue and expires timed-out flows, sending the resulting events.
    /// Returns how many events were produced.
    @discardableResult
    public func pollEvents(maxPacketIns: Int = 256) -> Int {
        var count = 0
        for p in bridge.takePacketIns(max: maxPacketIns) {
            emit(.packetIn(packetInMessage(p)))
            count += 1
        }
        // Expiry scans every rule under the bridge's control lock: timeouts have 1 s resolution, so scanning
        // every 100 ms is plenty and keeps large tables from taxing the event loop on every 5 ms tick.
        let now = OpenFlowSession.monotonicSeconds()
        let scan = state.withLock { state -> Bool in
            guard now - state.lastExpiryScan >= Self.expiryScanInterval else { return false }
            state.lastExpiryScan = now
            return true
        }
        if scan {
            for r in bridge.expireFlows() where r.entry.sendFlowRemoved {
                emit(.flowRemoved(flowRemovedMessage(r)))
                count += 1
            }
        }
        let notices = bridge.takeMapsNotices(max: maxPacketIns)
        if !notices.isEmpty, let catalogue = state.withLock({ $0.catalogue }) {
            for notice in notices {
                let programID = UInt16(truncatingIfNeeded: notice.program)
                // The program may have been unloaded or its maps changed since the rule was installed.
                guard let maps = try? catalogue.dumpMap(programID: programID, mapIDs: notice.maps) else { continue }
                for part in OkoMessage.dumpMapReplies(programID: programID, maps: maps) {
                    emit(.oko(part))
                    count += 1
                }
            }
        }
        return count
    }

    // MARK: flow selection and statistics

    private static func actions(of entry: FlowEntry) -> [FlowAction] {
        (entry.instructions.applyActions ?? []) + (entry.instructions.writeActions ?? [])
    }

    private static func selects(_ entry: FlowEntry, outPort: UInt32, outGroup: UInt32, cookie: UInt64,
                                cookieMask: UInt64) -> Bool {
        guard entry.cookie & cookieMask == cookie & cookieMask else { return false }
        let actions = Self.actions(of: entry)
        if outPort != OpenFlowPort.any,
           !actions.contains(where: { if case .output(outPort, _) = $0 { true } else { false } }) {
            return false
        }
        if outGroup != OpenFlowGroup.any, !actions.contains(.group(outGroup)) { return false }
        return true
    }

    private func selectFlows(_ filter: FlowStatsRequest) throws(OpenFlowError) -> [FlowEntry] {
        let match = try datapathMatch(filter.match)
        let table: UInt8? = filter.tableID == 0xff ? nil : filter.tableID
        if let table, Int(table) >= bridge.tableCount {
            throw OpenFlowError(.badRequest, BadRequestCode.badTableID, "table \(table) does not exist")
        }
        return bridge.flows(table: table, match: match).filter { entry in
            (match.filterProgram == nil || entry.match.filterProgram == match.filterProgram)
                && Self.selects(entry, outPort: filter.outPort, outGroup: filter.outGroup, cookie: filter.cookie,
                                cookieMask: filter.cookieMask)
        }
    }

    private static func split(_ seconds: Double) -> (UInt32, UInt32) {
        let whole = max(0, seconds.rounded(.down))
        return (UInt32(clamping: Int(whole)), UInt32(clamping: Int((seconds - whole) * 1e9)))
    }

    private func flowStats(_ entry: FlowEntry) -> FlowStats {
        let (seconds, nanoseconds) = Self.split(entry.durationSeconds)
        return FlowStats(tableID: entry.table, durationSeconds: seconds, durationNanoseconds: nanoseconds,
                         priority: entry.priority, idleTimeout: entry.idleTimeout, hardTimeout: entry.hardTimeout,
                         flags: entry.sendFlowRemoved ? [.sendFlowRemoved] : [], cookie: entry.cookie,
                         packetCount: entry.packets, byteCount: entry.bytes, match: openFlowMatch(entry.match),
                         instructions: Self.openFlowInstructions(entry.instructions))
    }

    // MARK: ports and tables

    /// 10 Gb/s full duplex, copper (OFPPF_10GB_FD | OFPPF_COPPER).
    static let portFeatures: UInt32 = (1 << 6) | (1 << 11)

    /// A stable locally administered address derived from the port number.
    static func hardwareAddress(_ number: UInt32) -> EthernetAddress {
        EthernetAddress([0x02, 0x6f, UInt8(truncatingIfNeeded: number >> 24), UInt8(truncatingIfNeeded: number >> 16),
                         UInt8(truncatingIfNeeded: number >> 8), UInt8(truncatingIfNeeded: number)])
    }

    static func portDescription(_ p: PortStatistics) -> PortDescription {
        PortDescription(portNumber: p.number, hardwareAddress: hardwareAddress(p.number), name: p.name,
                        state: 4, current: portFeatures, supported: portFeatures,  // OFPPS_LIVE
                        currentSpeed: 10_000_000, maxSpeed: 10_000_000)
    }

    /// OFPAT_* types the datapath executes.
    static let supportedActionTypes: [UInt16] = [0, 17, 18, 22, 23, 24, 25]

    /// The OXM fields we match on, as (field number, value width, maskable).
    static let supportedOXM: [(UInt8, Int, Bool)] = [
        (0, 4, false), (2, 8, true), (3, 6, true), (4, 6, true), (5, 2, false), (6, 2, true), (7, 1, false),
        (8, 1, false), (9, 1, false), (10, 1, false), (11, 4, true), (12, 4, true), (13, 2, false), (14, 2, false),
        (15, 2, false), (16, 2, false), (17, 2, false), (18, 2, false), (19, 1, false), (20, 1, false),
        (21, 2, false), (22, 4, true), (23, 4, true), (24, 6, true), (25, 6, true), (26, 16, true), (27, 16, true),
        (29, 1, false), (30, 1, false),
    ]

    private func tableFeatures(_ table: Int) -> TableFeatures {
        func header(_ field: UInt8, _ width: Int, mask: Bool) -> UInt32 {
            UInt32(OXM.basicClass) << 16 | UInt32(field) << 9 | (mask ? 1 << 8 : 0) | UInt32(mask ? 2 * width : width)
        }
        let match = Self.supportedOXM.map { header($0.0, $0.1, mask: false) }
        let setFields = Self.supportedOXM.filter { $0.0 != 0 }.map { header($0.0, $0.1, mask: false) }
        let next = (table + 1..<bridge.tableCount).map { UInt8($0) }
        let instructions: [UInt16] = table + 1 < bridge.tableCount ? [1, 2, 3, 4, 5] : [2, 3, 4, 5]
        let properties: [TableFeatureProperty] = [
            TableFeatureProperty(type: TableFeatureProperty.instructions, content: .instructions(instructions)),
            TableFeatureProperty(type: TableFeatureProperty.nextTables, content: .nextTables(next)),
            TableFeatureProperty(type: TableFeatureProperty.writeActions, content: .actions(Self.supportedActionTypes)),
            TableFeatureProperty(type: TableFeatureProperty.applyActions, content: .actions(Self.supportedActionTypes)),
            TableFeatureProperty(type: TableFeatureProperty.match, content: .oxmIDs(match)),
            TableFeatureProperty(type: TableFeatureProperty.wildcards, content: .oxmIDs(match)),
            TableFeatureProperty(type: TableFeatureProperty.writeSetField, content: .oxmIDs(setFields)),
            TableFeatureProperty(type: TableFeatureProperty.applySetField, content: .oxmIDs(setFields)),
        ]
        return TableFeatures(tableID: UInt8(table), name: "table\(table)", config: 0,
                             maxEntries: UInt32(clamping: maxEntriesPerTable), properties: properties)
    }

    // MARK: error mapping

    static func openFlowError(_ error: FlowError) -> OpenFlowError {
        switch error {
        case .missingPrerequisite: return OpenFlowError(.badMatch, BadMatchCode.badPrereq, error.description)
        case .badTable: return OpenFlowError(.flowModFailed, FlowModFailedCode.badTableID, error.description)
        case .gotoNotForward: return OpenFlowError(.badInstruction, BadInstructionCode.badTableID, error.description)
        case .unknownPort: return OpenFlowError(.badAction, BadActionCode.badOutPort, error.description)
        case .unknownGroup: return OpenFlowError(.badAction, BadActionCode.badOutGroup, error.description)
        case .unknownProgram: return OpenFlowError(.badMatch, BadMatchCode.badValue, error.description)
        case .programInUse: return OpenFlowError(.flowModFailed, FlowModFailedCode.eperm, error.description)
        case .groupInUse: return OpenFlowError(.groupModFailed, GroupModFailedCode.invalidGroup, error.description)
        case .portNumberTaken, .badPortNumber: return OpenFlowError(.badRequest, BadRequestCode.badPort, error.description)
        case .overlap: return OpenFlowError(.flowModFailed, FlowModFailedCode.overlap, error.description)
        case .badGroup: return OpenFlowError(.groupModFailed, GroupModFailedCode.invalidGroup, error.description)
        }
    }

    // MARK: match translation

    private static func mac(_ a: EthernetAddress) -> UInt64 { a.bytes.reduce(0) { $0 << 8 | UInt64($1) } }
    private static func mac(_ v: UInt64) -> EthernetAddress {
        EthernetAddress((0..<6).map { UInt8(truncatingIfNeeded: v >> UInt64(8 * (5 - $0))) })
    }
    private static func halves(_ a: IPv6Address) -> (UInt64, UInt64) {
        (a.bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, a.bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
    }
    private static func ipv6(_ high: UInt64, _ low: UInt64) -> IPv6Address {
        IPv6Address((0..<8).map { UInt8(truncatingIfNeeded: high >> UInt64(8 * (7 - $0))) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> UInt64(8 * (7 - $0))) })
    }

    /// (datapath field, value, mask) for one OXM field; nil for filter_prog.
    private static func datapathFields(_ field: MatchField) throws(OpenFlowError) -> [(FlowField, UInt64, UInt64)] {
        func m<T: BinaryInteger>(_ mask: T?) -> UInt64 { mask.map { UInt64($0) } ?? ~0 }
        switch field {
        case .inPort(let v): return [(.inPort, UInt64(v), ~0)]
        case .metadata(let v, let mask): return [(.metadata, v, m(mask))]
        case .ethDst(let v, let mask): return [(.ethDst, mac(v), mask.map(mac) ?? ~0)]
        case .ethSrc(let v, let mask): return [(.ethSrc, mac(v), mask.map(mac) ?? ~0)]
        case .ethType(let v): return [(.ethType, UInt64(v), ~0)]
        case .vlanVID(let v, let mask): return [(.vlanVID, UInt64(v & 0x1fff), m(mask) & 0x1fff)]
        case .vlanPCP(let v): return [(.vlanPCP, UInt64(v), ~0)]
        case .ipDSCP(let v): return [(.ipDSCP, UInt64(v), ~0)]
        case .ipECN(let v): return [(.ipECN, UInt64(v), ~0)]
        case .ipProto(let v): return [(.ipProto, UInt64(v), ~0)]
        case .ipv4Src(let v, let mask): return [(.ipv4Src, UInt64(v), m(mask))]
        case .ipv4Dst(let v, let mask): return [(.ipv4Dst, UInt64(v), m(mask))]
        case .tcpSrc(let v): return [(.tcpSrc, UInt64(v), ~0)]
        case .tcpDst(let v): return [(.tcpDst, UInt64(v), ~0)]
        case .udpSrc(let v): return [(.udpSrc, UInt64(v), ~0)]
        case .udpDst(let v): return [(.udpDst, UInt64(v), ~0)]
        case .sctpSrc(let v): return [(.sctpSrc, UInt64(v), ~0)]
        case .sctpDst(let v): return [(.sctpDst, UInt64(v), ~0)]
        case .icmpv4Type(let v): return [(.icmpv4Type, UInt64(v), ~0)]
        case .icmpv4Code(let v): return [(.icmpv4Code, UInt64(v), ~0)]
        case .arpOp(let v): return [(.arpOp, UInt64(v), ~0)]
        case .arpSPA(let v, let mask): return [(.arpSPA, UInt64(v), m(mask))]
        case .arpTPA(let v, let mask): return [(.arpTPA, UInt64(v), m(mask))]
        case .arpSHA(let v, let mask): return [(.arpSHA, mac(v), mask.map(mac) ?? ~0)]
        case .arpTHA(let v, let mask): return [(.arpTHA, mac(v), mask.map(mac) ?? ~0)]
        case .ipv6Src(let v, let mask):
            let (h, l) = halves(v)
            let (mh, ml) = mask.map(halves) ?? (~0, ~0)
            return [(.ipv6SrcHigh, h, mh), (.ipv6SrcLow, l, ml)].filter { $0.2 != 0 }
        case .ipv6Dst(let v, let mask):
            let (h, l) = halves(v)
            let (mh, ml) = mask.map(halves) ?? (~0, ~0)
            return [(.ipv6DstHigh, h, mh), (.ipv6DstLow, l, ml)].filter { $0.2 != 0 }
        case .icmpv6Type(let v): return [(.icmpv6Type, UInt64(v), ~0)]
        case .icmpv6Code(let v): return [(.icmpv6Code, UInt64(v), ~0)]
        case .filterProg: return []
        case .inPhyPort, .ipv6FLabel:
            throw OpenFlowError(.badMatch, BadMatchCode.badField, "match field \(field) is not supported by the datapath")
        }
    }

    func datapathMatch(_ match: Match) throws(OpenFlowError) -> FlowMatch {
        var result = FlowMatch()
        for field in match.fields {
            if case .filterProg(let id) = field {
                let catalogue = state.withLock { $0.catalogue }
                let programID = catalogue.map { $0.datapathProgramID(forFilterProg: id) } ?? id
                guard let programID else {
                    throw OpenFlowError(.badMatch, BadMatchCode.badValue, "filter program \(id) is not loaded")
                }
                result.filterProgram = programID
                continue
            }
            for (f, value, mask) in try Self.datapathFields(field) {
                if value & ~mask & f.maxValue != 0 {
                    throw OpenFlowError(.badMatch, BadMatchCode.badWildcards,
                                        "\(f) value has bits set outside its mask")
                }
                result.set(f, value, mask: mask)
            }
        }
        return result
    }

    /// The datapath match as OXM fields; shared bits (ipv4/arp, l4 ports) are named by eth_type/ip_proto.
    func openFlowMatch(_ match: FlowMatch) -> Match {
        let key = match.key, mask = match.mask
        func has(_ f: FlowField) -> Bool { mask.value(f) != 0 }
        func masked<T: FixedWidthInteger>(_ f: FlowField, _ type: T.Type) -> (T, T?) {
            let m = mask.value(f)
            return (T(truncatingIfNeeded: key.value(f)), m == f.maxValue ? nil : T(truncatingIfNeeded: m))
        }
        func exact<T: FixedWidthInteger>(_ f: FlowField, _ type: T.Type) -> T { T(truncatingIfNeeded: key.value(f)) }
        var fields: [MatchField] = []
        if has(.inPort) { fields.append(.inPort(exact(.inPort, UInt32.self))) }
        if has(.metadata) { let (v, m) = masked(.metadata, UInt64.self); fields.append(.metadata(v, mask: m)) }
        for (f, make) in [(FlowField.ethDst, MatchField.ethDst), (.ethSrc, MatchField.ethSrc)] where has(f) {
            let m = mask.value(f)
            fields.append(make(Self.mac(key.value(f)), m == f.maxValue ? nil : Self.mac(m)))
        }
        let ethType = has(.ethType) ? UInt16(key.value(.ethType)) : nil
        if let ethType { fields.append(.ethType(ethType)) }
        if has(.vlanVID) { let (v, m) = masked(.vlanVID, UInt16.self); fields.append(.vlanVID(v, mask: m)) }
        if has(.vlanPCP) { fields.append(.vlanPCP(exact(.vlanPCP, UInt8.self))) }
        if has(.ipDSCP) { fields.append(.ipDSCP(exact(.ipDSCP, UInt8.self))) }
        if has(.ipECN) { fields.append(.ipECN(exact(.ipECN, UInt8.self))) }
        let proto = has(.ipProto) ? UInt8(key.value(.ipProto)) : nil
        if let proto { fields.append(.ipProto(proto)) }
        if ethType == 0x0806 {
            if has(.arpSPA) { let (v, m) = masked(.arpSPA, UInt32.self); fields.append(.arpSPA(v, mask: m)) }
            if has(.arpTPA) { let (v, m) = masked(.arpTPA, UInt32.self); fields.append(.arpTPA(v, mask: m)) }
        } else {
            if has(.ipv4Src) { let (v, m) = masked(.ipv4Src, UInt32.self); fields.append(.ipv4Src(v, mask: m)) }
            if has(.ipv4Dst) { let (v, m) = masked(.ipv4Dst, UInt32.self); fields.append(.ipv4Dst(v, mask: m)) }
        }
        let ports: (FlowField, FlowField, (UInt16) -> MatchField, (UInt16) -> MatchField)?
        switch proto {
        case 6: ports = (.tcpSrc, .tcpDst, MatchField.tcpSrc, MatchField.tcpDst)
        case 17: ports = (.udpSrc, .udpDst, MatchField.udpSrc, MatchField.udpDst)
        case 132: ports = (.sctpSrc, .sctpDst, MatchField.sctpSrc, MatchField.sctpDst)
        case 1: ports = (.icmpv4Type, .icmpv4Code, { .icmpv4Type(UInt8(truncatingIfNeeded: $0)) },
                         { .icmpv4Code(UInt8(truncatingIfNeeded: $0)) })
        case 58: ports = (.icmpv6Type, .icmpv6Code, { .icmpv6Type(UInt8(truncatingIfNeeded: $0)) },
                          { .icmpv6Code(UInt8(truncatingIfNeeded: $0)) })
        default: ports = nil
        }
        if let (src, dst, makeSrc, makeDst) = ports {
            if has(src) { fields.append(makeSrc(exact(src, UInt16.self))) }
            if has(dst) { fields.append(makeDst(exact(dst, UInt16.self))) }
        }
        if has(.arpOp) { fields.append(.arpOp(exact(.arpOp, UInt16.self))) }
        if has(.arpSHA) { let m = mask.value(.arpSHA); fields.append(.arpSHA(Self.mac(key.value(.arpSHA)), mask: m == FlowField.arpSHA.maxValue ? nil : Self.mac(m))) }
        if has(.arpTHA) { let m = mask.value(.arpTHA); fields.append(.arpTHA(Self.mac(key.value(.arpTHA)), mask: m == FlowField.arpTHA.maxValue ? nil : Self.mac(m))) }
        for (high, low, make) in [(FlowField.ipv6SrcHigh, FlowField.ipv6SrcLow, MatchField.ipv6Src),
                                  (.ipv6DstHigh, .ipv6DstLow, MatchField.ipv6Dst)] where has(high) || has(low) {
            let mh = mask.value(high), ml = mask.value(low)
            let full = mh == ~0 && ml == ~0
            fields.append(make(Self.ipv6(key.value(high), key.value(low)), full ? nil : Self.ipv6(mh, ml)))
        }
        if let p = match.filterProgram {
            let catalogue = state.withLock { $0.catalogue }
            fields.append(.filterProg(catalogue?.filterProgID(forDatapathProgram: p) ?? p))
        }
        return Match(fields)
    }

    // MARK: instruction and action translation

    func datapathInstructions(_ instructions: [Instruction]) throws(OpenFlowError) -> FlowInstructions {
        var result = FlowInstructions()
        for instruction in instructions {
            switch instruction {
            case .gotoTable(let t):
                guard Int(t) < bridge.tableCount else {
                    throw OpenFlowError(.badInstruction, BadInstructionCode.badTableID, "goto-table \(t) does not exist")
                }
                result.gotoTable = t
            case .writeMetadata(let value, let mask): result.writeMetadata = (value, mask)
            case .writeActions(let actions): result.writeActions = try datapathActions(actions)
            case .applyActions(let actions): result.applyActions = try datapathActions(actions)
            case .clearActions: result.clearActions = true
            case .meter:
                throw OpenFlowError(.badInstruction, BadInstructionCode.unsupportedInstruction, "meters are not supported")
            case .experimenter(let id, _):
                throw OpenFlowError(.badInstruction, BadInstructionCode.badExperimenter,
                                    "experimenter instruction 0x\(String(id, radix: 16)) unsupported")
            }
        }
        return result
    }

    func datapathActions(_ actions: [Action]) throws(OpenFlowError) -> [FlowAction] {
        var result: [FlowAction] = []
        for action in actions {
            switch action {
            case .output(let port, let maxLength):
                let special: Set<UInt32> = [OpenFlowPort.inPort, OpenFlowPort.normal, OpenFlowPort.flood, OpenFlowPort.all,
                                            OpenFlowPort.controller]
                guard (port > 0 && port < OpenFlowPort.max) || special.contains(port) else {
                    throw OpenFlowError(.badAction, BadActionCode.badOutPort, "output to port 0x\(String(port, radix: 16)) is not supported")
                }
                result.append(.output(port, maxLength: maxLength))
            case .group(let g): result.append(.group(g))
            case .pushVLAN(let ethertype):
                guard ethertype == 0x8100 || ethertype == 0x88a8 else {
                    throw OpenFlowError(.badAction, BadActionCode.badArgument, "push_vlan ethertype 0x\(String(ethertype, radix: 16))")
                }
                result.append(.pushVLAN(ethertype))
            case .popVLAN: result.append(.popVLAN)
            case .decNWTTL: result.append(.decTTL)
            case .setNWTTL(let ttl): result.append(.setField(.ipTTL, UInt64(ttl)))
            case .setField(let field):
                if case .filterProg = field {
                    throw OpenFlowError(.badAction, BadActionCode.badSetType, "filter_prog cannot be set")
                }
                let parts: [(FlowField, UInt64, UInt64)]
                do { parts = try Self.datapathFields(field) } catch {
                    throw OpenFlowError(.badAction, BadActionCode.badSetType, error.reason)
                }
                for (f, value, _) in parts {
                    if f == .inPort {
                        throw OpenFlowError(.badAction, BadActionCode.badSetType, "in_port cannot be set")
                    }
                    result.append(.setField(f, f == .vlanVID ? value & 0x0fff : value))
                }
            case .copyTTLOut, .copyTTLIn, .setMPLSTTL, .decMPLSTTL, .pushMPLS, .popMPLS, .setQueue:
                throw OpenFlowError(.badAction, BadActionCode.badType, "action \(action) is not supported by the datapath")
            case .sendMaps(let programID, let mapIDs):
                guard !mapIDs.isEmpty else {
                    throw OpenFlowError(.badAction, BadActionCode.badArgument, "SEND_MAPS names no map")
                }
                if let catalogue = state.withLock({ $0.catalogue }),
                   catalogue.datapathProgramID(forFilterProg: UInt32(programID)) == nil {
                    throw OpenFlowError(.badAction, BadActionCode.badArgument, "SEND_MAPS: filter program \(programID) is not loaded")
                }
                result.append(.sendMaps(program: UInt32(programID), maps: mapIDs, maxPerSecond: Self.sendMapsPerSecond))
            case .experimenter(let id, _):
                throw OpenFlowError(.badAction, BadActionCode.badExperimenter, "experimenter action 0x\(String(id, radix: 16))")
            }
        }
        return result
    }

    static func openFlowAction(_ action: FlowAction) -> Action {
        switch action {
        case .output(let port, let maxLength): return .output(port: port, maxLength: maxLength)
        case .group(let g): return .group(g)
        case .pushVLAN(let t): return .pushVLAN(ethertype: t)
        case .popVLAN: return .popVLAN
        case .decTTL: return .decNWTTL
        case .sendMaps(let program, let maps, _): return .sendMaps(programID: UInt16(truncatingIfNeeded: program), mapIDs: maps)
        case .setField(.ipTTL, let v): return .setNWTTL(UInt8(truncatingIfNeeded: v))
        case .setField(let f, let v): return .setField(openFlowSetField(f, v))
        }
    }

    private static func openFlowSetField(_ f: FlowField, _ v: UInt64) -> MatchField {
        switch f {
        case .inPort: return .inPort(UInt32(truncatingIfNeeded: v))
        case .metadata: return .metadata(v)
        case .ethSrc: return .ethSrc(mac(v))
        case .ethDst: return .ethDst(mac(v))
        case .ethType: return .ethType(UInt16(truncatingIfNeeded: v))
        case .vlanVID: return .vlanVID(UInt16(truncatingIfNeeded: v) | OXM.vlanPresent)
        case .vlanPCP: return .vlanPCP(UInt8(truncatingIfNeeded: v))
        case .arpOp: return .arpOp(UInt16(truncatingIfNeeded: v))
        case .arpSPA: return .arpSPA(UInt32(truncatingIfNeeded: v))
        case .arpTPA: return .arpTPA(UInt32(truncatingIfNeeded: v))
        case .arpSHA: return .arpSHA(mac(v))
        case .arpTHA: return .arpTHA(mac(v))
        case .ipv4Src: return .ipv4Src(UInt32(truncatingIfNeeded: v))
        case .ipv4Dst: return .ipv4Dst(UInt32(truncatingIfNeeded: v))
        case .ipProto: return .ipProto(UInt8(truncatingIfNeeded: v))
        case .ipDSCP: return .ipDSCP(UInt8(truncatingIfNeeded: v))
        case .ipECN: return .ipECN(UInt8(truncatingIfNeeded: v))
        case .ipTTL: return .ipProto(UInt8(truncatingIfNeeded: v))  // unreachable: openFlowAction maps it to SET_NW_TTL
        case .ipv6SrcHigh: return .ipv6Src(ipv6(v, 0), mask: ipv6(~0, 0))
        case .ipv6SrcLow: return .ipv6Src(ipv6(0, v), mask: ipv6(0, ~0))
        case .ipv6DstHigh: return .ipv6Dst(ipv6(v, 0), mask: ipv6(~0, 0))
        case .ipv6DstLow: return .ipv6Dst(ipv6(0, v), mask: ipv6(0, ~0))
        case .tcpSrc: return .tcpSrc(UInt16(truncatingIfNeeded: v))
        case .tcpDst: return .tcpDst(UInt16(truncatingIfNeeded: v))
        case .tcpFlags: return .tcpSrc(UInt16(truncatingIfNeeded: v))
        case .udpSrc: return .udpSrc(UInt16(truncatingIfNeeded: v))
        case .udpDst: return .udpDst(UInt16(truncatingIfNeeded: v))
        case .sctpSrc: return .sctpSrc(UInt16(truncatingIfNeeded: v))
        case .sctpDst: return .sctpDst(UInt16(truncatingIfNeeded: v))
        case .icmpv4Type: return .icmpv4Type(UInt8(truncatingIfNeeded: v))
        case .icmpv4Code: return .icmpv4Code(UInt8(truncatingIfNeeded: v))
        case .icmpv6Type: return .icmpv6Type(UInt8(truncatingIfNeeded: v))
        case .icmpv6Code: return .icmpv6Code(UInt8(truncatingIfNeeded: v))
        }
    }

    static func openFlowActions(_ actions: [FlowAction]) -> [Action] { actions.map(openFlowAction) }

    static func openFlowInstructions(_ i: FlowInstructions) -> [Instruction] {
        var result: [Instruction] = []
        if let apply = i.applyActions { result.append(.applyActions(openFlowActions(apply))) }
        if i.clearActions { result.append(.clearActions) }
        if let write = i.writeActions { result.append(.writeActions(openFlowActions(write))) }
        if let (value, mask) = i.writeMetadata { result.append(.writeMetadata(value, mask: mask)) }
        if let t = i.gotoTable { result.append(.gotoTable(t)) }
        return result
    }

    static func openFlowGroupType(_ t: OkoDatapath.GroupType) -> OkoOpenFlow.GroupType {
        switch t {
        case .all: .all
        case .select: .select
        case .indirect: .indirect
        }
    }
}

/// Turns datapath events into asynchronous OpenFlow messages: polls the bridge's packet-in queue and
/// flow expiry on a repeating task on one event loop, sending them through the agent's event sink.
public final class DatapathEventPump: Sendable {
    private let agent: DatapathAgent
    private let task = Mutex<RepeatedTask?>(nil)

    public init(agent: DatapathAgent) { self.agent = agent }

    /// Starts polling every `interval` (packet-ins are drained on every tick; flow expiry has 1 s resolution
    /// anyway, so a few milliseconds is plenty).
    public func start(on eventLoop: EventLoop, interval: TimeAmount = .milliseconds(5)) {
        let agent = self.agent
        let repeated = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            agent.pollEvents()
        }
        task.withLock { $0?.cancel(); $0 = repeated }
    }

    public func stop() {
        task.withLock { $0?.cancel(); $0 = nil }
    }
}
