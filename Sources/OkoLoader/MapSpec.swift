/// A map type in Linux's numbering (`enum bpf_map_type` in linux/bpf.h), which is what
/// `__uint(type, BPF_MAP_TYPE_HASH)` and legacy `bpf_map_def.type` carry.
public struct BPFMapType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let hash = BPFMapType(rawValue: 1)
    public static let array = BPFMapType(rawValue: 2)
    public static let programArray = BPFMapType(rawValue: 3)
    public static let perfEventArray = BPFMapType(rawValue: 4)
    public static let perCPUHash = BPFMapType(rawValue: 5)
    public static let perCPUArray = BPFMapType(rawValue: 6)
    public static let lruHash = BPFMapType(rawValue: 9)
    public static let lruPerCPUHash = BPFMapType(rawValue: 10)
    public static let lpmTrie = BPFMapType(rawValue: 11)
    public static let arrayOfMaps = BPFMapType(rawValue: 12)
    public static let hashOfMaps = BPFMapType(rawValue: 13)
    public static let ringBuffer = BPFMapType(rawValue: 27)
    public static let queue = BPFMapType(rawValue: 22)
    public static let stack = BPFMapType(rawValue: 23)
    public static let bloomFilter = BPFMapType(rawValue: 30)
    /// Oko's count-min sketch (outside Linux's range; see OkoMaps).
    public static let countMinSketch = BPFMapType(rawValue: 0x4F4B_0001)

    /// The types a loaded object may declare: the ones the datapath's map engine can hold.
    public static let supported: Set<BPFMapType> = [
        .hash, .array, .perCPUHash, .perCPUArray, .lruHash, .lruPerCPUHash, .queue, .stack, .bloomFilter,
        .countMinSketch,
    ]

    private static let names: [UInt32: String] = [
        1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash", 6: "percpu_array",
        7: "stack_trace", 8: "cgroup_array", 9: "lru_hash", 10: "lru_percpu_hash", 11: "lpm_trie",
        12: "array_of_maps", 13: "hash_of_maps", 14: "devmap", 15: "sockmap", 16: "cpumap", 17: "xskmap",
        18: "sockhash", 19: "cgroup_storage", 20: "reuseport_sockarray", 21: "percpu_cgroup_storage",
        22: "queue", 23: "stack", 24: "sk_storage", 25: "devmap_hash", 26: "struct_ops", 27: "ringbuf",
        28: "inode_storage", 29: "task_storage", 30: "bloom_filter", 31: "user_ringbuf", 32: "cgrp_storage",
        33: "arena", 0x4F4B_0001: "count_min_sketch",
    ]

    /// The name without the `BPF_MAP_TYPE_` prefix, lower case (`hash`, `lru_hash`), or `type N`.
    public var description: String { Self.names[rawValue] ?? "type \(rawValue)" }
}

/// A map an object file declares, as its program expects it. The map's index in
/// `BPFObjectFile.maps` is what relocated LDDW instructions carry in their immediate.
public struct MapSpec: Hashable, Sendable {
    /// The C variable name (`counts`), or the section name for global data (`.data`, `.rodata`).
    public let name: String
    public let type: BPFMapType
    public let keySize: UInt32
    public let valueSize: UInt32
    public let maxEntries: UInt32
    /// `map_flags` (BPF_F_*). Read-only global data carries BPF_F_RDONLY_PROG.
    public let flags: UInt32
    /// `map_extra` (the Bloom filter's hash count, for example).
    public let extra: UInt64
    /// The single value of a global data map (`.bss` all zero); nil for ordinary maps.
    public let initialValue: [UInt8]?
    /// BTF type ids of the key and value types, when the object says them (0-free: nil when unknown).
    public let btfKeyTypeID: UInt32?
    public let btfValueTypeID: UInt32?
    /// The ELF section that declared the map: `.maps`, `maps`, `.data`, ...
    public let section: String

    /// BPF_F_RDONLY_PROG: the program may only read the map.
    public static let flagReadOnlyProgram: UInt32 = 1 << 7

    /// True for the single-entry arrays that hold `.data`, `.rodata`, `.bss`.
    public var isGlobalData: Bool { initialValue != nil }
}
