import Testing
@testable import OkoOpenFlow

/// Stands in for the datapath (not available in this module): records what it is asked and answers
/// from fixed state.
final class RecordingAgent: SwitchAgent {
    var flowMods: [FlowMod] = []
    var groupMods: [GroupMod] = []
    var packetOuts: [PacketOut] = []
    var multipartRequests: [MultipartRequest.Body] = []
    var okoMessages: [OkoMessage] = []
    var config = SwitchConfig()
    var flowCount = 3
    /// Flow mods with this priority are refused with FLOW_MOD_FAILED/TABLE_FULL.
    var refusedPriority: UInt16 = 0xdead

    func features() -> SwitchFeatures { SwitchFeatures(datapathID: 42, tableCount: 4, capabilities: 0x7) }
    func switchConfig() -> SwitchConfig { config }
    func setSwitchConfig(_ config: SwitchConfig) throws(OpenFlowError) { self.config = config }
    func apply(_ flowMod: FlowMod) throws(OpenFlowError) {
        guard flowMod.priority != refusedPriority else {
            throw OpenFlowError(.flowModFailed, FlowModFailedCode.tableFull, "table full")
        }
        flowMods.append(flowMod)
    }
    func apply(_ groupMod: GroupMod) throws(OpenFlowError) { groupMods.append(groupMod) }
    func execute(_ packetOut: PacketOut) throws(OpenFlowError) { packetOuts.append(packetOut) }
    func apply(_ portMod: PortMod) throws(OpenFlowError) {}
    func multipart(_ request: MultipartRequest.Body) throws(OpenFlowError) -> MultipartReply.Body {
        multipartRequests.append(request)
        switch request {
        case .flow:
            return .flow((0..<flowCount).map { FlowStats(tableID: 0, priority: UInt16($0), match: Match([.inPort(UInt32($0))]),
                                                         instructions: [.applyActions([.output(port: 1, maxLength: 0)])]) })
        case .tableFeatures(let tables): return .tableFeatures(tables)
        case .desc: return .desc(SwitchDescription(manufacturer: "Oko", hardware: "x", software: "y", serialNumber: "z", datapath: "br0"))
        default: throw OpenFlowError(.badRequest, BadRequestCode.badMultipart, "not in this agent")
        }
    }
    func handle(_ message: OkoMessage) throws(OpenFlowError) -> [OkoMessage] {
        okoMessages.append(message)
        if case .dumpMapRequest(let program, let maps) = message {
            return [.dumpMapReply(programID: program, maps: maps.map { MapDump(mapID: $0, keySize: 4, valueSize: 4, entries: []) })]
        }
        return []
    }
}

final class ManualClock: @unchecked Sendable {
    var now: Double = 0
}

func wire(_ body: MessageBody, xid: UInt32 = 1, version: UInt8 = 4) -> [UInt8] {
    try! OpenFlowMessage(version: version, xid: xid, body: body).encode()
}

func decodeAll(_ output: OpenFlowSession.Output) -> [OpenFlowMessage] {
    output.messages.map { try! OpenFlowMessage.decode($0) }
}

/// A session that has completed HELLO with a 1.3 peer.
func establishedSession(agent: RecordingAgent = RecordingAgent(), roles: ControllerRoles = ControllerRoles(),
                        clock: ManualClock = ManualClock()) -> OpenFlowSession {
    let session = OpenFlowSession(agent: agent, roles: roles, echoInterval: 5, echoTimeout: 10, clock: { clock.now })
    _ = session.start()
    _ = session.receive(wire(.hello(Hello(versions: [1, 4]))))
    return session
}

@Suite struct FramerTests {
    @Test func framerReassemblesMessagesFromAnySplitOfTheStream() throws {
        let messages = try allSamples().map { try $0.message.encode() }
        let stream = messages.flatMap { $0 }
        var random = SeededGenerator(state: 7)
        for round in 0..<20 {
            var framer = OpenFlowFramer()
            var received: [[UInt8]] = []
            var offset = 0
            while offset < stream.count {
                let size = round == 0 ? 1 : Int.random(in: 1...300, using: &random)
                let end = min(stream.count, offset + size)
                framer.append(stream[offset..<end])
                offset = end
                while let message = try framer.nextMessage() { received.append(message) }
            }
            #expect(received == messages)
            #expect(framer.bufferedByteCount == 0)
        }
    }

