import Testing
@testable import OkoDatapath

final class Tracked {
    nonisolated(unsafe) static var alive = 0
    init() { Tracked.alive += 1 }
    deinit { Tracked.alive -= 1 }
}

@Suite(.serialized) struct ControlPlaneTests {
    @Test func retiredObjectsLiveUntilEveryOnlineReaderIsQuiescent() {
        let reclaimer = EpochReclaimer()
        let a = reclaimer.register()
        let b = reclaimer.register()
        Tracked.alive = 0
        reclaimer.retire(Tracked())
        #expect(Tracked.alive == 1)
        reclaimer.quiescent(a)
        #expect(reclaimer.reclaim() == 1 && Tracked.alive == 1)  // b may still hold the pointer
        reclaimer.offline(b)  // an offline reader holds nothing
        #expect(reclaimer.reclaim() == 0 && Tracked.alive == 0)
        reclaimer.quiescent(b)
        reclaimer.unregister(a)
        reclaimer.unregister(b)
    }

    @Test func idleTimeoutUsesLastPacketTime() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([.output(2)]), idleTimeout: 10)
        _ = sw.send([tcpPacket], on: 1)
        let base = monotonicNanoseconds()
        #expect(sw.bridge.expireFlows(now: base + 5_000_000_000).isEmpty)
        let gone = sw.bridge.expireFlows(now: base + 11_000_000_000)
        #expect(gone.map(\.reason) == [.idleTimeout])
        #expect(gone.first?.entry.packets == 1)
    }

    @Test func modifyKeepsCountersAndStrictDeleteNeedsExactMatch() throws {
        let sw = TestSwitch()
        let m = match((.inPort, 1))
        try sw.bridge.addFlow(priority: 7, match: m, instructions: .apply([.output(2)]))
        _ = sw.send([tcpPacket, tcpPacket], on: 1)
        #expect(try sw.bridge.modifyFlows(match: m, strict: true, priority: 7, instructions: .apply([.output(3)])) == 1)
        let out = sw.send([tcpPacket], on: 1)
        #expect(out[3] == [tcpPacket])
        #expect(sw.bridge.flows().first?.packets == 3)
        #expect(sw.bridge.deleteFlows(match: m, strict: true, priority: 6).isEmpty)
        #expect(sw.bridge.deleteFlows(match: FlowMatch(), strict: true, priority: 7).isEmpty)
        #expect(sw.bridge.deleteFlows(match: m, strict: true, priority: 7).count == 1)
    }

    @Test func portNumbersAreAssignedOrRequested() throws {
        let buffers = InMemoryPacketBuffers()
        let bridge = Bridge(name: "b", buffers: buffers)
        #expect(try bridge.addPort(InMemoryPort(name: "x", buffers: buffers), number: 5) == 5)
        #expect(try bridge.addPort(InMemoryPort(name: "y", buffers: buffers)) == 1)
        #expect(throws: FlowError.portNumberTaken(5)) { try bridge.addPort(InMemoryPort(name: "z", buffers: buffers), number: 5) }
        #expect(throws: FlowError.badPortNumber(OFPort.flood)) {
            try bridge.addPort(InMemoryPort(name: "z", buffers: buffers), number: OFPort.flood)
        }
        try bridge.removePort(5)
        #expect(bridge.ports().map(\.number) == [1])
    }

    @Test func gotoMustGoForwardAndTablesExist() {
        let sw = TestSwitch()
        #expect(throws: FlowError.gotoNotForward(from: 2, to: 1)) {
            try sw.bridge.addFlow(table: 2, priority: 1, match: FlowMatch(), instructions: FlowInstructions(gotoTable: 1))
        }
        #expect(throws: FlowError.badTable(200)) {
            try sw.bridge.addFlow(table: 200, priority: 1, match: FlowMatch(), instructions: .apply([]))
        }
        #expect(throws: FlowError.unknownProgram(42)) {
            try sw.bridge.addFlow(priority: 1, match: FlowMatch(filterProgram: 42), instructions: .apply([]))
        }
    }
}

@Suite struct ControllerQueueTests {
    @Test func packetInQueueIsBoundedAndCountsDrops() throws {
        let buffers = InMemoryPacketBuffers()
        let bridge = Bridge(name: "b", buffers: buffers, packetInCapacity: 2, packetOutCapacity: 1)
        let port = InMemoryPort(name: "p", buffers: buffers)
        try bridge.addPort(port)
        try bridge.addFlow(priority: 0, match: FlowMatch(), instructions: .apply([.output(OFPort.controller)]))
        let pmd = PMDThread(bridges: [bridge])
        bridge.publishPendingChanges()
        for _ in 0..<5 { port.inject(tcpPacket) }
        pmd.pollOnce()
        #expect(bridge.takePacketIns().count == 2)
        #expect(bridge.packetInDrops == 3)
        #expect(try bridge.packetOut(bytes: tcpPacket, actions: [.output(1)]))
        #expect(try !bridge.packetOut(bytes: tcpPacket, actions: [.output(1)]))
        #expect(bridge.packetOutDrops == 1)
        #expect(throws: FlowError.unknownPort(9)) { try bridge.packetOut(bytes: tcpPacket, actions: [.output(9)]) }
        pmd.pollOnce()
        #expect(port.takeTransmitted() == [tcpPacket])
        #expect(buffers.outstanding == 0)
    }
}
