// OkoBPF: the eBPF instruction set (RFC 9669) as data.
//
// Design note
// - `BPFInstruction` is the 8-byte wire encoding, laid out exactly as in an ELF section, so a
//   program is an `[BPFInstruction]` that can be reinterpreted from raw bytes without copying
//   field by field. A 64-bit immediate load (LDDW) occupies two consecutive slots; the second
//   slot carries the high 32 bits in `imm` and has opcode 0.
// - Everything above this file (decoder, assembler, interpreter, JIT, verifier) works on these
//   slots; the typed view lives in `DecodedInstruction`.
// - Values of this type are immutable and `Sendable`; they carry no pointers.

/// One 64-bit eBPF instruction slot in its wire layout: `op:8 dst:4 src:4 off:16 imm:32` (little endian).
@frozen
public struct BPFInstruction: Hashable, Sendable {
    public var opcode: UInt8
    /// Low nibble: destination register; high nibble: source register.
    public var registers: UInt8
    public var offset: Int16
    public var immediate: Int32

    @inlinable
    public init(opcode: UInt8, dst: UInt8 = 0, src: UInt8 = 0, offset: Int16 = 0, immediate: Int32 = 0) {
        self.opcode = opcode
        self.registers = (dst & 0x0f) | ((src & 0x0f) << 4)
        self.offset = offset
        self.immediate = immediate
    }

    @inlinable public var dst: UInt8 { registers & 0x0f }
    @inlinable public var src: UInt8 { registers >> 4 }

    /// The instruction class: the low three bits of the opcode.
    @inlinable public var instructionClass: UInt8 { opcode & 0x07 }

    /// The raw little-endian 64-bit word, as `-- raw` sections of the conformance suite print it.
    @inlinable public var rawValue: UInt64 {
        UInt64(opcode) | (UInt64(registers) << 8) | (UInt64(UInt16(bitPattern: offset)) << 16)
            | (UInt64(UInt32(bitPattern: immediate)) << 32)
    }

    @inlinable public init(rawValue: UInt64) {
        opcode = UInt8(truncatingIfNeeded: rawValue)
        registers = UInt8(truncatingIfNeeded: rawValue >> 8)
        offset = Int16(bitPattern: UInt16(truncatingIfNeeded: rawValue >> 16))
        immediate = Int32(bitPattern: UInt32(truncatingIfNeeded: rawValue >> 32))
    }

    /// Decodes a byte buffer (ELF section contents or a conformance program) into slots.
    /// Returns nil when the length is not a multiple of 8.
    public static func decode(bytes: some Collection<UInt8>) -> [BPFInstruction]? {
        guard bytes.count % 8 == 0 else { return nil }
        var result: [BPFInstruction] = []
        result.reserveCapacity(bytes.count / 8)
        var word: UInt64 = 0
        var shift: UInt64 = 0
        for byte in bytes {
            word |= UInt64(byte) << shift
            shift += 8
            if shift == 64 {
                result.append(BPFInstruction(rawValue: word))
                word = 0
                shift = 0
            }
        }
        return result
    }

    /// The little-endian bytes of `instructions`, as they would appear in an ELF section.
    public static func encode(_ instructions: [BPFInstruction]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(instructions.count * 8)
        for instruction in instructions {
            var word = instruction.rawValue
            for _ in 0..<8 {
                out.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return out
    }
}

/// Opcode field constants (RFC 9669 section 3 and 4).
public enum BPFOpcode {
    // classes
    public static let classLD: UInt8 = 0x00
    public static let classLDX: UInt8 = 0x01
    public static let classST: UInt8 = 0x02
    public static let classSTX: UInt8 = 0x03
    public static let classALU: UInt8 = 0x04
    public static let classJMP: UInt8 = 0x05
    public static let classJMP32: UInt8 = 0x06
    public static let classALU64: UInt8 = 0x07

    // source bit for ALU/JMP
    public static let sourceK: UInt8 = 0x00
    public static let sourceX: UInt8 = 0x08

    // ALU operations (high 4 bits)
    public static let add: UInt8 = 0x00
    public static let sub: UInt8 = 0x10
    public static let mul: UInt8 = 0x20
    public static let div: UInt8 = 0x30
    public static let or: UInt8 = 0x40
    public static let and: UInt8 = 0x50
    public static let lsh: UInt8 = 0x60
    public static let rsh: UInt8 = 0x70
    public static let neg: UInt8 = 0x80
    public static let mod: UInt8 = 0x90
    public static let xor: UInt8 = 0xa0
    public static let mov: UInt8 = 0xb0
    public static let arsh: UInt8 = 0xc0
    public static let end: UInt8 = 0xd0

    // JMP operations (high 4 bits)
    public static let ja: UInt8 = 0x00
    public static let jeq: UInt8 = 0x10
    public static let jgt: UInt8 = 0x20
    public static let jge: UInt8 = 0x30
    public static let jset: UInt8 = 0x40
    public static let jne: UInt8 = 0x50
    public static let jsgt: UInt8 = 0x60
    public static let jsge: UInt8 = 0x70
    public static let call: UInt8 = 0x80
    public static let exit: UInt8 = 0x90
    public static let jlt: UInt8 = 0xa0
    public static let jle: UInt8 = 0xb0
    public static let jslt: UInt8 = 0xc0
    public static let jsle: UInt8 = 0xd0

    // load/store size (bits 3-4) and mode (bits 5-7)
    public static let sizeW: UInt8 = 0x00
    public static let sizeH: UInt8 = 0x08
    public static let sizeB: UInt8 = 0x10
    public static let sizeDW: UInt8 = 0x18
    public static let modeIMM: UInt8 = 0x00
    public static let modeABS: UInt8 = 0x20
    public static let modeIND: UInt8 = 0x40
    public static let modeMEM: UInt8 = 0x60
    public static let modeMEMSX: UInt8 = 0x80
    public static let modeATOMIC: UInt8 = 0xc0

    /// LDDW: `lddw dst, imm64` (two slots).
    public static let lddw: UInt8 = classLD | sizeDW | modeIMM

    // call src values
    public static let callHelper: UInt8 = 0
    public static let callLocal: UInt8 = 1
    public static let callHelperByBTFID: UInt8 = 2

    // LDDW src values (pseudo sources used by ELF relocation)
    public static let pseudoMapFD: UInt8 = 1
    public static let pseudoMapValue: UInt8 = 2

    // atomic operations (imm field)
    public static let atomicFetch: Int32 = 0x01
    public static let atomicXchg: Int32 = 0xe0 | 0x01
    public static let atomicCmpxchg: Int32 = 0xf0 | 0x01
}

/// Limits shared by every execution engine.
public enum BPFLimits {
    /// Bytes of stack per call frame.
    public static let stackSizePerFrame = 512
    /// Maximum depth of bpf-to-bpf calls, the entry frame included (Linux: 8).
    public static let maxCallDepth = 8
    /// Number of general registers r0..r10.
    public static let registerCount = 11
}

/// A helper function as the engines call it: five 64-bit arguments in r1..r5, result in r0.
/// `@convention(c)` so that the JIT can call it directly with the SysV ABI.
public typealias BPFHelperFunction = @convention(c) (UInt64, UInt64, UInt64, UInt64, UInt64) -> UInt64
