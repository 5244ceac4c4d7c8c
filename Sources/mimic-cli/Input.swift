import Foundation
import MimicCore

/// Reading the files and byte strings commands take as input.
enum Input {
    /// The display name of `path` in messages: `<stdin>` for `-`.
    static func displayName(_ path: String) -> String { path == "-" ? "<stdin>" : path }

    /// The whole contents of `path`, or of standard input for `-`.
    static func read(_ path: String) throws(RuntimeError) -> [UInt8] {
        if path == "-" {
            return [UInt8](FileHandle.standardInput.readDataToEndOfFile())
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw RuntimeError("cannot read '\(path)': no such file")
        }
        guard !isDirectory.boolValue else { throw RuntimeError("cannot read '\(path)': it is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RuntimeError("cannot read '\(path)': permission denied or not a regular file")
        }
        return [UInt8](data)
    }

    /// `bytes` as UTF-8 text, for assembler sources.
    static func text(_ bytes: [UInt8], from path: String) throws(RuntimeError) -> String {
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw RuntimeError("\(displayName(path)) is not UTF-8 text (expected assembler source)")
        }
        return text
    }

    /// Writes `bytes` to `path` (`-` writes to standard output).
    static func write(_ bytes: [UInt8], to path: String) throws(RuntimeError) {
        if path == "-" {
            Console.outBytes(bytes)
            return
        }
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw RuntimeError("cannot write '\(path)': the folder does not exist or is not writable")
        }
    }
}

/// Hex byte strings: `"00 01 02"`, `"000102"`, `"0x00 0x01"`, spread over lines.
enum Hex {
    /// Whether `bytes` look like hex text rather than binary: only hex digits, whitespace and
    /// the `x`/`X` of `0x` prefixes, and at least one digit.
    static func looksLikeHex(_ bytes: [UInt8]) -> Bool {
        var sawDigit = false
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"),
                 UInt8(ascii: "A")...UInt8(ascii: "F"):
                sawDigit = true
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"),
                 UInt8(ascii: "x"), UInt8(ascii: "X"):
                continue
            default:
                return false
            }
        }
        return sawDigit
    }

    /// Parses hex text into bytes. Tokens are separated by whitespace; each may start with
    /// `0x` and must have an even number of hex digits.
    ///
    /// - Parameter what: names the input in error messages (`"the memory argument"`).
    static func parse(_ text: String, what: String) throws(RuntimeError) -> [UInt8] {
        var bytes: [UInt8] = []
        for (lineIndex, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let place = text.contains("\n") ? "\(what), line \(lineIndex + 1)" : what
            for token in line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }) {
                var digits = Substring(token)
                if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
                guard !digits.isEmpty else {
                    throw RuntimeError("malformed hex in \(place): '\(token)' has no digits after 0x")
                }
                if let bad = digits.first(where: { !$0.isHexDigit }) {
                    throw RuntimeError("malformed hex in \(place): '\(bad)' in '\(token)' is not a hex digit")
                }
                guard digits.count % 2 == 0 else {
                    throw RuntimeError("malformed hex in \(place): '\(token)' has an odd number of digits (\(digits.count)); write each byte as two digits")
                }
                var index = digits.startIndex
                while index < digits.endIndex {
                    let next = digits.index(index, offsetBy: 2)
                    guard let byte = UInt8(digits[index..<next], radix: 16) else {
                        throw RuntimeError("malformed hex in \(place): '\(token)'")
                    }
                    bytes.append(byte)
                    index = next
                }
            }
        }
        return bytes
    }

    /// `bytes` as lowercase hex pairs separated by spaces.
    static func string(_ bytes: [UInt8]) -> String {
        bytes.map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined(separator: " ")
    }
}

/// Turning program input (binary bytecode, hex text, assembler text) into instructions.
enum ProgramInput {
    /// The four bytes every ELF file starts with.
    static let elfMagic: [UInt8] = [0x7F, 0x45, 0x4C, 0x46]

    /// A hint for bytecode input that is really text (printable ASCII, not hex).
    static func assemblerHint(for bytes: [UInt8]) -> String? {
        let isText = !bytes.isEmpty && bytes.allSatisfy { $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || (0x20..<0x7F).contains($0) }
        guard isText, !Hex.looksLikeHex(bytes) else { return nil }
        return "; the file looks like text: if it is assembler, pass --asm or name it *.s"
    }

    /// Decodes bytecode given as raw little-endian bytes or as hex text (detected).
    ///
    /// - Parameter name: the file name for messages.
    static func instructions(fromBytecode bytes: [UInt8], name: String, command: String) throws(RuntimeError) -> [RawInstruction] {
        guard !bytes.isEmpty else { throw RuntimeError("\(name) is empty: there are no instructions") }
        if bytes.starts(with: elfMagic) {
            throw RuntimeError("\(name) is an ELF object; ELF objects are not supported yet by \(command); extract the program section as raw bytes (e.g. llvm-objcopy -O binary --only-section=SECTION) or pass assembler text")
        }
        var code = bytes
        let isHex = Hex.looksLikeHex(bytes)
        if isHex {
            code = try Hex.parse(String(decoding: bytes, as: UTF8.self), what: name)
        }
        do {
            return try RawInstruction.decode(code)
        } catch {
            var message = "\(name): \(error)"
            if command == "run-raw", let hint = assemblerHint(for: bytes) { message += hint }
            throw RuntimeError(message)
        }
    }
}
