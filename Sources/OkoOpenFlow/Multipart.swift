// MULTIPART_REQUEST / MULTIPART_REPLY (OpenFlow 1.3 section 7.3.5).
//
// Both start with {type:16, flags:16, pad:4}. Flags: OFPMPF_REQ_MORE / OFPMPF_REPLY_MORE (1) mark all
// but the last message of a sequence sharing one xid. Replies whose body is a list are split by
// `MultipartReply.fragments(maxMessageLength:)` into messages that each fit in 65535 bytes.

/// OFPMP_* multipart types.
public enum MultipartType: UInt16, Sendable {
    case desc = 0
    case flow = 1
    case aggregate = 2
    case table = 3
    case portStats = 4
    case queue = 5
    case group = 6
    case groupDesc = 7
    case groupFeatures = 8
    case meter = 9
    case meterConfig = 10
    case meterFeatures = 11
    case tableFeatures = 12
    case portDesc = 13
    case experimenter = 0xffff
}

/// Body of a FLOW or AGGREGATE stats request.
public struct FlowStatsRequest: Hashable, Sendable {
    public var tableID: UInt8
    public var outPort: UInt32
    public var outGroup: UInt32
    public var cookie: UInt64
    public var cookieMask: UInt64
    public var match: Match

    public init(tableID: UInt8 = 0xff, outPort: UInt32 = OpenFlowPort.any, outGroup: UInt32 = OpenFlowGroup.any,
                cookie: UInt64 = 0, cookieMask: UInt64 = 0, match: Match = .any) {
        self.tableID = tableID
        self.outPort = outPort
        self.outGroup = outGroup
        self.cookie = cookie
        self.cookieMask = cookieMask
        self.match = match
    }
}

/// One flow entry in a FLOW stats reply.
public struct FlowStats: Hashable, Sendable {
    public var tableID: UInt8
    public var durationSeconds: UInt32
    public var durationNanoseconds: UInt32
    public var priority: UInt16
    public var idleTimeout: UInt16
    public var hardTimeout: UInt16
    public var flags: FlowModFlags
    public var cookie: UInt64
    public var packetCount: UInt64
    public var byteCount: UInt64
    public var match: Match
    public var instructions: [Instruction]

    public init(tableID: UInt8, durationSeconds: UInt32 = 0, durationNanoseconds: UInt32 = 0, priority: UInt16,
                idleTimeout: UInt16 = 0, hardTimeout: UInt16 = 0, flags: FlowModFlags = [], cookie: UInt64 = 0,
                packetCount: UInt64 = 0, byteCount: UInt64 = 0, match: Match, instructions: [Instruction]) {
        self.tableID = tableID
        self.durationSeconds = durationSeconds
        self.durationNanoseconds = durationNanoseconds
        self.priority = priority
        self.idleTimeout = idleTimeout
        self.hardTimeout = hardTimeout
        self.flags = flags
        self.cookie = cookie
        self.packetCount = packetCount
        self.byteCount = byteCount
        self.match = match
        self.instructions = instructions
    }
}

public struct AggregateStats: Hashable, Sendable {
    public var packetCount: UInt64
    public var byteCount: UInt64
    public var flowCount: UInt32

    public init(packetCount: UInt64, byteCount: UInt64, flowCount: UInt32) {
        self.packetCount = packetCount
        self.byteCount = byteCount
        self.flowCount = flowCount
    }
}

public struct TableStats: Hashable, Sendable {
    public var tableID: UInt8
    public var activeCount: UInt32
    public var lookupCount: UInt64
    public var matchedCount: UInt64

    public init(tableID: UInt8, activeCount: UInt32, lookupCount: UInt64, matchedCount: UInt64) {
        self.tableID = tableID
        self.activeCount = activeCount
        self.lookupCount = lookupCount
        self.matchedCount = matchedCount
    }
}

public struct PortStats: Hashable, Sendable {
    public var portNumber: UInt32
    /// rx_packets, tx_packets, rx_bytes, tx_bytes, rx_dropped, tx_dropped, rx_errors, tx_errors,
    /// rx_frame_err, rx_over_err, rx_crc_err, collisions, in wire order.
    public var counters: [UInt64]
    public var durationSeconds: UInt32
    public var durationNanoseconds: UInt32

