// A compact disassembly for refusal messages (the verifier must not depend on OkoBPF's text form).
import OkoBPF

enum VerifierDisassembler {
    static func text(_ program: [BPFInstruction], _ index: Int) -> String {
        guard index >= 0 && index < program.count else { return "<none>" }
        let i = program[index]
        let cls = i.instructionClass
        let d = "r\(i.dst)", s = "r\(i.src)"
        let sizeNames: [UInt8: String] = [0x00: "w", 0x08: "h", 0x10: "b", 0x18: "dw"]
        let size = sizeNames[i.opcode & 0x18] ?? "?"
        switch cls {
        case BPFOpcode.classLD:
            if i.opcode == BPFOpcode.lddw {
                let hi = index + 1 < program.count ? UInt64(UInt32(bitPattern: program[index + 1].immediate)) : 0
                let value = (hi << 32) | UInt64(UInt32(bitPattern: i.immediate))
                switch i.src {
                case 1: return "lddw \(d), map[\(i.immediate)]"
                case 2: return "lddw \(d), map[\(i.immediate)] value + \(hi)"
                default: return "lddw \(d), \(value)"
                }
            }
            return "ld\(size) (legacy packet access)"
        case BPFOpcode.classLDX:
            return "ldx\(size) \(d), [\(s)\(off(i.offset))]"
        case BPFOpcode.classST:
            return "st\(size) [\(d)\(off(i.offset))], \(i.immediate)"
        case BPFOpcode.classSTX:
            if i.opcode & 0xe0 == BPFOpcode.modeATOMIC { return "atomic\(size) [\(d)\(off(i.offset))], \(s) op \(i.immediate)" }
            return "stx\(size) [\(d)\(off(i.offset))], \(s)"
        case BPFOpcode.classALU, BPFOpcode.classALU64:
            let names = ["add", "sub", "mul", "div", "or", "and", "lsh", "rsh", "neg", "mod", "xor", "mov", "arsh", "end"]
            let op = Int(i.opcode >> 4)
            let name = op < names.count ? names[op] : "alu?\(op)"
            let suffix = cls == BPFOpcode.classALU ? "32" : ""
            let operand = i.opcode & BPFOpcode.sourceX != 0 ? s : "\(i.immediate)"
            if op == 8 { return "neg\(suffix) \(d)" }
            return "\(name)\(suffix) \(d), \(operand)"
        default:
            let names = ["ja", "jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "call", "exit", "jlt", "jle", "jslt", "jsle"]
            let op = Int(i.opcode >> 4)
            let name = op < names.count ? names[op] : "jmp?\(op)"
            let suffix = cls == BPFOpcode.classJMP32 ? "32" : ""
            if op == 9 { return "exit" }
            if op == 8 { return i.src == 1 ? "call pc\(off(Int16(truncatingIfNeeded: i.immediate)))" : "call \(i.immediate)" }
            if op == 0 { return "ja \(off(cls == BPFOpcode.classJMP32 ? Int16(truncatingIfNeeded: i.immediate) : i.offset))" }
            let operand = i.opcode & BPFOpcode.sourceX != 0 ? s : "\(i.immediate)"
            return "\(name)\(suffix) \(d), \(operand), \(off(i.offset))"
        }
    }

    private static func off(_ o: Int16) -> String { o < 0 ? "\(o)" : "+\(o)" }
}
