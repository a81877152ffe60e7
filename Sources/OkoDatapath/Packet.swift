import Synchronization

// Packet abstraction shared by every backend.
//
// The pipeline never sees an `rte_mbuf` or an in-memory buffer object: it works on `PacketView`, a trivial
// struct (data pointer, length, headroom, tailroom, in_port, opaque backend handle). Prepending and trimming
// are pointer arithmetic on the view; the backend writes the final (data, length) back into its native buffer
// when it transmits. Only cloning and freeing need the backend (`PacketBufferBackend`), and both happen per
// batch or on multi-output paths, never as a per-packet dynamic call on the common path.

/// A view of one packet's bytes inside a backend-owned buffer.
public struct PacketView: @unchecked Sendable {
    /// First byte of the packet (Ethernet header).
    public var data: UnsafeMutableRawPointer
    public var length: UInt32
    /// Bytes available before `data` (for push VLAN).
    public var headroom: UInt32
    /// Bytes available after `data + length`.
    public var tailroom: UInt32
    /// OpenFlow port number the packet was received on.
    public var inPort: UInt32
    /// Backend buffer identity (an `rte_mbuf *`, or an in-memory buffer base).
    public var handle: UnsafeMutableRawPointer

    public init(data: UnsafeMutableRawPointer, length: UInt32, headroom: UInt32, tailroom: UInt32, inPort: UInt32,
                handle: UnsafeMutableRawPointer) {
        self.data = data
        self.length = length
        self.headroom = headroom
        self.tailroom = tailroom
        self.inPort = inPort
        self.handle = handle
    }

    /// Moves the start of the packet `n` bytes earlier (the new bytes are uninitialised).
    @inlinable @inline(__always)
    public mutating func prepend(_ n: UInt32) -> Bool {
        guard headroom >= n else { return false }
        data -= Int(n)
        headroom -= n
        length += n
        return true
    }

    /// Drops `n` bytes from the start of the packet.
    @inlinable @inline(__always)
    public mutating func trimFront(_ n: UInt32) -> Bool {
        guard length >= n else { return false }
        data += Int(n)
        headroom += n
        length -= n
        return true
    }

    public var bytes: [UInt8] {
        Array(UnsafeRawBufferPointer(start: data, count: Int(length)))
    }
}

/// The owner of packet buffers: clone and free. One per bridge (all ports of a bridge share a backend,
/// so a packet can be sent out of any port of its bridge).
public protocol PacketBufferBackend: AnyObject, Sendable {
    /// A deep copy of `packet` (bytes, headroom, in_port), or nil when out of buffers.
    func clone(_ packet: PacketView) -> PacketView?
    /// Returns buffers to the backend.
    func free(_ packets: UnsafeMutableBufferPointer<PacketView>)
    /// A new packet holding `bytes`, or nil when out of buffers (packet-out, tests).
    func allocate(bytes: UnsafeRawBufferPointer, inPort: UInt32) -> PacketView?
}

extension PacketBufferBackend {
    public func free(_ packet: PacketView) {
        var p = packet
        withUnsafeMutablePointer(to: &p) { free(UnsafeMutableBufferPointer(start: $0, count: 1)) }
    }

    public func allocate(_ bytes: [UInt8], inPort: UInt32) -> PacketView? {
        bytes.withUnsafeBytes { allocate(bytes: $0, inPort: inPort) }
    }
}

/// Heap buffers for tests and for software-only bridges: fixed-size buffers recycled through a free list.
public final class InMemoryPacketBuffers: PacketBufferBackend, @unchecked Sendable {
    public static let headroom: UInt32 = 128
    public static let bufferSize = 2048 + 128
    private let limit: Int
    private let lock = Mutex<FreeList>(FreeList())
    private struct FreeList: @unchecked Sendable {
        var buffers: [UnsafeMutableRawPointer] = []
        var outstanding = 0
    }

    /// `limit` bounds the number of live buffers (allocation fails beyond it, like an exhausted mempool).
    public init(limit: Int = 1 << 16) {
        self.limit = limit
    }

    deinit {
        lock.withLock { list in
            for b in list.buffers { b.deallocate() }
        }
    }

    /// Buffers currently handed out (leak checks in tests).
    public var outstanding: Int { lock.withLock { $0.outstanding } }

    private func take() -> UnsafeMutableRawPointer? {
        lock.withLock { list -> UnsafeMutableRawPointer? in
            guard list.outstanding < limit else { return nil }
            list.outstanding += 1
            if let b = list.buffers.popLast() { return b }
            return UnsafeMutableRawPointer.allocate(byteCount: Self.bufferSize, alignment: 64)
        }
    }

    public func allocate(bytes: UnsafeRawBufferPointer, inPort: UInt32) -> PacketView? {
        guard bytes.count <= Self.bufferSize - Int(Self.headroom), let base = take() else { return nil }
        let data = base + Int(Self.headroom)
        if let src = bytes.baseAddress, bytes.count > 0 { data.copyMemory(from: src, byteCount: bytes.count) }
        return PacketView(data: data, length: UInt32(bytes.count), headroom: Self.headroom,
                          tailroom: UInt32(Self.bufferSize) - Self.headroom - UInt32(bytes.count),
                          inPort: inPort, handle: base)
    }

    public func clone(_ packet: PacketView) -> PacketView? {
        guard let base = take() else { return nil }
        let data = base + Int(packet.headroom)
        data.copyMemory(from: packet.data, byteCount: Int(packet.length))
        return PacketView(data: data, length: packet.length, headroom: packet.headroom,
                          tailroom: packet.tailroom, inPort: packet.inPort, handle: base)
    }

    public func free(_ packets: UnsafeMutableBufferPointer<PacketView>) {
        guard !packets.isEmpty else { return }
        lock.withLock { list in
            for p in packets {
                list.buffers.append(p.handle)
                list.outstanding -= 1
            }
        }
    }
}

/// Maximum packets per burst/batch.
public let maxBatchSize = 32
