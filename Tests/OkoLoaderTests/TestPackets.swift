/// Builds Ethernet/IPv4/TCP/UDP frames byte by byte for the filter program tests.
enum TestPackets {
    static func ethernet(type: UInt16, payload: [UInt8]) -> [UInt8] {
        [0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, UInt8(type >> 8), UInt8(type & 0xff)] + payload
    }

    static func ipv4(source: [UInt8], destination: [UInt8], protocol: UInt8, ttl: UInt8 = 64, payload: [UInt8]) -> [UInt8] {
        let total = 20 + payload.count
        var header: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 1, 0x40, 0, ttl, `protocol`, 0, 0]
        header += source + destination
        return ethernet(type: 0x0800, payload: header + payload)
    }

    static func tcp(
        source: [UInt8], destination: [UInt8], sourcePort: UInt16, destinationPort: UInt16, flags: UInt8,
        sequence: UInt32 = 1000, window: UInt16 = 29200, options: [UInt8] = [], payload: [UInt8] = [], ttl: UInt8 = 64
    ) -> [UInt8] {
        precondition(options.count % 4 == 0)
        let dataOffset = UInt8((20 + options.count) / 4) << 4
        var segment: [UInt8] = [
            UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xff),
        ]
        segment += bigEndian(sequence) + bigEndian(UInt32(0))
        segment += [dataOffset, flags, UInt8(window >> 8), UInt8(window & 0xff), 0, 0, 0, 0]
        return ipv4(source: source, destination: destination, protocol: 6, ttl: ttl, payload: segment + options + payload)
    }

    static func udp(source: [UInt8], destination: [UInt8], sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8]) -> [UInt8] {
        let length = 8 + payload.count
        let datagram: [UInt8] = [
            UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xff),
            UInt8(length >> 8), UInt8(length & 0xff), 0, 0,
        ]
        return ipv4(source: source, destination: destination, protocol: 17, payload: datagram + payload)
    }

    /// A DNS query (12-byte header, then the name in wire form, type A, class IN).
    static func dnsQuery(name: String) -> [UInt8] {
        var message: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        message += wireName(name) + [0, 1, 0, 1]
        return udp(source: [10, 0, 0, 2], destination: [10, 0, 0, 53], sourcePort: 33333, destinationPort: 53, payload: message)
    }

    /// `example.com` -> 7example3com0.
    static func wireName(_ name: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for label in name.split(separator: ".") { bytes += [UInt8(label.utf8.count)] + Array(label.utf8) }
        return bytes + [0]
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    static func littleEndian(_ value: UInt64, count: Int = 8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    static func readLittleEndian(_ bytes: some Collection<UInt8>) -> UInt64 {
        bytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
}
