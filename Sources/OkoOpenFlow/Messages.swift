// OpenFlow 1.3 messages: the typed model and the codec for one framed message.
//
// `OpenFlowMessage.decode` takes exactly one message (as cut by `OpenFlowFramer`): it checks that the
// header's length equals the bytes given, that the version is 1.3 (HELLO and ERROR are accepted in any
// version, because they are what negotiation itself uses), and that every body has exactly the size
// its fields and nested length fields say, with no trailing bytes.

/// The fixed 8-byte OpenFlow header.
public struct OpenFlowHeader: Equatable, Sendable {
    public static let size = 8
    public static let maxMessageLength = 65535

    public var version: UInt8
    public var type: UInt8
    public var length: UInt16
    public var xid: UInt32

    /// Parses the header at the front of `bytes`; nil if fewer than 8 bytes are present.
    public init?(_ bytes: some Collection<UInt8>) {
        guard bytes.count >= 8 else { return nil }
        let head = Array(bytes.prefix(8))
        version = head[0]
        type = head[1]
        length = UInt16(head[2]) << 8 | UInt16(head[3])
        xid = UInt32(head[4]) << 24 | UInt32(head[5]) << 16 | UInt32(head[6]) << 8 | UInt32(head[7])
    }
}

/// HELLO: the versions the sender supports (from the version-bitmap element), if it sent one.
public struct Hello: Hashable, Sendable {
    /// Versions listed in the OFPHET_VERSIONBITMAP element; nil when the hello carried no bitmap.
    public var versions: Set<UInt8>?

    public init(versions: Set<UInt8>?) { self.versions = versions }
}

/// ERROR: type and code, plus (at least 64 bytes of) the offending message.
public struct ErrorMessage: Hashable, Sendable {
    public var type: UInt16
    public var code: UInt16
    /// For OFPET_EXPERIMENTER errors: the experimenter id (the code field is then exp_code).
    public var experimenter: UInt32?
    public var data: [UInt8]

    public init(type: UInt16, code: UInt16, experimenter: UInt32? = nil, data: [UInt8]) {
        self.type = type
        self.code = code
        self.experimenter = experimenter
        self.data = data
    }

    /// The error reply to `error` raised by `offending`; echoes the first 64 bytes (OpenFlow's minimum).
    /// For OpenFlow 1.0 (`version` 0x01) the error is mapped to the nearest 1.0 type and code.
    public init(_ error: OpenFlowError, offending: [UInt8], version: UInt8 = OpenFlowVersion.v1_3) {
        if error.type == .experimenter {
            // Oko's own errors (OkoErrorCode): the reason text is the data.
            self.init(type: ErrorType.experimenter.rawValue, code: error.code, experimenter: niciraExperimenterID,
                      data: Array(error.reason.utf8.prefix(512)))
            return
        }
        let (type, code) = version == OpenFlowVersion.v1_0
            ? OpenFlow10.errorFor10(error.type.rawValue, error.code) : (error.type.rawValue, error.code)
        self.init(type: type, code: code, data: Array(offending.prefix(64)))
    }
}

/// A generic OFPT_EXPERIMENTER message that is not one of Oko's own.
public struct ExperimenterMessage: Hashable, Sendable {
    public var experimenter: UInt32
    public var expType: UInt32
    public var data: [UInt8]

    public init(experimenter: UInt32, expType: UInt32, data: [UInt8]) {
        self.experimenter = experimenter
        self.expType = expType
        self.data = data
    }
}

/// FEATURES_REPLY body.
public struct SwitchFeatures: Hashable, Sendable {
    public var datapathID: UInt64
    public var bufferCount: UInt32
    public var tableCount: UInt8
    public var auxiliaryID: UInt8
    /// OFPC_* bits: FLOW_STATS 1, TABLE_STATS 2, PORT_STATS 4, GROUP_STATS 8, IP_REASM 32,
    /// QUEUE_STATS 64, PORT_BLOCKED 256.
    public var capabilities: UInt32

    public init(datapathID: UInt64, bufferCount: UInt32 = 0, tableCount: UInt8, auxiliaryID: UInt8 = 0,
                capabilities: UInt32) {
        self.datapathID = datapathID
        self.bufferCount = bufferCount
        self.tableCount = tableCount
        self.auxiliaryID = auxiliaryID
        self.capabilities = capabilities
    }
}

/// GET_CONFIG_REPLY / SET_CONFIG body.
public struct SwitchConfig: Hashable, Sendable {
    /// OFPC_FRAG_* (NORMAL 0, DROP 1, REASM 2).
    public var flags: UInt16
    /// Bytes of a table-miss packet sent to the controller (0xffff: whole packet).
    public var missSendLength: UInt16

