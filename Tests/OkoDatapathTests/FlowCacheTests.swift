import Testing
@testable import OkoDatapath

/// The per-PMD flow caches: megaflow tables, the EMC, and invalidation on rule changes.
@Suite struct FlowCacheTests {
    static func destination(_ i: Int) -> String { "198.19.\(i / 256).\(i % 256)" }
    static func frame(_ i: Int, sport: UInt16 = 1024) -> [UInt8] {
        PacketBuilder.udp4(src: "198.18.0.1", dst: destination(i), sport: sport, dport: 5001)
    }
    static func dst(_ i: Int) -> FlowMatch {
        FlowMatch().setting(.ethType, 0x0800).setting(.ipv4Dst, UInt64(0xC613_0000 + i))
    }

    /// Case (c) of the benchmark in small: /32 rules plus a default drop.
    static func destinationSwitch(rules: Int) throws -> TestSwitch {
        let sw = TestSwitch()
        for i in 0..<rules {
            try sw.bridge.addFlow(priority: 10, match: dst(i), instructions: .apply([.output(2)]))
        }
        try sw.bridge.addFlow(priority: 0, match: FlowMatch(), instructions: .apply([]))
        return sw
    }

    @Test func addingARuleInvalidatesOnlyTheEntriesItOverlaps() throws {
        let sw = try Self.destinationSwitch(rules: 50)
        let frames = (0..<50).map { Self.frame($0) }
        #expect(sw.send(frames, on: 1)[2]?.count == 50)
        let before = sw.pmd.cacheCounts
        #expect(before.entries == 50)
        let upcalls = sw.pmd.statistics.upcalls

        // A higher-priority rule on destination 7 that drops: only that destination's entry may go.
        try sw.bridge.addFlow(priority: 20, match: Self.dst(7), instructions: .apply([]))
        let out = sw.send(frames, on: 1)[2] ?? []
        #expect(out.count == 49)
        #expect(!out.contains(Self.frame(7)))
        let after = sw.pmd.cacheCounts
        #expect(after.flushes == before.flushes)
        #expect(after.invalidated == before.invalidated + 1)
        #expect(sw.pmd.statistics.upcalls == upcalls + 1)

        // Deleting it again restores forwarding for destination 7, again without a flush.
        sw.bridge.deleteFlows(match: Self.dst(7), strict: true, priority: 20)
        #expect(sw.send(frames, on: 1)[2]?.count == 50)
        #expect(sw.pmd.cacheCounts.flushes == before.flushes)
        #expect(sw.pmd.statistics.upcalls == upcalls + 2)
        #expect(sw.buffers.outstanding == 0)
    }

    @Test func severalChangesBetweenTwoBatchesAreAllApplied() throws {
        let sw = try Self.destinationSwitch(rules: 20)
        let frames = (0..<20).map { Self.frame($0) }
        _ = sw.send(frames, on: 1)
        let flushes = sw.pmd.cacheCounts.flushes
        // Three publications the PMD never sees one by one.
        try sw.bridge.addFlow(priority: 20, match: Self.dst(3), instructions: .apply([]))
        try sw.bridge.addFlow(priority: 20, match: Self.dst(4), instructions: .apply([]))
        try sw.bridge.modifyFlows(match: Self.dst(5), strict: true, priority: 10, instructions: .apply([.output(3)]))
        let out = sw.send(frames, on: 1)
        #expect(out[2]?.count == 17)
        #expect(out[3] == [Self.frame(5)])
        #expect(sw.pmd.cacheCounts.flushes == flushes)
    }

    @Test func aPrefixRuleInvalidatesTheEntriesInsideItsPrefixOnly() throws {
        let sw = try Self.destinationSwitch(rules: 300)
        let frames = (0..<300).map { Self.frame($0) }
        var forwarded = 0
        for chunk in stride(from: 0, to: 300, by: 30) { forwarded += sw.send(Array(frames[chunk..<chunk + 30]), on: 1)[2]?.count ?? 0 }
        #expect(forwarded == 300)
        let before = sw.pmd.cacheCounts
        // 198.19.1.0/24 holds destinations 256...299: they must now go to port 3, the rest stay on port 2.
        let prefix = FlowMatch().setting(.ethType, 0x0800).setting(.ipv4Dst, 0xC613_0100, mask: 0xFFFF_FF00)
        try sw.bridge.addFlow(priority: 20, match: prefix, instructions: .apply([.output(3)]))
        var toTwo = 0, toThree = 0
        for chunk in stride(from: 0, to: 300, by: 30) {
            let out = sw.send(Array(frames[chunk..<chunk + 30]), on: 1)
            toTwo += out[2]?.count ?? 0
            toThree += out[3]?.count ?? 0
        }
        #expect(toTwo == 256 && toThree == 44)
        let after = sw.pmd.cacheCounts
        #expect(after.flushes == before.flushes)
        #expect(after.invalidated == before.invalidated + 44)
    }

