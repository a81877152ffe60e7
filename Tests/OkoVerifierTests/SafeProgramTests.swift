// Programs shaped like clang -O2 output that the verifier must accept.
import OkoBPF
import Testing

@testable import OkoVerifier

let counterMap = VerifierMapDescription(name: "counters", type: BPFMapType.array, keySize: 4, valueSize: 8, maxEntries: 16)
let rodata = VerifierMapDescription(name: ".rodata", type: BPFMapType.array, keySize: 4, valueSize: 16, maxEntries: 1, readOnly: true)
let dataSection = VerifierMapDescription(name: ".data", type: BPFMapType.array, keySize: 4, valueSize: 16, maxEntries: 1)

func verify(_ program: [BPFInstruction], maps: [VerifierMapDescription] = [], limits: VerifierLimits = VerifierLimits()) throws(VerificationError) -> VerifierStatistics {
    try BPFVerifier.verify(instructions: program, maps: maps, helpers: .standard, limits: limits)
}

/// Emits the IPv4 variable-header parser: r3 = ihl * 4 (after a 34-byte check).
func emitIHL(_ b: inout ProgramBuilder) {
    b.jump(BPFOpcode.jlt, 2, imm: 34, to: "out")
    b.ldx(.b, 3, 1, 14)
    b.alu(BPFOpcode.and, 3, imm: 0x0f)
    b.alu(BPFOpcode.lsh, 3, imm: 2)
}

