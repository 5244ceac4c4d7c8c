/// The `.BTF.ext` section: per-ELF-section function info, line info and CO-RE relocations.
///
/// Instruction offsets here are byte offsets from the start of the ELF section named by each
/// record (as the ELF format defines them), not instruction indexes. Strings (section names,
/// file names, source lines, CO-RE access strings) live in the `.BTF` string section.
public struct BTFExt: Sendable {
    /// `struct bpf_func_info`: a function starts at `instructionOffset` in `section`.
    public struct FunctionInfo: Sendable, Equatable {
        public var section: String
        public var instructionOffset: UInt32
        /// A `BTF_KIND_FUNC` type id.
        public var typeID: UInt32
    }

    /// `struct bpf_line_info`: the instruction at `instructionOffset` comes from this source line.
    public struct LineInfo: Sendable, Equatable {
        public var section: String
        public var instructionOffset: UInt32
        public var fileName: String
        /// The text of the source line (may be empty).
        public var sourceText: String
        public var line: UInt32
        public var column: UInt32
    }

    /// `struct bpf_core_relo`: the instruction at `instructionOffset` needs a CO-RE adjustment.
    public struct CORERelocation: Sendable, Equatable {
        public var section: String
        public var instructionOffset: UInt32
        /// The root type in the object's own BTF.
        public var typeID: UInt32
        /// `0:1:2`-style access string (field / array indexes), or `0` for type relocations.
        public var accessString: String
        public var kind: CORERelocationKind
    }

    public let functionInfo: [FunctionInfo]
    public let lineInfo: [LineInfo]
    public let coreRelocations: [CORERelocation]

