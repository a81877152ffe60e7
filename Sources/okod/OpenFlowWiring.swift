// okod's OpenFlow endpoint: the passive listener, the active controller connections and the event pump
// around one `DatapathAgent`, plus the agent's filter-program catalogue.
//
// Design note
// - `OpenFlowEndpoint` owns one event loop group (1 thread): every session, connector and the event pump
//   run there. Asynchronous events (PACKET_IN, FLOW_REMOVED, PORT_STATUS, SEND_MAPS dumps) go to every
//   listener connection and every connected controller whose role receives them.
// - Active controllers (`openflow.controllers`) are retried forever with exponential back-off from 100 ms
//   up to `openflow.reconnect_max_seconds` (default 8 s); a connection that drops starts over at 100 ms.
// - `SharedProgramCatalogue` adapts the REST API's `LoadedProgramCatalogue` to the agent's
//   `FilterProgramCatalogue`: LOAD_FILTER_PROG is the same load as `PUT /v1/bridges/{b}/programs/{id}`,
//   so both front ends see one set of programs, and the OpenFlow program id is the REST id N used in
//   `filter_prog=N`. Map ids on the wire are the map's index in the ELF object (REST's `/maps/{index}`).
//   Failures come back as Oko experimenter errors (`OkoErrorCode`) carrying the reason text; a refused
//   load or an UPDATE_MAP with a badly sized entry changes nothing.
import Logging
import NIOCore
import NIOPosix
import OkoAPI
import OkoDatapath
import OkoLoader
import OkoMaps
import OkoOpenFlow
import Synchronization

final class SharedProgramCatalogue: FilterProgramCatalogue, @unchecked Sendable {
    private let catalogue: LoadedProgramCatalogue
    private let bridgeName: String
    private let bridge: Bridge

    init(catalogue: LoadedProgramCatalogue, bridgeName: String, bridge: Bridge) {
        self.catalogue = catalogue
        self.bridgeName = bridgeName
        self.bridge = bridge
    }

    func load(id: UInt16, elf: [UInt8]) throws(OpenFlowError) {
        do {
            try catalogue.loadProgram(bridgeName: bridgeName, bridge: bridge, id: UInt32(id), object: elf)
        } catch {
            let code: UInt16
            switch error.status {
            case 409: code = OkoErrorCode.programInUse
            case 422: code = OkoErrorCode.verifierRefused
            default: code = OkoErrorCode.badObject
            }
            throw .oko(code, "program \(id): \(error.detail)")
        }
    }

    private func loadedMaps(_ programID: UInt16) throws(OpenFlowError) -> [LoadedMap] {
        guard let maps = catalogue.loadedMaps(bridge: bridgeName, program: UInt32(programID)) else {
            throw .oko(OkoErrorCode.unknownProgram, "no program \(programID) on bridge \(bridgeName)")
        }
        return maps
    }

    func updateMap(programID: UInt16, map dump: MapDump) throws(OpenFlowError) {
        let maps = try loadedMaps(programID)
        guard Int(dump.mapID) < maps.count else {
            throw .oko(OkoErrorCode.unknownMap, "program \(programID) has \(maps.count) maps, no map \(dump.mapID)")
        }
        let map = maps[Int(dump.mapID)]
        // Check every entry before writing any, so a bad message changes nothing.
        guard dump.keySize == map.spec.keySize, dump.valueSize == map.spec.valueSize else {
            throw .oko(OkoErrorCode.badMapEntry,
                       "map \(map.spec.name) has \(map.spec.keySize)-byte keys and \(map.spec.valueSize)-byte values, "
                           + "the message \(dump.keySize) and \(dump.valueSize)")
        }
        for entry in dump.entries {
            do { try map.map.update(key: entry.key, value: entry.value) } catch {
                throw .oko(OkoErrorCode.badMapEntry, "map \(map.spec.name): \(error)")
            }
        }
    }

