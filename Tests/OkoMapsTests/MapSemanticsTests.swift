import Synchronization
import Testing
@testable import OkoMaps

func bytes32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { [UInt8]($0) } }
func bytes64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { [UInt8]($0) } }
func u64(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } }

func makeMap(_ type: BPFMapType, key: Int = 4, value: Int = 8, max: Int = 16, extra: UInt64 = 0, cpus: Int = 2) throws -> BPFMap {
    try BPFMap.create(BPFMapDefinition(type: type, keySize: key, valueSize: value, maxEntries: max, extra: extra, name: "\(type)"), cpuCount: cpus)
}

@Test func hashMapInsertLookupUpdateDelete() throws {
    let map = try makeMap(.hash)
    #expect(try map.lookup(key: bytes32(1)) == nil)
    try map.update(key: bytes32(1), value: bytes64(100))
    try map.update(key: bytes32(2), value: bytes64(200))
    #expect(try map.lookup(key: bytes32(1)) == bytes64(100))
    #expect(map.count == 2)
    try map.update(key: bytes32(1), value: bytes64(101), flags: BPFUpdateFlags.exist)
    #expect(try map.lookup(key: bytes32(1)) == bytes64(101))
    #expect(throws: BPFMapError.keyExists(map: "hash")) { try map.update(key: bytes32(1), value: bytes64(1), flags: BPFUpdateFlags.noExist) }
    #expect(throws: BPFMapError.keyNotFound(map: "hash")) { try map.update(key: bytes32(9), value: bytes64(1), flags: BPFUpdateFlags.exist) }
    try map.delete(key: bytes32(1))
    #expect(try map.lookup(key: bytes32(1)) == nil)
    #expect(throws: BPFMapError.keyNotFound(map: "hash")) { try map.delete(key: bytes32(1)) }
    #expect(map.count == 1)
}

@Test func hashMapRejectsWrongSizesAndReportsFullLikeLinux() throws {
    let map = try makeMap(.hash, max: 4)
    #expect(throws: BPFMapError.keySizeMismatch(map: "hash", expected: 4, actual: 2)) { try map.update(key: [1, 2], value: bytes64(0)) }
    #expect(throws: BPFMapError.self) { try map.update(key: bytes32(1), value: [1]) }
    for i in 0..<4 { try map.update(key: bytes32(UInt32(i)), value: bytes64(UInt64(i))) }
    do {
        try map.update(key: bytes32(99), value: bytes64(0))
        Issue.record("insert into a full map succeeded")
    } catch {
        #expect(error == .mapFull(map: "hash", maxEntries: 4))
        #expect(error.errno == 7)
    }
    // Replacing an existing key in a full map still works.
    try map.update(key: bytes32(2), value: bytes64(22))
    #expect(try map.lookup(key: bytes32(2)) == bytes64(22))
    map.clear()
    #expect(map.count == 0)
    #expect(try map.lookup(key: bytes32(2)) == nil)
    try map.update(key: bytes32(7), value: bytes64(7))
    #expect(try map.lookup(key: bytes32(7)) == bytes64(7))
}

@Test func hashMapPaginatedDumpReturnsEveryEntryOnce() throws {
    let map = try makeMap(.hash, max: 1000)
    for i in 0..<700 { try map.update(key: bytes32(UInt32(i)), value: bytes64(UInt64(i) * 3)) }
    var seen: [UInt32: UInt64] = [:]
    var cursor: [UInt8]? = nil
    while true {
        let page = try map.entries(startingAfter: cursor, limit: 64)
        if page.isEmpty { break }
        for entry in page {
            let key = entry.key.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            #expect(seen[key] == nil)
            seen[key] = u64(entry.value)
        }
        cursor = page.last!.key
    }
    #expect(seen.count == 700)
    #expect(seen.allSatisfy { $0.value == UInt64($0.key) * 3 })
}

@Test func lruHashEvictsLeastRecentlyUsed() throws {
    let map = try makeMap(.lruHash, max: 4)
    for i in 1...4 { try map.update(key: bytes32(UInt32(i)), value: bytes64(UInt64(i))) }
    // Use key 1 through the program path, so key 2 becomes the least recently used.
    var key: UInt32 = 1
    #expect(BPFMapHelpers.mapLookupElem(map.handle, UInt64(UInt(bitPattern: withUnsafeMutablePointer(to: &key) { UnsafeMutableRawPointer($0) })), 0, 0, 0) != 0)
    try map.update(key: bytes32(5), value: bytes64(5))
    #expect(map.count == 4)
    #expect(try map.lookup(key: bytes32(2)) == nil)
    #expect(try map.lookup(key: bytes32(1)) == bytes64(1))
    // Next victim: 3 (oldest not used since insertion).
    try map.update(key: bytes32(6), value: bytes64(6))
    #expect(try map.lookup(key: bytes32(3)) == nil)
    #expect(try map.lookup(key: bytes32(4)) != nil)
    #expect(try map.lookup(key: bytes32(5)) != nil)
    #expect(try map.lookup(key: bytes32(6)) != nil)
}