    public init(flags: UInt16 = 0, missSendLength: UInt16 = 128) {
        self.flags = flags
        self.missSendLength = missSendLength
    }
}

/// FLOW_MOD commands.
public enum FlowModCommand: UInt8, Sendable {
    case add = 0
    case modify = 1
    case modifyStrict = 2
    case delete = 3
    case deleteStrict = 4
}

/// FLOW_MOD flags (OFPFF_*).
public struct FlowModFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let sendFlowRemoved = FlowModFlags(rawValue: 1)
    public static let checkOverlap = FlowModFlags(rawValue: 2)
    public static let resetCounts = FlowModFlags(rawValue: 4)
    public static let noPacketCounts = FlowModFlags(rawValue: 8)
    public static let noByteCounts = FlowModFlags(rawValue: 16)
    static let all: FlowModFlags = [.sendFlowRemoved, .checkOverlap, .resetCounts, .noPacketCounts, .noByteCounts]
}

/// FLOW_MOD: add, modify or delete flow entries.
public struct FlowMod: Hashable, Sendable {
    public var cookie: UInt64
    public var cookieMask: UInt64
    /// Table id; 0xff (OFPTT_ALL) is allowed only for deletes.
    public var tableID: UInt8
    public var command: FlowModCommand
    public var idleTimeout: UInt16
    public var hardTimeout: UInt16
    public var priority: UInt16
    public var bufferID: UInt32
    /// For deletes: restrict to flows that output to this port (OFPP_ANY: no restriction).
    public var outPort: UInt32
    /// For deletes: restrict to flows that output to this group (OFPG_ANY: no restriction).
    public var outGroup: UInt32
    public var flags: FlowModFlags
    public var match: Match
    public var instructions: [Instruction]

    public init(cookie: UInt64 = 0, cookieMask: UInt64 = 0, tableID: UInt8 = 0, command: FlowModCommand,
                idleTimeout: UInt16 = 0, hardTimeout: UInt16 = 0, priority: UInt16 = 0x8000,
                bufferID: UInt32 = openFlowNoBuffer, outPort: UInt32 = OpenFlowPort.any,
                outGroup: UInt32 = OpenFlowGroup.any, flags: FlowModFlags = [], match: Match = .any,
                instructions: [Instruction] = []) {
        self.cookie = cookie
        self.cookieMask = cookieMask
        self.tableID = tableID
        self.command = command
        self.idleTimeout = idleTimeout
        self.hardTimeout = hardTimeout
        self.priority = priority
        self.bufferID = bufferID
        self.outPort = outPort
        self.outGroup = outGroup
        self.flags = flags
        self.match = match
        self.instructions = instructions
    }
}

/// FLOW_REMOVED reasons.
public enum FlowRemovedReason: UInt8, Sendable {
    case idleTimeout = 0
    case hardTimeout = 1
    case delete = 2
    case groupDelete = 3
}

/// FLOW_REMOVED: a flow entry with OFPFF_SEND_FLOW_REM went away.
public struct FlowRemoved: Hashable, Sendable {
    public var cookie: UInt64
    public var priority: UInt16
    public var reason: FlowRemovedReason
    public var tableID: UInt8
    public var durationSeconds: UInt32
    public var durationNanoseconds: UInt32
    public var idleTimeout: UInt16
    public var hardTimeout: UInt16
    public var packetCount: UInt64
    public var byteCount: UInt64
    public var match: Match

    public init(cookie: UInt64, priority: UInt16, reason: FlowRemovedReason, tableID: UInt8,
                durationSeconds: UInt32, durationNanoseconds: UInt32, idleTimeout: UInt16, hardTimeout: UInt16,
                packetCount: UInt64, byteCount: UInt64, match: Match) {
        self.cookie = cookie
        self.priority = priority
        self.reason = reason
        self.tableID = tableID
        self.durationSeconds = durationSeconds
        self.durationNanoseconds = durationNanoseconds
        self.idleTimeout = idleTimeout
        self.hardTimeout = hardTimeout
        self.packetCount = packetCount
        self.byteCount = byteCount
        self.match = match
    }
}

/// PACKET_IN reasons.
public enum PacketInReason: UInt8, Sendable {
    case noMatch = 0
    case action = 1
    case invalidTTL = 2
}

/// PACKET_IN: a packet (or its first bytes) sent to the controller.
public struct PacketIn: Hashable, Sendable {
    public var bufferID: UInt32
    /// Full length of the packet; `data` may be shorter (max_len / miss_send_len).
    public var totalLength: UInt16
    public var reason: PacketInReason
    public var tableID: UInt8
    public var cookie: UInt64
    public var match: Match
    public var data: [UInt8]

