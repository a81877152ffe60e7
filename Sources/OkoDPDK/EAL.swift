// OkoDPDK: a Swift face for the parts of DPDK Oko uses (EAL, mempools, ethdev ports).
//
// Design note
// - The EAL can be initialised once per process and never again after cleanup; `EAL` enforces that
//   and turns DPDK's negative return codes into `DPDKError`s that name the operation and the device.
// - Control-plane objects here (`EAL`, `PacketPool`, `EthernetPort`) are created and destroyed on
//   the main thread. The per-packet work (rx/tx bursts, mbuf accessors) goes straight to the C shim's
//   inline functions on `UnsafeMutablePointer<OpaquePointer?>` arrays: no allocation, no ARC.
// - Hugepages are optional: `EAL.Arguments.resolve` adds `--no-huge` (and warns) when none are free,
//   and `--in-memory` unless the caller chose a `--file-prefix`, so that two DPDK processes on one
//   machine never delete each other's hugepage files.
import CDPDK
import Foundation

public struct DPDKError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let code: Int32

    public init(_ operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }

    public var description: String {
        "\(operation): \(String(cString: oko_strerror(code))) (\(code))"
    }
}

public enum EAL {
    nonisolated(unsafe) private static var initialised = false
    nonisolated(unsafe) private static var cleanedUp = false

    /// Initialises the EAL with `arguments` (argv[0] included). Callable once per process.
    public static func initialise(arguments: [String]) throws(DPDKError) {
        guard !initialised else { throw DPDKError("rte_eal_init (already initialised)", code: EALREADY) }
        // argv strings must outlive the EAL (it keeps pointers to some of them), so they are leaked.
        let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: arguments.count + 1)
        for (index, argument) in arguments.enumerated() { argv[index] = strdup(argument) }
        argv[arguments.count] = nil
        let rc = oko_eal_init(Int32(arguments.count), argv)
        if rc < 0 { throw DPDKError("rte_eal_init(\(arguments.dropFirst().joined(separator: " ")))", code: oko_errno()) }
        initialised = true
    }

    /// Releases hugepages and devices. After this no DPDK call may be made.
    public static func cleanup() {
        guard initialised, !cleanedUp else { return }
        cleanedUp = true
        _ = oko_eal_cleanup()
    }

    public static var isInitialised: Bool { initialised && !cleanedUp }

    /// Time-stamp counter ticks per second.
    public static var tscHz: UInt64 { oko_tsc_hz() }

    @inline(__always) public static func rdtsc() -> UInt64 { oko_rdtsc() }

    /// The enabled worker lcores (all but the main one), in order.
    public static var workerLcores: [UInt32] {
        var result: [UInt32] = []
        var lcore = oko_next_worker_lcore(UInt32.max)
        while lcore != UInt32.max {
            result.append(lcore)
            lcore = oko_next_worker_lcore(lcore)
        }
        return result
    }

    public static var mainLcore: UInt32 { oko_main_lcore() }

    public static func setLogLevel(_ level: UInt32) { oko_set_log_level(level) }

    /// Runs `body` on worker `lcore`; returns once it is launched. `wait(lcore:)` joins it.
    public static func launch(lcore: UInt32, _ body: @escaping @Sendable () -> Void) throws(DPDKError) {
        let box = Unmanaged.passRetained(LaunchBox(body)).toOpaque()
        let rc = oko_launch(lcore, { context in
            let box = Unmanaged<LaunchBox>.fromOpaque(context!).takeRetainedValue()
            box.body()
            return 0
        }, box)
        if rc != 0 {
            Unmanaged<LaunchBox>.fromOpaque(box).release()
            throw DPDKError("rte_eal_remote_launch(lcore \(lcore))", code: rc)
        }
    }

    public static func wait(lcore: UInt32) { _ = oko_wait_lcore(lcore) }

    /// EAL arguments as Oko builds them from configuration.
    public struct Arguments: Sendable {
        public var arguments: [String]
        /// Warnings to log (e.g. falling back to `--no-huge`).
        public var warnings: [String]

        /// Completes `configured` EAL arguments: `--no-huge` (+ `-m`) when no hugepages are free and none
        /// was requested; unless the caller chose a file prefix or in-memory mode, `--in-memory` (or, with
        /// `--no-huge`, `--no-shconf` and a per-process prefix).
        public static func resolve(
            program: String, configured: [String], freeHugepages: Int = Arguments.freeHugepages()
        ) -> Arguments {
            var args = [program] + configured
            var warnings: [String] = []
            let hasNoHuge = configured.contains("--no-huge")
            if !hasNoHuge && freeHugepages == 0 {
                args.append("--no-huge")
                if !configured.contains(where: { $0 == "-m" || $0.hasPrefix("--socket-mem") }) {
                    args += ["-m", "512"]
                }
                warnings.append("no free hugepages: running DPDK with --no-huge (slower; mount hugetlbfs and reserve pages for speed)")
            }
            let chosePrefix = configured.contains { $0.hasPrefix("--file-prefix") || $0 == "--in-memory" || $0 == "--no-shconf" }
            if !chosePrefix {
                if args.contains("--no-huge") {
                    // --no-huge implies legacy memory, which --in-memory refuses; no shared config and a
                    // private prefix give the same isolation.
                    args += ["--no-shconf", "--file-prefix", "oko-\(getpid())"]
                } else {
                    args.append("--in-memory")
                }
            }
            return Arguments(arguments: args, warnings: warnings)
        }

        /// HugePages_Free from /proc/meminfo, 0 when unreadable.
        public static func freeHugepages() -> Int {
            guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return 0 }
            for line in text.split(separator: "\n") where line.hasPrefix("HugePages_Free:") {
                return Int(line.split(separator: " ").last ?? "0") ?? 0
            }
            return 0
        }
    }
}

private final class LaunchBox {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}
