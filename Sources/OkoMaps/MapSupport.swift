// Shared building blocks of the map implementations: the arena (one mmap per map), spin locks and
// seqlocks on raw memory, the key hash, Linux errno values.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Linux errno values the helpers return negated (as Linux map helpers do).
public enum BPFErrno {
    public static let ENOENT: Int32 = 2
    public static let E2BIG: Int32 = 7
    public static let ENOMEM: Int32 = 12
    public static let EBUSY: Int32 = 16
    public static let EEXIST: Int32 = 17
    public static let EINVAL: Int32 = 22
    public static let EOPNOTSUPP: Int32 = 95
}

/// Update flags of `map_update_elem` / `map_push_elem` (Linux values).
public enum BPFUpdateFlags {
    public static let any: UInt64 = 0
    public static let noExist: UInt64 = 1
    public static let exist: UInt64 = 2
}

@inline(__always)
func roundUp8(_ value: Int) -> Int { (value + 7) & ~7 }

@inline(__always)
func nextPowerOfTwo(_ value: Int) -> Int {
    value <= 1 ? 1 : 1 << (Int.bitWidth - (value - 1).leadingZeroBitCount)
}

/// One anonymous mapping holding all of a map's storage. Pages come zeroed from the kernel and are
/// touched only when used, so creating a large map is cheap; the size never changes afterwards.
final class MapArena {
    let base: UnsafeMutableRawPointer
    let byteCount: Int

    init(byteCount requested: Int) throws(BPFMapError) {
        let pageSize = 4096
        let size = max(pageSize, (requested + pageSize - 1) & ~(pageSize - 1))
        let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let address, address != MAP_FAILED else {
            throw .outOfMemory(bytes: size)
        }
        base = address
        byteCount = size
    }

    deinit {
        munmap(base, byteCount)
    }

    /// Carves consecutive, 64-byte aligned pieces out of the arena (creation time only).
    struct Layout {
        private(set) var size = 0
        mutating func reserve(_ bytes: Int) -> Int {
            let offset = size
            size += (bytes + 63) & ~63
            return offset
        }
    }
}

typealias AtomicU32Pointer = UnsafeMutablePointer<Atomic<UInt32>>
typealias AtomicU64Pointer = UnsafeMutablePointer<Atomic<UInt64>>

/// Test-and-test-and-set spin lock on a 32-bit word in an arena (0 = free). Critical sections are a
/// few hundred nanoseconds at most (a key compare and a value copy), so spinning beats a futex.
@inline(__always)
func spinLock(_ word: AtomicU32Pointer) {
    while true {
        if word.pointee.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged { return }
        var spins = 0
        while word.pointee.load(ordering: .relaxed) != 0 {
            spins += 1
            if spins > 4096 {
                sched_yield()
                spins = 0
            }
        }
    }
}

@inline(__always)
func spinUnlock(_ word: AtomicU32Pointer) {
    word.pointee.store(0, ordering: .releasing)
}

/// Seqlock writer side: the sequence word doubles as the writers' lock (odd = a writer is inside).
@inline(__always)
func seqWriteBegin(_ sequence: AtomicU32Pointer) -> UInt32 {
    while true {
        let current = sequence.pointee.load(ordering: .relaxed)
        if current & 1 == 0,
           sequence.pointee.compareExchange(expected: current, desired: current &+ 1, ordering: .acquiring).exchanged {
            atomicMemoryFence(ordering: .releasing)
            return current &+ 1
        }
        sched_yield()
    }
}

@inline(__always)
func seqWriteEnd(_ sequence: AtomicU32Pointer, _ odd: UInt32) {
    sequence.pointee.store(odd &+ 1, ordering: .releasing)
}

/// Seqlock reader: copies `count` bytes until it gets a copy no writer overlapped.
@inline(__always)
func seqReadCopy(_ sequence: AtomicU32Pointer, from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, count: Int) {
    while true {
        let before = sequence.pointee.load(ordering: .acquiring)
        if before & 1 != 0 {
            sched_yield()
            continue
        }
        memcpy(destination, source, count)
        atomicMemoryFence(ordering: .acquiring)
        if sequence.pointee.load(ordering: .relaxed) == before { return }
    }
}

// MARK: - Hashing

@usableFromInline let hashPrime0: UInt64 = 0xa076_1d64_78bd_642f
@usableFromInline let hashPrime1: UInt64 = 0xe703_7ed1_a0b4_28db
@usableFromInline let hashPrime2: UInt64 = 0x8ebc_6af0_9c88_c6e3
@usableFromInline let hashPrime3: UInt64 = 0x5899_65cc_7537_4cc3

@inline(__always) @usableFromInline
func multiplyMix(_ a: UInt64, _ b: UInt64) -> UInt64 {
    let product = a.multipliedFullWidth(by: b)
    return product.high ^ product.low
}

/// A wyhash-style 64-bit hash of `count` bytes: one 64x64->128 multiply per 8 bytes, no allocation.
@inlinable
public func okoHashBytes(_ bytes: UnsafeRawPointer, count: Int, seed: UInt64 = 0) -> UInt64 {
    var state = seed ^ hashPrime0 ^ multiplyMix(seed ^ hashPrime1, UInt64(truncatingIfNeeded: count) ^ hashPrime2)
    var offset = 0
    while offset + 16 <= count {
        let a = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        let b = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)
        state = multiplyMix(a ^ hashPrime1, b ^ state)
        offset += 16
    }
    let remaining = count - offset
    var a: UInt64 = 0
    var b: UInt64 = 0
    if remaining >= 8 {
        a = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        b = bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
    } else if remaining >= 4 {
        a = UInt64(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        b = UInt64(bytes.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self))
    } else if remaining > 0 {
        let p = bytes.advanced(by: offset).assumingMemoryBound(to: UInt8.self)
        a = UInt64(p[0]) << 16 | UInt64(p[remaining >> 1]) << 8 | UInt64(p[remaining - 1])
    }
    state = multiplyMix(a ^ hashPrime1 ^ state, b ^ hashPrime3)
    return multiplyMix(state ^ hashPrime0, UInt64(truncatingIfNeeded: count) ^ hashPrime2)
}
