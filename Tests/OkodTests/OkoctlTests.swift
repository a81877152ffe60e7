import Foundation
import Testing

/// okoctl as operators run it. (Commands against a running okod are tested with the REST API.)
struct OkoctlTests {
    private func run(_ arguments: [String]) throws -> (Int32, String) {
        try runToCompletion(TestEnvironment.executable("okoctl"), arguments)
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