    public init(bufferID: UInt32 = openFlowNoBuffer, totalLength: UInt16, reason: PacketInReason, tableID: UInt8,
                cookie: UInt64, match: Match, data: [UInt8]) {
        self.bufferID = bufferID
        self.totalLength = totalLength
        self.reason = reason
        self.tableID = tableID
        self.cookie = cookie
        self.match = match
        self.data = data
    }
}

/// PACKET_OUT: run `actions` on a packet given in `data` (or buffered on the switch).
public struct PacketOut: Hashable, Sendable {
    public var bufferID: UInt32
    public var inPort: UInt32
    public var actions: [Action]
    public var data: [UInt8]

    public init(bufferID: UInt32 = openFlowNoBuffer, inPort: UInt32, actions: [Action], data: [UInt8]) {
        self.bufferID = bufferID
        self.inPort = inPort
        self.actions = actions
        self.data = data
    }
}

/// ofp_port: a port description (PORT_STATUS, PORT_DESC).
public struct PortDescription: Hashable, Sendable {
    public var portNumber: UInt32
    public var hardwareAddress: EthernetAddress
    public var name: String
    /// OFPPC_* bits (PORT_DOWN 1, NO_RECV 4, NO_FWD 32, NO_PACKET_IN 64).
    public var config: UInt32
    /// OFPPS_* bits (LINK_DOWN 1, BLOCKED 2, LIVE 4).
    public var state: UInt32
    public var current: UInt32
    public var advertised: UInt32
    public var supported: UInt32
    public var peer: UInt32
    /// kbit/s.
    public var currentSpeed: UInt32
    public var maxSpeed: UInt32

    public init(portNumber: UInt32, hardwareAddress: EthernetAddress, name: String, config: UInt32 = 0,
                state: UInt32 = 0, current: UInt32 = 0, advertised: UInt32 = 0, supported: UInt32 = 0,
                peer: UInt32 = 0, currentSpeed: UInt32 = 0, maxSpeed: UInt32 = 0) {
        self.portNumber = portNumber
        self.hardwareAddress = hardwareAddress
        self.name = name
        self.config = config
        self.state = state
        self.current = current
        self.advertised = advertised
        self.supported = supported
        self.peer = peer
        self.currentSpeed = currentSpeed
        self.maxSpeed = maxSpeed
    }

    static let size = 64

    func encode(into writer: inout WireWriter) {
        writer.u32(portNumber)
        writer.zeros(4)
        writer.append(hardwareAddress.bytes)
        writer.zeros(2)
        writer.fixedString(name, size: 16)
        for value in [config, state, current, advertised, supported, peer, currentSpeed, maxSpeed] {
            writer.u32(value)
        }
    }

    static func decode(from reader: inout WireReader) throws(OpenFlowError) -> PortDescription {
        let number = try reader.u32()
        try reader.skip(4)
        let address = EthernetAddress(try reader.read(6))
        try reader.skip(2)
        let name = try reader.fixedString(16)
        return PortDescription(portNumber: number, hardwareAddress: address, name: name, config: try reader.u32(),
                               state: try reader.u32(), current: try reader.u32(), advertised: try reader.u32(),
                               supported: try reader.u32(), peer: try reader.u32(),
                               currentSpeed: try reader.u32(), maxSpeed: try reader.u32())
    }
}

/// PORT_STATUS reasons.
public enum PortStatusReason: UInt8, Sendable {
    case add = 0
    case delete = 1
    case modify = 2
}

public struct PortStatus: Hashable, Sendable {
    public var reason: PortStatusReason
    public var port: PortDescription

    public init(reason: PortStatusReason, port: PortDescription) {
        self.reason = reason
        self.port = port
    }
}

/// Controller roles (OFPCR_ROLE_*).
public enum ControllerRole: UInt32, Sendable {
    case noChange = 0
    case equal = 1
    case master = 2
    case slave = 3
}

/// ROLE_REQUEST / ROLE_REPLY body.
public struct RoleMessage: Hashable, Sendable {
    public var role: ControllerRole
    public var generationID: UInt64

    public init(role: ControllerRole, generationID: UInt64) {
        self.role = role
        self.generationID = generationID
    }
}

/// GROUP_MOD commands and group types.
public enum GroupModCommand: UInt16, Sendable {
    case add = 0
    case modify = 1
    case delete = 2
}

public enum GroupType: UInt8, Sendable {
    case all = 0
    case select = 1
    case indirect = 2
    case fastFailover = 3
}

/// A group bucket.
public struct Bucket: Hashable, Sendable {
    public var weight: UInt16
    public var watchPort: UInt32
    public var watchGroup: UInt32
    public var actions: [Action]

    public init(weight: UInt16 = 0, watchPort: UInt32 = OpenFlowPort.any, watchGroup: UInt32 = OpenFlowGroup.any,
                actions: [Action]) {
        self.weight = weight
        self.watchPort = watchPort
        self.watchGroup = watchGroup
        self.actions = actions
    }

