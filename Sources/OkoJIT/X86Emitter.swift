// x86-64 instruction encodings used by the JIT, one small function per encoding.
//
// Only the forms the eBPF translation needs are here. Every function appends bytes to `code`;
// none of them allocates beyond the array's growth (the compiler reserves capacity up front).
// Operand order follows Intel syntax: destination first.

/// A general-purpose x86-64 register, numbered as in the ModRM/REX encoding.
enum X86Register: UInt8 {
    case rax = 0, rcx, rdx, rbx, rsp, rbp, rsi, rdi
    case r8, r9, r10, r11, r12, r13, r14, r15

    /// Low three bits, as they go into ModRM/SIB/opcode.
    @inline(__always) var low: UInt8 { rawValue & 7 }
    /// The REX extension bit.
    @inline(__always) var high: UInt8 { rawValue >> 3 }
}

/// Condition codes (the low nibble of Jcc).
enum X86Condition: UInt8 {
    case below = 0x2, aboveOrEqual = 0x3, equal = 0x4, notEqual = 0x5
    case belowOrEqual = 0x6, above = 0x7
    case less = 0xc, greaterOrEqual = 0xd, lessOrEqual = 0xe, greater = 0xf
}

/// Operand width of an integer instruction.
enum X86Width {
    case bits8, bits16, bits32, bits64
}

/// A byte buffer with x86-64 encoders.
struct X86Emitter {
    var code: [UInt8] = []

    init(capacity: Int) {
        code.reserveCapacity(capacity)
    }

    @inline(__always) var position: Int { code.count }

    @inline(__always) mutating func byte(_ value: UInt8) { code.append(value) }

    @inline(__always) mutating func int32(_ value: Int32) {
        let bits = UInt32(bitPattern: value)
        code.append(UInt8(truncatingIfNeeded: bits))
        code.append(UInt8(truncatingIfNeeded: bits >> 8))
        code.append(UInt8(truncatingIfNeeded: bits >> 16))
        code.append(UInt8(truncatingIfNeeded: bits >> 24))
    }

    @inline(__always) mutating func uint64(_ value: UInt64) {
        for shift in stride(from: 0 as UInt64, to: 64, by: 8) {
            code.append(UInt8(truncatingIfNeeded: value >> shift))
        }
    }

    /// Overwrites a previously emitted 32-bit little-endian field.
    @inline(__always) mutating func patchInt32(at offset: Int, _ value: Int32) {
        let bits = UInt32(bitPattern: value)
        code[offset] = UInt8(truncatingIfNeeded: bits)
        code[offset + 1] = UInt8(truncatingIfNeeded: bits >> 8)
        code[offset + 2] = UInt8(truncatingIfNeeded: bits >> 16)
        code[offset + 3] = UInt8(truncatingIfNeeded: bits >> 24)
    }

    @inline(__always) mutating func patchInt8(at offset: Int, _ value: Int) {
        precondition(value >= -128 && value <= 127, "short branch out of range")
        code[offset] = UInt8(bitPattern: Int8(value))
    }

    // MARK: prefixes and operand bytes

    /// REX prefix; emitted when any bit is set or when `force` (byte access to sil/dil/spl/bpl).
    @inline(__always)
    mutating func rex(wide: Bool, reg: UInt8 = 0, index: UInt8 = 0, base: UInt8 = 0, force: Bool = false) {
        let value: UInt8 = 0x40 | (wide ? 8 : 0) | ((reg >> 3) << 2) | ((index >> 3) << 1) | (base >> 3)
        if value != 0x40 || force { code.append(value) }
    }

    @inline(__always) mutating func modRMRegister(reg: UInt8, rm: UInt8) {
        code.append(0xc0 | ((reg & 7) << 3) | (rm & 7))
    }

    /// ModRM (+SIB) (+displacement) for `[base + index + disp]`.
    mutating func modRMMemory(reg: UInt8, base: X86Register, index: X86Register? = nil, displacement: Int32) {
        let mod: UInt8
        if displacement == 0 && base.low != 5 {
            mod = 0x00
        } else if displacement >= -128 && displacement <= 127 {
            mod = 0x40
        } else {
            mod = 0x80
        }
        if let index {
            code.append(mod | ((reg & 7) << 3) | 4)
            code.append((index.low << 3) | base.low)
        } else if base.low == 4 {
            code.append(mod | ((reg & 7) << 3) | 4)
            code.append(0x24)
        } else {
            code.append(mod | ((reg & 7) << 3) | base.low)
        }
        if mod == 0x40 {
            code.append(UInt8(bitPattern: Int8(truncatingIfNeeded: displacement)))
        } else if mod == 0x80 {
            int32(displacement)
        }
    }

