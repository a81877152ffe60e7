// The translation from BPF slots to x86-64 (frame layout and register mapping: see OkoJIT.swift).

import OkoBPF

struct BPFJITCompiler {
    /// BPF register number -> x86 register (the static mapping in the design note).
    static let registerMap: [X86Register] = [.rax, .rdi, .rsi, .rdx, .rcx, .r8, .rbx, .r13, .r14, .r15, .rbp]

    /// Bytes a nested bpf-to-bpf frame occupies: return address + 5 saved registers + 512-byte stack.
    static let nestedFrameSize = 8 + 5 * 8 + BPFLimits.stackSizePerFrame
    static let localFrameSaved: [X86Register] = [.rbx, .r13, .r14, .r15, .rbp]

    static func address(of function: BPFHelperFunction) -> UInt64 {
        UInt64(UInt(bitPattern: unsafeBitCast(function, to: UnsafeRawPointer.self)))
    }

    let instructions: [BPFInstruction]
    let helpers: BPFHelperTable
    let options: BPFJITOptions
    let callTable: UnsafeMutablePointer<UInt64>?
    let callTableCount: Int

    // Program facts gathered by `analyse`.
    private var functionStarts: [Bool]
    private var firstLocalFunction: Int
    private var isSecondSlot: [Bool]
    private var usesStack = false
    /// Bytes of BPF stack the entry frame reserves: 512, or less when r10 is only ever a load/store
    /// base with constant negative offsets (then the deepest access bounds it, as librte_bpf does).
    private var mainStackBytes = 0
    private var usesLegacyPacket = false
    private var hasCalls = false
    private var needsAbort = false
    private var mainSaved: [X86Register] = []
    private var mainStackAdjust = 0
    private var legacyPacketBytes = 0

    // Emission state.
    private var emitter = X86Emitter(capacity: 0)
    private var fixups = JumpFixups(capacity: 0)
    private var instructionOffsets: [Int]
    private var functionEntryOffsets: [Int]
    private var branchStarts: [Int]
    private var branchTargets: [Int]
    private var plan: ShortJumpPlan?
    private var abortOffset = 0

    init(instructions: [BPFInstruction], helpers: BPFHelperTable, options: BPFJITOptions,
         callTable: UnsafeMutablePointer<UInt64>?, callTableCount: Int) throws(BPFJITError) {
        guard !instructions.isEmpty else { throw BPFJITError(instructionIndex: nil, reason: .emptyProgram) }
        self.instructions = instructions
        self.helpers = helpers
        self.options = options
        self.callTable = callTable
        self.callTableCount = callTableCount
        let count = instructions.count
        functionStarts = [Bool](repeating: false, count: count)
        isSecondSlot = [Bool](repeating: false, count: count)
        firstLocalFunction = count
        instructionOffsets = [Int](repeating: 0, count: count + 1)
        functionEntryOffsets = [Int](repeating: 0, count: count)
        branchStarts = [Int](repeating: -1, count: count)
        branchTargets = [Int](repeating: 0, count: count)
        try analyse()
    }

    // MARK: analysis

