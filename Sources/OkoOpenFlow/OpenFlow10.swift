// OpenFlow 1.0 (wire version 0x01) subset, translated to and from the same typed model as 1.3, so the
// session and the switch see one representation. It exists because `ovs-ofctl` without `-O` offers
// only 1.0 for flows that 1.0 can express.
//
// Covered: HELLO, ERROR, ECHO, FEATURES_REQUEST/REPLY (no ports listed), GET_CONFIG/SET_CONFIG,
// FLOW_MOD, BARRIER, STATS (DESC, FLOW, AGGREGATE). Other 1.0 messages are OFPBRC_BAD_TYPE.
// 1.0 specifics handled here: the fixed 40-byte ofp_match with wildcard bits (converted to OXM
// fields, CIDR masks for nw_src/nw_dst), 16-bit port numbers (reserved ports 0xff00.. map to
// 0xffffff00..), actions without instructions (a 1.0 action list becomes one apply-actions
// instruction), and renumbered message types and error types.

enum OpenFlow10 {
    // Message types that differ from 1.3.
    static let statsRequest: UInt8 = 16
    static let statsReply: UInt8 = 17
    static let barrierRequest: UInt8 = 18
    static let barrierReply: UInt8 = 19

    static func port32(_ port: UInt16) -> UInt32 { port >= 0xff00 ? 0xffff_0000 | UInt32(port) : UInt32(port) }

    static func port16(_ port: UInt32) -> UInt16 {
        port >= 0xffff_ff00 ? UInt16(truncatingIfNeeded: port) : UInt16(clamping: port)
    }

    // MARK: decoding

    static func decode(_ bytes: [UInt8], header: OpenFlowHeader) throws(OpenFlowError) -> OpenFlowMessage {
        var reader = WireReader(bytes, truncationError: .badRequestLength("OpenFlow 1.0 message truncated"))
        try reader.skip(8)
        let body: MessageBody
        func empty() throws(OpenFlowError) {
            guard reader.isAtEnd else { throw .badRequestLength("message type \(header.type) must have no body") }
        }
        switch header.type {
        case 0: body = .hello(Hello(versions: nil)); _ = reader.readRest()
        case 1:
            let type = try reader.u16()
            let code = try reader.u16()
            body = .error(ErrorMessage(type: type, code: code, data: reader.readRest()))
        case 2: body = .echoRequest(reader.readRest())
        case 3: body = .echoReply(reader.readRest())
        case 5: try empty(); body = .featuresRequest
        case 7: try empty(); body = .getConfigRequest
        case 9:
            guard reader.remaining == 4 else { throw .badRequestLength("SET_CONFIG body must be 4 bytes") }
            body = .setConfig(SwitchConfig(flags: try reader.u16(), missSendLength: try reader.u16()))
        case 14: body = .flowMod(try decodeFlowMod(&reader))
        case barrierRequest: try empty(); body = .barrierRequest
        case statsRequest:
            let type = try reader.u16()
            let flags = try reader.u16()
            switch type {
            case 0: try empty(); body = .multipartRequest(MultipartRequest(flags: flags, body: .desc))
            case 3: try empty(); body = .multipartRequest(MultipartRequest(flags: flags, body: .table))
            case 1, 2:
                guard reader.remaining == 44 else { throw .badRequestLength("flow stats request body must be 44 bytes") }
                let match = try decodeMatch(&reader)
                let table = try reader.u8()
                try reader.skip(1)
                let outPort = port32(try reader.u16())
                let request = FlowStatsRequest(tableID: table, outPort: outPort, match: match)
                body = .multipartRequest(MultipartRequest(flags: flags, body: type == 1 ? .flow(request) : .aggregate(request)))
            default:
                throw OpenFlowError(.badRequest, BadRequestCode.badMultipart, "OpenFlow 1.0 stats type \(type) unsupported")
            }
        default:
            throw OpenFlowError(.badRequest, BadRequestCode.badType, "OpenFlow 1.0 message type \(header.type) unsupported")
        }
        guard reader.isAtEnd else { throw .badRequestLength("\(reader.remaining) trailing bytes") }
        return OpenFlowMessage(version: OpenFlowVersion.v1_0, xid: header.xid, body: body)
    }

