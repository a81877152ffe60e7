// OkoVerifier: a static proof that an eBPF filter program is safe to run in the packet loop.
//
// Design note
// - Abstract interpretation over every path (depth-first worklist of explicit states). A state is
//   the call frames (11 registers each plus a per-frame stack of 8-byte slots) and facts about
//   the packet length. Registers are uninitialised, scalars (tnum known bits + unsigned and signed
//   intervals, see ScalarDomain.swift), packet pointers, stack pointers (frame + offset), map
//   pointers, map values (offset range) and map-value-or-NULL (becomes a map value after a null
//   check, scalar 0 on the other branch; copies share a null id).
// - Packet bounds are relational: a scalar may carry a symbol (value = symbol + delta); r2, the
//   packet length, is symbol 1, and copies keep the relation through adding constants and through
//   clang's `x << 32 >> 32` zero-extension (exact when no bits are lost). A packet
//   pointer is pkt + fixed + value(symbol). Comparisons record facts "len >= value(s) + k", both
//   from `len < expr` style scalar checks and from `pkt + k > pkt_end` pointer checks. A packet
//   access is accepted only when a fact on this path covers its last byte; upper bounds on len
//   (e.g. `len > 100000`) never create facts. Unsigned comparisons only create facts when both
//   operands are known non-negative, so integer and machine order agree.
// - Stack: per-byte initialised masks; 8-byte aligned full stores spill a register with its type,
//   partial reads of a spilled pointer are refused. Maps: accesses within value_size, after a null
//   check; pointers are never stored outside the stack, never compared with scalars, never handed
//   to helpers as scalars, never returned.
// - Pruning: at jump targets, a path whose state is included in a fully explored stored state at
//   the same instruction stops there (the last 128 states at an instruction are compared; in tight
//   loops a state is stored only every 8 instructions, so memory stays bounded under the 1M
//   budget). Inclusion ignores what the stored state's proof could not have relied on: dead
//   registers (Liveness.swift) are forgotten, packet length facts are dropped once no packet pointer
//   is held, and scalar registers and spilled stack slots whose ranges fed no safety decision match
//   any scalar (Precision.swift); symbols are matched up to renaming. A path that reaches a state
//   equal to one of its own ancestors at the same instruction is an infinite loop. Bounded loops
//   are simply unrolled by the interpretation; everything else runs out of the instruction budget,
//   and the refusal names the back edge iterated most.
// - What is proven: every memory access is in bounds of initialised, permitted memory; no
//   pointer value escapes to maps, helpers or r0; every helper gets arguments of its declared
//   kinds; the program terminates within the budget on every abstract path; r0 is a scalar.
// - Pure function of its inputs; no shared state, safe from any thread.
import OkoBPF

public enum BPFVerifier {
    /// Proves `instructions` safe or throws a refusal naming the instruction, path and reason.
    public static func verify(
        instructions: [BPFInstruction], maps: [VerifierMapDescription] = [],
        helpers: HelperPrototypeTable = .standard, limits: VerifierLimits = VerifierLimits()
    ) throws(VerificationError) -> VerifierStatistics {
        var analysis = try Analysis(program: instructions, maps: maps, helpers: helpers, limits: limits)
        try analysis.run()
        return analysis.statistics
    }
}

/// A state stored at a prune point; `branches` counts paths below it still being explored.
final class StoredState {
    let state: VerifierState
    let parent: StoredState?
    var branches = 1
    /// Symbols of `state` shared by several values (see `VerifierState.linkedSymbols`).
    lazy var linkedSymbols: Set<Int32> = state.linkedSymbols()
    init(state: VerifierState, parent: StoredState?) {
        self.state = state
        self.parent = parent
    }
}

struct PendingPath {
    var index: Int
    var state: VerifierState
    var parent: StoredState?
    var trail: [VerifierPathStep]
    var trailOmitted: Int
}

struct Analysis {
    let program: [BPFInstruction]
    let maps: [VerifierMapDescription]
    let helpers: HelperPrototypeTable
    let limits: VerifierLimits
    var statistics = VerifierStatistics()

    var prunePoint: [Bool]
    var lddwTail: [Bool]
    var liveness: RegisterLiveness
    var precision: RangePrecision
    var stored: [[StoredState]]
    var liveStates = 0
    var backEdgeCounts: [BackEdge: Int] = [:]

    // the path being explored
    var index = 0
    var trail: [VerifierPathStep] = []
    var trailOmitted = 0
    static let trailLimit = 16
    // 128, not 32: examples/bpf/dns-filter.c (a 128-byte name loop with a branch per byte) needs a
    // window wider than its iteration count to find the state that covers it.
    static let statesComparedPerInstruction = 128
    static let alwaysStoredPerInstruction = 4
    static let storeInterval = 8

    init(program: [BPFInstruction], maps: [VerifierMapDescription], helpers: HelperPrototypeTable, limits: VerifierLimits) throws(VerificationError) {
        self.program = program
        self.maps = maps
        self.helpers = helpers
        self.limits = limits
        prunePoint = Array(repeating: false, count: program.count)
        lddwTail = Array(repeating: false, count: program.count)
        stored = Array(repeating: [], count: program.count)
        liveness = RegisterLiveness(liveIn: [])
        precision = RangePrecision(count: program.count)
        guard !program.isEmpty else { throw VerificationError(reason: .emptyProgram) }
        guard program.count <= limits.maxProgramLength else {
            throw VerificationError(reason: .programTooLong(count: program.count, limit: limits.maxProgramLength))
        }
        try validate()
        liveness = RegisterLiveness(program: program, lddwTail: lddwTail, helpers: helpers)
    }

    func fail(_ reason: VerificationError.Reason, at i: Int? = nil) -> VerificationError {
        let at = i ?? index
        return VerificationError(
            reason: reason, instructionIndex: at, instructionText: BPFDisassembler.text(of: program, at: at), path: trail,
            omittedPathSteps: trailOmitted)
    }

    // MARK: static checks