    private mutating func analyse() throws(BPFJITError) {
        let count = instructions.count
        var touched = Set<UInt8>()
        var index = 0
        while index < count {
            let instruction = instructions[index]
            guard instruction.dst <= 10 && instruction.src <= 10 else {
                throw BPFJITError(instructionIndex: index,
                                  reason: .badRegister(max(instruction.dst, instruction.src)))
            }
            let opcode = instruction.opcode
            let instructionClass = instruction.instructionClass
            touched.insert(instruction.dst)
            if usesSourceRegister(instruction) { touched.insert(instruction.src) }
            if opcode == BPFOpcode.lddw {
                guard index + 1 < count else { throw BPFJITError(instructionIndex: index, reason: .incompleteLDDW) }
                isSecondSlot[index + 1] = true
                index += 2
                continue
            }
            if instructionClass == BPFOpcode.classLD {
                let mode = opcode & 0xe0
                if mode == BPFOpcode.modeABS || mode == BPFOpcode.modeIND {
                    usesLegacyPacket = true
                    needsAbort = true
                    touched.insert(0)
                }
            }
            if instructionClass == BPFOpcode.classJMP && opcode & 0xf0 == BPFOpcode.call {
                hasCalls = true
                if opcode & BPFOpcode.sourceX != 0 {
                    needsAbort = true
                } else if instruction.src == BPFOpcode.callLocal {
                    needsAbort = true
                    let target = index + 1 + Int(instruction.immediate)
                    guard target > 0 && target < count else {
                        throw BPFJITError(instructionIndex: index, reason: .badJumpTarget(target))
                    }
                    functionStarts[target] = true
                    firstLocalFunction = min(firstLocalFunction, target)
                } else if instruction.src == BPFOpcode.callHelper, instruction.immediate == options.unwindHelperID {
                    needsAbort = true
                }
            }
            index += 1
        }
        // Jump targets must land on a slot that starts an instruction.
        for index in 0..<count where !isSecondSlot[index] {
            if let target = jumpTarget(of: index) {
                guard target >= 0 && target < count && !isSecondSlot[target] else {
                    throw BPFJITError(instructionIndex: index, reason: .badJumpTarget(target))
                }
                // Frames are chosen statically: the main function's code precedes every bpf-to-bpf
                // function (as clang lays them out), and no jump may cross that boundary.
                guard (index < firstLocalFunction) == (target < firstLocalFunction) else {
                    throw BPFJITError(instructionIndex: index, reason: .badJumpTarget(target))
                }
            }
        }
        for index in 0..<count where functionStarts[index] && isSecondSlot[index] {
            throw BPFJITError(instructionIndex: index, reason: .badJumpTarget(index))
        }
        let last = instructions[count - 1]
        let lastIsTerminal = last.opcode == BPFOpcode.classJMP | BPFOpcode.exit
            || last.opcode == BPFOpcode.classJMP | BPFOpcode.ja
            || last.opcode == BPFOpcode.classJMP32 | BPFOpcode.ja
        if !lastIsTerminal && !isSecondSlot[count - 1] {
            throw BPFJITError(instructionIndex: count - 1, reason: .fallsOffEnd)
        }
        if isSecondSlot[count - 1] { throw BPFJITError(instructionIndex: count - 1, reason: .fallsOffEnd) }

        usesStack = touched.contains(10) || firstLocalFunction < count
        if usesStack { touched.insert(10) }
        mainStackBytes = usesStack ? stackDepthNeeded() : 0
        // Callee-saved registers the C caller expects back.
        for (bpf, x86) in [(6, X86Register.rbx), (7, .r13), (8, .r14), (9, .r15), (10, .rbp)]
        where touched.contains(UInt8(bpf)) {
            mainSaved.append(x86)
        }
        if needsAbort { mainSaved.append(.r12) }
        legacyPacketBytes = usesLegacyPacket ? 16 : 0
        var adjust = legacyPacketBytes + mainStackBytes
        if hasCalls && (8 + 8 * mainSaved.count + adjust) % 16 != 0 { adjust += 8 }
        mainStackAdjust = adjust
    }

    /// The entry frame's stack size: the deepest constant r10-relative access, or the full 512 bytes
    /// when r10 escapes (copied, passed to a helper, used by bpf-to-bpf calls) or an offset is odd.
    private func stackDepthNeeded() -> Int {
        let full = BPFLimits.stackSizePerFrame
        if firstLocalFunction < instructions.count { return full }
        var depth = 0
        var index = 0
        while index < instructions.count {
            let instruction = instructions[index]
            if instruction.opcode == BPFOpcode.lddw {
                if instruction.dst == 10 { return full }
                index += 2
                continue
            }
            let size: Int = switch instruction.opcode & 0x18 {
            case BPFOpcode.sizeB: 1
            case BPFOpcode.sizeH: 2
            case BPFOpcode.sizeW: 4
            default: 8
            }
            let offset = Int(instruction.offset)
            switch instruction.instructionClass {
            case BPFOpcode.classLDX where instruction.src == 10:
                if instruction.dst == 10 || offset >= 0 { return full }
                depth = max(depth, -offset)
            case BPFOpcode.classST where instruction.dst == 10, BPFOpcode.classSTX where instruction.dst == 10:
                if instruction.instructionClass == BPFOpcode.classSTX && instruction.src == 10 { return full }
                if offset >= 0 || offset + size > 0 { return full }
                depth = max(depth, -offset)
            default:
                // Any other use of r10 (copy, arithmetic, compare, callx) may let the stack address
                // escape, e.g. to a helper: keep the whole frame.
                if instruction.dst == 10 || (usesSourceRegister(instruction) && instruction.src == 10) { return full }
            }
            index += 1
        }
        return depth > full ? full : (depth + 7) & ~7
    }

    private func usesSourceRegister(_ instruction: BPFInstruction) -> Bool {
        switch instruction.instructionClass {
        case BPFOpcode.classALU, BPFOpcode.classALU64, BPFOpcode.classJMP, BPFOpcode.classJMP32:
            return instruction.opcode & BPFOpcode.sourceX != 0
        case BPFOpcode.classLDX, BPFOpcode.classSTX:
            return true
        case BPFOpcode.classLD:
            return instruction.opcode & 0xe0 == BPFOpcode.modeIND
        default:
            return false
        }
    }

