import Foundation
import Testing

/// Every kind of bad input ends with a clear message and exit code 1 (runtime) or 2 (usage),
/// never a crash.
@Suite("bad input")
struct BadInputTests {
    @Test("command-line mistakes exit 2 with a usage hint")
    func usageMistakes() throws {
        let cases: [(arguments: [String], fragment: String)] = [
            (["frobnicate"], "unknown command 'frobnicate'"),
            (["--frobnicate"], "unknown option '--frobnicate'"),
            (["run-raw", "x.s", "--bogus"], "unknown option '--bogus' for 'run-raw'"),
            (["run-raw", "x.s", "-q"], "unknown option '-q' for 'run-raw'"),
            (["run-raw"], "missing argument FILE for 'run-raw'"),
            (["run-raw", "x.s", "--limit"], "option '--limit' needs a value"),
            (["run-raw", "x.s", "--limit", "lots"], "--limit expects a whole number"),
            (["run-raw", "x.s", "--json=yes"], "'--json' is a flag"),
            (["run-raw", "x.s", "--mem", "00", "--mem-file", "m"], "either --mem or --mem-file"),
            (["asm"], "missing argument FILE for 'asm'"),
            (["asm", "a.s", "b.s"], "unexpected argument 'b.s'"),
            (["disasm", "a", "--output", "x"], "unknown option '--output' for 'disasm'"),
            (["bpf-conformance-plugin", "00", "--jit"], "unknown option '--jit'"),
            (["help", "nothing"], "unknown command 'nothing'"),
        ]
        for (arguments, fragment) in cases {
            let result = try MimicCLI.run(arguments)
            expectFailure(result, status: 2, mentioning: [fragment])
            #expect(result.stderr.contains("mimic") && result.stderr.contains("--help"), "\(arguments): \(result)")
        }
        let nothing = try MimicCLI.run([])
        #expect(nothing.status == 2 && nothing.stderr.contains("USAGE"), "\(nothing)")
    }

    @Test("missing and unreadable files")
    func missingFile() throws {
        let directory = try TemporaryDirectory()
        for command in ["run-raw", "asm", "disasm"] {
            let result = try MimicCLI.run([command, directory.path("nope.s")])
            expectFailure(result, status: 1, mentioning: ["cannot read", "nope.s", "no such file"])
        }
        let folder = try MimicCLI.run(["disasm", directory.url.path])
        expectFailure(folder, status: 1, mentioning: ["is a directory"])
        let source = try directory.file("p.s", "exit\n")
        let badMemory = try MimicCLI.run(["run-raw", source, "--mem-file", directory.path("nomem")])
        expectFailure(badMemory, status: 1, mentioning: ["nomem"])
        let badOutput = try MimicCLI.run(["asm", source, "-o", directory.path("no/such/dir/out.bin")])
        expectFailure(badOutput, status: 1, mentioning: ["cannot write", "out.bin"])
    }

    @Test("malformed hex: plugin stdin, plugin memory, --mem, hex files")
    func malformedHex() throws {
        let notHex = try MimicCLI.run(["bpf-conformance-plugin", ""], stdin: "b7 00 zz 00 00 00 00 00")
        expectFailure(notHex, status: 1, mentioning: ["malformed hex", "standard input", "'z'"])
        let oddDigits = try MimicCLI.run(["bpf-conformance-plugin"], stdin: "b7 0 00 00")
        expectFailure(oddDigits, status: 1, mentioning: ["odd number of digits"])
        let empty = try MimicCLI.run(["bpf-conformance-plugin"], stdin: "  \n")
        expectFailure(empty, status: 1, mentioning: ["no program"])
        let badMemory = try MimicCLI.run(["bpf-conformance-plugin", "00 1g"], stdin: "95 00 00 00 00 00 00 00")
        expectFailure(badMemory, status: 1, mentioning: ["memory argument", "'g'"])
        let badMem = try MimicCLI.run(["run-raw", "-", "--asm", "--mem", "0x"], stdin: "exit\n")
        expectFailure(badMem, status: 1, mentioning: ["--mem", "no digits"])
        let elf = try MimicCLI.run(["bpf-conformance-plugin", "--elf"], stdin: "")
        expectFailure(elf, status: 1, mentioning: ["ELF"])
    }

