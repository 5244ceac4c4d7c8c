/// A variable or function an object declares `extern` and does not define, as libbpf's
/// `bpf_object__collect_externs` finds them: an undefined `STT_NOTYPE` symbol bound global or
/// weak, described by a BTF `VAR` or `FUNC` of extern linkage in the `.kconfig` or `.ksyms`
/// `DATASEC`.
public struct ObjectExtern: Sendable, Equatable {
    /// What the extern is.
    public enum Kind: Sendable, Equatable {
        /// A `__kconfig` variable: a value of the `.kconfig` section, which the loader fills
        /// (`LINUX_KERNEL_VERSION`, `CONFIG_*`, ...) and maps read-only.
        case kconfig(Kconfig)
        /// A `__ksym` variable: the address of a kernel object. `typeID` is its BTF type (after
        /// modifiers and typedefs) in the object's BTF, nil for a typeless one (`const void`);
        /// `size` that type's size, when it has one.
        case ksymVariable(typeID: UInt32?, size: Int?)
        /// A `__ksym` function: a kfunc, bound by name (`Emulator.kfunc(named:)`).
        case kfunc
    }

    /// The type and place of a `__kconfig` variable, as libbpf's `kcfg` description.
    public struct Kconfig: Sendable, Equatable {
        /// The kinds of value libbpf accepts for a `__kconfig` extern (`enum kcfg_type`).
        public enum ValueType: Sendable, Equatable {
            /// `bool` (a 1-byte BTF int with the bool encoding): `y` is 1, `n` is 0.
            case bool
            /// `enum libbpf_tristate` (4 bytes): `n` 0, `y` 1, `m` 2.
            case tristate
            /// A 1-byte integer (`char`): `y`, `n`, `m` as those characters, or a number.
            case char
            /// An integer of 2, 4 or 8 bytes (or 1 byte, which is `char`).
            case integer(signed: Bool)
            /// `char[N]`: a quoted string, NUL-terminated, truncated to N - 1 bytes.
            case charArray
        }

        public var type: ValueType
        /// The value's size and alignment in bytes.
        public var size: Int
        public var alignment: Int
        /// Where the value lives in the `.kconfig` section.
        public var offset: Int

        /// The C type, as `mimic inspect` shows it (`bool`, `s32`, `char[16]`).
        public var typeName: String {
            switch type {
            case .bool: "bool"
            case .tristate: "enum libbpf_tristate"
            case .char: "char"
            case .integer(let signed): "\(signed ? "s" : "u")\(size * 8)"
            case .charArray: "char[\(size)]"
            }
        }

        public init(type: ValueType, size: Int, alignment: Int, offset: Int) {
            self.type = type
            self.size = size
            self.alignment = alignment
            self.offset = offset
        }
    }

    public var name: String
    /// Bound `STB_WEAK` (`__weak`): may stay unresolved, and then reads as zero.
    public var isWeak: Bool
    public var kind: Kind
    /// The symbol's index in `.symtab`.
    public var symbolIndex: Int

    public init(name: String, isWeak: Bool, kind: Kind, symbolIndex: Int) {
        self.name = name
        self.isWeak = isWeak
        self.kind = kind
        self.symbolIndex = symbolIndex
    }

    /// Whether it is a variable (kconfig or ksym), which a program reaches with `lddw`.
    public var isVariable: Bool {
        if case .kfunc = kind { return false }
        return true
    }

    /// The section libbpf makes of the `__kconfig` externs: a read-only, single-element array map.
    public static let kconfigSection = ".kconfig"
    /// The largest `.kconfig` section: the kernel's `KMALLOC_MAX_SIZE` on x86-64 (4 MiB), the
    /// most one array-map value may hold.
    public static let kconfigSectionLimit = 4 << 20
    static let ksymsSection = ".ksyms"
}

