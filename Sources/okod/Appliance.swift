import Dispatch
import Foundation
import Logging
import OkoAPI
import OkoDPDK
import OkoDatapath
import OkoHTTP
import OkoOpenFlow
import OkoStore
import NIOPosix
import Synchronization

/// The running appliance: EAL and mempool, the switch service (bridges, ports, rules) with its DPDK ports,
/// poll-mode threads on dedicated lcores, the management API, and the configuration store
/// (`Persistence`): every acknowledged change is in the store, which wins over the file's bridges.
///
/// Threads: created, started and stopped on the main thread; each poll-mode thread owns one worker lcore;
/// the API runs on SwiftNIO's event loop; bridge creation through the API restarts the poll-mode threads with
/// the new bridge set (`PMDScheduler`).
final class Appliance: @unchecked Sendable {
    private let logger: Logger
    private let pool: PacketPool
    private let service: SwitchService
    private let portFactory: DPDKPortFactory
    private let scheduler: PMDScheduler
    private let server: HTTPServer
    private let programs: LoadedProgramCatalogue
    private let openflowListen: (host: String, port: Int)
    private let openflowBridge: String?
    private let openflowControllers: [(host: String, port: Int)]
    private let openflowReconnectMaxSeconds: Double
    private var openflow: OpenFlowEndpoint?
    private let statsInterval: Double
    private var statsTimer: DispatchSourceTimer?
    private var lastSnapshot: [String: PortStatistics] = [:]
    private var lastSnapshotTime = DispatchTime.now()
    private let persistence: Persistence
    private let limits: Configuration.Limits
    private let snapshotMapsOnShutdown: Bool

    init(configuration: Configuration, logger: Logger) throws {
        self.logger = logger
        self.statsInterval = configuration.statsInterval
        let eal = EAL.Arguments.resolve(program: "okod", configured: configuration.ealArguments)
        for warning in eal.warnings { logger.warning("\(warning)") }
        logger.info("initialising DPDK EAL: \(eal.arguments.dropFirst().joined(separator: " "))")
        EAL.setLogLevel(5)  // RTE_LOG_WARNING: keep PMD chatter out of the log
        try EAL.initialise(arguments: eal.arguments)
        EAL.setLogLevel(5)

        let workers = EAL.workerLcores
        var cores = configuration.pmdCores.isEmpty ? workers : configuration.pmdCores
        for core in cores where !workers.contains(core) {
            throw ConfigurationError("pmd_cores", "lcore \(core) is not an enabled worker lcore (workers: \(workers))")
        }
        if cores.isEmpty {
            throw ConfigurationError("dpdk.eal_args", "no worker lcore for poll-mode threads: enable at least two lcores (e.g. -l 0-1)")
        }
        cores.sort()
        pool = try PacketPool(name: "oko_mbufs", count: configuration.mbufs)
        portFactory = DPDKPortFactory(pool: pool, transmitQueues: cores.count)
        let pool = self.pool
        let catalogue = LoadedProgramCatalogue(limits: Self.programLimits(configuration.limits))
        programs = catalogue
        service = SwitchService(portFactory: portFactory, programs: catalogue, buffers: { DPDKPacketBuffers(pool: pool) })
        service.ready.store(false, ordering: .releasing)
        service.maxRulesPerTable.store(configuration.limits.maxRulesPerTable, ordering: .relaxed)
        limits = configuration.limits
        snapshotMapsOnShutdown = configuration.snapshotMapsOnShutdown
        scheduler = PMDScheduler(cores: cores, service: service, logger: logger)

        // The store wins over the configuration file: its bridges, ports and rules only seed an empty store.
        let storePath = configuration.resolvedStorePath
        let store: ConfigurationStore
        do { store = try ConfigurationStore(path: storePath, durability: configuration.storeDurability) } catch { throw StartupError("store.path: \(error)") }
        persistence = Persistence(store: store, service: service, catalogue: catalogue, logger: logger)
        if try persistence.isEmpty {
            try Self.seed(service: service, from: configuration, logger: logger)
            try persistence.flush()
            logger.notice("store \(storePath) created from the configuration file")
        } else {
            let summary: Persistence.RestoreSummary
            do { summary = try persistence.restore() } catch { throw StartupError("restoring from store \(storePath): \(error)") }
            logger.notice("restored from store \(storePath): \(summary)")
            if !configuration.bridges.isEmpty {
                logger.info("the configuration file's bridges, ports and flows are ignored: the store (revision \((try? store.revision) ?? 0)) holds the configuration")
            }
        }

        openflowListen = try Self.split(listen: configuration.openflowListen, key: "openflow.listen")
        openflowBridge = configuration.openflowBridge ?? service.bridgeNames().first
        openflowControllers = configuration.openflowControllers
        openflowReconnectMaxSeconds = configuration.openflowReconnectMaxSeconds
        if let name = configuration.openflowBridge, !service.bridgeNames().contains(name) {
            throw ConfigurationError("openflow.bridge", "no bridge is named '\(name)'")
        }
        let (host, port) = try Self.split(listen: configuration.apiListen, key: "api.listen")
        let tokens = try AccessControl.loadOrCreate(path: configuration.apiTokenFile)
        logger.notice("API tokens: \(configuration.apiTokenFile)\(tokens.created ? " (created with a new admin token)" : "")")
        let loopback = host == "127.0.0.1" || host == "::1" || host == "localhost"
        let api = ManagementAPI(
            service: service, access: AccessControl(tokens: tokens.tokens, requireTokenForReads: !loopback),
            maxBodyBytes: configuration.limits.maxRequestBodyBytes, logger: Logger(label: "oko.audit"))
        var httpConfiguration = HTTPServerConfiguration(host: host, port: port)
        httpConfiguration.logger = Logger(label: "oko.http")
        httpConfiguration.tls = configuration.apiTLS
        // Above the API's own limit, so an oversize body is answered by the API with a problem document.
        httpConfiguration.maxBodyBytes = configuration.limits.maxRequestBodyBytes + (64 << 10)
        server = HTTPServer(
            configuration: httpConfiguration,
            handler: PersistingHandler(api: api, persistence: persistence, audit: Logger(label: "oko.audit")))
    }

