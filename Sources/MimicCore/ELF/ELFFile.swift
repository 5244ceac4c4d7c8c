/// A parsed ELF64 relocatable object for the BPF machine: header, sections, symbols and
/// relocations, every offset and index checked against the file.
///
/// This is the container layer only; `ObjectFile` gives it eBPF meaning (programs, maps).
public struct ELFFile: Sendable {
    /// `EM_BPF`.
    public static let machineBPF: UInt16 = 247
    /// `ET_REL`.
    public static let typeRelocatable: UInt16 = 1

    /// One section header.
    public struct Section: Sendable, Equatable {
        /// Index in the section header table.
        public var index: Int
        public var name: String
        /// `sh_type` (`SHT_PROGBITS` = 1, `SHT_SYMTAB` = 2, `SHT_NOBITS` = 8, `SHT_REL` = 9, ...).
        public var type: UInt32
        /// `sh_flags` (`SHF_WRITE` = 1, `SHF_ALLOC` = 2, `SHF_EXECINSTR` = 4).
        public var flags: UInt64
        public var offset: UInt64
        public var size: UInt64
        public var link: UInt32
        public var info: UInt32
        public var alignment: UInt64
        public var entrySize: UInt64

        public static let typeProgBits: UInt32 = 1
        public static let typeSymbolTable: UInt32 = 2
        public static let typeStringTable: UInt32 = 3
        public static let typeRela: UInt32 = 4
        public static let typeNoBits: UInt32 = 8
        public static let typeRel: UInt32 = 9
        public static let flagWrite: UInt64 = 1
        public static let flagAlloc: UInt64 = 2
        public static let flagExecutable: UInt64 = 4

        /// Whether the section holds code (`SHF_EXECINSTR`).
        public var isExecutable: Bool { flags & Section.flagExecutable != 0 }
        /// Whether the section occupies bytes in the file (everything but `SHT_NOBITS` / `SHT_NULL`).
        public var hasFileData: Bool { type != Section.typeNoBits && type != 0 }
    }

    /// One `.symtab` entry.
    public struct Symbol: Sendable, Equatable {
        public var index: Int
        public var name: String
        public var value: UInt64
        public var size: UInt64
        /// `ELF64_ST_TYPE`: `STT_NOTYPE` 0, `STT_OBJECT` 1, `STT_FUNC` 2, `STT_SECTION` 3, `STT_FILE` 4.
        public var type: UInt8
        /// `ELF64_ST_BIND`: `STB_LOCAL` 0, `STB_GLOBAL` 1, `STB_WEAK` 2.
        public var binding: UInt8
        public var visibility: UInt8
        /// `st_shndx`: the section the symbol is defined in (0 = undefined).
        public var sectionIndex: UInt16

        public static let typeObject: UInt8 = 1
        public static let typeFunction: UInt8 = 2
        public static let typeSection: UInt8 = 3

        public var isFunction: Bool { type == Symbol.typeFunction }
        public var isSection: Bool { type == Symbol.typeSection }
        /// Defined in a real section (not undefined, absolute or common).
        public var isDefined: Bool { sectionIndex != 0 && sectionIndex < 0xff00 }
    }

    /// One relocation entry (`Elf64_Rel` or `Elf64_Rela`).
    public struct Relocation: Sendable, Equatable {
        /// `r_offset`: byte offset in the section the relocation applies to.
        public var offset: UInt64
        /// `ELF64_R_SYM(r_info)`.
        public var symbolIndex: Int
        /// `ELF64_R_TYPE(r_info)`.
        public var type: UInt32
        /// `r_addend` for `SHT_RELA`; nil for `SHT_REL` (the addend is in the relocated field).
        public var addend: Int64?

        public static let none: UInt32 = 0
        /// `R_BPF_64_64`: the 32-bit `imm` of an `lddw`, at `r_offset + 4`; S + A.
        public static let bpf64_64: UInt32 = 1
        /// `R_BPF_64_ABS64`: 64-bit data; S + A.
        public static let bpfAbs64: UInt32 = 2
        /// `R_BPF_64_ABS32`: 32-bit data; S + A.
        public static let bpfAbs32: UInt32 = 3
        /// `R_BPF_64_NODYLD32`: 32-bit data in `.BTF` / `.BTF.ext`; S + A.
        public static let bpfNoDyld32: UInt32 = 4
        /// `R_BPF_64_32`: the `imm` of a call, at `r_offset + 4`; (S + A) / 8 - 1.
        public static let bpf64_32: UInt32 = 10
    }

