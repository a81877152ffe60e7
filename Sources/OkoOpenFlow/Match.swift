// OXM match fields (OpenFlow 1.3 section 7.2.3) and Oko's `filter_prog` experimenter field.
//
// An OXM TLV is a 4-byte header {class:16, field:7, hasmask:1, length:8} followed by `length` bytes:
// the value, then the mask of the same width when hasmask is set. A `Match` is the ofp_match
// envelope {type = OFPMT_OXM, length = 4 + TLV bytes} padded with zeros to a multiple of 8.
//
// filter_prog (Oko): class 0xFFFF (OFPXMC_EXPERIMENTER), field 40, hasmask 0, length 8 =
// be32 experimenter id 0x00002320 then be32 program id. A rule carrying it matches a packet only when
// the filter program returns 1 for that packet.

/// One OXM match field, typed. Masks are optional where OpenFlow allows them; nil means exact match.
public enum MatchField: Hashable, Sendable {
    case inPort(UInt32)
    case inPhyPort(UInt32)
    case metadata(UInt64, mask: UInt64? = nil)
    case ethDst(EthernetAddress, mask: EthernetAddress? = nil)
    case ethSrc(EthernetAddress, mask: EthernetAddress? = nil)
    case ethType(UInt16)
    /// VLAN id with the OFPVID_PRESENT bit (0x1000) as OpenFlow 1.3 defines it.
    case vlanVID(UInt16, mask: UInt16? = nil)
    case vlanPCP(UInt8)
    case ipDSCP(UInt8)
    case ipECN(UInt8)
    case ipProto(UInt8)
    case ipv4Src(UInt32, mask: UInt32? = nil)
    case ipv4Dst(UInt32, mask: UInt32? = nil)
    case tcpSrc(UInt16)
    case tcpDst(UInt16)
    case udpSrc(UInt16)
    case udpDst(UInt16)
    case sctpSrc(UInt16)
    case sctpDst(UInt16)
    case icmpv4Type(UInt8)
    case icmpv4Code(UInt8)
    case arpOp(UInt16)
    case arpSPA(UInt32, mask: UInt32? = nil)
    case arpTPA(UInt32, mask: UInt32? = nil)
    case arpSHA(EthernetAddress, mask: EthernetAddress? = nil)
    case arpTHA(EthernetAddress, mask: EthernetAddress? = nil)
    case ipv6Src(IPv6Address, mask: IPv6Address? = nil)
    case ipv6Dst(IPv6Address, mask: IPv6Address? = nil)
    case ipv6FLabel(UInt32, mask: UInt32? = nil)
    case icmpv6Type(UInt8)
    case icmpv6Code(UInt8)
    /// Oko: the packet must be accepted by BPF filter program `programID`.
    case filterProg(UInt32)
}

/// OXM class and field numbers.
public enum OXM {
    public static let basicClass: UInt16 = 0x8000
    public static let experimenterClass: UInt16 = 0xffff
    /// Oko's filter_prog field number inside the Nicira experimenter OXM class.
    public static let filterProgField: UInt8 = 40
    public static let vlanPresent: UInt16 = 0x1000

    /// (value width in bytes, mask allowed) per OFPXMT_OFB_* field number, for the fields we decode.
    static let basicFields: [UInt8: (width: Int, maskable: Bool)] = [
        0: (4, false), 1: (4, false), 2: (8, true), 3: (6, true), 4: (6, true), 5: (2, false),
        6: (2, true), 7: (1, false), 8: (1, false), 9: (1, false), 10: (1, false), 11: (4, true),
        12: (4, true), 13: (2, false), 14: (2, false), 15: (2, false), 16: (2, false), 17: (2, false),
        18: (2, false), 19: (1, false), 20: (1, false), 21: (2, false), 22: (4, true), 23: (4, true),
        24: (6, true), 25: (6, true), 26: (16, true), 27: (16, true), 28: (4, true), 29: (1, false),
        30: (1, false),
    ]
}

private func bigEndianValue(_ bytes: [UInt8]) -> UInt64 {
    bytes.reduce(0) { $0 << 8 | UInt64($1) }
}

private func bigEndianBytes(_ value: UInt64, width: Int) -> [UInt8] {
    (0..<width).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * (width - 1 - $0))) }
}