    // MARK: register moves and ALU

    /// `op r/m, reg` for the classic ALU group (add 0x01, or 0x09, and 0x21, sub 0x29, xor 0x31,
    /// cmp 0x39, test 0x85, mov 0x89).
    @inline(__always)
    mutating func aluRegister(_ opcode: UInt8, wide: Bool, destination: X86Register, source: X86Register) {
        rex(wide: wide, reg: source.rawValue, base: destination.rawValue)
        byte(opcode)
        modRMRegister(reg: source.rawValue, rm: destination.rawValue)
    }

    /// `op r/m, imm` for group 1 (extension: add 0, or 1, and 4, sub 5, xor 6, cmp 7).
    @inline(__always)
    mutating func aluImmediate(extension ext: UInt8, wide: Bool, destination: X86Register, _ value: Int32) {
        rex(wide: wide, base: destination.rawValue)
        if value >= -128 && value <= 127 {
            byte(0x83)
            modRMRegister(reg: ext, rm: destination.rawValue)
            byte(UInt8(bitPattern: Int8(value)))
        } else {
            byte(0x81)
            modRMRegister(reg: ext, rm: destination.rawValue)
            int32(value)
        }
    }

    @inline(__always)
    mutating func move(wide: Bool, destination: X86Register, source: X86Register) {
        aluRegister(0x89, wide: wide, destination: destination, source: source)
    }

    /// Loads a constant: zero idiom, 32-bit zero-extending move, sign-extended imm32, or movabs.
    mutating func moveImmediate(destination: X86Register, _ value: UInt64) {
        if value == 0 {
            aluRegister(0x31, wide: false, destination: destination, source: destination)
        } else if value <= UInt64(UInt32.max) {
            rex(wide: false, base: destination.rawValue)
            byte(0xb8 + destination.low)
            int32(Int32(bitPattern: UInt32(value)))
        } else if Int64(bitPattern: value) >= Int64(Int32.min) && Int64(bitPattern: value) < 0 {
            rex(wide: true, base: destination.rawValue)
            byte(0xc7)
            modRMRegister(reg: 0, rm: destination.rawValue)
            int32(Int32(truncatingIfNeeded: Int64(bitPattern: value)))
        } else {
            rex(wide: true, base: destination.rawValue)
            byte(0xb8 + destination.low)
            uint64(value)
        }
    }

    /// `imul reg, r/m`.
    mutating func multiply(wide: Bool, destination: X86Register, source: X86Register) {
        rex(wide: wide, reg: destination.rawValue, base: source.rawValue)
        byte(0x0f)
        byte(0xaf)
        modRMRegister(reg: destination.rawValue, rm: source.rawValue)
    }

    /// `imul reg, r/m, imm`.
    mutating func multiplyImmediate(wide: Bool, destination: X86Register, _ value: Int32) {
        rex(wide: wide, reg: destination.rawValue, base: destination.rawValue)
        if value >= -128 && value <= 127 {
            byte(0x6b)
            modRMRegister(reg: destination.rawValue, rm: destination.rawValue)
            byte(UInt8(bitPattern: Int8(value)))
        } else {
            byte(0x69)
            modRMRegister(reg: destination.rawValue, rm: destination.rawValue)
            int32(value)
        }
    }

    /// Group 3 unary (`neg` 3, `div` 6, `idiv` 7, `not` 2).
    mutating func unary(extension ext: UInt8, wide: Bool, operand: X86Register) {
        rex(wide: wide, base: operand.rawValue)
        byte(0xf7)
        modRMRegister(reg: ext, rm: operand.rawValue)
    }

