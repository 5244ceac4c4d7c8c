import MimicCore
import MimicJSON

/// Keys and values in test files: the forms of `--map` files, and BTF-typed objects.
///
/// Byte forms (compared byte for byte):
/// - a number: stored little-endian in the size (as a C `__u32` or `__u64` holds it);
/// - a string: hex bytes in memory order (`"c0 00 02 42"`, `"c0000242"`), or a dotted IPv4
///   address (`"192.0.2.66"`, 4 bytes in network order);
/// - an array of byte values (`[192, 0, 2, 66]`);
/// - `{"string": "bash"}`: UTF-8 text, zero-padded to the size (for `char[16]`).
///
/// Typed form (expectations only): any other object, `{"pid": 42, "comm": "bash"}`, names
/// members of the value's BTF struct; only the members named are compared (see `TypedMatch`).
public enum ValueSyntax {
    /// Whether `value` is the typed form (an object that is not `{"string": ...}`).
    public static func isTyped(_ value: JSONValue) -> Bool {
        guard case .object(let members) = value else { return false }
        return !(members.count == 1 && members[0].key == "string")
    }

    /// The bytes a byte form stands for, exactly `size` bytes long. `hex` reads a string that is
    /// not an IPv4 address (default: `ValueSyntax.hex`; `mimic run --map` passes the CLI's hex
    /// reader, whose messages name the offending digit).
    public static func bytes(
        _ field: JSONField, size: Int, what: String,
        hex readHex: (JSONField) throws(JSONError) -> [UInt8] = { field throws(JSONError) in try hex(field) }
    ) throws(JSONError) -> [UInt8] {
        guard let value = field.value else { throw field.error("missing") }
        var bytes: [UInt8]
        switch value {
        case .number:
            let number = try field.bits64()
            if size < 8, number >> UInt64(size * 8) != 0, Int64(bitPattern: number) >> Int64(size * 8 - 1) != -1 {
                throw field.error("\(number) does not fit in the \(size)-byte \(what)")
            }
            return (0..<size).map { $0 < 8 ? UInt8(truncatingIfNeeded: number >> UInt64($0 * 8)) : 0 }
        case .string(let text):
            if let address = ipv4(text) {
                bytes = address
            } else {
                bytes = try readHex(field)
            }
        case .array:
            bytes = []
            for element in try field.elements() { bytes.append(try element.integer(UInt8.self)) }
        case .object where !isTyped(value):
            let text = try field["string"].string()
            bytes = Array(text.utf8)
            guard bytes.count <= size else {
                throw field["string"].error("\(bytes.count) bytes of text do not fit in the \(size)-byte \(what)")
            }
            return bytes + [UInt8](repeating: 0, count: size - bytes.count)
        case .object:
            throw field.error(
                "a struct of field values is read with the \(what)'s BTF type, which is not known here; give the bytes (hex, a number, an array of bytes)"
            )
        default:
            throw field.error(
                "expected a number, a hex string, an array of bytes or {\"string\": ...}, got \(value.kindName)")
        }
        guard bytes.count == size else {
            throw field.error("\(bytes.count) bytes, but the \(what) has \(size) bytes")
        }
        return bytes
    }

    /// Hex bytes: digit pairs, with optional whitespace and `0x` prefixes.
    public static func hex(_ field: JSONField) throws(JSONError) -> [UInt8] {
        let text = try field.string()
        var bytes: [UInt8] = []
        for token in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == ":" }) {
            var digits = Substring(token)
            if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
            guard !digits.isEmpty, digits.count % 2 == 0, digits.allSatisfy(\.isHexDigit) else {
                throw field.error(
                    "expected hex bytes (two digits each; spaces and 0x prefixes allowed), or an IPv4 address; '\(token)' is not"
                )
            }
            var index = digits.startIndex
            while index < digits.endIndex {
                let next = digits.index(index, offsetBy: 2)
                bytes.append(UInt8(digits[index..<next], radix: 16) ?? 0)
                index = next
            }
        }
        return bytes
    }

    /// `a.b.c.d` as 4 bytes, or nil.
    public static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let byte = UInt8(part) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    /// Bytes as lowercase hex pairs separated by spaces.
    public static func hexString(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: " ")
    }

    /// `value` as JSON text on one line (for messages).
    static func text(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let flag): flag ? "true" : "false"
        case .number(let text): text
        case .string(let text): JSONValue.quote(text)
        case .array(let items): "[" + items.map(text).joined(separator: ", ") + "]"
        case .object(let members):
            "{" + members.map { JSONValue.quote($0.key) + ": " + text($0.value) }.joined(separator: ", ") + "}"
        }
    }
}

