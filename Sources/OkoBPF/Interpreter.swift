// BPFInterpreter: a memory-safe, allocation-free eBPF interpreter.
//
// Design note
// - Construction decodes and validates the program once (`BPFDecoder`) and lowers it into a
//   compact array of 16-byte `ResolvedInstruction`s indexed by wire slot (the second LDDW slot
//   becomes an unreachable filler), so the instruction index in every error is the wire index.
//   Lowering resolves what the hot loop would otherwise recompute: jump targets are absolute slot
//   numbers, immediates are pre-extended to 64 bits (or pre-truncated for 32-bit ops), `mov32 imm`,
//   `mov imm` and `lddw` all become one "load constant" op, `le64` becomes a no-op, helper ids are
//   checked against the helper table. Loads/stores through r10 at a constant offset inside the
//   frame become unchecked "frame" ops: r10 is read-only (the decoder rejects writes), so they are
//   proven in bounds once, at load time.
// - The dispatch loop reads operand fields through a pointer to the current instruction only in
//   the cases that use them (eager field loads before the jump table cost ~40%).
// - `run` keeps registers and the entry stack frame in a 768-byte `withUnsafeTemporaryAllocation`
//   (below the 1 KiB threshold, so always on the machine stack: no malloc, no ARC per run).
//   bpf-to-bpf calls recurse into the loop with a fresh 512-byte frame; the caller saves r6-r9
//   and r10 around the call, the callee gets r10 = top of its own frame. Depth is capped at
//   `BPFLimits.maxCallDepth` frames.
// - Every load/store/atomic is checked before it touches memory. Fast path: the input memory
//   (r1/r2 at entry) and the current frame; slow path (`@inline(never)`): the caller frames and the
//   regions registered at construction (`BPFMemoryRegion`, e.g. map value storage), honouring
//   their `writable` flag. A failed check, a too-deep call, or an unknown helper throws
//   `BPFRuntimeError` carrying the instruction index; errors are built in `@inline(never)` helpers
//   so the loop stays small.
// - Division by zero yields 0 and modulo by zero leaves dst unchanged (RFC 9669); signed
//   INT_MIN / -1 wraps. Legacy LDABS/LDIND read big-endian values from the input memory and, as in
//   Linux, end the program with r0 = 0 when out of bounds.
// - Helpers are plain C function pointers (`BPFHelperTable`). Memory a helper receives through a
//   pointer argument is the helper's responsibility. If the table names an unwind helper, a call to
//   it that returns 0 ends the program with r0 = 0 (ubpf's unwind extension).
// - Termination is not checked here (that is the verifier's job): a looping program loops.
// - Threads: the instance is immutable after `init`; `run` may be called from any number of threads
//   at once (each call has its own registers and stack).

/// A memory range the program may access besides its input memory and its stack.
public struct BPFMemoryRegion: Sendable, Hashable {
    public var start: UInt
    public var length: Int
    public var writable: Bool

    public init(start: UnsafeRawPointer, length: Int, writable: Bool) {
        self.start = UInt(bitPattern: start)
        self.length = length
        self.writable = writable
    }

    public init(start: UnsafeMutableRawPointer, length: Int, writable: Bool) {
        self.init(start: UnsafeRawPointer(start), length: length, writable: writable)
    }
}

/// Why a program could not be loaded by an engine (structure or unsupported feature).
public struct BPFLoadError: Error, Sendable, Hashable, CustomStringConvertible {
    public var instructionIndex: Int
    public var message: String

    public init(instructionIndex: Int, message: String) {
        self.instructionIndex = instructionIndex
        self.message = message
    }

    public init(_ decodeError: BPFDecodeError) {
        self.init(instructionIndex: decodeError.instructionIndex, message: decodeError.description)
    }

    public var description: String {
        message.hasPrefix("instruction ") ? message : "instruction \(instructionIndex): \(message)"
    }
}

/// A fault while running a program. `instructionIndex` is the wire slot of the failing instruction.
public struct BPFRuntimeError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case outOfBoundsAccess(address: UInt64, size: Int, write: Bool)
        case misalignedAtomic(address: UInt64)
        case callDepthExceeded
        case unknownHelper(id: Int64)
    }

    public var kind: Kind
    public var instructionIndex: Int

    public init(kind: Kind, instructionIndex: Int) {
        self.kind = kind
        self.instructionIndex = instructionIndex
    }

    public var description: String {
        let what: String
        switch kind {
        case .outOfBoundsAccess(let address, let size, let write):
            what = "\(write ? "write" : "read") of \(size) byte(s) at 0x\(String(address, radix: 16)) is outside every allowed region"
        case .misalignedAtomic(let address):
            what = "atomic access at 0x\(String(address, radix: 16)) is not naturally aligned"
        case .callDepthExceeded:
            what = "call depth exceeds \(BPFLimits.maxCallDepth) frames"
        case .unknownHelper(let id):
            what = "no helper registered with id \(id)"
        }
        return "instruction \(instructionIndex): \(what)"
    }
}

