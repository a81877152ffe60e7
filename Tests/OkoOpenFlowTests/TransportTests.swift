import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import OkoOpenFlow

/// A thread-safe agent for tests over real sockets: remembers flow mods and reports them back as flow
/// stats, as a switch would.
final class FlowTableAgent: SwitchAgent, Sendable {
    let flows = Mutex<[FlowMod]>([])
    let portMods = Mutex<[PortMod]>([])

    func features() -> SwitchFeatures { SwitchFeatures(datapathID: 0x0c0, tableCount: 4, capabilities: 0x7) }
    func switchConfig() -> SwitchConfig { SwitchConfig() }
    func setSwitchConfig(_ config: SwitchConfig) throws(OpenFlowError) {}
    func apply(_ flowMod: FlowMod) throws(OpenFlowError) { flows.withLock { $0.append(flowMod) } }
    func apply(_ groupMod: GroupMod) throws(OpenFlowError) {}
    func execute(_ packetOut: PacketOut) throws(OpenFlowError) {}
    func apply(_ portMod: PortMod) throws(OpenFlowError) { portMods.withLock { $0.append(portMod) } }
    func multipart(_ request: MultipartRequest.Body) throws(OpenFlowError) -> MultipartReply.Body {
        switch request {
        case .flow:
            return .flow(flows.withLock { $0 }.map {
                FlowStats(tableID: $0.tableID, priority: $0.priority, cookie: $0.cookie, packetCount: 3, byteCount: 180,
                          match: $0.match, instructions: $0.instructions)
            })
        case .desc:
            return .desc(SwitchDescription(manufacturer: "Oko", hardware: "DPDK", software: "test", serialNumber: "1", datapath: "br0"))
        case .portDesc: return .portDesc([port1])
        case .table: return .table((0..<4).map { TableStats(tableID: $0, activeCount: 0, lookupCount: 0, matchedCount: 0) })
        case .tableFeatures: return .tableFeatures((0..<4).map { completeTableFeatures(tableID: $0) })
        default: throw OpenFlowError(.badRequest, BadRequestCode.badMultipart, "unsupported in test agent")
        }
    }
    func handle(_ message: OkoMessage) throws(OpenFlowError) -> [OkoMessage] { [] }
}

