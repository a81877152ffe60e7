// Atomic filter program replacement, the lock-free MAC learning table, SCTP CRC32c on set-field, and the
// controller queues' bounds and counters.
import Synchronization
import Testing
@testable import OkoDatapath
#if canImport(Glibc)
import Glibc
#endif

private let acceptEverything: FilterProgram.Entry = { _, _ in 1 }
private let acceptEverythingToo: FilterProgram.Entry = { _, _ in 1 }
private let refuseEverything: FilterProgram.Entry = { _, _ in 0 }

func hexBytes(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = text.startIndex
    while i < text.endIndex {
        let j = text.index(i, offsetBy: 2)
        out.append(UInt8(text[i..<j], radix: 16)!)
        i = j
    }
    return out
}

@Suite(.serialized) struct ProgramReplacementTests {
    @Test func replacingAProgramWhilePacketsFlowNeverLosesOrMisclassifiesAPacket() throws {
        let sw = TestSwitch()
        let id = sw.bridge.attachProgram(FilterProgram(name: "a", entry: acceptEverything))
        try sw.bridge.addFlow(priority: 10, match: FlowMatch(filterProgram: id), instructions: .apply([.output(2)]))
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([.output(3)]))
        sw.bridge.publishPendingChanges()
        sw.pmd.start()
        let total = 20_000
        var sent = 0
        var replacements = 0
        var onTwo = 0, onThree = 0
        while sent < total {
            for i in 0..<50 where sent < total {
                // Distinct source ports: a mix of EMC hits, megaflow hits and upcalls.
                if sw.ports[1]!.inject(PacketBuilder.udp4(src: "10.0.0.1", dst: "10.0.0.2", sport: UInt16(1000 + i), dport: 53)) {
                    sent += 1
                }
            }
            try sw.bridge.replaceProgram(id, with: FilterProgram(name: replacements % 2 == 0 ? "b" : "a",
                                                                 entry: replacements % 2 == 0 ? acceptEverythingToo : acceptEverything))
            replacements += 1
            onTwo += sw.ports[2]!.takeTransmitted().count
            onThree += sw.ports[3]!.takeTransmitted().count
        }
        let deadline = monotonicNanoseconds() + 5_000_000_000
        while onTwo + onThree < total && monotonicNanoseconds() < deadline {
            onTwo += sw.ports[2]!.takeTransmitted().count
            onThree += sw.ports[3]!.takeTransmitted().count
            usleep(100)
        }
        sw.pmd.stop()
        #expect(onTwo == total)
        #expect(onThree == 0)
        // Statistics continue across replacements: every packet ran the program (old or new) exactly once.
        #expect(sw.bridge.programs()[id]?.runs == UInt64(total))
        #expect(sw.bridge.programs()[id]?.matches == UInt64(total))
        #expect(replacements > 100)
        #expect(sw.buffers.outstanding == 0)
        #expect(sw.bridge.reclaimer.reclaim() == 0)
    }

    @Test func theReplacementDecidesFromTheNextPacketOnAndInUseProgramsStillCannotBeDetached() throws {
        let sw = TestSwitch()
        let id = sw.bridge.attachProgram(FilterProgram(name: "yes", entry: acceptEverything))
        try sw.bridge.addFlow(priority: 10, match: FlowMatch(filterProgram: id), instructions: .apply([.output(2)]))
        try sw.bridge.addFlow(priority: 1, match: FlowMatch(), instructions: .apply([.output(3)]))
        #expect(sw.send([tcpPacket], on: 1)[2] == [tcpPacket])
        try sw.bridge.replaceProgram(id, with: FilterProgram(name: "no", entry: refuseEverything))
        #expect(sw.send([tcpPacket], on: 1)[3] == [tcpPacket])
        #expect(sw.bridge.programs()[id]?.name == "no")
        #expect(sw.bridge.programs()[id]?.runs == 2)
        #expect(throws: FlowError.programInUse(id)) { try sw.bridge.detachProgram(id) }
        #expect(throws: FlowError.unknownProgram(99)) { try sw.bridge.replaceProgram(99, with: FilterProgram(name: "x", entry: refuseEverything)) }
    }
}

