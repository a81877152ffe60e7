// Typed view of an eBPF program and the structural checks every engine relies on.
//
// `BPFDecoder.decode` turns wire slots into `DecodedInstruction`s (one per instruction; LDDW spans two
// slots) and rejects programs that no engine could run safely: unknown opcodes, reserved fields that
// are set, registers above r10, writes to r10, jumps or local calls that leave the program or land in
// the second slot of an LDDW, and a last instruction that can fall off the end.

/// Operand width of an ALU or conditional jump operation.
public enum BPFWidth: UInt8, Sendable, Hashable {
    case bits32 = 32
    case bits64 = 64
}

/// Second operand of an ALU or jump instruction.
public enum BPFOperand: Sendable, Hashable {
    case register(UInt8)
    case immediate(Int32)
}

/// Size of a memory access.
public enum BPFAccessSize: UInt8, Sendable, Hashable, CaseIterable {
    case byte = 1
    case half = 2
    case word = 4
    case double = 8

    /// The two size bits of a load/store opcode.
    public var opcodeBits: UInt8 {
        switch self {
        case .byte: BPFOpcode.sizeB
        case .half: BPFOpcode.sizeH
        case .word: BPFOpcode.sizeW
        case .double: BPFOpcode.sizeDW
        }
    }

    init(opcodeBits: UInt8) {
        switch opcodeBits & 0x18 {
        case BPFOpcode.sizeB: self = .byte
        case BPFOpcode.sizeH: self = .half
        case BPFOpcode.sizeW: self = .word
        default: self = .double
        }
    }
}

/// Binary ALU operations. `sdiv`/`smod` are the cpu v4 signed forms (opcode div/mod with offset 1).
public enum BPFALUOperation: String, Sendable, Hashable, CaseIterable {
    case add, sub, mul, div, sdiv, or, and, lsh, rsh, mod, smod, xor, mov, arsh
}

/// Conditional jump tests.
public enum BPFJumpCondition: String, Sendable, Hashable, CaseIterable {
    case jeq, jgt, jge, jset, jne, jsgt, jsge, jlt, jle, jslt, jsle
}

/// Byte-order conversions: `le`/`be` (ALU class, to little/big endian) and `swap` (cpu v4 bswap).
public enum BPFByteOrder: String, Sendable, Hashable {
    case littleEndian = "le"
    case bigEndian = "be"
    case swap = "swap"
}

/// Atomic read-modify-write operations (the `imm` of an ATOMIC store, fetch bit separate).
public enum BPFAtomicOperation: String, Sendable, Hashable, CaseIterable {
    case add, or, and, xor, xchg, cmpxchg
}

/// One eBPF instruction in typed form.
public enum DecodedInstruction: Sendable, Hashable {
    /// `dst = dst op source` (for `mov`: `dst = source`). 32-bit forms zero-extend the result.
    case alu(BPFALUOperation, BPFWidth, dst: UInt8, source: BPFOperand)
    /// `dst = -dst`.
    case negate(BPFWidth, dst: UInt8)
    /// cpu v4 `movsx`: `dst = signExtend(src[0..<bits])`, 32-bit form zero-extends to 64 afterwards.
    case moveSignExtend(BPFWidth, dst: UInt8, src: UInt8, bits: UInt8)
    /// `le16/be32/swap64 ...`: byte-order conversion of the low `bits` of dst.
    case byteOrder(BPFByteOrder, bits: UInt8, dst: UInt8)
    /// `lddw dst, imm64`; `pseudoSource` is the LDDW src field (0 = plain constant).
    case loadImmediate64(dst: UInt8, value: UInt64, pseudoSource: UInt8)
    /// `dst = *(size *)(src + offset)`, sign-extending when `signExtend` (cpu v4 MEMSX).
    case load(BPFAccessSize, signExtend: Bool, dst: UInt8, base: UInt8, offset: Int16)
    /// `*(size *)(dst + offset) = value`.
    case store(BPFAccessSize, base: UInt8, offset: Int16, value: BPFOperand)
    /// Atomic op on `*(size *)(base + offset)` with `src`; `fetch` returns the old value in src
    /// (cmpxchg: in r0). Only word and double sizes exist.
    case atomic(BPFAtomicOperation, BPFAccessSize, fetch: Bool, base: UInt8, offset: Int16, src: UInt8)
    /// Legacy packet load: `r0 = ntoh(*(size *)(packet + [index register] + imm))`.
    case packetLoad(BPFAccessSize, indexRegister: UInt8?, immediate: Int32)
    /// `ja +offset` (JMP class).
    case jump(offset: Int16)
    /// cpu v4 `gotol` / `ja32` (JMP32 class JA): 32-bit offset in imm.
    case jumpLong(offset: Int32)
    case conditionalJump(BPFJumpCondition, BPFWidth, dst: UInt8, source: BPFOperand, offset: Int16)
    /// Helper call by id (src 0).
    case callHelper(id: Int32)
    /// bpf-to-bpf call (src 1); target is `pc + 1 + offset`.
    case callLocal(offset: Int32)
    /// `callx`: helper whose id is in register `dst` (the conformance suite's encoding: opcode 0x8d).
    case callRegister(UInt8)
    case exit