    func encode(into writer: inout WireWriter) {
        let start = writer.count
        writer.u16(0)
        writer.u16(weight)
        writer.u32(watchPort)
        writer.u32(watchGroup)
        writer.zeros(4)
        Action.encodeList(actions, into: &writer)
        writer.patchU16(at: start, UInt16(truncatingIfNeeded: writer.count - start))
    }

    static func decodeList(from reader: inout WireReader) throws(OpenFlowError) -> [Bucket] {
        var buckets: [Bucket] = []
        let badBucket = OpenFlowError(.groupModFailed, GroupModFailedCode.badBucket, "bucket truncated")
        while !reader.isAtEnd {
            guard let length16 = reader.peekU16() else { throw badBucket }
            let length = Int(length16)
            guard length >= 16, length % 8 == 0, length <= reader.remaining else {
                throw OpenFlowError(.groupModFailed, GroupModFailedCode.badBucket,
                                    "bucket length \(length) invalid with \(reader.remaining) bytes left")
            }
            var body = try reader.sub(length, truncationError: badBucket)
            try body.skip(2)
            let weight = try body.u16()
            let watchPort = try body.u32()
            let watchGroup = try body.u32()
            try body.skip(4)
            buckets.append(Bucket(weight: weight, watchPort: watchPort, watchGroup: watchGroup,
                                  actions: try Action.decodeList(from: &body)))
        }
        return buckets
    }
}

/// GROUP_MOD: add, modify or delete a group.
public struct GroupMod: Hashable, Sendable {
    public var command: GroupModCommand
    public var type: GroupType
    public var groupID: UInt32
    public var buckets: [Bucket]

    public init(command: GroupModCommand, type: GroupType, groupID: UInt32, buckets: [Bucket]) {
        self.command = command
        self.type = type
        self.groupID = groupID
        self.buckets = buckets
    }
}

/// PORT_MOD: change a port's administrative configuration (OFPPC_* bits selected by `mask`).
public struct PortMod: Hashable, Sendable {
    public var portNumber: UInt32
    /// Must match the port's address (a sanity check against stale port numbers).
    public var hardwareAddress: EthernetAddress
    public var config: UInt32
    public var mask: UInt32
    /// OFPPF_* features to advertise; 0 leaves them unchanged.
    public var advertise: UInt32

    public init(portNumber: UInt32, hardwareAddress: EthernetAddress, config: UInt32, mask: UInt32, advertise: UInt32 = 0) {
        self.portNumber = portNumber
        self.hardwareAddress = hardwareAddress
        self.config = config
        self.mask = mask
        self.advertise = advertise
    }
}

/// The body of an OpenFlow message, by type.
public enum MessageBody: Hashable, Sendable {
    case hello(Hello)
    case error(ErrorMessage)
    case echoRequest([UInt8])
    case echoReply([UInt8])
    case experimenter(ExperimenterMessage)
    /// Oko's Nicira extension messages (see `OkoExtensions.swift`).
    case oko(OkoMessage)
    case featuresRequest
    case featuresReply(SwitchFeatures)
    case getConfigRequest
    case getConfigReply(SwitchConfig)
    case setConfig(SwitchConfig)
    case packetIn(PacketIn)
    case flowRemoved(FlowRemoved)
    case portStatus(PortStatus)
    case packetOut(PacketOut)
    case flowMod(FlowMod)
    case groupMod(GroupMod)
    case portMod(PortMod)
    case multipartRequest(MultipartRequest)
    case multipartReply(MultipartReply)
    case barrierRequest
    case barrierReply
    case roleRequest(RoleMessage)
    case roleReply(RoleMessage)

    public var messageType: MessageType {
        switch self {
        case .hello: .hello
        case .error: .error
        case .echoRequest: .echoRequest
        case .echoReply: .echoReply
        case .experimenter, .oko: .experimenter
        case .featuresRequest: .featuresRequest
        case .featuresReply: .featuresReply
        case .getConfigRequest: .getConfigRequest
        case .getConfigReply: .getConfigReply
        case .setConfig: .setConfig
        case .packetIn: .packetIn
        case .flowRemoved: .flowRemoved
        case .portStatus: .portStatus
        case .packetOut: .packetOut
        case .flowMod: .flowMod
        case .groupMod: .groupMod
        case .portMod: .portMod
        case .multipartRequest: .multipartRequest
        case .multipartReply: .multipartReply
        case .barrierRequest: .barrierRequest
        case .barrierReply: .barrierReply
        case .roleRequest: .roleRequest
        case .roleReply: .roleReply
        }
    }
}

/// One OpenFlow message: header fields plus typed body.
public struct OpenFlowMessage: Hashable, Sendable {
    public var version: UInt8
    public var xid: UInt32
    public var body: MessageBody

