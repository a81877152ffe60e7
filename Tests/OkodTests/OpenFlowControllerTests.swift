import Foundation
import Testing

/// Writes a classic pcap (microsecond, little-endian) of `frames`.
/// A 60-byte Ethernet frame (local experimental ethertype 0x88b5) from `source` to `destination`.
func frame(from source: UInt8, to destination: UInt8, sequence: Int) -> [UInt8] {
    var bytes: [UInt8] = [0x02, 0, 0, 0, 0, destination, 0x02, 0, 0, 0, 0, source, 0x88, 0xb5]
    bytes += [UInt8(sequence >> 8 & 0xff), UInt8(sequence & 0xff)]
    return bytes + [UInt8](repeating: 0, count: 60 - bytes.count)
}

/// A real controller: Debian's os-ken (`osken-manager`) runs a small learning switch
/// (Controllers/learning_switch.py) that okod connects to actively (`openflow.controllers`). The app
/// installs a table-miss rule, learns from PACKET_INs of traffic received on DPDK (net_pcap) ports and
/// installs `eth_dst` rules, after which the datapath forwards by itself.
///
/// Ports join through REST one phase at a time, because a pcap port replays its file at once:
///   port 2 (host B) sends one frame B->A: PACKET_IN, B learnt on port 2, flooded;
///   port 1 (host A) sends one frame A->B: PACKET_IN, rule eth_dst=B -> output:2 installed, packet-out to 2;
///   port 3 (host A again) sends 100 frames A->B: the rule forwards them with no PACKET_IN.
@Suite(.serialized)
struct OpenFlowControllerTests {
    @Test func osKenLearningSwitchTeachesTheDatapathToForward() throws {
        let manager = "/usr/bin/osken-manager"
        guard FileManager.default.isExecutableFile(atPath: manager) else {
            print("SKIPPED: osken-manager (python3-os-ken) is not installed")
            return
        }
        let scratch = try TestEnvironment.temporaryDirectory("of-ctl")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let controllerPort = 20000 + Int(getpid() % 20000)

        // The controller runs under `timeout`, which makes itself a process group leader (pgid = its pid):
        // the whole group is killed at the end, and after 90 s at the latest.
        let app = TestEnvironment.packageRoot.appendingPathComponent("Tests/OkodTests/Controllers/learning_switch.py").path
        let controller = try ChildProcess(URL(fileURLWithPath: "/usr/bin/timeout"), [
            "-k", "2", "90", "/usr/bin/python3", "-u", manager,
            "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", String(controllerPort), app,
        ])
        defer {
            kill(-controller.process.processIdentifier, SIGKILL)
            _ = controller.waitForExit(timeout: 3)
        }

        let empty = scratch.appendingPathComponent("empty.pcap")
        try writePcap([], to: empty)
        let out2 = scratch.appendingPathComponent("out2.pcap")
        let okod = try OpenFlowOkod(
            label: "of-ctl", ports: ["net_null0,no-rx=1"],
            openflow: "  controllers: [\"tcp:127.0.0.1:\(controllerPort)\"]\n  reconnect_max_seconds: 1")
        defer { _ = okod.stop() }
        #expect(controller.waitForOutput(timeout: 30) { $0.contains("TABLE_MISS_INSTALLED") },
                "controller output:\n\(controller.output)\nokod:\n\(okod.process.output)")

        // The table-miss rule reached the datapath (REST view).
        func flows() throws -> [[String: Any]] { try okod.get("/flows")["flows"] as? [[String: Any]] ?? [] }
        var tableMiss = false
        for _ in 0..<50 where !tableMiss {
            tableMiss = try flows().contains { ($0["priority"] as? Int) == 0 }
            if !tableMiss { Thread.sleep(forTimeInterval: 0.1) }
        }
        #expect(tableMiss, "no table-miss rule in \((try? flows()) ?? [])")
        // The sink port from the configuration is removed so that it takes no part in flooding.
        _ = try runBounded(10, ["curl", "-s", "-X", "DELETE", "-H", "Authorization: Bearer \(okod.token)", okod.api + "/ports/1"])

