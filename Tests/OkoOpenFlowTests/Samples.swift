import OkoOpenFlow

/// One sample of every message type the codec handles. `opaqueTail` marks messages whose last field
/// is free-form bytes (so a shorter message can still be valid).
struct Sample {
    var name: String
    var message: OpenFlowMessage
    var opaqueTail: Bool = false
    /// Text `ovs-ofctl ofp-print` must show for our encoding; nil for Oko extensions OVS does not know.
    var ovsText: String?
}

let mac1 = EthernetAddress([0x00, 0x11, 0x22, 0x33, 0x44, 0x55])
let ipv6a = IPv6Address([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1])

let richMatch = Match([
    .inPort(3), .ethDst(EthernetAddress([0x00, 0x11, 0x22, 0, 0, 0]), mask: EthernetAddress([0xff, 0xff, 0xff, 0, 0, 0])), .ethType(0x0800),
    .vlanVID(0x1000 | 10), .vlanPCP(3), .ipProto(6), .ipDSCP(8), .ipv4Src(0x0a00_0000, mask: 0xff00_0000),
    .ipv4Dst(0xc0a8_0101), .tcpDst(80), .metadata(0x1234, mask: 0xffff), .filterProg(7),
])

let richInstructions: [Instruction] = [
    .applyActions([.pushVLAN(ethertype: 0x8100), .setField(.vlanVID(0x1000 | 5)), .output(port: 2, maxLength: 0),
                   .decNWTTL, .setNWTTL(9), .copyTTLOut, .copyTTLIn, .popVLAN]),
    .writeActions([.setQueue(4), .group(9), .output(port: OpenFlowPort.controller, maxLength: 128),
                   .sendMaps(programID: 7, mapIDs: [1, 2, 3])]),
    .writeMetadata(0x10, mask: 0xff),
    .meter(5),
    .gotoTable(4),
]

let port1 = PortDescription(portNumber: 1, hardwareAddress: mac1, name: "dpdk0", config: 0, state: 4,
                            current: 0x2000, advertised: 0, supported: 0, peer: 0, currentSpeed: 10_000_000,
                            maxSpeed: 10_000_000)