    public init(version: UInt8 = OpenFlowVersion.v1_3, xid: UInt32, body: MessageBody) {
        self.version = version
        self.xid = xid
        self.body = body
    }

    // MARK: encoding

    /// The wire bytes of this message. Throws OFPBRC_BAD_LEN if it would exceed 65535 bytes
    /// (large multipart replies must be split with `MultipartReply.fragments`).
    public func encode() throws(OpenFlowError) -> [UInt8] {
        if version == OpenFlowVersion.v1_0, body.messageType != .hello {
            return try OpenFlow10.encode(self)
        }
        var writer = WireWriter()
        writer.u8(version)
        writer.u8(body.messageType.rawValue)
        writer.u16(0)
        writer.u32(xid)
        encodeBody(into: &writer)
        guard writer.count <= OpenFlowHeader.maxMessageLength else {
            throw .badRequestLength("encoded \(body.messageType) is \(writer.count) bytes, over 65535")
        }
        writer.patchU16(at: 2, UInt16(writer.count))
        return writer.bytes
    }

    private func encodeBody(into writer: inout WireWriter) {
        switch body {
        case .hello(let hello):
            if let versions = hello.versions {
                let highest = versions.max() ?? 0
                // One OFPHET_VERSIONBITMAP element with as many 32-bit words as the highest version needs.
                let words = Int(highest) / 32 + 1
                writer.u16(1)
                writer.u16(UInt16(4 + 4 * words))
                for word in 0..<words {
                    var bits: UInt32 = 0
                    for version in versions where Int(version) / 32 == word { bits |= 1 << UInt32(version % 32) }
                    writer.u32(bits)
                }
                writer.padTo8(since: 8)
            }
        case .error(let error):
            writer.u16(error.type)
            writer.u16(error.code)
            if let experimenter = error.experimenter { writer.u32(experimenter) }
            writer.append(error.data)
        case .echoRequest(let data), .echoReply(let data):
            writer.append(data)
        case .experimenter(let message):
            writer.u32(message.experimenter)
            writer.u32(message.expType)
            writer.append(message.data)
        case .oko(let message):
            message.encode(into: &writer)
        case .featuresRequest, .getConfigRequest, .barrierRequest, .barrierReply:
            break
        case .featuresReply(let features):
            writer.u64(features.datapathID)
            writer.u32(features.bufferCount)
            writer.u8(features.tableCount)
            writer.u8(features.auxiliaryID)
            writer.zeros(2)
            writer.u32(features.capabilities)
            writer.u32(0)
        case .getConfigReply(let config), .setConfig(let config):
            writer.u16(config.flags)
            writer.u16(config.missSendLength)
        case .packetIn(let packetIn):
            writer.u32(packetIn.bufferID)
            writer.u16(packetIn.totalLength)
            writer.u8(packetIn.reason.rawValue)
            writer.u8(packetIn.tableID)
            writer.u64(packetIn.cookie)
            packetIn.match.encode(into: &writer)
            writer.zeros(2)
            writer.append(packetIn.data)
        case .flowRemoved(let removed):
            writer.u64(removed.cookie)
            writer.u16(removed.priority)
            writer.u8(removed.reason.rawValue)
            writer.u8(removed.tableID)
            writer.u32(removed.durationSeconds)
            writer.u32(removed.durationNanoseconds)
            writer.u16(removed.idleTimeout)
            writer.u16(removed.hardTimeout)
            writer.u64(removed.packetCount)
            writer.u64(removed.byteCount)
            removed.match.encode(into: &writer)
        case .portStatus(let status):
            writer.u8(status.reason.rawValue)
            writer.zeros(7)
            status.port.encode(into: &writer)
        case .packetOut(let packetOut):
            writer.u32(packetOut.bufferID)
            writer.u32(packetOut.inPort)
            let lengthAt = writer.count
            writer.u16(0)
            writer.zeros(6)
            let actionsStart = writer.count
            Action.encodeList(packetOut.actions, into: &writer)
            writer.patchU16(at: lengthAt, UInt16(truncatingIfNeeded: writer.count - actionsStart))
            writer.append(packetOut.data)
        case .flowMod(let flowMod):
            writer.u64(flowMod.cookie)
            writer.u64(flowMod.cookieMask)
            writer.u8(flowMod.tableID)
            writer.u8(flowMod.command.rawValue)
            writer.u16(flowMod.idleTimeout)
            writer.u16(flowMod.hardTimeout)
            writer.u16(flowMod.priority)
            writer.u32(flowMod.bufferID)
            writer.u32(flowMod.outPort)
            writer.u32(flowMod.outGroup)
            writer.u16(flowMod.flags.rawValue)
            writer.zeros(2)
            flowMod.match.encode(into: &writer)
            for instruction in flowMod.instructions { instruction.encode(into: &writer) }
        case .groupMod(let groupMod):
            writer.u16(groupMod.command.rawValue)
            writer.u8(groupMod.type.rawValue)
            writer.zeros(1)
            writer.u32(groupMod.groupID)
            for bucket in groupMod.buckets { bucket.encode(into: &writer) }
        case .portMod(let portMod):
            writer.u32(portMod.portNumber)
            writer.zeros(4)
            writer.append(portMod.hardwareAddress.bytes)
            writer.zeros(2)
            writer.u32(portMod.config)
            writer.u32(portMod.mask)
            writer.u32(portMod.advertise)
            writer.zeros(4)
        case .multipartRequest(let request):
            request.encode(into: &writer)
        case .multipartReply(let reply):
            reply.encode(into: &writer)
        case .roleRequest(let role), .roleReply(let role):
            writer.u32(role.role.rawValue)
            writer.zeros(4)
            writer.u64(role.generationID)
        }
    }

