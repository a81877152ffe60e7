// okod: the Oko appliance daemon.
//
// Start-up order: configuration (every error names its key), logging, EAL, mempool, configuration store
// (restore bridges, ports, programs, groups, rules and map snapshots, or seed an empty store from the
// file), poll-mode threads, API and OpenFlow, then /readyz says ready and signal handlers run.
// SIGTERM/SIGINT stop the API, save what is unsaved and the maps' contents, stop the poll-mode threads,
// stop and detach the ports and clean up the EAL, well within a second. Exit codes: 0 clean stop, 1 run-time failure
// (DPDK refused something), 2 configuration error.
import ArgumentParser
import Dispatch
import Foundation
import Logging
import OkoDPDK

struct Okod: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "okod",
        abstract: "The Oko switch daemon: DPDK datapath with BPF filter programs.",
        discussion: """
            Examples:
              okod --config deploy/okod.yaml
              okod --config deploy/demo.yaml --check-config
            """)

    @Option(name: .long, help: "Path of the YAML configuration file.")
    var config: String = "/etc/oko/okod.yaml"

    @Flag(name: .long, help: "Validate the configuration and exit.")
    var checkConfig = false

    func run() throws {
        let configuration: Configuration
        do {
            configuration = try Configuration.load(path: config)
        } catch {
            FileHandle.standardError.write(Data("okod: configuration error in '\(config)': \(error)\n".utf8))
            throw ExitCode(2)
        }
        if checkConfig {
            print("okod: configuration '\(config)' is valid (\(configuration.bridges.count) bridges)")
            return
        }
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "okod")
        do {
            let appliance = try Appliance(configuration: configuration, logger: logger)
            do {
                try appliance.start()
            } catch {
                // Poll-mode threads may already run: stop them (and the ports) before the EAL goes.
                logger.critical("start-up failed: \(error)")
                appliance.stop()
                throw ExitCode(1)
            }
            installSignalHandlers(appliance: appliance, logger: logger)
            dispatchMain()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            logger.critical("start-up failed: \(error)")
            EAL.cleanup()
            throw ExitCode(1)
        }
    }
}

/// Keeps the handler sources alive for the life of the process.
nonisolated(unsafe) private var signalSources: [DispatchSourceSignal] = []

private func installSignalHandlers(appliance: Appliance, logger: Logger) {
    for signalNumber in [SIGTERM, SIGINT] {
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .main)
        source.setEventHandler {
            logger.notice("received \(signalNumber == SIGTERM ? "SIGTERM" : "SIGINT"), stopping")
            appliance.stop()
            logger.notice("stopped cleanly")
            exit(0)
        }
        source.resume()
        signalSources.append(source)
    }
}

Okod.main()
