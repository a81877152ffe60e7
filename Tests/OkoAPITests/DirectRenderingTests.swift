// The flow list and the metrics scrape are written straight to bytes on the request path; these tests
// hold them to the generic renderers (JSONValue tree, MetricFamily values) byte for byte.
import OkoDatapath
import OkoHTTP
import OkoSyntax
import Testing

@testable import OkoAPI

@Suite struct DirectRenderingTests {
    static let rules = [
        "priority=10,in_port=1,actions=output:2",
        "table=1,priority=5,tcp,nw_src=10.1.0.0/16,tp_dst=0x50/0xfff0,actions=push_vlan:0x8100,dec_ttl,goto_table:3",
        "priority=3,cookie=0x1f,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=drop",
        "table=2,priority=1,ip,actions=write_metadata:0x1/0xff,goto_table:4",
    ]

    func makeAPI() throws -> (SwitchService, ManagementAPI) {
        let service = SwitchService(portFactory: InMemoryPortFactory())
        _ = try service.createBridge(name: "br0")
        _ = try service.createBridge(name: "br1.x")
        for bridge in ["br0", "br1.x"] {
            _ = try service.addPort(bridge: bridge, devargs: "memory:a", number: 1, portName: "p\"1")
            _ = try service.addPort(bridge: bridge, devargs: "memory:b", number: 2, portName: nil)
            _ = try service.addFlows(bridge: bridge, try Self.rules.map { try FlowSpec(ofctlText: $0) }, origin: "rest \"quoted\"")
        }
        let access = AccessControl(tokens: [], requireTokenForReads: false)
        return (service, ManagementAPI(service: service, access: access))
    }

    @Test func flowListBytesMatchTheJSONValueRendering() throws {
        let (service, _) = try makeAPI()
        var records = try service.flows(bridge: "br0")
        #expect(records.count == Self.rules.count)
        // Counters and times as the datapath may report them, including extremes.
        for (i, _) in records.enumerated() {
            records[i].entry.packets = i == 0 ? UInt64.max : UInt64(i * 1_000_003)
            records[i].entry.bytes = UInt64(i) << 40
            records[i].entry.durationSeconds = Double(i) * 1.25 + 0.001
            records[i].entry.idleSeconds = i == 1 ? 35_000_000_000 : Double(i) / 3
        }
        for next in [nil, "YWZ0ZXI6Mg"] as [String?] {
            var pairs: [(String, JSONValue)] = [("flows", .array(records.map(ManagementAPI.flowJSON)))]
            if let next { pairs.append(("next", .string(next))) }
            let expected = HTTPResponse.json(.object(pairs)).body
            let written = ManagementAPI.flowListBody(records[...], next: next)
            #expect(String(decoding: written, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
        }
        #expect(ManagementAPI.flowListBody([], next: nil) == Array("{\"flows\":[]}\n".utf8))
    }

    @Test func cachedRuleRenderingFollowsAModifiedRule() throws {
        let (service, _) = try makeAPI()
        let before = try #require(try service.flows(bridge: "br0").first { $0.entry.priority == 10 })
        _ = try service.modifyFlows(bridge: "br0", try FlowSpec(ofctlText: "priority=10,in_port=1,actions=output:1"), strict: true)
        let after = try #require(try service.flows(bridge: "br0").first { $0.entry.priority == 10 })
        #expect(after.id == before.id)
        let text = String(decoding: ManagementAPI.flowListBody([after], next: nil), as: UTF8.self)
        #expect(text.contains(#"actions=output:1","stats""#))
        #expect(text == String(decoding: HTTPResponse.json(.object([("flows", .array([ManagementAPI.flowJSON(after)]))])).body, as: UTF8.self))
    }

    @Test func metricsBytesMatchTheMetricFamilyRendering() throws {
        let (service, api) = try makeAPI()
        let pmd = PMDThread(bridges: [try service.bridge(named: "br0")])
        service.register(pmd: pmd)
        let direct = api.renderMetrics()
        let generic = PrometheusExposition.renderUTF8(api.metricFamilies())
        #expect(String(decoding: direct, as: UTF8.self) == String(decoding: generic, as: UTF8.self))
        let text = String(decoding: direct, as: UTF8.self)
        #expect(text.contains(#"oko_rule_packets_total{bridge="br1.x",table="1",rule="#))
        #expect(text.contains(#"port_name="p\"1"} 0"#))
        #expect(text.contains(#"oko_pmd_packets_total{pmd="0"} 0"#))
    }

    @Test func ruleCountersAgreeWithTheListedRules() throws {
        let (service, _) = try makeAPI()
        let counters = try service.ruleCounters(bridge: "br0")
        let listed = try service.flows(bridge: "br0")
        #expect(counters.map(\.id) == listed.map(\.id))
        #expect(counters.map(\.table) == listed.map(\.entry.table))
        _ = try service.deleteFlows(bridge: "br0", table: nil, filter: FlowSpec(), strict: false, priority: nil,
                                    cookie: nil, cookieMask: 0, outPort: nil)
        #expect(try service.ruleCounters(bridge: "br0").isEmpty)
    }

    @Test func familyHeadersFollowAChangedHelpText() {
        var first = MetricFamily(name: "oko_test_header_cache_total", help: "First text.", kind: .counter)
        first.add(UInt64(1))
        var second = MetricFamily(name: "oko_test_header_cache_total", help: "Second \\ text\nwrapped.", kind: .gauge)
        second.add(UInt64(2))
        #expect(PrometheusExposition.render([first]) == "# HELP oko_test_header_cache_total First text.\n# TYPE oko_test_header_cache_total counter\noko_test_header_cache_total 1\n")
        #expect(PrometheusExposition.render([second]) == "# HELP oko_test_header_cache_total Second \\\\ text\\nwrapped.\n# TYPE oko_test_header_cache_total gauge\noko_test_header_cache_total 2\n")
        #expect(PrometheusExposition.render([first]).hasPrefix("# HELP oko_test_header_cache_total First text.\n"))
    }
}
