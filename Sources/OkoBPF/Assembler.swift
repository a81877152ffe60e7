// Assembler and disassembler for the ubpf-style text used by the bpf_conformance suite.
//
// Syntax (one instruction per line, `#` starts a comment, `name:` defines a label):
//   mov %r0, 1 / add32 %r1, %r2 / neg %r3 / movsx1632 %r1, %r2 / be16 %r0 / le32 %r0 / swap64 %r0
//   sdiv %r1, 3 / smod32 %r1, %r2 / lddw %r0, 0x1122334455667788
//   ldxw %r0, [%r1+4] / ldxsb %r0, [%r1-1] / stw [%r10-8], 7 / stxdw [%r10-8], %r1
//   lock add [%r10-8], %r1 / lock fetch xor32 [%r1], %r2 / lock xchg ... / lock cmpxchg ...
//   ja +2 / ja label / ja32 label / jeq %r1, 0x10, +2 / jslt32 %r1, %r2, label
//   call 5 / call %r2 (callx) / call local label / call local +3 / exit
//   ldabsh 12 / ldindw %r1, 4 (legacy packet loads)
// As in the suite's reference assembler, the first `exit` also defines an implicit label `exit`
// (unless the program declares one), so `jne %r0, 0, exit` jumps to it.
// BPFDisassembler (Disassembler.swift) prints the same syntax with numeric jump offsets, so text round-trips.

/// Text that does not assemble; `line` is 1-based.
public struct BPFAssemblyError: Error, Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var message: String

    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "line \(line): \(message)" }
}

public enum BPFAssembler {
    /// Assembles `source` into wire slots.
    public static func assemble(_ source: String) throws(BPFAssemblyError) -> [BPFInstruction] {
        // Pass 1: split lines, record labels and the slot of every instruction.
        var statements: [(line: Int, slot: Int, tokens: [String])] = []
        var labels: [String: Int] = [:]
        var implicitExit: Int?
        var slot = 0
        var lineNumber = 0
        for rawLine in source.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var text = Substring(rawLine)
            if let hash = text.firstIndex(of: "#") { text = text[..<hash] }
            let tokens = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," || $0 == "\r" })
                .map(String.init)
            guard !tokens.isEmpty else { continue }
            if tokens.count == 1 && tokens[0].hasSuffix(":") {
                let name = String(tokens[0].dropLast())
                guard !name.isEmpty else { throw BPFAssemblyError(line: lineNumber, message: "empty label") }
                guard labels[name] == nil else {
                    throw BPFAssemblyError(line: lineNumber, message: "duplicate label '\(name)'")
                }
                labels[name] = slot
                continue
            }
            if tokens[0] == "exit" && implicitExit == nil { implicitExit = slot }
            statements.append((lineNumber, slot, tokens))
            slot += tokens[0] == "lddw" ? 2 : 1
        }
        if let implicitExit, labels["exit"] == nil { labels["exit"] = implicitExit }

        // Pass 2: encode with every label known.
        var program: [BPFInstruction] = []
        program.reserveCapacity(slot)
        for statement in statements {
            var parser = LineParser(tokens: statement.tokens, line: statement.line, slot: statement.slot, labels: labels)
            program += try parser.parse().encode()
        }
        return program
    }
}

/// Parses the operands of one instruction line.
private struct LineParser {
    let tokens: [String]
    let line: Int
    let slot: Int
    let labels: [String: Int]

    func error(_ message: String) -> BPFAssemblyError { BPFAssemblyError(line: line, message: message) }

    func operands(_ count: Int, from start: Int = 1) throws(BPFAssemblyError) -> [String] {
        guard tokens.count - start == count else {
            throw error("'\(tokens[0])' takes \(count) operand(s), got \(tokens.count - start)")
        }
        return Array(tokens[start...])
    }

    func register(_ text: String) throws(BPFAssemblyError) -> UInt8 {
        guard text.hasPrefix("%r"), let number = UInt8(text.dropFirst(2)), number <= 15 else {
            throw error("invalid register '\(text)'")
        }
        return number
    }

