import Testing
@testable import OkoMaps

/// Each map type at one million entries: fill it through the helpers and print bytes per entry.
@Test(arguments: [BPFMapType.hash, .perCPUHash, .lruHash, .lruPerCPUHash, .array, .perCPUArray, .queue, .stack, .bloomFilter, .countMinSketch])
func millionEntryMapsReportBytesPerEntry(type: BPFMapType) throws {
    let entries = 1_000_000
    let keySize: Int
    switch type {
    case .queue, .stack, .bloomFilter: keySize = 0
    default: keySize = 4
    }
    let map = try BPFMap.create(BPFMapDefinition(type: type, keySize: keySize, valueSize: 8, maxEntries: entries, name: "million"), cpuCount: 2)
    let handle = map.handle
    var key: UInt32 = 0
    var value: UInt64 = 0
    for i in 0..<entries {
        key = UInt32(i)
        value = UInt64(i)
        let result: UInt64
        switch type {
        case .queue, .stack, .bloomFilter: result = BPFMapHelpers.mapPushElem(handle, address(&value), 0, 0, 0)
        default: result = BPFMapHelpers.mapUpdateElem(handle, address(&key), address(&value), 0, 0)
        }
        if result != 0 {
            Issue.record("\(type): insert \(i) failed with \(Int64(bitPattern: result))")
            break
        }
    }
    switch type {
    case .hash, .lruHash, .perCPUHash, .lruPerCPUHash:
        #expect(map.count == entries)
        key = 999_999
        #expect(BPFMapHelpers.mapLookupElem(handle, address(&key), 0, 0, 0) != 0)
    case .queue, .stack:
        #expect(map.count == entries)
    case .bloomFilter:
        value = 999_999
        #expect(BPFMapHelpers.mapPeekElem(handle, address(&value), 0, 0, 0) == 0)
    case .countMinSketch:
        key = 999_999
        #expect(BPFMapHelpers.countMinQuery(handle, address(&key), 0, 0, 0) >= 999_999)
    default:
        break
    }
    let perEntry = Double(map.memoryBytes) / Double(entries)
    print("memory: \(type) key \(keySize) value 8 x 1M (2 CPUs where per-CPU): \(map.memoryBytes) bytes, \((perEntry * 10).rounded() / 10) bytes/entry")
    // Bounded: everything was reserved at creation and nothing beyond a sane per-entry budget.
    #expect(perEntry < 96)
}
