// Actions (OpenFlow 1.3 section 7.2.5) and instructions (7.2.4).
//
// Every action and instruction is a TLV {type:16, len:16, ...} whose len includes the header and is a
// multiple of 8. Oko's SEND_MAPS action is a Nicira experimenter action:
//   {type 0xFFFF, len, experimenter 0x00002320, subtype:16 = 200, be16 program id, be16 map count,
//    be16 map ids..., zero padding to a multiple of 8}.
// It asks the switch to send the listed maps of the program to the controller (as DUMP_MAP_REPLY).

/// One OpenFlow 1.3 action.
public enum Action: Hashable, Sendable {
    /// Output to `port`; `maxLength` bytes of the packet go to the controller when port is CONTROLLER.
    case output(port: UInt32, maxLength: UInt16 = 0xffff)
    case copyTTLOut
    case copyTTLIn
    case setMPLSTTL(UInt8)
    case decMPLSTTL
    case pushVLAN(ethertype: UInt16)
    case popVLAN
    case pushMPLS(ethertype: UInt16)
    case popMPLS(ethertype: UInt16)
    case setQueue(UInt32)
    case group(UInt32)
    case setNWTTL(UInt8)
    case decNWTTL
    case setField(MatchField)
    /// Oko: send maps `mapIDs` of filter program `programID` to the controller.
    case sendMaps(programID: UInt16, mapIDs: [UInt16])
    /// Any other experimenter action, kept as raw bytes after the experimenter id.
    case experimenter(id: UInt32, data: [UInt8])
}

/// Oko's Nicira action subtype for SEND_MAPS.
public let okoSendMapsActionSubtype: UInt16 = 200

/// One OpenFlow 1.3 instruction.
public enum Instruction: Hashable, Sendable {
    case gotoTable(UInt8)
    case writeMetadata(UInt64, mask: UInt64)
    case writeActions([Action])
    case applyActions([Action])
    case clearActions
    case meter(UInt32)
    case experimenter(id: UInt32, data: [UInt8])
}

private func actionError(_ code: UInt16, _ reason: String) -> OpenFlowError {
    OpenFlowError(.badAction, code, reason)
}

extension Action {
    func encode(into writer: inout WireWriter) {
        let start = writer.count
        func header(_ type: UInt16, _ length: UInt16) {
            writer.u16(type)
            writer.u16(length)
        }
        switch self {
        case .output(let port, let maxLength):
            header(0, 16); writer.u32(port); writer.u16(maxLength); writer.zeros(6)
        case .copyTTLOut: header(11, 8); writer.zeros(4)
        case .copyTTLIn: header(12, 8); writer.zeros(4)
        case .setMPLSTTL(let ttl): header(15, 8); writer.u8(ttl); writer.zeros(3)
        case .decMPLSTTL: header(16, 8); writer.zeros(4)
        case .pushVLAN(let ethertype): header(17, 8); writer.u16(ethertype); writer.zeros(2)
        case .popVLAN: header(18, 8); writer.zeros(4)
        case .pushMPLS(let ethertype): header(19, 8); writer.u16(ethertype); writer.zeros(2)
        case .popMPLS(let ethertype): header(20, 8); writer.u16(ethertype); writer.zeros(2)
        case .setQueue(let queue): header(21, 8); writer.u32(queue)
        case .group(let group): header(22, 8); writer.u32(group)
        case .setNWTTL(let ttl): header(23, 8); writer.u8(ttl); writer.zeros(3)
        case .decNWTTL: header(24, 8); writer.zeros(4)
        case .setField(let field):
            header(25, 0)
            field.encodeOXM(into: &writer)
            writer.padTo8(since: start)
        case .sendMaps(let programID, let mapIDs):
            header(0xffff, 0)
            writer.u32(niciraExperimenterID)
            writer.u16(okoSendMapsActionSubtype)
            writer.u16(programID)
            writer.u16(UInt16(truncatingIfNeeded: mapIDs.count))
            for map in mapIDs { writer.u16(map) }
            writer.padTo8(since: start)
        case .experimenter(let id, let data):
            header(0xffff, 0)
            writer.u32(id)
            writer.append(data)
            writer.padTo8(since: start)
        }
        writer.patchU16(at: start + 2, UInt16(truncatingIfNeeded: writer.count - start))
    }

