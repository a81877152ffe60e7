// Flow key: the parsed header fields of one packet as 12 fixed words.
//
// The same struct is used as a key, as a mask (bit set = field bit matters) and as a masked key, so
// classifier and caches reduce to word-wise AND, compare and hash with no per-field branching.
//
// Word layout (values in host order; multi-byte wire fields read big-endian):
//   w0  in_port:32 | eth_type:16 | vlan_tci:16 (pcp:3 | present 0x1000 | vid:12)
//   w1  metadata:64
//   w2  eth_dst:48 | ip_proto:8 | ip_tos:8 (dscp:6 high, ecn:2 low)
//   w3  eth_src:48 | ip_ttl:8 | reserved:8
//   w4  ipv4_src:32 | ipv4_dst:32 (ARP spa/tpa share these bits)
//   w5  ipv6_src high 64, w6 ipv6_src low 64
//   w7  ipv6_dst high 64, w8 ipv6_dst low 64
//   w9  tp_src:16 | tp_dst:16 | tcp_flags:16 | arp_op:16 (ICMP type/code live in tp_src/tp_dst)
//   w10 arp_sha:48, w11 arp_tha:48

public struct FlowKey: Hashable, Sendable {
    public var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0
    public var w4: UInt64 = 0, w5: UInt64 = 0, w6: UInt64 = 0, w7: UInt64 = 0
    public var w8: UInt64 = 0, w9: UInt64 = 0, w10: UInt64 = 0, w11: UInt64 = 0

    public static let wordCount = 12
    public static let zero = FlowKey()
    public static let all: FlowKey = {
        var k = FlowKey()
        for i in 0..<wordCount { k[word: i] = ~0 }
        return k
    }()

    public init() {}

    public subscript(word index: Int) -> UInt64 {
        @inline(__always) get {
            withUnsafeBytes(of: self) { $0.load(fromByteOffset: index &* 8, as: UInt64.self) }
        }
        @inline(__always) set {
            withUnsafeMutableBytes(of: &self) { $0.storeBytes(of: newValue, toByteOffset: index &* 8, as: UInt64.self) }
        }
    }

    /// Word-wise AND (applies a mask).
    @inlinable @inline(__always)
    public func masked(by m: FlowKey) -> FlowKey {
        var r = FlowKey()
        r.w0 = w0 & m.w0; r.w1 = w1 & m.w1; r.w2 = w2 & m.w2; r.w3 = w3 & m.w3
        r.w4 = w4 & m.w4; r.w5 = w5 & m.w5; r.w6 = w6 & m.w6; r.w7 = w7 & m.w7
        r.w8 = w8 & m.w8; r.w9 = w9 & m.w9; r.w10 = w10 & m.w10; r.w11 = w11 & m.w11
        return r
    }

    /// Word-wise OR (accumulates masks).
    @inlinable @inline(__always)
    public mutating func formUnion(_ m: FlowKey) {
        w0 |= m.w0; w1 |= m.w1; w2 |= m.w2; w3 |= m.w3; w4 |= m.w4; w5 |= m.w5
        w6 |= m.w6; w7 |= m.w7; w8 |= m.w8; w9 |= m.w9; w10 |= m.w10; w11 |= m.w11
    }

    /// True if every bit set in `self` is also set in `other`.
    public func isSubset(of other: FlowKey) -> Bool {
        for i in 0..<FlowKey.wordCount where self[word: i] & ~other[word: i] != 0 { return false }
        return true
    }

    @inlinable @inline(__always)
    public static func == (a: FlowKey, b: FlowKey) -> Bool {
        ((a.w0 ^ b.w0) | (a.w1 ^ b.w1) | (a.w2 ^ b.w2) | (a.w3 ^ b.w3) | (a.w4 ^ b.w4) | (a.w5 ^ b.w5)
            | (a.w6 ^ b.w6) | (a.w7 ^ b.w7) | (a.w8 ^ b.w8) | (a.w9 ^ b.w9) | (a.w10 ^ b.w10) | (a.w11 ^ b.w11)) == 0
    }

    /// Fast non-cryptographic hash used by the classifier and caches (not SipHash: keys come from our own
    /// tables, and hashing is on the per-packet path). Six independent 64x64->128-bit multiply-folds (one per
    /// pair of words) run in parallel and are folded once more, so the latency is about two multiplies
    /// instead of a serial chain of twelve.
    @inlinable @inline(__always)
    public var fastHash: UInt32 {
        @inline(__always) func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
            let p = a.multipliedFullWidth(by: b)
            return p.high ^ p.low
        }
        let f0 = fold(w0 ^ 0xA076_1D64_78BD_642F, w1 ^ 0xE703_7ED1_A0B4_28DB)
        let f1 = fold(w2 ^ 0x8EBC_6AF0_9C88_C6E3, w3 ^ 0x5899_65CC_7537_4CC3)
        let f2 = fold(w4 ^ 0x1D8E_4E27_C47D_124F, w5 ^ 0x9E37_79B9_7F4A_7C15)
        let f3 = fold(w6 ^ 0xBF58_476D_1CE4_E5B9, w7 ^ 0x94D0_49BB_1331_11EB)
        let f4 = fold(w8 ^ 0x632B_E59B_D9B4_E019, w9 ^ 0xCBF2_9CE4_8422_2325)
        let f5 = fold(w10 ^ 0x2545_F491_4F6C_DD1D, w11 ^ 0x6C8E_9CF5_7093_2BD5)
        let h = fold(f0 ^ f2 ^ f4 ^ 0x9FB2_1C65_1E98_DF25, f1 ^ f3 ^ f5 ^ 0xD6E8_FEB8_6659_FD93)
        return UInt32(truncatingIfNeeded: h ^ (h >> 32))
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(fastHash)
    }

    public var isZero: Bool { self == .zero }
}