    public init(portNumber: UInt32, counters: [UInt64], durationSeconds: UInt32 = 0, durationNanoseconds: UInt32 = 0) {
        precondition(counters.count == 12, "ofp_port_stats has 12 counters")
        self.portNumber = portNumber
        self.counters = counters
        self.durationSeconds = durationSeconds
        self.durationNanoseconds = durationNanoseconds
    }
}

/// DESC reply: fixed-size strings describing the switch.
public struct SwitchDescription: Hashable, Sendable {
    public var manufacturer: String
    public var hardware: String
    public var software: String
    public var serialNumber: String
    public var datapath: String

    public init(manufacturer: String, hardware: String, software: String, serialNumber: String, datapath: String) {
        self.manufacturer = manufacturer
        self.hardware = hardware
        self.software = software
        self.serialNumber = serialNumber
        self.datapath = datapath
    }
}

/// A table-features property (OFPTFPT_*). Id lists are kept as the raw 4-byte-or-longer elements'
/// types: instruction/action ids as their type numbers, OXM ids as 32-bit OXM headers.
public struct TableFeatureProperty: Hashable, Sendable {
    public enum Content: Hashable, Sendable {
        /// INSTRUCTIONS(_MISS): instruction type numbers.
        case instructions([UInt16])
        /// NEXT_TABLES(_MISS): table ids.
        case nextTables([UInt8])
        /// WRITE/APPLY_ACTIONS(_MISS): action type numbers.
        case actions([UInt16])
        /// MATCH, WILDCARDS, WRITE/APPLY_SETFIELD(_MISS): OXM headers.
        case oxmIDs([UInt32])
        /// EXPERIMENTER(_MISS) or anything else: raw body after the 4-byte property header.
        case raw([UInt8])
    }

    public var type: UInt16
    public var content: Content

    public init(type: UInt16, content: Content) {
        self.type = type
        self.content = content
    }

    public static let instructions: UInt16 = 0
    public static let nextTables: UInt16 = 2
    public static let writeActions: UInt16 = 4
    public static let applyActions: UInt16 = 6
    public static let match: UInt16 = 8
    public static let wildcards: UInt16 = 10
    public static let writeSetField: UInt16 = 12
    public static let applySetField: UInt16 = 14

    func encode(into writer: inout WireWriter) {
        let start = writer.count
        writer.u16(type)
        writer.u16(0)
        switch content {
        case .instructions(let ids), .actions(let ids):
            for id in ids { writer.u16(id); writer.u16(4) }
        case .nextTables(let tables): writer.append(tables)
        case .oxmIDs(let ids): for id in ids { writer.u32(id) }
        case .raw(let bytes): writer.append(bytes)
        }
        writer.patchU16(at: start + 2, UInt16(truncatingIfNeeded: writer.count - start))
        writer.padTo8(since: start)
    }

    static func decode(from reader: inout WireReader) throws(OpenFlowError) -> TableFeatureProperty {
        let badLength = OpenFlowError(.tableFeaturesFailed, TableFeaturesFailedCode.badLen, "table feature property truncated")
        guard reader.remaining >= 4 else { throw badLength }
        let type = try reader.u16()
        let length = Int(try reader.u16())
        let padded = (length + 7) / 8 * 8
        guard length >= 4, padded - 4 <= reader.remaining else {
            throw OpenFlowError(.tableFeaturesFailed, TableFeaturesFailedCode.badLen,
                                "table feature property \(type) length \(length) invalid with \(reader.remaining + 4) bytes left")
        }
        var body = try reader.sub(length - 4, truncationError: badLength)
        try reader.skip(padded - length)
        let content: Content
        switch type {
        case 0, 1, 4, 5, 6, 7:
            var ids: [UInt16] = []
            while !body.isAtEnd {
                let id = try body.u16()
                let idLength = Int(try body.u16())
                guard idLength >= 4 else {
                    throw OpenFlowError(.tableFeaturesFailed, TableFeaturesFailedCode.badLen, "id length \(idLength) below 4")
                }
                try body.skip(idLength - 4)  // experimenter ids carry more; we keep the type only
                ids.append(id)
            }
            content = type <= 1 ? .instructions(ids) : .actions(ids)
        case 2, 3:
            content = .nextTables(body.readRest())
        case 8, 10, 12, 13, 14, 15:
            guard body.remaining % 4 == 0 else {
                throw OpenFlowError(.tableFeaturesFailed, TableFeaturesFailedCode.badLen, "OXM id list length not a multiple of 4")
            }
            var ids: [UInt32] = []
            while !body.isAtEnd { ids.append(try body.u32()) }
            content = .oxmIDs(ids)
        case 0xfffe, 0xffff:
            content = .raw(body.readRest())
        default:
            throw OpenFlowError(.tableFeaturesFailed, TableFeaturesFailedCode.badType, "table feature property type \(type) unknown")
        }
        return TableFeatureProperty(type: type, content: content)
    }
}