extension ObjectParser {
    /// The object's externs and, when any is `__kconfig`, the `.kconfig` section they live in
    /// (zeros until the loader fills it; laid out by libbpf's rule: descending alignment, then
    /// ascending size, then name). Undefined symbols without BTF are left out (the linker notes
    /// them).
    func externs() throws(ObjectFileError) -> (externs: [ObjectExtern], kconfig: GlobalDataSpec?) {
        guard let btf else { return ([], nil) }
        var result: [ObjectExtern] = []
        for symbol in elf.symbols
        where symbol.sectionIndex == 0 && (symbol.binding == 1 || symbol.binding == 2)
            && symbol.type == 0 && !symbol.name.isEmpty
        {
            let structure = "section .BTF"
            guard
                let id = btf.typeIDs(named: symbol.name).first(where: {
                    switch btf.type($0) {
                    case .variable?, .function?: true
                    default: false
                    }
                })
            else { continue }
            let what = "extern \(symbol.name)"
            var variableType: UInt32?
            switch btf.type(id) {
            case .variable(_, let type, let linkage)?:
                guard linkage == 2 else {
                    throw .invalidField(structure: structure, field: what, detail: "its VAR is not of extern linkage")
                }
                variableType = type
            case .function(_, _, let linkage)?:
                guard linkage == 2 else {
                    throw .invalidField(structure: structure, field: what, detail: "its FUNC is not of extern linkage")
                }
            default:
                continue
            }
            guard let section = dataSection(holding: id, in: btf) else {
                throw .invalidField(
                    structure: structure, field: what, detail: "no DATASEC (.kconfig or .ksyms) holds it")
            }
            let isWeak = symbol.binding == 2
            switch section {
            case ObjectExtern.kconfigSection:
                guard let type = variableType else {
                    throw .invalidField(
                        structure: structure, field: what, detail: "an extern function cannot be __kconfig")
                }
                guard let valueType = kconfigType(type, in: btf), let size = btf.size(of: type), size > 0 else {
                    throw .invalidField(
                        structure: structure, field: what,
                        detail:
                            "__kconfig type \(btf.typeName(type)) is not supported (bool, enum libbpf_tristate, char, 2/4/8-byte integers, char arrays)"
                    )
                }
                let kconfig = ObjectExtern.Kconfig(
                    type: valueType, size: size, alignment: alignment(of: type, in: btf), offset: 0)
                result.append(
                    ObjectExtern(name: symbol.name, isWeak: isWeak, kind: .kconfig(kconfig), symbolIndex: symbol.index))
            case ObjectExtern.ksymsSection:
                if let type = variableType {
                    let resolved = btf.resolve(type)
                    let typeID = btf.type(resolved) == .void ? nil : resolved
                    result.append(
                        ObjectExtern(
                            name: symbol.name, isWeak: isWeak,
                            kind: .ksymVariable(typeID: typeID, size: typeID.flatMap { btf.size(of: $0) }),
                            symbolIndex: symbol.index))
                } else {
                    result.append(
                        ObjectExtern(name: symbol.name, isWeak: isWeak, kind: .kfunc, symbolIndex: symbol.index))
                }
            default:
                throw .invalidField(
                    structure: structure, field: what, detail: "extern in section \(section), not .kconfig or .ksyms")
            }
        }

        // Lay out the .kconfig section as libbpf's cmp_externs orders it.
        var kconfigIndices = result.indices.filter { if case .kconfig = result[$0].kind { true } else { false } }
        guard !kconfigIndices.isEmpty else { return (result, nil) }
        func layout(_ index: Int) -> ObjectExtern.Kconfig {
            if case .kconfig(let k) = result[index].kind { return k }
            return ObjectExtern.Kconfig(type: .char, size: 0, alignment: 1, offset: 0)
        }
        kconfigIndices.sort {
            let a = layout($0)
            let b = layout($1)
            if a.alignment != b.alignment { return a.alignment > b.alignment }
            if a.size != b.size { return a.size < b.size }
            return result[$0].name < result[$1].name
        }
        var offset = 0
        var variables: [GlobalDataSpec.Variable] = []
        for index in kconfigIndices {
            var k = layout(index)
            k.offset = (offset + k.alignment - 1) / k.alignment * k.alignment
            offset = k.offset + k.size
            result[index].kind = .kconfig(k)
            variables.append(
                GlobalDataSpec.Variable(name: result[index].name, offset: UInt64(k.offset), size: UInt64(k.size)))
        }
        // libbpf creates the .kconfig map as one array value; the kernel refuses values larger
        // than KMALLOC_MAX_SIZE (E2BIG), so an object asking for more cannot load there either.
        guard offset <= ObjectExtern.kconfigSectionLimit else {
            throw .invalidField(
                structure: "section .BTF", field: "\(ObjectExtern.kconfigSection) section",
                detail:
                    "its __kconfig externs need \(offset) bytes; the kernel's array map values hold at most \(ObjectExtern.kconfigSectionLimit) (KMALLOC_MAX_SIZE)"
            )
        }
        let section = GlobalDataSpec(
            name: ObjectExtern.kconfigSection, contents: [UInt8](repeating: 0, count: offset),
            isReadOnly: true, variables: variables,
            btfTypeID: btf.typeID(named: ObjectExtern.kconfigSection, kind: .dataSection))
        return (result, section)
    }

