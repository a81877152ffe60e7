import Foundation
import Testing

/// okoctl as operators run it. (Commands against a running okod are tested with the REST API.)
struct OkoctlTests {
    private func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = TestEnvironment.executable("okoctl")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    @Test func helpListsTheOvsOfctlVerbsWithExamples() throws {
        let (status, output) = try run(["--help"])
        #expect(status == 0)
        for verb in ["show", "add-br", "del-br", "add-port", "del-port", "dump-flows", "add-flow", "add-flows",
                     "mod-flows", "del-flows", "load-filter-prog", "dump-map", "update-map", "trace", "dump-ports"] {
            #expect(output.contains("  \(verb) "), "help should list \(verb)")
        }
        #expect(output.contains("Examples:"))
    }

    @Test func refusesABadRuleBeforeContactingOkod() throws {
        let (status, output) = try run(["add-flow", "br0", "priority=1,tcp_dst=80,actions=drop", "--server", "http://127.0.0.1:9"])
        #expect(status == 2)
        #expect(output.contains("match field 'tcp_dst' requires ip_proto=6"))
    }

    @Test func reportsAnUnreachableOkodWithItsOwnExitCode() throws {
        // Port 9 (discard) on loopback: nothing listens there in the test environment.
        let (status, output) = try run(["show", "--server", "http://127.0.0.1:9"])
        #expect(status == 3)
        #expect(output.contains("cannot reach okod at http://127.0.0.1:9"))
    }

    @Test func reportsAMissingFile() throws {
        let (status, output) = try run(["load-filter-prog", "br0", "1", "/nonexistent/prog.o", "--server", "http://127.0.0.1:9"])
        #expect(status == 5)
        #expect(output.contains("cannot read '/nonexistent/prog.o'"))
    }
}
