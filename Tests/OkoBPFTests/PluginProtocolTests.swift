import Foundation
import OkoBPF
import Testing

/// Drives the built `oko-bpf-plugin` executable the way the bpf_conformance runner does.
/// Needs `swift build` first (the test target cannot depend on an executable); skips otherwise.
@Suite("oko-bpf-plugin protocol")
struct PluginProtocolTests {
    static let pluginPath: String? = {
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for configuration in ["debug", "release"] {
            let path = packageRoot.appendingPathComponent(".build/\(configuration)/oko-bpf-plugin").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }()

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
    }

    /// Runs the plugin; returns (exit status, stdout, stderr).
    static func invoke(_ path: String, program: [BPFInstruction], memory: [UInt8], flags: [String] = []) throws
        -> (Int32, String, String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = flags + (memory.isEmpty ? [] : [hex(memory)])
        let input = Pipe(), output = Pipe(), error = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = error
        try process.run()
        input.fileHandleForWriting.write(Data((hex(BPFInstruction.encode(program)) + "\n").utf8))
        try input.fileHandleForWriting.close()
        let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, out, err)
    }

    @Test("every suite program gives the expected r0 through the plugin")
    func suiteThroughPlugin() throws {
        guard let path = Self.pluginPath else {
            print("SKIPPED: build oko-bpf-plugin first (swift build)")
            return
        }
        for file in ConformanceSuite.fileNames {
            let test = try ConformanceSuite.load(file)
            guard let expected = test.expectedResult else { continue }
            let (status, out, err) = try Self.invoke(path, program: try test.program(), memory: test.memory)
            #expect(status == 0, "\(file): \(err)")
            #expect(UInt64(out.trimmingCharacters(in: .whitespacesAndNewlines), radix: 16) == expected, "\(file): \(out)")
        }
    }

    @Test("faults exit non-zero with a message; --jit reports it is not built in")
    func errorsAndJITFlag() throws {
        guard let path = Self.pluginPath else { return }
        let outOfBounds = try BPFAssembler.assemble("ldxw %r0, [%r1+8]\nexit")
        let (status, _, err) = try Self.invoke(path, program: outOfBounds, memory: [1, 2, 3, 4])
        #expect(status != 0)
        #expect(err.contains("instruction 0"))
        let (jitStatus, _, jitErr) = try Self.invoke(path, program: try BPFAssembler.assemble("mov %r0, 1\nexit"),
                                                      memory: [], flags: ["--jit"])
        #expect(jitStatus == 2)
        #expect(jitErr.contains("JIT not available"))
    }
}