    private static func decodeFlowMod(_ reader: inout WireReader) throws(OpenFlowError) -> FlowMod {
        let match = try decodeMatch(&reader)
        let cookie = try reader.u64()
        let commandRaw = try reader.u16()
        let idle = try reader.u16()
        let hard = try reader.u16()
        let priority = try reader.u16()
        let bufferID = try reader.u32()
        let outPort = port32(try reader.u16())
        let flags = try reader.u16()
        guard commandRaw <= 4, let command = FlowModCommand(rawValue: UInt8(commandRaw)) else {
            throw OpenFlowError(.flowModFailed, FlowModFailedCode.badCommand, "FLOW_MOD command \(commandRaw) unknown")
        }
        // 1.0 flags: SEND_FLOW_REM 1, CHECK_OVERLAP 2, EMERG 4 (unsupported).
        guard flags & ~3 == 0 else {
            throw OpenFlowError(.flowModFailed, FlowModFailedCode.badFlags, "FLOW_MOD flags 0x\(String(flags, radix: 16)) unsupported")
        }
        let actions = try decodeActions(&reader)
        let isDelete = command == .delete || command == .deleteStrict
        return FlowMod(cookie: cookie, tableID: isDelete ? 0xff : 0, command: command,
                       idleTimeout: idle, hardTimeout: hard, priority: priority, bufferID: bufferID, outPort: outPort,
                       flags: FlowModFlags(rawValue: flags), match: match,
                       instructions: actions.isEmpty ? [] : [.applyActions(actions)])
    }

    /// The 40-byte ofp_match as OXM fields, in prerequisite order.
    static func decodeMatch(_ reader: inout WireReader) throws(OpenFlowError) -> Match {
        let wildcards = try reader.u32()
        let inPort = try reader.u16()
        let dlSrc = try reader.read(6)
        let dlDst = try reader.read(6)
        let vlan = try reader.u16()
        let pcp = try reader.u8()
        try reader.skip(1)
        let dlType = try reader.u16()
        let tos = try reader.u8()
        let proto = try reader.u8()
        try reader.skip(2)
        let nwSrc = try reader.u32()
        let nwDst = try reader.u32()
        let tpSrc = try reader.u16()
        let tpDst = try reader.u16()
        func exact(_ bit: UInt32) -> Bool { wildcards & bit == 0 }
        func prefixMask(_ shift: UInt32) -> UInt32? {
            let wildBits = (wildcards >> shift) & 0x3f
            if wildBits >= 32 { return nil }
            return wildBits == 0 ? 0xffff_ffff : ~((1 << wildBits) - 1)
        }
        var fields: [MatchField] = []
        if exact(1 << 0) { fields.append(.inPort(port32(inPort))) }
        if exact(1 << 2) { fields.append(.ethSrc(EthernetAddress(dlSrc))) }
        if exact(1 << 3) { fields.append(.ethDst(EthernetAddress(dlDst))) }
        if exact(1 << 1) { fields.append(.vlanVID(vlan == 0xffff ? 0 : (vlan & 0xfff) | OXM.vlanPresent)) }
        if exact(1 << 20) && exact(1 << 1) && vlan != 0xffff { fields.append(.vlanPCP(pcp & 7)) }
        if exact(1 << 4) { fields.append(.ethType(dlType)) }
        let isIPv4 = exact(1 << 4) && dlType == 0x0800
        let isARP = exact(1 << 4) && dlType == 0x0806
        if isIPv4 || isARP {
            if isIPv4 && exact(1 << 21) { fields.append(.ipDSCP(tos >> 2)) }
            if exact(1 << 5) { fields.append(isIPv4 ? .ipProto(proto) : .arpOp(UInt16(proto))) }
            if let mask = prefixMask(8) {
                let value = nwSrc & mask
                fields.append(isIPv4 ? .ipv4Src(value, mask: mask == ~0 ? nil : mask) : .arpSPA(value, mask: mask == ~0 ? nil : mask))
            }
            if let mask = prefixMask(14) {
                let value = nwDst & mask
                fields.append(isIPv4 ? .ipv4Dst(value, mask: mask == ~0 ? nil : mask) : .arpTPA(value, mask: mask == ~0 ? nil : mask))
            }
            if isIPv4 && exact(1 << 5) {
                switch proto {
                case 6:
                    if exact(1 << 6) { fields.append(.tcpSrc(tpSrc)) }
                    if exact(1 << 7) { fields.append(.tcpDst(tpDst)) }
                case 17:
                    if exact(1 << 6) { fields.append(.udpSrc(tpSrc)) }
                    if exact(1 << 7) { fields.append(.udpDst(tpDst)) }
                case 1:
                    if exact(1 << 6) { fields.append(.icmpv4Type(UInt8(truncatingIfNeeded: tpSrc))) }
                    if exact(1 << 7) { fields.append(.icmpv4Code(UInt8(truncatingIfNeeded: tpDst))) }
                default: break
                }
            }
        }
        return Match(fields)
    }