/// The interpreter's lowered operations. Dense raw values so the dispatch `switch` is a jump table.
@usableFromInline
enum ResolvedOpcode: UInt8 {
    case invalid
    case loadConstant
    /// lddw: loadConstant that also steps over its second slot.
    case loadConstant64
    // ALU64, register source then immediate source
    case add64X, sub64X, mul64X, div64X, sdiv64X, or64X, and64X, lsh64X, rsh64X, mod64X, smod64X, xor64X, mov64X, arsh64X
    case add64K, sub64K, mul64K, div64K, sdiv64K, or64K, and64K, lsh64K, rsh64K, mod64K, smod64K, xor64K, arsh64K
    // ALU32
    case add32X, sub32X, mul32X, div32X, sdiv32X, or32X, and32X, lsh32X, rsh32X, mod32X, smod32X, xor32X, mov32X, arsh32X
    case add32K, sub32K, mul32K, div32K, sdiv32K, or32K, and32K, lsh32K, rsh32K, mod32K, smod32K, xor32K, arsh32K
    case neg64, neg32
    case movsx8to64, movsx16to64, movsx32to64, movsx8to32, movsx16to32
    case truncate16, truncate32, swap16, swap32, swap64, nop
    case ldxb, ldxh, ldxw, ldxdw, ldxsb, ldxsh, ldxsw
    case stb, sth, stw, stdw, stxb, stxh, stxw, stxdw
    // Accesses through r10 at a constant offset inside the frame: r10 is read-only, so these are
    // proven in bounds at load time and skip the run-time check.
    case ldxbFrame, ldxhFrame, ldxwFrame, ldxdwFrame, ldxsbFrame, ldxshFrame, ldxswFrame
    case stbFrame, sthFrame, stwFrame, stdwFrame, stxbFrame, stxhFrame, stxwFrame, stxdwFrame
    case atomic32, atomic64
    case packetLoad
    case ja
    case jeq64X, jgt64X, jge64X, jset64X, jne64X, jsgt64X, jsge64X, jlt64X, jle64X, jslt64X, jsle64X
    case jeq64K, jgt64K, jge64K, jset64K, jne64K, jsgt64K, jsge64K, jlt64K, jle64K, jslt64K, jsle64K
    case jeq32X, jgt32X, jge32X, jset32X, jne32X, jsgt32X, jsge32X, jlt32X, jle32X, jslt32X, jsle32X
    case jeq32K, jgt32K, jge32K, jset32K, jne32K, jsgt32K, jsge32K, jlt32K, jle32K, jslt32K, jsle32K
    case callHelper, callUnwindHelper, callMissingHelper, callLocal, callRegister
    case exit
}

/// One lowered instruction (16 bytes).
@usableFromInline
struct ResolvedInstruction {
    @usableFromInline var opcode: ResolvedOpcode
    @usableFromInline var dst: UInt8
    @usableFromInline var src: UInt8
    /// Atomic: operation code; packet load: access size.
    @usableFromInline var variant: UInt8
    /// Memory offset, or absolute target slot for jumps and local calls.
    @usableFromInline var target: Int32
    /// Pre-extended immediate (bit pattern).
    @usableFromInline var imm: UInt64

    init(_ opcode: ResolvedOpcode, dst: UInt8 = 0, src: UInt8 = 0, variant: UInt8 = 0, target: Int32 = 0, imm: UInt64 = 0) {
        self.opcode = opcode
        self.dst = dst
        self.src = src
        self.variant = variant
        self.target = target
        self.imm = imm
    }
}

/// Atomic variants stored in `ResolvedInstruction.variant`.
enum AtomicVariant: UInt8 {
    case add, or, and, xor, fetchAdd, fetchOr, fetchAnd, fetchXor, xchg, cmpxchg
}

public final class BPFInterpreter: @unchecked Sendable {
    /// Number of wire slots of the program.
    public let instructionCount: Int
    private let code: UnsafeMutablePointer<ResolvedInstruction>
    private let helpers: UnsafeMutablePointer<BPFHelperFunction?>
    private let helperCount: Int
    private let unwindHelperID: Int64?
    private let regions: [BPFMemoryRegion]

    /// Validates and lowers `instructions`. `regions` are extra memory ranges the program may touch.
    public init(
        instructions: [BPFInstruction], helpers: BPFHelperTable, regions: [BPFMemoryRegion] = []
    ) throws(BPFLoadError) {
        let entries: [BPFDecodedEntry]
        do throws(BPFDecodeError) {
            entries = try BPFDecoder.decode(instructions)
        } catch {
            throw BPFLoadError(error)
        }
        instructionCount = instructions.count
        self.regions = regions
        unwindHelperID = helpers.unwindHelperID.map(Int64.init)
        helperCount = helpers.functions.count
        self.helpers = .allocate(capacity: max(helperCount, 1))
        self.helpers.initialize(repeating: nil, count: max(helperCount, 1))
        for (index, function) in helpers.functions.enumerated() { self.helpers[index] = function }

        code = .allocate(capacity: instructions.count)
        code.initialize(repeating: ResolvedInstruction(.invalid), count: instructions.count)
        for entry in entries {
            do throws(BPFLoadError) {
                code[entry.slot] = try Self.lower(entry.instruction, at: entry.slot, helpers: helpers)
            } catch {
                code.deinitialize(count: instructions.count)
                code.deallocate()
                self.helpers.deallocate()
                throw error
            }
        }
    }

    deinit {
        code.deinitialize(count: instructionCount)
        code.deallocate()
        helpers.deallocate()
    }

    // MARK: lowering