    /// Shift by immediate (extension: rol 0, shl 4, shr 5, sar 7).
    mutating func shiftImmediate(extension ext: UInt8, width: X86Width, operand: X86Register, _ count: UInt8) {
        if width == .bits16 { byte(0x66) }
        rex(wide: width == .bits64, base: operand.rawValue)
        byte(0xc1)
        modRMRegister(reg: ext, rm: operand.rawValue)
        byte(count)
    }

    /// Shift by `cl`.
    mutating func shiftByCL(extension ext: UInt8, wide: Bool, operand: X86Register) {
        rex(wide: wide, base: operand.rawValue)
        byte(0xd3)
        modRMRegister(reg: ext, rm: operand.rawValue)
    }

    /// `movzx r32, r/m8|16` / `movsx` from a register (`opcode` 0xb6/0xb7 zero, 0xbe/0xbf sign).
    mutating func extendRegister(_ opcode: UInt8, wide: Bool, destination: X86Register, source: X86Register) {
        // Byte access to rsi/rdi/rsp/rbp needs a REX prefix to mean sil/dil rather than dh/bh.
        let needsRex = (opcode == 0xb6 || opcode == 0xbe) && source.rawValue >= 4
        rex(wide: wide, reg: destination.rawValue, base: source.rawValue, force: needsRex)
        byte(0x0f)
        byte(opcode)
        modRMRegister(reg: destination.rawValue, rm: source.rawValue)
    }

    /// `movsxd r64, r/m32`.
    mutating func signExtend32(destination: X86Register, source: X86Register) {
        rex(wide: true, reg: destination.rawValue, base: source.rawValue)
        byte(0x63)
        modRMRegister(reg: destination.rawValue, rm: source.rawValue)
    }

    mutating func byteSwap(wide: Bool, operand: X86Register) {
        rex(wide: wide, base: operand.rawValue)
        byte(0x0f)
        byte(0xc8 + operand.low)
    }

    /// `cqo` (64) / `cdq` (32): sign-extend rax into rdx.
    mutating func signExtendAccumulator(wide: Bool) {
        if wide { byte(0x48) }
        byte(0x99)
    }

    // MARK: memory

    /// Zero- or sign-extending load of `width` from `[base + disp]` into `destination`.
    mutating func load(width: X86Width, signed: Bool, destination: X86Register, base: X86Register,
                       index: X86Register? = nil, displacement: Int32) {
        let indexBits = index?.rawValue ?? 0
        switch (width, signed) {
        case (.bits8, _), (.bits16, _):
            let wide = signed  // sign-extend into all 64 bits; zero-extension via the 32-bit form
            rex(wide: wide, reg: destination.rawValue, index: indexBits, base: base.rawValue)
            byte(0x0f)
            byte((width == .bits8 ? 0xb6 : 0xb7) | (signed ? 0x08 : 0))
        case (.bits32, false):
            rex(wide: false, reg: destination.rawValue, index: indexBits, base: base.rawValue)
            byte(0x8b)
        case (.bits32, true):
            rex(wide: true, reg: destination.rawValue, index: indexBits, base: base.rawValue)
            byte(0x63)
        case (.bits64, _):
            rex(wide: true, reg: destination.rawValue, index: indexBits, base: base.rawValue)
            byte(0x8b)
        }
        modRMMemory(reg: destination.rawValue, base: base, index: index, displacement: displacement)
    }

    /// `mov [base + disp], source` of `width`.
    mutating func store(width: X86Width, base: X86Register, displacement: Int32, source: X86Register) {
        if width == .bits16 { byte(0x66) }
        rex(wide: width == .bits64, reg: source.rawValue, base: base.rawValue,
            force: width == .bits8 && source.rawValue >= 4)
        byte(width == .bits8 ? 0x88 : 0x89)
        modRMMemory(reg: source.rawValue, base: base, displacement: displacement)
    }

    /// `mov [base + disp], imm` of `width` (imm32 sign-extended for 64-bit).
    mutating func storeImmediate(width: X86Width, base: X86Register, displacement: Int32, _ value: Int32) {
        if width == .bits16 { byte(0x66) }
        rex(wide: width == .bits64, base: base.rawValue)
        byte(width == .bits8 ? 0xc6 : 0xc7)
        modRMMemory(reg: 0, base: base, displacement: displacement)
        switch width {
        case .bits8: byte(UInt8(truncatingIfNeeded: value))
        case .bits16:
            byte(UInt8(truncatingIfNeeded: value))
            byte(UInt8(truncatingIfNeeded: value >> 8))
        case .bits32, .bits64: int32(value)
        }
    }