    mutating func validate() throws(VerificationError) {
        var backEdges = Set<BackEdge>()
        var i = 0
        while i < program.count {
            let insn = program[i]
            index = i
            guard insn.dst <= 10 else { throw fail(.invalidRegister(Int(insn.dst)), at: i) }
            guard insn.src <= 10 || insn.instructionClass == BPFOpcode.classLD else {
                throw fail(.invalidRegister(Int(insn.src)), at: i)
            }
            let cls = insn.instructionClass
            if insn.opcode == BPFOpcode.lddw {
                guard i + 1 < program.count, program[i + 1].opcode == 0 else {
                    throw fail(.invalidInstruction("lddw without its second slot"), at: i)
                }
                lddwTail[i + 1] = true
                i += 2
                continue
            }
            if cls == BPFOpcode.classJMP || cls == BPFOpcode.classJMP32 {
                let op = insn.opcode & 0xf0
                if op == BPFOpcode.call {
                    if insn.src == BPFOpcode.callLocal {
                        let target = i + Int(insn.immediate) + 1
                        guard target >= 0 && target < program.count else { throw fail(.jumpOutOfRange(target: target), at: i) }
                        prunePoint[target] = true
                    }
                    if i + 1 < program.count { prunePoint[i + 1] = true }
                } else if op != BPFOpcode.exit {
                    let delta = (cls == BPFOpcode.classJMP32 && op == BPFOpcode.ja) ? Int(insn.immediate) : Int(insn.offset)
                    let target = i + delta + 1
                    guard target >= 0 && target < program.count else { throw fail(.jumpOutOfRange(target: target), at: i) }
                    prunePoint[target] = true
                    if op != BPFOpcode.ja && i + 1 < program.count { prunePoint[i + 1] = true }
                    if target <= i { backEdges.insert(BackEdge(from: i, to: target)) }
                }
            }
            i += 1
        }
        // targets inside an lddw
        for (j, tail) in lddwTail.enumerated() where tail && prunePoint[j] {
            throw fail(.jumpOutOfRange(target: j), at: j)
        }
        statistics.loops = backEdges.count
    }

    // MARK: driver

    mutating func run() throws(VerificationError) {
        var registers = Array(repeating: RegisterValue.uninitialised, count: 11)
        registers[1] = .packet(PacketPointer(fixed: 0, symbol: 0, varMin: 0, varMax: 0))
        registers[2] = .scalar(
            ScalarValue(range: .unsigned(0, UInt64(limits.maxPacketLength)), symbol: lengthSymbol, delta: 0))
        registers[10] = .stack(frame: 0, minOffset: 0, maxOffset: 0)
        let initial = VerifierState(frames: [Frame(registers: registers, returnIndex: -1)])
        var worklist = [PendingPath(index: 0, state: initial, parent: nil, trail: [], trailOmitted: 0)]
        while let path = worklist.popLast() {
            index = path.index
            trail = path.trail
            trailOmitted = path.trailOmitted
            var state = path.state
            var parent = path.parent
            var sinceStore = 0
            var forkedSinceStore = true
            explore: while true {
                statistics.instructionsProcessed += 1
                if statistics.instructionsProcessed > limits.maxInstructionsProcessed {
                    let edge = backEdgeCounts.max { $0.value < $1.value }?.key
                    throw fail(.tooComplex(processed: limits.maxInstructionsProcessed, backEdge: edge))
                }
                guard index < program.count else { throw fail(.fallsOffEnd, at: program.count - 1) }
                if prunePoint[index] {
                    state.forgetDeadRegisters(liveness, at: index)
                    state.canonicaliseSymbols()
                    var covered = false
                    precision.refresh(program: program, liveness: liveness, lddwTail: lddwTail, helpers: helpers)
                    let relaxed = liveness.liveIn[index] & ~precision.preciseIn[index] & ~RegisterLiveness.frameRegister
                    let relaxedSlots = ~precision.preciseSlots(program)
                    // only the most recent states: a long loop stores one state per iteration
                    for old in stored[index].suffix(Self.statesComparedPerInstruction).reversed() {
                        if old.branches == 0 {
                            if old.state.includes(state, relaxed: relaxed, relaxedSlots: relaxedSlots, linked: old.linkedSymbols) { covered = true; break }
                        } else if old.state == state && isAncestor(old, of: parent) {
                            throw fail(.infiniteLoop(backEdgeFrom: lastBackEdgeSource(into: index), to: index))
                        }
                    }
                    if covered {
                        statistics.statesPruned += 1
                        finish(parent)
                        break explore
                    }
                    // a tight loop would store a state per iteration: after the first few states at an
                    // instruction, store only every few instructions (pruning stays sound, just rarer)
                    if stored[index].count >= Self.alwaysStoredPerInstruction && sinceStore < Self.storeInterval
                        && !forkedSinceStore
                    {
                        sinceStore += 1
                        switch try step(&state) {
                        case .next(let n): noteBackEdge(to: n); index = n
                        case .fork(let taken, let target, let notTaken):
                            fork(&worklist, taken: taken, target: target, parent: parent)
                            forkedSinceStore = true
                            state = notTaken
                            index += 1
                        case .done:
                            finish(parent)
                            break explore
                        }
                        continue explore
                    }
                    sinceStore = 0
                    forkedSinceStore = false
                    if statistics.statesStored >= limits.maxStoredStates {
                        throw fail(.tooManyStates(limit: limits.maxStoredStates))
                    }
                    let node = StoredState(state: state, parent: parent)
                    stored[index].append(node)
                    statistics.statesStored += 1
                    liveStates += 1
                    statistics.peakLiveStates = max(statistics.peakLiveStates, liveStates)
                    parent = node
                }
                sinceStore += 1
                switch try step(&state) {
                case .next(let n):
                    noteBackEdge(to: n)
                    index = n
                case .fork(let taken, let target, let notTaken):
                    fork(&worklist, taken: taken, target: target, parent: parent)
                    forkedSinceStore = true
                    state = notTaken
                    index += 1
                case .done:
                    finish(parent)
                    break explore
                }
            }
        }
    }