    private static func decodeActions(_ reader: inout WireReader) throws(OpenFlowError) -> [Action] {
        var actions: [Action] = []
        while !reader.isAtEnd {
            guard let type = reader.peekU16(), let length16 = reader.peekU16(at: 2) else {
                throw OpenFlowError(.badAction, BadActionCode.badLen, "action header truncated")
            }
            let length = Int(length16)
            guard length >= 8, length % 8 == 0, length <= reader.remaining else {
                throw OpenFlowError(.badAction, BadActionCode.badLen, "action length \(length) invalid")
            }
            var body = try reader.sub(length, truncationError: OpenFlowError(.badAction, BadActionCode.badLen, "action truncated"))
            try body.skip(4)
            func expect(_ size: Int) throws(OpenFlowError) {
                guard length == size else { throw OpenFlowError(.badAction, BadActionCode.badLen, "action \(type) length \(length)") }
            }
            switch type {
            case 0: try expect(8); actions.append(.output(port: port32(try body.u16()), maxLength: try body.u16()))
            case 1: try expect(8); actions.append(.setField(.vlanVID((try body.u16() & 0xfff) | OXM.vlanPresent)))
            case 2: try expect(8); actions.append(.setField(.vlanPCP(try body.u8() & 7)))
            case 3: try expect(8); actions.append(.popVLAN)
            case 4, 5:
                try expect(16)
                let address = EthernetAddress(try body.read(6))
                actions.append(.setField(type == 4 ? .ethSrc(address) : .ethDst(address)))
            case 6, 7:
                try expect(8)
                let address = try body.u32()
                actions.append(.setField(type == 6 ? .ipv4Src(address) : .ipv4Dst(address)))
            case 8: try expect(8); actions.append(.setField(.ipDSCP(try body.u8() >> 2)))
            default:
                throw OpenFlowError(.badAction, BadActionCode.badType, "OpenFlow 1.0 action type \(type) unsupported")
            }
        }
        return actions
    }

    // MARK: encoding

