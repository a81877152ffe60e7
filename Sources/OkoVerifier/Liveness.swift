// Register liveness, so that pruning ignores registers no later instruction reads.
//
// A register is live before instruction i when some control-flow path from i reads it before
// writing it. The control-flow graph over-approximates the paths the abstract interpretation
// follows (both sides of every branch, every call returns), so "dead" here means dead on every
// real path: a dead register's value can never influence a memory access, helper argument or
// return value, and forgetting it (making it uninitialised) changes nothing about what is proven.
//
// Frames are separate: a bpf-to-bpf call hands r1-r5 to a fresh callee frame and resumes the
// caller at the next instruction with r0 set and r1-r5 clobbered, so a call reads r1-r5 and
// writes r0-r5, and the callee body is analysed on its own (its exit reads r0). A helper call reads
// the argument registers its prototype declares. r10 is always live.
//
// Packet length facts matter only while the packet can still be reached: once no register or
// spilled slot of any frame holds a packet pointer, no later instruction can obtain one (r1 at
// entry is the only source; maps never hold pointers), so the facts are dropped too.
import OkoBPF

struct RegisterLiveness {
    /// liveIn[i] bit r: register r is live before instruction i.
    let liveIn: [UInt16]
    /// The control-flow graph (calls fall through to the next instruction; exits have no successor).
    var successors: [[Int]] = []
    var predecessors: [[Int]] = []

    static let allRegisters: UInt16 = 0x7ff
    static let frameRegister: UInt16 = 1 << 10
    /// r0-r5: set (r0) or clobbered (r1-r5) by a call.
    static let callClobbered: UInt16 = 0x3f
    static let arguments: UInt16 = 0x3e

    init(liveIn: [UInt16]) { self.liveIn = liveIn }

    init(program: [BPFInstruction], lddwTail: [Bool], helpers: HelperPrototypeTable) {
        let n = program.count
        var uses = [UInt16](repeating: 0, count: n)
        var defs = [UInt16](repeating: 0, count: n)
        var successors = [[Int]](repeating: [], count: n)
        var predecessors = [[Int]](repeating: [], count: n)
        for i in 0..<n where !lddwTail[i] {
            var (u, d, s) = Self.effect(program, i)
            // a helper reads only the arguments its prototype declares (unknown helpers: all five)
            let insn = program[i]
            if insn.instructionClass == BPFOpcode.classJMP, insn.opcode & 0xf0 == BPFOpcode.call,
                insn.src == BPFOpcode.callHelper, let proto = helpers[insn.immediate]
            {
                u = 0
                for (k, kind) in proto.arguments.enumerated() where kind != .unused { u |= 1 << UInt16(k + 1) }
            }
            uses[i] = u
            defs[i] = d
            successors[i] = s.filter { $0 >= 0 && $0 < n }
            for t in successors[i] { predecessors[t].append(i) }
        }
        var live = [UInt16](repeating: 0, count: n)
        // backward worklist to a fixed point; each instruction starts on the list
        var pending = Array((0..<n).filter { !lddwTail[$0] })
        var queued = [Bool](repeating: false, count: n)
        for i in pending { queued[i] = true }
        while let i = pending.popLast() {
            queued[i] = false
            var out: UInt16 = 0
            for t in successors[i] { out |= live[t] }
            let new = uses[i] | (out & ~defs[i]) | Self.frameRegister
            if new != live[i] {
                live[i] = new
                for p in predecessors[i] where !queued[p] {
                    queued[p] = true
                    pending.append(p)
                }
            }
        }
        liveIn = live
        self.successors = successors
        self.predecessors = predecessors
    }

    /// Registers read, registers written, and the instructions that may run next.
    static func effect(_ program: [BPFInstruction], _ i: Int) -> (uses: UInt16, defs: UInt16, next: [Int]) {
        let insn = program[i]
        let dst: UInt16 = insn.dst <= 10 ? 1 << UInt16(insn.dst) : 0
        let src: UInt16 = insn.src <= 10 ? 1 << UInt16(insn.src) : 0
        let useX = insn.opcode & BPFOpcode.sourceX != 0
        switch insn.instructionClass {
        case BPFOpcode.classALU, BPFOpcode.classALU64:
            let op = insn.opcode & 0xf0
            if op == BPFOpcode.mov { return (useX ? src : 0, dst, [i + 1]) }
            if op == BPFOpcode.neg || op == BPFOpcode.end { return (dst, dst, [i + 1]) }
            return (dst | (useX ? src : 0), dst, [i + 1])
        case BPFOpcode.classLD:
            if insn.opcode == BPFOpcode.lddw { return (0, dst, [i + 2]) }
            // legacy packet access (refused by the verifier anyway): reads r6 and src, writes r0-r5
            return (1 << 6 | src, callClobbered, [i + 1])
        case BPFOpcode.classLDX:
            return (src, dst, [i + 1])
        case BPFOpcode.classST:
            return (dst, 0, [i + 1])
        case BPFOpcode.classSTX:
            if insn.opcode & 0xe0 == BPFOpcode.modeATOMIC {
                let op = insn.immediate
                if op == BPFOpcode.atomicCmpxchg { return (dst | src | 1, 1, [i + 1]) }
                if op & BPFOpcode.atomicFetch != 0 { return (dst | src, src, [i + 1]) }
            }
            return (dst | src, 0, [i + 1])
        default:
            let op = insn.opcode & 0xf0
            let is32 = insn.instructionClass == BPFOpcode.classJMP32
            switch op {
            case BPFOpcode.exit:
                return (1, 0, [])
            case BPFOpcode.call:
                return (arguments, callClobbered, [i + 1])
            case BPFOpcode.ja:
                return (0, 0, [i + 1 + (is32 ? Int(insn.immediate) : Int(insn.offset))])
            default:
                return (dst | (useX ? src : 0), 0, [i + 1, i + 1 + Int(insn.offset)])
            }
        }
    }
}

extension VerifierState {
    /// Makes every register no later instruction reads uninitialised: in the current frame those
    /// dead before `index`, in each caller those dead where it resumes (r0-r5 are set or clobbered
    /// by the return, so only r6-r9 of a caller can matter).
    mutating func forgetDeadRegisters(_ liveness: RegisterLiveness, at index: Int) {
        for f in frames.indices {
            let live: UInt16
            if f == frames.count - 1 {
                live = liveness.liveIn[index]
            } else {
                live = liveness.liveIn[frames[f + 1].returnIndex] & ~RegisterLiveness.callClobbered
            }
            for r in 0..<10 where live & (1 << UInt16(r)) == 0 {
                frames[f].registers[r] = .uninitialised
            }
        }
        if !holdsPacketPointer { facts = VerifierState.initialFacts }
    }

    var holdsPacketPointer: Bool {
        for frame in frames {
            for v in frame.registers { if case .packet = v { return true } }
            for slot in frame.stack { if case .spill(.packet) = slot { return true } }
        }
        return false
    }
}
