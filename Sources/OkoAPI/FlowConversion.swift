// FlowSpec (OkoSyntax, canonical text values) <-> OkoDatapath's FlowMatch / FlowInstructions / FlowAction.
// Errors name the field or action and say what the datapath cannot do.
import OkoDatapath
import OkoSyntax

public struct FlowConversionError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

public enum FlowConversion {
    /// Datapath field for each single-field OXM name (ipv6 addresses span two key words; handled apart).
    static let fields: [String: FlowField] = {
        var m: [String: FlowField] = [:]
        for f in FlowField.allCases where !f.rawValue.hasPrefix("ipv6_") { m[f.rawValue] = f }
        return m
    }()

    static let reservedPorts: [String: UInt32] = [
        "in_port": OFPort.inPort, "flood": OFPort.flood, "all": OFPort.all, "controller": OFPort.controller,
        "normal": OFPort.normal, "local": 0xFFFF_FFFE, "any": OFPort.any,
    ]

    static func parseInteger(_ text: Substring) -> UInt64? {
        let lower = text.lowercased()
        if lower.hasPrefix("0x") { return UInt64(lower.dropFirst(2), radix: 16) }
        return UInt64(lower)
    }

    static func parseMAC(_ text: Substring) -> UInt64? {
        let parts = text.split(separator: ":")
        guard parts.count == 6 else { return nil }
        var v: UInt64 = 0
        for p in parts {
            guard let b = UInt8(p, radix: 16) else { return nil }
            v = v << 8 | UInt64(b)
        }
        return v
    }

    static func parseIPv4(_ text: Substring) -> UInt64? {
        let parts = text.split(separator: ".")
        guard parts.count == 4 else { return nil }
        var v: UInt64 = 0
        for p in parts {
            guard let b = UInt8(p) else { return nil }
            v = v << 8 | UInt64(b)
        }
        return v
    }

