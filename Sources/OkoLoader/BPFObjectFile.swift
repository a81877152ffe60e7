// OkoLoader: turns an eBPF ELF object (`clang -O2 -target bpf`) into programs and map specs.
//
// Design note
// - `BPFObjectFile(bytes:)` does all the work up front and keeps only Swift values: libelf
//   (`ELFImage`) reads headers, names, symbols and relocations; everything else is bounds-checked
//   Swift over copies of the section bytes. Any malformed or unsupported input throws a
//   `BPFLoaderError` naming the problem; nothing traps (the loader is fuzzed).
// - Maps: legacy `maps` definitions first, then BTF-defined `.maps`, each in symbol-offset order,
//   then one single-entry array per non-empty global data section (`.data*`, `.rodata*`, `.bss*`)
//   in section order. A map's index in `maps` is the immediate its relocated LDDWs carry:
//   `src = BPF_PSEUDO_MAP_FD` for a map, `src = BPF_PSEUDO_MAP_VALUE` (second slot = offset in the
//   value) for global data.
// - Programs: every function symbol of an executable section other than `.text` is a program;
//   when there are none, the global functions of `.text` are. A program is linked as in libbpf:
//   its entry function first, then every function it calls (transitively), each once, in the order
//   met; bpf-to-bpf call immediates are rewritten to the new layout.
// - The object is immutable and `Sendable`; build it on any thread.
// - Not supported, with an error naming it: CO-RE relocations, kfunc / extern calls, extern
//   variables, callback function pointers, tail calls (prog_array maps), map-in-map, pointers in
//   initialised global data, and map types outside `BPFMapType.supported`.

public import OkoBPF

/// A relocation the loader applied to a linked program, for inspection and tests.
public struct BPFAppliedRelocation: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// LDDW rewritten to `src = 1, imm = mapIndex`.
        case mapReference(mapIndex: Int)
        /// LDDW rewritten to `src = 2, imm = mapIndex`, second slot `imm = offset`.
        case mapValue(mapIndex: Int, offset: Int)
        /// A bpf-to-bpf call whose target now starts at `targetIndex` of the linked program.
        case call(targetIndex: Int)
    }

    /// Index in `BPFProgram.instructions` of the patched instruction.
    public let instructionIndex: Int
    public let kind: Kind
    /// The symbol the relocation named (a map, a variable, a function or a section).
    public let symbol: String
}

/// A function placed into a linked program.
public struct BPFFunctionPlacement: Hashable, Sendable {
    public let name: String
    public let section: String
    /// Index in `BPFProgram.instructions` of the function's first slot.
    public let startIndex: Int
    public let instructionCount: Int
}

/// One entry point, linked with its subprograms and with map references resolved.
public struct BPFProgram: Hashable, Sendable {
    /// The entry function's name.
    public let name: String
    /// The ELF section it came from (`filter`, `xdp`, `.text`, ...).
    public let sectionName: String
    /// Entry function first, then subprograms; ready for a verifier.
    public let instructions: [BPFInstruction]
    /// Every function in `instructions`, the entry first.
    public let functions: [BPFFunctionPlacement]
    public let relocations: [BPFAppliedRelocation]
    /// Indices into `BPFObjectFile.maps` that the program refers to, ascending.
    public var usedMapIndices: [Int] {
        Set(relocations.compactMap { relocation -> Int? in
            switch relocation.kind {
            case .mapReference(let index), .mapValue(let index, _): index
            case .call: nil
            }
        }).sorted()
    }
}

public struct BPFObjectFile: Sendable {
    public let programs: [BPFProgram]
    public let maps: [MapSpec]
    /// The object's type information, when it was compiled with `-g`.
    public let btf: BTF?
    /// The `license` section's string, if any.
    public let license: String?

    public init(bytes: [UInt8]) throws(BPFLoaderError) {
        let image = try ELFImage(bytes: bytes)
        var btf = try image.section(named: ".BTF").map { section throws(BPFLoaderError) in try BTF(section: section.data) }
        if btf != nil { btf!.fixDataSections(sectionSizes: Self.sectionSizes(image), variableOffsets: Self.symbolOffsets(image)) }
        self.btf = btf
        if let ext = image.section(named: ".BTF.ext"), let btfSection = image.section(named: ".BTF") {
            let counts = try BTF.coreRelocationCounts(ext: ext.data, btfStrings: btfSection.data)
            if let (section, count) = counts.filter({ $0.value > 0 }).min(by: { $0.key < $1.key }) {
                throw .unsupported("CO-RE relocations (\(count) in section \(section)); this loader has no kernel BTF to relocate against")
            }
        }
        let mapTable = try MapTableBuilder(image: image, btf: btf).build()
        self.maps = mapTable.maps
        self.programs = try ProgramLinker(image: image, mapTable: mapTable).linkAll()
        self.license = image.section(named: "license").map { section in
            String(decoding: section.data.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// The program whose entry function or section is `name`; with nil, the only program.
    public func program(named name: String? = nil) throws(BPFLoaderError) -> BPFProgram {
        let available = programs.map { "\($0.sectionName)/\($0.name)" }.joined(separator: ", ")
        guard let name else {
            guard programs.count == 1 else {
                throw .programNotFound(
                    programs.isEmpty ? "the object has no programs" : "the object has \(programs.count) programs (\(available)); name one")
            }
            return programs[0]
        }
        if let byFunction = programs.first(where: { $0.name == name }) { return byFunction }
        let bySection = programs.filter { $0.sectionName == name || "\($0.sectionName)/\($0.name)" == name }
        guard bySection.count == 1 else {
            throw .programNotFound(
                bySection.isEmpty ? "no program named \(name) (available: \(available))" : "section \(name) holds several programs; name the function")
        }
        return bySection[0]
    }

    private static func sectionSizes(_ image: ELFImage) -> [String: Int] {
        var sizes: [String: Int] = [:]
        for section in image.sections where !section.name.isEmpty { sizes[section.name] = section.size }
        return sizes
    }

    private static func symbolOffsets(_ image: ELFImage) -> [String: [String: UInt64]] {
        var offsets: [String: [String: UInt64]] = [:]
        for symbol in image.symbols where symbol.type == ELFConstants.symbolTypeObject {
            guard let index = symbol.sectionIndex else { continue }
            offsets[image.sections[index].name, default: [:]][symbol.name] = symbol.value
        }
        return offsets
    }
}
