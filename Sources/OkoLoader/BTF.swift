// BTF (BPF Type Format) as the loader keeps it: the type section of `.BTF`, decoded into values.
//
// Design note
// - `BTF.types[id]` is the type with that id; id 0 is `void`. Every type id stored in a type is
//   checked at parse time to be in range, so lookups by stored ids cannot fail; cycles (which only a
//   corrupted section contains) are caught by a depth limit in every recursive walk.
// - Immutable and `Sendable` once built; shared by all readers of a loaded object.
// - Layout: a 24-byte header (magic 0xEB9F, version 1), then the type and string sections at
//   offsets relative to the end of the header (include/uapi/linux/btf.h).

/// A member of a struct or union.
public struct BTFMember: Hashable, Sendable {
    public let name: String
    public let typeID: UInt32
    /// Offset of the member from the start of its struct, in bits.
    public let bitOffset: UInt32
    /// Width of a bitfield member in bits; 0 for an ordinary member.
    public let bitfieldSize: UInt32
}

public struct BTFEnumerator: Hashable, Sendable {
    public let name: String
    public let value: Int64
}

public struct BTFParameter: Hashable, Sendable {
    public let name: String
    public let typeID: UInt32
}

/// One variable inside a data section (`.data`, `.maps`, ...).
public struct BTFSectionVariable: Hashable, Sendable {
    public let typeID: UInt32
    public let offset: UInt32
    public let size: UInt32
}

public enum BTFKind: Hashable, Sendable {
    case void
    /// `bitOffset`/`bits`: the value occupies `bits` bits starting `bitOffset` bits into `size` bytes.
    case integer(size: Int, isSigned: Bool, isChar: Bool, isBool: Bool, bitOffset: Int, bits: Int)
    case pointer(to: UInt32)
    case array(element: UInt32, index: UInt32, count: UInt32)
    case structure(size: Int, members: [BTFMember])
    case union(size: Int, members: [BTFMember])
    /// ENUM and ENUM64.
    case enumeration(size: Int, isSigned: Bool, values: [BTFEnumerator])
    case forward(isUnion: Bool)
    case typedef(UInt32)
    case volatile(UInt32)
    case const(UInt32)
    case restrict(UInt32)
    case function(prototype: UInt32, linkage: UInt32)
    case functionPrototype(returnType: UInt32, parameters: [BTFParameter])
    case variable(type: UInt32, linkage: UInt32)
    case dataSection(size: Int, variables: [BTFSectionVariable])
    case float(size: Int)
    case declarationTag(type: UInt32, component: Int32)
    case typeTag(UInt32)
}

public struct BTFType: Hashable, Sendable {
    public let id: UInt32
    /// Empty for anonymous types.
    public let name: String
    public let kind: BTFKind
}

public struct BTF: Sendable {
    /// Indexed by type id; `types[0]` is `void`.
    public private(set) var types: [BTFType]

    /// Deepest chain of typedefs/arrays/members followed before a type is declared cyclic.
    static let maximumDepth = 64

    public func type(_ id: UInt32) -> BTFType? {
        Int(id) < types.count ? types[Int(id)] : nil
    }

    /// The first type with `name` (and, if given, whose kind passes `where`).
    public func typeID(named name: String, where predicate: (BTFKind) -> Bool = { _ in true }) -> UInt32? {
        types.first { $0.name == name && predicate($0.kind) }?.id
    }

    /// Follows typedef, const, volatile, restrict and type tags to the underlying type's id.
    public func resolvedID(_ id: UInt32) throws(BPFLoaderError) -> UInt32 {
        var current = id
        for _ in 0..<Self.maximumDepth {
            guard let type = type(current) else { throw .invalidBTF("type id \(current) out of range") }
            switch type.kind {
            case .typedef(let next), .volatile(let next), .const(let next), .restrict(let next), .typeTag(let next):
                current = next
            default:
                return current
            }
        }
        throw .invalidBTF("type \(id): typedef chain too deep or cyclic")
    }