    /// The whole file.
    public let bytes: [UInt8]
    /// `e_ident[EI_DATA] == ELFDATA2MSB`.
    public let isBigEndian: Bool
    /// `e_type`.
    public let fileType: UInt16
    /// `e_flags`.
    public let flags: UInt32
    /// Every section header, index 0 (the null section) included.
    public let sections: [Section]
    /// The `.symtab` entries, index 0 (the null symbol) included; empty if there is no table.
    public let symbols: [Symbol]
    /// Relocations by the index of the section they apply to (the `sh_info` of `SHT_REL[A]`).
    public let relocations: [Int: [Relocation]]
    /// The index of the `.symtab` section, if any.
    public let symbolTableIndex: Int?

    /// The most sections or symbols accepted (more is certainly not a compiler's output).
    static let maxEntries: UInt64 = 1 << 22

    /// Parses and validates `bytes`. Throws an `ObjectFileError` naming the faulty field.
    public init(bytes: [UInt8]) throws(ObjectFileError) {
        self.bytes = bytes
        guard bytes.count >= 4, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else {
            if bytes.count < 4 {
                throw .truncated(
                    structure: "ELF header", field: "e_ident magic", offset: 0, size: 4, available: bytes.count)
            }
            throw .notELF
        }
        let ident = ByteReader(bytes, bigEndian: false, structure: "ELF header")
        let elfClass = try ident.u8(4, "e_ident[EI_CLASS]")
        guard elfClass == 2 else { throw .unsupportedClass(elfClass) }
        let data = try ident.u8(5, "e_ident[EI_DATA]")
        guard data == 1 || data == 2 else { throw .unsupportedByteOrder(data) }
        isBigEndian = data == 2
        let header = ByteReader(bytes, bigEndian: isBigEndian, structure: "ELF header")
        try header.require(0, 64, "the 64-byte ELF64 header")

        fileType = try header.u16(16, "e_type")
        let machine = try header.u16(18, "e_machine")
        guard machine == ELFFile.machineBPF else { throw .wrongMachine(machine) }
        guard fileType == ELFFile.typeRelocatable else { throw .wrongFileType(fileType) }
        flags = try header.u32(48, "e_flags")
        let sectionHeaderOffset = try header.u64(40, "e_shoff")
        let sectionHeaderSize = try header.u16(58, "e_shentsize")
        var sectionCount = UInt64(try header.u16(60, "e_shnum"))
        var nameTableIndex = UInt64(try header.u16(62, "e_shstrndx"))

        guard sectionHeaderOffset != 0 else { throw .missingSection("section header table (e_shoff is 0)") }
        guard sectionHeaderSize == 64 else {
            throw .invalidField(
                structure: "ELF header", field: "e_shentsize", detail: "\(sectionHeaderSize), expected 64 for ELF64")
        }
        guard let tableOffset = intValue(sectionHeaderOffset), header.contains(tableOffset, 64) else {
            throw .truncated(
                structure: "ELF header (the file is truncated)",
                field: "section header table (e_shoff \(sectionHeaderOffset), e_shnum \(sectionCount) × 64 bytes)",
                offset: intValue(sectionHeaderOffset) ?? Int.max, size: max(64, Int(sectionCount) * 64),
                available: bytes.count)
        }
        // Extended numbering: e_shnum 0 and e_shstrndx SHN_XINDEX keep the real values in section 0.
        if sectionCount == 0 { sectionCount = try header.u64(tableOffset + 32, "section 0 sh_size (extended e_shnum)") }
        if nameTableIndex == 0xFFFF {
            nameTableIndex = UInt64(try header.u32(tableOffset + 40, "section 0 sh_link (extended e_shstrndx)"))
        }
        let tableLimit = UInt64(bytes.count - tableOffset) / 64
        guard sectionCount <= tableLimit || sectionCount > ELFFile.maxEntries else {
            // The headers are sane but the file ends early: say so, with what they need.
            throw .truncated(
                structure: "ELF header (the file is truncated)",
                field: "section header table (e_shnum \(sectionCount) × 64 bytes)",
                offset: tableOffset, size: Int(sectionCount) * 64, available: bytes.count)
        }
        guard sectionCount <= tableLimit, sectionCount <= ELFFile.maxEntries else {
            throw .absurdCount(
                structure: "ELF header", field: "e_shnum", count: sectionCount,
                limit: min(tableLimit, ELFFile.maxEntries))
        }
        let count = Int(sectionCount)
        guard count > 0 else { throw .missingSection("section header table (e_shnum is 0)") }
        guard nameTableIndex < sectionCount else {
            throw .badSectionIndex(field: "ELF header e_shstrndx", index: nameTableIndex, sectionCount: count)
        }

        // Raw headers first, names second (the name table is itself a section).
        var raw: [Section] = []
        raw.reserveCapacity(count)
        for i in 0..<count {
            let base = tableOffset + i * 64
            let field = { (name: String) in "section header \(i) \(name)" }
            let section = Section(
                index: i, name: "",
                type: try header.u32(base + 4, field("sh_type")),
                flags: try header.u64(base + 8, field("sh_flags")),
                offset: try header.u64(base + 24, field("sh_offset")),
                size: try header.u64(base + 32, field("sh_size")),
                link: try header.u32(base + 40, field("sh_link")),
                info: try header.u32(base + 44, field("sh_info")),
                alignment: try header.u64(base + 48, field("sh_addralign")),
                entrySize: try header.u64(base + 56, field("sh_entsize")))
            if i > 0, section.hasFileData {
                guard let start = intValue(section.offset), let size = intValue(section.size),
                    start <= bytes.count, size <= bytes.count - start
                else {
                    throw .sectionOutOfBounds(
                        section: "#\(i)", offset: section.offset, size: section.size, fileSize: bytes.count)
                }
            }
            raw.append(section)
        }
        let nameTable = raw[Int(nameTableIndex)]
        guard nameTable.type == Section.typeStringTable else {
            throw .invalidField(
                structure: "ELF header", field: "e_shstrndx",
                detail: "section \(nameTableIndex) is not a string table (sh_type \(nameTable.type))")
        }
        let names = ByteReader(
            ELFFile.contents(nameTable, in: bytes), bigEndian: isBigEndian, structure: "section name table")
        for i in 0..<count {
            let nameOffset = try header.u32(tableOffset + i * 64, "section header \(i) sh_name")
            guard let name = names.cString(at: Int(nameOffset)) else {
                throw .badStringIndex(
                    table: "section name table (section \(nameTableIndex))",
                    field: "section header \(i) sh_name", index: UInt64(nameOffset))
            }
            raw[i].name = name
        }
        sections = raw
        try ELFFile.checkOverlaps(raw, headerTable: (tableOffset, count * 64))

        // Symbols.
        let symbolTables = raw.filter { $0.type == Section.typeSymbolTable }
        guard symbolTables.count <= 1 else {
            throw .invalidField(
                structure: "section \(symbolTables[1].name)", field: "sh_type", detail: "a second symbol table")
        }
        if let table = symbolTables.first {
            symbolTableIndex = table.index
            symbols = try ELFFile.readSymbols(table, sections: raw, bytes: bytes, bigEndian: isBigEndian)
        } else {
            symbolTableIndex = nil
            symbols = []
        }

        // Relocations.
        var relocations: [Int: [Relocation]] = [:]
        for section in raw where section.type == Section.typeRel || section.type == Section.typeRela {
            let target = Int(section.info)
            guard target > 0, target < count else {
                throw .badSectionIndex(
                    field: "section \(section.name) sh_info", index: UInt64(section.info), sectionCount: count)
            }
            guard let symtab = symbolTableIndex, Int(section.link) == symtab else {
                throw .badSectionIndex(
                    field: "section \(section.name) sh_link (symbol table)", index: UInt64(section.link),
                    sectionCount: count)
            }
            relocations[target, default: []] += try ELFFile.readRelocations(
                section, symbolCount: symbols.count, bytes: bytes, bigEndian: isBigEndian)
        }
        self.relocations = relocations
    }

