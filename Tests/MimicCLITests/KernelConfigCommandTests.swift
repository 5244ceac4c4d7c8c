import Foundation
import Testing

/// `mimic run --kconfig FILE` and the recorded tracing effects in the run report.
@Suite struct KernelConfigCommandTests {
    static var object: String {
        MimicCLI.packageRoot.appendingPathComponent("Tests/MimicLinuxTests/Fixtures/externs.o").path
    }

    @Test func kconfigFileGivesTheExternsTheirValues() throws {
        let directory = try TemporaryDirectory()
        let config = try directory.file(
            "config", "# generated\nCONFIG_HZ=300\nCONFIG_NF_CONNTRACK=m\nCONFIG_DEFAULT_HOSTNAME=\"box\"\n")
        let result = try MimicCLI.run(["run", Self.object, "-p", "read_kconfig", "--kconfig", config])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains(".conntrack = 2"), "\(result)")
        #expect(result.stdout.contains(".hz = 300"), "\(result)")
        #expect(result.stdout.contains(".hostname = \"box\""), "\(result)")
        #expect(result.stdout.contains("iter_sum = 42"), "\(result)")

        let bad = try directory.file("bad", "CONFIG_HZ\n")
        let failed = try MimicCLI.run(["run", Self.object, "-p", "read_kconfig", "--kconfig", bad])
        #expect(failed.status != 0)
        #expect(failed.stderr.contains("line 1") && failed.stderr.contains("CONFIG_HZ"), "\(failed)")
    }

    @Test func signalsAndOverriddenReturnsAreReported() throws {
        let directory = try TemporaryDirectory()
        let regs = Data(count: 168).base64EncodedString()
        let context = try directory.file(
            "ctx.json",
            """
            { "type": "generic", "ctx": { "memory": [ { "name": "regs", "type": "block", "value": { "value": "\(regs)" } } ],
              "registers": { "r1": "regs" }, "emulator": { "pid": 4242, "tgid": 4242 } } }
            """)
        let text = try MimicCLI.run(["run", Self.object, "-p", "deny_unlink", "-c", context])
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.contains("sent signal 9 to process 4242"), "\(text)")
        #expect(text.stdout.contains("override_return: the probed function returns -1"), "\(text)")
        let json = try MimicCLI.run(["run", Self.object, "-p", "deny_unlink", "-c", context, "--json"])
        #expect(json.stdout.contains("\"override_return\": -1"), "\(json)")
        #expect(json.stdout.contains("\"target\": 4242"), "\(json)")
    }
}
