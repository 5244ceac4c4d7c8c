import Foundation
import MimicCore
import MimicTestSupport

/// Locations of test data outside the package.
enum TestPaths {
    /// The bpf_conformance test vectors (`*.data`), kept beside the package in
    /// `../shared/conformance/bpf_conformance` (external data: see `ExternalTestData`).
    static var conformanceDirectory: URL { ExternalTestData.conformanceDirectory }
}

/// One bpf_conformance test vector (`*.data`), split into its sections.
///
/// A vector file is a header of `#` comments followed by sections, each opened by a line
/// `-- name`:
///
/// - `-- asm`: the program in assembler text (`Assembler.assemble` input).
/// - `-- mem`: the input memory as whitespace-separated hex byte pairs, possibly over many lines.
/// - `-- result`: the expected value of `r0`, as `0x...` hex.
/// - `-- raw`: the expected encoding, one instruction slot per line as a 64-bit little-endian
///   word in hex (`0x5566778800000018` has opcode byte `0x18`).
/// - anything else (`-- c` source, `-- no register offset` flags) lands in `otherSections`.
struct ConformanceVector: Sendable, CustomStringConvertible {
    /// A file that does not follow the format.
    struct FormatError: Error, CustomStringConvertible {
        var file: String
        var message: String
        var description: String { "\(file): \(message)" }
    }

    /// The file name without `.data` (`lock_fetch_add32`).
    var name: String
    var url: URL
    /// The `-- asm` section verbatim (comments included), or nil if absent.
    var assembly: String?
    /// The `-- mem` bytes; empty when the section is absent.
    var memory: [UInt8]
    /// The `-- result` value, or nil if absent.
    var expectedResult: UInt64?
    /// The `-- raw` words, or nil if absent.
    var rawWords: [UInt64]?
    /// Every other section by name (without the `-- ` prefix), its lines joined with newlines.
    var otherSections: [String: String]

    var description: String { name }

    /// Whether the vector has a section named `name` (`"no register offset"`, `"c"`, ...).
    func hasSection(_ name: String) -> Bool {
        switch name {
        case "asm": assembly != nil
        case "mem": !memory.isEmpty
        case "result": expectedResult != nil
        case "raw": rawWords != nil
        default: otherSections[name] != nil
        }
    }

    /// The `-- raw` words as instruction slots.
    var rawInstructions: [RawInstruction]? {
        rawWords?.map { word in RawInstruction(bytes: (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) }) }
    }

    /// Reads and parses one `.data` file.
    static func load(_ url: URL) throws -> ConformanceVector {
        let text = try String(contentsOf: url, encoding: .utf8)
        return try parse(text, name: url.deletingPathExtension().lastPathComponent, url: url)
    }

    /// Parses the text of a `.data` file.
    static func parse(_ text: String, name: String, url: URL) throws -> ConformanceVector {
        var sections: [(name: String, lines: [Substring])] = []
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            if line.hasPrefix("-- ") {
                sections.append((String(line.dropFirst(3).trimmingCharacters(in: .whitespaces)), []))
            } else if !sections.isEmpty {
                sections[sections.count - 1].lines.append(line)
            }
        }

        var vector = ConformanceVector(
            name: name, url: url, assembly: nil, memory: [], expectedResult: nil, rawWords: nil, otherSections: [:])
        for section in sections {
            let body = section.lines.joined(separator: "\n")
            switch section.name {
            case "asm":
                vector.assembly = body
            case "mem":
                for pair in body.split(whereSeparator: { $0.isWhitespace }) {
                    guard let byte = UInt8(pair, radix: 16) else {
                        throw FormatError(file: name, message: "bad memory byte '\(pair)'")
                    }
                    vector.memory.append(byte)
                }
            case "result":
                let value = body.trimmingCharacters(in: .whitespacesAndNewlines)
                guard let number = parseHex(value) else {
                    throw FormatError(file: name, message: "bad result '\(value)'")
                }
                vector.expectedResult = number
            case "raw":
                vector.rawWords = try body.split(whereSeparator: { $0.isWhitespace }).map { word in
                    guard let number = parseHex(String(word)) else {
                        throw FormatError(file: name, message: "bad raw word '\(word)'")
                    }
                    return number
                }
            default:
                vector.otherSections[section.name] = body
            }
        }
        return vector
    }

    /// Every `.data` vector in `TestPaths.conformanceDirectory`, sorted by name.
    static func all() throws -> [ConformanceVector] {
        let directory = TestPaths.conformanceDirectory
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "data" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        return try files.map(load)
    }

    /// `0x...` hex (or plain decimal) as a 64-bit value.
    private static func parseHex(_ text: String) -> UInt64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
        return UInt64(text)
    }
}
