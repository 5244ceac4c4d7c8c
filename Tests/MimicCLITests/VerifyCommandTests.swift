import Foundation
import Testing

/// `mimic verify`: verdicts, the explanation, JSON, the log, and `run --verify`.
@Suite("mimic verify")
struct VerifyCommandTests {
    static let fixtures = "Tests/MimicCLITests/Fixtures/"

    @Test func anAcceptedObjectExitsZero() throws {
        let result = try MimicCLI.run(["verify", MimicCLI.packageRoot.path + "/Examples/xdp_firewall.o"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("xdp_firewall (xdp): accepted"), "\(result)")
    }

    @Test func aRejectionIsExplainedAtItsSourceLine() throws {
        let result = try MimicCLI.run(["verify", MimicCLI.packageRoot.path + "/" + Self.fixtures + "unknown_helper.o"])
        #expect(result.status == 1, "\(result)")
        #expect(result.stdout.contains("unknown_helper.c:9: instruction 0: (85) call unknown#212"), "\(result)")
        #expect(result.stdout.contains("error: invalid func unknown#212"), "\(result)")
        #expect(result.stdout.contains("advice: "), "\(result)")
        #expect(result.stderr.contains("mimic: error: the kernel's verifier would reject: stack_of_open"), "\(result)")
    }

    @Test func jsonGivesTheErrorsFields() throws {
        let result = try MimicCLI.run(
            ["verify", MimicCLI.packageRoot.path + "/" + Self.fixtures + "unknown_helper.o", "--json"])
        #expect(result.status == 1)
        for field in ["\"verdict\": \"rejected\"", "\"kind\": \"unknown-helper\"", "\"instruction_index\": 0",
                      "\"line\": 9", "\"message\": \"invalid func unknown#212\""] {
            #expect(result.stdout.contains(field), "\(field) in \(result.stdout)")
        }
    }

    @Test func theLogListsTheInstructionsProcessed() throws {
        let result = try MimicCLI.run(["verify", MimicCLI.packageRoot.path + "/Examples/xdp_firewall.o", "--log"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("func#0 @0"), "\(result)")
        #expect(result.stdout.contains("0: (61) r"), "\(result)")
        #expect(result.stdout.contains("processed "), "\(result)")
    }

    @Test func assemblerTextWithAProgramType() throws {
        let scratch = try TemporaryDirectory()
        let file = scratch.url.appendingPathComponent("uninit.s")
        try Data("mov %r0, %r2\nexit\n".utf8).write(to: file)
        let result = try MimicCLI.run(["verify", file.path, "--type", "xdp"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("error: R2 !read_ok"), "\(result)")
        let unknown = try MimicCLI.run(["verify", file.path, "--type", "nonsense"])
        #expect(unknown.status == 2, "\(unknown)")
    }

    @Test func runVerifyRefusesWhatTheKernelWouldRefuse() throws {
        let object = MimicCLI.packageRoot.path + "/" + Self.fixtures + "unknown_helper.o"
        let refused = try MimicCLI.run(["run", object, "--verify"])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.stderr.contains("the kernel's verifier would reject it"), "\(refused)")
        let accepted = try MimicCLI.run(
            ["run", MimicCLI.packageRoot.path + "/" + Self.fixtures + "tc_mark.o", "--verify", "--packet",
             "020000000000020000000001080045000024000100004011f9c10a0000010a000002303900350010000068656c6c6f212121"])
        #expect(accepted.status == 0, "\(accepted)")
    }

    @Test func aTestFileCanRequireVerification() throws {
        let scratch = try TemporaryDirectory()
        let fixtures = MimicCLI.packageRoot.path + "/" + Self.fixtures
        for (name, object, status) in [("refused", "unknown_helper.o", Int32(1)), ("accepted", "tc_mark.o", Int32(0))] {
            let file = scratch.url.appendingPathComponent("\(name).json")
            let json = """
                {"object": "\(fixtures + object)", "config": {"verify": true},
                 "cases": [{"name": "runs", "input": {"packet": "020000000000020000000001080045000024000100004011f9c10a0000010a000002303900350010000068656c6c6f212121"}, "expect": {}}]}
                """
            try Data(json.utf8).write(to: file)
            let result = try MimicCLI.run(["test", file.path])
            #expect(result.status == status, "\(name): \(result)")
            #expect((result.stdout + result.stderr).contains("(verifier)"), "\(name): \(result)")
            if status == 1 {
                #expect(result.stdout.contains("invalid func unknown#212"), "\(result)")
            }
        }
    }
}
