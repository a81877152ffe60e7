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

    /// Best time per call over `batches` batches of `perBatch` calls: robust against a loaded
    /// machine (other processes only ever make a batch slower).
    static func bestNanoseconds(batches: Int, perBatch: Int, _ body: () throws -> Void) rethrows -> Double {
        var best = Double.infinity
        for _ in 0..<batches {
            let start = nanoseconds()
            for _ in 0..<perBatch { try body() }
            best = min(best, Double(nanoseconds() - start) / Double(perBatch))
        }
        return best
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
        var result: UInt64 = 0
        let perRun = try packet.withUnsafeMutableBytes { buffer in
            try Self.bestNanoseconds(batches: 50, perBatch: 20) {
                result = try interpreter.run(memory: buffer.baseAddress, length: buffer.count)
            }
        }
        #expect(result == 3000)
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
        var total: UInt64 = 0
        let perRun = try packet.withUnsafeMutableBytes { buffer in
            try Self.bestNanoseconds(batches: 100, perBatch: 2000) {
                total &+= try interpreter.run(memory: buffer.baseAddress, length: buffer.count)
            }
        }
        #expect(total == 200_000)
        print("interpreter short filter: \(perRun) ns/run")
    }

    /// Same body unrolled 200 times (1004 instructions, no loop): the shape DPDK's librte_bpf
    /// accepts (its validator rejects loops), for a like-for-like comparison.
    @Test("straight-line program: 1004 instructions")
    func straightLineProgram() throws {
        var source = "mov %r0, 0\nmov %r3, 1000\nstxdw [%r10-8], %r3\n"
        for _ in 0..<200 {
            source += "ldxb %r4, [%r1+1]\nadd %r0, %r4\nldxdw %r3, [%r10-8]\nsub %r3, 1\nstxdw [%r10-8], %r3\n"
        }
        source += "exit\n"
        let interpreter = try BPFInterpreter(instructions: try BPFAssembler.assemble(source), helpers: BPFHelperTable())
        var packet: [UInt8] = Array(repeating: 3, count: 64)
        var result: UInt64 = 0
        let perRun = try packet.withUnsafeMutableBytes { buffer in
            try Self.bestNanoseconds(batches: 100, perBatch: 100) {
                result = try interpreter.run(memory: buffer.baseAddress, length: buffer.count)
            }
        }
        #expect(result == 600)
        print("interpreter straight 1004 instructions: \(perRun) ns/run")
    }
}
