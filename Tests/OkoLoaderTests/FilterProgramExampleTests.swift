import Foundation
import OkoLoader
import OkoMaps
import Testing

/// Every examples/bpf program, compiled by each clang, verified, loaded and run on crafted packets
/// with each engine: it must behave as its header comment says.
struct FilterProgramExampleTests {
    struct Setup: CustomTestStringConvertible, Sendable {
        let compiler: TestPrograms.Compiler
        let engine: FilterEngine
        var testDescription: String { "\(compiler.label)/\(engine.rawValue)" }
    }

    static let setups: [Setup] = TestPrograms.compilers.flatMap { compiler in
        FilterEngine.allCases.map { Setup(compiler: compiler, engine: $0) }
    }

    static func load(_ name: String, _ compiler: TestPrograms.Compiler) throws -> FilterProgram {
        try FilterProgram(objectBytes: TestPrograms.compile(name, with: compiler, directory: TestPrograms.examplesDirectory))
    }

    static let zeroKey: [UInt8] = [0, 0, 0, 0]
    static let inside: [UInt8] = [10, 0, 0, 5]
    static let outside: [UInt8] = [203, 0, 113, 9]

    static func counter(_ program: FilterProgram, _ map: String, key: [UInt8] = zeroKey) throws -> UInt64? {
        try program.map(named: map)!.map.lookup(key: key).map { TestPackets.readLittleEndian($0.prefix(8)) }
    }

    @Test(arguments: setups)
    func rateLimiterPassesBurstThenDrops(setup: Setup) throws {
        let program = try Self.load("rate-limiter", setup.compiler)
        // 1 packet per second, burst 3: nothing refills within the test.
        try program.map(named: "config")!.map.update(
            key: Self.zeroKey, value: TestPackets.littleEndian(1) + TestPackets.littleEndian(3))
        let packet = TestPackets.udp(source: Self.outside, destination: Self.inside, sourcePort: 1, destinationPort: 2, payload: [])
        let results = try (0..<6).map { _ in try program.run(packet: packet, engine: setup.engine) }
        #expect(results == [1, 1, 1, 0, 0, 0])
        #expect(try Self.counter(program, "drops") == 3)
        // Another source has its own bucket; non-IPv4 always matches.
        let other = TestPackets.udp(source: [198, 51, 100, 1], destination: Self.inside, sourcePort: 1, destinationPort: 2, payload: [])
        #expect(try program.run(packet: other, engine: setup.engine) == 1)
        #expect(try program.run(packet: TestPackets.ethernet(type: 0x0806, payload: [UInt8](repeating: 0, count: 28)), engine: setup.engine) == 1)
        #expect(try program.map(named: "buckets")!.map.entries().count == 2)
    }

    @Test(arguments: setups)
    func statelessFirewallBlocksListedDestinationAndCounts(setup: Setup) throws {
        let program = try Self.load("stateless-firewall", setup.compiler)
        let blocked: [UInt8] = [192, 0, 2, 1]
        try program.map(named: "blocked")!.map.update(key: blocked, value: TestPackets.littleEndian(0))
        let toBlocked = TestPackets.tcp(source: Self.inside, destination: blocked, sourcePort: 1000, destinationPort: 80, flags: 0x02)
        let toOther = TestPackets.tcp(source: Self.inside, destination: [192, 0, 2, 2], sourcePort: 1000, destinationPort: 80, flags: 0x02)
        #expect(try program.run(packet: toBlocked, engine: setup.engine) == 0)
        #expect(try program.run(packet: toBlocked, engine: setup.engine) == 0)
        #expect(try program.run(packet: toOther, engine: setup.engine) == 1)
        #expect(try Self.counter(program, "blocked", key: blocked) == 2)
        // Truncated IPv4 is refused, without reading past the end.
        #expect(try program.run(packet: Array(toBlocked.prefix(20)), engine: setup.engine) == 0)
    }

