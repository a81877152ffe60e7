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
            api: {listen: "127.0.0.1:0", token_file: "\(directory.path)/tokens"}
            bridges:
              - name: br0
                ports:
                  - devargs: "net_pcap0,rx_pcap=\(in1.path),tx_pcap=\(out1.path)"
                  - devargs: "net_pcap1,rx_pcap=\(in2.path),tx_pcap=\(out2.path)"
                flows:
                  - "priority=10,in_port=1,actions=output:2"
                  - "priority=10,in_port=2,actions=output:1"
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
            api: {listen: "127.0.0.1:0", token_file: "\(directory.path)/tokens"}
            bridges:
              - name: br0
                ports:
                  - devargs: "net_pcap0,rx_pcap=\(input.path),tx_pcap=\(output.path)"
                  - devargs: "net_ring0"
                flows:
                  - "priority=10,in_port=1,actions=output:2"
                  - "priority=10,in_port=2,actions=output:1"
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

    @Test func demoConfigurationForwardsThroughItsRulesAndServesTheAPI() throws {
        let demoPcap = TestEnvironment.packageRoot.appendingPathComponent("run/demo.pcap")
        if !FileManager.default.fileExists(atPath: demoPcap.path) {
            try FileManager.default.createDirectory(at: demoPcap.deletingLastPathComponent(), withIntermediateDirectories: true)
            try makePcap(["demo", demoPcap.path])
        }
        // The demo configuration as shipped, but on an ephemeral API port with its own token file.
        let directory = try TestEnvironment.temporaryDirectory("demo")
        defer { try? FileManager.default.removeItem(at: directory) }
        let deploy = TestEnvironment.packageRoot.appendingPathComponent("deploy")
        let tokenFile = directory.appendingPathComponent("tokens")
        let shipped = try String(contentsOf: deploy.appendingPathComponent("demo.yaml"), encoding: .utf8)
        let yaml = shipped.replacingOccurrences(of: "listen: 127.0.0.1:8080", with: "listen: 127.0.0.1:0")
            .replacingOccurrences(of: "listen: 127.0.0.1:6653", with: "listen: 127.0.0.1:0")
            .replacingOccurrences(of: "\"${config_dir}/../run/api.tokens\"", with: "\"\(tokenFile.path)\"")
            .replacingOccurrences(of: "${config_dir}", with: deploy.path)
        #expect(yaml != shipped)
        let config = try writeConfig(yaml, in: directory)
        let okod = try ChildProcess(TestEnvironment.executable("okod"), ["--config", config.path])
        defer { if okod.process.isRunning { kill(okod.process.processIdentifier, SIGKILL) } }
        func values(_ name: String, port: Int, _ output: String) -> [Int] {
            output.split(separator: "\n").filter { $0.contains("br0 port \(port):") }.compactMap { line -> Int? in
                guard let range = line.range(of: "\(name)=") else { return nil }
                return Int(line[range.upperBound...].prefix { $0.isNumber })
            }
        }
        // Rising receive counts on port 1 and transmit counts on port 2: the rules forward the replay.
        let rising = okod.waitForOutput(timeout: 30) { output in
            let rx = values("rx_packets", port: 1, output), tx = values("tx_packets", port: 2, output)
            return rx.count >= 2 && rx[rx.count - 1] > rx[rx.count - 2] && tx.count >= 2 && tx[tx.count - 1] > tx[tx.count - 2]
        }
        #expect(rising, "okod output:\n\(okod.output)")

        guard let line = okod.output.split(separator: "\n").first(where: { $0.contains("management API listening on") }),
            let port = line.split(separator: ":").last.flatMap({ Int($0) })
        else {
            Issue.record("no API address in the log:\n\(okod.output)")
            return
        }
        let base = "http://127.0.0.1:\(port)"
        let (flowsStatus, flows) = try curl(["-H", "Accept: text/plain", "\(base)/v1/bridges/br0/flows"])
        #expect(flowsStatus == 200)
        #expect(flows.contains("priority=10,in_port=1 actions=output:2"), "flows: \(flows)")
        let (_, metrics) = try curl(["--http2-prior-knowledge", "\(base)/metrics"])
        let transmitted = metrics.split(separator: "\n").first { $0.hasPrefix("oko_port_tx_packets_total{bridge=\"br0\",port=\"2\",") }
        #expect((transmitted?.split(separator: " ").last.flatMap { Double($0) } ?? 0) > 0, "metrics: \(metrics.prefix(2000))")

        let rule = "priority=20,in_port=2,actions=drop"
        let (refused, _) = try curl(["-X", "POST", "-H", "Content-Type: text/plain", "--data", rule, "\(base)/v1/bridges/br0/flows"])
        #expect(refused == 401, "a change without a token must be refused")
        let token = try String(contentsOf: tokenFile, encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("admin ") }.map { String($0.split(separator: " ")[1]) } ?? ""
        let (added, _) = try curl(["-X", "POST", "-H", "Content-Type: text/plain", "-H", "Authorization: Bearer \(token)",
                                   "--data", rule, "\(base)/v1/bridges/br0/flows"])
        #expect(added == 201)

        // OpenFlow sees and changes the same tables: ovs-ofctl dumps the configured rules with their
        // counters, and a rule it adds shows up in the REST API.
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/ovs-ofctl"),
            let ofLine = okod.output.split(separator: "\n").first(where: { $0.contains("OpenFlow 1.3 listening on") }),
            let ofPort = ofLine.split(separator: " ").first(where: { $0.hasPrefix("127.0.0.1:") }).flatMap({ Int($0.split(separator: ":")[1]) })
        {
            let target = "tcp:127.0.0.1:\(ofPort)"
            let (dumpStatus, dump) = try run("/usr/bin/ovs-ofctl", ["-O", "OpenFlow13", "dump-flows", target])
            #expect(dumpStatus == 0, "ovs-ofctl dump-flows: \(dump)")
            let forwarding = dump.split(separator: "\n").first { $0.contains("in_port=1") && $0.contains("output:2") }
            let packets = forwarding.flatMap { line in line.range(of: "n_packets=").map { Int(line[$0.upperBound...].prefix { $0.isNumber }) ?? 0 } } ?? 0
            #expect(packets > 0, "the configured rule counts packets: \(dump)")
            let (addStatus, addOutput) = try run("/usr/bin/ovs-ofctl", ["-O", "OpenFlow13", "add-flow", target, "priority=30,in_port=2,udp,actions=drop"])
            #expect(addStatus == 0, "ovs-ofctl add-flow: \(addOutput)")
            let (_, restFlows) = try curl(["-H", "Accept: text/plain", "\(base)/v1/bridges/br0/flows"])
            #expect(restFlows.contains("priority=30,udp,in_port=2"), "REST must list the OpenFlow rule: \(restFlows)")
        } else {
            Issue.record("no ovs-ofctl or no OpenFlow address in the log:\n\(okod.output.prefix(3000))")
        }

        kill(okod.process.processIdentifier, SIGINT)
        let elapsed = okod.waitForExit(timeout: 5)
        #expect(elapsed != nil && elapsed! < 1.0, "okod must stop within one second of SIGINT (took \(String(describing: elapsed)))")
        #expect(okod.process.terminationStatus == 0)
    }

    private func run(_ path: String, _ arguments: [String]) throws -> (Int32, String) {
        try runToCompletion(URL(fileURLWithPath: path), arguments)
    }

    /// Runs curl; returns (HTTP status, body).
    private func curl(_ arguments: [String]) throws -> (Int, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-s", "-o", "-", "-w", "\n%{http_code}"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let status = Int(lines.popLast() ?? "") ?? 0
        return (status, lines.joined(separator: "\n"))
    }

    /// The classic Oko workflow over DPDK ports: load a filter program from an ELF object through the API,
    /// block an address in its map, add a `filter_prog` rule, and see the datapath obey the program.
    @Test func filterProgramLoadedThroughTheAPIFiltersDPDKTraffic() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/clang") else {
            print("SKIPPED: clang is not installed")
            return
        }
        let directory = try TestEnvironment.temporaryDirectory("prog")
        defer { try? FileManager.default.removeItem(at: directory) }
        let object = directory.appendingPathComponent("firewall.o")
        let source = TestEnvironment.packageRoot.appendingPathComponent("examples/bpf/stateless-firewall.c")
        let (clangStatus, clangOutput) = try runToCompletion(
            URL(fileURLWithPath: "/usr/bin/clang"),
            ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", source.path, "-o", object.path])
        #expect(clangStatus == 0, "clang: \(clangOutput)")
        let input = directory.appendingPathComponent("in.pcap")
        try makePcap(["demo", input.path, "--count", "400"])
        let tokenFile = directory.appendingPathComponent("tokens")
        let config = try writeConfig("""
            dpdk:
              eal_args: ["-l", "0-1", "--no-pci"]
              mbufs: 8192
            stats_interval: 0.5
            api: {listen: "127.0.0.1:0", token_file: "\(tokenFile.path)"}
            openflow: {listen: "127.0.0.1:0"}
            bridges:
              - name: br0
                ports:
                  - devargs: "net_pcap0,rx_pcap=\(input.path),infinite_rx=1"
                  - devargs: "net_null0,no-rx=1"
            """, in: directory)
        let okod = try ChildProcess(TestEnvironment.executable("okod"), ["--config", config.path])
        defer { if okod.process.isRunning { kill(okod.process.processIdentifier, SIGKILL) } }
        #expect(okod.waitForOutput(timeout: 30) { $0.contains("okod ready") }, "okod output:\n\(okod.output)")
        guard let line = okod.output.split(separator: "\n").first(where: { $0.contains("management API listening on") }),
            let port = line.split(separator: ":").last.flatMap({ Int($0) })
        else {
            Issue.record("no API address in the log:\n\(okod.output)")
            return
        }
        let base = "http://127.0.0.1:\(port)/v1/bridges/br0"
        let token = try String(contentsOf: tokenFile, encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("admin ") }.map { String($0.split(separator: " ")[1]) } ?? ""
        let auth = ["-H", "Authorization: Bearer \(token)"]
        let (loaded, loadBody) = try curl(auth + ["-X", "PUT", "-H", "Content-Type: application/octet-stream",
                                                 "--data-binary", "@\(object.path)", "\(base)/programs/1"])
        #expect(loaded == 201, "load: \(loadBody)")
        // Block 10.0.0.2: every IPv4 packet of the demo traffic goes there; its ARP requests still pass.
        let (updated, updateBody) = try curl(auth + ["-X", "PUT", "-H", "Content-Type: application/json", "--data",
            #"{"entries": [{"key": "0a000002", "value": "0000000000000000"}]}"#, "\(base)/programs/1/maps/blocked"])
        #expect(updated == 200, "map update: \(updateBody)")
        let (added, addBody) = try curl(auth + ["-X", "POST", "-H", "Content-Type: text/plain", "--data-binary",
            "priority=10,in_port=1,filter_prog=1,actions=output:2\npriority=5,in_port=1,actions=drop", "\(base)/flows"])
        #expect(added == 201, "flows: \(addBody)")
        Thread.sleep(forTimeInterval: 1.5)

        // Rule counters: the program passes only ARP (1 packet in 8 of the demo traffic), the rest falls to drop.
        let (_, flowsText) = try curl(["\(base)/flows"])
        let flows = try JSONSerialization.jsonObject(with: Data(flowsText.utf8)) as? [String: Any]
        let list = flows?["flows"] as? [[String: Any]] ?? []
        func packets(priority: Int) -> Int {
            let rule = list.first { ($0["priority"] as? Int) == priority }
            return ((rule?["stats"] as? [String: Any])?["packets"] as? Int) ?? -1
        }
        let passed = packets(priority: 10), dropped = packets(priority: 5)
        #expect(passed > 0 && dropped > 0, "rules: \(flowsText.prefix(1500))")
        #expect(dropped > 5 * passed && dropped < 9 * passed, "IPv4 (7 of 8) must be dropped, ARP (1 of 8) passed: \(passed) passed, \(dropped) dropped")
        // The program counted its refusals in the map.
        let (_, entry) = try curl(["\(base)/programs/1/maps/blocked?key=0a000002"])
        let hits = (try JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String: Any])
            .flatMap { ($0["entries"] as? [[String: Any]])?.first?["value_typed"] as? Int } ?? 0
        #expect(hits > 0, "blocked map entry: \(entry)")

        kill(okod.process.processIdentifier, SIGTERM)
        #expect(okod.waitForExit(timeout: 5) != nil)
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
        ("store:\n  sync: sometimes\n", "store.sync: 'sometimes' is not one of full, normal"),
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
