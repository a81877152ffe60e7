// OkoJIT: compiles an eBPF program (RFC 9669, cpu v4, plus legacy LDABS/LDIND) to x86-64 code once,
// so the datapath calls it as a plain C function.
//
// Design note
// - Entry ABI: `@convention(c) (memory: UnsafeMutableRawPointer?, length: UInt64) -> UInt64`, i.e. SysV
//   rdi = BPF r1, rsi = BPF r2, result in rax = BPF r0. No trampoline: the caller jumps straight in.
// - Static register mapping (chosen so that helper calls need no shuffling: BPF r1-r5 already sit in
//   the SysV argument registers and r0 in the return register; r6-r9 and r10 live in callee-saved
//   registers so they survive helper calls for free):
//       r0 -> rax   r1 -> rdi   r2 -> rsi   r3 -> rdx   r4 -> rcx   r5 -> r8
//       r6 -> rbx   r7 -> r13   r8 -> r14   r9 -> r15   r10 (frame pointer) -> rbp
//   Scratch: r9, r10, r11 (caller-saved, never live across BPF instructions).
//   r12 holds the entry frame's rsp when the program needs a way to abort (bpf-to-bpf calls,
//   LDABS/LDIND bounds failures, callx, the unwind helper); it is callee-saved, so helpers keep it.
// - Entry frame (main function): pushes only the callee-saved registers the program touches, then
//   `sub rsp, S` where S = BPF stack (512 bytes if r10 escapes or bpf-to-bpf calls exist, else just
//   the deepest constant r10-relative access, rounded to 8) + 16 bytes for the legacy packet
//   pointer/length (if LDABS/LDIND are used) + alignment padding so rsp is 16-byte aligned at every
//   helper call. Layout from rsp upwards: [packet ptr, packet len] [pad] [BPF stack]; rbp is rsp
//   before the `sub`, just past the BPF stack (BPF r10 semantics: accesses use negative offsets).
// - bpf-to-bpf `call local`: an x86 `call` to the callee's prologue, which pushes rbx, r13, r14, r15
//   and rbp (the caller's r6-r9 and r10), reserves its own 512-byte stack and sets rbp; `exit` in a
//   callee pops them and `ret`s. Each nested frame is exactly 560 bytes, so the depth is
//   (r12 - rsp) / 560 and the depth limit (8 frames, entry included) is one compare at the call site.
// - Helper calls: `mov r11, imm64; call r11` to the address from `BPFHelperTable`. `callx` looks the
//   helper id (the register's value) up in a table owned by the compiled program.
// - Aborts (depth limit exceeded, LDABS/LDIND out of bounds, bad callx id, unwind helper returning 0)
//   restore rsp from r12 and return 0 from the program, like the Linux kernel's LDABS behaviour.
// - Jumps: two emission passes. Pass 1 emits every branch in its rel32 form and records offsets;
//   pass 2 picks the rel8 form wherever the pass-1 distance fits (code only shrinks between passes,
//   so the choice stays valid) and resolves targets through `JumpFixups`.
// - Division and shifts follow BPF, not x86: div by zero gives 0, mod by zero leaves dst (32-bit:
//   zero-extended), INT_MIN / -1 is handled before `idiv` could trap, shift counts are masked.
// - Threads: a `BPFJITProgram` is immutable after compilation; its code may run on any number of
//   threads at once (each call has its own stack frame).

import OkoBPF

/// Why a program could not be compiled; `instructionIndex` names the slot when there is one.
public struct BPFJITError: Error, CustomStringConvertible, Equatable {
    public enum Reason: Equatable, Sendable {
        case unknownOpcode(UInt8)
        case badRegister(UInt8)
        case badJumpTarget(Int)
        case incompleteLDDW
        case unknownHelper(Int32)
        case unsupportedCall(String)
        case fallsOffEnd
        case emptyProgram
        case memory(String)
    }

    public let instructionIndex: Int?
    public let reason: Reason

