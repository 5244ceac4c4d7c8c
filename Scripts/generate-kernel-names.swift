// Generates Sources/MimicCore/UAPI/KernelNames.generated.swift from the kernel's UAPI header.
//
//     swift Scripts/generate-kernel-names.swift <path/to/include/uapi/linux/bpf.h> "<label>" \
//         > Sources/MimicCore/UAPI/KernelNames.generated.swift
//
// <label> says where the header came from (e.g. "Linux 6.18"); it goes into the file's header.
// The script reads four lists of the header, in their order:
//   - `___BPF_FUNC_MAPPER` (helper ids: `FN(map_lookup_elem, 1, ##ctx)`, or `FN(name)` in
//     headers before 6.1, where the id is the position) -> `HelperID`
//   - `enum bpf_map_type`    -> `MapType`
//   - `enum bpf_prog_type`   -> `ProgramType`
//   - `enum bpf_attach_type` -> `AttachType`
// It checks that the ids are 0, 1, 2, ... without gaps. An enumerator `A = B` naming an earlier
// one (`BPF_MAP_TYPE_CGROUP_STORAGE = BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED`) becomes the
// value's name and the earlier name an alias. Swift names are the C names without their prefix in
// lowerCamelCase, except the few listed in `swiftNameOverrides` (spellings Mimic had before).

import Foundation

struct Enumerator {
    var name: String
    var value: Int
    var aliases: [String] = []
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("generate-kernel-names: \(message)\n".utf8))
    exit(1)
}

let arguments = CommandLine.arguments
guard arguments.count == 3 else { fail("usage: generate-kernel-names.swift <bpf.h> <label>") }
guard let header = try? String(contentsOfFile: arguments[1], encoding: .utf8) else {
    fail("cannot read \(arguments[1])")
}
let label = arguments[2]
let lines = header.components(separatedBy: "\n")

/// The lines between the line starting with `start` and the first line starting with `end`.
func block(from start: String, to end: String) -> [String] {
    guard let first = lines.firstIndex(where: { $0.hasPrefix(start) }) else { fail("no '\(start)' in the header") }
    guard let last = lines[first...].firstIndex(where: { $0.hasPrefix(end) }) else { fail("'\(start)' has no end") }
    return Array(lines[(first + 1)..<last])
}

/// `__BPF_FUNC_MAPPER`'s entries: `FN(name, id, ##ctx)` or, in old headers, `FN(name)`.
func helperEnumerators() -> [Enumerator] {
    // The list ends at the first line that does not continue the macro.
    let start = lines.firstIndex(where: { $0.hasPrefix("#define ___BPF_FUNC_MAPPER(") || $0.hasPrefix("#define __BPF_FUNC_MAPPER(") })
    guard let start else { fail("no __BPF_FUNC_MAPPER in the header") }
    var result: [Enumerator] = []
    var index = start + 1
    while index < lines.count {
        let line = lines[index].trimmingCharacters(in: .whitespaces)
        guard line.hasPrefix("FN(") else { break }
        let inside = line.dropFirst(3).prefix { $0 != ")" }
        let fields = inside.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let value = fields.count >= 2 ? Int(fields[1]) : result.count
        guard let value else { fail("cannot read the id of '\(line)'") }
        result.append(Enumerator(name: fields[0], value: value))
        index += 1
    }
    return result
}

/// The enumerators of `enum <name> { ... };`, with implicit values counted, up to `__MAX_*`
/// (which older headers lack) or the end.
func enumEnumerators(_ name: String) -> [Enumerator] {
    var result: [Enumerator] = []
    var inComment = false
    var next = 0
    for raw in block(from: "enum \(name) {", to: "};") {
        var line = raw
        // Drop comments (block comments may span lines).
        if inComment {
            guard let close = line.range(of: "*/") else { continue }
            line = String(line[close.upperBound...])
            inComment = false
        }
        while let open = line.range(of: "/*") {
            if let close = line.range(of: "*/", range: open.upperBound..<line.endIndex) {
                line.removeSubrange(open.lowerBound..<close.upperBound)
            } else {
                line = String(line[..<open.lowerBound])
                inComment = true
            }
        }
        for item in line.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard let enumerator = parts.first, !enumerator.isEmpty else { continue }
            if enumerator.hasPrefix("__MAX") { return result }
            if parts.count == 2 {
                if let number = Int(parts[1]) {
                    next = number
                } else if let earlier = result.firstIndex(where: { $0.name == parts[1] }) {
                    // A new name for an earlier value: the new name wins, the old one is an alias.
                    result[earlier].aliases.append(result[earlier].name)
                    result[earlier].name = enumerator
                    continue
                } else {
                    fail("cannot read the value of \(enumerator) in enum \(name)")
                }
            }
            result.append(Enumerator(name: enumerator, value: next))
            next += 1
        }
    }
    return result
}

func checkDense(_ list: [Enumerator], _ what: String) {
    for (index, item) in list.enumerated() where item.value != index {
        fail("\(what): \(item.name) has value \(item.value), expected \(index) (the table must have no gaps)")
    }
}