    /// 128-bit address as (high, low) from RFC 4291 text.
    static func parseIPv6(_ text: Substring) -> (UInt64, UInt64)? {
        let halves = text.split(separator: "::", omittingEmptySubsequences: false)
        func groups(_ s: Substring) -> [UInt16]? {
            s.isEmpty ? [] : s.split(separator: ":", omittingEmptySubsequences: false).map { UInt16($0, radix: 16) }
                .reduce(into: [UInt16]?([])) { acc, g in if let g, acc != nil { acc!.append(g) } else { acc = nil } }
        }
        var all: [UInt16]
        if halves.count == 1 {
            guard let g = groups(halves[0]) else { return nil }
            all = g
        } else if halves.count == 2 {
            guard let head = groups(halves[0]), let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else { return nil }
        guard all.count == 8 else { return nil }
        let high = all[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = all[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        return (high, low)
    }

    /// (value, mask) of a canonical FlowSpec value for `field`.
    static func valueAndMask(_ name: String, _ field: FlowField?, _ text: String) throws -> (UInt64, UInt64) {
        let parts = text.split(separator: "/", maxSplits: 1)
        func bad() -> FlowConversionError { FlowConversionError("\(name): cannot use value '\(text)'") }
        guard let valuePart = parts.first else { throw bad() }
        let parse: (Substring) -> UInt64?
        switch field {
        case .ethSrc, .ethDst, .arpSHA, .arpTHA: parse = parseMAC
        case .ipv4Src, .ipv4Dst, .arpSPA, .arpTPA: parse = parseIPv4
        case .inPort: parse = { reservedPorts[String($0)].map(UInt64.init) ?? parseInteger($0) }
        default: parse = parseInteger
        }
        guard let value = parse(valuePart) else { throw bad() }
        var mask = field?.maxValue ?? ~0
        if parts.count == 2 {
            let m = parts[1]
            if !m.contains("."), !m.contains(":"), !m.hasPrefix("0x"), let prefix = Int(m),
                field == .ipv4Src || field == .ipv4Dst || field == .arpSPA || field == .arpTPA {
                guard prefix <= 32 else { throw bad() }
                mask = prefix == 0 ? 0 : (0xFFFF_FFFF << UInt64(32 - prefix)) & 0xFFFF_FFFF
            } else {
                guard let parsed = parse(m) else { throw bad() }
                mask = parsed
            }
        }
        return (value, mask)
    }

    /// The datapath match of `spec` (prerequisites checked by OkoSyntax unless `checkPrerequisites` is false,
    /// as for filters, where the datapath's own subsumption test applies).
    public static func match(_ spec: FlowSpec, checkPrerequisites: Bool = true) throws -> FlowMatch {
        if checkPrerequisites { try spec.validatePrerequisites() }
        var m = FlowMatch()
        for field in spec.match {
            switch field.name {
            case "filter_prog":
                guard let id = UInt32(field.value) else { throw FlowConversionError("filter_prog: '\(field.value)' is not a program id") }
                m.filterProgram = id
            case "ipv6_src", "ipv6_dst":
                let parts = field.value.split(separator: "/", maxSplits: 1)
                guard let (high, low) = parseIPv6(parts[0]) else {
                    throw FlowConversionError("\(field.name): cannot use value '\(field.value)'")
                }
                var mh = UInt64.max, ml = UInt64.max
                if parts.count == 2 {
                    guard let prefix = Int(parts[1]), prefix <= 128 else {
                        throw FlowConversionError("\(field.name): mask '\(parts[1])' must be a prefix length")
                    }
                    mh = prefix >= 64 ? .max : (prefix == 0 ? 0 : .max << UInt64(64 - prefix))
                    ml = prefix <= 64 ? 0 : (prefix == 128 ? .max : .max << UInt64(128 - prefix))
                }
                let src = field.name == "ipv6_src"
                m.set(src ? .ipv6SrcHigh : .ipv6DstHigh, high, mask: mh)
                m.set(src ? .ipv6SrcLow : .ipv6DstLow, low, mask: ml)
            default:
                guard let f = fields[field.name] else {
                    throw FlowConversionError("match field '\(field.name)' is not supported by the datapath")
                }
                let (value, mask) = try valueAndMask(field.name, f, field.value)
                m.set(f, value, mask: mask)
            }
        }
        return m
    }

    public static func instructions(_ spec: FlowSpec) throws -> FlowInstructions {
        var result = FlowInstructions()
        for instruction in spec.instructions {
            switch instruction {
            case .applyActions(let actions): result.applyActions = try actions.flatMap(action)
            case .writeActions(let actions): result.writeActions = try actions.flatMap(action)
            case .clearActions: result.clearActions = true
            case .writeMetadata(let value, let mask): result.writeMetadata = (value, mask)
            case .gotoTable(let table): result.gotoTable = table
            }
        }
        return result
    }

    static func action(_ a: OkoSyntax.FlowAction) throws -> [OkoDatapath.FlowAction] {
        switch a {
        case .output(let port, let maxLength):
            guard let number = reservedPorts[port] ?? UInt32(port) else {
                throw FlowConversionError("output: '\(port)' is not a port")
            }
            return [.output(number, maxLength: maxLength ?? 0xFFFF)]
        case .drop: return []
        case .group(let id): return [.group(id)]
        case .setField(let name, let value):
            if name == "ipv6_src" || name == "ipv6_dst" {
                guard let (high, low) = parseIPv6(Substring(value)) else {
                    throw FlowConversionError("set_field \(name): cannot use value '\(value)'")
                }
                let src = name == "ipv6_src"
                return [.setField(src ? .ipv6SrcHigh : .ipv6DstHigh, high), .setField(src ? .ipv6SrcLow : .ipv6DstLow, low)]
            }
            guard let f = fields[name], f != .inPort, f != .metadata else {
                throw FlowConversionError("set_field: field '\(name)' cannot be set by the datapath")
            }
            let (v, _) = try valueAndMask("set_field \(name)", f, value)
            return [.setField(f, v)]
        case .pushVLAN(let ethertype): return [.pushVLAN(ethertype)]
        case .popVLAN: return [.popVLAN]
        case .decTTL: return [.decTTL]
        case .setTTL(let ttl): return [.setField(.ipTTL, UInt64(ttl))]
        case .sendMaps:
            throw FlowConversionError("send_maps is not supported by this datapath yet")
        }
    }

    // MARK: datapath -> FlowSpec

    static func formatMAC(_ v: UInt64) -> String {
        (0..<6).map { i in
            let b = UInt8(truncatingIfNeeded: v >> UInt64(8 * (5 - i)))
            return (b < 16 ? "0" : "") + String(b, radix: 16)
        }.joined(separator: ":")
    }

    static func formatIPv4(_ v: UInt64) -> String {
        (0..<4).map { (i: Int) -> String in String(UInt8(truncatingIfNeeded: v >> UInt64(8 * (3 - i)))) }.joined(separator: ".")
    }

    static func formatIPv6(_ high: UInt64, _ low: UInt64) -> String {
        var groups: [String] = []
        for word in [high, low] {
            for i in 0..<4 {
                let shift = UInt64(16 * (3 - i))
                groups.append(String(UInt16(truncatingIfNeeded: word >> shift), radix: 16))
            }
        }
        return groups.joined(separator: ":")
    }

    static func prefixLength(_ high: UInt64, _ low: UInt64) -> Int? {
        let ones = high.nonzeroBitCount + low.nonzeroBitCount
        var expectHigh = UInt64.max, expectLow = UInt64(0)
        if ones < 64 { expectHigh = ones == 0 ? 0 : UInt64.max << UInt64(64 - ones) }
        if ones > 64 { expectLow = ones == 128 ? UInt64.max : UInt64.max << UInt64(128 - ones) }
        return high == expectHigh && low == expectLow ? ones : nil
    }

    static func text(_ f: FlowField, _ v: UInt64) -> String {
        switch f {
        case .ethSrc, .ethDst, .arpSHA, .arpTHA: return formatMAC(v)
        case .ipv4Src, .ipv4Dst, .arpSPA, .arpTPA: return formatIPv4(v)
        default: return String(v)
        }
    }

    /// The rule as FlowSpec (canonicalised through OkoSyntax, so text and JSON render consistently).
    public static func spec(_ entry: FlowEntry) -> FlowSpec {
        var spec = FlowSpec()
        spec.table = entry.table
        spec.priority = entry.priority
        spec.cookie = entry.cookie
        spec.idleTimeout = entry.idleTimeout
        spec.hardTimeout = entry.hardTimeout
        let key = entry.match.key, mask = entry.match.mask
        let ethType = key.value(.ethType)
        let ipProto = key.value(.ipProto)
        for f in FlowField.allCases where mask.value(f) != 0 && !f.rawValue.hasPrefix("ipv6_") {
            // Aliased fields share key bits: pick the one the rule's prerequisites name.
            switch f {
            case .arpSPA, .arpTPA: if ethType != 0x0806 { continue }
            case .ipv4Src, .ipv4Dst: if ethType == 0x0806 { continue }
            case .tcpSrc, .tcpDst: if ipProto != 6 { continue }
            case .udpSrc, .udpDst: if ipProto != 17 { continue }
            case .sctpSrc, .sctpDst: if ipProto != 132 { continue }
            case .icmpv4Type, .icmpv4Code: if ipProto != 1 || ethType != 0x0800 { continue }
            case .icmpv6Type, .icmpv6Code: if ipProto != 58 || ethType != 0x86DD { continue }
            default: break
            }
            let m = mask.value(f), v = key.value(f)
            var value = text(f, v)
            if m != f.maxValue {
                switch f {
                case .ipv4Src, .ipv4Dst, .arpSPA, .arpTPA: value += "/" + formatIPv4(m)
                case .ethSrc, .ethDst, .arpSHA, .arpTHA: value += "/" + formatMAC(m)
                default: value = "0x" + String(v, radix: 16) + "/0x" + String(m, radix: 16)
                }
            }
            try? spec.addMatch(f.rawValue, value)
        }
        for (name, hf, lf) in [("ipv6_src", FlowField.ipv6SrcHigh, FlowField.ipv6SrcLow), ("ipv6_dst", .ipv6DstHigh, .ipv6DstLow)] {
            let mh = mask.value(hf), ml = mask.value(lf)
            guard mh != 0 || ml != 0 else { continue }
            var value = formatIPv6(key.value(hf), key.value(lf))
            if let prefix = prefixLength(mh, ml), prefix != 128 { value += "/\(prefix)" }
            try? spec.addMatch(name, value)
        }
        if let program = entry.match.filterProgram { try? spec.addMatch("filter_prog", String(program)) }
        let i = entry.instructions
        if let apply = i.applyActions { spec.instructions.append(.applyActions(apply.map(action))) }
        if i.clearActions { spec.instructions.append(.clearActions) }
        if let write = i.writeActions { spec.instructions.append(.writeActions(write.map(action))) }
        if let md = i.writeMetadata { spec.instructions.append(.writeMetadata(value: md.value, mask: md.mask)) }
        if let goto = i.gotoTable { spec.instructions.append(.gotoTable(goto)) }
        return spec
    }

    static func action(_ a: OkoDatapath.FlowAction) -> OkoSyntax.FlowAction {
        switch a {
        case .output(let port, let maxLength):
            let name = reservedPorts.first { $0.value == port }?.key ?? String(port)
            return .output(port: name, maxLength: port == OFPort.controller && maxLength != 0xFFFF ? maxLength : nil)
        case .group(let g): return .group(g)
        case .setField(let f, let v): return .setField(field: f.rawValue, value: text(f, v))
        case .pushVLAN(let t): return .pushVLAN(ethertype: t)
        case .popVLAN: return .popVLAN
        case .decTTL: return .decTTL
        // Rules installed over OpenFlow name maps by index (REST accepts indexes as map names too).
        case .sendMaps(_, let maps, let rate): return .sendMaps(maps: maps.map { String($0) }, maxPerSecond: rate)
        }
    }
}