/// A match field: where its bits live in `FlowKey`.
public enum FlowField: String, CaseIterable, Sendable, CustomStringConvertible {
    case inPort = "in_port"
    case metadata
    case ethSrc = "eth_src", ethDst = "eth_dst", ethType = "eth_type"
    case vlanVID = "vlan_vid", vlanPCP = "vlan_pcp"
    case arpOp = "arp_op", arpSPA = "arp_spa", arpTPA = "arp_tpa", arpSHA = "arp_sha", arpTHA = "arp_tha"
    case ipv4Src = "ipv4_src", ipv4Dst = "ipv4_dst"
    case ipProto = "ip_proto", ipDSCP = "ip_dscp", ipECN = "ip_ecn", ipTTL = "ip_ttl"
    case ipv6SrcHigh = "ipv6_src_high", ipv6SrcLow = "ipv6_src_low"
    case ipv6DstHigh = "ipv6_dst_high", ipv6DstLow = "ipv6_dst_low"
    case tcpSrc = "tcp_src", tcpDst = "tcp_dst", tcpFlags = "tcp_flags"
    case udpSrc = "udp_src", udpDst = "udp_dst"
    case sctpSrc = "sctp_src", sctpDst = "sctp_dst"
    case icmpv4Type = "icmpv4_type", icmpv4Code = "icmpv4_code"
    case icmpv6Type = "icmpv6_type", icmpv6Code = "icmpv6_code"

    public var description: String { rawValue }

    /// (word, shift, width in bits).
    @inlinable
    public var location: (word: Int, shift: Int, width: Int) {
        switch self {
        case .inPort: return (0, 0, 32)
        case .ethType: return (0, 32, 16)
        case .vlanVID: return (0, 48, 13)  // includes the OFPVID_PRESENT bit 0x1000
        case .vlanPCP: return (0, 61, 3)
        case .metadata: return (1, 0, 64)
        case .ethDst: return (2, 0, 48)
        case .ipProto: return (2, 48, 8)
        case .ipECN: return (2, 56, 2)
        case .ipDSCP: return (2, 58, 6)
        case .ethSrc: return (3, 0, 48)
        case .ipTTL: return (3, 48, 8)
        case .ipv4Src, .arpSPA: return (4, 0, 32)
        case .ipv4Dst, .arpTPA: return (4, 32, 32)
        case .ipv6SrcHigh: return (5, 0, 64)
        case .ipv6SrcLow: return (6, 0, 64)
        case .ipv6DstHigh: return (7, 0, 64)
        case .ipv6DstLow: return (8, 0, 64)
        case .tcpSrc, .udpSrc, .sctpSrc, .icmpv4Type, .icmpv6Type: return (9, 0, 16)
        case .tcpDst, .udpDst, .sctpDst, .icmpv4Code, .icmpv6Code: return (9, 16, 16)
        case .tcpFlags: return (9, 32, 12)
        case .arpOp: return (9, 48, 16)
        case .arpSHA: return (10, 0, 48)
        case .arpTHA: return (11, 0, 48)
        }
    }

    @inlinable
    public var maxValue: UInt64 {
        let w = location.width
        return w == 64 ? ~0 : (1 << UInt64(w)) - 1
    }

    /// The OpenFlow 1.3 prerequisites: (field, required value) pairs any match on `self` must include.
    public var prerequisites: [[(FlowField, UInt64)]] {
        let ipv4: [(FlowField, UInt64)] = [(.ethType, 0x0800)]
        let ipv6: [(FlowField, UInt64)] = [(.ethType, 0x86DD)]
        switch self {
        case .arpOp, .arpSPA, .arpTPA, .arpSHA, .arpTHA: return [[(.ethType, 0x0806)]]
        case .ipv4Src, .ipv4Dst: return [ipv4]
        case .ipv6SrcHigh, .ipv6SrcLow, .ipv6DstHigh, .ipv6DstLow: return [ipv6]
        case .ipProto, .ipDSCP, .ipECN, .ipTTL: return [ipv4, ipv6]
        case .tcpSrc, .tcpDst, .tcpFlags: return [ipv4 + [(.ipProto, 6)], ipv6 + [(.ipProto, 6)]]
        case .udpSrc, .udpDst: return [ipv4 + [(.ipProto, 17)], ipv6 + [(.ipProto, 17)]]
        case .sctpSrc, .sctpDst: return [ipv4 + [(.ipProto, 132)], ipv6 + [(.ipProto, 132)]]
        case .icmpv4Type, .icmpv4Code: return [ipv4 + [(.ipProto, 1)]]
        case .icmpv6Type, .icmpv6Code: return [ipv6 + [(.ipProto, 58)]]
        case .vlanPCP: return [[(.vlanVID, 0x1000)]]
        default: return []
        }
    }
}

extension FlowKey {
    @inlinable @inline(__always)
    public func value(_ field: FlowField) -> UInt64 {
        let (w, s, _) = field.location
        return (self[word: w] >> UInt64(s)) & field.maxValue
    }

    @inlinable @inline(__always)
    public mutating func set(_ field: FlowField, _ value: UInt64) {
        let (w, s, _) = field.location
        let m = field.maxValue << UInt64(s)
        self[word: w] = (self[word: w] & ~m) | ((value << UInt64(s)) & m)
    }

    /// Sets all bits of `field` in a mask key.
    public mutating func setAllBits(_ field: FlowField) { set(field, field.maxValue) }

    public var inPort: UInt32 { UInt32(truncatingIfNeeded: w0) }
}
