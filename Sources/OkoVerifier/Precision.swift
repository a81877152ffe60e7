// Range precision: which scalar registers' exact ranges a stored state's safety proof relied on.
//
// Pruning compares a new path's state with a fully explored stored one. A live scalar register
// whose range never influenced a safety decision in the stored state's exploration may hold any
// scalar in the new state (Linux calls the others "precise"). A range influences safety when it
// (transitively, through the instructions that compute from it) reaches:
//   - pointer arithmetic (recorded as it happens: the scalar operand at that instruction),
//   - a conditional jump that was decided (one side infeasible) or that taught a packet length
//     fact (recorded as it happens: both operands),
//   - a conditional jump one of whose operands is itself needed later (refining one operand
//     narrows the other),
//   - an 8-byte store (a spilled scalar comes back with its range; narrower stores keep only
//     initialised bytes, and maps keep no ranges), a helper or bpf-to-bpf call argument, or r0 at exit.
// Stack slots likewise: a spilled scalar's range only comes back through an aligned 8-byte load
// of that slot (recorded as it happens); when no such load's destination is needed afterwards,
// the slot may hold any scalar (or eight initialised bytes) in the new state. Slots are numbered
// per frame and the record ignores the frame, which only makes more slots precise.
// `preciseIn[i]` is the backward closure of those uses over the control-flow graph, so it over-
// approximates what any path from i relies on. Uses only grow during a run and a stored state prunes
// only after its whole subtree (a contiguous stretch of the depth-first search) finished, so every
// use its proof relied on was recorded before it is consulted; the closure is recomputed lazily.
// Scalars linked to others (a shared symbol or an and-source) stay exact: a branch on one refines
// the other.
import OkoBPF

struct RangePrecision {
    /// Registers whose range was used at instruction i (recorded during the run).
    var usedAt: [UInt16]
    /// Registers whose range may matter before instruction i (closure of `usedAt`).
    var preciseIn: [UInt16]
    var stale = false
    /// Slots (bit k: bytes r10-8(k+1) ..< r10-8k) whose spilled scalar an instruction loaded.
    var spillReadsAt: [Int: UInt64] = [:]
    var preciseSlotsCache: UInt64 = 0
    var slotsStale = false

    mutating func spillRead(slot: Int, at i: Int) {
        guard slot >= 0 && slot < 64 else { return }
        let bit = UInt64(1) << UInt64(slot)
        if spillReadsAt[i, default: 0] & bit == 0 {
            spillReadsAt[i, default: 0] |= bit
            slotsStale = true
        }
    }

    /// Slots whose spilled range some load passed on to a register needed after it. Call after `refresh`.
    mutating func preciseSlots(_ program: [BPFInstruction]) -> UInt64 {
        guard slotsStale else { return preciseSlotsCache }
        slotsStale = false
        var slots: UInt64 = 0
        for (i, bits) in spillReadsAt {
            let insn = program[i]
            // an atomic operation's read, or a load whose result is needed (or the program ends)
            if insn.instructionClass != BPFOpcode.classLDX || i + 1 >= preciseIn.count
                || preciseIn[i + 1] & (1 << UInt16(insn.dst)) != 0
            {
                slots |= bits
            }
        }
        preciseSlotsCache = slots
        return slots
    }

    init(count: Int) {
        usedAt = Array(repeating: 0, count: count)
        preciseIn = Array(repeating: 0, count: count)
    }

    mutating func use(_ registers: UInt16, at i: Int) {
        if usedAt[i] | registers != usedAt[i] {
            usedAt[i] |= registers
            stale = true
        }
    }

    mutating func refresh(program: [BPFInstruction], liveness: RegisterLiveness, lddwTail: [Bool], helpers: HelperPrototypeTable) {
        guard stale else { return }
        stale = false
        slotsStale = true
        let n = program.count
        var pending = Array((0..<n).filter { !lddwTail[$0] })
        var queued = [Bool](repeating: false, count: n)
        for i in pending { queued[i] = true }
        while let i = pending.popLast() {
            queued[i] = false
            var out: UInt16 = 0
            for t in liveness.successors[i] { out |= preciseIn[t] }
            let new = (Self.transfer(program, i, out, helpers: helpers) | usedAt[i]) & liveness.liveIn[i] & ~RegisterLiveness.frameRegister
            if new != preciseIn[i] {
                preciseIn[i] = new
                for p in liveness.predecessors[i] where !queued[p] {
                    queued[p] = true
                    pending.append(p)
                }
            }
        }
    }