    /// Number of 8-byte slots the instruction occupies.
    public var slotCount: Int {
        if case .loadImmediate64 = self { return 2 }
        return 1
    }
}

/// A structurally invalid program.
public struct BPFDecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        case emptyProgram
        case unknownOpcode(UInt8)
        case invalidRegister(UInt8)
        case writeToFrameRegister
        case reservedFieldNonZero(String)
        case jumpOutOfRange(target: Int)
        case jumpIntoLDDW(target: Int)
        case truncatedLDDW
        case invalidImmediate(Int32)
        case missingExit
    }

    /// Slot index of the offending instruction.
    public var instructionIndex: Int
    public var reason: Reason

    public init(instructionIndex: Int, reason: Reason) {
        self.instructionIndex = instructionIndex
        self.reason = reason
    }

    public var description: String {
        let what: String
        switch reason {
        case .emptyProgram: what = "program is empty"
        case .unknownOpcode(let op): what = "unknown opcode 0x\(String(op, radix: 16))"
        case .invalidRegister(let r): what = "invalid register r\(r)"
        case .writeToFrameRegister: what = "r10 (frame pointer) is read-only"
        case .reservedFieldNonZero(let field): what = "reserved field \(field) must be zero"
        case .jumpOutOfRange(let target): what = "jump target \(target) is outside the program"
        case .jumpIntoLDDW(let target): what = "jump target \(target) is the second slot of an lddw"
        case .truncatedLDDW: what = "lddw is missing its second slot"
        case .invalidImmediate(let imm): what = "invalid immediate \(imm)"
        case .missingExit: what = "last instruction is neither exit nor an unconditional jump"
        }
        return "instruction \(instructionIndex): \(what)"
    }
}

/// A decoded instruction and the slot index where it starts.
public struct BPFDecodedEntry: Sendable, Hashable {
    public var slot: Int
    public var instruction: DecodedInstruction
}

public enum BPFDecoder {
    /// Decodes and validates a whole program. Entries are in program order; `slot` is the wire index.
    public static func decode(_ program: [BPFInstruction]) throws(BPFDecodeError) -> [BPFDecodedEntry] {
        guard !program.isEmpty else { throw BPFDecodeError(instructionIndex: 0, reason: .emptyProgram) }
        var entries: [BPFDecodedEntry] = []
        entries.reserveCapacity(program.count)
        var isSecondSlot = [Bool](repeating: false, count: program.count)
        var slot = 0
        while slot < program.count {
            let decoded = try decodeOne(program, at: slot)
            entries.append(BPFDecodedEntry(slot: slot, instruction: decoded))
            if decoded.slotCount == 2 { isSecondSlot[slot + 1] = true }
            slot += decoded.slotCount
        }
        // Control-flow targets must be instruction starts inside the program.
        for entry in entries {
            guard let target = branchTarget(of: entry.instruction, at: entry.slot) else { continue }
            guard target >= 0 && target < program.count else {
                throw BPFDecodeError(instructionIndex: entry.slot, reason: .jumpOutOfRange(target: target))
            }
            if isSecondSlot[target] {
                throw BPFDecodeError(instructionIndex: entry.slot, reason: .jumpIntoLDDW(target: target))
            }
        }
        let last = entries[entries.count - 1]
        switch last.instruction {
        case .exit, .jump, .jumpLong: break
        default: throw BPFDecodeError(instructionIndex: last.slot, reason: .missingExit)
        }
        return entries
    }