/// One table's features (TABLE_FEATURES request or reply element).
public struct TableFeatures: Hashable, Sendable {
    public var tableID: UInt8
    public var name: String
    public var metadataMatch: UInt64
    public var metadataWrite: UInt64
    public var config: UInt32
    public var maxEntries: UInt32
    public var properties: [TableFeatureProperty]

    public init(tableID: UInt8, name: String, metadataMatch: UInt64 = ~0, metadataWrite: UInt64 = ~0,
                config: UInt32 = 0, maxEntries: UInt32, properties: [TableFeatureProperty]) {
        self.tableID = tableID
        self.name = name
        self.metadataMatch = metadataMatch
        self.metadataWrite = metadataWrite
        self.config = config
        self.maxEntries = maxEntries
        self.properties = properties
    }

    func encode(into writer: inout WireWriter) {
        let start = writer.count
        writer.u16(0)
        writer.u8(tableID)
        writer.zeros(5)
        writer.fixedString(name, size: 32)
        writer.u64(metadataMatch)
        writer.u64(metadataWrite)
        writer.u32(config)
        writer.u32(maxEntries)
        for property in properties { property.encode(into: &writer) }
        writer.patchU16(at: start, UInt16(truncatingIfNeeded: writer.count - start))
    }

    static func decodeList(from reader: inout WireReader) throws(OpenFlowError) -> [TableFeatures] {
        var tables: [TableFeatures] = []
        let badLength = OpenFlowError(.tableFeaturesFailed, TableFeaturesFailedCode.badLen, "table features truncated")
        while !reader.isAtEnd {
            guard let length16 = reader.peekU16() else { throw badLength }
            let length = Int(length16)
            guard length >= 64, length % 8 == 0, length <= reader.remaining else {
                throw OpenFlowError(.tableFeaturesFailed, TableFeaturesFailedCode.badLen,
                                    "table features length \(length) invalid with \(reader.remaining) bytes left")
            }
            var body = try reader.sub(length, truncationError: badLength)
            try body.skip(2)
            let table = try body.u8()
            try body.skip(5)
            let name = try body.fixedString(32)
            let metadataMatch = try body.u64()
            let metadataWrite = try body.u64()
            let config = try body.u32()
            let maxEntries = try body.u32()
            var properties: [TableFeatureProperty] = []
            while !body.isAtEnd { properties.append(try TableFeatureProperty.decode(from: &body)) }
            tables.append(TableFeatures(tableID: table, name: name, metadataMatch: metadataMatch,
                                        metadataWrite: metadataWrite, config: config, maxEntries: maxEntries,
                                        properties: properties))
        }
        return tables
    }
}

public struct GroupDescription: Hashable, Sendable {
    public var type: GroupType
    public var groupID: UInt32
    public var buckets: [Bucket]

    public init(type: GroupType, groupID: UInt32, buckets: [Bucket]) {
        self.type = type
        self.groupID = groupID
        self.buckets = buckets
    }
}

public struct GroupFeatures: Hashable, Sendable {
    /// Bitmap of supported group types (1 << OFPGT_*).
    public var types: UInt32
    public var capabilities: UInt32
    /// Maximum groups per type, indexed by OFPGT_*.
    public var maxGroups: [UInt32]
    /// Bitmap of supported actions (1 << OFPAT_*) per group type.
    public var actions: [UInt32]

