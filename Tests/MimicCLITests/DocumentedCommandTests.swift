import Foundation
import MimicKernel
import Testing

/// Every `mimic` command line the README and Docs/CLI.md show in a ```sh block runs with the
/// built binary and ends as documented: exit 0, or a clean failure where the page shows
/// `mimic: error: ...`; and the first line of output the page shows is printed.
@Suite("documented command lines", .serialized)
struct DocumentedCommandTests {
    /// One command line of a page, with what the page says it prints.
    struct Example: CustomStringConvertible {
        var page: String
        var command: String
        var output: [String]
        var description: String { "\(page): \(command)" }
        var expectsError: Bool { output.first?.hasPrefix("mimic: error:") ?? false }
    }

    /// The command lines of the ```sh blocks of `page`: `$ `-prompted lines with the output
    /// below them, or, in blocks without prompts, every line (`\` continues a line).
    static func examples(in page: String) throws -> [Example] {
        let text = try String(contentsOf: MimicCLI.packageRoot.appendingPathComponent(page), encoding: .utf8)
        var examples: [Example] = []
        for block in text.components(separatedBy: "```sh\n").dropFirst() {
            guard let body = block.components(separatedBy: "```").first else { continue }
            var lines = body.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            // Join continuation lines.
            var joined: [String] = []
            while !lines.isEmpty {
                var line = lines.removeFirst()
                while line.hasSuffix("\\"), !lines.isEmpty {
                    line = String(line.dropLast()) + " " + lines.removeFirst().trimmingCharacters(in: .whitespaces)
                }
                joined.append(line)
            }
            let prompted = joined.contains { $0.hasPrefix("$ ") }
            for line in joined where !line.isEmpty {
                if prompted {
                    if line.hasPrefix("$ ") {
                        examples.append(Example(page: page, command: String(line.dropFirst(2)), output: []))
                    } else if !examples.isEmpty, examples[examples.count - 1].page == page {
                        examples[examples.count - 1].output.append(line)
                    }
                } else {
                    examples.append(Example(page: page, command: line, output: []))
                }
            }
        }
        return examples
    }

    /// Whether a command line runs `mimic` (directly, through `swift run`, `sudo`, or at the end
    /// of a pipe); other lines (`swift build`, the conformance runner) are not this test's.
    static func runsMimic(_ command: String) -> Bool {
        command.hasPrefix("mimic ") || command.hasPrefix("swift run mimic ") || command.hasPrefix("sudo mimic ")
            || command.contains("| mimic ") || command.contains("; mimic ")
    }

    /// A scratch folder that looks like the package: a copy of Examples (with the C sample
    /// plugin built into it) and links to the rest, so commands that write files write there.
    static func workspace() throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory()
        let root = MimicCLI.packageRoot
        let manager = FileManager.default
        try manager.copyItem(
            at: root.appendingPathComponent("Examples"), to: directory.url.appendingPathComponent("Examples"))
        for name in ["Tests", "Sources", "Scripts", "Docs"] {
            try manager.createSymbolicLink(
                at: directory.url.appendingPathComponent(name), withDestinationURL: root.appendingPathComponent(name))
        }
        let build = try MimicCLI.run(
            ["-c", "OUT=Examples/Plugins/c-kvstore SKIP_BPF=1 sh Examples/Plugins/c-kvstore/build.sh"],
            executable: URL(fileURLWithPath: "/bin/sh"), currentDirectory: directory.url)
        guard build.status == 0 else { throw HarnessError(description: "building the kvstore sample failed: \(build)") }
        return directory
    }

    @Test func everyDocumentedCommandLineRunsAsDocumented() throws {
        let mimic = try #require(MimicCLI.executable)
        let examples = try Self.examples(in: "README.md") + Self.examples(in: "Docs/CLI.md")
        let selected = examples.filter { Self.runsMimic($0.command) }
        #expect(selected.count >= 12, "found \(selected.count) command lines: \(selected)")
        let workspace = try Self.workspace()
        for example in selected {
            var command = example.command
            if command.hasPrefix("swift run mimic ") { command = String(command.dropFirst("swift run ".count)) }
            if command.hasPrefix("sudo ") {
                guard KernelBPF.isAvailable else { continue } // needs the kernel: CompareCommandTests says why
                command = String(command.dropFirst("sudo ".count))
            }
            let script = "PATH='\(mimic.deletingLastPathComponent().path)':\"$PATH\"; " + command
            let result = try MimicCLI.run(
                ["-c", script], executable: URL(fileURLWithPath: "/bin/sh"), currentDirectory: workspace.url)
            #expect(!result.crashed, "\(example)\n\(result)")
            if example.expectsError {
                #expect(result.status != 0 && result.stderr.contains("mimic: error:"), "\(example)\n\(result)")
            } else {
                #expect(result.status == 0, "\(example)\n\(result)")
            }
            if let first = example.output.first, !first.contains("...") {
                #expect((result.stdout + result.stderr).contains(first), "\(example): expected '\(first)'\n\(result)")
            }
        }
    }

    /// The command list of Docs/CLI.md is the one `mimic --help` prints.
    @Test func theCommandListIsTheBinarys() throws {
        let help = try MimicCLI.run(["--help"])
        let listed = try #require(
            help.stdout.components(separatedBy: "COMMANDS:\n").last?.components(separatedBy: "\n\n").first)
        let page = try String(contentsOf: MimicCLI.packageRoot.appendingPathComponent("Docs/CLI.md"), encoding: .utf8)
        #expect(page.contains(listed), "Docs/CLI.md's command list differs from `mimic --help`:\n\(listed)")
    }
}
