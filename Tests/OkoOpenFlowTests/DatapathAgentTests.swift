import Foundation
import OkoDatapath
import Testing
@testable import OkoOpenFlow

/// ovs-ofctl (OpenFlow 1.3) against the DatapathAgent on a real in-memory bridge; every command is checked
/// for its effect on the datapath, not only its exit status.
@Suite(.serialized, .enabled(if: ovsOfctlInstalled)) struct DatapathAgentOvsOfctlTests {
    @Test func showAndDescriptionsReportTheBridge() async throws {
        let sw = try AgentSwitch()
        try await sw.start()
        defer { Task { try? await sw.stop() } }

        let (showStatus, show) = try sw.ofctl("show")
        #expect(showStatus == 0, "\(show)")
        #expect(show.contains("dpid:0000000000abcdef"), "\(show)")
        #expect(show.contains("n_tables:16"), "\(show)")
        for name in ["1(p1)", "2(p2)", "3(p3)"] { #expect(show.contains(name), "\(show)") }

        let (descStatus, desc) = try sw.ofctl("dump-desc")
        #expect(descStatus == 0 && desc.contains("Manufacturer: Oko") && desc.contains("DP Description: br-of"), "\(desc)")

        let (portsDescStatus, portsDesc) = try sw.ofctl("dump-ports-desc")
        #expect(portsDescStatus == 0 && portsDesc.contains("3(p3)") && portsDesc.contains("LIVE"), "\(portsDesc)")

        let (featuresStatus, features) = try sw.ofctl("dump-table-features")
        #expect(featuresStatus == 0, "\(features)")
        #expect(features.contains("table 15"), "\(features)")
        #expect(features.contains("ip_{src,dst}") && features.contains("next tables: 1-15"), "\(features)")

        let (probeStatus, probe) = try sw.ofctl("probe")
        #expect(probeStatus == 0, "\(probe)")

        // Traffic through a rule shows up in dump-ports and dump-tables with the datapath's own counts.
        let (addStatus, add) = try sw.ofctl("add-flow", "in_port=1,actions=output:2")
        #expect(addStatus == 0, "add-flow: \(add)")
        let frame = Frames.udp(dport: 53)
        for _ in 0..<3 { #expect(sw.send(frame, on: 1, settle: 0.05)[2]?.count == 1) }
        let (portsStatus, ports) = try sw.ofctl("dump-ports", "1")
        #expect(portsStatus == 0, "\(ports)")
        #expect(ports.contains("rx pkts=3, bytes=\(3 * frame.count)"), "\(ports)")
        let (port2Status, port2) = try sw.ofctl("dump-ports", "2")
        #expect(port2Status == 0 && port2.contains("tx pkts=3, bytes=\(3 * frame.count)"), "\(port2)")
        let (tablesStatus, tables) = try sw.ofctl("dump-tables")
        #expect(tablesStatus == 0, "\(tables)")
        #expect(tables.contains("active=1, lookup=3, matched=3"), "\(tables)")
    }

    @Test func addModifyAndDeleteFlowsChangeForwarding() async throws {
        let sw = try AgentSwitch()
        try await sw.start()
        defer { Task { try? await sw.stop() } }
        let frame = Frames.udp(dport: 53)

        #expect(try sw.ofctl("add-flow", "priority=10,in_port=1,udp,tp_dst=53,actions=output:2").0 == 0)
        #expect(try sw.ofctl("add-flow", "cookie=0x55,priority=5,in_port=1,actions=output:3").0 == 0)
        #expect(sw.send(frame, on: 1).keys.sorted() == [2])
        #expect(sw.send(Frames.udp(dport: 54), on: 1).keys.sorted() == [3])

        // mod-flows (non-strict) rewrites both in_port=1 rules; counters stay.
        #expect(try sw.ofctl("mod-flows", "in_port=1,actions=output:3,output:2").0 == 0)
        #expect(sw.send(frame, on: 1).keys.sorted() == [2, 3])
        let entries = sw.bridge.flows()
        #expect(entries.count == 2)
        for entry in entries {
            let outputs: [UInt32] = (entry.instructions.applyActions ?? []).compactMap {
                if case .output(let port, _) = $0 { port } else { nil }
            }
            #expect(outputs == [3, 2])
        }
        #expect(entries.first { $0.priority == 10 }?.packets == 2)

        let (dumpStatus, dump) = try sw.ofctl("dump-flows", options: ["--no-names"])
        #expect(dumpStatus == 0)
        #expect(dump.contains("cookie=0x55") && dump.contains("n_packets=2") && dump.contains("priority=10,udp,in_port=1,tp_dst=53"), "\(dump)")
        let (matchStatus, matched) = try sw.ofctl("dump-flows", "udp", options: ["--no-names"])
        #expect(matchStatus == 0 && matched.contains("tp_dst=53") && !matched.contains("cookie=0x55"), "\(matched)")

        // A strict delete needs the exact priority and match.
        #expect(try sw.ofctl("del-flows", "in_port=1", options: ["--strict"]).0 == 0)
        #expect(sw.bridge.flowCount() == 2)
        #expect(try sw.ofctl("del-flows", "priority=5,in_port=1", options: ["--strict"]).0 == 0)
        #expect(sw.bridge.flows().map(\.priority) == [10])
        #expect(sw.send(Frames.udp(dport: 54), on: 1).isEmpty)

        // del-flows with a cookie filter leaves other cookies alone; without a match it empties the tables.
        #expect(try sw.ofctl("add-flow", "cookie=0x7,priority=3,in_port=2,actions=output:1").0 == 0)
        #expect(try sw.ofctl("del-flows", "cookie=0x7/-1").0 == 0)
        #expect(sw.bridge.flows().map(\.priority) == [10])
        #expect(try sw.ofctl("del-flows").0 == 0)
        #expect(sw.bridge.flowCount() == 0)
        #expect(sw.send(frame, on: 1).isEmpty)
    }

    @Test func addFlowsFromAFileOfTenThousandRules() async throws {
        // A running PMD passes quiescent points, so the bridge can free the 10,000 replaced snapshots.
        let sw = try AgentSwitch(threadedPMD: true)
        try await sw.start()
        defer { Task { try? await sw.stop() } }
        // Spread over the 16 tables: the bridge republishes a whole table per change, so one table of 10,000
        // rules costs O(n^2) to fill (see the report); the agent and the wire path are the same either way.
        let count = 10_000
        var text = ""
        for i in 0..<count {
            text += "table=\(i % 16),priority=100,udp,nw_dst=10.1.\(i / 256).\(i % 256),actions=output:\(i / 16 % 2 + 2)\n"
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("oko-flows-\(getpid()).txt")
        try text.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }

        let started = Date()
        let (status, output) = try runOvsOfctl(["--timeout=120", "-O", "OpenFlow13", "add-flows", sw.target, file.path])
        #expect(status == 0, "\(output)")
        print("add-flows of \(count) rules took \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        #expect(sw.bridge.flowCount() == count)

        let (aggStatus, aggregate) = try sw.ofctl("dump-aggregate")
        #expect(aggStatus == 0 && aggregate.contains("flow_count=\(count)"), "\(aggregate)")
        #expect(sw.bridge.flowCount(table: 0) == count / 16)
        // Table 0 holds rules 0, 16, 32, ...: rule 4096 (10.1.16.0) outputs to port 2, rule 4112 (10.1.16.16)
        // to port 3, and 10.1.16.1 lives in table 1, which packets never reach.
        #expect(sw.send(Frames.udp(dst: [10, 1, 16, 0], dport: 9), on: 1).keys.sorted() == [2])
        #expect(sw.send(Frames.udp(dst: [10, 1, 16, 16], dport: 9), on: 1).keys.sorted() == [3])
        #expect(sw.send(Frames.udp(dst: [10, 1, 16, 1], dport: 9), on: 1).isEmpty)
        let (oneStatus, one) = try sw.ofctl("dump-aggregate", "udp,nw_dst=10.1.16.16")
        #expect(oneStatus == 0 && one.contains("packet_count=1") && one.contains("flow_count=1"), "\(one)")
    }

    @Test func packetOutSendsTheFrameThroughTheDatapath() async throws {
        let sw = try AgentSwitch()
        try await sw.start()
        defer { Task { try? await sw.stop() } }
        let frame = Frames.udp(dport: 7)

        let (status, output) = try sw.ofctl("packet-out", "CONTROLLER", "output:2", Frames.hex(frame))
        #expect(status == 0, "\(output)")
        #expect(sw.transmitted(on: 2) == [frame])

        // in_port=1 with FLOOD: everywhere but the input port.
        #expect(try sw.ofctl("packet-out", "1", "FLOOD", Frames.hex(frame)).0 == 0)
        #expect(sw.transmitted(on: 2) == [frame])
        #expect(sw.transmitted(on: 3) == [frame])
        #expect(sw.transmitted(on: 1, timeout: 0.1).isEmpty)

        // set_field then output: the datapath rewrites the destination address.
        #expect(try sw.ofctl("packet-out", "CONTROLLER", "set_field:10.9.9.9->ip_dst,output:3", Frames.hex(frame)).0 == 0)
        let rewritten = sw.transmitted(on: 3)
        #expect(rewritten.count == 1 && Array(rewritten.first?[30..<34] ?? []) == [10, 9, 9, 9])
    }

    @Test func groupsFromOvsOfctlForwardToEveryBucket() async throws {
        let sw = try AgentSwitch()
        try await sw.start()
        defer { Task { try? await sw.stop() } }
        let (groupStatus, groupOutput) = try sw.ofctl("add-group", "group_id=7,type=all,bucket=output:2,bucket=output:3")
        #expect(groupStatus == 0, "\(groupOutput)")
        #expect(sw.bridge.groups()[7]?.buckets.count == 2)
        #expect(try sw.ofctl("add-flow", "in_port=1,actions=group:7").0 == 0)
        #expect(sw.send(Frames.udp(dport: 1), on: 1).keys.sorted() == [2, 3])
        let (dumpStatus, dump) = try sw.ofctl("dump-groups")
        #expect(dumpStatus == 0 && dump.contains("group_id=7,type=all"), "\(dump)")
        // Deleting the group deletes the flow that used it.
        #expect(try sw.ofctl("del-groups", "group_id=7").0 == 0)
        #expect(sw.bridge.groups().isEmpty && sw.bridge.flowCount() == 0)
        #expect(sw.send(Frames.udp(dport: 1), on: 1).isEmpty)
    }

    @Test func badRequestsComeBackAsOpenFlowErrors() async throws {
        let sw = try AgentSwitch()
        try await sw.start()
        defer { Task { try? await sw.stop() } }

        let (_, badPort) = try sw.ofctl("add-flow", "in_port=1,actions=output:9")
        #expect(badPort.contains("OFPBAC_BAD_OUT_PORT"), "\(badPort)")
        let (_, badTable) = try sw.ofctl("add-flow", "table=40,actions=drop")
        #expect(badTable.contains("OFPFMFC_BAD_TABLE_ID"), "\(badTable)")
        #expect(try sw.ofctl("add-flow", "priority=7,udp,actions=output:2").0 == 0)
        let (_, overlap) = try sw.ofctl("add-flow", "check_overlap,priority=7,udp,tp_dst=9,actions=output:3")
        #expect(overlap.contains("OFPFMFC_OVERLAP"), "\(overlap)")
        #expect(sw.bridge.flowCount() == 1)
    }
}

/// The agent called directly with typed requests (no sockets), checking the datapath's state.
@Suite struct DatapathAgentTranslationTests {
    func makeAgent() throws -> (DatapathAgent, Bridge) {
        let buffers = InMemoryPacketBuffers()
        let bridge = Bridge(name: "b", buffers: buffers, tableCount: 4)
        for i in 1...3 { try bridge.addPort(InMemoryPort(name: "p\(i)", buffers: buffers), number: UInt32(i)) }
        return (DatapathAgent(bridge: bridge, datapathID: 1, maxEntriesPerTable: 2), bridge)
    }

    func add(_ agent: DatapathAgent, priority: UInt16, _ fields: [MatchField], _ actions: [Action],
             table: UInt8 = 0, flags: FlowModFlags = []) throws(OpenFlowError) {
        try agent.apply(FlowMod(tableID: table, command: .add, priority: priority, flags: flags, match: Match(fields),
                                instructions: [.applyActions(actions)]))
    }

    @Test func matchFieldsRoundTripThroughTheDatapath() throws {
        let (agent, bridge) = try makeAgent()
        let fields: [MatchField] = [
            .inPort(2), .ethDst(EthernetAddress([2, 0, 0, 0, 0, 0]), mask: EthernetAddress([0xff, 0xff, 0xff, 0, 0, 0])),
            .ethType(0x86dd), .vlanVID(0x1005), .ipProto(17),
            .ipv6Src(IPv6Address([0x20, 1, 0xd, 0xb8] + Array(repeating: 0, count: 11) + [1])), .udpDst(4789),
        ]
        try add(agent, priority: 9, fields, [.setField(.vlanVID(0x1007)), .output(port: 3)])
        let entry = try #require(bridge.flows().first)
        #expect(entry.match.key.value(.vlanVID) == 0x1005)
        #expect(entry.match.key.value(.udpDst) == 4789)
        #expect(Set(agent.openFlowMatch(entry.match).fields) == Set(fields))
        let reply = try agent.multipart(.flow(FlowStatsRequest()))
        guard case .flow(let stats) = reply else { Issue.record("not a flow reply"); return }
        #expect(stats.first?.instructions == [.applyActions([.setField(.vlanVID(0x1007)), .output(port: 3)])])
    }

    @Test func datapathErrorsMapToOpenFlowErrorCodes() throws {
        let (agent, _) = try makeAgent()
        #expect(throws: OpenFlowError(.badAction, BadActionCode.badOutPort, "")) {
            try add(agent, priority: 1, [], [.output(port: 7)])
        }
        #expect(throws: OpenFlowError(.badAction, BadActionCode.badOutGroup, "")) {
            try add(agent, priority: 1, [], [.group(7)])
        }
        #expect(throws: OpenFlowError(.badMatch, BadMatchCode.badPrereq, "")) {
            try add(agent, priority: 1, [.tcpDst(80)], [.output(port: 2)])
        }
        #expect(throws: OpenFlowError(.badInstruction, BadInstructionCode.badTableID, "")) {
            try agent.apply(FlowMod(tableID: 2, command: .add, instructions: [.gotoTable(1)]))
        }
        #expect(throws: OpenFlowError(.badAction, BadActionCode.badType, "")) {
            try add(agent, priority: 1, [], [.pushMPLS(ethertype: 0x8847)])
        }
        try add(agent, priority: 1, [.inPort(1)], [.output(port: 2)])
        try add(agent, priority: 1, [.inPort(2)], [.output(port: 1)])
        #expect(throws: OpenFlowError(.flowModFailed, FlowModFailedCode.tableFull, "")) {
            try add(agent, priority: 1, [.inPort(3)], [.output(port: 1)])
        }
        // Replacing an existing rule in a full table is fine.
        try add(agent, priority: 1, [.inPort(2)], [.output(port: 3)])
        #expect(throws: OpenFlowError(.badRequest, BadRequestCode.badExpType, "")) {
            _ = try agent.handle(.dumpMapRequest(programID: 1, mapIDs: [0]))
        }
    }

    @Test func deleteBySendFlowRemovedRuleEmitsFlowRemoved() throws {
        let (agent, bridge) = try makeAgent()
        let events = EventRecorder()
        agent.setEventSink { events.record($0) }
        try agent.apply(FlowMod(cookie: 0x99, command: .add, priority: 4, flags: [.sendFlowRemoved],
                                match: Match([.inPort(1)]), instructions: [.applyActions([.output(port: 2)])]))
        try add(agent, priority: 5, [.inPort(1), .ethType(0x0800)], [.output(port: 3)])
        try agent.apply(FlowMod(tableID: 0xff, command: .delete, outPort: 2))
        #expect(bridge.flows().map(\.priority) == [5])
        let removed = events.all.compactMap { if case .flowRemoved(let r) = $0 { r } else { nil } }
        #expect(removed.count == 1 && removed.first?.cookie == 0x99 && removed.first?.reason == .delete)
        #expect(removed.first?.match == Match([.inPort(1)]))
    }

    @Test func hardTimeoutExpiryIsReportedByThePoll() throws {
        let (agent, bridge) = try makeAgent()
        let events = EventRecorder()
        agent.setEventSink { events.record($0) }
        try agent.apply(FlowMod(command: .add, hardTimeout: 1, priority: 4, flags: [.sendFlowRemoved],
                                match: Match([.inPort(1)]), instructions: [.applyActions([.output(port: 2)])]))
        #expect(agent.pollEvents() == 0)
        usleep(1_100_000)
        #expect(agent.pollEvents() == 1)
        #expect(bridge.flowCount() == 0)
        let removed = events.all.compactMap { if case .flowRemoved(let r) = $0 { r } else { nil } }
        #expect(removed.first?.reason == .hardTimeout && removed.first?.hardTimeout == 1)
    }

    @Test func groupModInstallsGroupsAndDeletingOneRemovesItsFlows() throws {
        let (agent, bridge) = try makeAgent()
        try agent.apply(GroupMod(command: .add, type: .all, groupID: 5,
                                 buckets: [Bucket(actions: [.output(port: 2)]), Bucket(actions: [.output(port: 3)])]))
        #expect(throws: OpenFlowError(.groupModFailed, GroupModFailedCode.groupExists, "")) {
            try agent.apply(GroupMod(command: .add, type: .all, groupID: 5, buckets: []))
        }
        try add(agent, priority: 1, [.inPort(1)], [.group(5)])
        guard case .groupDesc(let groups) = try agent.multipart(.groupDesc) else { Issue.record("no group desc"); return }
        #expect(groups.map(\.groupID) == [5] && groups.first?.buckets.count == 2)
        try agent.apply(GroupMod(command: .delete, type: .all, groupID: OpenFlowGroup.all, buckets: []))
        #expect(bridge.groups().isEmpty && bridge.flowCount() == 0)
    }
}