extension MatchField {
    /// The OFPXMT_OFB_* field number (or Oko's experimenter field number for filter_prog).
    public var fieldNumber: UInt8 {
        switch self {
        case .inPort: 0
        case .inPhyPort: 1
        case .metadata: 2
        case .ethDst: 3
        case .ethSrc: 4
        case .ethType: 5
        case .vlanVID: 6
        case .vlanPCP: 7
        case .ipDSCP: 8
        case .ipECN: 9
        case .ipProto: 10
        case .ipv4Src: 11
        case .ipv4Dst: 12
        case .tcpSrc: 13
        case .tcpDst: 14
        case .udpSrc: 15
        case .udpDst: 16
        case .sctpSrc: 17
        case .sctpDst: 18
        case .icmpv4Type: 19
        case .icmpv4Code: 20
        case .arpOp: 21
        case .arpSPA: 22
        case .arpTPA: 23
        case .arpSHA: 24
        case .arpTHA: 25
        case .ipv6Src: 26
        case .ipv6Dst: 27
        case .ipv6FLabel: 28
        case .icmpv6Type: 29
        case .icmpv6Code: 30
        case .filterProg: OXM.filterProgField
        }
    }

    var isExperimenter: Bool {
        if case .filterProg = self { return true }
        return false
    }

    var hasMask: Bool { valueAndMask.mask != nil }

    /// Value and mask bytes as they go on the wire (basic fields only; filter_prog handled separately).
    var valueAndMask: (value: [UInt8], mask: [UInt8]?) {
        func int<T: FixedWidthInteger>(_ value: T, _ mask: T?) -> ([UInt8], [UInt8]?) {
            let width = T.bitWidth / 8
            return (bigEndianBytes(UInt64(value), width: width), mask.map { bigEndianBytes(UInt64($0), width: width) })
        }
        switch self {
        case .inPort(let v), .inPhyPort(let v), .filterProg(let v): return int(v, nil)
        case .metadata(let v, let m): return int(v, m)
        case .ethDst(let v, let m), .ethSrc(let v, let m), .arpSHA(let v, let m), .arpTHA(let v, let m):
            return (v.bytes, m?.bytes)
        case .ethType(let v), .tcpSrc(let v), .tcpDst(let v), .udpSrc(let v), .udpDst(let v),
            .sctpSrc(let v), .sctpDst(let v), .arpOp(let v):
            return int(v, nil)
        case .vlanVID(let v, let m): return int(v, m)
        case .vlanPCP(let v), .ipDSCP(let v), .ipECN(let v), .ipProto(let v), .icmpv4Type(let v),
            .icmpv4Code(let v), .icmpv6Type(let v), .icmpv6Code(let v):
            return int(v, nil)
        case .ipv4Src(let v, let m), .ipv4Dst(let v, let m), .arpSPA(let v, let m), .arpTPA(let v, let m):
            return int(v, m)
        case .ipv6Src(let v, let m), .ipv6Dst(let v, let m): return (v.bytes, m?.bytes)
        case .ipv6FLabel(let v, let m): return int(v, m)
        }
    }

    /// Builds a typed field from a basic-class field number and its value/mask bytes (already
    /// length-checked against `OXM.basicFields`), rejecting out-of-range values and stray value bits.
    static func basic(field: UInt8, value: [UInt8], mask: [UInt8]?) throws(OpenFlowError) -> MatchField {
        if let mask {
            for (v, m) in zip(value, mask) where v & ~m != 0 {
                throw OpenFlowError(.badMatch, BadMatchCode.badWildcards,
                                    "OXM field \(field) has value bits set outside its mask")
            }
        }
        let v = bigEndianValue(value)
        let m = mask.map(bigEndianValue)
        func checkRange(_ limit: UInt64, _ name: String) throws(OpenFlowError) {
            guard v <= limit else {
                throw OpenFlowError(.badMatch, BadMatchCode.badValue, "\(name) value \(v) exceeds \(limit)")
            }
        }
        switch field {
        case 0: return .inPort(UInt32(v))
        case 1: return .inPhyPort(UInt32(v))
        case 2: return .metadata(v, mask: m)
        case 3: return .ethDst(EthernetAddress(value), mask: mask.map(EthernetAddress.init))
        case 4: return .ethSrc(EthernetAddress(value), mask: mask.map(EthernetAddress.init))
        case 5: return .ethType(UInt16(v))
        case 6:
            try checkRange(0x1fff, "vlan_vid")
            return .vlanVID(UInt16(v), mask: m.map { UInt16(truncatingIfNeeded: $0) })
        case 7: try checkRange(7, "vlan_pcp"); return .vlanPCP(UInt8(v))
        case 8: try checkRange(63, "ip_dscp"); return .ipDSCP(UInt8(v))
        case 9: try checkRange(3, "ip_ecn"); return .ipECN(UInt8(v))
        case 10: return .ipProto(UInt8(v))
        case 11: return .ipv4Src(UInt32(v), mask: m.map { UInt32(truncatingIfNeeded: $0) })
        case 12: return .ipv4Dst(UInt32(v), mask: m.map { UInt32(truncatingIfNeeded: $0) })
        case 13: return .tcpSrc(UInt16(v))
        case 14: return .tcpDst(UInt16(v))
        case 15: return .udpSrc(UInt16(v))
        case 16: return .udpDst(UInt16(v))
        case 17: return .sctpSrc(UInt16(v))
        case 18: return .sctpDst(UInt16(v))
        case 19: return .icmpv4Type(UInt8(v))
        case 20: return .icmpv4Code(UInt8(v))
        case 21: return .arpOp(UInt16(v))
        case 22: return .arpSPA(UInt32(v), mask: m.map { UInt32(truncatingIfNeeded: $0) })
        case 23: return .arpTPA(UInt32(v), mask: m.map { UInt32(truncatingIfNeeded: $0) })
        case 24: return .arpSHA(EthernetAddress(value), mask: mask.map(EthernetAddress.init))
        case 25: return .arpTHA(EthernetAddress(value), mask: mask.map(EthernetAddress.init))
        case 26: return .ipv6Src(IPv6Address(value), mask: mask.map(IPv6Address.init))
        case 27: return .ipv6Dst(IPv6Address(value), mask: mask.map(IPv6Address.init))
        case 28:
            try checkRange(0xfffff, "ipv6_flabel")
            return .ipv6FLabel(UInt32(v), mask: m.map { UInt32(truncatingIfNeeded: $0) })
        case 29: return .icmpv6Type(UInt8(v))
        case 30: return .icmpv6Code(UInt8(v))
        default:
            throw OpenFlowError(.badMatch, BadMatchCode.badField, "unsupported OXM basic field \(field)")
        }
    }