    /// The slot a jump or local call at `slot` transfers control to, or nil for other instructions.
    public static func branchTarget(of instruction: DecodedInstruction, at slot: Int) -> Int? {
        switch instruction {
        case .jump(let offset): slot + 1 + Int(offset)
        case .jumpLong(let offset): slot + 1 + Int(offset)
        case .conditionalJump(_, _, _, _, let offset): slot + 1 + Int(offset)
        case .callLocal(let offset): slot + 1 + Int(offset)
        default: nil
        }
    }

    /// Decodes the instruction starting at `slot` without cross-instruction checks.
    public static func decodeOne(_ program: [BPFInstruction], at slot: Int) throws(BPFDecodeError) -> DecodedInstruction {
        let ins = program[slot]
        func fail(_ reason: BPFDecodeError.Reason) -> BPFDecodeError {
            BPFDecodeError(instructionIndex: slot, reason: reason)
        }
        func register(_ r: UInt8) throws(BPFDecodeError) -> UInt8 {
            guard r <= 10 else { throw fail(.invalidRegister(r)) }
            return r
        }
        func writable(_ r: UInt8) throws(BPFDecodeError) -> UInt8 {
            let r = try register(r)
            guard r != 10 else { throw fail(.writeToFrameRegister) }
            return r
        }
        func requireZero(_ value: some BinaryInteger, _ field: String) throws(BPFDecodeError) {
            guard value == 0 else { throw fail(.reservedFieldNonZero(field)) }
        }

        let op = ins.opcode
        switch ins.instructionClass {
        case BPFOpcode.classALU, BPFOpcode.classALU64:
            let width: BPFWidth = ins.instructionClass == BPFOpcode.classALU64 ? .bits64 : .bits32
            let isRegister = op & BPFOpcode.sourceX != 0
            let code = op & 0xf0
            if code == BPFOpcode.end {
                let order: BPFByteOrder
                if width == .bits64 {
                    guard !isRegister else { throw fail(.unknownOpcode(op)) }
                    order = .swap
                } else {
                    order = isRegister ? .bigEndian : .littleEndian
                }
                try requireZero(ins.src, "src")
                try requireZero(ins.offset, "offset")
                guard ins.immediate == 16 || ins.immediate == 32 || ins.immediate == 64 else {
                    throw fail(.invalidImmediate(ins.immediate))
                }
                return .byteOrder(order, bits: UInt8(ins.immediate), dst: try writable(ins.dst))
            }
            if code == BPFOpcode.neg {
                guard !isRegister else { throw fail(.unknownOpcode(op)) }
                try requireZero(ins.src, "src")
                try requireZero(ins.offset, "offset")
                try requireZero(ins.immediate, "imm")
                return .negate(width, dst: try writable(ins.dst))
            }
            let operation: BPFALUOperation
            switch code {
            case BPFOpcode.add: operation = .add
            case BPFOpcode.sub: operation = .sub
            case BPFOpcode.mul: operation = .mul
            case BPFOpcode.div, BPFOpcode.mod:
                guard ins.offset == 0 || ins.offset == 1 else { throw fail(.reservedFieldNonZero("offset")) }
                if code == BPFOpcode.div {
                    operation = ins.offset == 1 ? .sdiv : .div
                } else {
                    operation = ins.offset == 1 ? .smod : .mod
                }
            case BPFOpcode.or: operation = .or
            case BPFOpcode.and: operation = .and
            case BPFOpcode.lsh: operation = .lsh
            case BPFOpcode.rsh: operation = .rsh
            case BPFOpcode.xor: operation = .xor
            case BPFOpcode.mov: operation = .mov
            case BPFOpcode.arsh: operation = .arsh
            default: throw fail(.unknownOpcode(op))
            }
            let dst = try writable(ins.dst)
            if operation == .mov && ins.offset != 0 {
                // cpu v4 movsx: register source, offset = source bits.
                guard isRegister, ins.immediate == 0 else { throw fail(.reservedFieldNonZero("imm")) }
                let bits = ins.offset
                guard bits == 8 || bits == 16 || (bits == 32 && width == .bits64) else {
                    throw fail(.reservedFieldNonZero("offset"))
                }
                return .moveSignExtend(width, dst: dst, src: try register(ins.src), bits: UInt8(bits))
            }
            if operation != .sdiv && operation != .smod {
                try requireZero(ins.offset, "offset")
            }
            if isRegister {
                try requireZero(ins.immediate, "imm")
                return .alu(operation, width, dst: dst, source: .register(try register(ins.src)))
            }
            try requireZero(ins.src, "src")
            return .alu(operation, width, dst: dst, source: .immediate(ins.immediate))

        case BPFOpcode.classJMP, BPFOpcode.classJMP32:
            let is32 = ins.instructionClass == BPFOpcode.classJMP32
            let isRegister = op & BPFOpcode.sourceX != 0
            let code = op & 0xf0
            switch code {
            case BPFOpcode.ja:
                guard !isRegister else { throw fail(.unknownOpcode(op)) }
                try requireZero(ins.dst, "dst")
                try requireZero(ins.src, "src")
                if is32 {
                    try requireZero(ins.offset, "offset")
                    return .jumpLong(offset: ins.immediate)
                }
                try requireZero(ins.immediate, "imm")
                return .jump(offset: ins.offset)
            case BPFOpcode.call:
                guard !is32 else { throw fail(.unknownOpcode(op)) }
                try requireZero(ins.offset, "offset")
                if isRegister {
                    try requireZero(ins.src, "src")
                    try requireZero(ins.immediate, "imm")
                    return .callRegister(try register(ins.dst))
                }
                try requireZero(ins.dst, "dst")
                switch ins.src {
                case BPFOpcode.callHelper: return .callHelper(id: ins.immediate)
                case BPFOpcode.callLocal: return .callLocal(offset: ins.immediate)
                default: throw fail(.reservedFieldNonZero("src"))
                }
            case BPFOpcode.exit:
                guard !is32, !isRegister else { throw fail(.unknownOpcode(op)) }
                try requireZero(ins.dst, "dst")
                try requireZero(ins.src, "src")
                try requireZero(ins.offset, "offset")
                try requireZero(ins.immediate, "imm")
                return .exit
            default:
                let condition: BPFJumpCondition
                switch code {
                case BPFOpcode.jeq: condition = .jeq
                case BPFOpcode.jgt: condition = .jgt
                case BPFOpcode.jge: condition = .jge
                case BPFOpcode.jset: condition = .jset
                case BPFOpcode.jne: condition = .jne
                case BPFOpcode.jsgt: condition = .jsgt
                case BPFOpcode.jsge: condition = .jsge
                case BPFOpcode.jlt: condition = .jlt
                case BPFOpcode.jle: condition = .jle
                case BPFOpcode.jslt: condition = .jslt
                case BPFOpcode.jsle: condition = .jsle
                default: throw fail(.unknownOpcode(op))
                }
                let dst = try register(ins.dst)
                let source: BPFOperand
                if isRegister {
                    try requireZero(ins.immediate, "imm")
                    source = .register(try register(ins.src))
                } else {
                    try requireZero(ins.src, "src")
                    source = .immediate(ins.immediate)
                }
                return .conditionalJump(condition, is32 ? .bits32 : .bits64, dst: dst, source: source, offset: ins.offset)
            }

        case BPFOpcode.classLD:
            let mode = op & 0xe0
            let size = BPFAccessSize(opcodeBits: op)
            if op == BPFOpcode.lddw {
                guard slot + 1 < program.count else { throw fail(.truncatedLDDW) }
                let high = program[slot + 1]
                guard high.opcode == 0, high.registers == 0, high.offset == 0 else {
                    throw BPFDecodeError(instructionIndex: slot + 1, reason: .reservedFieldNonZero("lddw second slot"))
                }
                try requireZero(ins.offset, "offset")
                guard ins.src <= 6 else { throw fail(.reservedFieldNonZero("src")) }
                let value = UInt64(UInt32(bitPattern: ins.immediate)) | (UInt64(UInt32(bitPattern: high.immediate)) << 32)
                return .loadImmediate64(dst: try writable(ins.dst), value: value, pseudoSource: ins.src)
            }
            guard (mode == BPFOpcode.modeABS || mode == BPFOpcode.modeIND), size != .double else {
                throw fail(.unknownOpcode(op))
            }
            try requireZero(ins.offset, "offset")
            try requireZero(ins.dst, "dst")
            if mode == BPFOpcode.modeABS {
                try requireZero(ins.src, "src")
                return .packetLoad(size, indexRegister: nil, immediate: ins.immediate)
            }
            return .packetLoad(size, indexRegister: try register(ins.src), immediate: ins.immediate)

        case BPFOpcode.classLDX:
            let mode = op & 0xe0
            let size = BPFAccessSize(opcodeBits: op)
            guard mode == BPFOpcode.modeMEM || (mode == BPFOpcode.modeMEMSX && size != .double) else {
                throw fail(.unknownOpcode(op))
            }
            try requireZero(ins.immediate, "imm")
            return .load(size, signExtend: mode == BPFOpcode.modeMEMSX, dst: try writable(ins.dst),
                         base: try register(ins.src), offset: ins.offset)

        case BPFOpcode.classST:
            guard op & 0xe0 == BPFOpcode.modeMEM else { throw fail(.unknownOpcode(op)) }
            try requireZero(ins.src, "src")
            return .store(BPFAccessSize(opcodeBits: op), base: try register(ins.dst), offset: ins.offset,
                          value: .immediate(ins.immediate))

        default: // STX
            let mode = op & 0xe0
            let size = BPFAccessSize(opcodeBits: op)
            if mode == BPFOpcode.modeMEM {
                try requireZero(ins.immediate, "imm")
                return .store(size, base: try register(ins.dst), offset: ins.offset, value: .register(try register(ins.src)))
            }
            guard mode == BPFOpcode.modeATOMIC, size == .word || size == .double else { throw fail(.unknownOpcode(op)) }
            let imm = ins.immediate
            let fetch = imm & BPFOpcode.atomicFetch != 0
            let operation: BPFAtomicOperation
            switch imm & ~BPFOpcode.atomicFetch {
            case Int32(BPFOpcode.add): operation = .add
            case Int32(BPFOpcode.or): operation = .or
            case Int32(BPFOpcode.and): operation = .and
            case Int32(BPFOpcode.xor): operation = .xor
            case 0xe0 where fetch: operation = .xchg
            case 0xf0 where fetch: operation = .cmpxchg
            default: throw fail(.invalidImmediate(imm))
            }
            let base = try register(ins.dst)
            // Fetching forms write the old value into src (cmpxchg writes r0).
            let src = fetch && operation != .cmpxchg ? try writable(ins.src) : try register(ins.src)
            return .atomic(operation, size, fetch: fetch, base: base, offset: ins.offset, src: src)
        }
    }
}

