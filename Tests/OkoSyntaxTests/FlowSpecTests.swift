import Foundation
import Testing
@testable import OkoSyntax

struct FlowSpecTextTests {
    @Test func parsesTheClassicOkoRule() throws {
        let flow = try FlowSpec(ofctlText: "priority=1,in_port=1,filter_prog=1,actions=output:2")
        #expect(flow.priority == 1)
        #expect(flow.match == [.init("in_port", "1"), .init("filter_prog", "1")])
        #expect(flow.instructions == [.applyActions([.output(port: "2", maxLength: nil)])])
        #expect(flow.ofctlText == "priority=1,in_port=1,filter_prog=1 actions=output:2")
    }

    @Test func expandsShorthandsAndAliasesToOXMNames() throws {
        let flow = try FlowSpec(ofctlText: "table=2 tcp,nw_dst=10.1.2.3/255.255.0.0,tp_dst=80,dl_src=02:00:00:00:00:AB actions=drop")
        #expect(flow.table == 2)
        #expect(flow.matchValue("eth_type") == "2048")
        #expect(flow.matchValue("ip_proto") == "6")
        #expect(flow.matchValue("ipv4_dst") == "10.1.0.0/16", "the address is masked and the mask shown as a prefix")
        #expect(flow.matchValue("tcp_dst") == "80")
        #expect(flow.matchValue("eth_src") == "02:00:00:00:00:ab")
        #expect(flow.instructions.isEmpty)
        #expect(flow.ofctlText == "table=2,priority=32768,tcp,dl_src=02:00:00:00:00:ab,nw_dst=10.1.0.0/16,tp_dst=80 actions=drop")
    }

    @Test func textRoundTripsThroughItsOwnRendering() throws {
        let rules = [
            "cookie=0x1f,table=1,idle_timeout=30,hard_timeout=60,send_flow_rem,priority=100,udp6,ipv6_dst=2001:db8::/32,udp_dst=53 actions=push_vlan:0x8100,set_field:5->vlan_vid,output:3",
            "priority=5,arp,arp_tpa=192.168.0.1 actions=FLOOD",
            "priority=7,ip,ip_dscp=46 actions=dec_ttl,write_metadata:0x5/0xff,goto_table:3",
            "priority=9,in_port=4 actions=write_actions(output:2),clear_actions",
            "priority=1,in_port=1,filter_prog=3 actions=send_maps(counters,max_per_second=10),CONTROLLER:128",
            "priority=0 actions=NORMAL",
        ]
        for rule in rules {
            let flow = try FlowSpec(ofctlText: rule)
            let again = try FlowSpec(ofctlText: flow.ofctlText)
            #expect(again == flow, "\(rule) -> \(flow.ofctlText)")
        }
    }

