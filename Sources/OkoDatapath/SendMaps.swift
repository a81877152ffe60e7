// SEND_MAPS on the packet path: a rule with `FlowAction.sendMaps` asks the control plane to send some maps
// of a filter program to the controllers. The packet thread never dumps maps itself: it pushes a small
// `MapsNotice` into the bridge's bounded `mapsNoticeQueue`, which the control plane drains
// (`takeMapsNotices`), like packet-ins.
//
// Rate limit: each compiled SEND_MAPS action (one per rule) keeps the earliest time of its next notice in an
// atomic; a hit before that time costs one relaxed load and sends nothing, so a rule at line rate produces
// at most `maxPerSecond` notices per second. The state lives in the compiled action, so it starts afresh
// when the rule's table is republished. When the queue is full, notices are dropped and counted.
import Synchronization

/// A request from the datapath to send maps of a program to the controllers.
public struct MapsNotice: Sendable, Hashable {
    /// At most this many notices wait in a bridge's queue.
    public static let queueCapacity = 256

    public var program: UInt32
    public var maps: [UInt16]
    /// Table and cookie of the rule that fired.
    public var table: UInt8
    public var cookie: UInt64

    public init(program: UInt32, maps: [UInt16], table: UInt8, cookie: UInt64) {
        self.program = program
        self.maps = maps
        self.table = table
        self.cookie = cookie
    }
}

final class SendMapsTrigger: Sendable {
    let notice: MapsNotice
    let intervalNanoseconds: UInt64
    private let nextAllowed = Atomic<UInt64>(0)

    init(_ notice: MapsNotice, maxPerSecond: UInt32) {
        self.notice = notice
        intervalNanoseconds = 1_000_000_000 / UInt64(max(maxPerSecond, 1))
    }

    /// Enqueues the notice unless one was enqueued less than an interval ago (by any thread).
    @inline(__always)
    func fire(now: UInt64, into queue: BoundedQueue<MapsNotice>) {
        let next = nextAllowed.load(ordering: .relaxed)
        guard now >= next else { return }
        guard nextAllowed.compareExchange(expected: next, desired: now &+ intervalNanoseconds, ordering: .relaxed).exchanged
        else { return }
        _ = queue.push(notice)
    }
}

extension Bridge {
    /// Drains up to `max` SEND_MAPS notices (control plane only).
    public func takeMapsNotices(max: Int = .max) -> [MapsNotice] { mapsNoticeQueue.take(max: max) }
    /// Notices dropped because the queue was full.
    public var mapsNoticeDrops: UInt64 { mapsNoticeQueue.drops.load(ordering: .relaxed) }
}
