import OkoBPF

/// Finds the programs of an object and links each: entry function, then the functions it calls,
/// with map and global-data LDDWs and bpf-to-bpf calls relocated (see the design note in
/// BPFObjectFile.swift).
struct ProgramLinker {
    /// A function symbol inside an executable section, in instruction slots.
    struct Function: Hashable {
        let name: String
        let section: Int
        let start: Int
        let count: Int
        /// Global binding: an entry point even when something calls it.
        let isGlobal: Bool
        var range: Range<Int> { start..<start + count }
    }

    /// Where a local call lands: a section and a slot index in it.
    struct CallTarget {
        let section: Int
        let index: Int
    }

    let image: ELFImage
    let mapTable: MapTable
    /// Decoded instructions of every executable section, by section index.
    private let code: [Int: [BPFInstruction]]
    /// Function symbols of every executable section, by section index, ascending by start.
    private let functions: [Int: [Function]]
    /// Relocations of every executable section, by section index and slot index.
    private let relocations: [Int: [Int: ELFImage.Relocation]]

    init(image: ELFImage, mapTable: MapTable) throws(BPFLoaderError) {
        self.image = image
        self.mapTable = mapTable
        var code: [Int: [BPFInstruction]] = [:]
        var functions: [Int: [Function]] = [:]
        var relocations: [Int: [Int: ELFImage.Relocation]] = [:]
        var functionSymbols: [Int: [ELFImage.Symbol]] = [:]
        for symbol in image.symbols where symbol.type == ELFConstants.symbolTypeFunction {
            if let index = symbol.sectionIndex { functionSymbols[index, default: []].append(symbol) }
        }
        for section in image.sections where section.isExecutable && section.size > 0 {
            guard let instructions = BPFInstruction.decode(bytes: section.data) else {
                throw .malformed("code section \(section.name) is \(section.size) bytes, not a multiple of 8")
            }
            code[section.index] = instructions
            var sectionFunctions: [Function] = []
            for symbol in functionSymbols[section.index] ?? [] {
                guard symbol.value % 8 == 0, symbol.size % 8 == 0, symbol.value <= UInt64(section.size),
                    symbol.size <= UInt64(section.size) - symbol.value, symbol.size > 0
                else {
                    throw .malformed("function \(symbol.name) (offset \(symbol.value), size \(symbol.size)) does not fit section \(section.name)")
                }
                sectionFunctions.append(
                    Function(
                        name: symbol.name, section: section.index, start: Int(symbol.value) / 8, count: Int(symbol.size) / 8,
                        isGlobal: symbol.binding != ELFConstants.bindingLocal))
            }
            functions[section.index] = sectionFunctions.sorted { $0.start < $1.start }
            var byIndex: [Int: ELFImage.Relocation] = [:]
            for relocation in image.relocations[section.index] ?? [] {
                guard relocation.offset % 8 == 0, relocation.offset < UInt64(section.size) else {
                    throw .malformed("relocation at offset \(relocation.offset) of \(section.name) is not on an instruction")
                }
                byIndex[Int(relocation.offset / 8)] = relocation
            }
            relocations[section.index] = byIndex
        }
        try Self.checkDataRelocations(image: image, mapTable: mapTable)
        self.code = code
        self.functions = functions
        self.relocations = relocations
    }

    /// Relocations inside data would need absolute addresses this runtime does not have.
    private static func checkDataRelocations(image: ELFImage, mapTable: MapTable) throws(BPFLoaderError) {
        for (sectionIndex, entries) in image.relocations where !entries.isEmpty {
            let section = image.sections[sectionIndex]
            if mapTable.definitionSections.contains(sectionIndex) {
                throw .unsupported("relocations in map section \(section.name) (map-in-map or program references)")
            }
            if mapTable.globalDataIndex[sectionIndex] != nil {
                let symbol = image.symbols[entries[0].symbolIndex].name
                throw .unsupported("pointer-valued initialiser in \(section.name) (relocation type \(entries[0].type) against \(symbol.isEmpty ? "a section" : symbol))")
            }
        }
    }

