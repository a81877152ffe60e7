// OkoMaps: the persistent BPF maps programs and the control plane share.
//
// Design note
// What it is: Linux-compatible map types (hash 1, array 2, per-CPU hash 5, per-CPU array 6,
// LRU hash 9, LRU per-CPU hash 10, queue 22, stack 23, Bloom filter 30) plus Oko's count-min
// sketch (0x4F4B0001). Programs reach them through C-convention helpers (`BPFMapHelpers`), the
// control plane through the safe Swift API on `BPFMap`.
//
// Memory layout: every map makes exactly one anonymous mmap (`MapArena`) at creation, sized from
// its definition; nothing is allocated afterwards, so memory is bounded and `memoryBytes` is exact.
// - Hash family: [bucket heads: UInt32 x 2^k] [stripe locks] [elements x (maxEntries + slack)].
//   An element is [chain next: UInt32][link/hash: UInt32][LRU: prev, next, listTick, usedTick]
//   [key, padded to 8][value, padded to 8 (x cpuCount for per-CPU)]. Indices are 1-based (0 = end)
//   so 32-bit links suffice. Free and retired elements are chained through the link word.
// - Array: [sequence words][values, 8-byte stride (x cpuCount)].
// - Queue/stack: a ring of values under one spin lock. Bloom: a power-of-two bit array.
//   Count-min: rows x width counters.
// `regions` lists the byte ranges value pointers handed to programs can point into, so an
// interpreter can bounds-check loads and stores through them.
//
// Concurrency protocol
// - Lookups (hot path) are lock-free and allocation-free: hash the key (wyhash-style), load the
//   bucket head (acquire), walk the chain comparing the cached hash then the key bytes.
// - Hash writers take the bucket's stripe spin lock (1024 stripes at most). LRU maps also keep a
//   list under an LRU lock (order: stripe, then LRU); eviction only try-locks the victim's stripe
//   and skips busy victims, so no lock cycle exists. Lookups only stamp a "used" tick
//   (second-chance approximation of LRU, as Linux's LRU is approximate too). Inserts publish a fully written element with a release store.
//   Updates of an existing key build a new element and swap it into the chain (like Linux), so a
//   program that looked up the old value keeps reading a consistent old value (if no spare element
//   is free the update fails with -ENOMEM rather than tearing). Per-CPU values are updated in place
//   (a CPU's slice is written by that CPU's programs, or by the control plane under the lock).
// - Control-plane reads of hash maps copy under the stripe lock, so they never see half an update.
//   Array values carry a seqlock: writers make the word odd (it doubles as their lock), readers
//   retry their copy until the word is even and unchanged.
// - Queue/stack take a spin lock per operation (as Linux does); Bloom bits and count-min counters
//   are single atomic RMWs.
//
// Reclamation: deleted/replaced/evicted elements are unlinked, then retired into a batch; a batch
// is sealed with a new global epoch and recycled only after every registered packet thread left
// its critical section or passed a quiescent point (`MapEpoch`). Hence a value pointer returned by
// `map_lookup_elem` stays valid for the rest of the program run. `slack` extra elements absorb the
// retired ones waiting for a grace period; if none is free a program's insert fails with -ENOMEM
// while the control plane waits for a grace period.
//
// Per-CPU maps index their slices with `MapEpoch.currentCPU` (the packet thread's registered slot).
//
// Limits: stores a program makes through a value pointer bypass every lock (as in Linux), so the
// control plane may see such a store half done. Threads that never registered get no lifetime
// guarantee for value pointers (their lookups stay memory-safe: every link is a valid index).
// `handle` is unretained: keep the BPFMap alive while any program can use it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Map types with Linux's `enum bpf_map_type` numbers, plus Oko's own outside Linux's range.
public enum BPFMapType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case hash = 1
    case array = 2
    case perCPUHash = 5
    case perCPUArray = 6
    case lruHash = 9
    case lruPerCPUHash = 10
    case queue = 22
    case stack = 23
    case bloomFilter = 30
    /// Oko: count-min sketch. key = bytes counted, value_size = counter width (4 or 8),
    /// max_entries = width (columns), map_extra = rows (default 4, at most 16).
    case countMinSketch = 0x4F4B_0001

    public var description: String {
        switch self {
        case .hash: "hash"
        case .array: "array"
        case .perCPUHash: "percpu_hash"
        case .perCPUArray: "percpu_array"
        case .lruHash: "lru_hash"
        case .lruPerCPUHash: "lru_percpu_hash"
        case .queue: "queue"
        case .stack: "stack"
        case .bloomFilter: "bloom_filter"
        case .countMinSketch: "count_min_sketch"
        }
    }

    public var isPerCPU: Bool { self == .perCPUHash || self == .perCPUArray || self == .lruPerCPUHash }
}