    /// The name of the `DATASEC` listing type `id`.
    private func dataSection(holding id: UInt32, in btf: BTF) -> String? {
        for candidate in 1..<UInt32(max(btf.count, 1)) {
            if case .dataSection(let name, _, let variables)? = btf.type(candidate),
                variables.contains(where: { $0.type == id })
            {
                return name
            }
        }
        return nil
    }

    /// libbpf's `find_kcfg_type`.
    private func kconfigType(_ id: UInt32, in btf: BTF) -> ObjectExtern.Kconfig.ValueType? {
        switch btf.type(btf.resolve(id)) {
        case .int(_, let size, let encoding, _, _)?:
            if encoding.contains(.bool) { return size == 1 ? .bool : nil }
            if size == 1 { return .char }
            guard [2, 4, 8].contains(size) else { return nil }
            return .integer(signed: encoding.contains(.signed))
        case .enumeration(let name, let size, _, _, let is64)?:
            return name == "libbpf_tristate" && (is64 || size == 4) ? .tristate : nil
        case .array(let element, _, let count)?:
            return count > 0 && kconfigType(element, in: btf) == .char ? .charArray : nil
        default:
            return nil
        }
    }

    /// The alignment of a kconfig type (`btf__align_of` for the kinds `kconfigType` accepts).
    private func alignment(of id: UInt32, in btf: BTF) -> Int {
        var id = id
        // Arrays of arrays down to the element; bounded like the kernel's MAX_RESOLVE_DEPTH.
        for _ in 0..<32 {
            switch btf.type(btf.resolve(id)) {
            case .int(_, let size, _, _, _)?, .enumeration(_, let size, _, _, _)?: return max(1, min(Int(size), 8))
            case .array(let element, _, _)?: id = element
            default: return 1
            }
        }
        return 1
    }
}