    static func encode(_ message: OpenFlowMessage) throws(OpenFlowError) -> [UInt8] {
        var writer = WireWriter()
        writer.u8(OpenFlowVersion.v1_0)
        let type: UInt8
        switch message.body {
        case .hello: type = 0
        case .error: type = 1
        case .echoRequest: type = 2
        case .echoReply: type = 3
        case .featuresReply: type = 6
        case .getConfigReply: type = 8
        case .barrierReply: type = barrierReply
        case .multipartReply: type = statsReply
        case .flowMod: type = 14
        case .featuresRequest: type = 5
        case .getConfigRequest: type = 7
        case .setConfig: type = 9
        case .barrierRequest: type = barrierRequest
        case .multipartRequest: type = statsRequest
        default:
            throw OpenFlowError(.badRequest, BadRequestCode.badType, "\(message.body.messageType) has no OpenFlow 1.0 encoding here")
        }
        writer.u8(type)
        writer.u16(0)
        writer.u32(message.xid)
        switch message.body {
        case .hello, .barrierReply: break
        case .error(let error):
            writer.u16(error.type)
            writer.u16(error.code)
            writer.append(error.data)
        case .echoRequest(let data), .echoReply(let data): writer.append(data)
        case .featuresReply(let features):
            writer.u64(features.datapathID)
            writer.u32(features.bufferCount)
            writer.u8(features.tableCount)
            writer.zeros(3)
            writer.u32(features.capabilities & 0xef)
            writer.u32(0x0fff)  // actions: output, vlan, dl, nw, tos
        case .featuresRequest, .getConfigRequest, .barrierRequest: break
        case .multipartRequest(let request):
            writer.u16(request.body.type.rawValue)
            writer.u16(request.flags)
            switch request.body {
            case .desc, .table: break
            case .flow(let flow), .aggregate(let flow):
                try encodeMatch(flow.match, into: &writer)
                writer.u8(flow.tableID)
                writer.zeros(1)
                writer.u16(port16(flow.outPort))
            default:
                throw OpenFlowError(.badRequest, BadRequestCode.badMultipart, "\(request.body.type) has no OpenFlow 1.0 encoding here")
            }
        case .getConfigReply(let config), .setConfig(let config):
            writer.u16(config.flags)
            writer.u16(config.missSendLength)
        case .flowMod(let flowMod):
            try encodeMatch(flowMod.match, into: &writer)
            writer.u64(flowMod.cookie)
            writer.u16(UInt16(flowMod.command.rawValue))
            writer.u16(flowMod.idleTimeout)
            writer.u16(flowMod.hardTimeout)
            writer.u16(flowMod.priority)
            writer.u32(flowMod.bufferID)
            writer.u16(port16(flowMod.outPort))
            writer.u16(flowMod.flags.rawValue & 3)
            try encodeActions(flowMod.instructions, into: &writer)
        case .multipartReply(let reply):
            writer.u16(reply.body.type.rawValue)
            writer.u16(reply.flags)
            switch reply.body {
            case .desc(let desc):
                writer.fixedString(desc.manufacturer, size: 256)
                writer.fixedString(desc.hardware, size: 256)
                writer.fixedString(desc.software, size: 256)
                writer.fixedString(desc.serialNumber, size: 32)
                writer.fixedString(desc.datapath, size: 256)
            case .flow(let flows):
                for flow in flows {
                    let start = writer.count
                    writer.u16(0)
                    writer.u8(flow.tableID)
                    writer.zeros(1)
                    try encodeMatch(flow.match, into: &writer)
                    writer.u32(flow.durationSeconds)
                    writer.u32(flow.durationNanoseconds)
                    writer.u16(flow.priority)
                    writer.u16(flow.idleTimeout)
                    writer.u16(flow.hardTimeout)
                    writer.zeros(6)
                    writer.u64(flow.cookie)
                    writer.u64(flow.packetCount)
                    writer.u64(flow.byteCount)
                    try encodeActions(flow.instructions, into: &writer)
                    writer.patchU16(at: start, UInt16(truncatingIfNeeded: writer.count - start))
                }
            case .table(let tables):
                for table in tables {
                    writer.u8(table.tableID)
                    writer.zeros(3)
                    writer.fixedString("table\(table.tableID)", size: 32)
                    writer.u32(0x3f_ffff)  // every 1.0 field can be wildcarded
                    writer.u32(1_000_000)
                    writer.u32(table.activeCount)
                    writer.u64(table.lookupCount)
                    writer.u64(table.matchedCount)
                }
            case .aggregate(let stats):
                writer.u64(stats.packetCount)
                writer.u64(stats.byteCount)
                writer.u32(stats.flowCount)
                writer.zeros(4)
            default:
                throw OpenFlowError(.badRequest, BadRequestCode.badMultipart, "\(reply.body.type) has no OpenFlow 1.0 encoding here")
            }
        default: break
        }
        guard writer.count <= OpenFlowHeader.maxMessageLength else {
            throw .badRequestLength("encoded OpenFlow 1.0 message is \(writer.count) bytes")
        }
        writer.patchU16(at: 2, UInt16(writer.count))
        return writer.bytes
    }

    /// Maps a 1.3 error to the nearest 1.0 error (1.0 has no BAD_MATCH / BAD_INSTRUCTION types).
    static func errorFor10(_ type: UInt16, _ code: UInt16) -> (UInt16, UInt16) {
        switch ErrorType(rawValue: type) {
        case .helloFailed?, .badRequest?: return (type, code <= 9 ? code : BadRequestCode.eperm)
        case .badAction?: return (2, code <= 9 ? code : 4)
        case .flowModFailed?: return (3, code == FlowModFailedCode.tableFull ? 0 : 4)
        default: return (1, BadRequestCode.eperm)
        }
    }