    mutating func noteBackEdge(to n: Int) {
        let insn = program[index]
        let isJump = (insn.instructionClass == BPFOpcode.classJMP || insn.instructionClass == BPFOpcode.classJMP32)
            && insn.opcode & 0xf0 != BPFOpcode.exit && insn.opcode & 0xf0 != BPFOpcode.call
        if isJump && n <= index {
            backEdgeCounts[BackEdge(from: index, to: n), default: 0] += 1
            statistics.backEdgesTaken += 1
        }
    }

    /// Queues the taken side of a two-way branch; the caller continues with the other side.
    mutating func fork(_ worklist: inout [PendingPath], taken: VerifierState, target: Int, parent: StoredState?) {
        parent?.branches += 1
        var takenTrail = trail
        var omitted = trailOmitted
        appendStep(&takenTrail, &omitted, VerifierPathStep(instruction: index, taken: true))
        worklist.append(PendingPath(index: target, state: taken, parent: parent, trail: takenTrail, trailOmitted: omitted))
        statistics.peakPendingPaths = max(statistics.peakPendingPaths, worklist.count)
        if target <= index {
            backEdgeCounts[BackEdge(from: index, to: target), default: 0] += 1
            statistics.backEdgesTaken += 1
        }
        appendStep(&trail, &trailOmitted, VerifierPathStep(instruction: index, taken: false))
    }

    func appendStep(_ t: inout [VerifierPathStep], _ omitted: inout Int, _ s: VerifierPathStep) {
        t.append(s)
        if t.count > Self.trailLimit {
            t.removeFirst()
            omitted += 1
        }
    }

    func isAncestor(_ node: StoredState, of leaf: StoredState?) -> Bool {
        var p = leaf
        while let q = p {
            if q === node { return true }
            p = q.parent
        }
        return false
    }

    func lastBackEdgeSource(into target: Int) -> Int? {
        backEdgeCounts.keys.filter { $0.to == target }.max { $0.from < $1.from }?.from
    }

    mutating func finish(_ leaf: StoredState?) {
        var p = leaf
        while let q = p {
            q.branches -= 1
            if q.branches > 0 { return }
            liveStates -= 1
            p = q.parent
        }
    }

    enum StepResult {
        case next(Int)
        case fork(taken: VerifierState, target: Int, notTaken: VerifierState)
        case done
    }

    // MARK: one instruction

    mutating func step(_ state: inout VerifierState) throws(VerificationError) -> StepResult {
        let insn = program[index]
        switch insn.instructionClass {
        case BPFOpcode.classALU, BPFOpcode.classALU64:
            try alu(insn, &state)
            return .next(index + 1)
        case BPFOpcode.classLD:
            guard insn.opcode == BPFOpcode.lddw else {
                throw fail(.unsupported("legacy packet access (ld abs/ind)"))
            }
            try writable(insn.dst)
            let hi = UInt64(UInt32(bitPattern: program[index + 1].immediate))
            switch insn.src {
            case 0:
                state[register: Int(insn.dst)] = .constant((hi << 32) | UInt64(UInt32(bitPattern: insn.immediate)))
            case BPFOpcode.pseudoMapFD:
                let m = Int(insn.immediate)
                guard m >= 0 && m < maps.count else { throw fail(.unknownMap(index: m)) }
                state[register: Int(insn.dst)] = .mapPointer(map: m)
            case BPFOpcode.pseudoMapValue:
                let m = Int(insn.immediate)
                guard m >= 0 && m < maps.count else { throw fail(.unknownMap(index: m)) }
                let off = Int64(hi)
                guard off < Int64(maps[m].valueSize) else {
                    throw fail(.mapValueOutOfBounds(offset: off...off, size: 0, valueSize: maps[m].valueSize))
                }
                state[register: Int(insn.dst)] = .mapValue(map: m, minOffset: off, maxOffset: off)
            default:
                throw fail(.unsupported("lddw pseudo source \(insn.src)"))
            }
            return .next(index + 2)
        case BPFOpcode.classLDX:
            let mode = insn.opcode & 0xe0
            guard mode == BPFOpcode.modeMEM || mode == BPFOpcode.modeMEMSX else {
                throw fail(.invalidInstruction("ldx mode \(mode)"))
            }
            try writable(insn.dst)
            let size = accessSize(insn.opcode)
            var value = try load(&state, base: Int(insn.src), offset: Int64(insn.offset), size: size)
            if mode == BPFOpcode.modeMEMSX, case .scalar(var s) = value {
                s.range = s.range.signExtended(fromBits: size * 8)
                value = .scalar(s)
            }
            state[register: Int(insn.dst)] = value
            return .next(index + 1)
        case BPFOpcode.classST:
            guard insn.opcode & 0xe0 == BPFOpcode.modeMEM else { throw fail(.invalidInstruction("st mode")) }
            let size = accessSize(insn.opcode)
            let v = UInt64(bitPattern: Int64(insn.immediate))
            try store(&state, base: Int(insn.dst), offset: Int64(insn.offset), size: size, value: .constant(v))
            return .next(index + 1)
        case BPFOpcode.classSTX:
            let mode = insn.opcode & 0xe0
            let size = accessSize(insn.opcode)
            let value = try read(&state, Int(insn.src))
            if mode == BPFOpcode.modeMEM {
                try store(&state, base: Int(insn.dst), offset: Int64(insn.offset), size: size, value: value)
            } else if mode == BPFOpcode.modeATOMIC {
                try atomic(insn, &state, size: size, value: value)
            } else {
                throw fail(.invalidInstruction("stx mode \(mode)"))
            }
            return .next(index + 1)
        default:
            return try jump(insn, &state)
        }
    }

    func accessSize(_ opcode: UInt8) -> Int {
        switch opcode & 0x18 {
        case BPFOpcode.sizeB: return 1
        case BPFOpcode.sizeH: return 2
        case BPFOpcode.sizeW: return 4
        default: return 8
        }
    }

