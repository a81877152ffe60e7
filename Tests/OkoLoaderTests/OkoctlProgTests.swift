import Foundation
import Testing

/// Runs the built `okoctl prog ...` as a child process on compiled example and unsafe objects.
struct OkoctlProgTests {
    /// The folder holding the test runner, which is where SwiftPM puts okoctl too.
    static let okoctl: URL = {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while directory.path != "/" && !FileManager.default.fileExists(atPath: directory.appendingPathComponent("okoctl").path) {
            directory = directory.deletingLastPathComponent()
        }
        return directory.appendingPathComponent("okoctl")
    }()

    struct Output {
        let status: Int32
        let standardOutput: String
        let standardError: String
    }

    static func okoctl(_ arguments: [String]) throws -> Output {
        let process = Process()
        process.executableURL = okoctl
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus, standardOutput: String(decoding: out, as: UTF8.self),
            standardError: String(decoding: err, as: UTF8.self))
    }

    /// Compiles `name`.c from `directory` into a temporary object file and returns its path.
    static func objectFile(_ name: String, directory: URL) throws -> String {
        let bytes = try TestPrograms.compile(name, with: TestPrograms.compilers[0], directory: directory)
        let path = TestPrograms.outputDirectory.appendingPathComponent("okoctl-\(name)-\(UUID().uuidString).o").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        return path
    }

    @Test func verifyAcceptsExampleWithSummary() throws {
        let object = try Self.objectFile("rate-limiter", directory: TestPrograms.examplesDirectory)
        defer { try? FileManager.default.removeItem(atPath: object) }
        let result = try Self.okoctl(["prog", "verify", object])
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardOutput.contains("accepted"))
        #expect(result.standardOutput.contains("oko/filter/rate_limiter"))
        #expect(result.standardOutput.contains("instructions processed"))
        for map in ["config", "buckets", "drops"] { #expect(result.standardOutput.contains(map)) }
        #expect(result.standardOutput.contains("lru_hash"))
    }

    @Test func verifyRefusesUnsafeObjectWithVerifierMessage() throws {
        let object = try Self.objectFile("no-length-check", directory: FilterProgramSafetyTests.unsafeDirectory)
        defer { try? FileManager.default.removeItem(atPath: object) }
        let result = try Self.okoctl(["prog", "verify", object])
        #expect(result.status == 1)
        #expect(result.standardError.contains("instruction "))
        #expect(result.standardError.contains("not proven inside the checked packet length"))
    }

    @Test func verifyReportsUnreadableAndMalformedFilesWithCode5() throws {
        #expect(try Self.okoctl(["prog", "verify", "/nonexistent/x.o"]).status == 5)
        let text = TestPrograms.outputDirectory.appendingPathComponent("okoctl-not-elf-\(UUID().uuidString).o").path
        defer { try? FileManager.default.removeItem(atPath: text) }
        FileManager.default.createFile(atPath: text, contents: Data("hello".utf8))
        let result = try Self.okoctl(["prog", "verify", text])
        #expect(result.status == 5)
        #expect(result.standardError.contains("not an ELF file"))
    }

    @Test(arguments: ["--jit", "--interpreter"])
    func runPrintsResultAndMapEntries(engine: String) throws {
        let object = try Self.objectFile("tcp-diagnosis", directory: TestPrograms.examplesDirectory)
        defer { try? FileManager.default.removeItem(atPath: object) }
        let syn = TestPackets.tcp(source: [10, 0, 0, 5], destination: [203, 0, 113, 9], sourcePort: 40000, destinationPort: 80, flags: 0x02)
        let hex = syn.map { String(format: "%02x", $0) }.joined()
        let result = try Self.okoctl(["prog", "run", object, "--packet", hex, "--repeat", "3", engine])
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardOutput.contains("r0 = 1 "))
        #expect(result.standardOutput.contains("ns per run over 3 runs"))
        // The flow key 10.0.0.5 -> 203.0.113.9, ports 40000 -> 80, and its BTF rendering.
        #expect(result.standardOutput.contains("key 0a000005cb0071099c400050"))
        #expect(result.standardOutput.contains("packets"))
    }

    @Test func runRejectsBadHex() throws {
        let object = try Self.objectFile("stateless-firewall", directory: TestPrograms.examplesDirectory)
        defer { try? FileManager.default.removeItem(atPath: object) }
        #expect(try Self.okoctl(["prog", "run", object, "--packet", "zz"]).status == 2)
    }

    /// What a newcomer does (README "Filter programs"): `make -C examples/bpf OUT=dir` with either
    /// clang, then `okoctl prog verify` and `okoctl prog run` on every object it built.
    @Test(arguments: TestPrograms.compilers)
    func everyExampleBuiltWithMakeVerifiesAndRuns(compiler: TestPrograms.Compiler) throws {
        let out = TestPrograms.outputDirectory.appendingPathComponent("make-\(compiler.label)-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/make")
        make.arguments = ["-s", "-C", TestPrograms.examplesDirectory.path, "OUT=\(out.path)", "CLANG=\(compiler.path)"]
        try make.run()
        make.waitUntilExit()
        #expect(make.terminationStatus == 0)
        let objects = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".o") }.sorted()
        #expect(objects == ExampleProgramsTests.expectedMaps.keys.sorted().map { "\($0).o" })
        let syn = TestPackets.tcp(source: [10, 0, 0, 5], destination: [203, 0, 113, 9], sourcePort: 40000, destinationPort: 80, flags: 0x02)
        let hex = syn.map { String(format: "%02x", $0) }.joined()
        for object in objects {
            let path = out.appendingPathComponent(object).path
            let verify = try Self.okoctl(["prog", "verify", path])
            #expect(verify.status == 0, "\(object) (\(compiler.label)): \(verify.standardError)")
            #expect(verify.standardOutput.contains("accepted"))
            let run = try Self.okoctl(["prog", "run", path, "--packet", hex, "--repeat", "2"])
            #expect(run.status == 0, "\(object) (\(compiler.label)): \(run.standardError)")
            #expect(run.standardOutput.contains("r0 = "))
            #expect(run.standardOutput.contains("ns per run over 2 runs"))
        }
    }
}