let swiftKeywords: Set<String> = ["default", "in", "is", "as", "return", "import", "func", "var", "let", "class",
                                  "struct", "enum", "protocol", "extension", "switch", "case", "if", "else", "for",
                                  "while", "repeat", "break", "continue", "throw", "throws", "try", "catch", "init",
                                  "self", "Self", "super", "nil", "true", "false", "where", "guard", "defer", "do",
                                  "operator", "static", "public", "private", "internal", "fileprivate", "subscript",
                                  "typealias", "associatedtype", "inout", "some", "any"]

/// Spellings Mimic's API had before this table was generated (`MapType.perCPUHash`).
let swiftNameOverrides: [String: String] = [
    "BPF_MAP_TYPE_PERCPU_HASH": "perCPUHash", "BPF_MAP_TYPE_PERCPU_ARRAY": "perCPUArray",
    "BPF_MAP_TYPE_LRU_PERCPU_HASH": "lruPerCPUHash", "BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE": "perCPUCgroupStorage",
    "BPF_MAP_TYPE_DEVMAP": "devMap", "BPF_MAP_TYPE_DEVMAP_HASH": "devMapHash", "BPF_MAP_TYPE_SOCKMAP": "sockMap",
    "BPF_MAP_TYPE_CPUMAP": "cpuMap", "BPF_MAP_TYPE_XSKMAP": "xskMap", "BPF_MAP_TYPE_SOCKHASH": "sockHash",
    "BPF_MAP_TYPE_RINGBUF": "ringBuffer", "BPF_MAP_TYPE_USER_RINGBUF": "userRingBuffer",
    "BPF_PROG_TYPE_LWT_SEG6LOCAL": "lwtSeg6Local",
]

/// `BPF_MAP_TYPE_LRU_HASH` without `BPF_MAP_TYPE_` is `lruHash`; `csum_diff` is `csumDiff`.
func swiftName(_ cName: String, prefix: String) -> String {
    if let override = swiftNameOverrides[cName] { return override }
    let words = cName.dropFirst(prefix.count).lowercased().split(separator: "_")
    let camel = words.enumerated().map { $0.offset == 0 ? String($0.element) : $0.element.prefix(1).uppercased() + $0.element.dropFirst() }
        .joined()
    return swiftKeywords.contains(camel) ? "`\(camel)`" : camel
}

/// A Swift string literal (the names are plain identifiers, but be safe).
func literal(_ text: String) -> String { "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }

var output = """
// Generated by Scripts/generate-kernel-names.swift from include/uapi/linux/bpf.h of \(label).
// Do not edit: change the script or the header and regenerate (see Docs/Architecture.md).

"""

// Helpers: id 0 (`unspec`) is no helper, so the name table starts at id 1.
let helpers = helperEnumerators()
checkDense(helpers, "__BPF_FUNC_MAPPER")
guard helpers.first?.name == "unspec" else { fail("__BPF_FUNC_MAPPER does not start with unspec") }
output += """

extension HelperID {
    /// `BPF_FUNC_unspec`, id 0: not a helper (the kernel refuses calls to it).
    public static let unspec = HelperID(rawValue: 0)

"""
for helper in helpers.dropFirst() {
    output += "    /// `bpf_\(helper.name)`, id \(helper.value).\n"
    output += "    public static let \(swiftName(helper.name, prefix: "")) = HelperID(rawValue: \(helper.value))\n"
}
output += """

    /// The C names of the helpers with ids 1...\(helpers.count - 1), in id order (\(label)).
    static let kernelNames: [String] = [

"""
for helper in helpers.dropFirst() { output += "        \(literal("bpf_" + helper.name)),  // \(helper.value)\n" }
output += "    ]\n}\n"

/// One enumeration of the header as an extension of `type` with constants and a name table.
func emit(_ enumName: String, type: String, prefix: String) {
    let list = enumEnumerators(enumName)
    checkDense(list, "enum \(enumName)")
    output += "\nextension \(type) {\n"
    for item in list {
        let aliasNote = item.aliases.isEmpty ? "" : " (also `\(item.aliases.joined(separator: "`, `"))`)"
        output += "    /// `\(item.name)`, \(item.value)\(aliasNote).\n"
        output += "    public static let \(swiftName(item.name, prefix: prefix)) = \(type)(rawValue: \(item.value))\n"
    }
    output += """

        /// The C names of `enum \(enumName)`, indexed by value (\(label)).
        static let kernelNames: [String] = [

    """
    for item in list { output += "        \(literal(item.name)),  // \(item.value)\n" }
    output += "    ]\n\n"
    output += "    /// Older C names of some values (`A = B` in the header).\n"
    let aliases = list.flatMap { item in item.aliases.map { (alias: $0, value: item.value) } }
    if aliases.isEmpty {
        output += "    static let kernelAliases: [String: UInt32] = [:]\n"
    } else {
        output += "    static let kernelAliases: [String: UInt32] = [\n"
        for (alias, value) in aliases { output += "        \(literal(alias)): \(value),\n" }
        output += "    ]\n"
    }
    output += "}\n"
}

emit("bpf_map_type", type: "MapType", prefix: "BPF_MAP_TYPE_")
emit("bpf_prog_type", type: "ProgramType", prefix: "BPF_PROG_TYPE_")
emit("bpf_attach_type", type: "AttachType", prefix: "BPF_")

print(output, terminator: "")
