// Prometheus text exposition (format 0.0.4) for `/metrics`.
//
// Design note: metrics are gathered on demand from the datapath's counters when a scrape arrives
// (pull model), so the packet path never touches this code. A scrape builds `MetricFamily` values and
// renders them; names follow Prometheus conventions (`oko_` prefix, `_total` for counters, base units
// such as seconds and bytes) and label sets are bounded by configuration (bridges, ports, rules,
// programs, maps), never by traffic.

import Synchronization

/// One metric family: `# HELP`, `# TYPE` and its samples.
public struct MetricFamily: Sendable {
    public enum Kind: String, Sendable { case counter, gauge, untyped }

    public struct Sample: Sendable {
        public var labels: [(String, String)]
        public var value: Double
        public init(labels: [(String, String)] = [], value: Double) {
            self.labels = labels
            self.value = value
        }
    }

    public var name: String
    public var help: String
    public var kind: Kind
    public var samples: [Sample]

    public init(name: String, help: String, kind: Kind, samples: [Sample] = []) {
        precondition(MetricFamily.isValidName(name), "invalid metric name \(name)")
        self.name = name
        self.help = help
        self.kind = kind
        self.samples = samples
    }

    public mutating func add(_ value: Double, _ labels: [(String, String)] = []) {
        samples.append(Sample(labels: labels, value: value))
    }

    public mutating func add(_ value: UInt64, _ labels: [(String, String)] = []) {
        samples.append(Sample(labels: labels, value: Double(value)))
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`, checked on bytes (a scrape builds dozens of families).
    static func isValidName(_ name: String) -> Bool {
        var first = true
        for byte in name.utf8 {
            let letter = (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z")
            let digit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
            guard letter || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ":") || (digit && !first) else { return false }
            first = false
        }
        return !first
    }
}

public enum PrometheusExposition {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Renders `families` in the text format; families without samples still get HELP and TYPE.
    public static func render(_ families: [MetricFamily]) -> String {
        String(decoding: renderUTF8(families), as: UTF8.self)
    }

    /// The text format as UTF-8 bytes, appended to one buffer.
    public static func renderUTF8(_ families: [MetricFamily]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(families.reduce(0) { $0 + 160 + $1.samples.count * 96 })
        for family in families { append(family, to: &out) }
        return out
    }

    /// Appends one family (HELP, TYPE, samples) in the text format.
    static func append(_ family: MetricFamily, to out: inout [UInt8]) {
        out.append(contentsOf: cachedHeader(family))
        for sample in family.samples {
            out.append(contentsOf: family.name.utf8)
            if !sample.labels.isEmpty {
                out.append(UInt8(ascii: "{"))
                for (index, (name, value)) in sample.labels.enumerated() {
                    if index > 0 { out.append(UInt8(ascii: ",")) }
                    appendLabel(name, value, to: &out)
                }
                out.append(UInt8(ascii: "}"))
            }
            appendValue(sample.value, to: &out)
        }
    }

    /// Headers of families built per scrape (program and API metrics) by name, with the help and kind
    /// they were rendered from: the set is bounded by the code's metric names, so rendering each once
    /// (escaping included) and looking it up by its short name is cheaper than rebuilding it.
    private static let headerCache = Mutex<[String: (help: String, kind: MetricFamily.Kind, bytes: [UInt8])]>([:])

    static func cachedHeader(_ family: MetricFamily) -> [UInt8] {
        if let cached = headerCache.withLock({ $0[family.name] }), cached.help == family.help, cached.kind == family.kind {
            return cached.bytes
        }
        let rendered = header(name: family.name, help: family.help, kind: family.kind)
        headerCache.withLock { cache in
            if cache.count < 1024 { cache[family.name] = (family.help, family.kind, rendered) }  // bounded
        }
        return rendered
    }

    /// `# HELP <name> <help>\n# TYPE <name> <kind>\n`
    static func header(name: String, help: String, kind: MetricFamily.Kind) -> [UInt8] {
        var out: [UInt8] = []
        out.append(contentsOf: "# HELP ".utf8)
        out.append(contentsOf: name.utf8)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: escapeHelp(help).utf8)
        out.append(contentsOf: "\n# TYPE ".utf8)
        out.append(contentsOf: name.utf8)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: kind.rawValue.utf8)
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// `name="escaped value"`
    static func appendLabel(_ name: String, _ value: String, to out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        out.append(contentsOf: "=\"".utf8)
        out.append(contentsOf: escapeLabel(value).utf8)
        out.append(UInt8(ascii: "\""))
    }

    /// ` <value>\n`: integers in decimal, others as `format` writes them.
    static func appendValue(_ value: Double, to out: inout [UInt8]) {
        out.append(UInt8(ascii: " "))
        if value == value.rounded(), abs(value) < 1e15 {
            appendDecimal(Int64(value).magnitude, negative: value < 0, to: &out)
        } else {
            out.append(contentsOf: format(value).utf8)
        }
        out.append(UInt8(ascii: "\n"))
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func escapeHelp(_ text: String) -> String { escape(text, quotes: false) }

    static func escapeLabel(_ text: String) -> String { escape(text, quotes: true) }

    private static func escape(_ text: String, quotes: Bool) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\n") || (quotes && $0 == UInt8(ascii: "\"")) })
        else { return text }
        var out = ""
        for character in text {
            switch character {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\"" where quotes: out += "\\\""
            default: out.append(character)
            }
        }
        return out
    }
}
