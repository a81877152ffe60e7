// The map helpers programs `call`, as C-convention functions with BPFHelperFunction's shape
// (r1..r5 in, r0 out). r1 is a map's `handle`: an unretained object pointer turned back into the
// map without retain/release. Errors come back as negative Linux errno values.
//
// Helper ids: Linux's for the standard helpers; Oko extras at 0x1000+ (BPFHelperTable accepts
// ids below 65536 and stores them densely, so the extras stay low):
//   0x1000 oko_count_min_add(map, key, amount) -> 0 / -errno
//   0x1001 oko_count_min_query(map, key) -> estimate
//   0x1002 oko_hash_bytes(pointer, length, seed) -> 64-bit hash (the maps' key hash)

/// Same shape as OkoBPF's `BPFHelperFunction` (OkoMaps does not depend on OkoBPF).
public typealias BPFMapHelperFunction = @convention(c) (UInt64, UInt64, UInt64, UInt64, UInt64) -> UInt64

public enum BPFMapHelperID {
    public static let mapLookupElem = 1
    public static let mapUpdateElem = 2
    public static let mapDeleteElem = 3
    public static let mapPushElem = 87
    public static let mapPopElem = 88
    public static let mapPeekElem = 89
    public static let countMinAdd = 0x1000
    public static let countMinQuery = 0x1001
    public static let hashBytes = 0x1002
}

@inline(__always)
private func withMap<Result>(_ handle: UInt64, ifNull fallback: Result, _ body: (BPFMap) -> Result) -> Result {
    guard let pointer = UnsafeRawPointer(bitPattern: UInt(truncatingIfNeeded: handle)) else { return fallback }
    return Unmanaged<BPFMap>.fromOpaque(pointer)._withUnsafeGuaranteedRef(body)
}

@inline(__always)
private func errnoResult(_ code: Int32) -> UInt64 {
    UInt64(bitPattern: Int64(code))
}

@inline(__always)
private func pointer(_ value: UInt64) -> UnsafeMutableRawPointer? {
    UnsafeMutableRawPointer(bitPattern: UInt(truncatingIfNeeded: value))
}

public enum BPFMapHelpers {
    public static let mapLookupElem: BPFMapHelperFunction = { map, key, _, _, _ in
        guard let key = pointer(key) else { return 0 }
        return withMap(map, ifNull: 0) { UInt64(UInt(bitPattern: $0.programLookup(key))) }
    }

    public static let mapUpdateElem: BPFMapHelperFunction = { map, key, value, flags, _ in
        guard let key = pointer(key), let value = pointer(value) else { return errnoResult(-BPFErrno.EINVAL) }
        return withMap(map, ifNull: errnoResult(-BPFErrno.EINVAL)) { errnoResult($0.programUpdate(key, value, flags)) }
    }

    public static let mapDeleteElem: BPFMapHelperFunction = { map, key, _, _, _ in
        guard let key = pointer(key) else { return errnoResult(-BPFErrno.EINVAL) }
        return withMap(map, ifNull: errnoResult(-BPFErrno.EINVAL)) { errnoResult($0.programDelete(key)) }
    }

    public static let mapPushElem: BPFMapHelperFunction = { map, value, flags, _, _ in
        guard let value = pointer(value) else { return errnoResult(-BPFErrno.EINVAL) }
        return withMap(map, ifNull: errnoResult(-BPFErrno.EINVAL)) { errnoResult($0.programPush(value, flags)) }
    }

    public static let mapPopElem: BPFMapHelperFunction = { map, value, _, _, _ in
        guard let value = pointer(value) else { return errnoResult(-BPFErrno.EINVAL) }
        return withMap(map, ifNull: errnoResult(-BPFErrno.EINVAL)) { errnoResult($0.programPop(value)) }
    }

    public static let mapPeekElem: BPFMapHelperFunction = { map, value, _, _, _ in
        guard let value = pointer(value) else { return errnoResult(-BPFErrno.EINVAL) }
        return withMap(map, ifNull: errnoResult(-BPFErrno.EINVAL)) { errnoResult($0.programPeek(value)) }
    }

    public static let countMinAdd: BPFMapHelperFunction = { map, key, amount, _, _ in
        guard let key = pointer(key) else { return errnoResult(-BPFErrno.EINVAL) }
        return withMap(map, ifNull: errnoResult(-BPFErrno.EINVAL)) { errnoResult($0.programSketchAdd(key, amount)) }
    }

    public static let countMinQuery: BPFMapHelperFunction = { map, key, _, _, _ in
        guard let key = pointer(key) else { return 0 }
        return withMap(map, ifNull: 0) { $0.programSketchEstimate(key) }
    }

    public static let hashBytes: BPFMapHelperFunction = { bytes, length, seed, _, _ in
        guard let bytes = pointer(bytes) else { return 0 }
        return okoHashBytes(bytes, count: Int(truncatingIfNeeded: length), seed: seed)
    }

    /// Every map helper, for the loader to register in its BPFHelperTable.
    public static let all: [(id: Int, name: String, function: BPFMapHelperFunction)] = [
        (BPFMapHelperID.mapLookupElem, "map_lookup_elem", mapLookupElem),
        (BPFMapHelperID.mapUpdateElem, "map_update_elem", mapUpdateElem),
        (BPFMapHelperID.mapDeleteElem, "map_delete_elem", mapDeleteElem),
        (BPFMapHelperID.mapPushElem, "map_push_elem", mapPushElem),
        (BPFMapHelperID.mapPopElem, "map_pop_elem", mapPopElem),
        (BPFMapHelperID.mapPeekElem, "map_peek_elem", mapPeekElem),
        (BPFMapHelperID.countMinAdd, "oko_count_min_add", countMinAdd),
        (BPFMapHelperID.countMinQuery, "oko_count_min_query", countMinQuery),
        (BPFMapHelperID.hashBytes, "oko_hash_bytes", hashBytes),
    ]
}
