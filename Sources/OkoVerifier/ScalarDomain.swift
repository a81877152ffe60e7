// The numeric abstract domain: known bits (tnum) plus unsigned and signed intervals.
//
// A `ScalarRange` over-approximates the set of 64-bit values a register may hold. The three views
// (tnum, unsigned interval, signed interval) are kept consistent by `normalized()`, which lets each
// view tighten the others; an empty result means the path that produced it is infeasible.

/// Known bits: bit i is known to equal `value` bit i where `mask` bit i is 0.
struct Tnum: Hashable, Sendable {
    var value: UInt64
    var mask: UInt64

    static let unknown = Tnum(value: 0, mask: ~0)
    static func constant(_ v: UInt64) -> Tnum { Tnum(value: v, mask: 0) }

    /// The tightest tnum containing every value of `min...max`.
    static func range(_ min: UInt64, _ max: UInt64) -> Tnum {
        let chi = min ^ max
        let bits = 64 - chi.leadingZeroBitCount
        if bits > 63 { return .unknown }
        let delta: UInt64 = (1 << UInt64(bits)) &- 1
        return Tnum(value: min & ~delta, mask: delta)
    }

    var isConstant: Bool { mask == 0 }
    var maxValue: UInt64 { value | mask }

    static func + (a: Tnum, b: Tnum) -> Tnum {
        let sm = a.mask &+ b.mask
        let sv = a.value &+ b.value
        let sigma = sm &+ sv
        let chi = sigma ^ sv
        let mu = chi | a.mask | b.mask
        return Tnum(value: sv & ~mu, mask: mu)
    }

    static func - (a: Tnum, b: Tnum) -> Tnum {
        let dv = a.value &- b.value
        let alpha = dv &+ a.mask
        let beta = dv &- b.mask
        let chi = alpha ^ beta
        let mu = chi | a.mask | b.mask
        return Tnum(value: dv & ~mu, mask: mu)
    }

    static func & (a: Tnum, b: Tnum) -> Tnum {
        let alpha = a.value | a.mask
        let beta = b.value | b.mask
        let v = a.value & b.value
        return Tnum(value: v, mask: alpha & beta & ~v)
    }

    static func | (a: Tnum, b: Tnum) -> Tnum {
        let v = a.value | b.value
        return Tnum(value: v, mask: (a.mask | b.mask) & ~v)
    }

    static func ^ (a: Tnum, b: Tnum) -> Tnum {
        let v = a.value ^ b.value
        let mu = a.mask | b.mask
        return Tnum(value: v & ~mu, mask: mu)
    }

    func shiftedLeft(_ k: UInt64) -> Tnum { Tnum(value: value << k, mask: mask << k) }
    func shiftedRight(_ k: UInt64) -> Tnum { Tnum(value: value >> k, mask: mask >> k) }
    func arithmeticShiftedRight(_ k: UInt64) -> Tnum {
        Tnum(
            value: UInt64(bitPattern: Int64(bitPattern: value) >> Int64(k)),
            mask: UInt64(bitPattern: Int64(bitPattern: mask) >> Int64(k)))
    }

    static func * (a: Tnum, b: Tnum) -> Tnum {
        var a = a
        var b = b
        let accValue = a.value &* b.value
        var accMask = Tnum(value: 0, mask: 0)
        while a.value != 0 || a.mask != 0 {
            if a.value & 1 != 0 {
                accMask = accMask + Tnum(value: 0, mask: b.mask)
            } else if a.mask & 1 != 0 {
                accMask = accMask + Tnum(value: 0, mask: b.value | b.mask)
            }
            a = a.shiftedRight(1)
            b = b.shiftedLeft(1)
        }
        return Tnum(value: accValue, mask: 0) + accMask
    }

    /// Both constraints at once; nil when they contradict.
    func intersected(with other: Tnum) -> Tnum? {
        if (value ^ other.value) & ~mask & ~other.mask != 0 { return nil }
        let v = value | other.value
        let mu = mask & other.mask
        return Tnum(value: v & ~mu, mask: mu)
    }

    /// True when every value of `self` is a value of `other`.
    func isSubset(of other: Tnum) -> Bool {
        (mask & ~other.mask) == 0 && (value & ~other.mask) == other.value
    }

    var truncatedTo32: Tnum { Tnum(value: value & 0xffff_ffff, mask: mask & 0xffff_ffff) }
}