    /// Encodes this field as one OXM TLV.
    func encodeOXM(into writer: inout WireWriter) {
        if case .filterProg(let program) = self {
            writer.u16(OXM.experimenterClass)
            writer.u8(OXM.filterProgField << 1)
            writer.u8(8)
            writer.u32(niciraExperimenterID)
            writer.u32(program)
            return
        }
        let (value, mask) = valueAndMask
        writer.u16(OXM.basicClass)
        writer.u8(fieldNumber << 1 | (mask == nil ? 0 : 1))
        writer.u8(UInt8(value.count * (mask == nil ? 1 : 2)))
        writer.append(value)
        if let mask { writer.append(mask) }
    }

    /// Encoded OXM TLV length including its 4-byte header.
    var encodedLength: Int {
        if isExperimenter { return 12 }
        let (value, mask) = valueAndMask
        return 4 + value.count * (mask == nil ? 1 : 2)
    }

    /// Decodes one OXM TLV; errors are OFPET_BAD_MATCH codes.
    static func decodeOXM(from reader: inout WireReader) throws(OpenFlowError) -> MatchField {
        let badLength = OpenFlowError(.badMatch, BadMatchCode.badLen, "OXM field truncated")
        guard reader.remaining >= 4 else { throw badLength }
        let oxmClass = try reader.u16()
        let fieldAndMask = try reader.u8()
        let length = Int(try reader.u8())
        let field = fieldAndMask >> 1
        let hasMask = fieldAndMask & 1 == 1
        var body = try reader.sub(length, truncationError: badLength)
        switch oxmClass {
        case OXM.basicClass:
            guard let shape = OXM.basicFields[field] else {
                throw OpenFlowError(.badMatch, BadMatchCode.badField, "unsupported OXM basic field \(field)")
            }
            if hasMask && !shape.maskable {
                throw OpenFlowError(.badMatch, BadMatchCode.badMask, "OXM field \(field) cannot be masked")
            }
            guard length == shape.width * (hasMask ? 2 : 1) else {
                throw OpenFlowError(.badMatch, BadMatchCode.badLen,
                                    "OXM field \(field) has length \(length), expected \(shape.width * (hasMask ? 2 : 1))")
            }
            let value = try body.read(shape.width)
            let mask = hasMask ? try body.read(shape.width) : nil
            return try basic(field: field, value: value, mask: mask)
        case OXM.experimenterClass:
            guard length >= 4 else { throw OpenFlowError(.badMatch, BadMatchCode.badLen, "experimenter OXM shorter than its experimenter id") }
            let experimenter = try body.u32()
            guard experimenter == niciraExperimenterID, field == OXM.filterProgField else {
                throw OpenFlowError(.badMatch, BadMatchCode.badField,
                                    "unknown experimenter OXM field \(field) of experimenter 0x\(String(experimenter, radix: 16))")
            }
            guard !hasMask else { throw OpenFlowError(.badMatch, BadMatchCode.badMask, "filter_prog cannot be masked") }
            guard length == 8 else { throw OpenFlowError(.badMatch, BadMatchCode.badLen, "filter_prog OXM length \(length), expected 8") }
            return .filterProg(try body.u32())
        default:
            throw OpenFlowError(.badMatch, BadMatchCode.badField, "unsupported OXM class 0x\(String(oxmClass, radix: 16))")
        }
    }
}