    /// The size in bytes of a value of type `id`.
    public func size(of id: UInt32) throws(BPFLoaderError) -> Int {
        try size(of: id, depth: 0)
    }

    private func size(of id: UInt32, depth: Int) throws(BPFLoaderError) -> Int {
        guard depth < Self.maximumDepth else { throw .invalidBTF("type \(id): nesting too deep or cyclic") }
        let resolved = try resolvedID(id)
        guard let type = type(resolved) else { throw .invalidBTF("type id \(resolved) out of range") }
        switch type.kind {
        case .integer(let size, _, _, _, _, _), .structure(let size, _), .union(let size, _),
            .enumeration(let size, _, _), .dataSection(let size, _), .float(let size):
            return size
        case .pointer:
            return 8
        case .array(let element, _, let count):
            let elementSize = try size(of: element, depth: depth + 1)
            let (total, overflow) = elementSize.multipliedReportingOverflow(by: Int(count))
            guard !overflow, total <= Int(UInt32.max) else { throw .invalidBTF("array type \(id) too large") }
            return total
        case .variable(let target, _):
            return try size(of: target, depth: depth + 1)
        default:
            throw .invalidBTF("type \(id) (\(type.kindName)) has no size")
        }
    }

    /// A C-like name for `id`: `struct flow_key`, `__u32`, `unsigned char[4]`, `void *`.
    public func typeName(_ id: UInt32) -> String {
        typeName(id, depth: 0)
    }

    private func typeName(_ id: UInt32, depth: Int) -> String {
        guard depth < Self.maximumDepth, let type = type(id) else { return "<invalid>" }
        let name = type.name.isEmpty ? "(anon)" : type.name
        switch type.kind {
        case .void: return "void"
        case .integer, .float, .typedef: return name
        case .pointer(let target): return typeName(target, depth: depth + 1) + " *"
        case .array(let element, _, let count): return typeName(element, depth: depth + 1) + "[\(count)]"
        case .structure: return "struct \(name)"
        case .union: return "union \(name)"
        case .enumeration: return "enum \(name)"
        case .forward(let isUnion): return (isUnion ? "union " : "struct ") + name
        case .volatile(let target): return "volatile " + typeName(target, depth: depth + 1)
        case .const(let target): return "const " + typeName(target, depth: depth + 1)
        case .restrict(let target): return typeName(target, depth: depth + 1) + " restrict"
        case .typeTag(let target): return typeName(target, depth: depth + 1)
        case .function: return "function \(name)"
        case .functionPrototype: return "function prototype"
        case .variable(let target, _): return typeName(target, depth: depth + 1) + " " + name
        case .dataSection: return "section \(name)"
        case .declarationTag(let target, _): return typeName(target, depth: depth + 1)
        }
    }

    /// A one-line C-like description of `id`, expanding structs, unions and enums one level:
    /// `struct flow_key { __u32 saddr; __u16 dport; } (8 bytes)`.
    public func describe(_ id: UInt32) -> String {
        let sizeText = (try? size(of: id)).map { " (\($0) bytes)" } ?? ""
        guard let resolved = try? resolvedID(id), let type = type(resolved) else { return typeName(id) }
        let prefix = resolved == id ? "" : typeName(id) + " = "
        switch type.kind {
        case .structure(_, let members), .union(_, let members):
            let fields = members.map { member in
                let bits = member.bitfieldSize > 0 ? " : \(member.bitfieldSize)" : ""
                return "\(typeName(member.typeID)) \(member.name)\(bits);"
            }
            return prefix + typeName(resolved) + " { " + fields.joined(separator: " ") + " }" + sizeText
        case .enumeration(_, _, let values):
            let list = values.map { "\($0.name) = \($0.value)" }.joined(separator: ", ")
            return prefix + typeName(resolved) + " { " + list + " }" + sizeText
        default:
            return prefix + typeName(resolved) + sizeText
        }
    }

