import Foundation
import MimicTestSupport
import Testing

/// `mimic bpf-conformance-plugin`, driven as the bpf_conformance runner drives it.
@Suite("bpf_conformance plugin")
struct ConformancePluginTests {
    /// Runs one vector: assembles it with `mimic asm`, pipes the hex into the plugin with the
    /// memory as the first argument, and compares with `-- result`.
    // External data (../shared): skipped with a message when absent, a failure when required (CI).
    @Test(
        "conformance vectors",
        .enabled(if: ExternalTestData.runConformance, Comment(rawValue: ExternalTestData.conformanceSkipMessage)),
        arguments: [
            "add", "mem-len", "ldxh", "call_unwind_fail", "lock_fetch_add", "call_local", "jeq-imm", "stxdw",
        ])
    func vector(_ name: String) throws {
        let vector = try ConformanceVector(named: name)
        let hex = try MimicCLI.run(["asm", "-"], stdin: vector.assembly)
        try #require(hex.status == 0, "\(hex)")
        let result = try MimicCLI.run(["bpf-conformance-plugin", vector.memoryHex], stdin: hex.stdout)
        #expect(result.status == 0, "\(name): \(result)")
        #expect(result.stdout == String(vector.result, radix: 16) + "\n", "\(name): \(result)")
    }

    @Test("memory as spaced or packed hex, or absent")
    func memoryForms() throws {
        let program = "61 10 00 00 00 00 00 00 95 00 00 00 00 00 00 00" // ldxw %r0, [%r1+0]; exit
        for memory in ["aa bb cc dd", "aabbccdd", "0xaa 0xbb 0xcc 0xdd"] {
            let result = try MimicCLI.run(["bpf-conformance-plugin", memory], stdin: program)
            #expect(result.stdout == "ddccbbaa\n", "\(memory): \(result)")
        }
        let noMemory = "bf 20 00 00 00 00 00 00\n95 00 00 00 00 00 00 00" // mov %r0, %r2; exit
        for arguments in [["bpf-conformance-plugin"], ["bpf-conformance-plugin", ""]] {
            let result = try MimicCLI.run(arguments, stdin: noMemory)
            #expect(result.stdout == "0\n", "\(arguments): \(result)")
        }
    }

    @Test("command lines as the runner builds them: spaced memory, options in one argument")
    func runnerCommandLines() throws {
        let program = "61 10 00 00 00 00 00 00 95 00 00 00 00 00 00 00" // ldxw %r0, [%r1+0]; exit
        let spaced = try MimicCLI.run(["bpf-conformance-plugin", "aa  bb  cc  dd  ", ""], stdin: program + "\n")
        #expect(spaced.status == 0, "\(spaced)")
        #expect(spaced.stdout == "ddccbbaa\n")
        let options = try MimicCLI.run(["bpf-conformance-plugin", "00 00 00 01", "--debug "], stdin: program)
        #expect(options.stdout == "1000000\n", "\(options)")
        #expect(options.stderr.contains("ldxw %r0, [%r1]"))
        let bad = try MimicCLI.run(["bpf-conformance-plugin", "", "--debug --jit"], stdin: program)
        expectFailure(bad, status: 2, mentioning: ["unknown option '--jit'"])
    }

    @Test("--debug traces on standard error only")
    func debugTrace() throws {
        let result = try MimicCLI.run(
            ["bpf-conformance-plugin", "01 02", "--debug"],
            stdin: "bf 20 00 00 00 00 00 00 95 00 00 00 00 00 00 00")
        #expect(result.status == 0)
        #expect(result.stdout == "2\n")
        #expect(result.stderr.contains("0: mov %r0, %r2"))
    }

    @Test("started as mimic-bpf-conformance-plugin through a link")
    func alternateName() throws {
        let binary = try #require(MimicCLI.executable)
        let directory = try TemporaryDirectory()
        let link = directory.url.appendingPathComponent("mimic-bpf-conformance-plugin")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: binary)
        let result = try MimicCLI.run(
            ["00 00 00 2a"], stdin: "61 10 00 00 00 00 00 00 95 00 00 00 00 00 00 00",
            executable: link)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "2a000000\n")
    }

    @Test("the wrapper script runs the plugin")
    func wrapperScript() throws {
        let binary = try #require(MimicCLI.executable)
        let script = MimicCLI.packageRoot.appendingPathComponent("Scripts/mimic-bpf-conformance-plugin")
        // The script uses $MIMIC when there is no `mimic` beside it; set it through a shell.
        let result = try MimicCLI.run(
            ["-c", "MIMIC='\(binary.path)' exec '\(script.path)' \"$@\"", "sh", ""],
            stdin: "b7 00 00 00 05 00 00 00 95 00 00 00 00 00 00 00",
            executable: URL(fileURLWithPath: "/bin/sh"))
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "5\n")
    }
}