/// An over-approximation of a 64-bit register value.
struct ScalarRange: Hashable, Sendable {
    var umin: UInt64
    var umax: UInt64
    var smin: Int64
    var smax: Int64
    var bits: Tnum

    static let unknown = ScalarRange(umin: 0, umax: .max, smin: .min, smax: .max, bits: .unknown)

    static func constant(_ v: UInt64) -> ScalarRange {
        ScalarRange(umin: v, umax: v, smin: Int64(bitPattern: v), smax: Int64(bitPattern: v), bits: .constant(v))
    }

    static func unsigned(_ lo: UInt64, _ hi: UInt64) -> ScalarRange {
        ScalarRange(umin: lo, umax: hi, smin: .min, smax: .max, bits: .unknown).normalized() ?? .unknown
    }

    static func signed(_ lo: Int64, _ hi: Int64) -> ScalarRange {
        ScalarRange(umin: 0, umax: .max, smin: lo, smax: hi, bits: .unknown).normalized() ?? .unknown
    }

    /// A value of `size` bytes zero-extended into 64 bits.
    static func bytes(_ size: Int) -> ScalarRange {
        size >= 8 ? .unknown : .unsigned(0, (1 << UInt64(size * 8)) - 1)
    }

    var isConstant: Bool { umin == umax }
    var constantValue: UInt64? { umin == umax ? umin : nil }

    /// The three views tightened against each other; nil when no value is left.
    func normalized() -> ScalarRange? {
        var r = self
        for _ in 0..<2 {
            r.umin = max(r.umin, r.bits.value)
            r.umax = min(r.umax, r.bits.maxValue)
            if r.umin > r.umax { return nil }
            // unsigned -> signed when the interval does not cross the sign boundary
            if (r.umax <= UInt64(Int64.max)) || (r.umin > UInt64(Int64.max)) {
                r.smin = max(r.smin, Int64(bitPattern: r.umin))
                r.smax = min(r.smax, Int64(bitPattern: r.umax))
            }
            if r.smin > r.smax { return nil }
            // signed -> unsigned when the interval has one sign
            if r.smin >= 0 || r.smax < 0 {
                r.umin = max(r.umin, UInt64(bitPattern: r.smin))
                r.umax = min(r.umax, UInt64(bitPattern: r.smax))
            }
            if r.umin > r.umax { return nil }
            guard let b = r.bits.intersected(with: Tnum.range(r.umin, r.umax)) else { return nil }
            r.bits = b
        }
        return r
    }

    func intersected(with o: ScalarRange) -> ScalarRange? {
        guard let b = bits.intersected(with: o.bits) else { return nil }
        return ScalarRange(
            umin: max(umin, o.umin), umax: min(umax, o.umax), smin: max(smin, o.smin), smax: min(smax, o.smax),
            bits: b
        ).normalized()
    }

    /// True when every value of `other` is a value of `self`.
    func contains(_ other: ScalarRange) -> Bool {
        umin <= other.umin && umax >= other.umax && smin <= other.smin && smax >= other.smax
            && other.bits.isSubset(of: bits)
    }

    // MARK: arithmetic (64-bit, wrapping like the machine)

    static func + (a: ScalarRange, b: ScalarRange) -> ScalarRange {
        var r = ScalarRange.unknown
        let (ulo, o1) = a.umin.addingReportingOverflow(b.umin)
        let (uhi, o2) = a.umax.addingReportingOverflow(b.umax)
        if !o1 && !o2 { r.umin = ulo; r.umax = uhi }
        let (slo, o3) = a.smin.addingReportingOverflow(b.smin)
        let (shi, o4) = a.smax.addingReportingOverflow(b.smax)
        if !o3 && !o4 { r.smin = slo; r.smax = shi }
        r.bits = a.bits + b.bits
        return r.normalized() ?? .unknown
    }

    static func - (a: ScalarRange, b: ScalarRange) -> ScalarRange {
        var r = ScalarRange.unknown
        if a.umin >= b.umax { r.umin = a.umin - b.umax; r.umax = a.umax - b.umin }
        let (slo, o1) = a.smin.subtractingReportingOverflow(b.smax)
        let (shi, o2) = a.smax.subtractingReportingOverflow(b.smin)
        if !o1 && !o2 { r.smin = slo; r.smax = shi }
        r.bits = a.bits - b.bits
        return r.normalized() ?? .unknown
    }

