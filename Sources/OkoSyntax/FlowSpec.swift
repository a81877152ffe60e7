// FlowSpec: a flow rule as operators write it, in JSON (the REST API) or in the ovs-ofctl text form
// (`priority=1,in_port=1,filter_prog=1,actions=output:2`).
//
// Design note
// - Both notations parse into the same `FlowSpec` and render from it, so a rule added as text comes
//   back identically as JSON and the reverse. Field names are normalised to OpenFlow OXM short names
//   (`dl_src` -> `eth_src`, `nw_dst` -> `ipv4_dst`, `tcp` -> `eth_type=0x0800,ip_proto=6`) and values
//   to one canonical spelling (lower-case hex MACs, dotted IPv4 with a prefix length or mask, decimal
//   integers), so that equal rules compare equal.
// - FlowSpec is syntax, not semantics: prerequisites (a `tcp_dst` needs `ip_proto=6`) are checked here
//   because both notations need them; whether a port or program exists is the datapath's business.
// - Values are Sendable and immutable once parsed.

import Foundation

public struct FlowSyntaxError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A match field value in canonical text form (`"1"`, `"0x0800"` normalised to `"2048"`, `"10.0.0.0/8"`).
public struct FlowSpec: Sendable, Equatable {
    public var table: UInt8 = 0
    public var priority: UInt16 = 32768
    public var cookie: UInt64 = 0
    /// Only used by filters (dump/delete): `cookie=V/MASK`.
    public var cookieMask: UInt64? = nil
    public var idleTimeout: UInt16 = 0
    public var hardTimeout: UInt16 = 0
    public var sendFlowRemoved = false
    public var checkOverlap = false
    /// OXM name -> canonical value, in a canonical field order.
    public var match: [MatchField] = []
    public var instructions: [FlowInstruction] = []

    public init() {}

    public struct MatchField: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The value of match field `name`, if the rule matches on it.
    public func matchValue(_ name: String) -> String? { match.first { $0.name == name }?.value }

    /// The apply-actions list (the `actions=` of the text form), empty when absent.
    public var applyActions: [FlowAction] {
        for case .applyActions(let actions) in instructions { return actions }
        return []
    }
}

public enum FlowInstruction: Sendable, Equatable {
    case applyActions([FlowAction])
    case writeActions([FlowAction])
    case clearActions
    case writeMetadata(value: UInt64, mask: UInt64)
    case gotoTable(UInt8)
}

public enum FlowAction: Sendable, Equatable {
    /// `port` is a number or one of in_port, flood, all, controller, normal, local.
    case output(port: String, maxLength: UInt16?)
    case drop
    case group(UInt32)
    case setField(field: String, value: String)
    case pushVLAN(ethertype: UInt16)
    case popVLAN
    case decTTL
    case setTTL(UInt8)
    /// Oko's SEND_MAPS: send the named maps of the rule's filter program to the controllers.
    case sendMaps(maps: [String], maxPerSecond: UInt32)
}

// MARK: - field catalogue

/// Knowledge about each OXM field: its value syntax and its prerequisite.
enum FieldKind: Sendable {
    case integer(bits: Int, maskable: Bool)
    case mac(maskable: Bool)
    case ipv4(maskable: Bool)
    case ipv6(maskable: Bool)
    /// `in_port` style: a number or a reserved port name.
    case port
}

struct FieldInfo: Sendable {
    let name: String
    let kind: FieldKind
    /// Required (field, allowed values) before this field may be matched.
    let prerequisites: [(String, [String])]
}

enum FieldCatalogue {
    static let ipv4Type = "2048", ipv6Type = "34525", arpType = "2054"
    static let ipTypes = [ipv4Type, ipv6Type]