    @Test(arguments: [
        ("priority=1,ipv4_dts=1.2.3.4,actions=drop", "unknown match field 'ipv4_dts'"),
        ("priority=1,tcp_dst=80,actions=drop", "match field 'tcp_dst' requires ip_proto=6"),
        ("priority=1,ip,nw_dst=10.0.0.300,actions=drop", "ipv4_dst: '10.0.0.300' is not an IPv4 address"),
        ("priority=70000,actions=drop", "priority: '70000' is not an integer in 0...65535"),
        ("priority=1,in_port=1", "missing 'actions='"),
        ("priority=1,actions=output:2,drop", "'drop' cannot be combined"),
        ("priority=1,actions=explode", "unknown action 'explode'"),
        ("priority=1,in_port=1,in_port=2,actions=drop", "match field 'in_port' given twice"),
        ("priority=1,tp_dst=80,actions=drop", "tp_dst needs tcp, udp or sctp before it"),
        ("priority=1,actions=set_field:1->in_port", "set_field: 'in_port' is not a settable field"),
        ("priority=1,eth_type=0x800,ip_proto=6/3,actions=drop", "ip_proto cannot be masked"),
        // Found by fuzzing: a bracket in a map name broke the text round trip.
        ("priority=1,actions=send_maps(c[ounters,x)", "send_maps: 'c[ounters' is not a map name or index"),
        // Found by fuzzing: empty values used to index an empty split and trap.
        ("table=2, actions=write_metadata:", "write_metadata: '' is not an integer"),
        ("cookie=,actions=drop", "cookie: '' is not a 64-bit integer"),
    ])
    func refusesBadRulesNamingTheProblem(rule: String, expected: String) {
        #expect {
            _ = try FlowSpec(ofctlText: rule)
        } throws: { error in
            (error as? FlowSyntaxError)?.description.contains(expected) == true
        }
    }

    @Test func parsesFilesOfRulesAndNamesTheBadLine() throws {
        let flows = try FlowSpec.parseOfctlLines("# rules\npriority=1,in_port=1,actions=output:2\n\npriority=2,in_port=2,actions=output:1\n")
        #expect(flows.count == 2)
        #expect(throws: FlowSyntaxError("line 3: unknown action 'bogus'")) {
            _ = try FlowSpec.parseOfctlLines("priority=1,actions=drop\n# ok\npriority=2,actions=bogus\n")
        }
    }

    @Test func canonicalisesIPv6Addresses() throws {
        let flow = try FlowSpec(ofctlText: "ipv6,ipv6_src=2001:0DB8:0:0:0:0:0:1,ipv6_dst=fe80::1:2/64,actions=drop")
        #expect(flow.matchValue("ipv6_src") == "2001:db8::1")
        #expect(flow.matchValue("ipv6_dst") == "fe80::/64")
    }
}

struct FlowSpecJSONTests {
    @Test func jsonAndTextDescribeTheSameRule() throws {
        let json = try JSONValue.parse("""
            {"priority": 1, "match": {"in_port": 1, "eth_type": "0x0800", "ipv4_dst": "10.0.0.0/8", "filter_prog": 1},
             "actions": [{"type": "output", "port": 2}]}
            """)
        let fromJSON = try FlowSpec(json: json)
        let fromText = try FlowSpec(ofctlText: "priority=1,in_port=1,ip,nw_dst=10.0.0.0/8,filter_prog=1,actions=output:2")
        #expect(fromJSON == fromText)
        #expect(try FlowSpec(json: fromJSON.json) == fromJSON, "the JSON that comes back parses to the same rule")
        #expect(fromJSON.json["match"]?["ipv4_dst"] == .string("10.0.0.0/8"))
        #expect(fromJSON.json["actions"] == .array([.object([("type", .string("output")), ("port", .unsigned(2))])]))
    }

    @Test func instructionsRoundTrip() throws {
        let flow = try FlowSpec(ofctlText: "table=0,priority=3,in_port=2 actions=dec_ttl,write_metadata:0x10/0xf0,goto_table:1")
        #expect(try FlowSpec(json: flow.json) == flow)
    }

