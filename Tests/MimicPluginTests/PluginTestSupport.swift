import Foundation
import MimicCore
import Synchronization

/// Builds the sample plugins and test libraries once per test run and says where they are.
enum PluginFixtures {
    /// The package root: this file is `<root>/Tests/MimicPluginTests/PluginTestSupport.swift`.
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Where builds go: git-ignored, kept between runs so Swift builds are incremental.
    static let buildRoot = packageRoot.appendingPathComponent(".build-plugin-tests", isDirectory: true)

    /// A folder for this run's C libraries.
    static let scratch: URL = {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("mimic-plugin-tests-\(getpid())", isDirectory: true)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static var examples: URL { packageRoot.appendingPathComponent("Examples/Plugins", isDirectory: true) }
    static var header: URL { packageRoot.appendingPathComponent("Sources/CMimicPlugin/include", isDirectory: true) }

    struct CommandFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `arguments` (looked up on PATH) and returns its output, or throws with it.
    @discardableResult
    static func run(_ arguments: [String], in directory: URL? = nil) throws -> String {
        let process = Foundation.Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CommandFailure(description: "\(arguments.joined(separator: " ")) failed:\n\(output)")
        }
        return output
    }

    /// Compiles C `source` into the shared library `name` (in `scratch`) with the toolchain's clang.
    static func cLibrary(_ name: String, source: String) throws -> String {
        let sourceURL = scratch.appendingPathComponent("\(name).c")
        let libraryURL = scratch.appendingPathComponent("lib\(name).so")
        try source.write(to: sourceURL, atomically: true, encoding: .utf8)
        try run(["clang", "-O1", "-fPIC", "-shared", "-I", header.path, sourceURL.path, "-o", libraryURL.path])
        return libraryURL.path
    }

    /// The C sample plugin (Examples/Plugins/c-kvstore), built by its build script.
    static let kvstore: Result<String, any Error> = Result {
        try run(
            ["sh", examples.appendingPathComponent("c-kvstore/build.sh").path],
            in: nil, environment: ["OUT": scratch.path, "SKIP_BPF": "1"])
        return scratch.appendingPathComponent("libkvstore.so").path
    }

    /// The Swift sample plugin (Examples/Plugins/swift-counter), built once with SwiftPM (debug).
    static let counter: Result<String, any Error> = Result {
        let scratchPath = buildRoot.appendingPathComponent("swift-counter").path
        try run([
            "swift", "build", "--package-path", examples.appendingPathComponent("swift-counter").path,
            "--scratch-path", scratchPath, "--product", "CounterPlugin",
        ])
        return scratchPath + "/debug/libCounterPlugin.so"
    }

    /// MimicLinux as a plugin (the package's MimicLinuxPlugin product): the one `swift test` built
    /// beside the test executable, or else built once with SwiftPM.
    static let linuxPlugin: Result<String, any Error> = Result {
        if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let sibling = URL(fileURLWithPath: executable).deletingLastPathComponent()
                .appendingPathComponent("libMimicLinuxPlugin.so").path
            if FileManager.default.fileExists(atPath: sibling) { return sibling }
        }
        let scratchPath = buildRoot.appendingPathComponent("linux").path
        try run([
            "swift", "build", "--package-path", packageRoot.path, "--scratch-path", scratchPath,
            "--product", "MimicLinuxPlugin",
        ])
        return scratchPath + "/debug/libMimicLinuxPlugin.so"
    }

    static func run(_ arguments: [String], in directory: URL?, environment: [String: String]) throws {
        // Run through /usr/bin/env: NAME=value arguments set the environment.
        try run(environment.map { "\($0.key)=\($0.value)" } + arguments, in: directory)
    }

    /// An eBPF object of an example or of this target's fixtures.
    static func object(_ relativePath: String) throws -> ObjectFile {
        try ObjectFile(contentsOf: packageRoot.appendingPathComponent(relativePath).path)
    }

    /// Plugin log messages are kept per process; keep the test output quiet.
    static let quietLogs: Void = { PluginLog.handler = { _ in } }()
}
