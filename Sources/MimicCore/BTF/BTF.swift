/// BPF Type Format: the type and string sections of a `.BTF` blob (`include/uapi/linux/btf.h`).
///
/// Type ids start at 1 in the order the types appear; id 0 is `void`. Every kind is decoded:
/// int, ptr, array, struct, union, enum, enum64, fwd, typedef, volatile, const, restrict, func,
/// func_proto, var, datasec, float, decl_tag and type_tag. Parsing checks every length and
/// string offset, and throws `ObjectFileError` naming the field at fault.
public struct BTF: Sendable {
    /// `BTF_KIND_*`.
    public enum Kind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        case void = 0
        case int = 1, pointer, array, structure, union, enumeration, forward, typedef, volatile, const, restrict
        case function, functionProto, variable, dataSection, float, declTag, typeTag, enumeration64

        /// The spelling bpftool uses (`STRUCT`, `FUNC_PROTO`, ...).
        public var description: String {
            [
                "VOID", "INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FWD", "TYPEDEF", "VOLATILE", "CONST",
                "RESTRICT",
                "FUNC", "FUNC_PROTO", "VAR", "DATASEC", "FLOAT", "DECL_TAG", "TYPE_TAG", "ENUM64",
            ][Int(rawValue)]
        }
    }

    /// A struct or union member.
    public struct Member: Sendable, Equatable {
        public var name: String
        public var type: UInt32
        /// Offset from the start of the struct, in bits.
        public var bitOffset: UInt32
        /// Width of a bitfield member in bits; 0 for ordinary members.
        public var bitfieldSize: UInt32
    }

    /// One enumerator (of `enum` or `enum64`).
    public struct EnumValue: Sendable, Equatable {
        public var name: String
        /// The value's bits; read as signed when the enum is signed.
        public var value: UInt64
    }

    /// One parameter of a function prototype; a trailing `(name "", type 0)` means `...`.
    public struct Parameter: Sendable, Equatable {
        public var name: String
        public var type: UInt32
    }

    /// One variable of a data section (`struct btf_var_secinfo`).
    public struct SectionVariable: Sendable, Equatable {
        public var type: UInt32
        public var offset: UInt32
        public var size: UInt32
    }

    /// `BTF_INT_ENCODING` bits.
    public struct IntEncoding: OptionSet, Sendable, Hashable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let signed = IntEncoding(rawValue: 1)
        public static let char = IntEncoding(rawValue: 2)
        public static let bool = IntEncoding(rawValue: 4)
    }

    /// One type, by kind.
    public enum TypeInfo: Sendable, Equatable {
        case void
        case int(name: String, size: UInt32, encoding: IntEncoding, bitOffset: UInt8, bits: UInt8)
        case pointer(target: UInt32)
        case array(element: UInt32, indexType: UInt32, count: UInt32)
        case structure(name: String, size: UInt32, members: [Member])
        case union(name: String, size: UInt32, members: [Member])
        /// `enum` (`is64Bit` false, size up to 4) or `enum64`.
        case enumeration(name: String, size: UInt32, values: [EnumValue], isSigned: Bool, is64Bit: Bool)
        case forward(name: String, isUnion: Bool)
        case typedef(name: String, target: UInt32)
        case volatile(target: UInt32)
        case const(target: UInt32)
        case restrict(target: UInt32)
        /// A defined function; `linkage` is `BTF_FUNC_STATIC` 0, `GLOBAL` 1, `EXTERN` 2.
        case function(name: String, prototype: UInt32, linkage: UInt32)
        case functionProto(returnType: UInt32, parameters: [Parameter])
        /// A variable; `linkage` is static 0, global allocated 1, extern 2.
        case variable(name: String, type: UInt32, linkage: UInt32)
        case dataSection(name: String, size: UInt32, variables: [SectionVariable])
        case float(name: String, size: UInt32)
        /// A tag on `target`, or on its member/parameter `componentIndex` (-1 for the whole).
        case declTag(name: String, target: UInt32, componentIndex: Int32)
        case typeTag(name: String, target: UInt32)

        public var kind: Kind {
            switch self {
            case .void: .void
            case .int: .int
            case .pointer: .pointer
            case .array: .array
            case .structure: .structure
            case .union: .union
            case .enumeration(_, _, _, _, let is64): is64 ? .enumeration64 : .enumeration
            case .forward: .forward
            case .typedef: .typedef
            case .volatile: .volatile
            case .const: .const
            case .restrict: .restrict
            case .function: .function
            case .functionProto: .functionProto
            case .variable: .variable
            case .dataSection: .dataSection
            case .float: .float
            case .declTag: .declTag
            case .typeTag: .typeTag
            }
        }

        /// The type's name; empty for anonymous types and kinds without names.
        public var name: String {
            switch self {
            case .int(let name, _, _, _, _), .structure(let name, _, _), .union(let name, _, _),
                .enumeration(let name, _, _, _, _), .forward(let name, _), .typedef(let name, _),
                .function(let name, _, _), .variable(let name, _, _), .dataSection(let name, _, _),
                .float(let name, _), .declTag(let name, _, _), .typeTag(let name, _):
                name
            default:
                ""
            }
        }

        /// Members of a struct or union, else empty.
        public var members: [Member] {
            switch self {
            case .structure(_, _, let members), .union(_, _, let members): members
            default: []
            }
        }
    }

    /// `BTF_MAGIC`.
    public static let magic: UInt16 = 0xEB9F
    /// `BTF_MAX_TYPE`.
    public static let maxTypes = 0x000F_FFFF

    /// Every type by id; `types[0]` is `.void`.
    public private(set) var types: [TypeInfo]
    /// Whether the blob is big-endian (its magic reads `EB 9F`).
    public let isBigEndian: Bool
    /// The raw string section.
    let strings: ByteReader
    private let idsByName: [String: [UInt32]]
    /// Types with a `___flavor` suffix, by essential name (CO-RE candidates; few in a kernel BTF).
    private let flavoredIDsByEssentialName: [String: [UInt32]]

    /// Parses a `.BTF` blob. `section` names it in errors.
    public init(bytes: [UInt8], section: String = ".BTF") throws(ObjectFileError) {
        let structure = "section \(section)"
        guard bytes.count >= 2 else {
            throw .truncated(
                structure: structure, field: "btf_header.magic", offset: 0, size: 2, available: bytes.count)
        }
        if bytes[0] == 0x9F && bytes[1] == 0xEB {
            isBigEndian = false
        } else if bytes[0] == 0xEB && bytes[1] == 0x9F {
            isBigEndian = true
        } else {
            throw .invalidField(
                structure: structure, field: "btf_header.magic",
                detail: String(format0x: bytes[0], bytes[1]) + " is not 0xeB9F")
        }
        let reader = ByteReader(bytes, bigEndian: isBigEndian, structure: structure)
        let version = try reader.u8(2, "btf_header.version")
        guard version == 1 else {
            throw .invalidField(structure: structure, field: "btf_header.version", detail: "\(version), expected 1")
        }
        let headerLength = Int(try reader.u32(4, "btf_header.hdr_len"))
        guard headerLength >= 24 else {
            throw .invalidField(
                structure: structure, field: "btf_header.hdr_len",
                detail: "\(headerLength) is shorter than the 24-byte header")
        }
        try reader.require(0, headerLength, "btf_header (hdr_len \(headerLength))")
        let typeOffset = Int(try reader.u32(8, "btf_header.type_off"))
        let typeLength = Int(try reader.u32(12, "btf_header.type_len"))
        let stringOffset = Int(try reader.u32(16, "btf_header.str_off"))
        let stringLength = Int(try reader.u32(20, "btf_header.str_len"))
        let typeSection = try reader.subReader(
            headerLength + typeOffset, typeLength, "type section (type_off \(typeOffset), type_len \(typeLength))",
            structure: "\(structure) type section")
        strings = try reader.subReader(
            headerLength + stringOffset, stringLength,
            "string section (str_off \(stringOffset), str_len \(stringLength))",
            structure: "\(structure) string section")
        guard stringLength == 0 || strings.bytes[0] == 0 else {
            throw .invalidField(structure: structure, field: "string section", detail: "the first string must be empty")
        }
        let typesEnd = headerLength + typeOffset + typeLength
        let stringsStart = headerLength + stringOffset
        if typeLength > 0, stringLength > 0, stringsStart < typesEnd,
            headerLength + typeOffset < stringsStart + stringLength
        {
            throw .overlappingSections("\(structure) type section", "\(structure) string section")
        }

        var types: [TypeInfo] = [.void]
        var offset = 0
        while offset < typeSection.count {
            guard types.count <= BTF.maxTypes else {
                throw .absurdCount(
                    structure: structure, field: "type count", count: UInt64(types.count), limit: UInt64(BTF.maxTypes))
            }
            let (type, length) = try BTF.parseType(typeSection, at: offset, id: types.count, strings: strings)
            types.append(type)
            offset += length
        }
        try BTF.checkReferences(types, structure: structure)
        self.types = types
        var byName: [String: [UInt32]] = [:]
        var flavored: [String: [UInt32]] = [:]
        for (id, type) in types.enumerated() where !type.name.isEmpty {
            byName[type.name, default: []].append(UInt32(id))
            if type.name.utf8.count > 4, type.name.contains("___") {
                let essential = CORERelocator.essentialName(type.name)
                if essential != type.name { flavored[essential, default: []].append(UInt32(id)) }
            }
        }
        idsByName = byName
        flavoredIDsByEssentialName = flavored
    }

    /// `MAX_RESOLVE_DEPTH`: the longest chain of references the kernel's BTF checks follow.
    public static let maxResolveDepth = 32

    /// The types a type's own layout or spelling depends on: modifiers, typedefs, pointers,
    /// arrays, prototypes, functions, variables and tags. Struct and union members are not
    /// followed (a struct may hold a pointer to itself), as in the kernel's resolve pass.
    private static func references(of type: TypeInfo) -> [UInt32] {
        switch type {
        case .pointer(let target), .typedef(_, let target), .volatile(let target), .const(let target),
            .restrict(let target),
            .typeTag(_, let target), .declTag(_, let target, _), .variable(_, let target, _),
            .function(_, let target, _):
            return [target]
        case .array(let element, let index, _): return [element, index]
        case .functionProto(let result, let parameters): return [result] + parameters.map(\.type)
        case .dataSection(_, _, let variables): return variables.map(\.type)
        case .void, .int, .structure, .union, .enumeration, .forward, .float: return []
        }
    }

    /// The kernel's resolve checks (`btf_resolve`, `MAX_RESOLVE_DEPTH`): following references
    /// (`references(of:)`) never loops back to a type on the way and never takes more than
    /// `maxResolveDepth` steps. Each type is visited once, so the check is linear in the types;
    /// afterwards every walk over references terminates.
    static func checkReferences(_ types: [TypeInfo], structure: String) throws(ObjectFileError) {
        var depth = [Int](repeating: -1, count: types.count) // -1 unvisited, -2 on the path
        func visit(_ id: Int, level: Int) throws(ObjectFileError) -> Int {
            guard id < types.count else { return 0 } // a dangling id: accessors treat it as absent
            if depth[id] >= 0 { return depth[id] }
            guard depth[id] != -2 else {
                throw .invalidField(
                    structure: structure, field: "type [\(id)]", detail: "loop detected: the type refers back to itself"
                )
            }
            guard level <= maxResolveDepth else {
                throw .invalidField(
                    structure: structure, field: "type [\(id)]",
                    detail: "references nest deeper than the kernel's MAX_RESOLVE_DEPTH of \(maxResolveDepth)")
            }
            depth[id] = -2
            var deepest = 0
            for target in references(of: types[id]) {
                deepest = max(deepest, try visit(Int(target), level: level + 1) + 1)
            }
            guard deepest <= maxResolveDepth else {
                throw .invalidField(
                    structure: structure, field: "type [\(id)]",
                    detail: "references nest deeper than the kernel's MAX_RESOLVE_DEPTH of \(maxResolveDepth)")
            }
            depth[id] = deepest
            return deepest
        }
        for id in types.indices where depth[id] < 0 { _ = try visit(id, level: 0) }
    }

    private static func parseType(_ r: ByteReader, at offset: Int, id: Int, strings: ByteReader) throws(ObjectFileError)
        -> (TypeInfo, Int)
    {
        let field = { (name: String) in "type [\(id)] \(name)" }
        let nameOffset = try r.u32(offset, field("name_off"))
        let info = try r.u32(offset + 4, field("info"))
        let sizeOrType = try r.u32(offset + 8, field("size/type"))
        let vlen = Int(info & 0xFFFF)
        let rawKind = UInt8((info >> 24) & 0x1F)
        let kindFlag = info >> 31 != 0
        func name(_ off: UInt32, _ what: @autoclosure () -> String) throws(ObjectFileError) -> String {
            guard let s = strings.cString(at: Int(off)) else {
                throw .badStringIndex(table: strings.structure, field: field(what()), index: UInt64(off))
            }
            return s
        }
        let typeName = try name(nameOffset, "name_off")
        let body = offset + 12
        guard let kind = Kind(rawValue: rawKind), kind != .void else {
            throw .invalidField(
                structure: r.structure, field: field("info kind"), detail: "unknown BTF kind \(rawKind)")
        }
        /// Checks that `count` records of `size` bytes follow, before reading any.
        func records(_ size: Int) throws(ObjectFileError) -> Int {
            try r.require(body, vlen * size, field("\(vlen) records of \(size) bytes (vlen)"))
            return 12 + vlen * size
        }
        switch kind {
        case .void:
            throw .invalidField(structure: r.structure, field: field("info kind"), detail: "kind 0")
        case .int:
            let data = try r.u32(body, field("int encoding"))
            let bits = UInt8(data & 0xFF)
            guard bits <= 128 else {
                throw .invalidField(structure: r.structure, field: field("BTF_INT_BITS"), detail: "\(bits) > 128")
            }
            return (
                .int(
                    name: typeName, size: sizeOrType, encoding: IntEncoding(rawValue: UInt8((data >> 24) & 0x0F)),
                    bitOffset: UInt8((data >> 16) & 0xFF), bits: bits), 16
            )
        case .pointer: return (.pointer(target: sizeOrType), 12)
        case .array:
            let element = try r.u32(body, field("btf_array.type"))
            let index = try r.u32(body + 4, field("btf_array.index_type"))
            let count = try r.u32(body + 8, field("btf_array.nelems"))
            return (.array(element: element, indexType: index, count: count), 24)
        case .structure, .union:
            let length = try records(12)
            var members: [Member] = []
            members.reserveCapacity(vlen)
            for i in 0..<vlen {
                let base = body + i * 12
                let memberName = try name(try r.u32(base, field("member \(i) name_off")), "member \(i) name_off")
                let type = try r.u32(base + 4, field("member \(i) type"))
                let raw = try r.u32(base + 8, field("member \(i) offset"))
                members.append(
                    kindFlag
                        ? Member(name: memberName, type: type, bitOffset: raw & 0xFF_FFFF, bitfieldSize: raw >> 24)
                        : Member(name: memberName, type: type, bitOffset: raw, bitfieldSize: 0))
            }
            return (
                kind == .structure
                    ? .structure(name: typeName, size: sizeOrType, members: members)
                    : .union(name: typeName, size: sizeOrType, members: members), length
            )
        case .enumeration, .enumeration64:
            let is64 = kind == .enumeration64
            let length = try records(is64 ? 12 : 8)
            var values: [EnumValue] = []
            values.reserveCapacity(vlen)
            for i in 0..<vlen {
                let base = body + i * (is64 ? 12 : 8)
                let valueName = try name(try r.u32(base, field("enumerator \(i) name_off")), "enumerator \(i) name_off")
                let value: UInt64
                if is64 {
                    let low = UInt64(try r.u32(base + 4, field("enumerator \(i) val_lo32")))
                    let high = UInt64(try r.u32(base + 8, field("enumerator \(i) val_hi32")))
                    value = high << 32 | low
                } else {
                    let raw = try r.i32(base + 4, field("enumerator \(i) val"))
                    value = kindFlag ? UInt64(bitPattern: Int64(raw)) : UInt64(UInt32(bitPattern: raw))
                }
                values.append(EnumValue(name: valueName, value: value))
            }
            // kind_flag: 1 for a signed enum, 0 for unsigned.
            let signed = kindFlag
            return (
                .enumeration(name: typeName, size: sizeOrType, values: values, isSigned: signed, is64Bit: is64), length
            )
        case .forward: return (.forward(name: typeName, isUnion: kindFlag), 12)
        case .typedef: return (.typedef(name: typeName, target: sizeOrType), 12)
        case .volatile: return (.volatile(target: sizeOrType), 12)
        case .const: return (.const(target: sizeOrType), 12)
        case .restrict: return (.restrict(target: sizeOrType), 12)
        case .function: return (.function(name: typeName, prototype: sizeOrType, linkage: UInt32(vlen)), 12)
        case .functionProto:
            let length = try records(8)
            var parameters: [Parameter] = []
            parameters.reserveCapacity(vlen)
            for i in 0..<vlen {
                let base = body + i * 8
                let parameterName = try name(
                    try r.u32(base, field("parameter \(i) name_off")), "parameter \(i) name_off")
                parameters.append(
                    Parameter(name: parameterName, type: try r.u32(base + 4, field("parameter \(i) type"))))
            }
            return (.functionProto(returnType: sizeOrType, parameters: parameters), length)
        case .variable:
            return (.variable(name: typeName, type: sizeOrType, linkage: try r.u32(body, field("btf_var.linkage"))), 16)
        case .dataSection:
            let length = try records(12)
            var variables: [SectionVariable] = []
            variables.reserveCapacity(vlen)
            for i in 0..<vlen {
                let base = body + i * 12
                variables.append(
                    SectionVariable(
                        type: try r.u32(base, field("secinfo \(i) type")),
                        offset: try r.u32(base + 4, field("secinfo \(i) offset")),
                        size: try r.u32(base + 8, field("secinfo \(i) size"))))
            }
            return (.dataSection(name: typeName, size: sizeOrType, variables: variables), length)
        case .float: return (.float(name: typeName, size: sizeOrType), 12)
        case .declTag:
            return (
                .declTag(
                    name: typeName, target: sizeOrType,
                    componentIndex: try r.i32(body, field("btf_decl_tag.component_idx"))), 16
            )
        case .typeTag: return (.typeTag(name: typeName, target: sizeOrType), 12)
        }
    }

    /// Fills in what the compiler leaves to the loader in `DATASEC` types, as libbpf does: the
    /// section size, and each variable's offset from the ELF symbol of the same name
    /// (`sectionSize` and `symbolOffset` answer for a section name and variable name).
    mutating func fixUpDataSections(sectionSize: (String) -> UInt64?, symbolOffset: (String, String) -> UInt64?) {
        for id in types.indices {
            guard case .dataSection(let name, let size, var variables) = types[id], let actualSize = sectionSize(name)
            else { continue }
            for i in variables.indices {
                guard case .variable(let variableName, _, _)? = type(variables[i].type),
                    let offset = symbolOffset(name, variableName), offset <= UInt64(UInt32.max)
                else { continue }
                variables[i].offset = UInt32(offset)
            }
            let fixedSize = size == 0 && actualSize <= UInt64(UInt32.max) ? UInt32(actualSize) : size
            types[id] = .dataSection(name: name, size: fixedSize, variables: variables)
        }
    }

    // MARK: Lookup

    /// The number of type ids, `void` included.
    public var count: Int { types.count }

    /// The type with id `id`, or nil if there is none.
    public func type(_ id: UInt32) -> TypeInfo? {
        Int(id) < types.count ? types[Int(id)] : nil
    }

    /// The ids of every type named `name`, in id order.
    public func typeIDs(named name: String) -> [UInt32] {
        idsByName[name] ?? []
    }

    /// The ids of every type whose essential name (`CORERelocator.essentialName`: the name
    /// without a `___flavor` suffix) is `name`, in id order: found through the name index,
    /// not by a walk over every type.
    public func typeIDs(essentialName name: String) -> [UInt32] {
        guard let flavored = flavoredIDsByEssentialName[name] else { return idsByName[name] ?? [] }
        return ((idsByName[name] ?? []) + flavored).sorted()
    }

    /// The first type named `name`, optionally of one kind.
    public func typeID(named name: String, kind: Kind? = nil) -> UInt32? {
        typeIDs(named: name).first { kind == nil || types[Int($0)].kind == kind }
    }

    /// The string at `offset` of the string section.
    public func string(at offset: UInt32) -> String? {
        strings.cString(at: Int(offset))
    }

    /// How deep type chains are followed before giving up (a guard against cyclic input).
    static let maxDepth = 64

    /// `id` with typedefs, `const`, `volatile`, `restrict` and type tags peeled off.
    public func resolve(_ id: UInt32) -> UInt32 {
        var current = id
        for _ in 0..<BTF.maxDepth {
            switch type(current) {
            case .typedef(_, let target), .volatile(let target), .const(let target), .restrict(let target),
                .typeTag(_, let target):
                current = target
            default:
                return current
            }
        }
        return current
    }

    /// The size in bytes of a value of type `id`, or nil when it has none (void, functions,
    /// forward declarations) or the chain is malformed.
    public func size(of id: UInt32) -> Int? {
        size(of: id, depth: 0)
    }

    private func size(of id: UInt32, depth: Int) -> Int? {
        guard depth < BTF.maxDepth, let info = type(id) else { return nil }
        switch info {
        case .int(_, let size, _, _, _), .structure(_, let size, _), .union(_, let size, _),
            .enumeration(_, let size, _, _, _),
            .dataSection(_, let size, _), .float(_, let size):
            return Int(size)
        case .pointer:
            return 8
        case .array(let element, _, let count):
            guard let elementSize = size(of: element, depth: depth + 1) else { return nil }
            let (total, overflow) = elementSize.multipliedReportingOverflow(by: Int(count))
            return overflow ? nil : total
        case .typedef(_, let target), .volatile(let target), .const(let target), .restrict(let target),
            .typeTag(_, let target),
            .variable(_, let target, _):
            return size(of: target, depth: depth + 1)
        case .void, .forward, .function, .functionProto, .declTag:
            return nil
        }
    }

    /// The byte offset of the `struct bpf_spin_lock` member of struct `id` (after typedefs and
    /// qualifiers), as the kernel's `btf_find_spin_lock` looks for it: top-level members only.
    /// Nil when `id` is not a struct or has no such member.
    public func spinLockOffset(in id: UInt32) -> UInt32? {
        guard case .structure(_, _, let members)? = type(resolve(id)) else { return nil }
        for member in members {
            if case .structure("bpf_spin_lock", _, _)? = type(resolve(member.type)) { return member.bitOffset / 8 }
        }
        return nil
    }

    /// A C-like spelling of type `id` (`struct flow`, `unsigned int *`, `char[16]`). Spellings
    /// of more than `typeNameParts` types (prototypes of prototypes) end in `...`, so the work
    /// is bounded whatever the input.
    public func typeName(_ id: UInt32) -> String {
        var remaining = BTF.typeNameParts
        return typeName(id, depth: 0, remaining: &remaining)
    }

    /// The most types one `typeName` spells out.
    static let typeNameParts = 256

    private func typeName(_ id: UInt32, depth: Int, remaining: inout Int) -> String {
        guard remaining > 0 else { return "..." }
        remaining -= 1
        func typeName(_ id: UInt32, depth: Int) -> String { self.typeName(id, depth: depth, remaining: &remaining) }
        guard depth < BTF.maxDepth, let info = type(id) else { return "<bad type \(id)>" }
        switch info {
        case .void: return "void"
        case .int(let name, _, _, _, _), .float(let name, _), .typedef(let name, _): return name
        case .pointer(let target): return typeName(target, depth: depth + 1) + " *"
        case .array(let element, _, let count): return typeName(element, depth: depth + 1) + "[\(count)]"
        case .structure(let name, _, _): return name.isEmpty ? "struct <anon>" : "struct \(name)"
        case .union(let name, _, _): return name.isEmpty ? "union <anon>" : "union \(name)"
        case .enumeration(let name, _, _, _, _): return name.isEmpty ? "enum <anon>" : "enum \(name)"
        case .forward(let name, let isUnion): return (isUnion ? "union " : "struct ") + name
        case .volatile(let target): return "volatile " + typeName(target, depth: depth + 1)
        case .const(let target): return "const " + typeName(target, depth: depth + 1)
        case .restrict(let target): return typeName(target, depth: depth + 1) + " restrict"
        case .typeTag(let name, let target): return typeName(target, depth: depth + 1) + " __tag(\(name))"
        case .function(let name, _, _): return name
        case .functionProto(let result, let parameters):
            return typeName(result, depth: depth + 1) + " (*)("
                + parameters.map { $0.type == 0 ? "..." : typeName($0.type, depth: depth + 1) }.joined(separator: ", ")
                + ")"
        case .variable(let name, _, _), .dataSection(let name, _, _), .declTag(let name, _, _): return name
        }
    }
}

extension String {
    init(format0x first: UInt8, _ second: UInt8) {
        let hex = { (b: UInt8) in (b < 16 ? "0" : "") + String(b, radix: 16) }
        self = "0x" + hex(first) + hex(second)
    }
}