@Suite(.serialized) struct MACLearningTests {
    @Test func learnsLooksUpAgesAndIgnoresMulticastSources() {
        let table = MACLearningTable(capacity: 64, agingNanoseconds: 2_000_000_000)
        let now: UInt64 = 10_000_000_000
        table.learn(mac: 0x0200_0000_0001, vlan: 0, port: 3, now: now)
        #expect(table.lookup(mac: 0x0200_0000_0001, vlan: 0, now: now) == 3)
        #expect(table.lookup(mac: 0x0200_0000_0001, vlan: 5, now: now) == nil)  // other VLAN
        table.learn(mac: 0x0200_0000_0001, vlan: 0, port: 4, now: now + 1000)  // the station moved
        #expect(table.lookup(mac: 0x0200_0000_0001, vlan: 0, now: now + 2000) == 4)
        #expect(table.lookup(mac: 0x0200_0000_0001, vlan: 0, now: now + 3_000_000_000) == nil)  // aged out
        table.learn(mac: 0x0100_5E00_0001, vlan: 0, port: 1, now: now)
        #expect(table.lookup(mac: 0x0100_5E00_0001, vlan: 0, now: now) == nil)
        // A full table keeps learning: the stalest entries give way.
        for i in 0..<1000 { table.learn(mac: 0x0200_0001_0000 + UInt64(i), vlan: 0, port: 1, now: now + UInt64(i) << 21) }
        let later = now + 1000 << 21
        #expect(table.lookup(mac: 0x0200_0001_0000 + 999, vlan: 0, now: later) == 1)
        #expect(table.count(now: later) <= 64)
    }

    /// Two threads learn and look up overlapping MACs in a small table (constant evictions); a lookup may
    /// miss but must never return another station's port.
    @Test func concurrentLearnersNeverProduceATornEntry() {
        let table = MACLearningTable(capacity: 32)
        final class Tally: Sendable {
            let wrong = Atomic<Int>(0)
            let hits = Atomic<Int>(0)
            let done = Atomic<Int>(0)
        }
        let tally = Tally()
        let threads = 2
        @Sendable func portOf(_ mac: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: (mac &* 0x9E37_79B9) >> 7) | 1 }
        final class Context: @unchecked Sendable {
            let body: () -> Void
            init(_ body: @escaping () -> Void) { self.body = body }
        }
        for t in 0..<threads {
            let context = Context {
                var rng = SplitMix(seed: UInt64(t + 1))
                var localWrong = 0, localHits = 0
                for i in 0..<400_000 {
                    let mac = 0x0200_0000_0000 + rng.next() % 200
                    let now = 1_000_000_000_000 + UInt64(i) << 12
                    if i % 3 == 0 {
                        table.learn(mac: mac, vlan: 0, port: portOf(mac), now: now)
                    } else if let port = table.lookup(mac: mac, vlan: 0, now: now) {
                        localHits += 1
                        if port != portOf(mac) { localWrong += 1 }
                    }
                }
                tally.wrong.add(localWrong, ordering: .relaxed)
                tally.hits.add(localHits, ordering: .relaxed)
                tally.done.add(1, ordering: .releasing)
            }
            var tid = pthread_t()
            pthread_create(&tid, nil, { arg in
                Unmanaged<Context>.fromOpaque(arg!).takeRetainedValue().body()
                return nil
            }, Unmanaged.passRetained(context).toOpaque())
            pthread_detach(tid)
        }
        while tally.done.load(ordering: .acquiring) < threads { usleep(1000) }
        #expect(tally.wrong.load(ordering: .relaxed) == 0)
        #expect(tally.hits.load(ordering: .relaxed) > 1000)
    }

    @Test func normalForwardsToLearnedPortsAndFloodsUnknownOnes() throws {
        let sw = TestSwitch()
        try sw.bridge.addFlow(priority: 0, match: FlowMatch(), instructions: .apply([.output(OFPort.normal)]))
        let aToB = PacketBuilder.udp4(src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2)
        let bToA = PacketBuilder.udp4(src: "10.0.0.2", dst: "10.0.0.1", sport: 2, dport: 1,
                                      dstMAC: PacketBuilder.macA, srcMAC: PacketBuilder.macB)
        var out = sw.send([aToB], on: 1)
        #expect(out[2] == [aToB] && out[3] == [aToB])  // B unknown: flooded
        out = sw.send([bToA], on: 2)
        #expect(out[1] == [bToA] && out[3]?.isEmpty == true)  // A learned on port 1
        out = sw.send([aToB], on: 1)
        #expect(out[2] == [aToB] && out[3]?.isEmpty == true)  // B learned on port 2
    }
}

