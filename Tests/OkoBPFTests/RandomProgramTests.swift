import OkoBPF
import Testing

/// Deterministic SplitMix64 so failures reproduce.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

@Suite("Random programs never crash the process")
struct RandomProgramTests {
    /// Random raw slots: mostly garbage, used to show the decoder rejects cleanly.
    static func randomSlots(_ rng: inout SeededGenerator) -> [BPFInstruction] {
        (0..<Int.random(in: 1...16, using: &rng)).map { _ in BPFInstruction(rawValue: rng.next()) }
    }

    /// Random well-formed instructions with forward jumps and wild memory offsets.
    static func randomProgram(_ rng: inout SeededGenerator) -> [BPFInstruction] {
        let count = Int.random(in: 1...20, using: &rng)
        var decoded: [DecodedInstruction] = []
        func reg(_ rng: inout SeededGenerator) -> UInt8 { UInt8.random(in: 0...9, using: &rng) }
        func anyReg(_ rng: inout SeededGenerator) -> UInt8 { UInt8.random(in: 0...10, using: &rng) }
        func offset(_ rng: inout SeededGenerator) -> Int16 {
            [Int16(0), 1, 4, -8, -16, -512, 8, Int16.random(in: .min ... .max, using: &rng)].randomElement(using: &rng)!
        }
        func imm(_ rng: inout SeededGenerator) -> Int32 {
            [Int32(0), 1, -1, 7, 63, Int32.min, Int32.random(in: .min ... .max, using: &rng)].randomElement(using: &rng)!
        }
        func operand(_ rng: inout SeededGenerator) -> BPFOperand {
            Bool.random(using: &rng) ? .register(anyReg(&rng)) : .immediate(imm(&rng))
        }
        let sizes = BPFAccessSize.allCases
        for index in 0..<count {
            let remaining = count - index
            let width: BPFWidth = Bool.random(using: &rng) ? .bits64 : .bits32
            switch Int.random(in: 0..<10, using: &rng) {
            case 0, 1:
                decoded.append(.alu(BPFALUOperation.allCases.randomElement(using: &rng)!, width, dst: reg(&rng), source: operand(&rng)))
            case 2:
                decoded.append(.loadImmediate64(dst: reg(&rng), value: rng.next(), pseudoSource: 0))
            case 3:
                decoded.append(.load(sizes.randomElement(using: &rng)!, signExtend: false, dst: reg(&rng), base: anyReg(&rng), offset: offset(&rng)))
            case 4:
                decoded.append(.store(sizes.randomElement(using: &rng)!, base: anyReg(&rng), offset: offset(&rng), value: operand(&rng)))
            case 5:
                decoded.append(.atomic(BPFAtomicOperation.allCases.randomElement(using: &rng)!, Bool.random(using: &rng) ? .word : .double,
                                       fetch: true, base: anyReg(&rng), offset: offset(&rng), src: reg(&rng)))
            case 6:
                decoded.append(.conditionalJump(BPFJumpCondition.allCases.randomElement(using: &rng)!, width, dst: anyReg(&rng),
                                                source: operand(&rng), offset: Int16.random(in: 0...Int16(remaining - 1), using: &rng)))
            case 7:
                decoded.append(.callHelper(id: Int32.random(in: 0...7, using: &rng)))
            case 8:
                decoded.append(.packetLoad([.byte, .half, .word].randomElement(using: &rng)!,
                                           indexRegister: Bool.random(using: &rng) ? anyReg(&rng) : nil, immediate: imm(&rng)))
            default:
                decoded.append(.byteOrder([.littleEndian, .bigEndian, .swap].randomElement(using: &rng)!,
                                          bits: [16, 32, 64].randomElement(using: &rng)!, dst: reg(&rng)))
            }
        }
        decoded.append(.exit)
        // Offsets above were counted in instructions; lddw takes two slots, so re-validate and
        // let the decoder reject the few that now miss their target.
        return decoded.flatMap { $0.encode() }
    }

    @Test("random raw slots are rejected or accepted without crashing")
    func randomSlotsDecode() {
        var rng = SeededGenerator(state: 42)
        var accepted = 0
        for _ in 0..<100_000 {
            let program = Self.randomSlots(&rng)
            if let interpreter = try? BPFInterpreter(instructions: program, helpers: BPFHelperTable()) {
                accepted += 1
                #expect(interpreter.instructionCount == program.count)
            }
        }
        #expect(accepted < 100_000)
    }

    /// True when the program can only move forward (so it terminates without a budget).
    static func onlyForward(_ entries: [BPFDecodedEntry]) -> Bool {
        entries.allSatisfy { entry in
            guard let target = BPFDecoder.branchTarget(of: entry.instruction, at: entry.slot) else { return true }
            return target > entry.slot
        }
    }

    @Test("20,000 seeded random programs load or are rejected, and run or fail cleanly")
    func randomPrograms() throws {
        var rng = SeededGenerator(state: 0x0c0f_fee0)
        var ran = 0, faulted = 0, rejected = 0
        var memory = [UInt8](repeating: 0x5a, count: 64)
        // memfrob/strcmp_ext trust raw pointers (ubpf semantics), so leave them out of random runs.
        var helpers = BPFConformanceHelpers.table()
        helpers.register(id: 1, name: "no_op", BPFConformanceHelpers.noOp)
        helpers.register(id: 4, name: "no_op", BPFConformanceHelpers.noOp)
        for _ in 0..<20_000 {
            let program = Self.randomProgram(&rng)
            guard let entries = try? BPFDecoder.decode(program), Self.onlyForward(entries) else {
                rejected += 1
                continue
            }
            guard let interpreter = try? BPFInterpreter(instructions: program, helpers: helpers) else {
                rejected += 1
                continue
            }
            // Round trip through the text form as well.
            #expect(try BPFAssembler.assemble(try BPFDisassembler.disassemble(program)) == program)
            let outcome: Result<UInt64, BPFRuntimeError> = memory.withUnsafeMutableBytes { buffer in
                do throws(BPFRuntimeError) {
                    return .success(try interpreter.run(memory: buffer.baseAddress, length: buffer.count))
                } catch {
                    return .failure(error)
                }
            }
            switch outcome {
            case .success: ran += 1
            case .failure(let error):
                faulted += 1
                #expect(error.instructionIndex >= 0 && error.instructionIndex < program.count)
            }
        }
        print("random programs: \(ran) ran, \(faulted) faulted cleanly, \(rejected) rejected")
        #expect(ran > 1000 && faulted > 1000)
    }
}
