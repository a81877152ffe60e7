import Foundation
import OkoBPF
import Testing

@testable import OkoJIT

/// The shared bpf_conformance suite, found from the package root (../shared next to it).
enum JITConformanceSuite {
    static let directory: URL = {
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.deletingLastPathComponent()
            .appendingPathComponent("shared/conformance/bpf_conformance/tests")
    }()

    static let fileNames: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".data") }.sorted()
    }()

    static func load(_ name: String) throws -> BPFConformanceTest {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        return try BPFConformanceTest(parsing: text)
    }

    static func runJIT(_ program: [BPFInstruction], memory: [UInt8]) throws -> UInt64 {
        let compiled = try BPFJITProgram(instructions: program, helpers: BPFConformanceHelpers.table())
        var bytes = memory
        return bytes.withUnsafeMutableBytes { buffer in
            compiled.run(memory: buffer.count == 0 ? nil : buffer.baseAddress, length: UInt64(buffer.count))
        }
    }

    static func runInterpreter(_ program: [BPFInstruction], memory: [UInt8]) throws -> UInt64 {
        let interpreter = try BPFInterpreter(instructions: program, helpers: BPFConformanceHelpers.table())
        var bytes = memory
        return try bytes.withUnsafeMutableBytes { buffer in
            try interpreter.run(memory: buffer.count == 0 ? nil : buffer.baseAddress, length: buffer.count)
        }
    }
}

@Suite struct JITConformanceTests {
    @Test func theWholeSuiteIsPresent() {
        #expect(JITConformanceSuite.fileNames.count == 313,
                "found \(JITConformanceSuite.fileNames.count) files in \(JITConformanceSuite.directory.path)")
    }

    @Test(arguments: JITConformanceSuite.fileNames)
    func jitGivesTheExpectedResult(file: String) throws {
        let test = try JITConformanceSuite.load(file)
        let program = try test.program()
        if test.expectedError != nil {
            #expect(throws: (any Error).self) { _ = try JITConformanceSuite.runJIT(program, memory: test.memory) }
            return
        }
        let expected = try #require(test.expectedResult, "\(file) has no result")
        let result = try JITConformanceSuite.runJIT(program, memory: test.memory)
        #expect(result == expected, "\(file): r0 = 0x\(String(result, radix: 16)), expected 0x\(String(expected, radix: 16))")
    }

    @Test(arguments: JITConformanceSuite.fileNames)
    func jitAndInterpreterAgree(file: String) throws {
        let test = try JITConformanceSuite.load(file)
        guard test.expectedError == nil else { return }
        let program = try test.program()
        let jit = try JITConformanceSuite.runJIT(program, memory: test.memory)
        let interpreted = try JITConformanceSuite.runInterpreter(program, memory: test.memory)
        #expect(jit == interpreted, "\(file): JIT 0x\(String(jit, radix: 16)), interpreter 0x\(String(interpreted, radix: 16))")
    }
}

