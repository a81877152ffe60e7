// Hash, per-CPU hash, LRU hash and LRU per-CPU hash maps (see the design note in BPFMap.swift).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

final class HashMap: BPFMap, @unchecked Sendable {
    let isLRU: Bool
    let isPerCPU: Bool
    let keySize: Int
    let valueSize: Int
    let valueSlice: Int
    let keyOffset: Int
    let valueOffset: Int
    let elementStride: Int
    /// maxEntries + slack: spare elements hold retired ones until their grace period ends.
    let capacity: Int
    let maxEntries: Int
    let bucketMask: UInt64
    let stripeMask: Int
    let buckets: AtomicU32Pointer
    let stripes: UnsafeMutableRawPointer
    let elements: UnsafeMutableRawPointer
    let control: UnsafeMutableRawPointer

    /// Retired elements are sealed into a batch after this many (one epoch bump per batch).
    let retireBatchSize: UInt32
    static let sealedBatchSlots = 16

    // Control block offsets. Everything but liveCount and clock is guarded by the alloc lock
    // (LRU list fields and the clock by the LRU lock).
    private static let allocLockOffset = 0
    private static let freeHeadOffset = 4
    private static let highWaterOffset = 8
    private static let openHeadOffset = 12
    private static let openTailOffset = 16
    private static let openCountOffset = 20
    private static let ringStartOffset = 24
    private static let ringCountOffset = 28
    private static let lruHeadOffset = 32
    private static let lruTailOffset = 36
    private static let lruLockOffset = 40
    private static let liveCountOffset = 64
    private static let clockOffset = 128
    private static let ringOffset = 192
    private static let controlSize = 192 + 16 * sealedBatchSlots

    init(definition: BPFMapDefinition, cpuCount: Int) throws(BPFMapError) {
        guard definition.keySize > 0 else { throw .invalidDefinition(name: definition.name, reason: "hash maps need key_size > 0") }
        guard definition.valueSize > 0 else { throw .invalidDefinition(name: definition.name, reason: "hash maps need value_size > 0") }
        let lru = definition.type == .lruHash || definition.type == .lruPerCPUHash
        let perCPU = definition.type == .perCPUHash || definition.type == .lruPerCPUHash
        let slack = max(64, min(definition.maxEntries / 16, 4096))
        guard definition.maxEntries + slack < Int(UInt32.max) else {
            throw .invalidDefinition(name: definition.name, reason: "max_entries \(definition.maxEntries) too large")
        }
        isLRU = lru
        // Seal batches small enough that several are in flight within the slack.
        retireBatchSize = UInt32(min(64, slack / 4))
        isPerCPU = perCPU
        keySize = definition.keySize
        valueSize = definition.valueSize
        valueSlice = roundUp8(definition.valueSize)
        // Header: chain next, link/hash tag; LRU adds prev, next, listTick (8), usedTick (8).
        keyOffset = lru ? 32 : 8
        valueOffset = roundUp8(keyOffset + definition.keySize)
        elementStride = valueOffset + valueSlice * cpuCount
        maxEntries = definition.maxEntries
        capacity = definition.maxEntries + slack
        let bucketCount = nextPowerOfTwo(definition.maxEntries)
        bucketMask = UInt64(bucketCount - 1)
        let stripeCount = min(bucketCount, 1024)
        stripeMask = stripeCount - 1

        var layout = MapArena.Layout()
        let controlAt = layout.reserve(Self.controlSize)
        let bucketsAt = layout.reserve(4 * bucketCount)
        let stripesAt = layout.reserve(64 * stripeCount)
        let elementsAt = layout.reserve(elementStride * capacity)
        let arena = try MapArena(byteCount: layout.size)
        control = arena.base + controlAt
        buckets = (arena.base + bucketsAt).assumingMemoryBound(to: Atomic<UInt32>.self)
        stripes = arena.base + stripesAt
        elements = arena.base + elementsAt
        let region = BPFMapMemoryRegion(start: UInt(bitPattern: arena.base + elementsAt), length: elementStride * capacity, writable: true)
        super.init(definition: definition, cpuCount: cpuCount, arena: arena, regions: [region])
    }

    // MARK: Element fields

