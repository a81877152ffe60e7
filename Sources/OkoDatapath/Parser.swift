// Header parser: packet bytes -> FlowKey plus header offsets for the action executor.
//
// Every read is bounds-checked against the packet length; a truncated or malformed header stops parsing at
// that layer (fields of the layers already parsed stay in the key) and sets `malformed`, which the caller
// counts. Nothing here allocates.

/// Header offsets of a parsed packet; `absent` when the layer was not parsed.
public struct HeaderOffsets: Sendable, Equatable {
    public static let absent: UInt16 = 0xFFFF
    public var l3: UInt16 = absent
    public var l4: UInt16 = absent
    /// True when a header was truncated or invalid.
    public var malformed = false

    public init() {}
}

public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let vlan: UInt16 = 0x8100
    public static let qinq: UInt16 = 0x88A8
    public static let ipv6: UInt16 = 0x86DD
}

public enum IPProtocol {
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let icmpv6: UInt8 = 58
    public static let sctp: UInt8 = 132
}

@inline(__always) @usableFromInline
func load16(_ p: UnsafeRawPointer, _ off: Int) -> UInt16 {
    UInt16(bigEndian: p.loadUnaligned(fromByteOffset: off, as: UInt16.self))
}

@inline(__always) @usableFromInline
func load32(_ p: UnsafeRawPointer, _ off: Int) -> UInt32 {
    UInt32(bigEndian: p.loadUnaligned(fromByteOffset: off, as: UInt32.self))
}

@inline(__always) @usableFromInline
func load48(_ p: UnsafeRawPointer, _ off: Int) -> UInt64 {
    UInt64(load16(p, off)) << 32 | UInt64(load32(p, off + 2))
}

@inline(__always) @usableFromInline
func load64(_ p: UnsafeRawPointer, _ off: Int) -> UInt64 {
    UInt64(bigEndian: p.loadUnaligned(fromByteOffset: off, as: UInt64.self))
}

@inline(__always) @usableFromInline
func store16(_ p: UnsafeMutableRawPointer, _ off: Int, _ v: UInt16) {
    p.storeBytes(of: v.bigEndian, toByteOffset: off, as: UInt16.self)
}

@inline(__always) @usableFromInline
func store32(_ p: UnsafeMutableRawPointer, _ off: Int, _ v: UInt32) {
    p.storeBytes(of: v.bigEndian, toByteOffset: off, as: UInt32.self)
}

@inline(__always) @usableFromInline
func store48(_ p: UnsafeMutableRawPointer, _ off: Int, _ v: UInt64) {
    store16(p, off, UInt16(truncatingIfNeeded: v >> 32))
    store32(p, off + 2, UInt32(truncatingIfNeeded: v))
}

public enum PacketParser {
    /// Parses `length` bytes at `data` into `key` (in_port and metadata are set from the arguments).
    @inlinable
    public static func parse(_ data: UnsafeRawPointer, length: Int, inPort: UInt32, key: inout FlowKey) -> HeaderOffsets {
        key = FlowKey()
        key.w0 = UInt64(inPort)
        var off = HeaderOffsets()
        guard length >= 14 else {
            off.malformed = true
            return off
        }
        key.w2 = load48(data, 0)
        key.w3 = load48(data, 6)
        var ethType = load16(data, 12)
        var l3 = 14
        if ethType == EtherType.vlan || ethType == EtherType.qinq {
            guard length >= 18 else {
                key.set(.ethType, UInt64(ethType))
                off.malformed = true
                return off
            }
            let tci = load16(data, 14)
            // Key TCI: pcp in the top 3 bits, the OpenFlow "present" bit 0x1000, vid in the low 12 bits.
            key.w0 |= UInt64((tci & 0xE000) | 0x1000 | (tci & 0x0FFF)) << 48
            ethType = load16(data, 16)
            l3 = 18
        }
        key.w0 |= UInt64(ethType) << 32
        switch ethType {
        case EtherType.ipv4:
            parseIPv4(data, length: length, l3: l3, key: &key, off: &off)
        case EtherType.ipv6:
            parseIPv6(data, length: length, l3: l3, key: &key, off: &off)
        case EtherType.arp:
            off.l3 = UInt16(l3)
            guard length >= l3 + 28 else {
                off.malformed = true
                return off
            }
            // Only Ethernet/IPv4 ARP carries the fields OpenFlow names.
            guard load16(data, l3) == 1, load16(data, l3 + 2) == EtherType.ipv4,
                  data.load(fromByteOffset: l3 + 4, as: UInt8.self) == 6,
                  data.load(fromByteOffset: l3 + 5, as: UInt8.self) == 4
            else {
                off.malformed = true
                return off
            }
            key.w9 = UInt64(load16(data, l3 + 6)) << 48
            key.w10 = load48(data, l3 + 8)
            key.w4 = UInt64(load32(data, l3 + 14)) | UInt64(load32(data, l3 + 24)) << 32
            key.w11 = load48(data, l3 + 18)
        default:
            break
        }
        return off
    }