    @Test func aRuleChangeThatCoversEverythingStillTakesEffect() throws {
        let sw = try Self.destinationSwitch(rules: 10)
        let frames = (0..<10).map { Self.frame($0) }
        #expect(sw.send(frames, on: 1)[2]?.count == 10)
        try sw.bridge.addFlow(priority: 100, match: FlowMatch().setting(.inPort, 1), instructions: .apply([.output(3)]))
        let out = sw.send(frames, on: 1)
        #expect(out[2]?.isEmpty == true)
        #expect(out[3]?.count == 10)
    }

    @Test func entriesWhoseWalkRewroteTheKeyAreDroppedOnAnyTableChange() throws {
        let sw = TestSwitch()
        // Table 0 rewrites the destination, table 1 forwards on the rewritten value.
        try sw.bridge.addFlow(priority: 10, match: Self.dst(1),
                              instructions: FlowInstructions(applyActions: [.setField(.ipv4Dst, 0xC613_0002)], gotoTable: 1))
        try sw.bridge.addFlow(table: 1, priority: 10, match: Self.dst(2), instructions: .apply([.output(2)]))
        #expect(sw.send([Self.frame(1)], on: 1)[2]?.count == 1)
        // A rule on the rewritten address only: it does not overlap the packet's own region, yet must win.
        try sw.bridge.addFlow(table: 1, priority: 20, match: Self.dst(2), instructions: .apply([.output(3)]))
        let out = sw.send([Self.frame(1)], on: 1)
        #expect(out[2]?.isEmpty == true)
        #expect(out[3]?.count == 1)
    }

    @Test func manyFlowsOverOneMaskHitTheMegaflowCacheWithoutTheEMC() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 10, match: FlowMatch().setting(.inPort, 1).setting(.ethType, 0x0800).setting(.ipProto, 17),
                              instructions: .apply([.output(2)]))
        let frames = (0..<300).map { Self.frame($0 % 100, sport: UInt16(1024 + $0)) }
        var forwarded = 0
        for chunk in stride(from: 0, to: frames.count, by: 30) {
            forwarded += sw.send(Array(frames[chunk..<chunk + 30]), on: 1)[2]?.count ?? 0
        }
        #expect(forwarded == 300)
        let st = sw.pmd.statistics
        #expect(st.upcalls == 1)
        #expect(st.megaflowHits == 299)
        #expect(st.emcHits == 0)
        #expect(sw.pmd.cacheCounts.entries == 1)
    }

    @Test func theMegaflowTableSurvivesGrowthAndRemoval() {
        var mask = FlowKey()
        mask.setAllBits(.ethType)
        mask.setAllBits(.ipv4Dst)
        let table = MegaflowTable(mask: mask, capacity: 4)
        var entries: [MegaflowEntry] = []
        for i in 0..<200 {
            var key = FlowKey()
            key.set(.ethType, 0x0800)
            key.set(.ipv4Dst, UInt64(i))
            let e = MegaflowEntry(mask: mask, maskedKey: key, dependencies: [], actions: [], rules: [], volatile: false)
            entries.append(e)
            table.insert(e) { _ in Issue.record("nothing may be displaced") }
        }
        #expect(table.used == 200)
        for e in entries where e.maskedKey.value(.ipv4Dst) % 3 == 0 { table.remove(e) }
        for e in entries {
            let found = table.find(e.maskedKey)
            if e.maskedKey.value(.ipv4Dst) % 3 == 0 {
                #expect(found == nil)
            } else {
                #expect(found?.takeUnretainedValue() === e)
            }
        }
        #expect(table.used == 200 - 67)
    }
}
