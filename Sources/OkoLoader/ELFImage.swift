internal import CElf

/// The parts of a relocatable ELF object the loader needs, copied out of libelf into plain Swift
/// values. libelf reads the headers, section names and the symbol and relocation tables; every
/// offset and size it reports is checked against the file length before any section is read, so
/// a hostile file produces `BPFLoaderError`, never an out-of-bounds read.
struct ELFImage {
    struct Section {
        let index: Int
        let name: String
        let type: UInt32
        let flags: UInt64
        let size: Int
        let link: Int
        let info: Int
        /// The section's bytes; empty for SHT_NOBITS (`.bss`), whose `size` is still meaningful.
        let data: [UInt8]

        var isExecutable: Bool { type == ELFConstants.progbits && flags & ELFConstants.flagExecInstr != 0 }
    }

    struct Symbol {
        let name: String
        let type: UInt8
        let binding: UInt8
        /// Section index, or nil for undefined, absolute and common symbols.
        let sectionIndex: Int?
        let isUndefined: Bool
        let value: UInt64
        let size: UInt64
    }

    struct Relocation {
        let offset: UInt64
        let type: UInt32
        let symbolIndex: Int
    }

    let sections: [Section]
    let symbols: [Symbol]
    /// Relocations keyed by the index of the section they patch.
    let relocations: [Int: [Relocation]]

    func section(named name: String) -> Section? { sections.first { $0.name == name } }

    init(bytes: [UInt8]) throws(BPFLoaderError) {
        try Self.checkIdentification(bytes)
        // libelf may keep pointers into the image for the lifetime of the descriptor, so it gets
        // its own aligned copy that outlives `elf_end`.
        let image = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        defer { image.deallocate() }
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { image.copyMemory(from: base, byteCount: source.count) }
        }
        _ = elf_version(UInt32(EV_CURRENT))
        guard let elf = elf_memory(image.assumingMemoryBound(to: CChar.self), bytes.count) else {
            throw .libelf(Self.lastError())
        }
        defer { elf_end(elf) }
        guard elf_kind(elf) == ELF_K_ELF else { throw .notELF }

        var header = GElf_Ehdr()
        guard gelf_getehdr(elf, &header) != nil else { throw .libelf(Self.lastError()) }
        guard header.e_machine == ELFConstants.machineBPF else {
            throw .unsupportedELF("machine \(header.e_machine) is not EM_BPF (247)")
        }
        guard header.e_type == ELFConstants.typeRelocatable else {
            throw .unsupportedELF("ELF type \(header.e_type) is not a relocatable object (ET_REL)")
        }

        var sectionCount = 0
        var namesIndex = 0
        guard elf_getshdrnum(elf, &sectionCount) == 0, elf_getshdrstrndx(elf, &namesIndex) == 0 else {
            throw .libelf(Self.lastError())
        }
        guard sectionCount > 0 else { throw .malformed("no section headers") }
        guard namesIndex < sectionCount else {
            throw .malformed("section name table index \(namesIndex) out of range (\(sectionCount) sections)")
        }

