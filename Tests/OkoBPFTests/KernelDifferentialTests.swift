import OkoBPF
import OkoJIT
import Testing

#if canImport(Glibc)
import Glibc

/// An execution engine under differential test. The interpreter, the JIT and the Linux kernel
/// implement this, so one generator drives them all.
protocol DifferentialEngine {
    var name: String { get }
    /// r0 after running `program` with no input memory.
    func run(_ program: [BPFInstruction]) throws -> UInt64
}

struct InterpreterEngine: DifferentialEngine {
    let name = "interpreter"
    func run(_ program: [BPFInstruction]) throws -> UInt64 {
        try BPFInterpreter(instructions: program, helpers: BPFHelperTable()).run(memory: nil, length: 0)
    }
}

struct JITEngine: DifferentialEngine {
    let name = "jit"
    func run(_ program: [BPFInstruction]) throws -> UInt64 {
        try BPFJITProgram(instructions: program, helpers: BPFHelperTable()).run(memory: nil, length: 0)
    }
}

/// Loads programs into the running kernel (BPF_PROG_LOAD, socket filter) and runs them with
/// BPF_PROG_TEST_RUN. The kernel returns a 32-bit retval, so r0 is read as two halves: the
/// program as is, and the program with `rsh r0, 32` before every exit.
struct KernelEngine: DifferentialEngine {
    let name = "linux"

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    typealias SyscallFunction = @convention(c) (Int, Int, UnsafeMutableRawPointer, UInt32) -> Int
    /// glibc's `syscall` is variadic, which Swift cannot call; on x86-64 it is a plain register
    /// shuffle in assembly, so calling it through a fixed-arity pointer is sound.
    private let syscallFunction: SyscallFunction

    init?() {
        // RTLD_DEFAULT is the null handle on glibc.
        guard let symbol = dlsym(nil, "syscall") else {
            return nil
        }
        syscallFunction = unsafeBitCast(symbol, to: SyscallFunction.self)
    }

    private static let sysBPF = 321  // x86-64
    private static let progLoad = 5
    private static let progTestRun = 10
    private static let socketFilter: UInt32 = 1

    func load(_ program: [BPFInstruction]) throws -> Int32 {
        var attr = [UInt8](repeating: 0, count: 160)
        var log = [CChar](repeating: 0, count: 4096)
        let license: [CChar] = Array("GPL".utf8CString)
        return try program.withUnsafeBufferPointer { instructions in
            try license.withUnsafeBufferPointer { licenseBuffer in
                try log.withUnsafeMutableBufferPointer { logBuffer in
                    try attr.withUnsafeMutableBytes { a in
                        a.storeBytes(of: Self.socketFilter, toByteOffset: 0, as: UInt32.self)
                        a.storeBytes(of: UInt32(program.count), toByteOffset: 4, as: UInt32.self)
                        a.storeBytes(of: UInt64(UInt(bitPattern: instructions.baseAddress)), toByteOffset: 8, as: UInt64.self)
                        a.storeBytes(of: UInt64(UInt(bitPattern: licenseBuffer.baseAddress)), toByteOffset: 16, as: UInt64.self)
                        a.storeBytes(of: UInt32(1), toByteOffset: 24, as: UInt32.self)  // log_level
                        a.storeBytes(of: UInt32(logBuffer.count), toByteOffset: 28, as: UInt32.self)
                        a.storeBytes(of: UInt64(UInt(bitPattern: logBuffer.baseAddress)), toByteOffset: 32, as: UInt64.self)
                        let fd = syscallFunction(Self.sysBPF, Self.progLoad, a.baseAddress!, UInt32(a.count))
                        guard fd >= 0 else {
                            let message = String(cString: logBuffer.baseAddress!)
                            throw Failure(description: "BPF_PROG_LOAD failed (errno \(errno)): \(message.suffix(400))")
                        }
                        return Int32(fd)
                    }
                }
            }
        }
    }