    /// The bytes of `section`: its file contents, or zeros for `SHT_NOBITS` (at most
    /// `maxZeroFillSize` of them).
    public func contents(of section: Section) -> [UInt8] {
        ELFFile.contents(section, in: bytes)
    }

    /// The section named `name`, if any (the first one).
    public func section(named name: String) -> Section? {
        sections.first { $0.name == name }
    }

    /// The largest `SHT_NOBITS` section materialised as zeros (a guard against absurd sizes).
    public static let maxZeroFillSize: UInt64 = 1 << 28

    static func contents(_ section: Section, in bytes: [UInt8]) -> [UInt8] {
        if section.type == Section.typeNoBits {
            return [UInt8](repeating: 0, count: Int(min(section.size, maxZeroFillSize)))
        }
        guard section.hasFileData, let start = intValue(section.offset), let size = intValue(section.size),
            start <= bytes.count, size <= bytes.count - start
        else { return [] }
        return Array(bytes[start..<(start + size)])
    }

    static func checkOverlaps(_ sections: [Section], headerTable: (offset: Int, size: Int)) throws(ObjectFileError) {
        var extents: [(start: UInt64, end: UInt64, name: String)] = [
            (0, 64, "the ELF header"),
            (UInt64(headerTable.offset), UInt64(headerTable.offset + headerTable.size), "the section header table"),
        ]
        for section in sections.dropFirst() where section.hasFileData && section.size > 0 {
            extents.append((section.offset, section.offset + section.size, "section \(section.name)"))
        }
        extents.sort { $0.start < $1.start || ($0.start == $1.start && $0.end < $1.end) }
        for i in extents.indices.dropFirst() where extents[i].start < extents[i - 1].end {
            throw .overlappingSections(extents[i - 1].name, extents[i].name)
        }
    }

