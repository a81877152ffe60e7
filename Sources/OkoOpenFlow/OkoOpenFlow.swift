// OkoOpenFlow: the OpenFlow 1.3 (wire version 0x04) endpoint of the Oko switch.
//
// Design note
// -----------
// Three layers, each usable and testable on its own; none touches sockets or the datapath:
//
//   framer   `OpenFlowFramer` cuts a TCP byte stream into whole messages using the 8-byte header's
//            length field (8...65535). It tolerates any split of the stream into reads. A length below 8
//            is a framing error: the stream cannot be resynchronised, so the connection must close.
//   codec    `OpenFlowMessage.decode(_:)` / `encode()` translate between one framed message and a typed
//            Swift value (`MessageBody` and the structs it carries: `FlowMod`, `Match`, `Action`,
//            `Instruction`, `MultipartRequest`, `OkoMessage`, ...). The switch side maps these values to
//            its datapath model; nothing here knows that model.
//   session  `OpenFlowSession` is the per-connection state machine: HELLO and version negotiation,
//            echo keep-alive, controller roles (shared across connections through `ControllerRoles`),
//            multipart reassembly and REPLY_MORE fragmentation, and dispatch of requests to a
//            `SwitchAgent` that the datapath side implements.
//
//   transport `OpenFlowListener` (passive, e.g. 127.0.0.1:6653) and `OpenFlowConnector` (active, with
//            exponential reconnect back-off) run sessions on swift-nio channels (Transport.swift).
//
// Versions: 1.3 (0x04) is the full protocol. A 1.0 (0x01) subset (OpenFlow10.swift: hello, echo,
// features, config, flow mod, barrier, desc/flow/aggregate/table stats) is translated to and from the
// same typed model, because `ovs-ofctl` without `-O` offers only 1.0 for flows 1.0 can express. HELLO
// negotiation picks the highest version in both bitmaps (or min of both header versions without one).
//
// Byte order: every multi-byte field on the wire is big-endian (network order), including all fields of
// Oko's Nicira extension messages (the original Oko sent some in host order; we do not).
//
// Validation: decoding is strict. Every length field is checked against the bytes that actually remain
// and against its required alignment (8 bytes for matches, actions, instructions, buckets, properties)
// before anything is read or allocated; counts are checked against lengths, so a hostile count cannot
// make us allocate. Each failure is an `OpenFlowError` carrying the OpenFlow error type and code that the
// session sends back (e.g. OFPET_BAD_REQUEST/OFPBRC_BAD_LEN, OFPET_BAD_MATCH/OFPBMC_BAD_PREREQ).
// Decoding never traps on any input; fuzz tests check that.
//
// Oko extensions (all Nicira experimenter 0x00002320, documented in `OkoExtensions.swift`):
//   * messages LOAD_FILTER_PROG (31), UPDATE_MAP (32), DUMP_MAP_REQUEST (33), DUMP_MAP_REPLY (34);
//   * OXM field `filter_prog`: class 0xFFFF, field 40, no mask, length 8 = experimenter id + be32 program id;
//   * action SEND_MAPS: Nicira action subtype 200 with be16 program id, be16 map count, be16 map ids. At run
//     time the packet thread queues a bounded notice; `DatapathEventPump` dumps the maps and sends them to
//     the controllers as an asynchronous DUMP_MAP_REPLY (xid 0), at most 10 per second per rule;
//   * errors of the extension requests: OFPET_EXPERIMENTER with `OkoErrorCode`s, the reason as data.
//
// Threads: codec values are immutable `Sendable` values. A session is not thread-safe: it belongs to the
// one thread (event loop) that owns its connection. `ControllerRoles` is shared and locks internally.

/// OpenFlow protocol versions as they appear in the header's version byte.
public enum OpenFlowVersion {
    public static let v1_0: UInt8 = 0x01
    public static let v1_3: UInt8 = 0x04
}

/// OFPT_* message type numbers of OpenFlow 1.3.
public enum MessageType: UInt8, Sendable, CaseIterable {
    case hello = 0
    case error = 1
    case echoRequest = 2
    case echoReply = 3
    case experimenter = 4
    case featuresRequest = 5
    case featuresReply = 6
    case getConfigRequest = 7
    case getConfigReply = 8
    case setConfig = 9
    case packetIn = 10
    case flowRemoved = 11
    case portStatus = 12
    case packetOut = 13
    case flowMod = 14
    case groupMod = 15
    case portMod = 16
    case tableMod = 17
    case multipartRequest = 18
    case multipartReply = 19
    case barrierRequest = 20
    case barrierReply = 21
    case queueGetConfigRequest = 22
    case queueGetConfigReply = 23
    case roleRequest = 24
    case roleReply = 25
    case getAsyncRequest = 26
    case getAsyncReply = 27
    case setAsync = 28
    case meterMod = 29
}

