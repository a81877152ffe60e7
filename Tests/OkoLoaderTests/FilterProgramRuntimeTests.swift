import Foundation
import OkoBPF
import OkoLoader
import OkoMaps
import Synchronization
import Testing

/// Global data, bpf-to-bpf calls and the runtime helpers, on both engines.
struct FilterProgramRuntimeTests {
    @Test(arguments: FilterEngine.allCases)
    func globalDataLivesInMapsTheProgramUpdates(engine: FilterEngine) throws {
        for compiler in TestPrograms.compilers {
            let program = try FilterProgram(objectBytes: TestPrograms.compile("global_data", with: compiler))
            let long = [UInt8](repeating: 0xab, count: 500), short = [UInt8](repeating: 0, count: 50)
            #expect(try program.run(packet: long, engine: engine) == 1)  // 500 > threshold, 500 > wanted_port 443
            #expect(try program.run(packet: short, engine: engine) == 0)
            let data = try #require(try program.map(named: ".data")!.map.lookup(key: [0, 0, 0, 0]))
            #expect(TestPackets.readLittleEndian(data[8..<16]) == 0x1122_3344_5566_778A)  // packets_seen + 2
            let bss = try #require(try program.map(named: ".bss")!.map.lookup(key: [0, 0, 0, 0]))
            #expect(TestPackets.readLittleEndian(bss[0..<8]) == 550)  // bytes_seen
            #expect(bss[8] == UInt8(ascii: "x"))
            let rodata = try #require(program.map(named: ".rodata"))
            #expect(rodata.spec.isReadOnlyForProgram)
            // The control plane may still set a read-only constant (as libbpf does before load).
            var constant = try #require(try rodata.map.lookup(key: [0, 0, 0, 0]))
            let portOffset = 0  // wanted_port is .rodata's only variable
            #expect(TestPackets.readLittleEndian(constant[portOffset..<(portOffset + 4)]) == 443)
            constant.replaceSubrange(0..<4, with: TestPackets.littleEndian(600, count: 4))
            try rodata.map.update(key: [0, 0, 0, 0], value: constant)
            #expect(try program.run(packet: long, engine: engine) == 0)  // 500 > 600 is false now
        }
    }

    @Test(arguments: FilterEngine.allCases)
    func bpfToBpfCallsRunOnBothEngines(engine: FilterEngine) throws {
        let compiler = TestPrograms.compilers[0]
        let bytes = try TestPrograms.compile("subprograms", with: compiler)
        let web = try FilterProgram(objectBytes: bytes, program: "match_web")
        let http = TestPackets.tcp(source: [10, 0, 0, 1], destination: [10, 0, 0, 2], sourcePort: 5000, destinationPort: 80, flags: 2)
        let ssh = TestPackets.tcp(source: [10, 0, 0, 1], destination: [10, 0, 0, 2], sourcePort: 5000, destinationPort: 22, flags: 2)
        #expect(try web.run(packet: http, engine: engine) == 1)
        #expect(try web.run(packet: ssh, engine: engine) == 0)
        #expect(try web.run(packet: Array(http.prefix(30)), engine: engine) == 0)
        #expect(web.program.functions.count >= 2)
    }

    @Test func objectWithSeveralProgramsNeedsAName() {
        #expect {
            _ = try FilterProgram(objectBytes: TestPrograms.compile("subprograms", with: TestPrograms.compilers[0]))
        } throws: { error in
            guard case .loader(.programNotFound) = error as? FilterProgramError else { return false }
            return true
        }
    }

    static func call(_ id: Int, _ a: UInt64 = 0, _ b: UInt64 = 0, _ c: UInt64 = 0) -> UInt64 {
        OkoHelpers.table.function(id: Int32(id))!(a, b, c, 0, 0)
    }

    @Test func clockAndRandomHelpers() {
        let first = Self.call(OkoHelpers.ktimeGetNs)
        Thread.sleep(forTimeInterval: 0.002)
        let second = Self.call(OkoHelpers.ktimeGetNs)
        #expect(second > first && second - first >= 2_000_000)
        let randoms = (0..<64).map { _ in Self.call(OkoHelpers.getPrandomU32) }
        #expect(randoms.allSatisfy { $0 <= UInt64(UInt32.max) })
        #expect(Set(randoms).count > 60)
    }

    @Test func processorIDIsTheMapEpochSlot() throws {
        let result = Mutex<(UInt64, Int)?>(nil)
        let done = DispatchSemaphore(value: 0)
        let worker = Thread {
            if let slot = try? MapEpoch.registerCurrentThread() {
                result.withLock { $0 = (Self.call(OkoHelpers.getSMPProcessorID), slot) }
                MapEpoch.unregisterCurrentThread()
            }
            done.signal()
        }
        worker.start()
        done.wait()
        let (reported, slot) = try #require(result.withLock { $0 })
        #expect(reported == UInt64(slot))
    }

    @Test func tracePrintkFormatsLikePrintf() {
        #expect(OkoHelpers.formatTrace("x=%d y=%llu z=%x %%", [UInt64(bitPattern: -5), 7, 255]) == "x=-5 y=7 z=ff %")
        #expect(OkoHelpers.formatTrace("%lld %u", [UInt64(bitPattern: -2), 0x1_0000_0001]) == "-2 1")
        let message = Array("hello %d\n\0".utf8)
        let written = message.withUnsafeBytes { buffer in
            Self.call(OkoHelpers.tracePrintk, UInt64(UInt(bitPattern: buffer.baseAddress!)), UInt64(buffer.count), 42)
        }
        #expect(written == UInt64("bpf_trace_printk: hello 42\n".utf8.count) || OkoHelpers.suppressedTraceLines > 0)
    }
}
