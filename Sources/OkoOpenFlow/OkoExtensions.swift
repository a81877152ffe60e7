// Oko's OpenFlow extension messages: Nicira experimenter messages
// {OFPT_EXPERIMENTER header, be32 experimenter 0x00002320, be32 subtype, body}, every field big-endian.
//
//   LOAD_FILTER_PROG (31)  be16 program id, 2 pad, be32 file length, ELF bytes (exactly file length)
//   UPDATE_MAP (32)        be16 program id, be16 map id, be32 key size, be32 value size, be32 entry count,
//                          then entry count x (key bytes, value bytes)
//   DUMP_MAP_REQUEST (33)  be16 program id, be16 map count, then map count x be16 map id
//   DUMP_MAP_REPLY (34)    be16 program id, be16 map count, then per map
//                          {be16 map id, 2 pad, be32 key size, be32 value size, be32 entry count, entries}
//
// Counts and sizes are multiplied with overflow checks and compared with the bytes actually present
// before any array is reserved, so a hostile count cannot cause a large allocation. Bad lengths are
// OFPET_BAD_REQUEST/OFPBRC_BAD_LEN.

/// Oko's experimenter error codes: OFPT_ERROR with type OFPET_EXPERIMENTER (0xffff), exp_code below and
/// experimenter 0x00002320. Unlike standard errors, whose data echoes the offending message, the data of
/// these errors is the reason as UTF-8 text (e.g. the verifier's explanation), at most 512 bytes.
public enum OkoErrorCode {
    /// LOAD_FILTER_PROG: the file is not a usable BPF ELF object.
    public static let badObject: UInt16 = 1
    /// LOAD_FILTER_PROG: the verifier refused the program.
    public static let verifierRefused: UInt16 = 2
    /// LOAD_FILTER_PROG: the program id is used by rules and cannot be replaced now.
    public static let programInUse: UInt16 = 3
    /// UPDATE_MAP / DUMP_MAP: no program with this id is loaded.
    public static let unknownProgram: UInt16 = 4
    /// UPDATE_MAP / DUMP_MAP: the program has no map with this id.
    public static let unknownMap: UInt16 = 5
    /// UPDATE_MAP: key or value size differ from the map's, or the map refused an entry (full, read-only).
    public static let badMapEntry: UInt16 = 6
}

extension OpenFlowError {
    /// An Oko experimenter error (`OkoErrorCode`); its reason travels on the wire as the error's data.
    public static func oko(_ code: UInt16, _ reason: String) -> OpenFlowError {
        OpenFlowError(.experimenter, code, reason)
    }
}

public enum OkoSubtype {
    public static let loadFilterProgram: UInt32 = 31
    public static let updateMap: UInt32 = 32
    public static let dumpMapRequest: UInt32 = 33
    public static let dumpMapReply: UInt32 = 34
}

/// One key/value pair of a BPF map.
public struct MapEntry: Hashable, Sendable {
    public var key: [UInt8]
    public var value: [UInt8]

    public init(key: [UInt8], value: [UInt8]) {
        self.key = key
        self.value = value
    }
}

/// The contents (or a slice of the contents) of one map of a filter program.
public struct MapDump: Hashable, Sendable {
    public var mapID: UInt16
    public var keySize: UInt32
    public var valueSize: UInt32
    public var entries: [MapEntry]

    public init(mapID: UInt16, keySize: UInt32, valueSize: UInt32, entries: [MapEntry]) {
        self.mapID = mapID
        self.keySize = keySize
        self.valueSize = valueSize
        self.entries = entries
    }
}

public enum OkoMessage: Hashable, Sendable {
    /// Load (or replace) filter program `programID` from an ELF object.
    case loadFilterProgram(programID: UInt16, elf: [UInt8])
    /// Insert or overwrite entries of one map.
    case updateMap(programID: UInt16, map: MapDump)
    /// Ask for the contents of the listed maps.
    case dumpMapRequest(programID: UInt16, mapIDs: [UInt16])
    case dumpMapReply(programID: UInt16, maps: [MapDump])

    public var subtype: UInt32 {
        switch self {
        case .loadFilterProgram: OkoSubtype.loadFilterProgram
        case .updateMap: OkoSubtype.updateMap
        case .dumpMapRequest: OkoSubtype.dumpMapRequest
        case .dumpMapReply: OkoSubtype.dumpMapReply
        }
    }

    /// Writes experimenter id, subtype and body (the OpenFlow header is written by the caller).
    func encode(into writer: inout WireWriter) {
        writer.u32(niciraExperimenterID)
        writer.u32(subtype)
        switch self {
        case .loadFilterProgram(let programID, let elf):
            writer.u16(programID)
            writer.zeros(2)
            writer.u32(UInt32(truncatingIfNeeded: elf.count))
            writer.append(elf)
        case .updateMap(let programID, let map):
            writer.u16(programID)
            writer.u16(map.mapID)
            writer.u32(map.keySize)
            writer.u32(map.valueSize)
            writer.u32(UInt32(truncatingIfNeeded: map.entries.count))
            Self.encodeEntries(map.entries, into: &writer)
        case .dumpMapRequest(let programID, let mapIDs):
            writer.u16(programID)
            writer.u16(UInt16(truncatingIfNeeded: mapIDs.count))
            for map in mapIDs { writer.u16(map) }
        case .dumpMapReply(let programID, let maps):
            writer.u16(programID)
            writer.u16(UInt16(truncatingIfNeeded: maps.count))
            for map in maps {
                writer.u16(map.mapID)
                writer.zeros(2)
                writer.u32(map.keySize)
                writer.u32(map.valueSize)
                writer.u32(UInt32(truncatingIfNeeded: map.entries.count))
                Self.encodeEntries(map.entries, into: &writer)
            }
        }
    }