    // MARK: decoding

    /// Decodes exactly one whole message. Errors carry the OpenFlow error to send back.
    public static func decode(_ bytes: [UInt8]) throws(OpenFlowError) -> OpenFlowMessage {
        guard let header = OpenFlowHeader(bytes) else {
            throw .badRequestLength("message of \(bytes.count) bytes is shorter than the 8-byte header")
        }
        guard Int(header.length) == bytes.count else {
            throw .badRequestLength("header length \(header.length) differs from the \(bytes.count) bytes received")
        }
        if header.version == OpenFlowVersion.v1_0 && header.type != MessageType.hello.rawValue {
            return try OpenFlow10.decode(bytes, header: header)
        }
        guard let type = MessageType(rawValue: header.type) else {
            throw OpenFlowError(.badRequest, BadRequestCode.badType, "unknown message type \(header.type)")
        }
        if header.version != OpenFlowVersion.v1_3 && type != .hello && type != .error {
            throw OpenFlowError(.badRequest, BadRequestCode.badVersion,
                                "version 0x\(String(header.version, radix: 16)) is not OpenFlow 1.3")
        }
        var reader = WireReader(bytes, truncationError: .badRequestLength("\(type) body truncated"))
        try reader.skip(8)
        let body = try decodeBody(type, &reader)
        guard reader.isAtEnd else {
            throw .badRequestLength("\(type) has \(reader.remaining) unexpected trailing bytes")
        }
        return OpenFlowMessage(version: header.version, xid: header.xid, body: body)
    }

    private static func expectLength(_ reader: WireReader, _ bodyLength: Int, _ type: MessageType) throws(OpenFlowError) {
        guard reader.remaining == bodyLength else {
            throw .badRequestLength("\(type) body is \(reader.remaining) bytes, expected \(bodyLength)")
        }
    }

