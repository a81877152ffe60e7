import OkoDatapath
import Testing
@testable import OkoOpenFlow

/// Broken controller input against a session over the real switch agent (in-memory bridge): which inputs
/// get an ERROR and keep the connection, and which close it, as OpenFlow 1.3 says.
@Suite struct BrokenInputSessionTests {
    private func switchSession() -> (OpenFlowSession, Bridge) {
        let buffers = InMemoryPacketBuffers()
        let bridge = Bridge(name: "broken", buffers: buffers, tableCount: 4)
        for n in 1...2 { _ = try? bridge.addPort(InMemoryPort(name: "p\(n)", buffers: buffers), number: UInt32(n)) }
        let session = OpenFlowSession(agent: DatapathAgent(bridge: bridge, datapathID: 7), roles: ControllerRoles(), clock: { 0 })
        _ = session.start()
        _ = session.receive(wire(.hello(Hello(versions: [4]))))
        return (session, bridge)
    }

    private func errors(_ output: OpenFlowSession.Output) -> [ErrorMessage] {
        decodeAll(output).compactMap { if case .error(let e) = $0.body { e } else { nil } }
    }

    private var flowMod: [UInt8] {
        wire(.flowMod(FlowMod(command: .add, priority: 5, match: Match([.inPort(1), .ethType(0x0800), .ipv4Dst(0x0a00_0001, mask: nil)]),
                              instructions: [.applyActions([.output(port: 2, maxLength: 0)])])), xid: 9)
    }

    @Test func aTruncatedMessageGetsBadLenEchoingItAndTheConnectionStays() throws {
        let (session, bridge) = switchSession()
        var broken = Array(flowMod.dropLast(8))
        broken[2] = UInt8(broken.count >> 8)
        broken[3] = UInt8(broken.count & 0xff)
        let output = session.receive(broken)
        let error = try #require(errors(output).first)
        #expect(error.type == ErrorType.badRequest.rawValue || error.type == ErrorType.badMatch.rawValue
                || error.type == ErrorType.badInstruction.rawValue)
        #expect(error.data == Array(broken.prefix(64)))
        #expect(!output.close && session.state == .established(version: 4))
        #expect(bridge.flowCount() == 0)
        // The connection still works: the intact message installs the rule.
        #expect(errors(session.receive(flowMod)).isEmpty)
        #expect(bridge.flowCount() == 1)
    }

    @Test func aWrongVersionOrUnknownTypeIsAnErrorNotAClose() throws {
        let (session, _) = switchSession()
        var otherVersion = wire(.echoRequest([1, 2]))
        otherVersion[0] = 5
        let versionError = try #require(errors(session.receive(otherVersion)).first)
        #expect(versionError.type == ErrorType.badRequest.rawValue && versionError.code == BadRequestCode.badVersion)
        let unknownType: [UInt8] = [4, 99, 0, 8, 0, 0, 0, 3]
        let output = session.receive(unknownType)
        let typeError = try #require(errors(output).first)
        #expect(typeError.type == ErrorType.badRequest.rawValue && typeError.code == BadRequestCode.badType)
        #expect(!output.close && session.state == .established(version: 4))
    }

    @Test func aLengthBelowTheHeaderClosesTheConnectionAndNothingAfterItIsRead() {
        let (session, bridge) = switchSession()
        let output = session.receive([4, 14, 0, 7, 0, 0, 0, 1] + flowMod)
        #expect(output.close && session.state == .closed)
        #expect(bridge.flowCount() == 0)
        #expect(session.receive(flowMod).messages.isEmpty)
    }

    @Test func anOkoMessageWithAHugeCountGetsBadLenAndChangesNothing() throws {
        let (session, _) = switchSession()
        // UPDATE_MAP claiming 2^32-1 entries of 4+8 bytes in a 40-byte message.
        var message: [UInt8] = [4, 4, 0, 0, 0, 0, 0, 5, 0, 0, 0x23, 0x20, 0, 0, 0, 32, 0, 1, 0, 0, 0, 0, 0, 4, 0, 0, 0, 8,
                                0xff, 0xff, 0xff, 0xff]
        message += [UInt8](repeating: 0, count: 12)
        message[3] = UInt8(message.count)
        let output = session.receive(message)
        let error = try #require(errors(output).first)
        #expect(error.type == ErrorType.badRequest.rawValue && error.code == BadRequestCode.badLen)
        #expect(!output.close)
    }

    /// Seeded mutations (byte flips, truncations, appended garbage) of real messages: every reply the
    /// session sends decodes, and it reports a close exactly when it closed.
    @Test func randomAndMutatedStreamsNeverBreakTheSession() throws {
        var seeded = SplitMix(seed: 0x0f10_7e57)
        let seeds: [[UInt8]] = [flowMod, wire(.featuresRequest), wire(.barrierRequest),
                                wire(.multipartRequest(MultipartRequest(body: .flow(FlowStatsRequest())))),
                                wire(.oko(.dumpMapRequest(programID: 1, mapIDs: [0, 1])))]
        for round in 0..<400 {
            let (session, _) = switchSession()
            var bytes = seeds[round % seeds.count]
            for _ in 0..<(1 + Int(seeded.next() % 4)) {
                let index = Int(seeded.next() % UInt64(bytes.count))
                switch seeded.next() % 3 {
                case 0: bytes[index] = UInt8(truncatingIfNeeded: seeded.next())
                case 1: bytes = Array(bytes.prefix(index))
                default: bytes += (0..<Int(seeded.next() % 16)).map { _ in UInt8(truncatingIfNeeded: seeded.next()) }
                }
                if bytes.isEmpty { bytes = [4] }
            }
            let output = session.receive(bytes)
            for reply in output.messages { _ = try OpenFlowMessage.decode(reply) }
            #expect(output.close == (session.state == .closed), "round \(round): close flag and state disagree")
        }
    }
}

/// A small deterministic generator for reproducible mutations.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
