// Public inputs and outputs of the verifier: limits, statistics, and the refusal error.

/// Bounds on the work the verifier does before it refuses a program as too complex.
public struct VerifierLimits: Hashable, Sendable {
    /// Instructions symbolically executed over all paths (Linux: 1M).
    public var maxInstructionsProcessed: Int
    /// States kept for pruning over the whole run.
    public var maxStoredStates: Int
    /// Program length in slots.
    public var maxProgramLength: Int
    /// Largest packet the datapath hands a program; bounds the packet length scalar in r2.
    public var maxPacketLength: Int

    public init(
        maxInstructionsProcessed: Int = 1_000_000, maxStoredStates: Int = 100_000, maxProgramLength: Int = 1_000_000,
        maxPacketLength: Int = 65_535
    ) {
        self.maxInstructionsProcessed = maxInstructionsProcessed
        self.maxStoredStates = maxStoredStates
        self.maxProgramLength = maxProgramLength
        self.maxPacketLength = maxPacketLength
    }
}

/// What the verifier did while proving a program safe.
public struct VerifierStatistics: Hashable, Sendable {
    /// Instructions symbolically executed, over all paths.
    public var instructionsProcessed = 0
    /// States stored at prune points.
    public var statesStored = 0
    /// Paths cut short because a stored, more general state had been fully explored.
    public var statesPruned = 0
    /// Largest number of paths waiting on the worklist at once.
    public var peakPendingPaths = 0
    /// Largest number of in-progress stored states at once.
    public var peakLiveStates = 0
    /// Deepest stack use in bytes, summed over the frames of a call chain.
    public var maxStackDepth = 0
    /// Deepest call chain (1 = no bpf-to-bpf calls).
    public var maxCallDepth = 1
    /// Distinct back edges (loops) in the control-flow graph.
    public var loops = 0
    /// Times a back edge was followed during verification.
    public var backEdgesTaken = 0
}

/// A jump from `from` back to `to` (`to <= from`): a loop.
public struct BackEdge: Hashable, Sendable {
    public var from: Int
    public var to: Int
    public init(from: Int, to: Int) {
        self.from = from
        self.to = to
    }
}

/// One branch decision on the path that led to a refusal.
public struct VerifierPathStep: Hashable, Sendable, CustomStringConvertible {
    /// Index of the conditional jump.
    public var instruction: Int
    /// True when the jump was taken.
    public var taken: Bool

    public var description: String { "\(instruction)\(taken ? "+" : "-")" }
}

/// A refusal: which instruction, on which path, and why.
public struct VerificationError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        case emptyProgram
        case programTooLong(count: Int, limit: Int)
        case invalidInstruction(String)
        case invalidRegister(Int)
        case jumpOutOfRange(target: Int)
        case fallsOffEnd
        case unknownMap(index: Int)
        case uninitialisedRegister(Int)
        case framePointerWrite
        /// A packet access not proven to lie inside the length checked on this path.
        case packetAccessOutOfBounds(offset: ClosedRange<Int64>, size: Int, provenLength: Int64)
        case packetWrite
        /// Dereference (or arithmetic) of a map lookup result that may be NULL.
        case possiblyNullMapValue(register: Int)
        case mapValueOutOfBounds(offset: ClosedRange<Int64>, size: Int, valueSize: Int)
        case readOnlyMapWrite
        case stackOutOfBounds(offset: Int64, size: Int)
        case uninitialisedStackRead(offset: Int64, size: Int)
        case variableStackAccess
        case invalidMemoryAccess(register: Int, type: String)
        case pointerLeak(String)
        case prohibitedPointerArithmetic(String)
        case pointerComparison(String)
        case unknownHelper(id: Int32)
        case helperArgument(helper: String, argument: Int, problem: String)
        case callDepthExceeded(limit: Int)
        case invalidReturnValue(String)
        case infiniteLoop(backEdgeFrom: Int?, to: Int)
        /// The budget ran out; `backEdge` names the loop iterated most often, if any.
        case tooComplex(processed: Int, backEdge: BackEdge?)
        case tooManyStates(limit: Int)
        case unsupported(String)
    }

    public var reason: Reason
    /// Index of the offending instruction, when there is one.
    public var instructionIndex: Int?
    /// Disassembly of that instruction.
    public var instructionText: String?
    /// The last branch decisions on the path that reached it (oldest first).
    public var path: [VerifierPathStep]
    /// Branch decisions before `path` that were left out to keep the report short.
    public var omittedPathSteps: Int

    public init(reason: Reason, instructionIndex: Int? = nil, instructionText: String? = nil, path: [VerifierPathStep] = [], omittedPathSteps: Int = 0) {
        self.reason = reason
        self.instructionIndex = instructionIndex
        self.instructionText = instructionText
        self.path = path
        self.omittedPathSteps = omittedPathSteps
    }

    public var description: String {
        var text = "verifier: "
        if let index = instructionIndex {
            text += "instruction \(index)"
            if let t = instructionText { text += " (\(t))" }
            text += ": "
        }
        text += reason.explanation
        if !path.isEmpty || omittedPathSteps > 0 {
            let steps = path.map(\.description).joined(separator: " ")
            text += "; path: " + (omittedPathSteps > 0 ? "... " : "") + steps
        }
        return text
    }
}

