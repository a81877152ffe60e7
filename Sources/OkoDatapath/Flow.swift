import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Special OpenFlow 1.3 port numbers.
public enum OFPort {
    public static let max: UInt32 = 0xFFFF_FF00
    public static let inPort: UInt32 = 0xFFFF_FFF8
    public static let normal: UInt32 = 0xFFFF_FFFA
    public static let flood: UInt32 = 0xFFFF_FFFB
    public static let all: UInt32 = 0xFFFF_FFFC
    public static let controller: UInt32 = 0xFFFF_FFFD
    public static let any: UInt32 = 0xFFFF_FFFF
}

/// A rule's match: masked key plus an optional filter program that must return 1.
public struct FlowMatch: Hashable, Sendable, CustomStringConvertible {
    public private(set) var key = FlowKey()
    public private(set) var mask = FlowKey()
    public var filterProgram: UInt32?

    public init(filterProgram: UInt32? = nil) { self.filterProgram = filterProgram }

    /// Matches `field` against `value` under `mask` (all bits by default).
    public mutating func set(_ field: FlowField, _ value: UInt64, mask m: UInt64 = ~0) {
        let fm = m & field.maxValue
        var mk = self.mask
        mk.set(field, fm | mk.value(field) & ~fm)
        var k = key
        k.set(field, (k.value(field) & ~fm) | (value & fm))
        self.mask = mk
        self.key = k
    }

    public func setting(_ field: FlowField, _ value: UInt64, mask m: UInt64 = ~0) -> FlowMatch {
        var c = self
        c.set(field, value, mask: m)
        return c
    }

    /// True if every packet matching `self` also matches `other` (ignoring programs).
    func isSubsumed(by other: FlowMatch) -> Bool {
        other.mask.isSubset(of: mask) && key.masked(by: other.mask) == other.key
    }

    func validate() throws(FlowError) {
        // Fields sharing bits (ipv4_src/arp_spa, tcp_src/udp_src/...) pass if any alias has its prerequisites.
        func satisfied(_ field: FlowField) -> Bool {
            let options = field.prerequisites
            if options.isEmpty { return true }
            return options.contains { reqs in
                reqs.allSatisfy { (f, v) in
                    let need = f == .vlanVID ? UInt64(0x1000) : f.maxValue
                    return mask.value(f) & need == need && key.value(f) & need == v & need
                }
            }
        }
        for field in FlowField.allCases where mask.value(field) != 0 {
            let loc = field.location
            let ok = FlowField.allCases.contains { $0.location == loc && satisfied($0) }
            if !ok { throw .missingPrerequisite(field: field) }
        }
    }

    public var description: String {
        var parts: [String] = []
        for f in FlowField.allCases where mask.value(f) != 0 {
            let m = mask.value(f)
            let v = key.value(f)
            parts.append(m == f.maxValue ? "\(f)=0x\(String(v, radix: 16))" : "\(f)=0x\(String(v, radix: 16))/0x\(String(m, radix: 16))")
        }
        if let p = filterProgram { parts.append("filter_program=\(p)") }
        return parts.isEmpty ? "any" : parts.joined(separator: ",")
    }
}

/// OpenFlow actions.
public enum FlowAction: Hashable, Sendable {
    /// Output to a port number or a special port (`OFPort.*`); `maxLength` applies to the controller.
    case output(UInt32, maxLength: UInt16 = 0xFFFF)
    case group(UInt32)
    /// Sets a field (values as in `FlowKey`; vlan_vid without the present bit is fine).
    case setField(FlowField, UInt64)
    case pushVLAN(UInt16 = EtherType.vlan)
    case popVLAN
    case decTTL
    /// Oko's SEND_MAPS: when a packet hits the rule, ask the control plane to send maps `maps` of program
    /// `program` (the controller's ids, passed back unchanged) to the controllers, at most `maxPerSecond`
    /// times per second per rule. The packet thread only enqueues a `MapsNotice` (SendMaps.swift).
    case sendMaps(program: UInt32, maps: [UInt16], maxPerSecond: UInt32)
}

/// OpenFlow 1.3 instructions of one rule.
public struct FlowInstructions: Hashable, Sendable {
    public var applyActions: [FlowAction]?
    public var clearActions: Bool
    public var writeActions: [FlowAction]?
    public var writeMetadata: (value: UInt64, mask: UInt64)?
    public var gotoTable: UInt8?

    public init(applyActions: [FlowAction]? = nil, clearActions: Bool = false, writeActions: [FlowAction]? = nil,
                writeMetadata: (value: UInt64, mask: UInt64)? = nil, gotoTable: UInt8? = nil) {
        self.applyActions = applyActions
        self.clearActions = clearActions
        self.writeActions = writeActions
        self.writeMetadata = writeMetadata
        self.gotoTable = gotoTable
    }

    public static func apply(_ actions: [FlowAction]) -> FlowInstructions { FlowInstructions(applyActions: actions) }

