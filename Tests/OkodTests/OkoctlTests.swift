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

/// Every okoctl verb against a running okod: tables by default, JSON with --json, exit codes.
@Suite(.serialized)
struct OkoctlEndToEndTests {
    @Test(.timeLimit(.minutes(3)))
    func everyVerbWorksAgainstARunningOkod() throws {
        let directory = try TestEnvironment.temporaryDirectory("okoctl")
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenFile = directory.appendingPathComponent("tokens")
        let config = try writeTestConfig("""
            \(okodTestPreamble(tokenFile: tokenFile))
            bridges:
              - name: br0
                ports:
                  - devargs: "net_null0,no-rx=1"
                  - devargs: "net_null1,no-rx=1"
            """, in: directory)
        guard let okod = try RunningOkod.start(config: config, tokenFile: tokenFile) else { return }
        // okoctl finds the token through the token file (here named by $OKO_TOKEN_FILE), never on the command line.
        let environment = ["OKO_SERVER": "http://127.0.0.1:\(okod.apiPort)", "OKO_TOKEN_FILE": tokenFile.path, "OKO_TOKEN": ""]
        func okoctl(_ arguments: String...) throws -> (Int32, String) {
            try runToCompletion(TestEnvironment.executable("okoctl"), arguments, environment: environment)
        }

        var (status, output) = try okoctl("add-br", "br1")
        #expect(status == 0 && output.contains("bridge br1 created"), "\(output)")
        (status, output) = try okoctl("show")
        #expect(status == 0 && output.contains("bridge br0") && output.contains("bridge br1") && output.contains("net_null0"), "\(output)")
        (status, output) = try okoctl("show", "--json")
        #expect(status == 0 && (try? JSONSerialization.jsonObject(with: Data(output.utf8))) != nil, "--json must print JSON: \(output)")
        // Given only okod's configuration file, okoctl finds the token file it names.
        let viaConfig = try runToCompletion(TestEnvironment.executable("okoctl"), ["del-br", "br1"], environment: [
            "OKO_SERVER": "http://127.0.0.1:\(okod.apiPort)", "OKO_TOKEN_FILE": "", "OKO_TOKEN": "", "OKO_CONFIG": config.path,
        ])
        #expect(viaConfig.0 == 0 && viaConfig.1.contains("bridge br1 deleted"), "\(viaConfig.1)")
        (status, output) = try okoctl("del-br", "br1")
        #expect(status == 1 && output.contains("refused (404)"), "a refusal exits 1: \(output)")

        (status, output) = try okoctl("add-port", "br0", "net_null7,no-rx=1", "--ofport", "7")
        #expect(status == 0 && output.contains("port 7 added to br0"), "\(output)")
        (status, output) = try okoctl("dump-ports", "br0")
        #expect(status == 0 && output.contains("RX_PKTS") && output.split(separator: "\n").contains { $0.hasPrefix("7 ") }, "\(output)")
        (status, output) = try okoctl("del-port", "br0", "7")
        #expect(status == 0 && output.contains("port 7 removed"), "\(output)")

        (status, output) = try okoctl("add-flow", "br0", "priority=10,in_port=1,actions=output:2")
        #expect(status == 0 && output.contains("flow added"), "\(output)")
        let file = directory.appendingPathComponent("flows.txt")
        try "priority=20,ip,nw_dst=10.0.0.1,actions=drop\n# comment\npriority=20,ip,nw_dst=10.0.0.2,actions=drop\npriority=20,ip,nw_dst=10.0.0.3,actions=drop\n"
            .write(to: file, atomically: true, encoding: .utf8)
        (status, output) = try okoctl("add-flows", "br0", file.path, "--batch", "2")
        #expect(status == 0 && output.contains("3 flows added"), "\(output)")
        (status, output) = try okoctl("dump-flows", "br0")
        #expect(status == 0 && output.split(separator: "\n").filter { $0.contains("n_packets=") }.count == 4, "\(output)")
        #expect(output.contains("priority=10,in_port=1 actions=output:2"), "\(output)")
        (status, output) = try okoctl("mod-flows", "br0", "in_port=1,actions=drop")
        #expect(status == 0 && output.contains("1 flows modified"), "\(output)")
        (status, output) = try okoctl("dump-flows", "br0", "in_port=1")
        #expect(status == 0 && output.contains("priority=10,in_port=1 actions=drop"), "\(output)")
        (status, output) = try okoctl("del-flows", "br0", "ip,nw_dst=10.0.0.2")
        #expect(status == 0 && output.contains("1 flows deleted"), "\(output)")
        (status, output) = try okoctl("dump-flows", "br0", "--json")
        let flows = (try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])?["flows"] as? [Any]
        #expect(flows?.count == 3, "\(output)")

        // trace: an IPv4/UDP frame to 10.0.0.1 entering port 2 hits the drop rule.
        let frame = "ffffffffffff02000000000108004500002e00010000401166bc0a0000020a00000104d20050001ae695" + String(repeating: "00", count: 18)
        (status, output) = try okoctl("trace", "br0", "2", frame)
        #expect(status == 0 && output.contains("table 0:") && output.contains("actions:"), "\(output)")

        if let object = try compileExample("stateless-firewall", into: directory) {
            (status, output) = try okoctl("load-filter-prog", "br0", "1", object.path)
            #expect(status == 0 && output.contains("program 1 loaded") && output.contains("blocked"), "\(output)")
            (status, output) = try okoctl("update-map", "br0", "1", "blocked", "0a000002", "0300000000000000")
            #expect(status == 0 && output.contains("entry updated"), "\(output)")
            (status, output) = try okoctl("dump-map", "br0", "1", "blocked")
            #expect(status == 0 && output.contains("KEY") && output.split(separator: "\n").count == 2, "\(output)")
            (status, output) = try okoctl("snapshot-maps", "br0", "1")
            #expect(status == 0 && output.contains("1 entries of 1 maps saved"), "\(output)")
        }
        (status, output) = try okoctl("load-filter-prog", "br0", "2", "/nonexistent.o")
        #expect(status == 5, "\(output)")
        (status, output) = try okoctl("add-flow", "br0", "priority=1,actions=output:99")
        #expect(status == 1 && output.contains("422"), "a rule okod refuses exits 1: \(output)")
        #expect(okod.terminate())
    }

    @Test func helpDocumentsTheExitCodes() throws {
        let (status, output) = try runToCompletion(TestEnvironment.executable("okoctl"), ["--help"])
        #expect(status == 0)
        for line in ["0 success", "1 refused by okod", "2 usage", "3 okod unreachable", "4 okod failed", "5 local failure"] {
            #expect(output.contains(line), "help should document exit code '\(line)'")
        }
    }
}
