import Foundation
import Testing
@testable import OkoOpenFlow

@Suite struct CodecTests {
    @Test func everyMessageTypeRoundTrips() throws {
        for sample in allSamples() {
            let encoded = try sample.message.encode()
            #expect(Int(OpenFlowHeader(encoded)!.length) == encoded.count, "\(sample.name)")
            let decoded = try OpenFlowMessage.decode(encoded)
            #expect(decoded == sample.message, "\(sample.name) did not round-trip")
            #expect(try decoded.encode() == encoded, "\(sample.name) re-encodes differently")
        }
    }

    /// Our encodings are what Open vSwitch expects: `ovs-ofctl ofp-print` decodes them without complaint
    /// and shows the fields we set.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/ovs-ofctl")))
    func ovsOfctlPrintsOurEncodings() throws {
        var samples = allSamples().filter { $0.ovsText != nil }
        samples.append(Sample(name: "standard flow mod", message: OpenFlowMessage(xid: 9, body: .flowMod(FlowMod(
            cookie: 0x1234, tableID: 1, command: .add, priority: 100,
            match: Match([.ethType(0x0800), .ipProto(6), .ipv4Src(0x0a00_0000, mask: 0xff00_0000), .tcpDst(80)]),
            instructions: [.applyActions([.pushVLAN(ethertype: 0x8100), .setField(.vlanVID(0x1000 | 100)),
                                          .output(port: 3, maxLength: 0), .group(7)])]))),
            ovsText: "ADD table:1 priority=100,tcp,nw_src=10.0.0.0/8,tp_dst=80 cookie:0x1234 actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:3,group:7"))
        samples.append(Sample(name: "complete table features", message: OpenFlowMessage(xid: 9, body: .multipartReply(
            MultipartReply(body: .tableFeatures([completeTableFeatures(tableID: 0), completeTableFeatures(tableID: 3)])))),
            ovsText: "table 3 (\"table3\")"))
        // OpenFlow 1.0 replies (encode only: the switch never decodes these).
        let v10Replies: [(MessageBody, String)] = [
            (.featuresReply(SwitchFeatures(datapathID: 0xabc, tableCount: 4, capabilities: 7)), "dpid:0000000000000abc"),
            (.getConfigReply(SwitchConfig(flags: 0, missSendLength: 128)), "miss_send_len=128"),
            (.barrierReply, "OFPT_BARRIER_REPLY"),
            (.multipartReply(MultipartReply(body: .flow([FlowStats(tableID: 0, priority: 5, packetCount: 7, match: Match([.inPort(2)]),
                                                                   instructions: [.applyActions([.output(port: 1, maxLength: 0)])])]))),
             "n_packets=7, n_bytes=0, priority=5,in_port=2 actions=output:1"),
            (.multipartReply(MultipartReply(body: .table([TableStats(tableID: 0, activeCount: 3, lookupCount: 10, matchedCount: 9)]))),
             "active=3"),
            (.multipartReply(MultipartReply(body: .aggregate(AggregateStats(packetCount: 1, byteCount: 2, flowCount: 3)))), "flow_count=3"),
            (.error(ErrorMessage(OpenFlowError(.badMatch, BadMatchCode.badField, ""), offending: [], version: 1)), "OFPBRC_EPERM"),
        ]
        for (body, text) in v10Replies {
            samples.append(Sample(name: "OpenFlow 1.0 \(body.messageType)", message: OpenFlowMessage(version: 1, xid: 1, body: body), ovsText: text))
        }
        for sample in samples {
            let output = try ofpPrint(try sample.message.encode())
            #expect(!output.contains("***"), "ovs-ofctl rejected \(sample.name): \(output)")
            #expect(output.contains(sample.ovsText!), "\(sample.name): ovs-ofctl printed \(output)")
        }
    }