    /// Decimal or 0x-hex integer with optional sign, wrapped to 64 bits.
    func integer(_ text: String) throws(BPFAssemblyError) -> UInt64 {
        var body = Substring(text)
        var negative = false
        if body.hasPrefix("-") { negative = true; body = body.dropFirst() } else if body.hasPrefix("+") { body = body.dropFirst() }
        let value: UInt64?
        if body.hasPrefix("0x") || body.hasPrefix("0X") {
            value = UInt64(body.dropFirst(2), radix: 16)
        } else {
            value = UInt64(body, radix: 10)
        }
        guard let value else { throw error("invalid number '\(text)'") }
        return negative ? 0 &- value : value
    }

    func immediate32(_ text: String) throws(BPFAssemblyError) -> Int32 {
        Int32(bitPattern: UInt32(truncatingIfNeeded: try integer(text)))
    }

    /// A jump target: `+n`/`-n` relative slots or a label.
    func target(_ text: String) throws(BPFAssemblyError) -> Int {
        if text.hasPrefix("+") || text.hasPrefix("-") {
            return Int(Int64(bitPattern: try integer(text)))
        }
        guard let labelSlot = labels[text] else { throw error("unknown label '\(text)'") }
        return labelSlot - slot - 1
    }

    func offset16(_ text: String) throws(BPFAssemblyError) -> Int16 {
        let value = try target(text)
        guard let narrow = Int16(exactly: value) else { throw error("jump offset \(value) does not fit 16 bits") }
        return narrow
    }

    /// `[%rN]`, `[%rN+off]`, `[%rN-off]`.
    func memory(_ text: String) throws(BPFAssemblyError) -> (UInt8, Int16) {
        guard text.hasPrefix("["), text.hasSuffix("]") else { throw error("invalid memory operand '\(text)'") }
        let inner = String(text.dropFirst().dropLast())
        guard let signIndex = inner.firstIndex(where: { $0 == "+" || $0 == "-" }) else {
            return (try register(inner), 0)
        }
        let base = try register(String(inner[..<signIndex]))
        let value = Int64(bitPattern: try integer(String(inner[signIndex...])))
        guard let offset = Int16(exactly: value) else { throw error("memory offset \(value) does not fit 16 bits") }
        return (base, offset)
    }

    func operand(_ text: String) throws(BPFAssemblyError) -> BPFOperand {
        text.hasPrefix("%") ? .register(try register(text)) : .immediate(try immediate32(text))
    }

    static let sizeSuffixes: [(String, BPFAccessSize)] = [("dw", .double), ("b", .byte), ("h", .half), ("w", .word)]

    func accessSize(_ suffix: Substring) throws(BPFAssemblyError) -> BPFAccessSize {
        for (name, size) in Self.sizeSuffixes where suffix == name { return size }
        throw error("unknown mnemonic '\(tokens[0])'")
    }