    func writable(_ r: UInt8) throws(VerificationError) {
        if r == 10 { throw fail(.framePointerWrite) }
    }

    func read(_ state: inout VerifierState, _ r: Int) throws(VerificationError) -> RegisterValue {
        let v = state[register: r]
        if case .uninitialised = v { throw fail(.uninitialisedRegister(r)) }
        return v
    }

    // MARK: ALU

    mutating func alu(_ insn: BPFInstruction, _ state: inout VerifierState) throws(VerificationError) {
        let is64 = insn.instructionClass == BPFOpcode.classALU64
        let op = insn.opcode & 0xf0
        let dst = Int(insn.dst)
        try writable(insn.dst)
        let useReg = insn.opcode & BPFOpcode.sourceX != 0
        var srcValue: RegisterValue
        if op == BPFOpcode.end || op == BPFOpcode.neg {
            srcValue = .constant(0)
        } else if useReg {
            srcValue = try read(&state, Int(insn.src))
        } else {
            let imm = is64 ? UInt64(bitPattern: Int64(insn.immediate)) : UInt64(UInt32(bitPattern: insn.immediate))
            srcValue = .constant(imm)
        }
        if op == BPFOpcode.mov {
            if insn.offset != 0 {  // movsx
                guard [8, 16, 32].contains(insn.offset) else { throw fail(.invalidInstruction("movsx width \(insn.offset)")) }
                guard case .scalar(let s) = srcValue else { throw fail(.prohibitedPointerArithmetic("sign-extending move of a pointer")) }
                var r = s.range.signExtended(fromBits: Int(insn.offset))
                if !is64 { r = r.truncatedTo32 }
                state[register: dst] = .scalar(ScalarValue(range: r))
                return
            }
            if !is64 {
                guard case .scalar(var s) = srcValue else { throw fail(.pointerLeak("32-bit move of a pointer")) }
                let r = s.range.truncatedTo32
                // an exact 32-bit copy shares a symbol like a 64-bit one
                if useReg, r == s.range, s.symbol == 0, !s.range.isConstant {
                    s.symbol = state.freshSymbol()
                    state[register: Int(insn.src)] = .scalar(s)
                }
                state[register: dst] = .scalar(r == s.range ? s : ScalarValue(range: r))
                return
            }
            // copies of an unknown scalar share a symbol so a later check on one refines both
            if useReg, case .scalar(var s) = srcValue, s.symbol == 0, !s.range.isConstant {
                s.symbol = state.freshSymbol()
                state[register: Int(insn.src)] = .scalar(s)
                srcValue = .scalar(s)
            }
            state[register: dst] = srcValue
            return
        }
        let dstValue = try read(&state, dst)
        switch (dstValue, srcValue) {
        case (.scalar(let a), .scalar(let b)):
            state[register: dst] = .scalar(try scalarOp(op, a, b, is64: is64, insn: insn))
        case (.scalar, _) where op == BPFOpcode.add && is64:
            // scalar + pointer: commutative
            precision.use(1 << UInt16(dst), at: index)
            state[register: dst] = try pointerAdd(srcValue, dstValue, srcRegister: dst, state: &state, subtract: false)
        case (_, .scalar) where (op == BPFOpcode.add || op == BPFOpcode.sub) && is64:
            if useReg { precision.use(1 << UInt16(insn.src), at: index) }
            state[register: dst] = try pointerAdd(
                dstValue, srcValue, srcRegister: useReg ? Int(insn.src) : nil, state: &state, subtract: op == BPFOpcode.sub)
        case (.packet(let p), .packet(let q)) where op == BPFOpcode.sub && is64:
            // distance between packet pointers: a scalar; end - pkt keeps the relation to len
            if p.symbol == lengthSymbol && q.symbol == 0 {
                var r = ScalarRange.signed(p.varMin, p.varMax)
                r = r + .constant(UInt64(bitPattern: p.fixed - q.fixed))
                state[register: dst] = .scalar(ScalarValue(range: r, symbol: lengthSymbol, delta: p.fixed - q.fixed))
            } else {
                state[register: dst] = .unknownScalar
            }
        case (.stack(let f1, let lo1, let hi1), .stack(let f2, let lo2, let hi2)) where op == BPFOpcode.sub && is64 && f1 == f2:
            state[register: dst] = .scalar(ScalarValue(range: .signed(lo1 - hi2, hi1 - lo2)))
        case (.mapValueOrNull, _), (_, .mapValueOrNull):
            throw fail(.possiblyNullMapValue(register: dstValue.isPointer ? dst : Int(insn.src)))
        default:
            let what: String
            switch op {
            case BPFOpcode.mul: what = "multiplication of a pointer"
            case BPFOpcode.div, BPFOpcode.mod: what = "division of a pointer"
            default: what = "\(is64 ? "" : "32-bit ")operation \(op >> 4) on \(dstValue.typeName) and \(srcValue.typeName)"
            }
            throw fail(.prohibitedPointerArithmetic(what))
        }
    }

