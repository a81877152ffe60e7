import Synchronization
import Testing
@testable import OkoDatapath
#if canImport(Glibc)
import Glibc
#endif

/// A port that re-delivers the same 32 frames forever and counts what is sent back (no allocation).
final class LoopbackBenchPort: DatapathPort, @unchecked Sendable {
    let name = "bench"
    var frames: [PacketView] = []
    var transmitted = 0

    init(buffers: InMemoryPacketBuffers, frames bytes: [[UInt8]]) {
        frames = bytes.map { buffers.allocate($0, inPort: 0)! }
    }

    func receive(queue: Int, into packets: UnsafeMutableBufferPointer<PacketView>, inPort: UInt32) -> Int {
        let n = min(packets.count, frames.count)
        for i in 0..<n {
            var p = frames[i]
            p.inPort = inPort
            packets[i] = p
        }
        return n
    }

    func transmit(queue: Int, _ packets: UnsafeMutableBufferPointer<PacketView>) -> Int {
        transmitted += packets.count
        return packets.count
    }

    var statistics: PortBackendStatistics { PortBackendStatistics() }
}

/// Run with `OKO_BENCH=1 swift test -c release --filter DatapathBenchmark`.
@Suite struct DatapathBenchmark {
    @Test(.enabled(if: getenv("OKO_BENCH") != nil))
    func pipelineThroughput() throws {
        let buffers = InMemoryPacketBuffers()
        let bridge = Bridge(name: "bench", buffers: buffers)
        var frames: [[UInt8]] = []
        for i in 0..<32 {
            frames.append(PacketBuilder.tcp4(src: "10.0.0.\(i + 1)", dst: "10.1.0.\(i + 1)", sport: UInt16(1000 + i), dport: 80))
        }
        let rx = LoopbackBenchPort(buffers: buffers, frames: frames)
        let tx = LoopbackBenchPort(buffers: buffers, frames: [])
        let rxNumber = try bridge.addPort(rx)
        let txNumber = try bridge.addPort(tx)
        // 1000 rules over 10 masks that do not match, then the forwarding rule.
        for m in 0..<10 {
            for r in 0..<100 {
                var match = FlowMatch().setting(.ethType, 0x0800)
                match.set(.ipv4Src, UInt64(0xC000_0000 + r), mask: ~UInt64(0) << UInt64(m))
                try bridge.addFlow(priority: UInt16(100 + m), match: match, instructions: .apply([.output(txNumber)]))
            }
        }
        try bridge.addFlow(priority: 1, match: FlowMatch().setting(.inPort, UInt64(rxNumber)), instructions: .apply([.output(txNumber)]))
        let pmd = PMDThread(bridges: [bridge])
        bridge.publishPendingChanges()
        for _ in 0..<1000 { pmd.pollOnce() }
        // Only the rx port must produce packets: the tx port has no frames.
        let iterations = 200_000
        let t0 = monotonicNanoseconds()
        for _ in 0..<iterations { pmd.pollOnce() }
        let ns = Double(monotonicNanoseconds() - t0)
        let packets = Double(iterations * 32)
        print("datapath benchmark: \(Int(ns / packets * 10) / 10) ns/packet, \(Double(Int(packets / ns * 100_000)) / 100) Mpps (EMC hits, 1001 rules)")
        #expect(tx.transmitted == (iterations + 1000) * 32)

        // Megaflow path: every packet a new exact key (EMC thrash) by changing source ports.
        var st = pmd.statistics
        #expect(st.emcHits > 0)
        let program = bridge.attachProgram(FilterProgram(name: "p80", entry: port80Program))
        try bridge.addFlow(priority: 2, match: FlowMatch(filterProgram: program).setting(.inPort, UInt64(rxNumber)),
                           instructions: .apply([.output(txNumber)]))
        bridge.publishPendingChanges()
        for _ in 0..<1000 { pmd.pollOnce() }
        let t1 = monotonicNanoseconds()
        for _ in 0..<iterations { pmd.pollOnce() }
        let ns2 = Double(monotonicNanoseconds() - t1)
        print("datapath benchmark with a filter program rule: \(Int(ns2 / packets)) ns/packet")
        st = pmd.statistics
        #expect(bridge.programs()[program]!.runs >= UInt64(iterations * 32))
    }
}
