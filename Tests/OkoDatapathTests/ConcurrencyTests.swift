import Synchronization
import Testing
@testable import OkoDatapath
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct ConcurrencyTests {
    @Test func updatesWhilePacketsFlowLoseNothingAndReclaimSnapshots() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: match((.inPort, 1)), instructions: .apply([.output(2)]))
        sw.bridge.publishPendingChanges()
        sw.pmd.start()
        var received = [UInt32: Int]()
        let total = 3000
        var sent = 0
        var flip = false
        var roundsOnExpectedPort = 0
        while sent < total {
            let before = received
            for _ in 0..<100 where sent < total {
                if sw.ports[1]!.inject(tcpPacket) { sent += 1 }
            }
            // Drain the round. A batch that loaded the previous snapshot just before the change may still
            // carry up to one burst (32 packets) of this round; everything else must use the new rule.
            let deadline = monotonicNanoseconds() + 2_000_000_000
            while received.values.reduce(0, +) < sent && monotonicNanoseconds() < deadline {
                for n in [UInt32(2), 3] { received[n, default: 0] += sw.ports[n]!.takeTransmitted().count }
                usleep(50)
            }
            let expectedPort: UInt32 = flip ? 3 : 2
            if received[expectedPort, default: 0] - before[expectedPort, default: 0] >= 100 - maxBatchSize {
                roundsOnExpectedPort += 1
            }
            flip.toggle()
            try sw.bridge.modifyFlows(match: FlowMatch(), instructions: .apply([.output(flip ? 3 : 2)]))
            sw.bridge.publishPendingChanges()  // rounds are shorter than the coalescing window
        }
        #expect(roundsOnExpectedPort == total / 100)
        var waited = 0
        while (received[2]! + received[3]!) < total && waited < 2000 {
            usleep(1000)
            waited += 1
            for n in [UInt32(2), 3] { received[n, default: 0] += sw.ports[n]!.takeTransmitted().count }
        }
        sw.pmd.stop()
        #expect(received[2]! + received[3]! == total)
        #expect(received[2]! > 0 && received[3]! > 0)
        #expect(sw.buffers.outstanding == 0)
        // Every replaced snapshot is released once the PMD has passed a quiescent point.
        #expect(sw.bridge.reclaimer.reclaim() == 0)
    }

    @Test func ruleChangeTakesEffectWithinAMillisecondOfPublication() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([.output(2)]))
        sw.bridge.publishPendingChanges()
        sw.pmd.start()
        defer { sw.pmd.stop() }
        sw.ports[1]!.inject(tcpPacket)
        while sw.ports[2]!.takeTransmitted().isEmpty { sched_yield() }
        try sw.bridge.modifyFlows(match: FlowMatch(), instructions: .apply([.output(3)]))
        sw.bridge.publishPendingChanges()
        let t0 = monotonicNanoseconds()
        sw.ports[1]!.inject(tcpPacket)
        var got: [[UInt8]] = []
        while got.isEmpty && monotonicNanoseconds() - t0 < 1_000_000_000 { got = sw.ports[3]!.takeTransmitted() }
        let elapsed = monotonicNanoseconds() - t0
        #expect(got == [tcpPacket])
        #expect(sw.ports[2]!.takeTransmitted().isEmpty)
        // Generous bound for a loaded 2-core CI machine; typically a few microseconds.
        #expect(elapsed < 50_000_000)
    }
}

@Suite(.serialized) struct MultiPMDTests {
    @Test func twoPMDThreadsSplitPortsAndShareTransmitPort() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 1, match: match((.inPort, 1)), instructions: .apply([.output(3)]))
        try sw.bridge.addFlow(priority: 1, match: match((.inPort, 2)), instructions: .apply([.output(3)]))
        sw.bridge.publishPendingChanges()
        let a = PMDThread(bridges: [sw.bridge], index: 0, threadCount: 2)
        let b = PMDThread(bridges: [sw.bridge], index: 1, threadCount: 2)
        a.start()
        b.start()
        let other = PacketBuilder.udp4(src: "10.9.9.9", dst: "10.0.0.2", sport: 1, dport: 2)
        for _ in 0..<500 {
            sw.ports[1]!.inject(tcpPacket)
            sw.ports[2]!.inject(other)
        }
        var got: [[UInt8]] = []
        var spins = 0
        while got.count < 1000 && spins < 2_000_000 {
            got += sw.ports[3]!.takeTransmitted()
            spins += 1
            sched_yield()
        }
        a.stop()
        b.stop()
        #expect(got.filter { $0 == tcpPacket }.count == 500)
        #expect(got.filter { $0 == other }.count == 500)
        #expect(a.statistics.packets == 500 && b.statistics.packets == 500)
        #expect(sw.bridge.flows().allSatisfy { $0.packets == 500 })
    }
}