    func scalarOp(_ op: UInt8, _ a: ScalarValue, _ b: ScalarValue, is64: Bool, insn: BPFInstruction) throws(VerificationError) -> ScalarValue {
        let width: UInt64 = is64 ? 64 : 32
        var x = a.range, y = b.range
        if !is64 { x = x.truncatedTo32; y = y.truncatedTo32 }
        let signedDivision = insn.offset == 1 && (op == BPFOpcode.div || op == BPFOpcode.mod)
        var r: ScalarRange
        switch op {
        case BPFOpcode.add: r = x + y
        case BPFOpcode.sub: r = x - y
        case BPFOpcode.mul: r = x * y
        case BPFOpcode.div: r = signedDivision ? .unknown : x.divided(by: y)
        case BPFOpcode.mod: r = signedDivision ? .unknown : x.remainder(by: y)
        case BPFOpcode.or: r = x | y
        case BPFOpcode.and: r = x & y
        case BPFOpcode.xor: r = x ^ y
        case BPFOpcode.lsh: r = x.shiftedLeft(by: y, width: width)
        case BPFOpcode.rsh: r = x.shiftedRight(by: y, width: width)
        case BPFOpcode.arsh:
            r = is64 ? x.arithmeticShiftedRight(by: y, width: 64)
                : x.signExtended(fromBits: 32).arithmeticShiftedRight(by: y, width: 32)
        case BPFOpcode.neg: r = ScalarRange.constant(0) - x
        case BPFOpcode.end:
            let bits = Int(insn.immediate)
            guard bits == 16 || bits == 32 || bits == 64 else { throw fail(.invalidInstruction("byte swap width \(bits)")) }
            if let c = x.constantValue, insn.opcode & BPFOpcode.sourceX == 0 || !is64 {
                // to-le on a little-endian machine truncates; to-be swaps
                let swapped: UInt64
                let toBE = insn.opcode & BPFOpcode.sourceX != 0 || is64
                switch bits {
                case 16: swapped = toBE ? UInt64(UInt16(truncatingIfNeeded: c).byteSwapped) : c & 0xffff
                case 32: swapped = toBE ? UInt64(UInt32(truncatingIfNeeded: c).byteSwapped) : c & 0xffff_ffff
                default: swapped = toBE ? c.byteSwapped : c
                }
                r = .constant(swapped)
            } else {
                r = bits == 64 ? .unknown : .bytes(bits / 8)
            }
            return ScalarValue(range: r)
        default:
            throw fail(.invalidInstruction("alu operation \(op >> 4)"))
        }
        if !is64 { r = r.truncatedTo32 }
        // `x << k >> k` is the identity when no bits are lost: keep the relation through it
        if a.symbol != 0, is64, let k = y.constantValue, k > 0, k < 64 {
            if op == BPFOpcode.lsh && a.shift == 0 && a.range.umax <= UInt64.max >> k {
                return ScalarValue(range: r, symbol: a.symbol, delta: a.delta, shift: UInt8(k))
            }
            if op == BPFOpcode.rsh && a.shift == UInt8(k) {
                return ScalarValue(range: r, symbol: a.symbol, delta: a.delta, shift: 0)
            }
        }
        // `x & c` remembers x: a later bound on the result bounds the masked bits of x
        if op == BPFOpcode.and, a.linearSymbol != 0, a.delta == 0, let c = y.constantValue, c <= 0xffff_ffff {
            return ScalarValue(range: r, andSource: AndSource(symbol: a.symbol, mask: c))
        }
        // adding a constant keeps the relation to the symbol (when no wrap is possible)
        if a.linearSymbol != 0, is64, let c = y.constantValue, op == BPFOpcode.add || op == BPFOpcode.sub {
            let k = Int64(bitPattern: c)
            guard k != .min else { return ScalarValue(range: r) }
            let delta = op == BPFOpcode.add ? a.delta.addingReportingOverflow(k) : a.delta.subtractingReportingOverflow(k)
            let (_, o1) = a.range.smin.addingReportingOverflow(op == BPFOpcode.add ? k : -k)
            let (_, o2) = a.range.smax.addingReportingOverflow(op == BPFOpcode.add ? k : -k)
            if !delta.overflow && !o1 && !o2 && abs(k) < 1 << 40 {
                return ScalarValue(range: r, symbol: a.symbol, delta: delta.partialValue)
            }
        }
        return ScalarValue(range: r)
    }

    func pointerAdd(_ pointer: RegisterValue, _ scalarValue: RegisterValue, srcRegister: Int?, state: inout VerifierState, subtract: Bool) throws(VerificationError) -> RegisterValue {
        guard case .scalar(var s) = scalarValue else { throw fail(.prohibitedPointerArithmetic("pointer plus pointer")) }
        if s.shift != 0 { s = ScalarValue(range: s.range) }
        let limit: Int64 = 1 << 31
        guard s.range.smin > -limit && s.range.smax < limit else {
            throw fail(.prohibitedPointerArithmetic("adding an unbounded scalar \(s.range) to a \(pointer.typeName)"))
        }
        var lo = s.range.smin, hi = s.range.smax
        if subtract { (lo, hi) = (-hi, -lo) }
        switch pointer {
        case .packet(var p):
            if lo == hi {
                p.fixed += lo
            } else if subtract {
                throw fail(.prohibitedPointerArithmetic("subtracting a variable from a packet pointer"))
            } else if p.symbol == 0 {
                if s.symbol == 0, let r = srcRegister, case .scalar(let original) = state[register: r], original.symbol == 0 {
                    s.symbol = state.freshSymbol()
                    state[register: r] = .scalar(s)
                }
                if s.symbol == lengthSymbol {
                    // pkt + len + k: the packet end pointer
                    p = PacketPointer(fixed: p.fixed + s.delta, symbol: lengthSymbol, varMin: lo - s.delta, varMax: hi - s.delta)
                } else if s.symbol != 0 {
                    p = PacketPointer(fixed: p.fixed + s.delta, symbol: s.symbol, varMin: lo - s.delta, varMax: hi - s.delta)
                } else {
                    p = PacketPointer(fixed: p.fixed, symbol: state.freshSymbol(), varMin: lo, varMax: hi)
                }
            } else {
                p = PacketPointer(fixed: p.fixed, symbol: state.freshSymbol(), varMin: p.varMin + lo, varMax: p.varMax + hi)
            }
            guard abs(p.fixed) < limit && p.varMin > -limit && p.varMax < limit else {
                throw fail(.prohibitedPointerArithmetic("packet pointer offset out of range"))
            }
            return .packet(p)
        case .stack(let f, let a, let b):
            return .stack(frame: f, minOffset: a + lo, maxOffset: b + hi)
        case .mapValue(let m, let a, let b):
            return .mapValue(map: m, minOffset: a + lo, maxOffset: b + hi)
        case .mapValueOrNull:
            throw fail(.possiblyNullMapValue(register: Int(program[index].dst)))
        default:
            throw fail(.prohibitedPointerArithmetic("arithmetic on a \(pointer.typeName)"))
        }
    }

