// Programs the verifier must refuse, each for the stated reason.
import OkoBPF
import Testing

@testable import OkoVerifier

func refusal(_ program: [BPFInstruction], maps: [VerifierMapDescription] = [], limits: VerifierLimits = VerifierLimits()) -> VerificationError? {
    do {
        _ = try verify(program, maps: maps, limits: limits)
        return nil
    } catch {
        return error
    }
}

func isPacketOutOfBounds(_ e: VerificationError?) -> Bool {
    if case .packetAccessOutOfBounds = e?.reason { return true }
    return false
}

/// key = 0 on the stack, r0 = lookup(map 0, &key)
func emitLookup(_ b: inout ProgramBuilder) {
    b.st(.w, 10, -4, imm: 0)
    b.mov(2, reg: 10)
    b.add(2, -4)
    b.loadMap(1, 0)
    b.call(1)
}

@Suite struct UnsafeProgramTests {
    @Test func readWithoutLengthCheckIsRefused() {
        let p = build { b in
            b.ldx(.h, 0, 1, 12)
            b.exit()
        }
        let e = refusal(p)
        #expect(isPacketOutOfBounds(e))
        #expect(e?.instructionIndex == 0)
        #expect(e?.instructionText == "ldxh %r0, [%r1+12]")
    }

    @Test func lengthCheckedOnOnePathOnlyIsRefusedWithThatPath() {
        let p = build { b in
            b.mov(6, reg: 1)
            b.mov(7, reg: 2)
            b.call(7)
            b.jump(BPFOpcode.jeq, 0, imm: 0, to: "unchecked")
            b.jump(BPFOpcode.jlt, 7, imm: 14, to: "out")
            b.label("unchecked")
            b.ldx(.h, 0, 6, 12)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        let e = refusal(p)
        #expect(isPacketOutOfBounds(e))
        #expect(e?.instructionIndex == 5)
        #expect(e?.path.contains(VerifierPathStep(instruction: 3, taken: true)) == true)
        #expect(e?.description.contains("path:") == true)
    }

    @Test func offByOneLengthCheckIsRefused() {
        let p = build { b in
            b.jump(BPFOpcode.jlt, 2, imm: 13, to: "out")
            b.ldx(.h, 0, 1, 12)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        #expect(isPacketOutOfBounds(refusal(p)))
    }

    @Test func upperBoundOnLengthDoesNotProveAReadable() {
        // Oko's original bug: `if (len > 100000) return 0;` proves nothing about pkt[3000]
        let p = build { b in
            b.jump(BPFOpcode.jgt, 2, imm: 100_000, to: "out")
            b.ldx(.b, 0, 1, 3000)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        #expect(isPacketOutOfBounds(refusal(p)))
        let signed = build { b in
            b.jump(BPFOpcode.jsgt, 2, imm: 100_000, to: "out")
            b.ldx(.b, 0, 1, 3000)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        #expect(isPacketOutOfBounds(refusal(signed)))
    }

    @Test func unsignedCheckOnWrappedLengthDifferenceIsRefused() {
        // d = len - 100 wraps when len < 100, so `d > 34` does not mean len > 134
        let p = build { b in
            b.mov(3, reg: 2)
            b.add(3, -100)
            b.jump(BPFOpcode.jle, 3, imm: 34, to: "out")
            b.ldx(.b, 0, 1, 120)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        #expect(isPacketOutOfBounds(refusal(p)))
    }

    @Test func variableHeaderCheckedTooShortIsRefused() {
        // checks len >= hlen + 17 but reads 4 bytes at 14 + hlen + 0: needs hlen + 18
        let p = build { b in
            emitIHL(&b)
            b.mov(4, reg: 3)
            b.add(4, 17)
            b.jump(BPFOpcode.jlt, 2, src: 4, to: "out")
            b.add(1, reg: 3)
            b.ldx(.w, 0, 1, 14)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        #expect(isPacketOutOfBounds(refusal(p)))
    }

    @Test func endPointerCheckTooShortIsRefused() {
        let p = build { b in
            b.mov(3, reg: 1)
            b.add(3, reg: 2)
            b.mov(4, reg: 1)
            b.add(4, 20)
            b.jump(BPFOpcode.jgt, 4, src: 3, to: "out")
            b.ldx(.w, 0, 1, 17)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        #expect(isPacketOutOfBounds(refusal(p)))
    }

    @Test func uncheckedLookupResultIsRefused() {
        let p = build { b in
            emitLookup(&b)
            b.ldx(.dw, 0, 0, 0)
            b.exit()
        }
        let e = refusal(p, maps: [counterMap])
        #expect(e?.reason == .possiblyNullMapValue(register: 0))
    }

    @Test func uninitialisedStackReadIsRefused() {
        let direct = build { b in
            b.ldx(.dw, 0, 10, -8)
            b.exit()
        }
        #expect(refusal(direct)?.reason == .uninitialisedStackRead(offset: -8, size: 8))
        let key = build { b in
            b.mov(2, reg: 10)
            b.add(2, -4)
            b.loadMap(1, 0)
            b.call(1)
            b.ret(0)
        }
        if case .uninitialisedStackRead = refusal(key, maps: [counterMap])?.reason {} else {
            Issue.record("uninitialised key accepted")
        }
    }

    @Test func outOfBoundsStackAccessIsRefused() {
        let below = build { b in
            b.st(.dw, 10, -520, imm: 0)
            b.ret(0)
        }
        #expect(refusal(below)?.reason == .stackOutOfBounds(offset: -520, size: 8))
        let above = build { b in
            b.st(.w, 10, -2, imm: 0)
            b.ret(0)
        }
        if case .stackOutOfBounds = refusal(above)?.reason {} else { Issue.record("write above r10 accepted") }
    }

    @Test func outOfBoundsMapValueAccessIsRefused() {
        let p = build { b in
            emitLookup(&b)
            b.jump(BPFOpcode.jeq, 0, imm: 0, to: "out")
            b.ldx(.w, 0, 0, 6)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        #expect(refusal(p, maps: [counterMap])?.reason == .mapValueOutOfBounds(offset: 6...6, size: 4, valueSize: 8))
    }

    @Test func packetWriteIsRefused() {
        let p = build { b in
            b.jump(BPFOpcode.jlt, 2, imm: 14, to: "out")
            b.st(.b, 1, 0, imm: 0xff)
            b.label("out")
            b.ret(0)
        }
        #expect(refusal(p)?.reason == .packetWrite)
    }

    @Test func unboundedLoopRunsOutOfBudgetNamingTheBackEdge() {
        let p = build { b in
            b.mov(3, 0)
            b.label("loop")
            b.add(3, 1)
            b.jump(BPFOpcode.jne, 3, imm: 0, to: "loop")
            b.ret(0)
        }
        let e = refusal(p, limits: VerifierLimits(maxInstructionsProcessed: 20_000))
        #expect(e?.reason == .tooComplex(processed: 20_000, backEdge: BackEdge(from: 2, to: 1)))
        #expect(e?.description.contains("2 -> 1") == true)
    }

    @Test func unboundedLoopUnderTheDefaultBudgetIsRefused() {
        let p = build { b in
            b.mov(3, 0)
            b.label("loop")
            b.add(3, 1)
            b.jump(BPFOpcode.jne, 3, imm: 0, to: "loop")
            b.ret(0)
        }
        let e = refusal(p)
        switch e?.reason {
        case .tooComplex(let processed, _): #expect(processed == 1_000_000)
        case .tooManyStates: break
        default: Issue.record("unbounded loop not refused as too complex: \(String(describing: e))")
        }
    }

    @Test func loopWithoutProgressIsAnInfiniteLoop() {
        let p = build { b in
            b.mov(0, 0)
            b.label("spin")
            b.ja("spin")
        }
        if case .infiniteLoop(_, let to) = refusal(p)?.reason { #expect(to == 1) } else {
            Issue.record("self loop not refused as infinite")
        }
    }

    @Test func unknownHelperIsRefused() {
        let p = build { b in
            b.call(999)
            b.exit()
        }
        #expect(refusal(p)?.reason == .unknownHelper(id: 999))
    }

    @Test func pointerStoredIntoMapValueIsALeak() {
        let p = build { b in
            b.mov(6, reg: 1)
            emitLookup(&b)
            b.jump(BPFOpcode.jeq, 0, imm: 0, to: "out")
            b.stx(.dw, 0, 0, 6)
            b.label("out")
            b.ret(0)
        }
        if case .pointerLeak = refusal(p, maps: [counterMap])?.reason {} else { Issue.record("pointer leak accepted") }
    }

    @Test func wrongHelperArgumentTypeIsRefused() {
        let p = build { b in
            b.st(.w, 10, -4, imm: 0)
            b.mov(2, reg: 10)
            b.add(2, -4)
            b.mov(1, 0)  // a scalar where the map pointer belongs
            b.call(1)
            b.ret(0)
        }
        if case .helperArgument(let helper, let argument, _) = refusal(p, maps: [counterMap])?.reason {
            #expect(helper == "map_lookup_elem")
            #expect(argument == 1)
        } else {
            Issue.record("scalar accepted as map pointer")
        }
        let pointerAsScalar = build { b in
            b.mov(1, reg: 10)
            b.add(1, -8)
            b.st(.dw, 10, -8, imm: 0)
            b.mov(2, 8)
            b.mov(3, reg: 10)  // pointer passed where printk wants a scalar
            b.call(6)
            b.ret(0)
        }
        if case .helperArgument(_, let argument, _) = refusal(pointerAsScalar)?.reason { #expect(argument == 3) } else {
            Issue.record("pointer accepted as printk scalar")
        }
    }

    @Test func uninitialisedReturnValueIsRefused() {
        let p = build { b in b.exit() }
        if case .invalidReturnValue = refusal(p)?.reason {} else { Issue.record("uninitialised r0 accepted") }
        let pointer = build { b in
            b.mov(0, reg: 1)
            b.exit()
        }
        if case .invalidReturnValue = refusal(pointer)?.reason {} else { Issue.record("pointer returned") }
    }

    @Test func jumpOutOfRangeIsRefused() {
        let p = [
            BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.ja, offset: 100),
            BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.exit),
        ]
        #expect(refusal(p)?.reason == .jumpOutOfRange(target: 101))
        #expect(refusal(p)?.instructionIndex == 0)
    }

    @Test func fallingOffTheEndIsRefused() {
        let p = build { b in b.mov(0, 0) }
        #expect(refusal(p)?.reason == .fallsOffEnd)
    }

    @Test func pointerMultiplicationAndDivisionAreRefused() {
        let mul = build { b in
            b.alu(BPFOpcode.mul, 1, imm: 2)
            b.ret(0)
        }
        #expect(refusal(mul)?.reason == .prohibitedPointerArithmetic("multiplication of a pointer"))
        let div = build { b in
            b.mov(3, reg: 10)
            b.alu(BPFOpcode.div, 3, imm: 2)
            b.ret(0)
        }
        #expect(refusal(div)?.reason == .prohibitedPointerArithmetic("division of a pointer"))
    }

    @Test func pointerComparedWithScalarIsRefused() {
        let p = build { b in
            b.jump(BPFOpcode.jgt, 1, imm: 5, to: "out")
            b.label("out")
            b.ret(0)
        }
        if case .pointerComparison = refusal(p)?.reason {} else { Issue.record("pointer comparison accepted") }
    }

    @Test func readOnlyDataWriteIsRefused() {
        let p = build { b in
            b.loadMapValue(3, 0, offset: 0)
            b.st(.w, 3, 0, imm: 1)
            b.ret(0)
        }
        #expect(refusal(p, maps: [rodata])?.reason == .readOnlyMapWrite)
    }

    @Test func unboundedRecursionExceedsCallDepth() {
        let p = build { b in
            b.label("f")
            b.callLocal("f")
            b.exit()
        }
        #expect(refusal(p)?.reason == .callDepthExceeded(limit: 8))
    }

    @Test func uninitialisedRegisterReadIsRefused() {
        let p = build { b in
            b.mov(0, reg: 5)
            b.exit()
        }
        #expect(refusal(p)?.reason == .uninitialisedRegister(5))
    }

    @Test func clobberedArgumentRegistersAfterCallAreRefused() {
        let p = build { b in
            b.call(5)
            b.mov(0, reg: 1)
            b.exit()
        }
        #expect(refusal(p)?.reason == .uninitialisedRegister(1))
    }

    @Test func partialReadOfSpilledPointerIsRefused() {
        let p = build { b in
            b.stx(.dw, 10, -8, 1)
            b.ldx(.w, 0, 10, -8)
            b.exit()
        }
        if case .pointerLeak = refusal(p)?.reason {} else { Issue.record("partial pointer read accepted") }
    }

    @Test func framePointerIsReadOnly() {
        let p = build { b in
            b.add(10, 8)
            b.ret(0)
        }
        #expect(refusal(p)?.reason == .framePointerWrite)
    }

    @Test func pruningKeepsManySequentialBranchesCheap() {
        // 20 sequential unknown branches: 2^20 paths without pruning, a few hundred states with it
        let p = build { b in
            b.mov(7, 0)
            for i in 0..<20 {
                b.call(7)
                b.jump(BPFOpcode.jset, 0, imm: Int32(1 << i), to: "l\(i)")
                b.add(7, 1)
                b.label("l\(i)")
            }
            b.ret(0)
        }
        let stats = try? verify(p)
        #expect(stats != nil)
        #expect((stats?.instructionsProcessed ?? .max) < 10_000)
    }
}

@Suite struct MalformedProgramTests {
    @Test func emptyProgramIsRefused() {
        #expect(refusal([])?.reason == .emptyProgram)
    }

    @Test func invalidRegisterIsRefused() {
        let p = [BPFInstruction(opcode: BPFOpcode.classALU64 | BPFOpcode.mov, dst: 11, immediate: 0)]
        #expect(refusal(p)?.reason == .invalidRegister(11))
    }

    @Test func jumpIntoTheMiddleOfLddwIsRefused() {
        let p = build { b in
            b.ja("next")
            b.label("next")
            b.lddw(0, 0x1_0000_0000)
            b.exit()
        }
        var broken = p
        broken[0].offset = 1  // lands on the second lddw slot
        #expect(refusal(broken)?.reason == .jumpOutOfRange(target: 2))
    }

    @Test func invalidSignExtensionWidthIsRefusedWithoutCrashing() {
        let p = [
            BPFInstruction(opcode: BPFOpcode.classALU64 | BPFOpcode.mov | BPFOpcode.sourceX, dst: 0, src: 2, offset: 99),
            BPFInstruction(opcode: BPFOpcode.classJMP | BPFOpcode.exit),
        ]
        if case .invalidInstruction = refusal(p)?.reason {} else { Issue.record("movsx width 99 accepted") }
    }

    @Test func extremeConstantArithmeticDoesNotCrash() throws {
        let p = build { b in
            b.mov(3, reg: 2)
            b.lddw(4, 0x8000_0000_0000_0000)
            b.add(3, reg: 4)
            b.ret(0)
        }
        _ = try verify(p)
    }

    @Test func comparingLengthWithExtremeConstantsDoesNotCrash() {
        let p = build { b in
            b.mov(3, reg: 2)
            b.add(3, -100)
            b.lddw(4, 0x7fff_ffff_ffff_ffff)
            b.jump(BPFOpcode.jsgt, 4, src: 3, to: "out")
            b.jump(BPFOpcode.jslt, 3, src: 4, to: "out")
            b.label("out")
            b.ldx(.b, 0, 1, 0)
            b.exit()
        }
        #expect(isPacketOutOfBounds(refusal(p)))
    }

    @Test func unknownMapReferenceIsRefused() {
        let p = build { b in
            b.loadMap(1, 3)
            b.ret(0)
        }
        #expect(refusal(p, maps: [counterMap])?.reason == .unknownMap(index: 3))
    }
}
