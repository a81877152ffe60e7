import Foundation
import OkoLoader
import OkoMaps
import OkoVerifier
import Testing

/// Unsafe C programs (Unsafe/*.c) must be refused by FilterProgram with the right reason.
struct FilterProgramSafetyTests {
    static let unsafeDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Unsafe")

    /// Program file -> the refusal it must get.
    static let expectations: [(String, String)] = [
        ("no-length-check", "packet bounds"),
        ("one-path-check", "packet bounds"),
        ("upper-bound-only", "packet bounds"),
        ("unchecked-lookup", "null map value"),
        ("uninitialised-stack", "uninitialised stack"),
        ("map-value-out-of-bounds", "map value bounds"),
        ("stack-out-of-bounds", "stack bounds"),
        ("packet-write", "packet write"),
        ("unbounded-loop", "loop"),
        ("unknown-helper", "unknown helper"),
        ("pointer-leak", "pointer leak"),
        ("helper-pointer-leak", "pointer leak"),
        ("rodata-write", "read-only write"),
        ("bloom-uninitialised-value", "uninitialised stack"),
    ]

    static func category(_ reason: VerificationError.Reason) -> String {
        switch reason {
        case .packetAccessOutOfBounds: "packet bounds"
        case .possiblyNullMapValue: "null map value"
        case .uninitialisedStackRead: "uninitialised stack"
        case .mapValueOutOfBounds: "map value bounds"
        case .stackOutOfBounds: "stack bounds"
        case .packetWrite: "packet write"
        case .tooComplex(_, let edge?): edge.from >= edge.to ? "loop" : "too complex"
        case .infiniteLoop: "loop"
        case .unknownHelper: "unknown helper"
        case .pointerLeak: "pointer leak"
        case .helperArgument(_, _, let problem) where problem.contains("pointer"): "pointer leak"
        case .readOnlyMapWrite: "read-only write"
        default: "other: \(reason)"
        }
    }

    @Test(arguments: expectations.map(\.0))
    func unsafeProgramIsRefusedWithItsReason(name: String) throws {
        let expected = Self.expectations.first { $0.0 == name }!.1
        for compiler in TestPrograms.compilers {
            let bytes = try TestPrograms.compile(name, with: compiler, directory: Self.unsafeDirectory)
            do {
                // The default budget (1M instructions) takes minutes on an unbounded loop in a debug
                // build (stored states grow with every iteration); a smaller budget gives the same refusal.
                let limits = name == "unbounded-loop" ? VerifierLimits(maxInstructionsProcessed: 20_000) : VerifierLimits()
                _ = try FilterProgram(objectBytes: bytes, limits: limits)
                Issue.record("\(name) (\(compiler)) was accepted")
            } catch {
                guard case .verification(let refusal) = error else {
                    Issue.record("\(name) (\(compiler)) refused for a non-verifier reason: \(error)")
                    continue
                }
                #expect(Self.category(refusal.reason) == expected, "\(name) (\(compiler)): \(refusal)")
                if expected != "loop" {
                    // The message names the instruction and its disassembly.
                    #expect(refusal.instructionIndex != nil && refusal.instructionText != nil)
                    #expect(error.description.contains("instruction \(refusal.instructionIndex ?? -1) ("))
                }
            }
        }
    }

    @Test func upperBoundOnLengthDoesNotProveTheReadAt3000() throws {
        let bytes = try TestPrograms.compile("upper-bound-only", with: TestPrograms.compilers[0], directory: Self.unsafeDirectory)
        #expect {
            _ = try FilterProgram(objectBytes: bytes)
        } throws: { error in
            guard case .verification(let refusal) = error as? FilterProgramError,
                case .packetAccessOutOfBounds(let offset, _, let proven) = refusal.reason
            else { return false }
            return offset.contains(3000) && proven < 3001
        }
    }

    @Test func malformedObjectIsALoaderError() {
        #expect {
            _ = try FilterProgram(objectBytes: Array("not an object".utf8))
        } throws: { error in
            guard case .loader(.notELF) = error as? FilterProgramError else { return false }
            return true
        }
    }
}

