import Foundation
import Testing

/// okod as a child process on DPDK virtual devices: forwarding, counters, shutdown, configuration errors.
@Suite(.serialized)
struct OkodProcessTests {
    private func writeConfig(_ text: String, in directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("okod.yaml")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    private func counter(_ name: String, port: Int, in output: String) -> Int {
        var latest = -1
        for line in output.split(separator: "\n") where line.contains("port \(port): ") {
            if let range = line.range(of: "\(name)=") {
                latest = Int(line[range.upperBound...].prefix { $0.isNumber }) ?? latest
            }
        }
        return latest
    }

    @Test func forwardsExactlyTheReceivedPacketsInBothDirectionsAndCountsThem() throws {
        let directory = try TestEnvironment.temporaryDirectory("fwd")
        defer { try? FileManager.default.removeItem(at: directory) }
        let in1 = directory.appendingPathComponent("in1.pcap"), in2 = directory.appendingPathComponent("in2.pcap")
        let out1 = directory.appendingPathComponent("out1.pcap"), out2 = directory.appendingPathComponent("out2.pcap")
        try makePcap(["demo", in1.path, "--count", "200"])
        try makePcap(["udp", in2.path, "--flows", "50", "--size", "128"])
        let config = try writeConfig("""
            dpdk:
              eal_args: ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256"]
              mbufs: 4096
            stats_interval: 0.2
            bridges:
              - name: br0
                ports:
                  - devargs: "net_pcap0,rx_pcap=\(in1.path),tx_pcap=\(out1.path)"
                  - devargs: "net_pcap1,rx_pcap=\(in2.path),tx_pcap=\(out2.path)"
            """, in: directory)
        let okod = try ChildProcess(TestEnvironment.executable("okod"), ["--config", config.path])
        let forwarded = okod.waitForOutput(timeout: 30) { output in
            counter("tx_packets", port: 2, in: output) == 200 && counter("tx_packets", port: 1, in: output) == 50
        }
        #expect(forwarded, "okod output:\n\(okod.output)")
        kill(okod.process.processIdentifier, SIGTERM)
        let elapsed = okod.waitForExit(timeout: 5)
        #expect(elapsed != nil && elapsed! < 1.0, "okod must stop within one second of SIGTERM (took \(String(describing: elapsed)))")
        #expect(okod.process.terminationStatus == 0)
        #expect(okod.output.contains("stopped cleanly"))

        let output = okod.output
        #expect(counter("rx_packets", port: 1, in: output) == 200)
        #expect(counter("rx_packets", port: 2, in: output) == 50)
        #expect(counter("rx_bytes", port: 1, in: output) == (try readPcap(in1)).reduce(0) { $0 + $1.count })
        #expect(counter("rx_bytes", port: 2, in: output) == 50 * 128)
        #expect(counter("tx_bytes", port: 1, in: output) == 50 * 128)
        #expect(try readPcap(out2) == readPcap(in1), "port 2 must emit exactly what port 1 received, in order")
        #expect(try readPcap(out1) == readPcap(in2), "port 1 must emit exactly what port 2 received, in order")
    }

    /// A net_ring port created by devargs loops what it sends back into its own receive queue, so every
    /// packet entering port 1 crosses the bridge twice and leaves port 1 again, exactly once.
    @Test func packetsComeBackThroughALoopingRingPort() throws {
        let directory = try TestEnvironment.temporaryDirectory("ring")
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("in.pcap"), output = directory.appendingPathComponent("out.pcap")
        try makePcap(["udp", input.path, "--flows", "64"])
        let config = try writeConfig("""
            dpdk:
              eal_args: ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256"]
              mbufs: 4096
            stats_interval: 0.2
            bridges:
              - name: br0
                ports:
                  - devargs: "net_pcap0,rx_pcap=\(input.path),tx_pcap=\(output.path)"
                  - devargs: "net_ring0"
            """, in: directory)
        let okod = try ChildProcess(TestEnvironment.executable("okod"), ["--config", config.path])
        let looped = okod.waitForOutput(timeout: 30) { counter("tx_packets", port: 1, in: $0) == 64 }
        #expect(looped, "okod output:\n\(okod.output)")
        kill(okod.process.processIdentifier, SIGTERM)
        #expect(okod.waitForExit(timeout: 5) != nil)
        let log = okod.output
        #expect(counter("rx_packets", port: 2, in: log) == 64)
        #expect(counter("tx_packets", port: 2, in: log) == 64)
        #expect(try readPcap(output) == readPcap(input))
    }

    @Test func demoConfigurationShowsRisingCountersAndStopsOnSIGINT() throws {
        let demoPcap = TestEnvironment.packageRoot.appendingPathComponent("run/demo.pcap")
        if !FileManager.default.fileExists(atPath: demoPcap.path) {
            try FileManager.default.createDirectory(at: demoPcap.deletingLastPathComponent(), withIntermediateDirectories: true)
            try makePcap(["demo", demoPcap.path])
        }
        let config = TestEnvironment.packageRoot.appendingPathComponent("deploy/demo.yaml")
        let okod = try ChildProcess(TestEnvironment.executable("okod"), ["--config", config.path])
        // Two successive counter lines for port 1 with a rising rx count.
        let rising = okod.waitForOutput(timeout: 30) { output in
            let values = output.split(separator: "\n").filter { $0.contains("br0 port 1:") }.compactMap { line -> Int? in
                guard let range = line.range(of: "rx_packets=") else { return nil }
                return Int(line[range.upperBound...].prefix { $0.isNumber })
            }
            return values.count >= 2 && values[values.count - 1] > values[values.count - 2] && values[values.count - 2] > 0
        }
        #expect(rising, "okod output:\n\(okod.output)")
        kill(okod.process.processIdentifier, SIGINT)
        let elapsed = okod.waitForExit(timeout: 5)
        #expect(elapsed != nil && elapsed! < 1.0)
        #expect(okod.process.terminationStatus == 0)
    }

    /// Runs okod on a configuration that must be refused; returns (exit status, output).
    private func refuse(_ yaml: String) throws -> (Int32, String) {
        let directory = try TestEnvironment.temporaryDirectory("badcfg")
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = try writeConfig(yaml, in: directory)
        let okod = try ChildProcess(TestEnvironment.executable("okod"), ["--config", config.path])
        #expect(okod.waitForExit(timeout: 30) != nil, "okod must exit on a bad configuration")
        return (okod.process.terminationStatus, okod.output)
    }

    @Test(arguments: [
        ("bridges:\n  - name: br0\n    ports:\n      - devarg: net_null0\n", "bridges[0].ports[0]: missing key 'devargs'"),
        ("bridges:\n  - name: br0\n    colour: blue\n", "bridges[0]: unknown key 'colour'"),
        ("dpdk:\n  eal_argz: []\n", "dpdk: unknown key 'eal_argz'"),
        ("bridges:\n  - name: br0\n    ports:\n      - devargs: net_bogus0\n", "'net_bogus0' is neither a PCI address nor a known virtual device"),
        ("bridges:\n  - name: br0\n    ports:\n      - devargs: \"net_pcap0,rx_pcap=/nonexistent/in.pcap\"\n", "pcap file '/nonexistent/in.pcap' does not exist"),
        ("bridges:\n  - name: br0\n    ports:\n      - devargs: \"net_null0,no-rx\"\n", "argument 'no-rx' in 'net_null0,no-rx' is not KEY=VALUE"),
        ("bridges: [unclosed\n", "is not valid YAML"),
        ("log_level: loud\n", "log_level: 'loud' is not one of"),
        ("api:\n  listen: localhost\n", "api.listen: 'localhost' is not HOST:PORT"),
    ])
    func refusesABadConfigurationNamingTheProblem(yaml: String, expected: String) throws {
        let (status, output) = try refuse(yaml)
        #expect(status == 2)
        #expect(output.contains(expected), "output was: \(output)")
    }

    @Test func reportsDevargsThatDPDKRefuses() throws {
        let (status, output) = try refuse("""
            dpdk:
              eal_args: ["-l", "0-1", "--no-pci"]
            bridges:
              - name: br0
                ports:
                  - devargs: "net_null0,no-rx=1,frobnicate=3"
            """)
        #expect(status == 1)
        #expect(output.contains("attach port 'net_null0,no-rx=1,frobnicate=3'"), "output was: \(output)")
    }

    @Test func missingConfigurationFileIsReported() throws {
        let okod = try ChildProcess(TestEnvironment.executable("okod"), ["--config", "/nonexistent/okod.yaml"])
        _ = okod.waitForExit(timeout: 10)
        #expect(okod.process.terminationStatus == 2)
        #expect(okod.output.contains("cannot read configuration file '/nonexistent/okod.yaml'"))
    }
}
