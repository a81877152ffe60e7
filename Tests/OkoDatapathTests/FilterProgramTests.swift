import Synchronization
import Testing
@testable import OkoDatapath

/// Returns 1 when the TCP destination port of an untagged IPv4 frame is 80.
let port80Program: FilterProgram.Entry = { data, length in
    guard let data, length >= 38 else { return 0 }
    return load16(UnsafeRawPointer(data), 36) == 80 ? 1 : 0
}

/// A stateful program: matches every other packet (its "map" is a global counter).
let alternateState = Atomic<UInt64>(0)
let alternatingProgram: FilterProgram.Entry = { _, _ in
    alternateState.add(1, ordering: .relaxed).newValue & 1
}
let alternatingPeek: FilterProgram.Entry = { _, _ in
    (alternateState.load(ordering: .relaxed) + 1) & 1
}

@Suite(.serialized) struct FilterProgramTests {
    @Test func programGatesRuleAndFallsThroughToLowerPriority() throws {
        let sw = TestSwitch()
        let prog = FilterProgram(name: "http", entry: port80Program)
        let id = sw.bridge.attachProgram(prog)
        try sw.bridge.addFlow(priority: 100, match: FlowMatch(filterProgram: id), instructions: .apply([.output(2)]))
        try sw.bridge.addFlow(priority: 50, match: FlowMatch(filterProgram: id).setting(.inPort, 1), instructions: .apply([.output(3)]))
        try sw.bridge.addFlow(priority: 10, match: FlowMatch(), instructions: .apply([.output(3)]))
        let ssh = PacketBuilder.tcp4(src: "10.0.0.1", dst: "10.0.0.2", sport: 1000, dport: 22)
        let out = sw.send([tcpPacket, ssh, tcpPacket, ssh, ssh], on: 1)
        #expect(out[2] == [tcpPacket, tcpPacket])
        #expect(out[3] == [ssh, ssh, ssh])
        // Memoised: one run per packet even though two rules name the program, and with cache hits.
        let stats = sw.bridge.programs()[id]!
        #expect(stats.runs == 5)
        #expect(stats.matches == 2)
        #expect(throws: FlowError.programInUse(id)) { try sw.bridge.detachProgram(id) }
    }

    @Test func statefulProgramVerdictIsNeverCached() throws {
        let sw = TestSwitch()
        alternateState.store(0, ordering: .relaxed)
        let id = sw.bridge.attachProgram(FilterProgram(name: "alt", entry: alternatingProgram))
        try sw.bridge.addFlow(priority: 100, match: FlowMatch(filterProgram: id), instructions: .apply([.output(2)]))
        try sw.bridge.addFlow(priority: 10, match: FlowMatch(), instructions: .apply([.output(3)]))
        let out = sw.send(Array(repeating: tcpPacket, count: 10), on: 1)
        #expect(out[2]!.count == 5 && out[3]!.count == 5)
        #expect(sw.bridge.programs()[id]!.runs == 10)
        // Both verdicts are cached as variants of one megaflow, each re-validated by running the program.
        let st = sw.pmd.statistics
        #expect(st.misses == 2 && st.emcHits + st.megaflowHits == 8)
    }

    @Test func traceReportsTablesProgramsActionsWithoutSideEffects() throws {
        let sw = TestSwitch()
        alternateState.store(0, ordering: .relaxed)
        let http = sw.bridge.attachProgram(FilterProgram(name: "http", entry: port80Program, sideEffectFreeEntry: port80Program))
        let alt = sw.bridge.attachProgram(FilterProgram(name: "alt", entry: alternatingProgram))
        try sw.bridge.addFlow(table: 0, priority: 5, match: FlowMatch(filterProgram: http),
                              instructions: FlowInstructions(applyActions: [.setField(.ethDst, 0x0200_0000_0009)], gotoTable: 1))
        try sw.bridge.addFlow(table: 1, priority: 5, match: FlowMatch(filterProgram: alt), instructions: .apply([.output(2)]))
        try sw.bridge.addFlow(table: 1, priority: 1, match: FlowMatch(), instructions: .apply([.output(3)]))

        let r = sw.bridge.trace(bytes: tcpPacket, inPort: 1)
        #expect(r.steps.map(\.table) == [0, 1])
        #expect(r.steps[1].rule?.priority == 1)
        #expect(r.programs == [.init(program: http, result: 1, executed: true), .init(program: alt, result: 0, executed: false)])
        #expect(r.actions == ["set_field:eth_dst=0x20000000009", "output:3"])
        #expect(!r.mapSideEffectsPossible)
        #expect(alternateState.load(ordering: .relaxed) == 0)

        let r2 = sw.bridge.trace(bytes: tcpPacket, inPort: 1, programs: .assume([http: 1, alt: 1]))
        #expect(r2.actions.last == "output:2")
        let r3 = sw.bridge.trace(bytes: tcpPacket, inPort: 1, programs: .allowSideEffects)
        #expect(r3.mapSideEffectsPossible && r3.actions.last == "output:2")
        #expect(alternateState.load(ordering: .relaxed) == 1)
        // No counters moved.
        #expect(sw.bridge.flows().allSatisfy { $0.packets == 0 })
        #expect(sw.bridge.programs()[http]!.runs == 0)
        _ = alternatingPeek
    }
}