    public init(types: UInt32, capabilities: UInt32, maxGroups: [UInt32], actions: [UInt32]) {
        precondition(maxGroups.count == 4 && actions.count == 4, "one entry per group type")
        self.types = types
        self.capabilities = capabilities
        self.maxGroups = maxGroups
        self.actions = actions
    }
}

/// A meter band: DROP (1) or DSCP_REMARK (2) with precedence level; others kept raw.
public struct MeterBand: Hashable, Sendable {
    public var type: UInt16
    public var rate: UInt32
    public var burstSize: UInt32
    /// DSCP_REMARK: prec_level; EXPERIMENTER: the low byte is unused, see `experimenter`.
    public var precedenceLevel: UInt8
    public var experimenter: UInt32

    public init(type: UInt16, rate: UInt32, burstSize: UInt32, precedenceLevel: UInt8 = 0, experimenter: UInt32 = 0) {
        self.type = type
        self.rate = rate
        self.burstSize = burstSize
        self.precedenceLevel = precedenceLevel
        self.experimenter = experimenter
    }
}

public struct MeterConfig: Hashable, Sendable {
    /// OFPMF_* (KBPS 1, PKTPS 2, BURST 4, STATS 8).
    public var flags: UInt16
    public var meterID: UInt32
    public var bands: [MeterBand]

    public init(flags: UInt16, meterID: UInt32, bands: [MeterBand]) {
        self.flags = flags
        self.meterID = meterID
        self.bands = bands
    }
}

public struct MeterFeatures: Hashable, Sendable {
    public var maxMeter: UInt32
    public var bandTypes: UInt32
    public var capabilities: UInt32
    public var maxBands: UInt8
    public var maxColor: UInt8

    public init(maxMeter: UInt32, bandTypes: UInt32, capabilities: UInt32, maxBands: UInt8, maxColor: UInt8) {
        self.maxMeter = maxMeter
        self.bandTypes = bandTypes
        self.capabilities = capabilities
        self.maxBands = maxBands
        self.maxColor = maxColor
    }
}

/// MULTIPART_REQUEST.
public struct MultipartRequest: Hashable, Sendable {
    public enum Body: Hashable, Sendable {
        case desc
        case flow(FlowStatsRequest)
        case aggregate(FlowStatsRequest)
        case table
        /// Port number, or OFPP_ANY for all ports.
        case portStats(UInt32)
        case portDesc
        /// Empty to query; non-empty to also reconfigure the tables.
        case tableFeatures([TableFeatures])
        case groupDesc
        case groupFeatures
        /// Meter id, or OFPM_ALL (0xffffffff).
        case meterConfig(UInt32)
        case meterFeatures

        public var type: MultipartType {
            switch self {
            case .desc: .desc
            case .flow: .flow
            case .aggregate: .aggregate
            case .table: .table
            case .portStats: .portStats
            case .portDesc: .portDesc
            case .tableFeatures: .tableFeatures
            case .groupDesc: .groupDesc
            case .groupFeatures: .groupFeatures
            case .meterConfig: .meterConfig
            case .meterFeatures: .meterFeatures
            }
        }
    }

    public static let requestMore: UInt16 = 1

    public var flags: UInt16
    public var body: Body

    public init(flags: UInt16 = 0, body: Body) {
        self.flags = flags
        self.body = body
    }

    func encode(into writer: inout WireWriter) {
        writer.u16(body.type.rawValue)
        writer.u16(flags)
        writer.zeros(4)
        switch body {
        case .desc, .table, .portDesc, .groupDesc, .groupFeatures, .meterFeatures: break
        case .flow(let request), .aggregate(let request):
            writer.u8(request.tableID)
            writer.zeros(3)
            writer.u32(request.outPort)
            writer.u32(request.outGroup)
            writer.zeros(4)
            writer.u64(request.cookie)
            writer.u64(request.cookieMask)
            request.match.encode(into: &writer)
        case .portStats(let port), .meterConfig(let port):
            writer.u32(port)
            writer.zeros(4)
        case .tableFeatures(let tables):
            for table in tables { table.encode(into: &writer) }
        }
    }