    /// The slot a jump instruction at `index` may branch to, or nil for non-jumps.
    private func jumpTarget(of index: Int) -> Int? {
        let instruction = instructions[index]
        let instructionClass = instruction.instructionClass
        guard instructionClass == BPFOpcode.classJMP || instructionClass == BPFOpcode.classJMP32 else { return nil }
        let operation = instruction.opcode & 0xf0
        if operation == BPFOpcode.call || operation == BPFOpcode.exit { return nil }
        if operation == BPFOpcode.ja && instructionClass == BPFOpcode.classJMP32 {
            return index + 1 + Int(instruction.immediate)
        }
        return index + 1 + Int(instruction.offset)
    }

    // MARK: driver

    mutating func compile() throws(BPFJITError) -> [UInt8] {
        // Pass 1: every branch long, to learn the layout.
        try emitProgram()
        plan = ShortJumpPlan.plan(branchStarts: branchStarts, branchTargets: branchTargets,
                                  instructionOffsets: instructionOffsets)
        // Pass 2: final code with short branches where they reach.
        try emitProgram()
        let offsets = instructionOffsets
        let entries = functionEntryOffsets
        let abort = abortOffset
        fixups.resolve(into: &emitter) { destination in
            switch destination {
            case .instruction(let index): return offsets[index]
            case .functionEntry(let index): return entries[index]
            case .abort: return abort
            }
        }
        return emitter.code
    }

    private mutating func emitProgram() throws(BPFJITError) {
        emitter = X86Emitter(capacity: instructions.count * 12 + 256)
        fixups = JumpFixups(capacity: instructions.count)
        emitMainPrologue()
        var index = 0
        let count = instructions.count
        while index < count {
            if functionStarts[index] {
                functionEntryOffsets[index] = emitter.position
                emitLocalPrologue()
            }
            instructionOffsets[index] = emitter.position
            let consumed = try emitInstruction(at: index)
            if consumed == 2 { instructionOffsets[index + 1] = emitter.position }
            index += consumed
        }
        instructionOffsets[count] = emitter.position
        abortOffset = emitter.position
        if needsAbort {
            // Unwind every bpf-to-bpf frame at once and return 0.
            emitter.move(wide: true, destination: .rsp, source: .r12)
            emitter.moveImmediate(destination: .rax, 0)
            emitMainEpilogue()
        }
    }

    // MARK: frames

    private mutating func emitMainPrologue() {
        for register in mainSaved { emitter.push(register) }
        // rbp = top of the reservation, so the BPF stack is its top part; padding and the legacy
        // packet slots lie below it.
        if usesStack { emitter.move(wide: true, destination: .rbp, source: .rsp) }
        if mainStackAdjust > 0 {
            emitter.aluImmediate(extension: 5, wide: true, destination: .rsp, Int32(mainStackAdjust))
        }
        if usesLegacyPacket {
            emitter.store(width: .bits64, base: .rsp, displacement: 0, source: .rdi)
            emitter.store(width: .bits64, base: .rsp, displacement: 8, source: .rsi)
        }
        if needsAbort { emitter.move(wide: true, destination: .r12, source: .rsp) }
    }

    private mutating func emitMainEpilogue() {
        if mainStackAdjust > 0 {
            emitter.aluImmediate(extension: 0, wide: true, destination: .rsp, Int32(mainStackAdjust))
        }
        for register in mainSaved.reversed() { emitter.pop(register) }
        emitter.ret()
    }

    private mutating func emitLocalPrologue() {
        for register in Self.localFrameSaved { emitter.push(register) }
        emitter.aluImmediate(extension: 5, wide: true, destination: .rsp, Int32(BPFLimits.stackSizePerFrame))
        emitter.loadEffectiveAddress(destination: .rbp, base: .rsp, displacement: Int32(BPFLimits.stackSizePerFrame))
    }

    private mutating func emitLocalEpilogue() {
        emitter.aluImmediate(extension: 0, wide: true, destination: .rsp, Int32(BPFLimits.stackSizePerFrame))
        for register in Self.localFrameSaved.reversed() { emitter.pop(register) }
        emitter.ret()
    }

    // MARK: instructions

    /// Emits slot `index`; returns the number of slots consumed (2 for lddw).
    private mutating func emitInstruction(at index: Int) throws(BPFJITError) -> Int {
        let instruction = instructions[index]
        switch instruction.instructionClass {
        case BPFOpcode.classALU:
            try emitALU(instruction, wide: false, index: index)
        case BPFOpcode.classALU64:
            try emitALU(instruction, wide: true, index: index)
        case BPFOpcode.classJMP, BPFOpcode.classJMP32:
            try emitJump(instruction, index: index)
        case BPFOpcode.classLDX:
            try emitLoad(instruction, index: index)
        case BPFOpcode.classST:
            try emitStoreImmediate(instruction, index: index)
        case BPFOpcode.classSTX:
            try emitStoreRegister(instruction, index: index)
        default:  // classLD
            if instruction.opcode == BPFOpcode.lddw {
                let high = instructions[index + 1]
                guard high.opcode == 0 else {
                    throw BPFJITError(instructionIndex: index, reason: .incompleteLDDW)
                }
                let value = UInt64(UInt32(bitPattern: instruction.immediate))
                    | UInt64(UInt32(bitPattern: high.immediate)) << 32
                emitter.moveImmediate(destination: Self.registerMap[Int(instruction.dst)], value)
                return 2
            }
            try emitLegacyPacketLoad(instruction, index: index)
        }
        return 1
    }