    static let fields: [FieldInfo] = [
        FieldInfo(name: "in_port", kind: .port, prerequisites: []),
        FieldInfo(name: "metadata", kind: .integer(bits: 64, maskable: true), prerequisites: []),
        FieldInfo(name: "eth_dst", kind: .mac(maskable: true), prerequisites: []),
        FieldInfo(name: "eth_src", kind: .mac(maskable: true), prerequisites: []),
        FieldInfo(name: "eth_type", kind: .integer(bits: 16, maskable: false), prerequisites: []),
        FieldInfo(name: "vlan_vid", kind: .integer(bits: 13, maskable: true), prerequisites: []),
        FieldInfo(name: "vlan_pcp", kind: .integer(bits: 3, maskable: false), prerequisites: []),
        FieldInfo(name: "ip_dscp", kind: .integer(bits: 6, maskable: false), prerequisites: [("eth_type", ipTypes)]),
        FieldInfo(name: "ip_ecn", kind: .integer(bits: 2, maskable: false), prerequisites: [("eth_type", ipTypes)]),
        FieldInfo(name: "ip_ttl", kind: .integer(bits: 8, maskable: false), prerequisites: [("eth_type", ipTypes)]),
        FieldInfo(name: "ip_proto", kind: .integer(bits: 8, maskable: false), prerequisites: [("eth_type", ipTypes)]),
        FieldInfo(name: "ipv4_src", kind: .ipv4(maskable: true), prerequisites: [("eth_type", [ipv4Type])]),
        FieldInfo(name: "ipv4_dst", kind: .ipv4(maskable: true), prerequisites: [("eth_type", [ipv4Type])]),
        FieldInfo(name: "ipv6_src", kind: .ipv6(maskable: true), prerequisites: [("eth_type", [ipv6Type])]),
        FieldInfo(name: "ipv6_dst", kind: .ipv6(maskable: true), prerequisites: [("eth_type", [ipv6Type])]),
        FieldInfo(name: "ipv6_flabel", kind: .integer(bits: 20, maskable: true), prerequisites: [("eth_type", [ipv6Type])]),
        FieldInfo(name: "tcp_src", kind: .integer(bits: 16, maskable: true), prerequisites: [("ip_proto", ["6"])]),
        FieldInfo(name: "tcp_dst", kind: .integer(bits: 16, maskable: true), prerequisites: [("ip_proto", ["6"])]),
        FieldInfo(name: "tcp_flags", kind: .integer(bits: 12, maskable: true), prerequisites: [("ip_proto", ["6"])]),
        FieldInfo(name: "udp_src", kind: .integer(bits: 16, maskable: true), prerequisites: [("ip_proto", ["17"])]),
        FieldInfo(name: "udp_dst", kind: .integer(bits: 16, maskable: true), prerequisites: [("ip_proto", ["17"])]),
        FieldInfo(name: "sctp_src", kind: .integer(bits: 16, maskable: true), prerequisites: [("ip_proto", ["132"])]),
        FieldInfo(name: "sctp_dst", kind: .integer(bits: 16, maskable: true), prerequisites: [("ip_proto", ["132"])]),
        FieldInfo(name: "icmpv4_type", kind: .integer(bits: 8, maskable: false), prerequisites: [("ip_proto", ["1"])]),
        FieldInfo(name: "icmpv4_code", kind: .integer(bits: 8, maskable: false), prerequisites: [("ip_proto", ["1"])]),
        FieldInfo(name: "icmpv6_type", kind: .integer(bits: 8, maskable: false), prerequisites: [("ip_proto", ["58"])]),
        FieldInfo(name: "icmpv6_code", kind: .integer(bits: 8, maskable: false), prerequisites: [("ip_proto", ["58"])]),
        FieldInfo(name: "arp_op", kind: .integer(bits: 16, maskable: false), prerequisites: [("eth_type", [arpType])]),
        FieldInfo(name: "arp_spa", kind: .ipv4(maskable: true), prerequisites: [("eth_type", [arpType])]),
        FieldInfo(name: "arp_tpa", kind: .ipv4(maskable: true), prerequisites: [("eth_type", [arpType])]),
        FieldInfo(name: "arp_sha", kind: .mac(maskable: true), prerequisites: [("eth_type", [arpType])]),
        FieldInfo(name: "arp_tha", kind: .mac(maskable: true), prerequisites: [("eth_type", [arpType])]),
        FieldInfo(name: "filter_prog", kind: .integer(bits: 16, maskable: false), prerequisites: []),
    ]

    static let byName: [String: FieldInfo] = Dictionary(uniqueKeysWithValues: fields.map { ($0.name, $0) })
    static let order: [String: Int] = Dictionary(uniqueKeysWithValues: fields.enumerated().map { ($1.name, $0) })