    /// Gives data sections the sizes and variable offsets of the ELF sections they describe:
    /// clang emits some DATASECs with size 0 and offsets 0, and libbpf fixes them up the same way.
    mutating func fixDataSections(sectionSizes: [String: Int], variableOffsets: [String: [String: UInt64]]) {
        for index in types.indices {
            guard case .dataSection(_, let variables) = types[index].kind,
                let size = sectionSizes[types[index].name]
            else { continue }
            let offsets = variableOffsets[types[index].name] ?? [:]
            let fixed = variables.map { variable -> BTFSectionVariable in
                guard let name = type(variable.typeID)?.name, let offset = offsets[name], offset <= UInt64(UInt32.max)
                else { return variable }
                return BTFSectionVariable(typeID: variable.typeID, offset: UInt32(offset), size: variable.size)
            }
            types[index] = BTFType(id: types[index].id, name: types[index].name, kind: .dataSection(size: size, variables: fixed))
        }
    }
}

extension BTFType {
    /// The kind's name as in bpftool's output (INT, STRUCT, ...).
    public var kindName: String {
        switch kind {
        case .void: "VOID"
        case .integer: "INT"
        case .pointer: "PTR"
        case .array: "ARRAY"
        case .structure: "STRUCT"
        case .union: "UNION"
        case .enumeration: "ENUM"
        case .forward: "FWD"
        case .typedef: "TYPEDEF"
        case .volatile: "VOLATILE"
        case .const: "CONST"
        case .restrict: "RESTRICT"
        case .function: "FUNC"
        case .functionPrototype: "FUNC_PROTO"
        case .variable: "VAR"
        case .dataSection: "DATASEC"
        case .float: "FLOAT"
        case .declarationTag: "DECL_TAG"
        case .typeTag: "TYPE_TAG"
        }
    }
}

// MARK: - Parsing

extension BTF {
    static let magic: UInt16 = 0xeb9f