@Suite struct SafeProgramTests {
    @Test func ethertypeReadAfterLengthCheckIsAccepted() throws {
        let p = build { b in
            b.jump(BPFOpcode.jlt, 2, imm: 14, to: "out")
            b.ldx(.h, 0, 1, 12)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        let stats = try verify(p)
        #expect(stats.instructionsProcessed >= 5)
    }

    @Test func signedLengthCheckIsAccepted() throws {
        let p = build { b in
            b.jump(BPFOpcode.jslt, 2, imm: 34, to: "out")
            b.ldx(.b, 0, 1, 33)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        _ = try verify(p)
    }

    @Test func thirtyTwoBitLengthCheckIsAccepted() throws {
        let p = build { b in
            b.jump(BPFOpcode.jle, 2, imm: 19, to: "out", is32: true)
            b.ldx(.w, 0, 1, 16)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        _ = try verify(p)
    }

    @Test func packetEndPointerCheckIsAccepted() throws {
        let p = build { b in
            b.mov(3, reg: 1)
            b.add(3, reg: 2)  // data_end
            b.mov(4, reg: 1)
            b.add(4, 34)
            b.jump(BPFOpcode.jgt, 4, src: 3, to: "out")
            b.ldx(.b, 0, 1, 23)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        _ = try verify(p)
    }

    @Test func variableIPHeaderWithLengthScalarCheckIsAccepted() throws {
        // hlen = ihl*4; if (len < hlen + 22) return 0; return udp->dest (at 14 + hlen + 2)
        let p = build { b in
            emitIHL(&b)
            b.mov(4, reg: 3)
            b.add(4, 22)
            b.jump(BPFOpcode.jlt, 2, src: 4, to: "out")
            b.add(1, reg: 3)
            b.ldx(.h, 0, 1, 16)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        _ = try verify(p)
    }

    @Test func variableIPHeaderWithEndPointerCheckIsAccepted() throws {
        let p = build { b in
            b.mov(5, reg: 1)
            b.add(5, reg: 2)
            emitIHL(&b)
            b.mov(4, reg: 1)
            b.add(4, 14)
            b.add(4, reg: 3)  // udp = ip + hlen
            b.mov(6, reg: 4)
            b.add(6, 8)
            b.jump(BPFOpcode.jgt, 6, src: 5, to: "out")
            b.ldx(.h, 0, 4, 2)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        _ = try verify(p)
    }

    @Test func mapCounterWithNullCheckIsAccepted() throws {
        let p = build { b in
            b.st(.w, 10, -4, imm: 0)
            b.mov(2, reg: 10)
            b.add(2, -4)
            b.loadMap(1, 0)
            b.call(1)
            b.jump(BPFOpcode.jeq, 0, imm: 0, to: "out")
            b.mov(1, 1)
            b.atomicAdd(.dw, 0, 0, 1)
            b.ldx(.dw, 0, 0, 0)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        _ = try verify(p, maps: [counterMap])
    }

    @Test func mapUpdateFromStackIsAccepted() throws {
        let p = build { b in
            b.st(.w, 10, -4, imm: 7)
            b.st(.dw, 10, -16, imm: 1)
            b.mov(2, reg: 10)
            b.add(2, -4)
            b.mov(3, reg: 10)
            b.add(3, -16)
            b.mov(4, 0)
            b.loadMap(1, 0)
            b.call(2)
            b.exit()
        }
        _ = try verify(p, maps: [counterMap])
    }

    @Test func boundedLoopIsAcceptedAndCounted() throws {
        let p = build { b in
            b.mov(0, 0)
            b.mov(3, 0)
            b.label("loop")
            b.add(0, reg: 3)
            b.add(3, 1)
            b.jump(BPFOpcode.jlt, 3, imm: 10, to: "loop")
            b.exit()
        }
        let stats = try verify(p)
        #expect(stats.loops == 1)
        #expect(stats.backEdgesTaken == 9)
    }

    @Test func loopReadingCheckedPacketBytesIsAccepted() throws {
        // for (i = 0; i < 8 && i < len; i++) sum += pkt[i]  (pointer form)
        let p = build { b in
            b.mov(5, reg: 1)
            b.add(5, reg: 2)
            b.mov(0, 0)
            b.mov(3, 0)
            b.label("loop")
            b.mov(4, reg: 1)
            b.add(4, reg: 3)
            b.mov(6, reg: 4)
            b.add(6, 1)
            b.jump(BPFOpcode.jgt, 6, src: 5, to: "out")
            b.ldx(.b, 6, 4, 0)
            b.add(0, reg: 6)
            b.add(3, 1)
            b.jump(BPFOpcode.jlt, 3, imm: 8, to: "loop")
            b.label("out")
            b.exit()
        }
        _ = try verify(p)
    }

    @Test func bpfToBpfCallWithStackArgumentIsAccepted() throws {
        let p = build { b in
            b.st(.dw, 10, -8, imm: 5)
            b.mov(1, reg: 10)
            b.add(1, -8)
            b.callLocal("sub")
            b.add(0, 1)
            b.exit()
            b.label("sub")
            b.ldx(.dw, 0, 1, 0)
            b.st(.dw, 10, -16, imm: 1)
            b.ldx(.dw, 2, 10, -16)
            b.add(0, reg: 2)
            b.exit()
        }
        let stats = try verify(p)
        #expect(stats.maxCallDepth == 2)
        #expect(stats.maxStackDepth == 24)
    }

    @Test func globalDataReadsAreAccepted() throws {
        let p = build { b in
            b.loadMapValue(3, 0, offset: 4)
            b.ldx(.w, 0, 3, 0)
            b.loadMapValue(4, 1, offset: 0)
            b.stx(.dw, 4, 8, 0)
            b.exit()
        }
        _ = try verify(p, maps: [rodata, dataSection])
    }

    @Test func divisionByPossiblyZeroRegisterIsAccepted() throws {
        let p = build { b in
            b.call(7)
            b.mov(3, 100)
            b.alu(BPFOpcode.div, 3, src: 0)
            b.alu(BPFOpcode.mod, 3, src: 0)
            b.mov(0, reg: 3)
            b.exit()
        }
        _ = try verify(p)
    }

    @Test func copiedLookupResultIsNullCheckedThroughItsCopy() throws {
        let p = build { b in
            b.st(.w, 10, -4, imm: 1)
            b.mov(2, reg: 10)
            b.add(2, -4)
            b.loadMap(1, 0)
            b.call(1)
            b.mov(6, reg: 0)
            b.jump(BPFOpcode.jne, 0, imm: 0, to: "found")
            b.ret(0)
            b.label("found")
            b.ldx(.dw, 0, 6, 0)
            b.exit()
        }
        _ = try verify(p, maps: [counterMap])
    }

    @Test func diamondPathsArePruned() throws {
        // two independent branches that rejoin: the second arrival at each join point is pruned
        let p = build { b in
            b.call(7)
            b.mov(6, reg: 0)
            b.mov(3, 0)
            b.jump(BPFOpcode.jeq, 6, imm: 1, to: "a")
            b.mov(4, 1)
            b.label("a")
            b.jump(BPFOpcode.jeq, 6, imm: 2, to: "b")
            b.mov(4, 2)
            b.label("b")
            b.jump(BPFOpcode.jeq, 6, imm: 3, to: "c")
            b.mov(4, 3)
            b.label("c")
            b.ret(0)
        }
        let stats = try verify(p)
        #expect(stats.statesPruned > 0)
        #expect(stats.statesStored > 0)
    }

    @Test func queueHelpersAcceptStackBuffers() throws {
        let queue = VerifierMapDescription(name: "q", type: BPFMapType.queue, keySize: 0, valueSize: 8, maxEntries: 8)
        let p = build { b in
            b.loadMap(1, 0)
            b.mov(2, reg: 10)
            b.add(2, -8)
            b.call(88)  // pop into uninitialised stack: becomes initialised
            b.ldx(.dw, 0, 10, -8)
            b.exit()
        }
        _ = try verify(p, maps: [queue])
    }

    @Test func extraHelperRegisteredByCallerIsAccepted() throws {
        var helpers = HelperPrototypeTable.standard
        helpers.register(id: 0x1000, HelperPrototype(name: "oko_flow_hash", arguments: [.memory, .memorySize(allowZero: false)]))
        let p = build { b in
            b.jump(BPFOpcode.jlt, 2, imm: 20, to: "out")
            b.mov(2, 20)
            b.call(0x1000)
            b.exit()
            b.label("out")
            b.ret(0)
        }
        _ = try BPFVerifier.verify(instructions: p, helpers: helpers)
    }
}