    // MARK: memory

    mutating func load(_ state: inout VerifierState, base: Int, offset: Int64, size: Int) throws(VerificationError) -> RegisterValue {
        let pointer = try read(&state, base)
        switch pointer {
        case .packet(let p):
            try checkPacket(p, state: state, offset: offset, size: size)
            return .scalar(ScalarValue(range: .bytes(size)))
        case .mapValue(let m, let lo, let hi):
            try checkMapValue(m, lo + offset, hi + offset, size: size)
            return .scalar(ScalarValue(range: .bytes(size)))
        case .stack(let f, let lo, let hi):
            return try stackRead(&state, frame: f, lo: lo + offset, hi: hi + offset, size: size)
        case .mapValueOrNull:
            throw fail(.possiblyNullMapValue(register: base))
        default:
            throw fail(.invalidMemoryAccess(register: base, type: pointer.typeName))
        }
    }

    mutating func store(_ state: inout VerifierState, base: Int, offset: Int64, size: Int, value: RegisterValue) throws(VerificationError) {
        let pointer = try read(&state, base)
        switch pointer {
        case .packet:
            throw fail(.packetWrite)
        case .mapValue(let m, let lo, let hi):
            if value.isPointer { throw fail(.pointerLeak("\(value.typeName) stored into a map value")) }
            if maps[m].readOnly { throw fail(.readOnlyMapWrite) }
            try checkMapValue(m, lo + offset, hi + offset, size: size)
        case .stack(let f, let lo, let hi):
            if lo != hi {
                try variableStackWrite(&state, frame: f, lo: lo + offset, hi: hi + offset, size: size, value: value)
                return
            }
            if case .stack(let vf, _, _) = value, vf > f {
                throw fail(.pointerLeak("pointer to a callee's stack stored in a caller's frame"))
            }
            try stackWrite(&state, frame: f, offset: lo + offset, size: size, value: value)
        case .mapValueOrNull:
            throw fail(.possiblyNullMapValue(register: base))
        default:
            throw fail(.invalidMemoryAccess(register: base, type: pointer.typeName))
        }
    }

    mutating func atomic(_ insn: BPFInstruction, _ state: inout VerifierState, size: Int, value: RegisterValue) throws(VerificationError) {
        guard size == 4 || size == 8 else { throw fail(.invalidInstruction("atomic of size \(size)")) }
        guard case .scalar = value else { throw fail(.pointerLeak("atomic operation with a \(value.typeName)")) }
        let op = insn.immediate
        let fetch = op & BPFOpcode.atomicFetch != 0
        let known: Set<Int32> = [0x00, 0x40, 0x50, 0xa0, 0x01, 0x41, 0x51, 0xa1, BPFOpcode.atomicXchg, BPFOpcode.atomicCmpxchg]
        guard known.contains(op) else { throw fail(.invalidInstruction("atomic operation \(op)")) }
        if op == BPFOpcode.atomicCmpxchg {
            guard case .scalar = try read(&state, 0) else { throw fail(.pointerLeak("cmpxchg with a pointer in r0")) }
        }
        // the location must be readable and writable as a scalar
        _ = try load(&state, base: Int(insn.dst), offset: Int64(insn.offset), size: size)
        try store(&state, base: Int(insn.dst), offset: Int64(insn.offset), size: size, value: .unknownScalar)
        if op == BPFOpcode.atomicCmpxchg {
            state[register: 0] = .scalar(ScalarValue(range: .bytes(size)))
        } else if fetch {
            try writable(insn.src)
            state[register: Int(insn.src)] = .scalar(ScalarValue(range: .bytes(size)))
        }
    }

    func checkPacket(_ p: PacketPointer, state: VerifierState, offset: Int64, size: Int) throws(VerificationError) {
        let start = p.fixed + offset
        let end = start + Int64(size)
        var varMin = p.varMin
        if p.symbol == lengthSymbol { varMin = max(varMin, state.provenLength) }
        var ok = start + varMin >= 0
        if ok {
            let bySymbol = p.symbol != 0 && (state.facts[p.symbol].map { $0 >= end } ?? false)
            let absolute = state.provenLength >= end + p.varMax && p.symbol != lengthSymbol
            ok = bySymbol || absolute
        }
        if !ok {
            throw fail(.packetAccessOutOfBounds(
                offset: (start + p.varMin)...max(start + p.varMin, start + p.varMax), size: size,
                provenLength: state.provenLength))
        }
    }

    func checkMapValue(_ m: Int, _ lo: Int64, _ hi: Int64, size: Int) throws(VerificationError) {
        let valueSize = maps[m].valueSize
        if lo < 0 || hi + Int64(size) > Int64(valueSize) {
            throw fail(.mapValueOutOfBounds(offset: lo...max(lo, hi), size: size, valueSize: valueSize))
        }
    }

    func stackBounds(_ lo: Int64, _ hi: Int64, size: Int) throws(VerificationError) {
        let limit = Int64(BPFLimits.stackSizePerFrame)
        if lo < -limit || hi + Int64(size) > 0 { throw fail(.stackOutOfBounds(offset: lo < -limit ? lo : hi, size: size)) }
    }

    mutating func touch(_ state: inout VerifierState, frame: Int, offset: Int64) {
        let depth = Int(-offset)
        if depth > state.frames[frame].stackDepth {
            state.frames[frame].stackDepth = depth
            let total = state.frames.reduce(0) { $0 + $1.stackDepth }
            statistics.maxStackDepth = max(statistics.maxStackDepth, total)
        }
        let slots = (depth + 7) / 8
        if state.frames[frame].stack.count < slots {
            state.frames[frame].stack += Array(repeating: .bytes(initialised: 0), count: slots - state.frames[frame].stack.count)
        }
    }

