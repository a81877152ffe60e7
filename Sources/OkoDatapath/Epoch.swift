import Synchronization

/// Epoch-based reclamation (RCU style) for published snapshots.
///
/// Readers (PMD threads) hold no reference counts on snapshots: they load the published pointer once per
/// batch and announce quiescence between batches by copying the global epoch into their slot. The control
/// plane retires an unpublished object at the current epoch E and bumps the epoch; the object is released
/// once every online reader has announced an epoch > E. Offline readers (slot 0) are ignored; a reader going
/// online stores the current epoch before loading any pointer.
public final class EpochReclaimer: Sendable {
    final class ReaderSlot: Sendable {
        let epoch = Atomic<UInt64>(0)
    }

    private let globalEpoch = Atomic<UInt64>(1)
    private let state = Mutex<State>(State())
    private struct State: @unchecked Sendable {
        var readers: [ReaderSlot] = []
        /// Retired objects in retirement order (epochs ascending, per retiring thread); `retired[head...]`
        /// are still held. Reclaiming pops from the head, so a reader that lags (an idle registered PMD)
        /// makes each retire O(1), not a scan of everything it holds back.
        var retired: [(epoch: UInt64, object: AnyObject)] = []
        var head = 0
    }

    public init() {}

    func register() -> ReaderSlot {
        let slot = ReaderSlot()
        slot.epoch.store(globalEpoch.load(ordering: .sequentiallyConsistent), ordering: .sequentiallyConsistent)
        state.withLock { $0.readers.append(slot) }
        return slot
    }

    func unregister(_ slot: ReaderSlot) {
        slot.epoch.store(0, ordering: .sequentiallyConsistent)
        state.withLock { s in s.readers.removeAll { $0 === slot } }
        reclaim()
    }

    @inline(__always)
    func quiescent(_ slot: ReaderSlot) {
        slot.epoch.store(globalEpoch.load(ordering: .sequentiallyConsistent), ordering: .sequentiallyConsistent)
    }

    func offline(_ slot: ReaderSlot) { slot.epoch.store(0, ordering: .sequentiallyConsistent) }

    /// Keeps `object` alive until every online reader passed a quiescent point.
    func retire(_ object: AnyObject) {
        let e = globalEpoch.add(1, ordering: .sequentiallyConsistent).oldValue
        state.withLock { $0.retired.append((e, object)) }
        reclaim()
    }

    /// Releases retired objects no reader can still see; returns how many remain.
    @discardableResult
    public func reclaim() -> Int {
        var freed: [AnyObject] = []
        let remaining = state.withLock { s -> Int in
            var minEpoch = UInt64.max
            for r in s.readers {
                let e = r.epoch.load(ordering: .sequentiallyConsistent)
                if e != 0 { minEpoch = min(minEpoch, e) }
            }
            // Stop at the first object a reader may still see: a later one retired out of order waits a
            // little longer, which is safe.
            while s.head < s.retired.count && s.retired[s.head].epoch < minEpoch {
                freed.append(s.retired[s.head].object)
                s.head += 1
            }
            if s.head == s.retired.count {
                s.retired.removeAll(keepingCapacity: true)
                s.head = 0
            } else if s.head > 1024 && s.head > s.retired.count / 2 {
                s.retired.removeFirst(s.head)
                s.head = 0
            }
            return s.retired.count - s.head
        }
        freed.removeAll()  // released here, outside the lock
        return remaining
    }
}

/// Run statistics of a filter program id; shared by the programs that replace one another under that id.
final class ProgramCounters: Sendable {
    let runs = Atomic<UInt64>(0)
    let matches = Atomic<UInt64>(0)
    let totalNanoseconds = Atomic<UInt64>(0)
}

/// A filter program attached to a bridge: a native entry point (JIT output or interpreter trampoline)
/// called as `entry(packetData, packetLength)`, plus run statistics.
public final class FilterProgram: Sendable {
    public typealias Entry = @convention(c) (UnsafeMutableRawPointer?, UInt64) -> UInt64
    public let name: String
    let entry: Entry
    /// Optional runner with no side effects on maps, used by `trace`.
    let sideEffectFreeEntry: Entry?
    private let owner: (any Sendable)?
    let counters: ProgramCounters

    /// `owner` keeps whatever backs `entry` (JIT memory, maps) alive as long as the program is attached.
    public convenience init(name: String, entry: Entry, sideEffectFreeEntry: Entry? = nil, owner: (any Sendable)? = nil) {
        self.init(name: name, entry: entry, sideEffectFreeEntry: sideEffectFreeEntry, owner: owner, counters: ProgramCounters())
    }

    private init(name: String, entry: Entry, sideEffectFreeEntry: Entry?, owner: (any Sendable)?, counters: ProgramCounters) {
        self.name = name
        self.entry = entry
        self.sideEffectFreeEntry = sideEffectFreeEntry
        self.owner = owner
        self.counters = counters
    }

    /// The same program counting into `old`'s statistics (used when it replaces `old` under one id).
    func continuingStatistics(of old: FilterProgram) -> FilterProgram {
        FilterProgram(name: name, entry: entry, sideEffectFreeEntry: sideEffectFreeEntry, owner: owner, counters: old.counters)
    }

    @inline(__always)
    func run(_ data: UnsafeMutableRawPointer, _ length: UInt32) -> UInt64 {
        let t0 = monotonicNanoseconds()
        let r = entry(data, UInt64(length))
        let t1 = monotonicNanoseconds()
        counters.runs.add(1, ordering: .relaxed)
        if r == 1 { counters.matches.add(1, ordering: .relaxed) }
        counters.totalNanoseconds.add(t1 &- t0, ordering: .relaxed)
        return r
    }

    public var statistics: FilterProgramStatistics {
        FilterProgramStatistics(name: name, runs: counters.runs.load(ordering: .relaxed),
                                matches: counters.matches.load(ordering: .relaxed),
                                totalNanoseconds: counters.totalNanoseconds.load(ordering: .relaxed))
    }
}

public struct FilterProgramStatistics: Sendable, Equatable {
    public var name: String
    public var runs: UInt64
    public var matches: UInt64
    public var totalNanoseconds: UInt64
}