    public static func == (a: FlowInstructions, b: FlowInstructions) -> Bool {
        a.applyActions == b.applyActions && a.clearActions == b.clearActions && a.writeActions == b.writeActions
            && a.writeMetadata?.value == b.writeMetadata?.value && a.writeMetadata?.mask == b.writeMetadata?.mask
            && a.gotoTable == b.gotoTable
    }

    public func hash(into h: inout Hasher) {
        h.combine(applyActions)
        h.combine(writeActions)
        h.combine(gotoTable)
    }
}

public enum FlowError: Error, Equatable, CustomStringConvertible {
    case missingPrerequisite(field: FlowField)
    case badTable(UInt8)
    case gotoNotForward(from: UInt8, to: UInt8)
    case unknownPort(UInt32)
    case unknownGroup(UInt32)
    case unknownProgram(UInt32)
    case programInUse(UInt32)
    case groupInUse(UInt32)
    case portNumberTaken(UInt32)
    case badPortNumber(UInt32)
    case overlap
    case badGroup(String)

    public var description: String {
        switch self {
        case .missingPrerequisite(let f): return "match on \(f) lacks its OpenFlow prerequisite (eth_type/ip_proto/vlan)"
        case .badTable(let t): return "table \(t) does not exist"
        case .gotoNotForward(let a, let b): return "goto-table \(b) from table \(a) must go forward"
        case .unknownPort(let p): return "port \(p) does not exist"
        case .unknownGroup(let g): return "group \(g) does not exist"
        case .unknownProgram(let p): return "filter program \(p) is not loaded on this bridge"
        case .programInUse(let p): return "filter program \(p) is used by rules"
        case .groupInUse(let g): return "group \(g) is referenced by rules"
        case .portNumberTaken(let p): return "port number \(p) is already used"
        case .badPortNumber(let p): return "port number \(p) is reserved"
        case .overlap: return "an overlapping rule with the same priority exists"
        case .badGroup(let why): return "bad group: \(why)"
        }
    }
}

/// Counters of one rule, shared by all versions of the rule (modify keeps counters).
public final class RuleCounters: Sendable {
    let packets = Atomic<UInt64>(0)
    let bytes = Atomic<UInt64>(0)
    /// Monotonic ns of the last packet (0 = never).
    let lastUsed = Atomic<UInt64>(0)

    @inline(__always)
    func add(packets p: UInt64, bytes b: UInt64, now: UInt64) {
        packets.add(p, ordering: .relaxed)
        bytes.add(b, ordering: .relaxed)
        lastUsed.store(now, ordering: .relaxed)
    }
}

/// One installed rule (immutable; a modify publishes a new rule object sharing the counters).
final class FlowRule: Sendable {
    let table: UInt8
    let priority: UInt16
    let match: FlowMatch
    let instructions: FlowInstructions
    let cookie: UInt64
    let idleTimeout: UInt16
    let hardTimeout: UInt16
    let sendFlowRemoved: Bool
    let counters: RuleCounters
    let created: UInt64

    init(table: UInt8, priority: UInt16, match: FlowMatch, instructions: FlowInstructions, cookie: UInt64,
         idleTimeout: UInt16, hardTimeout: UInt16, sendFlowRemoved: Bool, counters: RuleCounters, created: UInt64) {
        self.table = table
        self.priority = priority
        self.match = match
        self.instructions = instructions
        self.cookie = cookie
        self.idleTimeout = idleTimeout
        self.hardTimeout = hardTimeout
        self.sendFlowRemoved = sendFlowRemoved
        self.counters = counters
        self.created = created
    }

    func with(instructions: FlowInstructions, cookie: UInt64) -> FlowRule {
        FlowRule(table: table, priority: priority, match: match, instructions: instructions, cookie: cookie,
                 idleTimeout: idleTimeout, hardTimeout: hardTimeout, sendFlowRemoved: sendFlowRemoved,
                 counters: counters, created: created)
    }
}

/// A rule as reported to the control plane.
public struct FlowEntry: Sendable, Equatable {
    public var table: UInt8
    public var priority: UInt16
    public var match: FlowMatch
    public var instructions: FlowInstructions
    public var cookie: UInt64
    public var idleTimeout: UInt16
    public var hardTimeout: UInt16
    public var packets: UInt64
    public var bytes: UInt64
    /// Seconds since installation.
    public var durationSeconds: Double
    /// Seconds since the last packet (or since installation).
    public var idleSeconds: Double
    /// The rule asked for a flow-removed notification (OFPFF_SEND_FLOW_REM).
    public var sendFlowRemoved: Bool = false
}

/// Why a flow was removed.
public enum FlowRemovedReason: Sendable, Equatable { case idleTimeout, hardTimeout, delete }

public struct FlowRemoved: Sendable, Equatable {
    public var entry: FlowEntry
    public var reason: FlowRemovedReason
}

@inline(__always) @usableFromInline
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
