// Harness for the end-to-end tests of examples/bpf (ExampleProgramTests).
//
// Design note: one okod serves every example test (`.sharedOkod` suite trait): starting DPDK costs
// seconds, so each test creates its own bridge through the API instead. A test compiles its example
// with clang exactly as examples/bpf/Makefile does, loads it with `PUT .../programs/1`, configures its
// maps and installs rules. Port 2 (output, `tx_pcap=`) is attached with the bridge, since rules may only
// name existing ports; port 1 (input, `rx_pcap=` of frames crafted here) comes last, because a pcap
// port replays its file as soon as it starts. A replay is complete when the rules' packet counters add up to the frames sent (every
// example installs a catch-all drop rule); detaching the ports then closes the output pcap.
// Threads: tests run serialized; all state lives in okod.
import Foundation
import Synchronization
import Testing

/// The okod shared by a suite, reachable from its tests through a task-local.
final class ExampleSwitch: @unchecked Sendable {
    @TaskLocal static var current: ExampleSwitch?

    let okod: ChildProcess
    let directory: URL
    let base: String
    let token: String
    private let nextDevice = Mutex(100)

    private init(okod: ChildProcess, directory: URL, base: String, token: String) {
        self.okod = okod
        self.directory = directory
        self.base = base
        self.token = token
    }

    static func start() throws -> ExampleSwitch {
        let directory = try TestEnvironment.temporaryDirectory("examples")
        let tokenFile = directory.appendingPathComponent("tokens")
        let config = directory.appendingPathComponent("okod.yaml")
        try """
            dpdk:
              eal_args: ["-l", "0-1", "--no-pci", "--no-huge", "-m", "1024"]
              mbufs: 4096
            stats_interval: 60
            api: {listen: "127.0.0.1:0", token_file: "\(tokenFile.path)"}
            openflow: {listen: "127.0.0.1:0"}
            """.write(to: config, atomically: true, encoding: .utf8)
        let okod = try ChildProcess(TestEnvironment.executable("okod"), ["--config", config.path])
        guard okod.waitForOutput(timeout: 60, { $0.contains("okod ready") }),
            let line = okod.output.split(separator: "\n").first(where: { $0.contains("management API listening on") }),
            let port = line.split(separator: ":").last.flatMap({ Int($0) })
        else {
            kill(okod.process.processIdentifier, SIGKILL)
            throw ExampleTestError("okod did not start:\n\(okod.output)")
        }
        let token = try String(contentsOf: tokenFile, encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("admin ") }.map { String($0.split(separator: " ")[1]) } ?? ""
        return ExampleSwitch(okod: okod, directory: directory, base: "http://127.0.0.1:\(port)", token: token)
    }

    /// Stops okod with SIGTERM; returns whether it stopped cleanly.
    @discardableResult
    func stop() -> Bool {
        kill(okod.process.processIdentifier, SIGTERM)
        let stopped = okod.waitForExit(timeout: 10) != nil && okod.process.terminationStatus == 0
        try? FileManager.default.removeItem(at: directory)
        return stopped
    }

    /// The switch of the running suite.
    static func shared() throws -> ExampleSwitch {
        guard let current else { throw ExampleTestError("no shared okod: the suite needs the .sharedOkod trait") }
        return current
    }

    func deviceNumber() -> Int { nextDevice.withLock { n in defer { n += 1 }; return n } }

    /// One API request through curl; returns (HTTP status, body).
    func request(_ method: String, _ path: String, contentType: String? = nil, body: String? = nil, bodyFile: URL? = nil) throws -> (Int, String) {
        var arguments = ["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-H", "Authorization: Bearer \(token)"]
        if let contentType { arguments += ["-H", "Content-Type: \(contentType)"] }
        if let body { arguments += ["--data-binary", body] }
        if let bodyFile { arguments += ["--data-binary", "@\(bodyFile.path)"] }
        let (_, output) = try runToCompletion(URL(fileURLWithPath: "/usr/bin/curl"), arguments + [base + path])
        var lines = output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let status = Int(lines.popLast() ?? "") ?? 0
        return (status, lines.joined(separator: "\n"))
    }

