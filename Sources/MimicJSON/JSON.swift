/// A parsed JSON value that keeps numbers exactly as written: the package's one JSON codec.
///
/// Context files, map files and plugin answers hold unsigned 64-bit values such as
/// `18446656970732715112` (kernel addresses), which `JSONSerialization` rounds through `Double`.
/// This scanner keeps each number's text, so it converts exactly to `UInt64` or `Int64`.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number, as its source text (`-12`, `18446656970732715112`, `1.5e3`).
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in document order (duplicate keys keep the last value when looked up).
    case object([(key: String, value: JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)):
            x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    /// The member `key` of an object (the last one if repeated), or nil.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.key == key })?.value
    }

    /// A short name of the value's kind, for messages.
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// Parses a JSON document (RFC 8259). Errors name the line and column.
    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONError) -> JSONValue {
        var parser = JSONParser(bytes: Array(bytes))
        return try parser.document()
    }

    /// Parses a JSON document held in a string.
    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8))
    }
}

/// A recursive-descent JSON parser over UTF-8 bytes.
extension JSONValue {
    /// `text` as a JSON string literal: quotes, backslashes and control characters escaped.
    public static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let digits = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

private struct JSONParser {
    let bytes: [UInt8]
    var index = 0
    var depth = 0
    static let maxDepth = 512

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func document() throws(JSONError) -> JSONValue {
        // A UTF-8 byte order mark is tolerated.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        skipWhitespace()
        guard index < bytes.count else { throw error("the document is empty") }
        let value = try self.value()
        skipWhitespace()
        guard index == bytes.count else { throw error("unexpected \(describe(bytes[index])) after the JSON value") }
        return value
    }