    static func readSymbols(_ table: Section, sections: [Section], bytes: [UInt8], bigEndian: Bool)
        throws(ObjectFileError) -> [Symbol]
    {
        let structure = "section \(table.name)"
        guard table.entrySize == 24 else {
            throw .invalidField(
                structure: structure, field: "sh_entsize", detail: "\(table.entrySize), expected 24 for Elf64_Sym")
        }
        guard table.size % 24 == 0 else {
            throw .invalidField(structure: structure, field: "sh_size", detail: "\(table.size) is not a multiple of 24")
        }
        let count = table.size / 24
        guard count <= maxEntries else {
            throw .absurdCount(structure: structure, field: "symbol count", count: count, limit: maxEntries)
        }
        guard Int(table.link) > 0, Int(table.link) < sections.count,
            sections[Int(table.link)].type == Section.typeStringTable
        else {
            throw .badSectionIndex(
                field: "\(structure) sh_link (string table)", index: UInt64(table.link), sectionCount: sections.count)
        }
        let strtab = sections[Int(table.link)]
        let strings = ByteReader(contents(strtab, in: bytes), bigEndian: bigEndian, structure: "section \(strtab.name)")
        let reader = ByteReader(contents(table, in: bytes), bigEndian: bigEndian, structure: structure)
        var symbols: [Symbol] = []
        symbols.reserveCapacity(Int(count))
        for i in 0..<Int(count) {
            let base = i * 24
            let nameOffset = try reader.u32(base, "symbol \(i) st_name")
            guard let name = strings.cString(at: Int(nameOffset)) else {
                throw .badStringIndex(
                    table: "section \(strtab.name)", field: "\(structure) symbol \(i) st_name",
                    index: UInt64(nameOffset))
            }
            let info = try reader.u8(base + 4, "symbol \(i) st_info")
            let other = try reader.u8(base + 5, "symbol \(i) st_other")
            let sectionIndex = try reader.u16(base + 6, "symbol \(i) st_shndx")
            if sectionIndex != 0, sectionIndex < 0xFF00, Int(sectionIndex) >= sections.count {
                throw .badSectionIndex(
                    field: "\(structure) symbol \(i) (\(name)) st_shndx", index: UInt64(sectionIndex),
                    sectionCount: sections.count)
            }
            symbols.append(
                Symbol(
                    index: i, name: name,
                    value: try reader.u64(base + 8, "symbol \(i) st_value"),
                    size: try reader.u64(base + 16, "symbol \(i) st_size"),
                    type: info & 0x0F, binding: info >> 4, visibility: other & 0x03, sectionIndex: sectionIndex))
        }
        return symbols
    }

    static func readRelocations(_ section: Section, symbolCount: Int, bytes: [UInt8], bigEndian: Bool)
        throws(ObjectFileError) -> [Relocation]
    {
        let structure = "section \(section.name)"
        let isRela = section.type == Section.typeRela
        let entrySize: UInt64 = isRela ? 24 : 16
        guard section.entrySize == entrySize || section.entrySize == 0 else {
            throw .invalidField(
                structure: structure, field: "sh_entsize", detail: "\(section.entrySize), expected \(entrySize)")
        }
        guard section.size % entrySize == 0 else {
            throw .invalidField(
                structure: structure, field: "sh_size", detail: "\(section.size) is not a multiple of \(entrySize)")
        }
        let count = section.size / entrySize
        guard count <= maxEntries else {
            throw .absurdCount(structure: structure, field: "relocation count", count: count, limit: maxEntries)
        }
        let reader = ByteReader(contents(section, in: bytes), bigEndian: bigEndian, structure: structure)
        var result: [Relocation] = []
        result.reserveCapacity(Int(count))
        for i in 0..<Int(count) {
            let base = i * Int(entrySize)
            let offset = try reader.u64(base, "relocation \(i) r_offset")
            let info = try reader.u64(base + 8, "relocation \(i) r_info")
            let symbol = info >> 32
            guard symbol < UInt64(symbolCount) else {
                throw .invalidField(
                    structure: structure, field: "relocation \(i) r_info symbol",
                    detail: "symbol \(symbol) does not exist (the table has \(symbolCount))")
            }
            let addend = isRela ? Int64(bitPattern: try reader.u64(base + 16, "relocation \(i) r_addend")) : nil
            result.append(
                Relocation(
                    offset: offset, symbolIndex: Int(symbol), type: UInt32(truncatingIfNeeded: info), addend: addend))
        }
        return result
    }
}