    func linkAll() throws(BPFLoaderError) -> [BPFProgram] {
        let textIndex = image.sections.first { $0.name == ".text" && $0.isExecutable }?.index
        // A local function that something calls is a subprogram, not an entry point.
        var callees: Set<Function> = []
        for (section, sectionCode) in code {
            for index in sectionCode.indices {
                if let target = try callTarget(section: section, index: index), let callee = function(containing: target) {
                    callees.insert(callee)
                }
            }
        }
        var entries = functions.filter { $0.key != textIndex }.sorted { $0.key < $1.key }.flatMap(\.value).filter { function in
            !callees.contains(function) || function.isGlobal
        }
        if entries.isEmpty, let textIndex {
            entries = (functions[textIndex] ?? []).filter(\.isGlobal)
        }
        return try entries.map { entry throws(BPFLoaderError) in try link(entry: entry) }
    }

    private func function(containing target: CallTarget) -> Function? {
        functions[target.section]?.first { $0.range.contains(target.index) }
    }

    /// Links `entry`: lays out the call graph breadth first, then emits relocated instructions.
    func link(entry: Function) throws(BPFLoaderError) -> BPFProgram {
        var layout: [Function] = [entry]
        var startOf: [Function: Int] = [entry: 0]
        var length = entry.count
        var next = 0
        while next < layout.count {
            let function = layout[next]
            next += 1
            for index in function.range {
                guard let target = try callTarget(section: function.section, index: index) else { continue }
                guard let callee = self.function(containing: target) else {
                    throw .malformed("call in \(function.name) to slot \(target.index) of \(image.sections[target.section].name), which is inside no function")
                }
                if startOf[callee] == nil {
                    startOf[callee] = length
                    length += callee.count
                    layout.append(callee)
                }
            }
        }

        var output: [BPFInstruction] = []
        output.reserveCapacity(length)
        var applied: [BPFAppliedRelocation] = []
        for function in layout {
            let base = output.count
            guard let sectionCode = code[function.section] else { continue }
            var slots = Array(sectionCode[function.range])
            for index in function.range {
                let local = index - function.start
                if let target = try callTarget(section: function.section, index: index),
                    let callee = self.function(containing: target), let calleeStart = startOf[callee]
                {
                    let destination = calleeStart + (target.index - callee.start)
                    slots[local].immediate = Int32(destination - (base + local) - 1)
                    let symbol = relocations[function.section]?[index].map { image.symbols[$0.symbolIndex].name } ?? callee.name
                    applied.append(.init(instructionIndex: base + local, kind: .call(targetIndex: destination), symbol: symbol))
                    continue
                }
                guard let relocation = relocations[function.section]?[index] else { continue }
                guard relocation.type == ELFConstants.relocation64_64 else {
                    if relocation.type == ELFConstants.relocationNone { continue }
                    throw .unsupported("relocation type \(relocation.type) on instruction \(index) of \(image.sections[function.section].name)")
                }
                guard local + 1 < function.count, slots[local].opcode == BPFOpcode.lddw else {
                    throw .malformed("R_BPF_64_64 relocation on instruction \(index) of \(function.name), which is not a 64-bit immediate load")
                }
                let kind = try resolveDataReference(relocation, instruction: slots[local], in: function)
                switch kind {
                case .mapReference(let mapIndex):
                    slots[local] = BPFInstruction(
                        opcode: BPFOpcode.lddw, dst: slots[local].dst, src: BPFOpcode.pseudoMapFD, immediate: Int32(mapIndex))
                    slots[local + 1].immediate = 0
                case .mapValue(let mapIndex, let offset):
                    slots[local] = BPFInstruction(
                        opcode: BPFOpcode.lddw, dst: slots[local].dst, src: BPFOpcode.pseudoMapValue, immediate: Int32(mapIndex))
                    slots[local + 1].immediate = Int32(offset)
                case .call:
                    break
                }
                applied.append(.init(instructionIndex: base + local, kind: kind, symbol: image.symbols[relocation.symbolIndex].name))
            }
            output += slots
        }
        let placements = layout.map { function in
            BPFFunctionPlacement(
                name: function.name, section: image.sections[function.section].name, startIndex: startOf[function] ?? 0,
                instructionCount: function.count)
        }
        return BPFProgram(
            name: entry.name, sectionName: image.sections[entry.section].name, instructions: output, functions: placements,
            relocations: applied)
    }

