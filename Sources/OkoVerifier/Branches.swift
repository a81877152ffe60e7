// Conditional jumps: which outcomes are feasible, and what each outcome teaches about the operands.
import OkoBPF

enum Relation {
    case eq, ne, ugt, uge, ult, ule, sgt, sge, slt, sle, set, clear

    init?(_ op: UInt8) {
        switch op {
        case BPFOpcode.jeq: self = .eq
        case BPFOpcode.jne: self = .ne
        case BPFOpcode.jgt: self = .ugt
        case BPFOpcode.jge: self = .uge
        case BPFOpcode.jlt: self = .ult
        case BPFOpcode.jle: self = .ule
        case BPFOpcode.jsgt: self = .sgt
        case BPFOpcode.jsge: self = .sge
        case BPFOpcode.jslt: self = .slt
        case BPFOpcode.jsle: self = .sle
        case BPFOpcode.jset: self = .set
        default: return nil
        }
    }

    var negated: Relation {
        switch self {
        case .eq: return .ne
        case .ne: return .eq
        case .ugt: return .ule
        case .uge: return .ult
        case .ult: return .uge
        case .ule: return .ugt
        case .sgt: return .sle
        case .sge: return .slt
        case .slt: return .sge
        case .sle: return .sgt
        case .set: return .clear
        case .clear: return .set
        }
    }

    var isSigned: Bool { [.sgt, .sge, .slt, .sle].contains(self) }

    func holds(_ a: UInt64, _ b: UInt64) -> Bool {
        let x = Int64(bitPattern: a), y = Int64(bitPattern: b)
        switch self {
        case .eq: return a == b
        case .ne: return a != b
        case .ugt: return a > b
        case .uge: return a >= b
        case .ult: return a < b
        case .ule: return a <= b
        case .sgt: return x > y
        case .sge: return x >= y
        case .slt: return x < y
        case .sle: return x <= y
        case .set: return a & b != 0
        case .clear: return a & b == 0
        }
    }
}

/// A comparison operand seen as `value(symbol) + delta`, with a known lower bound.
struct LinearOperand {
    var symbol: Int32
    var delta: Int64
    var minimum: Int64
    /// False for a non-constant scalar without a symbol: only `minimum` is usable.
    var exact: Bool
}

extension Analysis {
    mutating func branch(_ insn: BPFInstruction, _ state: VerifierState, is32: Bool) throws(VerificationError) -> (VerifierState?, VerifierState?) {
        let op = insn.opcode & 0xf0
        guard let relation = Relation(op) else { throw fail(.invalidInstruction("jump operation \(op >> 4)")) }
        var state = state
        let dst = Int(insn.dst)
        let useReg = insn.opcode & BPFOpcode.sourceX != 0
        var a = try read(&state, dst)
        var b: RegisterValue
        if useReg {
            b = try read(&state, Int(insn.src))
        } else {
            let imm = is32 ? UInt64(UInt32(bitPattern: insn.immediate)) : UInt64(bitPattern: Int64(insn.immediate))
            b = .constant(imm)
        }
        let srcReg: Int? = useReg ? Int(insn.src) : nil

        switch (a, b) {
        case (.scalar(var x), .scalar(var y)):
            if is32 {
                let small = x.range.umax < 1 << 31 && y.range.umax < 1 << 31
                if !small {
                    if let c = x.range.constantValue, let d = y.range.constantValue {
                        let holds = relation.holds32(c, d)
                        return holds ? (state, nil) : (nil, state)
                    }
                    return (state, state)
                }
            }
            // give unknown operands of a comparison with the packet length a symbol, so the fact sticks
            if x.linearSymbol == lengthSymbol || y.linearSymbol == lengthSymbol {
                if x.symbol == 0 && !x.range.isConstant {
                    x.symbol = state.freshSymbol()
                    state[register: dst] = .scalar(x)
                    a = .scalar(x)
                }
                if y.symbol == 0 && !y.range.isConstant, let s = srcReg {
                    y.symbol = state.freshSymbol()
                    state[register: s] = .scalar(y)
                    b = .scalar(y)
                }
            }
            return (
                refineScalars(state, relation, x, y, dst: dst, src: srcReg),
                refineScalars(state, relation.negated, x, y, dst: dst, src: srcReg)
            )
        case (.mapValueOrNull(_, let id), .scalar(let y)) where y.range.constantValue == 0 && !is32:
            guard relation == .eq || relation == .ne else { throw fail(.pointerComparison("ordering of a map lookup result")) }
            let null = resolveNull(state, id: id, isNull: true)
            let valid = resolveNull(state, id: id, isNull: false)
            return relation == .eq ? (null, valid) : (valid, null)
        case (.packet(let p), .packet(let q)) where !is32:
            guard !relation.isSigned && relation != .set else {
                throw fail(.pointerComparison("signed or bit test comparison of packet pointers"))
            }
            let pl = LinearOperand(symbol: p.symbol, delta: p.fixed, minimum: p.fixed + p.varMin, exact: true)
            let ql = LinearOperand(symbol: q.symbol, delta: q.fixed, minimum: q.fixed + q.varMin, exact: true)
            var taken = state, notTaken = state
            learn(&taken, relation, pl, ql)
            learn(&notTaken, relation.negated, pl, ql)
            return (taken, notTaken)
        case (.scalar, _), (_, .scalar):
            let pointer = a.isPointer ? a : b
            let other = a.isPointer ? b : a
            if case .scalar(let s) = other, s.range.constantValue == 0, relation == .eq || relation == .ne, !is32 {
                if case .mapValueOrNull = pointer { break }
                // a valid pointer is never NULL
                return relation == .eq ? (nil, state) : (state, nil)
            }
            throw fail(.pointerComparison("\(pointer.typeName) compared with a scalar"))
        default:
            break
        }
        throw fail(.pointerComparison("\(a.typeName) compared with \(b.typeName)"))
    }