    mutating func stackRead(_ state: inout VerifierState, frame: Int, lo: Int64, hi: Int64, size: Int) throws(VerificationError) -> RegisterValue {
        try stackBounds(lo, hi, size: size)
        touch(&state, frame: frame, offset: lo)
        let slots = state.frames[frame].stack
        if lo == hi && size == 8 && lo % 8 == 0 {
            let slot = slots[Int(-lo / 8) - 1]
            if case .spill(let v) = slot {
                if case .scalar = v { precision.spillRead(slot: Int(-lo / 8) - 1, at: index) }
                return v
            }
        }
        // byte by byte: every byte initialised, no part of a spilled pointer
        var byte = lo
        while byte < hi + Int64(size) {
            let slotIndex = Int((-byte - 1) / 8)
            let bit = UInt8(1) << UInt8((byte + 8 * Int64(slotIndex + 1)))
            switch slots[slotIndex] {
            case .spill(let v):
                if v.isPointer { throw fail(.pointerLeak("partial read of a spilled \(v.typeName)")) }
            case .bytes(let mask):
                if mask & bit == 0 { throw fail(.uninitialisedStackRead(offset: lo, size: size)) }
            }
            byte += 1
        }
        return .scalar(ScalarValue(range: .bytes(size)))
    }

    mutating func stackWrite(_ state: inout VerifierState, frame: Int, offset: Int64, size: Int, value: RegisterValue) throws(VerificationError) {
        try stackBounds(offset, offset, size: size)
        touch(&state, frame: frame, offset: offset)
        if size == 8 && offset % 8 == 0 {
            state.frames[frame].stack[Int(-offset / 8) - 1] = .spill(value)
            return
        }
        if value.isPointer { throw fail(.pointerLeak("partial or misaligned store of a \(value.typeName)")) }
        var byte = offset
        while byte < offset + Int64(size) {
            let slotIndex = Int((-byte - 1) / 8)
            let bit = UInt8(1) << UInt8((byte + 8 * Int64(slotIndex + 1)))
            switch state.frames[frame].stack[slotIndex] {
            case .spill(let v):
                // the rest of a spilled scalar stays initialised; the rest of a pointer does not
                state.frames[frame].stack[slotIndex] = .bytes(initialised: v.isPointer || v == .uninitialised ? bit : 0xff)
            case .bytes(let mask):
                state.frames[frame].stack[slotIndex] = .bytes(initialised: mask | bit)
            }
            byte += 1
        }
    }

    /// A scalar store at an offset somewhere in `lo...hi`: every byte it may touch must be inside
    /// the frame. Which bytes change is unknown, so no byte becomes initialised (bytes that were
    /// initialised stay initialised scalars), and a spilled value it may overlap is forgotten: a
    /// spilled scalar becomes eight initialised scalar bytes, a spilled pointer becomes
    /// uninitialised bytes (it may be partly overwritten, so it can never be read back).
    mutating func variableStackWrite(_ state: inout VerifierState, frame: Int, lo: Int64, hi: Int64, size: Int, value: RegisterValue) throws(VerificationError) {
        guard case .scalar = value else {
            throw fail(.pointerLeak("\(value.typeName) stored at a variable stack offset"))
        }
        try stackBounds(lo, hi, size: size)
        touch(&state, frame: frame, offset: lo)
        let firstSlot = Int((-(hi + Int64(size) - 1) - 1) / 8)
        let lastSlot = Int((-lo - 1) / 8)
        for slotIndex in firstSlot...lastSlot {
            if case .spill(let v) = state.frames[frame].stack[slotIndex] {
                let scalar: Bool
                if case .scalar = v { scalar = true } else { scalar = false }
                state.frames[frame].stack[slotIndex] = .bytes(initialised: scalar ? 0xff : 0)
            }
        }
    }

    /// Checks `size` readable initialised bytes at the pointer in `r` (helper memory arguments).
    mutating func checkReadable(_ state: inout VerifierState, _ r: Int, size: Int, helper: String) throws(VerificationError) {
        let v = state[register: r]
        switch v {
        case .stack, .mapValue, .packet:
            if size > 0 { _ = try load(&state, base: r, offset: 0, size: 1); try readRange(&state, r, size: size) }
        case .uninitialised:
            throw fail(.helperArgument(helper: helper, argument: r, problem: "uninitialised"))
        default:
            throw fail(.helperArgument(helper: helper, argument: r, problem: "expected a pointer to memory, found \(v.typeName)"))
        }
    }

    mutating func readRange(_ state: inout VerifierState, _ r: Int, size: Int) throws(VerificationError) {
        switch state[register: r] {
        case .stack(let f, let lo, let hi):
            guard lo == hi else { throw fail(.variableStackAccess) }
            _ = try stackRead(&state, frame: f, lo: lo, hi: lo + Int64(size) - 1, size: 1)
        case .mapValue(let m, let lo, let hi):
            try checkMapValue(m, lo, hi, size: size)
        case .packet(let p):
            try checkPacket(p, state: state, offset: 0, size: size)
        default: break
        }
    }

    // MARK: jumps, calls, exit

    mutating func jump(_ insn: BPFInstruction, _ state: inout VerifierState) throws(VerificationError) -> StepResult {
        let op = insn.opcode & 0xf0
        let is32 = insn.instructionClass == BPFOpcode.classJMP32
        switch op {
        case BPFOpcode.ja:
            return .next(index + 1 + (is32 ? Int(insn.immediate) : Int(insn.offset)))
        case BPFOpcode.exit:
            return try exit(&state)
        case BPFOpcode.call:
            if insn.src == BPFOpcode.callLocal { return try callLocal(insn, &state) }
            guard insn.src == BPFOpcode.callHelper else { throw fail(.unsupported("call by BTF id")) }
            try callHelper(insn.immediate, &state)
            return .next(index + 1)
        default:
            break
        }
        let target = index + 1 + Int(insn.offset)
        let (taken, notTaken) = try branch(insn, state, is32: is32)
        if taken == nil || notTaken == nil || taken!.facts != state.facts || notTaken!.facts != state.facts {
            let operands: UInt16 = 1 << UInt16(insn.dst) | (insn.opcode & BPFOpcode.sourceX != 0 ? 1 << UInt16(insn.src) : 0)
            precision.use(operands, at: index)
        }
        switch (taken, notTaken) {
        case (let t?, let f?): return .fork(taken: t, target: target, notTaken: f)
        case (let t?, nil): state = t; return .next(target)
        case (nil, let f?): state = f; return .next(index + 1)
        case (nil, nil): return .done  // contradictory path: nothing reaches here
        }
    }

