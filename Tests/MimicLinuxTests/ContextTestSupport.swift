import Foundation
import MimicCore
import MimicJSON
import MimicLinux
import MimicMemory

/// Where the context examples are, and small helpers for context and helper tests.
enum ContextTestSupport {
    /// The package root (this file is `<root>/Tests/MimicLinuxTests/ContextTestSupport.swift`).
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent() // MimicLinuxTests
            .deletingLastPathComponent() // Tests
            .deletingLastPathComponent() // package root
    }

    /// One context file of each type (`xdp.json`, `skb.json`, `generic.json`, `captured.json`).
    static var contextsDirectory: URL {
        packageRoot.appendingPathComponent("Tests/MimicLinuxTests/Fixtures/contexts", isDirectory: true)
    }

    /// The JSON code blocks of `Docs/Contexts.md`, the description of the format.
    static func markdownExamples() throws -> [String] {
        let text = try String(contentsOf: packageRoot.appendingPathComponent("Docs/Contexts.md"), encoding: .utf8)
        var blocks: [String] = []
        var current: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line.hasPrefix("```json") {
                current = []
                continue
            }
            if current != nil, line.hasPrefix("```") {
                blocks.append(current!.joined(separator: "\n"))
                current = nil
                continue
            }
            current?.append(line)
        }
        return blocks
    }

    /// A VM with the Linux emulator and a program assembled from `source`.
    static func load(_ source: String, configuration: LinuxConfiguration = LinuxConfiguration()) throws -> (VM, Program)
    {
        let vm = VM(emulator: LinuxEmulator(configuration: configuration))
        return (vm, try vm.load(Assembler.assemble(source)))
    }

    /// Runs `source` with `context`; returns R0 and the process.
    @discardableResult
    static func run(
        _ source: String, context: (any Context)? = nil,
        configuration: LinuxConfiguration = LinuxConfiguration()
    ) throws -> (UInt64, MimicCore.Process) {
        let (vm, program) = try load(source, configuration: configuration)
        let process = try vm.makeProcess(for: program, context: context)
        return (try process.run(), process)
    }

    /// Assembler lines that store `bytes` on the stack at `[r10 - offset]` onwards, one byte each.
    static func storeBytes(_ bytes: [UInt8], at offset: Int) -> String {
        bytes.enumerated().map { "stb [%r10-\(offset - $0.offset)], \($0.element)" }.joined(separator: "\n")
    }

    /// A 14-byte Ethernet header + IPv4/UDP packet: 10.0.0.1:1234 -> 10.0.0.2:53, payload "abcd".
    static let udpPacket: [UInt8] = Array(
        Base64.decode("AQIDBAUGBgUEAwIBCABFAAAgAAAAAEARAAAKAAABCgAAAgTSADUADAAAYWJjZA==")!)
}