    @Test("truncated bytecode (not a multiple of 8 bytes)")
    func truncatedBytecode() throws {
        let directory = try TemporaryDirectory()
        let binary = try directory.file("short.bin", bytes: [0x95, 0, 0, 0, 0, 0, 0, 0, 0xb7, 0])
        for command in ["run-raw", "disasm"] {
            let result = try MimicCLI.run([command, binary])
            expectFailure(
                result, status: 1, mentioning: ["short.bin", "10 bytes", "not a whole number of 8-byte instructions"])
        }
        let plugin = try MimicCLI.run(["bpf-conformance-plugin"], stdin: "95 00 00 00 00 00 00 00 b7")
        expectFailure(plugin, status: 1, mentioning: ["9 bytes"])
        let empty = try MimicCLI.run(["disasm", try directory.file("empty.bin", bytes: [])])
        expectFailure(empty, status: 1, mentioning: ["empty"])
        let elfPath = try directory.file("prog.o", bytes: [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0])
        expectFailure(try MimicCLI.run(["disasm", elfPath]), status: 1, mentioning: ["prog.o", "ELF header"])
        expectFailure(
            try MimicCLI.run(["run-raw", elfPath]), status: 1,
            mentioning: ["ELF objects are not supported yet by run-raw"])
    }

    @Test("unknown opcode")
    func unknownOpcode() throws {
        let program = "ff 00 00 00 00 00 00 00 95 00 00 00 00 00 00 00"
        let plugin = try MimicCLI.run(["bpf-conformance-plugin"], stdin: program)
        expectFailure(plugin, status: 1, mentioning: ["instruction 0", "unknown opcode 0xff"])
        let run = try MimicCLI.run(["run-raw", "-"], stdin: program)
        expectFailure(run, status: 1, mentioning: ["cannot load", "unknown opcode 0xff"])
        // disasm shows what it cannot decode instead of failing.
        let listing = try MimicCLI.run(["disasm", "-"], stdin: program)
        #expect(listing.status == 0, "\(listing)")
        #expect(listing.stdout.contains(".invalid"))
    }

    @Test("assembler errors name the file and line")
    func assemblerError() throws {
        let directory = try TemporaryDirectory()
        let source = try directory.file("broken.s", "mov %r0, 1\n# fine so far\nfrobnicate %r0\nexit\n")
        for command in [["asm", source], ["run-raw", source]] {
            let result = try MimicCLI.run(command)
            expectFailure(result, status: 1, mentioning: ["broken.s:3:", "unknown mnemonic 'frobnicate'"])
        }
        let label = try MimicCLI.run(["asm", "-"], stdin: "ja nowhere\nexit\n")
        expectFailure(label, status: 1, mentioning: ["<stdin>:1:", "undefined label 'nowhere'"])
        let binaryAsText = try MimicCLI.run(["run-raw", "-", "--asm"], stdin: "")
        expectFailure(binaryAsText, status: 1, mentioning: ["no instructions"])
        let textAsBytecode = try MimicCLI.run(["run-raw", try directory.file("prog.txt", "mov %r0, 1\nexit\n")])
        expectFailure(textAsBytecode, status: 1, mentioning: ["pass --asm"])
    }

    @Test("execution faults and budgets")
    func executionFault() throws {
        let nullLoad = try MimicCLI.run(["run-raw", "-", "--asm"], stdin: "mov %r1, 0\nldxw %r0, [%r1+0]\nexit\n")
        expectFailure(
            nullLoad, status: 1,
            mentioning: ["execution failed", "instruction 1", "read of 4 bytes at", "ldxw %r0, [%r1]"])
        let pluginFault = try MimicCLI.run(
            ["bpf-conformance-plugin"], stdin: "61 10 00 00 00 00 00 00 95 00 00 00 00 00 00 00")
        expectFailure(pluginFault, status: 1, mentioning: ["invalid memory access"])
        #expect(pluginFault.stdout.isEmpty)

        let loop = try MimicCLI.run(["run-raw", "-", "--asm", "--limit", "1000"], stdin: "loop:\nja loop\n")
        expectFailure(loop, status: 1, mentioning: ["budget exhausted after 1000", "--limit"])
        let tracedLoop = try MimicCLI.run(
            ["run-raw", "-", "--asm", "--limit", "5", "--trace"], stdin: "loop:\nja loop\n")
        expectFailure(tracedLoop, status: 1, mentioning: ["budget exhausted after 5"])

        let divide = try MimicCLI.run(["run-raw", "-", "--asm", "--mem", "00"], stdin: "mov %r1, 0\ncall 1\nexit\n")
        expectFailure(divide, status: 1, mentioning: ["memfrob"])
    }
}