    /// Writes a match as the 40-byte 1.0 structure; OXM fields 1.0 cannot express are BAD_MATCH/BAD_FIELD.
    static func encodeMatch(_ match: Match, into writer: inout WireWriter) throws(OpenFlowError) {
        var wildcards: UInt32 = (1 << 22) - 1
        var inPort: UInt16 = 0, vlan: UInt16 = 0, dlType: UInt16 = 0, tpSrc: UInt16 = 0, tpDst: UInt16 = 0
        var dlSrc = [UInt8](repeating: 0, count: 6), dlDst = dlSrc
        var pcp: UInt8 = 0, tos: UInt8 = 0, proto: UInt8 = 0
        var nwSrc: UInt32 = 0, nwDst: UInt32 = 0
        func prefixBits(_ mask: UInt32?) throws(OpenFlowError) -> UInt32 {
            guard let mask else { return 0 }
            let ones = mask.leadingZeroBitCount == 0 ? UInt32((~mask).leadingZeroBitCount) : 0
            guard mask == 0 || (ones > 0 && mask == ~0 << (32 - ones)) else {
                throw OpenFlowError(.badMatch, BadMatchCode.badNWAddrMask, "OpenFlow 1.0 needs CIDR masks")
            }
            return 32 - ones
        }
        for field in match.fields {
            switch field {
            case .inPort(let port): inPort = port16(port); wildcards &= ~1
            case .ethSrc(let address, nil): dlSrc = address.bytes; wildcards &= ~(1 << 2)
            case .ethDst(let address, nil): dlDst = address.bytes; wildcards &= ~(1 << 3)
            case .vlanVID(let vid, nil): vlan = vid & OXM.vlanPresent == 0 ? 0xffff : vid & 0xfff; wildcards &= ~(1 << 1)
            case .vlanPCP(let value): pcp = value; wildcards &= ~(1 << 20)
            case .ethType(let type): dlType = type; wildcards &= ~(1 << 4)
            case .ipDSCP(let dscp): tos = dscp << 2; wildcards &= ~(1 << 21)
            case .ipProto(let value): proto = value; wildcards &= ~(1 << 5)
            case .arpOp(let op): proto = UInt8(truncatingIfNeeded: op); wildcards &= ~(1 << 5)
            case .ipv4Src(let address, let mask), .arpSPA(let address, let mask):
                nwSrc = address; let bits = try prefixBits(mask); wildcards = wildcards & ~(0x3f << 8) | bits << 8
            case .ipv4Dst(let address, let mask), .arpTPA(let address, let mask):
                nwDst = address; let bits = try prefixBits(mask); wildcards = wildcards & ~(0x3f << 14) | bits << 14
            case .tcpSrc(let port), .udpSrc(let port): tpSrc = port; wildcards &= ~(1 << 6)
            case .tcpDst(let port), .udpDst(let port): tpDst = port; wildcards &= ~(1 << 7)
            case .icmpv4Type(let type): tpSrc = UInt16(type); wildcards &= ~(1 << 6)
            case .icmpv4Code(let code): tpDst = UInt16(code); wildcards &= ~(1 << 7)
            default:
                throw OpenFlowError(.badMatch, BadMatchCode.badField, "field \(field.fieldNumber) has no OpenFlow 1.0 form")
            }
        }
        writer.u32(wildcards)
        writer.u16(inPort)
        writer.append(dlSrc)
        writer.append(dlDst)
        writer.u16(vlan)
        writer.u8(pcp)
        writer.zeros(1)
        writer.u16(dlType)
        writer.u8(tos)
        writer.u8(proto)
        writer.zeros(2)
        writer.u32(nwSrc)
        writer.u32(nwDst)
        writer.u16(tpSrc)
        writer.u16(tpDst)
    }

    private static func encodeActions(_ instructions: [Instruction], into writer: inout WireWriter) throws(OpenFlowError) {
        for instruction in instructions {
            guard case .applyActions(let actions) = instruction else {
                throw OpenFlowError(.badInstruction, BadInstructionCode.unsupportedInstruction, "OpenFlow 1.0 has only action lists")
            }
            for action in actions {
                switch action {
                case .output(let port, let maxLength):
                    writer.u16(0); writer.u16(8); writer.u16(port16(port)); writer.u16(maxLength)
                case .popVLAN: writer.u16(3); writer.u16(8); writer.zeros(4)
                case .setField(.vlanVID(let vid, nil)): writer.u16(1); writer.u16(8); writer.u16(vid & 0xfff); writer.zeros(2)
                case .setField(.vlanPCP(let pcp)): writer.u16(2); writer.u16(8); writer.u8(pcp); writer.zeros(3)
                case .setField(.ethSrc(let address, nil)), .setField(.ethDst(let address, nil)):
                    if case .setField(.ethSrc) = action { writer.u16(4) } else { writer.u16(5) }
                    writer.u16(16); writer.append(address.bytes); writer.zeros(6)
                case .setField(.ipv4Src(let address, nil)): writer.u16(6); writer.u16(8); writer.u32(address)
                case .setField(.ipv4Dst(let address, nil)): writer.u16(7); writer.u16(8); writer.u32(address)
                case .setField(.ipDSCP(let dscp)): writer.u16(8); writer.u16(8); writer.u8(dscp << 2); writer.zeros(3)
                default:
                    throw OpenFlowError(.badAction, BadActionCode.badType, "\(action) has no OpenFlow 1.0 form")
                }
            }
        }
    }
}