    /// A request that must answer `expected`; returns the body parsed as JSON (or nil for an empty body).
    @discardableResult
    func call(_ method: String, _ path: String, expect expected: Int, contentType: String? = nil, body: String? = nil,
              bodyFile: URL? = nil) throws -> Any? {
        let (status, text) = try request(method, path, contentType: contentType, body: body, bodyFile: bodyFile)
        guard status == expected else {
            throw ExampleTestError("\(method) \(path) answered \(status), expected \(expected): \(text.prefix(2000))")
        }
        return text.isEmpty ? nil : try JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    /// Creates bridge `name` with its output port 2 attached (rules may only name existing ports).
    func makeBridge(_ name: String) throws -> ExampleBridge {
        try call("POST", "/v1/bridges", expect: 201, contentType: "application/json", body: #"{"name": "\#(name)"}"#)
        let bridge = ExampleBridge(name: name, okod: self)
        try writePcap([], to: bridge.emptyInput)
        try call("POST", "\(bridge.path)/ports", expect: 201, contentType: "application/json",
                 body: #"{"devargs": "net_pcap\#(deviceNumber()),rx_pcap=\#(bridge.emptyInput.path),tx_pcap=\#(bridge.output.path)", "ofport": 2}"#)
        return bridge
    }
}

/// A bridge of the shared okod running one example program as program 1.
struct ExampleBridge {
    let name: String
    let okod: ExampleSwitch
    var path: String { "/v1/bridges/\(name)" }

    /// Compiles examples/bpf/`example`.c as the Makefile does and loads it as program 1.
    func loadExample(_ example: String) throws {
        let object = okod.directory.appendingPathComponent("\(name)-\(example).o")
        try compileExample(example, to: object)
        try okod.call("PUT", "\(path)/programs/1", expect: 201, contentType: "application/octet-stream", bodyFile: object)
    }

    /// Sets map entries; each entry is a JSON object text (`{"key": "0a000001", "value_typed": 3}`).
    func updateMap(_ map: String, _ entries: [String]) throws {
        let body = #"{"entries": [\#(entries.joined(separator: ", "))]}"#
        let answer = try okod.call("PUT", "\(path)/programs/1/maps/\(map)", expect: 200, contentType: "application/json", body: body)
        guard (answer as? [String: Any])?["updated"] as? Int == entries.count else {
            throw ExampleTestError("map \(map) update answered \(String(describing: answer))")
        }
    }

    func addFlows(_ rules: [String]) throws {
        try okod.call("POST", "\(path)/flows", expect: 201, contentType: "text/plain", body: rules.joined(separator: "\n"))
    }

    /// Every entry of `map` as returned by the API (`key`, `value`, `key_typed`, `value_typed`).
    func entries(_ map: String) throws -> [[String: Any]] {
        let answer = try okod.call("GET", "\(path)/programs/1/maps/\(map)?limit=10000", expect: 200) as? [String: Any]
        return answer?["entries"] as? [[String: Any]] ?? []
    }

    /// The entry of `key` (hex), or nil when the map has none.
    func entry(_ map: String, key: String) throws -> [String: Any]? {
        let (status, text) = try okod.request("GET", "\(path)/programs/1/maps/\(map)?key=\(key)")
        if status == 404 { return nil }
        guard status == 200 else { throw ExampleTestError("GET map \(map) key \(key) answered \(status): \(text)") }
        let answer = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        return (answer?["entries"] as? [[String: Any]])?.first
    }

    /// The value of entry 0 of an array map of one counter (`drops`, `refused`, ...).
    func counter(_ map: String) throws -> Int {
        guard let value = try entry(map, key: "00000000")?["value_typed"] as? Int else {
            throw ExampleTestError("map \(map) has no typed entry 0")
        }
        return value
    }

    /// Rule packet counters by priority.
    func rulePackets() throws -> [Int: Int] {
        let answer = try okod.call("GET", "\(path)/flows", expect: 200) as? [String: Any]
        var packets: [Int: Int] = [:]
        for rule in answer?["flows"] as? [[String: Any]] ?? [] {
            guard let priority = rule["priority"] as? Int else { continue }
            packets[priority, default: 0] += ((rule["stats"] as? [String: Any])?["packets"] as? Int) ?? 0
        }
        return packets
    }

    /// The program's run and match counters.
    func programStats() throws -> (runs: Int, matches: Int) {
        let answer = try okod.call("GET", "\(path)/programs/1", expect: 200) as? [String: Any]
        let stats = answer?["stats"] as? [String: Any]
        return (stats?["runs"] as? Int ?? -1, stats?["matches"] as? Int ?? -1)
    }

    var output: URL { okod.directory.appendingPathComponent("\(name)-out.pcap") }
    var emptyInput: URL { okod.directory.appendingPathComponent("\(name)-empty.pcap") }

    /// Replays `frames` into port 1 and returns what port 2 sent, in order. Rules and program must be in
    /// place; the rules must account for every frame (a catch-all rule), which is how the end is detected.
    func replay(_ frames: [[UInt8]]) throws -> [[UInt8]] {
        let input = okod.directory.appendingPathComponent("\(name)-in.pcap")
        try writePcap(frames, to: input)
        let before = try rulePackets().values.reduce(0, +)
        try okod.call("POST", "\(path)/ports", expect: 201, contentType: "application/json",
                      body: #"{"devargs": "net_pcap\#(okod.deviceNumber()),rx_pcap=\#(input.path)", "ofport": 1}"#)
        let deadline = Date().addingTimeInterval(30)
        var counted = before
        while Date() < deadline {
            counted = try rulePackets().values.reduce(0, +)
            if counted - before >= frames.count { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        // The last packets' transmit follows their rule hit within the same burst; give it a moment.
        Thread.sleep(forTimeInterval: 0.2)
        try okod.call("DELETE", "\(path)/ports/1", expect: 204)
        try okod.call("DELETE", "\(path)/ports/2", expect: 204)
        guard counted - before == frames.count else {
            throw ExampleTestError("rules counted \(counted - before) of \(frames.count) packets: \(try rulePackets())")
        }
        return try readPcap(output)
    }
}

struct ExampleTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs the suite's tests inside one okod started for it.
struct SharedOkodTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let okod = try ExampleSwitch.start()
        do {
            try await ExampleSwitch.$current.withValue(okod) { try await function() }
        } catch {
            okod.stop()
            throw error
        }
        let log = okod.okod.output
        #expect(okod.stop(), "okod must stop cleanly after the examples; log:\n\(log.suffix(3000))")
    }
}

extension Trait where Self == SharedOkodTrait {
    static var sharedOkod: Self { Self() }
}

/// Compiles examples/bpf/`example`.c with the Makefile's command line (Debian's clang 14).
func compileExample(_ example: String, to object: URL) throws {
    let source = TestEnvironment.packageRoot.appendingPathComponent("examples/bpf/\(example).c")
    let (status, output) = try runToCompletion(
        URL(fileURLWithPath: "/usr/bin/clang"),
        ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-Wall", "-Werror", "-c", source.path, "-o", object.path])
    guard status == 0 else { throw ExampleTestError("clang \(example).c failed: \(output)") }
}

/// Writes a classic little-endian microsecond pcap of Ethernet frames.
func writePcap(_ frames: [[UInt8]], to url: URL) throws {
    var data: [UInt8] = []
    func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
    func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
    u32(0xA1B2_C3D4); u16(2); u16(4); u32(0); u32(0); u32(65535); u32(1)
    for (index, frame) in frames.enumerated() {
        u32(1_700_000_000); u32(UInt32(index)); u32(UInt32(frame.count)); u32(UInt32(frame.count))
        data += frame
    }
    try Data(data).write(to: url)
}

/// Crafted frames: Ethernet II from 02:00:00:00:00:01 to 02:00:00:00:00:02, IPv4 with a valid checksum.
enum Frame {
    static func address(_ text: String) -> [UInt8] { text.split(separator: ".").map { UInt8($0)! } }

    static func ethernet(type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, UInt8(type >> 8), UInt8(type & 0xff)] + payload
    }

    static func ipv4(_ source: String, _ destination: String, protocol number: UInt8, ttl: UInt8 = 64, _ payload: [UInt8]) -> [UInt8] {
        let length = 20 + payload.count
        var header: [UInt8] = [0x45, 0, UInt8(length >> 8), UInt8(length & 0xff), 0, 1, 0x40, 0, ttl, number, 0, 0]
        header += address(source) + address(destination)
        var sum: UInt32 = 0
        for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(header[i]) << 8 | UInt32(header[i + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        header[10] = UInt8(checksum >> 8)
        header[11] = UInt8(checksum & 0xff)
        return ethernet(type: 0x0800, header + payload)
    }

    static func be16(_ v: Int) -> [UInt8] { [UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

    static func udp(_ source: String, _ destination: String, sourcePort: Int, destinationPort: Int, _ payload: [UInt8] = [], ttl: UInt8 = 64) -> [UInt8] {
        ipv4(source, destination, protocol: 17, ttl: ttl, be16(sourcePort) + be16(destinationPort) + be16(8 + payload.count) + [0, 0] + payload)
    }

    static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08, ack: UInt8 = 0x10

    /// A TCP segment; `options` are padded with end-of-option bytes to a multiple of four.
    static func tcp(_ source: String, _ destination: String, sourcePort: Int, destinationPort: Int, flags: UInt8,
                    sequence: UInt32 = 1000, acknowledgement: UInt32 = 0, window: Int = 65535, options: [UInt8] = [],
                    payload: [UInt8] = [], ttl: UInt8 = 64) -> [UInt8] {
        var padded = options
        while padded.count % 4 != 0 { padded.append(0) }
        let words = UInt8((20 + padded.count) / 4)
        let header = be16(sourcePort) + be16(destinationPort) + be32(sequence) + be32(acknowledgement)
            + [words << 4, flags] + be16(window) + [0, 0, 0, 0] + padded
        return ipv4(source, destination, protocol: 6, ttl: ttl, header + payload)
    }

    static func icmpEcho(_ source: String, _ destination: String) -> [UInt8] {
        ipv4(source, destination, protocol: 1, [8, 0, 0xf7, 0xfe, 0, 1, 0, 1])
    }

    static func arpRequest(_ sender: String, _ target: String) -> [UInt8] {
        ethernet(type: 0x0806, [0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 0x01] + address(sender) + [0, 0, 0, 0, 0, 0] + address(target))
    }

    static func ipv6UDP() -> [UInt8] {
        ethernet(type: 0x86DD, [0x60, 0, 0, 0, 0, 8, 17, 64] + [UInt8](repeating: 0, count: 15) + [1] + [UInt8](repeating: 0, count: 15) + [2]
            + [0x30, 0x39, 0, 53, 0, 8, 0, 0])
    }
}

/// Lower-case hex of bytes (the API's key and value notation).
func hexString(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// The harness's own pieces, checked against independent references.
struct ExampleHarnessTests {
    @Test func pcapWriterRoundTripsThroughTheReader() throws {
        let directory = try TestEnvironment.temporaryDirectory("pcapw")
        defer { try? FileManager.default.removeItem(at: directory) }
        let frames = [Frame.arpRequest("10.0.0.1", "10.0.0.2"), Frame.udp("10.0.0.1", "10.0.0.2", sourcePort: 1, destinationPort: 2, [1, 2, 3])]
        let url = directory.appendingPathComponent("x.pcap")
        try writePcap(frames, to: url)
        #expect(try readPcap(url) == frames)
    }

    /// Wikipedia's IPv4 checksum example (4500 0073 0000 4000 4011 .... c0a8 0001 c0a8 00c7) sums to
    /// checksum 0xb861; our header differs only by id 1, so its checksum is one less.
    @Test func ipv4ChecksumMatchesAKnownHeader() {
        let frame = Frame.ipv4("192.168.0.1", "192.168.0.199", protocol: 17, ttl: 64, [UInt8](repeating: 0, count: 95))
        #expect(Array(frame[14..<24]) == [0x45, 0x00, 0x00, 0x73, 0x00, 0x01, 0x40, 0x00, 0x40, 0x11])
        #expect(frame[24] == 0xb8 && frame[25] == 0x60)
    }
}
