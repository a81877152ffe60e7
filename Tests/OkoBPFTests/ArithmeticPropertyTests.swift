import OkoBPF
import Testing

/// A reference model of the ALU and jump semantics, written from RFC 9669 independently of the
/// interpreter, and checked against it over edge values.
enum ReferenceModel {
    static func alu64(_ op: BPFALUOperation, _ a: UInt64, _ b: UInt64) -> UInt64 {
        let sa = Int64(bitPattern: a), sb = Int64(bitPattern: b)
        switch op {
        case .add: return a &+ b
        case .sub: return a &- b
        case .mul: return a &* b
        case .div: return b == 0 ? 0 : a / b
        case .sdiv:
            if sb == 0 { return 0 }
            let (q, overflow) = sa.dividedReportingOverflow(by: sb)
            return UInt64(bitPattern: overflow ? Int64.min : q)
        case .or: return a | b
        case .and: return a & b
        case .lsh: return a << (b % 64)
        case .rsh: return a >> (b % 64)
        case .mod: return b == 0 ? a : a % b
        case .smod:
            if sb == 0 { return a }
            let (r, overflow) = sa.remainderReportingOverflow(dividingBy: sb)
            return UInt64(bitPattern: overflow ? 0 : r)
        case .xor: return a ^ b
        case .mov: return b
        case .arsh: return UInt64(bitPattern: sa >> Int64(b % 64))
        }
    }

    static func alu32(_ op: BPFALUOperation, _ a64: UInt64, _ b64: UInt64) -> UInt64 {
        let a = UInt32(a64 & 0xffff_ffff), b = UInt32(b64 & 0xffff_ffff)
        let sa = Int32(bitPattern: a), sb = Int32(bitPattern: b)
        let result: UInt32
        switch op {
        case .add: result = a &+ b
        case .sub: result = a &- b
        case .mul: result = a &* b
        case .div: result = b == 0 ? 0 : a / b
        case .sdiv:
            if sb == 0 { result = 0 } else {
                let (q, overflow) = sa.dividedReportingOverflow(by: sb)
                result = UInt32(bitPattern: overflow ? Int32.min : q)
            }
        case .or: result = a | b
        case .and: result = a & b
        case .lsh: result = a << (b % 32)
        case .rsh: result = a >> (b % 32)
        case .mod: result = b == 0 ? a : a % b
        case .smod:
            if sb == 0 { result = a } else {
                let (r, overflow) = sa.remainderReportingOverflow(dividingBy: sb)
                result = UInt32(bitPattern: overflow ? 0 : r)
            }
        case .xor: result = a ^ b
        case .mov: result = b
        case .arsh: result = UInt32(bitPattern: sa >> Int32(b % 32))
        }
        return UInt64(result)
    }

    static func jump(_ condition: BPFJumpCondition, _ width: BPFWidth, _ a64: UInt64, _ b64: UInt64) -> Bool {
        let a = width == .bits64 ? a64 : a64 & 0xffff_ffff
        let b = width == .bits64 ? b64 : b64 & 0xffff_ffff
        let sa = width == .bits64 ? Int64(bitPattern: a) : Int64(Int32(bitPattern: UInt32(a)))
        let sb = width == .bits64 ? Int64(bitPattern: b) : Int64(Int32(bitPattern: UInt32(b)))
        switch condition {
        case .jeq: return a == b
        case .jne: return a != b
        case .jgt: return a > b
        case .jge: return a >= b
        case .jlt: return a < b
        case .jle: return a <= b
        case .jset: return a & b != 0
        case .jsgt: return sa > sb
        case .jsge: return sa >= sb
        case .jslt: return sa < sb
        case .jsle: return sa <= sb
        }
    }
}

enum EdgeValues {
    static let registers: [UInt64] = [
        0, 1, 2, 7, 31, 32, 63, 64, UInt64.max, UInt64.max - 6,
        UInt64(bitPattern: Int64(Int32.min)), UInt64(Int32.max), 0x8000_0000, 0xffff_ffff, 0x1_0000_0000,
        UInt64(bitPattern: Int64.min), UInt64(Int64.max), 0x8000_0000_0000_0001, 0x0123_4567_89ab_cdef,
    ]
    static let immediates: [Int32] = [0, 1, -1, 2, -7, 31, 32, 63, Int32.min, Int32.max, 0x1234]
}

@Suite("ALU and jump semantics against a reference model")
struct ArithmeticPropertyTests {
    static func run(_ instructions: [DecodedInstruction]) throws -> UInt64 {
        let program = instructions.flatMap { $0.encode() }
        return try BPFInterpreter(instructions: program, helpers: BPFHelperTable()).run(memory: nil, length: 0)
    }

    static func load(_ register: UInt8, _ value: UInt64) -> DecodedInstruction {
        .loadImmediate64(dst: register, value: value, pseudoSource: 0)
    }

