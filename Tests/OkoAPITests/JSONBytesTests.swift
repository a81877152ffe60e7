import OkoSyntax
import Testing

@testable import OkoAPI

/// Response bodies are rendered by OkoAPI's byte writer; it must produce exactly `JSONValue.text`.
struct JSONBytesTests {
    @Test(arguments: [
        JSONValue.null, .bool(true), .bool(false), .integer(0), .integer(7), .integer(-42), .integer(Int64.min),
        .integer(Int64.max), .unsigned(UInt64.max), .unsigned(1_000_000), .double(1.5), .double(35_000_000_000),
        .double(-0.25), .double(.infinity), .string(""), .string("plain"), .string("quote \" backslash \\ slash /"),
        .string("lines\n\r\ttab \u{01}\u{1F} end"), .string("ünïcødé ✓ 🐝"), .array([]), .object([]),
        .object([("flows", .array([.object([("id", .unsigned(1)), ("match", .object([("in_port", .integer(1))])),
                                             ("text", .string("priority=1,actions=drop"))])])), ("next", .string("YWZ0ZXI6Mg"))]),
    ])
    func byteWriterMatchesJSONText(_ value: JSONValue) throws {
        #expect(String(decoding: value.utf8Bytes, as: UTF8.self) == value.text)
        #expect(try JSONValue.parse(value.utf8Bytes) == value || value == .double(.infinity))
    }
}