    /// Decodes the contents of a `.BTF` section.
    init(section bytes: [UInt8]) throws(BPFLoaderError) {
        let header = ByteReader(bytes, context: ".BTF header")
        guard try header.u16(at: 0) == Self.magic else { throw .invalidBTF("bad magic (not 0xEB9F little-endian)") }
        guard try header.u8(at: 2) == 1 else { throw .invalidBTF("version \(try header.u8(at: 2)) is not 1") }
        let headerLength = Int(try header.u32(at: 4))
        guard headerLength >= 24, headerLength <= bytes.count else { throw .invalidBTF("header length \(headerLength)") }
        let typeOffset = Int(try header.u32(at: 8))
        let typeLength = Int(try header.u32(at: 12))
        let stringOffset = Int(try header.u32(at: 16))
        let stringLength = Int(try header.u32(at: 20))
        let body = ByteReader(Array(bytes[headerLength...]), context: ".BTF")
        do {
            try body.checkRange(typeOffset, typeLength)
            try body.checkRange(stringOffset, stringLength)
        } catch {
            throw .invalidBTF("type or string section outside .BTF")
        }
        let strings = ByteReader(try body.slice(stringOffset, stringLength), context: ".BTF strings")
        let typeData = ByteReader(try body.slice(typeOffset, typeLength), context: ".BTF types")

        func string(_ offset: UInt32) throws(BPFLoaderError) -> String {
            guard Int(offset) < max(strings.bytes.count, 1) else { throw .invalidBTF("string offset \(offset) out of range") }
            return strings.bytes.isEmpty ? "" : try strings.cString(at: Int(offset))
        }

        var types = [BTFType(id: 0, name: "", kind: .void)]
        var position = 0
        var referenced: [UInt32] = []
        while position < typeData.bytes.count {
            let id = UInt32(types.count)
            let name = try string(try typeData.u32(at: position))
            let info = try typeData.u32(at: position + 4)
            let sizeOrType = try typeData.u32(at: position + 8)
            position += 12
            let vlen = Int(info & 0xffff)
            let kindFlag = info >> 31 != 0
            let kind: BTFKind
            switch (info >> 24) & 0x1f {
            case 1:
                let encoding = try typeData.u32(at: position)
                position += 4
                kind = .integer(
                    size: Int(sizeOrType), isSigned: encoding >> 24 & 1 != 0, isChar: encoding >> 24 & 2 != 0,
                    isBool: encoding >> 24 & 4 != 0, bitOffset: Int(encoding >> 16 & 0xff), bits: Int(encoding & 0xff))
                guard sizeOrType >= 1, sizeOrType <= 16 else { throw .invalidBTF("integer type \(id) of size \(sizeOrType)") }
            case 2:
                kind = .pointer(to: sizeOrType)
                referenced.append(sizeOrType)
            case 3:
                let element = try typeData.u32(at: position)
                let index = try typeData.u32(at: position + 4)
                let count = try typeData.u32(at: position + 8)
                position += 12
                kind = .array(element: element, index: index, count: count)
                referenced += [element, index]
            case 4, 5:
                var members: [BTFMember] = []
                for _ in 0..<vlen {
                    let memberName = try string(try typeData.u32(at: position))
                    let memberType = try typeData.u32(at: position + 4)
                    let offset = try typeData.u32(at: position + 8)
                    position += 12
                    members.append(
                        BTFMember(
                            name: memberName, typeID: memberType,
                            bitOffset: kindFlag ? offset & 0xff_ffff : offset, bitfieldSize: kindFlag ? offset >> 24 : 0))
                    referenced.append(memberType)
                }
                kind = (info >> 24) & 0x1f == 4
                    ? .structure(size: Int(sizeOrType), members: members) : .union(size: Int(sizeOrType), members: members)
            case 6, 19:
                let is64 = (info >> 24) & 0x1f == 19
                var values: [BTFEnumerator] = []
                for _ in 0..<vlen {
                    let valueName = try string(try typeData.u32(at: position))
                    let low = try typeData.u32(at: position + 4)
                    var value = kindFlag ? Int64(Int32(bitPattern: low)) : Int64(low)
                    if is64 {
                        value = Int64(bitPattern: UInt64(try typeData.u32(at: position + 8)) << 32 | UInt64(low))
                    }
                    position += is64 ? 12 : 8
                    values.append(BTFEnumerator(name: valueName, value: value))
                }
                guard [1, 2, 4, 8].contains(sizeOrType) else { throw .invalidBTF("enum type \(id) of size \(sizeOrType)") }
                kind = .enumeration(size: Int(sizeOrType), isSigned: kindFlag, values: values)
            case 7: kind = .forward(isUnion: kindFlag)
            case 8: kind = .typedef(sizeOrType); referenced.append(sizeOrType)
            case 9: kind = .volatile(sizeOrType); referenced.append(sizeOrType)
            case 10: kind = .const(sizeOrType); referenced.append(sizeOrType)
            case 11: kind = .restrict(sizeOrType); referenced.append(sizeOrType)
            case 12: kind = .function(prototype: sizeOrType, linkage: UInt32(vlen)); referenced.append(sizeOrType)
            case 13:
                var parameters: [BTFParameter] = []
                for _ in 0..<vlen {
                    let parameterName = try string(try typeData.u32(at: position))
                    let parameterType = try typeData.u32(at: position + 4)
                    position += 8
                    parameters.append(BTFParameter(name: parameterName, typeID: parameterType))
                    referenced.append(parameterType)
                }
                kind = .functionPrototype(returnType: sizeOrType, parameters: parameters)
                referenced.append(sizeOrType)
            case 14:
                let linkage = try typeData.u32(at: position)
                position += 4
                kind = .variable(type: sizeOrType, linkage: linkage)
                referenced.append(sizeOrType)
            case 15:
                var variables: [BTFSectionVariable] = []
                for _ in 0..<vlen {
                    let variable = BTFSectionVariable(
                        typeID: try typeData.u32(at: position), offset: try typeData.u32(at: position + 4),
                        size: try typeData.u32(at: position + 8))
                    position += 12
                    variables.append(variable)
                    referenced.append(variable.typeID)
                }
                kind = .dataSection(size: Int(sizeOrType), variables: variables)
            case 16:
                guard [2, 4, 8, 12, 16].contains(sizeOrType) else { throw .invalidBTF("float type \(id) of size \(sizeOrType)") }
                kind = .float(size: Int(sizeOrType))
            case 17:
                let component = Int32(bitPattern: try typeData.u32(at: position))
                position += 4
                kind = .declarationTag(type: sizeOrType, component: component)
                referenced.append(sizeOrType)
            case 18: kind = .typeTag(sizeOrType); referenced.append(sizeOrType)
            case let unknown:
                throw .invalidBTF("type \(id) has unknown kind \(unknown)")
            }
            types.append(BTFType(id: id, name: name, kind: kind))
        }
        if let bad = referenced.first(where: { Int($0) >= types.count }) {
            throw .invalidBTF("a type refers to type id \(bad), but there are only \(types.count) types")
        }
        // Struct/union sizes and member offsets must be consistent: a renderer relies on it.
        for type in types {
            if case .structure(let size, let members) = type.kind, let member = members.first(where: {
                UInt64($0.bitOffset) + UInt64($0.bitfieldSize) > UInt64(size) * 8
            }) {
                throw .invalidBTF("member \(member.name) of struct \(type.name) lies outside its \(size) bytes")
            }
        }
        self.types = types
    }

