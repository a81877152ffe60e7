// The helpers a filter program may call: their prototypes (for the verifier) and their C entry
// points (for the engines), under Linux's ids plus Oko's extras (0x1000...).
// Every helper is a plain @convention(c) function: no allocation and no locks on the packet path,
// except trace_printk, which is rate-limited and meant for debugging.

#if canImport(Glibc)
import Glibc
#endif
import OkoBPF
import OkoMaps
import OkoVerifier
import Synchronization

public enum OkoHelpers {
    public static let ktimeGetNs = 5
    public static let tracePrintk = 6
    public static let getPrandomU32 = 7
    public static let getSMPProcessorID = 8
    /// trace_printk lines allowed per second (the rest are counted in `suppressedTraceLines`).
    public static let traceLinesPerSecond: UInt64 = 50

    /// Verifier prototypes: Linux's standard set, Bloom filters allowed in push/peek, Oko's extras.
    public static let prototypes: HelperPrototypeTable = {
        var table = HelperPrototypeTable.standard
        let countMin = OkoMaps.BPFMapType.countMinSketch.rawValue
        let queueLike: Set<UInt32> = [OkoVerifier.BPFMapType.queue, OkoVerifier.BPFMapType.stack, OkoVerifier.BPFMapType.bloomFilter]
        table.register(id: 87, HelperPrototype(name: "map_push_elem", arguments: [.mapPointer, .mapValue, .scalar], allowedMapTypes: queueLike))
        // Queues/stacks write the value in peek; Bloom filters read it (the verifier checks a
        // Bloom filter's `mapValueOutput` argument as initialised readable memory).
        table.register(id: 89, HelperPrototype(name: "map_peek_elem", arguments: [.mapPointer, .mapValueOutput], allowedMapTypes: queueLike))
        table.register(
            id: Int32(BPFMapHelperID.countMinAdd),
            HelperPrototype(name: "oko_count_min_add", arguments: [.mapPointer, .mapKey], allowedMapTypes: [countMin]))
        table.register(
            id: Int32(BPFMapHelperID.countMinQuery),
            HelperPrototype(name: "oko_count_min_query", arguments: [.mapPointer, .mapKey], allowedMapTypes: [countMin]))
        table.register(
            id: Int32(BPFMapHelperID.hashBytes),
            HelperPrototype(name: "oko_hash", arguments: [.memory, .memorySize(allowZero: true), .scalar]))
        return table
    }()

    /// The C entry points for every helper in `prototypes`.
    public static let table: BPFHelperTable = {
        var table = BPFHelperTable()
        for helper in BPFMapHelpers.all { table.register(id: helper.id, name: helper.name, helper.function) }
        // oko.h declares oko_count_min_add(map, key): "adds one". r3 is whatever the program left
        // there, so it must not become the amount.
        table.register(id: BPFMapHelperID.countMinAdd, name: "oko_count_min_add", countMinAddOneHelper)
        table.register(id: ktimeGetNs, name: "ktime_get_ns", ktimeGetNsHelper)
        table.register(id: tracePrintk, name: "trace_printk", tracePrintkHelper)
        table.register(id: getPrandomU32, name: "get_prandom_u32", prandomHelper)
        table.register(id: getSMPProcessorID, name: "get_smp_processor_id", processorIDHelper)
        return table
    }()

    /// trace_printk lines dropped by the rate limit so far.
    public static var suppressedTraceLines: UInt64 { traceSuppressed.load(ordering: .relaxed) }

    /// Formats a trace_printk call the way it is printed (for tests): %d %i %u %x %lld %llu %llx %p %%.
    public static func formatTrace(_ format: String, _ arguments: [UInt64]) -> String {
        var output = ""
        var next = 0
        var characters = format.makeIterator()
        while let c = characters.next() {
            guard c == "%" else { output.append(c); continue }
            var length = 0
            var spec = characters.next()
            while spec == "l" || spec == "h" { length += spec == "l" ? 1 : 0; spec = characters.next() }
            guard let conversion = spec else { break }
            if conversion == "%" { output.append("%"); continue }
            let raw = next < arguments.count ? arguments[next] : 0
            next += 1
            let value = length >= 2 ? raw : (length == 1 ? raw : raw & 0xFFFF_FFFF)
            switch conversion {
            case "d", "i":
                output += length == 0 ? String(Int32(truncatingIfNeeded: value)) : String(Int64(bitPattern: value))
            case "u": output += String(value)
            case "x": output += String(value, radix: 16)
            case "X": output += String(value, radix: 16, uppercase: true)
            case "p": output += "0x" + String(raw, radix: 16)
            case "c": output.append(Character(Unicode.Scalar(UInt8(truncatingIfNeeded: value))))
            default: output += "%" + String(conversion)
            }
        }
        return output
    }
}

private let prandomState = Atomic<UInt64>(0x853C_49E6_748F_EA9B)
private let traceWindowStart = Atomic<UInt64>(0)
private let traceWindowCount = Atomic<UInt64>(0)
private let traceSuppressed = Atomic<UInt64>(0)

@inline(__always)
private func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

private let ktimeGetNsHelper: BPFHelperFunction = { _, _, _, _, _ in monotonicNanoseconds() }

// splitmix64 over one shared atomic counter: lock-free, distinct values on every thread.
private let prandomHelper: BPFHelperFunction = { _, _, _, _, _ in
    var z = prandomState.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return UInt64(UInt32(truncatingIfNeeded: z ^ (z >> 31)))
}

private let countMinAddOneHelper: BPFHelperFunction = { map, key, _, _, _ in
    BPFMapHelpers.countMinAdd(map, key, 1, 0, 0)
}

private let processorIDHelper: BPFHelperFunction = { _, _, _, _, _ in UInt64(MapEpoch.currentCPU) }

private let tracePrintkHelper: BPFHelperFunction = { format, size, a1, a2, a3 in
    guard let pointer = UnsafeRawPointer(bitPattern: UInt(truncatingIfNeeded: format)), size > 0 else { return 0 }
    let now = monotonicNanoseconds()
    let window = traceWindowStart.load(ordering: .relaxed)
    if now &- window >= 1_000_000_000 {
        if traceWindowStart.compareExchange(expected: window, desired: now, ordering: .relaxed).exchanged {
            traceWindowCount.store(0, ordering: .relaxed)
        }
    }
    guard traceWindowCount.wrappingAdd(1, ordering: .relaxed).newValue <= OkoHelpers.traceLinesPerSecond else {
        traceSuppressed.wrappingAdd(1, ordering: .relaxed)
        return 0
    }
    let bytes = UnsafeRawBufferPointer(start: pointer, count: Int(size))
    let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    var line = "bpf_trace_printk: " + OkoHelpers.formatTrace(text, [a1, a2, a3])
    if !line.hasSuffix("\n") { line += "\n" }
    _ = line.withCString { text in write(2, text, strlen(text)) }
    return UInt64(line.utf8.count)
}