    private func unknown(_ instruction: BPFInstruction, _ index: Int) -> BPFJITError {
        BPFJITError(instructionIndex: index, reason: .unknownOpcode(instruction.opcode))
    }

    // MARK: ALU

    private mutating func emitALU(_ instruction: BPFInstruction, wide: Bool, index: Int) throws(BPFJITError) {
        let dst = Self.registerMap[Int(instruction.dst)]
        let src = Self.registerMap[Int(instruction.src)]
        let useRegister = instruction.opcode & BPFOpcode.sourceX != 0
        let imm = instruction.immediate
        let operation = instruction.opcode & 0xf0
        switch operation {
        case BPFOpcode.add, BPFOpcode.sub, BPFOpcode.or, BPFOpcode.and, BPFOpcode.xor:
            let (opcode, ext): (UInt8, UInt8) = switch operation {
            case BPFOpcode.add: (0x01, 0)
            case BPFOpcode.sub: (0x29, 5)
            case BPFOpcode.or: (0x09, 1)
            case BPFOpcode.and: (0x21, 4)
            default: (0x31, 6)
            }
            if useRegister {
                emitter.aluRegister(opcode, wide: wide, destination: dst, source: src)
            } else {
                emitter.aluImmediate(extension: ext, wide: wide, destination: dst, imm)
            }
        case BPFOpcode.mul:
            if useRegister {
                emitter.multiply(wide: wide, destination: dst, source: src)
            } else {
                emitter.multiplyImmediate(wide: wide, destination: dst, imm)
            }
        case BPFOpcode.div, BPFOpcode.mod:
            guard instruction.offset == 0 || instruction.offset == 1 else { throw unknown(instruction, index) }
            emitDivision(dst: dst, src: useRegister ? src : nil, immediate: imm, wide: wide,
                         signed: instruction.offset == 1, remainder: operation == BPFOpcode.mod)
        case BPFOpcode.lsh, BPFOpcode.rsh, BPFOpcode.arsh:
            let ext: UInt8 = operation == BPFOpcode.lsh ? 4 : (operation == BPFOpcode.rsh ? 5 : 7)
            if useRegister {
                emitShiftByRegister(extension: ext, wide: wide, dst: dst, src: src)
            } else {
                let count = UInt8(truncatingIfNeeded: imm) & (wide ? 63 : 31)
                if count != 0 {
                    emitter.shiftImmediate(extension: ext, width: wide ? .bits64 : .bits32, operand: dst, count)
                } else if !wide {
                    emitter.move(wide: false, destination: dst, source: dst)
                }
            }
        case BPFOpcode.neg:
            emitter.unary(extension: 3, wide: wide, operand: dst)
        case BPFOpcode.mov:
            try emitMove(instruction, dst: dst, src: src, useRegister: useRegister, wide: wide, index: index)
        case BPFOpcode.end:
            try emitByteOrder(instruction, dst: dst, wide: wide, index: index)
        default:
            throw unknown(instruction, index)
        }
    }

    private mutating func emitMove(_ instruction: BPFInstruction, dst: X86Register, src: X86Register,
                                   useRegister: Bool, wide: Bool, index: Int) throws(BPFJITError) {
        guard useRegister else {
            let imm = instruction.immediate
            emitter.moveImmediate(destination: dst, wide ? UInt64(bitPattern: Int64(imm)) : UInt64(UInt32(bitPattern: imm)))
            return
        }
        switch (instruction.offset, wide) {
        case (0, _):
            if !(wide && dst == src) { emitter.move(wide: wide, destination: dst, source: src) }
        case (8, _):
            emitter.extendRegister(0xbe, wide: wide, destination: dst, source: src)
        case (16, _):
            emitter.extendRegister(0xbf, wide: wide, destination: dst, source: src)
        case (32, true):
            emitter.signExtend32(destination: dst, source: src)
        default:
            throw unknown(instruction, index)
        }
    }

