import Foundation
import OkoBPF
import Testing

@testable import OkoJIT

/// Assembles `source`, compiles it and runs it on a copy of `memory`.
func runJIT(_ source: String, memory: [UInt8] = [], helpers: BPFHelperTable = BPFHelperTable(),
            options: BPFJITOptions = BPFJITOptions()) throws -> UInt64 {
    let program = try BPFJITProgram(instructions: try BPFAssembler.assemble(source), helpers: helpers,
                                    options: options)
    var bytes = memory
    return bytes.withUnsafeMutableBytes { buffer in
        program.run(memory: buffer.count == 0 ? nil : buffer.baseAddress, length: UInt64(buffer.count))
    }
}

private let addHelper: BPFHelperFunction = { a, b, c, d, e in a &+ b &+ c &+ d &+ e }
private let clobberHelper: BPFHelperFunction = { _, _, _, _, _ in 7 }

@Suite struct JITEncodingTests {
    @Test func thirtyTwoBitResultsAreZeroExtended() throws {
        #expect(try runJIT("lddw %r0, 0xffffffff00000005\nadd32 %r0, 1\nexit") == 6)
        #expect(try runJIT("lddw %r4, 0xffffffff00000005\nmov32 %r0, %r4\nexit") == 5)
        #expect(try runJIT("mov %r0, -1\nmul32 %r0, 3\nexit") == 0xffff_fffd)
    }

    @Test func everyRegisterRoundTripsThroughItsMapping() throws {
        // Move a value through r0..r9 in a chain: catches a wrong ModRM/REX bit for any register.
        var lines = ["lddw %r1, 0x123456789abcdef0"]
        for register in 2...9 { lines.append("mov %r\(register), %r\(register - 1)") }
        lines += ["mov %r0, %r9", "exit"]
        #expect(try runJIT(lines.joined(separator: "\n")) == 0x1234_5678_9abc_def0)
    }

    @Test func divisionFollowsBPFRulesNotX86Traps() throws {
        #expect(try runJIT("mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nexit") == 0)
        #expect(try runJIT("mov %r0, 7\nmov %r1, 0\nmod %r0, %r1\nexit") == 7)
        #expect(try runJIT("lddw %r0, 0x100000007\nmov %r1, 0\nmod32 %r0, %r1\nexit") == 7)
        #expect(try runJIT("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsdiv %r0, %r1\nexit") == 0x8000_0000_0000_0000)
        #expect(try runJIT("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsmod %r0, %r1\nexit") == 0)
        #expect(try runJIT("mov32 %r0, 0x80000000\nsdiv32 %r0, -1\nexit") == 0x8000_0000)
        #expect(try runJIT("mov %r0, -7\nsmod %r0, 2\nexit") == UInt64(bitPattern: -1))
        // r0 and r3 (rax, rdx) are used by x86 div: they must survive a division of other registers.
        #expect(try runJIT("mov %r0, 5\nmov %r3, 9\nmov %r6, 100\nmov %r7, 7\ndiv %r6, %r7\nadd %r0, %r3\nadd %r0, %r6\nexit") == 28)
        #expect(try runJIT("mov %r3, 100\nmov %r4, 7\nmod %r3, %r4\nmov %r0, %r3\nexit") == 2)
        #expect(try runJIT("mov %r0, 100\ndiv %r0, -1\nexit") == 0)  // unsigned: huge divisor
    }

