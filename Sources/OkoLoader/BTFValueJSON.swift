/// Parsing JSON text into a `BTFValue`, so typed map updates can come straight from a request body.
/// Integers stay exact (`.signed` / `.unsigned`); numbers with a fraction or exponent become
/// `.float`; `null` is refused because no map byte has an absent value.
extension BTFValue {
    public init(json text: String) throws(BPFLoaderError) {
        var parser = JSONParser(scalars: Array(text.unicodeScalars))
        self = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.position == parser.scalars.count else { throw parser.error("trailing characters") }
    }
}

private struct JSONParser {
    let scalars: [Unicode.Scalar]
    var position = 0
    static let maximumDepth = 64

    func error(_ message: String) -> BPFLoaderError {
        .typeMismatch("JSON at character \(position): \(message)")
    }

    mutating func skipWhitespace() {
        while position < scalars.count, [" ", "\n", "\t", "\r"].contains(scalars[position]) { position += 1 }
    }

    mutating func expect(_ scalar: Unicode.Scalar) throws(BPFLoaderError) {
        skipWhitespace()
        guard position < scalars.count, scalars[position] == scalar else { throw error("expected \"\(scalar)\"") }
        position += 1
    }

    mutating func value(depth: Int) throws(BPFLoaderError) -> BTFValue {
        guard depth < Self.maximumDepth else { throw error("nested too deep") }
        skipWhitespace()
        guard position < scalars.count else { throw error("unexpected end") }
        switch scalars[position] {
        case "{":
            position += 1
            var fields: [BTFValue.Field] = []
            skipWhitespace()
            if position < scalars.count, scalars[position] == "}" {
                position += 1
                return .object(fields)
            }
            while true {
                skipWhitespace()
                let name = try string()
                try expect(":")
                fields.append(.init(name: name, value: try value(depth: depth + 1)))
                skipWhitespace()
                guard position < scalars.count else { throw error("unterminated object") }
                position += 1
                if scalars[position - 1] == "}" { return .object(fields) }
                guard scalars[position - 1] == "," else { throw error("expected , or }") }
            }
        case "[":
            position += 1
            var values: [BTFValue] = []
            skipWhitespace()
            if position < scalars.count, scalars[position] == "]" {
                position += 1
                return .array(values)
            }
            while true {
                values.append(try value(depth: depth + 1))
                skipWhitespace()
                guard position < scalars.count else { throw error("unterminated list") }
                position += 1
                if scalars[position - 1] == "]" { return .array(values) }
                guard scalars[position - 1] == "," else { throw error("expected , or ]") }
            }
        case "\"":
            return .string(try string())
        case "t", "f", "n":
            for (word, result) in [("true", BTFValue.bool(true)), ("false", .bool(false))] where matches(word) {
                position += word.unicodeScalars.count
                return result
            }
            throw error(matches("null") ? "null has no byte representation" : "unknown literal")
        default:
            return try number()
        }
    }

    func matches(_ word: String) -> Bool {
        let wordScalars = Array(word.unicodeScalars)
        return position + wordScalars.count <= scalars.count && Array(scalars[position..<position + wordScalars.count]) == wordScalars
    }

    mutating func string() throws(BPFLoaderError) -> String {
        guard position < scalars.count, scalars[position] == "\"" else { throw error("expected a string") }
        position += 1
        var result = String.UnicodeScalarView()
        while position < scalars.count {
            let scalar = scalars[position]
            position += 1
            switch scalar {
            case "\"":
                return String(result)
            case "\\":
                guard position < scalars.count else { throw error("unterminated escape") }
                let escaped = scalars[position]
                position += 1
                switch escaped {
                case "n": result.append("\n")
                case "t": result.append("\t")
                case "r": result.append("\r")
                case "b": result.append("\u{8}")
                case "f": result.append("\u{c}")
                case "u":
                    guard position + 4 <= scalars.count,
                        let code = UInt32(String(String.UnicodeScalarView(scalars[position..<position + 4])), radix: 16),
                        let decoded = Unicode.Scalar(code)
                    else { throw error("bad \\u escape") }
                    position += 4
                    result.append(decoded)
                default: result.append(escaped)
                }
            default:
                result.append(scalar)
            }
        }
        throw error("unterminated string")
    }

    mutating func number() throws(BPFLoaderError) -> BTFValue {
        let start = position
        while position < scalars.count, "+-0123456789.eE".unicodeScalars.contains(scalars[position]) { position += 1 }
        let text = String(String.UnicodeScalarView(scalars[start..<position]))
        if let unsigned = UInt64(text) { return .unsigned(unsigned) }
        if let signed = Int64(text) { return .signed(signed) }
        if !text.isEmpty, text.contains(where: { ".eE".contains($0) }), let double = Double(text) { return .float(double) }
        position = start
        throw error(text.isEmpty ? "unexpected character" : "\(text) is not a number that fits 64 bits")
    }
}
