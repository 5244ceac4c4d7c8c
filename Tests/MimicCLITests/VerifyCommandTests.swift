import Foundation
import Testing

/// `mimic verify`: verdicts, the explanation, JSON, the log, and `run --verify`.
@Suite("mimic verify")
struct VerifyCommandTests {
    static let fixtures = "Tests/MimicCLITests/Fixtures/"
    /// A program the kernel rejects (the verifier corpus of Docs/Testing.md): an unchecked
    /// packet read.
    static let rejected = ["Tests/MimicKernelTests/VerifierCorpus/packet_bounds.o", "--program", "pkt_read_unchecked"]

    @Test func anAcceptedObjectExitsZero() throws {
        let result = try MimicCLI.run(["verify", MimicCLI.packageRoot.path + "/Examples/xdp_firewall.o"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("xdp_firewall (xdp): accepted"), "\(result)")
    }

    @Test func aRejectionIsExplainedAtItsSourceLine() throws {
        let result = try MimicCLI.run(
            ["verify", MimicCLI.packageRoot.path + "/" + Self.rejected[0]] + Self.rejected.dropFirst())
        #expect(result.status == 1, "\(result)")
        #expect(result.stdout.contains("packet_bounds.c:10: instruction 1: (69) r1 = *(u16 *)(r1 +12)"), "\(result)")
        #expect(result.stdout.contains("error: invalid access to packet, off=12 size=2"), "\(result)")
        #expect(result.stdout.contains("R1 = pkt(r=0)"), "\(result)")
        #expect(result.stdout.contains("advice: R1 points to data + 0"), "\(result)")
        #expect(
            result.stderr.contains("mimic: error: the kernel's verifier would reject: pkt_read_unchecked"), "\(result)")
    }

    @Test func jsonGivesTheErrorsFields() throws {
        let result = try MimicCLI.run(
            ["verify", MimicCLI.packageRoot.path + "/" + Self.rejected[0]] + Self.rejected.dropFirst() + ["--json"])
        #expect(result.status == 1)
        // One document: the verdicts, no error object after them.
        #expect(throws: Never.self) { try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) }
        for field in [
            "\"verdict\": \"rejected\"", "\"kind\": \"packet-bounds\"", "\"instruction_index\": 1",
            "\"line\": 10", "\"value\": \"pkt(r=0)\"",
        ] {
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

    /// A tp_btf program that follows kernel pointers, against a stand-in kernel BTF: accepted, a
    /// rejection names the kernel struct; a --btf that is not BTF is an error naming the file.
    @Test func kernelBTFTypesTracingContexts() throws {
        let root = MimicCLI.packageRoot.path
        let object = root + "/Tests/MimicLinuxTests/Fixtures/tracing/btf_access.bpf.o"
        let btf = root + "/Tests/MimicVerifierTests/Fixtures/kernel_types.o"
        let chase = try MimicCLI.run(["verify", object, "--program", "chase", "--btf", btf])
        #expect(chase.status == 0, "\(chase)")
        #expect(chase.stdout.contains("chase (tp_btf/sched_process_exec): accepted"), "\(chase)")
        let beyond = try MimicCLI.run(["verify", object, "--program", "beyond_struct", "--btf", btf])
        #expect(beyond.status == 1, "\(beyond)")
        #expect(beyond.stdout.contains("error: access beyond struct task_struct at off 65536 size 8"), "\(beyond)")
        let notBTF = try MimicCLI.run(["verify", object, "--btf", root + "/Examples/blocklist.json"])
        #expect(notBTF.status != 0, "\(notBTF)")
        #expect(notBTF.stderr.contains("blocklist.json"), "\(notBTF)")
    }

    /// `mimic test`'s (verifier) case verifies with the running kernel's BTF: a tp_btf program
    /// that follows kernel pointers is accepted, one that reads past a struct is not.
    @Test(.enabled(if: FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux")))
    func aTestFileVerifiesTracingProgramsWithTheKernelsBTF() throws {
        let scratch = try TemporaryDirectory()
        let object = MimicCLI.packageRoot.path + "/Tests/MimicLinuxTests/Fixtures/tracing/btf_access.bpf.o"
        for (program, passes) in [("chase", true), ("beyond_struct", false)] {
            let file = scratch.url.appendingPathComponent("\(program).json")
            let json = """
                {"object": "\(object)", "program": "\(program)", "config": {"verify": true},
                 "cases": [{"name": "runs", "input": {}, "expect": {}}]}
                """
            try Data(json.utf8).write(to: file)
            let result = try MimicCLI.run(["test", file.path])
            #expect(result.stdout.contains(passes ? "ok       (verifier)" : "FAIL     (verifier)"), "\(result)")
            if !passes {
                #expect(result.stdout.contains("access beyond struct task_struct at off 65536 size 8"), "\(result)")
            }
        }
    }

    /// --type with an object gives its programs a type (as `run --type` does), for sections that
    /// name none; an unknown type is a usage error.
    @Test func anObjectsProgramTypeFromTheCommandLine() throws {
        let object = MimicCLI.packageRoot.path + "/Examples/xdp_firewall.o"
        let asXDP = try MimicCLI.run(["verify", object, "--type", "xdp"])
        #expect(asXDP.status == 0, "\(asXDP)")
        let asSocketFilter = try MimicCLI.run(["verify", object, "--type", "socket_filter"])
        #expect(asSocketFilter.status == 1, "\(asSocketFilter)")
        let unknown = try MimicCLI.run(["verify", object, "--type", "nonsense"])
        #expect(unknown.status == 2, "\(unknown)")
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
            [
                "run", MimicCLI.packageRoot.path + "/" + Self.fixtures + "tc_mark.o", "--verify", "--packet",
                "020000000000020000000001080045000024000100004011f9c10a0000010a000002303900350010000068656c6c6f212121",
            ])
        #expect(accepted.status == 0, "\(accepted)")
    }

    @Test func aTestFileCanRequireVerification() throws {
        let scratch = try TemporaryDirectory()
        let fixtures = MimicCLI.packageRoot.path + "/" + Self.fixtures
        let refused = MimicCLI.packageRoot.path + "/" + Self.rejected[0]
        for (name, object, program, status) in [
            ("refused", refused, "pkt_read_unchecked", Int32(1)), ("accepted", fixtures + "tc_mark.o", nil, Int32(0)),
        ] {
            let file = scratch.url.appendingPathComponent("\(name).json")
            let json = """
                {"object": "\(object)", \(program.map { "\"program\": \"\($0)\"," } ?? "") "config": {"verify": true},
                 "cases": [{"name": "runs", "input": {"packet": "020000000000020000000001080045000024000100004011f9c10a0000010a000002303900350010000068656c6c6f212121"}, "expect": {}}]}
                """
            try Data(json.utf8).write(to: file)
            let result = try MimicCLI.run(["test", file.path])
            #expect(result.status == status, "\(name): \(result)")
            #expect((result.stdout + result.stderr).contains("(verifier)"), "\(name): \(result)")
            if status == 1 {
                #expect(result.stdout.contains("invalid access to packet, off=12 size=2"), "\(result)")
            }
        }
    }
}