    static func decode(from reader: inout WireReader) throws(OpenFlowError) -> MultipartRequest {
        let typeRaw = try reader.u16()
        let flags = try reader.u16()
        try reader.skip(4)
        guard let type = MultipartType(rawValue: typeRaw) else {
            throw OpenFlowError(.badRequest, BadRequestCode.badMultipart, "multipart type \(typeRaw) unknown")
        }
        func empty() throws(OpenFlowError) {
            guard reader.isAtEnd else { throw .badRequestLength("\(type) request must have an empty body") }
        }
        func portLike() throws(OpenFlowError) -> UInt32 {
            guard reader.remaining == 8 else { throw .badRequestLength("\(type) request body must be 8 bytes") }
            let value = try reader.u32()
            try reader.skip(4)
            return value
        }
        let body: Body
        switch type {
        case .desc: try empty(); body = .desc
        case .table: try empty(); body = .table
        case .portDesc: try empty(); body = .portDesc
        case .groupDesc: try empty(); body = .groupDesc
        case .groupFeatures: try empty(); body = .groupFeatures
        case .meterFeatures: try empty(); body = .meterFeatures
        case .portStats: body = .portStats(try portLike())
        case .meterConfig: body = .meterConfig(try portLike())
        case .flow, .aggregate:
            let table = try reader.u8()
            try reader.skip(3)
            let outPort = try reader.u32()
            let outGroup = try reader.u32()
            try reader.skip(4)
            let cookie = try reader.u64()
            let cookieMask = try reader.u64()
            let match = try Match.decode(from: &reader)
            let request = FlowStatsRequest(tableID: table, outPort: outPort, outGroup: outGroup, cookie: cookie,
                                           cookieMask: cookieMask, match: match)
            body = type == .flow ? .flow(request) : .aggregate(request)
        case .tableFeatures:
            body = .tableFeatures(try TableFeatures.decodeList(from: &reader))
        case .queue, .group, .meter, .experimenter:
            throw OpenFlowError(.badRequest, BadRequestCode.badMultipart, "multipart type \(type) is not supported")
        }
        return MultipartRequest(flags: flags, body: body)
    }
}

/// MULTIPART_REPLY.
public struct MultipartReply: Hashable, Sendable {
    public enum Body: Hashable, Sendable {
        case desc(SwitchDescription)
        case flow([FlowStats])
        case aggregate(AggregateStats)
        case table([TableStats])
        case portStats([PortStats])
        case portDesc([PortDescription])
        case tableFeatures([TableFeatures])
        case groupDesc([GroupDescription])
        case groupFeatures(GroupFeatures)
        case meterConfig([MeterConfig])
        case meterFeatures(MeterFeatures)

        public var type: MultipartType {
            switch self {
            case .desc: .desc
            case .flow: .flow
            case .aggregate: .aggregate
            case .table: .table
            case .portStats: .portStats
            case .portDesc: .portDesc
            case .tableFeatures: .tableFeatures
            case .groupDesc: .groupDesc
            case .groupFeatures: .groupFeatures
            case .meterConfig: .meterConfig
            case .meterFeatures: .meterFeatures
            }
        }
    }

    public static let replyMore: UInt16 = 1

    public var flags: UInt16
    public var body: Body

    public init(flags: UInt16 = 0, body: Body) {
        self.flags = flags
        self.body = body
    }

