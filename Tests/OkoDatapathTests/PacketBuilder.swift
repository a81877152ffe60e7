@testable import OkoDatapath

/// Crafts test packets byte by byte (checksums computed so checksum updates can be verified).
enum PacketBuilder {
    static let macA: [UInt8] = [2, 0, 0, 0, 0, 1]
    static let macB: [UInt8] = [2, 0, 0, 0, 0, 2]

    static func ipv4(_ s: String) -> [UInt8] { s.split(separator: ".").map { UInt8($0)! } }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }

    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count { sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func ethernet(dst: [UInt8] = macB, src: [UInt8] = macA, type: UInt16, vlan: UInt16? = nil, pcp: UInt8 = 0) -> [UInt8] {
        var b = dst + src
        if let vlan { b += be16(0x8100) + be16(UInt16(pcp) << 13 | vlan) }
        return b + be16(type)
    }

    static func tcp4(src: String, dst: String, sport: UInt16, dport: UInt16, vlan: UInt16? = nil, pcp: UInt8 = 0,
                     flags: UInt16 = 0x02, ttl: UInt8 = 64, dstMAC: [UInt8] = macB, srcMAC: [UInt8] = macA,
                     payload: [UInt8] = [1, 2, 3, 4]) -> [UInt8] {
        l4v4(src: src, dst: dst, proto: 6, ttl: ttl, vlan: vlan, pcp: pcp, dstMAC: dstMAC, srcMAC: srcMAC, checksumOffset: 16,
             l4: be16(sport) + be16(dport) + [0, 0, 0, 1, 0, 0, 0, 0] + be16(0x5000 | flags) + be16(512) + [0, 0, 0, 0] + payload)
    }

    static func udp4(src: String, dst: String, sport: UInt16, dport: UInt16, ttl: UInt8 = 64,
                     dstMAC: [UInt8] = macB, srcMAC: [UInt8] = macA, payload: [UInt8] = [9, 9, 9]) -> [UInt8] {
        l4v4(src: src, dst: dst, proto: 17, ttl: ttl, vlan: nil, pcp: 0, dstMAC: dstMAC, srcMAC: srcMAC, checksumOffset: 6,
             l4: be16(sport) + be16(dport) + be16(UInt16(8 + payload.count)) + [0, 0] + payload)
    }

    static func l4v4(src: String, dst: String, proto: UInt8, ttl: UInt8, vlan: UInt16?, pcp: UInt8,
                     dstMAC: [UInt8], srcMAC: [UInt8], checksumOffset: Int, l4: [UInt8]) -> [UInt8] {
        var seg = l4
        let pseudo = ipv4(src) + ipv4(dst) + [0, proto] + be16(UInt16(seg.count))
        let c = checksum(pseudo + seg)
        seg[checksumOffset] = UInt8(c >> 8); seg[checksumOffset + 1] = UInt8(c & 0xFF)
        var ip: [UInt8] = [0x45, 0] + be16(UInt16(20 + seg.count)) + [0, 1, 0, 0, ttl, proto, 0, 0] + ipv4(src) + ipv4(dst)
        let ic = checksum(ip)
        ip[10] = UInt8(ic >> 8); ip[11] = UInt8(ic & 0xFF)
        return ethernet(dst: dstMAC, src: srcMAC, type: 0x0800, vlan: vlan, pcp: pcp) + ip + seg
    }

    static func udp6(sport: UInt16, dport: UInt16) -> [UInt8] {
        let payload: [UInt8] = [1, 2]
        let udp = be16(sport) + be16(dport) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
        let src: [UInt8] = [0xFE, 0x80] + [UInt8](repeating: 0, count: 13) + [1]
        let dst: [UInt8] = [0xFE, 0x80] + [UInt8](repeating: 0, count: 13) + [2]
        let ip: [UInt8] = [0x60, 0, 0, 0] + be16(UInt16(udp.count)) + [17, 64] + src + dst
        return ethernet(type: 0x86DD) + ip + udp
    }

    static func arp(op: UInt16, spa: UInt32, tpa: UInt32) -> [UInt8] {
        let body: [UInt8] = be16(1) + be16(0x0800) + [6, 4] + be16(op) + macA + be16(UInt16(spa >> 16)) + be16(UInt16(spa & 0xFFFF))
            + [0, 0, 0, 0, 0, 0] + be16(UInt16(tpa >> 16)) + be16(UInt16(tpa & 0xFFFF))
        return ethernet(dst: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], type: 0x0806) + body
    }

    /// True when the IPv4 header checksum and the TCP/UDP checksum of an untagged IPv4 packet verify.
    static func checksumsValid(_ p: [UInt8], l3: Int = 14) -> Bool {
        let ihl = Int(p[l3] & 0x0F) * 4
        guard checksum(Array(p[l3..<(l3 + ihl)])) == 0 else { return false }
        let proto = p[l3 + 9]
        let seg = Array(p[(l3 + ihl)...])
        let pseudo = Array(p[(l3 + 12)..<(l3 + 20)]) + [0, proto] + be16(UInt16(seg.count))
        return checksum(pseudo + seg) == 0
    }
}
