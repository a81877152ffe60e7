// Helper prototypes: what each callable helper expects in r1..r5 and leaves in r0.

/// Linux map type numbers, as the loader reports them (`bpf_map_type`).
public enum BPFMapType {
    public static let hash: UInt32 = 1
    public static let array: UInt32 = 2
    public static let percpuHash: UInt32 = 5
    public static let percpuArray: UInt32 = 6
    public static let lruHash: UInt32 = 9
    public static let lruPercpuHash: UInt32 = 10
    public static let queue: UInt32 = 22
    public static let stack: UInt32 = 23
    public static let bloomFilter: UInt32 = 30
}

/// What the verifier knows about one map the program references (LDDW src 1/2, imm = index).
public struct VerifierMapDescription: Hashable, Sendable {
    public var name: String
    public var type: UInt32
    public var keySize: Int
    public var valueSize: Int
    public var maxEntries: Int
    /// True for `.rodata`: the program may read the value but never write it.
    public var readOnly: Bool

    public init(name: String = "", type: UInt32, keySize: Int, valueSize: Int, maxEntries: Int, readOnly: Bool = false) {
        self.name = name
        self.type = type
        self.keySize = keySize
        self.valueSize = valueSize
        self.maxEntries = maxEntries
        self.readOnly = readOnly
    }
}

/// The kind of value a helper accepts in one argument register.
public enum HelperArgumentKind: Hashable, Sendable {
    /// Not used by the helper; not checked.
    case unused
    /// Any initialised scalar (never a pointer: a helper could hand it to the control plane).
    case scalar
    /// An initialised scalar or an uninitialised register (variadic arguments the caller may omit).
    case optionalScalar
    /// A map pointer (LDDW src 1); later key/value arguments refer to this map.
    case mapPointer
    /// Pointer to `keySize` initialised readable bytes (stack, map value or packet).
    case mapKey
    /// Pointer to `valueSize` initialised readable bytes.
    case mapValue
    /// Pointer to `valueSize` writable bytes the helper fills (stack bytes become initialised).
    case mapValueOutput
    /// Pointer to initialised readable memory whose size is the next argument.
    case memory
    /// The size of the preceding `memory` argument: a bounded scalar; `allowZero` permits 0.
    case memorySize(allowZero: Bool)
}

/// What a helper leaves in r0.
public enum HelperReturnKind: Hashable, Sendable {
    /// An unknown scalar.
    case scalar
    /// A pointer to a value of the map passed as `mapPointer`, or NULL: must be null-checked before use.
    case mapValueOrNull
}

public struct HelperPrototype: Hashable, Sendable {
    public var name: String
    /// r1... in order; at most five.
    public var arguments: [HelperArgumentKind]
    public var returns: HelperReturnKind
    /// When set, the `mapPointer` argument must be a map of one of these types.
    public var allowedMapTypes: Set<UInt32>?

    public init(name: String, arguments: [HelperArgumentKind], returns: HelperReturnKind = .scalar, allowedMapTypes: Set<UInt32>? = nil) {
        precondition(arguments.count <= 5, "helpers take at most five arguments")
        self.name = name
        self.arguments = arguments
        self.returns = returns
        self.allowedMapTypes = allowedMapTypes
    }
}

/// Helper prototypes by id. Start from `standard` and add Oko's own helpers with `register`.
public struct HelperPrototypeTable: Sendable {
    public private(set) var prototypes: [Int32: HelperPrototype]

    public init(_ prototypes: [Int32: HelperPrototype] = [:]) {
        self.prototypes = prototypes
    }

    public subscript(id: Int32) -> HelperPrototype? { prototypes[id] }

    public mutating func register(id: Int32, _ prototype: HelperPrototype) {
        prototypes[id] = prototype
    }

    /// The Linux helpers Oko implements, under their Linux ids.
    public static let standard: HelperPrototypeTable = {
        let queueTypes: Set<UInt32> = [BPFMapType.queue, BPFMapType.stack]
        return HelperPrototypeTable([
            1: HelperPrototype(name: "map_lookup_elem", arguments: [.mapPointer, .mapKey], returns: .mapValueOrNull),
            2: HelperPrototype(name: "map_update_elem", arguments: [.mapPointer, .mapKey, .mapValue, .scalar]),
            3: HelperPrototype(name: "map_delete_elem", arguments: [.mapPointer, .mapKey]),
            5: HelperPrototype(name: "ktime_get_ns", arguments: []),
            6: HelperPrototype(
                name: "trace_printk", arguments: [.memory, .memorySize(allowZero: false), .optionalScalar, .optionalScalar, .optionalScalar]),
            7: HelperPrototype(name: "get_prandom_u32", arguments: []),
            8: HelperPrototype(name: "get_smp_processor_id", arguments: []),
            87: HelperPrototype(
                name: "map_push_elem", arguments: [.mapPointer, .mapValue, .scalar], allowedMapTypes: queueTypes),
            88: HelperPrototype(
                name: "map_pop_elem", arguments: [.mapPointer, .mapValueOutput], allowedMapTypes: queueTypes),
            89: HelperPrototype(
                name: "map_peek_elem", arguments: [.mapPointer, .mapValueOutput], allowedMapTypes: queueTypes),
        ])
    }()
}
