import OkoLoader
import Testing

@Suite("Malformed and unsupported input")
struct MalformedInputTests {
    /// A small deterministic generator (SplitMix64) so failures can be reproduced.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    static func validObject() throws -> [UInt8] {
        let compiler = try #require(TestPrograms.compilers.first)
        return try TestPrograms.compile("map_counter", with: compiler)
    }

    /// Writes a little-endian integer of `width` bytes at `offset`.
    static func patch(_ bytes: inout [UInt8], at offset: Int, value: UInt64, width: Int) {
        for index in 0..<width { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> UInt64(index * 8)) }
    }

    static func readLE(_ bytes: [UInt8], at offset: Int, width: Int) -> UInt64 {
        (0..<width).reversed().reduce(0) { $0 << 8 | UInt64(bytes[offset + $1]) }
    }

    @Test("empty input, garbage and non-ELF files are refused as not ELF")
    func garbageIsNotELF() {
        #expect(throws: BPFLoaderError.notELF) { try BPFObjectFile(bytes: []) }
        #expect(throws: BPFLoaderError.notELF) { try BPFObjectFile(bytes: Array("#!/bin/sh\necho hi\n".utf8)) }
        var generator = SplitMix(state: 1)
        for length in [1, 3, 64, 1000] {
            let garbage = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(throws: BPFLoaderError.self) { try BPFObjectFile(bytes: garbage) }
        }
    }

    @Test("every truncation of a valid object is an error")
    func truncatedObjectsAreRefused() throws {
        let valid = try Self.validObject()
        _ = try BPFObjectFile(bytes: valid)
        for length in stride(from: 0, to: valid.count, by: valid.count < 4000 ? 1 : 3) {
            #expect(throws: BPFLoaderError.self, "prefix of \(length) bytes") { try BPFObjectFile(bytes: Array(valid.prefix(length))) }
        }
    }

    @Test("wrong machine, class, byte order and ELF type are named in the error")
    func wrongHeaderFields() throws {
        let valid = try Self.validObject()
        var x86 = valid
        Self.patch(&x86, at: 0x12, value: 62, width: 2)
        #expect(throws: BPFLoaderError.unsupportedELF("machine 62 is not EM_BPF (247)")) { try BPFObjectFile(bytes: x86) }
        var elf32 = valid
        elf32[4] = 1
        #expect(throws: BPFLoaderError.unsupportedELF("ELF class 1 is not ELFCLASS64")) { try BPFObjectFile(bytes: elf32) }
        var bigEndian = valid
        bigEndian[5] = 2
        #expect(throws: BPFLoaderError.self) { try BPFObjectFile(bytes: bigEndian) }
        var executable = valid
        Self.patch(&executable, at: 0x10, value: 2, width: 2)
        #expect(throws: BPFLoaderError.unsupportedELF("ELF type 2 is not a relocatable object (ET_REL)")) {
            try BPFObjectFile(bytes: executable)
        }
    }

    @Test("corrupted section headers give errors, not crashes")
    func corruptedSectionHeaders() throws {
        let valid = try Self.validObject()
        let tableOffset = Int(Self.readLE(valid, at: 0x28, width: 8))
        let count = Int(Self.readLE(valid, at: 0x3c, width: 2))
        var refused = 0
        for section in 1..<count {
            let header = tableOffset + section * 64
            // sh_offset far past the end, sh_size huge, sh_name outside the name table, sh_link bogus.
            for (field, width, value) in [(0x18, 8, UInt64(1) << 40), (0x20, 8, UInt64.max / 2), (0x00, 4, 0xffff_fff0), (0x28, 4, 0xffff)] {
                var corrupted = valid
                Self.patch(&corrupted, at: header + field, value: value, width: width)
                do {
                    _ = try BPFObjectFile(bytes: corrupted)
                } catch {
                    refused += 1
                }
            }
        }
        // Offsets and sizes past the end are refused for every section but NOBITS/NULL ones.
        #expect(refused >= count)
        var badTable = valid
        Self.patch(&badTable, at: 0x28, value: UInt64(valid.count - 10), width: 8)
        #expect(throws: BPFLoaderError.self) { try BPFObjectFile(bytes: badTable) }
        var badEntrySize = valid
        Self.patch(&badEntrySize, at: 0x3a, value: 40, width: 2)
        #expect(throws: BPFLoaderError.self) { try BPFObjectFile(bytes: badEntrySize) }
    }

    @Test("random bit flips in valid objects never crash the loader", arguments: ["map_counter", "global_data", "subprograms", "typed_values"])
    func bitFlippingNeverCrashes(program: String) throws {
        let compiler = try #require(TestPrograms.compilers.first)
        let valid = try TestPrograms.compile(program, with: compiler)
        var generator = SplitMix(state: UInt64(program.utf8.count))
        var errors = 0
        let rounds = 600
        for _ in 0..<rounds {
            var mutated = valid
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let bit = Int.random(in: 0..<valid.count * 8, using: &generator)
                mutated[bit / 8] ^= 1 << UInt8(bit % 8)
            }
            do {
                let object = try BPFObjectFile(bytes: mutated)
                // Whatever loads must be usable: render every map's initial value and key type.
                if let btf = object.btf {
                    for map in object.maps {
                        if let value = map.initialValue, let type = map.btfValueTypeID { _ = try? btf.render(value, as: type) }
                        if let type = map.btfKeyTypeID { _ = btf.describe(type) }
                    }
                }
            } catch {
                errors += 1
                #expect(!String(describing: error).isEmpty)
            }
        }
        // Most flips land in DWARF, which is not read; some must hit what is.
        #expect(errors > 0)
    }

    @Test("tail calls, kfuncs and CO-RE relocations are refused by name", arguments: TestPrograms.compilers)
    func unsupportedFeaturesAreNamed(compiler: TestPrograms.Compiler) throws {
        let expectations = [
            ("unsupported_tail_call", "tail calls"),
            ("unsupported_kfunc", "bpf_oko_missing"),
            ("unsupported_core", "CO-RE"),
            ("unsupported_data_pointer", "pointer-valued initialiser in .data"),
        ]
        for (program, phrase) in expectations {
            let bytes = try TestPrograms.compile(program, with: compiler)
            do {
                _ = try BPFObjectFile(bytes: bytes)
                Issue.record("\(program) loaded although it uses \(phrase)")
            } catch {
                #expect(String(describing: error).contains(phrase), "\(program): \(error)")
            }
        }
    }
}