    @inlinable @inline(__always)
    static func parseIPv4(_ data: UnsafeRawPointer, length: Int, l3: Int, key: inout FlowKey, off: inout HeaderOffsets) {
        off.l3 = UInt16(l3)
        guard length >= l3 + 20 else {
            off.malformed = true
            return
        }
        let verIHL = data.load(fromByteOffset: l3, as: UInt8.self)
        let ihl = Int(verIHL & 0x0F) * 4
        guard verIHL >> 4 == 4, ihl >= 20, length >= l3 + ihl else {
            off.malformed = true
            return
        }
        let tos = data.load(fromByteOffset: l3 + 1, as: UInt8.self)
        let ttl = data.load(fromByteOffset: l3 + 8, as: UInt8.self)
        let proto = data.load(fromByteOffset: l3 + 9, as: UInt8.self)
        key.w2 |= UInt64(proto) << 48 | UInt64(tos) << 56
        key.w3 |= UInt64(ttl) << 48
        key.w4 = UInt64(load32(data, l3 + 12)) | UInt64(load32(data, l3 + 16)) << 32
        // Later fragments carry no L4 header.
        let fragOffset = load16(data, l3 + 6) & 0x1FFF
        guard fragOffset == 0 else { return }
        parseL4(data, length: length, l4: l3 + ihl, proto: proto, key: &key, off: &off)
    }

    @inlinable @inline(__always)
    static func parseIPv6(_ data: UnsafeRawPointer, length: Int, l3: Int, key: inout FlowKey, off: inout HeaderOffsets) {
        off.l3 = UInt16(l3)
        guard length >= l3 + 40 else {
            off.malformed = true
            return
        }
        let vtc = load32(data, l3)
        guard vtc >> 28 == 6 else {
            off.malformed = true
            return
        }
        let tclass = UInt8(truncatingIfNeeded: vtc >> 20)
        var next = data.load(fromByteOffset: l3 + 6, as: UInt8.self)
        let hop = data.load(fromByteOffset: l3 + 7, as: UInt8.self)
        key.w3 |= UInt64(hop) << 48
        key.w5 = load64(data, l3 + 8)
        key.w6 = load64(data, l3 + 16)
        key.w7 = load64(data, l3 + 24)
        key.w8 = load64(data, l3 + 32)
        var l4 = l3 + 40
        // Skip up to 4 extension headers (hop-by-hop, routing, destination options, fragment).
        var hops = 0
        while hops < 4, next == 0 || next == 43 || next == 60 || next == 44 {
            guard length >= l4 + 8 else {
                key.w2 |= UInt64(next) << 48 | UInt64(tclass) << 56
                off.malformed = true
                return
            }
            let following = data.load(fromByteOffset: l4, as: UInt8.self)
            if next == 44 {
                // A non-first fragment has no L4 header.
                if load16(data, l4 + 2) & 0xFFF8 != 0 {
                    key.w2 |= UInt64(following) << 48 | UInt64(tclass) << 56
                    return
                }
                l4 += 8
            } else {
                l4 += (Int(data.load(fromByteOffset: l4 + 1, as: UInt8.self)) + 1) * 8
            }
            next = following
            hops += 1
        }
        key.w2 |= UInt64(next) << 48 | UInt64(tclass) << 56
        parseL4(data, length: length, l4: l4, proto: next, key: &key, off: &off)
    }

    @inlinable @inline(__always)
    static func parseL4(_ data: UnsafeRawPointer, length: Int, l4: Int, proto: UInt8, key: inout FlowKey,
                        off: inout HeaderOffsets) {
        let need: Int
        switch proto {
        case IPProtocol.tcp: need = 20
        case IPProtocol.udp: need = 8
        case IPProtocol.sctp: need = 12
        case IPProtocol.icmp, IPProtocol.icmpv6: need = 4
        default: return
        }
        guard length >= l4 + need else {
            off.malformed = true
            return
        }
        off.l4 = UInt16(l4)
        switch proto {
        case IPProtocol.icmp, IPProtocol.icmpv6:
            key.w9 = UInt64(data.load(fromByteOffset: l4, as: UInt8.self))
                | UInt64(data.load(fromByteOffset: l4 + 1, as: UInt8.self)) << 16
        case IPProtocol.tcp:
            key.w9 = UInt64(load16(data, l4)) | UInt64(load16(data, l4 + 2)) << 16
                | UInt64(load16(data, l4 + 12) & 0x0FFF) << 32
        default:
            key.w9 = UInt64(load16(data, l4)) | UInt64(load16(data, l4 + 2)) << 16
        }
    }
}