    @Test("ALU register forms", arguments: BPFALUOperation.allCases, [BPFWidth.bits64, .bits32])
    func aluRegister(operation: BPFALUOperation, width: BPFWidth) throws {
        for a in EdgeValues.registers {
            for b in EdgeValues.registers {
                let result = try Self.run([
                    Self.load(1, a), Self.load(2, b),
                    .alu(operation, width, dst: 1, source: .register(2)),
                    .alu(.mov, .bits64, dst: 0, source: .register(1)), .exit,
                ])
                let expected = width == .bits64 ? ReferenceModel.alu64(operation, a, b) : ReferenceModel.alu32(operation, a, b)
                #expect(result == expected, "\(operation)\(width.rawValue) 0x\(String(a, radix: 16)), 0x\(String(b, radix: 16))")
            }
        }
    }

    @Test("ALU immediate forms (imm sign-extended for 64-bit ops)", arguments: BPFALUOperation.allCases, [BPFWidth.bits64, .bits32])
    func aluImmediate(operation: BPFALUOperation, width: BPFWidth) throws {
        for a in EdgeValues.registers {
            for imm in EdgeValues.immediates {
                let result = try Self.run([
                    Self.load(1, a),
                    .alu(operation, width, dst: 1, source: .immediate(imm)),
                    .alu(.mov, .bits64, dst: 0, source: .register(1)), .exit,
                ])
                let b = UInt64(bitPattern: Int64(imm))
                let expected = width == .bits64 ? ReferenceModel.alu64(operation, a, b) : ReferenceModel.alu32(operation, a, b)
                #expect(result == expected, "\(operation)\(width.rawValue) 0x\(String(a, radix: 16)), \(imm)")
            }
        }
    }

    @Test("neg, movsx and byte-order conversions")
    func unaryOperations() throws {
        for a in EdgeValues.registers {
            func check(_ op: DecodedInstruction, _ expected: UInt64) throws {
                let result = try Self.run([Self.load(1, a), op, .alu(.mov, .bits64, dst: 0, source: .register(1)), .exit])
                #expect(result == expected, "\(BPFDisassembler.text(of: op)) on 0x\(String(a, radix: 16))")
            }
            let low32 = a & 0xffff_ffff
            try check(.negate(.bits64, dst: 1), ~a &+ 1)
            try check(.negate(.bits32, dst: 1), (~low32 &+ 1) & 0xffff_ffff)
            try check(.moveSignExtend(.bits64, dst: 1, src: 1, bits: 8), a & 0x80 != 0 ? a | ~0xff : a & 0xff)
            try check(.moveSignExtend(.bits64, dst: 1, src: 1, bits: 16), a & 0x8000 != 0 ? a | ~0xffff : a & 0xffff)
            try check(.moveSignExtend(.bits64, dst: 1, src: 1, bits: 32), a & 0x8000_0000 != 0 ? a | ~0xffff_ffff : low32)
            try check(.moveSignExtend(.bits32, dst: 1, src: 1, bits: 8), (a & 0x80 != 0 ? a | ~0xff : a & 0xff) & 0xffff_ffff)
            try check(.moveSignExtend(.bits32, dst: 1, src: 1, bits: 16), (a & 0x8000 != 0 ? a | ~0xffff : a & 0xffff) & 0xffff_ffff)
            // Byte order: build the expected value byte by byte.
            func reversedBytes(_ value: UInt64, _ count: Int) -> UInt64 {
                var out: UInt64 = 0
                for index in 0..<count { out = (out << 8) | ((value >> (8 * UInt64(index))) & 0xff) }
                return out
            }
            for bits in [16, 32, 64] {
                let mask: UInt64 = bits == 64 ? .max : (1 << UInt64(bits)) - 1
                try check(.byteOrder(.littleEndian, bits: UInt8(bits), dst: 1), a & mask)
                try check(.byteOrder(.bigEndian, bits: UInt8(bits), dst: 1), reversedBytes(a, bits / 8))
                try check(.byteOrder(.swap, bits: UInt8(bits), dst: 1), reversedBytes(a, bits / 8))
            }
        }
    }

    @Test("conditional jumps", arguments: BPFJumpCondition.allCases, [BPFWidth.bits64, .bits32])
    func conditionalJumps(condition: BPFJumpCondition, width: BPFWidth) throws {
        for a in EdgeValues.registers {
            for b in EdgeValues.registers {
                let taken = try Self.run([
                    Self.load(1, a), Self.load(2, b),
                    .alu(.mov, .bits64, dst: 0, source: .immediate(1)),
                    .conditionalJump(condition, width, dst: 1, source: .register(2), offset: 1),
                    .alu(.mov, .bits64, dst: 0, source: .immediate(0)), .exit,
                ])
                #expect((taken == 1) == ReferenceModel.jump(condition, width, a, b),
                        "\(condition)\(width.rawValue) 0x\(String(a, radix: 16)), 0x\(String(b, radix: 16))")
            }
            for imm in EdgeValues.immediates {
                let taken = try Self.run([
                    Self.load(1, a),
                    .alu(.mov, .bits64, dst: 0, source: .immediate(1)),
                    .conditionalJump(condition, width, dst: 1, source: .immediate(imm), offset: 1),
                    .alu(.mov, .bits64, dst: 0, source: .immediate(0)), .exit,
                ])
                let b = UInt64(bitPattern: Int64(imm))
                #expect((taken == 1) == ReferenceModel.jump(condition, width, a, b),
                        "\(condition)\(width.rawValue) 0x\(String(a, radix: 16)), \(imm)")
            }
        }
    }
}