    mutating func parse() throws(BPFAssemblyError) -> DecodedInstruction {
        let mnemonic = tokens[0]
        switch mnemonic {
        case "exit":
            _ = try operands(0)
            return .exit
        case "ja":
            return .jump(offset: try offset16(try operands(1)[0]))
        case "ja32", "gotol":
            let value = try target(try operands(1)[0])
            guard let offset = Int32(exactly: value) else { throw error("jump offset out of range") }
            return .jumpLong(offset: offset)
        case "call":
            return try parseCall()
        case "lddw":
            let ops = try operands(2)
            return .loadImmediate64(dst: try register(ops[0]), value: try integer(ops[1]), pseudoSource: 0)
        case "lock":
            return try parseAtomic()
        case "neg", "neg32":
            return .negate(mnemonic == "neg" ? .bits64 : .bits32, dst: try register(try operands(1)[0]))
        default:
            break
        }
        for (prefix, order) in [("le", BPFByteOrder.littleEndian), ("be", .bigEndian), ("swap", .swap), ("bswap", .swap)]
        where mnemonic.hasPrefix(prefix) {
            if let bits = UInt8(mnemonic.dropFirst(prefix.count)), bits == 16 || bits == 32 || bits == 64 {
                return .byteOrder(order, bits: bits, dst: try register(try operands(1)[0]))
            }
        }
        if mnemonic.hasPrefix("movsx") {
            let digits = mnemonic.dropFirst(5)
            let forms: [(Substring, UInt8, BPFWidth)] = [
                ("832", 8, .bits32), ("864", 8, .bits64), ("1632", 16, .bits32), ("1664", 16, .bits64),
                ("3264", 32, .bits64),
            ]
            for (name, bits, width) in forms where digits == name {
                let ops = try operands(2)
                return .moveSignExtend(width, dst: try register(ops[0]), src: try register(ops[1]), bits: bits)
            }
            throw error("unknown mnemonic '\(mnemonic)'")
        }
        if mnemonic.hasPrefix("ldabs") {
            let size = try accessSize(mnemonic.dropFirst(5))
            return .packetLoad(size, indexRegister: nil, immediate: try immediate32(try operands(1)[0]))
        }
        if mnemonic.hasPrefix("ldind") {
            let size = try accessSize(mnemonic.dropFirst(5))
            let ops = try operands(2)
            return .packetLoad(size, indexRegister: try register(ops[0]), immediate: try immediate32(ops[1]))
        }
        if mnemonic.hasPrefix("ldxs") {
            let ops = try operands(2)
            let (base, offset) = try memory(ops[1])
            return .load(try accessSize(mnemonic.dropFirst(4)), signExtend: true, dst: try register(ops[0]),
                         base: base, offset: offset)
        }
        if mnemonic.hasPrefix("ldx") {
            let ops = try operands(2)
            let (base, offset) = try memory(ops[1])
            return .load(try accessSize(mnemonic.dropFirst(3)), signExtend: false, dst: try register(ops[0]),
                         base: base, offset: offset)
        }
        if mnemonic.hasPrefix("stx") {
            let ops = try operands(2)
            let (base, offset) = try memory(ops[0])
            return .store(try accessSize(mnemonic.dropFirst(3)), base: base, offset: offset,
                          value: .register(try register(ops[1])))
        }
        if mnemonic.hasPrefix("st") {
            let ops = try operands(2)
            let (base, offset) = try memory(ops[0])
            return .store(try accessSize(mnemonic.dropFirst(2)), base: base, offset: offset,
                          value: .immediate(try immediate32(ops[1])))
        }
        let (name, width) = mnemonic.hasSuffix("32")
            ? (String(mnemonic.dropLast(2)), BPFWidth.bits32) : (mnemonic, BPFWidth.bits64)
        if let condition = BPFJumpCondition(rawValue: name) {
            let ops = try operands(3)
            return .conditionalJump(condition, width, dst: try register(ops[0]), source: try operand(ops[1]),
                                    offset: try offset16(ops[2]))
        }
        if let operation = BPFALUOperation(rawValue: name) {
            let ops = try operands(2)
            return .alu(operation, width, dst: try register(ops[0]), source: try operand(ops[1]))
        }
        throw error("unknown mnemonic '\(mnemonic)'")
    }

    func parseCall() throws(BPFAssemblyError) -> DecodedInstruction {
        if tokens.count == 3 {
            switch tokens[1] {
            case "local":
                let value = try target(tokens[2])
                guard let offset = Int32(exactly: value) else { throw error("call offset out of range") }
                return .callLocal(offset: offset)
            case "helper":
                return .callHelper(id: try immediate32(tokens[2]))
            default:
                throw error("unknown call mode '\(tokens[1])'")
            }
        }
        let target = try operands(1)[0]
        if target.hasPrefix("%") { return .callRegister(try register(target)) }
        return .callHelper(id: try immediate32(target))
    }

    func parseAtomic() throws(BPFAssemblyError) -> DecodedInstruction {
        var rest = Array(tokens.dropFirst())
        var fetch = false
        if rest.first == "fetch" {
            fetch = true
            rest.removeFirst()
        }
        guard rest.count == 3 else { throw error("lock takes [fetch] op [base+off], src") }
        let name = rest[0]
        let (opName, size) = name.hasSuffix("32")
            ? (String(name.dropLast(2)), BPFAccessSize.word) : (name, BPFAccessSize.double)
        guard let operation = BPFAtomicOperation(rawValue: opName) else {
            throw error("unknown atomic operation '\(name)'")
        }
        if operation == .xchg || operation == .cmpxchg { fetch = true }
        let (base, offset) = try memory(rest[1])
        return .atomic(operation, size, fetch: fetch, base: base, offset: offset, src: try register(rest[2]))
    }
}