    private static func decodeBody(_ type: MessageType, _ reader: inout WireReader) throws(OpenFlowError) -> MessageBody {
        switch type {
        case .hello:
            return .hello(try decodeHello(&reader))
        case .error:
            let errorType = try reader.u16()
            let code = try reader.u16()
            let experimenter: UInt32? = errorType == 0xffff ? try reader.u32() : nil
            return .error(ErrorMessage(type: errorType, code: code, experimenter: experimenter, data: reader.readRest()))
        case .echoRequest: return .echoRequest(reader.readRest())
        case .echoReply: return .echoReply(reader.readRest())
        case .experimenter:
            let experimenter = try reader.u32()
            let expType = try reader.u32()
            if experimenter == niciraExperimenterID, let oko = try OkoMessage.decode(subtype: expType, from: &reader) {
                return .oko(oko)
            }
            return .experimenter(ExperimenterMessage(experimenter: experimenter, expType: expType, data: reader.readRest()))
        case .featuresRequest: try expectLength(reader, 0, type); return .featuresRequest
        case .getConfigRequest: try expectLength(reader, 0, type); return .getConfigRequest
        case .barrierRequest: try expectLength(reader, 0, type); return .barrierRequest
        case .barrierReply: try expectLength(reader, 0, type); return .barrierReply
        case .featuresReply:
            try expectLength(reader, 24, type)
            let datapathID = try reader.u64()
            let buffers = try reader.u32()
            let tables = try reader.u8()
            let auxiliary = try reader.u8()
            try reader.skip(2)
            let capabilities = try reader.u32()
            try reader.skip(4)
            return .featuresReply(SwitchFeatures(datapathID: datapathID, bufferCount: buffers, tableCount: tables,
                                                 auxiliaryID: auxiliary, capabilities: capabilities))
        case .getConfigReply, .setConfig:
            try expectLength(reader, 4, type)
            let config = SwitchConfig(flags: try reader.u16(), missSendLength: try reader.u16())
            if type == .setConfig && config.flags > 3 {
                throw OpenFlowError(.switchConfigFailed, SwitchConfigFailedCode.badFlags, "SET_CONFIG flags \(config.flags) unknown")
            }
            return type == .setConfig ? .setConfig(config) : .getConfigReply(config)
        case .packetIn:
            let bufferID = try reader.u32()
            let totalLength = try reader.u16()
            let reasonByte = try reader.u8()
            let table = try reader.u8()
            let cookie = try reader.u64()
            let match = try Match.decode(from: &reader)
            try reader.skip(2)
            guard let reason = PacketInReason(rawValue: reasonByte) else {
                throw OpenFlowError(.badRequest, BadRequestCode.badPacket, "PACKET_IN reason \(reasonByte) unknown")
            }
            return .packetIn(PacketIn(bufferID: bufferID, totalLength: totalLength, reason: reason, tableID: table,
                                      cookie: cookie, match: match, data: reader.readRest()))
        case .flowRemoved:
            let cookie = try reader.u64()
            let priority = try reader.u16()
            let reasonByte = try reader.u8()
            let table = try reader.u8()
            let seconds = try reader.u32()
            let nanoseconds = try reader.u32()
            let idle = try reader.u16()
            let hard = try reader.u16()
            let packets = try reader.u64()
            let bytes = try reader.u64()
            let match = try Match.decode(from: &reader)
            guard let reason = FlowRemovedReason(rawValue: reasonByte) else {
                throw OpenFlowError(.badRequest, BadRequestCode.badPacket, "FLOW_REMOVED reason \(reasonByte) unknown")
            }
            return .flowRemoved(FlowRemoved(cookie: cookie, priority: priority, reason: reason, tableID: table,
                                            durationSeconds: seconds, durationNanoseconds: nanoseconds,
                                            idleTimeout: idle, hardTimeout: hard, packetCount: packets,
                                            byteCount: bytes, match: match))
        case .portStatus:
            try expectLength(reader, 8 + PortDescription.size, type)
            let reasonByte = try reader.u8()
            try reader.skip(7)
            guard let reason = PortStatusReason(rawValue: reasonByte) else {
                throw OpenFlowError(.badRequest, BadRequestCode.badPacket, "PORT_STATUS reason \(reasonByte) unknown")
            }
            return .portStatus(PortStatus(reason: reason, port: try PortDescription.decode(from: &reader)))
        case .packetOut:
            let bufferID = try reader.u32()
            let inPort = try reader.u32()
            let actionsLength = Int(try reader.u16())
            try reader.skip(6)
            guard actionsLength <= reader.remaining else {
                throw .badRequestLength("PACKET_OUT actions_len \(actionsLength) exceeds the \(reader.remaining) bytes left")
            }
            guard actionsLength % 8 == 0 else {
                throw OpenFlowError(.badAction, BadActionCode.badLen, "PACKET_OUT actions_len \(actionsLength) not a multiple of 8")
            }
            var actionsReader = try reader.sub(actionsLength, truncationError: OpenFlowError(.badAction, BadActionCode.badLen, "actions truncated"))
            let actions = try Action.decodeList(from: &actionsReader)
            let data = reader.readRest()
            if bufferID != openFlowNoBuffer && !data.isEmpty {
                throw OpenFlowError(.badRequest, BadRequestCode.badPacket, "PACKET_OUT names buffer \(bufferID) and also carries data")
            }
            return .packetOut(PacketOut(bufferID: bufferID, inPort: inPort, actions: actions, data: data))
        case .flowMod:
            return .flowMod(try decodeFlowMod(&reader))
        case .groupMod:
            let commandRaw = try reader.u16()
            let typeRaw = try reader.u8()
            try reader.skip(1)
            let groupID = try reader.u32()
            guard let command = GroupModCommand(rawValue: commandRaw) else {
                throw OpenFlowError(.groupModFailed, GroupModFailedCode.badCommand, "GROUP_MOD command \(commandRaw) unknown")
            }
            guard let groupType = GroupType(rawValue: typeRaw) else {
                throw OpenFlowError(.groupModFailed, GroupModFailedCode.badType, "group type \(typeRaw) unknown")
            }
            guard groupID <= OpenFlowGroup.max || (command == .delete && groupID == OpenFlowGroup.all) else {
                throw OpenFlowError(.groupModFailed, GroupModFailedCode.invalidGroup, "group id 0x\(String(groupID, radix: 16)) is reserved")
            }
            return .groupMod(GroupMod(command: command, type: groupType, groupID: groupID,
                                      buckets: try Bucket.decodeList(from: &reader)))
        case .multipartRequest:
            return .multipartRequest(try MultipartRequest.decode(from: &reader))
        case .multipartReply:
            return .multipartReply(try MultipartReply.decode(from: &reader))
        case .roleRequest, .roleReply:
            try expectLength(reader, 16, type)
            let roleRaw = try reader.u32()
            try reader.skip(4)
            let generation = try reader.u64()
            guard let role = ControllerRole(rawValue: roleRaw) else {
                throw OpenFlowError(.roleRequestFailed, RoleRequestFailedCode.badRole, "role \(roleRaw) unknown")
            }
            let message = RoleMessage(role: role, generationID: generation)
            return type == .roleRequest ? .roleRequest(message) : .roleReply(message)
        case .portMod:
            try expectLength(reader, 32, type)
            let port = try reader.u32()
            try reader.skip(4)
            let address = EthernetAddress(try reader.read(6))
            try reader.skip(2)
            let config = try reader.u32()
            let mask = try reader.u32()
            let advertise = try reader.u32()
            try reader.skip(4)
            guard port <= OpenFlowPort.max || port == OpenFlowPort.local else {
                throw OpenFlowError(.portModFailed, 0, "PORT_MOD of reserved port 0x\(String(port, radix: 16))")
            }
            return .portMod(PortMod(portNumber: port, hardwareAddress: address, config: config, mask: mask, advertise: advertise))
        case .tableMod, .queueGetConfigRequest, .queueGetConfigReply, .getAsyncRequest, .getAsyncReply,
             .setAsync, .meterMod:
            throw OpenFlowError(.badRequest, BadRequestCode.badType, "\(type) is not supported by this switch")
        }
    }