/// Compares an expected typed value (`{"pid": 42, "comm": "bash"}`) with bytes, member by
/// member, through the object's BTF: structs and unions by member name (nested objects for
/// nested structs), global-data sections by variable name, integers and enums as numbers (enums also by enumerator name, `bool` as
/// `true`/`false`), `char` arrays as strings, `__be16`/`__be32` in network order (a `__be32`
/// also as a dotted IPv4 address), other arrays as JSON arrays, and any member also in the byte
/// forms of `ValueSyntax`.
struct TypedMatch {
    let btf: BTF
    let bytes: [UInt8]

    /// A difference found: the member path, what was expected and what is there.
    struct Difference {
        var path: String
        var expected: String
        var actual: String
    }

    /// The differences between `expected` and the value of type `id` at `offset`.
    func compare(_ expected: JSONField, id: UInt32, offset: Int, path: String) throws(JSONError) -> [Difference] {
        let resolved = skipQualifiers(id)
        guard let info = btf.type(resolved), let size = btf.size(of: resolved) else {
            throw expected.error("the BTF type \(id) has no size")
        }
        guard offset >= 0, offset + size <= bytes.count else {
            return [
                Difference(
                    path: path, expected: ValueSyntax.text(expected.value ?? .null), actual: "<outside the value>")
            ]
        }
        let here = Array(bytes[offset..<offset + size])
        let actualText = format(here, id: id)
        guard let value = expected.value else { throw expected.error("missing") }
        // Network-order typedefs first (they are integers underneath).
        if let special = networkOrder(id: id, bytes: here) {
            let wanted: String
            switch value {
            case .number(let text): wanted = text
            case .string(let text): wanted = text
            default: return try bytesCompare(expected, here: here, path: path, actual: actualText)
            }
            return wanted == special.number || wanted == special.text
                ? [] : [Difference(path: path, expected: wanted, actual: special.text)]
        }
        switch (info, value) {
        case (.structure(_, _, let members), .object),
            (.union(_, _, let members), .object) where ValueSyntax.isTyped(value):
            var differences: [Difference] = []
            for (name, member) in try expected.members() {
                guard let found = members.first(where: { $0.name == name }) else {
                    let names = members.map(\.name).filter { !$0.isEmpty }.joined(separator: ", ")
                    throw member.error("\(btf.typeName(resolved)) has no member \"\(name)\" (members: \(names))")
                }
                if found.bitfieldSize != 0 {
                    throw member.error("\(name) is a bitfield; compare the whole value's bytes instead")
                }
                differences += try compare(
                    member, id: found.type, offset: offset + Int(found.bitOffset / 8),
                    path: path.isEmpty ? name : "\(path).\(name)")
            }
            return differences
        case (.dataSection(_, _, let variables), .object) where ValueSyntax.isTyped(value):
            // A global-data section (`.bss`, `.rodata`): its variables by name.
            var differences: [Difference] = []
            for (name, member) in try expected.members() {
                let found = variables.first {
                    if case .variable(name, _, _)? = btf.type($0.type) { true } else { false }
                }
                guard let found, case .variable(_, let type, _)? = btf.type(found.type) else {
                    let names = variables.compactMap { btf.type($0.type)?.name }.joined(separator: ", ")
                    throw member.error("\(btf.typeName(resolved)) has no variable \"\(name)\" (variables: \(names))")
                }
                differences += try compare(
                    member, id: type, offset: offset + Int(found.offset), path: path.isEmpty ? name : "\(path).\(name)")
            }
            return differences
        case (.int(_, let intSize, let encoding, _, _), .number), (.int(_, let intSize, let encoding, _, _), .bool):
            let raw = integer(here, size: Int(intSize))
            if case .bool(let flag) = value {
                return (raw != 0) == flag
                    ? [] : [Difference(path: path, expected: flag ? "true" : "false", actual: actualText)]
            }
            let matches: Bool
            if encoding.contains(.signed), let wanted = try? expected.integer(Int64.self) {
                matches = signExtend(raw, bits: Int(intSize) * 8) == wanted
            } else {
                matches = try expected.bits64() == raw
            }
            return matches ? [] : [Difference(path: path, expected: ValueSyntax.text(value), actual: actualText)]
        case (.enumeration(_, let enumSize, let values, _, _), .string(let name)) where ValueSyntax.ipv4(name) == nil:
            guard let wanted = values.first(where: { $0.name == name }) else {
                throw expected.error(
                    "\(btf.typeName(resolved)) has no enumerator \(name) (enumerators: \(values.map(\.name).joined(separator: ", ")))"
                )
            }
            let raw = integer(here, size: Int(enumSize))
            let mask: UInt64 = enumSize >= 8 ? .max : (1 << (UInt64(enumSize) * 8)) - 1
            return raw == wanted.value & mask ? [] : [Difference(path: path, expected: name, actual: actualText)]
        case (.enumeration(_, let enumSize, _, _, _), .number):
            return integer(here, size: Int(enumSize)) == (try expected.bits64())
                ? [] : [Difference(path: path, expected: ValueSyntax.text(value), actual: actualText)]
        case (.array(let element, _, _), .string(let text)) where isChar(element):
            let actual = String(decoding: here.prefix { $0 != 0 }, as: UTF8.self)
            return actual == text
                ? [] : [Difference(path: path, expected: JSONValue.quote(text), actual: JSONValue.quote(actual))]
        case (.array(let element, _, let count), .array(let items))
        where !isByteArray(resolved) || items.count == Int(count):
            guard items.count == Int(count) else {
                throw expected.error("\(btf.typeName(resolved)) has \(count) elements; the array gives \(items.count)")
            }
            let stride = btf.size(of: element) ?? 0
            var differences: [Difference] = []
            for (index, item) in try expected.elements().enumerated() {
                differences += try compare(
                    item, id: element, offset: offset + index * stride, path: "\(path)[\(index)]")
            }
            return differences
        default:
            return try bytesCompare(expected, here: here, path: path, actual: actualText)
        }
    }

