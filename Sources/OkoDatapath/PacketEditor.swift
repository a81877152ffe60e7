// Packet rewriting for set-field, VLAN push/pop and dec-TTL, with RFC 1624 incremental checksum updates
// (IPv4 header; TCP/UDP pseudo-header and ports; ICMP type/code). SCTP's CRC32c (RFC 9260 appendix A) has no
// incremental form as cheap as the one's complement sum's, so a port rewrite recomputes it over the SCTP
// packet (common header and chunks, up to the IP payload's end, not the Ethernet padding); it covers no
// pseudo-header, so address rewrites leave it alone.

enum PacketEditor {
    /// RFC 1624: HC' = ~(~HC + ~m + m').
    @inline(__always)
    static func adjust(_ csum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        var sum = UInt32(~csum) + UInt32(~old) + UInt32(new)
        sum = (sum & 0xFFFF) + (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16)
        return ~UInt16(truncatingIfNeeded: sum)
    }

    @inline(__always)
    static func adjustAt(_ p: PacketView, _ csumOffset: Int, old: UInt16, new: UInt16, udp: Bool = false) {
        guard csumOffset + 2 <= Int(p.length) else { return }
        let c = load16(p.data, csumOffset)
        if udp && c == 0 { return }  // UDP over IPv4 without checksum
        var n = adjust(c, old: old, new: new)
        if udp && n == 0 { n = 0xFFFF }
        store16(p.data, csumOffset, n)
    }

    /// Offset of the L4 checksum and whether it is UDP, if the packet has one we maintain.
    @inline(__always)
    static func l4Checksum(_ p: PacketView, _ off: HeaderOffsets, proto: UInt8) -> (Int, Bool)? {
        guard off.l4 != HeaderOffsets.absent else { return nil }
        let l4 = Int(off.l4)
        switch proto {
        case IPProtocol.tcp: return l4 + 20 <= Int(p.length) ? (l4 + 16, false) : nil
        case IPProtocol.udp: return l4 + 8 <= Int(p.length) ? (l4 + 6, true) : nil
        default: return nil
        }
    }

    @inline(__always)
    static func ethType(_ p: PacketView, _ off: HeaderOffsets) -> UInt16 {
        guard off.l3 != HeaderOffsets.absent, off.l3 >= 2 else { return 0 }
        return load16(p.data, Int(off.l3) - 2)
    }

