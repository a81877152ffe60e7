import Foundation
import Testing

/// Every program of examples/bpf end to end through okod: compiled by clang as the Makefile does, loaded
/// and configured through the REST API, crafted traffic replayed through DPDK pcap ports, the output
/// compared frame by frame with what the program should pass (worked out here from the traffic, not by
/// running a BPF engine), and the maps read back through the API.
@Suite(.serialized, .sharedOkod)
struct ExampleEndToEndTests {
    /// The filter rule to port 2 and a catch-all drop: a program's 1 forwards, its 0 drops.
    static let filterThenDrop = ["priority=10,in_port=1,filter_prog=1,actions=output:2", "priority=0,actions=drop"]

    /// Checks the output against `expected` (the frames that must pass, in order) and the rule and program
    /// counters against the split between passed and dropped.
    private func expectForwarded(_ output: [[UInt8]], _ expected: [[UInt8]], sent: Int, bridge: ExampleBridge,
                                 sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(output.count == expected.count, "\(output.count) frames out, \(expected.count) expected", sourceLocation: sourceLocation)
        for (index, (got, want)) in zip(output, expected).enumerated() where got != want {
            Issue.record("output frame \(index) differs: \(hexString(got)) instead of \(hexString(want))", sourceLocation: sourceLocation)
            break
        }
        let rules = try bridge.rulePackets()
        #expect(rules[10] == expected.count && rules[0] == sent - expected.count, "rule counters \(rules)", sourceLocation: sourceLocation)
        let program = try bridge.programStats()
        #expect(program.runs == sent && program.matches == expected.count, "program counters \(program)", sourceLocation: sourceLocation)
    }

    private func finish(_ bridge: ExampleBridge) {
        _ = try? bridge.okod.request("DELETE", bridge.path)
    }

