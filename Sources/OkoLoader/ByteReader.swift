/// Bounds-checked little-endian reads from a byte array. Every read either returns a value or
/// throws `BPFLoaderError`; nothing here can trap on hostile input.
struct ByteReader {
    let bytes: [UInt8]
    /// Names the region in error messages ("section .BTF").
    let context: String

    init(_ bytes: [UInt8], context: String) {
        self.bytes = bytes
        self.context = context
    }

    func checkRange(_ offset: Int, _ count: Int) throws(BPFLoaderError) {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else {
            throw .malformed("\(context): read of \(count) bytes at offset \(offset) past its end (\(bytes.count) bytes)")
        }
    }

    func u8(at offset: Int) throws(BPFLoaderError) -> UInt8 {
        try checkRange(offset, 1)
        return bytes[offset]
    }

    func u16(at offset: Int) throws(BPFLoaderError) -> UInt16 {
        try checkRange(offset, 2)
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    func u32(at offset: Int) throws(BPFLoaderError) -> UInt32 {
        try checkRange(offset, 4)
        var value: UInt32 = 0
        for index in (0..<4).reversed() { value = value << 8 | UInt32(bytes[offset + index]) }
        return value
    }

    func u64(at offset: Int) throws(BPFLoaderError) -> UInt64 {
        try checkRange(offset, 8)
        var value: UInt64 = 0
        for index in (0..<8).reversed() { value = value << 8 | UInt64(bytes[offset + index]) }
        return value
    }

    func slice(_ offset: Int, _ count: Int) throws(BPFLoaderError) -> [UInt8] {
        try checkRange(offset, count)
        return Array(bytes[offset..<offset + count])
    }

    /// The NUL-terminated string starting at `offset` (to the end of the region if unterminated).
    func cString(at offset: Int) throws(BPFLoaderError) -> String {
        try checkRange(offset, 0)
        var end = offset
        while end < bytes.count, bytes[end] != 0 { end += 1 }
        return String(decoding: bytes[offset..<end], as: UTF8.self)
    }
}
