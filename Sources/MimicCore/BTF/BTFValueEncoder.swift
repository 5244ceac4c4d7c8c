import MimicJSON

/// Writes a `JSONValue` into the bytes of a value of a BTF type (little-endian), checking range
/// and shape: the encoder behind `ObjectFile.setGlobal(_:to:)`.
///
/// - integers: a number, a boolean, or a string holding a decimal or `0x` hexadecimal integer;
///   a value must fit the type's size and signedness (bit-fields: their width);
/// - enums: a member's name or a number in range;
/// - `char` arrays: a string (UTF-8, at most the array's length, zero-padded);
/// - other arrays: a JSON array of at most the array's length (the rest is zeroed);
/// - structs: an object by member name (members left out keep their bytes); unions: one member;
/// - floats: a number. Pointers cannot be set.
struct BTFValueEncoder {
    let btf: BTF

    /// Writes `value` as type `type` at bit `bitOffset` of `bytes`. `path` names the place for
    /// messages (`config.ports[2]`).
    func write(
        _ value: JSONValue, type: UInt32, into bytes: inout [UInt8], bitOffset: Int, path: String,
        bitfieldSize: Int = 0, depth: Int = 0
    ) throws(ObjectConfigurationError) {
        guard depth < BTF.maxDepth else { throw Self.fail(path, "the type nests too deeply") }
        let resolved = btf.resolve(type)
        let typeName = btf.typeName(type)
        guard let info = btf.type(resolved) else { throw Self.fail(path, "has no valid BTF type") }
        switch info {
        case .int(_, let size, let encoding, _, _):
            let bits = bitfieldSize > 0 ? bitfieldSize : Int(size) * 8
            let signed = encoding.contains(.signed)
            if encoding.contains(.bool) {
                guard case .bool(let flag) = value else {
                    if case .number(let text) = value, text == "0" || text == "1" {
                        Self.writeBits(text == "1" ? 1 : 0, into: &bytes, bitOffset: bitOffset, bits: bits)
                        return
                    }
                    throw Self.fail(path, "is a \(typeName): expected true or false, got \(Self.describe(value))")
                }
                Self.writeBits(flag ? 1 : 0, into: &bytes, bitOffset: bitOffset, bits: bits)
                return
            }
            let raw = try Self.integer(value, bits: bits, signed: signed, typeName: typeName, path: path)
            Self.writeBits(raw, into: &bytes, bitOffset: bitOffset, bits: bits)
        case .enumeration(_, let size, let values, let isSigned, _):
            let bits = bitfieldSize > 0 ? bitfieldSize : Int(size) * 8
            if case .string(let name) = value, let member = values.first(where: { $0.name == name }) {
                Self.writeBits(member.value, into: &bytes, bitOffset: bitOffset, bits: bits)
                return
            }
            if case .string(let name) = value, Self.parseInteger(name) == nil {
                throw ObjectConfigurationError.unknown(
                    "value of \(typeName) for \(path)", name, among: values.map(\.name))
            }
            let raw = try Self.integer(value, bits: bits, signed: isSigned, typeName: typeName, path: path)
            Self.writeBits(raw, into: &bytes, bitOffset: bitOffset, bits: bits)
        case .float(_, let size):
            guard case .number(let text) = value, let number = Double(text) else {
                throw Self.fail(path, "is a \(typeName): expected a number, got \(Self.describe(value))")
            }
            switch size {
            case 4: Self.writeBits(UInt64(Float(number).bitPattern), into: &bytes, bitOffset: bitOffset, bits: 32)
            case 8: Self.writeBits(number.bitPattern, into: &bytes, bitOffset: bitOffset, bits: 64)
            default: throw Self.fail(path, "is a \(size)-byte float, which cannot be set")
            }
        case .array(let element, _, let count):
            guard let elementSize = btf.size(of: element), elementSize > 0 else {
                throw Self.fail(path, "has elements of no size")
            }
            let isChar: Bool
            if case .int(_, 1, _, _, _)? = btf.type(btf.resolve(element)) { isChar = true } else { isChar = false }
            if isChar, case .string(let text) = value {
                let utf8 = Array(text.utf8)
                guard utf8.count <= Int(count) else {
                    throw Self.fail(path, "is a \(typeName): \"\(text)\" is \(utf8.count) bytes, longer than \(count)")
                }
                for i in 0..<Int(count) {
                    Self.writeBits(
                        UInt64(i < utf8.count ? utf8[i] : 0), into: &bytes, bitOffset: bitOffset + i * 8, bits: 8)
                }
                return
            }
            guard case .array(let elements) = value else {
                throw Self.fail(
                    path,
                    "is a \(typeName): expected \(isChar ? "a string or " : "")an array of at most \(count) elements, got \(Self.describe(value))"
                )
            }
            guard elements.count <= Int(count) else {
                throw Self.fail(path, "is a \(typeName): \(elements.count) elements given, at most \(count) fit")
            }
            for i in 0..<Int(count) {
                let offset = bitOffset + i * elementSize * 8
                if i < elements.count {
                    try write(
                        elements[i], type: element, into: &bytes, bitOffset: offset, path: "\(path)[\(i)]",
                        depth: depth + 1)
                } else {
                    for byte in 0..<elementSize {
                        Self.writeBits(0, into: &bytes, bitOffset: offset + byte * 8, bits: 8)
                    }
                }
            }
        case .structure(_, _, let members), .union(_, _, let members):
            guard case .object(let fields) = value else {
                throw Self.fail(
                    path,
                    "is a \(typeName): expected an object of its members (\(members.map(\.name).joined(separator: ", "))), got \(Self.describe(value))"
                )
            }
            if case .union = info, fields.count > 1 {
                throw Self.fail(path, "is a \(typeName): set one member of a union, not \(fields.count)")
            }
            for field in fields {
                guard let member = members.first(where: { $0.name == field.key }) else {
                    throw ObjectConfigurationError.unknown(
                        "member of \(typeName) in \(path)", field.key, among: members.map(\.name).filter { !$0.isEmpty }
                    )
                }
                try write(
                    field.value, type: member.type, into: &bytes, bitOffset: bitOffset + Int(member.bitOffset),
                    path: "\(path).\(field.key)", bitfieldSize: Int(member.bitfieldSize), depth: depth + 1)
            }
        case .pointer:
            throw Self.fail(path, "is a pointer (\(typeName)), which cannot be set before load")
        default:
            throw Self.fail(path, "has type \(typeName), which cannot be set")
        }
    }