/// Runs ovs-ofctl with a timeout and returns (exit status, output).
func runOvsOfctl(_ arguments: [String]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/ovs-ofctl")
    process.arguments = ["--timeout=10"] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite(.serialized) struct TransportTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/ovs-ofctl")))
    func ovsOfctlAddsAndDumpsFlowsOverTCP() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let agent = FlowTableAgent()
        let listener = OpenFlowListener(group: group) { agent }
        let port = try await listener.start(host: "127.0.0.1", port: 0)
        let target = "tcp:127.0.0.1:\(port)"

        let (addStatus, addOutput) = try runOvsOfctl(["--no-names", "-O", "OpenFlow13", "add-flow", target,
                                                      "priority=10,in_port=1,udp,tp_dst=53,actions=output:2"])
        #expect(addStatus == 0, "add-flow failed: \(addOutput)")
        #expect(agent.flows.withLock { $0 }.map(\.priority) == [10])

        let (dumpStatus, dumpOutput) = try runOvsOfctl(["--no-names", "-O", "OpenFlow13", "dump-flows", target])
        #expect(dumpStatus == 0, "dump-flows failed: \(dumpOutput)")
        #expect(dumpOutput.contains("priority=10,udp,in_port=1,tp_dst=53 actions=output:2"), "\(dumpOutput)")

        let (descStatus, descOutput) = try runOvsOfctl(["-O", "OpenFlow13", "dump-desc", target])
        #expect(descStatus == 0 && descOutput.contains("Manufacturer: Oko"), "\(descOutput)")

        // mod-port looks the port up with PORT_DESC, then sends PORT_MOD.
        let (modStatus, modOutput) = try runOvsOfctl(["-O", "OpenFlow13", "mod-port", target, "1", "down"])
        #expect(modStatus == 0, "\(modOutput)")
        #expect(agent.portMods.withLock { $0 } == [PortMod(portNumber: 1, hardwareAddress: mac1, config: 1, mask: 1)])

        // A request we do not implement (QUEUE_GET_CONFIG) comes back as an OpenFlow error ovs-ofctl understands
        // (it prints the error but still exits 0).
        let (_, queueOutput) = try runOvsOfctl(["-O", "OpenFlow13", "queue-get-config", target, "1"])
        #expect(queueOutput.contains("OFPT_ERROR") && queueOutput.contains("OFPBRC_BAD_TYPE"), "\(queueOutput)")

        // Without --no-names, ovs-ofctl first asks for table features to learn table names.
        let (plainStatus, plainOutput) = try runOvsOfctl(["-O", "OpenFlow13", "add-flow", target, "table=2,priority=20,actions=drop"])
        #expect(plainStatus == 0, "plain add-flow failed: \(plainOutput)")
        #expect(agent.flows.withLock { $0 }.last?.tableID == 2)

        // ovs-ofctl without -O speaks OpenFlow 1.0 for flows 1.0 can express.
        let (tenStatus, tenOutput) = try runOvsOfctl(["add-flow", target, "priority=30,ip,nw_dst=10.0.0.0/8,actions=mod_nw_tos:32,output:3"])
        #expect(tenStatus == 0, "OpenFlow 1.0 add-flow failed: \(tenOutput)")
        #expect(agent.flows.withLock { $0 }.last == FlowMod(command: .add, priority: 30,
            match: Match([.ethType(0x0800), .ipv4Dst(0x0a00_0000, mask: 0xff00_0000)]),
            instructions: [.applyActions([.setField(.ipDSCP(8)), .output(port: 3, maxLength: 0)])]))
        let (tenDump, tenDumpOutput) = try runOvsOfctl(["-O", "OpenFlow10", "dump-flows", target])
        #expect(tenDump == 0 && tenDumpOutput.contains("priority=30,ip,nw_dst=10.0.0.0/8 actions=mod_nw_tos:32,output:3"), "\(tenDumpOutput)")

        try await listener.stop()
        try await group.shutdownGracefully()
    }

    @Test func broadcastEventsReachConnectedControllers() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = OpenFlowListener(group: group) { FlowTableAgent() }
        let port = try await listener.start(host: "127.0.0.1", port: 0)
        let received = ReceivedBytes()
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteCollector(received: received))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await client.writeAndFlush(ByteBuffer(bytes: wire(.hello(Hello(versions: [4]))))).get()
        let packetIn = MessageBody.packetIn(PacketIn(totalLength: 3, reason: .noMatch, tableID: 0, cookie: 0,
                                                     match: Match([.inPort(5)]), data: [1, 2, 3]))
        var messages: [OpenFlowMessage] = []
        for _ in 0..<100 {
            try await Task.sleep(for: .milliseconds(20))
            if listener.connectionCount == 1 { listener.broadcast(packetIn) }  // dropped until HELLO is processed
            var framer = OpenFlowFramer()
            framer.append(received.bytes.withLock { $0 })
            messages = []
            while let message = try framer.nextMessage() { messages.append(try OpenFlowMessage.decode(message)) }
            if messages.contains(where: { $0.body == packetIn }) { break }
        }
        #expect(messages.first?.body == .hello(Hello(versions: [1, 4])))
        #expect(messages.contains { $0.body == packetIn })
        try await client.close()
        try await listener.stop()
        try await group.shutdownGracefully()
    }

    @Test func connectorReconnectsWithBackOffUntilAControllerListens() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Find a free port, then close it so the first attempts are refused.
        let probe = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress!.port!
        try await probe.close()

        let connector = OpenFlowConnector(group: group, host: "127.0.0.1", port: port, initialDelay: .milliseconds(20),
                                          maxDelay: .milliseconds(80)) { FlowTableAgent() }
        connector.start()
        try await Task.sleep(for: .milliseconds(300))
        #expect(connector.attempts >= 3, "expected repeated attempts while nobody listens")

        // A controller appears: it must receive our HELLO.
        let received = ReceivedBytes()
        let controller = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteCollector(received: received))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        var hello: OpenFlowMessage?
        for _ in 0..<100 where hello == nil {
            try await Task.sleep(for: .milliseconds(20))
            let bytes = received.bytes.withLock { $0 }
            if bytes.count >= 16 { hello = try? OpenFlowMessage.decode(Array(bytes.prefix(16))) }
        }
        #expect(hello?.body == .hello(Hello(versions: [1, 4])))
        connector.stop()
        try await controller.close()
        try await group.shutdownGracefully()
    }
}

final class ReceivedBytes: Sendable {
    let bytes = Mutex<[UInt8]>([])
}

/// Collects everything a test controller receives.
final class ByteCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let received: ReceivedBytes
    init(received: ReceivedBytes) { self.received = received }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        received.bytes.withLock { $0 += buffer.readableBytesView }
    }
}

/// A table-features entry with every property ovs-ofctl requires.
func completeTableFeatures(tableID: UInt8) -> TableFeatures {
    let oxms: [UInt32] = [0x8000_0004, 0x8000_0a02, 0x8000_1401, 0x8000_1e02]
    let actions: [UInt16] = [0, 17, 18, 22, 24, 25]
    return TableFeatures(tableID: tableID, name: "table\(tableID)", maxEntries: 1_000_000, properties: [
        TableFeatureProperty(type: TableFeatureProperty.instructions, content: .instructions([1, 2, 3, 4, 5])),
        TableFeatureProperty(type: TableFeatureProperty.nextTables, content: .nextTables(Array((tableID + 1)..<4))),
        TableFeatureProperty(type: TableFeatureProperty.writeActions, content: .actions(actions)),
        TableFeatureProperty(type: TableFeatureProperty.applyActions, content: .actions(actions)),
        TableFeatureProperty(type: TableFeatureProperty.match, content: .oxmIDs(oxms)),
        TableFeatureProperty(type: TableFeatureProperty.wildcards, content: .oxmIDs(oxms)),
        TableFeatureProperty(type: TableFeatureProperty.writeSetField, content: .oxmIDs(oxms)),
        TableFeatureProperty(type: TableFeatureProperty.applySetField, content: .oxmIDs(oxms)),
    ])
}