    func encode(into writer: inout WireWriter) {
        writer.u16(body.type.rawValue)
        writer.u16(flags)
        writer.zeros(4)
        switch body {
        case .desc(let desc):
            writer.fixedString(desc.manufacturer, size: 256)
            writer.fixedString(desc.hardware, size: 256)
            writer.fixedString(desc.software, size: 256)
            writer.fixedString(desc.serialNumber, size: 32)
            writer.fixedString(desc.datapath, size: 256)
        case .flow(let flows):
            for flow in flows { Self.encodeFlowStats(flow, into: &writer) }
        case .aggregate(let stats):
            writer.u64(stats.packetCount)
            writer.u64(stats.byteCount)
            writer.u32(stats.flowCount)
            writer.zeros(4)
        case .table(let tables):
            for table in tables {
                writer.u8(table.tableID)
                writer.zeros(3)
                writer.u32(table.activeCount)
                writer.u64(table.lookupCount)
                writer.u64(table.matchedCount)
            }
        case .portStats(let ports):
            for port in ports {
                writer.u32(port.portNumber)
                writer.zeros(4)
                for counter in port.counters { writer.u64(counter) }
                writer.u32(port.durationSeconds)
                writer.u32(port.durationNanoseconds)
            }
        case .portDesc(let ports):
            for port in ports { port.encode(into: &writer) }
        case .tableFeatures(let tables):
            for table in tables { table.encode(into: &writer) }
        case .groupDesc(let groups):
            for group in groups {
                let start = writer.count
                writer.u16(0)
                writer.u8(group.type.rawValue)
                writer.zeros(1)
                writer.u32(group.groupID)
                for bucket in group.buckets { bucket.encode(into: &writer) }
                writer.patchU16(at: start, UInt16(truncatingIfNeeded: writer.count - start))
            }
        case .groupFeatures(let features):
            writer.u32(features.types)
            writer.u32(features.capabilities)
            for value in features.maxGroups { writer.u32(value) }
            for value in features.actions { writer.u32(value) }
        case .meterConfig(let meters):
            for meter in meters {
                let start = writer.count
                writer.u16(0)
                writer.u16(meter.flags)
                writer.u32(meter.meterID)
                for band in meter.bands {
                    writer.u16(band.type)
                    writer.u16(16)
                    writer.u32(band.rate)
                    writer.u32(band.burstSize)
                    if band.type == 0xffff {
                        writer.u32(band.experimenter)
                    } else {
                        writer.u8(band.precedenceLevel)
                        writer.zeros(3)
                    }
                }
                writer.patchU16(at: start, UInt16(truncatingIfNeeded: writer.count - start))
            }
        case .meterFeatures(let features):
            writer.u32(features.maxMeter)
            writer.u32(features.bandTypes)
            writer.u32(features.capabilities)
            writer.u8(features.maxBands)
            writer.u8(features.maxColor)
            writer.zeros(2)
        }
    }

    private static func encodeFlowStats(_ flow: FlowStats, into writer: inout WireWriter) {
        let start = writer.count
        writer.u16(0)
        writer.u8(flow.tableID)
        writer.zeros(1)
        writer.u32(flow.durationSeconds)
        writer.u32(flow.durationNanoseconds)
        writer.u16(flow.priority)
        writer.u16(flow.idleTimeout)
        writer.u16(flow.hardTimeout)
        writer.u16(flow.flags.rawValue)
        writer.zeros(4)
        writer.u64(flow.cookie)
        writer.u64(flow.packetCount)
        writer.u64(flow.byteCount)
        flow.match.encode(into: &writer)
        for instruction in flow.instructions { instruction.encode(into: &writer) }
        writer.patchU16(at: start, UInt16(truncatingIfNeeded: writer.count - start))
    }

    /// Reads length-prefixed list elements: each starts with a u16 length (>= minimum, multiple of 8).
    private static func elements(_ reader: inout WireReader, minimum: Int, _ what: String) throws(OpenFlowError) -> [WireReader] {
        var result: [WireReader] = []
        while !reader.isAtEnd {
            guard let length16 = reader.peekU16() else { throw .badRequestLength("\(what) length truncated") }
            let length = Int(length16)
            guard length >= minimum, length % 8 == 0, length <= reader.remaining else {
                throw .badRequestLength("\(what) length \(length) invalid with \(reader.remaining) bytes left")
            }
            var element = try reader.sub(length, truncationError: .badRequestLength("\(what) truncated"))
            try element.skip(2)
            result.append(element)
        }
        return result
    }

