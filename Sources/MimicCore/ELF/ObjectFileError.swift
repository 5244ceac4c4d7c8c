/// Why an ELF object file (or its BTF) could not be read.
///
/// Every case names where the problem is: the section (or header) and the field, so a user can
/// find it with `llvm-readelf`. Parsing never traps on bad input; it throws one of these.
public enum ObjectFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Reading `field` of `structure` needs `size` bytes at `offset`, but only `available` exist.
    case truncated(structure: String, field: String, offset: Int, size: Int, available: Int)
    /// The first bytes are not `\x7fELF`.
    case notELF
    /// `e_ident[EI_CLASS]` is not ELFCLASS64.
    case unsupportedClass(UInt8)
    /// `e_ident[EI_DATA]` is neither little- nor big-endian.
    case unsupportedByteOrder(UInt8)
    /// `e_machine` is not EM_BPF (247).
    case wrongMachine(UInt16)
    /// `e_type` is not ET_REL (1): only relocatable objects are eBPF objects.
    case wrongFileType(UInt16)
    /// A section's data (`sh_offset` + `sh_size`) lies outside the file.
    case sectionOutOfBounds(section: String, offset: UInt64, size: UInt64, fileSize: Int)
    /// Two sections' data, or a section and a header table, overlap.
    case overlappingSections(String, String)
    /// A string table index (`sh_name`, `st_name`, a BTF `name_off`) points outside its table.
    case badStringIndex(table: String, field: String, index: UInt64)
    /// A section index (`sh_link`, `sh_info`, `st_shndx`, `e_shstrndx`) names no section.
    case badSectionIndex(field: String, index: UInt64, sectionCount: Int)
    /// A count or size is larger than the data that holds it, or beyond a sane limit.
    case absurdCount(structure: String, field: String, count: UInt64, limit: UInt64)
    /// A field has a value the format does not allow.
    case invalidField(structure: String, field: String, detail: String)
    /// A relocation that cannot be applied.
    case badRelocation(section: String, offset: UInt64, detail: String)
    /// A section the object needs is missing.
    case missingSection(String)

    public var description: String {
        switch self {
        case .truncated(let structure, let field, let offset, let size, let available):
            return
                "\(structure): \(field) at offset \(offset) needs \(size) bytes but only \(max(0, available - offset)) remain (of \(available))"
        case .notELF:
            return "not an ELF file: the magic bytes \\x7fELF are missing"
        case .unsupportedClass(let value):
            return "ELF header: e_ident[EI_CLASS] is \(value); only ELFCLASS64 (2) eBPF objects are supported"
        case .unsupportedByteOrder(let value):
            return "ELF header: e_ident[EI_DATA] is \(value); expected 1 (little-endian) or 2 (big-endian)"
        case .wrongMachine(let machine):
            return "ELF header: e_machine is \(machine), not EM_BPF (247): this is not an eBPF object"
        case .wrongFileType(let type):
            return "ELF header: e_type is \(type), not ET_REL (1): eBPF objects are relocatable files"
        case .sectionOutOfBounds(let section, let offset, let size, let fileSize):
            return
                "section \(section): sh_offset \(offset) + sh_size \(size) lies past the end of the file (\(fileSize) bytes)"
        case .overlappingSections(let a, let b):
            return "\(a) and \(b) overlap in the file"
        case .badStringIndex(let table, let field, let index):
            return "\(field): string index \(index) is outside the string table \(table)"
        case .badSectionIndex(let field, let index, let count):
            return "\(field): section index \(index) does not exist (the file has \(count) sections)"
        case .absurdCount(let structure, let field, let count, let limit):
            return "\(structure): \(field) of \(count) exceeds the limit of \(limit)"
        case .invalidField(let structure, let field, let detail):
            return "\(structure): \(field): \(detail)"
        case .badRelocation(let section, let offset, let detail):
            return "relocation in \(section) at offset \(offset): \(detail)"
        case .missingSection(let name) where name.hasPrefix(".BTF (") && name.hasSuffix(")"):
            // `.BTF (needed ...)`: the type information clang writes with -g.
            let why = name.dropFirst(".BTF (".count).dropLast()
            return
                "the object has no BTF type information (a .BTF section), \(why); compile with `clang -g`, which adds it"
        case .missingSection(let name):
            return "the object has no \(name) section"
        }
    }
}
