import Synchronization

/// One slot of the MAC learning table: a sequence word (odd while a writer fills the slot), the key and the
/// value. Readers copy key and value and accept them only if the sequence was even and unchanged around the
/// copy (a seqlock), so a reader never sees a key paired with another key's port.
struct MACSlot: ~Copyable {
    let sequence = Atomic<UInt64>(0)
    /// mac | vlan << 48 | 1 << 63 (0 = empty).
    let key = Atomic<UInt64>(0)
    /// port << 32 | time seen in units of 2^20 ns (about 1 ms), wrapping.
    let value = Atomic<UInt64>(0)
}

/// MAC learning table for the NORMAL action (keyed by MAC and VLAN, aged), shared by every PMD thread of a
/// bridge without locks.
///
/// Design: a fixed array of buckets of `bucketSize` slots (open addressing within the bucket, no resizing).
/// Lookups never block and never write. Learners write a slot only when the MAC moved or its timestamp is
/// more than ~1 s old, so steady traffic from one source does not bounce the cache line between cores; a
/// learner that finds the slot being written by another thread simply skips (learning is a cache: the next
/// packet learns again). When a bucket is full the stalest slot is replaced. Entries older than the aging
/// time read as absent.
final class MACLearningTable: @unchecked Sendable {
    static let bucketSize = 4
    let agingNanoseconds: UInt64
    let capacity: Int
    private let slots: UnsafeMutablePointer<MACSlot>
    private let bucketMask: Int
    /// Rewrite a fresh entry at most this often (units of 2^20 ns: about 1 s).
    private static let refreshUnits: UInt32 = 1024

    init(capacity requested: Int = 8192, agingNanoseconds: UInt64 = 300 * 1_000_000_000) {
        var n = Self.bucketSize
        while n < requested { n <<= 1 }
        capacity = n
        bucketMask = n / Self.bucketSize - 1
        self.agingNanoseconds = agingNanoseconds
        slots = .allocate(capacity: n)
        for i in 0..<n { (slots + i).initialize(to: MACSlot()) }
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    @inline(__always)
    private static func key(mac: UInt64, vlan: UInt64) -> UInt64 {
        (mac & 0xFFFF_FFFF_FFFF) | (vlan & 0xFFF) << 48 | 1 << 63
    }

    @inline(__always)
    private func bucketStart(_ key: UInt64) -> Int {
        let h = (key &* 0x9E37_79B9_7F4A_7C15) >> 32
        return (Int(truncatingIfNeeded: h) & bucketMask) &* Self.bucketSize
    }

    @inline(__always)
    private static func stamp(_ now: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: now >> 20) }

    /// Age of a value's timestamp in stamp units; a timestamp slightly ahead (another PMD's clock read
    /// was later than ours) is age 0.
    @inline(__always)
    private static func age(_ value: UInt64, at stamp: UInt32) -> UInt32 {
        let d = Int32(bitPattern: stamp &- UInt32(truncatingIfNeeded: value))
        return d < 0 ? 0 : UInt32(d)
    }

    /// A consistent copy of slot `i`, or nil while a writer is filling it.
    @inline(__always)
    private func read(_ i: Int) -> (key: UInt64, value: UInt64)? {
        let s1 = slots[i].sequence.load(ordering: .acquiring)
        guard s1 & 1 == 0 else { return nil }
        let k = slots[i].key.load(ordering: .relaxed)
        let v = slots[i].value.load(ordering: .relaxed)
        atomicMemoryFence(ordering: .acquiring)
        guard slots[i].sequence.load(ordering: .relaxed) == s1 else { return nil }
        return (k, v)
    }

    /// Writes slot `i` unless another writer holds it (then the update is skipped).
    @inline(__always)
    private func write(_ i: Int, key: UInt64, value: UInt64) {
        let s = slots[i].sequence.load(ordering: .relaxed)
        guard s & 1 == 0,
              slots[i].sequence.compareExchange(expected: s, desired: s &+ 1, ordering: .acquiring).exchanged
        else { return }
        slots[i].key.store(key, ordering: .relaxed)
        slots[i].value.store(value, ordering: .relaxed)
        slots[i].sequence.store(s &+ 2, ordering: .releasing)
    }

    func learn(mac: UInt64, vlan: UInt64, port: UInt32, now: UInt64) {
        guard mac & 0x0100_0000_0000 == 0 else { return }  // never learn multicast sources
        let key = Self.key(mac: mac, vlan: vlan)
        let stamp = Self.stamp(now)
        let value = UInt64(port) << 32 | UInt64(stamp)
        let start = bucketStart(key)
        var victim = -1
        var victimAge: UInt32 = 0
        for i in start..<(start + Self.bucketSize) {
            guard let (k, v) = read(i) else { continue }
            if k == key {
                let fresh = Self.age(v, at: stamp) < Self.refreshUnits
                if UInt32(truncatingIfNeeded: v >> 32) != port || !fresh { write(i, key: key, value: value) }
                return
            }
            let age = k == 0 ? UInt32.max : Self.age(v, at: stamp)
            if victim < 0 || age > victimAge {
                victim = i
                victimAge = age
            }
        }
        if victim >= 0 { write(victim, key: key, value: value) }
    }

    func lookup(mac: UInt64, vlan: UInt64, now: UInt64) -> UInt32? {
        let key = Self.key(mac: mac, vlan: vlan)
        let start = bucketStart(key)
        for i in start..<(start + Self.bucketSize) {
            // A slot being written is retried a few times, then treated as a miss (the packet floods).
            var copy = read(i)
            var tries = 0
            while copy == nil && tries < 8 {
                copy = read(i)
                tries += 1
            }
            guard let (k, v) = copy, k == key else { continue }
            let age = UInt64(Self.age(v, at: Self.stamp(now))) << 20
            return age > agingNanoseconds ? nil : UInt32(truncatingIfNeeded: v >> 32)
        }
        return nil
    }

    /// Number of live (not aged out) entries; for statistics and tests, not for the packet path.
    func count(now: UInt64) -> Int {
        var n = 0
        for i in 0..<capacity {
            guard let (k, v) = read(i), k != 0 else { continue }
            if UInt64(Self.age(v, at: Self.stamp(now))) << 20 <= agingNanoseconds { n += 1 }
        }
        return n
    }
}