    /// Fixed-size list elements: the body must be a whole number of `size`-byte records.
    private static func records(_ reader: inout WireReader, size: Int, _ what: String) throws(OpenFlowError) -> [WireReader] {
        guard reader.remaining % size == 0 else {
            throw .badRequestLength("\(what) body of \(reader.remaining) bytes is not a multiple of \(size)")
        }
        var result: [WireReader] = []
        while !reader.isAtEnd { result.append(try reader.sub(size, truncationError: .badRequestLength("\(what) truncated"))) }
        return result
    }

    static func decode(from reader: inout WireReader) throws(OpenFlowError) -> MultipartReply {
        let typeRaw = try reader.u16()
        let flags = try reader.u16()
        try reader.skip(4)
        guard let type = MultipartType(rawValue: typeRaw) else {
            throw OpenFlowError(.badRequest, BadRequestCode.badMultipart, "multipart type \(typeRaw) unknown")
        }
        func fixed(_ size: Int) throws(OpenFlowError) {
            guard reader.remaining == size else { throw .badRequestLength("\(type) reply body must be \(size) bytes") }
        }
        let body: Body
        switch type {
        case .desc:
            try fixed(1056)
            body = .desc(SwitchDescription(manufacturer: try reader.fixedString(256), hardware: try reader.fixedString(256),
                                           software: try reader.fixedString(256), serialNumber: try reader.fixedString(32),
                                           datapath: try reader.fixedString(256)))
        case .flow:
            var flows: [FlowStats] = []
            for var element in try elements(&reader, minimum: 56, "flow stats") {
                let table = try element.u8()
                try element.skip(1)
                let seconds = try element.u32()
                let nanoseconds = try element.u32()
                let priority = try element.u16()
                let idle = try element.u16()
                let hard = try element.u16()
                let flags = FlowModFlags(rawValue: try element.u16())
                try element.skip(4)
                let cookie = try element.u64()
                let packets = try element.u64()
                let bytes = try element.u64()
                let match = try Match.decode(from: &element)
                let instructions = try Instruction.decodeList(from: &element)
                flows.append(FlowStats(tableID: table, durationSeconds: seconds, durationNanoseconds: nanoseconds,
                                       priority: priority, idleTimeout: idle, hardTimeout: hard, flags: flags,
                                       cookie: cookie, packetCount: packets, byteCount: bytes, match: match,
                                       instructions: instructions))
            }
            body = .flow(flows)
        case .aggregate:
            try fixed(24)
            let stats = AggregateStats(packetCount: try reader.u64(), byteCount: try reader.u64(), flowCount: try reader.u32())
            try reader.skip(4)
            body = .aggregate(stats)
        case .table:
            var tables: [TableStats] = []
            for var record in try records(&reader, size: 24, "table stats") {
                let table = try record.u8()
                try record.skip(3)
                tables.append(TableStats(tableID: table, activeCount: try record.u32(), lookupCount: try record.u64(),
                                         matchedCount: try record.u64()))
            }
            body = .table(tables)
        case .portStats:
            var ports: [PortStats] = []
            for var record in try records(&reader, size: 112, "port stats") {
                let port = try record.u32()
                try record.skip(4)
                var counters: [UInt64] = []
                for _ in 0..<12 { counters.append(try record.u64()) }
                ports.append(PortStats(portNumber: port, counters: counters, durationSeconds: try record.u32(),
                                       durationNanoseconds: try record.u32()))
            }
            body = .portStats(ports)
        case .portDesc:
            var ports: [PortDescription] = []
            for var record in try records(&reader, size: PortDescription.size, "port description") {
                ports.append(try PortDescription.decode(from: &record))
            }
            body = .portDesc(ports)
        case .tableFeatures:
            body = .tableFeatures(try TableFeatures.decodeList(from: &reader))
        case .groupDesc:
            var groups: [GroupDescription] = []
            for var element in try elements(&reader, minimum: 8, "group description") {
                let typeRaw = try element.u8()
                try element.skip(1)
                let groupID = try element.u32()
                guard let groupType = GroupType(rawValue: typeRaw) else {
                    throw OpenFlowError(.groupModFailed, GroupModFailedCode.badType, "group type \(typeRaw) unknown")
                }
                groups.append(GroupDescription(type: groupType, groupID: groupID, buckets: try Bucket.decodeList(from: &element)))
            }
            body = .groupDesc(groups)
        case .groupFeatures:
            try fixed(40)
            let types = try reader.u32()
            let capabilities = try reader.u32()
            var maxGroups: [UInt32] = []
            for _ in 0..<4 { maxGroups.append(try reader.u32()) }
            var actions: [UInt32] = []
            for _ in 0..<4 { actions.append(try reader.u32()) }
            body = .groupFeatures(GroupFeatures(types: types, capabilities: capabilities, maxGroups: maxGroups, actions: actions))
        case .meterConfig:
            var meters: [MeterConfig] = []
            for var element in try elements(&reader, minimum: 8, "meter config") {
                let flags = try element.u16()
                let meterID = try element.u32()
                var bands: [MeterBand] = []
                while !element.isAtEnd {
                    let bandType = try element.u16()
                    let length = try element.u16()
                    guard length == 16 else {
                        throw OpenFlowError(.meterModFailed, MeterModFailedCode.badBand, "meter band length \(length), expected 16")
                    }
                    let rate = try element.u32()
                    let burst = try element.u32()
                    if bandType == 0xffff {
                        bands.append(MeterBand(type: bandType, rate: rate, burstSize: burst, experimenter: try element.u32()))
                    } else {
                        let precedence = try element.u8()
                        try element.skip(3)
                        bands.append(MeterBand(type: bandType, rate: rate, burstSize: burst, precedenceLevel: precedence))
                    }
                }
                meters.append(MeterConfig(flags: flags, meterID: meterID, bands: bands))
            }
            body = .meterConfig(meters)
        case .meterFeatures:
            try fixed(16)
            let features = MeterFeatures(maxMeter: try reader.u32(), bandTypes: try reader.u32(),
                                         capabilities: try reader.u32(), maxBands: try reader.u8(), maxColor: try reader.u8())
            try reader.skip(2)
            body = .meterFeatures(features)
        case .queue, .group, .meter, .experimenter:
            throw OpenFlowError(.badRequest, BadRequestCode.badMultipart, "multipart type \(type) is not supported")
        }
        return MultipartReply(flags: flags, body: body)
    }

