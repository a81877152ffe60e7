import Foundation
import OkoLoader

/// Compiles the C programs in Programs/ with each available clang at test time.
enum TestPrograms {
    struct Compiler: CustomStringConvertible, Sendable {
        let path: String
        let label: String
        /// `-mcpu` values it knows (clang 14 predates v4).
        let cpus: [String]
        var description: String { label }
    }

    static let programsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Programs")
    /// The example programs operators start from (examples/bpf in the repository).
    static let examplesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/bpf")

    /// Debian's clang 14 and the Swift toolchain's clang 21, whichever exist.
    static let compilers: [Compiler] = {
        let candidates = [
            Compiler(path: "/usr/bin/clang", label: "clang-14", cpus: ["v1", "v2", "v3"]),
            Compiler(path: "/opt/swift/usr/bin/clang", label: "clang-21", cpus: ["v1", "v2", "v3", "v4"]),
        ]
        let present = candidates.filter { FileManager.default.isExecutableFile(atPath: $0.path) }
        for missing in candidates where !present.contains(where: { $0.path == missing.path }) {
            print("OkoLoaderTests: skipping \(missing.label): \(missing.path) is absent")
        }
        return present
    }()

    static let outputDirectory: URL = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("oko-loader-tests")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }()

    struct CompileError: Error, CustomStringConvertible {
        let description: String
    }

    /// The object file bytes of Programs/`name`.c compiled by `compiler` with `-O2 -target bpf`.
    static func compile(
        _ name: String, with compiler: Compiler, cpu: String = "v3", debugInfo: Bool = true, directory: URL = programsDirectory
    ) throws -> [UInt8] {
        let source = directory.appendingPathComponent("\(name).c").path
        // Tests run in parallel and may compile the same program at once: each compile gets its own file.
        let output = outputDirectory.appendingPathComponent("\(name)-\(compiler.label)-\(cpu)\(debugInfo ? "-g" : "")-\(UUID().uuidString).o").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: compiler.path)
        process.arguments =
            ["-O2", "-target", "bpf", "-mcpu=\(cpu)", "-I/usr/include/x86_64-linux-gnu", "-c", source, "-o", output]
            + (debugInfo ? ["-g"] : [])
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CompileError(description: "\(compiler) failed on \(name).c: \(String(decoding: message, as: UTF8.self))")
        }
        return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
    }

    static func load(_ name: String, with compiler: Compiler, cpu: String = "v3", debugInfo: Bool = true) throws -> BPFObjectFile {
        try BPFObjectFile(bytes: compile(name, with: compiler, cpu: cpu, debugInfo: debugInfo))
    }
}