    func error(_ message: String) -> JSONError {
        var line = 1
        var column = 1
        for byte in bytes[..<min(index, bytes.count)] {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return JSONError(path: "", "invalid JSON at line \(line), column \(column): \(message)")
    }

    func describe(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
    }

    mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    mutating func value() throws(JSONError) -> JSONValue {
        guard index < bytes.count else { throw error("unexpected end of input, expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw error("unexpected \(describe(bytes[index])), expected a value")
        }
    }

    mutating func literal(_ word: String) throws(JSONError) {
        let expected = Array(word.utf8)
        guard bytes.count - index >= expected.count, Array(bytes[index..<index + expected.count]) == expected else {
            throw error("unexpected \(describe(bytes[index])), expected a value")
        }
        index += expected.count
    }

    mutating func enter() throws(JSONError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth) levels") }
    }

    mutating func object() throws(JSONError) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        index += 1
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw error(
                    index < bytes.count
                        ? "unexpected \(describe(bytes[index])), expected a member name in quotes"
                        : "unexpected end of input in an object")
            }
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                throw error("expected ':' after member name \"\(key)\"")
            }
            index += 1
            skipWhitespace()
            members.append((key, try value()))
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in an object") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            throw error("unexpected \(describe(bytes[index])), expected ',' or '}'")
        }
    }

    mutating func array() throws(JSONError) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try value())
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in an array") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            throw error("unexpected \(describe(bytes[index])), expected ',' or ']'")
        }
    }

    mutating func number() throws(JSONError) -> String {
        let start = index
        func digits(_ parser: inout JSONParser) -> Int {
            let from = parser.index
            while parser.index < parser.bytes.count,
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(parser.bytes[parser.index])
            {
                parser.index += 1
            }
            return parser.index - from
        }
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
            throw error("a number needs digits")
        }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                throw error("numbers must not have leading zeros")
            }
        } else {
            _ = digits(&self)
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) > 0 else { throw error("a fraction needs digits after '.'") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard digits(&self) > 0 else { throw error("an exponent needs digits") }
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    mutating func string() throws(JSONError) -> String {
        index += 1 // opening quote
        var scalars = String.UnicodeScalarView()
        var run: [UInt8] = []
        func flush(_ run: inout [UInt8], _ scalars: inout String.UnicodeScalarView) {
            if !run.isEmpty {
                scalars.append(contentsOf: String(decoding: run, as: UTF8.self).unicodeScalars)
                run.removeAll()
            }
        }
        while true {
            guard index < bytes.count else { throw error("unterminated string") }
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                flush(&run, &scalars)
                return String(scalars)
            case UInt8(ascii: "\\"):
                flush(&run, &scalars)
                index += 1
                guard index < bytes.count else { throw error("unterminated escape") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code), bytes.count - index >= 6,
                        bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                    {
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("invalid UTF-16 surrogate pair") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("\\u escape is not a Unicode scalar") }
                    scalars.append(scalar)
                default:
                    index -= 1
                    throw error("invalid escape \\\(describe(escape))")
                }
            case 0..<0x20:
                throw error("control character \(describe(byte)) in a string must be escaped")
            default:
                run.append(byte)
                index += 1
            }
        }
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        guard bytes.count - index >= 4 else { throw error("\\u needs four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("\\u needs four hex digits")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }
}

/// A JSON value together with its path in the document, for reading documents (context files,
/// map files, plugin answers) with errors that name the field (`ctx.memory[2].value.size`).
public struct JSONField: Sendable {
    /// The value at `path` (`nil` when the member is absent).
    public let value: JSONValue?
    /// The JSON path, e.g. `ctx.sock.srcPort`.
    public let path: String

    public init(_ value: JSONValue?, path: String) {
        self.value = value
        self.path = path
    }

    /// An error about this field.
    public func error(_ message: String) -> JSONError { JSONError(path: path, message) }

    /// Whether the member is absent or `null`.
    public var isMissing: Bool {
        if let value, value != .null { return false }
        return true
    }

    /// The member `key` of this object (absent members give a field whose value is nil).
    public subscript(key: String) -> JSONField {
        JSONField(value?[key], path: path.isEmpty ? key : "\(path).\(key)")
    }

    /// This value must be an object: its members as fields, in document order.
    public func members() throws(JSONError) -> [(key: String, field: JSONField)] {
        guard case .object(let members) = try required() else { throw typeError("an object") }
        return members.map { ($0.key, JSONField($0.value, path: path.isEmpty ? $0.key : "\(path).\($0.key)")) }
    }

    /// This value must be an object; throws otherwise. Returns self for chaining.
    @discardableResult
    public func object() throws(JSONError) -> JSONField {
        guard case .object = try required() else { throw typeError("an object") }
        return self
    }

    /// This value must be an object whose members are all among `known`: any other member (a
    /// misspelt `"headrom"`, which would otherwise be ignored for the default) is an error
    /// naming it. Returns self for chaining.
    @discardableResult
    public func object(knownMembers known: [String]) throws(JSONError) -> JSONField {
        for (key, field) in try members() where !known.contains(key) {
            let shown = key.count > 40 ? "\(key.prefix(40))..." : key
            throw field.error("unknown field \"\(shown)\" (known: \(known.joined(separator: ", ")))")
        }
        return self
    }

    /// This value must be an array: its elements as fields (`path[0]`, `path[1]`, ...).
    public func elements() throws(JSONError) -> [JSONField] {
        guard case .array(let items) = try required() else { throw typeError("an array") }
        return items.enumerated().map { JSONField($1, path: "\(path)[\($0)]") }
    }

    /// Like `elements()`, but absent or `null` is an empty array (Go writes nil slices as `null`).
    public func optionalElements() throws(JSONError) -> [JSONField] {
        isMissing ? [] : try elements()
    }

    public func string() throws(JSONError) -> String {
        guard case .string(let text) = try required() else { throw typeError("a string") }
        return text
    }

    public func optionalString() throws(JSONError) -> String? {
        isMissing ? nil : try string()
    }

    /// An integer that fits `T` exactly (no fraction, no rounding).
    public func integer<T: FixedWidthInteger>(_ type: T.Type = T.self) throws(JSONError) -> T {
        guard case .number(let text) = try required() else { throw typeError("an integer") }
        guard let value = T(text, radix: 10) else {
            if text.contains(where: { ".eE".contains($0) }) { throw error("expected an integer, got \(text)") }
            throw error("\(text) is out of range (\(T.min)...\(T.max))")
        }
        return value
    }

    public func optionalInteger<T: FixedWidthInteger>(_ type: T.Type = T.self) throws(JSONError) -> T? {
        isMissing ? nil : try integer(T.self)
    }

    /// A 64-bit value written as a signed or an unsigned integer (`-1` gives `UInt64.max`).
    public func bits64() throws(JSONError) -> UInt64 {
        guard case .number(let text) = try required() else { throw typeError("an integer") }
        if let value = UInt64(text, radix: 10) { return value }
        if let value = Int64(text, radix: 10) { return UInt64(bitPattern: value) }
        if text.contains(where: { ".eE".contains($0) }) { throw error("expected an integer, got \(text)") }
        throw error("\(text) does not fit in 64 bits")
    }

    /// Bytes written as a base64 string (standard alphabet, padding), as Go writes `[]byte`,
    /// or as an object `{"hex": "02 00 00 ..."}` (hex digit pairs, spaces and `0x` prefixes
    /// allowed). Hex needs the object: a bare string such as `"deadbeef"` is valid base64 too.
    public func base64() throws(JSONError) -> [UInt8] {
        if case .object? = value {
            let hex = self["hex"]
            guard !hex.isMissing else { throw error("expected a base64 string or an object {\"hex\": \"...\"}") }
            guard let bytes = HexBytes.decode(try hex.string()) else {
                throw hex.error("expected hex bytes (two digits each; spaces and 0x prefixes allowed)")
            }
            return bytes
        }
        let text = try string()
        guard let bytes = Base64.decode(text) else {
            throw error(
                "expected base64 (standard alphabet with padding), got \"\(text.prefix(40))\(text.count > 40 ? "..." : "")\""
            )
        }
        return bytes
    }

    /// Like `base64()`, but absent or `null` is empty (Go writes a nil `[]byte` as `null`).
    public func optionalBase64() throws(JSONError) -> [UInt8] {
        isMissing ? [] : try base64()
    }

    /// `optionalBase64()` refusing, before decoding, text that decodes to more than `limit` bytes.
    public func optionalBase64(limit: Int) throws(JSONError) -> [UInt8] {
        if isMissing { return [] }
        if case .object? = value { // {"hex": ...}: the text is already in memory; check what it decodes to
            let bytes = try base64()
            guard bytes.count <= limit else { throw error("\(bytes.count) bytes exceed the limit of \(limit)") }
            return bytes
        }
        let length = try string().utf8.count
        // Four characters decode to three bytes, less up to two of padding.
        guard length / 4 * 3 - 2 <= limit else {
            throw error("about \(length / 4 * 3) bytes exceed the limit of \(limit)")
        }
        return try base64()
    }

    func required() throws(JSONError) -> JSONValue {
        guard let value else { throw error("missing") }
        return value
    }

    func typeError(_ expected: String) -> JSONError {
        error("expected \(expected), got \(value?.kindName ?? "nothing")")
    }
}

/// Hex byte strings in context files: digit pairs, with optional whitespace and `0x` prefixes.
enum HexBytes {
    /// The bytes of `text`, or nil if a token is not whole hex bytes.
    static func decode(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        for token in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }) {
            var digits = Substring(token)
            if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
            guard !digits.isEmpty, digits.count % 2 == 0, digits.allSatisfy(\.isHexDigit) else { return nil }
            var index = digits.startIndex
            while index < digits.endIndex {
                let next = digits.index(index, offsetBy: 2)
                guard let byte = UInt8(digits[index..<next], radix: 16) else { return nil }
                bytes.append(byte)
                index = next
            }
        }
        return bytes
    }
}

