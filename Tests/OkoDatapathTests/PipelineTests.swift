import Synchronization
import Testing
@testable import OkoDatapath

/// A switch with in-memory ports 1...n and one PMD driven synchronously by the test.
final class TestSwitch {
    let buffers = InMemoryPacketBuffers()
    let bridge: Bridge
    var ports: [UInt32: InMemoryPort] = [:]
    let pmd: PMDThread

    init(portCount: Int = 3) {
        bridge = Bridge(name: "br0", buffers: buffers)
        for i in 1...portCount {
            let p = InMemoryPort(name: "p\(i)", buffers: buffers)
            let n = try! bridge.addPort(p)
            ports[n] = p
        }
        pmd = PMDThread(bridges: [bridge])
    }

    /// Sends frames in on `port`, runs the pipeline, returns what each port transmitted.
    func send(_ frames: [[UInt8]], on port: UInt32) -> [UInt32: [[UInt8]]] {
        bridge.publishPendingChanges()  // the bridge coalesces publications; the test wants them now
        for f in frames { ports[port]!.inject(f) }
        while pmd.pollOnce() > 0 {}
        var out: [UInt32: [[UInt8]]] = [:]
        for (n, p) in ports { out[n] = p.takeTransmitted() }
        return out
    }
}

func match(_ pairs: (FlowField, UInt64)...) -> FlowMatch {
    var m = FlowMatch()
    for (f, v) in pairs { m.set(f, v) }
    return m
}

let tcpPacket = PacketBuilder.tcp4(src: "10.0.0.1", dst: "10.0.0.2", sport: 1000, dport: 80)