    /// Bridges, ports and rules of the configuration file (only into an empty store).
    private static func seed(service: SwitchService, from configuration: Configuration, logger: Logger) throws {
        for (bridgeIndex, bridge) in configuration.bridges.enumerated() {
            try service.createBridge(name: bridge.name)
            for (portIndex, port) in bridge.ports.enumerated() {
                do {
                    let record = try service.addPort(bridge: bridge.name, devargs: port.devargs, number: port.ofport, portName: port.name)
                    logger.info("bridge \(bridge.name): port \(record.statistics.number) is \(record.statistics.name) ('\(port.devargs)')")
                } catch {
                    throw StartupError("bridges[\(bridgeIndex)].ports[\(portIndex)]: \(error)")
                }
            }
            if !bridge.flows.isEmpty {
                do {
                    _ = try service.addFlows(bridge: bridge.name, bridge.flows, origin: "config")
                } catch {
                    throw StartupError("bridges[\(bridgeIndex)].flows: \(error)")
                }
                logger.info("bridge \(bridge.name): \(bridge.flows.count) rules from the configuration")
            }
        }
    }

    private static func programLimits(_ limits: Configuration.Limits) -> LoadedProgramCatalogue.Limits {
        var l = LoadedProgramCatalogue.Limits()
        l.maxObjectBytes = limits.maxELFBytes
        l.maxInstructions = limits.maxInstructions
        l.maxProgramsPerBridge = limits.maxProgramsPerBridge
        l.maxMapMemoryBytes = limits.maxMapMemoryBytes
        return l
    }

