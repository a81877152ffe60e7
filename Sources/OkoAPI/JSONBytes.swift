// Renders a JSONValue straight to UTF-8 bytes for response bodies. Same text as `JSONValue.text` (compact),
// but appends bytes to one reserved array instead of growing a String scalar by scalar: listing rules and
// other large documents is dominated by rendering, and this halves it or better.
import OkoSyntax

extension JSONValue {
    /// The compact JSON text as UTF-8 (byte for byte what `text` returns).
    var utf8Bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        appendUTF8(to: &out)
        return out
    }

    func appendUTF8(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .integer(let v): OkoAPI.appendDecimal(v.magnitude, negative: v < 0, to: &out)
        case .unsigned(let v): OkoAPI.appendDecimal(v, negative: false, to: &out)
        case .double(let v): out.append(contentsOf: (v.isFinite ? "\(v)" : "null").utf8)
        case .string(let s): Self.appendString(s, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                item.appendUTF8(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let pairs):
            out.append(UInt8(ascii: "{"))
            for (index, (key, value)) in pairs.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                value.appendUTF8(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Escapes like `JSONValue.writeString`: quote, backslash, \n, \r, \t, other controls as \u00XX.
    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            var runStart = 0
            for (index, byte) in bytes.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                runStart = index + 1
                switch byte {
                case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
                case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
                case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
                case UInt8(ascii: "\r"): out.append(contentsOf: #"\r"#.utf8)
                case UInt8(ascii: "\t"): out.append(contentsOf: #"\t"#.utf8)
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: #"\u00"#.utf8)
                    out.append(hex[Int(byte >> 4)])
                    out.append(hex[Int(byte & 0xF)])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...]))
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Appends the decimal digits of `value` (with a minus sign when `negative`).
func appendDecimal(_ value: UInt64, negative: Bool, to out: inout [UInt8]) {
    if negative { out.append(UInt8(ascii: "-")) }
    var divisor: UInt64 = 1
    while value / divisor >= 10 { divisor *= 10 }
    var v = value
    while divisor > 0 {
        out.append(UInt8(ascii: "0") + UInt8(v / divisor))
        v %= divisor
        divisor /= 10
    }
}
