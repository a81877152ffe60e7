import CDPDK

/// A DPDK ethdev port attached from a devargs string (`net_pcap0,rx_pcap=in.pcap`, `net_ring0`,
/// `net_null0,no-rx=1`, `net_af_packet0,iface=veth0`, `net_tap0`, or a PCI address).
///
/// Created, started, stopped and detached by the control plane. `receive`/`transmit` are called by the
/// one poll-mode thread that owns a queue.
public final class EthernetPort: @unchecked Sendable {
    public let id: UInt16
    public let devargs: String
    public let name: String
    public private(set) var isStarted = false

    public struct Statistics: Sendable, Equatable {
        public var rxPackets: UInt64 = 0
        public var txPackets: UInt64 = 0
        public var rxBytes: UInt64 = 0
        public var txBytes: UInt64 = 0
        public var rxMissed: UInt64 = 0
        public var rxErrors: UInt64 = 0
        public var txErrors: UInt64 = 0
        public var rxNoMbuf: UInt64 = 0
        public init() {}
    }

    /// Probes the device. Throws with the devargs in the message when DPDK refuses it.
    public init(devargs: String) throws(DPDKError) {
        var port: UInt16 = 0
        let rc = oko_port_attach(devargs, &port)
        if rc < 0 { throw DPDKError("attach port '\(devargs)'", code: -rc) }
        self.id = port
        self.devargs = devargs
        var buffer = [CChar](repeating: 0, count: 64)
        _ = oko_port_name(port, &buffer, buffer.count)
        self.name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Configures queues and starts the port.
    public func start(pool: PacketPool, rxQueues: UInt16 = 1, txQueues: UInt16 = 1, descriptors: UInt16 = 1024) throws(DPDKError) {
        let rc = oko_port_start(id, pool.pointer, rxQueues, txQueues, descriptors)
        if rc < 0 { throw DPDKError("start port \(name) ('\(devargs)')", code: -rc) }
        isStarted = true
    }

    public func stop() {
        guard isStarted else { return }
        _ = oko_port_stop(id)
        isStarted = false
    }

    /// Stops, closes and removes the device; the port id may be reused by DPDK afterwards.
    public func detach() {
        isStarted = false
        _ = oko_port_detach(id)
    }

    public var macAddress: [UInt8] {
        var mac = [UInt8](repeating: 0, count: 6)
        _ = oko_port_mac(id, &mac)
        return mac
    }

    /// (link up, speed in Mbit/s).
    public var link: (up: Bool, speedMbps: UInt32) {
        var speed: UInt32 = 0
        let status = oko_port_link(id, &speed)
        return (status > 0, speed)
    }

    /// Hardware/PMD counters.
    public var statistics: Statistics {
        var raw = oko_port_stats()
        var result = Statistics()
        guard oko_port_stats(id, &raw) == 0 else { return result }
        result.rxPackets = raw.ipackets
        result.txPackets = raw.opackets
        result.rxBytes = raw.ibytes
        result.txBytes = raw.obytes
        result.rxMissed = raw.imissed
        result.rxErrors = raw.ierrors
        result.txErrors = raw.oerrors
        result.rxNoMbuf = raw.rx_nombuf
        return result
    }

    @inline(__always)
    public func receive(queue: UInt16, into mbufs: UnsafeMutablePointer<OpaquePointer?>, capacity: Int) -> Int {
        Int(oko_rx_burst(id, queue, mbufs, UInt16(capacity)))
    }

    /// Transmits up to `count` mbufs; returns how many the PMD took (the caller owns the rest).
    @inline(__always)
    public func transmit(queue: UInt16, _ mbufs: UnsafeMutablePointer<OpaquePointer?>, count: Int) -> Int {
        Int(oko_tx_burst(id, queue, mbufs, UInt16(count)))
    }
}
