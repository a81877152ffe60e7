import Foundation

/// Locations of the built products and the repository, for tests that run executables as child
/// processes (the DPDK EAL can be initialised once per process, so DPDK tests never run in-process).
enum TestEnvironment {
    /// The package root (two levels above this file's folder).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The folder holding the test runner, which is also where SwiftPM puts the executables.
    static let productsDirectory: URL = {
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = runner.deletingLastPathComponent()
        while directory.path != "/" && !FileManager.default.fileExists(atPath: directory.appendingPathComponent("okod").path) {
            directory = directory.deletingLastPathComponent()
        }
        return directory
    }()

    static func executable(_ name: String) -> URL { productsDirectory.appendingPathComponent(name) }

    static func temporaryDirectory(_ label: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("oko-\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Runs `executable` to completion; returns its exit status and its stdout and stderr together.
func runToCompletion(_ executable: URL, _ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

/// A child process whose stdout and stderr are collected into one text buffer.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var collected = Data()
    /// The child closed its output (it exited and everything it wrote has been collected).
    private var reachedEnd = false

    init(_ executable: URL, _ arguments: [String]) throws {
        process.executableURL = executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.lock.lock()
            if data.isEmpty {
                self.reachedEnd = true
                handle.readabilityHandler = nil
            } else {
                self.collected.append(data)
            }
            self.lock.unlock()
        }
        try process.run()
    }

    var output: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: collected, as: UTF8.self)
    }

    /// Waits until `predicate(output)` holds or `timeout` passes; returns whether it held.
    func waitForOutput(timeout: TimeInterval, _ predicate: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if predicate(output) { return true }
            if !process.isRunning { return predicate(output) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return predicate(output)
    }

    /// Waits for exit up to `timeout`; returns the elapsed time, or nil if still running (then killed).
    func waitForExit(timeout: TimeInterval) -> TimeInterval? {
        let start = Date()
        while process.isRunning && Date().timeIntervalSince(start) < timeout { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning {
            process.terminate()
            kill(process.processIdentifier, SIGKILL)
            return nil
        }
        let elapsed = Date().timeIntervalSince(start)
        // The exit can be seen before the last output arrives: wait (briefly) for the pipe's end.
        let drainDeadline = Date().addingTimeInterval(2)
        while Date() < drainDeadline {
            lock.lock()
            let done = reachedEnd
            lock.unlock()
            if done { break }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return elapsed
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Reads a classic pcap file (microsecond, either byte order) into its frames.
func readPcap(_ url: URL) throws -> [[UInt8]] {
    let data = [UInt8](try Data(contentsOf: url))
    guard data.count >= 24 else { throw PcapError.truncated }
    let magic = UInt32(data[0]) | UInt32(data[1]) << 8 | UInt32(data[2]) << 16 | UInt32(data[3]) << 24
    let littleEndian: Bool
    switch magic {
    case 0xA1B2_C3D4, 0xA1B2_3C4D: littleEndian = true
    case 0xD4C3_B2A1, 0x4D3C_B2A1: littleEndian = false
    default: throw PcapError.badMagic
    }
    func u32(_ offset: Int) -> Int {
        let bytes = data[offset..<offset + 4].map { UInt32($0) }
        let value = littleEndian
            ? bytes[0] | bytes[1] << 8 | bytes[2] << 16 | bytes[3] << 24
            : bytes[3] | bytes[2] << 8 | bytes[1] << 16 | bytes[0] << 24
        return Int(value)
    }
    var frames: [[UInt8]] = []
    var offset = 24
    while offset + 16 <= data.count {
        let captured = u32(offset + 8)
        offset += 16
        guard offset + captured <= data.count else { throw PcapError.truncated }
        frames.append(Array(data[offset..<offset + captured]))
        offset += captured
    }
    return frames
}

enum PcapError: Error { case truncated, badMagic }

/// Runs scripts/make-pcap.py.
func makePcap(_ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", TestEnvironment.packageRoot.appendingPathComponent("scripts/make-pcap.py").path] + arguments
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw PcapError.truncated }
}

/// Builds examples/bpf/NAME.c with clang 14 as the examples Makefile does; nil when clang is missing.
func compileExample(_ name: String, into directory: URL) throws -> URL? {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/clang") else { return nil }
    let object = directory.appendingPathComponent("\(name).o")
    let source = TestEnvironment.packageRoot.appendingPathComponent("examples/bpf/\(name).c")
    let (status, output) = try runToCompletion(
        URL(fileURLWithPath: "/usr/bin/clang"),
        ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", source.path, "-o", object.path])
    guard status == 0 else { throw OkodStartFailure(output: "clang: \(output)") }
    return object
}