    /// The slot a bpf-to-bpf call at (`section`, `index`) lands on, or nil if it is not such a call.
    /// With an R_BPF_64_32 relocation the target is the symbol's slot plus `imm + 1` (libbpf's
    /// rule: static callees are named by their section symbol and an immediate, global ones by
    /// their own symbol and imm = -1); without one, `imm` is relative to the call itself.
    private func callTarget(section: Int, index: Int) throws(BPFLoaderError) -> CallTarget? {
        guard let instruction = code[section]?[index],
            instruction.opcode == BPFOpcode.classJMP | BPFOpcode.call
        else { return nil }
        let sectionName = image.sections[section].name
        if let relocation = relocations[section]?[index] {
            let symbol = image.symbols[relocation.symbolIndex]
            guard relocation.type == ELFConstants.relocation64_32 else {
                throw .unsupported("relocation type \(relocation.type) on call instruction \(index) of \(sectionName)")
            }
            guard let targetSection = symbol.sectionIndex, code[targetSection] != nil else {
                if symbol.isUndefined {
                    throw .unsupported("call to extern function \(symbol.name) (kfunc) in \(sectionName)")
                }
                throw .malformed("call in \(sectionName) relocated against \(symbol.name), which is not code")
            }
            guard instruction.src == BPFOpcode.callLocal, symbol.value % 8 == 0 else {
                throw .malformed("call relocation at instruction \(index) of \(sectionName) on a non-local call")
            }
            return CallTarget(section: targetSection, index: Int(symbol.value / 8) + Int(instruction.immediate) + 1)
        }
        switch instruction.src {
        case BPFOpcode.callHelper:
            return nil
        case BPFOpcode.callLocal:
            return CallTarget(section: section, index: index + Int(instruction.immediate) + 1)
        default:
            throw .unsupported("call by BTF id (kfunc) at instruction \(index) of \(sectionName)")
        }
    }

    /// What an R_BPF_64_64 relocated LDDW refers to: a map definition or global data.
    private func resolveDataReference(
        _ relocation: ELFImage.Relocation, instruction: BPFInstruction, in function: Function
    ) throws(BPFLoaderError) -> BPFAppliedRelocation.Kind {
        let symbol = image.symbols[relocation.symbolIndex]
        let label = symbol.name.isEmpty ? "a section symbol" : symbol.name
        guard let section = symbol.sectionIndex else {
            if symbol.isUndefined {
                throw .unsupported("extern variable \(symbol.name) (__kconfig / __ksym) referenced by \(function.name)")
            }
            throw .unsupported("reference to absolute or common symbol \(label) in \(function.name)")
        }
        if mapTable.definitionSections.contains(section) {
            guard let mapIndex = mapTable.definitionIndex[.init(section: section, offset: symbol.value)] else {
                throw .malformed("\(function.name) refers to \(label) in \(image.sections[section].name), which is not a map")
            }
            return .mapReference(mapIndex: mapIndex)
        }
        if let mapIndex = mapTable.globalDataIndex[section] {
            let offset = Int64(instruction.immediate) + Int64(clamping: symbol.value)
            guard offset >= 0, offset <= Int64(mapTable.maps[mapIndex].valueSize) else {
                throw .malformed("\(function.name) refers to offset \(offset) of \(image.sections[section].name), outside its \(mapTable.maps[mapIndex].valueSize) bytes")
            }
            return .mapValue(mapIndex: mapIndex, offset: Int(offset))
        }
        if code[section] != nil {
            throw .unsupported("function pointer to \(label) in \(function.name) (callbacks such as bpf_loop)")
        }
        throw .unsupported("\(function.name) refers to \(label) in section \(image.sections[section].name), which is neither a map nor global data")
    }
}
