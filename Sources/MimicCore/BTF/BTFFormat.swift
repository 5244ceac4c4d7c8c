extension BTF {
    /// Formats a value of type `id` stored in `bytes` (map keys and values, global data), in
    /// a C-initializer-like form: integers in decimal (`char` arrays as strings, `bool` as
    /// `true`/`false`), pointers in hex, enums by enumerator name, structs and unions as
    /// `{ .field = value, ... }`, arrays as `[a, b, ...]`. Bytes missing from `bytes` print as
    /// `<truncated>`. Integers are read in the BTF's byte order.
    public func format(_ bytes: [UInt8], as id: UInt32) -> String {
        var formatter = ValueFormatter(btf: self, bytes: bytes)
        return formatter.format(id, at: 0, depth: 0)
    }
}

/// Walks a type over a byte buffer; every read is bounds-checked.
struct ValueFormatter {
    let btf: BTF
    let bytes: [UInt8]
    /// Elements shown per array before `...`.
    static let maxArrayElements = 64
    /// Characters formatted in total before giving up (a guard against huge types).
    var budget = 1 << 16

    func integer(at offset: Int, size: Int) -> UInt64? {
        guard size > 0, size <= 8, offset >= 0, offset <= bytes.count - size else { return nil }
        var value: UInt64 = 0
        for i in 0..<size {
            let byte = UInt64(bytes[offset + i])
            value |= btf.isBigEndian ? byte << (8 * UInt64(size - 1 - i)) : byte << (8 * UInt64(i))
        }
        return value
    }

    static func signExtend(_ value: UInt64, bits: Int) -> Int64 {
        guard bits > 0, bits < 64 else { return Int64(bitPattern: value) }
        let shift = UInt64(64 - bits)
        return Int64(bitPattern: value << shift) >> Int64(shift)
    }

    mutating func format(_ id: UInt32, at offset: Int, depth: Int) -> String {
        budget -= 1
        guard depth < BTF.maxDepth, budget > 0 else { return "..." }
        guard let info = btf.type(id) else { return "<bad type \(id)>" }
        switch info {
        case .void, .function, .functionProto, .forward, .declTag:
            return "<\(info.kind)>"
        case .typedef(_, let target), .volatile(let target), .const(let target), .restrict(let target),
            .typeTag(_, let target),
            .variable(_, let target, _):
            return format(target, at: offset, depth: depth + 1)
        case .int(_, let size, let encoding, let bitOffset, let bits):
            return formatInt(
                at: offset, size: Int(size), encoding: encoding, bitOffset: Int(bitOffset), bits: Int(bits))
        case .float(_, let size):
            guard let raw = integer(at: offset, size: Int(size)) else { return "<truncated>" }
            switch size {
            case 4: return "\(Float(bitPattern: UInt32(truncatingIfNeeded: raw)))"
            case 8: return "\(Double(bitPattern: raw))"
            default: return "0x" + String(raw, radix: 16)
            }
        case .pointer:
            guard let raw = integer(at: offset, size: 8) else { return "<truncated>" }
            return "0x" + String(raw, radix: 16)
        case .enumeration(_, let size, let values, let isSigned, _):
            guard let raw = integer(at: offset, size: Int(size)) else { return "<truncated>" }
            let value = isSigned ? UInt64(bitPattern: ValueFormatter.signExtend(raw, bits: Int(size) * 8)) : raw
            let mask: UInt64 = size >= 8 ? .max : (1 << (UInt64(size) * 8)) - 1
            if let match = values.first(where: { $0.value & mask == value & mask }) { return match.name }
            return isSigned ? "\(Int64(bitPattern: value))" : "\(value)"
        case .array(let element, _, let count):
            guard let elementSize = btf.size(of: element), elementSize > 0 else { return "[]" }
            if case .int(_, 1, let encoding, _, _)? = btf.type(btf.resolve(element)),
                encoding.contains(.char) || isCharName(element)
            {
                let end = min(bytes.count, offset + Int(count))
                guard offset >= 0, offset <= end else { return "<truncated>" }
                let text = bytes[offset..<end].prefix { $0 != 0 }
                if text.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
                    return "\"" + String(decoding: text, as: UTF8.self) + "\""
                }
            }
            var parts: [String] = []
            for i in 0..<min(Int(count), ValueFormatter.maxArrayElements) {
                parts.append(format(element, at: offset + i * elementSize, depth: depth + 1))
            }
            if Int(count) > ValueFormatter.maxArrayElements { parts.append("...") }
            return "[" + parts.joined(separator: ", ") + "]"
        case .structure(_, _, let members), .union(_, _, let members):
            var parts: [String] = []
            for member in members {
                let text: String
                if member.bitfieldSize > 0 {
                    text = formatBitfield(member, base: offset)
                } else {
                    text = format(member.type, at: offset + Int(member.bitOffset / 8), depth: depth + 1)
                }
                parts.append(member.name.isEmpty ? text : ".\(member.name) = \(text)")
            }
            return "{ " + parts.joined(separator: ", ") + " }"
        case .dataSection(_, _, let variables):
            var parts: [String] = []
            for variable in variables {
                let name = btf.type(variable.type)?.name ?? "?"
                parts.append("\(name) = " + format(variable.type, at: offset + Int(variable.offset), depth: depth + 1))
            }
            return "{ " + parts.joined(separator: ", ") + " }"
        }
    }

    func isCharName(_ id: UInt32) -> Bool {
        let name = btf.type(btf.resolve(id))?.name ?? ""
        return name == "char" || name == "signed char" || name == "unsigned char"
    }

    func formatInt(at offset: Int, size: Int, encoding: BTF.IntEncoding, bitOffset: Int, bits: Int) -> String {
        if size == 16 {
            guard let low = integer(at: offset + (btf.isBigEndian ? 8 : 0), size: 8),
                let high = integer(at: offset + (btf.isBigEndian ? 0 : 8), size: 8)
            else { return "<truncated>" }
            return "0x" + String(high, radix: 16) + String(repeating: "0", count: 16 - String(low, radix: 16).count)
                + String(low, radix: 16)
        }
        guard var raw = integer(at: offset, size: size) else { return "<truncated>" }
        if bitOffset > 0 || (bits > 0 && bits < size * 8) {
            raw >>= UInt64(bitOffset)
            if bits < 64 { raw &= (1 << UInt64(bits)) - 1 }
        }
        if encoding.contains(.bool) { return raw == 0 ? "false" : "true" }
        let width = bits > 0 ? bits : size * 8
        if encoding.contains(.signed) { return "\(ValueFormatter.signExtend(raw, bits: width))" }
        return "\(raw)"
    }

    func formatBitfield(_ member: BTF.Member, base: Int) -> String {
        let first = base + Int(member.bitOffset / 8)
        let span = (Int(member.bitOffset % 8) + Int(member.bitfieldSize) + 7) / 8
        guard span <= 8, let raw = integer(at: first, size: span) else { return "<truncated>" }
        let width = Int(member.bitfieldSize)
        let shift = btf.isBigEndian ? span * 8 - Int(member.bitOffset % 8) - width : Int(member.bitOffset % 8)
        guard shift >= 0 else { return "<bad bitfield>" }
        var value = raw >> UInt64(shift)
        if width < 64 { value &= (1 << UInt64(width)) - 1 }
        if case .int(_, _, let encoding, _, _)? = btf.type(btf.resolve(member.type)), encoding.contains(.signed) {
            return "\(ValueFormatter.signExtend(value, bits: width))"
        }
        return "\(value)"
    }
}
