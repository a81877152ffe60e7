import Foundation
import Testing

/// A running okod for persistence tests: its API and OpenFlow ports and admin token, read from its log.
final class RunningOkod: @unchecked Sendable {
    let child: ChildProcess
    let apiPort: Int
    let openflowPort: Int?
    let token: String

    /// Starts okod on `config` and waits for "okod ready"; nil (with the output recorded as an issue) if
    /// it does not get there.
    static func start(config: URL, tokenFile: URL, timeout: TimeInterval = 60) throws -> RunningOkod? {
        let child = try ChildProcess(TestEnvironment.executable("okod"), ["--config", config.path])
        guard child.waitForOutput(timeout: timeout, { $0.contains("okod ready") }) else {
            Issue.record("okod did not become ready:\n\(child.output.suffix(4000))")
            if child.process.isRunning { kill(child.process.processIdentifier, SIGKILL) }
            _ = child.waitForExit(timeout: 5)
            return nil
        }
        let lines = child.output.split(separator: "\n")
        func port(after marker: String) -> Int? {
            guard let line = lines.first(where: { $0.contains(marker) }), let range = line.range(of: marker) else { return nil }
            let rest = line[range.upperBound...]
            guard let colon = rest.firstIndex(of: ":") else { return nil }
            return Int(rest[rest.index(after: colon)...].prefix { $0.isNumber })
        }
        guard let api = port(after: "management API listening on ") else {
            Issue.record("no API address in the log:\n\(child.output)")
            return nil
        }
        let token = try String(contentsOf: tokenFile, encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("admin ") }.map { String($0.split(separator: " ")[1]) } ?? ""
        return RunningOkod(child: child, apiPort: api, openflowPort: port(after: "OpenFlow 1.3 listening on "), token: token)
    }

    private init(child: ChildProcess, apiPort: Int, openflowPort: Int?, token: String) {
        self.child = child
        self.apiPort = apiPort
        self.openflowPort = openflowPort
        self.token = token
    }

    func request(_ method: String, _ path: String, body: [UInt8] = [], contentType: String? = nil,
                 accept: String? = nil, authorised: Bool = true) throws -> HTTPResult {
        var headers: [(String, String)] = []
        if authorised { headers.append(("Authorization", "Bearer \(token)")) }
        if let contentType { headers.append(("Content-Type", contentType)) }
        if let accept { headers.append(("Accept", accept)) }
        return try rawHTTP(port: apiPort, method: method, path: path, headers: headers, body: body)
    }

    func json(_ path: String) throws -> [String: Any] {
        let result = try request("GET", path)
        return (try? JSONSerialization.jsonObject(with: Data(result.body.utf8)) as? [String: Any]) ?? [:]
    }

    func kill9() {
        kill(child.process.processIdentifier, SIGKILL)
        _ = child.waitForExit(timeout: 10)
    }

    func terminate() -> Bool {
        kill(child.process.processIdentifier, SIGTERM)
        return child.waitForExit(timeout: 10) != nil && child.process.terminationStatus == 0
    }

    deinit { if child.process.isRunning { kill(child.process.processIdentifier, SIGKILL) } }
}

struct HTTPResult {
    var status: Int
    var body: String
}

struct ConnectionFailed: Error, CustomStringConvertible {
    var description: String
}

/// Connects a TCP socket to 127.0.0.1:`port` with send/receive timeouts.
func connectLoopback(port: Int, timeout: Double = 10) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ConnectionFailed(description: "socket: errno \(errno)") }
    var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw ConnectionFailed(description: "connect to port \(port): errno \(errno)")
    }
    return fd
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n > 0 else { throw ConnectionFailed(description: "send: errno \(errno)") }
        offset += n
    }
}

/// One HTTP/1.1 request on its own connection; a complete response or a thrown error (the request's
/// outcome is then unknown).
func rawHTTP(port: Int, method: String, path: String, headers: [(String, String)], body: [UInt8]) throws -> HTTPResult {
    let fd = try connectLoopback(port: port)
    defer { close(fd) }
    var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
    for (name, value) in headers { head += "\(name): \(value)\r\n" }
    head += "\r\n"
    try writeAll(fd, Array(head.utf8) + body)
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        response += buffer[0..<n]
        if let (headerEnd, length) = parsedHead(response), response.count >= headerEnd + length { break }
    }
    guard let (headerEnd, length) = parsedHead(response), response.count >= headerEnd + length,
          let statusLine = String(decoding: response[..<headerEnd], as: UTF8.self).split(separator: "\r\n").first,
          let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "")
    else { throw ConnectionFailed(description: "incomplete HTTP response (\(response.count) bytes)") }
    return HTTPResult(status: status, body: String(decoding: response[headerEnd..<headerEnd + length], as: UTF8.self))
}

/// (offset of the body, Content-Length) once the response head is complete.
private func parsedHead(_ bytes: [UInt8]) -> (Int, Int)? {
    let separator: [UInt8] = [13, 10, 13, 10]
    guard bytes.count >= 4, let index = (0...(bytes.count - 4)).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else { return nil }
    let head = String(decoding: bytes[..<index], as: UTF8.self).lowercased()
    var length = 0
    for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
        length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
    }
    return (index + 4, length)
}