    struct StartupError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func split(listen: String, key: String) throws -> (String, Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ConfigurationError(key, "'\(listen)' is not HOST:PORT")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    func start() throws {
        service.ready.store(false, ordering: .relaxed)  // /readyz: 503 until the datapath and listeners are up
        scheduler.restart(bridges: service.bridges)
        let scheduler = self.scheduler
        service.onBridgesChanged { bridges in scheduler.restart(bridges: bridges) }

        // The server starts on NIO's threads; wait here so a failure (address in use) stops start-up.
        let server = self.server
        do {
            try waitFor { try await server.start() }
        } catch {
            throw StartupError("management API on \(server.configuration.host):\(server.configuration.port): \(error)")
        }
        if let tls = server.configuration.tls { logger.info("management API uses TLS (certificate \(tls.certificatePath))") }
        logger.info("management API listening on \(server.configuration.host):\(server.port ?? server.configuration.port)")
        try startOpenFlow()

        if statsInterval > 0 {
            let timer = DispatchSource.makeTimerSource(queue: .main)
            timer.schedule(deadline: .now() + statsInterval, repeating: statsInterval)
            timer.setEventHandler { [weak self] in self?.logCounters() }
            timer.resume()
            statsTimer = timer
        }
        service.ready.store(true, ordering: .releasing)
        logger.notice("okod ready")
    }

    /// Serves the configured bridge's tables to OpenFlow controllers (ovs-ofctl, SDN controllers); the
    /// REST API and OpenFlow change the same bridge.
    private func startOpenFlow() throws {
        guard let name = openflowBridge, let bridge = try? service.bridge(named: name),
            let summary = try? service.summary(name)
        else { return }
        let audit = Logger(label: "oko.audit")
        let endpoint = OpenFlowEndpoint(bridge: bridge, bridgeName: name, datapathID: summary.datapathID,
                                        catalogue: programs, maxEntriesPerTable: limits.maxRulesPerTable,
                                        controllers: openflowControllers,
                                        reconnectMaxSeconds: openflowReconnectMaxSeconds,
                                        logger: logger) { AuditingAgent(agent: $0, audit: audit) }
        // A BARRIER_REPLY acknowledges every FLOW_MOD before it: make them durable first.
        let persistence = self.persistence
        endpoint.agent.setBeforeBarrierReply { try persistence.flush() }
        do { try persistence.attach(agent: endpoint.agent, bridge: name) } catch { throw StartupError("\(error)") }
        let (host, port) = openflowListen
        do {
            let bound = try waitFor { try await endpoint.start(host: host, port: port) }
            logger.info("OpenFlow 1.3 listening on \(host):\(bound) for bridge \(name)")
        } catch {
            throw StartupError("OpenFlow listener on \(host):\(port): \(error)")
        }
        openflow = endpoint
    }

    func logCounters() {
        let now = DispatchTime.now()
        let seconds = Double(now.uptimeNanoseconds - lastSnapshotTime.uptimeNanoseconds) / 1e9
        lastSnapshotTime = now
        for name in service.bridgeNames() {
            guard let ports = try? service.ports(bridge: name) else { continue }
            for port in ports {
                let stats = port.statistics
                let key = "\(name)/\(stats.number)"
                let previous = lastSnapshot[key]
                lastSnapshot[key] = stats
                func mpps(_ now: UInt64, _ before: UInt64?) -> String {
                    guard let before, seconds > 0 else { return "-" }
                    return String(format: "%.3f", Double(now &- before) / seconds / 1e6)
                }
                logger.info("bridge \(name) port \(stats.number): rx_packets=\(stats.rxPackets) rx_bytes=\(stats.rxBytes) tx_packets=\(stats.txPackets) tx_bytes=\(stats.txBytes) tx_dropped=\(stats.txDrops) rx_mpps=\(mpps(stats.rxPackets, previous?.rxPackets)) tx_mpps=\(mpps(stats.txPackets, previous?.txPackets))")
            }
        }
    }

    /// Stops the API, then the poll-mode threads, then the ports, then the EAL.
    func stop() {
        statsTimer?.cancel()
        let server = self.server
        _ = try? waitFor(timeout: 0.5) { await server.shutdown(gracePeriod: .milliseconds(300)) }
        // No more API changes: save what is not saved yet, and the maps' contents (they die with us).
        do {
            try persistence.flush()
            if snapshotMapsOnShutdown {
                let saved = try persistence.snapshotMaps()
                if saved.maps > 0 { logger.info("saved \(saved.entries) entries of \(saved.maps) maps to the store") }
            }
        } catch {
            logger.error("saving the configuration at shutdown failed: \(error)")
        }
        if let endpoint = openflow {
            _ = try? waitFor(timeout: 0.3) { try await endpoint.stop() }
        }
        scheduler.stopAll()
        logCounters()
        portFactory.closeAll()
        EAL.cleanup()
    }
}

/// Runs `operation` on the concurrency pool and blocks the calling (main) thread until it finishes or
/// `timeout` seconds pass; start-up and shutdown are sequential, so the main thread has nothing else to do.
private func waitFor<T: Sendable>(
    timeout: Double? = nil, _ operation: @escaping @Sendable () async throws -> T
) throws -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            let value = try await operation()
            result.withLock { $0 = .success(value) }
        } catch {
            result.withLock { $0 = .failure(error) }
        }
        done.signal()
    }
    if let timeout {
        guard done.wait(timeout: .now() + timeout) == .success else { throw Appliance.StartupError("timed out") }
    } else {
        done.wait()
    }
    return try result.withLock { $0 }!.get()
}