/// An OpenFlow 1.3 match: a set of OXM fields (at most one of each), all of which must hold.
public struct Match: Hashable, Sendable {
    public var fields: [MatchField]

    public init(_ fields: [MatchField] = []) { self.fields = fields }

    public static let any = Match()

    /// The exact-match value of a prerequisite field, if present and unmasked.
    private func exact(_ field: UInt8) -> MatchField? {
        fields.first { $0.fieldNumber == field && !$0.isExperimenter && !$0.hasMask }
    }

    /// Checks duplicate fields and OXM prerequisites (OpenFlow 1.3 table 12); errors are OFPET_BAD_MATCH.
    public func validate() throws(OpenFlowError) {
        var seen = Set<UInt16>()
        for field in fields {
            let key = UInt16(field.isExperimenter ? 0x100 : 0) | UInt16(field.fieldNumber)
            guard seen.insert(key).inserted else {
                throw OpenFlowError(.badMatch, BadMatchCode.dupField, "OXM field \(field.fieldNumber) appears twice")
            }
        }
        var ethType: UInt16?
        if case .ethType(let value) = exact(5) { ethType = value }
        var ipProto: UInt8?
        if case .ipProto(let value) = exact(10) { ipProto = value }
        let isIP = ethType == 0x0800 || ethType == 0x86dd
        for field in fields where !field.isExperimenter {
            let ok: Bool
            switch field {
            case .inPhyPort: ok = exact(0) != nil
            case .vlanPCP:
                if case .vlanVID(let vid, nil) = exact(6) { ok = vid & OXM.vlanPresent != 0 } else { ok = false }
            case .ipDSCP, .ipECN, .ipProto: ok = isIP
            case .ipv4Src, .ipv4Dst: ok = ethType == 0x0800
            case .tcpSrc, .tcpDst: ok = isIP && ipProto == 6
            case .udpSrc, .udpDst: ok = isIP && ipProto == 17
            case .sctpSrc, .sctpDst: ok = isIP && ipProto == 132
            case .icmpv4Type, .icmpv4Code: ok = ethType == 0x0800 && ipProto == 1
            case .arpOp, .arpSPA, .arpTPA, .arpSHA, .arpTHA: ok = ethType == 0x0806
            case .ipv6Src, .ipv6Dst, .ipv6FLabel: ok = ethType == 0x86dd
            case .icmpv6Type, .icmpv6Code: ok = ethType == 0x86dd && ipProto == 58
            default: ok = true
            }
            guard ok else {
                throw OpenFlowError(.badMatch, BadMatchCode.badPrereq,
                                    "OXM field \(field.fieldNumber) lacks its prerequisite fields")
            }
        }
    }

    func encode(into writer: inout WireWriter) {
        let start = writer.count
        writer.u16(1)  // OFPMT_OXM
        writer.u16(UInt16(truncatingIfNeeded: 4 + fields.reduce(0) { $0 + $1.encodedLength }))
        for field in fields { field.encodeOXM(into: &writer) }
        writer.padTo8(since: start)
    }

    var encodedLength: Int {
        let unpadded = 4 + fields.reduce(0) { $0 + $1.encodedLength }
        return (unpadded + 7) / 8 * 8
    }

    /// Decodes an ofp_match (with its padding) from `reader`; errors are OFPET_BAD_MATCH codes.
    static func decode(from reader: inout WireReader) throws(OpenFlowError) -> Match {
        guard reader.remaining >= 4 else {
            throw OpenFlowError(.badMatch, BadMatchCode.badLen, "match header truncated")
        }
        let type = try reader.u16()
        let length = Int(try reader.u16())
        guard type == 1 else {
            throw OpenFlowError(.badMatch, BadMatchCode.badType, "match type \(type) is not OFPMT_OXM")
        }
        guard length >= 4 else {
            throw OpenFlowError(.badMatch, BadMatchCode.badLen, "match length \(length) below 4")
        }
        let padded = (length + 7) / 8 * 8
        guard padded - 4 <= reader.remaining else {
            throw OpenFlowError(.badMatch, BadMatchCode.badLen,
                                "match length \(length) (padded \(padded)) exceeds the \(reader.remaining + 4) bytes left")
        }
        var body = try reader.sub(length - 4, truncationError: OpenFlowError(.badMatch, BadMatchCode.badLen, "match truncated"))
        try reader.skip(padded - length)
        var fields: [MatchField] = []
        while !body.isAtEnd {
            fields.append(try MatchField.decodeOXM(from: &body))
        }
        return Match(fields)
    }
}