extension DecodedInstruction {
    /// The wire slots of this instruction (two for LDDW). Inverse of `BPFDecoder.decodeOne`.
    public func encode() -> [BPFInstruction] {
        func aluCode(_ operation: BPFALUOperation) -> (UInt8, Int16) {
            switch operation {
            case .add: (BPFOpcode.add, 0)
            case .sub: (BPFOpcode.sub, 0)
            case .mul: (BPFOpcode.mul, 0)
            case .div: (BPFOpcode.div, 0)
            case .sdiv: (BPFOpcode.div, 1)
            case .or: (BPFOpcode.or, 0)
            case .and: (BPFOpcode.and, 0)
            case .lsh: (BPFOpcode.lsh, 0)
            case .rsh: (BPFOpcode.rsh, 0)
            case .mod: (BPFOpcode.mod, 0)
            case .smod: (BPFOpcode.mod, 1)
            case .xor: (BPFOpcode.xor, 0)
            case .mov: (BPFOpcode.mov, 0)
            case .arsh: (BPFOpcode.arsh, 0)
            }
        }
        func aluClass(_ width: BPFWidth) -> UInt8 { width == .bits64 ? BPFOpcode.classALU64 : BPFOpcode.classALU }
        func jumpCode(_ condition: BPFJumpCondition) -> UInt8 {
            switch condition {
            case .jeq: BPFOpcode.jeq
            case .jgt: BPFOpcode.jgt
            case .jge: BPFOpcode.jge
            case .jset: BPFOpcode.jset
            case .jne: BPFOpcode.jne
            case .jsgt: BPFOpcode.jsgt
            case .jsge: BPFOpcode.jsge
            case .jlt: BPFOpcode.jlt
            case .jle: BPFOpcode.jle
            case .jslt: BPFOpcode.jslt
            case .jsle: BPFOpcode.jsle
            }
        }
        switch self {
        case .alu(let operation, let width, let dst, let source):
            let (code, offset) = aluCode(operation)
            switch source {
            case .register(let src):
                return [BPFInstruction(opcode: aluClass(width) | code | BPFOpcode.sourceX, dst: dst, src: src, offset: offset)]
            case .immediate(let imm):
                return [BPFInstruction(opcode: aluClass(width) | code, dst: dst, offset: offset, immediate: imm)]
            }
        case .negate(let width, let dst):
            return [BPFInstruction(opcode: aluClass(width) | BPFOpcode.neg, dst: dst)]
        case .moveSignExtend(let width, let dst, let src, let bits):
            return [BPFInstruction(opcode: aluClass(width) | BPFOpcode.mov | BPFOpcode.sourceX, dst: dst, src: src,
                                   offset: Int16(bits))]
        case .byteOrder(let order, let bits, let dst):
            let opcode: UInt8
            switch order {
            case .littleEndian: opcode = BPFOpcode.classALU | BPFOpcode.end
            case .bigEndian: opcode = BPFOpcode.classALU | BPFOpcode.end | BPFOpcode.sourceX
            case .swap: opcode = BPFOpcode.classALU64 | BPFOpcode.end
            }
            return [BPFInstruction(opcode: opcode, dst: dst, immediate: Int32(bits))]
        case .loadImmediate64(let dst, let value, let pseudoSource):
            return [
                BPFInstruction(opcode: BPFOpcode.lddw, dst: dst, src: pseudoSource,
                               immediate: Int32(bitPattern: UInt32(truncatingIfNeeded: value))),
                BPFInstruction(opcode: 0, immediate: Int32(bitPattern: UInt32(truncatingIfNeeded: value >> 32))),
            ]
        case .load(let size, let signExtend, let dst, let base, let offset):
            let mode = signExtend ? BPFOpcode.modeMEMSX : BPFOpcode.modeMEM
            return [BPFInstruction(opcode: BPFOpcode.classLDX | mode | size.opcodeBits, dst: dst, src: base, offset: offset)]
        case .store(let size, let base, let offset, let value):
            switch value {
            case .register(let src):
                return [BPFInstruction(opcode: BPFOpcode.classSTX | BPFOpcode.modeMEM | size.opcodeBits, dst: base,
                                       src: src, offset: offset)]
            case .immediate(let imm):
                return [BPFInstruction(opcode: BPFOpcode.classST | BPFOpcode.modeMEM | size.opcodeBits, dst: base,
                                       offset: offset, immediate: imm)]
            }
        case .atomic(let operation, let size, let fetch, let base, let offset, let src):
            var imm: Int32
            switch operation {
            case .add: imm = Int32(BPFOpcode.add)
            case .or: imm = Int32(BPFOpcode.or)
            case .and: imm = Int32(BPFOpcode.and)
            case .xor: imm = Int32(BPFOpcode.xor)
            case .xchg: imm = BPFOpcode.atomicXchg
            case .cmpxchg: imm = BPFOpcode.atomicCmpxchg
            }
            if fetch { imm |= BPFOpcode.atomicFetch }
            return [BPFInstruction(opcode: BPFOpcode.classSTX | BPFOpcode.modeATOMIC | size.opcodeBits, dst: base,
                                   src: src, offset: offset, immediate: imm)]
        case .packetLoad(let size, let indexRegister, let immediate):
            if let indexRegister {
                return [BPFInstruction(opcode: BPFOpcode.classLD | BPFOpcode.modeIND | size.opcodeBits,
                                       src: indexRegister, immediate: immediate)]
            }
            return [BPFInstruction(opcode: BPFOpcode.classLD | BPFOpcode.modeABS | size.opcodeBits, immediate: immediate)]
        case .jump(let offset):
            return [BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.ja, offset: offset)]
        case .jumpLong(let offset):
            return [BPFInstruction(opcode: BPFOpcode.classJMP32 | BPFOpcode.ja, immediate: offset)]
        case .conditionalJump(let condition, let width, let dst, let source, let offset):
            let cls = width == .bits64 ? BPFOpcode.classJMP : BPFOpcode.classJMP32
            switch source {
            case .register(let src):
                return [BPFInstruction(opcode: cls | jumpCode(condition) | BPFOpcode.sourceX, dst: dst, src: src, offset: offset)]
            case .immediate(let imm):
                return [BPFInstruction(opcode: cls | jumpCode(condition), dst: dst, offset: offset, immediate: imm)]
            }
        case .callHelper(let id):
            return [BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.call, immediate: id)]
        case .callLocal(let offset):
            return [BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.call, src: BPFOpcode.callLocal, immediate: offset)]
        case .callRegister(let register):
            return [BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.call | BPFOpcode.sourceX, dst: register)]
        case .exit:
            return [BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.exit)]
        }
    }
}