    private mutating func emitByteOrder(_ instruction: BPFInstruction, dst: X86Register, wide: Bool,
                                        index: Int) throws(BPFJITError) {
        // ALU class: source bit 0 = to little endian (a truncation on x86), 1 = to big endian.
        // ALU64 class: unconditional byte swap (cpu v4 bswap).
        let swap = wide || instruction.opcode & BPFOpcode.sourceX != 0
        if wide && instruction.opcode & BPFOpcode.sourceX != 0 { throw unknown(instruction, index) }
        switch instruction.immediate {
        case 16:
            if swap { emitter.shiftImmediate(extension: 0, width: .bits16, operand: dst, 8) }
            emitter.extendRegister(0xb7, wide: false, destination: dst, source: dst)
        case 32:
            if swap {
                emitter.byteSwap(wide: false, operand: dst)
            } else {
                emitter.move(wide: false, destination: dst, source: dst)
            }
        case 64:
            if swap { emitter.byteSwap(wide: true, operand: dst) }
        default:
            throw unknown(instruction, index)
        }
    }

    private mutating func emitShiftByRegister(extension ext: UInt8, wide: Bool, dst: X86Register, src: X86Register) {
        if src == .rcx {
            emitter.shiftByCL(extension: ext, wide: wide, operand: dst)
            return
        }
        // The count must be in cl, which holds BPF r4: park r4 in r11 around the shift.
        emitter.move(wide: true, destination: .r11, source: .rcx)
        emitter.move(wide: true, destination: .rcx, source: src)
        if dst == .rcx {
            emitter.shiftByCL(extension: ext, wide: wide, operand: .r11)
            emitter.move(wide: true, destination: .rcx, source: .r11)
        } else {
            emitter.shiftByCL(extension: ext, wide: wide, operand: dst)
            emitter.move(wide: true, destination: .rcx, source: .r11)
        }
    }

    /// BPF division/modulo on top of x86 `div`/`idiv`, which use rdx:rax (BPF r3:r0) implicitly.
    private mutating func emitDivision(dst: X86Register, src: X86Register?, immediate: Int32, wide: Bool,
                                       signed: Bool, remainder: Bool) {
        var zeroCheck: Int? = nil
        var minusOneCheck: Int? = nil
        if let src {
            // Test the divisor where it lives (no dependency on the copy), then copy it to r11.
            emitter.aluRegister(0x85, wide: wide, destination: src, source: src)
            zeroCheck = emitter.jump(.equal, short: true)
            if signed {
                emitter.aluImmediate(extension: 7, wide: wide, destination: src, -1)
                minusOneCheck = emitter.jump(.equal, short: true)
            }
            emitter.move(wide: wide, destination: .r11, source: src)
        } else if immediate == 0 {
            emitDivisionByZero(dst: dst, wide: wide, remainder: remainder)
            return
        } else if signed && immediate == -1 {
            emitDivisionByMinusOne(dst: dst, wide: wide, remainder: remainder)
            return
        } else {
            emitter.moveImmediate(destination: .r11,
                                  wide ? UInt64(bitPattern: Int64(immediate)) : UInt64(UInt32(bitPattern: immediate)))
        }
        if dst != .rax { emitter.move(wide: true, destination: .r10, source: .rax) }
        if dst != .rdx { emitter.move(wide: true, destination: .r9, source: .rdx) }
        if dst != .rax { emitter.move(wide: wide, destination: .rax, source: dst) }
        if signed {
            emitter.signExtendAccumulator(wide: wide)
        } else {
            emitter.moveImmediate(destination: .rdx, 0)
        }
        emitter.unary(extension: signed ? 7 : 6, wide: wide, operand: .r11)
        emitter.move(wide: true, destination: .r11, source: remainder ? .rdx : .rax)
        if dst != .rax { emitter.move(wide: true, destination: .rax, source: .r10) }
        if dst != .rdx { emitter.move(wide: true, destination: .rdx, source: .r9) }
        emitter.move(wide: true, destination: dst, source: .r11)
        guard let zeroCheck else { return }
        if remainder && wide && minusOneCheck == nil {
            // 64-bit mod by zero leaves dst as it is: the zero check can branch straight past.
            emitter.patchInt8(at: zeroCheck, emitter.position - (zeroCheck + 1))
            return
        }
        let skipToEnd = emitter.jump(nil, short: true)
        var exits = [skipToEnd]
        emitter.patchInt8(at: zeroCheck, emitter.position - (zeroCheck + 1))
        emitDivisionByZero(dst: dst, wide: wide, remainder: remainder)
        if let minusOneCheck {
            exits.append(emitter.jump(nil, short: true))
            emitter.patchInt8(at: minusOneCheck, emitter.position - (minusOneCheck + 1))
            emitDivisionByMinusOne(dst: dst, wide: wide, remainder: remainder)
        }
        for field in exits { emitter.patchInt8(at: field, emitter.position - (field + 1)) }
    }