        func addPort(_ number: Int, rx frames: [[UInt8]], tx: URL?) throws {
            let rx = scratch.appendingPathComponent("rx\(number).pcap")
            try writePcap(frames, to: rx)
            let devargs = "net_pcap\(number + 10),rx_pcap=\(rx.path),tx_pcap=\((tx ?? scratch.appendingPathComponent("tx\(number).pcap")).path)"
            let (_, status) = try runBounded(10, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                "-H", "Authorization: Bearer \(okod.token)", "-H", "Content-Type: application/json",
                "--data", #"{"devargs": "\#(devargs)", "ofport": \#(number)}"#, okod.api + "/ports"])
            #expect(status == "201", "adding port \(number): \(status)")
        }
        func packetIns() -> Int { controller.output.components(separatedBy: "PACKET_IN ").count - 1 }

        // B (MAC ...:0b) speaks first on port 2.
        try addPort(2, rx: [frame(from: 0x0b, to: 0x0a, sequence: 0)], tx: out2)
        #expect(controller.waitForOutput(timeout: 10) { $0.contains("PACKET_IN in_port=2 src=02:00:00:00:00:0b") },
                "controller output:\n\(controller.output)")
        // A answers on port 1: B is known, the rule is installed.
        try addPort(1, rx: [frame(from: 0x0a, to: 0x0b, sequence: 1)], tx: nil)
        #expect(controller.waitForOutput(timeout: 10) { $0.contains("FLOW_INSTALLED eth_dst=02:00:00:00:00:0b port=2") },
                "controller output:\n\(controller.output)")
        var learnt: [String: Any]?
        for _ in 0..<50 where learnt == nil {
            learnt = try flows().first { ($0["priority"] as? Int) == 1 }
            if learnt == nil { Thread.sleep(forTimeInterval: 0.1) }
        }
        #expect(learnt != nil, "the learnt rule is not in REST: \((try? flows()) ?? [])")
        let packetInsBefore = packetIns()

        // 100 more frames A->B on port 3: forwarded to port 2 by the datapath alone.
        try addPort(3, rx: (0..<100).map { frame(from: 0x0a, to: 0x0b, sequence: 100 + $0) }, tx: nil)
        var forwarded = 0
        for _ in 0..<50 where forwarded < 100 {
            let rule = try flows().first { ($0["priority"] as? Int) == 1 }
            forwarded = ((rule?["stats"] as? [String: Any])?["packets"] as? Int) ?? 0
            if forwarded < 100 { Thread.sleep(forTimeInterval: 0.1) }
        }
        #expect(forwarded == 100, "the learnt rule counted \(forwarded) packets")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(packetIns() == packetInsBefore, "frames matching the learnt rule still reached the controller:\n\(controller.output)")
        let ports = try okod.get("/ports")["ports"] as? [[String: Any]] ?? []
        let port2 = ports.first { ($0["ofport"] as? Int) == 2 }
        let tx2 = ((port2?["stats"] as? [String: Any])?["tx_packets"] as? Int) ?? -1
        // Port 2 sent the packet-out of A's first frame and the 100 forwarded ones.
        #expect(tx2 == 101, "port 2 tx: \(String(describing: port2))")
        #expect(okod.stop())
        let sent = try readPcap(out2)
        #expect(sent.count == 101 && sent.allSatisfy { $0[5] == 0x0b && $0[11] == 0x0a }, "port 2 sent \(sent.count) frames")
    }

    /// okod retries a configured controller that is not listening yet and connects once it is: the
    /// stand-in controller (a Python socket server started later) receives okod's OpenFlow 1.3 HELLO.
    @Test func activeControllerConnectionIsRetriedUntilTheControllerListens() throws {
        let controllerPort = 20000 + Int((getpid() + 7) % 20000)
        let okod = try OpenFlowOkod(
            label: "of-retry", ports: ["net_null0,no-rx=1"],
            openflow: "  controllers: [\"tcp:127.0.0.1:\(controllerPort)\"]\n  reconnect_max_seconds: 0.5")
        defer { _ = okod.stop() }
        Thread.sleep(forTimeInterval: 1.5)  // several refused attempts
        let server = """
            import socket, struct
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(controllerPort))); s.listen(1); s.settimeout(10)
            c, _ = s.accept(); c.settimeout(5)
            data = b""
            while len(data) < 8: data += c.recv(64)
            version, kind, length, xid = struct.unpack("!BBHI", data[:8])
            print("HELLO" if kind == 0 else "TYPE %d" % kind, "version=%d" % version)
            """
        let (status, output) = try runBounded(20, ["/usr/bin/python3", "-c", server])
        #expect(status == 0 && output.contains("HELLO version=4"), "\(output)")
        #expect(okod.stop())
    }

    @Test func aControllerTargetThatIsNotTcpIsAConfigurationError() throws {
        let directory = try TestEnvironment.temporaryDirectory("of-cfg")
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("okod.yaml")
        try """
            openflow:
              controllers: ["ssl:127.0.0.1:6653"]
            bridges:
              - name: br0
                ports: [{devargs: "net_null0,no-rx=1"}]
            """.write(to: config, atomically: true, encoding: .utf8)
        let (status, output) = try runBounded(20, [TestEnvironment.executable("okod").path, "--config", config.path, "--check-config"])
        #expect(status == 2)
        #expect(output.contains("openflow.controllers[0]: 'ssl:127.0.0.1:6653' is not tcp:HOST:PORT"), "\(output)")
    }
}