    @Test func decodesFlowModsProducedByOvsOfctl() throws {
        // Captured from `ovs-ofctl --no-names -O OpenFlow13 add-flow` against a fake switch.
        let first = try OpenFlowMessage.decode(bytes(hex: ovsAddFlowTCP))
        guard case .flowMod(let flowMod) = first.body else { Issue.record("not a flow mod"); return }
        #expect(flowMod.command == .add && flowMod.tableID == 1 && flowMod.priority == 100 && flowMod.cookie == 0x1234)
        #expect(flowMod.match == Match([.ethType(0x0800), .ipv4Src(0x0a00_0000, mask: 0xff00_0000), .ipProto(6), .tcpDst(80)]))
        #expect(flowMod.instructions == [.applyActions([.pushVLAN(ethertype: 0x8100), .setField(.vlanVID(0x1064)),
                                                        .output(port: 3, maxLength: 0), .group(7)])])

        let second = try OpenFlowMessage.decode(bytes(hex: ovsAddFlowIPv6))
        guard case .flowMod(let v6) = second.body else { Issue.record("not a flow mod"); return }
        #expect(v6.match.fields.contains(.ipv6Src(IPv6Address([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 12)),
                                                  mask: IPv6Address([0xff, 0xff, 0xff, 0xff] + [UInt8](repeating: 0, count: 12)))))
        #expect(v6.match.fields.contains(.icmpv6Type(135)))
        #expect(v6.instructions == [.writeActions([.setQueue(3), .decNWTTL]), .writeMetadata(1, mask: 0xff), .gotoTable(2)])

        let third = try OpenFlowMessage.decode(bytes(hex: ovsAddFlowUDP))
        guard case .flowMod(let udp) = third.body else { Issue.record("not a flow mod"); return }
        #expect(udp.idleTimeout == 30 && udp.hardTimeout == 60 && udp.flags == [.sendFlowRemoved])
        #expect(udp.match.fields.contains(.vlanVID(0x100a)) && udp.match.fields.contains(.vlanPCP(3)))
        #expect(udp.match.fields.contains(.ipDSCP(8)) && udp.match.fields.contains(.udpSrc(53)))
        #expect(udp.instructions == [.applyActions([.popVLAN, .setField(.ipv4Dst(0x0a01_0101)), .decNWTTL,
                                                    .output(port: OpenFlowPort.inPort, maxLength: 0)])])

        let delete = try OpenFlowMessage.decode(bytes(hex: ovsDelFlows))
        #expect(delete.body == .flowMod(FlowMod(cookie: 0x10, cookieMask: 0xff, tableID: 0xff, command: .delete,
                                                priority: 0x8000, outPort: 2)))
        let strict = try OpenFlowMessage.decode(bytes(hex: ovsDelStrict))
        guard case .flowMod(let strictMod) = strict.body else { Issue.record("not a flow mod"); return }
        #expect(strictMod.command == .deleteStrict && strictMod.match == Match([.ethType(0x0800), .ipProto(132), .sctpDst(99)]))
    }

    @Test func decodesOtherMessagesProducedByOvsOfctl() throws {
        let group = try OpenFlowMessage.decode(bytes(hex: ovsAddGroup))
        #expect(group.body == .groupMod(GroupMod(command: .add, type: .select, groupID: 7, buckets: [
            Bucket(weight: 10, actions: [.output(port: 1, maxLength: 0)]),
            Bucket(weight: 20, actions: [.output(port: 2, maxLength: 0)]),
        ])))
        let packetOut = try OpenFlowMessage.decode(bytes(hex: ovsPacketOut))
        guard case .packetOut(let out) = packetOut.body else { Issue.record("not a packet out"); return }
        #expect(out.inPort == 1 && out.actions == [.output(port: 2, maxLength: 0)] && out.data.count == 32)
        let expected: [(String, MultipartRequest.Body)] = [
            (ovsDumpFlows, .flow(FlowStatsRequest(match: Match([.ethType(0x0800), .ipProto(6), .tcpSrc(22)])))),
            (ovsDumpAggregate, .aggregate(FlowStatsRequest())),
            (ovsDumpPorts, .portStats(OpenFlowPort.any)),
            (ovsDumpMeters, .meterConfig(0xffff_ffff)),
            ("0412001000000002000b000000000000", .meterFeatures),
            ("04120010000000020008000000000000", .groupFeatures),
            ("04120010000000020000000000000000", .desc),
            ("04120010000000020003000000000000", .table),
            ("04120010000000020007000000000000", .groupDesc),
            ("0412001000000002000d000000000000", .portDesc),
            ("0412001000000002000c000000000000", .tableFeatures([])),
        ]
        for (wire, body) in expected {
            #expect(try OpenFlowMessage.decode(bytes(hex: wire)).body == .multipartRequest(MultipartRequest(body: body)), "\(wire)")
        }
        #expect(try OpenFlowMessage.decode(bytes(hex: "04000010000000010001000800000010")).body == .hello(Hello(versions: [4])))
    }

    @Test func truncationAtEveryByteIsAnErrorNeverACrash() throws {
        for sample in allSamples() {
            let full = try sample.message.encode()
            for cut in 0..<full.count {
                // As received: the header still claims the full length.
                let prefix = Array(full[0..<cut])
                #expect(throws: OpenFlowError.self) { try OpenFlowMessage.decode(prefix) }
                guard cut >= 8 else { continue }
                // As if the sender had built a shorter message: header length matches the bytes.
                var shortened = prefix
                shortened[2] = UInt8(cut >> 8)
                shortened[3] = UInt8(cut & 0xff)
                let result = Result { () throws(OpenFlowError) in try OpenFlowMessage.decode(shortened) }
                if case .success(let decoded) = result {
                    // A shorter message can be valid (fewer list elements, shorter data), but then it must be
                    // exactly what its bytes say, not a misparse, and not the original.
                    #expect(try decoded.encode() == shortened, "\(sample.name) cut to \(cut) bytes decoded as \(decoded)")
                    #expect(decoded != sample.message, "\(sample.name) cut to \(cut) decoded as the original")
                }
            }
        }
    }

    @Test func hugeLengthsAreRejectedWithBadLen() throws {
        // A header claiming 65535 bytes on an 8-byte message.
        let error = #expect(throws: OpenFlowError.self) { try OpenFlowMessage.decode(bytes(hex: "0405ffff00000001")) }
        #expect(error?.matches(.badRequest, BadRequestCode.badLen) == true)
        // A match length far beyond the message.
        var flowMod = try OpenFlowMessage(xid: 1, body: .flowMod(FlowMod(command: .add, match: Match([.inPort(1)])))).encode()
        flowMod[50] = 0xff; flowMod[51] = 0xf0
        let matchError = #expect(throws: OpenFlowError.self) { try OpenFlowMessage.decode(flowMod) }
        #expect(matchError?.matches(.badMatch, BadMatchCode.badLen) == true)
        // An action length that is not a multiple of 8.
        var packetOut = try OpenFlowMessage(xid: 1, body: .packetOut(PacketOut(inPort: 1, actions: [.output(port: 2)], data: []))).encode()
        packetOut[27] = 12
        let actionError = #expect(throws: OpenFlowError.self) { try OpenFlowMessage.decode(packetOut) }
        #expect(actionError?.matches(.badAction, BadActionCode.badLen) == true)
    }

    @Test func seededMutationFuzzingNeverCrashesAndDecodedValuesAreStable() throws {
        var random = SeededGenerator(state: 0x0ec0_5eed)
        let encoded = try allSamples().map { try $0.message.encode() }
        var decodedCount = 0
        for _ in 0..<30_000 {
            var message = encoded[Int.random(in: 0..<encoded.count, using: &random)]
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let position = Int.random(in: 0..<message.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: message[position] = UInt8.random(in: 0...255, using: &random)
                case 1: message[position] ^= 1 << UInt8.random(in: 0...7, using: &random)
                case 2: message[position] = [0, 0xff, 1, 8][Int.random(in: 0..<4, using: &random)]
                default: if message.count > 8 { message.remove(at: max(8, position)) }
                }
            }
            if Bool.random(using: &random) {  // keep the header length consistent half of the time
                message[2] = UInt8(message.count >> 8)
                message[3] = UInt8(message.count & 0xff)
            }
            if let decoded = try? OpenFlowMessage.decode(message) {
                decodedCount += 1
                let again = try OpenFlowMessage.decode(try decoded.encode())
                #expect(again == decoded)
            }
        }
        #expect(decodedCount > 100, "fuzzing should also produce some valid messages")
    }

    @Test func oversizedMessagesFailToEncodeInsteadOfTrapping() {
        let huge = OpenFlowMessage(xid: 1, body: .flowMod(FlowMod(command: .add, instructions: [
            .applyActions([.sendMaps(programID: 1, mapIDs: [UInt16](repeating: 1, count: 40_000))]),
        ])))
        #expect(throws: OpenFlowError(.badRequest, BadRequestCode.badLen, "")) { try huge.encode() }
        let bigPacket = OpenFlowMessage(xid: 1, body: .packetOut(PacketOut(inPort: 1, actions: [], data: [UInt8](repeating: 0, count: 70_000))))
        #expect(throws: OpenFlowError(.badRequest, BadRequestCode.badLen, "")) { try bigPacket.encode() }
    }

    @Test func matchValidationReportsPrerequisitesDuplicatesAndMasks() throws {
        #expect(throws: OpenFlowError(.badMatch, BadMatchCode.badPrereq, "")) { try Match([.tcpDst(80)]).validate() }
        #expect(throws: OpenFlowError(.badMatch, BadMatchCode.badPrereq, "")) {
            try Match([.ethType(0x86dd), .ipProto(6), .ipv4Src(1)]).validate()
        }
        #expect(throws: OpenFlowError(.badMatch, BadMatchCode.dupField, "")) { try Match([.inPort(1), .inPort(2)]).validate() }
        try Match([.ethType(0x0806), .arpOp(1), .arpTHA(mac1, mask: nil)]).validate()
        try Match([.ethType(0x86dd), .ipProto(58), .icmpv6Code(0), .ipv6FLabel(5, mask: 0xf)]).validate()
        // ipv4_src 10.0.0.1 with mask 255.0.0.0: value bits outside the mask.
        var reader = WireReader(bytes(hex: "00010010" + "80001708" + "0a000001" + "ff000000"),
                                truncationError: .badRequestLength("test"))
        #expect(throws: OpenFlowError(.badMatch, BadMatchCode.badWildcards, "")) { try Match.decode(from: &reader) }
        // A mask on a field that cannot be masked (in_port).
        var masked = WireReader(bytes(hex: "00010010" + "80000108" + "00000001" + "ffffffff"),
                                truncationError: .badRequestLength("test"))
        #expect(throws: OpenFlowError(.badMatch, BadMatchCode.badMask, "")) { try Match.decode(from: &masked) }
    }

    @Test func filterProgAndSendMapsHaveTheDocumentedLayout() throws {
        var writer = WireWriter()
        MatchField.filterProg(0x0102_0304).encodeOXM(into: &writer)
        #expect(hex(writer.bytes) == "ffff5008" + "00002320" + "01020304")
        var action = WireWriter()
        Action.sendMaps(programID: 7, mapIDs: [1, 2, 3]).encode(into: &action)
        #expect(hex(action.bytes) == "ffff0018" + "00002320" + "00c8" + "0007" + "0003" + "000100020003" + "00000000")
    }

    @Test func okoMessagesUseNetworkByteOrder() throws {
        let dump = try OpenFlowMessage(xid: 1, body: .oko(.dumpMapRequest(programID: 0x0102, mapIDs: [0x0304, 0x0506]))).encode()
        #expect(hex(dump) == "04040018" + "00000001" + "00002320" + "00000021" + "0102" + "0002" + "0304" + "0506")
        let load = try OpenFlowMessage(xid: 1, body: .oko(.loadFilterProgram(programID: 9, elf: [0x7f, 0x45]))).encode()
        #expect(hex(load) == "0404001a" + "00000001" + "00002320" + "0000001f" + "0009" + "0000" + "00000002" + "7f45")
    }

    @Test func hugeCountsInOkoMessagesAreRejectedWithoutAllocating() throws {
        // UPDATE_MAP claiming 2^32-1 entries of 2^32-1 + 2^32-1 bytes: must fail on the length check.
        let update = bytes(hex: "04040028" + "00000001" + "00002320" + "00000020" + "0001" + "0002" + "ffffffff" + "ffffffff" + "ffffffff")
        var fixed = update
        fixed[3] = UInt8(update.count)
        #expect(throws: OpenFlowError(.badRequest, BadRequestCode.badLen, "")) { try OpenFlowMessage.decode(fixed) }
        // DUMP_MAP_REPLY claiming 65535 maps in 4 bytes.
        let reply = bytes(hex: "04040014" + "00000001" + "00002320" + "00000022" + "0001" + "ffff")
        #expect(throws: OpenFlowError(.badRequest, BadRequestCode.badLen, "")) { try OpenFlowMessage.decode(reply) }
        // DUMP_MAP_REQUEST whose count disagrees with the ids present.
        let request = bytes(hex: "04040016" + "00000001" + "00002320" + "00000021" + "0001" + "0002" + "0001")
        #expect(throws: OpenFlowError(.badRequest, BadRequestCode.badLen, "")) { try OpenFlowMessage.decode(request) }
        // LOAD_FILTER_PROG whose file length exceeds the bytes present.
        let load = bytes(hex: "0404001a" + "00000001" + "00002320" + "0000001f" + "0009" + "0000" + "00100000" + "7f45")
        #expect(throws: OpenFlowError(.badRequest, BadRequestCode.badLen, "")) { try OpenFlowMessage.decode(load) }
    }

    @Test func largeMultipartRepliesAreSplitUnder64KiBWithReplyMore() throws {
        let flows = (0..<2000).map { index in
            FlowStats(tableID: 0, priority: UInt16(index), match: Match([.inPort(UInt32(index)), .ethType(0x0800), .ipv4Dst(UInt32(index))]),
                      instructions: [.applyActions([.output(port: 1, maxLength: 0)])])
        }
        let fragments = try MultipartReply(body: .flow(flows)).fragments()
        #expect(fragments.count > 1)
        var collected: [FlowStats] = []
        for (index, fragment) in fragments.enumerated() {
            let wire = try OpenFlowMessage(xid: 5, body: .multipartReply(fragment)).encode()
            #expect(wire.count <= 65535)
            #expect((fragment.flags & MultipartReply.replyMore != 0) == (index < fragments.count - 1))
            guard case .multipartReply(let decoded) = try OpenFlowMessage.decode(wire).body, case .flow(let part) = decoded.body else {
                Issue.record("fragment \(index) is not a flow reply"); return
            }
            collected += part
        }
        #expect(collected == flows)
        // Map dumps are split the same way.
        let entries = (0..<10_000).map { MapEntry(key: withUnsafeBytes(of: UInt32($0).bigEndian, Array.init), value: [UInt8](repeating: 1, count: 8)) }
        let parts = OkoMessage.dumpMapReplies(programID: 1, maps: [MapDump(mapID: 1, keySize: 4, valueSize: 8, entries: entries)])
        #expect(parts.count > 1)
        var total = 0
        for part in parts {
            let wire = try OpenFlowMessage(xid: 1, body: .oko(part)).encode()
            #expect(wire.count <= 65535)
            if case .oko(.dumpMapReply(_, let maps)) = try OpenFlowMessage.decode(wire).body { total += maps.reduce(0) { $0 + $1.entries.count } }
        }
        #expect(total == entries.count)
    }
}

