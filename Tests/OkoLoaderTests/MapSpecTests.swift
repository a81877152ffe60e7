import OkoBPF
import OkoLoader
import Testing

@Suite("Map specs")
struct MapSpecTests {
    @Test("libbpf BTF-defined maps give type, sizes, entries, flags and BTF ids", arguments: TestPrograms.compilers)
    func btfDefinedMaps(compiler: TestPrograms.Compiler) throws {
        let object = try TestPrograms.load("map_counter", with: compiler)
        let btf = try #require(object.btf)
        let flows = try #require(object.maps.first { $0.name == "flow_counts" })
        #expect(flows.type == .hash)
        #expect(flows.keySize == 8)
        #expect(flows.valueSize == 8)
        #expect(flows.maxEntries == 4096)
        #expect(flows.flags == 1)  // BPF_F_NO_PREALLOC
        #expect(flows.initialValue == nil)
        let keyType = try #require(flows.btfKeyTypeID)
        #expect(btf.typeName(keyType) == "struct flow_key")
        #expect(btf.typeName(try #require(flows.btfValueTypeID)) == "__u64")

        let totals = try #require(object.maps.first { $0.name == "totals" })
        #expect(totals.type == .array)
        #expect(totals.keySize == 4)
        #expect(totals.valueSize == 8)
        #expect(totals.maxEntries == 2)
        #expect(totals.btfKeyTypeID == nil)
    }

    @Test("legacy maps section definitions are read field by field", arguments: TestPrograms.compilers)
    func legacyMaps(compiler: TestPrograms.Compiler) throws {
        let object = try TestPrograms.load("legacy_maps", with: compiler)
        #expect(object.maps.count == 2)
        let blocked = object.maps[0]
        #expect(blocked.name == "blocked")
        #expect(blocked.type == .hash)
        #expect(blocked.keySize == 4)
        #expect(blocked.valueSize == 1)
        #expect(blocked.maxEntries == 1024)
        #expect(blocked.section == "maps")
        let hits = object.maps[1]
        #expect(hits.type == .array)
        #expect(hits.valueSize == 8)
        let program = try object.program()
        let loads = program.instructions.filter { $0.opcode == BPFOpcode.lddw }
        #expect(loads.map(\.immediate) == [0, 1])
        #expect(loads.allSatisfy { $0.src == BPFOpcode.pseudoMapFD })
    }

    @Test("global data sections become single-entry arrays holding the section bytes", arguments: TestPrograms.compilers)
    func globalDataMaps(compiler: TestPrograms.Compiler) throws {
        let object = try TestPrograms.load("global_data", with: compiler)
        let data = try #require(object.maps.first { $0.name == ".data" })
        #expect(data.type == .array)
        #expect(data.keySize == 4)
        #expect(data.maxEntries == 1)
        #expect(data.initialValue?.count == Int(data.valueSize))
        // threshold = 100 lies somewhere in .data as a little-endian int.
        #expect(data.initialValue.map { bytes in
            (0..<bytes.count - 3).contains { bytes[$0..<$0 + 4].elementsEqual([100, 0, 0, 0]) }
        } == true)
        let bss = try #require(object.maps.first { $0.name == ".bss" })
        #expect(bss.initialValue == [UInt8](repeating: 0, count: Int(bss.valueSize)))
        #expect(bss.valueSize >= 16)
        let rodata = try #require(object.maps.first { $0.name == ".rodata" })
        #expect(rodata.flags & MapSpec.flagReadOnlyProgram != 0)
        #expect(rodata.initialValue == [0xbb, 0x01, 0, 0])  // wanted_port = 443
        let btf = try #require(object.btf)
        #expect(btf.typeName(try #require(data.btfValueTypeID)) == "section .data")
    }
}