    @Test func statelessFirewallDropsOnlyIPv4ToBlockedDestinations() throws {
        let bridge = try ExampleSwitch.shared().makeBridge("stateless")
        defer { finish(bridge) }
        try bridge.loadExample("stateless-firewall")
        let blocked = ["10.0.0.66", "192.168.1.9"]
        try bridge.updateMap("blocked", blocked.map { #"{"key": "\#(hexString(Frame.address($0)))", "value": "0000000000000000"}"# })
        try bridge.addFlows(Self.filterThenDrop)

        var frames: [[UInt8]] = []
        var destinations: [String?] = []   // nil: not IPv4
        for i in 0..<60 {
            let destination = ["10.0.0.2", "10.0.0.66", "192.168.1.9", "192.168.1.10", "10.0.0.67"][i % 5]
            switch i % 4 {
            case 0: frames.append(Frame.udp("10.0.0.1", destination, sourcePort: 1000 + i, destinationPort: 53))
            case 1: frames.append(Frame.tcp("10.0.0.1", destination, sourcePort: 2000 + i, destinationPort: 80, flags: Frame.syn))
            case 2: frames.append(Frame.icmpEcho("10.0.0.1", destination))
            default: frames.append(Frame.udp("172.16.0.1", destination, sourcePort: 7, destinationPort: 7, [UInt8](repeating: 0xab, count: i)))
            }
            destinations.append(destination)
            if i % 10 == 0 {
                frames.append(Frame.arpRequest("10.0.0.1", "10.0.0.66"))
                destinations.append(nil)
                frames.append(Frame.ipv6UDP())
                destinations.append(nil)
            }
        }
        let expected = zip(frames, destinations).filter { $0.1.map { !blocked.contains($0) } ?? true }.map(\.0)
        let output = try bridge.replay(frames)
        try expectForwarded(output, expected, sent: frames.count, bridge: bridge)
        for address in blocked {
            let hits = try bridge.entry("blocked", key: hexString(Frame.address(address)))?["value_typed"] as? Int
            #expect(hits == destinations.filter { $0 == address }.count, "refusals counted for \(address)")
        }
    }

    // p0f signatures: option kinds in order, as a TCP stack sends them in its SYN.
    private struct SYNProfile {
        let ttl: UInt8
        let window: Int
        let options: [UInt8]
        let kinds: [Int]
        let mss: Int
        let windowScale: Int
    }
    private static let linux = SYNProfile(ttl: 64, window: 64240, options: [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7],
                                          kinds: [2, 4, 8, 1, 3], mss: 1460, windowScale: 7)
    private static let windows = SYNProfile(ttl: 128, window: 64240, options: [2, 4, 0x05, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2],
                                            kinds: [2, 1, 3, 1, 1, 4], mss: 1460, windowScale: 8)
    private static let macOS = SYNProfile(ttl: 64, window: 65535, options: [2, 4, 0x05, 0xb4, 1, 3, 3, 6, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 4, 2],
                                          kinds: [2, 1, 3, 1, 1, 8, 4], mss: 1460, windowScale: 6)

    @Test func p0fPassesSYNsWhoseFingerprintIsKnownAndCountsTheRest() throws {
        let bridge = try ExampleSwitch.shared().makeBridge("p0f")
        defer { finish(bridge) }
        try bridge.loadExample("p0f")
        func signature(_ p: SYNProfile) -> String {
            #"{"ttl": \#(p.ttl), "window_scale": \#(p.windowScale), "mss": \#(p.mss), "window": \#(p.window), "options": \#(p.kinds), "option_count": \#(p.kinds.count)}"#
        }
        try bridge.updateMap("signatures", [
            #"{"key_typed": \#(signature(Self.linux)), "value_typed": {"label": 1}}"#,
            #"{"key_typed": \#(signature(Self.windows)), "value_typed": {"label": 2}}"#,
        ])
        try bridge.addFlows(Self.filterThenDrop)

        // (frame, label of the known signature it must match, or nil; whether it is a SYN without ACK)
        var traffic: [([UInt8], Int?, Bool)] = []
        func syn(_ p: SYNProfile, ttl: UInt8, port: Int, flags: UInt8 = Frame.syn, window: Int? = nil, options: [UInt8]? = nil) -> [UInt8] {
            Frame.tcp("10.1.0.\(port % 200)", "10.2.0.1", sourcePort: port, destinationPort: 443, flags: flags, window: window ?? p.window,
                      options: options ?? p.options, ttl: ttl)
        }
        for i in 0..<8 {
            traffic.append((syn(Self.linux, ttl: UInt8(64 - i), port: 30000 + i), 1, true))           // a few hops away: still 64
            traffic.append((syn(Self.windows, ttl: UInt8(128 - 3 * i), port: 40000 + i), 2, true))
            if i % 2 == 0 {
                traffic.append((syn(Self.macOS, ttl: 64, port: 50000 + i), nil, true))
                // Linux's options with another MSS, and Linux's exact options from a TTL-128 host: unknown.
                var options = Self.linux.options
                options[3] = 0x78
                traffic.append((syn(Self.linux, ttl: 64, port: 51000 + i, options: options), nil, true))
                traffic.append((syn(Self.linux, ttl: 100, port: 52000 + i), nil, true))
                // Not a bare SYN: neither matched nor counted as unknown.
                traffic.append((syn(Self.linux, ttl: 64, port: 53000 + i, flags: Frame.syn | Frame.ack), nil, false))
                traffic.append((Frame.tcp("10.1.0.1", "10.2.0.1", sourcePort: 54000 + i, destinationPort: 443, flags: Frame.ack, payload: [1, 2, 3]), nil, false))
                traffic.append((Frame.udp("10.1.0.1", "10.2.0.1", sourcePort: 55000 + i, destinationPort: 443), nil, false))
                traffic.append((Frame.arpRequest("10.1.0.1", "10.2.0.1"), nil, false))
            }
        }
        let frames = traffic.map(\.0)
        let expected = traffic.filter { $0.1 != nil }.map(\.0)
        let output = try bridge.replay(frames)
        try expectForwarded(output, expected, sent: frames.count, bridge: bridge)

        let entries = try bridge.entries("signatures")
        #expect(entries.count == 2)
        for label in [1, 2] {
            let value = entries.first { (($0["value_typed"] as? [String: Any])?["label"] as? Int) == label }?["value_typed"] as? [String: Any]
            #expect(value?["hits"] as? Int == traffic.filter { $0.1 == label }.count, "hits of signature \(label): \(entries)")
        }
        #expect(try bridge.counter("unknown") == traffic.filter { $0.1 == nil && $0.2 }.count)
    }

    /// rate 1 packet/s, burst 5: the first 5 packets of every source pass, then its bucket is empty (the
    /// replay takes far less than the second a token takes to refill).
    @Test func rateLimiterPassesEachSourcesBurstThenDrops() throws {
        let bridge = try ExampleSwitch.shared().makeBridge("ratelimit")
        defer { finish(bridge) }
        try bridge.loadExample("rate-limiter")
        try bridge.updateMap("config", [#"{"key": "00000000", "value_typed": {"rate": 1, "burst": 5}}"#])
        try bridge.addFlows(Self.filterThenDrop)

        let sources = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "192.168.7.7"]
        let sent = [40, 3, 12, 5]
        var frames: [[UInt8]] = [], expected: [[UInt8]] = []
        var seen: [String: Int] = [:]
        for round in 0..<40 {
            for (source, count) in zip(sources, sent) where round < count {
                let frame = Frame.udp(source, "10.9.9.9", sourcePort: 5000, destinationPort: 9000 + round, [UInt8](repeating: 7, count: 64))
                frames.append(frame)
                seen[source, default: 0] += 1
                if seen[source]! <= 5 { expected.append(frame) }
            }
            if round % 8 == 0 {
                let arp = Frame.arpRequest("10.0.0.1", "10.9.9.9")   // non-IPv4 always passes
                frames.append(arp)
                expected.append(arp)
            }
        }
        let started = Date()
        let output = try bridge.replay(frames)
        let elapsed = Date().timeIntervalSince(started)
        try expectForwarded(output, expected, sent: frames.count, bridge: bridge)
        #expect(try bridge.counter("drops") == sent.map { max(0, $0 - 5) }.reduce(0, +), "replay took \(elapsed) s")

        let buckets = try bridge.entries("buckets")
        #expect(Set(buckets.compactMap { $0["key"] as? String }) == Set(sources.map { hexString(Frame.address($0)) }))
        for bucket in buckets {
            let tokens = (bucket["value_typed"] as? [String: Any])?["tokens_milli"] as? Int ?? -1
            // Sources that sent 5 or more used their whole burst (a few milli-tokens refill meanwhile).
            let source = sources.first { hexString(Frame.address($0)) == bucket["key"] as? String }
            let count = source.flatMap { s in sent[sources.firstIndex(of: s)!] } ?? 0
            if count >= 5 { #expect(tokens >= 0 && tokens < 1000, "bucket \(bucket)") } else { #expect(tokens >= (5 - count) * 1000, "bucket \(bucket)") }
        }
    }

    @Test func statefulFirewallPassesOnlyConnectionsOpenedFromInside() throws {
        let bridge = try ExampleSwitch.shared().makeBridge("stateful")
        defer { finish(bridge) }
        try bridge.loadExample("stateful-firewall")
        // inside = 192.168.0.0/16 (address and mask in network byte order)
        try bridge.updateMap("inside", [#"{"key": "00000000", "value": "c0a80000ffff0000"}"#])
        try bridge.addFlows(Self.filterThenDrop)

        let client = "192.168.1.10", server = "203.0.113.5", attacker = "198.51.100.7"
        let (syn, ack, fin, rst, psh) = (Frame.syn, Frame.ack, Frame.fin, Frame.rst, Frame.psh)
        func out(_ sport: Int, _ dport: Int, _ flags: UInt8, from source: String = client, to destination: String = server) -> [UInt8] {
            Frame.tcp(source, destination, sourcePort: sport, destinationPort: dport, flags: flags, payload: flags & psh != 0 ? [1, 2, 3, 4] : [])
        }
        func back(_ sport: Int, _ dport: Int, _ flags: UInt8, from source: String = server, to destination: String = client) -> [UInt8] {
            Frame.tcp(source, destination, sourcePort: sport, destinationPort: dport, flags: flags, payload: flags & psh != 0 ? [5, 6] : [])
        }
        // Each frame with whether it must pass, following the connection's life.
        let traffic: [([UInt8], Bool)] = [
            (out(40000, 80, syn), true),                      // connection 1 opened from inside
            (back(80, 40000, syn | ack), true),
            (out(40000, 80, ack), true),
            (out(40000, 80, psh | ack), true),
            (back(80, 40000, psh | ack), true),
            (back(22, 40000, psh | ack), false),               // same hosts, another port: unknown connection
            (Frame.tcp(attacker, client, sourcePort: 5555, destinationPort: 22, flags: syn), false),   // opened from outside
            (Frame.tcp(client, attacker, sourcePort: 22, destinationPort: 5555, flags: syn | ack), false),
            (Frame.tcp(attacker, client, sourcePort: 5556, destinationPort: 22, flags: ack), false),   // stray ACK
            (out(40001, 80, ack), false),                     // inside, but no SYN first
            (Frame.udp(client, server, sourcePort: 5353, destinationPort: 53), false),                 // not TCP
            (Frame.icmpEcho(client, server), false),
            (Frame.arpRequest(client, server), true),          // not IPv4
            (out(40002, 443, syn), true),                     // connection 2, reset from inside
            (back(443, 40002, syn | ack), true),
            (out(40002, 443, rst), true),
            (back(443, 40002, psh | ack), false),             // after the reset: forgotten
            (out(40000, 80, fin | ack), true),                // connection 1 closes
            (back(80, 40000, fin | ack), true),
            (out(40000, 80, ack), true),
        ]
        let frames = traffic.map(\.0)
        let output = try bridge.replay(frames)
        try expectForwarded(output, traffic.filter(\.1).map(\.0), sent: frames.count, bridge: bridge)

        // Only connection 1 remains: CLOSING (3) after the 8 packets it passed.
        let key = hexString(Frame.address(client) + Frame.address(server) + Frame.be16(40000) + Frame.be16(80))
        let connections = try bridge.entries("connections")
        #expect(connections.count == 1, "connections: \(connections)")
        let state = try bridge.entry("connections", key: key)?["value_typed"] as? [String: Any]
        #expect(state?["state"] as? Int == 3 && state?["packets"] as? Int == 8, "connection 1: \(String(describing: state))")
    }

    @Test func tcpDiagnosisForwardsEverythingAndCountsPerConnectionStatistics() throws {
        let bridge = try ExampleSwitch.shared().makeBridge("tcpdiag")
        defer { finish(bridge) }
        try bridge.loadExample("tcp-diagnosis")
        try bridge.addFlows(Self.filterThenDrop)

        let a = "10.0.0.1", b = "10.0.0.2", c = "10.0.0.3"
        let hundred = [UInt8](repeating: 0x61, count: 100)
        let (syn, ack, fin, rst, psh) = (Frame.syn, Frame.ack, Frame.fin, Frame.rst, Frame.psh)
        func ab(_ flags: UInt8, _ sequence: UInt32, _ payload: [UInt8] = [], window: Int = 64240) -> [UInt8] {
            Frame.tcp(a, b, sourcePort: 33000, destinationPort: 80, flags: flags, sequence: sequence, window: window, payload: payload)
        }
        func ba(_ flags: UInt8, _ sequence: UInt32, window: Int) -> [UInt8] {
            Frame.tcp(b, a, sourcePort: 80, destinationPort: 33000, flags: flags, sequence: sequence, window: window)
        }
        let frames: [[UInt8]] = [
            ab(syn, 100),
            ba(syn | ack, 5000, window: 29200),
            ab(ack | psh, 101, hundred),
            ab(ack | psh, 201, hundred, window: 65000),
            ba(ack, 5001, window: 0),                          // zero window
            ab(ack | psh, 301, hundred),
            ab(ack | psh, 201, hundred),                       // retransmission of the second segment
            ba(ack, 5001, window: 1000),
            ab(fin | ack, 401),
            ba(fin | ack, 5001, window: 1000),
            Frame.tcp(c, b, sourcePort: 44000, destinationPort: 25, flags: syn, sequence: 77, window: 1024),
            Frame.tcp(c, b, sourcePort: 44000, destinationPort: 25, flags: rst, sequence: 78, window: 0),   // a reset's zero window does not count
            Frame.udp(a, b, sourcePort: 1, destinationPort: 2),
            Frame.arpRequest(a, b),
        ]
        let output = try bridge.replay(frames)
        try expectForwarded(output, frames, sent: frames.count, bridge: bridge)

        func statistics(_ s: String, _ d: String, _ sp: Int, _ dp: Int) throws -> [String: Int] {
            let key = hexString(Frame.address(s) + Frame.address(d) + Frame.be16(sp) + Frame.be16(dp))
            let value = try bridge.entry("connections", key: key)?["value_typed"] as? [String: Any] ?? [:]
            return value.compactMapValues { $0 as? Int }
        }
        #expect(try bridge.entries("connections").count == 3)
        let forward = try statistics(a, b, 33000, 80)
        #expect(forward["packets"] == 6 && forward["payload_bytes"] == 400 && forward["retransmissions"] == 1, "\(forward)")
        #expect(forward["syns"] == 1 && forward["fins"] == 1 && forward["resets"] == 0 && forward["zero_windows"] == 0, "\(forward)")
        #expect(forward["max_window"] == 65000 && forward["next_sequence"] == 401, "\(forward)")
        let reverse = try statistics(b, a, 80, 33000)
        #expect(reverse["packets"] == 4 && reverse["payload_bytes"] == 0 && reverse["retransmissions"] == 0, "\(reverse)")
        #expect(reverse["syns"] == 1 && reverse["fins"] == 1 && reverse["zero_windows"] == 1 && reverse["max_window"] == 29200, "\(reverse)")
        let reset = try statistics(c, b, 44000, 25)
        #expect(reset["packets"] == 2 && reset["syns"] == 1 && reset["resets"] == 1 && reset["zero_windows"] == 0, "\(reset)")
    }

    /// Threshold 10: a source's packets match from its 11th on (the sketch never underestimates, and
    /// four sources in 4 rows of 4096 counters do not all collide).
    @Test func heavyHittersMatchSourcesPastTheThreshold() throws {
        let bridge = try ExampleSwitch.shared().makeBridge("heavy")
        defer { finish(bridge) }
        try bridge.loadExample("heavy-hitters")
        try bridge.updateMap("threshold", [#"{"key": "00000000", "value_typed": 10}"#])
        // Heavy hitters go to port 2 (a scrubber, say); everything else is dropped here.
        try bridge.addFlows(Self.filterThenDrop)

        let sources = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "172.16.5.5"]
        let sent = [25, 10, 3, 14]
        var frames: [[UInt8]] = [], expected: [[UInt8]] = []
        var seen: [String: Int] = [:]
        for round in 0..<25 {
            for (source, count) in zip(sources, sent) where round < count {
                let frame = Frame.udp(source, "10.9.9.9", sourcePort: 4000 + round, destinationPort: 80)
                frames.append(frame)
                seen[source, default: 0] += 1
                if seen[source]! > 10 { expected.append(frame) }
            }
            if round % 5 == 0 { frames.append(Frame.arpRequest("10.0.0.1", "10.9.9.9")) }
        }
        let output = try bridge.replay(frames)
        try expectForwarded(output, expected, sent: frames.count, bridge: bridge)
        #expect(try bridge.counter("flagged") == expected.count)
        for (source, count) in zip(sources, sent) {
            let estimate = try bridge.entry("sketch", key: hexString(Frame.address(source)))?["value_typed"] as? Int
            #expect(estimate == count, "count-min estimate of \(source)")
        }
    }

    /// Two blocked sources in a Bloom filter sized for 100000 addresses: the chance that one of the others
    /// is a false positive is about 1e-13, so the expectation treats membership as exact.
    @Test func bloomBlocklistRefusesListedSources() throws {
        let bridge = try ExampleSwitch.shared().makeBridge("bloom")
        defer { finish(bridge) }
        try bridge.loadExample("bloom-blocklist")
        let listed = ["203.0.113.9", "198.51.100.20"]
        // An empty key pushes the value into the filter.
        try bridge.updateMap("blocklist", listed.map { #"{"key": "", "value": "\#(hexString(Frame.address($0)))"}"# })
        try bridge.addFlows(Self.filterThenDrop)

        let sources = ["203.0.113.9", "203.0.113.10", "198.51.100.20", "10.0.0.1", "9.113.0.203"]
        var traffic: [([UInt8], Bool)] = []
        for i in 0..<50 {
            let source = sources[i % sources.count]
            let frame = i % 3 == 0
                ? Frame.tcp(source, "10.0.0.2", sourcePort: 10000 + i, destinationPort: 443, flags: Frame.syn)
                : Frame.udp(source, "10.0.0.2", sourcePort: 10000 + i, destinationPort: 53)
            traffic.append((frame, !listed.contains(source)))
            if i % 10 == 0 { traffic.append((Frame.arpRequest(source, "10.0.0.2"), true)) }
        }
        let output = try bridge.replay(traffic.map(\.0))
        try expectForwarded(output, traffic.filter(\.1).map(\.0), sent: traffic.count, bridge: bridge)
        #expect(try bridge.counter("refused") == traffic.filter { !$0.1 }.count)
    }

    /// FNV-1a (64 bit) of a lower-cased DNS name in wire form, written here from the algorithm's definition.
    static func fnv1a(wireName name: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in wireName(name.lowercased()) { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    static func wireName(_ name: String) -> [UInt8] {
        name.split(separator: ".").flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
    }

    static func dnsQuery(_ name: String, id: Int) -> [UInt8] {
        Frame.be16(id) + [0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0] + wireName(name) + [0, 0, 1, 0, 1]
    }

    @Test func dnsFilterRefusesQueriesForBlockedNamesInAnyCase() throws {
        let bridge = try ExampleSwitch.shared().makeBridge("dns")
        defer { finish(bridge) }
        try bridge.loadExample("dns-filter")
        let blocked = ["blocked.example.com", "ads.tracker.net"]
        func key(_ name: String) -> String { withUnsafeBytes(of: Self.fnv1a(wireName: name).littleEndian) { hexString(Array($0)) } }
        try bridge.updateMap("blocked_names", blocked.map { #"{"key": "\#(key($0))", "value": "0000000000000000"}"# })
        try bridge.addFlows(Self.filterThenDrop)

        let client = "10.0.0.5", resolver = "10.0.0.53"
        func query(_ name: String, port: Int = 53, id: Int) -> [UInt8] {
            Frame.udp(client, resolver, sourcePort: 40000 + id, destinationPort: port, Self.dnsQuery(name, id: id))
        }
        let traffic: [([UInt8], Bool)] = [
            (query("blocked.example.com", id: 1), false),
            (query("www.example.com", id: 2), true),
            (query("BLOCKED.Example.COM", id: 3), false),
            (query("ads.tracker.net", id: 4), false),
            (query("tracker.net", id: 5), true),
            (query("notblocked.example.com", id: 6), true),
            (query("blocked.example.com.evil.org", id: 7), true),
            (query("blocked.example.com", port: 5353, id: 8), true),   // not DNS port 53
            (Frame.udp(resolver, client, sourcePort: 53, destinationPort: 40001, Self.dnsQuery("blocked.example.com", id: 1)), true),   // from port 53
            (Frame.tcp(client, resolver, sourcePort: 40009, destinationPort: 53, flags: Frame.syn), true),
            (query(String(repeating: "a", count: 60) + ".example.com", id: 10), true),
            (query("Ads.Tracker.Net", id: 11), false),
            (Frame.arpRequest(client, resolver), true),
            // A name running past the end of the packet: the program lets it through.
            (Frame.udp(client, resolver, sourcePort: 40012, destinationPort: 53, Array(Self.dnsQuery("blocked.example.com", id: 12).dropLast(8))), true),
        ]
        let output = try bridge.replay(traffic.map(\.0))
        try expectForwarded(output, traffic.filter(\.1).map(\.0), sent: traffic.count, bridge: bridge)
        #expect(try bridge.entry("blocked_names", key: key("blocked.example.com"))?["value_typed"] as? Int == 2)
        #expect(try bridge.entry("blocked_names", key: key("ads.tracker.net"))?["value_typed"] as? Int == 2)
    }
}