/// Reserved port numbers (OFPP_*).
public enum OpenFlowPort {
    public static let max: UInt32 = 0xffff_ff00
    public static let inPort: UInt32 = 0xffff_fff8
    public static let table: UInt32 = 0xffff_fff9
    public static let normal: UInt32 = 0xffff_fffa
    public static let flood: UInt32 = 0xffff_fffb
    public static let all: UInt32 = 0xffff_fffc
    public static let controller: UInt32 = 0xffff_fffd
    public static let local: UInt32 = 0xffff_fffe
    public static let any: UInt32 = 0xffff_ffff
}

/// Reserved group numbers (OFPG_*).
public enum OpenFlowGroup {
    public static let max: UInt32 = 0xffff_ff00
    public static let all: UInt32 = 0xffff_fffc
    public static let any: UInt32 = 0xffff_ffff
}

/// OFP_NO_BUFFER: the packet is not buffered on the switch.
public let openFlowNoBuffer: UInt32 = 0xffff_ffff

/// Nicira's experimenter id, under which Oko's extensions live.
public let niciraExperimenterID: UInt32 = 0x0000_2320

/// An OpenFlow error as sent in an OFPT_ERROR message: type, code, and a human-readable reason that
/// stays local (it is not sent on the wire).
public struct OpenFlowError: Error, Equatable, Sendable, CustomStringConvertible {
    public var type: ErrorType
    public var code: UInt16
    public var reason: String

    public init(_ type: ErrorType, _ code: UInt16, _ reason: String) {
        self.type = type
        self.code = code
        self.reason = reason
    }

    public var description: String { "OpenFlow error \(type) code \(code): \(reason)" }

    /// Two errors are the same if they would produce the same OFPT_ERROR on the wire.
    public static func == (lhs: OpenFlowError, rhs: OpenFlowError) -> Bool {
        lhs.type == rhs.type && lhs.code == rhs.code
    }

    public func matches(_ type: ErrorType, _ code: UInt16) -> Bool { self.type == type && self.code == code }
}

/// OFPET_* error types.
public enum ErrorType: UInt16, Sendable, CustomStringConvertible {
    case helloFailed = 0
    case badRequest = 1
    case badAction = 2
    case badInstruction = 3
    case badMatch = 4
    case flowModFailed = 5
    case groupModFailed = 6
    case portModFailed = 7
    case tableModFailed = 8
    case queueOpFailed = 9
    case switchConfigFailed = 10
    case roleRequestFailed = 11
    case meterModFailed = 12
    case tableFeaturesFailed = 13
    case experimenter = 0xffff

    public var description: String {
        switch self {
        case .helloFailed: "OFPET_HELLO_FAILED"
        case .badRequest: "OFPET_BAD_REQUEST"
        case .badAction: "OFPET_BAD_ACTION"
        case .badInstruction: "OFPET_BAD_INSTRUCTION"
        case .badMatch: "OFPET_BAD_MATCH"
        case .flowModFailed: "OFPET_FLOW_MOD_FAILED"
        case .groupModFailed: "OFPET_GROUP_MOD_FAILED"
        case .portModFailed: "OFPET_PORT_MOD_FAILED"
        case .tableModFailed: "OFPET_TABLE_MOD_FAILED"
        case .queueOpFailed: "OFPET_QUEUE_OP_FAILED"
        case .switchConfigFailed: "OFPET_SWITCH_CONFIG_FAILED"
        case .roleRequestFailed: "OFPET_ROLE_REQUEST_FAILED"
        case .meterModFailed: "OFPET_METER_MOD_FAILED"
        case .tableFeaturesFailed: "OFPET_TABLE_FEATURES_FAILED"
        case .experimenter: "OFPET_EXPERIMENTER"
        }
    }
}

/// Error codes per error type (OFPHFC_*, OFPBRC_*, ...), as UInt16 constants.
public enum HelloFailedCode {
    public static let incompatible: UInt16 = 0
    public static let eperm: UInt16 = 1
}

