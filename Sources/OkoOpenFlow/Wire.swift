// Big-endian reader and writer over byte arrays. Every read is bounds-checked against the reader's own
// end (not the array's), so a sub-reader for a nested structure can never read past that structure.

/// Reads big-endian fields from `bytes[position..<end]`; running past `end` throws `truncationError`.
struct WireReader {
    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int
    /// What to report when a field is cut short; nested structures use their own (e.g. BAD_ACTION/BAD_LEN).
    let truncationError: OpenFlowError

    init(_ bytes: [UInt8], truncationError: OpenFlowError) {
        self.bytes = bytes
        self.position = 0
        self.end = bytes.count
        self.truncationError = truncationError
    }

    private init(bytes: [UInt8], position: Int, end: Int, truncationError: OpenFlowError) {
        self.bytes = bytes
        self.position = position
        self.end = end
        self.truncationError = truncationError
    }

    var remaining: Int { end - position }
    var isAtEnd: Bool { position >= end }

    private mutating func claim(_ count: Int) throws(OpenFlowError) -> Int {
        guard count >= 0, count <= end - position else {
            var error = truncationError
            error.reason += " (needed \(count) bytes at offset \(position), \(end - position) left)"
            throw error
        }
        let start = position
        position += count
        return start
    }

    mutating func u8() throws(OpenFlowError) -> UInt8 {
        let at = try claim(1)
        return bytes[at]
    }

    mutating func u16() throws(OpenFlowError) -> UInt16 {
        let at = try claim(2)
        return UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1])
    }

    mutating func u32() throws(OpenFlowError) -> UInt32 {
        let at = try claim(4)
        var value: UInt32 = 0
        for index in at..<(at + 4) { value = value << 8 | UInt32(bytes[index]) }
        return value
    }

    mutating func u64() throws(OpenFlowError) -> UInt64 {
        let at = try claim(8)
        var value: UInt64 = 0
        for index in at..<(at + 8) { value = value << 8 | UInt64(bytes[index]) }
        return value
    }

    mutating func read(_ count: Int) throws(OpenFlowError) -> [UInt8] {
        let at = try claim(count)
        return Array(bytes[at..<(at + count)])
    }

    mutating func readRest() -> [UInt8] {
        let rest = Array(bytes[position..<end])
        position = end
        return rest
    }

    mutating func skip(_ count: Int) throws(OpenFlowError) {
        _ = try claim(count)
    }

    /// A fixed-size, NUL-padded string field.
    mutating func fixedString(_ size: Int) throws(OpenFlowError) -> String {
        let raw = try read(size)
        let text = raw.prefix { $0 != 0 }
        return String(decoding: text, as: UTF8.self)
    }

    /// Peeks a big-endian u16 at `offset` bytes ahead without consuming; nil if not enough bytes.
    func peekU16(at offset: Int = 0) -> UInt16? {
        let at = position + offset
        guard offset >= 0, at + 2 <= end else { return nil }
        return UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1])
    }

    /// Consumes `count` bytes and returns a reader restricted to them, reporting `error` on truncation.
    mutating func sub(_ count: Int, truncationError: OpenFlowError) throws(OpenFlowError) -> WireReader {
        let at = try claim(count)
        return WireReader(bytes: bytes, position: at, end: at + count, truncationError: truncationError)
    }
}

/// Appends big-endian fields to a growing byte array.
struct WireWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    var count: Int { bytes.count }

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func u16(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    mutating func u32(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    mutating func u64(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    mutating func append(_ data: some Sequence<UInt8>) { bytes.append(contentsOf: data) }

    mutating func zeros(_ count: Int) { bytes.append(contentsOf: repeatElement(0, count: count)) }

    /// Writes `text` as a NUL-padded field of exactly `size` bytes (truncated so a NUL always ends it).
    mutating func fixedString(_ text: String, size: Int) {
        let utf8 = Array(text.utf8.prefix(size - 1))
        append(utf8)
        zeros(size - utf8.count)
    }

    /// Pads with zeros so that the bytes written since `start` are a multiple of 8.
    mutating func padTo8(since start: Int) {
        let length = bytes.count - start
        zeros((8 - length % 8) % 8)
    }

    /// Overwrites a big-endian u16 at `offset` (used to back-fill length fields).
    mutating func patchU16(at offset: Int, _ value: UInt16) {
        bytes[offset] = UInt8(truncatingIfNeeded: value >> 8)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: value)
    }
}

/// Six-byte Ethernet MAC address.
public struct EthernetAddress: Hashable, Sendable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == 6, "an Ethernet address has 6 bytes")
        self.bytes = bytes
    }

    public static let zero = EthernetAddress([0, 0, 0, 0, 0, 0])

    public var description: String {
        bytes.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}

/// Sixteen-byte IPv6 address.
public struct IPv6Address: Hashable, Sendable {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == 16, "an IPv6 address has 16 bytes")
        self.bytes = bytes
    }
}
