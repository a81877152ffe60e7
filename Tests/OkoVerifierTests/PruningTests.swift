// Pruning ignores what a stored state's proof did not rely on (dead registers, ranges that fed no
// safety decision), and never what it did (a range added to a pointer, directly or via a spill).
import OkoBPF
import Testing

@testable import OkoVerifier

@Suite struct PruningTests {
    /// r3 = first packet byte; r4 = 1 when r3 <= 7, else `other`; then the shared tail.
    static func twoPaths(other: Int32, tail: (inout ProgramBuilder) -> Void) -> [BPFInstruction] {
        build { b in
            b.mov(0, 0)
            b.jump(BPFOpcode.jlt, 2, imm: 20, to: "out")
            b.ldx(.b, 3, 1, 0)
            b.jump(BPFOpcode.jgt, 3, imm: 7, to: "other")
            b.mov(4, 1)
            b.ja("join")
            b.label("other")
            b.mov(4, other)
            b.label("join")
            tail(&b)
            b.label("out")
            b.exit()
        }
    }

    @Test func pathsDifferingOnlyInDeadRegistersArePruned() throws {
        let p = Self.twoPaths(other: 2) { b in
            b.ldx(.b, 0, 1, 5)  // r3 and r4 are dead from here on
            b.ja("out")
        }
        let stats = try verify(p)
        #expect(stats.statesPruned >= 1)
    }

    @Test func liveScalarWhoseRangeFeedsNoSafetyDecisionIsPruned() throws {
        let p = Self.twoPaths(other: 2) { b in
            b.stx(.w, 10, -4, 4)  // r4 is live, but a 4-byte store keeps only initialised bytes
            b.ldx(.b, 0, 1, 5)
            b.ja("out")
        }
        let stats = try verify(p)
        #expect(stats.statesPruned >= 1)
    }

    @Test func rangeAddedToAPacketPointerKeepsThePathsApart() {
        // r4 = 1 is explored first and reads inside the checked 20 bytes; r4 = 100 must not be
        // pruned against it, and reads past the check.
        let p = Self.twoPaths(other: 100) { b in
            b.mov(5, reg: 1)
            b.add(5, reg: 4)
            b.ldx(.b, 0, 5, 0)
            b.ja("out")
        }
        let e = refusal(p)
        #expect(isPacketOutOfBounds(e))
        #expect(e?.instructionIndex == 9)
    }

    @Test func rangeSpilledToTheStackAndAddedToAPointerKeepsThePathsApart() {
        let p = Self.twoPaths(other: 100) { b in
            b.stx(.dw, 10, -8, 4)
            b.mov(4, 0)
            b.ldx(.dw, 6, 10, -8)
            b.mov(5, reg: 1)
            b.add(5, reg: 6)
            b.ldx(.b, 0, 5, 0)
            b.ja("out")
        }
        let e = refusal(p)
        #expect(isPacketOutOfBounds(e))
        #expect(e?.instructionText == "ldxb %r0, [%r5+0]")
    }
}