final class EventRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [MessageBody] = []
    func record(_ event: MessageBody) { lock.withLock { events.append(event) } }
    var all: [MessageBody] { lock.withLock { events } }
}

/// Asynchronous messages reach a controller connected over TCP.
@Suite(.serialized) struct DatapathAgentControllerTests {
    @Test func tableMissToControllerArrivesAsPacketIn() async throws {
        let sw = try AgentSwitch(threadedPMD: true)
        try await sw.start()
        defer { Task { try? await sw.stop() } }
        let controller = try TestController(port: sw.tcpPort)
        try controller.sync()
        try controller.send(.flowMod(FlowMod(cookie: 0xc0ffee, command: .add, priority: 0,
                                             instructions: [.applyActions([.output(port: OpenFlowPort.controller)])])))
        try controller.sync()

        let frame = Frames.udp(dport: 99, payloadLength: 200)
        sw.ports[1].inject(frame)
        let message = try controller.receive { if case .packetIn = $0 { true } else { false } }
        guard case .packetIn(let packetIn) = message.body else { return }
        #expect(packetIn.reason == .noMatch)
        #expect(packetIn.bufferID == openFlowNoBuffer)
        #expect(packetIn.cookie == 0xc0ffee && packetIn.tableID == 0)
        #expect(packetIn.match.fields.contains(.inPort(2)))
        #expect(Int(packetIn.totalLength) == frame.count)
        #expect(packetIn.data == Array(frame.prefix(128)))  // default miss_send_len

        // An explicit controller action with max_len reports reason ACTION and cuts at max_len; the
        // controller answers with a packet-out that the datapath sends on.
        try controller.send(.flowMod(FlowMod(command: .add, priority: 10, match: Match([.inPort(1)]),
                                             instructions: [.applyActions([.output(port: OpenFlowPort.controller, maxLength: 64)])])))
        try controller.sync()
        sw.ports[0].inject(frame)
        let second = try controller.receive { if case .packetIn = $0 { true } else { false } }
        guard case .packetIn(let actionIn) = second.body else { return }
        #expect(actionIn.reason == .action && actionIn.data == Array(frame.prefix(64)))
        try controller.send(.packetOut(PacketOut(inPort: 1, actions: [.output(port: 3)], data: frame)))
        #expect(sw.transmitted(on: 3) == [frame])
    }