@Suite struct SCTPChecksumTests {
    @Test func crc32cMatchesTheKnownCheckValue() {
        let check = Array("123456789".utf8).withUnsafeBytes { CRC32C.checksum($0) }
        #expect(check == 0xE306_9283)
        let long = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        // Slicing-by-8 and the byte-wise tail agree with a plain bitwise CRC32c.
        var crc: UInt32 = 0xFFFF_FFFF
        for b in long {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        #expect(long.withUnsafeBytes { CRC32C.checksum($0) } == ~crc)
    }

    /// Packets made with scapy 2.5: an SCTP DATA packet, and the same packet with its destination port set to
    /// 7777 and the checksum scapy computed for it.
    static let sctpIn = hexBytes("02000000000202000000000108004500004000010000408466370a0000010a000002"
        + "1388177001020304a671eaa30000002000000007000100020000000068656c6c6f206f6b6f20736374702121")
    static let sctpOutByScapy = hexBytes("02000000000202000000000108004500004000010000408466370a0000010a000002"
        + "13881e61010203040a1524d10000002000000007000100020000000068656c6c6f206f6b6f20736374702121")

    @Test func settingAnSCTPPortRewritesTheCRC32cAsScapyComputesIt() throws {
        let sw = TestSwitch()
        var m = FlowMatch().setting(.ethType, 0x0800).setting(.ipProto, UInt64(IPProtocol.sctp))
        m.set(.inPort, 1)
        try sw.bridge.addFlow(priority: 5, match: m, instructions: .apply([.setField(.sctpDst, 7777), .output(2)]))
        let out = sw.send([Self.sctpIn], on: 1)
        #expect(out[2] == [Self.sctpOutByScapy])
        // Ethernet padding after the IP payload is not part of the checksum.
        let padded = sw.send([Self.sctpIn + [0, 0, 0, 0]], on: 1)
        #expect(padded[2] == [Self.sctpOutByScapy + [0, 0, 0, 0]])
    }
}

@Suite struct ControllerQueueBoundsTests {
    @Test func packetInQueueReportsDepthBoundAndDrops() throws {
        let buffers = InMemoryPacketBuffers()
        let bridge = Bridge(name: "b", buffers: buffers, packetInCapacity: 3, packetOutCapacity: 2)
        let port = InMemoryPort(name: "p", buffers: buffers)
        try bridge.addPort(port)
        try bridge.addFlow(priority: 0, match: FlowMatch(), instructions: .apply([.output(OFPort.controller, maxLength: 20)]))
        bridge.publishPendingChanges()
        let pmd = PMDThread(bridges: [bridge])
        for _ in 0..<7 { port.inject(tcpPacket) }
        pmd.pollOnce()
        #expect(bridge.packetInCapacity == 3 && bridge.packetInQueueDepth == 3)
        #expect(bridge.packetInDrops == 4)
        let ins = bridge.takePacketIns()
        #expect(ins.count == 3 && ins.allSatisfy { $0.bytes.count == 20 && $0.totalLength == tcpPacket.count })
        #expect(bridge.packetInQueueDepth == 0)
        #expect(bridge.packetOutCapacity == 2)
        for _ in 0..<3 { _ = try bridge.packetOut(bytes: tcpPacket, actions: [.output(1)]) }
        #expect(bridge.packetOutQueueDepth == 2 && bridge.packetOutDrops == 1)
        pmd.pollOnce()
        #expect(bridge.packetOutQueueDepth == 0)
        #expect(port.takeTransmitted().count == 2)
        #expect(buffers.outstanding == 0)
        let st = bridge.statistics
        #expect(st.packetInsQueued == 3 && st.packetInDrops == 4 && st.packetInCapacity == 3)
        #expect(st.packetOutsQueued == 2 && st.packetOutDrops == 1 && st.packetOutQueueDepth == 0)
        #expect(st.rules == 1 && st.learnedMACs == 0)
    }
}