extension ObjectExtern.Kconfig {
    /// Why a value does not fit an extern (libbpf's messages of `set_kcfg_value_*`).
    public struct ValueError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// The bytes of a `/proc/config`-style value for this extern, as libbpf's
    /// `bpf_object__process_kconfig_line` stores it: `y` / `n` / `m` (by its first character) for
    /// bool, tristate and char; `"text"` for char arrays (truncated to size - 1 bytes and a NUL);
    /// anything else an integer as `strtoull` with base 0 reads it (`0x` hex, `0` octal,
    /// decimal, a leading `-` wraps) for integers and char, range-checked against the size and
    /// signedness.
    public func encode(_ value: String) throws(ValueError) -> [UInt8] {
        let bytes = Array(value.utf8)
        guard let first = bytes.first else { throw ValueError(description: "no value") }
        switch first {
        case UInt8(ascii: "y"), UInt8(ascii: "n"), UInt8(ascii: "m"):
            switch type {
            case .bool:
                guard first != UInt8(ascii: "m") else {
                    throw ValueError(description: "value 'm' implies tristate or char type")
                }
                return encodeInteger(first == UInt8(ascii: "y") ? 1 : 0)
            case .tristate:
                return encodeInteger(first == UInt8(ascii: "y") ? 1 : first == UInt8(ascii: "m") ? 2 : 0)
            case .char:
                return [first]
            case .integer, .charArray:
                throw ValueError(
                    description: "value '\(Character(Unicode.Scalar(first)))' implies bool, tristate, or char type")
            }
        case UInt8(ascii: "\""):
            guard type == .charArray else { throw ValueError(description: "value '\(value)' implies char array type") }
            guard bytes.count >= 2, bytes.last == UInt8(ascii: "\"") else {
                throw ValueError(description: "invalid string config '\(value)'")
            }
            let text = bytes[1..<(bytes.count - 1)].prefix(size - 1)
            return Array(text) + [UInt8](repeating: 0, count: size - text.count)
        default:
            guard let number = Self.parseUnsigned(value) else {
                throw ValueError(description: "value '\(value)' isn't a valid integer")
            }
            switch type {
            case .integer, .char: return try encode(number: number)
            default: throw ValueError(description: "value '\(value)' implies integer type")
            }
        }
    }

    /// The bytes of a number for this extern (libbpf's `set_kcfg_value_num`): integers, char and
    /// bool (0 or 1), range-checked.
    public func encode(number: UInt64) throws(ValueError) -> [UInt8] {
        switch type {
        case .integer, .char, .bool: break
        case .tristate, .charArray:
            throw ValueError(description: "value '\(number)' implies integer, char, or boolean type")
        }
        if type == .bool, number > 1 { throw ValueError(description: "value '\(number)' isn't boolean compatible") }
        if size < 8 {
            let bits = UInt64(size * 8)
            let fits = type == .integer(signed: true) ? number &+ (1 << (bits - 1)) < (1 << bits) : number >> bits == 0
            guard fits else { throw ValueError(description: "value '\(number)' doesn't fit in \(size) bytes") }
        }
        guard [1, 2, 4, 8].contains(size) else {
            throw ValueError(description: "a \(size)-byte number is not supported")
        }
        return encodeInteger(number)
    }

    private func encodeInteger(_ value: UInt64) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 < 8 ? value >> (8 * UInt64($0)) : 0) }
    }

    /// `strtoull(text, &end, 0)` that must consume all of `text`: optional white space and sign,
    /// `0x` hex, `0` octal or decimal; nil when nothing or not everything is a number, or it
    /// overflows (`ERANGE`).
    static func parseUnsigned(_ text: String) -> UInt64? {
        var chars = Substring(text).drop { $0 == " " || $0 == "\t" }
        var negative = false
        if let sign = chars.first, sign == "-" || sign == "+" {
            negative = sign == "-"
            chars = chars.dropFirst()
        }
        var base: UInt64 = 10
        if chars.hasPrefix("0x") || chars.hasPrefix("0X") {
            base = 16
            chars = chars.dropFirst(2)
        } else if chars.hasPrefix("0"), chars.count > 1 {
            base = 8
            chars = chars.dropFirst()
        }
        guard !chars.isEmpty else { return nil }
        var value: UInt64 = 0
        for c in chars {
            guard let digit = c.hexDigitValue, UInt64(digit) < base else { return nil }
            let (product, o1) = value.multipliedReportingOverflow(by: base)
            let (sum, o2) = product.addingReportingOverflow(UInt64(digit))
            guard !o1, !o2 else { return nil }
            value = sum
        }
        return negative ? 0 &- value : value
    }
}
