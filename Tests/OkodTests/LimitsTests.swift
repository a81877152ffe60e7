import Foundation
import Testing

/// okod's `limits:` section: going over any limit is refused with an error naming it, and changes nothing.
@Suite(.serialized)
struct LimitsTests {
    private func start(_ limits: String, in directory: URL, openflow: Bool = false) throws -> RunningOkod? {
        let tokenFile = directory.appendingPathComponent("tokens")
        let config = try writeTestConfig("""
            \(okodTestPreamble(tokenFile: tokenFile))
            limits: {\(limits)}
            bridges:
              - name: br0
                ports:
                  - devargs: "net_null0,no-rx=1"
                  - devargs: "net_null1,no-rx=1"
            """, in: directory)
        return try RunningOkod.start(config: config, tokenFile: tokenFile)
    }

    private func problem(_ result: HTTPResult) -> (type: String?, detail: String) {
        let object = (try? JSONSerialization.jsonObject(with: Data(result.body.utf8)) as? [String: Any]) ?? [:]
        return (object["type"] as? String, object["detail"] as? String ?? "")
    }

    @Test(.timeLimit(.minutes(3)))
    func rulesPerTableRequestBodyAndProgramsPerBridgeAreEnforcedOverRESTAndOpenFlow() throws {
        let directory = try TestEnvironment.temporaryDirectory("limits")
        defer { try? FileManager.default.removeItem(at: directory) }
        guard let okod = try start("max_rules_per_table: 3, max_request_body_bytes: 16384, max_programs_per_bridge: 1", in: directory) else { return }

        let two = try okod.request("POST", "/v1/bridges/br0/flows",
                                   body: Array("priority=1,ip,nw_dst=10.0.0.1,actions=drop\npriority=1,ip,nw_dst=10.0.0.2,actions=drop".utf8),
                                   contentType: "text/plain")
        #expect(two.status == 201)
        // A bulk of two would make four: refused whole, the table keeps its two rules.
        let bulk = try okod.request("POST", "/v1/bridges/br0/flows",
                                    body: Array("priority=1,ip,nw_dst=10.0.0.3,actions=drop\npriority=1,ip,nw_dst=10.0.0.4,actions=drop".utf8),
                                    contentType: "text/plain")
        #expect(bulk.status == 422)
        #expect(problem(bulk).detail.contains("limits.max_rules_per_table"), "\(bulk.body)")
        #expect(ruleDestinations(try okod.request("GET", "/v1/bridges/br0/flows", accept: "text/plain").body).count == 2)
        // Replacing an existing rule does not count against the limit.
        let replace = try okod.request("POST", "/v1/bridges/br0/flows", body: Array("priority=1,ip,nw_dst=10.0.0.1,actions=output:2".utf8),
                                       contentType: "text/plain")
        #expect(replace.status == 201)
        // OpenFlow: the third rule fits, the fourth is TABLE_FULL.
        if let port = okod.openflowPort {
            let client = try OpenFlowTestClient(port: port)
            try client.flowMod(command: 0, priority: 9, ipv4Destination: [10, 0, 0, 9], outPort: 2)
            #expect(try client.barrier())
            try client.flowMod(command: 0, priority: 9, ipv4Destination: [10, 0, 0, 10], outPort: 2)
            #expect(try client.barrier() == false, "a FLOW_MOD beyond max_rules_per_table must be refused")
        } else {
            Issue.record("no OpenFlow port in the log")
        }
        #expect(ruleDestinations(try okod.request("GET", "/v1/bridges/br0/flows", accept: "text/plain").body).count == 3)

        // Request body: 413 problem naming the limit; nothing added.
        let big = (0..<600).map { "priority=2,ip,nw_dst=10.1.\($0 / 256).\($0 % 256),actions=drop" }.joined(separator: "\n")
        let oversize = try okod.request("POST", "/v1/bridges/br0/flows", body: Array(big.utf8), contentType: "text/plain")
        #expect(oversize.status == 413)
        #expect(problem(oversize).detail.contains("limits.max_request_body_bytes"), "\(oversize.body)")
        #expect(ruleDestinations(try okod.request("GET", "/v1/bridges/br0/flows", accept: "text/plain").body).count == 3)

        // Programs per bridge.
        if let object = try compileExample("stateless-firewall", into: directory) {
            let bytes = [UInt8](try Data(contentsOf: object))
            #expect(try okod.request("PUT", "/v1/bridges/br0/programs/1", body: bytes, contentType: "application/octet-stream").status == 201)
            let second = try okod.request("PUT", "/v1/bridges/br0/programs/2", body: bytes, contentType: "application/octet-stream")
            #expect(second.status == 422)
            #expect(problem(second).detail.contains("limits.max_programs_per_bridge"), "\(second.body)")
            #expect(try okod.request("GET", "/v1/bridges/br0/programs/2").status == 404)
            // Replacing the loaded program is not a new program.
            #expect(try okod.request("PUT", "/v1/bridges/br0/programs/1", body: bytes, contentType: "application/octet-stream").status == 200)
        }
        #expect(okod.terminate())
    }

    @Test(.timeLimit(.minutes(3)), arguments: [
        ("max_elf_bytes: 512", 413, "limits.max_elf_bytes"),
        ("max_instructions: 4", 422, "limits.max_instructions"),
        ("max_map_memory_bytes: 10000", 422, "limits.max_map_memory_bytes"),
    ])
    func programLimitsRefuseALoadAndLeaveNothingLoaded(limit: String, status: Int, name: String) throws {
        let directory = try TestEnvironment.temporaryDirectory("plimits")
        defer { try? FileManager.default.removeItem(at: directory) }
        guard let object = try compileExample("stateless-firewall", into: directory) else {
            print("SKIPPED: clang is not installed")
            return
        }
        guard let okod = try start(limit, in: directory) else { return }
        let refused = try okod.request("PUT", "/v1/bridges/br0/programs/1", body: [UInt8](try Data(contentsOf: object)),
                                       contentType: "application/octet-stream")
        #expect(refused.status == status, "\(refused.body)")
        #expect(problem(refused).detail.contains(name), "\(refused.body)")
        let programs = try okod.json("/v1/bridges/br0/programs")
        #expect((programs["programs"] as? [Any])?.isEmpty == true)
        #expect(okod.terminate())
    }

    @Test func aLimitOutsideItsRangeIsAConfigurationError() throws {
        let directory = try TestEnvironment.temporaryDirectory("badlimit")
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = try writeTestConfig("limits: {max_rules_per_table: -1}\n", in: directory)
        let (status, output) = try runToCompletion(TestEnvironment.executable("okod"), ["--config", config.path, "--check-config"])
        #expect(status == 2)
        #expect(output.contains("limits.max_rules_per_table: '-1' is not an integer"), "\(output)")
        let unknown = try writeTestConfig("limits: {max_rulez: 1}\n", in: directory)
        let (status2, output2) = try runToCompletion(TestEnvironment.executable("okod"), ["--config", unknown.path, "--check-config"])
        #expect(status2 == 2)
        #expect(output2.contains("limits: unknown key 'max_rulez'"), "\(output2)")
    }
}