    private static func lower(
        _ instruction: DecodedInstruction, at slot: Int, helpers: BPFHelperTable
    ) throws(BPFLoadError) -> ResolvedInstruction {
        func target(_ offset: some BinaryInteger) -> Int32 { Int32(slot + 1 + Int(offset)) }
        func signExtended(_ imm: Int32) -> UInt64 { UInt64(bitPattern: Int64(imm)) }
        func zeroExtended(_ imm: Int32) -> UInt64 { UInt64(UInt32(bitPattern: imm)) }

        switch instruction {
        case .alu(let operation, let width, let dst, let source):
            let isRegister: Bool
            let imm: UInt64
            var src: UInt8 = 0
            switch source {
            case .register(let r):
                isRegister = true
                src = r
                imm = 0
            case .immediate(let value):
                isRegister = false
                imm = width == .bits64 ? signExtended(value) : zeroExtended(value)
            }
            if operation == .mov && !isRegister {
                return ResolvedInstruction(.loadConstant, dst: dst, imm: imm)
            }
            let order: [BPFALUOperation] = [.add, .sub, .mul, .div, .sdiv, .or, .and, .lsh, .rsh, .mod, .smod, .xor, .mov, .arsh]
            let base: ResolvedOpcode
            switch (width, isRegister) {
            case (.bits64, true): base = .add64X
            case (.bits64, false): base = .add64K
            case (.bits32, true): base = .add32X
            case (.bits32, false): base = .add32K
            }
            var index = order.firstIndex(of: operation)!
            // Immediate groups have no `mov` entry (it became loadConstant), so arsh shifts down one.
            if !isRegister && operation == .arsh { index -= 1 }
            let opcode = ResolvedOpcode(rawValue: base.rawValue + UInt8(index))!
            return ResolvedInstruction(opcode, dst: dst, src: src, imm: imm)
        case .negate(let width, let dst):
            return ResolvedInstruction(width == .bits64 ? .neg64 : .neg32, dst: dst)
        case .moveSignExtend(let width, let dst, let src, let bits):
            let opcode: ResolvedOpcode
            switch (width, bits) {
            case (.bits64, 8): opcode = .movsx8to64
            case (.bits64, 16): opcode = .movsx16to64
            case (.bits64, _): opcode = .movsx32to64
            case (.bits32, 8): opcode = .movsx8to32
            default: opcode = .movsx16to32
            }
            return ResolvedInstruction(opcode, dst: dst, src: src)
        case .byteOrder(let order, let bits, let dst):
            // The host is little endian (x86-64, arm64): `le` only truncates, `be`/`swap` swap.
            let opcode: ResolvedOpcode
            switch (order, bits) {
            case (.littleEndian, 16): opcode = .truncate16
            case (.littleEndian, 32): opcode = .truncate32
            case (.littleEndian, _): opcode = .nop
            case (_, 16): opcode = .swap16
            case (_, 32): opcode = .swap32
            default: opcode = .swap64
            }
            return ResolvedInstruction(opcode, dst: dst)
        case .loadImmediate64(let dst, let value, let pseudoSource):
            guard pseudoSource == 0 else {
                throw BPFLoadError(instructionIndex: slot,
                                   message: "lddw with pseudo source \(pseudoSource) must be relocated by the loader first")
            }
            return ResolvedInstruction(.loadConstant64, dst: dst, imm: value)
        case .load(let size, let signExtend, let dst, let base, let offset):
            let opcode: ResolvedOpcode
            switch (size, signExtend) {
            case (.byte, false): opcode = .ldxb
            case (.half, false): opcode = .ldxh
            case (.word, false): opcode = .ldxw
            case (.double, _): opcode = .ldxdw
            case (.byte, true): opcode = .ldxsb
            case (.half, true): opcode = .ldxsh
            case (.word, true): opcode = .ldxsw
            }
            if base == 10 && Self.isInsideFrame(offset, size) {
                let frameOpcode = ResolvedOpcode(rawValue: opcode.rawValue - ResolvedOpcode.ldxb.rawValue + ResolvedOpcode.ldxbFrame.rawValue)!
                return ResolvedInstruction(frameOpcode, dst: dst, src: base, target: Int32(offset))
            }
            return ResolvedInstruction(opcode, dst: dst, src: base, target: Int32(offset))
        case .store(let size, let base, let offset, let value):
            switch value {
            case .register(let src):
                let opcode: ResolvedOpcode
                switch size {
                case .byte: opcode = .stxb
                case .half: opcode = .stxh
                case .word: opcode = .stxw
                case .double: opcode = .stxdw
                }
                if base == 10 && Self.isInsideFrame(offset, size) {
                    let frameOpcode = ResolvedOpcode(rawValue: opcode.rawValue - ResolvedOpcode.stb.rawValue + ResolvedOpcode.stbFrame.rawValue)!
                    return ResolvedInstruction(frameOpcode, dst: base, src: src, target: Int32(offset))
                }
                return ResolvedInstruction(opcode, dst: base, src: src, target: Int32(offset))
            case .immediate(let imm):
                let opcode: ResolvedOpcode
                switch size {
                case .byte: opcode = .stb
                case .half: opcode = .sth
                case .word: opcode = .stw
                case .double: opcode = .stdw
                }
                if base == 10 && Self.isInsideFrame(offset, size) {
                    let frameOpcode = ResolvedOpcode(rawValue: opcode.rawValue - ResolvedOpcode.stb.rawValue + ResolvedOpcode.stbFrame.rawValue)!
                    return ResolvedInstruction(frameOpcode, dst: base, target: Int32(offset), imm: signExtended(imm))
                }
                return ResolvedInstruction(opcode, dst: base, target: Int32(offset), imm: signExtended(imm))
            }
        case .atomic(let operation, let size, let fetch, let base, let offset, let src):
            let variant: AtomicVariant
            switch (operation, fetch) {
            case (.add, false): variant = .add
            case (.or, false): variant = .or
            case (.and, false): variant = .and
            case (.xor, false): variant = .xor
            case (.add, true): variant = .fetchAdd
            case (.or, true): variant = .fetchOr
            case (.and, true): variant = .fetchAnd
            case (.xor, true): variant = .fetchXor
            case (.xchg, _): variant = .xchg
            case (.cmpxchg, _): variant = .cmpxchg
            }
            return ResolvedInstruction(size == .word ? .atomic32 : .atomic64, dst: base, src: src,
                                       variant: variant.rawValue, target: Int32(offset))
        case .packetLoad(let size, let indexRegister, let immediate):
            // src 0xff marks "no index register" (LDABS).
            return ResolvedInstruction(.packetLoad, src: indexRegister ?? 0xff, variant: size.rawValue,
                                       imm: signExtended(immediate))
        case .jump(let offset):
            return ResolvedInstruction(.ja, target: target(offset))
        case .jumpLong(let offset):
            return ResolvedInstruction(.ja, target: target(offset))
        case .conditionalJump(let condition, let width, let dst, let source, let offset):
            let order: [BPFJumpCondition] = [.jeq, .jgt, .jge, .jset, .jne, .jsgt, .jsge, .jlt, .jle, .jslt, .jsle]
            let base: ResolvedOpcode
            var src: UInt8 = 0
            var imm: UInt64 = 0
            switch (width, source) {
            case (.bits64, .register(let r)): base = .jeq64X; src = r
            case (.bits64, .immediate(let value)): base = .jeq64K; imm = signExtended(value)
            case (.bits32, .register(let r)): base = .jeq32X; src = r
            case (.bits32, .immediate(let value)): base = .jeq32K; imm = zeroExtended(value)
            }
            let opcode = ResolvedOpcode(rawValue: base.rawValue + UInt8(order.firstIndex(of: condition)!))!
            return ResolvedInstruction(opcode, dst: dst, src: src, target: target(offset), imm: imm)
        case .callHelper(let id):
            guard helpers.function(id: id) != nil else {
                // Loading succeeds; reaching the call is a run-time error (the branch may be dead).
                return ResolvedInstruction(.callMissingHelper, imm: signExtended(id))
            }
            let unwinding = helpers.unwindHelperID == id
            return ResolvedInstruction(unwinding ? .callUnwindHelper : .callHelper, imm: UInt64(id))
        case .callLocal(let offset):
            return ResolvedInstruction(.callLocal, target: target(offset))
        case .callRegister(let register):
            return ResolvedInstruction(.callRegister, dst: register)
        case .exit:
            return ResolvedInstruction(.exit)
        }
    }