    func testRun(_ fd: Int32) throws -> UInt32 {
        var attr = [UInt8](repeating: 0, count: 80)
        var packet = [UInt8](repeating: 0, count: 64)
        return try packet.withUnsafeMutableBytes { data in
            try attr.withUnsafeMutableBytes { a in
                a.storeBytes(of: UInt32(fd), toByteOffset: 0, as: UInt32.self)
                a.storeBytes(of: UInt32(data.count), toByteOffset: 8, as: UInt32.self)  // data_size_in
                a.storeBytes(of: UInt64(UInt(bitPattern: data.baseAddress)), toByteOffset: 16, as: UInt64.self)
                a.storeBytes(of: UInt32(1), toByteOffset: 32, as: UInt32.self)  // repeat
                let status = syscallFunction(Self.sysBPF, Self.progTestRun, a.baseAddress!, UInt32(a.count))
                guard status == 0 else { throw Failure(description: "BPF_PROG_TEST_RUN failed (errno \(errno))") }
                return a.load(fromByteOffset: 4, as: UInt32.self)
            }
        }
    }

    func runHalf(_ program: [BPFInstruction]) throws -> UInt32 {
        let fd = try load(program)
        defer { close(fd) }
        return try testRun(fd)
    }

    func run(_ program: [BPFInstruction]) throws -> UInt64 {
        var high: [BPFInstruction] = []
        // Insert `rsh r0, 32` before each exit; jumps in generated programs only go forward and
        // never target an exit directly past the insertion, so shift offsets that cross it.
        var newIndex: [Int] = []
        var index = 0
        for instruction in program {
            newIndex.append(index)
            index += instruction.opcode == 0x95 ? 2 : 1
        }
        newIndex.append(index)
        for (slot, var instruction) in program.enumerated() {
            let cls = instruction.instructionClass
            if (cls == BPFOpcode.classJMP || cls == BPFOpcode.classJMP32), instruction.opcode != 0x95, instruction.opcode != 0x85 {
                let target = slot + 1 + Int(instruction.offset)
                instruction.offset = Int16(newIndex[target] - (newIndex[slot] + 1))
            }
            if instruction.opcode == 0x95 {
                high.append(BPFInstruction(opcode: BPFOpcode.classALU64 | BPFOpcode.rsh, dst: 0, immediate: 32))
            }
            high.append(instruction)
        }
        return UInt64(try runHalf(program)) | (UInt64(try runHalf(high)) << 32)
    }
}

