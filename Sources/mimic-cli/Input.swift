#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation
import MimicCore
import MimicMemory
import MimicPcap

/// Reading the files and byte strings commands take as input.
enum Input {
    /// The display name of `path` in messages: `<stdin>` for `-`.
    static func displayName(_ path: String) -> String { path == "-" ? "<stdin>" : path }

    /// Whether `path` can be opened for reading (`access(2)`).
    static func isReadable(_ path: String) -> Bool { access(path, R_OK) == 0 }

    /// The most bytes an input file may have (objects, captures, context and map files).
    static let defaultLimit = 1 << 30

    /// The whole contents of `path`, or of standard input for `-`: any readable file, regular or
    /// not (pipes, `/dev/stdin`, `<(...)`, `/dev/null`).
    ///
    /// A regular file larger than `limit` bytes is refused before it is read; other files are
    /// read at most `limit + 1` bytes, so no input is ever held whole past the limit.
    static func read(_ path: String, limit: Int = defaultLimit, what: String = "input files") throws(RuntimeError)
        -> [UInt8]
    {
        let name = displayName(path)
        let descriptor: Int32
        if path == "-" {
            descriptor = STDIN_FILENO
        } else {
            descriptor = open(path, O_RDONLY)
            guard descriptor >= 0 else {
                let code = errno
                switch code {
                case ENOENT: throw RuntimeError("cannot read '\(path)': no such file")
                case EACCES: throw RuntimeError("cannot read '\(path)': permission denied")
                default: throw RuntimeError("cannot read '\(path)': \(String(cString: strerror(code)))")
                }
            }
        }
        defer { if descriptor != STDIN_FILENO { close(descriptor) } }
        var status = stat()
        if fstat(descriptor, &status) == 0 {
            if (status.st_mode & S_IFMT) == S_IFDIR { throw RuntimeError("cannot read '\(path)': it is a directory") }
            if (status.st_mode & S_IFMT) == S_IFREG, status.st_size > limit {
                throw RuntimeError("\(name) is \(status.st_size) bytes; \(what) are limited to \(limit) bytes")
            }
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { buffer in
                #if canImport(Glibc)
                    Glibc.read(descriptor, buffer.baseAddress, buffer.count)
                #else
                    Darwin.read(descriptor, buffer.baseAddress, buffer.count)
                #endif
            }
            if count < 0 {
                if errno == EINTR { continue }
                let code = errno
                if code == EISDIR { throw RuntimeError("cannot read '\(path)': it is a directory") }
                throw RuntimeError("cannot read '\(name)': \(String(cString: strerror(code)))")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > limit {
                throw RuntimeError("\(name) is more than \(limit) bytes; \(what) are limited to \(limit) bytes")
            }
        }
        return bytes
    }

    /// The contents of `path` to read in place, as `read` gives them (same limit and errors): a
    /// non-empty regular file is memory-mapped (read-only, private: nothing is copied or read
    /// before it is used), anything else (standard input, pipes, an empty file) is read.
    ///
    /// The file must not shrink while the bytes are in use: reading a page the file no longer
    /// has stops the process (`SIGBUS`), as for any memory-mapped reader.
    static func mapped(_ path: String, limit: Int = defaultLimit, what: String = "input files") throws(RuntimeError)
        -> PcapBytes
    {
        guard path != "-" else { return PcapBytes(copying: try read(path, limit: limit, what: what)) }
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return PcapBytes(copying: try read(path, limit: limit, what: what)) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG, status.st_size > 0,
            status.st_size <= limit
        else { return PcapBytes(copying: try read(path, limit: limit, what: what)) }
        let size = Int(status.st_size)
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), address != MAP_FAILED else {
            // Some file systems cannot map: read the file instead.
            return PcapBytes(copying: try read(path, limit: limit, what: what))
        }
        return PcapBytes(borrowing: UnsafeRawBufferPointer(start: address, count: size)) { munmap(address, size) }
    }

    /// Whether `first` and `second` name the same existing file (same device and inode).
    static func sameFile(_ first: String, _ second: String) -> Bool {
        guard first != "-", second != "-" else { return false }
        var a = stat()
        var b = stat()
        guard stat(first, &a) == 0, stat(second, &b) == 0 else { return false }
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino
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
        var failure: RuntimeError?
        bytes.withUnsafeBytes { buffer in
            do throws(RuntimeError) { try write(buffer, to: path) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Writes `bytes` (in place) to `path` (`-` writes to standard output).
    static func write(_ bytes: UnsafeRawBufferPointer, to path: String) throws(RuntimeError) {
        if path == "-" {
            Console.outBytes(bytes)
            return
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw RuntimeError("cannot write '\(path)': it is a directory; give a file name")
        }
        // The bytes handed over in place: `Data(bytes)` would copy them all first (a capture
        // written by `mimic run --pcap --out` can be hundreds of megabytes).
        let written = FileManager.default.createFile(
            atPath: path,
            contents: bytes.baseAddress.map {
                Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: $0), count: bytes.count, deallocator: .none)
            } ?? Data())
        guard written else {
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty, !FileManager.default.fileExists(atPath: folder) {
                throw RuntimeError("cannot write '\(path)': the folder '\(folder)' does not exist")
            }
            throw RuntimeError("cannot write '\(path)': permission denied")
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
                    throw RuntimeError(
                        "malformed hex in \(place): '\(token)' has an odd number of digits (\(digits.count)); write each byte as two digits"
                    )
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
        let isText =
            !bytes.isEmpty && bytes.allSatisfy { $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || (0x20..<0x7F).contains($0) }
        guard isText, !Hex.looksLikeHex(bytes) else { return nil }
        return "; the file looks like text: if it is assembler, pass --asm or name it *.s"
    }

    /// Decodes bytecode given as raw little-endian bytes or as hex text (detected).
    ///
    /// - Parameter name: the file name for messages.
    static func instructions(fromBytecode bytes: [UInt8], name: String, command: String) throws(RuntimeError)
        -> [RawInstruction]
    {
        guard !bytes.isEmpty else { throw RuntimeError("\(name) is empty: there are no instructions") }
        if bytes.starts(with: elfMagic) {
            throw RuntimeError(
                "\(name) is an ELF object; ELF objects are not supported yet by \(command); extract the program section as raw bytes (e.g. llvm-objcopy -O binary --only-section=SECTION) or pass assembler text"
            )
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