    /// The number of CO-RE relocation records per ELF section name in a `.BTF.ext` section.
    static func coreRelocationCounts(ext bytes: [UInt8], btfStrings btf: [UInt8]) throws(BPFLoaderError) -> [String: Int] {
        let reader = ByteReader(bytes, context: ".BTF.ext")
        guard try reader.u16(at: 0) == magic else { throw .invalidBTF(".BTF.ext: bad magic") }
        let headerLength = Int(try reader.u32(at: 4))
        // The CO-RE part of the header (core_relo_off, core_relo_len) exists from 32 bytes on.
        guard headerLength >= 32 else { return [:] }
        let offset = Int(try reader.u32(at: 24))
        let length = Int(try reader.u32(at: 28))
        guard length > 0 else { return [:] }
        let start = headerLength + offset
        let records = ByteReader(try reader.slice(start, length), context: ".BTF.ext CO-RE relocations")
        let recordSize = Int(try records.u32(at: 0))
        guard recordSize >= 16 else { throw .invalidBTF(".BTF.ext: CO-RE record size \(recordSize)") }
        let strings = try btfStringSection(btf)
        var counts: [String: Int] = [:]
        var position = 4
        while position < records.bytes.count {
            let nameOffset = Int(try records.u32(at: position))
            let count = Int(try records.u32(at: position + 4))
            position += 8
            let (size, overflow) = count.multipliedReportingOverflow(by: recordSize)
            guard !overflow else { throw .invalidBTF(".BTF.ext: CO-RE record count \(count)") }
            try records.checkRange(position, size)
            position += size
            let name = nameOffset < strings.bytes.count ? try strings.cString(at: nameOffset) : "#\(nameOffset)"
            counts[name, default: 0] += count
        }
        return counts
    }

    private static func btfStringSection(_ bytes: [UInt8]) throws(BPFLoaderError) -> ByteReader {
        let header = ByteReader(bytes, context: ".BTF header")
        let headerLength = Int(try header.u32(at: 4))
        let stringOffset = Int(try header.u32(at: 16))
        let stringLength = Int(try header.u32(at: 20))
        return ByteReader(try header.slice(headerLength + stringOffset, stringLength), context: ".BTF strings")
    }
}