public enum BadRequestCode {
    public static let badVersion: UInt16 = 0
    public static let badType: UInt16 = 1
    public static let badMultipart: UInt16 = 2
    public static let badExperimenter: UInt16 = 3
    public static let badExpType: UInt16 = 4
    public static let eperm: UInt16 = 5
    public static let badLen: UInt16 = 6
    public static let bufferEmpty: UInt16 = 7
    public static let bufferUnknown: UInt16 = 8
    public static let badTableID: UInt16 = 9
    public static let isSlave: UInt16 = 10
    public static let badPort: UInt16 = 11
    public static let badPacket: UInt16 = 12
    public static let multipartBufferOverflow: UInt16 = 13
}

public enum BadActionCode {
    public static let badType: UInt16 = 0
    public static let badLen: UInt16 = 1
    public static let badExperimenter: UInt16 = 2
    public static let badExpType: UInt16 = 3
    public static let badOutPort: UInt16 = 4
    public static let badArgument: UInt16 = 5
    public static let eperm: UInt16 = 6
    public static let tooMany: UInt16 = 7
    public static let badQueue: UInt16 = 8
    public static let badOutGroup: UInt16 = 9
    public static let matchInconsistent: UInt16 = 10
    public static let unsupportedOrder: UInt16 = 11
    public static let badTag: UInt16 = 12
    public static let badSetType: UInt16 = 13
    public static let badSetLen: UInt16 = 14
    public static let badSetArgument: UInt16 = 15
}

public enum BadInstructionCode {
    public static let unknownInstruction: UInt16 = 0
    public static let unsupportedInstruction: UInt16 = 1
    public static let badTableID: UInt16 = 2
    public static let unsupportedMetadata: UInt16 = 3
    public static let unsupportedMetadataMask: UInt16 = 4
    public static let badExperimenter: UInt16 = 5
    public static let badExpType: UInt16 = 6
    public static let badLen: UInt16 = 7
    public static let eperm: UInt16 = 8
}

public enum BadMatchCode {
    public static let badType: UInt16 = 0
    public static let badLen: UInt16 = 1
    public static let badTag: UInt16 = 2
    public static let badDLAddrMask: UInt16 = 3
    public static let badNWAddrMask: UInt16 = 4
    public static let badWildcards: UInt16 = 5
    public static let badField: UInt16 = 6
    public static let badValue: UInt16 = 7
    public static let badMask: UInt16 = 8
    public static let badPrereq: UInt16 = 9
    public static let dupField: UInt16 = 10
    public static let eperm: UInt16 = 11
}

public enum FlowModFailedCode {
    public static let unknown: UInt16 = 0
    public static let tableFull: UInt16 = 1
    public static let badTableID: UInt16 = 2
    public static let overlap: UInt16 = 3
    public static let eperm: UInt16 = 4
    public static let badTimeout: UInt16 = 5
    public static let badCommand: UInt16 = 6
    public static let badFlags: UInt16 = 7
}

public enum GroupModFailedCode {
    public static let groupExists: UInt16 = 0
    public static let invalidGroup: UInt16 = 1
    public static let outOfGroups: UInt16 = 3
    public static let outOfBuckets: UInt16 = 4
    public static let unknownGroup: UInt16 = 8
    public static let badType: UInt16 = 10
    public static let badCommand: UInt16 = 11
    public static let badBucket: UInt16 = 12
    public static let badWatch: UInt16 = 13
}

public enum SwitchConfigFailedCode {
    public static let badFlags: UInt16 = 0
    public static let badLen: UInt16 = 1
}

public enum RoleRequestFailedCode {
    public static let stale: UInt16 = 0
    public static let unsupported: UInt16 = 1
    public static let badRole: UInt16 = 2
}

public enum TableFeaturesFailedCode {
    public static let badTable: UInt16 = 0
    public static let badMetadata: UInt16 = 1
    public static let badType: UInt16 = 2
    public static let badLen: UInt16 = 3
    public static let badArgument: UInt16 = 4
}

public enum MeterModFailedCode {
    public static let unknownMeter: UInt16 = 3
    public static let badBand: UInt16 = 8
}

extension OpenFlowError {
    static func badRequestLength(_ reason: String) -> OpenFlowError {
        OpenFlowError(.badRequest, BadRequestCode.badLen, reason)
    }
}