/// What a map is, as declared by a program's ELF (`struct bpf_map_def` / BTF map) or the API.
public struct BPFMapDefinition: Sendable, Equatable {
    public var type: BPFMapType
    public var keySize: Int
    public var valueSize: Int
    public var maxEntries: Int
    public var flags: UInt32
    /// Linux `map_extra`: Bloom filter hash count (low 4 bits); count-min rows.
    public var extra: UInt64
    public var name: String

    public init(type: BPFMapType, keySize: Int, valueSize: Int, maxEntries: Int, flags: UInt32 = 0, extra: UInt64 = 0, name: String = "") {
        self.type = type
        self.keySize = keySize
        self.valueSize = valueSize
        self.maxEntries = maxEntries
        self.flags = flags
        self.extra = extra
        self.name = name
    }
}

/// A byte range program-visible value pointers can point into.
public struct BPFMapMemoryRegion: Sendable, Equatable {
    public var start: UInt
    public var length: Int
    public var writable: Bool

    @inlinable
    public func contains(address: UInt, count: Int) -> Bool {
        address >= start && count >= 0 && address - start <= UInt(length) && UInt(length) - (address - start) >= UInt(count)
    }
}

public struct BPFMapEntry: Sendable, Equatable {
    public var key: [UInt8]
    public var value: [UInt8]
}

public enum BPFMapError: Error, Equatable, CustomStringConvertible {
    case invalidDefinition(name: String, reason: String)
    case keySizeMismatch(map: String, expected: Int, actual: Int)
    case valueSizeMismatch(map: String, expected: String, actual: Int)
    case keyNotFound(map: String)
    case keyExists(map: String)
    /// Linux E2BIG: the map holds max_entries entries (or an array index is out of range).
    case mapFull(map: String, maxEntries: Int)
    /// ENOMEM: every spare element waits for packet threads to pass a quiescent point.
    case reclamationPending(map: String)
    case invalidFlags(map: String, flags: UInt64)
    case operationNotSupported(map: String, operation: String, type: BPFMapType)
    case outOfMemory(bytes: Int)
    case threadSlotUnavailable(Int)

    public var description: String {
        switch self {
        case let .invalidDefinition(name, reason): "map '\(name)': invalid definition: \(reason)"
        case let .keySizeMismatch(map, expected, actual): "map '\(map)': key is \(actual) bytes, the map's keys are \(expected) bytes"
        case let .valueSizeMismatch(map, expected, actual): "map '\(map)': value is \(actual) bytes, expected \(expected) bytes"
        case let .keyNotFound(map): "map '\(map)': no such key (ENOENT)"
        case let .keyExists(map): "map '\(map)': key already exists (EEXIST)"
        case let .mapFull(map, maxEntries): "map '\(map)': full, max_entries is \(maxEntries) (E2BIG)"
        case let .reclamationPending(map): "map '\(map)': no free element until packet threads pass a quiescent point (ENOMEM)"
        case let .invalidFlags(map, flags): "map '\(map)': invalid update flags \(flags) (EINVAL)"
        case let .operationNotSupported(map, operation, type): "map '\(map)': \(operation) is not supported by \(type) maps"
        case let .outOfMemory(bytes): "cannot map \(bytes) bytes for a BPF map"
        case let .threadSlotUnavailable(index): "no free packet-thread slot (requested \(index), at most \(MapEpoch.maxThreads))"
        }
    }

    /// The Linux errno this error corresponds to (positive).
    public var errno: Int32 {
        switch self {
        case .invalidDefinition, .keySizeMismatch, .valueSizeMismatch, .invalidFlags: BPFErrno.EINVAL
        case .keyNotFound: BPFErrno.ENOENT
        case .keyExists: BPFErrno.EEXIST
        case .mapFull: BPFErrno.E2BIG
        case .reclamationPending, .outOfMemory: BPFErrno.ENOMEM
        case .operationNotSupported: BPFErrno.EOPNOTSUPP
        case .threadSlotUnavailable: BPFErrno.EBUSY
        }
    }
}

/// A map. Create with `BPFMap.create(_:)`; hand `handle` to programs (r1 of map helpers).
/// Subclasses override the `program*` (raw, hot) and `control*` (raw, copying) primitives.
public class BPFMap: @unchecked Sendable {
    public let definition: BPFMapDefinition
    /// Slices per value in per-CPU maps (1 otherwise).
    public let cpuCount: Int
    let arena: MapArena
    /// Ranges value pointers from `map_lookup_elem` can point into.
    public let regions: [BPFMapMemoryRegion]

    init(definition: BPFMapDefinition, cpuCount: Int, arena: MapArena, regions: [BPFMapMemoryRegion]) {
        self.definition = definition
        self.cpuCount = cpuCount
        self.arena = arena
        self.regions = regions
    }

