import Foundation
import OkoLoader
import OkoMaps
import Synchronization
import Testing

/// Two packet threads run a map-updating program (registered with MapEpoch, one critical section
/// per batch) while the test thread dumps, updates and deletes entries of the same map.
struct FilterProgramConcurrencyTests {
    static let rounds = 300
    static let flowsPerThread = 32

    /// tcp-diagnosis packets of thread `thread`: one flow per source port, sources 10.0.<thread>.1.
    static func packets(thread: Int) -> [[UInt8]] {
        (0..<flowsPerThread).map { flow in
            TestPackets.tcp(
                source: [10, 0, UInt8(thread), 1], destination: [203, 0, 113, 9], sourcePort: UInt16(20000 + flow),
                destinationPort: 80, flags: 0x10)
        }
    }

    @Test func packetThreadsAndControlPlaneShareAMap() throws {
        let bytes = try TestPrograms.compile("tcp-diagnosis", with: TestPrograms.compilers[0], directory: TestPrograms.examplesDirectory)
        let program = try FilterProgram(objectBytes: bytes)
        let connections = program.map(named: "connections")!.map
        let finished = DispatchGroup()
        let wrongResults = Atomic<Int>(0)
        let registrationFailures = Atomic<Int>(0)
        let running = Atomic<Int>(2)

        for thread in 0..<2 {
            finished.enter()
            let packets = Self.packets(thread: thread)
            let worker = Thread {
                defer {
                    running.subtract(1, ordering: .releasing)
                    finished.leave()
                }
                do {
                    _ = try MapEpoch.registerCurrentThread()
                } catch {
                    registrationFailures.add(1, ordering: .relaxed)
                    return
                }
                defer { MapEpoch.unregisterCurrentThread() }
                for _ in 0..<Self.rounds {
                    MapEpoch.enterCritical()
                    for packet in packets {
                        let result = packet.withUnsafeBytes { program.run(packet: $0.baseAddress!, length: $0.count) }
                        if result != 1 { wrongResults.add(1, ordering: .relaxed) }
                    }
                    MapEpoch.exitCritical()
                }
            }
            worker.start()
        }

        // Control plane: its own flows (source 172.16.0.x) are inserted, read back, dumped and deleted
        // while the packet threads update theirs.
        var controlRounds = 0
        var dumpedSizes: [Int] = []
        while running.load(ordering: .acquiring) > 0 || controlRounds < 10 {
            for index in 0..<16 {
                let key: [UInt8] = [172, 16, 0, UInt8(index)] + [203, 0, 113, 9, 0, 1, 0, 2]
                let value = TestPackets.littleEndian(UInt64(controlRounds)) + [UInt8](repeating: 0, count: 40)
                try connections.update(key: key, value: value)
                #expect(try connections.lookup(key: key) == value)
            }
            dumpedSizes.append(try connections.entries().count)
            for index in 0..<16 { try connections.delete(key: [172, 16, 0, UInt8(index)] + [203, 0, 113, 9, 0, 1, 0, 2]) }
            controlRounds += 1
        }
        finished.wait()

        #expect(registrationFailures.load(ordering: .relaxed) == 0)
        #expect(wrongResults.load(ordering: .relaxed) == 0)
        #expect(controlRounds >= 10)
        // Every dump saw the 16 control entries plus at most the packet threads' 64 flows.
        #expect(dumpedSizes.allSatisfy { (16...(16 + 2 * Self.flowsPerThread)).contains($0) })
        // Each flow belongs to one thread, so its packet counter is exact.
        let entries = try connections.entries()
        #expect(entries.count == 2 * Self.flowsPerThread)
        for entry in entries { #expect(TestPackets.readLittleEndian(entry.value.prefix(8)) == UInt64(Self.rounds)) }
    }
}