    private mutating func emitDivisionByZero(dst: X86Register, wide: Bool, remainder: Bool) {
        if !remainder {
            emitter.moveImmediate(destination: dst, 0)
        } else if !wide {
            emitter.move(wide: false, destination: dst, source: dst)
        }
    }

    /// x / -1 = -x (wrapping, so INT_MIN stays INT_MIN); x % -1 = 0. `idiv` would trap on INT_MIN / -1.
    private mutating func emitDivisionByMinusOne(dst: X86Register, wide: Bool, remainder: Bool) {
        if remainder {
            emitter.moveImmediate(destination: dst, 0)
        } else {
            emitter.unary(extension: 3, wide: wide, operand: dst)
        }
    }

    // MARK: memory

    private static func width(of opcode: UInt8) -> X86Width {
        switch opcode & 0x18 {
        case BPFOpcode.sizeB: .bits8
        case BPFOpcode.sizeH: .bits16
        case BPFOpcode.sizeW: .bits32
        default: .bits64
        }
    }

    private mutating func emitLoad(_ instruction: BPFInstruction, index: Int) throws(BPFJITError) {
        let mode = instruction.opcode & 0xe0
        let width = Self.width(of: instruction.opcode)
        guard mode == BPFOpcode.modeMEM || (mode == BPFOpcode.modeMEMSX && width != .bits64) else {
            throw unknown(instruction, index)
        }
        emitter.load(width: width, signed: mode == BPFOpcode.modeMEMSX,
                     destination: Self.registerMap[Int(instruction.dst)],
                     base: Self.registerMap[Int(instruction.src)], displacement: Int32(instruction.offset))
    }

    private mutating func emitStoreImmediate(_ instruction: BPFInstruction, index: Int) throws(BPFJITError) {
        guard instruction.opcode & 0xe0 == BPFOpcode.modeMEM else { throw unknown(instruction, index) }
        emitter.storeImmediate(width: Self.width(of: instruction.opcode),
                               base: Self.registerMap[Int(instruction.dst)],
                               displacement: Int32(instruction.offset), instruction.immediate)
    }

    private mutating func emitStoreRegister(_ instruction: BPFInstruction, index: Int) throws(BPFJITError) {
        let width = Self.width(of: instruction.opcode)
        let base = Self.registerMap[Int(instruction.dst)]
        let src = Self.registerMap[Int(instruction.src)]
        let displacement = Int32(instruction.offset)
        switch instruction.opcode & 0xe0 {
        case BPFOpcode.modeMEM:
            emitter.store(width: width, base: base, displacement: displacement, source: src)
        case BPFOpcode.modeATOMIC where width == .bits32 || width == .bits64:
            try emitAtomic(instruction, wide: width == .bits64, base: base, displacement: displacement,
                           src: src, index: index)
        default:
            throw unknown(instruction, index)
        }
    }

    private mutating func emitAtomic(_ instruction: BPFInstruction, wide: Bool, base: X86Register,
                                     displacement: Int32, src: X86Register, index: Int) throws(BPFJITError) {
        switch instruction.immediate {
        case 0x00: emitter.lockedMemoryOperation(0x01, wide: wide, base: base, displacement: displacement, source: src)
        case 0x40: emitter.lockedMemoryOperation(0x09, wide: wide, base: base, displacement: displacement, source: src)
        case 0x50: emitter.lockedMemoryOperation(0x21, wide: wide, base: base, displacement: displacement, source: src)
        case 0xa0: emitter.lockedMemoryOperation(0x31, wide: wide, base: base, displacement: displacement, source: src)
        case 0x01: emitter.lockedExchangeAdd(wide: wide, base: base, displacement: displacement, source: src)
        case 0x41, 0x51, 0xa1:
            try emitFetchLoop(instruction, wide: wide, base: base, displacement: displacement, src: src, index: index)
        case BPFOpcode.atomicXchg:
            emitter.exchange(wide: wide, base: base, displacement: displacement, source: src)
        case BPFOpcode.atomicCmpxchg:
            emitter.lockedCompareExchange(wide: wide, base: base, displacement: displacement, source: src)
            // A successful 32-bit cmpxchg leaves rax's upper half alone; BPF wants it zero.
            if !wide { emitter.move(wide: false, destination: .rax, source: .rax) }
        default:
            throw unknown(instruction, index)
        }
    }

