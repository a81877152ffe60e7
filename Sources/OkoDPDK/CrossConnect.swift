import CDPDK
import Synchronization

/// Counters one poll-mode thread keeps for one port. Single writer (the owning PMD thread), any
/// number of readers; relaxed atomics are enough because each counter is independent.
public final class PortCounters: Sendable {
    public let rxPackets = Atomic<UInt64>(0)
    public let rxBytes = Atomic<UInt64>(0)
    public let txPackets = Atomic<UInt64>(0)
    public let txBytes = Atomic<UInt64>(0)
    /// Packets the PMD refused on transmit (queue full) and Oko freed.
    public let txDropped = Atomic<UInt64>(0)

    public init() {}

    @inline(__always) func add(_ counter: borrowing Atomic<UInt64>, _ value: UInt64) {
        // Single writer: a plain load/store pair avoids a locked instruction per burst.
        counter.store(counter.load(ordering: .relaxed) &+ value, ordering: .relaxed)
    }

    public struct Snapshot: Sendable, Equatable {
        public var rxPackets, rxBytes, txPackets, txBytes, txDropped: UInt64
    }

    public var snapshot: Snapshot {
        Snapshot(
            rxPackets: rxPackets.load(ordering: .relaxed), rxBytes: rxBytes.load(ordering: .relaxed),
            txPackets: txPackets.load(ordering: .relaxed), txBytes: txBytes.load(ordering: .relaxed),
            txDropped: txDropped.load(ordering: .relaxed))
    }
}

/// The simplest poll-mode loop: every packet received on one port of a pair is sent out of the other.
/// It is Oko's baseline forwarder (the foundation's demo and a benchmark reference); the OpenFlow
/// pipeline in OkoDatapath replaces it for bridges with rules.
///
/// Threads: `run` executes on one lcore until `stop()` is called from any thread.
public final class CrossConnect: Sendable {
    public let ports: (EthernetPort, EthernetPort)
    public let counters: (PortCounters, PortCounters)
    private let stopRequested = Atomic<Bool>(false)
    public static let burstSize = 32

    public init(_ a: EthernetPort, _ b: EthernetPort) {
        ports = (a, b)
        counters = (PortCounters(), PortCounters())
    }

    public func stop() { stopRequested.store(true, ordering: .releasing) }

    /// Polls both ports until stopped.
    public func run() {
        let burst = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: Self.burstSize)
        defer { burst.deallocate() }
        let (a, b) = ports
        let (ca, cb) = counters
        while !stopRequested.load(ordering: .relaxed) {
            forward(from: a, fromCounters: ca, to: b, toCounters: cb, burst: burst)
            forward(from: b, fromCounters: cb, to: a, toCounters: ca, burst: burst)
        }
    }

    @inline(__always)
    private func forward(
        from source: EthernetPort, fromCounters: PortCounters, to destination: EthernetPort,
        toCounters: PortCounters, burst: UnsafeMutablePointer<OpaquePointer?>
    ) {
        let received = source.receive(queue: 0, into: burst, capacity: Self.burstSize)
        guard received > 0 else { return }
        var bytes: UInt64 = 0
        for index in 0..<received { bytes &+= UInt64(oko_mbuf_pkt_len(burst[index]!)) }
        fromCounters.add(fromCounters.rxPackets, UInt64(received))
        fromCounters.add(fromCounters.rxBytes, bytes)
        let sent = destination.transmit(queue: 0, burst, count: received)
        if sent < received {
            var droppedBytes: UInt64 = 0
            for index in sent..<received { droppedBytes &+= UInt64(oko_mbuf_pkt_len(burst[index]!)) }
            Mbuf.freeBulk(burst + sent, count: received - sent)
            bytes &-= droppedBytes
            toCounters.add(toCounters.txDropped, UInt64(received - sent))
        }
        toCounters.add(toCounters.txPackets, UInt64(sent))
        toCounters.add(toCounters.txBytes, bytes)
    }
}