    /// Registers needed before instruction i, given those needed after it.
    static func transfer(_ program: [BPFInstruction], _ i: Int, _ after: UInt16, helpers: HelperPrototypeTable) -> UInt16 {
        let insn = program[i]
        let dst: UInt16 = insn.dst <= 10 ? 1 << UInt16(insn.dst) : 0
        let src: UInt16 = insn.src <= 10 ? 1 << UInt16(insn.src) : 0
        let useX = insn.opcode & BPFOpcode.sourceX != 0
        switch insn.instructionClass {
        case BPFOpcode.classALU, BPFOpcode.classALU64:
            let op = insn.opcode & 0xf0
            if op == BPFOpcode.mov {
                guard after & dst != 0 else { return after }
                return (after & ~dst) | (useX ? src : 0)
            }
            if op == BPFOpcode.neg || op == BPFOpcode.end { return after }
            return after & dst != 0 && useX ? after | src : after
        case BPFOpcode.classLD:
            return insn.opcode == BPFOpcode.lddw ? after & ~dst : after
        case BPFOpcode.classLDX:
            return after & ~dst
        case BPFOpcode.classST:
            return after
        case BPFOpcode.classSTX:
            guard insn.opcode & 0xe0 == BPFOpcode.modeATOMIC else {
                return insn.opcode & 0x18 == BPFOpcode.sizeDW ? after | src : after
            }
            return after | src | (insn.immediate == BPFOpcode.atomicCmpxchg ? 1 : 0)
        default:
            let op = insn.opcode & 0xf0
            switch op {
            case BPFOpcode.exit:
                return 1
            case BPFOpcode.call:
                var arguments: UInt16 = RegisterLiveness.arguments
                if insn.src == BPFOpcode.callHelper, let proto = helpers[insn.immediate] {
                    arguments = 0
                    for (k, kind) in proto.arguments.enumerated() where kind != .unused { arguments |= 1 << UInt16(k + 1) }
                }
                return (after & ~RegisterLiveness.callClobbered) | arguments
            case BPFOpcode.ja:
                return after
            default:
                guard useX else { return after }
                return after & (dst | src) != 0 ? after | dst | src : after
            }
        }
    }
}

/// A consistent renaming of the stored state's symbols into the new state's: old symbol s stands
/// for new symbol t with value(s) = value(t) + shift.
struct SymbolMatching {
    var map: [Int32: (symbol: Int32, shift: Int64)] = [:]

    mutating func bind(_ old: Int32, _ new: Int32, shift: Int64) -> Bool {
        if old == lengthSymbol || new == lengthSymbol { return old == new && shift == 0 }
        if let m = map[old] { return m.symbol == new && m.shift == shift }
        map[old] = (new, shift)
        return true
    }
}

extension VerifierState {
    /// Symbols (and null ids) referenced by more than one value, or by an and-source.
    func linkedSymbols() -> Set<Int32> {
        var seen = Set<Int32>(), linked = Set<Int32>()
        func note(_ s: Int32) { if s != 0 && !seen.insert(s).inserted { linked.insert(s) } }
        func visit(_ v: RegisterValue) {
            switch v {
            case .scalar(let x):
                note(x.symbol)
                if let a = x.andSource { linked.insert(a.symbol); note(a.symbol) }
            case .packet(let p): note(p.symbol)
            case .mapValueOrNull(_, let id): note(id)
            default: break
            }
        }
        for frame in frames {
            frame.registers.forEach(visit)
            for slot in frame.stack { if case .spill(let v) = slot { visit(v) } }
        }
        return linked
    }