    @Test(arguments: setups)
    func bloomBlocklistRefusesListedSource(setup: Setup) throws {
        let program = try Self.load("bloom-blocklist", setup.compiler)
        let listed: [UInt8] = [198, 51, 100, 7]
        try program.map(named: "blocklist")!.map.push(value: listed)
        let fromListed = TestPackets.udp(source: listed, destination: Self.inside, sourcePort: 5, destinationPort: 6, payload: [1, 2])
        let fromOther = TestPackets.udp(source: [198, 51, 100, 8], destination: Self.inside, sourcePort: 5, destinationPort: 6, payload: [1, 2])
        #expect(try program.run(packet: fromListed, engine: setup.engine) == 0)
        #expect(try program.run(packet: fromOther, engine: setup.engine) == 1)
        #expect(try Self.counter(program, "refused") == 1)
    }

    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        bytes.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }

    @Test(arguments: setups)
    func dnsFilterBlocksListedNameCaseInsensitively(setup: Setup) throws {
        let program = try Self.load("dns-filter", setup.compiler)
        let name = Array(TestPackets.wireName("example.com").dropLast())
        let key = TestPackets.littleEndian(Self.fnv1a(name))
        try program.map(named: "blocked_names")!.map.update(key: key, value: TestPackets.littleEndian(0))
        #expect(try program.run(packet: TestPackets.dnsQuery(name: "EXAMPLE.com"), engine: setup.engine) == 0)
        #expect(try program.run(packet: TestPackets.dnsQuery(name: "example.org"), engine: setup.engine) == 1)
        #expect(try Self.counter(program, "blocked_names", key: key) == 1)
        // A query truncated inside its name passes without an out-of-bounds read.
        let truncated = Array(TestPackets.dnsQuery(name: "example.com").prefix(14 + 20 + 8 + 12 + 4))
        #expect(try program.run(packet: truncated, engine: setup.engine) == 1)
    }

    @Test(arguments: setups)
    func statefulFirewallAdmitsInsideHandshakeOnly(setup: Setup) throws {
        let program = try Self.load("stateful-firewall", setup.compiler)
        let syn = TestPackets.tcp(source: Self.inside, destination: Self.outside, sourcePort: 40000, destinationPort: 80, flags: 0x02)
        let synAck = TestPackets.tcp(source: Self.outside, destination: Self.inside, sourcePort: 80, destinationPort: 40000, flags: 0x12)
        let ack = TestPackets.tcp(source: Self.inside, destination: Self.outside, sourcePort: 40000, destinationPort: 80, flags: 0x10)
        #expect(try program.run(packet: syn, engine: setup.engine) == 1)
        #expect(try program.run(packet: synAck, engine: setup.engine) == 1)
        #expect(try program.run(packet: ack, engine: setup.engine) == 1)
        let connections = try program.map(named: "connections")!.map.entries()
        #expect(connections.count == 1)
        // struct connection_state {state, packets}: ESTABLISHED after the SYN-ACK, three packets seen.
        #expect(connections.first.map { Array($0.value) } == [2, 0, 0, 0, 3, 0, 0, 0])
        let outsideSyn = TestPackets.tcp(source: Self.outside, destination: Self.inside, sourcePort: 5555, destinationPort: 22, flags: 0x02)
        #expect(try program.run(packet: outsideSyn, engine: setup.engine) == 0)
        let udp = TestPackets.udp(source: Self.inside, destination: Self.outside, sourcePort: 1, destinationPort: 2, payload: [])
        #expect(try program.run(packet: udp, engine: setup.engine) == 0)
        #expect(try program.map(named: "connections")!.map.entries().count == 1)
    }

    @Test(arguments: setups)
    func heavyHittersFlagsAfterThreshold(setup: Setup) throws {
        let program = try Self.load("heavy-hitters", setup.compiler)
        try program.map(named: "threshold")!.map.update(key: Self.zeroKey, value: TestPackets.littleEndian(5))
        let packet = TestPackets.udp(source: Self.outside, destination: Self.inside, sourcePort: 1, destinationPort: 2, payload: [])
        let results = try (0..<7).map { _ in try program.run(packet: packet, engine: setup.engine) }
        #expect(results == [0, 0, 0, 0, 0, 1, 1])
        #expect(try Self.counter(program, "flagged") == 2)
        #expect(try program.map(named: "sketch")!.map.estimate(key: Self.outside) == 7)
    }

    @Test(arguments: setups)
    func p0fMatchesInsertedSignature(setup: Setup) throws {
        try p0fBehaviour(setup: setup)
    }

    func p0fBehaviour(setup: Setup) throws {
        let program = try Self.load("p0f", setup.compiler)
        // MSS 1460, SACK permitted, timestamps, NOP, window scale 7: 20 option bytes.
        let options: [UInt8] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]
        // struct syn_signature: ttl, window_scale, mss (LE), window (LE), options[8], option_count, pad.
        let signature: [UInt8] = [64, 7, 0xb4, 0x05, 0x10, 0x72, 2, 4, 8, 1, 3, 0, 0, 0, 5, 0]
        try program.map(named: "signatures")!.map.update(key: signature, value: TestPackets.littleEndian(42, count: 4) + [UInt8](repeating: 0, count: 12))
        let syn = TestPackets.tcp(
            source: Self.outside, destination: Self.inside, sourcePort: 1234, destinationPort: 80, flags: 0x02, window: 29200,
            options: options, ttl: 57)
        #expect(try program.run(packet: syn, engine: setup.engine) == 1)
        let hits = try program.map(named: "signatures")!.map.lookup(key: signature).map { TestPackets.readLittleEndian($0[8..<16]) }
        #expect(hits == 1)
        let otherWindow = TestPackets.tcp(
            source: Self.outside, destination: Self.inside, sourcePort: 1234, destinationPort: 80, flags: 0x02, window: 65535,
            options: options, ttl: 57)
        #expect(try program.run(packet: otherWindow, engine: setup.engine) == 0)
        #expect(try Self.counter(program, "unknown") == 1)
    }

    @Test(arguments: setups)
    func tcpDiagnosisCountsPerDirection(setup: Setup) throws {
        let program = try Self.load("tcp-diagnosis", setup.compiler)
        let payload = [UInt8](repeating: 0x61, count: 100)
        let packets = [
            TestPackets.tcp(source: Self.inside, destination: Self.outside, sourcePort: 40000, destinationPort: 80, flags: 0x02, sequence: 999),
            TestPackets.tcp(source: Self.inside, destination: Self.outside, sourcePort: 40000, destinationPort: 80, flags: 0x18, sequence: 1000, payload: payload),
            TestPackets.tcp(source: Self.inside, destination: Self.outside, sourcePort: 40000, destinationPort: 80, flags: 0x18, sequence: 1000, payload: payload),
            TestPackets.tcp(source: Self.outside, destination: Self.inside, sourcePort: 80, destinationPort: 40000, flags: 0x14, window: 0),
        ]
        for packet in packets { #expect(try program.run(packet: packet, engine: setup.engine) == 1) }
        let flowKey = Self.inside + Self.outside + [0x9c, 0x40, 0, 80]
        let stats = try #require(try program.map(named: "connections")!.map.lookup(key: flowKey))
        let field = { (offset: Int, size: Int) in TestPackets.readLittleEndian(stats[offset..<(offset + size)]) }
        #expect(field(0, 8) == 3)  // packets
        #expect(field(8, 8) == 200)  // payload bytes
        #expect(field(20, 4) == 1)  // retransmissions
        #expect(field(24, 4) == 1)  // syns
        #expect(field(40, 4) == 29200)  // max window
        let reverseKey = Self.outside + Self.inside + [0, 80, 0x9c, 0x40]
        let reverse = try #require(try program.map(named: "connections")!.map.lookup(key: reverseKey))
        #expect(TestPackets.readLittleEndian(reverse[32..<36]) == 1)  // resets
        #expect(TestPackets.readLittleEndian(reverse[36..<40]) == 0)  // a RST's zero window is not counted
    }
}
