// DPDK backend of the datapath: ethdev ports and mbuf buffers behind `DatapathPort` and
// `PacketBufferBackend`.
//
// Design note
// - A received mbuf becomes a `PacketView` whose handle is the mbuf pointer; the pipeline edits the view
//   (pointer arithmetic for push/pop VLAN, in-place header writes) and `transmit` writes the final data
//   offset and length back into the mbuf just before `rte_eth_tx_burst`. Only the first segment is visible
//   to the pipeline (jumbo frames spanning segments keep their tail untouched).
// - Queues: each port has one receive queue, polled by the one PMD thread that owns the port, and one
//   transmit queue per PMD thread (`transmit(queue:)` gets the PMD index), so no queue is ever shared.
// - Buffers come from one `PacketPool` per process; clones for flooding and packet-outs are new mbufs.
import CDPDK
import OkoDPDK
import Synchronization

/// mbufs from a DPDK mempool.
public final class DPDKPacketBuffers: PacketBufferBackend, @unchecked Sendable {
    public let pool: PacketPool

    public init(pool: PacketPool) { self.pool = pool }

    @inline(__always)
    static func view(of mbuf: OpaquePointer, inPort: UInt32) -> PacketView {
        PacketView(
            data: UnsafeMutableRawPointer(oko_mbuf_data(mbuf)), length: UInt32(oko_mbuf_data_len(mbuf)),
            headroom: UInt32(oko_mbuf_headroom(mbuf)), tailroom: UInt32(oko_mbuf_tailroom(mbuf)),
            inPort: inPort, handle: UnsafeMutableRawPointer(mbuf))
    }

    public func allocate(bytes: UnsafeRawBufferPointer, inPort: UInt32) -> PacketView? {
        guard bytes.count <= Int(UInt16.max), let mbuf = oko_pktmbuf_alloc(pool.pointer) else { return nil }
        guard let data = oko_pktmbuf_append(mbuf, UInt16(bytes.count)) else {
            oko_pktmbuf_free(mbuf)
            return nil
        }
        if let source = bytes.baseAddress, bytes.count > 0 { UnsafeMutableRawPointer(data).copyMemory(from: source, byteCount: bytes.count) }
        return Self.view(of: mbuf, inPort: inPort)
    }

    public func clone(_ packet: PacketView) -> PacketView? {
        allocate(bytes: UnsafeRawBufferPointer(start: packet.data, count: Int(packet.length)), inPort: packet.inPort)
    }

    public func free(_ packets: UnsafeMutableBufferPointer<PacketView>) {
        for packet in packets { oko_pktmbuf_free(OpaquePointer(packet.handle)) }
    }
}

/// An ethdev port as a datapath port.
public final class DPDKPort: DatapathPort, @unchecked Sendable {
    public let port: EthernetPort
    /// The operator's label for the port, or DPDK's device name.
    public let name: String
    public static let burstCapacity = 64
    /// One mbuf array of `burstCapacity` per queue, so that each polling thread has its own.
    private let mbufArrays: UnsafeMutablePointer<OpaquePointer?>
    private let queueCount: Int
    /// `port.id`, so a burst calls DPDK without touching (and reference counting) the EthernetPort object.
    private let portID: UInt16

    /// Starts `port` with one receive queue and `transmitQueues` transmit queues (one per PMD thread).
    public init(port: EthernetPort, pool: PacketPool, transmitQueues: Int, name: String? = nil, descriptors: UInt16 = 1024) throws(DPDKError) {
        self.port = port
        self.name = name ?? port.name
        try port.start(pool: pool, rxQueues: 1, txQueues: UInt16(max(1, transmitQueues)), descriptors: descriptors)
        queueCount = max(1, transmitQueues)
        mbufArrays = .allocate(capacity: queueCount * DPDKPort.burstCapacity)
        portID = port.id
    }

    private let closed = Atomic<Bool>(false)

    /// Stops and detaches the device (once). Called when the port leaves its bridge for good, or at shutdown
    /// before the EAL is cleaned up.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing), EAL.isInitialised else { return }
        port.stop()
        port.detach()
    }

    deinit {
        // The last reference goes once no poll-mode thread can still see the port (epoch reclamation).
        close()
        mbufArrays.deallocate()
    }

    @inline(__always)
    private func array(_ queue: Int) -> UnsafeMutablePointer<OpaquePointer?> {
        mbufArrays + (queue % queueCount) * Self.burstCapacity
    }

    public func receive(queue: Int, into packets: UnsafeMutableBufferPointer<PacketView>, inPort: UInt32) -> Int {
        let mbufs = array(queue)
        let received = Int(oko_rx_burst(portID, 0, mbufs, UInt16(min(packets.count, Self.burstCapacity))))
        for index in 0..<received {
            (packets.baseAddress! + index).initialize(to: DPDKPacketBuffers.view(of: mbufs[index]!, inPort: inPort))
        }
        return received
    }

    public func transmit(queue: Int, _ packets: UnsafeMutableBufferPointer<PacketView>) -> Int {
        let mbufs = array(queue)
        let count = min(packets.count, Self.burstCapacity)
        for index in 0..<count {
            let packet = packets[index]
            let mbuf = OpaquePointer(packet.handle)
            oko_mbuf_set_data(mbuf, packet.data.assumingMemoryBound(to: UInt8.self), UInt16(truncatingIfNeeded: packet.length))
            mbufs[index] = mbuf
        }
        return Int(oko_tx_burst(portID, UInt16(queue % queueCount), mbufs, UInt16(count)))
    }

    public var statistics: PortBackendStatistics {
        let stats = port.statistics
        var result = PortBackendStatistics()
        result.rxPackets = stats.rxPackets
        result.txPackets = stats.txPackets
        result.rxDrops = stats.rxMissed + stats.rxNoMbuf
        result.txDrops = 0
        result.errors = stats.rxErrors + stats.txErrors
        return result
    }
}
