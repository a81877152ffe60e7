import Foundation
import Testing

/// okod's configuration store as operators see it: restarts bring back ports, programs, map contents and
/// rules, and traffic flows through them again; the configuration file only seeds an empty store.
@Suite(.serialized)
struct PersistenceTests {
    /// An empty pcap (global header only), for a port that only transmits.
    private func emptyPcap(_ url: URL) throws {
        var header: [UInt8] = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]
        header += [UInt8](repeating: 0, count: 8) + [0xff, 0xff, 0, 0] + [1, 0, 0, 0]
        try Data(header).write(to: url)
    }

    @Test(.timeLimit(.minutes(3)))
    func afterSIGKILLRulesProgramsAndMapContentsAreRestoredAndTrafficFlowsAgain() throws {
        let directory = try TestEnvironment.temporaryDirectory("persist")
        defer { try? FileManager.default.removeItem(at: directory) }
        guard let object = try compileExample("stateless-firewall", into: directory) else {
            print("SKIPPED: clang is not installed")
            return
        }
        let input = directory.appendingPathComponent("in.pcap"), quiet = directory.appendingPathComponent("quiet.pcap")
        let output = directory.appendingPathComponent("out.pcap")
        try makePcap(["demo", input.path, "--count", "400"])
        try emptyPcap(quiet)
        let tokenFile = directory.appendingPathComponent("tokens")
        let config = try writeTestConfig("""
            dpdk:
              eal_args: ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256"]
              mbufs: 4096
            stats_interval: 0
            api: {listen: "127.0.0.1:0", token_file: "\(tokenFile.path)"}
            openflow: {listen: "127.0.0.1:0"}
            bridges:
              - name: br0
                ports:
                  - devargs: "net_pcap0,rx_pcap=\(input.path)"
                  - devargs: "net_pcap1,rx_pcap=\(quiet.path),tx_pcap=\(output.path)"
            """, in: directory)

        // First life: no rules while the capture is read (all dropped); then program, map, snapshot, rules.
        guard let first = try RunningOkod.start(config: config, tokenFile: tokenFile) else { return }
        let loaded = try first.request("PUT", "/v1/bridges/br0/programs/1", body: [UInt8](Data(contentsOf: object)),
                                       contentType: "application/octet-stream")
        #expect(loaded.status == 201, "load: \(loaded.body)")
        let blocked = try first.request("PUT", "/v1/bridges/br0/programs/1/maps/blocked",
                                        body: Array(#"{"entries": [{"key": "0a000002", "value": "0000000000000000"}]}"#.utf8),
                                        contentType: "application/json")
        #expect(blocked.status == 200, "map: \(blocked.body)")
        let snapshot = try first.request("POST", "/v1/bridges/br0/programs/1/maps/snapshot")
        #expect(snapshot.status == 200 && snapshot.body.contains(#""entries":1"#), "snapshot: \(snapshot.body)")
        let unauthorised = try first.request("POST", "/v1/bridges/br0/programs/1/maps/snapshot", authorised: false)
        #expect(unauthorised.status == 401)
        let badID = try first.request("POST", "/v1/bridges/br0/programs/null/maps/snapshot")
        #expect(badID.status == 400 && badID.body.contains("not a program id"), "bad id: \(badID.body)")
        let unknown = try first.request("POST", "/v1/bridges/br0/programs/9/maps/snapshot")
        #expect(unknown.status == 404, "unknown program: \(unknown.body)")
        let rules = try first.request("POST", "/v1/bridges/br0/flows",
                                      body: Array("priority=10,in_port=1,filter_prog=1,actions=output:2\npriority=5,in_port=1,actions=drop".utf8),
                                      contentType: "text/plain")
        #expect(rules.status == 201, "rules: \(rules.body)")
        first.kill9()

        // Second life: the same capture is read again and must pass through the restored program and map.
        guard let second = try RunningOkod.start(config: config, tokenFile: tokenFile) else { return }
        #expect(second.child.output.contains("restored from store"), "\(second.child.output.suffix(2000))")
        let ready = try second.request("GET", "/readyz")
        #expect(ready.status == 200)
        var counted = 0
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let flows = try second.json("/v1/bridges/br0/flows")
            counted = (flows["flows"] as? [[String: Any]] ?? []).reduce(0) {
                $0 + (((($1["stats"] as? [String: Any])?["packets"]) as? Int) ?? 0)
            }
            if counted >= 400 { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(counted == 400, "the restored rules must see every packet of the capture")
        let hits = try second.request("GET", "/v1/bridges/br0/programs/1/maps/blocked?key=0a000002")
        #expect(hits.status == 200, "the snapshot entry must be back: \(hits.body)")
        #expect(second.terminate())

        let arp = try readPcap(input).filter { $0.count > 13 && $0[12] == 0x08 && $0[13] == 0x06 }
        #expect(!arp.isEmpty)
        #expect(try readPcap(output) == arp, "only ARP passes the firewall with 10.0.0.2 blocked")
    }

    @Test(.timeLimit(.minutes(3)))
    func theConfigurationFileSeedsOnlyAnEmptyStoreAndMapsAreSavedAtCleanShutdown() throws {
        let directory = try TestEnvironment.temporaryDirectory("seed")
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenFile = directory.appendingPathComponent("tokens")
        func config(flow: String) throws -> URL {
            try writeTestConfig("""
                \(okodTestPreamble(tokenFile: tokenFile))
                bridges:
                  - name: br0
                    ports:
                      - devargs: "net_null0,no-rx=1"
                      - devargs: "net_null1,no-rx=1"
                    flows: ["\(flow)"]
                """, in: directory)
        }
        let first = try config(flow: "priority=1,ip,nw_dst=10.9.0.1,actions=output:2")
        guard let okod = try RunningOkod.start(config: first, tokenFile: tokenFile) else { return }
        #expect(okod.child.output.contains("created from the configuration file"))
        let added = try okod.request("POST", "/v1/bridges/br0/flows", body: Array("priority=2,ip,nw_dst=10.9.0.2,actions=output:1".utf8),
                                     contentType: "text/plain")
        #expect(added.status == 201)
        // The change produced exactly one audit line, naming who and what (the log arrives through a pipe).
        _ = okod.child.waitForOutput(timeout: 5) { $0.contains("oko.audit") }
        Thread.sleep(forTimeInterval: 0.2)
        let audit = okod.child.output.split(separator: "\n").filter { $0.contains("oko.audit") && $0.contains("/v1/bridges/br0/flows") }
        #expect(audit.count == 1, "audit lines: \(audit)")
        #expect(audit.first.map { $0.contains("who=admin") && $0.contains("method=POST") && $0.contains("status=201") } == true, "\(audit)")
        let object = try compileExample("stateless-firewall", into: directory)
        if let object {
            let loaded = try okod.request("PUT", "/v1/bridges/br0/programs/7", body: [UInt8](Data(contentsOf: object)),
                                          contentType: "application/octet-stream")
            #expect(loaded.status == 201)
            let entry = try okod.request("PUT", "/v1/bridges/br0/programs/7/maps/blocked",
                                         body: Array(#"{"entries": [{"key": "0a000005", "value": "0500000000000000"}]}"#.utf8),
                                         contentType: "application/json")
            #expect(entry.status == 200)
        }
        #expect(okod.terminate())

        // A different rule in the file: ignored, the store holds the configuration.
        let second = try config(flow: "priority=3,ip,nw_dst=10.9.0.3,actions=output:1")
        guard let again = try RunningOkod.start(config: second, tokenFile: tokenFile) else { return }
        let listing = try again.request("GET", "/v1/bridges/br0/flows", accept: "text/plain")
        #expect(ruleDestinations(listing.body) == ["1/10.9.0.1", "2/10.9.0.2"], "\(listing.body)")
        #expect(again.child.output.contains("are ignored"))
        if object != nil {
            let value = try again.request("GET", "/v1/bridges/br0/programs/7/maps/blocked?key=0a000005")
            #expect(value.status == 200 && value.body.contains("0500000000000000"), "map saved at shutdown: \(value.body)")
        }
        #expect(again.terminate())
    }

    @Test(.timeLimit(.minutes(3)))
    func openFlowGroupsRulesAndSwitchConfigAcknowledgedByABarrierSurviveSIGKILL() throws {
        let directory = try TestEnvironment.temporaryDirectory("groups")
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenFile = directory.appendingPathComponent("tokens")
        let config = try writeTestConfig("""
            \(okodTestPreamble(tokenFile: tokenFile))
            bridges:
              - name: br0
                ports:
                  - devargs: "net_null0,no-rx=1"
                  - devargs: "net_null1,no-rx=1"
                  - devargs: "net_null2,no-rx=1"
            """, in: directory)
        guard let okod = try RunningOkod.start(config: config, tokenFile: tokenFile), let port = okod.openflowPort else {
            Issue.record("okod or its OpenFlow listener did not start")
            return
        }
        let client = try OpenFlowTestClient(port: port)
        try client.addGroup(id: 7, outputs: [2, 3])
        try client.flowMod(command: 0, priority: 40, ipv4Destination: [10, 7, 0, 1], outPort: 3)
        try client.setConfig(missSendLength: 200)
        #expect(try client.barrier())
        let rule = try okod.request("POST", "/v1/bridges/br0/flows", body: Array("priority=30,in_port=1,actions=group:7".utf8), contentType: "text/plain")
        #expect(rule.status == 201, "\(rule.body)")
        // One audit line per OpenFlow change, naming the connection (the log arrives through a pipe).
        _ = okod.child.waitForOutput(timeout: 5) { $0.contains("GROUP_MOD") && $0.contains("FLOW_MOD") }
        let audit = okod.child.output.split(separator: "\n").filter { $0.contains("oko.audit") && $0.contains("who=openflow-connection-") }
        #expect(audit.count == 2 && audit.contains { $0.contains("GROUP_MOD") } && audit.contains { $0.contains("FLOW_MOD") }, "\(audit)")
        okod.kill9()

        guard let again = try RunningOkod.start(config: config, tokenFile: tokenFile) else { return }
        #expect(again.child.output.contains("1 groups"), "\(again.child.output.suffix(1500))")
        let listing = try again.request("GET", "/v1/bridges/br0/flows", accept: "text/plain").body
        #expect(listing.contains("priority=30,in_port=1 actions=group:7"), "\(listing)")
        #expect(ruleDestinations(listing).contains("40/10.7.0.1"), "\(listing)")
        // The controller's SET_CONFIG came back too.
        if let port = again.openflowPort {
            #expect(try OpenFlowTestClient(port: port).missSendLength() == 200)
        }
        #expect(again.terminate())
    }

    @Test func aDamagedStoreStopsStartUpWithAClearError() throws {
        let directory = try TestEnvironment.temporaryDirectory("damaged")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("okod.db")
        try Data(repeating: 0x42, count: 8192).write(to: store)
        let config = try writeTestConfig("""
            dpdk:
              eal_args: ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256"]
            api: {listen: "127.0.0.1:0", token_file: "\(directory.path)/tokens"}
            openflow: {listen: "127.0.0.1:0"}
            store: {path: "\(store.path)"}
            """, in: directory)
        let okod = try ChildProcess(TestEnvironment.executable("okod"), ["--config", config.path])
        #expect(okod.waitForExit(timeout: 30) != nil)
        #expect(okod.process.terminationStatus == 1)
        #expect(okod.output.contains("store.path: ") && okod.output.contains(store.path), "\(okod.output)")
    }

    /// A failure late in start-up (OpenFlow address taken, after the store was restored and the poll-mode
    /// threads started) stops okod promptly with exit code 1, and the store still opens afterwards.
    @Test func aLateStartUpFailureExitsPromptlyAndLeavesTheStoreUsable() throws {
        let directory = try TestEnvironment.temporaryDirectory("late")
        defer { try? FileManager.default.removeItem(at: directory) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        #expect(bound)
        let taken = Int(UInt16(bigEndian: address.sin_port))
        let tokenFile = directory.appendingPathComponent("tokens")
        func config(openflow: String) throws -> URL {
            try writeTestConfig("""
                dpdk:
                  eal_args: ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256"]
                  mbufs: 2048
                api: {listen: "127.0.0.1:0", token_file: "\(tokenFile.path)"}
                openflow: {listen: "\(openflow)"}
                bridges:
                  - name: br0
                    ports: [{devargs: "net_null0,no-rx=1"}]
                    flows: ["priority=1,actions=drop"]
                """, in: directory)
        }
        let okod = try ChildProcess(TestEnvironment.executable("okod"), ["--config", try config(openflow: "127.0.0.1:\(taken)").path])
        let elapsed = okod.waitForExit(timeout: 20)
        #expect(elapsed != nil && elapsed! < 15, "okod must exit after a start-up failure: \(okod.output.suffix(1500))")
        #expect(okod.process.terminationStatus == 1)
        #expect(okod.output.contains("start-up failed: OpenFlow listener on 127.0.0.1:\(taken)"), "\(okod.output.suffix(1500))")
        guard let again = try RunningOkod.start(config: try config(openflow: "127.0.0.1:0"), tokenFile: tokenFile) else { return }
        let listing = try again.request("GET", "/v1/bridges/br0/flows", accept: "text/plain")
        #expect(listing.body.contains("priority=1 actions=drop"), "\(listing.body)")
        #expect(again.terminate())
    }
}