/// Random straight-line programs: every ALU encoding on every register pair, then all registers
/// folded into r0, run by both engines.
struct RandomProgramGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        // splitmix64
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    mutating func interestingImmediate() -> Int32 {
        let choices: [Int32] = [0, 1, -1, 2, 31, 32, 63, 64, Int32.min, Int32.max, 0x7f, 0x80, 0xffff]
        return below(3) == 0 ? choices[below(choices.count)] : Int32(truncatingIfNeeded: next())
    }

    mutating func program(length: Int) -> [BPFInstruction] {
        var program: [BPFInstruction] = []
        for register in 0...9 {
            let value = below(4) == 0 ? [0, 1, UInt64.max, 0x8000_0000_0000_0000, 0x8000_0000][below(5)] : next()
            program.append(BPFInstruction(opcode: BPFOpcode.lddw, dst: UInt8(register),
                                          immediate: Int32(truncatingIfNeeded: value)))
            program.append(BPFInstruction(opcode: 0, immediate: Int32(truncatingIfNeeded: value >> 32)))
        }
        let operations: [UInt8] = [BPFOpcode.add, BPFOpcode.sub, BPFOpcode.mul, BPFOpcode.div, BPFOpcode.or,
                                   BPFOpcode.and, BPFOpcode.lsh, BPFOpcode.rsh, BPFOpcode.neg, BPFOpcode.mod,
                                   BPFOpcode.xor, BPFOpcode.mov, BPFOpcode.arsh, BPFOpcode.end]
        while program.count < length {
            let dst = UInt8(below(10))
            let src = UInt8(below(10))
            let wide = below(2) == 0
            let operation = operations[below(operations.count)]
            let useRegister = below(2) == 0
            var offset: Int16 = 0
            var immediate = interestingImmediate()
            var opcode = (wide ? BPFOpcode.classALU64 : BPFOpcode.classALU) | operation
            switch operation {
            case BPFOpcode.end:
                immediate = [16, 32, 64][below(3)]
                if !wide && useRegister { opcode |= BPFOpcode.sourceX }
            case BPFOpcode.neg:
                immediate = 0
            case BPFOpcode.div, BPFOpcode.mod:
                offset = Int16(below(2))
                if useRegister { opcode |= BPFOpcode.sourceX }
            case BPFOpcode.mov:
                if useRegister {
                    opcode |= BPFOpcode.sourceX
                    offset = wide ? [0, 8, 16, 32][below(4)] : [0, 8, 16][below(3)]
                }
            default:
                if useRegister { opcode |= BPFOpcode.sourceX }
            }
            // The src field is reserved (zero) unless the instruction reads a source register.
            let readsSource = opcode & BPFOpcode.sourceX != 0 && operation != BPFOpcode.end
            program.append(BPFInstruction(opcode: opcode, dst: dst, src: readsSource ? src : 0, offset: offset,
                                          immediate: readsSource ? 0 : immediate))
            if below(8) == 0 {
                // Round-trip a register through the stack with a random width.
                let size = [BPFOpcode.sizeB, BPFOpcode.sizeH, BPFOpcode.sizeW, BPFOpcode.sizeDW][below(4)]
                let slot = Int16(-8 * (1 + below(8)))
                program.append(BPFInstruction(opcode: BPFOpcode.classSTX | BPFOpcode.modeMEM | size, dst: 10, src: src, offset: slot))
                let mode = size != BPFOpcode.sizeDW && below(2) == 0 ? BPFOpcode.modeMEMSX : BPFOpcode.modeMEM
                program.append(BPFInstruction(opcode: BPFOpcode.classLDX | mode | size, dst: dst, src: 10, offset: slot))
            }
        }
        for register in 1...9 {
            // r0 = rotate(r0) ^ rN, so every register's final value shows in the result.
            program.append(BPFInstruction(opcode: BPFOpcode.classALU64 | BPFOpcode.mul, dst: 0, immediate: 31))
            program.append(BPFInstruction(opcode: BPFOpcode.classALU64 | BPFOpcode.xor | BPFOpcode.sourceX, dst: 0, src: UInt8(register)))
        }
        program.append(BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.exit))
        return program
    }
}

@Suite struct JITDifferentialTests {
    @Test func randomStraightLineProgramsMatchTheInterpreter() throws {
        var generator = RandomProgramGenerator(state: 0x0c0f_fee0)
        var mismatches: [String] = []
        for round in 0..<400 {
            let program = generator.program(length: 60)
            let jit = try JITConformanceSuite.runJIT(program, memory: [])
            let interpreted = try JITConformanceSuite.runInterpreter(program, memory: [])
            if jit != interpreted {
                let text = (try? BPFDisassembler.disassemble(program)) ?? "?"
                mismatches.append("round \(round): JIT 0x\(String(jit, radix: 16)) interpreter 0x\(String(interpreted, radix: 16))\n\(text)")
            }
        }
        let mismatchCount = mismatches.count
        #expect(mismatchCount == 0, "\(mismatchCount) of 400 differ; first:\n\(mismatches.first ?? "")")
    }
}