    public init(instructionIndex: Int?, reason: Reason) {
        self.instructionIndex = instructionIndex
        self.reason = reason
    }

    public var description: String {
        let place = instructionIndex.map { "instruction \($0): " } ?? ""
        switch reason {
        case .unknownOpcode(let opcode):
            return place + "unknown or unsupported opcode 0x" + String(opcode, radix: 16)
        case .badRegister(let register):
            return place + "register r\(register) does not exist"
        case .badJumpTarget(let target):
            return place + "jump target \(target) is outside the program or inside an lddw"
        case .incompleteLDDW:
            return place + "lddw is missing its second slot"
        case .unknownHelper(let id):
            return place + "call to unregistered helper \(id)"
        case .unsupportedCall(let what):
            return place + "unsupported call: \(what)"
        case .fallsOffEnd:
            return place + "last instruction is neither exit nor a jump; execution would fall off the end"
        case .emptyProgram:
            return "the program has no instructions"
        case .memory(let message):
            return place + message
        }
    }
}

/// Compilation choices that are not part of the program itself.
public struct BPFJITOptions: Sendable {
    /// A helper whose return value 0 stops the program with r0 = 0 (ubpf's "unwind" helper).
    /// nil: use the helper table's `unwindHelperID`.
    public var unwindHelperID: Int32?

    public init(unwindHelperID: Int32? = nil) {
        self.unwindHelperID = unwindHelperID
    }
}

/// A compiled program: executable code plus whatever tables it references.
public final class BPFJITProgram: @unchecked Sendable {
    /// The machine-code entry point.
    public typealias Entry = @convention(c) (UnsafeMutableRawPointer?, UInt64) -> UInt64

    /// Call this directly from the datapath: no Swift overhead between caller and generated code.
    /// Valid only while this object is alive (the code is unmapped in `deinit`).
    public let entry: Entry
    /// Bytes of generated machine code.
    public let codeSize: Int
    /// Number of BPF instruction slots compiled.
    public let instructionCount: Int

    private let memory: ExecutableMemory
    private let callTable: UnsafeMutablePointer<UInt64>?

    /// Compiles `instructions`; throws `BPFJITError` naming the offending instruction.
    public init(instructions: [BPFInstruction], helpers: BPFHelperTable,
                options: BPFJITOptions = BPFJITOptions()) throws(BPFJITError) {
        var table: UnsafeMutablePointer<UInt64>? = nil
        if instructions.contains(where: { $0.opcode == (BPFOpcode.classJMP | BPFOpcode.call | BPFOpcode.sourceX) }) {
            let count = max(helpers.functions.count, 1)
            let pointer = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
            pointer.initialize(repeating: 0, count: count)
            for (id, function) in helpers.functions.enumerated() {
                if let function { pointer[id] = BPFJITCompiler.address(of: function) }
            }
            table = pointer
        }
        do {
            var effective = options
            if effective.unwindHelperID == nil { effective.unwindHelperID = helpers.unwindHelperID }
            var compiler = try BPFJITCompiler(
                instructions: instructions, helpers: helpers, options: effective,
                callTable: table, callTableCount: max(helpers.functions.count, 1))
            let code = try compiler.compile()
            memory = try ExecutableMemory(code: code)
            codeSize = code.count
        } catch {
            table?.deallocate()
            throw error
        }
        callTable = table
        instructionCount = instructions.count
        entry = unsafeBitCast(memory.base, to: Entry.self)
    }

    deinit {
        callTable?.deallocate()
    }

    /// Runs the program on `memory[0..<length]` (r1, r2) and returns r0.
    @inlinable @inline(__always)
    public func run(memory: UnsafeMutableRawPointer?, length: UInt64) -> UInt64 {
        entry(memory, length)
    }

    /// The generated machine code (for disassembly while debugging).
    public var machineCode: [UInt8] {
        Array(UnsafeRawBufferPointer(start: memory.base, count: codeSize))
    }
}