    /// ovs-ofctl and OpenFlow 1.0 spellings.
    static let aliases: [String: String] = [
        "dl_src": "eth_src", "dl_dst": "eth_dst", "dl_type": "eth_type", "dl_vlan": "vlan_vid",
        "dl_vlan_pcp": "vlan_pcp", "nw_proto": "ip_proto", "nw_ttl": "ip_ttl", "nw_ecn": "ip_ecn",
        "ip_src": "ipv4_src", "ip_dst": "ipv4_dst", "ipv6_label": "ipv6_flabel",
        "icmp_type": "icmpv4_type", "icmp_code": "icmpv4_code", "arp_spa": "arp_spa",
    ]

    /// Protocol shorthands of the text form.
    static let shorthands: [String: [(String, String)]] = [
        "ip": [("eth_type", ipv4Type)], "ipv6": [("eth_type", ipv6Type)], "arp": [("eth_type", arpType)],
        "tcp": [("eth_type", ipv4Type), ("ip_proto", "6")], "udp": [("eth_type", ipv4Type), ("ip_proto", "17")],
        "sctp": [("eth_type", ipv4Type), ("ip_proto", "132")], "icmp": [("eth_type", ipv4Type), ("ip_proto", "1")],
        "tcp6": [("eth_type", ipv6Type), ("ip_proto", "6")], "udp6": [("eth_type", ipv6Type), ("ip_proto", "17")],
        "sctp6": [("eth_type", ipv6Type), ("ip_proto", "132")], "icmp6": [("eth_type", ipv6Type), ("ip_proto", "58")],
    ]

    static let reservedPorts = ["in_port", "flood", "all", "controller", "normal", "local", "any"]
}

// MARK: - value parsing

enum ValueSyntax {
    /// Decimal or 0x-hex unsigned integer.
    static func parseInteger(_ text: some StringProtocol) -> UInt64? {
        let lower = text.lowercased()
        if lower.hasPrefix("0x") { return UInt64(lower.dropFirst(2), radix: 16) }
        return UInt64(lower)
    }

