import OkoAPI
import OkoDatapath
import OkoSyntax
import Testing

/// The rule as the datapath stores it (through a real bridge).
func storedEntry(_ match: FlowMatch, _ instructions: FlowInstructions = FlowInstructions()) throws -> FlowEntry {
    let bridge = Bridge(name: "t", buffers: InMemoryPacketBuffers())
    try bridge.addFlow(priority: 7, match: match, instructions: instructions)
    return try #require(bridge.flows().first)
}

@Suite struct FlowConversionTests {
    @Test func maskedFieldsReachTheDatapathMatchAndRenderBack() throws {
        let text = "priority=7,tcp,nw_src=10.1.0.0/16,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,tp_dst=0x50/0xfff0,metadata=0x5/0xf,actions=drop"
        let spec = try FlowSpec(ofctlText: text)
        let match = try FlowConversion.match(spec)
        var expected = FlowMatch()
        expected.set(.ethType, 0x0800)
        expected.set(.ipProto, 6)
        expected.set(.ipv4Src, 0x0A01_0000, mask: 0xFFFF_0000)
        expected.set(.ethDst, 0x0100_0000_0000, mask: 0x0100_0000_0000)
        expected.set(.tcpDst, 0x50, mask: 0xfff0)
        expected.set(.metadata, 5, mask: 0xf)
        #expect(match == expected)
        #expect(FlowConversion.spec(try storedEntry(match)).match == spec.match)
    }

    @Test func ipv6PrefixesSpanBothKeyWords() throws {
        let spec = try FlowSpec(ofctlText: "ipv6,ipv6_dst=2001:db8::/96,actions=drop")
        let match = try FlowConversion.match(spec)
        #expect(match.mask.value(.ipv6DstHigh) == .max)
        #expect(match.mask.value(.ipv6DstLow) == 0xFFFF_FFFF_0000_0000)
        #expect(match.key.value(.ipv6DstHigh) == 0x2001_0db8_0000_0000)
        #expect(FlowConversion.spec(try storedEntry(match)).matchValue("ipv6_dst") == "2001:db8::/96")
    }

    @Test func instructionsAndActionsConvert() throws {
        let spec = try FlowSpec(ofctlText:
            "table=1,ip,actions=push_vlan:0x8100,set_field:00:11:22:33:44:55->eth_src,dec_ttl,group:4,write_metadata:0x1/0xff,goto_table:3")
        let i = try FlowConversion.instructions(spec)
        #expect(i.applyActions == [.pushVLAN(0x8100), .setField(.ethSrc, 0x0011_2233_4455), .decTTL, .group(4)])
        #expect(i.writeMetadata?.value == 1 && i.writeMetadata?.mask == 0xff)
        #expect(i.gotoTable == 3)
    }

    @Test func unsupportedFeaturesAreNamed() throws {
        let flabel = try FlowSpec(ofctlText: "ipv6,ipv6_flabel=5,actions=drop")
        #expect(throws: FlowConversionError.self) { try FlowConversion.match(flabel) }
        do { _ = try FlowConversion.match(flabel) } catch { #expect("\(error)".contains("ipv6_flabel")) }
        var setMetadata = FlowSpec()
        setMetadata.instructions = [.applyActions([.setField(field: "metadata", value: "5")])]
        do {
            _ = try FlowConversion.instructions(setMetadata)
            Issue.record("set_field on metadata was accepted")
        } catch { #expect("\(error)".contains("metadata")) }
        var sendMaps = FlowSpec()
        sendMaps.instructions = [.applyActions([.sendMaps(maps: ["hits"], maxPerSecond: 10)])]
        do {
            _ = try FlowConversion.instructions(sendMaps)
            Issue.record("send_maps was accepted")
        } catch { #expect("\(error)".contains("send_maps")) }
    }
}

@Suite struct SwitchServiceTests {
    @Test func concurrentRuleChangesFromManyTasksAllLand() async throws {
        let service = SwitchService(portFactory: InMemoryPortFactory())
        try service.createBridge(name: "br0")
        _ = try service.addPort(bridge: "br0", devargs: "memory0", number: nil, portName: nil)
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<8 {
                group.addTask {
                    for i in 0..<50 {
                        let spec = try! FlowSpec(ofctlText: "priority=\(t * 100 + i),in_port=1,actions=drop")
                        _ = try! service.addFlows(bridge: "br0", [spec])
                        _ = try? service.flows(bridge: "br0")
                    }
                }
            }
        }
        let flows = try service.flows(bridge: "br0")
        #expect(flows.count == 400)
        #expect(Set(flows.map(\.id)).count == 400)
    }

    @Test func bulkAddRestoresARuleItWouldHaveReplaced() throws {
        let service = SwitchService(portFactory: InMemoryPortFactory())
        try service.createBridge(name: "br0")
        _ = try service.addPort(bridge: "br0", devargs: "memory0", number: nil, portName: nil)
        _ = try service.addPort(bridge: "br0", devargs: "memory1", number: nil, portName: nil)
        _ = try service.addFlows(bridge: "br0", [try FlowSpec(ofctlText: "priority=5,in_port=1,actions=output:2")])
        let batch = [try FlowSpec(ofctlText: "priority=5,in_port=1,actions=drop"), try FlowSpec(ofctlText: "in_port=2,actions=output:9")]
        #expect(throws: SwitchError.self) { try service.addFlows(bridge: "br0", batch) }
        let flows = try service.flows(bridge: "br0")
        #expect(flows.count == 1)
        #expect(flows.first?.spec.ofctlText.contains("actions=output:2") == true)
    }

    @Test func portFactoryRefusalIsUnprocessable() throws {
        let service = SwitchService(portFactory: InMemoryPortFactory())
        try service.createBridge(name: "br0")
        #expect(throws: SwitchError.self) { try service.addPort(bridge: "br0", devargs: "net_pcap0,iface=x", number: nil, portName: nil) }
        #expect(throws: SwitchError.notFound("bridge 'nope' does not exist")) { try service.ports(bridge: "nope") }
    }
}
