// Incremental, coalesced rule publication (Bridge + RuleStore): cost of many single adds, when changes take
// effect, batch adds, and that the chunked classifier always agrees with a brute-force reference.
import Synchronization
import Testing
@testable import OkoDatapath
#if canImport(Glibc)
import Glibc
#endif

/// A /32 IPv4 destination match.
func ipv4DestinationMatch(_ address: UInt32) -> FlowMatch {
    FlowMatch().setting(.ethType, 0x0800).setting(.ipv4Dst, UInt64(address))
}

/// The IPv4 address a.b.c.d as a number.
func ipv4Number(_ text: String) -> UInt32 { PacketBuilder.ipv4(text).reduce(0) { $0 << 8 | UInt32($1) } }

func dottedQuad(_ a: UInt32) -> String { "\(a >> 24).\(a >> 16 & 0xFF).\(a >> 8 & 0xFF).\(a & 0xFF)" }

@Suite(.serialized) struct PublicationTests {
    @Test func hundredThousandSingleAddsCompleteInSecondsAndCoalesce() throws {
        let sw = TestSwitch()
        let base = ipv4Number("10.0.0.0")
        let count = 100_000
        let publicationsBefore = sw.bridge.publications
        let t0 = monotonicNanoseconds()
        for i in 0..<count {
            try sw.bridge.addFlow(priority: 100, match: ipv4DestinationMatch(base + UInt32(i)),
                                  instructions: .apply([.output(i % 2 == 0 ? 2 : 3)]))
        }
        let addSeconds = Double(monotonicNanoseconds() - t0) / 1e9
        sw.bridge.publishPendingChanges()
        let totalSeconds = Double(monotonicNanoseconds() - t0) / 1e9
        let publications = sw.bridge.publications - publicationsBefore
        print("publication: \(count) single adds took \(addSeconds) s (\(totalSeconds) s with the final publication), "
              + "\(publications) publications, \(sw.bridge.subtableCount(table: 0)) subtables for one mask")
        #expect(sw.bridge.flowCount() == count)
        // Coalesced: far fewer publications than changes; chunked: O(log n) subtables for the mask.
        #expect(publications < UInt64(count / 10))
        #expect(sw.bridge.subtableCount(table: 0) <= 24)
        // The last rule added is in effect right after publishPendingChanges.
        let last = dottedQuad(base + UInt32(count - 1))
        let out = sw.send([PacketBuilder.tcp4(src: "10.9.9.9", dst: last, sport: 1, dport: 2)], on: 1)
        #expect(out[3]?.count == 1 && out[2]?.isEmpty == true)
        let first = sw.send([PacketBuilder.tcp4(src: "10.9.9.9", dst: dottedQuad(base), sport: 1, dport: 2)], on: 1)
        #expect(first[2]?.count == 1)
        // Once changes stop, the publisher compacts the mask back into one subtable.
        let deadline = monotonicNanoseconds() + 20_000_000_000
        while sw.bridge.subtableCount(table: 0) > 1 && monotonicNanoseconds() < deadline { usleep(2000) }
        #expect(sw.bridge.subtableCount(table: 0) == 1)
        let middle = dottedQuad(base + 54_321)
        let afterCompaction = sw.send([PacketBuilder.tcp4(src: "10.9.9.9", dst: middle, sport: 1, dport: 2)], on: 1)
        #expect(afterCompaction[3]?.count == 1)  // 54321 is odd: port 3
    }