    /// Decodes one action; errors are OFPET_BAD_ACTION codes.
    static func decode(from reader: inout WireReader) throws(OpenFlowError) -> Action {
        guard let type = reader.peekU16(), let length16 = reader.peekU16(at: 2) else {
            throw actionError(BadActionCode.badLen, "action header truncated")
        }
        let length = Int(length16)
        guard length >= 8, length % 8 == 0, length <= reader.remaining else {
            throw actionError(BadActionCode.badLen,
                              "action type \(type) has length \(length) (must be a multiple of 8, at least 8, at most \(reader.remaining))")
        }
        var body = try reader.sub(length, truncationError: actionError(BadActionCode.badLen, "action type \(type) truncated"))
        try body.skip(4)
        func expect(_ expected: Int) throws(OpenFlowError) {
            guard length == expected else {
                throw actionError(BadActionCode.badLen, "action type \(type) has length \(length), expected \(expected)")
            }
        }
        switch type {
        case 0:
            try expect(16)
            let port = try body.u32()
            guard port != 0, port <= OpenFlowPort.max || port >= OpenFlowPort.inPort, port != OpenFlowPort.any else {
                throw actionError(BadActionCode.badOutPort, "output to invalid port 0x\(String(port, radix: 16))")
            }
            return .output(port: port, maxLength: try body.u16())
        case 11: try expect(8); return .copyTTLOut
        case 12: try expect(8); return .copyTTLIn
        case 15: try expect(8); return .setMPLSTTL(try body.u8())
        case 16: try expect(8); return .decMPLSTTL
        case 17, 19:
            try expect(8)
            let ethertype = try body.u16()
            let allowed: Set<UInt16> = type == 17 ? [0x8100, 0x88a8] : [0x8847, 0x8848]
            guard allowed.contains(ethertype) else {
                throw actionError(BadActionCode.badArgument, "push ethertype 0x\(String(ethertype, radix: 16)) not allowed")
            }
            return type == 17 ? .pushVLAN(ethertype: ethertype) : .pushMPLS(ethertype: ethertype)
        case 18: try expect(8); return .popVLAN
        case 20: try expect(8); return .popMPLS(ethertype: try body.u16())
        case 21: try expect(8); return .setQueue(try body.u32())
        case 22:
            try expect(8)
            let group = try body.u32()
            guard group <= OpenFlowGroup.max else {
                throw actionError(BadActionCode.badOutGroup, "group action to reserved group 0x\(String(group, radix: 16))")
            }
            return .group(group)
        case 23: try expect(8); return .setNWTTL(try body.u8())
        case 24: try expect(8); return .decNWTTL
        case 25:
            let field: MatchField
            do {
                field = try MatchField.decodeOXM(from: &body)
            } catch {
                // Map OXM errors to their set-field counterparts.
                let code: UInt16 = switch error.code {
                case BadMatchCode.badField: BadActionCode.badSetType
                case BadMatchCode.badLen: BadActionCode.badSetLen
                default: BadActionCode.badSetArgument
                }
                throw actionError(code, "set_field: \(error.reason)")
            }
            guard !field.hasMask else { throw actionError(BadActionCode.badSetArgument, "set_field value cannot be masked") }
            if case .filterProg = field { throw actionError(BadActionCode.badSetType, "filter_prog cannot be set") }
            guard body.remaining < 8 else { throw actionError(BadActionCode.badLen, "set_field has \(body.remaining) trailing bytes") }
            return .setField(field)
        case 0xffff:
            guard length >= 8 else { throw actionError(BadActionCode.badLen, "experimenter action too short") }
            let experimenter = try body.u32()
            if experimenter == niciraExperimenterID, body.peekU16() == okoSendMapsActionSubtype {
                guard length >= 16 else { throw actionError(BadActionCode.badLen, "SEND_MAPS shorter than 16 bytes") }
                try body.skip(2)
                let programID = try body.u16()
                let count = Int(try body.u16())
                guard count * 2 <= body.remaining, body.remaining - count * 2 < 8 else {
                    throw actionError(BadActionCode.badLen, "SEND_MAPS map count \(count) does not fit its length \(length)")
                }
                var maps: [UInt16] = []
                maps.reserveCapacity(count)
                for _ in 0..<count { maps.append(try body.u16()) }
                return .sendMaps(programID: programID, mapIDs: maps)
            }
            return .experimenter(id: experimenter, data: body.readRest())
        default:
            throw actionError(BadActionCode.badType, "unknown action type \(type)")
        }
    }