    @inline(__always) func element(_ index: UInt32) -> UnsafeMutableRawPointer {
        elements + Int(index &- 1) &* elementStride
    }
    @inline(__always) func nextWord(_ e: UnsafeMutableRawPointer) -> AtomicU32Pointer {
        e.assumingMemoryBound(to: Atomic<UInt32>.self)
    }
    /// Hash tag while the element is live; free/retired list link afterwards.
    @inline(__always) func linkWord(_ e: UnsafeMutableRawPointer) -> AtomicU32Pointer {
        (e + 4).assumingMemoryBound(to: Atomic<UInt32>.self)
    }
    @inline(__always) func lruPrev(_ e: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt32> { (e + 8).assumingMemoryBound(to: UInt32.self) }
    @inline(__always) func lruNext(_ e: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt32> { (e + 12).assumingMemoryBound(to: UInt32.self) }
    @inline(__always) func listTick(_ e: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt64> { (e + 16).assumingMemoryBound(to: UInt64.self) }
    @inline(__always) func usedTick(_ e: UnsafeMutableRawPointer) -> AtomicU64Pointer { (e + 24).assumingMemoryBound(to: Atomic<UInt64>.self) }

    // MARK: Control fields

    @inline(__always) func field(_ offset: Int) -> UnsafeMutablePointer<UInt32> { (control + offset).assumingMemoryBound(to: UInt32.self) }
    @inline(__always) var allocLock: AtomicU32Pointer { (control + Self.allocLockOffset).assumingMemoryBound(to: Atomic<UInt32>.self) }
    /// Guards the LRU list and the clock; taken after a stripe lock, before the alloc lock.
    @inline(__always) var lruLock: AtomicU32Pointer { (control + Self.lruLockOffset).assumingMemoryBound(to: Atomic<UInt32>.self) }
    @inline(__always) var liveCount: AtomicU64Pointer { (control + Self.liveCountOffset).assumingMemoryBound(to: Atomic<UInt64>.self) }
    @inline(__always) var clock: AtomicU64Pointer { (control + Self.clockOffset).assumingMemoryBound(to: Atomic<UInt64>.self) }
    @inline(__always) func stripeLock(bucket: Int) -> AtomicU32Pointer {
        (stripes + 64 * (bucket & stripeMask)).assumingMemoryBound(to: Atomic<UInt32>.self)
    }

    override var count: Int { Int(liveCount.pointee.load(ordering: .relaxed)) }

    @inline(__always) func hashKey(_ key: UnsafeRawPointer) -> UInt64 {
        okoHashBytes(key, count: keySize)
    }

    @inline(__always) func tag(of hash: UInt64) -> UInt32 {
        // Never 0, so a zeroed link word cannot look like a match.
        UInt32(truncatingIfNeeded: hash >> 32) | 1
    }

    // MARK: Lock-free lookup (hot path)

    @inline(__always)
    func findElement(_ key: UnsafeRawPointer, hash: UInt64) -> UnsafeMutableRawPointer? {
        let wanted = tag(of: hash)
        var index = buckets[Int(hash & bucketMask)].load(ordering: .acquiring)
        while index != 0 {
            let e = element(index)
            if linkWord(e).pointee.load(ordering: .relaxed) == wanted && memcmp(e + keyOffset, key, keySize) == 0 {
                return e
            }
            index = nextWord(e).pointee.load(ordering: .acquiring)
        }
        return nil
    }

    override func programLookup(_ key: UnsafeRawPointer) -> UnsafeMutableRawPointer? {
        guard let e = findElement(key, hash: hashKey(key)) else { return nil }
        if isLRU {
            // Mark as used; store only on change so hot entries do not bounce cache lines.
            let now = clock.pointee.load(ordering: .relaxed)
            if usedTick(e).pointee.load(ordering: .relaxed) != now {
                usedTick(e).pointee.store(now, ordering: .relaxed)
            }
        }
        if isPerCPU {
            let cpu = MapEpoch.currentCPU
            guard cpu < cpuCount else { return nil }
            return e + valueOffset + cpu * valueSlice
        }
        return e + valueOffset
    }

    // MARK: Allocation and retirement (alloc lock held)

    private func allocateLocked() -> UInt32 {
        let freeHead = field(Self.freeHeadOffset)
        if freeHead.pointee == 0 {
            let highWater = field(Self.highWaterOffset)
            if Int(highWater.pointee) < capacity {
                highWater.pointee += 1
                return highWater.pointee
            }
            reclaimLocked()
            if freeHead.pointee == 0 && field(Self.openCountOffset).pointee > 0 {
                sealOpenBatchLocked()
                reclaimLocked()
            }
            if freeHead.pointee == 0 { return 0 }
        }
        let index = freeHead.pointee
        freeHead.pointee = linkWord(element(index)).pointee.load(ordering: .relaxed)
        return index
    }

    private func retireLocked(_ index: UInt32) {
        let e = element(index)
        linkWord(e).pointee.store(0, ordering: .relaxed)
        let openTail = field(Self.openTailOffset)
        if openTail.pointee == 0 {
            field(Self.openHeadOffset).pointee = index
        } else {
            linkWord(element(openTail.pointee)).pointee.store(index, ordering: .relaxed)
        }
        openTail.pointee = index
        field(Self.openCountOffset).pointee += 1
        if field(Self.openCountOffset).pointee >= retireBatchSize {
            sealOpenBatchLocked()
        }
    }

    private func ringSlot(_ position: UInt32) -> UnsafeMutableRawPointer {
        control + Self.ringOffset + 16 * (Int(position) % Self.sealedBatchSlots)
    }

    /// Stamps the open batch with a fresh epoch; with no free ring slot it joins the newest sealed
    /// batch, which then takes the newer (safer) epoch.
    private func sealOpenBatchLocked() {
        let head = field(Self.openHeadOffset).pointee
        guard head != 0 else { return }
        let tail = field(Self.openTailOffset).pointee
        let ringStart = field(Self.ringStartOffset)
        let ringCount = field(Self.ringCountOffset)
        if Int(ringCount.pointee) == Self.sealedBatchSlots { reclaimLocked() }
        let epoch = MapEpoch.advance()
        if Int(ringCount.pointee) == Self.sealedBatchSlots {
            let newest = ringSlot(ringStart.pointee &+ ringCount.pointee &- 1)
            let newestTail = newest.load(fromByteOffset: 4, as: UInt32.self)
            linkWord(element(newestTail)).pointee.store(head, ordering: .relaxed)
            newest.storeBytes(of: tail, toByteOffset: 4, as: UInt32.self)
            newest.storeBytes(of: epoch, toByteOffset: 8, as: UInt64.self)
        } else {
            let slot = ringSlot(ringStart.pointee &+ ringCount.pointee)
            slot.storeBytes(of: head, toByteOffset: 0, as: UInt32.self)
            slot.storeBytes(of: tail, toByteOffset: 4, as: UInt32.self)
            slot.storeBytes(of: epoch, toByteOffset: 8, as: UInt64.self)
            ringCount.pointee += 1
        }
        field(Self.openHeadOffset).pointee = 0
        field(Self.openTailOffset).pointee = 0
        field(Self.openCountOffset).pointee = 0
    }

    /// Moves sealed batches whose grace period has ended to the free list.
    private func reclaimLocked() {
        let ringStart = field(Self.ringStartOffset)
        let ringCount = field(Self.ringCountOffset)
        guard ringCount.pointee > 0 else { return }
        let oldest = MapEpoch.oldestActiveEpoch()
        let freeHead = field(Self.freeHeadOffset)
        while ringCount.pointee > 0 {
            let slot = ringSlot(ringStart.pointee)
            guard slot.load(fromByteOffset: 8, as: UInt64.self) <= oldest else { break }
            let head = slot.load(fromByteOffset: 0, as: UInt32.self)
            let tail = slot.load(fromByteOffset: 4, as: UInt32.self)
            linkWord(element(tail)).pointee.store(freeHead.pointee, ordering: .relaxed)
            freeHead.pointee = head
            ringStart.pointee = ringStart.pointee &+ 1
            ringCount.pointee -= 1
        }
    }

    private func allocate() -> UInt32 {
        spinLock(allocLock)
        defer { spinUnlock(allocLock) }
        return allocateLocked()
    }

    private func retire(_ index: UInt32) {
        spinLock(allocLock)
        retireLocked(index)
        spinUnlock(allocLock)
    }

    // MARK: LRU list (LRU lock held)

    private func lruPushHead(_ index: UInt32) {
        let e = element(index)
        let now = clock.pointee.load(ordering: .relaxed) &+ 1
        clock.pointee.store(now, ordering: .relaxed)
        listTick(e).pointee = now
        usedTick(e).pointee.store(now &- 1, ordering: .relaxed)
        let head = field(Self.lruHeadOffset)
        lruPrev(e).pointee = 0
        lruNext(e).pointee = head.pointee
        if head.pointee != 0 { lruPrev(element(head.pointee)).pointee = index } else { field(Self.lruTailOffset).pointee = index }
        head.pointee = index
    }

    private func lruRemove(_ index: UInt32) {
        let e = element(index)
        let prev = lruPrev(e).pointee
        let next = lruNext(e).pointee
        if prev != 0 { lruNext(element(prev)).pointee = next } else { field(Self.lruHeadOffset).pointee = next }
        if next != 0 { lruPrev(element(next)).pointee = prev } else { field(Self.lruTailOffset).pointee = prev }
    }

    /// Evicts the least recently used entry (second chance: entries used since they were queued go
    /// back to the head). The caller holds stripe lock `held`; other stripes are only try-locked
    /// (lock order stripe -> LRU), and an entry whose stripe is busy is skipped.
    /// Invariant: with an element's stripe lock and the LRU lock held, it is in the LRU list
    /// exactly when it is linked in its chain (both change under both locks).
    private func evict(holding held: AtomicU32Pointer) -> Bool {
        spinLock(lruLock)
        defer { spinUnlock(lruLock) }
        var budget = 2 * count + 2
        var candidate = field(Self.lruTailOffset).pointee
        while candidate != 0 && budget > 0 {
            budget -= 1
            let e = element(candidate)
            let previous = lruPrev(e).pointee
            let used = usedTick(e).pointee.load(ordering: .relaxed)
            if Int64(bitPattern: used &- listTick(e).pointee) >= 0 {
                lruRemove(candidate)
                lruPushHead(candidate)
                candidate = previous != 0 ? previous : field(Self.lruTailOffset).pointee
                continue
            }
            let bucket = Int(hashKey(e + keyOffset) & bucketMask)
            let lock = stripeLock(bucket: bucket)
            let alreadyHeld = lock == held
            if !alreadyHeld && !lock.pointee.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged {
                candidate = previous
                continue
            }
            var link = buckets + bucket
            var index = link.pointee.load(ordering: .relaxed)
            while index != 0 && index != candidate {
                link = nextWord(element(index))
                index = link.pointee.load(ordering: .relaxed)
            }
            guard index == candidate else {
                if !alreadyHeld { spinUnlock(lock) }
                candidate = previous
                continue
            }
            link.pointee.store(nextWord(e).pointee.load(ordering: .relaxed), ordering: .releasing)
            lruRemove(candidate)
            if !alreadyHeld { spinUnlock(lock) }
            liveCount.pointee.subtract(1, ordering: .relaxed)
            retire(candidate)
            return true
        }
        return false
    }

    // MARK: Writers

    private enum ValueSource {
        /// A program update: value_size bytes for this CPU's slice (all of a non-per-CPU value).
        case program(UnsafeRawPointer)
        /// A control-plane update: one value for every slice, or all slices.
        case control(UnsafeRawPointer, count: Int)
    }

    private func writeValue(_ e: UnsafeMutableRawPointer, _ source: ValueSource, fresh: Bool) {
        let values = e + valueOffset
        switch source {
        case let .program(value):
            if isPerCPU {
                let cpu = MapEpoch.currentCPU
                if fresh { memset(values, 0, valueSlice * cpuCount) }
                if cpu < cpuCount { memcpy(values + cpu * valueSlice, value, valueSize) }
            } else {
                memcpy(values, value, valueSize)
            }
        case let .control(value, count):
            if count == valueSize {
                for cpu in 0..<cpuCount { memcpy(values + cpu * valueSlice, value, valueSize) }
            } else {
                for cpu in 0..<cpuCount { memcpy(values + cpu * valueSlice, value + cpu * valueSlice, valueSize) }
            }
        }
    }

    private func initElement(_ index: UInt32, key: UnsafeRawPointer, tag: UInt32, next: UInt32, value: ValueSource) {
        let e = element(index)
        nextWord(e).pointee.store(next, ordering: .relaxed)
        linkWord(e).pointee.store(tag, ordering: .relaxed)
        memcpy(e + keyOffset, key, keySize)
        if valueSlice != valueSize || isPerCPU { memset(e + valueOffset, 0, valueSlice * cpuCount) }
        writeValue(e, value, fresh: true)
    }

    private func store(_ key: UnsafeRawPointer, _ value: ValueSource, _ flags: UInt64) -> Int32 {
        guard flags <= BPFUpdateFlags.exist else { return -BPFErrno.EINVAL }
        if isPerCPU, case .program = value, MapEpoch.currentCPU >= cpuCount { return -BPFErrno.EINVAL }
        let hash = hashKey(key)
        let wanted = tag(of: hash)
        let bucket = Int(hash & bucketMask)
        let lock = stripeLock(bucket: bucket)
        spinLock(lock)
        defer { spinUnlock(lock) }

        var link = buckets + bucket
        var index = link.pointee.load(ordering: .relaxed)
        while index != 0 {
            let e = element(index)
            if linkWord(e).pointee.load(ordering: .relaxed) == wanted && memcmp(e + keyOffset, key, keySize) == 0 { break }
            link = nextWord(e)
            index = link.pointee.load(ordering: .relaxed)
        }

        if index != 0 {
            if flags == BPFUpdateFlags.noExist { return -BPFErrno.EEXIST }
            let old = element(index)
            // Per-CPU values are updated in place; others are replaced by a fresh element so
            // readers holding the old value pointer keep a consistent value.
            let replacement = isPerCPU ? 0 : allocate()
            if replacement == 0 {
                // Without a spare element an in-place write could tear a reader's value: fail
                // like an allocation failure instead (the control plane waits and retries).
                if !isPerCPU { return -BPFErrno.ENOMEM }
                writeValue(old, value, fresh: false)
                if isLRU {
                    spinLock(lruLock)
                    lruRemove(index)
                    lruPushHead(index)
                    spinUnlock(lruLock)
                }
                return 0
            }
            initElement(replacement, key: key, tag: wanted, next: nextWord(old).pointee.load(ordering: .relaxed), value: value)
            if isLRU {
                spinLock(lruLock)
                lruRemove(index)
                lruPushHead(replacement)
                spinUnlock(lruLock)
            }
            link.pointee.store(replacement, ordering: .releasing)
            retire(index)
            return 0
        }

        if flags == BPFUpdateFlags.exist { return -BPFErrno.ENOENT }
        if liveCount.pointee.add(1, ordering: .relaxed).newValue > UInt64(maxEntries) {
            // LRU maps make room by evicting; the others are full (Linux: E2BIG).
            if !isLRU || !evict(holding: lock) {
                liveCount.pointee.subtract(1, ordering: .relaxed)
                return -BPFErrno.E2BIG
            }
        }
        let fresh = allocate()
        guard fresh != 0 else {
            liveCount.pointee.subtract(1, ordering: .relaxed)
            return -BPFErrno.ENOMEM
        }
        let head = buckets + bucket
        initElement(fresh, key: key, tag: wanted, next: head.pointee.load(ordering: .relaxed), value: value)
        if isLRU {
            spinLock(lruLock)
            lruPushHead(fresh)
            spinUnlock(lruLock)
        }
        head.pointee.store(fresh, ordering: .releasing)
        return 0
    }

    override func programUpdate(_ key: UnsafeRawPointer, _ value: UnsafeRawPointer, _ flags: UInt64) -> Int32 {
        store(key, .program(value), flags)
    }

    override func programDelete(_ key: UnsafeRawPointer) -> Int32 {
        let hash = hashKey(key)
        let wanted = tag(of: hash)
        let bucket = Int(hash & bucketMask)
        let lock = stripeLock(bucket: bucket)
        spinLock(lock)
        defer { spinUnlock(lock) }
        var link = buckets + bucket
        var index = link.pointee.load(ordering: .relaxed)
        while index != 0 {
            let e = element(index)
            if linkWord(e).pointee.load(ordering: .relaxed) == wanted && memcmp(e + keyOffset, key, keySize) == 0 {
                link.pointee.store(nextWord(e).pointee.load(ordering: .relaxed), ordering: .releasing)
                if isLRU {
                    spinLock(lruLock)
                    lruRemove(index)
                    spinUnlock(lruLock)
                }
                liveCount.pointee.subtract(1, ordering: .relaxed)
                retire(index)
                return 0
            }
            link = nextWord(e)
            index = link.pointee.load(ordering: .relaxed)
        }
        return -BPFErrno.ENOENT
    }

    // MARK: Control plane

    override func controlUpdate(_ key: UnsafeRawPointer, _ value: UnsafeRawPointer, valueCount: Int, _ flags: UInt64) -> Int32 {
        var code = store(key, .control(value, count: valueCount), flags)
        var attempts = 0
        // Spare elements all wait for a grace period: let packet threads pass one, then retry.
        while code == -BPFErrno.ENOMEM && attempts < 3 {
            MapEpoch.synchronize()
            code = store(key, .control(value, count: valueCount), flags)
            attempts += 1
        }
        return code
    }

    private func copyEntryValue(_ e: UnsafeMutableRawPointer, to destination: UnsafeMutableRawPointer) {
        if isPerCPU {
            memcpy(destination, e + valueOffset, valueSlice * cpuCount)
        } else {
            memcpy(destination, e + valueOffset, valueSize)
        }
    }

    override func controlLookup(_ key: UnsafeRawPointer, _ value: UnsafeMutableRawPointer) -> Int32 {
        let hash = hashKey(key)
        let lock = stripeLock(bucket: Int(hash & bucketMask))
        // Under the stripe lock no writer can change or unlink an element of this bucket.
        spinLock(lock)
        defer { spinUnlock(lock) }
        guard let e = findElement(key, hash: hash) else { return -BPFErrno.ENOENT }
        copyEntryValue(e, to: value)
        return 0
    }

    /// Walks buckets in order. The cursor key's bucket continues after the cursor; if the cursor
    /// was deleted meanwhile, that whole bucket is listed again (entries may repeat, none is missed).
    override func controlEntries(after cursor: [UInt8]?, limit: Int) throws(BPFMapError) -> [BPFMapEntry] {
        var result: [BPFMapEntry] = []
        var bucket = 0
        var skipThrough: [UInt8]? = nil
        if let cursor {
            bucket = cursor.withUnsafeBytes { Int(hashKey($0.baseAddress!) & bucketMask) }
            skipThrough = cursor
        }
        var valueBuffer = [UInt8](repeating: 0, count: controlValueSize)
        // Consecutive buckets of one stripe (all of them in LRU maps) are read under one lock
        // hold, up to a bounded number of entries, so a dump does not queue once per bucket.
        var heldLock: AtomicU32Pointer? = nil
        var entriesUnderLock = 0
        while bucket <= Int(bucketMask) && result.count < limit {
            let lock = stripeLock(bucket: bucket)
            if heldLock != lock || entriesUnderLock > 256 {
                if let heldLock { spinUnlock(heldLock) }
                spinLock(lock)
                heldLock = lock
                entriesUnderLock = 0
            }
            var pending: [BPFMapEntry] = []
            var index = buckets[bucket].load(ordering: .relaxed)
            var cursorSeen = false
            while index != 0 {
                let e = element(index)
                let key = [UInt8](UnsafeRawBufferPointer(start: e + keyOffset, count: keySize))
                if let skip = skipThrough, !cursorSeen {
                    if key == skip {
                        cursorSeen = true
                        pending.removeAll()
                        index = nextWord(e).pointee.load(ordering: .relaxed)
                        continue
                    }
                }
                valueBuffer.withUnsafeMutableBytes { copyEntryValue(e, to: $0.baseAddress!) }
                pending.append(BPFMapEntry(key: key, value: valueBuffer))
                index = nextWord(e).pointee.load(ordering: .relaxed)
            }
            entriesUnderLock += pending.count + 1
            skipThrough = nil
            result.append(contentsOf: pending.prefix(limit - result.count))
            bucket += 1
        }
        if let heldLock { spinUnlock(heldLock) }
        return result
    }

    override func controlClear() {
        for bucket in 0...Int(bucketMask) {
            let lock = stripeLock(bucket: bucket)
            spinLock(lock)
            var index = buckets[bucket].load(ordering: .relaxed)
            buckets[bucket].store(0, ordering: .releasing)
            while index != 0 {
                let next = nextWord(element(index)).pointee.load(ordering: .relaxed)
                if isLRU {
                    spinLock(lruLock)
                    lruRemove(index)
                    spinUnlock(lruLock)
                }
                liveCount.pointee.subtract(1, ordering: .relaxed)
                retire(index)
                index = next
            }
            spinUnlock(lock)
        }
    }
}