    /// True when every concrete state described by `other` is described by `self` as far as the
    /// exploration of `self` relied on: registers of the current frame in `relaxed` that hold
    /// unlinked scalars in both match any scalar. Symbols are matched up to renaming.
    /// `linked` is `linkedSymbols()` of `self` (callers cache it per stored state).
    func includes(_ other: VerifierState, relaxed: UInt16, relaxedSlots: UInt64 = 0, linked: Set<Int32>? = nil) -> Bool {
        guard frames.count == other.frames.count else { return false }
        let linked = relaxed == 0 && relaxedSlots == 0 ? [] : linked ?? linkedSymbols()
        var matching = SymbolMatching()
        for (f, (fa, fb)) in zip(frames, other.frames).enumerated() {
            guard fa.returnIndex == fb.returnIndex else { return false }
            let relaxedHere: UInt16 = f == frames.count - 1 ? relaxed : 0
            for (r, (a, b)) in zip(fa.registers, fb.registers).enumerated() {
                if relaxedHere & (1 << UInt16(r)) != 0, case .scalar(let x) = a, case .scalar = b, x.andSource == nil,
                    x.symbol == 0 || !linked.contains(x.symbol)
                {
                    continue
                }
                if !Self.valueIncludes(a, b, &matching) { return false }
            }
            let relaxedSlotsHere: UInt64 = f == frames.count - 1 ? relaxedSlots : 0
            for i in 0..<max(fa.stack.count, fb.stack.count) {
                let a = i < fa.stack.count ? fa.stack[i] : .bytes(initialised: 0)
                let b = i < fb.stack.count ? fb.stack[i] : .bytes(initialised: 0)
                if i < 64, relaxedSlotsHere & (1 << UInt64(i)) != 0, case .spill(.scalar(let x)) = a, x.andSource == nil,
                    x.symbol == 0 || !linked.contains(x.symbol)
                {
                    switch b {
                    case .spill(.scalar), .bytes(initialised: 0xff): continue
                    default: break
                    }
                }
                if !Self.slotIncludes(a, b, &matching) { return false }
            }
        }
        for (s, k) in facts {
            if s == 0 || s == lengthSymbol {
                guard let ok = other.facts[s], ok >= k else { return false }
            } else if let m = matching.map[s] {
                // len >= value(s) + k = value(t) + shift + k
                let (need, overflow) = k.addingReportingOverflow(m.shift)
                guard !overflow, let ok = other.facts[m.symbol], ok >= need else { return false }
            }
            // a fact about a symbol only relaxed registers hold was never used by this exploration
        }
        return true
    }

    static func slotIncludes(_ a: StackSlot, _ b: StackSlot, _ matching: inout SymbolMatching) -> Bool {
        switch (a, b) {
        case (.bytes(let ma), .bytes(let mb)): return ma & mb == ma
        case (.bytes(let ma), .spill(let v)): return ma == 0 || !v.isPointer && v != .uninitialised
        case (.spill(let va), .spill(let vb)): return valueIncludes(va, vb, &matching)
        case (.spill(let va), .bytes):
            if case .uninitialised = va { return true }
            return false
        }
    }

    static func valueIncludes(_ a: RegisterValue, _ b: RegisterValue, _ matching: inout SymbolMatching) -> Bool {
        switch (a, b) {
        case (.uninitialised, _): return true
        case (.scalar(let x), .scalar(let y)):
            if x.symbol != 0 {
                guard y.symbol != 0, x.shift == y.shift else { return false }
                let (shift, overflow) = y.delta.subtractingReportingOverflow(x.delta)
                guard !overflow, matching.bind(x.symbol, y.symbol, shift: shift) else { return false }
            }
            if let xa = x.andSource {
                guard let ya = y.andSource, xa.mask == ya.mask, matching.bind(xa.symbol, ya.symbol, shift: 0) else { return false }
            }
            return x.range.contains(y.range)
        case (.packet(let x), .packet(let y)):
            if x.symbol == 0 || y.symbol == 0 {
                return x.symbol == y.symbol && x.fixed == y.fixed && x.varMin <= y.varMin && x.varMax >= y.varMax
            }
            // pkt + fixed_x + value(s) with value(s) = value(t) + shift must equal pkt + fixed_y + value(t)
            let shift = y.fixed - x.fixed
            guard matching.bind(x.symbol, y.symbol, shift: shift) else { return false }
            return x.varMin <= y.varMin + shift && y.varMax + shift <= x.varMax
        case (.stack(let f1, let lo1, let hi1), .stack(let f2, let lo2, let hi2)):
            return f1 == f2 && lo1 <= lo2 && hi1 >= hi2
        case (.mapValue(let m1, let lo1, let hi1), .mapValue(let m2, let lo2, let hi2)):
            return m1 == m2 && lo1 <= lo2 && hi1 >= hi2
        case (.mapValueOrNull(let m1, let id1), .mapValueOrNull(let m2, let id2)):
            return m1 == m2 && matching.bind(id1, id2, shift: 0)
        default: return a == b
        }
    }
}
