import Foundation
import NIOCore
import NIOPosix
import OkoDatapath
import Synchronization
@testable import OkoOpenFlow

/// A real switch for tests: an in-memory bridge with three InMemoryPorts, a PMD, the DatapathAgent behind an
/// OpenFlowListener on 127.0.0.1 (ephemeral port) and the event pump.
///
/// `threadedPMD` runs the PMD on its own thread; otherwise the test drives it inline through `pump()`,
/// which keeps the shared machine's cores free while ovs-ofctl runs.
final class AgentSwitch: @unchecked Sendable {
    let buffers = InMemoryPacketBuffers()
    let bridge: Bridge
    let ports: [InMemoryPort]
    let pmd: PMDThread
    let agent: DatapathAgent
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let listener: OpenFlowListener
    let eventPump: DatapathEventPump
    let threadedPMD: Bool
    private(set) var tcpPort = 0

    var target: String { "tcp:127.0.0.1:\(tcpPort)" }

    init(threadedPMD: Bool = false, tableCount: Int = 16) throws {
        bridge = Bridge(name: "br-of", buffers: buffers, tableCount: tableCount)
        var ports: [InMemoryPort] = []
        for i in 1...3 {
            let port = InMemoryPort(name: "p\(i)", buffers: buffers)
            try bridge.addPort(port, number: UInt32(i))
            ports.append(port)
        }
        self.ports = ports
        pmd = PMDThread(bridges: [bridge])
        let agent = DatapathAgent(bridge: bridge, datapathID: 0xab_cdef)
        self.agent = agent
        listener = OpenFlowListener(group: group) { agent }
        eventPump = DatapathEventPump(agent: agent)
        self.threadedPMD = threadedPMD
        let listener = self.listener
        agent.setEventSink { listener.broadcast($0) }
    }

    func start() async throws {
        tcpPort = try await listener.start(host: "127.0.0.1", port: 0)
        eventPump.start(on: group.next(), interval: .milliseconds(2))
        if threadedPMD { pmd.start() }
    }

    func stop() async throws {
        eventPump.stop()
        if threadedPMD { pmd.stop() }
        try await listener.stop()
        try await group.shutdownGracefully()
    }

    /// Lets the datapath run (inline PMD polls) and returns what port `number` transmitted within `timeout`.
    func transmitted(on number: Int, expecting count: Int = 1, timeout: Double = 3) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(timeout)
        while frames.count < count && Date() < deadline {
            if !threadedPMD { pmd.pollOnce() }
            frames += ports[number - 1].takeTransmitted()
            if frames.count < count { usleep(1000) }
        }
        return frames
    }

    /// Injects `frame` on port `number` and returns the frames each port sent (1-based port numbers).
    func send(_ frame: [UInt8], on number: Int, settle: Double = 0.2) -> [Int: [[UInt8]]] {
        ports[number - 1].inject(frame)
        var result: [Int: [[UInt8]]] = [:]
        let deadline = Date().addingTimeInterval(settle)
        repeat {
            if !threadedPMD { pmd.pollOnce() }
            for (i, p) in ports.enumerated() {
                let sent = p.takeTransmitted()
                if !sent.isEmpty { result[i + 1, default: []] += sent }
            }
            usleep(1000)
        } while Date() < deadline
        return result
    }

    /// Runs `ovs-ofctl -O OpenFlow13 <command> <target> <args...>`.
    func ofctl(_ command: String, _ args: String..., options: [String] = []) throws -> (Int32, String) {
        try runOvsOfctl(["-O", "OpenFlow13"] + options + [command, target] + args)
    }
}

let ovsOfctlInstalled = FileManager.default.isExecutableFile(atPath: "/usr/bin/ovs-ofctl")

/// Test frames.
enum Frames {
    static let macA: [UInt8] = [0x02, 0, 0, 0, 0, 0x0a]
    static let macB: [UInt8] = [0x02, 0, 0, 0, 0, 0x0b]

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }

    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count { sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    /// Ethernet + IPv4 + UDP 10.0.0.1 -> `dst`, with `payloadLength` bytes of payload.
    static func udp(dst: [UInt8] = [10, 0, 0, 2], sport: UInt16 = 1000, dport: UInt16, payloadLength: Int = 18,
                    srcMAC: [UInt8] = macA, dstMAC: [UInt8] = macB) -> [UInt8] {
        let payload = (0..<payloadLength).map { UInt8(truncatingIfNeeded: $0) }
        let udp = be16(sport) + be16(dport) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
        var ip: [UInt8] = [0x45, 0] + be16(UInt16(20 + udp.count)) + [0, 1, 0, 0, 64, 17, 0, 0] + [10, 0, 0, 1] + dst
        let c = checksum(ip)
        ip[10] = UInt8(c >> 8); ip[11] = UInt8(c & 0xff)
        return dstMAC + srcMAC + be16(0x0800) + ip + udp
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}

/// A minimal OpenFlow 1.3 controller over a blocking socket, speaking through the codec.
final class TestController {
    private let fd: Int32
    private var framer = OpenFlowFramer()
    private var nextXID: UInt32 = 100

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw ControllerError.connectFailed(errno) }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        try send(.hello(Hello(versions: [OpenFlowVersion.v1_3])))
    }

    deinit { close(fd) }

    enum ControllerError: Error { case connectFailed(Int32), sendFailed, timeout }

    @discardableResult
    func send(_ body: MessageBody) throws -> UInt32 {
        nextXID += 1
        let bytes = try OpenFlowMessage(version: OpenFlowVersion.v1_3, xid: nextXID, body: body).encode()
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else { throw ControllerError.sendFailed }
        return nextXID
    }

    /// The next message matching `predicate` within `timeout` seconds (others are skipped).
    func receive(timeout: Double = 3, where predicate: (MessageBody) -> Bool) throws -> OpenFlowMessage {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            while let bytes = try framer.nextMessage() {
                let message = try OpenFlowMessage.decode(bytes)
                if predicate(message.body) { return message }
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { framer.append(buffer[0..<n]) }
        }
        throw ControllerError.timeout
    }

    /// Sends a barrier and waits for its reply: afterwards the session is established and caught up.
    func sync() throws {
        let xid = try send(.barrierRequest)
        _ = try receive { if case .barrierReply = $0 { true } else { false } }
        _ = xid
    }
}
