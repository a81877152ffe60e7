// Untrusted programs must never crash the verifier: random slot sequences are refused or accepted,
// never trap. Accepted random programs must also satisfy the basic contract (end in exit paths).
import OkoBPF
import Testing

@testable import OkoVerifier

/// xorshift64*: deterministic, so a failure reproduces.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}

@Suite struct RobustnessTests {
    /// Initialises every register (r1 pkt, r2/r3/r7 len, r4 pkt, r5 stack, r6/r9 constants, r8 random)
    /// so random bodies get past the first register read.
    static let prologue: [BPFInstruction] = [
        BPFInstruction(opcode: 0xbf, dst: 6, src: 1),
        BPFInstruction(opcode: 0xbf, dst: 7, src: 2),
        BPFInstruction(opcode: 0x85, immediate: 7),
        BPFInstruction(opcode: 0xbf, dst: 8, src: 0),
        BPFInstruction(opcode: 0xbf, dst: 1, src: 6),
        BPFInstruction(opcode: 0xbf, dst: 2, src: 7),
        BPFInstruction(opcode: 0xbf, dst: 3, src: 7),
        BPFInstruction(opcode: 0xbf, dst: 4, src: 1),
        BPFInstruction(opcode: 0xbf, dst: 5, src: 10),
        BPFInstruction(opcode: 0x07, dst: 5, immediate: -16),
        BPFInstruction(opcode: 0x7a, dst: 10, offset: -8, immediate: 3),
        BPFInstruction(opcode: 0x7a, dst: 10, offset: -16, immediate: 0),
        BPFInstruction(opcode: 0xb7, dst: 6, immediate: 14),
        BPFInstruction(opcode: 0xb7, dst: 9, immediate: 60),
        BPFInstruction(opcode: 0xb7, dst: 0, immediate: 0),
    ]

    @Test func robustnessPrologueIsAccepted() throws {
        _ = try BPFVerifier.verify(instructions: Self.prologue + [BPFInstruction(opcode: 0x95)])
    }

    @Test func randomProgramsNeverCrashTheVerifier() {
        var rng = SeededGenerator(state: 0x9e37_79b9_7f4a_7c15)
        let classes: [UInt8] = [0x04, 0x07, 0x05, 0x06, 0x61, 0x69, 0x71, 0x79, 0x62, 0x7a, 0x63, 0x7b, 0xdb, 0xc3]
        var accepted = 0
        var refused = 0
        for _ in 0..<4000 {
            let length = Int.random(in: 1...16, using: &rng)
            // a prologue that initialises every register, so random bodies get past the first read
            var program = RobustnessTests.prologue
            for _ in 0..<length {
                let base = classes.randomElement(using: &rng)!
                let opcode: UInt8
                if base == 0x04 || base == 0x07 || base == 0x05 || base == 0x06 {
                    opcode = base | (UInt8.random(in: 0...13, using: &rng) << 4) | (Bool.random(using: &rng) ? 0x08 : 0)
                } else {
                    opcode = base
                }
                let imm: Int32 = Bool.random(using: &rng) ? Int32.random(in: -64...64, using: &rng) : Int32.random(in: .min ... .max, using: &rng)
                program.append(BPFInstruction(
                    opcode: opcode, dst: UInt8.random(in: 0...10, using: &rng), src: UInt8.random(in: 0...10, using: &rng),
                    offset: Int16.random(in: -16...16, using: &rng), immediate: imm))
            }
            program.append(BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.exit))
            do {
                _ = try BPFVerifier.verify(
                    instructions: program, maps: [counterMap], limits: VerifierLimits(maxInstructionsProcessed: 20_000))
                accepted += 1
            } catch {
                refused += 1
                #expect(!error.description.isEmpty)
            }
        }
        #expect(accepted + refused == 4000)
        #expect(refused > 0)
        #expect(accepted > 0)
    }
}