    /// Parses `.BTF.ext` bytes; `btf` is the object's `.BTF`, whose strings the records use.
    public init(bytes: [UInt8], btf: BTF, section: String = ".BTF.ext") throws(ObjectFileError) {
        let structure = "section \(section)"
        let reader = ByteReader(bytes, bigEndian: btf.isBigEndian, structure: structure)
        let magic = try reader.u16(0, "btf_ext_header.magic")
        guard magic == BTF.magic else {
            throw .invalidField(
                structure: structure, field: "btf_ext_header.magic",
                detail: "0x\(String(magic, radix: 16)) is not 0xeb9f in the .BTF byte order")
        }
        let version = try reader.u8(2, "btf_ext_header.version")
        guard version == 1 else {
            throw .invalidField(structure: structure, field: "btf_ext_header.version", detail: "\(version), expected 1")
        }
        let headerLength = Int(try reader.u32(4, "btf_ext_header.hdr_len"))
        guard headerLength >= 24 else {
            throw .invalidField(
                structure: structure, field: "btf_ext_header.hdr_len", detail: "\(headerLength) is shorter than 24")
        }
        try reader.require(0, headerLength, "btf_ext_header (hdr_len \(headerLength))")

        func subsection(_ offsetField: Int, _ name: String) throws(ObjectFileError) -> ByteReader? {
            let offset = Int(try reader.u32(offsetField, "btf_ext_header.\(name)_off"))
            let length = Int(try reader.u32(offsetField + 4, "btf_ext_header.\(name)_len"))
            guard length > 0 else { return nil }
            return try reader.subReader(
                headerLength + offset, length, "\(name) (\(name)_off \(offset), \(name)_len \(length))",
                structure: "\(structure) \(name)")
        }

        /// Walks `rec_size`, then `btf_ext_info_sec` blocks, calling `record` for each record.
        func walk(
            _ r: ByteReader, minimumRecordSize: Int,
            _ record: (_ section: String, _ reader: ByteReader, _ offset: Int, _ index: Int) throws(ObjectFileError) ->
                Void
        ) throws(ObjectFileError) {
            let recordSize = Int(try r.u32(0, "rec_size"))
            guard recordSize >= minimumRecordSize, recordSize <= 1024 else {
                throw .invalidField(
                    structure: r.structure, field: "rec_size",
                    detail: "\(recordSize), expected at least \(minimumRecordSize)")
            }
            var offset = 4
            var index = 0
            while offset < r.count {
                let nameOffset = try r.u32(offset, "btf_ext_info_sec.sec_name_off at \(offset)")
                let count = Int(try r.u32(offset + 4, "btf_ext_info_sec.num_info at \(offset)"))
                guard let sectionName = btf.string(at: nameOffset) else {
                    throw .badStringIndex(
                        table: "section .BTF string section", field: "\(r.structure) sec_name_off at \(offset)",
                        index: UInt64(nameOffset))
                }
                offset += 8
                let (bytes, overflow) = count.multipliedReportingOverflow(by: recordSize)
                guard !overflow else {
                    throw .absurdCount(
                        structure: r.structure, field: "num_info", count: UInt64(count),
                        limit: UInt64(r.count / recordSize))
                }
                try r.require(
                    offset, bytes, "\(count) records of \(recordSize) bytes for section \(sectionName) (num_info)")
                for _ in 0..<count {
                    try record(sectionName, r, offset, index)
                    offset += recordSize
                    index += 1
                }
            }
        }

        func string(_ offset: UInt32, _ field: String, _ r: ByteReader) throws(ObjectFileError) -> String {
            guard let s = btf.string(at: offset) else {
                throw .badStringIndex(
                    table: "section .BTF string section", field: "\(r.structure) \(field)", index: UInt64(offset))
            }
            return s
        }

        var functions: [FunctionInfo] = []
        if let r = try subsection(8, "func_info") {
            try walk(r, minimumRecordSize: 8) {
                (section: String, r: ByteReader, at: Int, i: Int) throws(ObjectFileError) in
                functions.append(
                    FunctionInfo(
                        section: section,
                        instructionOffset: try r.u32(at, "record \(i) insn_off"),
                        typeID: try r.u32(at + 4, "record \(i) type_id")))
            }
        }
        var lines: [LineInfo] = []
        if let r = try subsection(16, "line_info") {
            try walk(r, minimumRecordSize: 16) {
                (section: String, r: ByteReader, at: Int, i: Int) throws(ObjectFileError) in
                let lineColumn = try r.u32(at + 12, "record \(i) line_col")
                lines.append(
                    LineInfo(
                        section: section,
                        instructionOffset: try r.u32(at, "record \(i) insn_off"),
                        fileName: try string(
                            try r.u32(at + 4, "record \(i) file_name_off"), "record \(i) file_name_off", r),
                        sourceText: try string(try r.u32(at + 8, "record \(i) line_off"), "record \(i) line_off", r),
                        line: lineColumn >> 10, column: lineColumn & 0x3FF))
            }
        }
        var relocations: [CORERelocation] = []
        if headerLength >= 32, let r = try subsection(24, "core_relo") {
            try walk(r, minimumRecordSize: 16) {
                (section: String, r: ByteReader, at: Int, i: Int) throws(ObjectFileError) in
                let rawKind = try r.u32(at + 12, "record \(i) kind")
                guard let kind = CORERelocationKind(rawValue: rawKind) else {
                    throw .invalidField(
                        structure: r.structure, field: "record \(i) kind",
                        detail: "unknown CO-RE relocation kind \(rawKind)")
                }
                relocations.append(
                    CORERelocation(
                        section: section,
                        instructionOffset: try r.u32(at, "record \(i) insn_off"),
                        typeID: try r.u32(at + 4, "record \(i) type_id"),
                        accessString: try string(
                            try r.u32(at + 8, "record \(i) access_str_off"), "record \(i) access_str_off", r),
                        kind: kind))
            }
        }
        functionInfo = functions
        lineInfo = lines
        coreRelocations = relocations
    }
}

/// `enum bpf_core_relo_kind`: what a CO-RE relocation asks for.
public enum CORERelocationKind: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case fieldByteOffset = 0
    case fieldByteSize = 1
    case fieldExists = 2
    case fieldSigned = 3
    case fieldLeftShift64 = 4
    case fieldRightShift64 = 5
    case typeIDLocal = 6
    case typeIDTarget = 7
    case typeExists = 8
    case typeSize = 9
    case enumValueExists = 10
    case enumValue = 11
    case typeMatches = 12

    /// The C spelling (`BPF_CORE_FIELD_BYTE_OFFSET`, ...).
    public var description: String {
        [
            "BPF_CORE_FIELD_BYTE_OFFSET", "BPF_CORE_FIELD_BYTE_SIZE", "BPF_CORE_FIELD_EXISTS", "BPF_CORE_FIELD_SIGNED",
            "BPF_CORE_FIELD_LSHIFT_U64", "BPF_CORE_FIELD_RSHIFT_U64", "BPF_CORE_TYPE_ID_LOCAL",
            "BPF_CORE_TYPE_ID_TARGET",
            "BPF_CORE_TYPE_EXISTS", "BPF_CORE_TYPE_SIZE", "BPF_CORE_ENUMVAL_EXISTS", "BPF_CORE_ENUMVAL_VALUE",
            "BPF_CORE_TYPE_MATCHES",
        ][Int(rawValue)]
    }
}
