import OkoBPF
import Testing

@Suite("Decoder rejects invalid programs with the instruction index")
struct DecoderValidationTests {
    func decodeError(_ program: [BPFInstruction]) -> BPFDecodeError? {
        do {
            _ = try BPFDecoder.decode(program)
            return nil
        } catch {
            return error
        }
    }

    @Test("unknown opcode")
    func unknownOpcode() throws {
        let program = [BPFInstruction(opcode: 0xb7), BPFInstruction(opcode: 0xff), BPFInstruction(opcode: 0x95)]
        let error = try #require(decodeError(program))
        #expect(error.instructionIndex == 1)
        #expect(error.reason == .unknownOpcode(0xff))
        #expect(error.description.contains("instruction 1"))
    }

    @Test("jump outside the program")
    func jumpOutOfRange() throws {
        let program = try BPFAssembler.assemble("mov %r0, 0\nja +5\nexit")
        let error = try #require(decodeError(program))
        #expect(error.instructionIndex == 1)
        #expect(error.reason == .jumpOutOfRange(target: 7))
    }

    @Test("jump into the second slot of lddw")
    func jumpIntoLDDW() throws {
        let program = try BPFAssembler.assemble("ja +1\nlddw %r0, 5\nexit")
        let error = try #require(decodeError(program))
        #expect(error.instructionIndex == 0)
        #expect(error.reason == .jumpIntoLDDW(target: 2))
    }

    @Test("program that can fall off the end")
    func missingExit() throws {
        let error = try #require(decodeError(try BPFAssembler.assemble("mov %r0, 0\nadd %r0, 1")))
        #expect(error.instructionIndex == 1)
        #expect(error.reason == .missingExit)
    }

    @Test("registers above r10 and writes to r10")
    func badRegisters() throws {
        let high = try #require(decodeError(try BPFAssembler.assemble("mov %r11, 1\nexit")))
        #expect(high.reason == .invalidRegister(11))
        let frame = try #require(decodeError(try BPFAssembler.assemble("mov %r0, 0\nmov %r10, 1\nexit")))
        #expect(frame.instructionIndex == 1)
        #expect(frame.reason == .writeToFrameRegister)
    }

    @Test("truncated lddw")
    func truncatedLDDW() throws {
        let error = try #require(decodeError([BPFInstruction(opcode: BPFOpcode.lddw, immediate: 1)]))
        #expect(error.reason == .truncatedLDDW)
    }
}

@Suite("Interpreter run-time safety")
struct InterpreterSafetyTests {
    func runtimeError(_ source: String, memory: inout [UInt8], helpers: BPFHelperTable = BPFHelperTable(),
                      regions: [BPFMemoryRegion] = []) throws -> BPFRuntimeError? {
        let interpreter = try BPFInterpreter(instructions: try BPFAssembler.assemble(source), helpers: helpers, regions: regions)
        return memory.withUnsafeMutableBytes { buffer -> BPFRuntimeError? in
            do throws(BPFRuntimeError) {
                _ = try interpreter.run(memory: buffer.baseAddress, length: buffer.count)
                return nil
            } catch {
                return error
            }
        }
    }

    @Test("loads past the input memory fail with the instruction index")
    func outOfBoundsLoad() throws {
        var memory: [UInt8] = [1, 2, 3, 4]
        let error = try #require(try runtimeError("mov %r0, 0\nldxw %r0, [%r1+1]\nexit", memory: &memory))
        #expect(error.instructionIndex == 1)
        guard case .outOfBoundsAccess(_, let size, let write) = error.kind else {
            Issue.record("wrong kind \(error.kind)")
            return
        }
        #expect(size == 4 && !write)
        var inBounds: [UInt8] = [1, 2, 3, 4, 5]
        #expect(try runtimeError("ldxw %r0, [%r1+1]\nexit", memory: &inBounds) == nil)
    }

