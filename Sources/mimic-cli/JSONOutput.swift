import MimicJSON
import MimicLinux

/// A JSON value for `--json` output. Objects keep their keys in the order they were built, so
/// the output reads in the same order as the text output.
indirect enum JSONOutput: Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case unsigned(UInt64)
    case string(String)
    case array([JSONOutput])
    case object([(String, JSONOutput)])

    /// The value as JSON text, indented by two spaces per level, with a final newline.
    var text: String {
        var out = ""
        write(to: &out, indent: 0)
        return out + "\n"
    }

    /// The value as one line of JSON (a JSON Lines record), with a final newline.
    var line: String {
        var out = ""
        writeCompact(to: &out)
        return out + "\n"
    }

    private func writeCompact(to out: inout String) {
        switch self {
        case .array(let elements):
            out += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { out += ", " }
                element.writeCompact(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (index, member) in members.enumerated() {
                if index > 0 { out += ", " }
                out += JSONOutput.quote(member.0) + ": "
                member.1.writeCompact(to: &out)
            }
            out += "}"
        default:
            write(to: &out, indent: 0)
        }
    }

    private func write(to out: inout String, indent: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .integer(let value): out += String(value)
        case .unsigned(let value): out += String(value)
        case .string(let value): out += JSONOutput.quote(value)
        case .array(let elements):
            guard !elements.isEmpty else {
                out += "[]"
                return
            }
            // Arrays of scalars stay on one line.
            if elements.allSatisfy(\.isScalar) {
                out += "["
                for (index, element) in elements.enumerated() {
                    if index > 0 { out += ", " }
                    element.write(to: &out, indent: indent)
                }
                out += "]"
                return
            }
            out += "[\n"
            for (index, element) in elements.enumerated() {
                out += String(repeating: " ", count: indent + 2)
                element.write(to: &out, indent: indent + 2)
                out += index == elements.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "]"
        case .object(let members):
            guard !members.isEmpty else {
                out += "{}"
                return
            }
            out += "{\n"
            for (index, member) in members.enumerated() {
                out += String(repeating: " ", count: indent + 2) + JSONOutput.quote(member.0) + ": "
                member.1.write(to: &out, indent: indent + 2)
                out += index == members.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        }
    }

    private var isScalar: Bool {
        switch self {
        case .array, .object: false
        default: true
        }
    }

    /// `text` as a JSON string literal.
    static func quote(_ text: String) -> String { JSONValue.quote(text) }
}
