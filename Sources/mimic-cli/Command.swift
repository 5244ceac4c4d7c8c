#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failure while doing what the user asked (bad file, load error, execution fault): exit 1.
struct RuntimeError: Error, Sendable, CustomStringConvertible {
    var message: String

    init(_ message: String) { self.message = message }

    var description: String { message }
}

/// Process exit codes of `mimic`.
enum ExitCode {
    static let success: Int32 = 0
    /// A runtime failure: the input could not be read, loaded or run.
    static let failure: Int32 = 1
    /// A command-line mistake: unknown command or option, missing argument.
    static let usage: Int32 = 2
}

/// Everything `mimic help COMMAND` and `mimic COMMAND --help` print about a command.
struct CommandInfo: Sendable {
    /// The subcommand name (`run-raw`).
    var name: String
    /// One line for the command list.
    var summary: String
    /// The synopsis after `mimic ` (`run-raw FILE [options]`).
    var synopsis: String
    /// Paragraphs describing what the command does.
    var discussion: String
    var options: [OptionSpec]
    /// Example command lines, each with a comment line above it.
    var examples: [(comment: String, command: String)]

    /// The parser for this command's options.
    var parser: ArgumentParser { ArgumentParser(command: name, options: options) }

    /// The full help text.
    var help: String {
        var text = "OVERVIEW: \(summary)\n\nUSAGE: mimic \(synopsis)\n"
        if !discussion.isEmpty { text += "\n\(discussion)\n" }
        text += "\nOPTIONS:\n"
        let rows = options.map { ($0.usage, $0.help) } + [("-h, --help", "Show this help.")]
        let width = rows.map(\.0.count).max() ?? 0
        for (usage, help) in rows {
            text += "  " + usage + String(repeating: " ", count: width - usage.count + 2) + help + "\n"
        }
        if !examples.isEmpty {
            text += "\nEXAMPLES:\n"
            for example in examples {
                text += "  # \(example.comment)\n  \(example.command)\n"
            }
        }
        return text
    }
}

/// A `mimic` subcommand.
protocol Command: Sendable {
    static var info: CommandInfo { get }

    /// Rewrites the raw arguments before parsing (default: unchanged).
    static func normalize(_ arguments: [String]) -> [String]

    /// Runs the command with its parsed arguments (help already handled).
    ///
    /// - Throws: `UsageError` (exit 2) or `RuntimeError` (exit 1); any other error exits 1 too.
    static func run(_ arguments: ParsedArguments) throws
}

extension Command {
    static func normalize(_ arguments: [String]) -> [String] { arguments }
}

/// Standard output and error, written straight to the file descriptors (no buffering, so
/// output and error interleave in order and nothing is lost at `exit`).
enum Console {
    /// Writes `text` to standard output as is.
    static func out(_ text: String) {
        outBytes(Array(text.utf8))
    }

    /// Writes raw bytes to standard output.
    static func outBytes(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { outBytes($0) }
    }

    /// Writes raw bytes, in place, to standard output.
    static func outBytes(_ bytes: UnsafeRawBufferPointer) {
        write(bytes, to: STDOUT_FILENO)
    }

    /// Writes `text` to standard error.
    static func err(_ text: String) {
        write(Array(text.utf8), to: STDERR_FILENO)
    }

    /// Prints `mimic: error: MESSAGE` on standard error.
    static func error(_ message: String) {
        err("mimic: error: \(message)\n")
    }

    /// Writes all of `bytes`, retrying short writes; gives up silently if the reader is gone.
    private static func write(_ bytes: [UInt8], to descriptor: Int32) {
        bytes.withUnsafeBytes { write($0, to: descriptor) }
    }

    private static func write(_ buffer: UnsafeRawBufferPointer, to descriptor: Int32) {
        var offset = 0
        while offset < buffer.count, let base = buffer.baseAddress {
            #if canImport(Glibc)
                let written = Glibc.write(descriptor, base + offset, buffer.count - offset)
            #else
                let written = Darwin.write(descriptor, base + offset, buffer.count - offset)
            #endif
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}
