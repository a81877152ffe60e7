/// The object's maps and where their symbols live, so relocations can find a map by
/// (section index, offset in section).
struct MapTable {
    var maps: [MapSpec] = []
    /// Map index by (section index, symbol offset) for `maps` and `.maps`.
    var definitionIndex: [SectionOffset: Int] = [:]
    /// Map index of each global data section, by section index.
    var globalDataIndex: [Int: Int] = [:]
    /// Indices of sections that hold map definitions (`maps`, `.maps`).
    var definitionSections: Set<Int> = []

    struct SectionOffset: Hashable {
        let section: Int
        let offset: UInt64
    }
}

/// Reads legacy `maps` definitions, BTF-defined `.maps` and global data sections into a `MapTable`.
struct MapTableBuilder {
    let image: ELFImage
    let btf: BTF?

    /// Legacy `struct bpf_map_def`: type, key_size, value_size, max_entries, map_flags (u32 each).
    static let legacyFieldCount = 5
    /// Largest `.data`/`.bss` accepted; `.bss` has no bytes in the file, so its size alone must be bounded.
    static let maximumGlobalDataSize = 1 << 24

    func build() throws(BPFLoaderError) -> MapTable {
        var table = MapTable()
        if let legacy = image.section(named: "maps") {
            try addLegacyMaps(in: legacy, to: &table)
        }
        if let section = image.section(named: ".maps") {
            try addBTFMaps(in: section, to: &table)
        }
        for section in image.sections where Self.isGlobalData(section) && section.size > 0 {
            try addGlobalData(section, to: &table)
        }
        return table
    }

    static func isGlobalData(_ section: ELFImage.Section) -> Bool {
        guard section.type == ELFConstants.progbits || section.type == ELFConstants.nobits else { return false }
        return [".data", ".rodata", ".bss"].contains { prefix in
            section.name == prefix || section.name.hasPrefix(prefix + ".")
        }
    }

    private func mapSymbols(in section: ELFImage.Section) -> [ELFImage.Symbol] {
        image.symbols.filter { symbol in
            symbol.sectionIndex == section.index && symbol.type != ELFConstants.symbolTypeSection && !symbol.name.isEmpty
        }.sorted { $0.value < $1.value }
    }

    private func addLegacyMaps(in section: ELFImage.Section, to table: inout MapTable) throws(BPFLoaderError) {
        let symbols = mapSymbols(in: section)
        guard !symbols.isEmpty else { return }
        let reader = ByteReader(section.data, context: "section maps")
        table.definitionSections.insert(section.index)
        for symbol in symbols {
            let definitionSize = symbol.size > 0 ? Int(clamping: symbol.size) : section.size / symbols.count
            guard definitionSize >= 16, symbol.value <= UInt64(section.size),
                definitionSize <= section.size - Int(symbol.value)
            else {
                throw .malformed("legacy map \(symbol.name): definition of \(definitionSize) bytes at offset \(symbol.value) does not fit section maps (\(section.size) bytes)")
            }
            var fields: [UInt32] = []
            for field in 0..<Self.legacyFieldCount {
                fields.append(field * 4 + 4 <= definitionSize ? try reader.u32(at: Int(symbol.value) + field * 4) : 0)
            }
            let spec = try validated(
                MapSpec(
                    name: symbol.name, type: BPFMapType(rawValue: fields[0]), keySize: fields[1], valueSize: fields[2],
                    maxEntries: fields[3], flags: fields[4], extra: 0, initialValue: nil, btfKeyTypeID: nil,
                    btfValueTypeID: nil, section: "maps"))
            table.definitionIndex[.init(section: section.index, offset: symbol.value)] = table.maps.count
            table.maps.append(spec)
        }
    }

    private func addBTFMaps(in section: ELFImage.Section, to table: inout MapTable) throws(BPFLoaderError) {
        let symbols = mapSymbols(in: section)
        guard !symbols.isEmpty else { return }
        guard let btf else { throw .unsupported("BTF-defined maps in .maps need .BTF type information (compile with -g)") }
        guard let dataSectionID = btf.typeID(named: ".maps", where: { if case .dataSection = $0 { true } else { false } }),
            case .dataSection(_, let variables) = btf.types[Int(dataSectionID)].kind
        else { throw .invalidBTF("no DATASEC .maps describing the .maps section") }
        var variableTypes: [String: UInt32] = [:]
        for variable in variables {
            if let type = btf.type(variable.typeID), case .variable(let target, _) = type.kind {
                variableTypes[type.name] = target
            }
        }
        table.definitionSections.insert(section.index)
        for symbol in symbols {
            guard let typeID = variableTypes[symbol.name] else {
                throw .invalidBTF("map \(symbol.name) in .maps has no variable in DATASEC .maps")
            }
            let spec = try validated(try btfMap(named: symbol.name, typeID: typeID, btf: btf))
            table.definitionIndex[.init(section: section.index, offset: symbol.value)] = table.maps.count
            table.maps.append(spec)
        }
    }