@Suite struct PipelineTests {
    @Test func outputActionForwardsTheExactFrame() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: match((.inPort, 1)), instructions: .apply([.output(2)]))
        let out = sw.send([tcpPacket], on: 1)
        #expect(out[2] == [tcpPacket])
        #expect(out[1]!.isEmpty && out[3]!.isEmpty)
        #expect(sw.buffers.outstanding == 0)
    }

    @Test func tableMissDropsAndFreesBuffers() throws {
        let sw = TestSwitch()
        let out = sw.send([tcpPacket, tcpPacket], on: 1)
        #expect(out.values.allSatisfy { $0.isEmpty })
        #expect(sw.buffers.outstanding == 0)
        #expect(sw.pmd.statistics.misses == 2 || sw.pmd.statistics.megaflowHits + sw.pmd.statistics.emcHits == 1)
    }

    @Test func highestPriorityMaskedRuleWins() throws {
        let sw = TestSwitch()
        var wide = match((.ethType, 0x0800))
        wide.set(.ipv4Dst, 0x0A00_0000, mask: 0xFFFF_FF00)
        try sw.bridge.addFlow(priority: 10, match: wide, instructions: .apply([.output(2)]))
        try sw.bridge.addFlow(priority: 20, match: match((.ethType, 0x0800), (.ipv4Dst, 0x0A00_0002)), instructions: .apply([.output(3)]))
        let other = PacketBuilder.tcp4(src: "10.0.0.1", dst: "10.0.0.9", sport: 1, dport: 2)
        let out = sw.send([tcpPacket, other], on: 1)
        #expect(out[3] == [tcpPacket])
        #expect(out[2] == [other])
    }

    @Test func prerequisitesAreEnforced() {
        let sw = TestSwitch()
        #expect(throws: FlowError.missingPrerequisite(field: .tcpDst)) {
            try sw.bridge.addFlow(priority: 1, match: match((.tcpDst, 80)), instructions: .apply([]))
        }
        #expect(throws: FlowError.unknownPort(9)) {
            try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([.output(9)]))
        }
    }

    @Test func gotoTableWithMetadataAndActionSet() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(table: 0, priority: 1, match: FlowMatch(),
                              instructions: FlowInstructions(writeActions: [.output(3)], writeMetadata: (0xAB, 0xFF), gotoTable: 1))
        // Table 1 overrides the action set's output for metadata 0xAB.
        try sw.bridge.addFlow(table: 1, priority: 5, match: match((.metadata, 0xAB)),
                              instructions: FlowInstructions(writeActions: [.output(2)]))
        var out = sw.send([tcpPacket], on: 1)
        #expect(out[2] == [tcpPacket] && out[3]!.isEmpty)
        // clear-actions empties the set: drop.
        try sw.bridge.modifyFlows(table: 1, match: FlowMatch(), instructions: FlowInstructions(clearActions: true))
        out = sw.send([tcpPacket], on: 1)
        #expect(out.values.allSatisfy { $0.isEmpty })
    }

    @Test func setFieldRewritesAddressesPortsAndChecksums() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([
            .setField(.ipv4Src, 0xC0A8_0101), .setField(.tcpDst, 8080), .setField(.ethDst, 0x0200_0000_00FF), .decTTL,
            .output(2),
        ]))
        let out = sw.send([tcpPacket], on: 1)
        let expected = PacketBuilder.tcp4(src: "192.168.1.1", dst: "10.0.0.2", sport: 1000, dport: 8080, ttl: 63,
                                          dstMAC: [2, 0, 0, 0, 0, 0xFF])
        #expect(out[2] == [expected])
        #expect(PacketBuilder.checksumsValid(out[2]![0]))
    }

    @Test func udpSetFieldKeepsChecksumValid() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([
            .setField(.ipv4Dst, 0x0101_0101), .setField(.udpSrc, 4444), .output(2),
        ]))
        let pkt = PacketBuilder.udp4(src: "10.0.0.1", dst: "10.0.0.2", sport: 53, dport: 99)
        let out = sw.send([pkt], on: 1)
        #expect(out[2] == [PacketBuilder.udp4(src: "10.0.0.1", dst: "1.1.1.1", sport: 4444, dport: 99)])
    }

    @Test func pushAndPopVLAN() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: match((.inPort, 1)), instructions: .apply([
            .pushVLAN(), .setField(.vlanVID, 42), .setField(.vlanPCP, 5), .output(2),
        ]))
        try sw.bridge.addFlow(priority: 1, match: match((.inPort, 2), (.vlanVID, 0x1000 | 42)),
                              instructions: .apply([.popVLAN, .output(3)]))
        let tagged = PacketBuilder.tcp4(src: "10.0.0.1", dst: "10.0.0.2", sport: 1000, dport: 80, vlan: 42, pcp: 5)
        var out = sw.send([tcpPacket], on: 1)
        #expect(out[2] == [tagged])
        out = sw.send([tagged], on: 2)
        #expect(out[3] == [tcpPacket])
    }

    @Test func decTTLDropsExpiringPackets() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([.decTTL, .output(2)]))
        let out = sw.send([PacketBuilder.tcp4(src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2, ttl: 1)], on: 1)
        #expect(out[2]!.isEmpty)
        #expect(sw.pmd.statistics.invalidTTLDrops == 1)
        #expect(sw.buffers.outstanding == 0)
    }

    @Test func floodAllAndInPort() throws {
        let sw = TestSwitch(portCount: 4)
        try sw.bridge.addFlow(priority: 1, match: match((.inPort, 1)), instructions: .apply([.output(OFPort.flood)]))
        try sw.bridge.addFlow(priority: 1, match: match((.inPort, 2)), instructions: .apply([.output(OFPort.inPort)]))
        var out = sw.send([tcpPacket], on: 1)
        #expect(out[1]!.isEmpty && out[2] == [tcpPacket] && out[3] == [tcpPacket] && out[4] == [tcpPacket])
        out = sw.send([tcpPacket], on: 2)
        #expect(out[2] == [tcpPacket] && out[1]!.isEmpty)
        #expect(sw.buffers.outstanding == 0)
    }

    @Test func groupsAllSelectIndirect() throws {
        let sw = TestSwitch(portCount: 4)
        try sw.bridge.setGroup(1, GroupDescription(type: .all, buckets: [
            GroupBucket(actions: [.output(2)]), GroupBucket(actions: [.setField(.tcpDst, 22), .output(3)]),
        ]))
        try sw.bridge.setGroup(2, GroupDescription(type: .select, buckets: [
            GroupBucket(actions: [.output(2)]), GroupBucket(actions: [.output(3)]),
        ]))
        try sw.bridge.setGroup(3, GroupDescription(type: .indirect, buckets: [GroupBucket(actions: [.output(4)])]))
        try sw.bridge.addFlow(priority: 1, match: match((.inPort, 1)), instructions: .apply([.group(1)]))
        var out = sw.send([tcpPacket], on: 1)
        #expect(out[2] == [tcpPacket])
        #expect(out[3] == [PacketBuilder.tcp4(src: "10.0.0.1", dst: "10.0.0.2", sport: 1000, dport: 22)])

        try sw.bridge.modifyFlows(match: FlowMatch(), instructions: .apply([.group(2)]))
        var flows: [[UInt8]] = []
        for s in UInt16(1)...UInt16(64) { flows.append(PacketBuilder.tcp4(src: "10.0.0.1", dst: "10.0.0.2", sport: s, dport: 80)) }
        out = sw.send(flows, on: 1)
        #expect(out[2]!.count + out[3]!.count == 64)
        #expect(out[2]!.count > 0 && out[3]!.count > 0)
        // The same flow always picks the same bucket.
        let again = sw.send(Array(repeating: flows[0], count: 5), on: 1)
        #expect(again[2]!.count == 5 || again[3]!.count == 5)

        try sw.bridge.modifyFlows(match: FlowMatch(), instructions: .apply([.group(3)]))
        out = sw.send([tcpPacket], on: 1)
        #expect(out[4] == [tcpPacket])
        #expect(throws: FlowError.groupInUse(3)) { try sw.bridge.deleteGroup(3) }
        #expect(sw.buffers.outstanding == 0)
    }

    @Test func normalLearnsMACs() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 0, match: FlowMatch(), instructions: .apply([.output(OFPort.normal)]))
        let aToB = tcpPacket
        let bToA = PacketBuilder.tcp4(src: "10.0.0.2", dst: "10.0.0.1", sport: 80, dport: 1000,
                                      dstMAC: PacketBuilder.macA, srcMAC: PacketBuilder.macB)
        var out = sw.send([aToB], on: 1)  // B unknown: flooded
        #expect(out[2] == [aToB] && out[3] == [aToB])
        out = sw.send([bToA], on: 2)  // A learned on port 1
        #expect(out[1] == [bToA] && out[3]!.isEmpty)
        out = sw.send([aToB], on: 1)  // B learned on port 2
        #expect(out[2] == [aToB] && out[3]!.isEmpty)
    }

    @Test func controllerPacketInAndPacketOut() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 0, match: FlowMatch(), instructions: .apply([.output(OFPort.controller, maxLength: 20)]),
                              cookie: 7)
        _ = sw.send([tcpPacket], on: 3)
        let ins = sw.bridge.takePacketIns()
        #expect(ins.count == 1)
        #expect(ins.first?.bytes == Array(tcpPacket.prefix(20)))
        #expect(ins.first?.totalLength == tcpPacket.count && ins.first?.inPort == 3 && ins.first?.cookie == 7)
        #expect(ins.first?.reason == .noMatch)  // a table-miss rule
        try sw.bridge.addFlow(priority: 5, match: match((.inPort, 3)), instructions: .apply([.output(OFPort.controller)]))
        _ = sw.send([tcpPacket], on: 3)
        #expect(sw.bridge.takePacketIns().map(\.reason) == [.action])
        try sw.bridge.packetOut(bytes: tcpPacket, actions: [.output(2)])
        let out = sw.send([], on: 1)
        #expect(out[2] == [tcpPacket])
    }

    @Test func ruleAndPortCountersAndDeletion() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 9, match: match((.inPort, 1)), instructions: .apply([.output(2)]), cookie: 0x55)
        _ = sw.send(Array(repeating: tcpPacket, count: 5), on: 1)
        _ = sw.send(Array(repeating: tcpPacket, count: 3), on: 1)
        let f = sw.bridge.flows(table: 0)
        #expect(f.count == 1)
        #expect(f.first?.packets == 8 && f.first?.bytes == UInt64(8 * tcpPacket.count))
        let ports = Dictionary(uniqueKeysWithValues: sw.bridge.ports().map { ($0.number, $0) })
        #expect(ports[1]?.rxPackets == 8 && ports[2]?.txPackets == 8 && ports[2]?.txBytes == UInt64(8 * tcpPacket.count))
        let st = sw.pmd.statistics
        // Which cache serves the hits is an implementation choice (one mask: the megaflow table, no EMC).
        #expect(st.packets == 8 && st.misses == 1 && st.emcHits + st.megaflowHits == 7)
        let removed = sw.bridge.deleteFlows(match: FlowMatch(), cookie: 0x55, cookieMask: ~0)
        #expect(removed.count == 1 && removed.first?.entry.packets == 8)
        let out = sw.send([tcpPacket], on: 1)
        #expect(out[2]!.isEmpty)
    }

    @Test func hardTimeoutExpiresRules() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([.output(2)]), hardTimeout: 5)
        #expect(sw.bridge.expireFlows().isEmpty)
        let later = monotonicNanoseconds() + 6_000_000_000
        let gone = sw.bridge.expireFlows(now: later)
        #expect(gone.count == 1 && gone.first?.reason == .hardTimeout)
        #expect(sw.bridge.flows().isEmpty)
    }

    @Test func cacheIsInvalidatedByRuleChanges() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([.output(2)]))
        #expect(sw.send([tcpPacket], on: 1)[2] == [tcpPacket])
        try sw.bridge.addFlow(priority: 2, match: match((.ethType, 0x0800)), instructions: .apply([.output(3)]))
        #expect(sw.send([tcpPacket], on: 1)[3] == [tcpPacket])
    }

    @Test func malformedPacketsAreCounted() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([.output(2)]))
        let out = sw.send([Array(tcpPacket.prefix(20)), [1, 2, 3]], on: 1)
        #expect(out[2]!.count == 2)
        #expect(sw.pmd.statistics.malformed == 2)
        #expect(sw.bridge.ports().first { $0.number == 1 }?.rxErrors == 2)
    }
}

