import OkoLoader
import Testing

@Suite("JSON text to typed map bytes")
struct BTFValueJSONTests {
    @Test("JSON text encodes to a struct key, and its rendering parses back to the same bytes", arguments: TestPrograms.compilers)
    func jsonRoundTrip(compiler: TestPrograms.Compiler) throws {
        let object = try TestPrograms.load("typed_values", with: compiler)
        let btf = try #require(object.btf)
        let keyType = try #require(object.maps.first?.btfKeyTypeID)
        let text = #"{"source": {"address": 167772161, "port": 80}, "mac": [2, 0, 0, 0, 0, 255], "name": "br\u0030", "verdict": "VERDICT_PASS", "delta": -300, "offset": -16}"#
        let bytes = try btf.encode(try BTFValue(json: text), as: keyType)
        #expect(Array(bytes[0..<6]) == [0x01, 0x00, 0x00, 0x0a, 80, 0])
        #expect(Array(bytes[8..<14]) == [2, 0, 0, 0, 0, 255])
        #expect(Array(bytes[14..<18]) == Array("br0".utf8) + [0])
        let rendered = try btf.render(bytes, as: keyType)
        #expect(rendered["delta"] == .signed(-300))
        #expect(rendered["offset"] == .signed(-16))
        #expect(try btf.encode(try BTFValue(json: rendered.description), as: keyType) == bytes)
    }

    @Test("malformed JSON and null are refused with the position")
    func malformedJSON() throws {
        for text in ["", "{", "{\"a\" 1}", "[1, 2", "\"open", "nul", "null", "1 2", "18446744073709551616", "{\"a\": }", "[1,]"] {
            #expect(throws: BPFLoaderError.self, "\(text)") { try BTFValue(json: text) }
        }
        #expect(try BTFValue(json: " [1, -2, 2.5, true, \"x\", {}] ") == .array([.unsigned(1), .signed(-2), .float(2.5), .bool(true), .string("x"), .object([])]))
    }
}