    @Test func framerRejectsLengthsBelowTheHeader() {
        var framer = OpenFlowFramer()
        framer.append([4, 0, 0, 7, 0, 0, 0, 1])
        #expect(throws: FramingError.self) { try framer.nextMessage() }
    }

    @Test func framingErrorClosesTheSession() {
        let session = establishedSession()
        let output = session.receive([4, 2, 0, 4, 0, 0, 0, 1])
        #expect(output.close)
        #expect(session.state == .closed)
    }
}

@Suite struct SessionTests {
    @Test func helloAdvertisesOurVersionsWithABitmap() throws {
        let session = OpenFlowSession(agent: RecordingAgent(), roles: ControllerRoles())
        let hello = try OpenFlowMessage.decode(session.start())
        #expect(hello.version == 4 && hello.body == .hello(Hello(versions: [1, 4])))
    }

    @Test(arguments: [
        (Set<UInt8>([1, 4, 5]), UInt8(6), true),   // bitmap intersection {4}
        (Set<UInt8>([2, 3]), UInt8(3), false),     // no common version
    ])
    func negotiationWithBitmapPicksHighestCommonVersion(peer: Set<UInt8>, headerVersion: UInt8, succeeds: Bool) throws {
        let session = OpenFlowSession(agent: RecordingAgent(), roles: ControllerRoles())
        _ = session.start()
        let output = session.receive(wire(.hello(Hello(versions: peer)), version: headerVersion))
        if succeeds {
            #expect(session.state == .established(version: 4))
            #expect(output.messages.isEmpty && !output.close)
        } else {
            #expect(session.state == .closed && output.close)
            guard case .error(let error) = decodeAll(output).first?.body else { Issue.record("no error sent"); return }
            #expect(error.type == ErrorType.helloFailed.rawValue && error.code == HelloFailedCode.incompatible)
        }
    }

    @Test func negotiationWithoutBitmapUsesTheLowerHeaderVersion() {
        let newer = OpenFlowSession(agent: RecordingAgent(), roles: ControllerRoles())
        _ = newer.receive(wire(.hello(Hello(versions: nil)), version: 6))
        #expect(newer.state == .established(version: 4))
        let oldest = OpenFlowSession(agent: RecordingAgent(), roles: ControllerRoles())
        _ = oldest.receive(wire(.hello(Hello(versions: nil)), version: 1))
        #expect(oldest.state == .established(version: 1))
        let unsupported = OpenFlowSession(agent: RecordingAgent(), roles: ControllerRoles())
        let output = unsupported.receive(wire(.hello(Hello(versions: nil)), version: 2))
        #expect(unsupported.state == .closed && output.close)
    }

    @Test func aMessageBeforeHelloFailsTheConnection() {
        let session = OpenFlowSession(agent: RecordingAgent(), roles: ControllerRoles())
        let output = session.receive(wire(.featuresRequest))
        #expect(output.close && session.state == .closed)
    }

    @Test func echoRequestsAreAnsweredWithTheSameXidAndData() {
        let session = establishedSession()
        let replies = decodeAll(session.receive(wire(.echoRequest([9, 8, 7]), xid: 77)))
        #expect(replies == [OpenFlowMessage(xid: 77, body: .echoReply([9, 8, 7]))])
    }

    @Test func keepAliveSendsEchoAfterSilenceAndClosesWhenThePeerStaysSilent() {
        let clock = ManualClock()
        let session = establishedSession(clock: clock)
        clock.now = 4
        #expect(session.tick().messages.isEmpty)
        clock.now = 6
        let probe = decodeAll(session.tick())
        guard case .echoRequest? = probe.first?.body else { Issue.record("no echo request"); return }
        // The peer answers: the connection stays up and a new probe waits for the next silence.
        _ = session.receive(wire(.echoReply([]), xid: probe[0].xid))
        clock.now = 10
        #expect(session.tick().messages.isEmpty)
        clock.now = 12
        #expect(session.tick().messages.count == 1)
        clock.now = 22.5
        let output = session.tick()
        #expect(output.close && session.state == .closed)
    }

    @Test func aPeerThatNeverSaysHelloIsDisconnected() {
        let clock = ManualClock()
        let session = OpenFlowSession(agent: RecordingAgent(), roles: ControllerRoles(), echoInterval: 5, echoTimeout: 10,
                                      clock: { clock.now })
        _ = session.start()
        clock.now = 9
        #expect(!session.tick().close)
        clock.now = 11
        #expect(session.tick().close && session.state == .closed)
    }