    @Test func shiftsMaskTheirCountAndWorkOnR4() throws {
        #expect(try runJIT("mov %r0, 1\nmov %r1, 65\nlsh %r0, %r1\nexit") == 2)
        #expect(try runJIT("mov %r0, 1\nmov %r1, 33\nlsh32 %r0, %r1\nexit") == 2)
        #expect(try runJIT("mov %r4, 1\nmov %r1, 4\nlsh %r4, %r1\nmov %r0, %r4\nexit") == 16)
        #expect(try runJIT("mov %r0, 256\nmov %r4, 4\nrsh %r0, %r4\nadd %r0, %r4\nexit") == 20)
        #expect(try runJIT("mov %r0, -16\nmov %r2, 2\narsh %r0, %r2\nexit") == UInt64(bitPattern: -4))
        // A 32-bit shift by 0 still zero-extends.
        #expect(try runJIT("lddw %r0, 0xffffffff00000001\nmov %r1, 0\nlsh32 %r0, %r1\nexit") == 1)
        #expect(try runJIT("lddw %r0, 0xffffffff00000001\nrsh32 %r0, 0\nexit") == 1)
    }

    @Test func byteOrderAndSignExtension() throws {
        #expect(try runJIT("lddw %r0, 0x1122334455667788\nbe16 %r0\nexit") == 0x8877)
        #expect(try runJIT("lddw %r0, 0x1122334455667788\nbe32 %r0\nexit") == 0x8877_6655)
        #expect(try runJIT("lddw %r0, 0x1122334455667788\nbe64 %r0\nexit") == 0x8877_6655_4433_2211)
        #expect(try runJIT("lddw %r0, 0x1122334455667788\nle16 %r0\nexit") == 0x7788)
        #expect(try runJIT("lddw %r6, 0x1122334455667788\nswap16 %r6\nmov %r0, %r6\nexit") == 0x8877)
        #expect(try runJIT("mov %r1, 0x80\nmovsx864 %r0, %r1\nexit") == UInt64(bitPattern: -128))
        #expect(try runJIT("mov %r6, 0x8000\nmovsx1632 %r0, %r6\nexit") == 0xffff_8000)
        #expect(try runJIT("mov32 %r2, 0x80000000\nmovsx3264 %r0, %r2\nexit") == 0xffff_ffff_8000_0000)
    }