    // MARK: fragmentation

    /// Splits this reply into replies whose encoded messages are at most `maxMessageLength` bytes, each
    /// but the last flagged REPLY_MORE. Only list bodies can be split; a single element too large for
    /// one message is an error.
    public func fragments(maxMessageLength: Int = OpenFlowHeader.maxMessageLength) throws(OpenFlowError) -> [MultipartReply] {
        let budget = maxMessageLength - OpenFlowHeader.size - 8
        func split<T>(_ items: [T], _ make: ([T]) -> Body) throws(OpenFlowError) -> [MultipartReply] {
            var groups: [[T]] = []
            var current: [T] = []
            var used = 0
            for item in items {
                let size = MultipartReply(body: make([item])).encodedBodyLength
                guard size <= budget else {
                    throw .badRequestLength("one \(body.type) reply element of \(size) bytes exceeds a message")
                }
                if used + size > budget {
                    groups.append(current)
                    current = []
                    used = 0
                }
                current.append(item)
                used += size
            }
            groups.append(current)
            return groups.enumerated().map { index, group in
                MultipartReply(flags: index < groups.count - 1 ? MultipartReply.replyMore : 0, body: make(group))
            }
        }
        switch body {
        case .flow(let items): return try split(items, Body.flow)
        case .table(let items): return try split(items, Body.table)
        case .portStats(let items): return try split(items, Body.portStats)
        case .portDesc(let items): return try split(items, Body.portDesc)
        case .tableFeatures(let items): return try split(items, Body.tableFeatures)
        case .groupDesc(let items): return try split(items, Body.groupDesc)
        case .meterConfig(let items): return try split(items, Body.meterConfig)
        case .desc, .aggregate, .groupFeatures, .meterFeatures: return [self]
        }
    }

    /// Encoded size of the body after the 8-byte multipart header.
    var encodedBodyLength: Int {
        var writer = WireWriter()
        encode(into: &writer)
        return writer.count - 8
    }
}
