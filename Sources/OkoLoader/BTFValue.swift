// Typed views of map keys and values: BTF-typed bytes <-> JSON-like values.
//
// `BTF.render(_:as:)` turns the bytes of a key or value into a `BTFValue` (structs become objects
// in member order, arrays lists, char arrays strings, enums their enumerator names, bitfields
// their numbers); `BTF.encode(_:as:)` is the reverse, for typed map updates. Both check every
// offset against the byte count and the type's size, so neither traps on a malformed type.

/// A JSON-like value, rendered from or encodable to bytes of a BTF type.
public indirect enum BTFValue: Hashable, Sendable, CustomStringConvertible {
    case signed(Int64)
    case unsigned(UInt64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([BTFValue])
    /// Struct/union members or data section variables, in declaration order.
    case object([Field])

    public struct Field: Hashable, Sendable {
        public let name: String
        public let value: BTFValue
        public init(name: String, value: BTFValue) {
            self.name = name
            self.value = value
        }
    }

    /// The member named `name` of an object.
    public subscript(name: String) -> BTFValue? {
        guard case .object(let fields) = self else { return nil }
        return fields.first { $0.name == name }?.value
    }

    /// Compact JSON text: `{"saddr": 167772161, "dport": 80}`.
    public var description: String {
        switch self {
        case .signed(let value): "\(value)"
        case .unsigned(let value): "\(value)"
        case .float(let value): value.isFinite ? "\(value)" : "null"
        case .bool(let value): value ? "true" : "false"
        case .string(let value): Self.quoted(value)
        case .array(let values): "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .object(let fields):
            "{" + fields.map { Self.quoted($0.name) + ": " + $0.value.description }.joined(separator: ", ") + "}"
        }
    }

    private static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            case "\r": result += "\\r"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}

extension BTF {
    /// One member as a renderer sees it: anonymous struct/union members are flattened into their
    /// parent, with absolute bit offsets.
    private struct FlatMember {
        let name: String
        let typeID: UInt32
        let bitOffset: Int
        let bitfieldSize: Int
    }

    private func flatMembers(_ members: [BTFMember], baseBit: Int, depth: Int) throws(BPFLoaderError) -> [FlatMember] {
        guard depth < Self.maximumDepth else { throw .invalidBTF("members nested too deep or cyclic") }
        var result: [FlatMember] = []
        for member in members {
            let bit = baseBit + Int(member.bitOffset)
            let resolved = try resolvedID(member.typeID)
            if member.name.isEmpty, case .structure(_, let inner) = types[Int(resolved)].kind {
                result.append(contentsOf: try flatMembers(inner, baseBit: bit, depth: depth + 1))
            } else if member.name.isEmpty, case .union(_, let inner) = types[Int(resolved)].kind {
                result.append(contentsOf: try flatMembers(inner, baseBit: bit, depth: depth + 1))
            } else {
                // Anonymous members nest; a hostile type could multiply them without bound.
                guard result.count < Self.renderBudget else { throw .invalidBTF("struct with more than \(Self.renderBudget) members") }
                result.append(FlatMember(name: member.name, typeID: member.typeID, bitOffset: bit, bitfieldSize: Int(member.bitfieldSize)))
            }
            guard result.count <= Self.renderBudget else { throw .invalidBTF("struct with more than \(Self.renderBudget) members") }
        }
        return result
    }

    private func isCharacter(_ id: UInt32) throws(BPFLoaderError) -> Bool {
        let resolved = types[Int(try resolvedID(id))]
        guard case .integer(let size, _, let isChar, _, _, _) = resolved.kind else { return false }
        return size == 1 && (isChar || resolved.name.hasSuffix("char"))
    }

    // MARK: rendering

    /// `bytes` (at least `size(of: typeID)` of them) as a value of type `typeID`.
    public func render(_ bytes: [UInt8], as typeID: UInt32) throws(BPFLoaderError) -> BTFValue {
        let size = try size(of: typeID)
        guard bytes.count >= size else {
            throw .typeMismatch("\(bytes.count) bytes are too few for \(typeName(typeID)) (\(size) bytes)")
        }
        var budget = Self.renderBudget
        return try render(ByteReader(bytes, context: typeName(typeID)), at: 0, typeID, depth: 0, budget: &budget)
    }

    /// Most values one render may produce: overlapping members of a hostile type could otherwise
    /// multiply into billions.
    static let renderBudget = 1 << 20

    private func render(_ reader: ByteReader, at offset: Int, _ id: UInt32, depth: Int, budget: inout Int) throws(BPFLoaderError) -> BTFValue {
        guard depth < Self.maximumDepth else { throw .invalidBTF("type \(id) nested too deep or cyclic") }
        budget -= 1
        guard budget >= 0 else { throw .typeMismatch("\(typeName(id)) expands to more than \(Self.renderBudget) values") }
        let resolved = try resolvedID(id)
        switch types[Int(resolved)].kind {
        case .integer(let size, let isSigned, _, let isBool, let bitOffset, let bits):
            if size > 8 {
                let bytes = try reader.slice(offset, size)
                return .string("0x" + bytes.reversed().map { String($0, radix: 16).leftPadded(to: 2) }.joined())
            }
            let raw = try readInteger(reader, at: offset, size: size)
            let width = bits > 0 && bits < size * 8 ? bits : size * 8
            let value = bitOffset > 0 || width < size * 8 ? (raw >> UInt64(min(bitOffset, 63))) & Self.mask(width) : raw
            if isBool { return .bool(value != 0) }
            return isSigned ? .signed(Self.signExtend(value, width: width)) : .unsigned(value)
        case .pointer:
            return .unsigned(try reader.u64(at: offset))
        case .enumeration(let size, let isSigned, let values):
            let raw = try readInteger(reader, at: offset, size: size)
            let value = isSigned ? Self.signExtend(raw, width: size * 8) : Int64(bitPattern: raw)
            if let match = values.first(where: { $0.value == value || (!isSigned && UInt64(bitPattern: $0.value) & Self.mask(size * 8) == raw) }) {
                return .string(match.name)
            }
            return isSigned ? .signed(value) : .unsigned(raw)
        case .float(let size):
            switch size {
            case 4: return .float(Double(Float(bitPattern: try reader.u32(at: offset))))
            case 8: return .float(Double(bitPattern: try reader.u64(at: offset)))
            default: throw .typeMismatch("\(size)-byte floats cannot be rendered")
            }
        case .array(let element, _, let count):
            let elementSize = try size(of: element)
            if try isCharacter(element) {
                let bytes = try reader.slice(offset, Int(count))
                let text = bytes.prefix { $0 != 0 }
                if text.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }), bytes.dropFirst(text.count).allSatisfy({ $0 == 0 }) {
                    return .string(String(decoding: text, as: UTF8.self))
                }
            }
            guard elementSize > 0 || count == 0 else { throw .invalidBTF("array of zero-sized \(typeName(element))") }
            let (total, overflow) = elementSize.multipliedReportingOverflow(by: Int(count))
            guard !overflow else { throw .invalidBTF("array \(typeName(resolved)) too large") }
            try reader.checkRange(offset, total)
            var values: [BTFValue] = []
            for index in 0..<Int(count) {
                values.append(try render(reader, at: offset + index * elementSize, element, depth: depth + 1, budget: &budget))
            }
            return .array(values)
        case .structure(_, let members), .union(_, let members):
            var fields: [BTFValue.Field] = []
            for member in try flatMembers(members, baseBit: 0, depth: depth) {
                let value: BTFValue
                if member.bitfieldSize > 0 {
                    let raw = try readBits(reader, bit: offset * 8 + member.bitOffset, width: member.bitfieldSize)
                    let isSigned: Bool
                    if case .integer(_, let signed, _, _, _, _) = types[Int(try resolvedID(member.typeID))].kind { isSigned = signed } else { isSigned = false }
                    value = isSigned ? .signed(Self.signExtend(raw, width: member.bitfieldSize)) : .unsigned(raw)
                } else {
                    guard member.bitOffset % 8 == 0 else { throw .invalidBTF("member \(member.name) is not byte aligned") }
                    value = try render(reader, at: offset + member.bitOffset / 8, member.typeID, depth: depth + 1, budget: &budget)
                }
                fields.append(.init(name: member.name, value: value))
            }
            return .object(fields)
        case .dataSection(_, let variables):
            var fields: [BTFValue.Field] = []
            for variable in variables {
                let name = type(variable.typeID)?.name ?? ""
                fields.append(.init(name: name, value: try render(reader, at: offset + Int(variable.offset), variable.typeID, depth: depth + 1, budget: &budget)))
            }
            return .object(fields)
        case .variable(let target, _):
            return try render(reader, at: offset, target, depth: depth + 1, budget: &budget)
        default:
            throw .typeMismatch("values of \(typeName(resolved)) (\(types[Int(resolved)].kindName)) cannot be rendered")
        }
    }

    private func readInteger(_ reader: ByteReader, at offset: Int, size: Int) throws(BPFLoaderError) -> UInt64 {
        switch size {
        case 1: UInt64(try reader.u8(at: offset))
        case 2: UInt64(try reader.u16(at: offset))
        case 4: UInt64(try reader.u32(at: offset))
        case 8: try reader.u64(at: offset)
        default:
            throw .typeMismatch("\(size)-byte integers are not supported")
        }
    }

    private func readBits(_ reader: ByteReader, bit: Int, width: Int) throws(BPFLoaderError) -> UInt64 {
        guard width <= 64 else { throw .invalidBTF("bitfield of \(width) bits") }
        var value: UInt64 = 0
        for index in 0..<width {
            let position = bit + index
            let byte = try reader.u8(at: position / 8)
            value |= UInt64((byte >> UInt8(position % 8)) & 1) << UInt64(index)
        }
        return value
    }

    private static func mask(_ width: Int) -> UInt64 { width >= 64 ? .max : (1 << UInt64(width)) - 1 }

    private static func signExtend(_ value: UInt64, width: Int) -> Int64 {
        guard width > 0, width < 64 else { return Int64(bitPattern: value) }
        let shift = UInt64(64 - width)
        return Int64(bitPattern: value << shift) >> Int64(shift)
    }

    // MARK: encoding

    /// The bytes of `value` as type `typeID` (`size(of: typeID)` of them). Missing struct members
    /// and array tails are zero; unknown members, out-of-range numbers and wrong shapes throw.
    public func encode(_ value: BTFValue, as typeID: UInt32) throws(BPFLoaderError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: try size(of: typeID))
        try write(value, into: &bytes, bit: 0, typeID, path: typeName(typeID), depth: 0)
        return bytes
    }

    private func write(_ value: BTFValue, into bytes: inout [UInt8], bit: Int, _ id: UInt32, path: String, depth: Int) throws(BPFLoaderError) {
        guard depth < Self.maximumDepth else { throw .invalidBTF("type \(id) nested too deep or cyclic") }
        let resolved = try resolvedID(id)
        switch types[Int(resolved)].kind {
        case .integer(let size, let isSigned, _, let isBool, let bitOffset, let bits):
            guard size <= 8 else { throw .typeMismatch("\(path): \(size)-byte integers are not supported") }
            let width = bits > 0 && bits < size * 8 ? bits : size * 8
            if isBool, case .bool(let flag) = value {
                try writeBits(flag ? 1 : 0, into: &bytes, bit: bit + bitOffset, width: width, path: path)
                return
            }
            try writeBits(try integer(value, width: width, isSigned: isSigned, path: path), into: &bytes, bit: bit + bitOffset, width: width, path: path)
        case .pointer:
            try writeBits(try integer(value, width: 64, isSigned: false, path: path), into: &bytes, bit: bit, width: 64, path: path)
        case .enumeration(let size, let isSigned, let values):
            if case .string(let name) = value, let match = values.first(where: { $0.name == name }) {
                try writeBits(UInt64(bitPattern: match.value) & Self.mask(size * 8), into: &bytes, bit: bit, width: size * 8, path: path)
            } else {
                try writeBits(try integer(value, width: size * 8, isSigned: isSigned, path: path), into: &bytes, bit: bit, width: size * 8, path: path)
            }
        case .float(let size):
            let number: Double
            switch value {
            case .float(let double): number = double
            case .signed(let integer): number = Double(integer)
            case .unsigned(let integer): number = Double(integer)
            default: throw .typeMismatch("\(path): expected a number, got \(value)")
            }
            switch size {
            case 4: try writeBits(UInt64(Float(number).bitPattern), into: &bytes, bit: bit, width: 32, path: path)
            case 8: try writeBits(number.bitPattern, into: &bytes, bit: bit, width: 64, path: path)
            default: throw .typeMismatch("\(path): \(size)-byte floats are not supported")
            }
        case .array(let element, _, let count):
            let elementBits = try size(of: element) * 8
            if case .string(let text) = value, try isCharacter(element) {
                let utf8 = Array(text.utf8)
                guard utf8.count <= Int(count) else { throw .typeMismatch("\(path): \"\(text)\" is longer than \(count) bytes") }
                for (index, byte) in utf8.enumerated() {
                    try writeBits(UInt64(byte), into: &bytes, bit: bit + index * 8, width: 8, path: path)
                }
                return
            }
            guard case .array(let values) = value else { throw .typeMismatch("\(path): expected a list, got \(value)") }
            guard values.count <= Int(count) else { throw .typeMismatch("\(path): \(values.count) elements for an array of \(count)") }
            for (index, element) in zip(values.indices, values) {
                try write(element, into: &bytes, bit: bit + index * elementBits, self.types[Int(resolved)].kind.arrayElement!, path: "\(path)[\(index)]", depth: depth + 1)
            }
        case .structure(_, let members), .union(_, let members):
            guard case .object(let fields) = value else { throw .typeMismatch("\(path): expected an object, got \(value)") }
            let flat = try flatMembers(members, baseBit: 0, depth: depth)
            for field in fields {
                guard let member = flat.first(where: { $0.name == field.name }) else {
                    throw .typeMismatch("\(path) has no member \(field.name) (members: \(flat.map(\.name).joined(separator: ", ")))")
                }
                let memberPath = "\(path).\(field.name)"
                if member.bitfieldSize > 0 {
                    var isSigned = false
                    if case .integer(_, let signed, _, _, _, _) = types[Int(try resolvedID(member.typeID))].kind { isSigned = signed }
                    let number = try integer(field.value, width: member.bitfieldSize, isSigned: isSigned, path: memberPath)
                    try writeBits(number, into: &bytes, bit: bit + member.bitOffset, width: member.bitfieldSize, path: memberPath)
                } else {
                    try write(field.value, into: &bytes, bit: bit + member.bitOffset, member.typeID, path: memberPath, depth: depth + 1)
                }
            }
        case .dataSection(_, let variables):
            guard case .object(let fields) = value else { throw .typeMismatch("\(path): expected an object, got \(value)") }
            for field in fields {
                guard let variable = variables.first(where: { type($0.typeID)?.name == field.name }) else {
                    throw .typeMismatch("\(path) has no variable \(field.name)")
                }
                try write(field.value, into: &bytes, bit: bit + Int(variable.offset) * 8, variable.typeID, path: "\(path).\(field.name)", depth: depth + 1)
            }
        case .variable(let target, _):
            try write(value, into: &bytes, bit: bit, target, path: path, depth: depth + 1)
        default:
            throw .typeMismatch("\(path): values of \(typeName(resolved)) cannot be encoded")
        }
    }

    /// `value` as the low `width` bits of a two's-complement integer, if it fits.
    private func integer(_ value: BTFValue, width: Int, isSigned: Bool, path: String) throws(BPFLoaderError) -> UInt64 {
        let number: Int64?
        let unsignedNumber: UInt64?
        switch value {
        case .signed(let integer): (number, unsignedNumber) = (integer, integer >= 0 ? UInt64(integer) : nil)
        case .unsigned(let integer): (number, unsignedNumber) = (Int64(exactly: integer), integer)
        case .bool(let flag): (number, unsignedNumber) = (flag ? 1 : 0, flag ? 1 : 0)
        case .float(let double) where double.rounded() == double:
            (number, unsignedNumber) = (Int64(exactly: double), UInt64(exactly: double))
        case .string(let text):
            let parsed = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
            guard let parsed else { throw .typeMismatch("\(path): \"\(text)\" is not a number") }
            (number, unsignedNumber) = (Int64(exactly: parsed), parsed)
        default:
            throw .typeMismatch("\(path): expected a number, got \(value)")
        }
        if isSigned, let number {
            let low = width >= 64 ? Int64.min : -(Int64(1) << Int64(width - 1))
            let high = width >= 64 ? Int64.max : (Int64(1) << Int64(width - 1)) - 1
            guard number >= low, number <= high else { throw .typeMismatch("\(path): \(value) does not fit \(width) signed bits") }
            return UInt64(bitPattern: number) & Self.mask(width)
        }
        guard let unsignedNumber, unsignedNumber <= Self.mask(width) else {
            throw .typeMismatch("\(path): \(value) does not fit \(width) unsigned bits")
        }
        return unsignedNumber
    }

    private func writeBits(_ value: UInt64, into bytes: inout [UInt8], bit: Int, width: Int, path: String) throws(BPFLoaderError) {
        guard bit >= 0, width <= 64, bit + width <= bytes.count * 8 else {
            throw .invalidBTF("\(path): bits \(bit)..<\(bit + width) outside the value's \(bytes.count) bytes")
        }
        if bit % 8 == 0, width % 8 == 0 {
            for index in 0..<width / 8 { bytes[bit / 8 + index] = UInt8(truncatingIfNeeded: value >> UInt64(index * 8)) }
            return
        }
        for index in 0..<width {
            let position = bit + index
            let mask = UInt8(1) << UInt8(position % 8)
            if (value >> UInt64(index)) & 1 != 0 { bytes[position / 8] |= mask } else { bytes[position / 8] &= ~mask }
        }
    }
}

extension BTFKind {
    fileprivate var arrayElement: UInt32? {
        if case .array(let element, _, _) = self { element } else { nil }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