    /// True when `[r10 + offset, r10 + offset + size)` lies inside the current 512-byte frame.
    private static func isInsideFrame(_ offset: Int16, _ size: BPFAccessSize) -> Bool {
        Int(offset) >= -BPFLimits.stackSizePerFrame && Int(offset) + Int(size.rawValue) <= 0
    }

    // MARK: running

    /// Per-run state shared by all frames of one `run`.
    @usableFromInline
    struct RunState {
        var memoryStart: UInt64
        var memoryLength: UInt64
        /// Lowest address of each active frame (frame `i` spans `frameLows[i] ..< frameLows[i] + 512`).
        var frameLows: UnsafeMutablePointer<UInt64>
        var depth: Int
        /// Set when the program must stop with the current r0 (unwind helper, failed packet load).
        var stopped: Bool
    }

    private static let frameSize = UInt64(BPFLimits.stackSizePerFrame)

    /// Runs the program with r1 = `memory`, r2 = `length`, r10 = top of a fresh stack frame.
    /// Returns r0 at `exit`.
    public func run(memory: UnsafeMutableRawPointer?, length: Int) throws(BPFRuntimeError) -> UInt64 {
        var failure: BPFRuntimeError?
        // 128 bytes registers (16 slots: dst/src nibbles can never index past them), 64 bytes frame
        // table, 512 bytes entry frame.
        let result = withUnsafeTemporaryAllocation(byteCount: 128 + 64 + BPFLimits.stackSizePerFrame, alignment: 16) {
            buffer -> UInt64 in
            let base = buffer.baseAddress!
            let registers = base.bindMemory(to: UInt64.self, capacity: 16)
            let frameLows = (base + 128).bindMemory(to: UInt64.self, capacity: 8)
            let frameLow = UInt64(UInt(bitPattern: base + 192))
            registers.initialize(repeating: 0, count: 11)  // r11-r15 are never addressed (decoder)
            frameLows[0] = frameLow
            let memoryAddress = UInt64(UInt(bitPattern: memory))
            registers[1] = memoryAddress
            registers[2] = UInt64(length)
            registers[10] = frameLow + Self.frameSize
            var state = RunState(memoryStart: memoryAddress, memoryLength: memory == nil ? 0 : UInt64(length),
                                 frameLows: frameLows, depth: 0, stopped: false)
            do throws(BPFRuntimeError) {
                try execute(from: 0, registers: registers, state: &state)
            } catch {
                failure = error
                return 0
            }
            return registers[0]
        }
        if let failure { throw failure }
        return result
    }

