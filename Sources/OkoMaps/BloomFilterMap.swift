// Bloom filter map (Linux type 30): push adds a value, peek tests membership (0 = maybe present,
// -ENOENT = certainly absent). map_extra low 4 bits = number of hash functions (0 means 5), as in
// Linux. Bits are set with atomic OR, so pushes and peeks never lock.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

final class BloomFilterMap: BPFMap, @unchecked Sendable {
    let hashCount: Int
    let bitMask: UInt64
    let valueSize: Int
    let words: AtomicU64Pointer
    let pushes: AtomicU64Pointer

    init(definition: BPFMapDefinition) throws(BPFMapError) {
        guard definition.keySize == 0 else { throw .invalidDefinition(name: definition.name, reason: "Bloom filters need key_size 0") }
        guard definition.valueSize > 0 else { throw .invalidDefinition(name: definition.name, reason: "Bloom filters need value_size > 0") }
        let requested = Int(definition.extra & 0xF)
        hashCount = requested == 0 ? 5 : requested
        valueSize = definition.valueSize
        // Linux sizing: bits = max_entries * hashes / ln 2, rounded up to a power of two.
        let bits = max(64, nextPowerOfTwo(Int((Double(definition.maxEntries) * Double(hashCount) / 0.6931471805599453).rounded(.up))))
        bitMask = UInt64(bits - 1)
        var layout = MapArena.Layout()
        let countersAt = layout.reserve(64)
        let wordsAt = layout.reserve(bits / 8)
        let arena = try MapArena(byteCount: layout.size)
        pushes = (arena.base + countersAt).assumingMemoryBound(to: Atomic<UInt64>.self)
        words = (arena.base + wordsAt).assumingMemoryBound(to: Atomic<UInt64>.self)
        super.init(definition: definition, cpuCount: 1, arena: arena, regions: [])
    }

    /// Values pushed so far.
    override var count: Int { Int(pushes.pointee.load(ordering: .relaxed)) }

    /// Bit positions by double hashing (Kirsch-Mitzenmacher): h1 + i * h2.
    @inline(__always) private func bit(_ i: Int, _ hash: UInt64) -> UInt64 {
        let h1 = hash & 0xFFFF_FFFF
        let h2 = (hash >> 32) | 1
        return (h1 &+ UInt64(i) &* h2 &+ UInt64(i * i)) & bitMask
    }

    override func programPush(_ value: UnsafeRawPointer, _ flags: UInt64) -> Int32 {
        guard flags == BPFUpdateFlags.any else { return -BPFErrno.EINVAL }
        let hash = okoHashBytes(value, count: valueSize)
        for i in 0..<hashCount {
            let b = bit(i, hash)
            let word = words + Int(b >> 6)
            let mask: UInt64 = 1 << (b & 63)
            if word.pointee.load(ordering: .relaxed) & mask == 0 {
                word.pointee.bitwiseOr(mask, ordering: .relaxed)
            }
        }
        pushes.pointee.add(1, ordering: .relaxed)
        return 0
    }

    override func programPeek(_ value: UnsafeMutableRawPointer) -> Int32 {
        let hash = okoHashBytes(value, count: valueSize)
        for i in 0..<hashCount {
            let b = bit(i, hash)
            if words[Int(b >> 6)].load(ordering: .relaxed) & (1 << (b & 63)) == 0 { return -BPFErrno.ENOENT }
        }
        return 0
    }

    override func controlUpdate(_ key: UnsafeRawPointer, _ value: UnsafeRawPointer, valueCount: Int, _ flags: UInt64) -> Int32 {
        programPush(value, flags)
    }
    override func controlLookup(_ key: UnsafeRawPointer, _ value: UnsafeMutableRawPointer) -> Int32 { -BPFErrno.EOPNOTSUPP }

    override func controlClear() {
        for i in 0...Int(bitMask >> 6) { words[i].store(0, ordering: .relaxed) }
        pushes.pointee.store(0, ordering: .relaxed)
    }
}
