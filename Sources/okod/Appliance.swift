import Dispatch
import Foundation
import Logging
import OkoDPDK

/// The running appliance: EAL, one mempool, the configured bridges' ports and their poll-mode threads.
///
/// Threads: created, started and stopped on the main thread; each forwarder runs on its own worker lcore.
final class Appliance: @unchecked Sendable {
    struct BridgePorts {
        let name: String
        let ports: [(ofport: UInt32, port: EthernetPort)]
        let forwarder: CrossConnect?
    }

    private let logger: Logger
    private let pool: PacketPool
    private let bridges: [BridgePorts]
    private var launched: [UInt32] = []
    private let statsInterval: Double
    private var statsTimer: DispatchSourceTimer?
    private var lastSnapshot: [String: PortCounters.Snapshot] = [:]
    private var lastSnapshotTime = DispatchTime.now()
    private let pmdCores: [UInt32]

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
        if configuration.pmdCores.isEmpty {
            pmdCores = workers
        } else {
            for core in configuration.pmdCores where !workers.contains(core) {
                throw ConfigurationError("pmd_cores", "lcore \(core) is not an enabled worker lcore (workers: \(workers))")
            }
            pmdCores = configuration.pmdCores
        }
        pool = try PacketPool(name: "oko_mbufs", count: configuration.mbufs)

        var bridges: [BridgePorts] = []
        for bridge in configuration.bridges {
            var ports: [(UInt32, EthernetPort)] = []
            var nextOfport: UInt32 = 1
            for portConfig in bridge.ports {
                let port = try EthernetPort(devargs: portConfig.devargs)
                try port.start(pool: pool)
                let ofport = portConfig.ofport ?? nextOfport
                nextOfport = max(nextOfport, ofport) + 1
                ports.append((ofport, port))
                logger.info("bridge \(bridge.name): port \(ofport) is \(port.name) (dpdk port \(port.id), '\(portConfig.devargs)')")
            }
            ports.sort { $0.0 < $1.0 }
            var forwarder: CrossConnect?
            if ports.count >= 2 {
                forwarder = CrossConnect(ports[0].1, ports[1].1)
                if ports.count > 2 {
                    logger.warning("bridge \(bridge.name): ports after \(ports[1].0) are attached but idle until flow rules exist")
                }
            }
            bridges.append(BridgePorts(name: bridge.name, ports: ports, forwarder: forwarder))
        }
        self.bridges = bridges
        let needed = bridges.filter { $0.forwarder != nil }.count
        if needed > 0 && pmdCores.isEmpty {
            throw ConfigurationError("dpdk.eal_args", "no worker lcore for poll-mode threads: enable at least two lcores (e.g. -l 0-1)")
        }
    }

    func start() {
        var coreIndex = 0
        for bridge in bridges {
            guard let forwarder = bridge.forwarder else { continue }
            let core = pmdCores[coreIndex % pmdCores.count]
            coreIndex += 1
            if launched.contains(core) {
                logger.warning("bridge \(bridge.name): lcore \(core) is busy; its ports stay idle")
                continue
            }
            do {
                try EAL.launch(lcore: core) { forwarder.run() }
                launched.append(core)
                logger.info("bridge \(bridge.name): poll-mode thread on lcore \(core) forwarding port \(bridge.ports[0].ofport) <-> port \(bridge.ports[1].ofport)")
            } catch {
                logger.error("bridge \(bridge.name): cannot launch poll-mode thread: \(error)")
            }
        }
        if statsInterval > 0 {
            let timer = DispatchSource.makeTimerSource(queue: .main)
            timer.schedule(deadline: .now() + statsInterval, repeating: statsInterval)
            timer.setEventHandler { [weak self] in self?.logCounters() }
            timer.resume()
            statsTimer = timer
        }
        logger.notice("okod ready")
    }

    func logCounters() {
        let now = DispatchTime.now()
        let seconds = Double(now.uptimeNanoseconds - lastSnapshotTime.uptimeNanoseconds) / 1e9
        lastSnapshotTime = now
        for bridge in bridges {
            guard let forwarder = bridge.forwarder else { continue }
            for (index, counters) in [forwarder.counters.0, forwarder.counters.1].enumerated() {
                let ofport = bridge.ports[index].ofport
                let key = "\(bridge.name)/\(ofport)"
                let snapshot = counters.snapshot
                let previous = lastSnapshot[key]
                lastSnapshot[key] = snapshot
                func mpps(_ now: UInt64, _ before: UInt64?) -> String {
                    guard let before, seconds > 0 else { return "-" }
                    return String(format: "%.3f", Double(now &- before) / seconds / 1e6)
                }
                logger.info("bridge \(bridge.name) port \(ofport): rx_packets=\(snapshot.rxPackets) rx_bytes=\(snapshot.rxBytes) tx_packets=\(snapshot.txPackets) tx_bytes=\(snapshot.txBytes) tx_dropped=\(snapshot.txDropped) rx_mpps=\(mpps(snapshot.rxPackets, previous?.rxPackets)) tx_mpps=\(mpps(snapshot.txPackets, previous?.txPackets))")
            }
        }
    }

    /// Stops poll-mode threads, then ports, then the EAL.
    func stop() {
        statsTimer?.cancel()
        for bridge in bridges { bridge.forwarder?.stop() }
        for core in launched { EAL.wait(lcore: core) }
        launched.removeAll()
        logCounters()
        for bridge in bridges {
            for (_, port) in bridge.ports {
                port.stop()
                port.detach()
            }
        }
        EAL.cleanup()
    }
}