    func bytesCompare(_ expected: JSONField, here: [UInt8], path: String, actual: String) throws(JSONError)
        -> [Difference]
    {
        let wanted = try ValueSyntax.bytes(expected, size: here.count, what: path.isEmpty ? "value" : path)
        return wanted == here
            ? [] : [Difference(path: path, expected: ValueSyntax.text(expected.value ?? .null), actual: actual)]
    }

    /// Bytes of type `id`, as the value shows (BTF format, or network order for `__be*`).
    func format(_ bytes: [UInt8], id: UInt32) -> String {
        networkOrder(id: id, bytes: bytes)?.text ?? btf.format(bytes, as: id)
    }

    /// `__be16` / `__be32` values read in network order: the number, and the text shown
    /// (a `__be32` as a dotted address).
    func networkOrder(id: UInt32, bytes: [UInt8]) -> (number: String, text: String)? {
        var current = id
        for _ in 0..<32 { // typedef chains are short; 32 bounds a cyclic one
            guard let info = btf.type(current) else { return nil }
            switch info {
            case .typedef(let name, let target):
                if name == "__be16", bytes.count == 2 {
                    let number = String(UInt16(bytes[0]) << 8 | UInt16(bytes[1]))
                    return (number, number)
                }
                if name == "__be32", bytes.count == 4 {
                    let number = String(
                        UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3]))
                    return (number, bytes.map(String.init).joined(separator: "."))
                }
                current = target
            case .const(let target), .volatile(let target), .restrict(let target), .typeTag(_, let target):
                current = target
            default:
                return nil
            }
        }
        return nil
    }

    func skipQualifiers(_ id: UInt32) -> UInt32 { btf.resolve(id) }

    func isChar(_ id: UInt32) -> Bool {
        if case .int(let name, 1, let encoding, _, _)? = btf.type(skipQualifiers(id)) {
            return encoding.contains(.char) || name == "char" || name == "signed char" || name == "unsigned char"
        }
        return false
    }

    func isByteArray(_ id: UInt32) -> Bool {
        if case .array(let element, _, _)? = btf.type(id) { return btf.size(of: element) == 1 }
        return false
    }

    func integer(_ bytes: [UInt8], size: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<min(size, 8, bytes.count) {
            let byte = UInt64(bytes[index])
            value |= btf.isBigEndian ? byte << (8 * UInt64(size - 1 - index)) : byte << (8 * UInt64(index))
        }
        return value
    }

    func signExtend(_ value: UInt64, bits: Int) -> Int64 {
        guard bits > 0, bits < 64 else { return Int64(bitPattern: value) }
        let shift = UInt64(64 - bits)
        return Int64(bitPattern: value << shift) >> Int64(shift)
    }
}
