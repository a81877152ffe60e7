// Queue (FIFO) and stack (LIFO) maps: a ring of max_entries values under one spin lock, as in
// Linux. Values are copied in and out, so no pointer escapes and nothing needs reclamation.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

final class QueueStackMap: BPFMap, @unchecked Sendable {
    let isStack: Bool
    let capacity: Int
    let valueSize: Int
    let slotStride: Int
    /// [lock: UInt32][pad][first: Int][used: Int]
    let control: UnsafeMutableRawPointer
    let slots: UnsafeMutableRawPointer

    init(definition: BPFMapDefinition) throws(BPFMapError) {
        guard definition.keySize == 0 else { throw .invalidDefinition(name: definition.name, reason: "queue/stack maps need key_size 0") }
        guard definition.valueSize > 0 else { throw .invalidDefinition(name: definition.name, reason: "queue/stack maps need value_size > 0") }
        isStack = definition.type == .stack
        capacity = definition.maxEntries
        valueSize = definition.valueSize
        slotStride = roundUp8(definition.valueSize)
        var layout = MapArena.Layout()
        let controlAt = layout.reserve(64)
        let slotsAt = layout.reserve(slotStride * capacity)
        let arena = try MapArena(byteCount: layout.size)
        control = arena.base + controlAt
        slots = arena.base + slotsAt
        super.init(definition: definition, cpuCount: 1, arena: arena, regions: [])
    }

    private var lock: AtomicU32Pointer { control.assumingMemoryBound(to: Atomic<UInt32>.self) }
    private var first: UnsafeMutablePointer<Int> { (control + 8).assumingMemoryBound(to: Int.self) }
    private var used: UnsafeMutablePointer<Int> { (control + 16).assumingMemoryBound(to: Int.self) }

    private func slot(_ position: Int) -> UnsafeMutableRawPointer {
        slots + ((first.pointee + position) % capacity) * slotStride
    }

    override var count: Int {
        spinLock(lock)
        defer { spinUnlock(lock) }
        return used.pointee
    }

    override func programPush(_ value: UnsafeRawPointer, _ flags: UInt64) -> Int32 {
        guard flags == BPFUpdateFlags.any || flags == BPFUpdateFlags.exist else { return -BPFErrno.EINVAL }
        spinLock(lock)
        defer { spinUnlock(lock) }
        if used.pointee == capacity {
            guard flags == BPFUpdateFlags.exist else { return -BPFErrno.E2BIG }
            // Drop the oldest value (the queue's head, the stack's bottom).
            first.pointee = (first.pointee + 1) % capacity
            used.pointee -= 1
        }
        memcpy(slot(used.pointee), value, valueSize)
        used.pointee += 1
        return 0
    }

    private func take(_ value: UnsafeMutableRawPointer, remove: Bool) -> Int32 {
        spinLock(lock)
        defer { spinUnlock(lock) }
        guard used.pointee > 0 else { return -BPFErrno.ENOENT }
        if isStack {
            memcpy(value, slot(used.pointee - 1), valueSize)
            if remove { used.pointee -= 1 }
        } else {
            memcpy(value, slot(0), valueSize)
            if remove {
                first.pointee = (first.pointee + 1) % capacity
                used.pointee -= 1
            }
        }
        return 0
    }

    override func programPop(_ value: UnsafeMutableRawPointer) -> Int32 { take(value, remove: true) }
    override func programPeek(_ value: UnsafeMutableRawPointer) -> Int32 { take(value, remove: false) }

    // Linux maps the syscall commands: update = push, lookup = peek.
    override func controlUpdate(_ key: UnsafeRawPointer, _ value: UnsafeRawPointer, valueCount: Int, _ flags: UInt64) -> Int32 {
        programPush(value, flags)
    }
    override func controlLookup(_ key: UnsafeRawPointer, _ value: UnsafeMutableRawPointer) -> Int32 { programPeek(value) }
    override func controlDelete(_ key: UnsafeRawPointer) -> Int32 { -BPFErrno.EINVAL }

    /// Values in pop order, with empty keys. Paging by key is impossible (keys are empty).
    override func controlEntries(after cursor: [UInt8]?, limit: Int) throws(BPFMapError) -> [BPFMapEntry] {
        guard cursor == nil else { throw .operationNotSupported(map: name, operation: "paging with a cursor", type: definition.type) }
        spinLock(lock)
        defer { spinUnlock(lock) }
        let n = min(limit, used.pointee)
        return (0..<n).map { i in
            let position = isStack ? used.pointee - 1 - i : i
            return BPFMapEntry(key: [], value: [UInt8](UnsafeRawBufferPointer(start: slot(position), count: valueSize)))
        }
    }

    override func controlClear() {
        spinLock(lock)
        first.pointee = 0
        used.pointee = 0
        spinUnlock(lock)
    }
}
