import OkoLoader
import Testing

@Suite("BTF model and typed values")
struct BTFTests {
    @Test("a struct key renders as an object and encodes back to the same bytes", arguments: TestPrograms.compilers)
    func structKeyRoundTrip(compiler: TestPrograms.Compiler) throws {
        let object = try TestPrograms.load("map_counter", with: compiler)
        let btf = try #require(object.btf)
        let map = try #require(object.maps.first { $0.name == "flow_counts" })
        let keyType = try #require(map.btfKeyTypeID)
        // saddr 10.0.0.1 as the little-endian u32 167772161, dport 80, protocol 6.
        let bytes: [UInt8] = [0x01, 0x00, 0x00, 0x0a, 80, 0, 6, 0]
        let value = try btf.render(bytes, as: keyType)
        #expect(value.description == #"{"saddr": 167772161, "dport": 80, "protocol": 6, "flags": 0}"#)
        #expect(try btf.encode(value, as: keyType) == bytes)
        #expect(btf.describe(keyType) == "struct flow_key { __u32 saddr; __u16 dport; __u8 protocol; __u8 flags; } (8 bytes)")
        let partial = BTFValue.object([.init(name: "dport", value: .unsigned(443))])
        #expect(try btf.encode(partial, as: keyType) == [0, 0, 0, 0, 0xbb, 0x01, 0, 0])
        let counterType = try #require(map.btfValueTypeID)
        #expect(try btf.render(try btf.encode(.unsigned(.max), as: counterType), as: counterType) == .unsigned(.max))
        #expect(throws: BPFLoaderError.self) { try btf.encode(.signed(-5), as: counterType) }
    }

    @Test("nested structs, byte and char arrays, enums and bitfields render and encode", arguments: TestPrograms.compilers)
    func richTypes(compiler: TestPrograms.Compiler) throws {
        let object = try TestPrograms.load("typed_values", with: compiler)
        let btf = try #require(object.btf)
        let keyType = try #require(object.maps.first?.btfKeyTypeID)
        let size = try btf.size(of: keyType)
        let value = BTFValue.object([
            .init(name: "source", value: .object([.init(name: "address", value: .unsigned(0x0a00_0001)), .init(name: "port", value: .unsigned(8080))])),
            .init(name: "mac", value: .array([2, 0, 0, 0, 0, 1].map { .unsigned($0) })),
            .init(name: "name", value: .string("eth0")),
            .init(name: "verdict", value: .string("VERDICT_DROP")),
            .init(name: "delta", value: .signed(-3)),
            .init(name: "version", value: .unsigned(4)),
            .init(name: "header_length", value: .unsigned(5)),
            .init(name: "offset", value: .signed(-7)),
        ])
        let bytes = try btf.encode(value, as: keyType)
        #expect(bytes.count == size)
        #expect(Array(bytes[0..<4]) == [0x01, 0x00, 0x00, 0x0a])
        // mac follows struct endpoint, which is padded to 8 bytes.
        #expect(Array(bytes[8..<14]) == [2, 0, 0, 0, 0, 1])
        #expect(Array(bytes[14..<19]) == Array("eth0".utf8) + [0])
        let rendered = try btf.render(bytes, as: keyType)
        #expect(rendered == value)
        #expect(rendered["verdict"] == .string("VERDICT_DROP"))
        #expect(btf.describe(keyType).contains("unsigned int version : 4;"))

        #expect(throws: BPFLoaderError.self) { try btf.encode(.object([.init(name: "nope", value: .unsigned(1))]), as: keyType) }
        #expect(throws: BPFLoaderError.self) { try btf.encode(.object([.init(name: "version", value: .unsigned(16))]), as: keyType) }
        #expect(throws: BPFLoaderError.self) { try btf.encode(.object([.init(name: "name", value: .string("much too long"))]), as: keyType) }
        #expect(throws: BPFLoaderError.self) { try btf.render(Array(bytes.dropLast()), as: keyType) }
    }

    @Test("a global data section renders as its variables", arguments: TestPrograms.compilers)
    func globalDataRendersAsVariables(compiler: TestPrograms.Compiler) throws {
        let object = try TestPrograms.load("global_data", with: compiler)
        let btf = try #require(object.btf)
        let data = try #require(object.maps.first { $0.name == ".data" })
        let value = try btf.render(try #require(data.initialValue), as: try #require(data.btfValueTypeID))
        #expect(value["threshold"] == .signed(100))
        #expect(value["packets_seen"] == .signed(0x1122_3344_5566_7788))
        let rodata = try #require(object.maps.first { $0.name == ".rodata" })
        let readOnly = try btf.render(try #require(rodata.initialValue), as: try #require(rodata.btfValueTypeID))
        #expect(readOnly["wanted_port"] == .unsigned(443))
    }

    @Test("the type table holds the program's functions and prototypes", arguments: TestPrograms.compilers)
    func typeTableHasFunctions(compiler: TestPrograms.Compiler) throws {
        let btf = try #require(try TestPrograms.load("subprograms", with: compiler).btf)
        let function = try #require(btf.types.first { $0.name == "port_of" })
        guard case .function(let prototypeID, _) = function.kind,
            case .functionPrototype(let returnType, let parameters) = try #require(btf.type(prototypeID)).kind
        else {
            Issue.record("port_of is not a FUNC with a FUNC_PROTO")
            return
        }
        #expect(btf.typeName(returnType) == "int")
        #expect(parameters.map(\.name) == ["data", "length"])
        #expect(btf.typeName(parameters[0].typeID) == "unsigned char *")
    }
}
