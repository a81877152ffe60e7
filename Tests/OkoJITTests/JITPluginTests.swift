import Foundation
import OkoBPF
import Testing

/// Runs the built `oko-bpf-plugin --jit` over the whole suite, as the bpf_conformance runner would.
/// The test target cannot depend on an executable, so it needs `swift build` first.
@Suite struct JITPluginTests {
    static let pluginPath: String? = {
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for configuration in ["debug", "release"] {
            let path = packageRoot.appendingPathComponent(".build/\(configuration)/oko-bpf-plugin").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }()

    static func hexText(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
    }

    /// (exit status, stdout) of one plugin run.
    static func runPlugin(_ path: String, program: [BPFInstruction], memory: [UInt8]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["--jit"] + (memory.isEmpty ? [] : [hexText(memory)])
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data((hexText(BPFInstruction.encode(program)) + "\n").utf8))
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    @Test func pluginWithJITFlagPassesTheWholeSuite() throws {
        guard let path = Self.pluginPath else {
            print("SKIPPED: build oko-bpf-plugin first (swift build)")
            return
        }
        var passed = 0
        for file in JITConformanceSuite.fileNames {
            let test = try JITConformanceSuite.load(file)
            guard let expected = test.expectedResult else { continue }
            let (status, text) = try Self.runPlugin(path, program: try test.program(), memory: test.memory)
            let result = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines), radix: 16)
            #expect(status == 0 && result == expected, "\(file): status \(status), output \(text)")
            if status == 0 && result == expected { passed += 1 }
        }
        #expect(passed == 313)
    }
}