    @Test("stores below the stack frame and through a null memory pointer fail")
    func outOfBoundsStores() throws {
        var none: [UInt8] = []
        let belowFrame = try #require(try runtimeError("stdw [%r10-520], 1\nmov %r0, 0\nexit", memory: &none))
        #expect(belowFrame.instructionIndex == 0)
        let aboveFrame = try #require(try runtimeError("mov %r0, 0\nstb [%r10+0], 1\nexit", memory: &none))
        #expect(aboveFrame.instructionIndex == 1)
        let null = try #require(try runtimeError("ldxb %r0, [%r1+0]\nexit", memory: &none))
        #expect(null.instructionIndex == 0)
        #expect(try runtimeError("stdw [%r10-512], 1\nmov %r0, 0\nexit", memory: &none) == nil)
    }

    @Test("registered regions are readable, and writable only when marked so")
    func registeredRegions() throws {
        let storage = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 8)
        defer { storage.deallocate() }
        storage.storeBytes(of: 0x1122_3344_5566_7788 as UInt64, as: UInt64.self)
        let address = UInt64(UInt(bitPattern: storage))
        let readProgram = "lddw %r2, 0x\(String(address, radix: 16))\nldxdw %r0, [%r2+0]\nexit"
        let writeProgram = "lddw %r2, 0x\(String(address, radix: 16))\nstdw [%r2+8], 9\nmov %r0, 0\nexit"
        var none: [UInt8] = []

        let readOnly = [BPFMemoryRegion(start: storage, length: 16, writable: false)]
        let interpreter = try BPFInterpreter(instructions: try BPFAssembler.assemble(readProgram), helpers: BPFHelperTable(),
                                             regions: readOnly)
        #expect(try interpreter.run(memory: nil, length: 0) == 0x1122_3344_5566_7788)
        let denied = try #require(try runtimeError(writeProgram, memory: &none, regions: readOnly))
        #expect(denied.instructionIndex == 2)