    @Test func publishPendingChangesMakesARuleVisibleToTheNextPacket() throws {
        let buffers = InMemoryPacketBuffers()
        // A long window: without the explicit call nothing would be published during the test.
        let bridge = Bridge(name: "b", buffers: buffers, publicationWindow: .seconds(30))
        let p1 = InMemoryPort(name: "p1", buffers: buffers), p2 = InMemoryPort(name: "p2", buffers: buffers)
        try bridge.addPort(p1)
        try bridge.addPort(p2)
        let pmd = PMDThread(bridges: [bridge])
        try bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([.output(2)]))
        #expect(bridge.hasPendingChanges)
        p1.inject(tcpPacket)
        pmd.pollOnce()
        #expect(p2.takeTransmitted().isEmpty)  // still the old (empty) table
        bridge.publishPendingChanges()
        #expect(!bridge.hasPendingChanges)
        p1.inject(tcpPacket)
        pmd.pollOnce()
        #expect(p2.takeTransmitted() == [tcpPacket])
    }

    @Test func aPendingChangeIsPublishedWithinAboutAMillisecondWithoutBeingAsked() throws {
        let sw = TestSwitch()
        sw.pmd.start()
        defer { sw.pmd.stop() }
        var waits: [UInt64] = []
        for round in 0..<20 {
            // Two changes back to back: the second lands inside the window and waits for the publisher.
            try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([.output(2)]))
            try sw.bridge.addFlow(priority: 5, match: match((.inPort, 1)), instructions: .apply([.output(round % 2 == 0 ? 3 : 2)]))
            let t0 = monotonicNanoseconds()
            while sw.bridge.hasPendingChanges && monotonicNanoseconds() - t0 < 1_000_000_000 { sched_yield() }
            waits.append(monotonicNanoseconds() - t0)
            #expect(!sw.bridge.hasPendingChanges)
            // The packet is classified by a PMD that was never told about the change.
            sw.ports[1]!.inject(tcpPacket)
            let target: UInt32 = round % 2 == 0 ? 3 : 2
            var got: [[UInt8]] = []
            let deadline = monotonicNanoseconds() + 1_000_000_000
            while got.isEmpty && monotonicNanoseconds() < deadline {
                got = sw.ports[target]!.takeTransmitted()
                sched_yield()
            }
            #expect(got == [tcpPacket], "round \(round)")
        }
        waits.sort()
        let median = waits[waits.count / 2], worst = waits[waits.count - 1]
        print("publication: wait for a coalesced change to be published: median \(Double(median) / 1e6) ms, "
              + "worst \(Double(worst) / 1e6) ms (window 0.5 ms)")
        // The design bound is the 0.5 ms window plus scheduling delay; the median tolerates a loaded 2-core
        // machine (a starved publisher thread shows in the worst case, which is only printed).
        #expect(median < 50_000_000)
    }

    @Test func batchAddIsAllOrNothingAndPublishesOnce() throws {
        let sw = TestSwitch()
        sw.bridge.publishPendingChanges()  // the ports
        let good = (0..<1000).map { i in
            FlowAddition(priority: 10, match: ipv4DestinationMatch(ipv4Number("10.1.0.0") + UInt32(i)), instructions: .apply([.output(2)]))
        }
        var bad = good
        bad[500] = FlowAddition(priority: 10, match: FlowMatch(), instructions: .apply([.output(42)]))
        #expect(throws: FlowBatchError(index: 500, error: .unknownPort(42))) { try sw.bridge.addFlows(bad) }
        #expect(sw.bridge.flowCount() == 0)
        #expect(!sw.bridge.hasPendingChanges)

        var overlapping = [FlowAddition(priority: 3, match: match((.inPort, 1)), instructions: .apply([]), checkOverlap: true)]
        overlapping.append(FlowAddition(priority: 3, match: FlowMatch(), instructions: .apply([]), checkOverlap: true))
        #expect(throws: FlowBatchError(index: 1, error: .overlap)) { try sw.bridge.addFlows(overlapping) }

        sw.bridge.publishPendingChanges()
        usleep(2000)  // past the window: the batch publishes immediately, once
        let before = sw.bridge.publications
        try sw.bridge.addFlows(good)
        #expect(sw.bridge.publications == before + 1)
        #expect(sw.bridge.flowCount() == 1000)
        let out = sw.send([PacketBuilder.tcp4(src: "10.9.9.9", dst: "10.1.3.231", sport: 1, dport: 2)], on: 1)
        #expect(out[2]?.count == 1)
    }

    @Test func traceAndPacketOutSeePendingChanges() throws {
        let buffers = InMemoryPacketBuffers()
        let bridge = Bridge(name: "b", buffers: buffers, publicationWindow: .seconds(30))
        let p1 = InMemoryPort(name: "p1", buffers: buffers), p2 = InMemoryPort(name: "p2", buffers: buffers)
        try bridge.addPort(p1)
        try bridge.addPort(p2)
        try bridge.addFlow(priority: 9, match: FlowMatch(), instructions: .apply([.output(2)]))
        #expect(bridge.trace(bytes: tcpPacket, inPort: 1).actions == ["output:2"])
        try bridge.modifyFlows(match: FlowMatch(), instructions: .apply([.output(1)]))
        #expect(bridge.hasPendingChanges)
        #expect(try bridge.packetOut(bytes: tcpPacket, inPort: 2, actions: [.output(1)]))
        #expect(!bridge.hasPendingChanges)
    }

    /// Random adds, replacements, modifies and deletes over a few masks; after each step the published
    /// classifier must pick a rule of the same priority as a brute-force scan of the control-side rules.
    @Test func incrementalClassifierAgreesWithBruteForceUnderRandomChanges() throws {
        let buffers = InMemoryPacketBuffers()
        let bridge = Bridge(name: "b", buffers: buffers, publicationWindow: .zero)
        var rng = SplitMix(seed: 7)
        let masks: [UInt64] = [0xFFFF_FFFF, 0xFFFF_FF00, 0xFFFF_0000, 0xFF00_0000]
        var live: [(priority: UInt16, match: FlowMatch)] = []
        struct NoPrograms: ProgramEvaluator { mutating func result(of id: UInt32) -> UInt64 { 0 } }
        for step in 0..<3000 {
            let op = rng.next() % 10
            if op < 6 || live.isEmpty {
                let mask = masks[Int(rng.next() % UInt64(masks.count))]
                let address = UInt64(0x0A00_0000 | rng.next() % 4096) & mask
                let m = FlowMatch().setting(.ethType, 0x0800).setting(.ipv4Dst, address, mask: mask)
                // Priorities are unique per mask, so the best priority is well defined.
                let priority = UInt16(masks.firstIndex(of: mask)!) + 4 * UInt16(rng.next() % 1000)
                try bridge.addFlow(priority: priority, match: m, instructions: .apply([]))
                live.removeAll { $0.priority == priority && $0.match == m }
                live.append((priority, m))
            } else if op < 9 {
                let i = Int(rng.next() % UInt64(live.count))
                let victim = live.remove(at: i)
                #expect(bridge.deleteFlows(match: victim.match, strict: true, priority: victim.priority).count == 1)
            } else {
                let v = live[Int(rng.next() % UInt64(live.count))]
                #expect(try bridge.modifyFlows(match: v.match, strict: true, priority: v.priority, instructions: .apply([.popVLAN])) == 1)
            }
            guard step % 25 == 0 else { continue }
            let table = bridge.currentSnapshotForControl().tables[0]
            #expect(table.ruleCount == live.count)
            for _ in 0..<40 {
                var key = FlowKey()
                key.set(.ethType, 0x0800)
                key.set(.ipv4Dst, UInt64(0x0A00_0000 | rng.next() % 4096))
                var wildcards = FlowKey()
                var programs = NoPrograms()
                let found = table.lookup(key, wildcards: &wildcards, programs: &programs)
                let expected = live.filter { key.masked(by: $0.match.mask) == $0.match.key }.map(\.priority).max()
                #expect(found?.priority == expected, "step \(step)")
            }
        }
        #expect(bridge.flowCount() == live.count)
    }
}

/// Deterministic pseudo-random numbers for reproducible tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
