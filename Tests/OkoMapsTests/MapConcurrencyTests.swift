import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import OkoMaps

/// Raw address of a local, as a program register would hold it.
@inline(__always) func address<T>(_ pointer: UnsafeMutablePointer<T>) -> UInt64 { UInt64(UInt(bitPattern: pointer)) }

/// Values are two equal UInt64 halves; a torn copy has different halves.
struct PairValue { var low: UInt64; var high: UInt64 }

func pairBytes(_ v: UInt64) -> [UInt8] { bytes64(v) + bytes64(v) }
func isWholePair(_ bytes: [UInt8]) -> Bool { u64(Array(bytes[0..<8])) == u64(Array(bytes[8..<16])) }

final class Counters: Sendable {
    let torn = Atomic<Int>(0)
    let lookups = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
}

@Test(arguments: [BPFMapType.hash, .lruHash])
func hashMapConcurrentPacketThreadsAndControlPlaneSeeNoTornValues(type: BPFMapType) throws {
    // The LRU map is smaller than the 300 keys in play, so evictions run concurrently too.
    let maxEntries = type == .lruHash ? 200 : 512
    let map = try BPFMap.create(BPFMapDefinition(type: type, keySize: 4, valueSize: 16, maxEntries: maxEntries, name: "pairs"))
    for k in 0..<200 { try map.update(key: bytes32(UInt32(k)), value: pairBytes(UInt64(k))) }
    let handle = map.handle
    let counters = Counters()
    var packetThreads: [Thread3] = []
    for t in 0..<2 {
        packetThreads.append(Thread3 {
            guard (try? MapEpoch.registerCurrentThread()) != nil else { return }
            defer { MapEpoch.unregisterCurrentThread() }
            var key: UInt32 = 0
            var value = PairValue(low: 0, high: 0)
            var seed = UInt32(t + 1) &* 2_654_435_761
            var held: [UnsafeMutablePointer<PairValue>] = []
            held.reserveCapacity(32)
            while !counters.stop.load(ordering: .relaxed) {
                MapEpoch.enterCritical()
                for i in 0..<32 {
                    seed = seed &* 1_664_525 &+ 1_013_904_223
                    key = (seed >> 8) % 300
                    if i % 4 == 0 {
                        value.low = UInt64(seed)
                        value.high = UInt64(seed)
                        _ = BPFMapHelpers.mapUpdateElem(handle, address(&key), address(&value), 0, 0)
                    } else {
                        let found = BPFMapHelpers.mapLookupElem(handle, address(&key), 0, 0, 0)
                        if found != 0 {
                            let pair = UnsafeMutablePointer<PairValue>(bitPattern: UInt(found))!
                            if pair.pointee.low != pair.pointee.high { counters.torn.add(1, ordering: .relaxed) }
                            held.append(pair)
                        }
                    }
                }
                // Pointers from this batch must still hold whole values, whatever the control
                // plane deleted or replaced meanwhile.
                for pair in held where pair.pointee.low != pair.pointee.high { counters.torn.add(1, ordering: .relaxed) }
                counters.lookups.add(held.count, ordering: .relaxed)
                held.removeAll(keepingCapacity: true)
                MapEpoch.exitCritical()
            }
        })
    }
    // Control plane: updates, deletes, lookups and paginated dumps for a while.
    var rounds = 0
    var x: UInt64 = 12345
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: .seconds(1))
    // 3000 operations or one second, whichever comes first (the CI machine is shared).
    while rounds < 3000 && (rounds < 100 || clock.now < deadline) {
        x = x &* 6_364_136_223_846_793_005 &+ 1
        let key = bytes32(UInt32((x >> 33) % 300))
        switch rounds % 4 {
        case 0: try? map.update(key: key, value: pairBytes(x >> 7))
        case 1: try? map.delete(key: key)
        case 2:
            if let value = try map.lookup(key: key), !isWholePair(value) { counters.torn.add(1, ordering: .relaxed) }
        default:
            var cursor: [UInt8]? = nil
            for _ in 0..<4 {
                let page = try map.entries(startingAfter: cursor, limit: 50)
                if page.isEmpty { break }
                for entry in page where !isWholePair(entry.value) { counters.torn.add(1, ordering: .relaxed) }
                cursor = page.last!.key
            }
        }
        rounds += 1
    }
    counters.stop.store(true, ordering: .relaxed)
    for thread in packetThreads { thread.join() }
    #expect(counters.torn.load(ordering: .relaxed) == 0)
    #expect(counters.lookups.load(ordering: .relaxed) > 0)
    #expect(map.count <= maxEntries)
    print("\(type): \(counters.lookups.load(ordering: .relaxed)) packet-thread lookups checked, \(rounds) control-plane operations")
}