    /// CPU slots per-CPU maps get by default: the online CPUs (at most `MapEpoch.maxThreads`).
    public static var defaultCPUCount: Int {
        max(1, min(MapEpoch.maxThreads, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
    }

    /// Validates `definition` and allocates the map's whole storage.
    public static func create(_ definition: BPFMapDefinition, cpuCount: Int = BPFMap.defaultCPUCount) throws(BPFMapError) -> BPFMap {
        func invalid(_ reason: String) -> BPFMapError { .invalidDefinition(name: definition.name, reason: reason) }
        guard definition.maxEntries > 0 else { throw invalid("max_entries must be positive") }
        guard definition.keySize >= 0, definition.valueSize >= 0 else { throw invalid("negative key or value size") }
        let cpus = definition.type.isPerCPU ? cpuCount : 1
        guard cpus >= 1 && cpus <= MapEpoch.maxThreads else { throw invalid("cpuCount \(cpuCount) outside 1...\(MapEpoch.maxThreads)") }
        switch definition.type {
        case .hash, .perCPUHash, .lruHash, .lruPerCPUHash:
            return try HashMap(definition: definition, cpuCount: cpus)
        case .array, .perCPUArray:
            return try ArrayMap(definition: definition, cpuCount: cpus)
        case .queue, .stack:
            return try QueueStackMap(definition: definition)
        case .bloomFilter:
            return try BloomFilterMap(definition: definition)
        case .countMinSketch:
            return try CountMinSketchMap(definition: definition)
        }
    }

    /// Raw map pointer for r1 of the map helpers. Valid while this object is alive: whoever loads
    /// programs must keep the map referenced as long as any program uses it.
    public var handle: UInt64 {
        UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()))
    }

    /// Bytes of storage the map reserved at creation (all it will ever use).
    public var memoryBytes: Int { arena.byteCount }

    /// Bytes of a value in the control-plane API: value_size, or for per-CPU maps
    /// cpuCount x value_size rounded up to 8 (Linux's layout).
    public var controlValueSize: Int {
        cpuCount == 1 ? definition.valueSize : cpuCount * roundUp8(definition.valueSize)
    }

    /// Live entries (array maps: max_entries; Bloom filter and sketch: items added).
    public var count: Int { 0 }

    var name: String { definition.name }

    // MARK: - Raw primitives (overridden). Return 0 or a negative errno.

    func programLookup(_ key: UnsafeRawPointer) -> UnsafeMutableRawPointer? { nil }
    func programUpdate(_ key: UnsafeRawPointer, _ value: UnsafeRawPointer, _ flags: UInt64) -> Int32 { -BPFErrno.EOPNOTSUPP }
    func programDelete(_ key: UnsafeRawPointer) -> Int32 { -BPFErrno.EOPNOTSUPP }
    func programPush(_ value: UnsafeRawPointer, _ flags: UInt64) -> Int32 { -BPFErrno.EOPNOTSUPP }
    func programPop(_ value: UnsafeMutableRawPointer) -> Int32 { -BPFErrno.EOPNOTSUPP }
    func programPeek(_ value: UnsafeMutableRawPointer) -> Int32 { -BPFErrno.EOPNOTSUPP }
    func programSketchAdd(_ key: UnsafeRawPointer, _ amount: UInt64) -> Int32 { -BPFErrno.EOPNOTSUPP }
    func programSketchEstimate(_ key: UnsafeRawPointer) -> UInt64 { 0 }

    /// Copies the value (controlValueSize bytes) for `key` into `value`.
    func controlLookup(_ key: UnsafeRawPointer, _ value: UnsafeMutableRawPointer) -> Int32 { -BPFErrno.EOPNOTSUPP }
    /// `valueCount` is value_size, or controlValueSize for per-CPU maps.
    func controlUpdate(_ key: UnsafeRawPointer, _ value: UnsafeRawPointer, valueCount: Int, _ flags: UInt64) -> Int32 { -BPFErrno.EOPNOTSUPP }
    func controlDelete(_ key: UnsafeRawPointer) -> Int32 { programDelete(key) }
    func controlEntries(after key: [UInt8]?, limit: Int) throws(BPFMapError) -> [BPFMapEntry] {
        throw .operationNotSupported(map: name, operation: "iteration", type: definition.type)
    }
    func controlClear() {}

    // MARK: - Control-plane API

    func error(_ code: Int32, operation: String) -> BPFMapError {
        switch -code {
        case BPFErrno.ENOENT: .keyNotFound(map: name)
        case BPFErrno.EEXIST: .keyExists(map: name)
        case BPFErrno.E2BIG: .mapFull(map: name, maxEntries: definition.maxEntries)
        case BPFErrno.ENOMEM: .reclamationPending(map: name)
        case BPFErrno.EINVAL where operation == "update" || operation == "push": .invalidFlags(map: name, flags: 0)
        default: .operationNotSupported(map: name, operation: operation, type: definition.type)
        }
    }

