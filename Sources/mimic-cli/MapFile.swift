import MimicJSON
import MimicLinux
import MimicTesting

/// `--map NAME=FILE.json`: entries to put in a map before the program runs.
///
/// The file is a JSON array of entries, each `{"key": K, "value": V}`, or for per-CPU maps
/// `{"key": K, "values": [V0, V1, ...]}` (one value per CPU; `value` alone sets every CPU).
/// A key or value is written as
/// - a number: an unsigned (or negative) integer, stored little-endian in the key/value size
///   (as a C `__u32` or `__u64` holds it);
/// - a string: hex bytes in memory order (`"c0 00 02 42"`, `"c0000242"`, `"0xc0 0x00 ..."`),
///   or a dotted IPv4 address (`"192.0.2.66"`, 4 bytes in network order);
/// - an array of byte values (`[192, 0, 2, 66]`);
/// - `{"string": "bash"}`: UTF-8 text, zero-padded to the size (for `char[16]` keys).
///
/// A devmap or cpumap entry that carries a program is `{"key": K, "value": {"ifindex": N,
/// "program": "NAME"}}` (cpumap: `"qsize"` for `"ifindex"`), NAME a program of the object whose
/// section makes it `xdp/devmap` / `xdp/cpumap` (the kernel's `bpf_prog.fd`).
///
/// Byte forms must have exactly the key or value size. Errors name the file and JSON path.
struct MapFile {
    struct Entry {
        var key: [UInt8]
        /// One value for every CPU, or one per CPU.
        var values: [[UInt8]]
        var perCPU: Bool
        /// The program a devmap / cpumap entry carries (its value's first word is in `values`).
        var program: String?
    }

    /// Splits `NAME=FILE.json`.
    static func split(_ argument: String) throws(UsageError) -> (name: String, path: String) {
        guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex,
            argument.index(after: equals) != argument.endIndex
        else {
            throw UsageError(message: "--map expects NAME=FILE.json, got '\(argument)'", command: nil)
        }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }

    /// Reads the entries of `bytes` for a map with the given sizes and CPU count.
    static func entries(_ bytes: [UInt8], file: String, keySize: Int, valueSize: Int, cpus: Int) throws(RuntimeError)
        -> [Entry]
    {
        do throws(ContextError) {
            let root = JSONField(try JSONValue.parse(bytes), path: "")
            var entries: [Entry] = []
            for (index, field) in try root.elements().enumerated() {
                let item = JSONField(field.value, path: "[\(index)]")
                try item.object()
                for (key, member) in try item.members() where !["key", "value", "values"].contains(key) {
                    throw member.error("unknown member \"\(key)\" (expected key, and value or values)")
                }
                let key = try bytesOf(item["key"], size: keySize, what: "key")
                if !item["values"].isMissing {
                    guard item["value"].isMissing else { throw item.error("give either value or values, not both") }
                    let list = try item["values"].elements()
                    guard list.count == cpus else {
                        throw item["values"].error("has \(list.count) values; give one per CPU (\(cpus))")
                    }
                    var values: [[UInt8]] = []
                    for element in list { values.append(try bytesOf(element, size: valueSize, what: "value")) }
                    entries.append(Entry(key: key, values: values, perCPU: true))
                } else if case .object(let members) = item["value"].value,
                    members.contains(where: { $0.0 == "program" })
                {
                    entries.append(try entryWithProgram(key: key, item["value"], valueSize: valueSize))
                } else {
                    entries.append(
                        Entry(
                            key: key, values: [try bytesOf(item["value"], size: valueSize, what: "value")],
                            perCPU: false))
                }
            }
            return entries
        } catch {
            throw RuntimeError("\(file): \(error.description)")
        }
    }

    /// `{"ifindex": N, "program": "NAME"}` or `{"qsize": N, "program": "NAME"}`: the value's
    /// first word and the program (its second word, the program's id, is Mimic's to fill).
    static func entryWithProgram(key: [UInt8], _ field: JSONField, valueSize: Int) throws(ContextError) -> Entry {
        var first: UInt32?
        for (name, member) in try field.members() {
            switch name {
            case "program": continue
            case "ifindex", "qsize":
                guard first == nil else { throw field.error("give either ifindex or qsize, not both") }
                first = try member.integer(UInt32.self)
            default:
                throw member.error("unknown member \"\(name)\" (expected ifindex or qsize, and program)")
            }
        }
        guard let first else { throw field.error("give the entry's ifindex (devmap) or qsize (cpumap) with its program") }
        guard valueSize == 8 else {
            throw field.error("an entry with a program needs 8-byte values (struct bpf_devmap_val / bpf_cpumap_val); the map's are \(valueSize) bytes")
        }
        let value = [UInt8(first & 0xff), UInt8(first >> 8 & 0xff), UInt8(first >> 16 & 0xff), UInt8(first >> 24), 0, 0, 0, 0]
        return Entry(key: key, values: [value], perCPU: false, program: try field["program"].string())
    }

    /// The bytes a key or value field stands for: `ValueSyntax`'s byte forms, with hex read by
    /// the CLI's `Hex.parse` (its messages name the offending digit).
    static func bytesOf(_ field: JSONField, size: Int, what: String) throws(ContextError) -> [UInt8] {
        try ValueSyntax.bytes(field, size: size, what: what) { field throws(JSONError) in
            let text = try field.string()
            do throws(RuntimeError) {
                return try Hex.parse(text, what: "the \(what)")
            } catch {
                throw field.error("expected hex bytes or an IPv4 address: \(error.message)")
            }
        }
    }
}
