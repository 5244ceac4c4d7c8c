import Foundation
import Testing

/// The happy paths of `mimic`, run as a user runs the built executable.
@Suite("mimic commands")
struct CommandTests {
    /// A program with a loop, a forward jump to a label, an `lddw` and a helper call.
    static let program = """
        # sums 1..5, then adds a 64-bit constant's low byte
        mov %r0, 0
        mov %r1, 5
        loop:
        add %r0, %r1
        sub %r1, 1
        jne %r1, 0, loop
        lddw %r2, 0x1122334455667788
        and %r2, 0xff
        add %r0, %r2
        call 2          # no_op: clobbers r0 with 0
        mov %r0, 15
        exit
        """

    @Test("--version and help")
    func versionAndHelp() throws {
        let version = try MimicCLI.run(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout == "mimic 0.1.0\n")

        for arguments in [["--help"], ["help"], ["-h"]] {
            let help = try MimicCLI.run(arguments)
            #expect(help.status == 0)
            for command in ["run-raw", "asm", "disasm", "bpf-conformance-plugin"] {
                #expect(help.stdout.contains(command), "\(arguments): \(help)")
            }
        }

        for command in ["run-raw", "asm", "disasm", "bpf-conformance-plugin"] {
            let help = try MimicCLI.run([command, "--help"])
            #expect(help.status == 0)
            #expect(help.stdout.contains("USAGE: mimic \(command)"))
            #expect(help.stdout.contains("EXAMPLES:"))
            let viaHelp = try MimicCLI.run(["help", command])
            #expect(viaHelp.stdout == help.stdout)
        }
    }

