import Foundation
import MimicTestSupport
import Testing

/// What one run of the `mimic` executable did.
struct CLIResult: CustomStringConvertible {
    var status: Int32
    /// Whether the process was killed by a signal (a crash), rather than exiting.
    var crashed: Bool
    var stdout: String
    var stderr: String
    var stdoutBytes: [UInt8]

    var description: String { "exit \(status)\(crashed ? " (signal)" : "")\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// Errors of the test harness itself.
struct HarnessError: Error, CustomStringConvertible {
    var description: String
}

/// Finding and running the built `mimic` executable.
enum MimicCLI {
    /// The package root: this file is `<root>/Tests/MimicCLITests/CLITestSupport.swift`.
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent() // MimicCLITests
            .deletingLastPathComponent() // Tests
            .deletingLastPathComponent() // package root
    }

    /// The bpf_conformance vectors, in `../shared/conformance/bpf_conformance` beside the package
    /// (external data: see `ExternalTestData`).
    static var conformanceDirectory: URL { ExternalTestData.conformanceDirectory }

    /// The built `mimic`: `$MIMIC_EXECUTABLE` if set; else a `mimic` file in the build products
    /// directory holding this test bundle (searched upward from the test executable, so
    /// `swift test --scratch-path X` finds `X/debug/mimic`); else `<root>/.build/debug/mimic`.
    static let executable: URL? = {
        let fileManager = FileManager.default
        func isExecutable(_ url: URL) -> Bool {
            var isDirectory: ObjCBool = false
            return fileManager.fileExists(atPath: url.path, isDirectory: &isDirectory) && !isDirectory.boolValue
                && fileManager.isExecutableFile(atPath: url.path)
        }
        if let override = ProcessInfo.processInfo.environment["MIMIC_EXECUTABLE"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        var starts: [URL] = [Bundle.main.bundleURL]
        if let executable = Bundle.main.executableURL { starts.append(executable.deletingLastPathComponent()) }
        if let first = CommandLine.arguments.first {
            starts.append(URL(fileURLWithPath: first).deletingLastPathComponent())
        }
        for start in starts {
            var directory = start.standardizedFileURL
            for _ in 0..<6 {
                let candidate = directory.appendingPathComponent("mimic")
                if isExecutable(candidate) { return candidate }
                let parent = directory.deletingLastPathComponent()
                if parent.path == directory.path { break }
                directory = parent
            }
        }
        let fallback = packageRoot.appendingPathComponent(".build/debug/mimic")
        return isExecutable(fallback) ? fallback : nil
    }()

    /// Runs `mimic` (or `executable`) with `arguments`, feeding `stdin`, and captures its output.
    ///
    /// Output goes through temporary files, so large outputs never block on a full pipe.
    static func run(
        _ arguments: [String], stdin: String? = nil, executable: URL? = nil,
        currentDirectory: URL? = nil
    ) throws -> CLIResult {
        guard let binary = executable ?? self.executable else {
            throw HarnessError(
                description:
                    "cannot find the built mimic executable; build it with `swift build` or set MIMIC_EXECUTABLE")
        }
        let scratch = try TemporaryDirectory()
        let inputURL = scratch.url.appendingPathComponent("stdin")
        let outURL = scratch.url.appendingPathComponent("stdout")
        let errURL = scratch.url.appendingPathComponent("stderr")
        try Data((stdin ?? "").utf8).write(to: inputURL)
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)

        let process = Foundation.Process()
        process.executableURL = binary
        process.arguments = arguments
        if let currentDirectory { process.currentDirectoryURL = currentDirectory }
        let input = try FileHandle(forReadingFrom: inputURL)
        let output = try FileHandle(forWritingTo: outURL)
        let error = try FileHandle(forWritingTo: errURL)
        defer {
            try? input.close()
            try? output.close()
            try? error.close()
        }
        process.standardInput = input
        process.standardOutput = output
        process.standardError = error
        try process.run()
        process.waitUntilExit()

        let outBytes = [UInt8](try Data(contentsOf: outURL))
        return CLIResult(
            status: process.terminationStatus,
            crashed: process.terminationReason == .uncaughtSignal,
            stdout: String(decoding: outBytes, as: UTF8.self),
            stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self),
            stdoutBytes: outBytes)
    }
}

/// A fresh temporary directory, removed when the value is released.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("mimic-cli-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// Writes `text` to a file `name` in the directory and returns its path.
    func file(_ name: String, _ text: String) throws -> String {
        try file(name, bytes: Array(text.utf8))
    }

    /// Writes `bytes` to a file `name` in the directory and returns its path.
    func file(_ name: String, bytes: [UInt8]) throws -> String {
        let fileURL = url.appendingPathComponent(name)
        try Data(bytes).write(to: fileURL)
        return fileURL.path
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// The sections of a bpf_conformance vector file that the CLI tests use.
struct ConformanceVector: CustomStringConvertible {
    var name: String
    /// The `-- asm` section.
    var assembly: String
    /// The `-- mem` section as one line of hex, or "" when absent.
    var memoryHex: String
    /// The `-- result` value.
    var result: UInt64

    var description: String { name }

    /// Reads `<conformance directory>/<name>.data`.
    init(named name: String) throws {
        self.name = name
        let url = MimicCLI.conformanceDirectory.appendingPathComponent("\(name).data")
        let text = try String(contentsOf: url, encoding: .utf8)
        var sections: [String: [String]] = [:]
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("-- ") {
                current = String(line.dropFirst(3)).trimmingCharacters(in: .whitespaces)
                sections[current ?? ""] = []
            } else if let current {
                sections[current, default: []].append(String(line))
            }
        }
        guard let assembly = sections["asm"], let resultLines = sections["result"],
            let resultText = resultLines.first(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty })
        else {
            throw HarnessError(description: "\(name).data has no -- asm or -- result section")
        }
        self.assembly = assembly.joined(separator: "\n") + "\n"
        memoryHex = (sections["mem"] ?? []).joined(separator: " ").trimmingCharacters(in: .whitespaces)
        let trimmed = resultText.trimmingCharacters(in: .whitespaces)
        let parsed = trimmed.hasPrefix("0x") ? UInt64(trimmed.dropFirst(2), radix: 16) : UInt64(trimmed)
        guard let parsed else { throw HarnessError(description: "\(name).data: bad result '\(trimmed)'") }
        result = parsed
    }
}

/// Expects a clean failure: exit code `status` (1 runtime, 2 usage), not a signal, and a
/// `mimic: error:` message on standard error containing each of `fragments`.
func expectFailure(
    _ result: CLIResult, status: Int32, mentioning fragments: [String],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(!result.crashed, "mimic crashed: \(result)", sourceLocation: sourceLocation)
    #expect(result.status == status, "\(result)", sourceLocation: sourceLocation)
    #expect(result.stderr.hasPrefix("mimic: error: "), "\(result)", sourceLocation: sourceLocation)
    for fragment in fragments {
        #expect(
            result.stderr.contains(fragment), "expected '\(fragment)' in stderr: \(result)",
            sourceLocation: sourceLocation)
    }
}