    func resolveNull(_ state: VerifierState, id: Int32, isNull: Bool) -> VerifierState {
        var s = state
        s.updateAllValues { v in
            if case .mapValueOrNull(let m, let nid) = v, nid == id {
                return isNull ? .constant(0) : .mapValue(map: m, minOffset: 0, maxOffset: 0)
            }
            return v
        }
        return s
    }

    /// The state on the outcome where `x relation y` holds, or nil when it cannot.
    func refineScalars(_ state: VerifierState, _ relation: Relation, _ x: ScalarValue, _ y: ScalarValue, dst: Int, src: Int?) -> VerifierState? {
        guard let (rx, ry) = Self.refine(relation, x.range, y.range) else { return nil }
        var s = state
        var nx = x, ny = y
        nx.range = rx
        ny.range = ry
        s[register: dst] = .scalar(nx)
        if let src, src != dst { s[register: src] = .scalar(ny) }
        guard propagate(&s, nx), propagate(&s, ny), propagateMasked(&s, nx), propagateMasked(&s, ny) else { return nil }
        // integer order agrees with unsigned order only for non-negative operands
        let signedOK = relation.isSigned || (rx.smin >= 0 && ry.smin >= 0)
        if signedOK {
            let sx = nx.linearSymbol, sy = ny.linearSymbol
            let lx = LinearOperand(symbol: sx, delta: sx != 0 ? nx.delta : Int64(bitPattern: rx.umin), minimum: rx.smin, exact: sx != 0 || rx.isConstant)
            let ly = LinearOperand(symbol: sy, delta: sy != 0 ? ny.delta : Int64(bitPattern: ry.umin), minimum: ry.smin, exact: sy != 0 || ry.isConstant)
            learn(&s, relation, lx, ly)
        }
        return s
    }

    /// Records packet length facts implied by `a relation b` holding as integers.
    func learn(_ state: inout VerifierState, _ relation: Relation, _ a: LinearOperand, _ b: LinearOperand) {
        switch relation {
        case .ule, .sle: lessOrEqual(&state, a, b, strict: 0)
        case .ult, .slt: lessOrEqual(&state, a, b, strict: 1)
        case .uge, .sge: lessOrEqual(&state, b, a, strict: 0)
        case .ugt, .sgt: lessOrEqual(&state, b, a, strict: 1)
        case .eq:
            lessOrEqual(&state, a, b, strict: 0)
            lessOrEqual(&state, b, a, strict: 0)
        default: break
        }
    }

    /// From `l + strict <= r` with r relative to the packet length: len >= value(l.symbol) + k.
    /// When r is relative to another symbol t with a fact `len >= value(t) + kt` (e.g. a bound
    /// clamped to len and compared later), the facts follow by transitivity:
    /// l + strict <= t + r.delta <= len - kt + r.delta. Symbols name fixed values, so facts never expire.
    func lessOrEqual(_ state: inout VerifierState, _ l: LinearOperand, _ r: LinearOperand, strict: Int64) {
        guard r.exact, l.symbol != lengthSymbol, r.symbol != 0 else { return }
        let base: Int64
        if r.symbol == lengthSymbol {
            base = 0
        } else if let kt = state.facts[r.symbol], l.symbol != r.symbol {
            base = kt
        } else {
            return
        }
        // extreme constants could overflow; such facts are useless anyway (len is small)
        func bound(_ x: Int64) -> Int64? {
            let (a, o1) = x.subtractingReportingOverflow(r.delta)
            let (b, o2) = a.addingReportingOverflow(strict)
            let (c, o3) = b.addingReportingOverflow(base)
            return o1 || o2 || o3 ? nil : c
        }
        if l.exact, let k = bound(l.delta) {
            state.addFact(symbol: l.symbol, atLeast: k)
        }
        if let k = bound(l.minimum) { state.addFact(symbol: 0, atLeast: k) }
    }