    private static func encodeEntries(_ entries: [MapEntry], into writer: inout WireWriter) {
        for entry in entries {
            writer.append(entry.key)
            writer.append(entry.value)
        }
    }

    /// Decodes the body after experimenter id and subtype; nil if `subtype` is not one of Oko's.
    static func decode(subtype: UInt32, from reader: inout WireReader) throws(OpenFlowError) -> OkoMessage? {
        switch subtype {
        case OkoSubtype.loadFilterProgram:
            let programID = try reader.u16()
            try reader.skip(2)
            let fileLength = try reader.u32()
            guard UInt64(fileLength) == UInt64(reader.remaining) else {
                throw .badRequestLength("LOAD_FILTER_PROG file length \(fileLength) but \(reader.remaining) bytes follow")
            }
            return .loadFilterProgram(programID: programID, elf: reader.readRest())
        case OkoSubtype.updateMap:
            let programID = try reader.u16()
            let mapID = try reader.u16()
            let keySize = try reader.u32()
            let valueSize = try reader.u32()
            let count = try reader.u32()
            let entries = try decodeEntries(&reader, keySize: keySize, valueSize: valueSize, count: count, exact: true,
                                            what: "UPDATE_MAP")
            return .updateMap(programID: programID,
                              map: MapDump(mapID: mapID, keySize: keySize, valueSize: valueSize, entries: entries))
        case OkoSubtype.dumpMapRequest:
            let programID = try reader.u16()
            let count = Int(try reader.u16())
            guard count * 2 == reader.remaining else {
                throw .badRequestLength("DUMP_MAP_REQUEST map count \(count) but \(reader.remaining) bytes of ids")
            }
            var maps: [UInt16] = []
            maps.reserveCapacity(count)
            for _ in 0..<count { maps.append(try reader.u16()) }
            return .dumpMapRequest(programID: programID, mapIDs: maps)
        case OkoSubtype.dumpMapReply:
            let programID = try reader.u16()
            let count = Int(try reader.u16())
            // Each map header is 16 bytes: the count cannot exceed what the body could hold.
            guard count * 16 <= reader.remaining else {
                throw .badRequestLength("DUMP_MAP_REPLY map count \(count) cannot fit in \(reader.remaining) bytes")
            }
            var maps: [MapDump] = []
            maps.reserveCapacity(count)
            for index in 0..<count {
                let mapID = try reader.u16()
                try reader.skip(2)
                let keySize = try reader.u32()
                let valueSize = try reader.u32()
                let entryCount = try reader.u32()
                let entries = try decodeEntries(&reader, keySize: keySize, valueSize: valueSize, count: entryCount,
                                                exact: index == count - 1, what: "DUMP_MAP_REPLY map \(mapID)")
                maps.append(MapDump(mapID: mapID, keySize: keySize, valueSize: valueSize, entries: entries))
            }
            guard reader.isAtEnd else { throw .badRequestLength("DUMP_MAP_REPLY has \(reader.remaining) trailing bytes") }
            return .dumpMapReply(programID: programID, maps: maps)
        default:
            return nil
        }
    }

    /// Reads `count` key/value pairs after checking, without overflow, that they fit in the bytes left
    /// (and, if `exact`, that they use all of them).
    private static func decodeEntries(_ reader: inout WireReader, keySize: UInt32, valueSize: UInt32, count: UInt32,
                                      exact: Bool, what: String) throws(OpenFlowError) -> [MapEntry] {
        guard keySize > 0 else { throw .badRequestLength("\(what) key size is 0") }
        let entrySize = UInt64(keySize) + UInt64(valueSize)
        let (total, overflow) = entrySize.multipliedReportingOverflow(by: UInt64(count))
        let remaining = UInt64(reader.remaining)
        guard !overflow, total <= remaining, !exact || total == remaining else {
            throw .badRequestLength("\(what): \(count) entries of \(keySize)+\(valueSize) bytes do not fit \(remaining) bytes")
        }
        var entries: [MapEntry] = []
        entries.reserveCapacity(Int(count))
        for _ in 0..<count {
            let key = try reader.read(Int(keySize))
            let value = try reader.read(Int(valueSize))
            entries.append(MapEntry(key: key, value: value))
        }
        return entries
    }

    /// Splits a DUMP_MAP_REPLY whose encoding would exceed `maxMessageLength` into several replies, each
    /// holding a slice of the entries (a map may appear in several replies; each slice repeats its header).
    public static func dumpMapReplies(programID: UInt16, maps: [MapDump],
                                      maxMessageLength: Int = OpenFlowHeader.maxMessageLength) -> [OkoMessage] {
        let fixedOverhead = OpenFlowHeader.size + 8 + 4
        var replies: [OkoMessage] = []
        var current: [MapDump] = []
        var used = fixedOverhead
        func flush() {
            replies.append(.dumpMapReply(programID: programID, maps: current))
            current = []
            used = fixedOverhead
        }
        for map in maps {
            let entrySize = Int(map.keySize) + Int(map.valueSize)
            var pending = map.entries[...]
            repeat {
                if used + 16 + (pending.isEmpty ? 0 : entrySize) > maxMessageLength, !current.isEmpty { flush() }
                let fit = max(1, (maxMessageLength - used - 16) / max(entrySize, 1))
                let slice = pending.prefix(fit)
                pending = pending.dropFirst(slice.count)
                current.append(MapDump(mapID: map.mapID, keySize: map.keySize, valueSize: map.valueSize, entries: Array(slice)))
                used += 16 + slice.count * entrySize
            } while !pending.isEmpty
        }
        if !current.isEmpty || replies.isEmpty { flush() }
        return replies
    }
}