    func checkKey(_ key: [UInt8]) throws(BPFMapError) {
        guard key.count == definition.keySize else {
            throw .keySizeMismatch(map: name, expected: definition.keySize, actual: key.count)
        }
    }

    /// The value stored under `key` (per-CPU maps: all CPUs' values, 8-byte aligned each), or nil.
    public func lookup(key: [UInt8]) throws(BPFMapError) -> [UInt8]? {
        try checkKey(key)
        var value = [UInt8](repeating: 0, count: controlValueSize)
        let code = key.withUnsafeBytes { k in
            value.withUnsafeMutableBytes { v in controlLookup(k.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, v.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 8)!) }
        }
        if code == -BPFErrno.ENOENT { return nil }
        if code != 0 { throw error(code, operation: "lookup") }
        return value
    }

    /// Inserts or replaces. `flags`: BPFUpdateFlags.any / .noExist / .exist. Per-CPU maps take
    /// either one value (stored on every CPU) or `controlValueSize` bytes.
    public func update(key: [UInt8], value: [UInt8], flags: UInt64 = BPFUpdateFlags.any) throws(BPFMapError) {
        try checkKey(key)
        guard value.count == definition.valueSize || value.count == controlValueSize else {
            let expected = controlValueSize == definition.valueSize ? "\(definition.valueSize)" : "\(definition.valueSize) or \(controlValueSize)"
            throw .valueSizeMismatch(map: name, expected: expected, actual: value.count)
        }
        guard flags <= BPFUpdateFlags.exist else { throw .invalidFlags(map: name, flags: flags) }
        let code = key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                controlUpdate(k.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, v.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, valueCount: value.count, flags)
            }
        }
        if code == -BPFErrno.EINVAL { throw .invalidFlags(map: name, flags: flags) }
        if code != 0 { throw error(code, operation: "update") }
    }

    public func delete(key: [UInt8]) throws(BPFMapError) {
        try checkKey(key)
        let code = key.withUnsafeBytes { k in controlDelete(k.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!) }
        if code != 0 { throw error(code, operation: "delete") }
    }

    /// Up to `limit` entries following `startingAfter` (nil: from the start), for paginated dumps.
    /// Pass the last key of a page to get the next one; an empty page means the end.
    public func entries(startingAfter key: [UInt8]? = nil, limit: Int = Int.max) throws(BPFMapError) -> [BPFMapEntry] {
        if let key { try checkKey(key) }
        guard limit > 0 else { return [] }
        return try controlEntries(after: key, limit: limit)
    }

    /// Removes every entry (arrays: zeroes every value).
    public func clear() {
        controlClear()
    }

    /// Queue/stack/Bloom: adds a value. `flags` BPFUpdateFlags.exist on a full queue/stack drops
    /// the oldest value (Linux semantics).
    public func push(value: [UInt8], flags: UInt64 = BPFUpdateFlags.any) throws(BPFMapError) {
        guard value.count == definition.valueSize else {
            throw .valueSizeMismatch(map: name, expected: "\(definition.valueSize)", actual: value.count)
        }
        let code = value.withUnsafeBytes { v in programPush(v.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, flags) }
        if code == -BPFErrno.EINVAL { throw .invalidFlags(map: name, flags: flags) }
        if code != 0 { throw error(code, operation: "push") }
    }

    /// Queue/stack: removes and returns the next value, nil if empty.
    public func pop() throws(BPFMapError) -> [UInt8]? {
        var value = [UInt8](repeating: 0, count: definition.valueSize)
        let code = value.withUnsafeMutableBytes { v in programPop(v.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 8)!) }
        if code == -BPFErrno.ENOENT { return nil }
        if code != 0 { throw error(code, operation: "pop") }
        return value
    }

    /// Queue/stack: the next value without removing it, nil if empty.
    public func peek() throws(BPFMapError) -> [UInt8]? {
        var value = [UInt8](repeating: 0, count: definition.valueSize)
        let code = value.withUnsafeMutableBytes { v in programPeek(v.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 8)!) }
        if code == -BPFErrno.ENOENT { return nil }
        if code != 0 { throw error(code, operation: "peek") }
        return value
    }

    /// Bloom filter: whether `value` may have been pushed (false means certainly not).
    public func contains(value: [UInt8]) throws(BPFMapError) -> Bool {
        guard value.count == definition.valueSize else {
            throw .valueSizeMismatch(map: name, expected: "\(definition.valueSize)", actual: value.count)
        }
        var copy = value
        let code = copy.withUnsafeMutableBytes { v in programPeek(v.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 8)!) }
        if code == 0 { return true }
        if code == -BPFErrno.ENOENT { return false }
        throw error(code, operation: "membership test")
    }
}