/// Runs `ovs-ofctl ofp-print HEX` and returns what it printed.
func ofpPrint(_ message: [UInt8]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/ovs-ofctl")
    process.arguments = ["ofp-print", hex(message)]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

// Bytes captured from ovs-ofctl 3.1.0 (`--no-names -O OpenFlow13`) talking to a fake switch.
let ovsAddFlowTCP = "040e009000000002000000000000123400000000000000000100000000000064ffffffffffffffffffffffff000000000001002180000a020800800017080a000000ff000000800014010680001c02005000000000000000000400380000000000110008810000000019001080000c021064000000000000000000100000000300000000000000000016000800000007"
let ovsAddFlowIPv6 = "040e00a000000002000000000000000000000000000000000000000000000005ffffffffffffffffffffffff000000000001003880000a0286dd8000352020010db8000000000000000000000000ffffffff000000000000000000000000800014013a80003a01870003001800000000001500080000000300180008000000000002001800000000000000000000000100000000000000ff0001000802000000"
let ovsAddFlowUDP = "040e00a800000002000000000000000000000000000000000000001e003c0009ffffffffffffffffffffffff0001000000010039800000040000000280000a02080080000c02100a80000e010380001908c0a80100ffffff008000100108800014011180001e020035000000000000000004003800000000001200080000000000190010800018040a01010100000000001800080000000000000010fffffff80000000000000000"
let ovsDelFlows = "040e003800000002000000000000001000000000000000ffff03000000008000ffffffff00000002ffffffff000000000001000400000000"
let ovsDelStrict = "040e00480000000200000000000000000000000000000000ff04000000000003ffffffffffffffffffffffff000000000001001580000a0208008000140184800024020063000000"
let ovsAddGroup = "040f00500000000200000100000000070020000affffffffffffffff000000000000001000000001000000000000000000200014ffffffffffffffff0000000000000010000000020000000000000000"
let ovsPacketOut = "040d004800000002ffffffff00000001001000000000000000000010000000020000000000000000ffffffffffff0011223344550806000108000604000100112233445500000000"
let ovsDumpFlows = "04120048000000020001000000000000ff000000ffffffffffffffff00000000000000000000000000000000000000000001001580000a020800800014010680001a020016000000"
let ovsDumpAggregate = "04120038000000020002000000000000ff000000ffffffffffffffff00000000000000000000000000000000000000000001000400000000"
let ovsDumpPorts = "04120018000000020004000000000000ffffffff00000000"
let ovsDumpMeters = "0412001800000002000a000000000000ffffffff00000000"