    /// Fetching or/and/xor: a `lock cmpxchg` retry loop (x86 has no fetching form of these).
    private mutating func emitFetchLoop(_ instruction: BPFInstruction, wide: Bool, base: X86Register,
                                        displacement: Int32, src: X86Register, index: Int) throws(BPFJITError) {
        let opcode: UInt8 = switch instruction.immediate {
        case 0x41: 0x09
        case 0x51: 0x21
        default: 0x31
        }
        emitter.loadEffectiveAddress(destination: .r11, base: base, displacement: displacement)
        emitter.move(wide: true, destination: .r10, source: .rax)
        // The operand: BPF r0 lives in rax, which the loop reuses, so read it from its saved copy.
        let operand: X86Register = src == .rax ? .r10 : src
        emitter.load(width: wide ? .bits64 : .bits32, signed: false, destination: .rax, base: .r11, displacement: 0)
        let loop = emitter.position
        emitter.move(wide: true, destination: .r9, source: .rax)
        emitter.aluRegister(opcode, wide: wide, destination: .r9, source: operand)
        emitter.lockedCompareExchange(wide: wide, base: .r11, displacement: 0, source: .r9)
        let back = emitter.jump(.notEqual, short: true)
        emitter.patchInt8(at: back, loop - (back + 1))
        if src != .rax {
            emitter.move(wide: true, destination: src, source: .rax)
            emitter.move(wide: true, destination: .rax, source: .r10)
        }
    }

    /// Legacy packet access: r0 = big-endian load from packet[imm] (ABS) or packet[src + imm] (IND);
    /// out-of-bounds accesses end the program with r0 = 0.
    private mutating func emitLegacyPacketLoad(_ instruction: BPFInstruction, index: Int) throws(BPFJITError) {
        let mode = instruction.opcode & 0xe0
        guard mode == BPFOpcode.modeABS || mode == BPFOpcode.modeIND else { throw unknown(instruction, index) }
        let width = Self.width(of: instruction.opcode)
        let size: Int32 = switch width {
        case .bits8: 1
        case .bits16: 2
        case .bits32: 4
        case .bits64: 8
        }
        emitter.moveImmediate(destination: .r11, UInt64(bitPattern: Int64(instruction.immediate)))
        if mode == BPFOpcode.modeIND {
            emitter.aluRegister(0x01, wide: true, destination: .r11, source: Self.registerMap[Int(instruction.src)])
        }
        // offset < length and offset + size <= length (unsigned, so negative offsets fail too).
        emitter.compareWithMemory(.r11, base: .r12, displacement: 8)
        emitAbortJump(.aboveOrEqual)
        emitter.loadEffectiveAddress(destination: .r10, base: .r11, displacement: size)
        emitter.compareWithMemory(.r10, base: .r12, displacement: 8)
        emitAbortJump(.above)
        emitter.load(width: .bits64, signed: false, destination: .r10, base: .r12, displacement: 0)
        emitter.load(width: width, signed: false, destination: .rax, base: .r10, index: .r11, displacement: 0)
        switch width {
        case .bits8: break
        case .bits16: emitter.shiftImmediate(extension: 0, width: .bits16, operand: .rax, 8)
        case .bits32: emitter.byteSwap(wide: false, operand: .rax)
        case .bits64: emitter.byteSwap(wide: true, operand: .rax)
        }
    }

    private mutating func emitAbortJump(_ condition: X86Condition?) {
        let field = emitter.jump(condition, short: false)
        fixups.add(field: field, isShort: false, destination: .abort)
    }

    // MARK: jumps and calls

    private mutating func emitJump(_ instruction: BPFInstruction, index: Int) throws(BPFJITError) {
        let wide = instruction.instructionClass == BPFOpcode.classJMP
        let operation = instruction.opcode & 0xf0
        switch operation {
        case BPFOpcode.exit:
            guard instruction.opcode & BPFOpcode.sourceX == 0 else { throw unknown(instruction, index) }
            if index >= firstLocalFunction { emitLocalEpilogue() } else { emitMainEpilogue() }
            return
        case BPFOpcode.call:
            guard wide else { throw unknown(instruction, index) }
            try emitCall(instruction, index: index)
            return
        case BPFOpcode.ja:
            let target = jumpTarget(of: index)!
            if target == index + 1 { return }
            emitBranch(nil, from: index, to: target)
            return
        default:
            break
        }
        let condition: X86Condition
        switch operation {
        case BPFOpcode.jeq: condition = .equal
        case BPFOpcode.jne, BPFOpcode.jset: condition = .notEqual
        case BPFOpcode.jgt: condition = .above
        case BPFOpcode.jge: condition = .aboveOrEqual
        case BPFOpcode.jlt: condition = .below
        case BPFOpcode.jle: condition = .belowOrEqual
        case BPFOpcode.jsgt: condition = .greater
        case BPFOpcode.jsge: condition = .greaterOrEqual
        case BPFOpcode.jslt: condition = .less
        case BPFOpcode.jsle: condition = .lessOrEqual
        default: throw unknown(instruction, index)
        }
        let dst = Self.registerMap[Int(instruction.dst)]
        if instruction.opcode & BPFOpcode.sourceX != 0 {
            let src = Self.registerMap[Int(instruction.src)]
            emitter.aluRegister(operation == BPFOpcode.jset ? 0x85 : 0x39, wide: wide, destination: dst, source: src)
        } else if operation == BPFOpcode.jset {
            emitter.testImmediate(wide: wide, operand: dst, instruction.immediate)
        } else if instruction.immediate == 0 && (operation == BPFOpcode.jeq || operation == BPFOpcode.jne) {
            emitter.aluRegister(0x85, wide: wide, destination: dst, source: dst)
        } else {
            emitter.aluImmediate(extension: 7, wide: wide, destination: dst, instruction.immediate)
        }
        emitBranch(condition, from: index, to: jumpTarget(of: index)!)
    }

