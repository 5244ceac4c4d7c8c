import Foundation
import MimicPcap
import Testing

/// Edges of the command line a new user trips on (issue 13, items 8 to 10 and 14).
@Suite("mimic command-line edges")
struct CommandLineEdgeTests {
    /// Runs `script` with `sh -c`, `$MIMIC` naming the built executable.
    static func shell(_ script: String) throws -> CLIResult {
        let mimic = try #require(MimicCLI.executable)
        return try MimicCLI.run(
            ["-c", "MIMIC='\(mimic.path)'; " + script], executable: URL(fileURLWithPath: "/bin/sh"))
    }

    @Test func outDashWritesTheCaptureToStandardOutputAndTheReportToStandardError() throws {
        let result = try MimicCLI.run([
            "run", Examples.firewall, "--pcap", Examples.traffic, "--map", Examples.blocklist, "--out", "-",
        ])
        #expect(result.status == 0, "\(result)")
        let packets = try PcapReader.readAll(result.stdoutBytes)
        #expect(packets.count == 15, "standard output is the capture of the passed packets")
        #expect(
            result.stderr.contains("XDP_PASS") && result.stderr.contains("wrote 15 packets to -"), "\(result.stderr)")
    }

    @Test func outRefusesTheInputCaptureAndDirectories() throws {
        let directory = try TemporaryDirectory()
        let original = try Data(contentsOf: URL(fileURLWithPath: Examples.traffic))
        let copy = try directory.file("traffic.pcap", bytes: [UInt8](original))
        let same = try MimicCLI.run(["run", Examples.firewall, "--pcap", copy, "--out", copy])
        expectFailure(same, status: 2, mentioning: ["is the input capture"])
        // The same file by another spelling.
        let other = try MimicCLI.run([
            "run", Examples.firewall, "--pcap", copy, "--out", directory.url.path + "/./traffic.pcap",
        ])
        expectFailure(other, status: 2, mentioning: ["is the input capture"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == original, "the capture is untouched")

        let folder = try MimicCLI.run([
            "run", Examples.firewall, "--pcap", Examples.traffic, "--out", directory.url.path,
        ])
        expectFailure(folder, status: 1, mentioning: ["is a directory"])
        #expect(!folder.stderr.contains("does not exist"), "\(folder)")
    }

    @Test func traceJSONIsJSONLinesAndErrorsAreJSONToo() throws {
        let result = try MimicCLI.run(["trace", Examples.firewall, "--pcap", Examples.traffic, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 20, "one line per packet")
        for (index, line) in lines.enumerated() {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["input"] as? String == "packet \(index + 1)")
            #expect((object?["steps"] as? [Any])?.isEmpty == false)
        }
        let help = try MimicCLI.run(["trace", "--help"])
        #expect(help.stdout.contains("JSON Lines"), "\(help.stdout)")

        let failed = try MimicCLI.run(["trace", Examples.firewall, "--pcap", "/nonexistent.pcap", "--json"])
        #expect(failed.status == 1)
        let error = try JSONSerialization.jsonObject(with: Data(failed.stdout.utf8)) as? [String: Any]
        #expect((error?["error"] as? String)?.contains("no such file") == true, "\(failed)")
        #expect(error?["status"] as? Int == 1)
        let usage = try MimicCLI.run(["run", Examples.firewall, "--cpus", "zero", "--json"])
        #expect(usage.status == 2)
        let usageError = try JSONSerialization.jsonObject(with: Data(usage.stdout.utf8)) as? [String: Any]
        #expect(usageError?["status"] as? Int == 2, "\(usage)")
    }

    @Test func pipesAndDevNullAreInputFiles() throws {
        let piped = try Self.shell("\"$MIMIC\" asm Examples/checksum.s -o - | \"$MIMIC\" run-raw /dev/stdin --mem 0102")
        #expect(piped.status == 0, "\(piped)")
        #expect(piped.stdout.contains("instructions executed"), "\(piped)")
        let directory = try TemporaryDirectory()
        let source = try directory.file("p.s", "mov %r0, %r2\nexit\n")
        let empty = try MimicCLI.run(["run-raw", source, "--mem-file", "/dev/null"])
        #expect(empty.status == 0, "\(empty)")
        #expect(empty.stdout.hasPrefix("r0 = 0x0 (0)"), "\(empty)")
    }

    @Test func aTooLargeFileIsRefusedBeforeItIsRead() throws {
        let directory = try TemporaryDirectory()
        let source = try directory.file("p.s", "exit\n")
        let big = directory.path("big.bin")
        #expect(FileManager.default.createFile(atPath: big, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: big))
        try handle.truncate(atOffset: 300 << 20) // sparse: nothing is written
        try handle.close()
        let clock = ContinuousClock()
        var result: CLIResult?
        let elapsed = try clock.measure { result = try MimicCLI.run(["run-raw", source, "--mem-file", big]) }
        expectFailure(
            try #require(result), status: 1, mentioning: ["big.bin is 314572800 bytes", "limited to 268435456 bytes"])
        #expect(elapsed < .seconds(5), "refused without reading 300 MB")
    }

    /// `--engine` picks the engine; every engine gives the same result, a wrong name exits 2.
    @Test func engineOptionRunsEveryEngineAlike() throws {
        var outputs: [String] = []
        for engine in ["interpreter", "jit", "auto"] {
            let result = try MimicCLI.run(
                ["run-raw", Examples.path("checksum.s"), "--mem", "01 02 03 04", "--engine", engine])
            #expect(result.status == 0, "\(engine): \(result)")
            outputs.append(result.stdout)
        }
        #expect(Set(outputs).count == 1, "\(outputs)")
        let wrong = try MimicCLI.run(["run-raw", Examples.path("checksum.s"), "--engine", "fast"])
        expectFailure(wrong, status: 2, mentioning: ["--engine expects interpreter, jit or auto", "'fast'"])
    }

    @Test func helpOfHelpAndDisasmOfText() throws {
        let help = try MimicCLI.run(["help", "--help"])
        #expect(help.status == 0, "\(help)")
        #expect(help.stdout.contains("USAGE: mimic COMMAND"))
        let text = try MimicCLI.run(["disasm", Examples.path("checksum.s")])
        expectFailure(text, status: 1, mentioning: ["looks like text", "mimic asm"])
        #expect(!text.stdout.contains(".invalid"))
    }

    @Test func debuggerReportsFaultsExitsAndRegionsInWords() throws {
        let fault = try DebugCommandTests.debug(
            ["continue", "bt", "regs"],
            [MimicCLI.packageRoot.appendingPathComponent("Tests/MimicCLITests/Fixtures/unknown_helper.o").path])
        #expect(fault.status == 0, "\(fault)")
        #expect(!fault.stdout.contains("unknownHelper("), "no raw enum: \(fault.stdout)")
        #expect(fault.stdout.contains("call to unknown or unsupported helper #212"), "\(fault.stdout)")
        #expect(fault.stdout.contains("#0  in stack_of_open, unknown_helper.c:9 at instruction 0"), "\(fault.stdout)")
        #expect(fault.stdout.contains("pc   0 (the faulting instruction)"), "\(fault.stdout)")

        let exit = try DebugCommandTests.debug(
            ["break 44", "continue", "regs", "continue", "regs"],
            [Examples.firewall, "--pcap", Examples.traffic, "--packet", "4", "--map", Examples.blocklist])
        #expect(exit.status == 0, "\(exit)")
        #expect(exit.stdout.contains("-> xdp_md packet+"), "\(exit.stdout)")
        #expect(!exit.stdout.contains("packet 4 packet"), "\(exit.stdout)")
        #expect(
            exit.stdout.components(separatedBy: "breakpoint 1 at instruction 44").count == 3,
            "set once, hit once, one line each")
        #expect(!exit.stdout.contains("stopped at instruction 44"), "\(exit.stdout)")
        #expect(exit.stdout.contains("pc   none (the program has exited)"), "\(exit.stdout)")
    }

    @Test func listingsNameHelpersAndMapsAndTracesShowReturns() throws {
        let disasm = try MimicCLI.run(["disasm", Examples.firewall])
        #expect(disasm.stdout.contains("call bpf_map_lookup_elem#1"), "\(disasm.stdout)")
        #expect(!disasm.stdout.contains("call 1\n"))
        let debug = try DebugCommandTests.debug(
            ["break 43", "continue"], [Examples.firewall, "--pcap", Examples.traffic, "--packet", "4"])
        #expect(debug.stdout.contains("=> 43: call bpf_map_lookup_elem#1"), "\(debug.stdout)")
        let trace = try MimicCLI.run([
            "trace", Examples.path("packet_counter.o"), "--pcap", Examples.traffic, "--packet", "1",
        ])
        #expect(trace.status == 0, "\(trace)")
        #expect(trace.stdout.components(separatedBy: "-> ip_protocol\n").count == 2, "entered once: \(trace.stdout)")
        #expect(trace.stdout.contains("<- count_packets\n"), "\(trace.stdout)")
        #expect(!trace.stdout.contains("-> count_packets"), "\(trace.stdout)")
    }

    /// The blocked SYN of Examples/contexts/blocked_syn.json, as hex.
    static let blockedSYN =
        "02 00 00 00 00 02 02 00 00 00 00 01 08 00 45 00 00 28 00 04 40 00 40 06 6e 88 c0 00 02 42 0a 00 00 02 7a 69 00 16 00 00 03 ec 00 00 00 00 50 02 ff ff 65 33 00 00"

    @Test func runTakesAPacketInHexAndContextFilesTakeHex() throws {
        let packet = try MimicCLI.run([
            "run", Examples.firewall, "--packet", Self.blockedSYN.replacingOccurrences(of: " ", with: ""),
            "--map", Examples.blocklist,
        ])
        #expect(packet.status == 0, "\(packet)")
        #expect(packet.stdout.contains("r0 = 1 (0x1) XDP_DROP"), "\(packet.stdout)")
        let bad = try MimicCLI.run(["run", Examples.firewall, "--packet", "0z"])
        expectFailure(bad, status: 2, mentioning: ["malformed hex in --packet"])

        let directory = try TemporaryDirectory()
        let context = try directory.file(
            "hex.json",
            """
            {"type": "xdp_md", "ctx": {"packet": {"hex": "\(Self.blockedSYN)"}, "ingress_ifidx": 2}}
            """)
        let hex = try MimicCLI.run(["run", Examples.firewall, "--context", context, "--map", Examples.blocklist])
        #expect(hex.status == 0, "\(hex)")
        #expect(hex.stdout.contains("r0 = 1 (0x1) XDP_DROP"), "\(hex.stdout)")
        let badHex = try directory.file("badhex.json", #"{"type": "xdp_md", "ctx": {"packet": {"hex": "0g"}}}"#)
        expectFailure(
            try MimicCLI.run(["run", Examples.firewall, "--context", badHex]), status: 1,
            mentioning: ["ctx.packet.hex", "expected hex bytes"])
    }

    @Test func messagesSayWhatIsWrongAndWhatToDo() throws {
        let noBTF = MimicCLI.packageRoot.appendingPathComponent("Tests/MimicCLITests/Fixtures/no_btf.o").path
        expectFailure(
            try MimicCLI.run(["inspect", noBTF]), status: 1,
            mentioning: ["no BTF type information", "compile with `clang -g`"])

        let directory = try TemporaryDirectory()
        let object = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Examples.firewall)))
        let truncated = try directory.file("cut.o", bytes: Array(object.prefix(object.count - 1000)))
        let cut = try MimicCLI.run(["inspect", truncated])
        expectFailure(cut, status: 1, mentioning: ["the file is truncated", "needs", "(of \(object.count - 1000))"])
        #expect(!cut.stderr.contains("exceeds the limit"), "\(cut)")

        let entries = (0..<1025).map { #"{"key": "10.0.\#($0 / 256).\#($0 % 256)", "value": 1}"# }
        let full = try directory.file("full.json", "[" + entries.joined(separator: ",\n") + "]")
        let result = try MimicCLI.run([
            "run", Examples.firewall, "--packet", Self.blockedSYN, "--map", "blocklist=\(full)",
        ])
        expectFailure(result, status: 1, mentioning: ["[1024]", "map full (max_entries 1024)"])
        #expect(!result.stderr.contains("E2BIG"), "\(result)")
    }
}