    static func canonical(field: FieldInfo, value raw: String) throws -> String {
        let text = raw.trimmingWhitespace()
        func bad(_ what: String) -> FlowSyntaxError { FlowSyntaxError("\(field.name): '\(raw)' is not \(what)") }
        switch field.kind {
        case .port:
            if FieldCatalogue.reservedPorts.contains(text.lowercased()) { return text.lowercased() }
            guard let port = parseInteger(text), port >= 1, port <= 0xffff_ff00 else { throw bad("a port number or name") }
            return String(port)
        case .integer(let bits, let maskable):
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let limit: UInt64 = bits == 64 ? .max : (1 << UInt64(bits)) - 1
            guard let value = parseInteger(parts[0]), value <= limit else { throw bad("an integer of \(bits) bits") }
            if parts.count == 2 {
                guard maskable else { throw FlowSyntaxError("\(field.name) cannot be masked") }
                guard let mask = parseInteger(parts[1]), mask <= limit else { throw bad("VALUE/MASK with \(bits)-bit integers") }
                if mask == limit { return String(value) }
                return "0x" + String(value & mask, radix: 16) + "/0x" + String(mask, radix: 16)
            }
            return String(value)
        case .mac(let maskable):
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let mac = parseMAC(parts[0]) else { throw bad("a MAC address") }
            if parts.count == 2 {
                guard maskable, let mask = parseMAC(parts[1]) else { throw bad("a MAC address with a MAC mask") }
                if mask == [UInt8](repeating: 0xff, count: 6) { return formatMAC(mac) }
                return formatMAC(zip(mac, mask).map { $0 & $1 }) + "/" + formatMAC(mask)
            }
            return formatMAC(mac)
        case .ipv4(let maskable):
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = parseIPv4(parts[0]) else { throw bad("an IPv4 address") }
            if parts.count == 2 {
                guard maskable else { throw FlowSyntaxError("\(field.name) cannot be masked") }
                let mask: UInt32
                if let prefix = UInt8(parts[1]), prefix <= 32 {
                    mask = prefix == 0 ? 0 : ~UInt32(0) << (32 - UInt32(prefix))
                } else if let dotted = parseIPv4(parts[1]) {
                    mask = dotted
                } else {
                    throw bad("ADDRESS/PREFIX or ADDRESS/MASK")
                }
                if mask == .max { return formatIPv4(address) }
                let prefix = mask.nonzeroBitCount
                if mask == (prefix == 0 ? 0 : ~UInt32(0) << (32 - UInt32(prefix))) {
                    return formatIPv4(address & mask) + "/\(prefix)"
                }
                return formatIPv4(address & mask) + "/" + formatIPv4(mask)
            }
            return formatIPv4(address)
        case .ipv6(let maskable):
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = parseIPv6(parts[0]) else { throw bad("an IPv6 address") }
            if parts.count == 2 {
                guard maskable, let prefix = UInt8(parts[1]), prefix <= 128 else { throw bad("ADDRESS/PREFIX") }
                if prefix == 128 { return formatIPv6(address) }
                var masked = address
                for index in 0..<16 {
                    let bitsHere = max(0, min(8, Int(prefix) - index * 8))
                    masked[index] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bitsHere))
                }
                return formatIPv6(masked) + "/\(prefix)"
            }
            return formatIPv6(address)
        }
    }

    static func parseMAC(_ text: some StringProtocol) -> [UInt8]? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...2).contains(part.count), let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    static func formatMAC(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }

    static func parseIPv4(_ text: some StringProtocol) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, let octet = UInt8(part) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        return value
    }

    static func formatIPv4(_ value: UInt32) -> String {
        "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
    }

    static func parseIPv6(_ text: some StringProtocol) -> [UInt8]? {
        let string = String(text)
        guard !string.isEmpty, string.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        let halves = string.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, piece.contains("."), let v4 = parseIPv4(piece) {
                    result += [UInt16(v4 >> 16), UInt16(v4 & 0xffff)]
                } else {
                    guard (1...4).contains(piece.count), let group = UInt16(piece, radix: 16) else { return nil }
                    result.append(group)
                }
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    /// RFC 5952 text: lower case, longest run of zero groups (two or more) compressed.
    static func formatIPv6(_ bytes: [UInt8]) -> String {
        let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        var bestStart = -1, bestLength = 1, runStart = -1
        for index in 0...8 {
            if index < 8 && groups[index] == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                if index - runStart > bestLength { bestStart = runStart; bestLength = index - runStart }
                runStart = -1
            }
        }
        func hex(_ range: Range<Int>) -> String { groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        String(self.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
    }
}

// MARK: - building and checking

extension FlowSpec {
    /// Adds a match field by any accepted name, canonicalising the value. Throws on unknown fields,
    /// bad values, and a second, different value for the same field.
    public mutating func addMatch(_ name: String, _ value: String) throws {
        let canonicalName = FieldCatalogue.aliases[name] ?? name
        guard let info = FieldCatalogue.byName[canonicalName] else {
            throw FlowSyntaxError("unknown match field '\(name)'")
        }
        let canonicalValue = try ValueSyntax.canonical(field: info, value: value)
        if let existing = matchValue(canonicalName) {
            guard existing == canonicalValue else {
                throw FlowSyntaxError("match field '\(canonicalName)' given twice ('\(existing)' and '\(canonicalValue)')")
            }
            return
        }
        match.append(MatchField(canonicalName, canonicalValue))
        match.sort { FieldCatalogue.order[$0.name]! < FieldCatalogue.order[$1.name]! }
    }

    /// Checks OpenFlow prerequisites (e.g. `tcp_dst` needs `ip_proto=6`, which needs an IP `eth_type`).
    public func validatePrerequisites() throws {
        for field in match {
            guard let info = FieldCatalogue.byName[field.name] else { continue }
            for (required, allowed) in info.prerequisites {
                guard let present = matchValue(required), allowed.contains(present) else {
                    let shorthand = allowed == ["6"] ? "tcp" : allowed == ["17"] ? "udp" : allowed == ["1"] ? "icmp"
                        : allowed == [FieldCatalogue.arpType] ? "arp" : allowed == [FieldCatalogue.ipv6Type] ? "ipv6" : "ip"
                    throw FlowSyntaxError("match field '\(field.name)' requires \(required)=\(allowed.joined(separator: " or ")) (e.g. add '\(shorthand)')")
                }
            }
        }
    }
}

// MARK: - ovs-ofctl text form

extension FlowSpec {
    /// Parses one rule in ovs-ofctl syntax. `requireActions` is false for filters (dump/delete).
    public init(ofctlText text: String, requireActions: Bool = true) throws {
        self.init()
        let trimmed = text.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw FlowSyntaxError("empty flow") }
        var matchPart = Substring(trimmed)
        var actionsPart: Substring? = nil
        if let range = trimmed.range(of: "actions=") ?? trimmed.range(of: "instructions=") {
            matchPart = trimmed[..<range.lowerBound]
            actionsPart = trimmed[range.upperBound...]
        }
        for item in Self.splitTopLevel(matchPart, separators: [",", " "]) {
            let (key, value) = Self.keyValue(item)
            switch key {
            case "priority": priority = try Self.integer(value, key, max: 65535)
            case "table": table = try Self.integer(value, key, max: 254)
            case "idle_timeout": idleTimeout = try Self.integer(value, key, max: 65535)
            case "hard_timeout": hardTimeout = try Self.integer(value, key, max: 65535)
            case "send_flow_rem" where value == nil: sendFlowRemoved = true
            case "check_overlap" where value == nil: checkOverlap = true
            case "cookie":
                guard let value else { throw FlowSyntaxError("cookie needs a value") }
                let parts = value.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
                guard let cookieValue = ValueSyntax.parseInteger(parts[0]) else { throw FlowSyntaxError("cookie: '\(value)' is not a 64-bit integer") }
                cookie = cookieValue
                if parts.count == 2 {
                    guard let mask = ValueSyntax.parseInteger(parts[1]) else { throw FlowSyntaxError("cookie mask: '\(parts[1])' is not a 64-bit integer") }
                    cookieMask = mask
                }
            case "duration", "n_packets", "n_bytes", "idle_age", "hard_age", "reset_counts", "out_port", "out_group":
                continue  // dump-flows output and filter-only keys are accepted and ignored
            default:
                if value == nil, let fields = FieldCatalogue.shorthands[key] {
                    for (name, fieldValue) in fields { try addMatch(name, fieldValue) }
                } else if let value {
                    if key == "tp_src" || key == "tp_dst" {
                        try addMatch(Self.transportField(key, protocolNumber: matchValue("ip_proto")), value)
                    } else if key == "nw_src" || key == "nw_dst" {
                        let v6 = matchValue("eth_type") == FieldCatalogue.ipv6Type
                        let arp = matchValue("eth_type") == FieldCatalogue.arpType
                        let suffix = key == "nw_src" ? "src" : "dst"
                        try addMatch(v6 ? "ipv6_\(suffix)" : arp ? (suffix == "src" ? "arp_spa" : "arp_tpa") : "ipv4_\(suffix)", value)
                    } else if key == "nw_tos" {
                        guard let tos = ValueSyntax.parseInteger(value), tos <= 255 else { throw FlowSyntaxError("nw_tos: '\(value)' is not 0..255") }
                        try addMatch("ip_dscp", String(tos >> 2))
                    } else {
                        try addMatch(key, value)
                    }
                } else {
                    throw FlowSyntaxError("'\(key)' is neither a protocol shorthand nor KEY=VALUE")
                }
            }
        }
        try validatePrerequisites()
        if let actionsPart {
            instructions = try Self.parseInstructions(actionsPart)
        } else if requireActions {
            throw FlowSyntaxError("missing 'actions=' (use 'actions=drop' to drop)")
        }
    }

    private static func transportField(_ key: String, protocolNumber: String?) throws -> String {
        let side = key == "tp_src" ? "src" : "dst"
        switch protocolNumber {
        case "6": return "tcp_\(side)"
        case "17": return "udp_\(side)"
        case "132": return "sctp_\(side)"
        default: throw FlowSyntaxError("\(key) needs tcp, udp or sctp before it")
        }
    }

    private static func keyValue(_ item: Substring) -> (String, String?) {
        guard let equals = item.firstIndex(of: "=") else { return (String(item).lowercased(), nil) }
        return (String(item[..<equals]).lowercased(), String(item[item.index(after: equals)...]))
    }

    private static func integer<T: FixedWidthInteger>(_ value: String?, _ key: String, max: UInt64) throws -> T {
        guard let value, let parsed = ValueSyntax.parseInteger(value), parsed <= max else {
            throw FlowSyntaxError("\(key): '\(value ?? "")' is not an integer in 0...\(max)")
        }
        return T(parsed)
    }

    /// Splits on separators outside parentheses and brackets.
    static func splitTopLevel(_ text: Substring, separators: Set<Character>) -> [Substring] {
        var parts: [Substring] = []
        var depth = 0
        var start = text.startIndex
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character == "(" || character == "[" { depth += 1 }
            if character == ")" || character == "]" { depth -= 1 }
            if depth == 0 && separators.contains(character) {
                if start < index { parts.append(text[start..<index]) }
                start = text.index(after: index)
            }
            index = text.index(after: index)
        }
        if start < text.endIndex { parts.append(text[start...]) }
        return parts.filter { !$0.trimmingWhitespace().isEmpty }.map { Substring($0.trimmingWhitespace()) }
    }

    static func parseInstructions(_ text: Substring) throws -> [FlowInstruction] {
        var applied: [FlowAction] = []
        var instructions: [FlowInstruction] = []
        var sawDrop = false
        for item in splitTopLevel(text, separators: [","]) {
            let lower = item.lowercased()
            if lower.hasPrefix("goto_table:") {
                instructions.append(.gotoTable(try integer(String(item.dropFirst(11)), "goto_table", max: 254)))
            } else if lower == "clear_actions" {
                instructions.append(.clearActions)
            } else if lower.hasPrefix("write_metadata:") {
                let body = item.dropFirst(15).split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
                guard let value = ValueSyntax.parseInteger(body[0]) else { throw FlowSyntaxError("write_metadata: '\(body[0])' is not an integer") }
                let mask = body.count == 2 ? ValueSyntax.parseInteger(body[1]) : UInt64.max
                guard let mask else { throw FlowSyntaxError("write_metadata: bad mask '\(body[1])'") }
                instructions.append(.writeMetadata(value: value, mask: mask))
            } else if lower.hasPrefix("write_actions(") && lower.hasSuffix(")") {
                let inner = item.dropFirst(14).dropLast()
                instructions.append(.writeActions(try splitTopLevel(inner, separators: [","]).map(parseAction)))
            } else if lower == "drop" {
                sawDrop = true
            } else {
                applied.append(try parseAction(item))
            }
        }
        if sawDrop && !applied.isEmpty { throw FlowSyntaxError("'drop' cannot be combined with other actions") }
        if !applied.isEmpty { instructions.insert(.applyActions(applied), at: 0) }
        return instructions
    }

    static func parseAction(_ item: Substring) throws -> FlowAction {
        let text = String(item)
        let lower = text.lowercased()
        func argument(after prefix: String) -> String { String(text.dropFirst(prefix.count)) }
        if let port = ValueSyntax.parseInteger(lower), port >= 1 { return .output(port: String(port), maxLength: nil) }
        if ["in_port", "flood", "all", "normal", "local"].contains(lower) { return .output(port: lower, maxLength: nil) }
        if lower == "controller" { return .output(port: "controller", maxLength: 65535) }
        if lower.hasPrefix("controller:") {
            return .output(port: "controller", maxLength: try integer(argument(after: "controller:"), "controller", max: 65535))
        }
        if lower.hasPrefix("output:") {
            let port = argument(after: "output:").lowercased()
            if FieldCatalogue.reservedPorts.contains(port) { return .output(port: port, maxLength: port == "controller" ? 65535 : nil) }
            guard let number = ValueSyntax.parseInteger(port), number >= 1, number <= 0xffff_ff00 else {
                throw FlowSyntaxError("output: '\(port)' is not a port")
            }
            return .output(port: String(number), maxLength: nil)
        }
        if lower.hasPrefix("group:") { return .group(try integer(argument(after: "group:"), "group", max: 0xffff_ff00)) }
        if lower == "pop_vlan" || lower == "strip_vlan" { return .popVLAN }
        if lower.hasPrefix("push_vlan:") { return .pushVLAN(ethertype: try integer(argument(after: "push_vlan:"), "push_vlan", max: 0xffff)) }
        if lower == "dec_ttl" { return .decTTL }
        if lower.hasPrefix("mod_nw_ttl:") { return .setTTL(try integer(argument(after: "mod_nw_ttl:"), "mod_nw_ttl", max: 255)) }
        if lower.hasPrefix("set_field:") {
            let body = argument(after: "set_field:")
            guard let arrow = body.range(of: "->") else { throw FlowSyntaxError("set_field needs VALUE->FIELD") }
            return try setField(String(body[arrow.upperBound...]), String(body[..<arrow.lowerBound]))
        }
        let modAliases = ["mod_dl_src:": "eth_src", "mod_dl_dst:": "eth_dst", "mod_nw_src:": "ipv4_src",
                          "mod_nw_dst:": "ipv4_dst", "mod_vlan_vid:": "vlan_vid", "mod_vlan_pcp:": "vlan_pcp",
                          "mod_tp_src:": "tcp_src", "mod_tp_dst:": "tcp_dst"]
        for (prefix, field) in modAliases where lower.hasPrefix(prefix) {
            return try setField(field, argument(after: prefix))
        }
        if lower.hasPrefix("send_maps(") && lower.hasSuffix(")") {
            let inner = text.dropFirst(10).dropLast()
            var maps: [String] = []
            var rate: UInt32 = 1
            for part in inner.split(separator: ",").map({ $0.trimmingWhitespace() }) where !part.isEmpty {
                if part.lowercased().hasPrefix("max_per_second=") {
                    rate = try integer(String(part.dropFirst(15)), "send_maps max_per_second", max: 1_000_000)
                    guard rate > 0 else { throw FlowSyntaxError("send_maps max_per_second must be at least 1") }
                } else {
                    maps.append(try validMapName(part))
                }
            }
            guard !maps.isEmpty else { throw FlowSyntaxError("send_maps needs at least one map") }
            return .sendMaps(maps: maps, maxPerSecond: rate)
        }
        throw FlowSyntaxError("unknown action '\(text)'")
    }

    /// A map named in send_maps: a C identifier (the map's variable name) or an index.
    static func validMapName(_ name: String) throws -> String {
        guard !name.isEmpty, name.count <= 64,
            name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == ".") })
        else {
            throw FlowSyntaxError("send_maps: '\(name)' is not a map name or index")
        }
        return name
    }

    static func setField(_ field: String, _ value: String) throws -> FlowAction {
        let name = FieldCatalogue.aliases[field] ?? field
        guard let info = FieldCatalogue.byName[name], name != "in_port", name != "filter_prog", name != "metadata" else {
            throw FlowSyntaxError("set_field: '\(field)' is not a settable field")
        }
        let canonical = try ValueSyntax.canonical(field: info, value: value)
        guard !canonical.contains("/") else { throw FlowSyntaxError("set_field: '\(value)' must not be masked") }
        return .setField(field: name, value: canonical)
    }

    /// The rule in ovs-ofctl syntax (what `add-flow` takes and `dump-flows` prints, without counters).
    public var ofctlText: String {
        var parts: [String] = []
        if cookie != 0 || cookieMask != nil {
            parts.append("cookie=0x" + String(cookie, radix: 16) + (cookieMask.map { "/0x" + String($0, radix: 16) } ?? ""))
        }
        if table != 0 { parts.append("table=\(table)") }
        if idleTimeout != 0 { parts.append("idle_timeout=\(idleTimeout)") }
        if hardTimeout != 0 { parts.append("hard_timeout=\(hardTimeout)") }
        if sendFlowRemoved { parts.append("send_flow_rem") }
        parts.append("priority=\(priority)")
        parts += ofctlMatchParts
        return parts.joined(separator: ",") + " actions=" + Self.render(instructions)
    }

    /// The ovs-ofctl protocol keyword for this rule's eth_type (and ip_proto, when `coversProtocol`).
    private var protocolShorthand: (String, coversProtocol: Bool)? {
        let proto = matchValue("ip_proto")
        switch matchValue("eth_type") {
        case FieldCatalogue.arpType: return ("arp", false)
        case FieldCatalogue.ipv4Type:
            switch proto {
            case "6": return ("tcp", true)
            case "17": return ("udp", true)
            case "132": return ("sctp", true)
            case "1": return ("icmp", true)
            default: return ("ip", false)
            }
        case FieldCatalogue.ipv6Type:
            switch proto {
            case "6": return ("tcp6", true)
            case "17": return ("udp6", true)
            case "132": return ("sctp6", true)
            case "58": return ("icmp6", true)
            default: return ("ipv6", false)
            }
        default: return nil
        }
    }

    /// The match in the spellings ovs-ofctl prints and accepts: a protocol shorthand for eth_type and
    /// ip_proto, then OpenFlow 1.0 names (`dl_src`, `nw_dst`, `tp_dst`, ...).
    var ofctlMatchParts: [String] {
        var remaining = match
        var parts: [String] = []
        if let (shorthand, coversProtocol) = protocolShorthand {
            parts.append(shorthand)
            remaining.removeAll { $0.name == "eth_type" || (coversProtocol && $0.name == "ip_proto") }
        }
        let transport = ["tcp_src", "tcp_dst", "udp_src", "udp_dst", "sctp_src", "sctp_dst"]
        for field in remaining {
            let name: String
            switch field.name {
            case "eth_src": name = "dl_src"
            case "eth_dst": name = "dl_dst"
            case "eth_type": name = "dl_type"
            case "vlan_vid": name = "dl_vlan"
            case "vlan_pcp": name = "dl_vlan_pcp"
            case "ip_proto": name = "nw_proto"
            case "ip_ttl": name = "nw_ttl"
            case "ip_ecn": name = "nw_ecn"
            case "ipv4_src": name = "nw_src"
            case "ipv4_dst": name = "nw_dst"
            case "ipv6_flabel": name = "ipv6_label"
            case "icmpv4_type": name = "icmp_type"
            case "icmpv4_code": name = "icmp_code"
            case "ip_dscp":
                parts.append("nw_tos=\((UInt64(field.value) ?? 0) << 2)")
                continue
            case _ where transport.contains(field.name): name = field.name.hasSuffix("src") ? "tp_src" : "tp_dst"
            default: name = field.name
            }
            parts.append("\(name)=\(field.value)")
        }
        return parts
    }

    static func render(_ instructions: [FlowInstruction]) -> String {
        var parts: [String] = []
        for instruction in instructions {
            switch instruction {
            case .applyActions(let actions): parts += actions.map(render)
            case .writeActions(let actions): parts.append("write_actions(" + actions.map(render).joined(separator: ",") + ")")
            case .clearActions: parts.append("clear_actions")
            case .writeMetadata(let value, let mask):
                parts.append("write_metadata:0x" + String(value, radix: 16) + (mask == .max ? "" : "/0x" + String(mask, radix: 16)))
            case .gotoTable(let table): parts.append("goto_table:\(table)")
            }
        }
        return parts.isEmpty ? "drop" : parts.joined(separator: ",")
    }

    static func render(_ action: FlowAction) -> String {
        switch action {
        case .output(let port, let maxLength):
            if port == "controller" { return maxLength == nil || maxLength == 65535 ? "CONTROLLER:65535" : "CONTROLLER:\(maxLength!)" }
            if FieldCatalogue.reservedPorts.contains(port) { return port.uppercased() }
            return "output:\(port)"
        case .drop: return "drop"
        case .group(let id): return "group:\(id)"
        case .setField(let field, let value): return "set_field:\(value)->\(field)"
        case .pushVLAN(let ethertype): return "push_vlan:0x" + String(ethertype, radix: 16)
        case .popVLAN: return "pop_vlan"
        case .decTTL: return "dec_ttl"
        case .setTTL(let ttl): return "mod_nw_ttl:\(ttl)"
        case .sendMaps(let maps, let rate): return "send_maps(" + (maps + ["max_per_second=\(rate)"]).joined(separator: ",") + ")"
        }
    }

    /// Parses a file of rules (one per line, `#` comments and blank lines skipped); errors name the line.
    public static func parseOfctlLines(_ text: String) throws -> [FlowSpec] {
        var flows: [FlowSpec] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingWhitespace()
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            do {
                flows.append(try FlowSpec(ofctlText: trimmed))
            } catch let error as FlowSyntaxError {
                throw FlowSyntaxError("line \(number + 1): \(error.description)")
            }
        }
        return flows
    }
}
