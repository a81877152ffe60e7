// Count-min sketch (Oko type 0x4F4B0001): rows x width counters of value_size bytes (4 or 8).
// add(key, n) adds n to one counter per row; the estimate is the smallest of those counters, so it
// never underestimates (32-bit counters saturate instead of wrapping). max_entries = width,
// map_extra = rows (default 4, at most 16). Counters are updated with atomic RMWs, no locks.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

final class CountMinSketchMap: BPFMap, @unchecked Sendable {
    static let defaultRows = 4
    let rows: Int
    let width: Int
    let keySize: Int
    let wideCounters: Bool
    let counters: UnsafeMutableRawPointer
    let additions: AtomicU64Pointer

    init(definition: BPFMapDefinition) throws(BPFMapError) {
        guard definition.keySize > 0 else { throw .invalidDefinition(name: definition.name, reason: "count-min sketches need key_size > 0") }
        guard definition.valueSize == 4 || definition.valueSize == 8 else {
            throw .invalidDefinition(name: definition.name, reason: "count-min counters are 4 or 8 bytes, got value_size \(definition.valueSize)")
        }
        guard definition.extra <= 16 else { throw .invalidDefinition(name: definition.name, reason: "count-min rows (map_extra) at most 16, got \(definition.extra)") }
        rows = definition.extra == 0 ? Self.defaultRows : Int(definition.extra)
        width = definition.maxEntries
        keySize = definition.keySize
        wideCounters = definition.valueSize == 8
        var layout = MapArena.Layout()
        let totalsAt = layout.reserve(64)
        let countersAt = layout.reserve(rows * width * definition.valueSize)
        let arena = try MapArena(byteCount: layout.size)
        additions = (arena.base + totalsAt).assumingMemoryBound(to: Atomic<UInt64>.self)
        counters = arena.base + countersAt
        super.init(definition: definition, cpuCount: 1, arena: arena, regions: [])
    }

    /// Number of add operations so far.
    override var count: Int { Int(additions.pointee.load(ordering: .relaxed)) }

    @inline(__always) private func column(_ row: Int, _ hash: UInt64) -> Int {
        let h = UInt32(truncatingIfNeeded: (hash & 0xFFFF_FFFF) &+ UInt64(row) &* ((hash >> 32) | 1))
        return Int((UInt64(h) &* UInt64(width)) >> 32)
    }

    func add(_ key: UnsafeRawPointer, _ amount: UInt64) {
        let hash = okoHashBytes(key, count: keySize)
        for row in 0..<rows {
            let index = row * width + column(row, hash)
            if wideCounters {
                (counters + index * 8).assumingMemoryBound(to: Atomic<UInt64>.self).pointee.wrappingAdd(amount, ordering: .relaxed)
            } else {
                let counter = (counters + index * 4).assumingMemoryBound(to: Atomic<UInt32>.self)
                var current = counter.pointee.load(ordering: .relaxed)
                while true {
                    let sum = UInt64(current) + amount
                    let next = sum > UInt64(UInt32.max) ? UInt32.max : UInt32(sum)
                    let (exchanged, original) = counter.pointee.compareExchange(expected: current, desired: next, ordering: .relaxed)
                    if exchanged { break }
                    current = original
                }
            }
        }
        additions.pointee.add(1, ordering: .relaxed)
    }

    func estimate(_ key: UnsafeRawPointer) -> UInt64 {
        let hash = okoHashBytes(key, count: keySize)
        var smallest = UInt64.max
        for row in 0..<rows {
            let index = row * width + column(row, hash)
            let value = wideCounters
                ? (counters + index * 8).assumingMemoryBound(to: Atomic<UInt64>.self).pointee.load(ordering: .relaxed)
                : UInt64((counters + index * 4).assumingMemoryBound(to: Atomic<UInt32>.self).pointee.load(ordering: .relaxed))
            smallest = min(smallest, value)
        }
        return smallest
    }

    override func programSketchAdd(_ key: UnsafeRawPointer, _ amount: UInt64) -> Int32 {
        add(key, amount)
        return 0
    }

    override func programSketchEstimate(_ key: UnsafeRawPointer) -> UInt64 { estimate(key) }

    /// map_update_elem adds the value (a little-endian counter-sized integer) to the key's count.
    override func programUpdate(_ key: UnsafeRawPointer, _ value: UnsafeRawPointer, _ flags: UInt64) -> Int32 {
        add(key, wideCounters ? value.loadUnaligned(as: UInt64.self) : UInt64(value.loadUnaligned(as: UInt32.self)))
        return 0
    }

    override func controlUpdate(_ key: UnsafeRawPointer, _ value: UnsafeRawPointer, valueCount: Int, _ flags: UInt64) -> Int32 {
        programUpdate(key, value, flags)
    }

    override func controlLookup(_ key: UnsafeRawPointer, _ value: UnsafeMutableRawPointer) -> Int32 {
        let estimate = self.estimate(key)
        if wideCounters { value.storeBytes(of: estimate.littleEndian, as: UInt64.self) } else { value.storeBytes(of: UInt32(estimate).littleEndian, as: UInt32.self) }
        return 0
    }

    override func controlClear() {
        memset(counters, 0, rows * width * definition.valueSize)
        additions.pointee.store(0, ordering: .relaxed)
    }
}

extension BPFMap {
    /// Count-min sketch: adds `amount` to `key`'s count.
    public func add(key: [UInt8], amount: UInt64 = 1) throws(BPFMapError) {
        guard let sketch = self as? CountMinSketchMap else {
            throw .operationNotSupported(map: name, operation: "count-min add", type: definition.type)
        }
        try checkKey(key)
        key.withUnsafeBytes { sketch.add($0.baseAddress!, amount) }
    }

    /// Count-min sketch: the estimated count of `key` (never below the true count).
    public func estimate(key: [UInt8]) throws(BPFMapError) -> UInt64 {
        guard let sketch = self as? CountMinSketchMap else {
            throw .operationNotSupported(map: name, operation: "count-min query", type: definition.type)
        }
        try checkKey(key)
        return key.withUnsafeBytes { sketch.estimate($0.baseAddress!) }
    }
}