    @Test func repliesAndErrorsPrecedeTheBarrierReplyInRequestOrder() throws {
        let agent = RecordingAgent()
        let session = establishedSession(agent: agent)
        var stream = wire(.flowMod(FlowMod(command: .add, priority: 0xdead)), xid: 10)
        stream += wire(.flowMod(FlowMod(command: .add, priority: 5, match: Match([.inPort(1)]))), xid: 11)
        stream += wire(.featuresRequest, xid: 12)
        stream += wire(.barrierRequest, xid: 13)
        let replies = decodeAll(session.receive(stream))
        #expect(replies.map(\.xid) == [10, 12, 13])
        guard case .error(let error) = replies[0].body else { Issue.record("expected an error first"); return }
        #expect(error.type == ErrorType.flowModFailed.rawValue && error.code == FlowModFailedCode.tableFull)
        #expect(replies[1].body == .featuresReply(agent.features()))
        #expect(replies[2].body == .barrierReply)
        #expect(agent.flowMods.map(\.priority) == [5])
    }

    @Test func badMessagesGetAnErrorEchoingTheirFirst64Bytes() throws {
        let session = establishedSession()
        var bad = wire(.flowMod(FlowMod(command: .add, match: Match([.ethType(0x0800)]),
                                        instructions: [.applyActions((0..<8).map { _ in .decNWTTL })])), xid: 33)
        bad[bad.count - 72 + 1] = 0x63  // the (only) instruction's type becomes 99
        let replies = decodeAll(session.receive(bad))
        #expect(replies.count == 1 && replies[0].xid == 33)
        guard case .error(let error) = replies[0].body else { Issue.record("expected an error"); return }
        #expect(error.type == ErrorType.badInstruction.rawValue && error.code == BadInstructionCode.unknownInstruction)
        #expect(error.data == Array(bad.prefix(64)))
        #expect(session.state == .established(version: 4))
        // Unknown message types and wrong versions are BAD_REQUEST errors.
        var unknown = wire(.barrierRequest, xid: 34)
        unknown[1] = 99
        #expect(decodeAll(session.receive(unknown)).first?.body == .error(ErrorMessage(
            OpenFlowError(.badRequest, BadRequestCode.badType, ""), offending: unknown)))
        let wrongVersion = wire(.barrierRequest, xid: 35, version: 5)
        #expect(decodeAll(session.receive(wrongVersion)).first?.body == .error(ErrorMessage(
            OpenFlowError(.badRequest, BadRequestCode.badVersion, ""), offending: wrongVersion)))
    }

    @Test func masterRequestDemotesTheOtherMasterAndStaleGenerationsAreRefused() throws {
        let roles = ControllerRoles()
        let agent = RecordingAgent()
        let first = establishedSession(agent: agent, roles: roles)
        let second = establishedSession(agent: agent, roles: roles)
        #expect(decodeAll(first.receive(wire(.roleRequest(RoleMessage(role: .master, generationID: 5)))))
            == [OpenFlowMessage(xid: 1, body: .roleReply(RoleMessage(role: .master, generationID: 5)))])
        _ = second.receive(wire(.roleRequest(RoleMessage(role: .master, generationID: 6))))
        #expect(first.role == .slave && second.role == .master)
        // A slave may not modify the switch.
        let refused = decodeAll(first.receive(wire(.flowMod(FlowMod(command: .add)), xid: 4)))
        #expect(refused.first?.body == .error(ErrorMessage(OpenFlowError(.badRequest, BadRequestCode.isSlave, ""),
                                                            offending: wire(.flowMod(FlowMod(command: .add)), xid: 4))))
        #expect(agent.flowMods.isEmpty)
        // Generation 4 is older than 6.
        let stale = decodeAll(first.receive(wire(.roleRequest(RoleMessage(role: .master, generationID: 4)), xid: 5)))
        guard case .error(let error) = stale.first?.body else { Issue.record("expected a stale error"); return }
        #expect(error.type == ErrorType.roleRequestFailed.rawValue && error.code == RoleRequestFailedCode.stale)
        // EQUAL ignores generation ids; NOCHANGE reports the current role.
        _ = first.receive(wire(.roleRequest(RoleMessage(role: .equal, generationID: 0))))
        #expect(decodeAll(first.receive(wire(.roleRequest(RoleMessage(role: .noChange, generationID: 0)))))
            == [OpenFlowMessage(xid: 1, body: .roleReply(RoleMessage(role: .equal, generationID: 6)))])
    }

    @Test func generationIDsCompareWithWrapAround() throws {
        let roles = ControllerRoles()
        let connection = roles.register()
        _ = try roles.request(connection, RoleMessage(role: .master, generationID: UInt64.max - 1))
        // 1 is "after" max-1 in the spec's signed-distance order.
        #expect(try roles.request(connection, RoleMessage(role: .slave, generationID: 1)).generationID == 1)
        #expect(throws: OpenFlowError(.roleRequestFailed, RoleRequestFailedCode.stale, "")) {
            try roles.request(connection, RoleMessage(role: .master, generationID: UInt64.max))
        }
    }

    @Test func largeMultipartRepliesAreSentAsReplyMoreFragments() throws {
        let agent = RecordingAgent()
        agent.flowCount = 3000
        let session = establishedSession(agent: agent)
        let replies = decodeAll(session.receive(wire(.multipartRequest(MultipartRequest(body: .flow(FlowStatsRequest()))), xid: 9)))
        #expect(replies.count > 1)
        var flows = 0
        for (index, reply) in replies.enumerated() {
            guard case .multipartReply(let body) = reply.body, case .flow(let part) = body.body else { Issue.record("not a flow reply"); return }
            #expect(reply.xid == 9)
            #expect((body.flags == MultipartReply.replyMore) == (index < replies.count - 1))
            flows += part.count
        }
        #expect(flows == 3000)
    }

    @Test func requestMoreFragmentsAreReassembledBeforeDispatch() throws {
        let agent = RecordingAgent()
        let session = establishedSession(agent: agent)
        let tableA = TableFeatures(tableID: 0, name: "a", maxEntries: 10, properties: [])
        let tableB = TableFeatures(tableID: 1, name: "b", maxEntries: 20, properties: [])
        let first = session.receive(wire(.multipartRequest(MultipartRequest(flags: MultipartRequest.requestMore,
                                                                             body: .tableFeatures([tableA]))), xid: 3))
        #expect(first.messages.isEmpty)
        let second = decodeAll(session.receive(wire(.multipartRequest(MultipartRequest(body: .tableFeatures([tableB]))), xid: 3)))
        #expect(agent.multipartRequests == [.tableFeatures([tableA, tableB])])
        #expect(second.first?.body == .multipartReply(MultipartReply(body: .tableFeatures([tableA, tableB]))))
    }

    @Test func okoDumpRequestsReachTheAgentAndSlavesCannotLoadPrograms() throws {
        let agent = RecordingAgent()
        let roles = ControllerRoles()
        let session = establishedSession(agent: agent, roles: roles)
        let reply = decodeAll(session.receive(wire(.oko(.dumpMapRequest(programID: 3, mapIDs: [1, 2])), xid: 8)))
        #expect(reply == [OpenFlowMessage(xid: 8, body: .oko(.dumpMapReply(programID: 3, maps: [
            MapDump(mapID: 1, keySize: 4, valueSize: 4, entries: []), MapDump(mapID: 2, keySize: 4, valueSize: 4, entries: []),
        ])))])
        _ = session.receive(wire(.roleRequest(RoleMessage(role: .slave, generationID: 1))))
        let refused = decodeAll(session.receive(wire(.oko(.loadFilterProgram(programID: 3, elf: [1, 2])), xid: 9)))
        guard case .error(let error) = refused.first?.body else { Issue.record("expected an error"); return }
        #expect(error.code == BadRequestCode.isSlave)
        #expect(agent.okoMessages.count == 1)
    }

    @Test func asynchronousEventsRespectTheRole() {
        let roles = ControllerRoles()
        let session = establishedSession(roles: roles)
        let packetIn = MessageBody.packetIn(PacketIn(totalLength: 1, reason: .noMatch, tableID: 0, cookie: 0, match: Match([.inPort(1)]), data: [1]))
        let portStatus = MessageBody.portStatus(PortStatus(reason: .modify, port: port1))
        #expect(session.notify(packetIn) != nil)
        _ = session.receive(wire(.roleRequest(RoleMessage(role: .slave, generationID: 1))))
        #expect(session.notify(packetIn) == nil)
        #expect(session.notify(portStatus) != nil)
    }
}
