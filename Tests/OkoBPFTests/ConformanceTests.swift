import Foundation
import OkoBPF
import Testing

/// Locates the shared bpf_conformance suite: $OKO_SHARED_DIR or ../shared next to the package root.
enum ConformanceSuite {
    static let directory: URL = {
        if let shared = ProcessInfo.processInfo.environment["OKO_SHARED_DIR"], !shared.isEmpty {
            return URL(fileURLWithPath: shared).appendingPathComponent("conformance/bpf_conformance/tests")
        }
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/conformance/bpf_conformance/tests")
    }()

    static let fileNames: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".data") }.sorted()
    }()

    static func load(_ name: String) throws -> BPFConformanceTest {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        return try BPFConformanceTest(parsing: text)
    }

    /// Runs `test` in the interpreter with the suite's helpers; r0 or the error.
    static func runInterpreter(_ test: BPFConformanceTest) throws -> UInt64 {
        let interpreter = try BPFInterpreter(instructions: try test.program(), helpers: BPFConformanceHelpers.table())
        var memory = test.memory
        return try memory.withUnsafeMutableBytes { buffer in
            try interpreter.run(memory: buffer.count == 0 ? nil : buffer.baseAddress, length: buffer.count)
        }
    }
}

@Suite("bpf_conformance suite")
struct ConformanceTests {
    @Test("the whole suite is present")
    func suiteIsPresent() {
        #expect(ConformanceSuite.fileNames.count == 313, "found \(ConformanceSuite.fileNames.count) files in \(ConformanceSuite.directory.path)")
    }

    @Test("interpreter gives the expected r0", arguments: ConformanceSuite.fileNames)
    func interpreterPasses(file: String) throws {
        let test = try ConformanceSuite.load(file)
        if let expectedError = test.expectedError {
            #expect(throws: (any Error).self, "expected error: \(expectedError)") {
                _ = try ConformanceSuite.runInterpreter(test)
            }
            return
        }
        let expected = try #require(test.expectedResult, "\(file) has no result")
        let result = try ConformanceSuite.runInterpreter(test)
        #expect(result == expected, "\(file): r0 = 0x\(String(result, radix: 16)), expected 0x\(String(expected, radix: 16))")
    }

    @Test("disassembly re-assembles to the same instructions", arguments: ConformanceSuite.fileNames)
    func disassemblyRoundTrips(file: String) throws {
        let program = try ConformanceSuite.load(file).program()
        let text = try BPFDisassembler.disassemble(program)
        let reassembled = try BPFAssembler.assemble(text)
        #expect(reassembled == program, "\(file):\n\(text)")
    }

    @Test("assembler matches the -- raw words where a file has both")
    func assemblerMatchesRaw() throws {
        var compared = 0
        for file in ConformanceSuite.fileNames {
            let test = try ConformanceSuite.load(file)
            guard let raw = test.raw, let assembly = test.assembly else { continue }
            #expect(try BPFAssembler.assemble(assembly).map(\.rawValue) == raw, "\(file)")
            compared += 1
        }
        #expect(compared > 0)
    }
}