@Test func perCPUHashKeepsOneValuePerCPU() throws {
    let map = try makeMap(.perCPUHash, value: 4, cpus: 2)
    #expect(map.controlValueSize == 16)
    try map.update(key: bytes32(1), value: [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
    #expect(try map.lookup(key: bytes32(1)) == [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
    // Unregistered threads are CPU 0.
    var key: UInt32 = 1
    let address = BPFMapHelpers.mapLookupElem(map.handle, UInt64(UInt(bitPattern: withUnsafeMutablePointer(to: &key) { UnsafeMutableRawPointer($0) })), 0, 0, 0)
    #expect(UnsafeRawPointer(bitPattern: UInt(address))!.load(as: UInt32.self) == 1)
    // One value is replicated to every CPU.
    try map.update(key: bytes32(2), value: [9, 0, 0, 0])
    #expect(try map.lookup(key: bytes32(2)) == [9, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0])
}

@Test func perCPUHashHelpersUseTheRegisteredThreadsSlice() throws {
    // Slot 63: other tests' packet threads take the lowest free slots.
    let cpus = MapEpoch.maxThreads
    let map = try makeMap(.lruPerCPUHash, value: 8, cpus: cpus)
    let handle = map.handle
    let registered = Atomic<Int>(-1)
    let thread = Thread3 {
        guard let slot = try? MapEpoch.registerCurrentThread(index: cpus - 1) else { return }
        registered.store(slot, ordering: .relaxed)
        var key: UInt32 = 5
        var value: UInt64 = 77
        let k = withUnsafeMutablePointer(to: &key) { UInt64(UInt(bitPattern: $0)) }
        let v = withUnsafeMutablePointer(to: &value) { UInt64(UInt(bitPattern: $0)) }
        _ = BPFMapHelpers.mapUpdateElem(handle, k, v, 0, 0)
        MapEpoch.unregisterCurrentThread()
    }
    thread.join()
    #expect(registered.load(ordering: .relaxed) == cpus - 1)
    let all = try #require(try map.lookup(key: bytes32(5)))
    #expect(all.count == 8 * cpus)
    #expect(Array(all[0..<(8 * (cpus - 1))]) == [UInt8](repeating: 0, count: 8 * (cpus - 1)))
    #expect(u64(Array(all[(8 * (cpus - 1))...])) == 77)
}

@Test func arrayMapSemantics() throws {
    let map = try makeMap(.array, value: 12, max: 8)
    #expect(try map.lookup(key: bytes32(3)) == [UInt8](repeating: 0, count: 12))
    try map.update(key: bytes32(3), value: Array(1...12))
    #expect(try map.lookup(key: bytes32(3)) == Array(1...12))
    #expect(try map.lookup(key: bytes32(8)) == nil)
    #expect(throws: BPFMapError.mapFull(map: "array", maxEntries: 8)) { try map.update(key: bytes32(8), value: Array(1...12)) }
    #expect(throws: BPFMapError.keyExists(map: "array")) { try map.update(key: bytes32(1), value: Array(1...12), flags: BPFUpdateFlags.noExist) }
    #expect(throws: BPFMapError.self) { try map.delete(key: bytes32(1)) }
    let page1 = try map.entries(limit: 5)
    let page2 = try map.entries(startingAfter: page1.last!.key, limit: 5)
    #expect(page1.count == 5 && page2.count == 3)
    #expect(page1[3].value == Array(1...12))
    #expect(map.regions.count == 1 && map.regions[0].length >= 8 * 16)
}

@Test func perCPUArrayLookupThroughHelperPointsInsideRegion() throws {
    let map = try makeMap(.perCPUArray, value: 8, max: 4, cpus: 2)
    try map.update(key: bytes32(2), value: bytes64(5) + bytes64(6))
    var key: UInt32 = 2
    let address = BPFMapHelpers.mapLookupElem(map.handle, UInt64(UInt(bitPattern: withUnsafeMutablePointer(to: &key) { UnsafeMutableRawPointer($0) })), 0, 0, 0)
    #expect(map.regions[0].contains(address: UInt(address), count: 8))
    #expect(UnsafeRawPointer(bitPattern: UInt(address))!.load(as: UInt64.self) == 5)
    key = 4
    #expect(BPFMapHelpers.mapLookupElem(map.handle, UInt64(UInt(bitPattern: withUnsafeMutablePointer(to: &key) { UnsafeMutableRawPointer($0) })), 0, 0, 0) == 0)
}

@Test func queueIsFIFOAndStackIsLIFO() throws {
    let queue = try makeMap(.queue, key: 0, value: 8, max: 3)
    let stack = try makeMap(.stack, key: 0, value: 8, max: 3)
    for i in 1...3 {
        try queue.push(value: bytes64(UInt64(i)))
        try stack.push(value: bytes64(UInt64(i)))
    }
    #expect(throws: BPFMapError.mapFull(map: "queue", maxEntries: 3)) { try queue.push(value: bytes64(4)) }
    try queue.push(value: bytes64(4), flags: BPFUpdateFlags.exist)  // drops 1
    try stack.push(value: bytes64(4), flags: BPFUpdateFlags.exist)  // drops 1 (bottom)
    #expect(try queue.peek() == bytes64(2))
    #expect(try [queue.pop(), queue.pop(), queue.pop(), queue.pop()] == [bytes64(2), bytes64(3), bytes64(4), nil])
    #expect(try [stack.pop(), stack.pop(), stack.pop(), stack.pop()] == [bytes64(4), bytes64(3), bytes64(2), nil])
}

@Test func bloomFilterHasNoFalseNegativesAndFewFalsePositives() throws {
    let map = try makeMap(.bloomFilter, key: 0, value: 8, max: 10_000, extra: 3)
    for i in 0..<10_000 { try map.push(value: bytes64(UInt64(i) &* 0x9E37_79B9)) }
    for i in 0..<10_000 { #expect(try map.contains(value: bytes64(UInt64(i) &* 0x9E37_79B9))) }
    var falsePositives = 0
    for i in 10_000..<30_000 where try map.contains(value: bytes64(UInt64(i) &* 0x9E37_79B9)) { falsePositives += 1 }
    #expect(Double(falsePositives) / 20_000 < 0.05)
    // Helper form: peek returns 0 for members and -ENOENT otherwise.
    var member = UInt64(5) &* 0x9E37_79B9
    var stranger: UInt64 = 0xDEAD_BEEF_0000_0001
    let memberAddress = withUnsafeMutablePointer(to: &member) { UInt64(UInt(bitPattern: $0)) }
    #expect(BPFMapHelpers.mapPeekElem(map.handle, memberAddress, 0, 0, 0) == 0)
    let strangerAddress = withUnsafeMutablePointer(to: &stranger) { UInt64(UInt(bitPattern: $0)) }
    let result = Int64(bitPattern: BPFMapHelpers.mapPeekElem(map.handle, strangerAddress, 0, 0, 0))
    #expect(result == 0 || result == -2)
    #expect(Int64(bitPattern: BPFMapHelpers.mapPopElem(map.handle, memberAddress, 0, 0, 0)) == -95)
}

@Test func countMinSketchNeverUnderestimates() throws {
    for counterSize in [4, 8] {
        let map = try makeMap(.countMinSketch, key: 4, value: counterSize, max: 256, extra: 4)
        var truth: [UInt32: UInt64] = [:]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let key = UInt32.random(in: 0..<2_000, using: &rng)
            truth[key, default: 0] += 1
            try map.add(key: bytes32(key))
        }
        var exact = 0
        for (key, count) in truth {
            let estimate = try map.estimate(key: bytes32(key))
            #expect(estimate >= count)
            if estimate == count { exact += 1 }
        }
        #expect(try map.lookup(key: bytes32(truth.keys.first!))!.count == counterSize)
        // Helpers: add 5 then query.
        var key: UInt32 = 123_456
        let keyAddress = withUnsafeMutablePointer(to: &key) { UInt64(UInt(bitPattern: $0)) }
        let before = BPFMapHelpers.countMinQuery(map.handle, keyAddress, 0, 0, 0)
        #expect(BPFMapHelpers.countMinAdd(map.handle, keyAddress, 5, 0, 0) == 0)
        #expect(BPFMapHelpers.countMinQuery(map.handle, keyAddress, 0, 0, 0) >= before + 5)
    }
}

@Test func invalidDefinitionsAreRejectedWithReasons() {
    #expect(throws: BPFMapError.self) { try makeMap(.array, key: 8) }
    #expect(throws: BPFMapError.self) { try makeMap(.hash, max: 0) }
    #expect(throws: BPFMapError.self) { try makeMap(.countMinSketch, value: 2) }
    #expect(throws: BPFMapError.self) { try makeMap(.queue, key: 4) }
    #expect(BPFMapType(rawValue: 0x4F4B_0001) == .countMinSketch)
    #expect(BPFMapType(rawValue: 12345) == nil)
}

@Test func helpersReturnLinuxNegativeErrnoAndPointersInsideRegions() throws {
    let map = try makeMap(.hash, max: 2)
    let handle = map.handle
    var key: UInt32 = 1
    var value: UInt64 = 10
    let k = withUnsafeMutablePointer(to: &key) { UInt64(UInt(bitPattern: $0)) }
    let v = withUnsafeMutablePointer(to: &value) { UInt64(UInt(bitPattern: $0)) }
    func call(_ f: BPFMapHelperFunction, _ a: UInt64, _ b: UInt64, _ c: UInt64 = 0, _ d: UInt64 = 0) -> Int64 {
        Int64(bitPattern: f(a, b, c, d, 0))
    }
    #expect(call(BPFMapHelpers.mapUpdateElem, handle, k, v, BPFUpdateFlags.any) == 0)
    #expect(call(BPFMapHelpers.mapUpdateElem, handle, k, v, BPFUpdateFlags.noExist) == -17)
    #expect(call(BPFMapHelpers.mapUpdateElem, handle, k, v, 99) == -22)
    key = 2
    #expect(call(BPFMapHelpers.mapUpdateElem, handle, k, v, BPFUpdateFlags.exist) == -2)
    #expect(call(BPFMapHelpers.mapUpdateElem, handle, k, v) == 0)
    key = 3
    #expect(call(BPFMapHelpers.mapUpdateElem, handle, k, v) == -7)
    #expect(call(BPFMapHelpers.mapDeleteElem, handle, k) == -2)
    key = 1
    let found = BPFMapHelpers.mapLookupElem(handle, k, 0, 0, 0)
    #expect(map.regions.contains { $0.contains(address: UInt(found), count: 8) })
    #expect(UnsafeRawPointer(bitPattern: UInt(found))!.load(as: UInt64.self) == 10)
    #expect(call(BPFMapHelpers.mapDeleteElem, handle, k) == 0)
    #expect(BPFMapHelpers.mapLookupElem(handle, k, 0, 0, 0) == 0)
    // A null map handle is rejected, not dereferenced.
    #expect(BPFMapHelpers.mapLookupElem(0, k, 0, 0, 0) == 0)
    #expect(call(BPFMapHelpers.mapUpdateElem, 0, k, v) == -22)
    // Arrays cannot delete (EINVAL); queues have no lookup through map_lookup_elem.
    let array = try makeMap(.array, max: 4)
    #expect(call(BPFMapHelpers.mapDeleteElem, array.handle, k) == -22)
    let queue = try makeMap(.queue, key: 0, max: 4)
    #expect(BPFMapHelpers.mapLookupElem(queue.handle, k, 0, 0, 0) == 0)
    #expect(call(BPFMapHelpers.mapPushElem, queue.handle, v) == 0)
    var popped: UInt64 = 0
    #expect(call(BPFMapHelpers.mapPopElem, queue.handle, withUnsafeMutablePointer(to: &popped) { UInt64(UInt(bitPattern: $0)) }) == 0)
    #expect(popped == 10)
    // Every helper is exported with its id.
    #expect(Set(BPFMapHelpers.all.map(\.id)) == [1, 2, 3, 87, 88, 89, 0x1000, 0x1001, 0x1002])
    var text: [UInt8] = Array("oko".utf8)
    let hashed = text.withUnsafeMutableBytes { BPFMapHelpers.hashBytes(UInt64(UInt(bitPattern: $0.baseAddress!)), 3, 0, 0, 0) }
    #expect(hashed == text.withUnsafeBytes { okoHashBytes($0.baseAddress!, count: 3) })
}

@Test(arguments: [1, 3, 7, 8, 13, 16, 37])
func hashMapWorksForAnyKeyLength(keySize: Int) throws {
    let map = try makeMap(.hash, key: keySize, value: 8, max: 600)
    func key(_ i: Int) -> [UInt8] { (0..<keySize).map { UInt8(truncatingIfNeeded: i >> (8 * ($0 % 8)) &+ $0 / 8) } }
    let distinct = keySize == 1 ? 256 : 500
    for i in 0..<distinct { try map.update(key: key(i), value: bytes64(UInt64(i))) }
    #expect(map.count == distinct)
    for i in 0..<distinct { #expect(try map.lookup(key: key(i)) == bytes64(UInt64(i))) }
    for i in stride(from: 0, to: distinct, by: 2) { try map.delete(key: key(i)) }
    for i in 0..<distinct { #expect(try map.lookup(key: key(i)) == (i % 2 == 0 ? nil : bytes64(UInt64(i)))) }
}

@Test func exitedThreadsGiveTheirSlotBack() throws {
    let slot = Atomic<Int>(-1)
    for _ in 0..<2 {
        // Slot 62 is claimed and the thread exits without unregistering; the next claim succeeds.
        Thread3 { slot.store((try? MapEpoch.registerCurrentThread(index: 62)) ?? -1, ordering: .relaxed) }.join()
        #expect(slot.load(ordering: .relaxed) == 62)
    }
}
