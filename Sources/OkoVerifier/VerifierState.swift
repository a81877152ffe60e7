// Abstract machine state: register types, stack contents, and facts about the packet length.

/// Symbol 0 means "no symbol"; symbol 1 is the packet length.
let lengthSymbol: Int32 = 1

/// A scalar whose value is `symbol + delta` exactly, when `symbol != 0` (copies share a symbol).
struct ScalarValue: Hashable, Sendable {
    var range: ScalarRange
    var symbol: Int32 = 0
    var delta: Int64 = 0
    /// Non-zero: the value is `(symbol + delta) << shift` (clang's `<<32 >>32` zero-extension idiom);
    /// the relation is usable again once shifted back.
    var shift: UInt8 = 0

    /// Non-nil: the value is exactly `value(andSource.symbol) & andSource.mask`, so a bound learnt on
    /// it tells which masked bits of that symbol are zero.
    var andSource: AndSource? = nil

    /// The symbol when the value is exactly `symbol + delta`, else 0.
    var linearSymbol: Int32 { shift == 0 ? symbol : 0 }
}

struct AndSource: Hashable, Sendable {
    var symbol: Int32
    var mask: UInt64
}

/// `pkt + fixed + v` where v is the value of `symbol` (or an anonymous value) in `varMin...varMax`.
/// With `symbol == lengthSymbol` this is the packet end pointer (plus `fixed`).
struct PacketPointer: Hashable, Sendable {
    var fixed: Int64
    var symbol: Int32
    var varMin: Int64
    var varMax: Int64
}

enum RegisterValue: Hashable, Sendable {
    case uninitialised
    case scalar(ScalarValue)
    case packet(PacketPointer)
    /// Pointer into the stack of frame `frame`, at `offset` relative to its r10 (variable when min < max).
    case stack(frame: Int, minOffset: Int64, maxOffset: Int64)
    case mapPointer(map: Int)
    case mapValue(map: Int, minOffset: Int64, maxOffset: Int64)
    case mapValueOrNull(map: Int, nullID: Int32)

    static func constant(_ v: UInt64) -> RegisterValue { .scalar(ScalarValue(range: .constant(v))) }
    static let unknownScalar = RegisterValue.scalar(ScalarValue(range: .unknown))

    var isPointer: Bool {
        switch self {
        case .uninitialised, .scalar: return false
        default: return true
        }
    }

    var typeName: String {
        switch self {
        case .uninitialised: return "uninitialised"
        case .scalar(let s): return "scalar \(s.range)"
        case .packet(let p): return p.symbol == lengthSymbol ? "packet end pointer" : "packet pointer"
        case .stack: return "stack pointer"
        case .mapPointer: return "map pointer"
        case .mapValue: return "map value pointer"
        case .mapValueOrNull: return "map value or NULL"
        }
    }
}

/// Eight stack bytes: a spilled register, or bytes with an initialised-byte mask.
enum StackSlot: Hashable, Sendable {
    case spill(RegisterValue)
    case bytes(initialised: UInt8)
}

struct Frame: Hashable, Sendable {
    var registers: [RegisterValue]
    /// Slot i covers bytes r10-8(i+1) ..< r10-8i; grown on demand.
    var stack: [StackSlot] = []
    /// Instruction to resume at in the caller; -1 for the main frame.
    var returnIndex: Int
    /// Deepest byte touched below r10.
    var stackDepth: Int = 0
}

struct VerifierState: Hashable, Sendable {
    var frames: [Frame]
    /// facts[s] = k: the packet length is at least value(s) + k (s = 0: at least k).
    var facts: [Int32: Int64] = initialFacts
    /// What holds of every packet: len >= 0 and len >= len + 0.
    static let initialFacts: [Int32: Int64] = [0: 0, lengthSymbol: 0]
    var nextSymbol: Int32 = 2

    mutating func freshSymbol() -> Int32 {
        defer { nextSymbol += 1 }
        return nextSymbol
    }

    var current: Int { frames.count - 1 }

    subscript(register r: Int) -> RegisterValue {
        get { frames[frames.count - 1].registers[r] }
        set { frames[frames.count - 1].registers[r] = newValue }
    }

    mutating func addFact(symbol: Int32, atLeast k: Int64) {
        if let old = facts[symbol], old >= k { return }
        facts[symbol] = k
    }

    var provenLength: Int64 { facts[0] ?? 0 }

    /// Applies `transform` to every register and spilled register of every frame.
    mutating func updateAllValues(_ transform: (RegisterValue) -> RegisterValue) {
        for f in frames.indices {
            for r in frames[f].registers.indices {
                frames[f].registers[r] = transform(frames[f].registers[r])
            }
            for s in frames[f].stack.indices {
                if case .spill(let v) = frames[f].stack[s] { frames[f].stack[s] = .spill(transform(v)) }
            }
        }
    }

    /// Renumbers symbols (and null ids, which share the counter) in order of first use and drops
    /// facts about symbols no value refers to any more. Symbols only name values, so this changes
    /// nothing about the concrete states described; it lets paths that allocated different numbers
    /// for the same shape of state prune each other.
    mutating func canonicaliseSymbols() {
        var mapping: [Int32: Int32] = [0: 0, lengthSymbol: lengthSymbol]
        // a renamed symbol s' = s + shift[s], so the first value seen with it has delta 0
        var shiftBy: [Int32: Int64] = [0: 0, lengthSymbol: 0]
        var next: Int32 = lengthSymbol + 1
        func rename(_ s: Int32, delta: Int64) -> Int32 {
            if let m = mapping[s] { return m }
            mapping[s] = next
            shiftBy[s] = abs(delta) < 1 << 40 ? delta : 0
            next += 1
            return next - 1
        }
        updateAllValues { v in
            switch v {
            case .scalar(var x) where x.symbol != 0:
                let old = x.symbol
                x.symbol = rename(old, delta: x.delta)
                x.delta -= shiftBy[old]!
                return .scalar(x)
            case .packet(var p) where p.symbol != 0:
                let old = p.symbol
                p.symbol = rename(old, delta: 0)
                let d = shiftBy[old]!
                p.fixed -= d
                p.varMin += d
                p.varMax += d
                return .packet(p)
            case .mapValueOrNull(let m, let id):
                return .mapValueOrNull(map: m, nullID: rename(id, delta: 0))
            default:
                return v
            }
        }
        // an and-source stays only when its symbol is still referenced and was not shifted
        updateAllValues { v in
            guard case .scalar(var x) = v, let a = x.andSource else { return v }
            if let m = mapping[a.symbol], shiftBy[a.symbol] == 0 {
                x.andSource = AndSource(symbol: m, mask: a.mask)
            } else {
                x.andSource = nil
            }
            return .scalar(x)
        }
        var renamed: [Int32: Int64] = [:]
        for (s, k) in facts {
            // len >= s + k = s' - shift + k
            if let m = mapping[s] { renamed[m] = k - shiftBy[s]! }
        }
        facts = renamed
        nextSymbol = next
    }
}