/// The JIT and the interpreter agree on every packet prefix and leave the same map contents.
struct FilterProgramEngineAgreementTests {
    static let packets: [[UInt8]] = {
        let inside: [UInt8] = [10, 0, 0, 5], outside: [UInt8] = [203, 0, 113, 9]
        var packets: [[UInt8]] = [
            TestPackets.tcp(source: inside, destination: outside, sourcePort: 40000, destinationPort: 80, flags: 0x02),
            TestPackets.tcp(source: outside, destination: inside, sourcePort: 80, destinationPort: 40000, flags: 0x12),
            TestPackets.tcp(source: inside, destination: outside, sourcePort: 40000, destinationPort: 80, flags: 0x18, payload: [1, 2, 3]),
            TestPackets.tcp(source: outside, destination: inside, sourcePort: 80, destinationPort: 40000, flags: 0x11, window: 0),
            TestPackets.dnsQuery(name: "Example.COM"),
            TestPackets.dnsQuery(name: String(repeating: "abcdefghij.", count: 14) + "com"),
            TestPackets.udp(source: [192, 0, 2, 1], destination: inside, sourcePort: 53, destinationPort: 53, payload: [0]),
            TestPackets.ethernet(type: 0x86DD, payload: [UInt8](repeating: 0x60, count: 40)),
        ]
        // Deterministic byte flips of the above, to reach odd header lengths and flags.
        var state: UInt64 = 0x1234_5678
        for base in packets {
            for _ in 0..<8 {
                var mutated = base
                for _ in 0..<3 {
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    let index = 14 + Int((state >> 33) % UInt64(max(1, mutated.count - 14)))
                    if index < mutated.count { mutated[index] = UInt8(truncatingIfNeeded: state >> 17) }
                }
                packets.append(mutated)
            }
        }
        return packets
    }()

    static let examples = ["stateless-firewall", "bloom-blocklist", "dns-filter", "stateful-firewall", "heavy-hitters", "rate-limiter", "tcp-diagnosis"]

    static func dump(_ program: FilterProgram) throws -> [String: [BPFMapEntry]] {
        var result: [String: [BPFMapEntry]] = [:]
        for map in program.maps where [.hash, .array, .lruHash].contains(map.map.definition.type) {
            result[map.spec.name] = try map.map.entries().sorted { $0.key.lexicographicallyPrecedes($1.key) }
        }
        return result
    }

    @Test(arguments: examples)
    func jitAndInterpreterAgreeOnEveryPrefix(name: String) throws {
        for compiler in TestPrograms.compilers {
            let bytes = try TestPrograms.compile(name, with: compiler, directory: TestPrograms.examplesDirectory)
            let jit = try FilterProgram(objectBytes: bytes)
            let interpreted = try FilterProgram(objectBytes: bytes)
            if name == "rate-limiter" {
                // 1 packet/s, burst 20: buckets drain within the test and (almost) never refill, so
                // the clock cannot make the two instances disagree.
                for program in [jit, interpreted] {
                    try program.map(named: "config")!.map.update(
                        key: [0, 0, 0, 0], value: TestPackets.littleEndian(1) + TestPackets.littleEndian(20))
                }
            }
            var mismatches = 0
            for packet in Self.packets {
                for length in stride(from: 0, through: packet.count, by: 1) {
                    let prefix = Array(packet.prefix(length))
                    let viaJIT = try jit.run(packet: prefix, engine: .jit)
                    let viaInterpreter = try interpreted.run(packet: prefix, engine: .interpreter)
                    if viaJIT != viaInterpreter { mismatches += 1 }
                }
            }
            #expect(mismatches == 0, "\(name) with \(compiler)")
            if name != "rate-limiter" {  // token refills depend on the clock
                #expect(try Self.dump(jit) == Self.dump(interpreted), "\(name) with \(compiler)")
            }
        }
    }
}