@Suite struct MorePipelineTests {
    @Test func outputNeverReturnsToIngressPortWithoutInPort() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([.output(1), .output(2)]))
        let out = sw.send([tcpPacket], on: 1)
        #expect(out[1]!.isEmpty && out[2] == [tcpPacket])
        #expect(sw.buffers.outstanding == 0)
    }

    @Test func dscpAndEcnRewriteKeepsIPv4ChecksumValid() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([
            .setField(.ipDSCP, 46), .setField(.ipECN, 1), .setField(.ipTTL, 9), .output(2),
        ]))
        let out = try #require(sw.send([tcpPacket], on: 1)[2]?.first)
        #expect(out[15] == 46 << 2 | 1)
        #expect(out[22] == 9)
        #expect(PacketBuilder.checksumsValid(out))
    }

    @Test func writeActionsAreExecutedInOpenFlowOrder() throws {
        let sw = TestSwitch()
        // Written in reverse order; the action set still sets the field and decrements TTL before output.
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: FlowInstructions(
            writeActions: [.output(2), .setField(.tcpSrc, 7), .decTTL]))
        let out = sw.send([tcpPacket], on: 1)
        #expect(out[2] == [PacketBuilder.tcp4(src: "10.0.0.1", dst: "10.0.0.2", sport: 7, dport: 80, ttl: 63)])
    }

    @Test func laterTablesMatchOnFieldsSetByEarlierApplyActions() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(table: 0, priority: 1, match: FlowMatch(), instructions: FlowInstructions(
            applyActions: [.setField(.ipv4Dst, 0x0A00_0063)], gotoTable: 3))
        try sw.bridge.addFlow(table: 3, priority: 1, match: match((.ethType, 0x0800), (.ipv4Dst, 0x0A00_0063)),
                              instructions: .apply([.output(3)]))
        let out = sw.send([tcpPacket, tcpPacket], on: 1)
        #expect(out[3] == Array(repeating: PacketBuilder.tcp4(src: "10.0.0.1", dst: "10.0.0.99", sport: 1000, dport: 80), count: 2))
    }
}