    @Test func loadsAndStoresOfEveryWidthUseTheStack() throws {
        let source = """
            lddw %r1, 0x8182838485868788
            stxdw [%r10-8], %r1
            stxb [%r10-16], %r6
            sth [%r10-24], 0x7fff
            ldxsb %r0, [%r10-8]
            ldxh %r2, [%r10-8]
            add %r0, %r2
            ldxsw %r3, [%r10-4]
            add %r0, %r3
            ldxh %r4, [%r10-24]
            add %r0, %r4
            exit
            """
        let expected = UInt64(bitPattern: -0x78) &+ 0x8788 &+ UInt64(bitPattern: Int64(Int32(bitPattern: 0x8182_8384))) &+ 0x7fff
        #expect(try runJIT(source) == expected)
        // Byte stores from registers whose low byte needs a REX prefix (sil/dil).
        #expect(try runJIT("mov %r3, 0x1ab\nstxb [%r1+1], %r3\nmov %r2, 0xcd\nstxb [%r1+2], %r2\nldxw %r0, [%r1]\nexit",
                           memory: [0, 0, 0, 0]) == 0x00cd_ab00)
    }

    @Test func atomicsReturnOldValuesAndUpdateMemory() throws {
        let source = """
            mov %r0, 0x0f
            stxdw [%r10-8], %r0
            mov %r1, 0x3c
            lock fetch or [%r10-8], %r1
            mov %r6, %r1
            lock fetch xor [%r10-8], %r0
            mov %r7, %r0
            ldxdw %r0, [%r10-8]
            lsh %r0, 16
            add %r0, %r6
            lsh %r7, 8
            add %r0, %r7
            exit
            """
        // or: 0x0f|0x3c = 0x3f, r6 = 0x0f; xor with r0 (0x0f): old 0x3f -> r0, memory 0x30.
        #expect(try runJIT(source) == 0x30_0000 | 0x3f00 | 0x0f)
        #expect(try runJIT("mov %r0, 5\nstxw [%r10-4], %r0\nmov %r1, 9\nlock cmpxchg32 [%r10-4], %r1\nldxw %r2, [%r10-4]\nlsh %r0, 8\nadd %r0, %r2\nexit") == 0x509)
    }

    @Test func longAndShortBranchesBothReachTheirTargets() throws {
        // 100 filler instructions put the forward target beyond a rel8 reach.
        let filler = Array(repeating: "add %r0, 1", count: 100).joined(separator: "\n")
        let source = "mov %r0, 0\nmov %r1, 3\njeq %r1, 3, far\n\(filler)\nfar:\nadd %r0, 1000\njne %r1, 3, far\nexit"
        #expect(try runJIT(source) == 1000)
        let loop = "mov %r0, 0\nmov %r1, 10\nloop:\nadd %r0, %r1\nsub %r1, 1\njne %r1, 0, loop\nexit"
        #expect(try runJIT(loop) == 55)
    }

    @Test func helperCallsPassArgumentsAndKeepCalleeSavedRegisters() throws {
        var helpers = BPFHelperTable()
        helpers.register(id: 1, name: "add", addHelper)
        helpers.register(id: 2, name: "clobber", clobberHelper)
        let source = """
            mov %r6, 1000
            mov %r7, 2000
            mov %r8, 3000
            mov %r9, 4000
            stdw [%r10-8], 50000
            mov %r1, 1
            mov %r2, 2
            mov %r3, 3
            mov %r4, 4
            mov %r5, 5
            call 1
            mov %r1, %r0
            call 2
            add %r0, %r1
            add %r0, %r6
            add %r0, %r7
            add %r0, %r8
            add %r0, %r9
            ldxdw %r2, [%r10-8]
            add %r0, %r2
            exit
            """
        // r1 is clobbered by the second call in BPF terms; read it back from the helper's result instead.
        let result = try runJIT(source.replacingOccurrences(of: "add %r0, %r1\n", with: ""), helpers: helpers)
        #expect(result == 7 + 10_000 + 50_000)
        #expect(try runJIT("mov %r1, 40\nmov %r2, 2\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\ncall 1\nexit", helpers: helpers) == 42)
    }

    @Test func localCallsGetTheirOwnStackAndPreserveR6ToR9() throws {
        let source = """
            mov %r6, 6
            stdw [%r10-8], 11
            mov %r1, 20
            call local f
            ldxdw %r2, [%r10-8]
            add %r0, %r2
            add %r0, %r6
            exit
            f:
            stdw [%r10-8], 99
            mov %r6, 0
            mov %r0, %r1
            exit
            """
        #expect(try runJIT(source) == 20 + 11 + 6)
    }

    @Test func localCallDepthIsLimitedToEightFrames() throws {
        // f recurses r1 more times; depth = 1 + r1 frames. Returns r1 + 1000 when it bottoms out.
        let recursion = { (depth: Int) in
            """
            mov %r1, \(depth)
            call local f
            exit
            f:
            jeq %r1, 0, done
            sub %r1, 1
            call local f
            exit
            done:
            mov %r0, 1000
            exit
            """
        }
        #expect(try runJIT(recursion(6)) == 1000)  // 1 + 7 frames = 8: allowed
        #expect(try runJIT(recursion(7)) == 0)  // 9 frames: aborted with r0 = 0
    }

    @Test func legacyPacketLoadsAreBigEndianAndBoundsChecked() throws {
        let packet: [UInt8] = [0x11, 0x22, 0x33, 0x44, 0x55]
        #expect(try runJIT("ldabsh 1\nexit", memory: packet) == 0x2233)
        #expect(try runJIT("ldabsw 1\nexit", memory: packet) == 0x2233_4455)
        #expect(try runJIT("mov %r6, 2\nldindb %r6, 2\nexit", memory: packet) == 0x55)
        #expect(try runJIT("mov %r0, 9\nldabsw 2\nexit", memory: packet) == 0)
        #expect(try runJIT("mov %r6, -2\nldindb %r6, 1\nmov %r0, 5\nexit", memory: packet) == 0)
    }

    @Test func unwindHelperStopsTheProgramOnZero() throws {
        var helpers = BPFHelperTable()
        helpers.register(id: 5, name: "unwind", { value, _, _, _, _ in value })
        let options = BPFJITOptions(unwindHelperID: 5)
        #expect(try runJIT("mov %r1, 0\ncall 5\nmov %r0, 2\nexit", helpers: helpers, options: options) == 0)
        #expect(try runJIT("mov %r1, 3\ncall 5\nmov %r0, 2\nexit", helpers: helpers, options: options) == 2)
        #expect(try runJIT("mov %r1, 0\nmov %r2, 5\ncall %r2\nmov %r0, 2\nexit", helpers: helpers, options: options) == 0)
        #expect(try runJIT("mov %r1, 1\nmov %r2, 5\ncall %r2\nmov %r0, 2\nexit", helpers: helpers, options: options) == 2)
        #expect(try runJIT("mov %r2, 4\ncall %r2\nmov %r0, 2\nexit", helpers: helpers, options: options) == 0)
    }

    @Test func invalidProgramsAreRejectedWithTheInstructionIndex() throws {
        let badJump = [BPFInstruction(opcode: 0x05, offset: 5), BPFInstruction(opcode: 0x95)]
        #expect(throws: BPFJITError(instructionIndex: 0, reason: .badJumpTarget(6))) {
            try BPFJITProgram(instructions: badJump, helpers: BPFHelperTable())
        }
        let badOpcode = [BPFInstruction(opcode: 0xb7), BPFInstruction(opcode: 0xff), BPFInstruction(opcode: 0x95)]
        #expect(throws: BPFJITError(instructionIndex: 1, reason: .unknownOpcode(0xff))) {
            try BPFJITProgram(instructions: badOpcode, helpers: BPFHelperTable())
        }
        let missingHelper = [BPFInstruction(opcode: 0x85, immediate: 9), BPFInstruction(opcode: 0x95)]
        #expect(throws: BPFJITError(instructionIndex: 0, reason: .unknownHelper(9))) {
            try BPFJITProgram(instructions: missingHelper, helpers: BPFHelperTable())
        }
        let intoLDDW = [BPFInstruction(opcode: 0x05, offset: 1), BPFInstruction(opcode: 0x18),
                        BPFInstruction(opcode: 0), BPFInstruction(opcode: 0x95)]
        #expect(throws: BPFJITError(instructionIndex: 0, reason: .badJumpTarget(2))) {
            try BPFJITProgram(instructions: intoLDDW, helpers: BPFHelperTable())
        }
        // A jump from the main function into a bpf-to-bpf function's body would run with the wrong frame.
        let crossing = try BPFAssembler.assemble("call local f\nja g\nexit\nf:\nmov %r0, 1\ng:\nexit")
        #expect(throws: BPFJITError(instructionIndex: 1, reason: .badJumpTarget(4))) {
            try BPFJITProgram(instructions: crossing, helpers: BPFHelperTable())
        }
        let error = BPFJITError(instructionIndex: 1, reason: .unknownOpcode(0xff))
        #expect(error.description.contains("instruction 1"))
    }

    @Test func compilingFourThousandInstructionsTakesUnderAMillisecond() throws {
        // A realistic mix: ALU, loads/stores, branches.
        var lines: [String] = ["mov %r0, 0", "mov %r6, 1"]
        while lines.count < 3998 {
            lines += ["add %r0, %r6", "stxdw [%r10-16], %r0", "ldxdw %r1, [%r10-16]", "jgt %r1, 100000, +1",
                      "lsh %r6, 1", "and %r6, 0xffff"]
        }
        lines.append("exit")
        let program = try BPFAssembler.assemble(lines.joined(separator: "\n"))
        _ = try BPFJITProgram(instructions: program, helpers: BPFHelperTable())  // warm-up
        var best = Duration.seconds(1)
        for _ in 0..<5 {
            let clock = ContinuousClock()
            let elapsed = try clock.measure { _ = try BPFJITProgram(instructions: program, helpers: BPFHelperTable()) }
            best = min(best, elapsed)
        }
        print("JIT compile of \(program.count) instructions: \(best)")
        #if DEBUG
        // Unoptimised test builds run the emitter ~30x slower (about 5 ms, 170 µs in release) and the
        // machine is shared; `swift test -c release` checks the real 1 ms bound.
        #expect(best < .milliseconds(25))
        #else
        #expect(best < .milliseconds(1))
        #endif
    }
}