    @Test("asm then disasm round-trips through files")
    func asmDisasmRoundTrip() throws {
        let directory = try TemporaryDirectory()
        let source = try directory.file("prog.s", Self.program)
        let binary = directory.path("prog.bin")

        let assembled = try MimicCLI.run(["asm", source, "-o", binary])
        #expect(assembled.status == 0, "\(assembled)")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: binary)))
        #expect(bytes.count == 12 * 8) // 11 instructions; lddw takes two slots
        #expect(bytes.first == 0xb7) // mov %r0, imm

        let listing = try MimicCLI.run(["disasm", binary])
        #expect(listing.status == 0, "\(listing)")
        #expect(listing.stdout.contains("lddw %r2, 0x1122334455667788"))
        #expect(listing.stdout.contains("# 5")) // slot numbers as comments

        // The listing assembles back to the same bytes.
        let relisted = try directory.file("relisted.s", listing.stdout)
        let reassembled = try MimicCLI.run(["asm", relisted, "--output=\(directory.path("again.bin"))"])
        #expect(reassembled.status == 0, "\(reassembled)")
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: directory.path("again.bin")))) == bytes)

        // Hex on stdout by default: one slot per line, and disasm reads hex text as well.
        let hex = try MimicCLI.run(["asm", source])
        #expect(hex.stdout.split(separator: "\n").count == 12)
        #expect(hex.stdout.hasPrefix("b7 00 00 00 00 00 00 00\n"))
        let fromHex = try MimicCLI.run(["disasm", "-"], stdin: hex.stdout)
        #expect(fromHex.stdout == listing.stdout)
    }

    @Test("asm reads standard input")
    func asmFromStdin() throws {
        let result = try MimicCLI.run(["asm", "-"], stdin: "mov %r0, 42\nexit\n")
        #expect(result.status == 0)
        #expect(result.stdout == "b7 00 00 00 2a 00 00 00\n95 00 00 00 00 00 00 00\n")
    }

    @Test("run-raw on assembler text, with memory")
    func runRawAssembler() throws {
        let directory = try TemporaryDirectory()
        let source = try directory.file("prog.s", Self.program)
        let result = try MimicCLI.run(["run-raw", source])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("r0 = 0xf (15)"))
        #expect(result.stdout.contains("instructions executed: 23"))

        let memory = try directory.file("len.txt", "mov %r0, %r2\nldxb %r3, [%r1+1]\nadd %r0, %r3\nexit\n")
        let withMemory = try MimicCLI.run(["run-raw", memory, "--asm", "--mem", "aa 10 cc"])
        #expect(withMemory.status == 0, "\(withMemory)")
        #expect(withMemory.stdout.hasPrefix("r0 = 0x13 (19)"))

        let memoryFile = try directory.file("packet.bin", bytes: [0xAA, 0x20])
        let fromFile = try MimicCLI.run(["run-raw", memory, "--asm", "--mem-file", memoryFile])
        #expect(fromFile.stdout.hasPrefix("r0 = 0x22 (34)"), "\(fromFile)")
    }

    @Test("run-raw on hex and binary bytecode")
    func runRawBytecode() throws {
        let directory = try TemporaryDirectory()
        // mov %r0, -1 ; exit
        let hex = try directory.file("prog.hex", "0xb7 0x00 0x00 0x00 0xff 0xff 0xff 0xff\n95 00 00 00 00 00 00 00\n")
        let result = try MimicCLI.run(["run-raw", hex])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("r0 = 0xffffffffffffffff (18446744073709551615, signed -1)"))

        let binary = try directory.file("prog.bin", bytes: [0xb7, 0, 0, 0, 7, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
        let fromBinary = try MimicCLI.run(["run-raw", binary])
        #expect(fromBinary.stdout.hasPrefix("r0 = 0x7 (7)\n"), "\(fromBinary)")
    }

    @Test("run-raw --json prints a JSON object")
    func runRawJSON() throws {
        let directory = try TemporaryDirectory()
        let source = try directory.file("prog.s", Self.program)
        for extra in [[], ["--trace"]] {
            let result = try MimicCLI.run(["run-raw", source, "--json"] + extra)
            #expect(result.status == 0, "\(result)")
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            #expect((object["r0"] as? NSNumber)?.uint64Value == 15)
            #expect(object["r0_hex"] as? String == "0xf")
            #expect((object["instructions"] as? NSNumber)?.uint64Value == 23)
            if !extra.isEmpty { #expect(result.stderr.contains("jne %r1, 0, -3")) } // trace on stderr
        }
    }

    @Test("run-raw --trace shows each instruction and changed registers")
    func runRawTrace() throws {
        let result = try MimicCLI.run(["run-raw", "-", "--asm", "--trace"], stdin: "mov %r0, 7\nadd %r0, 1\nexit\n")
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("0: mov %r0, 7") && $0.hasSuffix("r0=0x7") })
        #expect(lines.contains { $0.hasPrefix("1: add %r0, 1") && $0.hasSuffix("r0=0x8") })
        #expect(lines.contains("2: exit"))
        #expect(result.stdout.contains("r0 = 0x8 (8)"))
    }

    @Test("the bundled example computes an IPv4 header checksum")
    func checksumExample() throws {
        let example = MimicCLI.packageRoot.appendingPathComponent("Examples/checksum.s").path
        let header = "45 00 00 73 00 00 40 00 40 11 00 00 c0 a8 00 01 c0 a8 00 c7"
        let result = try MimicCLI.run(["run-raw", example, "--mem", header])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("r0 = 0xb861 (47201)"))
        // A header carrying the right checksum sums to zero; an odd length is padded.
        let verified = try MimicCLI.run([
            "run-raw", example, "--mem", header.replacingOccurrences(of: "11 00 00", with: "11 b8 61"), "--json",
        ])
        #expect(verified.stdout.hasPrefix("{\"r0\": 0,"), "\(verified)")
        let odd = try MimicCLI.run(["run-raw", example, "--mem", "010203"])
        #expect(odd.stdout.hasPrefix("r0 = 0xfbfd (64509)"), "\(odd)")
    }
}