    mutating func exit(_ state: inout VerifierState) throws(VerificationError) -> StepResult {
        let r0 = state[register: 0]
        if state.frames.count == 1 {
            guard case .scalar = r0 else {
                if case .uninitialised = r0 { throw fail(.invalidReturnValue("r0 is uninitialised at exit")) }
                throw fail(.invalidReturnValue("r0 is a \(r0.typeName); programs must return a scalar"))
            }
            return .done
        }
        if case .uninitialised = r0 { throw fail(.invalidReturnValue("r0 is uninitialised at subprogram exit")) }
        if case .stack(let f, _, _) = r0, f == state.current {
            throw fail(.invalidReturnValue("subprogram returns a pointer to its own stack"))
        }
        let callee = state.frames.removeLast()
        state[register: 0] = r0
        for r in 1...5 { state[register: r] = .uninitialised }
        return .next(callee.returnIndex)
    }

    mutating func callLocal(_ insn: BPFInstruction, _ state: inout VerifierState) throws(VerificationError) -> StepResult {
        guard state.frames.count < BPFLimits.maxCallDepth else { throw fail(.callDepthExceeded(limit: BPFLimits.maxCallDepth)) }
        var registers = Array(repeating: RegisterValue.uninitialised, count: 11)
        for r in 1...5 { registers[r] = state[register: r] }
        registers[10] = .stack(frame: state.frames.count, minOffset: 0, maxOffset: 0)
        state.frames.append(Frame(registers: registers, returnIndex: index + 1))
        statistics.maxCallDepth = max(statistics.maxCallDepth, state.frames.count)
        return .next(index + 1 + Int(insn.immediate))
    }

    mutating func callHelper(_ id: Int32, _ state: inout VerifierState) throws(VerificationError) {
        guard let proto = helpers[id] else { throw fail(.unknownHelper(id: id)) }
        let name = proto.name
        var map: VerifierMapDescription?
        var mapIndex = 0
        for (i, kind) in proto.arguments.enumerated() {
            let r = i + 1
            let v = state[register: r]
            func wrong(_ problem: String) -> VerificationError { fail(.helperArgument(helper: name, argument: r, problem: problem)) }
            switch kind {
            case .unused, .memorySize:
                break
            case .scalar, .optionalScalar:
                if case .uninitialised = v, kind == .optionalScalar { break }
                guard case .scalar = v else { throw wrong("expected a scalar, found \(v.typeName)") }
            case .mapPointer:
                guard case .mapPointer(let m) = v else { throw wrong("expected a map pointer, found \(v.typeName)") }
                if let allowed = proto.allowedMapTypes, !allowed.contains(maps[m].type) {
                    throw wrong("map \(m) has type \(maps[m].type), not accepted by this helper")
                }
                map = maps[m]
                mapIndex = m
            case .mapKey, .mapValue:
                guard let map else { throw wrong("no map argument precedes the key/value") }
                let size = kind == .mapKey ? map.keySize : map.valueSize
                if case .mapValueOrNull = v { throw fail(.possiblyNullMapValue(register: r)) }
                try checkReadable(&state, r, size: size, helper: name)
            case .mapValueOutput where map?.type == BPFMapType.bloomFilter:
                // A Bloom filter's peek only reads the value (Linux: ARG_PTR_TO_MAP_VALUE), so the
                // bytes must be initialised and must not become "initialised" by the call.
                if case .mapValueOrNull = v { throw fail(.possiblyNullMapValue(register: r)) }
                try checkReadable(&state, r, size: map!.valueSize, helper: name)
            case .mapValueOutput:
                guard let map else { throw wrong("no map argument precedes the value") }
                switch v {
                case .stack(let f, let lo, let hi):
                    guard lo == hi else { throw fail(.variableStackAccess) }
                    var off = lo
                    while off < lo + Int64(map.valueSize) {
                        let chunk = min(8, Int(lo + Int64(map.valueSize) - off))
                        let piece = off % 8 == 0 ? chunk : 1
                        try stackWrite(&state, frame: f, offset: off, size: piece, value: .unknownScalar)
                        off += Int64(piece)
                    }
                case .mapValue(let m, let lo, let hi):
                    if maps[m].readOnly { throw fail(.readOnlyMapWrite) }
                    try checkMapValue(m, lo, hi, size: map.valueSize)
                default:
                    throw wrong("expected a pointer to writable memory, found \(v.typeName)")
                }
            case .memory:
                guard i + 1 < proto.arguments.count, case .memorySize(let allowZero) = proto.arguments[i + 1] else {
                    throw wrong("memory argument without a size")
                }
                guard case .scalar(let size) = state[register: r + 1] else {
                    throw fail(.helperArgument(helper: name, argument: r + 1, problem: "size must be a scalar"))
                }
                if !allowZero && size.range.umin == 0 {
                    throw fail(.helperArgument(helper: name, argument: r + 1, problem: "size may be zero"))
                }
                guard size.range.umax <= UInt64(BPFLimits.stackSizePerFrame) * 128 else {
                    throw fail(.helperArgument(helper: name, argument: r + 1, problem: "size \(size.range) is unbounded"))
                }
                try checkReadable(&state, r, size: Int(size.range.umax), helper: name)
            }
        }
        for r in 1...5 { state[register: r] = .uninitialised }
        switch proto.returns {
        case .scalar:
            state[register: 0] = .unknownScalar
        case .mapValueOrNull:
            guard map != nil else { throw fail(.helperArgument(helper: name, argument: 1, problem: "no map argument")) }
            state[register: 0] = .mapValueOrNull(map: mapIndex, nullID: state.freshSymbol())
        }
    }
}