    /// Copies the refined range of a symbolic scalar to every value sharing its symbol.
    func propagate(_ state: inout VerifierState, _ v: ScalarValue) -> Bool {
        guard v.linearSymbol != 0 else { return true }
        let (lo, o1) = v.range.smin.subtractingReportingOverflow(v.delta)
        let (hi, o2) = v.range.smax.subtractingReportingOverflow(v.delta)
        guard !o1 && !o2 else { return true }
        var feasible = true
        if v.symbol == lengthSymbol { state.addFact(symbol: 0, atLeast: lo) }
        state.updateAllValues { value in
            switch value {
            case .scalar(var s) where s.symbol == v.symbol && s.shift == 0:
                let (l, p1) = lo.addingReportingOverflow(s.delta)
                let (h, p2) = hi.addingReportingOverflow(s.delta)
                if p1 || p2 { return value }
                guard let r = s.range.intersected(with: .signed(l, h)) else {
                    feasible = false
                    return value
                }
                s.range = r
                return .scalar(s)
            case .packet(var p) where p.symbol == v.symbol:
                p.varMin = max(p.varMin, lo)
                p.varMax = min(p.varMax, hi)
                if p.varMin > p.varMax { feasible = false }
                return .packet(p)
            default:
                return value
            }
        }
        return feasible
    }

    /// For v = value(s) & mask with v < 2^k: the mask bits at k and above are zero in s.
    func propagateMasked(_ state: inout VerifierState, _ v: ScalarValue) -> Bool {
        guard let source = v.andSource else { return true }
        let k = 64 - v.range.umax.leadingZeroBitCount
        let zero = k >= 64 ? 0 : source.mask & ~((UInt64(1) << UInt64(k)) - 1)
        guard zero != 0 else { return true }
        var feasible = true
        state.updateAllValues { value in
            guard case .scalar(var x) = value, x.symbol == source.symbol, x.delta == 0, x.shift == 0 else { return value }
            var r = x.range
            guard let bits = r.bits.intersected(with: Tnum(value: 0, mask: ~zero)) else {
                feasible = false
                return value
            }
            r.bits = bits
            guard let n = r.normalized() else {
                feasible = false
                return value
            }
            x.range = n
            return .scalar(x)
        }
        return feasible
    }

    static func refine(_ relation: Relation, _ a: ScalarRange, _ b: ScalarRange) -> (ScalarRange, ScalarRange)? {
        var a = a, b = b
        switch relation {
        case .eq:
            guard let i = a.intersected(with: b) else { return nil }
            return (i, i)
        case .ne:
            if let c = b.constantValue { a = excluding(a, c) ?? a; if a.constantValue == c { return nil } }
            if let c = a.constantValue { b = excluding(b, c) ?? b; if b.constantValue == c { return nil } }
        case .ule:
            a.umax = min(a.umax, b.umax)
            b.umin = max(b.umin, a.umin)
        case .ult:
            guard b.umax > 0, a.umin < .max else { return nil }
            a.umax = min(a.umax, b.umax - 1)
            b.umin = max(b.umin, a.umin + 1)
        case .uge:
            guard let (y, x) = refine(.ule, b, a) else { return nil }
            return (x, y)
        case .ugt:
            guard let (y, x) = refine(.ult, b, a) else { return nil }
            return (x, y)
        case .sle:
            a.smax = min(a.smax, b.smax)
            b.smin = max(b.smin, a.smin)
        case .slt:
            guard b.smax > .min, a.smin < .max else { return nil }
            a.smax = min(a.smax, b.smax - 1)
            b.smin = max(b.smin, a.smin + 1)
        case .sge:
            guard let (y, x) = refine(.sle, b, a) else { return nil }
            return (x, y)
        case .sgt:
            guard let (y, x) = refine(.slt, b, a) else { return nil }
            return (x, y)
        case .set:
            if let c = b.constantValue {
                if a.bits.value & c != 0 { break }
                if a.bits.maxValue & c == 0 { return nil }
            }
        case .clear:
            if let c = b.constantValue {
                if a.bits.value & c != 0 { return nil }
                a.bits = Tnum(value: a.bits.value & ~c, mask: a.bits.mask & ~c)
            }
        }
        guard let x = a.normalized(), let y = b.normalized() else { return nil }
        return (x, y)
    }

    /// `r` without the single value `c` when `c` is at one of its ends.
    static func excluding(_ r: ScalarRange, _ c: UInt64) -> ScalarRange? {
        var r = r
        if r.umin == c && r.umin < .max { r.umin += 1 } else if r.umax == c && r.umax > 0 { r.umax -= 1 }
        let sc = Int64(bitPattern: c)
        if r.smin == sc && r.smin < .max { r.smin += 1 } else if r.smax == sc && r.smax > .min { r.smax -= 1 }
        return r.normalized()
    }
}

extension Relation {
    func holds32(_ a: UInt64, _ b: UInt64) -> Bool {
        let x = UInt64(UInt32(truncatingIfNeeded: a)), y = UInt64(UInt32(truncatingIfNeeded: b))
        if isSigned {
            let sx = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: a)))
            let sy = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: b)))
            return holds(sx, sy)
        }
        return holds(x, y)
    }
}