    /// Decodes a libbpf map definition struct: `__uint(name, N)` is `int (*name)[N]`,
    /// `__type(name, T)` is `T *name`, `__array(values, ...)` marks map-in-map.
    private func btfMap(named name: String, typeID: UInt32, btf: BTF) throws(BPFLoaderError) -> MapSpec {
        let structID = try btf.resolvedID(typeID)
        guard case .structure(_, let members) = btf.types[Int(structID)].kind else {
            throw .invalidBTF("map \(name): its type is \(btf.typeName(structID)), not a struct")
        }
        var numbers: [String: UInt32] = [:]
        var keyType: UInt32?
        var valueType: UInt32?
        for member in members {
            let memberType = btf.types[Int(try btf.resolvedID(member.typeID))]
            switch member.name {
            case "type", "key_size", "value_size", "max_entries", "map_flags", "map_extra", "numa_node":
                guard case .pointer(let target) = memberType.kind,
                    case .array(_, _, let count) = btf.types[Int(try btf.resolvedID(target))].kind
                else { throw .invalidBTF("map \(name): attribute \(member.name) is not encoded as __uint()") }
                numbers[member.name] = count
            case "key", "value":
                guard case .pointer(let target) = memberType.kind else {
                    throw .invalidBTF("map \(name): attribute \(member.name) is not encoded as __type()")
                }
                if member.name == "key" { keyType = target } else { valueType = target }
            case "values":
                throw .unsupported("map \(name): map-in-map (__array(values, ...)) definitions")
            case "pinning":
                throw .unsupported("map \(name): pinning")
            default:
                throw .unsupported("map \(name): unknown map attribute \(member.name)")
            }
        }
        func size(_ attribute: String, _ type: UInt32?) throws(BPFLoaderError) -> UInt32 {
            let declared = numbers[attribute]
            guard let type else { return declared ?? 0 }
            let typeSize = try btf.size(of: type)
            guard typeSize <= Int(UInt32.max) else { throw .invalidBTF("map \(name): \(attribute) type too large") }
            if let declared, declared != UInt32(typeSize) {
                throw .invalidBTF("map \(name): \(attribute) \(declared) disagrees with its type \(btf.typeName(type)) of \(typeSize) bytes")
            }
            return UInt32(typeSize)
        }
        guard let type = numbers["type"] else { throw .invalidBTF("map \(name) has no type attribute") }
        return MapSpec(
            name: name, type: BPFMapType(rawValue: type), keySize: try size("key_size", keyType),
            valueSize: try size("value_size", valueType), maxEntries: numbers["max_entries"] ?? 0,
            flags: numbers["map_flags"] ?? 0, extra: UInt64(numbers["map_extra"] ?? 0), initialValue: nil,
            btfKeyTypeID: keyType, btfValueTypeID: valueType, section: ".maps")
    }

    /// Refuses map types and shapes the datapath cannot hold, naming the map.
    private func validated(_ spec: MapSpec) throws(BPFLoaderError) -> MapSpec {
        if spec.type == .programArray {
            throw .unsupported("map \(spec.name): tail calls (BPF_MAP_TYPE_PROG_ARRAY)")
        }
        guard BPFMapType.supported.contains(spec.type) else {
            throw .unsupported("map \(spec.name): map type \(spec.type) (\(spec.type.rawValue))")
        }
        guard spec.maxEntries > 0 else { throw .malformed("map \(spec.name): max_entries is 0") }
        guard spec.valueSize > 0 else { throw .malformed("map \(spec.name): value size is 0") }
        if spec.type == .bloomFilter {
            guard spec.keySize == 0 else { throw .malformed("map \(spec.name): a Bloom filter has no key (key size \(spec.keySize))") }
        } else {
            guard spec.keySize > 0 else { throw .malformed("map \(spec.name): key size is 0") }
        }
        if spec.type == .array || spec.type == .perCPUArray, spec.keySize != 4 {
            throw .malformed("map \(spec.name): array keys are 4 bytes, not \(spec.keySize)")
        }
        return spec
    }

    private func addGlobalData(_ section: ELFImage.Section, to table: inout MapTable) throws(BPFLoaderError) {
        guard section.size <= Self.maximumGlobalDataSize else {
            throw .unsupported("global data section \(section.name) of \(section.size) bytes (at most \(Self.maximumGlobalDataSize))")
        }
        let value = section.type == ELFConstants.nobits ? [UInt8](repeating: 0, count: section.size) : section.data
        let valueTypeID = btf?.typeID(named: section.name) { if case .dataSection = $0 { true } else { false } }
        table.globalDataIndex[section.index] = table.maps.count
        table.maps.append(
            MapSpec(
                name: section.name, type: .array, keySize: 4, valueSize: UInt32(section.size), maxEntries: 1,
                flags: section.name.hasPrefix(".rodata") ? MapSpec.flagReadOnlyProgram : 0, extra: 0,
                initialValue: value, btfKeyTypeID: nil, btfValueTypeID: valueTypeID, section: section.name))
    }
}
