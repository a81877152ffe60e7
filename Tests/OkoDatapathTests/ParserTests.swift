import Testing
@testable import OkoDatapath

@Suite struct ParserTests {
    @Test func parsesTCPOverIPv4WithVLAN() {
        let bytes = PacketBuilder.tcp4(src: "10.0.0.1", dst: "10.0.0.2", sport: 1234, dport: 80, vlan: 5, pcp: 3, flags: 0x12)
        var key = FlowKey()
        let off = bytes.withUnsafeBytes { PacketParser.parse($0.baseAddress!, length: $0.count, inPort: 7, key: &key) }
        #expect(!off.malformed)
        #expect(key.value(.inPort) == 7)
        #expect(key.value(.ethType) == 0x0800)
        #expect(key.value(.vlanVID) == 0x1000 | 5)
        #expect(key.value(.vlanPCP) == 3)
        #expect(key.value(.ipv4Src) == 0x0A00_0001)
        #expect(key.value(.ipv4Dst) == 0x0A00_0002)
        #expect(key.value(.ipProto) == 6)
        #expect(key.value(.ipTTL) == 64)
        #expect(key.value(.tcpSrc) == 1234)
        #expect(key.value(.tcpDst) == 80)
        #expect(key.value(.tcpFlags) == 0x12)
        #expect(key.value(.ethSrc) == 0x0200_0000_0001)
        #expect(off.l3 == 18 && off.l4 == 38)
    }

    @Test func parsesUDPOverIPv6AndICMPv6() {
        let udp = PacketBuilder.udp6(sport: 53, dport: 5353)
        var key = FlowKey()
        _ = udp.withUnsafeBytes { PacketParser.parse($0.baseAddress!, length: $0.count, inPort: 1, key: &key) }
        #expect(key.value(.ethType) == 0x86DD)
        #expect(key.value(.ipProto) == 17)
        #expect(key.value(.udpSrc) == 53 && key.value(.udpDst) == 5353)
        #expect(key.value(.ipv6SrcLow) == 1 && key.value(.ipv6SrcHigh) == 0xFE80_0000_0000_0000)
        #expect(key.value(.ipTTL) == 64)
    }

    @Test func parsesARP() {
        let arp = PacketBuilder.arp(op: 1, spa: 0x0A000001, tpa: 0x0A000002)
        var key = FlowKey()
        _ = arp.withUnsafeBytes { PacketParser.parse($0.baseAddress!, length: $0.count, inPort: 1, key: &key) }
        #expect(key.value(.arpOp) == 1)
        #expect(key.value(.arpSPA) == 0x0A000001)
        #expect(key.value(.arpTPA) == 0x0A000002)
        #expect(key.value(.arpSHA) == 0x0200_0000_0001)
    }

    @Test func truncatedHeadersAreFlaggedWithoutCrashing() {
        let full = PacketBuilder.tcp4(src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2)
        var malformedCount = 0
        for cut in 0..<full.count {
            let part = Array(full.prefix(cut))
            var key = FlowKey()
            let off = part.withUnsafeBytes { buf -> HeaderOffsets in
                let p = buf.baseAddress ?? UnsafeRawPointer(bitPattern: 16)!
                return PacketParser.parse(p, length: cut, inPort: 1, key: &key)
            }
            // Headers end at 14 + 20 + 20 bytes; only the payload may be cut short after that.
            #expect(off.malformed == (cut < 54))
            if off.malformed { malformedCount += 1 }
            if cut >= 34 { #expect(key.value(.ipv4Src) == 0x0A00_0001) }
        }
        #expect(malformedCount == 54)
    }
}