        let writable = [BPFMemoryRegion(start: storage, length: 16, writable: true)]
        #expect(try runtimeError(writeProgram, memory: &none, regions: writable) == nil)
        #expect(storage.load(fromByteOffset: 8, as: UInt64.self) == 9)
        // Unregistered: even reading fails.
        #expect(try runtimeError(readProgram, memory: &none) != nil)
    }

    @Test("a callee may use a pointer into its caller's frame")
    func callerFrameAccess() throws {
        var none: [UInt8] = []
        let source = """
            stdw [%r10-8], 41
            mov %r1, %r10
            sub %r1, 8
            call local bump
            ldxdw %r0, [%r10-8]
            exit
            bump:
            ldxdw %r2, [%r1+0]
            add %r2, 1
            stxdw [%r1+0], %r2
            exit
            """
        let interpreter = try BPFInterpreter(instructions: try BPFAssembler.assemble(source), helpers: BPFHelperTable())
        #expect(try interpreter.run(memory: nil, length: 0) == 42)
        #expect(try runtimeError(source, memory: &none) == nil)
    }

    @Test("each local call gets its own r10 and preserves r6-r9")
    func localCallFrames() throws {
        let source = """
            mov %r6, 6
            mov %r9, 9
            stdw [%r10-8], 100
            call local callee
            ldxdw %r1, [%r10-8]
            add %r0, %r1
            add %r0, %r6
            add %r0, %r9
            exit
            callee:
            stdw [%r10-8], 7
            mov %r6, 0
            mov %r9, 0
            ldxdw %r0, [%r10-8]
            exit
            """
        let interpreter = try BPFInterpreter(instructions: try BPFAssembler.assemble(source), helpers: BPFHelperTable())
        #expect(try interpreter.run(memory: nil, length: 0) == 7 + 100 + 6 + 9)
    }

    @Test("unbounded recursion stops at the call depth limit")
    func callDepth() throws {
        var none: [UInt8] = []
        let error = try #require(try runtimeError("mov %r0, 0\nf:\ncall local f\nexit", memory: &none))
        #expect(error.kind == .callDepthExceeded)
        #expect(error.instructionIndex == 1)
        // Exactly the limit is fine: 7 nested calls below the entry frame.
        var chain = "mov %r0, 0\n"
        for level in 0..<7 { chain += "call local l\(level)\nexit\nl\(level):\nadd %r0, 1\n" }
        chain += "exit\n"
        let interpreter = try BPFInterpreter(instructions: try BPFAssembler.assemble(chain), helpers: BPFHelperTable())
        #expect(try interpreter.run(memory: nil, length: 0) == 7)
    }

    @Test("unknown helpers fail when reached, by id and through callx")
    func unknownHelpers() throws {
        var none: [UInt8] = []
        let direct = try #require(try runtimeError("mov %r0, 0\ncall 77\nexit", memory: &none))
        #expect(direct.kind == .unknownHelper(id: 77))
        #expect(direct.instructionIndex == 1)
        let indirect = try #require(try runtimeError("mov %r3, -4\ncall %r3\nexit", memory: &none))
        #expect(indirect.kind == .unknownHelper(id: -4))
        // A dead call to a missing helper does not prevent loading or running.
        #expect(try runtimeError("mov %r0, 0\nja +1\ncall 77\nexit", memory: &none) == nil)
    }

    @Test("unwind helper returning 0 ends the program with r0 = 0, from any depth")
    func unwind() throws {
        let source = """
            mov %r0, 5
            call local f
            mov %r0, 99
            exit
            f:
            mov %r1, 0
            call 5
            mov %r0, 42
            exit
            """
        let interpreter = try BPFInterpreter(instructions: try BPFAssembler.assemble(source), helpers: BPFConformanceHelpers.table())
        #expect(try interpreter.run(memory: nil, length: 0) == 0)
    }

    @Test("misaligned atomics fail, aligned ones update memory")
    func atomics() throws {
        var memory = [UInt8](repeating: 0, count: 16)
        let misaligned = try #require(try runtimeError("mov %r2, 1\nlock add [%r1+1], %r2\nmov %r0, 0\nexit", memory: &memory))
        #expect(misaligned.instructionIndex == 1)
        #expect(try runtimeError("mov %r2, 3\nlock add [%r1+8], %r2\nmov %r0, 0\nexit", memory: &memory) == nil)
        #expect(memory[8] == 3)
    }

    @Test("legacy packet loads are big endian and end the program with 0 when out of bounds")
    func packetLoads() throws {
        let program = try BPFAssembler.assemble("ldabsh 2\nmov %r6, %r0\nmov %r7, 1\nldindw %r7, 2\nadd %r0, %r6\nexit")
        let interpreter = try BPFInterpreter(instructions: program, helpers: BPFHelperTable())
        var memory: [UInt8] = [0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a]
        let result = try memory.withUnsafeMutableBytes { try interpreter.run(memory: $0.baseAddress, length: $0.count) }
        #expect(result == 0x3456_789a + 0x1234)
        var short: [UInt8] = [0, 0, 0x12, 0x34]
        let truncated = try short.withUnsafeMutableBytes { try interpreter.run(memory: $0.baseAddress, length: $0.count) }
        #expect(truncated == 0)
    }

    @Test("concurrent runs use separate stacks")
    func concurrentRuns() async throws {
        let source = """
            stxdw [%r10-8], %r2
            mov %r3, 2000
            loop:
            ldxdw %r4, [%r10-8]
            add %r4, 1
            stxdw [%r10-8], %r4
            sub %r3, 1
            jne %r3, 0, loop
            ldxdw %r0, [%r10-8]
            exit
            """
        let interpreter = try BPFInterpreter(instructions: try BPFAssembler.assemble(source), helpers: BPFHelperTable())
        let results = await withTaskGroup(of: Bool.self) { group in
            for task in 0..<4 {
                group.addTask {
                    // r2 (the length) seeds each run differently; memory itself is unused.
                    for length in 0..<200 {
                        let expected = UInt64(task * 1000 + length) + 2000
                        guard (try? interpreter.run(memory: nil, length: task * 1000 + length)) == expected else { return false }
                    }
                    return true
                }
            }
            var all: [Bool] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results == [true, true, true, true])
    }
}