    static func setField(_ p: inout PacketView, _ f: FlowField, _ v: UInt64, _ off: inout HeaderOffsets) {
        let len = Int(p.length)
        guard len >= 14 else { return }
        let d = p.data
        let et = ethType(p, off)
        let l3 = Int(off.l3)
        switch f {
        case .ethDst: store48(d, 0, v)
        case .ethSrc: store48(d, 6, v)
        case .vlanVID, .vlanPCP:
            let tpid = load16(d, 12)
            guard len >= 18, tpid == EtherType.vlan || tpid == EtherType.qinq else { return }
            var tci = load16(d, 14)
            if f == .vlanVID { tci = (tci & 0xF000) | UInt16(v & 0x0FFF) } else { tci = (tci & 0x1FFF) | UInt16(v & 7) << 13 }
            store16(d, 14, tci)
        case .ipv4Src, .ipv4Dst:
            guard et == EtherType.ipv4, l3 + 20 <= len else { return }
            let at = l3 + (f == .ipv4Src ? 12 : 16)
            let old = load32(d, at)
            let new = UInt32(truncatingIfNeeded: v)
            store32(d, at, new)
            for (o, n) in [(UInt16(old >> 16), UInt16(new >> 16)), (UInt16(old & 0xFFFF), UInt16(new & 0xFFFF))] {
                adjustAt(p, l3 + 10, old: o, new: n)
                if let (c, udp) = l4Checksum(p, off, proto: d.load(fromByteOffset: l3 + 9, as: UInt8.self)) {
                    adjustAt(p, c, old: o, new: n, udp: udp)
                }
            }
        case .ipDSCP, .ipECN:
            if et == EtherType.ipv4, l3 + 20 <= len {
                let oldWord = load16(d, l3)
                var tos = UInt8(oldWord & 0xFF)
                tos = f == .ipDSCP ? (tos & 0x03) | UInt8(v & 0x3F) << 2 : (tos & 0xFC) | UInt8(v & 3)
                let newWord = (oldWord & 0xFF00) | UInt16(tos)
                store16(d, l3, newWord)
                adjustAt(p, l3 + 10, old: oldWord, new: newWord)
            } else if et == EtherType.ipv6, l3 + 40 <= len {
                var w = load32(d, l3)
                var tc = UInt8(truncatingIfNeeded: w >> 20)
                tc = f == .ipDSCP ? (tc & 0x03) | UInt8(v & 0x3F) << 2 : (tc & 0xFC) | UInt8(v & 3)
                w = (w & 0xF00F_FFFF) | UInt32(tc) << 20
                store32(d, l3, w)
            }
        case .ipTTL:
            if et == EtherType.ipv4, l3 + 20 <= len {
                let oldWord = load16(d, l3 + 8)
                let newWord = (oldWord & 0x00FF) | UInt16(v & 0xFF) << 8
                store16(d, l3 + 8, newWord)
                adjustAt(p, l3 + 10, old: oldWord, new: newWord)
            } else if et == EtherType.ipv6, l3 + 40 <= len {
                d.storeBytes(of: UInt8(v & 0xFF), toByteOffset: l3 + 7, as: UInt8.self)
            }
        case .ipv6SrcHigh, .ipv6SrcLow, .ipv6DstHigh, .ipv6DstLow:
            guard et == EtherType.ipv6, l3 + 40 <= len else { return }
            let at = l3 + [FlowField.ipv6SrcHigh: 8, .ipv6SrcLow: 16, .ipv6DstHigh: 24, .ipv6DstLow: 32][f]!
            let old = load64(d, at)
            d.storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt64.self)
            let proto = UInt8(off.l4 != HeaderOffsets.absent ? 0 : 0)
            _ = proto
            // The next header of the L4 layer is in the key; recompute from the parsed key bits via the TCP/UDP offsets.
            for shift in stride(from: 48, through: 0, by: -16) {
                let o = UInt16(truncatingIfNeeded: old >> UInt64(shift))
                let n = UInt16(truncatingIfNeeded: v >> UInt64(shift))
                if let (c, udp) = l4ChecksumV6(p, off) { adjustAt(p, c, old: o, new: n, udp: udp) }
            }
        case .tcpSrc, .tcpDst, .udpSrc, .udpDst, .sctpSrc, .sctpDst:
            guard off.l4 != HeaderOffsets.absent else { return }
            let l4 = Int(off.l4)
            let at = l4 + ((f == .tcpSrc || f == .udpSrc || f == .sctpSrc) ? 0 : 2)
            guard at + 2 <= len else { return }
            let old = load16(d, at)
            let new = UInt16(truncatingIfNeeded: v)
            store16(d, at, new)
            let proto: UInt8 = (f == .tcpSrc || f == .tcpDst) ? IPProtocol.tcp : (f == .udpSrc || f == .udpDst) ? IPProtocol.udp : IPProtocol.sctp
            if proto == IPProtocol.sctp {
                updateSCTPChecksum(p, off)
            } else if let (c, udp) = l4Checksum(p, off, proto: proto) {
                adjustAt(p, c, old: old, new: new, udp: udp)
            }
        case .icmpv4Type, .icmpv4Code, .icmpv6Type, .icmpv6Code:
            guard off.l4 != HeaderOffsets.absent, Int(off.l4) + 4 <= len else { return }
            let l4 = Int(off.l4)
            let oldWord = load16(d, l4)
            let isType = f == .icmpv4Type || f == .icmpv6Type
            let newWord = isType ? (oldWord & 0x00FF) | UInt16(v & 0xFF) << 8 : (oldWord & 0xFF00) | UInt16(v & 0xFF)
            store16(d, l4, newWord)
            adjustAt(p, l4 + 2, old: oldWord, new: newWord)
        case .arpOp, .arpSPA, .arpTPA, .arpSHA, .arpTHA:
            guard et == EtherType.arp, l3 + 28 <= len else { return }
            switch f {
            case .arpOp: store16(d, l3 + 6, UInt16(truncatingIfNeeded: v))
            case .arpSHA: store48(d, l3 + 8, v)
            case .arpSPA: store32(d, l3 + 14, UInt32(truncatingIfNeeded: v))
            case .arpTHA: store48(d, l3 + 18, v)
            default: store32(d, l3 + 24, UInt32(truncatingIfNeeded: v))
            }
        case .ethType, .inPort, .metadata, .ipProto, .tcpFlags:
            break  // not settable on the packet (metadata lives in the key only)
        }
    }

    /// Recomputes the CRC32c of the SCTP packet at `off.l4` (ignored if the packet is not SCTP or truncated).
    static func updateSCTPChecksum(_ p: PacketView, _ off: HeaderOffsets) {
        guard off.l3 != HeaderOffsets.absent, off.l4 != HeaderOffsets.absent else { return }
        let l3 = Int(off.l3), l4 = Int(off.l4), len = Int(p.length)
        let end: Int
        switch ethType(p, off) {
        case EtherType.ipv4:
            guard l3 + 20 <= len, p.data.load(fromByteOffset: l3 + 9, as: UInt8.self) == IPProtocol.sctp else { return }
            end = l3 + Int(load16(p.data, l3 + 2))
        case EtherType.ipv6:
            guard l3 + 40 <= len, l4 == l3 + 40, p.data.load(fromByteOffset: l3 + 6, as: UInt8.self) == IPProtocol.sctp else { return }
            end = l3 + 40 + Int(load16(p.data, l3 + 4))
        default: return
        }
        guard l4 + 12 <= end, end <= len else { return }
        p.data.storeBytes(of: UInt32(0), toByteOffset: l4 + 8, as: UInt32.self)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: p.data + l4, count: end - l4))
        // The CRC goes on the wire least significant byte first (RFC 9260 appendix A).
        p.data.storeBytes(of: crc.littleEndian, toByteOffset: l4 + 8, as: UInt32.self)
    }

    /// TCP/UDP/ICMPv6 checksum offset of an IPv6 packet (all include the pseudo-header).
    static func l4ChecksumV6(_ p: PacketView, _ off: HeaderOffsets) -> (Int, Bool)? {
        guard off.l3 != HeaderOffsets.absent, off.l4 != HeaderOffsets.absent else { return nil }
        let l4 = Int(off.l4)
        // The last next-header byte before L4 is not tracked; the basic header's is enough without extensions.
        let proto = l4 == Int(off.l3) + 40 ? p.data.load(fromByteOffset: Int(off.l3) + 6, as: UInt8.self) : 0
        switch proto {
        case IPProtocol.tcp: return l4 + 20 <= Int(p.length) ? (l4 + 16, false) : nil
        case IPProtocol.udp: return l4 + 8 <= Int(p.length) ? (l4 + 6, false) : nil
        case IPProtocol.icmpv6: return l4 + 4 <= Int(p.length) ? (l4 + 2, false) : nil
        default: return nil
        }
    }

    /// Pushes an 802.1Q tag (copying vid/pcp from an existing outer tag, else 0).
    static func pushVLAN(_ p: inout PacketView, tpid: UInt16, _ off: inout HeaderOffsets) -> Bool {
        guard p.length >= 14 else { return false }
        let outer = load16(p.data, 12)
        let tci: UInt16 = (outer == EtherType.vlan || outer == EtherType.qinq) && p.length >= 18 ? load16(p.data, 14) : 0
        guard p.prepend(4) else { return false }
        p.data.copyMemory(from: p.data + 4, byteCount: 12)
        store16(p.data, 12, tpid)
        store16(p.data, 14, tci)
        if off.l3 != HeaderOffsets.absent { off.l3 += 4 }
        if off.l4 != HeaderOffsets.absent { off.l4 += 4 }
        return true
    }

    static func popVLAN(_ p: inout PacketView, _ off: inout HeaderOffsets) -> Bool {
        guard p.length >= 18 else { return false }
        let tpid = load16(p.data, 12)
        guard tpid == EtherType.vlan || tpid == EtherType.qinq else { return false }
        (p.data + 4).copyMemory(from: p.data, byteCount: 12)
        _ = p.trimFront(4)
        if off.l3 != HeaderOffsets.absent { off.l3 -= 4 }
        if off.l4 != HeaderOffsets.absent { off.l4 -= 4 }
        return true
    }

    /// Decrements the IPv4 TTL / IPv6 hop limit; false when it would reach zero (packet must be dropped).
    static func decrementTTL(_ p: inout PacketView, _ off: HeaderOffsets) -> Bool {
        let et = ethType(p, off)
        let l3 = Int(off.l3)
        if et == EtherType.ipv4, l3 + 20 <= Int(p.length) {
            let oldWord = load16(p.data, l3 + 8)
            guard oldWord >> 8 > 1 else { return false }
            let newWord = oldWord &- 0x0100
            store16(p.data, l3 + 8, newWord)
            adjustAt(p, l3 + 10, old: oldWord, new: newWord)
        } else if et == EtherType.ipv6, l3 + 40 <= Int(p.length) {
            let hop = p.data.load(fromByteOffset: l3 + 7, as: UInt8.self)
            guard hop > 1 else { return false }
            p.data.storeBytes(of: hop - 1, toByteOffset: l3 + 7, as: UInt8.self)
        }
        return true
    }
}

/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-8.
enum CRC32C {
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xFF)] }
        }
        return t
    }()

    /// The finished CRC32c of `bytes` (initial value and final xor 0xFFFFFFFF).
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        tables.withUnsafeBufferPointer { t in
            var crc: UInt32 = 0xFFFF_FFFF
            var i = 0
            let n = bytes.count
            while i + 8 <= n {
                let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) ^ UInt64(crc)
                crc = t[7 * 256 + Int(word & 0xFF)] ^ t[6 * 256 + Int((word >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((word >> 16) & 0xFF)] ^ t[4 * 256 + Int((word >> 24) & 0xFF)]
                    ^ t[3 * 256 + Int((word >> 32) & 0xFF)] ^ t[2 * 256 + Int((word >> 40) & 0xFF)]
                    ^ t[1 * 256 + Int((word >> 48) & 0xFF)] ^ t[Int(word >> 56)]
                i += 8
            }
            while i < n {
                crc = (crc >> 8) ^ t[Int((crc ^ UInt32(bytes[i])) & 0xFF)]
                i += 1
            }
            return ~crc
        }
    }
}
