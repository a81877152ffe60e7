// A tiny label-resolving assembler for test programs (OkoBPF's assembler lives on another branch).
import OkoBPF

enum Size {
    case b, h, w, dw
    var bits: UInt8 {
        switch self {
        case .b: return BPFOpcode.sizeB
        case .h: return BPFOpcode.sizeH
        case .w: return BPFOpcode.sizeW
        case .dw: return BPFOpcode.sizeDW
        }
    }
}

struct ProgramBuilder {
    private(set) var slots: [BPFInstruction] = []
    private var labels: [String: Int] = [:]
    private var fixups: [(slot: Int, label: String, inImmediate: Bool)] = []

    var program: [BPFInstruction] {
        var out = slots
        for f in fixups {
            let target = labels[f.label]!
            let delta = target - f.slot - 1
            if f.inImmediate { out[f.slot].immediate = Int32(delta) } else { out[f.slot].offset = Int16(delta) }
        }
        return out
    }

    mutating func label(_ name: String) { labels[name] = slots.count }

    mutating func raw(_ i: BPFInstruction) { slots.append(i) }

    // ALU
    mutating func alu(_ op: UInt8, _ dst: UInt8, imm: Int32, is64: Bool = true) {
        slots.append(BPFInstruction(opcode: op | (is64 ? BPFOpcode.classALU64 : BPFOpcode.classALU), dst: dst, immediate: imm))
    }
    mutating func alu(_ op: UInt8, _ dst: UInt8, src: UInt8, is64: Bool = true) {
        slots.append(
            BPFInstruction(opcode: op | BPFOpcode.sourceX | (is64 ? BPFOpcode.classALU64 : BPFOpcode.classALU), dst: dst, src: src))
    }
    mutating func mov(_ dst: UInt8, _ imm: Int32) { alu(BPFOpcode.mov, dst, imm: imm) }
    mutating func mov(_ dst: UInt8, reg src: UInt8) { alu(BPFOpcode.mov, dst, src: src) }
    mutating func add(_ dst: UInt8, _ imm: Int32) { alu(BPFOpcode.add, dst, imm: imm) }
    mutating func add(_ dst: UInt8, reg src: UInt8) { alu(BPFOpcode.add, dst, src: src) }

    mutating func lddw(_ dst: UInt8, _ value: UInt64) {
        slots.append(BPFInstruction(opcode: BPFOpcode.lddw, dst: dst, immediate: Int32(bitPattern: UInt32(truncatingIfNeeded: value))))
        slots.append(BPFInstruction(opcode: 0, immediate: Int32(bitPattern: UInt32(truncatingIfNeeded: value >> 32))))
    }
    mutating func loadMap(_ dst: UInt8, _ map: Int32) {
        slots.append(BPFInstruction(opcode: BPFOpcode.lddw, dst: dst, src: BPFOpcode.pseudoMapFD, immediate: map))
        slots.append(BPFInstruction(opcode: 0))
    }
    mutating func loadMapValue(_ dst: UInt8, _ map: Int32, offset: Int32) {
        slots.append(BPFInstruction(opcode: BPFOpcode.lddw, dst: dst, src: BPFOpcode.pseudoMapValue, immediate: map))
        slots.append(BPFInstruction(opcode: 0, immediate: offset))
    }

    // memory
    mutating func ldx(_ size: Size, _ dst: UInt8, _ src: UInt8, _ off: Int16) {
        slots.append(BPFInstruction(opcode: BPFOpcode.classLDX | BPFOpcode.modeMEM | size.bits, dst: dst, src: src, offset: off))
    }
    mutating func st(_ size: Size, _ dst: UInt8, _ off: Int16, imm: Int32) {
        slots.append(
            BPFInstruction(opcode: BPFOpcode.classST | BPFOpcode.modeMEM | size.bits, dst: dst, offset: off, immediate: imm))
    }
    mutating func stx(_ size: Size, _ dst: UInt8, _ off: Int16, _ src: UInt8) {
        slots.append(BPFInstruction(opcode: BPFOpcode.classSTX | BPFOpcode.modeMEM | size.bits, dst: dst, src: src, offset: off))
    }
    mutating func atomicAdd(_ size: Size, _ dst: UInt8, _ off: Int16, _ src: UInt8) {
        slots.append(
            BPFInstruction(opcode: BPFOpcode.classSTX | BPFOpcode.modeATOMIC | size.bits, dst: dst, src: src, offset: off, immediate: 0))
    }

    // control flow
    mutating func jump(_ op: UInt8, _ dst: UInt8, imm: Int32, to label: String, is32: Bool = false) {
        fixups.append((slots.count, label, false))
        slots.append(BPFInstruction(opcode: op | (is32 ? BPFOpcode.classJMP32 : BPFOpcode.classJMP), dst: dst, immediate: imm))
    }
    mutating func jump(_ op: UInt8, _ dst: UInt8, src: UInt8, to label: String, is32: Bool = false) {
        fixups.append((slots.count, label, false))
        slots.append(
            BPFInstruction(opcode: op | BPFOpcode.sourceX | (is32 ? BPFOpcode.classJMP32 : BPFOpcode.classJMP), dst: dst, src: src))
    }
    mutating func ja(_ label: String) {
        fixups.append((slots.count, label, false))
        slots.append(BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.ja))
    }
    mutating func call(_ helper: Int32) {
        slots.append(BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.call, immediate: helper))
    }
    mutating func callLocal(_ label: String) {
        fixups.append((slots.count, label, true))
        slots.append(BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.call, src: BPFOpcode.callLocal))
    }
    mutating func exit() { slots.append(BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.exit)) }

    /// `r0 = value; exit`
    mutating func ret(_ value: Int32) {
        mov(0, value)
        exit()
    }
}

func build(_ body: (inout ProgramBuilder) -> Void) -> [BPFInstruction] {
    var b = ProgramBuilder()
    body(&b)
    return b.program
}