/// Creates DPDK ports for the switch service and remembers them so they can be closed before the EAL goes.
final class DPDKPortFactory: PortFactory, @unchecked Sendable {
    private let pool: PacketPool
    private let transmitQueues: Int
    private let made = Mutex<[WeakPort]>([])

    private final class WeakPort: @unchecked Sendable {
        weak var port: DPDKPort?
        init(_ port: DPDKPort) { self.port = port }
    }

    init(pool: PacketPool, transmitQueues: Int) {
        self.pool = pool
        self.transmitQueues = transmitQueues
    }

    func makePort(devargs: String, name: String?, buffers: any PacketBufferBackend) throws -> any DatapathPort {
        let ethernet = try EthernetPort(devargs: devargs)
        let port: DPDKPort
        do {
            port = try DPDKPort(port: ethernet, pool: pool, transmitQueues: transmitQueues, name: name)
        } catch {
            ethernet.detach()
            throw error
        }
        made.withLock { list in
            list.removeAll { $0.port == nil }
            list.append(WeakPort(port))
        }
        return port
    }

    func closeAll() {
        for entry in made.withLock({ $0 }) { entry.port?.close() }
    }
}

/// Runs one poll-mode thread per configured lcore over the current bridges; restarting them is how a new
/// bridge set takes effect (ports and rules change without a restart, through the bridges' snapshots).
final class PMDScheduler: @unchecked Sendable {
    private let cores: [UInt32]
    private let service: SwitchService
    private let logger: Logger
    private let running = Mutex<[(core: UInt32, pmd: PMDThread)]>([])

    init(cores: [UInt32], service: SwitchService, logger: Logger) {
        self.cores = cores
        self.service = service
        self.logger = logger
    }

    func restart(bridges: [Bridge]) {
        running.withLock { running in
            Self.stop(&running)
            guard !bridges.isEmpty else {
                service.replacePMDs([])
                return
            }
            for (index, core) in cores.enumerated() {
                let pmd = PMDThread(bridges: bridges, index: index, threadCount: cores.count)
                do {
                    try EAL.launch(lcore: core) { pmd.run() }
                    running.append((core, pmd))
                } catch {
                    logger.error("cannot launch the poll-mode thread on lcore \(core): \(error)")
                }
            }
            service.replacePMDs(running.map(\.pmd))
            logger.info("poll-mode threads on lcores \(running.map(\.core)) serve bridges \(bridges.map(\.name))")
        }
    }

    func stopAll() { running.withLock { Self.stop(&$0) } }

    private static func stop(_ running: inout [(core: UInt32, pmd: PMDThread)]) {
        for (core, pmd) in running {
            pmd.stop()
            EAL.wait(lcore: core)
        }
        running.removeAll()
    }
}