/// Straight-line and forward-jump ALU programs every register of which is initialised first.
enum ALUProgramGenerator {
    static func generate(_ rng: inout SeededGenerator) -> [BPFInstruction] {
        var decoded: [DecodedInstruction] = []
        let interesting: [UInt64] = [0, 1, 0xffff_ffff, 0x8000_0000, .max, 0x8000_0000_0000_0000, 0x7fff_ffff_ffff_ffff]
        for register in UInt8(0)...9 {
            let value = Bool.random(using: &rng) ? interesting.randomElement(using: &rng)! : rng.next()
            decoded.append(.loadImmediate64(dst: register, value: value, pseudoSource: 0))
        }
        let bodyLength = Int.random(in: 4...24, using: &rng)
        var body: [DecodedInstruction] = []
        let operations = BPFALUOperation.allCases
        for index in 0..<bodyLength {
            let dst = UInt8.random(in: 0...9, using: &rng)
            let src = UInt8.random(in: 0...9, using: &rng)
            let width: BPFWidth = Bool.random(using: &rng) ? .bits64 : .bits32
            switch Int.random(in: 0..<10, using: &rng) {
            case 0:
                body.append(.negate(width, dst: dst))
            case 1:
                let remaining = bodyLength - index - 1
                let immediate = [Int32(0), 1, -1, Int32.min, Int32.random(in: .min ... .max, using: &rng)].randomElement(using: &rng)!
                let source: BPFOperand = Bool.random(using: &rng) ? .register(src) : .immediate(immediate)
                body.append(.conditionalJump(BPFJumpCondition.allCases.randomElement(using: &rng)!, width, dst: dst,
                                             source: source, offset: Int16.random(in: 0...Int16(remaining), using: &rng)))
            case 2:
                body.append(.byteOrder([.littleEndian, .bigEndian, .swap].randomElement(using: &rng)!,
                                       bits: [16, 32, 64].randomElement(using: &rng)!, dst: dst))
            case 3:
                let bits: UInt8 = width == .bits64 ? [8, 16, 32].randomElement(using: &rng)! : [8, 16].randomElement(using: &rng)!
                body.append(.moveSignExtend(width, dst: dst, src: src, bits: bits))
            default:
                let operation = operations.randomElement(using: &rng)!
                let limit: Int32 = width == .bits64 ? 63 : 31
                if [.lsh, .rsh, .arsh].contains(operation) {
                    if Bool.random(using: &rng) {
                        body.append(.alu(operation, width, dst: dst, source: .immediate(Int32.random(in: 0...limit, using: &rng))))
                    } else {
                        // Keep register shift counts in range: the ISA leaves larger ones to the engine.
                        body.append(.alu(.and, .bits64, dst: src, source: .immediate(limit)))
                        body.append(.alu(operation, width, dst: dst, source: .register(src)))
                    }
                } else if Bool.random(using: &rng) {
                    body.append(.alu(operation, width, dst: dst, source: .register(src)))
                } else {
                    var immediate = [Int32(0), 1, -1, 2, Int32.min, Int32.max, Int32.random(in: .min ... .max, using: &rng)]
                        .randomElement(using: &rng)!
                    // The verifier rejects division by a constant zero (register divisors may be zero).
                    if immediate == 0 && [.div, .sdiv, .mod, .smod].contains(operation) { immediate = 3 }
                    body.append(.alu(operation, width, dst: dst, source: .immediate(immediate)))
                }
            }
        }
        // Conditional-jump offsets were drawn in body instructions; every body instruction is
        // one slot, so they stay inside the program (at most onto the final exit).
        decoded += body
        decoded.append(.exit)
        return decoded.flatMap { $0.encode() }
    }
}

@Suite("Differential test against the Linux kernel's eBPF")
struct KernelDifferentialTests {
    @Test("random ALU programs give the same r0 in the interpreter and in the kernel")
    func interpreterMatchesKernel() throws {
        guard let kernel = KernelEngine() else {
            print("SKIPPED: glibc syscall() not found")
            return
        }
        let probe = try BPFAssembler.assemble("mov %r0, 7\nexit")
        do {
            let probeResult = try kernel.run(probe)
            #expect(probeResult == 7, "kernel probe returned \(probeResult)")
        } catch {
            print("SKIPPED kernel differential test: the kernel refuses BPF here (\(error)); needs root and bpf(2)")
            return
        }
        let engines: [any DifferentialEngine] = [InterpreterEngine(), JITEngine()]
        var rng = SeededGenerator(state: 0x6b65_726e)
        var compared = 0, refused = 0
        for _ in 0..<500 {
            let program = ALUProgramGenerator.generate(&rng)
            let expected: UInt64
            do {
                expected = try kernel.run(program)
            } catch {
                if refused == 0 { print("first refusal: \(error)") }
                refused += 1
                continue
            }
            for engine in engines {
                let result = try engine.run(program)
                let text = (try? BPFDisassembler.disassemble(program)) ?? "?"
                #expect(result == expected, "\(engine.name) 0x\(String(result, radix: 16)) != kernel 0x\(String(expected, radix: 16)) for\n\(text)")
            }
            compared += 1
        }
        print("kernel differential: \(compared) programs compared, \(refused) refused by the verifier")
        #expect(compared >= 490)
    }
}
#endif