    static func * (a: ScalarRange, b: ScalarRange) -> ScalarRange {
        var r = ScalarRange.unknown
        let (hi, o) = a.umax.multipliedReportingOverflow(by: b.umax)
        if !o { r.umin = a.umin &* b.umin; r.umax = hi }
        r.bits = a.bits * b.bits
        return r.normalized() ?? .unknown
    }

    static func & (a: ScalarRange, b: ScalarRange) -> ScalarRange {
        var r = ScalarRange.unknown
        r.bits = a.bits & b.bits
        r.umax = min(a.umax, b.umax)
        if a.smin >= 0 || b.smin >= 0 { r.smin = 0 }
        return r.normalized() ?? .unknown
    }

    static func | (a: ScalarRange, b: ScalarRange) -> ScalarRange {
        var r = ScalarRange.unknown
        r.bits = a.bits | b.bits
        r.umin = max(a.umin, b.umin)
        return r.normalized() ?? .unknown
    }

    static func ^ (a: ScalarRange, b: ScalarRange) -> ScalarRange {
        var r = ScalarRange.unknown
        r.bits = a.bits ^ b.bits
        return r.normalized() ?? .unknown
    }

    func shiftedLeft(by s: ScalarRange, width: UInt64) -> ScalarRange {
        guard let k = s.constantValue.map({ $0 & (width - 1) }) else { return .unknown }
        var r = ScalarRange.unknown
        if umax <= (UInt64.max >> k) { r.umin = umin << k; r.umax = umax << k }
        r.bits = bits.shiftedLeft(k)
        return r.normalized() ?? .unknown
    }

    func shiftedRight(by s: ScalarRange, width: UInt64) -> ScalarRange {
        guard let k = s.constantValue.map({ $0 & (width - 1) }) else { return .unsigned(0, umax) }
        var r = ScalarRange.unknown
        r.umin = umin >> k
        r.umax = umax >> k
        r.bits = bits.shiftedRight(k)
        return r.normalized() ?? .unknown
    }

    func arithmeticShiftedRight(by s: ScalarRange, width: UInt64) -> ScalarRange {
        guard let k = s.constantValue.map({ $0 & (width - 1) }) else { return .unknown }
        var r = ScalarRange.unknown
        r.smin = smin >> Int64(k)
        r.smax = smax >> Int64(k)
        r.bits = bits.arithmeticShiftedRight(k)
        return r.normalized() ?? .unknown
    }

    /// Unsigned division; division by zero yields 0 (eBPF semantics).
    func divided(by d: ScalarRange) -> ScalarRange {
        if let c = d.constantValue {
            if c == 0 { return .constant(0) }
            return .unsigned(umin / c, umax / c)
        }
        return .unsigned(0, umax)
    }

    /// Unsigned remainder; `x % 0 == x` (eBPF semantics).
    func remainder(by d: ScalarRange) -> ScalarRange {
        if let c = d.constantValue {
            if c == 0 || umax < c { return self }
            return .unsigned(0, c - 1)
        }
        return .unsigned(0, umax)
    }

    /// The low 32 bits, zero-extended (what every 32-bit ALU operation leaves in a register).
    var truncatedTo32: ScalarRange {
        if umax <= 0xffff_ffff { return self }
        var r = ScalarRange.unsigned(0, 0xffff_ffff)
        r.bits = bits.truncatedTo32
        return r.normalized() ?? .unsigned(0, 0xffff_ffff)
    }

    /// The value sign-extended from its low `bits` bits.
    func signExtended(fromBits n: Int) -> ScalarRange {
        let limit = Int64(1) << Int64(n - 1)
        if smin >= 0 && smax < limit { return self }
        if let c = constantValue {
            let shift = UInt64(64 - n)
            return .constant(UInt64(bitPattern: Int64(bitPattern: c << shift) >> Int64(shift)))
        }
        return .signed(-limit, limit - 1)
    }
}

extension ScalarRange: CustomStringConvertible {
    var description: String {
        if let c = constantValue { return "\(Int64(bitPattern: c))" }
        if umax <= UInt64(Int64.max) { return "[\(umin), \(umax)]" }
        if smin == .min && smax == .max { return "unknown" }
        return "[\(smin), \(smax)]"
    }
}