    @Test func addedAndRemovedPortsAreAnnouncedAsPortStatus() async throws {
        let sw = try AgentSwitch()
        try await sw.start()
        defer { Task { try? await sw.stop() } }
        let controller = try TestController(port: sw.tcpPort)
        try controller.sync()
        let number = try sw.agent.addPort(InMemoryPort(name: "p9", buffers: sw.buffers))
        #expect(number == 4)
        let added = try controller.receive { if case .portStatus = $0 { true } else { false } }
        guard case .portStatus(let status) = added.body else { return }
        #expect(status.reason == .add && status.port.portNumber == 4 && status.port.name == "p9")
        try sw.agent.removePort(4)
        let removed = try controller.receive { if case .portStatus = $0 { true } else { false } }
        guard case .portStatus(let gone) = removed.body else { return }
        #expect(gone.reason == .delete && gone.port.portNumber == 4)
        #expect(!sw.bridge.ports().contains { $0.number == 4 })
    }

    @Test func deletedFlowWithSendFlowRemovedNotifiesTheController() async throws {
        let sw = try AgentSwitch()
        try await sw.start()
        defer { Task { try? await sw.stop() } }
        let controller = try TestController(port: sw.tcpPort)
        try controller.sync()
        try controller.send(.flowMod(FlowMod(cookie: 0x42, command: .add, priority: 3, flags: [.sendFlowRemoved],
                                             match: Match([.inPort(1)]), instructions: [.applyActions([.output(port: 2)])])))
        try controller.sync()
        #expect(sw.send(Frames.udp(dport: 5), on: 1)[2]?.count == 1)
        try controller.send(.flowMod(FlowMod(tableID: 0xff, command: .delete)))
        let message = try controller.receive { if case .flowRemoved = $0 { true } else { false } }
        guard case .flowRemoved(let removed) = message.body else { return }
        #expect(removed.cookie == 0x42 && removed.reason == .delete && removed.packetCount == 1)
    }
}