@Suite struct JITCallingConventionTests {
    /// A "helper" of machine code `mov rax, rsp; ret`: returns the stack pointer it was called with.
    static let stackPointerCode = try! ExecutableMemory(code: [0x48, 0x89, 0xe0, 0xc3])
    static var helpers: BPFHelperTable {
        var table = BPFHelperTable()
        table.register(id: 1, name: "rsp", unsafeBitCast(stackPointerCode.base, to: BPFHelperFunction.self))
        return table
    }

    @Test func helpersSeeA16ByteAlignedStackInEveryFrame() throws {
        // SysV: rsp + 8 is 16-byte aligned at a callee's first instruction.
        let programs = [
            "call 1\nexit",
            "mov %r6, 1\ncall 1\nexit",
            "stdw [%r10-8], 1\nmov %r9, 1\ncall 1\nexit",
            "ldabsb 0\ncall 1\nexit",
            "call local f\nexit\nf:\ncall 1\nexit",
            "mov %r7, 3\ncall local f\nexit\nf:\ncall local g\nexit\ng:\ncall 1\nexit",
        ]
        for source in programs {
            let rsp = try runJIT(source, memory: [1, 2, 3, 4], helpers: Self.helpers)
            #expect(rsp % 16 == 8, "\(source): rsp at helper entry = 0x\(String(rsp, radix: 16))")
        }
    }

