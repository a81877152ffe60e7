// Relations carried through a bound clamped to the packet length (`end = min(end, len)`), and
// stack writes at a bounded variable offset (`array[i & 7] = v`), as in examples/bpf/p0f.c.
import OkoBPF
import Testing

@testable import OkoVerifier

/// r2 = min(pkt[0], len) (when `clampRight`), or a wrong "clamp" that keeps the larger value.
private func emitEnd(_ b: inout ProgramBuilder, clampRight: Bool) {
    b.jump(BPFOpcode.jlt, 2, imm: 2, to: "out")
    b.ldx(.b, 3, 1, 0)  // end candidate 0...255
    b.jump(clampRight ? BPFOpcode.jgt : BPFOpcode.jlt, 3, src: 2, to: "clamped")
    b.mov(2, reg: 3)
    b.label("clamped")
}

/// r4 = pkt[1] & 31 (a variable offset); r6 = pkt + r4
private func emitOffset(_ b: inout ProgramBuilder) {
    b.ldx(.b, 4, 1, 1)
    b.alu(BPFOpcode.and, 4, imm: 31)
    b.mov(5, reg: 4)
    b.mov(6, reg: 1)
    b.add(6, reg: 4)
}

/// r7 = pkt[0] & mask, after a length check
private func emitVariableIndex(_ b: inout ProgramBuilder, mask: Int32) {
    b.jump(BPFOpcode.jlt, 2, imm: 1, to: "out")
    b.ldx(.b, 7, 1, 0)
    b.alu(BPFOpcode.and, 7, imm: mask)
}

@Suite struct ClampedBoundAndVariableStackWriteTests {
    @Test func offsetBelowALengthClampedBoundProvesTheRead() throws {
        let p = build { b in
            emitEnd(&b, clampRight: true)
            emitOffset(&b)
            b.add(5, 1)
            b.jump(BPFOpcode.jgt, 5, src: 2, to: "out")  // offset + 1 > end
            b.ldx(.b, 0, 6, 0)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        _ = try verify(p)
    }

    @Test func boundClampedTheWrongWayProvesNothing() {
        // end = max(pkt[0], len): on the path where end = pkt[0] it may exceed len
        let p = build { b in
            emitEnd(&b, clampRight: false)
            emitOffset(&b)
            b.add(5, 1)
            b.jump(BPFOpcode.jgt, 5, src: 2, to: "out")
            b.ldx(.b, 0, 6, 0)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        #expect(isPacketOutOfBounds(refusal(p)))
    }

    @Test func offsetUpToTheClampedBoundDoesNotProveTheByteAtIt() {
        // offset <= end <= len leaves pkt[offset] possibly one past the end
        let p = build { b in
            emitEnd(&b, clampRight: true)
            emitOffset(&b)
            b.jump(BPFOpcode.jgt, 5, src: 2, to: "out")
            b.ldx(.b, 0, 6, 0)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        #expect(isPacketOutOfBounds(refusal(p)))
    }

    @Test func variableOffsetWriteIntoInitialisedStackIsAccepted() throws {
        let p = build { b in
            b.st(.dw, 10, -8, imm: 0)
            b.st(.dw, 10, -16, imm: 0)
            emitVariableIndex(&b, mask: 7)
            b.mov(6, reg: 10)
            b.add(6, -16)
            b.add(6, reg: 7)
            b.stx(.b, 6, 6, 7)  // r6[6 + (0...7)] = r7: inside -10...-3
            b.ldx(.dw, 0, 10, -16)
            b.ldx(.dw, 3, 10, -8)
            b.add(0, reg: 3)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        _ = try verify(p)
    }

    @Test func variableOffsetWriteThatCanLeaveTheFrameIsRefused() {
        let p = build { b in
            b.st(.dw, 10, -8, imm: 0)
            emitVariableIndex(&b, mask: 15)
            b.mov(6, reg: 10)
            b.add(6, -8)
            b.add(6, reg: 7)
            b.stx(.b, 6, 0, 7)  // -8...+7: above r10
            b.ret(0)
            b.label("out")
            b.ret(0)
        }
        if case .stackOutOfBounds = refusal(p)?.reason {} else { Issue.record("write above r10 accepted") }
    }

    @Test func variableOffsetWriteDoesNotInitialiseBytes() {
        let p = build { b in
            emitVariableIndex(&b, mask: 7)
            b.mov(6, reg: 10)
            b.add(6, -8)
            b.add(6, reg: 7)
            b.stx(.b, 6, 0, 7)
            b.ldx(.b, 0, 10, -8)  // maybe never written
            b.exit()
            b.label("out")
            b.ret(0)
        }
        if case .uninitialisedStackRead = refusal(p)?.reason {} else { Issue.record("possibly unwritten byte read") }
    }

    @Test func variableOffsetWriteOverASpilledPointerInvalidatesIt() {
        let p = build { b in
            b.stx(.dw, 10, -8, 1)  // spill the packet pointer
            b.st(.dw, 10, -16, imm: 0)
            emitVariableIndex(&b, mask: 15)
            b.mov(6, reg: 10)
            b.add(6, -16)
            b.add(6, reg: 7)
            b.stx(.b, 6, 0, 7)  // may overwrite a byte of the spilled pointer
            b.ldx(.dw, 1, 10, -8)
            b.ldx(.b, 0, 1, 0)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        let reason = refusal(p)?.reason
        if case .uninitialisedStackRead = reason {} else { Issue.record("clobbered spilled pointer reused: \(String(describing: reason))") }
    }

    @Test func pointerStoredAtAVariableStackOffsetIsRefused() {
        let p = build { b in
            b.st(.dw, 10, -8, imm: 0)
            b.st(.dw, 10, -16, imm: 0)
            emitVariableIndex(&b, mask: 7)
            b.mov(6, reg: 10)
            b.add(6, -16)
            b.add(6, reg: 7)
            b.stx(.dw, 6, 0, 1)
            b.ret(0)
            b.label("out")
            b.ret(0)
        }
        if case .pointerLeak = refusal(p)?.reason {} else { Issue.record("pointer stored at a variable offset") }
    }

    /// clang 21's p0f: `w5 = w7; w5 &= 255; if w5 < 8` and later `r7 &= 255` indexes the stack.
    private func maskedIndexProgram(checkedMask: Int32) -> [BPFInstruction] {
        build { b in
            b.st(.dw, 10, -8, imm: 0)
            b.st(.dw, 10, -16, imm: 0)
            emitVariableIndex(&b, mask: 255)
            b.add(7, 1)  // 1...256
            b.alu(BPFOpcode.mov, 5, src: 7, is64: false)
            b.alu(BPFOpcode.and, 5, imm: checkedMask, is64: false)
            b.jump(BPFOpcode.jge, 5, imm: 8, to: "out", is32: true)
            b.alu(BPFOpcode.and, 7, imm: 255)
            b.mov(6, reg: 10)
            b.add(6, -16)
            b.add(6, reg: 7)
            b.stx(.b, 6, 0, 7)
            b.ret(0)
            b.label("out")
            b.ret(0)
        }
    }

    @Test func boundOnAMaskedCopyBoundsTheSameMaskOfTheOriginal() throws {
        _ = try verify(maskedIndexProgram(checkedMask: 255))
    }

    @Test func boundOnANarrowerMaskLeavesTheOtherBitsUnknown() {
        // (x & 15) < 8 says nothing about bits 4...7 of x: x & 255 may reach 247
        if case .stackOutOfBounds = refusal(maskedIndexProgram(checkedMask: 15))?.reason {} else {
            Issue.record("index bounded only by a narrower mask accepted")
        }
    }
}