    /// An empty id list asks for every map of the program.
    func dumpMap(programID: UInt16, mapIDs: [UInt16]) throws(OpenFlowError) -> [MapDump] {
        let maps = try loadedMaps(programID)
        let wanted = mapIDs.isEmpty ? maps.indices.map { UInt16($0) } : mapIDs
        var result: [MapDump] = []
        for id in wanted {
            guard Int(id) < maps.count else {
                throw .oko(OkoErrorCode.unknownMap, "program \(programID) has \(maps.count) maps, no map \(id)")
            }
            let map = maps[Int(id)]
            let entries: [BPFMapEntry]
            do { entries = try map.map.entries() } catch {
                throw .oko(OkoErrorCode.unknownMap, "map \(map.spec.name) cannot be listed: \(error)")
            }
            result.append(MapDump(mapID: id, keySize: map.spec.keySize, valueSize: map.spec.valueSize,
                                  entries: entries.map { MapEntry(key: $0.key, value: $0.value) }))
        }
        return result
    }

    func datapathProgramID(forFilterProg id: UInt32) -> UInt32? {
        catalogue.datapathProgramID(bridge: bridgeName, program: id)
    }

    func filterProgID(forDatapathProgram id: UInt32) -> UInt32? {
        catalogue.operatorProgramID(bridge: bridgeName, datapathID: id)
    }
}

/// The OpenFlow side of okod for one bridge: listener, active controllers, event pump.
final class OpenFlowEndpoint: @unchecked Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let logger: Logger
    let agent: DatapathAgent
    private let listener: OpenFlowListener
    private let connectors: [OpenFlowConnector]
    private let pump: DatapathEventPump
    private let controllers: [(host: String, port: Int)]

    /// `connectionAgent` wraps the shared agent once per controller connection (okod: audit logging).
    init(bridge: Bridge, bridgeName: String, datapathID: UInt64, catalogue: LoadedProgramCatalogue,
         maxEntriesPerTable: Int, controllers: [(host: String, port: Int)], reconnectMaxSeconds: Double,
         logger: Logger, connectionAgent: @escaping @Sendable (DatapathAgent) -> any SwitchAgent) {
        self.logger = logger
        self.controllers = controllers
        let agent = DatapathAgent(bridge: bridge, datapathID: datapathID, maxEntriesPerTable: maxEntriesPerTable,
                                  catalogue: SharedProgramCatalogue(catalogue: catalogue, bridgeName: bridgeName, bridge: bridge))
        self.agent = agent
        // One role table for listener and controllers: a MASTER on either side demotes the others.
        let roles = ControllerRoles()
        let group = self.group
        listener = OpenFlowListener(group: group, roles: roles) { connectionAgent(agent) }
        let maxDelay = TimeAmount.milliseconds(Int64(reconnectMaxSeconds * 1000))
        connectors = controllers.map { target in
            OpenFlowConnector(group: group, host: target.host, port: target.port, roles: roles,
                              initialDelay: .milliseconds(100), maxDelay: max(maxDelay, .milliseconds(100))) { connectionAgent(agent) }
        }
        pump = DatapathEventPump(agent: agent)
        let listener = self.listener, connectors = self.connectors
        agent.setEventSink { event in
            listener.broadcast(event)
            for connector in connectors { connector.broadcast(event) }
        }
    }

    /// Binds the listener (returns its port) and starts connecting to the controllers.
    func start(host: String, port: Int) async throws -> Int {
        let bound = try await listener.start(host: host, port: port)
        for (connector, target) in zip(connectors, controllers) {
            logger.info("OpenFlow: connecting to controller tcp:\(target.host):\(target.port) (retrying with back-off)")
            connector.start()
        }
        pump.start(on: group.next())
        return bound
    }

    func stop() async throws {
        pump.stop()
        for connector in connectors { connector.stop() }
        try await listener.stop()
        try await group.shutdownGracefully()
    }
}
