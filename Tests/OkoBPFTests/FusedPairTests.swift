import Testing
@testable import OkoBPF

/// The interpreter fuses common adjacent pairs (`mov reg` + `add imm`, `ldxh` + `be16`, `ldxw` + `be32`) into
/// one dispatch; jumps into the second half and faults in the first half must behave as unfused code.
struct FusedPairTests {
    private func run(_ source: String, memory: [UInt8]) throws -> UInt64 {
        let interpreter = try BPFInterpreter(instructions: try BPFAssembler.assemble(source), helpers: BPFHelperTable())
        var bytes = memory
        return try bytes.withUnsafeMutableBytes { buffer in
            try interpreter.run(memory: buffer.baseAddress, length: buffer.count)
        }
    }

    @Test func aJumpIntoTheSecondHalfRunsOnlyThatHalf() throws {
        let source = """
            mov %r0, 10
            ja +1
            mov %r0, %r1
            add %r0, 5
            exit
            """
        #expect(try run(source, memory: [1, 2, 3, 4]) == 15)
    }

    @Test func theFusedPairComputesBothHalves() throws {
        let source = """
            mov %r0, %r2
            add %r0, 5
            exit
            """
        #expect(try run(source, memory: [1, 2, 3, 4]) == 9)
    }

    @Test(arguments: [("ldxh %r0, [%r1+2]\nbe16 %r0\nexit", 2), ("ldxw %r0, [%r1+2]\nbe32 %r0\nexit", 4)])
    func aFaultingFusedLoadNamesTheLoad(source: String, size: Int) throws {
        do {
            _ = try run(source, memory: [1, 2, 3])
            Issue.record("the load must fault")
        } catch let error as BPFRuntimeError {
            #expect(error.instructionIndex == 0)
            guard case .outOfBoundsAccess(_, let accessSize, let write) = error.kind else {
                Issue.record("unexpected fault \(error)")
                return
            }
            #expect(accessSize == size && !write)
        }
    }

    @Test func fusedLoadsSwapBytes() throws {
        #expect(try run("ldxh %r0, [%r1+0]\nbe16 %r0\nexit", memory: [0x12, 0x34]) == 0x1234)
        #expect(try run("ldxw %r0, [%r1+0]\nbe32 %r0\nexit", memory: [0x12, 0x34, 0x56, 0x78]) == 0x1234_5678)
    }
}