    /// Writes a value into a global without BTF: an integer of the variable's size (1, 2, 4, 8
    /// bytes) or a string of at most its size.
    static func writeUntyped(_ value: JSONValue, into bytes: inout [UInt8], name: String)
        throws(ObjectConfigurationError)
    {
        if case .string(let text) = value, Self.parseInteger(text) == nil {
            let utf8 = Array(text.utf8)
            guard utf8.count <= bytes.count else {
                throw ObjectConfigurationError("\(name) (\(bytes.count) bytes, no BTF): \"\(text)\" is longer")
            }
            for i in bytes.indices { bytes[i] = i < utf8.count ? utf8[i] : 0 }
            return
        }
        guard [1, 2, 4, 8].contains(bytes.count) else {
            throw ObjectConfigurationError(
                "\(name) has no BTF type and is \(bytes.count) bytes: only integers of 1, 2, 4 or 8 bytes and strings can be set (compile with -g for BTF)"
            )
        }
        let raw = try Self.integer(
            value, bits: bytes.count * 8, signed: false, typeName: "\(bytes.count)-byte value", path: name,
            allowNegative: true)
        Self.writeBits(raw, into: &bytes, bitOffset: 0, bits: bytes.count * 8)
    }

    static func fail(_ path: String, _ detail: String) -> ObjectConfigurationError {
        ObjectConfigurationError("\(path) \(detail)")
    }

    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .number(let text): text
        case .string(let text): "\"\(text)\""
        case .bool(let flag): "\(flag)"
        default: value.kindName
        }
    }

    /// `value` as an integer of `bits` bits, checked against the range of the type.
    static func integer(
        _ value: JSONValue, bits: Int, signed: Bool, typeName: String, path: String,
        allowNegative: Bool = false
    ) throws(ObjectConfigurationError) -> UInt64 {
        let parsed: (magnitude: UInt64, negative: Bool)?
        switch value {
        case .number(let text): parsed = Self.parseInteger(text)
        case .string(let text): parsed = Self.parseInteger(text)
        case .bool(let flag): parsed = (flag ? 1 : 0, false)
        default: parsed = nil
        }
        guard let parsed else {
            throw Self.fail(path, "is a \(typeName): expected an integer, got \(Self.describe(value))")
        }
        let maxUnsigned: UInt64 = bits >= 64 ? .max : (1 << UInt64(bits)) - 1
        let maxSigned: UInt64 = bits >= 64 ? UInt64(Int64.max) : (1 << UInt64(bits - 1)) - 1
        let mask = maxUnsigned
        let sign = parsed.negative ? "-" : ""
        let range = signed ? "-\(maxSigned + 1)...\(maxSigned)" : "0...\(maxUnsigned)"
        if parsed.negative {
            guard signed || allowNegative, parsed.magnitude <= maxSigned + 1 else {
                throw Self.fail(path, "is a \(typeName): \(sign)\(parsed.magnitude) is out of range (\(range))")
            }
            return (0 &- parsed.magnitude) & mask
        }
        guard parsed.magnitude <= (signed && !allowNegative ? maxSigned : maxUnsigned) else {
            throw Self.fail(path, "is a \(typeName): \(parsed.magnitude) is out of range (\(range))")
        }
        return parsed.magnitude
    }

    /// A decimal or `0x` hexadecimal integer with an optional sign.
    static func parseInteger(_ text: String) -> (magnitude: UInt64, negative: Bool)? {
        var digits = Substring(text)
        let negative = digits.hasPrefix("-")
        if negative || digits.hasPrefix("+") { digits = digits.dropFirst() }
        let value: UInt64?
        if digits.lowercased().hasPrefix("0x") {
            value = UInt64(digits.dropFirst(2), radix: 16)
        } else {
            value = UInt64(digits, radix: 10)
        }
        return value.map { ($0, negative) }
    }

    /// Writes the low `bits` bits of `value` at bit `bitOffset` (little-endian bit order, as
    /// BTF bit-field offsets on a little-endian target).
    static func writeBits(_ value: UInt64, into bytes: inout [UInt8], bitOffset: Int, bits: Int) {
        if bitOffset % 8 == 0, bits % 8 == 0 {
            for i in 0..<(bits / 8) where bitOffset / 8 + i < bytes.count {
                bytes[bitOffset / 8 + i] = UInt8(truncatingIfNeeded: value >> UInt64(8 * i))
            }
            return
        }
        for bit in 0..<bits {
            let position = bitOffset + bit
            guard position / 8 < bytes.count else { return }
            let mask = UInt8(1) << UInt8(position % 8)
            if (value >> UInt64(bit)) & 1 == 1 { bytes[position / 8] |= mask } else { bytes[position / 8] &= ~mask }
        }
    }
}

extension BTF {
    /// Writes `value` into `bytes` as a value of type `id` at byte 0 (`bytes` must hold the
    /// type), with the rules of `ObjectFile.setGlobal`: numbers, booleans, enum names, strings
    /// for `char` arrays, arrays, objects by member name (members left out keep their bytes).
    /// `path` names the value in messages.
    public func encode(_ value: JSONValue, as id: UInt32, into bytes: inout [UInt8], path: String)
        throws(ObjectConfigurationError)
    {
        try BTFValueEncoder(btf: self).write(value, type: id, into: &bytes, bitOffset: 0, path: path)
    }
}