    static func encodeList(_ actions: [Action], into writer: inout WireWriter) {
        for action in actions { action.encode(into: &writer) }
    }

    static func decodeList(from reader: inout WireReader) throws(OpenFlowError) -> [Action] {
        var actions: [Action] = []
        while !reader.isAtEnd { actions.append(try decode(from: &reader)) }
        return actions
    }
}

private func instructionError(_ code: UInt16, _ reason: String) -> OpenFlowError {
    OpenFlowError(.badInstruction, code, reason)
}

extension Instruction {
    /// OFPIT_* type number.
    public var typeNumber: UInt16 {
        switch self {
        case .gotoTable: 1
        case .writeMetadata: 2
        case .writeActions: 3
        case .applyActions: 4
        case .clearActions: 5
        case .meter: 6
        case .experimenter: 0xffff
        }
    }

    func encode(into writer: inout WireWriter) {
        let start = writer.count
        writer.u16(typeNumber)
        writer.u16(0)
        switch self {
        case .gotoTable(let table): writer.u8(table); writer.zeros(3)
        case .writeMetadata(let metadata, let mask): writer.zeros(4); writer.u64(metadata); writer.u64(mask)
        case .writeActions(let actions), .applyActions(let actions):
            writer.zeros(4)
            Action.encodeList(actions, into: &writer)
        case .clearActions: writer.zeros(4)
        case .meter(let meter): writer.u32(meter)
        case .experimenter(let id, let data):
            writer.u32(id)
            writer.append(data)
            writer.padTo8(since: start)
        }
        writer.patchU16(at: start + 2, UInt16(truncatingIfNeeded: writer.count - start))
    }

    /// Decodes one instruction; errors are OFPET_BAD_INSTRUCTION codes (or OFPET_BAD_ACTION from the
    /// actions inside it).
    static func decode(from reader: inout WireReader) throws(OpenFlowError) -> Instruction {
        guard let type = reader.peekU16(), let length16 = reader.peekU16(at: 2) else {
            throw instructionError(BadInstructionCode.badLen, "instruction header truncated")
        }
        let length = Int(length16)
        guard length >= 8, length % 8 == 0, length <= reader.remaining else {
            throw instructionError(BadInstructionCode.badLen,
                                   "instruction type \(type) has length \(length) (must be a multiple of 8, at least 8, at most \(reader.remaining))")
        }
        var body = try reader.sub(length, truncationError: instructionError(BadInstructionCode.badLen, "instruction type \(type) truncated"))
        try body.skip(4)
        func expect(_ expected: Int) throws(OpenFlowError) {
            guard length == expected else {
                throw instructionError(BadInstructionCode.badLen, "instruction type \(type) has length \(length), expected \(expected)")
            }
        }
        switch type {
        case 1:
            try expect(8)
            let table = try body.u8()
            guard table < 0xff else { throw instructionError(BadInstructionCode.badTableID, "goto_table to table 255") }
            return .gotoTable(table)
        case 2:
            try expect(24)
            try body.skip(4)
            return .writeMetadata(try body.u64(), mask: try body.u64())
        case 3, 4:
            try body.skip(4)
            let actions = try Action.decodeList(from: &body)
            return type == 3 ? .writeActions(actions) : .applyActions(actions)
        case 5: try expect(8); return .clearActions
        case 6: try expect(8); return .meter(try body.u32())
        case 0xffff:
            return .experimenter(id: try body.u32(), data: body.readRest())
        default:
            throw instructionError(BadInstructionCode.unknownInstruction, "unknown instruction type \(type)")
        }
    }

    static func decodeList(from reader: inout WireReader) throws(OpenFlowError) -> [Instruction] {
        var instructions: [Instruction] = []
        var seen = Set<UInt16>()
        while !reader.isAtEnd {
            let instruction = try decode(from: &reader)
            // OpenFlow 1.3 allows each instruction type at most once per flow entry.
            guard seen.insert(instruction.typeNumber).inserted else {
                throw instructionError(BadInstructionCode.unsupportedInstruction,
                                       "instruction type \(instruction.typeNumber) appears twice")
            }
            instructions.append(instruction)
        }
        return instructions
    }
}