        var sections: [Section] = []
        var headers: [GElf_Shdr] = []
        for index in 0..<sectionCount {
            guard let scn = elf_getscn(elf, index) else { throw .libelf(Self.lastError()) }
            var shdr = GElf_Shdr()
            guard gelf_getshdr(scn, &shdr) != nil else { throw .libelf(Self.lastError()) }
            headers.append(shdr)
            var name = ""
            if index != 0 {
                guard let namePointer = elf_strptr(elf, namesIndex, Int(shdr.sh_name)) else {
                    throw .malformed("section \(index): name offset \(shdr.sh_name) outside the name table")
                }
                name = String(cString: namePointer)
            }
            let hasData = index != 0 && shdr.sh_type != ELFConstants.nobits && shdr.sh_type != ELFConstants.null
            guard shdr.sh_size <= UInt64(Int.max), shdr.sh_link < UInt32(Int32.max), shdr.sh_info < UInt32(Int32.max)
            else { throw .malformed("section \(name.isEmpty ? "#\(index)" : name): size or link out of range") }
            if hasData {
                guard shdr.sh_offset <= UInt64(bytes.count), shdr.sh_size <= UInt64(bytes.count) - shdr.sh_offset else {
                    throw .malformed(
                        "section \(name.isEmpty ? "#\(index)" : name) (offset \(shdr.sh_offset), size \(shdr.sh_size)) extends past the end of the file (\(bytes.count) bytes)"
                    )
                }
            }
            let data = hasData ? Array(bytes[Int(shdr.sh_offset)..<Int(shdr.sh_offset + shdr.sh_size)]) : []
            sections.append(
                Section(
                    index: index, name: name, type: shdr.sh_type, flags: shdr.sh_flags, size: Int(shdr.sh_size),
                    link: Int(shdr.sh_link), info: Int(shdr.sh_info), data: data))
        }

        guard let symbolTable = sections.first(where: { $0.type == ELFConstants.symtab }) else {
            throw .malformed("no symbol table (.symtab)")
        }
        let symbols = try Self.readSymbols(elf: elf, table: symbolTable, sectionCount: sectionCount)

        var relocations: [Int: [Relocation]] = [:]
        for section in sections where section.type == ELFConstants.rel {
            guard section.info > 0, section.info < sectionCount else {
                throw .malformed("relocation section \(section.name) targets section \(section.info), which does not exist")
            }
            let entries = try Self.readRelocations(elf: elf, section: section, symbolCount: symbols.count)
            relocations[section.info, default: []].append(contentsOf: entries)
        }
        if let rela = sections.first(where: { $0.type == ELFConstants.rela }) {
            throw .unsupported("RELA relocation section \(rela.name) (eBPF objects use REL)")
        }
        self.sections = sections
        self.symbols = symbols
        self.relocations = relocations
    }

    /// Checks e_ident before libelf sees the bytes, so the common wrong inputs get precise errors.
    private static func checkIdentification(_ bytes: [UInt8]) throws(BPFLoaderError) {
        guard bytes.count >= 4, bytes[0] == 0x7f, bytes[1] == 0x45, bytes[2] == 0x4c, bytes[3] == 0x46 else {
            throw .notELF
        }
        guard bytes.count >= 64 else { throw .malformed("file of \(bytes.count) bytes is shorter than an ELF64 header") }
        guard bytes[4] == 2 else { throw .unsupportedELF("ELF class \(bytes[4]) is not ELFCLASS64") }
        guard bytes[5] == 1 else { throw .unsupportedELF("data encoding \(bytes[5]) is not little-endian (ELFDATA2LSB)") }
        let reader = ByteReader(bytes, context: "ELF header")
        let sectionHeaderOffset = try reader.u64(at: 0x28)
        let sectionHeaderSize = try reader.u16(at: 0x3a)
        let sectionHeaderCount = try reader.u16(at: 0x3c)
        guard sectionHeaderSize == 64 else {
            throw .malformed("section header entry size \(sectionHeaderSize) is not 64")
        }
        // Extended numbering (count 0, real count in section 0) is accepted; libelf checks it.
        let tableSize = UInt64(max(sectionHeaderCount, 1)) * 64
        guard sectionHeaderOffset <= UInt64(bytes.count), tableSize <= UInt64(bytes.count) - sectionHeaderOffset else {
            throw .malformed("section header table (offset \(sectionHeaderOffset), \(sectionHeaderCount) entries) extends past the end of the file")
        }
    }

    private static func readSymbols(elf: OpaquePointer, table: Section, sectionCount: Int) throws(BPFLoaderError) -> [Symbol] {
        guard let scn = elf_getscn(elf, table.index), let data = elf_getdata(scn, nil) else {
            throw .libelf("symbol table: \(lastError())")
        }
        guard table.link > 0, table.link < sectionCount else {
            throw .malformed("symbol table string section \(table.link) does not exist")
        }
        let count = Int(data.pointee.d_size) / ELFConstants.symbolSize
        var symbols: [Symbol] = []
        symbols.reserveCapacity(count)
        for index in 0..<count {
            var raw = GElf_Sym()
            guard gelf_getsym(data, Int32(clamping: index), &raw) != nil else { throw .libelf("symbol \(index): \(lastError())") }
            var name = ""
            if raw.st_name != 0 {
                guard let pointer = elf_strptr(elf, table.link, Int(raw.st_name)) else {
                    throw .malformed("symbol \(index): name offset \(raw.st_name) outside the string table")
                }
                name = String(cString: pointer)
            }
            let shndx = Int(raw.st_shndx)
            let inSection = shndx != 0 && shndx < ELFConstants.reservedSectionIndexStart
            if inSection, shndx >= sectionCount {
                throw .malformed("symbol \(name.isEmpty ? "#\(index)" : name) refers to section \(shndx), which does not exist")
            }
            symbols.append(
                Symbol(
                    name: name, type: raw.st_info & 0xf, binding: raw.st_info >> 4,
                    sectionIndex: inSection ? shndx : nil, isUndefined: shndx == 0, value: raw.st_value, size: raw.st_size))
        }
        return symbols
    }

    private static func readRelocations(elf: OpaquePointer, section: Section, symbolCount: Int) throws(BPFLoaderError) -> [Relocation] {
        guard let scn = elf_getscn(elf, section.index), let data = elf_getdata(scn, nil) else {
            throw .libelf("relocation section \(section.name): \(lastError())")
        }
        let count = Int(data.pointee.d_size) / ELFConstants.relocationSize
        var relocations: [Relocation] = []
        relocations.reserveCapacity(count)
        for index in 0..<count {
            var raw = GElf_Rel()
            guard gelf_getrel(data, Int32(clamping: index), &raw) != nil else {
                throw .libelf("relocation \(index) of \(section.name): \(lastError())")
            }
            let symbolIndex = Int(raw.r_info >> 32)
            guard symbolIndex < symbolCount else {
                throw .malformed("relocation \(index) of \(section.name) names symbol \(symbolIndex) of \(symbolCount)")
            }
            relocations.append(Relocation(offset: raw.r_offset, type: UInt32(truncatingIfNeeded: raw.r_info), symbolIndex: symbolIndex))
        }
        return relocations
    }

    private static func lastError() -> String {
        guard let message = elf_errmsg(-1) else { return "unknown error" }
        return String(cString: message)
    }
}

/// ELF and eBPF ELF ABI constants (elf.h, and the kernel's Documentation/bpf/llvm_reloc.rst).
enum ELFConstants {
    static let machineBPF: UInt16 = 247
    static let typeRelocatable: UInt16 = 1
    static let null: UInt32 = 0
    static let progbits: UInt32 = 1
    static let symtab: UInt32 = 2
    static let rela: UInt32 = 4
    static let nobits: UInt32 = 8
    static let rel: UInt32 = 9
    static let flagExecInstr: UInt64 = 0x4
    static let symbolSize = 24
    static let relocationSize = 16
    static let reservedSectionIndexStart = 0xff00

    static let symbolTypeNone: UInt8 = 0
    static let symbolTypeObject: UInt8 = 1
    static let symbolTypeFunction: UInt8 = 2
    static let symbolTypeSection: UInt8 = 3
    static let bindingLocal: UInt8 = 0

    static let relocationNone: UInt32 = 0
    /// R_BPF_64_64: the 64-bit immediate of an LDDW.
    static let relocation64_64: UInt32 = 1
    /// R_BPF_64_ABS64: an 8-byte absolute address in data.
    static let relocationAbs64: UInt32 = 2
    /// R_BPF_64_ABS32: a 4-byte absolute address in data.
    static let relocationAbs32: UInt32 = 3
    /// R_BPF_64_NODYLD32: 4-byte value in .BTF.ext / DWARF.
    static let relocationNoDyld32: UInt32 = 4
    /// R_BPF_64_32: the 32-bit immediate of a call, in instructions.
    static let relocation64_32: UInt32 = 10
}