/// A minimal OpenFlow 1.3 controller: HELLO, FLOW_MODs for `ip,nw_dst=A -> output:P`, BARRIER.
final class OpenFlowTestClient {
    private let fd: Int32
    private var xid: UInt32 = 100
    private var pending: [UInt8] = []

    init(port: Int) throws {
        fd = try connectLoopback(port: port)
        try writeAll(fd, [4, 0, 0, 8, 0, 0, 0, 1])  // HELLO, OpenFlow 1.3
    }

    deinit { close(fd) }

    /// `command`: 0 add, 4 delete strict.
    func flowMod(command: UInt8, priority: UInt16, ipv4Destination: [UInt8], outPort: UInt32) throws {
        xid += 1
        var m: [UInt8] = [4, 14, 0, 0] + be(xid)
        m += [UInt8](repeating: 0, count: 16)  // cookie, cookie mask
        m += [0, command, 0, 0, 0, 0] + be16(priority)  // table, command, idle, hard, priority
        m += be(0xffff_ffff) + be(0xffff_ffff) + be(0xffff_ffff) + [0, 0, 0, 0]  // buffer, out_port, out_group, flags, pad
        // OXM match: eth_type=0x0800, ipv4_dst=A (length 18, padded to 24).
        m += [0, 1, 0, 18] + [0x80, 0, 0x0a, 2, 0x08, 0x00] + [0x80, 0, 0x18, 4] + ipv4Destination + [0, 0, 0, 0, 0, 0]
        if command == 0 {
            m += [0, 4, 0, 24, 0, 0, 0, 0] + [0, 0, 0, 16] + be(outPort) + [0xff, 0xff, 0, 0, 0, 0, 0, 0]
        }
        m[2] = UInt8(m.count >> 8)
        m[3] = UInt8(m.count & 0xff)
        try writeAll(fd, m)
    }

    /// GROUP_MOD add: group `id` of type ALL with one bucket per output port.
    func addGroup(id: UInt32, outputs: [UInt32]) throws {
        xid += 1
        var m: [UInt8] = [4, 15, 0, 0] + be(xid) + [0, 0, 0, 0] + be(id)
        for port in outputs {
            m += [0, 32, 0, 1] + be(0xffff_ffff) + be(0xffff_ffff) + [0, 0, 0, 0]
            m += [0, 0, 0, 16] + be(port) + [0xff, 0xff, 0, 0, 0, 0, 0, 0]
        }
        m[2] = UInt8(m.count >> 8)
        m[3] = UInt8(m.count & 0xff)
        try writeAll(fd, m)
    }

    /// SET_CONFIG with flags 0 and `missSendLength`.
    func setConfig(missSendLength: UInt16) throws {
        xid += 1
        try writeAll(fd, [4, 9, 0, 12] + be(xid) + [0, 0] + be16(missSendLength))
    }

    /// GET_CONFIG: the switch's miss_send_len.
    func missSendLength() throws -> UInt16 {
        xid += 1
        let requestXID = xid
        try writeAll(fd, [4, 7, 0, 8] + be(requestXID))
        while true {
            let message = try readMessage()
            if message[1] == 8, Array(message[4..<8]) == be(requestXID), message.count >= 12 {
                return UInt16(message[10]) << 8 | UInt16(message[11])
            }
        }
    }

    /// Sends BARRIER_REQUEST and waits for its reply; false if an OpenFlow error came back first.
    func barrier() throws -> Bool {
        xid += 1
        let barrierXID = xid
        try writeAll(fd, [4, 20, 0, 8] + be(barrierXID))
        var sawError = false
        while true {
            let message = try readMessage()
            if message[1] == 1 { sawError = true }
            if message[1] == 21, Array(message[4..<8]) == be(barrierXID) { return !sawError }
        }
    }

    private func readMessage() throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if pending.count >= 8 {
                let length = Int(pending[2]) << 8 | Int(pending[3])
                if pending.count >= length {
                    let message = Array(pending[0..<length])
                    pending.removeFirst(length)
                    return message
                }
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw ConnectionFailed(description: "OpenFlow connection closed") }
            pending += buffer[0..<n]
        }
    }

    private func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
    private func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
}


/// The `nw_dst` of every rule in an ovs-ofctl text listing, with the rule's priority.
func ruleDestinations(_ listing: String) -> Set<String> {
    var result = Set<String>()
    for line in listing.split(separator: "\n") {
        guard let priority = line.range(of: "priority="), let range = line.range(of: "nw_dst=") else { continue }
        let p = line[priority.upperBound...].prefix { $0.isNumber }
        let address = line[range.upperBound...].prefix { $0.isNumber || $0 == "." }
        result.insert("\(p)/\(address)")
    }
    return result
}

func writeTestConfig(_ text: String, in directory: URL) throws -> URL {
    let url = directory.appendingPathComponent("okod.yaml")
    try text.write(to: url, atomically: true, encoding: .utf8)
    return url
}

/// The configuration lines okod tests share: no hugepages, a small pool, listeners on free loopback ports.
func okodTestPreamble(tokenFile: URL) -> String {
    """
    dpdk:
      eal_args: ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256"]
      mbufs: 2048
    stats_interval: 0
    api: {listen: "127.0.0.1:0", token_file: "\(tokenFile.path)"}
    openflow: {listen: "127.0.0.1:0"}
    """
}