extension VerificationError.Reason {
    var explanation: String {
        switch self {
        case .emptyProgram: return "program is empty"
        case .programTooLong(let count, let limit): return "program has \(count) instructions, limit is \(limit)"
        case .invalidInstruction(let what): return "invalid instruction: \(what)"
        case .invalidRegister(let r): return "invalid register r\(r)"
        case .jumpOutOfRange(let target): return "jump target \(target) is outside the program or inside an lddw"
        case .fallsOffEnd: return "execution falls off the end of the program"
        case .unknownMap(let index): return "reference to unknown map \(index)"
        case .uninitialisedRegister(let r): return "reads uninitialised register r\(r)"
        case .framePointerWrite: return "writes the read-only frame pointer r10"
        case .packetAccessOutOfBounds(let offset, let size, let proven):
            return "packet access at offset \(offset.lowerBound)...\(offset.upperBound) size \(size) "
                + "is not proven inside the checked packet length (proven: \(proven) bytes)"
        case .packetWrite: return "programs may not write the packet"
        case .possiblyNullMapValue(let r): return "r\(r) may be NULL (map lookup result used without a null check)"
        case .mapValueOutOfBounds(let offset, let size, let valueSize):
            return "map value access at offset \(offset.lowerBound)...\(offset.upperBound) size \(size) "
                + "outside value size \(valueSize)"
        case .readOnlyMapWrite: return "write to a read-only map value (.rodata)"
        case .stackOutOfBounds(let offset, let size): return "stack access at offset \(offset) size \(size) out of bounds"
        case .uninitialisedStackRead(let offset, let size):
            return "reads uninitialised stack bytes at offset \(offset) size \(size)"
        case .variableStackAccess: return "stack access with a variable offset"
        case .invalidMemoryAccess(let r, let type): return "memory access through r\(r), which is \(type)"
        case .pointerLeak(let what): return "pointer leak: \(what)"
        case .prohibitedPointerArithmetic(let what): return "prohibited pointer arithmetic: \(what)"
        case .pointerComparison(let what): return "prohibited pointer comparison: \(what)"
        case .unknownHelper(let id): return "call to unknown helper \(id)"
        case .helperArgument(let helper, let argument, let problem):
            return "helper \(helper) argument r\(argument): \(problem)"
        case .callDepthExceeded(let limit): return "bpf-to-bpf call depth exceeds \(limit)"
        case .invalidReturnValue(let what): return "invalid return value: \(what)"
        case .infiniteLoop(let from, let to):
            if let from { return "infinite loop: back edge \(from) -> \(to) reaches an identical state" }
            return "infinite loop at instruction \(to): an identical state repeats"
        case .tooComplex(let processed, let edge):
            if let edge {
                return "unbounded loop or program too complex: \(processed) instructions processed; "
                    + "back edge \(edge.from) -> \(edge.to) was iterated most"
            }
            return "program too complex: \(processed) instructions processed"
        case .tooManyStates(let limit): return "program too complex: more than \(limit) states"
        case .unsupported(let what): return "unsupported: \(what)"
        }
    }
}