    /// HELLO elements: {type:16, length:16, body} each padded to 8; only VERSIONBITMAP (1) is understood,
    /// others are skipped as the spec requires.
    private static func decodeHello(_ reader: inout WireReader) throws(OpenFlowError) -> Hello {
        var versions: Set<UInt8>?
        while !reader.isAtEnd {
            guard reader.remaining >= 4 else { throw .badRequestLength("HELLO element header truncated") }
            let type = try reader.u16()
            let length = Int(try reader.u16())
            guard length >= 4 else { throw .badRequestLength("HELLO element length \(length) below 4") }
            let padded = (length + 7) / 8 * 8
            guard padded - 4 <= reader.remaining || length - 4 == reader.remaining else {
                throw .badRequestLength("HELLO element length \(length) exceeds the message")
            }
            var element = try reader.sub(length - 4, truncationError: .badRequestLength("HELLO element truncated"))
            try reader.skip(min(padded - length, reader.remaining))
            if type == 1 {
                guard (length - 4) % 4 == 0 else { throw .badRequestLength("version bitmap length \(length) not 4 + 4n") }
                var found = Set<UInt8>()
                var word = 0
                while !element.isAtEnd {
                    let bits = try element.u32()
                    for bit in 0..<32 where bits & (1 << UInt32(bit)) != 0 && word * 32 + bit < 256 {
                        found.insert(UInt8(word * 32 + bit))
                    }
                    word += 1
                }
                versions = found
            }
        }
        return Hello(versions: versions)
    }

    private static func decodeFlowMod(_ reader: inout WireReader) throws(OpenFlowError) -> FlowMod {
        let cookie = try reader.u64()
        let cookieMask = try reader.u64()
        let table = try reader.u8()
        let commandRaw = try reader.u8()
        let idle = try reader.u16()
        let hard = try reader.u16()
        let priority = try reader.u16()
        let bufferID = try reader.u32()
        let outPort = try reader.u32()
        let outGroup = try reader.u32()
        let flagsRaw = try reader.u16()
        try reader.skip(2)
        guard let command = FlowModCommand(rawValue: commandRaw) else {
            throw OpenFlowError(.flowModFailed, FlowModFailedCode.badCommand, "FLOW_MOD command \(commandRaw) unknown")
        }
        let flags = FlowModFlags(rawValue: flagsRaw)
        guard FlowModFlags.all.isSuperset(of: flags) else {
            throw OpenFlowError(.flowModFailed, FlowModFailedCode.badFlags, "FLOW_MOD flags 0x\(String(flagsRaw, radix: 16)) unknown")
        }
        let isDelete = command == .delete || command == .deleteStrict
        guard table != 0xff || isDelete else {
            throw OpenFlowError(.flowModFailed, FlowModFailedCode.badTableID, "table 255 (OFPTT_ALL) is only valid for deletes")
        }
        let match = try Match.decode(from: &reader)
        try match.validate()
        let instructions = try Instruction.decodeList(from: &reader)
        return FlowMod(cookie: cookie, cookieMask: cookieMask, tableID: table, command: command, idleTimeout: idle,
                       hardTimeout: hard, priority: priority, bufferID: bufferID, outPort: outPort,
                       outGroup: outGroup, flags: flags, match: match, instructions: instructions)
    }
}
