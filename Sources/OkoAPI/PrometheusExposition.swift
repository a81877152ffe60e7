// Prometheus text exposition (format 0.0.4) for `/metrics`.
//
// Design note: metrics are gathered on demand from the datapath's counters when a scrape arrives
// (pull model), so the packet path never touches this code. A scrape builds `MetricFamily` values and
// renders them; names follow Prometheus conventions (`oko_` prefix, `_total` for counters, base units
// such as seconds and bytes) and label sets are bounded by configuration (bridges, ports, rules,
// programs, maps), never by traffic.

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

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic || first == "_" || first == ":" else {
            return false
        }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == ":") }
    }
}

public enum PrometheusExposition {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Renders `families` in the text format; families without samples still get HELP and TYPE.
    public static func render(_ families: [MetricFamily]) -> String {
        var out = ""
        out.reserveCapacity(families.count * 128)
        for family in families {
            out += "# HELP \(family.name) \(escapeHelp(family.help))\n"
            out += "# TYPE \(family.name) \(family.kind.rawValue)\n"
            for sample in family.samples {
                out += family.name
                if !sample.labels.isEmpty {
                    out += "{"
                    for (index, (name, value)) in sample.labels.enumerated() {
                        if index > 0 { out += "," }
                        out += "\(name)=\"\(escapeLabel(value))\""
                    }
                    out += "}"
                }
                out += " \(format(sample.value))\n"
            }
        }
        return out
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
        guard text.contains(where: { $0 == "\\" || $0 == "\n" || (quotes && $0 == "\"") }) else { return text }
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