    /// Runs one frame from slot `start` until its `exit` (or until the program stops).
    private func execute(
        from start: Int, registers r: UnsafeMutablePointer<UInt64>, state: inout RunState
    ) throws(BPFRuntimeError) {
        let code = self.code
        let memoryStart = state.memoryStart
        let memoryLength = state.memoryLength
        let frameLow = state.frameLows[state.depth]
        var pc = start

        /// Host pointer for an access of `size` bytes at `address`, or nil when it is outside the
        /// input memory and the current frame (the caller then takes the slow path).
        @inline(__always)
        func fastTranslate(_ address: UInt64, _ size: UInt64) -> UnsafeMutableRawPointer? {
            let inMemory = address &- memoryStart
            if inMemory < memoryLength && memoryLength &- inMemory >= size {
                return UnsafeMutableRawPointer(bitPattern: UInt(address))
            }
            if address &- frameLow <= Self.frameSize &- size {
                return UnsafeMutableRawPointer(bitPattern: UInt(address))
            }
            return nil
        }

        while true {
            let ins = code.advanced(by: pc)
            pc &+= 1
            var d: Int { Int(ins.pointee.dst) }
            var s: Int { Int(ins.pointee.src) }
            switch ins.pointee.opcode {
            case .loadConstant: r[d] = ins.pointee.imm
            case .loadConstant64:
                r[d] = ins.pointee.imm
                pc &+= 1

            case .add64X: r[d] = r[d] &+ r[s]
            case .sub64X: r[d] = r[d] &- r[s]
            case .mul64X: r[d] = r[d] &* r[s]
            case .div64X: r[d] = Self.udiv64(r[d], r[s])
            case .sdiv64X: r[d] = Self.sdiv64(r[d], r[s])
            case .or64X: r[d] = r[d] | r[s]
            case .and64X: r[d] = r[d] & r[s]
            case .lsh64X: r[d] = r[d] &<< r[s]
            case .rsh64X: r[d] = r[d] &>> r[s]
            case .mod64X: r[d] = Self.umod64(r[d], r[s])
            case .smod64X: r[d] = Self.smod64(r[d], r[s])
            case .xor64X: r[d] = r[d] ^ r[s]
            case .mov64X: r[d] = r[s]
            case .arsh64X: r[d] = UInt64(bitPattern: Int64(bitPattern: r[d]) &>> r[s])

            case .add64K: r[d] = r[d] &+ ins.pointee.imm
            case .sub64K: r[d] = r[d] &- ins.pointee.imm
            case .mul64K: r[d] = r[d] &* ins.pointee.imm
            case .div64K: r[d] = Self.udiv64(r[d], ins.pointee.imm)
            case .sdiv64K: r[d] = Self.sdiv64(r[d], ins.pointee.imm)
            case .or64K: r[d] = r[d] | ins.pointee.imm
            case .and64K: r[d] = r[d] & ins.pointee.imm
            case .lsh64K: r[d] = r[d] &<< ins.pointee.imm
            case .rsh64K: r[d] = r[d] &>> ins.pointee.imm
            case .mod64K: r[d] = Self.umod64(r[d], ins.pointee.imm)
            case .smod64K: r[d] = Self.smod64(r[d], ins.pointee.imm)
            case .xor64K: r[d] = r[d] ^ ins.pointee.imm
            case .arsh64K: r[d] = UInt64(bitPattern: Int64(bitPattern: r[d]) &>> ins.pointee.imm)

            case .add32X: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &+ UInt32(truncatingIfNeeded: r[s]))
            case .sub32X: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &- UInt32(truncatingIfNeeded: r[s]))
            case .mul32X: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &* UInt32(truncatingIfNeeded: r[s]))
            case .div32X: r[d] = Self.udiv32(r[d], r[s])
            case .sdiv32X: r[d] = Self.sdiv32(r[d], r[s])
            case .or32X: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] | r[s]))
            case .and32X: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] & r[s]))
            case .lsh32X: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &<< UInt32(truncatingIfNeeded: r[s]))
            case .rsh32X: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &>> UInt32(truncatingIfNeeded: r[s]))
            case .mod32X: r[d] = Self.umod32(r[d], r[s])
            case .smod32X: r[d] = Self.smod32(r[d], r[s])
            case .xor32X: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] ^ r[s]))
            case .mov32X: r[d] = UInt64(UInt32(truncatingIfNeeded: r[s]))
            case .arsh32X:
                r[d] = UInt64(UInt32(bitPattern: Int32(truncatingIfNeeded: r[d]) &>> Int32(truncatingIfNeeded: r[s])))

            case .add32K: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] &+ ins.pointee.imm))
            case .sub32K: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] &- ins.pointee.imm))
            case .mul32K: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &* UInt32(truncatingIfNeeded: ins.pointee.imm))
            case .div32K: r[d] = Self.udiv32(r[d], ins.pointee.imm)
            case .sdiv32K: r[d] = Self.sdiv32(r[d], ins.pointee.imm)
            case .or32K: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] | ins.pointee.imm))
            case .and32K: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] & ins.pointee.imm))
            case .lsh32K: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &<< UInt32(truncatingIfNeeded: ins.pointee.imm))
            case .rsh32K: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &>> UInt32(truncatingIfNeeded: ins.pointee.imm))
            case .mod32K: r[d] = Self.umod32(r[d], ins.pointee.imm)
            case .smod32K: r[d] = Self.smod32(r[d], ins.pointee.imm)
            case .xor32K: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] ^ ins.pointee.imm))
            case .arsh32K:
                r[d] = UInt64(UInt32(bitPattern: Int32(truncatingIfNeeded: r[d]) &>> Int32(truncatingIfNeeded: ins.pointee.imm)))

            case .neg64: r[d] = 0 &- r[d]
            case .neg32: r[d] = UInt64(0 &- UInt32(truncatingIfNeeded: r[d]))
            case .movsx8to64: r[d] = UInt64(bitPattern: Int64(Int8(truncatingIfNeeded: r[s])))
            case .movsx16to64: r[d] = UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: r[s])))
            case .movsx32to64: r[d] = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: r[s])))
            case .movsx8to32: r[d] = UInt64(UInt32(bitPattern: Int32(Int8(truncatingIfNeeded: r[s]))))
            case .movsx16to32: r[d] = UInt64(UInt32(bitPattern: Int32(Int16(truncatingIfNeeded: r[s]))))
            case .truncate16: r[d] = r[d] & 0xffff
            case .truncate32: r[d] = r[d] & 0xffff_ffff
            case .swap16: r[d] = UInt64(UInt16(truncatingIfNeeded: r[d]).byteSwapped)
            case .swap32: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]).byteSwapped)
            case .swap64: r[d] = r[d].byteSwapped
            case .nop: break

            case .ldxb:
                let address = r[s] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 1) { p = fast } else {
                    p = try slowTranslate(address, 1, write: false, state: state, at: pc &- 1)
                }
                r[d] = UInt64(p.load(as: UInt8.self))

            case .ldxh:
                let address = r[s] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 2) { p = fast } else {
                    p = try slowTranslate(address, 2, write: false, state: state, at: pc &- 1)
                }
                r[d] = UInt64(p.loadUnaligned(as: UInt16.self))

            case .ldxw:
                let address = r[s] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 4) { p = fast } else {
                    p = try slowTranslate(address, 4, write: false, state: state, at: pc &- 1)
                }
                r[d] = UInt64(p.loadUnaligned(as: UInt32.self))

            case .ldxdw:
                let address = r[s] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 8) { p = fast } else {
                    p = try slowTranslate(address, 8, write: false, state: state, at: pc &- 1)
                }
                r[d] = p.loadUnaligned(as: UInt64.self)

            case .ldxsb:
                let address = r[s] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 1) { p = fast } else {
                    p = try slowTranslate(address, 1, write: false, state: state, at: pc &- 1)
                }
                r[d] = UInt64(bitPattern: Int64(p.load(as: Int8.self)))

            case .ldxsh:
                let address = r[s] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 2) { p = fast } else {
                    p = try slowTranslate(address, 2, write: false, state: state, at: pc &- 1)
                }
                r[d] = UInt64(bitPattern: Int64(p.loadUnaligned(as: Int16.self)))

            case .ldxsw:
                let address = r[s] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 4) { p = fast } else {
                    p = try slowTranslate(address, 4, write: false, state: state, at: pc &- 1)
                }
                r[d] = UInt64(bitPattern: Int64(p.loadUnaligned(as: Int32.self)))

            case .stb:
                let address = r[d] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 1) { p = fast } else {
                    p = try slowTranslate(address, 1, write: true, state: state, at: pc &- 1)
                }
                p.storeBytes(of: UInt8(truncatingIfNeeded: ins.pointee.imm), as: UInt8.self)

            case .stxb:
                let address = r[d] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 1) { p = fast } else {
                    p = try slowTranslate(address, 1, write: true, state: state, at: pc &- 1)
                }
                p.storeBytes(of: UInt8(truncatingIfNeeded: r[s]), as: UInt8.self)

            case .sth:
                let address = r[d] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 2) { p = fast } else {
                    p = try slowTranslate(address, 2, write: true, state: state, at: pc &- 1)
                }
                p.storeBytes(of: UInt16(truncatingIfNeeded: ins.pointee.imm), as: UInt16.self)

            case .stxh:
                let address = r[d] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 2) { p = fast } else {
                    p = try slowTranslate(address, 2, write: true, state: state, at: pc &- 1)
                }
                p.storeBytes(of: UInt16(truncatingIfNeeded: r[s]), as: UInt16.self)

            case .stw:
                let address = r[d] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 4) { p = fast } else {
                    p = try slowTranslate(address, 4, write: true, state: state, at: pc &- 1)
                }
                p.storeBytes(of: UInt32(truncatingIfNeeded: ins.pointee.imm), as: UInt32.self)

            case .stxw:
                let address = r[d] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 4) { p = fast } else {
                    p = try slowTranslate(address, 4, write: true, state: state, at: pc &- 1)
                }
                p.storeBytes(of: UInt32(truncatingIfNeeded: r[s]), as: UInt32.self)

            case .stdw:
                let address = r[d] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 8) { p = fast } else {
                    p = try slowTranslate(address, 8, write: true, state: state, at: pc &- 1)
                }
                p.storeBytes(of: ins.pointee.imm, as: UInt64.self)

            case .stxdw:
                let address = r[d] &+ UInt64(bitPattern: Int64(ins.pointee.target))
                let p: UnsafeMutableRawPointer
                if let fast = fastTranslate(address, 8) { p = fast } else {
                    p = try slowTranslate(address, 8, write: true, state: state, at: pc &- 1)
                }
                p.storeBytes(of: r[s], as: UInt64.self)

            case .ldxbFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                r[d] = UInt64(p.load(as: UInt8.self))

            case .ldxhFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                r[d] = UInt64(p.loadUnaligned(as: UInt16.self))

            case .ldxwFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                r[d] = UInt64(p.loadUnaligned(as: UInt32.self))

            case .ldxdwFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                r[d] = p.loadUnaligned(as: UInt64.self)

            case .ldxsbFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                r[d] = UInt64(bitPattern: Int64(p.load(as: Int8.self)))

            case .ldxshFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                r[d] = UInt64(bitPattern: Int64(p.loadUnaligned(as: Int16.self)))

            case .ldxswFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                r[d] = UInt64(bitPattern: Int64(p.loadUnaligned(as: Int32.self)))

            case .stbFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                p.storeBytes(of: UInt8(truncatingIfNeeded: ins.pointee.imm), as: UInt8.self)

            case .stxbFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                p.storeBytes(of: UInt8(truncatingIfNeeded: r[s]), as: UInt8.self)

            case .sthFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                p.storeBytes(of: UInt16(truncatingIfNeeded: ins.pointee.imm), as: UInt16.self)

            case .stxhFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                p.storeBytes(of: UInt16(truncatingIfNeeded: r[s]), as: UInt16.self)

            case .stwFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                p.storeBytes(of: UInt32(truncatingIfNeeded: ins.pointee.imm), as: UInt32.self)

            case .stxwFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                p.storeBytes(of: UInt32(truncatingIfNeeded: r[s]), as: UInt32.self)

            case .stdwFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                p.storeBytes(of: ins.pointee.imm, as: UInt64.self)

            case .stxdwFrame:
                let p = UnsafeMutableRawPointer(bitPattern: UInt(r[10] &+ UInt64(bitPattern: Int64(ins.pointee.target)))).unsafelyUnwrapped
                p.storeBytes(of: r[s], as: UInt64.self)

            case .atomic32, .atomic64:
                try atomic(ins.pointee, registers: r, state: state, at: pc &- 1)

            case .packetLoad:
                if !loadPacket(ins.pointee, registers: r, state: state) {
                    r[0] = 0
                    state.stopped = true
                    return
                }

            case .ja: pc = Int(ins.pointee.target)

            case .jeq64X: if r[d] == r[s] { pc = Int(ins.pointee.target) }
            case .jgt64X: if r[d] > r[s] { pc = Int(ins.pointee.target) }
            case .jge64X: if r[d] >= r[s] { pc = Int(ins.pointee.target) }
            case .jset64X: if r[d] & r[s] != 0 { pc = Int(ins.pointee.target) }
            case .jne64X: if r[d] != r[s] { pc = Int(ins.pointee.target) }
            case .jsgt64X: if Int64(bitPattern: r[d]) > Int64(bitPattern: r[s]) { pc = Int(ins.pointee.target) }
            case .jsge64X: if Int64(bitPattern: r[d]) >= Int64(bitPattern: r[s]) { pc = Int(ins.pointee.target) }
            case .jlt64X: if r[d] < r[s] { pc = Int(ins.pointee.target) }
            case .jle64X: if r[d] <= r[s] { pc = Int(ins.pointee.target) }
            case .jslt64X: if Int64(bitPattern: r[d]) < Int64(bitPattern: r[s]) { pc = Int(ins.pointee.target) }
            case .jsle64X: if Int64(bitPattern: r[d]) <= Int64(bitPattern: r[s]) { pc = Int(ins.pointee.target) }

            case .jeq64K: if r[d] == ins.pointee.imm { pc = Int(ins.pointee.target) }
            case .jgt64K: if r[d] > ins.pointee.imm { pc = Int(ins.pointee.target) }
            case .jge64K: if r[d] >= ins.pointee.imm { pc = Int(ins.pointee.target) }
            case .jset64K: if r[d] & ins.pointee.imm != 0 { pc = Int(ins.pointee.target) }
            case .jne64K: if r[d] != ins.pointee.imm { pc = Int(ins.pointee.target) }
            case .jsgt64K: if Int64(bitPattern: r[d]) > Int64(bitPattern: ins.pointee.imm) { pc = Int(ins.pointee.target) }
            case .jsge64K: if Int64(bitPattern: r[d]) >= Int64(bitPattern: ins.pointee.imm) { pc = Int(ins.pointee.target) }
            case .jlt64K: if r[d] < ins.pointee.imm { pc = Int(ins.pointee.target) }
            case .jle64K: if r[d] <= ins.pointee.imm { pc = Int(ins.pointee.target) }
            case .jslt64K: if Int64(bitPattern: r[d]) < Int64(bitPattern: ins.pointee.imm) { pc = Int(ins.pointee.target) }
            case .jsle64K: if Int64(bitPattern: r[d]) <= Int64(bitPattern: ins.pointee.imm) { pc = Int(ins.pointee.target) }

            case .jeq32X: if UInt32(truncatingIfNeeded: r[d]) == UInt32(truncatingIfNeeded: r[s]) { pc = Int(ins.pointee.target) }
            case .jgt32X: if UInt32(truncatingIfNeeded: r[d]) > UInt32(truncatingIfNeeded: r[s]) { pc = Int(ins.pointee.target) }
            case .jge32X: if UInt32(truncatingIfNeeded: r[d]) >= UInt32(truncatingIfNeeded: r[s]) { pc = Int(ins.pointee.target) }
            case .jset32X: if UInt32(truncatingIfNeeded: r[d] & r[s]) != 0 { pc = Int(ins.pointee.target) }
            case .jne32X: if UInt32(truncatingIfNeeded: r[d]) != UInt32(truncatingIfNeeded: r[s]) { pc = Int(ins.pointee.target) }
            case .jsgt32X: if Int32(truncatingIfNeeded: r[d]) > Int32(truncatingIfNeeded: r[s]) { pc = Int(ins.pointee.target) }
            case .jsge32X: if Int32(truncatingIfNeeded: r[d]) >= Int32(truncatingIfNeeded: r[s]) { pc = Int(ins.pointee.target) }
            case .jlt32X: if UInt32(truncatingIfNeeded: r[d]) < UInt32(truncatingIfNeeded: r[s]) { pc = Int(ins.pointee.target) }
            case .jle32X: if UInt32(truncatingIfNeeded: r[d]) <= UInt32(truncatingIfNeeded: r[s]) { pc = Int(ins.pointee.target) }
            case .jslt32X: if Int32(truncatingIfNeeded: r[d]) < Int32(truncatingIfNeeded: r[s]) { pc = Int(ins.pointee.target) }
            case .jsle32X: if Int32(truncatingIfNeeded: r[d]) <= Int32(truncatingIfNeeded: r[s]) { pc = Int(ins.pointee.target) }

            case .jeq32K: if UInt32(truncatingIfNeeded: r[d]) == UInt32(truncatingIfNeeded: ins.pointee.imm) { pc = Int(ins.pointee.target) }
            case .jgt32K: if UInt32(truncatingIfNeeded: r[d]) > UInt32(truncatingIfNeeded: ins.pointee.imm) { pc = Int(ins.pointee.target) }
            case .jge32K: if UInt32(truncatingIfNeeded: r[d]) >= UInt32(truncatingIfNeeded: ins.pointee.imm) { pc = Int(ins.pointee.target) }
            case .jset32K: if UInt32(truncatingIfNeeded: r[d] & ins.pointee.imm) != 0 { pc = Int(ins.pointee.target) }
            case .jne32K: if UInt32(truncatingIfNeeded: r[d]) != UInt32(truncatingIfNeeded: ins.pointee.imm) { pc = Int(ins.pointee.target) }
            case .jsgt32K: if Int32(truncatingIfNeeded: r[d]) > Int32(truncatingIfNeeded: ins.pointee.imm) { pc = Int(ins.pointee.target) }
            case .jsge32K: if Int32(truncatingIfNeeded: r[d]) >= Int32(truncatingIfNeeded: ins.pointee.imm) { pc = Int(ins.pointee.target) }
            case .jlt32K: if UInt32(truncatingIfNeeded: r[d]) < UInt32(truncatingIfNeeded: ins.pointee.imm) { pc = Int(ins.pointee.target) }
            case .jle32K: if UInt32(truncatingIfNeeded: r[d]) <= UInt32(truncatingIfNeeded: ins.pointee.imm) { pc = Int(ins.pointee.target) }
            case .jslt32K: if Int32(truncatingIfNeeded: r[d]) < Int32(truncatingIfNeeded: ins.pointee.imm) { pc = Int(ins.pointee.target) }
            case .jsle32K: if Int32(truncatingIfNeeded: r[d]) <= Int32(truncatingIfNeeded: ins.pointee.imm) { pc = Int(ins.pointee.target) }

            case .callHelper:
                let function = helpers[Int(ins.pointee.imm)].unsafelyUnwrapped
                r[0] = function(r[1], r[2], r[3], r[4], r[5])
            case .callUnwindHelper:
                let function = helpers[Int(ins.pointee.imm)].unsafelyUnwrapped
                r[0] = function(r[1], r[2], r[3], r[4], r[5])
                if r[0] == 0 {
                    state.stopped = true
                    return
                }
            case .callMissingHelper:
                throw unknownHelper(Int64(bitPattern: ins.pointee.imm), at: pc &- 1)
            case .callRegister:
                let id = r[d]
                guard id < UInt64(helperCount), let function = helpers[Int(id)] else {
                    throw unknownHelper(Int64(bitPattern: id), at: pc &- 1)
                }
                r[0] = function(r[1], r[2], r[3], r[4], r[5])
                if let unwindHelperID, Int64(bitPattern: id) == unwindHelperID, r[0] == 0 {
                    state.stopped = true
                    return
                }
            case .callLocal:
                try callLocal(target: Int(ins.pointee.target), registers: r, state: &state, at: pc &- 1)
                if state.stopped { return }

            case .exit:
                return

            case .invalid:
                // Unreachable: validation rejects control flow into the second LDDW slot.
                return
            }
        }
    }

    // MARK: cold paths

    /// A bpf-to-bpf call: new frame, callee-saved registers preserved.
    @inline(never)
    private func callLocal(
        target: Int, registers r: UnsafeMutablePointer<UInt64>, state: inout RunState, at index: Int
    ) throws(BPFRuntimeError) {
        guard state.depth + 1 < BPFLimits.maxCallDepth else {
            throw BPFRuntimeError(kind: .callDepthExceeded, instructionIndex: index)
        }
        let saved = (r[6], r[7], r[8], r[9], r[10])
        var failure: BPFRuntimeError?
        withUnsafeTemporaryAllocation(byteCount: BPFLimits.stackSizePerFrame, alignment: 16) { frame in
            let low = UInt64(UInt(bitPattern: frame.baseAddress!))
            state.depth += 1
            state.frameLows[state.depth] = low
            r[10] = low + Self.frameSize
            do throws(BPFRuntimeError) {
                try execute(from: target, registers: r, state: &state)
            } catch {
                failure = error
            }
            state.depth -= 1
        }
        if let failure { throw failure }
        (r[6], r[7], r[8], r[9], r[10]) = saved
    }

    /// Slow path of a load/store: caller frames and registered regions, else a thrown fault.
    @inline(never)
    private func slowTranslate(
        _ address: UInt64, _ size: UInt64, write: Bool, state: RunState, at index: Int
    ) throws(BPFRuntimeError) -> UnsafeMutableRawPointer {
        guard let pointer = regionTranslate(address, size, write: write, state: state) else {
            throw outOfBounds(address, size, write: write, at: index)
        }
        return pointer
    }

    /// Checks caller frames and registered regions; nil when no region holds the whole access.
    private func regionTranslate(_ address: UInt64, _ size: UInt64, write: Bool, state: RunState) -> UnsafeMutableRawPointer? {
        if state.depth > 0 {
            for frame in 0..<state.depth where address &- state.frameLows[frame] <= Self.frameSize &- size {
                return UnsafeMutableRawPointer(bitPattern: UInt(address))
            }
        }
        for region in regions {
            let offset = address &- UInt64(region.start)
            if offset < UInt64(region.length) && UInt64(region.length) &- offset >= size {
                guard !write || region.writable else { return nil }
                return UnsafeMutableRawPointer(bitPattern: UInt(address))
            }
        }
        return nil
    }

    @inline(never)
    private func outOfBounds(_ address: UInt64, _ size: UInt64, write: Bool, at index: Int) -> BPFRuntimeError {
        BPFRuntimeError(kind: .outOfBoundsAccess(address: address, size: Int(size), write: write), instructionIndex: index)
    }

    @inline(never)
    private func unknownHelper(_ id: Int64, at index: Int) -> BPFRuntimeError {
        BPFRuntimeError(kind: .unknownHelper(id: id), instructionIndex: index)
    }

    /// Atomic read-modify-write on checked, naturally aligned memory.
    @inline(never)
    private func atomic(
        _ ins: ResolvedInstruction, registers r: UnsafeMutablePointer<UInt64>, state: RunState, at index: Int
    ) throws(BPFRuntimeError) {
        let is64 = ins.opcode == .atomic64
        let size: UInt64 = is64 ? 8 : 4
        let address = r[Int(ins.dst)] &+ UInt64(bitPattern: Int64(ins.target))
        let inMemory = address &- state.memoryStart
        let frameLow = state.frameLows[state.depth]
        let pointer: UnsafeMutableRawPointer?
        if inMemory < state.memoryLength && state.memoryLength &- inMemory >= size {
            pointer = UnsafeMutableRawPointer(bitPattern: UInt(address))
        } else if address &- frameLow <= Self.frameSize &- size {
            pointer = UnsafeMutableRawPointer(bitPattern: UInt(address))
        } else {
            pointer = regionTranslate(address, size, write: true, state: state)
        }
        guard let pointer else { throw outOfBounds(address, size, write: true, at: index) }
        guard address % size == 0 else {
            throw BPFRuntimeError(kind: .misalignedAtomic(address: address), instructionIndex: index)
        }
        let s = Int(ins.src)
        let variant = AtomicVariant(rawValue: ins.variant)!
        if is64 {
            let old = BPFAtomics.apply64(variant, pointer, operand: r[s], expected: r[0])
            switch variant {
            case .fetchAdd, .fetchOr, .fetchAnd, .fetchXor, .xchg: r[s] = old
            case .cmpxchg: r[0] = old
            default: break
            }
        } else {
            let old = UInt64(BPFAtomics.apply32(variant, pointer, operand: UInt32(truncatingIfNeeded: r[s]),
                                                expected: UInt32(truncatingIfNeeded: r[0])))
            switch variant {
            case .fetchAdd, .fetchOr, .fetchAnd, .fetchXor, .xchg: r[s] = old
            case .cmpxchg: r[0] = old
            default: break
            }
        }
    }

    /// Legacy LDABS/LDIND: big-endian load from the input memory into r0. False when out of bounds.
    @inline(never)
    private func loadPacket(_ ins: ResolvedInstruction, registers r: UnsafeMutablePointer<UInt64>, state: RunState) -> Bool {
        let size = UInt64(ins.variant)
        var offset = ins.imm
        if ins.src != 0xff { offset = offset &+ r[Int(ins.src)] }
        // The offset is a signed 32-bit quantity in Linux; anything negative or past the end fails.
        guard Int64(bitPattern: offset) >= 0, offset < state.memoryLength, state.memoryLength - offset >= size,
              let p = UnsafeRawPointer(bitPattern: UInt(state.memoryStart &+ offset)) else { return false }
        switch size {
        case 1: r[0] = UInt64(p.load(as: UInt8.self))
        case 2: r[0] = UInt64(UInt16(bigEndian: p.loadUnaligned(as: UInt16.self)))
        default: r[0] = UInt64(UInt32(bigEndian: p.loadUnaligned(as: UInt32.self)))
        }
        return true
    }

    // MARK: division semantics (RFC 9669 4.1)

    @inline(__always) static func udiv64(_ a: UInt64, _ b: UInt64) -> UInt64 { b == 0 ? 0 : a / b }
    @inline(__always) static func umod64(_ a: UInt64, _ b: UInt64) -> UInt64 { b == 0 ? a : a % b }
    @inline(__always) static func sdiv64(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int64(bitPattern: a), y = Int64(bitPattern: b)
        if y == 0 { return 0 }
        if y == -1 { return 0 &- a }
        return UInt64(bitPattern: x / y)
    }
    @inline(__always) static func smod64(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int64(bitPattern: a), y = Int64(bitPattern: b)
        if y == 0 { return a }
        if y == -1 { return 0 }
        return UInt64(bitPattern: x % y)
    }
    @inline(__always) static func udiv32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = UInt32(truncatingIfNeeded: a), y = UInt32(truncatingIfNeeded: b)
        return y == 0 ? 0 : UInt64(x / y)
    }
    @inline(__always) static func umod32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = UInt32(truncatingIfNeeded: a), y = UInt32(truncatingIfNeeded: b)
        return y == 0 ? UInt64(x) : UInt64(x % y)
    }
    @inline(__always) static func sdiv32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int32(truncatingIfNeeded: a), y = Int32(truncatingIfNeeded: b)
        if y == 0 { return 0 }
        if y == -1 { return UInt64(0 &- UInt32(bitPattern: x)) }
        return UInt64(UInt32(bitPattern: x / y))
    }
    @inline(__always) static func smod32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int32(truncatingIfNeeded: a), y = Int32(truncatingIfNeeded: b)
        if y == 0 { return UInt64(UInt32(bitPattern: x)) }
        if y == -1 { return 0 }
        return UInt64(UInt32(bitPattern: x % y))
    }
}
