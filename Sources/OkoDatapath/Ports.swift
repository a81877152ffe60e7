import Synchronization

/// Statistics a port backend keeps itself (NIC counters, queue drops).
public struct PortBackendStatistics: Sendable, Equatable {
    public var rxPackets: UInt64 = 0
    public var txPackets: UInt64 = 0
    public var rxDrops: UInt64 = 0
    public var txDrops: UInt64 = 0
    public var errors: UInt64 = 0
    public init() {}
}

/// A port backend (DPDK ethdev, in-memory queue, ...). Called once per burst, never per packet.
public protocol DatapathPort: AnyObject, Sendable {
    var name: String { get }
    /// Receives up to `packets.count` packets into `packets`; returns how many. Implementations set `inPort`.
    func receive(queue: Int, into packets: UnsafeMutableBufferPointer<PacketView>, inPort: UInt32) -> Int
    /// Takes ownership of the first N packets it returns as sent; the caller frees the rest.
    func transmit(queue: Int, _ packets: UnsafeMutableBufferPointer<PacketView>) -> Int
    var statistics: PortBackendStatistics { get }
}

/// In-memory port: tests push frames into its receive queue and read what the datapath transmitted.
public final class InMemoryPort: DatapathPort, @unchecked Sendable {
    public let name: String
    public let buffers: InMemoryPacketBuffers
    private let capacity: Int
    private struct Queues {
        var rx: [PacketView] = []
        var tx: [PacketView] = []
        var stats = PortBackendStatistics()
    }
    private let queues = Mutex<Queues>(Queues())

    public init(name: String, buffers: InMemoryPacketBuffers, capacity: Int = 4096) {
        self.name = name
        self.buffers = buffers
        self.capacity = capacity
    }

    deinit {
        let leftovers = queues.withLock { q -> [PacketView] in
            let all = q.rx + q.tx
            q.rx = []
            q.tx = []
            return all
        }
        var copy = leftovers
        copy.withUnsafeMutableBufferPointer { buffers.free($0) }
    }

    /// Queues a frame for reception; false if the queue is full or no buffer was available.
    @discardableResult
    public func inject(_ bytes: [UInt8]) -> Bool {
        guard let p = buffers.allocate(bytes, inPort: 0) else { return false }
        let ok = queues.withLock { q -> Bool in
            guard q.rx.count < capacity else {
                q.stats.rxDrops += 1
                return false
            }
            q.rx.append(p)
            return true
        }
        if !ok { buffers.free(p) }
        return ok
    }

    /// Frames transmitted so far (removed from the port).
    public func takeTransmitted() -> [[UInt8]] {
        var sent = queues.withLock { q -> [PacketView] in
            let t = q.tx
            q.tx = []
            return t
        }
        let frames = sent.map(\.bytes)
        sent.withUnsafeMutableBufferPointer { buffers.free($0) }
        return frames
    }

    public func receive(queue: Int, into packets: UnsafeMutableBufferPointer<PacketView>, inPort: UInt32) -> Int {
        queues.withLock { q -> Int in
            let n = min(packets.count, q.rx.count)
            for i in 0..<n {
                var p = q.rx[i]
                p.inPort = inPort
                (packets.baseAddress! + i).initialize(to: p)
            }
            q.rx.removeFirst(n)
            q.stats.rxPackets += UInt64(n)
            return n
        }
    }

    public func transmit(queue: Int, _ packets: UnsafeMutableBufferPointer<PacketView>) -> Int {
        queues.withLock { q -> Int in
            let n = min(packets.count, capacity - q.tx.count)
            q.tx.append(contentsOf: packets.prefix(n))
            q.stats.txPackets += UInt64(n)
            q.stats.txDrops += UInt64(packets.count - n)
            return n
        }
    }

    public var statistics: PortBackendStatistics { queues.withLock { $0.stats } }
}

/// Datapath-side counters of a bridge port.
public struct PortStatistics: Sendable, Equatable {
    public var number: UInt32
    public var name: String
    public var rxPackets: UInt64
    public var rxBytes: UInt64
    public var txPackets: UInt64
    public var txBytes: UInt64
    public var txDrops: UInt64
    public var rxErrors: UInt64
    public var backend: PortBackendStatistics
}

/// A port attached to a bridge.
final class PortSlot: Sendable {
    let number: UInt32
    let port: any DatapathPort
    let noFlood: Bool
    let rxPackets = Atomic<UInt64>(0)
    let rxBytes = Atomic<UInt64>(0)
    let txPackets = Atomic<UInt64>(0)
    let txBytes = Atomic<UInt64>(0)
    let txDrops = Atomic<UInt64>(0)
    /// Malformed headers seen on receive.
    let rxErrors = Atomic<UInt64>(0)

    /// `port` when it is a DPDK port, for the poll loop: a direct call through an unretained reference costs no
    /// reference counting per burst (a port object may carry a side table, when anyone holds a weak reference
    /// to it, which makes every retain and release an atomic slow path). `port` keeps it alive.
    let dpdkPort: Unmanaged<DPDKPort>?

    init(number: UInt32, port: any DatapathPort, noFlood: Bool) {
        self.number = number
        self.port = port
        dpdkPort = (port as? DPDKPort).map { Unmanaged.passUnretained($0) }
        self.noFlood = noFlood
    }

    var statistics: PortStatistics {
        PortStatistics(number: number, name: port.name,
                       rxPackets: rxPackets.load(ordering: .relaxed), rxBytes: rxBytes.load(ordering: .relaxed),
                       txPackets: txPackets.load(ordering: .relaxed), txBytes: txBytes.load(ordering: .relaxed),
                       txDrops: txDrops.load(ordering: .relaxed), rxErrors: rxErrors.load(ordering: .relaxed),
                       backend: port.statistics)
    }
}

extension PortSlot {
    @inline(__always)
    func receiveBurst(queue: Int, into packets: UnsafeMutableBufferPointer<PacketView>) -> Int {
        if let d = dpdkPort { return d._withUnsafeGuaranteedRef { $0.receive(queue: queue, into: packets, inPort: number) } }
        return port.receive(queue: queue, into: packets, inPort: number)
    }

    @inline(__always)
    func transmitBurst(queue: Int, _ packets: UnsafeMutableBufferPointer<PacketView>) -> Int {
        if let d = dpdkPort { return d._withUnsafeGuaranteedRef { $0.transmit(queue: queue, packets) } }
        return port.transmit(queue: queue, packets)
    }
}