/// Base64 with the standard alphabet and `=` padding (RFC 4648 §4), as Go's `encoding/json`
/// writes byte slices.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The bytes of `text`, or nil if it is not valid padded base64.
    public static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        values.reserveCapacity(text.utf8.count)
        var padding = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: "=") {
                padding += 1
                continue
            }
            guard padding == 0 else { return nil } // data after padding
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            default: return nil
            }
            values.append(value)
        }
        guard (values.count + padding) % 4 == 0, padding <= 2, values.count % 4 != 1 else { return nil }
        guard padding == (4 - values.count % 4) % 4 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 3 / 4)
        var index = 0
        while index + 4 <= values.count {
            let v = values[index..<index + 4].reduce(UInt32(0)) { $0 << 6 | UInt32($1) }
            bytes += [
                UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v),
            ]
            index += 4
        }
        let rest = values.count - index
        if rest == 2 {
            let v = UInt32(values[index]) << 6 | UInt32(values[index + 1])
            guard v & 0xF == 0 else { return nil }
            bytes.append(UInt8(truncatingIfNeeded: v >> 4))
        } else if rest == 3 {
            let v = UInt32(values[index]) << 12 | UInt32(values[index + 1]) << 6 | UInt32(values[index + 2])
            guard v & 0x3 == 0 else { return nil }
            bytes += [UInt8(truncatingIfNeeded: v >> 10), UInt8(truncatingIfNeeded: v >> 2)]
        }
        return bytes
    }

    /// `bytes` as padded base64.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        var output: [UInt8] = []
        var index = 0
        while index < input.count {
            let chunk = input[index..<min(index + 3, input.count)]
            let v = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (16 - 8 * $1.offset) }
            for i in 0..<4 {
                output.append(i <= chunk.count ? alphabet[Int(v >> (18 - 6 * i) & 0x3F)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }
}
