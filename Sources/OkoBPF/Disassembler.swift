// BPFDisassembler: the one text form of eBPF instructions, shared by tools, the API and the
// verifier's refusal messages.
//
// It prints the ubpf-style syntax BPFAssembler reads (numeric jump offsets), so a decodable
// program round-trips through text. An lddw that refers to a map (pseudo source 1, or 2 for an
// address inside a map value) keeps its raw immediate and names the map in a trailing comment,
// which the assembler ignores. A slot that does not decode is shown field by field with the reason,
// so a refusal can always show what the program contained.

public enum BPFDisassembler {
    /// One line of assembler text per instruction, in the syntax `BPFAssembler` accepts.
    public static func disassemble(_ program: [BPFInstruction]) throws(BPFDecodeError) -> String {
        try BPFDecoder.decode(program).map { text(of: $0.instruction) }.joined(separator: "\n") + "\n"
    }

    /// Text of the instruction starting at `slot` (an lddw reads its second slot too). A slot that
    /// does not decode is shown as its raw fields and the decoder's reason.
    public static func text(of program: [BPFInstruction], at slot: Int) -> String {
        guard slot >= 0 && slot < program.count else { return "<no instruction \(slot)>" }
        do {
            return text(of: try BPFDecoder.decodeOne(program, at: slot))
        } catch {
            let i = program[slot]
            // the decoder's description starts "instruction N: "; the caller already names the slot
            var reason = error.description
            if let colon = reason.firstIndex(of: ":") { reason = String(reason[reason.index(after: colon)...].dropFirst()) }
            return "<opcode 0x\(String(i.opcode, radix: 16)) dst r\(i.dst) src r\(i.src) offset \(i.offset) "
                + "immediate \(i.immediate): \(reason)>"
        }
    }

    /// Text of a single decoded instruction (jump targets as `+n`/`-n`).
    public static func text(of instruction: DecodedInstruction) -> String {
        func reg(_ r: UInt8) -> String { "%r\(r)" }
        func suffix(_ width: BPFWidth) -> String { width == .bits32 ? "32" : "" }
        func operand(_ operand: BPFOperand) -> String {
            switch operand {
            case .register(let r): reg(r)
            case .immediate(let imm): "\(imm)"
            }
        }
        func relative(_ offset: some BinaryInteger) -> String { offset < 0 ? "\(offset)" : "+\(offset)" }
        func memory(_ base: UInt8, _ offset: Int16) -> String { "[\(reg(base))\(relative(offset))]" }
        func size(_ size: BPFAccessSize) -> String {
            switch size {
            case .byte: "b"
            case .half: "h"
            case .word: "w"
            case .double: "dw"
            }
        }
        switch instruction {
        case .alu(let operation, let width, let dst, let source):
            return "\(operation.rawValue)\(suffix(width)) \(reg(dst)), \(operand(source))"
        case .negate(let width, let dst):
            return "neg\(suffix(width)) \(reg(dst))"
        case .moveSignExtend(let width, let dst, let src, let bits):
            return "movsx\(bits)\(width.rawValue) \(reg(dst)), \(reg(src))"
        case .byteOrder(let order, let bits, let dst):
            return "\(order.rawValue)\(bits) \(reg(dst))"
        case .loadImmediate64(let dst, let value, let pseudoSource):
            let text = "lddw \(reg(dst)), 0x\(String(value, radix: 16))"
            switch pseudoSource {
            case BPFOpcode.pseudoMapFD: return text + " # map \(UInt32(truncatingIfNeeded: value))"
            case BPFOpcode.pseudoMapValue:
                return text + " # map \(UInt32(truncatingIfNeeded: value)) value + \(value >> 32)"
            case 0: return text
            default: return text + " # pseudo source \(pseudoSource)"
            }
        case .load(let accessSize, let signExtend, let dst, let base, let offset):
            return "ldx\(signExtend ? "s" : "")\(size(accessSize)) \(reg(dst)), \(memory(base, offset))"
        case .store(let accessSize, let base, let offset, let value):
            switch value {
            case .register(let src): return "stx\(size(accessSize)) \(memory(base, offset)), \(reg(src))"
            case .immediate(let imm): return "st\(size(accessSize)) \(memory(base, offset)), \(imm)"
            }
        case .atomic(let operation, let accessSize, let fetch, let base, let offset, let src):
            let explicitFetch = fetch && operation != .xchg && operation != .cmpxchg
            return "lock \(explicitFetch ? "fetch " : "")\(operation.rawValue)\(accessSize == .word ? "32" : "") "
                + "\(memory(base, offset)), \(reg(src))"
        case .packetLoad(let accessSize, let indexRegister, let immediate):
            if let indexRegister { return "ldind\(size(accessSize)) \(reg(indexRegister)), \(immediate)" }
            return "ldabs\(size(accessSize)) \(immediate)"
        case .jump(let offset):
            return "ja \(relative(offset))"
        case .jumpLong(let offset):
            return "ja32 \(relative(offset))"
        case .conditionalJump(let condition, let width, let dst, let source, let offset):
            return "\(condition.rawValue)\(suffix(width)) \(reg(dst)), \(operand(source)), \(relative(offset))"
        case .callHelper(let id):
            return "call \(id)"
        case .callLocal(let offset):
            return "call local \(relative(offset))"
        case .callRegister(let r):
            return "call \(reg(r))"
        case .exit:
            return "exit"
        }
    }
}