func allSamples() -> [Sample] {
    let flowMod = FlowMod(cookie: 0x1234, cookieMask: 0, tableID: 1, command: .add, idleTimeout: 30, hardTimeout: 60,
                          priority: 100, flags: [.sendFlowRemoved, .checkOverlap], match: richMatch,
                          instructions: richInstructions)
    let tableFeatures = TableFeatures(tableID: 0, name: "classifier", maxEntries: 100_000, properties: [
        TableFeatureProperty(type: TableFeatureProperty.instructions, content: .instructions([1, 2, 3, 4, 5, 6])),
        TableFeatureProperty(type: TableFeatureProperty.nextTables, content: .nextTables([1, 2, 3])),
        TableFeatureProperty(type: TableFeatureProperty.applyActions, content: .actions([0, 17, 18, 22, 24, 25])),
        TableFeatureProperty(type: TableFeatureProperty.match, content: .oxmIDs([0x8000_0004, 0x8000_0a02])),
    ])
    let buckets = [Bucket(weight: 10, actions: [.output(port: 1, maxLength: 0)]),
                   Bucket(weight: 20, actions: [.output(port: 2, maxLength: 0)])]
    var samples: [Sample] = [
        Sample(name: "hello", message: OpenFlowMessage(xid: 1, body: .hello(Hello(versions: [1, 4]))),
               ovsText: "version bitmap: 0x01, 0x04"),
        Sample(name: "hello without bitmap", message: OpenFlowMessage(xid: 1, body: .hello(Hello(versions: nil))),
               ovsText: "OFPT_HELLO"),
        Sample(name: "error", message: OpenFlowMessage(xid: 2, body: .error(ErrorMessage(type: 1, code: 6, data: [4, 2, 0, 8, 0, 0, 0, 1]))),
               opaqueTail: true, ovsText: "OFPBRC_BAD_LEN"),
        Sample(name: "echo request", message: OpenFlowMessage(xid: 3, body: .echoRequest([1, 2, 3])), opaqueTail: true,
               ovsText: "OFPT_ECHO_REQUEST"),
        Sample(name: "echo reply", message: OpenFlowMessage(xid: 3, body: .echoReply([])), opaqueTail: true,
               ovsText: "OFPT_ECHO_REPLY"),
        Sample(name: "experimenter", message: OpenFlowMessage(xid: 4, body: .experimenter(ExperimenterMessage(
            experimenter: 0x00ab_cdef, expType: 9, data: [1, 2, 3, 4]))), opaqueTail: true),
        Sample(name: "features request", message: OpenFlowMessage(xid: 5, body: .featuresRequest), ovsText: "OFPT_FEATURES_REQUEST"),
        Sample(name: "features reply", message: OpenFlowMessage(xid: 5, body: .featuresReply(SwitchFeatures(
            datapathID: 0xabcd, bufferCount: 0, tableCount: 4, capabilities: 0x4f))), ovsText: "dpid:000000000000abcd"),
        Sample(name: "get config request", message: OpenFlowMessage(xid: 6, body: .getConfigRequest), ovsText: "OFPT_GET_CONFIG_REQUEST"),
        Sample(name: "get config reply", message: OpenFlowMessage(xid: 6, body: .getConfigReply(SwitchConfig(flags: 0, missSendLength: 128))),
               ovsText: "miss_send_len=128"),
        Sample(name: "set config", message: OpenFlowMessage(xid: 7, body: .setConfig(SwitchConfig(flags: 1, missSendLength: 0xffff))),
               ovsText: "frags=drop"),
        Sample(name: "packet in", message: OpenFlowMessage(xid: 0, body: .packetIn(PacketIn(
            totalLength: 20, reason: .action, tableID: 2, cookie: 0x99, match: Match([.inPort(1)]),
            data: [UInt8](repeating: 0xab, count: 20)))), opaqueTail: true, ovsText: "OFPT_PACKET_IN"),
        Sample(name: "flow removed", message: OpenFlowMessage(xid: 0, body: .flowRemoved(FlowRemoved(
            cookie: 1, priority: 10, reason: .idleTimeout, tableID: 0, durationSeconds: 5, durationNanoseconds: 6,
            idleTimeout: 30, hardTimeout: 0, packetCount: 100, byteCount: 6400, match: Match([.inPort(1), .ethType(0x0800)])))),
               ovsText: "reason=idle"),
        Sample(name: "port status", message: OpenFlowMessage(xid: 0, body: .portStatus(PortStatus(reason: .add, port: port1))),
               ovsText: "dpdk0"),
        Sample(name: "packet out", message: OpenFlowMessage(xid: 8, body: .packetOut(PacketOut(
            inPort: OpenFlowPort.controller, actions: [.output(port: 2, maxLength: 0)], data: [UInt8](repeating: 1, count: 60)))),
               opaqueTail: true, ovsText: "actions=output:2"),
        Sample(name: "flow mod", message: OpenFlowMessage(xid: 9, body: .flowMod(flowMod)), ovsText: nil),
        Sample(name: "flow mod delete", message: OpenFlowMessage(xid: 10, body: .flowMod(FlowMod(
            cookie: 0x10, cookieMask: 0xff, tableID: 0xff, command: .deleteStrict, priority: 3, outPort: 2,
            match: Match([.ethType(0x86dd), .ipv6Src(ipv6a, mask: nil), .ipProto(58), .icmpv6Type(135)])))),
               ovsText: "DEL_STRICT"),
        Sample(name: "group mod", message: OpenFlowMessage(xid: 11, body: .groupMod(GroupMod(
            command: .add, type: .select, groupID: 7, buckets: buckets))), ovsText: "group_id=7,type=select"),
        Sample(name: "port mod", message: OpenFlowMessage(xid: 14, body: .portMod(PortMod(
            portNumber: 1, hardwareAddress: mac1, config: 1, mask: 1))), ovsText: "port: 1: addr:00:11:22:33:44:55"),
        Sample(name: "barrier request", message: OpenFlowMessage(xid: 12, body: .barrierRequest), ovsText: "OFPT_BARRIER_REQUEST"),
        Sample(name: "barrier reply", message: OpenFlowMessage(xid: 12, body: .barrierReply), ovsText: "OFPT_BARRIER_REPLY"),
        Sample(name: "role request", message: OpenFlowMessage(xid: 13, body: .roleRequest(RoleMessage(role: .master, generationID: 5))),
               ovsText: "role=primary generation_id=5"),
        Sample(name: "role reply", message: OpenFlowMessage(xid: 13, body: .roleReply(RoleMessage(role: .slave, generationID: 5))),
               ovsText: "role=secondary generation_id=5"),
    ]
    let requests: [(MultipartRequest.Body, String?)] = [
        (.desc, "OFPST_DESC request"),
        (.flow(FlowStatsRequest(tableID: 0xff, match: Match([.ethType(0x0800), .ipProto(6), .tcpSrc(22)]))), "tcp,tp_src=22"),
        (.aggregate(FlowStatsRequest()), "OFPST_AGGREGATE request"),
        (.table, "OFPST_TABLE request"),
        (.portStats(OpenFlowPort.any), "port_no=ANY"),
        (.portDesc, "OFPST_PORT_DESC request"),
        (.tableFeatures([]), "OFPST_TABLE_FEATURES request"),
        (.tableFeatures([tableFeatures]), nil),
        (.groupDesc, "OFPST_GROUP_DESC request"),
        (.groupFeatures, "OFPST_GROUP_FEATURES request"),
        (.meterConfig(0xffff_ffff), "OFPST_METER_CONFIG request"),
        (.meterFeatures, "OFPST_METER_FEATURES request"),
    ]
    for (index, (body, text)) in requests.enumerated() {
        samples.append(Sample(name: "multipart request \(body.type) #\(index)",
                              message: OpenFlowMessage(xid: 100 + UInt32(index), body: .multipartRequest(MultipartRequest(body: body))),
                              ovsText: text))
    }
    let replies: [(MultipartReply.Body, String?)] = [
        (.desc(SwitchDescription(manufacturer: "Oko", hardware: "DPDK", software: "0.1", serialNumber: "1", datapath: "br0")),
         "Manufacturer: Oko"),
        (.flow([FlowStats(tableID: 1, durationSeconds: 3, priority: 100, cookie: 0x1234, packetCount: 7, byteCount: 700,
                          match: Match([.inPort(1), .ethType(0x0800), .ipProto(17), .udpDst(53)]),
                          instructions: [.applyActions([.output(port: 2, maxLength: 0)])])]), "n_packets=7"),
        (.aggregate(AggregateStats(packetCount: 10, byteCount: 1000, flowCount: 2)), "flow_count=2"),
        (.table([TableStats(tableID: 0, activeCount: 5, lookupCount: 100, matchedCount: 90)]), "active=5"),
        (.portStats([PortStats(portNumber: 1, counters: Array(1...12))]), "rx pkts=1"),
        (.portDesc([port1]), "dpdk0"),
        (.tableFeatures([tableFeatures]), nil),
        (.groupDesc([GroupDescription(type: .all, groupID: 3, buckets: buckets)]), "group_id=3,type=all"),
        (.groupFeatures(GroupFeatures(types: 0xf, capabilities: 0x5, maxGroups: [1, 2, 3, 4], actions: [1, 1, 1, 1])), "Group table"),
        (.meterConfig([MeterConfig(flags: 1, meterID: 3, bands: [MeterBand(type: 1, rate: 1000, burstSize: 0)])]), "meter=3"),
        (.meterFeatures(MeterFeatures(maxMeter: 100, bandTypes: 3, capabilities: 0xf, maxBands: 2, maxColor: 0)), "max_meter:100"),
    ]
    for (index, (body, text)) in replies.enumerated() {
        samples.append(Sample(name: "multipart reply \(body.type)",
                              message: OpenFlowMessage(xid: 200 + UInt32(index), body: .multipartReply(MultipartReply(body: body))),
                              ovsText: text))
    }
    // OpenFlow 1.0 (only what the 1.0 subset covers), in the field order its decoder produces.
    let flowMod10 = FlowMod(command: .add, idleTimeout: 10, priority: 7, flags: [.sendFlowRemoved],
                            match: Match([.inPort(1), .ethType(0x0800), .ipProto(17), .ipv4Dst(0x0a00_0000, mask: 0xff00_0000), .udpDst(53)]),
                            instructions: [.applyActions([.setField(.ipv4Src(0x0102_0304)), .popVLAN,
                                                          .output(port: OpenFlowPort.controller, maxLength: 128)])])
    let v10: [(String, MessageBody, String?)] = [
        ("features request", .featuresRequest, "OFPT_FEATURES_REQUEST"),
        ("get config request", .getConfigRequest, "OFPT_GET_CONFIG_REQUEST"),
        ("set config", .setConfig(SwitchConfig(flags: 0, missSendLength: 200)), "miss_send_len=200"),
        ("barrier request", .barrierRequest, "OFPT_BARRIER_REQUEST"),
        ("flow mod", .flowMod(flowMod10), "ADD priority=7,udp,in_port=1,nw_dst=10.0.0.0/8,tp_dst=53 idle:10 send_flow_rem actions=mod_nw_src:1.2.3.4,strip_vlan,CONTROLLER:128"),
        ("desc request", .multipartRequest(MultipartRequest(body: .desc)), "OFPST_DESC request"),
        ("table request", .multipartRequest(MultipartRequest(body: .table)), "OFPST_TABLE request"),
        ("flow stats request", .multipartRequest(MultipartRequest(body: .flow(FlowStatsRequest(match: Match([.ethType(0x0806), .arpOp(1)]))))), "arp,arp_op=1"),
        ("aggregate request", .multipartRequest(MultipartRequest(body: .aggregate(FlowStatsRequest(outPort: 2)))), "out_port=2"),
    ]
    for (index, (name, body, text)) in v10.enumerated() {
        samples.append(Sample(name: "OpenFlow 1.0 \(name)", message: OpenFlowMessage(version: 1, xid: 400 + UInt32(index), body: body),
                              ovsText: text))
    }
    let oko: [OkoMessage] = [
        .loadFilterProgram(programID: 7, elf: [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]),
        .updateMap(programID: 7, map: MapDump(mapID: 1, keySize: 4, valueSize: 8, entries: [
            MapEntry(key: [10, 0, 0, 1], value: [1, 0, 0, 0, 0, 0, 0, 0]),
            MapEntry(key: [10, 0, 0, 2], value: [2, 0, 0, 0, 0, 0, 0, 0]),
        ])),
        .dumpMapRequest(programID: 7, mapIDs: [1, 2]),
        .dumpMapReply(programID: 7, maps: [
            MapDump(mapID: 1, keySize: 4, valueSize: 8, entries: [MapEntry(key: [1, 2, 3, 4], value: [1, 2, 3, 4, 5, 6, 7, 8])]),
            MapDump(mapID: 2, keySize: 2, valueSize: 0, entries: []),
        ]),
    ]
    for (index, message) in oko.enumerated() {
        samples.append(Sample(name: "oko subtype \(message.subtype)",
                              message: OpenFlowMessage(xid: 300 + UInt32(index), body: .oko(message))))
    }
    return samples
}

/// Deterministic generator for fuzzing (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

func bytes(hex: String) -> [UInt8] {
    var result: [UInt8] = []
    var chars = Array(hex.filter { !$0.isWhitespace })
    if chars.count % 2 == 1 { chars.append("0") }
    for index in stride(from: 0, to: chars.count, by: 2) {
        result.append(UInt8(String(chars[index...index + 1]), radix: 16)!)
    }
    return result
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}