    @Test func compiledEntryIsACFunctionPointer() throws {
        let program = try BPFJITProgram(instructions: try BPFAssembler.assemble("mov %r0, %r2\nadd %r0, %r1\nexit"),
                                        helpers: BPFHelperTable())
        let entry: @convention(c) (UnsafeMutableRawPointer?, UInt64) -> UInt64 = program.entry
        #expect(entry(UnsafeMutableRawPointer(bitPattern: 0x1000), 24) == 0x1018)
        #expect(program.codeSize > 0 && program.codeSize < 64)
    }
}

@Suite struct JITStackFrameTests {
    @Test func stackOnlyAsConstantBaseGetsATrimmedFrameThatStillWorks() throws {
        let trimmed = try BPFJITProgram(instructions: try BPFAssembler.assemble(
            "stdw [%r10-16], 5\nstxw [%r10-4], %r1\nldxdw %r0, [%r10-16]\nldxw %r1, [%r10-4]\nadd %r0, %r1\nexit"),
            helpers: BPFHelperTable())
        let escaping = try BPFJITProgram(instructions: try BPFAssembler.assemble(
            "stdw [%r10-16], 5\nmov %r2, %r10\nldxdw %r0, [%r2-16]\nexit"), helpers: BPFHelperTable())
        #expect(trimmed.run(memory: UnsafeMutableRawPointer(bitPattern: 7), length: 0) == 12)
        #expect(escaping.run(memory: nil, length: 0) == 5)
        // The trimmed frame reserves 16 bytes (imm8 `sub rsp`), the escaping one the full 512 (imm32).
        // push rbp; mov rbp, rsp; sub rsp, N
        #expect(trimmed.machineCode.starts(with: [0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10]))
        #expect(escaping.machineCode.starts(with: [0x55, 0x48, 0x89, 0xe5, 0x48, 0x81, 0xec, 0x00, 0x02, 0x00, 0x00]))
    }
}