    @Test(arguments: [
        (#"{"priority": 1, "colour": "red"}"#, "flow: unknown key 'colour'"),
        (#"{"match": {"in_port": true}}"#, "match.in_port: expected a number or a string, not a boolean"),
        (#"{"match": {"udp_dst": 53}}"#, "match: match field 'udp_dst' requires ip_proto=17"),
        (#"{"actions": [{"type": "output"}]}"#, "actions[0].port: missing"),
        (#"{"actions": [{"type": "teleport"}]}"#, "actions[0].type: unknown action 'teleport'"),
        (#"{"priority": -1}"#, "priority: expected an integer in 0...65535"),
        (#"{"actions": [], "instructions": []}"#, "give either 'actions' or 'instructions'"),
    ])
    func refusesBadJSONRulesNamingThePath(body: String, expected: String) throws {
        let json = try JSONValue.parse(body)
        #expect {
            _ = try FlowSpec(json: json)
        } throws: { error in
            (error as? FlowSyntaxError)?.description.contains(expected) == true
        }
    }
}

struct JSONValueTests {
    @Test func keepsSixtyFourBitIntegersExact() throws {
        let value = try JSONValue.parse(#"{"a": 18446744073709551615, "b": -9223372036854775808, "c": 1.5}"#)
        #expect(value["a"] == .unsigned(.max))
        #expect(value["b"] == .integer(.min))
        #expect(value["c"] == .double(1.5))
        #expect(try JSONValue.parse(value.text) == value)
    }

    @Test func escapesAndUnescapesStrings() throws {
        let value = JSONValue.string("quote \" backslash \\ newline \n tab \t control \u{01} snow ☃ emoji 😀")
        #expect(try JSONValue.parse(value.text) == value)
        #expect(try JSONValue.parse(#""\ud83d\ude00""#) == .string("😀"))
    }

    @Test(arguments: [
        ("{\"a\": 1,}", "line 1, column 9: expected a string key"),
        ("{\"a\" 1}", "expected ':'"),
        ("[1, 2", "unterminated array"),
        ("{\"a\": 1, \"a\": 2}", "duplicate key 'a'"),
        ("\n  nope", "line 2, column 3: unknown literal"),
        ("01", "leading zero"),
        ("\"\\ud800\"", "unpaired surrogate"),
        ("[1] 2", "unexpected data after the JSON document"),
        ("[3.5e604]", "number out of range"),
        (String(repeating: "[", count: 100), "nesting deeper than 64 levels"),
    ])
    func reportsWhereAndWhyJSONIsInvalid(text: String, expected: String) {
        #expect {
            _ = try JSONValue.parse(text)
        } throws: { error in
            (error as? JSONError)?.description.contains(expected) == true
        }
    }
}

/// The text we render must be what the real ovs-ofctl understands (Oko's own extensions aside).
struct FlowSpecOvsOfctlTests {
    @Test func ovsOfctlParsesOurRenderingToTheSameRule() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/ovs-ofctl") else {
            Issue.record("ovs-ofctl is not installed (apt-get install openvswitch-common)")
            return
        }
        let rules = [
            "priority=10,in_port=1,tcp,nw_src=10.0.0.0/8,tp_dst=443 actions=output:2",
            "priority=5,dl_vlan=5,udp6,ipv6_dst=2001:db8::/32,udp_dst=53 actions=pop_vlan,output:3",
            "priority=7,ip,ip_dscp=46,nw_ttl=9 actions=dec_ttl,goto_table:3",
            "cookie=0x99,table=4,priority=2,arp,arp_tpa=192.168.0.1,dl_dst=ff:ff:ff:ff:ff:ff actions=FLOOD",
            "priority=3,icmp,icmp_type=8 actions=CONTROLLER:128",
            "priority=1,dl_type=0x88cc actions=drop",
        ]
        for rule in rules {
            let ours = try FlowSpec(ofctlText: rule).ofctlText
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/ovs-ofctl")
            process.arguments = ["-O", "OpenFlow13", "parse-flow", ours]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            process.waitUntilExit()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus == 0, "ovs-ofctl refused '\(ours)': \(output)")
            // ovs-ofctl prints the rule it decoded from its own encoding; parse that back and compare.
            guard let line = output.split(separator: "\n").first(where: { $0.contains("OFPT_FLOW_MOD") }),
                let add = line.range(of: "ADD ")
            else {
                Issue.record("unexpected ovs-ofctl output: \(output)")
                continue
            }
            let decoded = try FlowSpec(ofctlText: String(line[add.upperBound...]).replacingOccurrences(of: #"(^| )(table|cookie):"#, with: "$1$2=", options: .regularExpression))
            var expected = try FlowSpec(ofctlText: rule)
            expected.cookie = decoded.cookie  // ovs-ofctl prints cookies only in dump-flows, not in parse-flow
            #expect(decoded.match == expected.match, "\(rule) -> ovs-ofctl: \(line)")
            #expect(decoded.instructions == expected.instructions, "\(rule) -> ovs-ofctl: \(line)")
            #expect(decoded.table == expected.table)
        }
    }
}

struct JSONNumberRoundTripTests {
    /// Found by fuzzing: an integral double was written as an integer and re-read as one.
    @Test func integralDoublesStayDoubles() throws {
        let value = try JSONValue.parse("[3.5e10, 1e20, -0.0, 2.5]")
        #expect(try JSONValue.parse(value.text) == value)
    }
}
