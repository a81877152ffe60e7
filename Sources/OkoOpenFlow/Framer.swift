// Cuts a TCP byte stream into OpenFlow messages.

/// The stream cannot be resynchronised: the connection must close.
public struct FramingError: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { "OpenFlow framing error: \(reason)" }
}

/// Accumulates bytes from any sequence of reads and yields whole messages (header included). Invariant:
/// `buffer[consumed...]` holds the unparsed tail; consumed bytes are discarded once they dominate.
public struct OpenFlowFramer: Sendable {
    private var buffer: [UInt8] = []
    private var consumed = 0

    public init() {}

    /// Bytes received but not yet returned as a message.
    public var bufferedByteCount: Int { buffer.count - consumed }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next whole message, nil if more bytes are needed; throws if the header's length is below 8.
    public mutating func nextMessage() throws(FramingError) -> [UInt8]? {
        let available = buffer.count - consumed
        guard available >= OpenFlowHeader.size else { return nil }
        let length = Int(buffer[consumed + 2]) << 8 | Int(buffer[consumed + 3])
        guard length >= OpenFlowHeader.size else {
            throw FramingError(reason: "message length \(length) is below the 8-byte header")
        }
        guard available >= length else { return nil }
        let message = Array(buffer[consumed..<(consumed + length)])
        consumed += length
        if consumed == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            consumed = 0
        } else if consumed > 65536 && consumed > buffer.count / 2 {
            buffer.removeFirst(consumed)
            consumed = 0
        }
        return message
    }
}
