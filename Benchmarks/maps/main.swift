// Map helper throughput: `swift run -c release oko-maps-bench [entries]`.
// Calls the helpers through their C function pointers, as the interpreter does, from one packet
// thread inside epoch critical sections of 32 operations.

import OkoMaps
#if canImport(Glibc)
import Glibc
#endif

func nanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

let entries = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 1_000_000 : 1_000_000
let operations = 4_000_000
try MapEpoch.registerCurrentThread()

func measure(_ label: String, _ body: (Int) -> UInt64) {
    var sink: UInt64 = 0
    let start = nanoseconds()
    var i = 0
    while i < operations {
        MapEpoch.enterCritical()
        for j in 0..<32 { sink &+= body(i &+ j) }
        MapEpoch.exitCritical()
        i += 32
    }
    let elapsed = Double(nanoseconds() - start) / Double(operations)
    print("\(label): \((elapsed * 10).rounded() / 10) ns/op (checksum \(sink & 0xFF))")
}

for type in [BPFMapType.hash, .lruHash, .perCPUHash, .array] {
    let map = try BPFMap.create(BPFMapDefinition(type: type, keySize: 4, valueSize: 8, maxEntries: entries, name: "bench"))
    let lookup = BPFMapHelpers.mapLookupElem
    let update = BPFMapHelpers.mapUpdateElem
    let handle = map.handle
    let keys = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    let value = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    let keyAddress = UInt64(UInt(bitPattern: keys))
    let valueAddress = UInt64(UInt(bitPattern: value))
    for i in 0..<entries {
        keys.pointee = UInt32(i)
        value.pointee = UInt64(i)
        _ = update(handle, keyAddress, valueAddress, 0, 0)
    }
    // Pseudo-random keys so lookups miss the cache like real flows do.
    measure("\(type) lookup (\(entries) entries)") { i in
        keys.pointee = UInt32((UInt64(i) &* 2_654_435_761) % UInt64(entries))
        return lookup(handle, keyAddress, 0, 0, 0)
    }
    measure("\(type) update existing") { i in
        keys.pointee = UInt32((UInt64(i) &* 2_654_435_761) % UInt64(entries))
        value.pointee = UInt64(i)
        return update(handle, keyAddress, valueAddress, 0, 0)
    }
    print("\(type): \(map.memoryBytes / entries) bytes/entry")
}
MapEpoch.unregisterCurrentThread()