    /// A branch to BPF instruction `target`, short when pass 1 showed it reaches.
    private mutating func emitBranch(_ condition: X86Condition?, from index: Int, to target: Int) {
        let isShort = plan?.isShort[index] ?? false
        branchStarts[index] = emitter.position
        branchTargets[index] = target
        let field = emitter.jump(condition, short: isShort)
        fixups.add(field: field, isShort: isShort, destination: .instruction(target))
    }

    private mutating func emitCall(_ instruction: BPFInstruction, index: Int) throws(BPFJITError) {
        if instruction.opcode & BPFOpcode.sourceX != 0 {
            try emitCallX(instruction, index: index)
            return
        }
        switch instruction.src {
        case BPFOpcode.callHelper:
            guard let function = helpers.function(id: instruction.immediate) else {
                throw BPFJITError(instructionIndex: index, reason: .unknownHelper(instruction.immediate))
            }
            emitter.moveImmediate(destination: .r11, Self.address(of: function))
            emitter.callIndirect(.r11)
            if instruction.immediate == options.unwindHelperID {
                emitter.aluRegister(0x85, wide: true, destination: .rax, source: .rax)
                emitAbortJump(.equal)
            }
        case BPFOpcode.callLocal:
            // Depth check: frames below the entry frame are nestedFrameSize bytes each.
            emitter.move(wide: true, destination: .r11, source: .r12)
            emitter.aluRegister(0x29, wide: true, destination: .r11, source: .rsp)
            emitter.aluImmediate(extension: 7, wide: true, destination: .r11,
                                 Int32((BPFLimits.maxCallDepth - 2) * Self.nestedFrameSize))
            emitAbortJump(.above)
            let field = emitter.callRelative()
            fixups.add(field: field, isShort: false,
                       destination: .functionEntry(index + 1 + Int(instruction.immediate)))
        default:
            throw BPFJITError(instructionIndex: index, reason: .unsupportedCall("call with src \(instruction.src)"))
        }
    }

    /// `callx`: the register holds a helper id, looked up in the program's call table at run time.
    private mutating func emitCallX(_ instruction: BPFInstruction, index: Int) throws(BPFJITError) {
        guard let callTable else {
            throw BPFJITError(instructionIndex: index, reason: .unsupportedCall("callx without a call table"))
        }
        // The register (dst, as LLVM and the OkoBPF decoder encode it) holds the helper id.
        let idRegister = Self.registerMap[Int(instruction.dst)]
        emitter.move(wide: true, destination: .r11, source: idRegister)
        emitter.aluImmediate(extension: 7, wide: true, destination: .r11, Int32(callTableCount))
        emitAbortJump(.aboveOrEqual)
        var unwindPath: Int? = nil
        if let unwind = options.unwindHelperID {
            emitter.aluImmediate(extension: 7, wide: true, destination: .r11, unwind)
            unwindPath = emitter.jump(.equal, short: true)
        }
        emitter.moveImmediate(destination: .r10, UInt64(UInt(bitPattern: callTable)))
        emitter.shiftImmediate(extension: 4, width: .bits64, operand: .r11, 3)
        emitter.aluRegister(0x01, wide: true, destination: .r11, source: .r10)
        emitter.load(width: .bits64, signed: false, destination: .r11, base: .r11, displacement: 0)
        emitter.aluRegister(0x85, wide: true, destination: .r11, source: .r11)
        emitAbortJump(.equal)
        guard let unwindPath, let unwind = options.unwindHelperID,
              let function = helpers.function(id: unwind) else {
            emitter.callIndirect(.r11)
            return
        }
        emitter.callIndirect(.r11)
        let done = emitter.jump(nil, short: true)
        emitter.patchInt8(at: unwindPath, emitter.position - (unwindPath + 1))
        // The unwind helper: a 0 result ends the program with r0 = 0.
        emitter.moveImmediate(destination: .r11, Self.address(of: function))
        emitter.callIndirect(.r11)
        emitter.aluRegister(0x85, wide: true, destination: .rax, source: .rax)
        emitAbortJump(.equal)
        emitter.patchInt8(at: done, emitter.position - (done + 1))
    }
}
