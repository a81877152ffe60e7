// Array and per-CPU array maps: preallocated values indexed by a UInt32 key, each guarded by a
// seqlock word so control-plane copies are never torn.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

final class ArrayMap: BPFMap, @unchecked Sendable {
    let maxEntries: Int
    let valueSize: Int
    let valueSlice: Int
    let entryStride: Int
    let sequences: AtomicU32Pointer
    let values: UnsafeMutableRawPointer

    init(definition: BPFMapDefinition, cpuCount: Int) throws(BPFMapError) {
        guard definition.keySize == 4 else { throw .invalidDefinition(name: definition.name, reason: "array maps need key_size 4, got \(definition.keySize)") }
        guard definition.valueSize > 0 else { throw .invalidDefinition(name: definition.name, reason: "array maps need value_size > 0") }
        maxEntries = definition.maxEntries
        valueSize = definition.valueSize
        valueSlice = roundUp8(definition.valueSize)
        entryStride = valueSlice * cpuCount
        var layout = MapArena.Layout()
        let sequencesAt = layout.reserve(4 * definition.maxEntries)
        let valuesAt = layout.reserve(entryStride * definition.maxEntries)
        let arena = try MapArena(byteCount: layout.size)
        sequences = (arena.base + sequencesAt).assumingMemoryBound(to: Atomic<UInt32>.self)
        values = arena.base + valuesAt
        let region = BPFMapMemoryRegion(start: UInt(bitPattern: values), length: entryStride * definition.maxEntries, writable: true)
        super.init(definition: definition, cpuCount: cpuCount, arena: arena, regions: [region])
    }

    override var count: Int { maxEntries }

    @inline(__always) private func index(_ key: UnsafeRawPointer) -> Int? {
        let index = Int(key.loadUnaligned(as: UInt32.self))
        return index < maxEntries ? index : nil
    }

    override func programLookup(_ key: UnsafeRawPointer) -> UnsafeMutableRawPointer? {
        guard let index = index(key) else { return nil }
        if cpuCount == 1 { return values + index &* entryStride }
        let cpu = MapEpoch.currentCPU
        guard cpu < cpuCount else { return nil }
        return values + index &* entryStride + cpu &* valueSlice
    }

    override func programUpdate(_ key: UnsafeRawPointer, _ value: UnsafeRawPointer, _ flags: UInt64) -> Int32 {
        guard flags <= BPFUpdateFlags.exist else { return -BPFErrno.EINVAL }
        guard let index = index(key) else { return -BPFErrno.E2BIG }
        if flags == BPFUpdateFlags.noExist { return -BPFErrno.EEXIST }  // array slots always exist
        let cpu = cpuCount == 1 ? 0 : MapEpoch.currentCPU
        guard cpu < cpuCount else { return -BPFErrno.EINVAL }
        let odd = seqWriteBegin(sequences + index)
        memcpy(values + index * entryStride + cpu * valueSlice, value, valueSize)
        seqWriteEnd(sequences + index, odd)
        return 0
    }

    override func programDelete(_ key: UnsafeRawPointer) -> Int32 { -BPFErrno.EINVAL }

    override func controlLookup(_ key: UnsafeRawPointer, _ value: UnsafeMutableRawPointer) -> Int32 {
        guard let index = index(key) else { return -BPFErrno.ENOENT }
        seqReadCopy(sequences + index, from: values + index * entryStride, to: value, count: controlValueSize)
        return 0
    }

    override func controlUpdate(_ key: UnsafeRawPointer, _ value: UnsafeRawPointer, valueCount: Int, _ flags: UInt64) -> Int32 {
        guard flags <= BPFUpdateFlags.exist else { return -BPFErrno.EINVAL }
        guard let index = index(key) else { return -BPFErrno.E2BIG }
        if flags == BPFUpdateFlags.noExist { return -BPFErrno.EEXIST }
        let entry = values + index * entryStride
        let odd = seqWriteBegin(sequences + index)
        for cpu in 0..<cpuCount {
            memcpy(entry + cpu * valueSlice, valueCount == valueSize ? value : value + cpu * valueSlice, valueSize)
        }
        seqWriteEnd(sequences + index, odd)
        return 0
    }

    override func controlDelete(_ key: UnsafeRawPointer) -> Int32 { -BPFErrno.EINVAL }

    override func controlEntries(after cursor: [UInt8]?, limit: Int) throws(BPFMapError) -> [BPFMapEntry] {
        var start = 0
        if let cursor {
            start = Int(cursor.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }) + 1
        }
        var result: [BPFMapEntry] = []
        var buffer = [UInt8](repeating: 0, count: controlValueSize)
        var index = start
        while index < maxEntries && result.count < limit {
            buffer.withUnsafeMutableBytes { b in
                seqReadCopy(sequences + index, from: values + index * entryStride, to: b.baseAddress!, count: controlValueSize)
            }
            let key = withUnsafeBytes(of: UInt32(index).littleEndian) { [UInt8]($0) }
            result.append(BPFMapEntry(key: key, value: buffer))
            index += 1
        }
        return result
    }

    override func controlClear() {
        for index in 0..<maxEntries {
            let odd = seqWriteBegin(sequences + index)
            memset(values + index * entryStride, 0, entryStride)
            seqWriteEnd(sequences + index, odd)
        }
    }
}
