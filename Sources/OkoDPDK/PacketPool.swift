import CDPDK

/// An mbuf pool (rte_pktmbuf_pool). Owned by the control plane; freed when released.
public final class PacketPool: @unchecked Sendable {
    public let pointer: OpaquePointer
    public let name: String

    /// - Parameters:
    ///   - count: mbufs in the pool; `net_pcap` with `infinite_rx=1` needs at least the pcap's packet count.
    ///   - dataRoom: bytes per mbuf including the 128-byte headroom.
    public init(name: String, count: UInt32, cacheSize: UInt32 = 256, dataRoom: UInt16 = 2048 + 128, socket: Int32 = -1) throws(DPDKError) {
        guard let pool = oko_pktmbuf_pool_create(name, count, cacheSize, dataRoom, socket) else {
            throw DPDKError("rte_pktmbuf_pool_create(\(name), \(count) mbufs)", code: oko_errno())
        }
        self.pointer = pool
        self.name = name
    }

    deinit { oko_mempool_free(pointer) }

    public var available: UInt32 { oko_mempool_avail(pointer) }

    /// A new single-segment mbuf holding `bytes`, or nil when the pool is empty or the packet too big.
    public func makePacket(_ bytes: [UInt8]) -> OpaquePointer? {
        guard let mbuf = oko_pktmbuf_alloc(pointer) else { return nil }
        guard bytes.count <= Int(UInt16.max), let data = oko_pktmbuf_append(mbuf, UInt16(bytes.count)) else {
            oko_pktmbuf_free(mbuf)
            return nil
        }
        bytes.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: bytes.count) }
        return mbuf
    }
}

/// Per-packet mbuf accessors (inline C; no call overhead).
public enum Mbuf {
    @inline(__always) public static func data(_ mbuf: OpaquePointer) -> UnsafeMutablePointer<UInt8> { oko_mbuf_data(mbuf) }
    @inline(__always) public static func dataLength(_ mbuf: OpaquePointer) -> Int { Int(oko_mbuf_data_len(mbuf)) }
    @inline(__always) public static func packetLength(_ mbuf: OpaquePointer) -> Int { Int(oko_mbuf_pkt_len(mbuf)) }
    @inline(__always) public static func port(_ mbuf: OpaquePointer) -> UInt16 { oko_mbuf_port(mbuf) }
    @inline(__always) public static func segmentCount(_ mbuf: OpaquePointer) -> Int { Int(oko_mbuf_nb_segs(mbuf)) }
    @inline(__always) public static func headroom(_ mbuf: OpaquePointer) -> Int { Int(oko_mbuf_headroom(mbuf)) }
    @inline(__always) public static func prepend(_ mbuf: OpaquePointer, _ count: UInt16) -> UnsafeMutablePointer<UInt8>? { oko_mbuf_prepend(mbuf, count) }
    @inline(__always) public static func trimFront(_ mbuf: OpaquePointer, _ count: UInt16) -> UnsafeMutablePointer<UInt8>? { oko_mbuf_adj(mbuf, count) }
    @inline(__always) public static func free(_ mbuf: OpaquePointer) { oko_pktmbuf_free(mbuf) }
    @inline(__always) public static func freeBulk(_ mbufs: UnsafeMutablePointer<OpaquePointer?>, count: Int) {
        oko_pktmbuf_free_bulk(mbufs, UInt32(count))
    }
    /// A deep copy from `pool` (for flooding to several ports), or nil when the pool is empty.
    @inline(__always) public static func copy(_ mbuf: OpaquePointer, pool: PacketPool) -> OpaquePointer? {
        oko_pktmbuf_copy(mbuf, pool.pointer)
    }
    /// The packet's bytes (all segments) as an array: control plane and tests only.
    public static func bytes(_ mbuf: OpaquePointer) -> [UInt8] {
        let length = packetLength(mbuf)
        return [UInt8](unsafeUninitializedCapacity: length) { buffer, count in
            count = Int(oko_pktmbuf_read(mbuf, buffer.baseAddress, UInt32(length)))
        }
    }
}
