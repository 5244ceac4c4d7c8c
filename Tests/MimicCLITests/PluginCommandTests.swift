import Foundation
import Testing

/// `mimic plugins` and `mimic run-raw --plugin`, with the C sample plugin built by clang.
@Suite("mimic plugins", .serialized)
struct PluginCommandTests {
    /// Builds Examples/Plugins/c-kvstore into `directory` and returns the library's path.
    static func kvstore(in directory: TemporaryDirectory) throws -> String {
        let script = MimicCLI.packageRoot.appendingPathComponent("Examples/Plugins/c-kvstore/build.sh").path
        let process = Foundation.Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["OUT=\(directory.url.path)", "SKIP_BPF=1", "sh", script]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw HarnessError(description: "building the kvstore sample failed")
        }
        return directory.path("libkvstore.so")
    }

    @Test("plugins lists a library's helpers")
    func listsHelpers() throws {
        let directory = try TemporaryDirectory()
        let library = try Self.kvstore(in: directory)
        let result = try MimicCLI.run(["plugins", library])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("plugin kvstore 1.0 (ABI 1.2)\n"))
        #expect(result.stdout.contains("  10001  kv_get\n"))
        let json = try MimicCLI.run(["plugins", library, "--json"])
        #expect(json.stdout.contains("{\"id\": 10000, \"name\": \"kv_put\"}"))
    }

    @Test("plugins refuses what is not a plugin")
    func refusesBadLibraries() throws {
        let directory = try TemporaryDirectory()
        let text = try directory.file("libtext.so", "not a library")
        let bad = try MimicCLI.run(["plugins", text])
        #expect(bad.status == 1)
        #expect(bad.stderr.hasPrefix("mimic: error: cannot load plugin \(text): not a loadable shared library ("))
        // Truncated: refused before the dynamic loader touches it (it died with SIGBUS).
        let library = try Self.kvstore(in: directory)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: library)))
        let cut = try directory.file("libcut.so", bytes: Array(bytes.prefix(bytes.count / 2)))
        let truncated = try MimicCLI.run(["plugins", cut])
        expectFailure(truncated, status: 1, mentioning: ["the file is truncated: it is \(bytes.count / 2) bytes"])
        let bpf = try MimicCLI.run([
            "plugins", MimicCLI.packageRoot.appendingPathComponent("Examples/xdp_firewall.o").path,
        ])
        expectFailure(bpf, status: 1, mentioning: ["is an eBPF object", "not a shared library"])
        let missing = try MimicCLI.run(["plugins", directory.path("nothing.so")])
        #expect(missing.stderr == "mimic: error: cannot load plugin \(directory.path("nothing.so")): no such file\n")
        let usage = try MimicCLI.run(["plugins"])
        #expect(usage.status == 2)
    }

    @Test("run-raw --trace names a plugin's custom instructions")
    func traceNamesCustomInstructions() throws {
        let directory = try TemporaryDirectory()
        let script = MimicCLI.packageRoot.appendingPathComponent("Examples/Plugins/c-custom-insn/build.sh").path
        let build = Foundation.Process()
        build.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        build.arguments = ["OUT=\(directory.url.path)", "sh", script]
        build.standardOutput = FileHandle.nullDevice
        try build.run()
        build.waitUntilExit()
        guard build.terminationStatus == 0 else {
            throw HarnessError(description: "building the custom-insn sample failed")
        }
        // r1 = 0xff; vendor.popcnt r1, r1 (opcode 0xf7, imm 100); r0 = r1; exit
        let program = try directory.file(
            "prog.hex",
            "b7 01 00 00 ff 00 00 00\nf7 11 00 00 64 00 00 00\nbf 10 00 00 00 00 00 00\n95 00 00 00 00 00 00 00\n")
        let result = try MimicCLI.run([
            "run-raw", program, "--plugin", directory.path("libcustom_insn.so"), "--trace",
        ])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("1: vendor.popcnt %r1, %r1, off 0, imm 100 (custom 0xf7)"), "\(result)")
        #expect(!result.stdout.contains(".invalid"), "\(result)")
    }

    @Test("run-raw --plugin adds the plugin's helpers to the conformance helpers")
    func runRawWithPlugin() throws {
        let directory = try TemporaryDirectory()
        let library = try Self.kvstore(in: directory)
        // kv_put("ab" from the input, 5), kv_get into the stack, + sqrti(16) (conformance helper 3).
        let program = try directory.file(
            "prog.s",
            """
            mov %r6, %r1
            mov %r2, 2
            mov %r3, 5
            call 10000
            mov %r1, %r6
            mov %r2, 2
            mov %r3, %r10
            sub %r3, 8
            call 10001
            ldxdw %r6, [%r10-8]
            mov %r1, 16
            call 3
            add %r0, %r6
            exit
            """)
        let result = try MimicCLI.run(["run-raw", program, "--mem", "61 62", "--plugin", library])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("r0 = 0x9 (9)\n"))

        // A bad pointer: the plugin's read faults; the error names the helper.
        let fault = try directory.file("fault.s", "mov %r1, 16\nmov %r2, 4\ncall 10001\nexit\n")
        let failed = try MimicCLI.run(["run-raw", fault, "--plugin", library])
        #expect(failed.status == 1)
        #expect(
            failed.stderr.contains(
                "helper kv_get (#10001) failed: kv_get: cannot read the key: read of 4 bytes at 0x10: no region mapped")
        )

        // The same plugin twice: its ids conflict.
        let twice = try MimicCLI.run(["run-raw", program, "--plugin", library, "--plugin", library])
        #expect(twice.status == 1)
        #expect(twice.stderr.contains("helper id 10000 is provided by both kvstore (kv_put) and kvstore (kv_put)"))
    }

    @Test("run --plugin combines the plugin with the Linux emulator on an object")
    func runObjectWithPlugin() throws {
        let directory = try TemporaryDirectory()
        let library = try Self.kvstore(in: directory)
        let object = MimicCLI.packageRoot.appendingPathComponent("Examples/Plugins/c-kvstore/kv_demo.bpf.o").path
        // A socket filter gets an __sk_buff; the packet's content does not matter here.
        let context = try directory.file(
            "skb.json",
            """
            {"name": "empty", "type": "sk_buff", "ctx": {"packet": "\(Data(count: 60).base64EncodedString())"}}
            """)
        let result = try MimicCLI.run([
            "run", object, "--program", "kv_demo", "--context", context, "--plugin", library,
        ])
        #expect(result.status == 0, "\(result)")
        // value 41 + 1, two keys (2000), eight plugin calls (800000).
        #expect(result.stdout.contains("r0 = 802042"), "\(result)")
        #expect(result.stderr.contains("hello from eBPF"))

        let bad = try MimicCLI.run([
            "run", object, "--program", "kv_bad_pointer", "--context", context, "--plugin", library,
        ])
        expectFailure(
            bad, status: 1, mentioning: ["helper kv_get (#10001) failed", "no region mapped", "kv_demo.bpf.c:40"])
    }
}
