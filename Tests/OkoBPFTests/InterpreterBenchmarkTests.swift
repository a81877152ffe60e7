import OkoBPF
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Timing of the interpreter on a tight loop. Meaningful in release builds:
/// `swift test -c release --filter InterpreterBenchmark`.
@Suite("InterpreterBenchmark")
struct InterpreterBenchmarkTests {
    static func nanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    @Test("loop program: 1000 iterations of add/ldx/stx/jne")
    func loopProgram() throws {
        let program = try BPFAssembler.assemble("""
            mov %r0, 0
            mov %r3, 1000
            stxdw [%r10-8], %r3
            loop:
            ldxb %r4, [%r1+1]
            add %r0, %r4
            ldxdw %r3, [%r10-8]
            sub %r3, 1
            stxdw [%r10-8], %r3
            jne %r3, 0, loop
            exit
            """)
        let interpreter = try BPFInterpreter(instructions: program, helpers: BPFConformanceHelpers.table())
        var packet: [UInt8] = Array(repeating: 3, count: 64)
        let runs = 2000
        var result: UInt64 = 0
        let start = Self.nanoseconds()
        try packet.withUnsafeMutableBytes { buffer in
            for _ in 0..<runs {
                result = try interpreter.run(memory: buffer.baseAddress, length: buffer.count)
            }
        }
        let elapsed = Self.nanoseconds() - start
        #expect(result == 3000)
        let perRun = Double(elapsed) / Double(runs)
        let instructions = 3.0 + 6.0 * 1000.0 + 1.0
        print("interpreter loop: \(Int(perRun)) ns/run, \((perRun / instructions * 100).rounded() / 100) ns/instruction")
    }

    @Test("short filter program: per-run overhead")
    func shortProgram() throws {
        let program = try BPFAssembler.assemble("""
            ldxh %r2, [%r1+12]
            mov %r0, 0
            jne %r2, 0x0008, +1
            mov %r0, 1
            exit
            """)
        let interpreter = try BPFInterpreter(instructions: program, helpers: BPFHelperTable())
        var packet: [UInt8] = Array(repeating: 0, count: 64)
        packet[12] = 8
        let runs = 200_000
        var total: UInt64 = 0
        let start = Self.nanoseconds()
        try packet.withUnsafeMutableBytes { buffer in
            for _ in 0..<runs {
                total &+= try interpreter.run(memory: buffer.baseAddress, length: buffer.count)
            }
        }
        let elapsed = Self.nanoseconds() - start
        #expect(total == UInt64(runs))
        print("interpreter short filter: \(Double(elapsed) / Double(runs)) ns/run")
    }
}