@Test func arraySeqlockGivesControlPlaneWholeValuesWhilePacketThreadsWrite() throws {
    let map = try BPFMap.create(BPFMapDefinition(type: .array, keySize: 4, valueSize: 16, maxEntries: 8, name: "pairs"))
    let handle = map.handle
    let counters = Counters()
    var writers: [Thread3] = []
    for t in 0..<2 {
        writers.append(Thread3 {
            var key: UInt32 = 0
            var value = PairValue(low: 0, high: 0)
            var n = UInt64(t) << 40
            while !counters.stop.load(ordering: .relaxed) {
                n += 1
                key = UInt32(n % 8)
                value.low = n
                value.high = n
                _ = BPFMapHelpers.mapUpdateElem(handle, address(&key), address(&value), 0, 0)
            }
        })
    }
    var checked = 0
    for i in 0..<20_000 {
        if i % 10 == 0 {
            for entry in try map.entries() where !isWholePair(entry.value) { counters.torn.add(1, ordering: .relaxed) }
        } else if let value = try map.lookup(key: bytes32(UInt32(i % 8))), !isWholePair(value) {
            counters.torn.add(1, ordering: .relaxed)
        }
        checked += 1
    }
    counters.stop.store(true, ordering: .relaxed)
    for thread in writers { thread.join() }
    #expect(counters.torn.load(ordering: .relaxed) == 0)
    #expect(checked == 20_000)
}

/// A deleted element is not reused while a packet thread that may hold it is inside its
/// critical section, and is reused once it leaves.
@Test func deletedValuesStayValidUntilThePacketThreadIsQuiescent() throws {
    let map = try BPFMap.create(BPFMapDefinition(type: .hash, keySize: 4, valueSize: 16, maxEntries: 64, name: "reuse"))
    try map.update(key: bytes32(7), value: pairBytes(7777))
    let handle = map.handle
    let entered = Atomic<Int>(0)
    let release = Atomic<Int>(0)
    let heldValue = Atomic<UInt64>(0)
    let reader = Thread3 {
        guard (try? MapEpoch.registerCurrentThread()) != nil else { return }
        defer { MapEpoch.unregisterCurrentThread() }
        MapEpoch.enterCritical()
        var key: UInt32 = 7
        let pair = UnsafeMutablePointer<PairValue>(bitPattern: UInt(BPFMapHelpers.mapLookupElem(handle, address(&key), 0, 0, 0)))!
        entered.store(1, ordering: .releasing)
        while release.load(ordering: .acquiring) == 0 { sched_yield() }
        heldValue.store(pair.pointee.low == pair.pointee.high ? pair.pointee.low : 0, ordering: .relaxed)
        MapEpoch.exitCritical()
        entered.store(2, ordering: .releasing)
    }
    while entered.load(ordering: .acquiring) == 0 { sched_yield() }

    // Churn through every spare element with program-path updates and deletes.
    // `patient`: retry -ENOMEM for a while (packet threads of tests running in parallel may
    // briefly hold the grace period too).
    func churn(patient: Bool = false) -> Int {
        var failures = 0
        var key: UInt32 = 0
        var value = PairValue(low: 1, high: 2)
        for round in 0..<8 {
            for k in 0..<60 {
                key = UInt32(1000 + k)
                value = PairValue(low: UInt64(round), high: UInt64(round + 1))
                var attempts = 0
                while BPFMapHelpers.mapUpdateElem(handle, address(&key), address(&value), 0, 0) != 0 {
                    attempts += 1
                    if !patient || attempts > 2000 {
                        failures += 1
                        break
                    }
                    usleep(100)
                }
            }
            for k in 0..<60 {
                key = UInt32(1000 + k)
                _ = BPFMapHelpers.mapDeleteElem(handle, address(&key), 0, 0, 0)
            }
        }
        return failures
    }
    try map.delete(key: bytes32(7))
    let failuresWhileHeld = churn()
    release.store(1, ordering: .releasing)
    while entered.load(ordering: .acquiring) != 2 { sched_yield() }
    reader.join()
    #expect(heldValue.load(ordering: .relaxed) == 7777)
    // The reader pinned the retired elements, so the churn ran out of spares (-ENOMEM)...
    #expect(failuresWhileHeld > 0)
    // ...and once it passed a quiescent point they are reused.
    #expect(churn(patient: true) == 0)
}

@Test func queueAndCountMinUnderConcurrentPacketThreads() throws {
    let queue = try BPFMap.create(BPFMapDefinition(type: .queue, keySize: 0, valueSize: 16, maxEntries: 64, name: "q"))
    let sketch = try BPFMap.create(BPFMapDefinition(type: .countMinSketch, keySize: 4, valueSize: 8, maxEntries: 1024, extra: 4, name: "cms"))
    let queueHandle = queue.handle
    let sketchHandle = sketch.handle
    let counters = Counters()
    var threads: [Thread3] = []
    for t in 0..<2 {
        threads.append(Thread3 {
            var value = PairValue(low: 0, high: 0)
            var key: UInt32 = 42
            for n in 0..<20_000 {
                value.low = UInt64(t * 1_000_000 + n)
                value.high = value.low
                _ = BPFMapHelpers.mapPushElem(queueHandle, address(&value), BPFUpdateFlags.exist, 0, 0)
                if BPFMapHelpers.mapPopElem(queueHandle, address(&value), 0, 0, 0) == 0, value.low != value.high {
                    counters.torn.add(1, ordering: .relaxed)
                }
                _ = BPFMapHelpers.countMinAdd(sketchHandle, address(&key), 1, 0, 0)
            }
        })
    }
    for thread in threads { thread.join() }
    #expect(counters.torn.load(ordering: .relaxed) == 0)
    #expect(try sketch.estimate(key: bytes32(42)) >= 40_000)
}
