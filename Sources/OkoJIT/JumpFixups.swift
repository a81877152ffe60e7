// Branch displacement bookkeeping for the two-pass emission (see the design note in OkoJIT.swift).

/// Where a branch goes.
enum JumpDestination {
    /// The first byte of BPF instruction `index` (after any function prologue).
    case instruction(Int)
    /// The prologue of the bpf-to-bpf function starting at instruction `index`.
    case functionEntry(Int)
    /// The shared abort stub (restore the entry rsp, return 0).
    case abort
}

/// Branches whose displacement is known only once all code is laid out.
struct JumpFixups {
    private struct Fixup {
        var field: Int
        var isShort: Bool
        var destination: JumpDestination
    }

    private var fixups: [Fixup] = []

    init(capacity: Int) {
        fixups.reserveCapacity(capacity)
    }

    mutating func add(field: Int, isShort: Bool, destination: JumpDestination) {
        fixups.append(Fixup(field: field, isShort: isShort, destination: destination))
    }

    /// Writes every displacement; `offset` maps a destination to its code offset.
    func resolve(into emitter: inout X86Emitter, offset: (JumpDestination) -> Int) {
        for fixup in fixups {
            let end = fixup.field + (fixup.isShort ? 1 : 4)
            let displacement = offset(fixup.destination) - end
            if fixup.isShort {
                emitter.patchInt8(at: fixup.field, displacement)
            } else {
                emitter.patchInt32(at: fixup.field, Int32(displacement))
            }
        }
    }
}

/// Per-branch choice of encoding, derived from pass 1's layout.
struct ShortJumpPlan {
    /// Indexed by BPF instruction; true when that instruction's branch can use rel8.
    var isShort: [Bool]

    /// Pass 1 laid every branch out long. A branch of length 2 starting at `start` reaches `target`
    /// when the pass-1 distance fits rel8; pass 2 distances are never larger in magnitude.
    static func plan(branchStarts: [Int], branchTargets: [Int], instructionOffsets: [Int]) -> ShortJumpPlan {
        var isShort = [Bool](repeating: false, count: branchStarts.count)
        for index in 0..<branchStarts.count where branchStarts[index] >= 0 {
            let distance = instructionOffsets[branchTargets[index]] - (branchStarts[index] + 2)
            isShort[index] = distance >= -128 && distance <= 127
        }
        return ShortJumpPlan(isShort: isShort)
    }
}