    /// `lock <op> [base + disp], source` for ALU group opcodes (add 0x01, or 0x09, and 0x21, xor 0x31).
    mutating func lockedMemoryOperation(_ opcode: UInt8, wide: Bool, base: X86Register, displacement: Int32,
                                        source: X86Register) {
        byte(0xf0)
        rex(wide: wide, reg: source.rawValue, base: base.rawValue)
        byte(opcode)
        modRMMemory(reg: source.rawValue, base: base, displacement: displacement)
    }

    /// `lock xadd [base + disp], source`.
    mutating func lockedExchangeAdd(wide: Bool, base: X86Register, displacement: Int32, source: X86Register) {
        byte(0xf0)
        rex(wide: wide, reg: source.rawValue, base: base.rawValue)
        byte(0x0f)
        byte(0xc1)
        modRMMemory(reg: source.rawValue, base: base, displacement: displacement)
    }

    /// `xchg [base + disp], source` (implicitly locked).
    mutating func exchange(wide: Bool, base: X86Register, displacement: Int32, source: X86Register) {
        rex(wide: wide, reg: source.rawValue, base: base.rawValue)
        byte(0x87)
        modRMMemory(reg: source.rawValue, base: base, displacement: displacement)
    }

    /// `lock cmpxchg [base + disp], source` (compares with rax).
    mutating func lockedCompareExchange(wide: Bool, base: X86Register, displacement: Int32, source: X86Register) {
        byte(0xf0)
        rex(wide: wide, reg: source.rawValue, base: base.rawValue)
        byte(0x0f)
        byte(0xb1)
        modRMMemory(reg: source.rawValue, base: base, displacement: displacement)
    }

    /// `lea destination, [base + disp]`.
    mutating func loadEffectiveAddress(destination: X86Register, base: X86Register, displacement: Int32) {
        rex(wide: true, reg: destination.rawValue, base: base.rawValue)
        byte(0x8d)
        modRMMemory(reg: destination.rawValue, base: base, displacement: displacement)
    }

    /// `op reg, [base + disp]` with a 64-bit memory operand (cmp 0x3b).
    mutating func compareWithMemory(_ register: X86Register, base: X86Register, displacement: Int32) {
        rex(wide: true, reg: register.rawValue, base: base.rawValue)
        byte(0x3b)
        modRMMemory(reg: register.rawValue, base: base, displacement: displacement)
    }

    // MARK: control flow

    mutating func push(_ register: X86Register) {
        rex(wide: false, base: register.rawValue)
        byte(0x50 + register.low)
    }

    mutating func pop(_ register: X86Register) {
        rex(wide: false, base: register.rawValue)
        byte(0x58 + register.low)
    }

    mutating func ret() { byte(0xc3) }

    /// `call register`.
    mutating func callIndirect(_ register: X86Register) {
        rex(wide: false, base: register.rawValue)
        byte(0xff)
        modRMRegister(reg: 2, rm: register.rawValue)
    }

    /// `call rel32`; returns the offset of the displacement field.
    mutating func callRelative() -> Int {
        byte(0xe8)
        let field = position
        int32(0)
        return field
    }

    /// `jmp rel8|rel32` / `jcc rel8|rel32` with a zero displacement; returns the field offset.
    mutating func jump(_ condition: X86Condition?, short: Bool) -> Int {
        if short {
            byte(condition.map { 0x70 | $0.rawValue } ?? 0xeb)
            let field = position
            byte(0)
            return field
        }
        if let condition {
            byte(0x0f)
            byte(0x80 | condition.rawValue)
        } else {
            byte(0xe9)
        }
        let field = position
        int32(0)
        return field
    }
}

extension X86Emitter {
    /// `test r/m, imm32` (64-bit form sign-extends the immediate).
    mutating func testImmediate(wide: Bool, operand: X86Register, _ value: Int32) {
        rex(wide: wide, base: operand.rawValue)
        byte(0xf7)
        modRMRegister(reg: 0, rm: operand.rawValue)
        int32(value)
    }
}
