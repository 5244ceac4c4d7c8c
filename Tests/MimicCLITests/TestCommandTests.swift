import Foundation
import MimicKernel
import Testing

@Suite("mimic test")
struct TestCommandTests {
    static func file(_ name: String) -> String { Examples.path("tests/\(name)") }

    static var passing: [String] {
        ["packet_counter.json", "tc_rewrite.json", "trace_exec.json", "xdp_firewall.json"].map(file)
    }

    @Test("the example test files pass: exit 0, a line per case and a summary")
    func examplesPass() throws {
        let result = try MimicCLI.run(["test"] + Self.passing)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("  ok       a blocked source is dropped and counted\n"))
        #expect(result.stdout.hasSuffix("12 case(s): 12 passed, 0 failed, 0 error(s), 0 skipped\n"))
        #expect(result.stderr.isEmpty)
    }

    @Test("the failing example: exit 1 and its diff")
    func failingCase() throws {
        let result = try MimicCLI.run(["test", Self.file("failing.json")])
        #expect(result.status == 1)
        #expect(
            result.stdout.contains(
                """
                  FAIL     expects the wrong pid, command and count
                           trace:
                             - expected: 2 line(s)
                             + actual:   1 line(s)
                                 exec bash pid 4242
                               - exec zsh pid 7
                           event 0 (events) .pid:
                             - expected: 4242
                             + actual:   4243
                """))
        #expect(result.stderr == "mimic: error: 1 test case(s) failed\n")
    }

    @Test("--junit writes a report, --tap prints TAP on stdout and the text on stderr, --tap=FILE writes it")
    func reports() throws {
        let scratch = try TemporaryDirectory()
        let junit = scratch.url.appendingPathComponent("report.xml").path
        let tapFile = scratch.url.appendingPathComponent("report.tap").path
        let result = try MimicCLI.run([
            "test", Self.file("xdp_firewall.json"), Self.file("failing.json"), "--junit", junit, "--tap",
        ])
        #expect(result.status == 1)
        #expect(
            result.stdout.hasPrefix(
                "TAP version 14\n1..7\nok 1 - xdp_firewall: a blocked source is dropped and counted\n"))
        #expect(
            result.stdout.contains("not ok 7 - failing (on purpose): expects the wrong pid, command and count\n  ---\n")
        )
        #expect(result.stderr.contains("  FAIL     expects the wrong pid, command and count"))
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains("<testsuite id=\"1\" name=\"failing (on purpose)\""))
        #expect(xml.contains("tests=\"1\" failures=\"1\" errors=\"0\" skipped=\"0\""))
        #expect(xml.contains("<failure message=\"trace: expected 2 line(s), got 1 line(s)\" type=\"mismatch\">"))

        let toFile = try MimicCLI.run(["test", Self.file("tc_rewrite.json"), "--tap=\(tapFile)"])
        #expect(toFile.status == 0, "\(toFile)")
        #expect(toFile.stdout.contains("  ok       UDP to port 8080 is rewritten to 80\n"))
        #expect(
            try String(contentsOfFile: tapFile, encoding: .utf8)
                == "TAP version 14\n1..2\nok 1 - tc_rewrite: UDP to port 8080 is rewritten to 80\nok 2 - tc_rewrite: a port from the ports map\n"
        )
    }

    @Test("usage mistakes and unreadable files")
    func mistakes() throws {
        let none = try MimicCLI.run(["test"])
        #expect(none.status == 2)
        #expect(none.stderr.contains("missing argument FILE.json"))
        let both = try MimicCLI.run(["test", Self.file("tc_rewrite.json"), "--tap", "--tap=x.tap"])
        #expect(both.status == 2)
        let missing = try MimicCLI.run(["test", "/nonexistent/tests.json"])
        #expect(missing.status == 1)
        #expect(missing.stdout.contains("ERROR    (file): /nonexistent/tests.json: no such file"))
        #expect(try MimicCLI.run(["help"]).stdout.contains("  test "))
    }

    @Test(
        "--kernel without the kernel: the kernel runs are skipped, saying why",
        .enabled(if: !KernelBPF.isAvailable))
    func kernelUnreachable() throws {
        let result = try MimicCLI.run(["test", Self.file("xdp_firewall.json"), "--kernel"])
        #expect(result.status == 0, "\(result)")
        #expect(
            result.stdout.contains(
                "skipped  a blocked source is dropped and counted [kernel]: the kernel is not reachable"))
        #expect(result.stdout.contains("kernel runs skipped: the kernel is not reachable ("))
    }

    @Test(
        "--kernel: every example case agrees with the kernel",
        .enabled(if: KernelBPF.isAvailable, "the kernel's BPF is not reachable"))
    func kernelAgrees() throws {
        let result = try MimicCLI.run(["test", "--kernel"] + Self.passing)
        #expect(result.status == 0, "\(result)")
        // 12 cases in Mimic, 12 in the kernel: the tracepoint program's 2 and the runt frame (the
        // kernel's test run takes at least 14 bytes) are skipped there.
        #expect(result.stdout.hasSuffix("24 case(s): 21 passed, 0 failed, 0 error(s), 3 skipped\n"))
        #expect(result.stdout.contains("  ok       a blocked source is dropped and counted [kernel]\n"))
        #expect(result.stdout.contains("  ok       a UDP packet is counted by protocol and in the totals [kernel]\n"))
        #expect(result.stdout.contains("  ok       UDP to port 8080 is rewritten to 80 [kernel]\n"))
    }

    @Test(
        "--kernel: a wrong expectation fails in the kernel too",
        .enabled(if: KernelBPF.isAvailable, "the kernel's BPF is not reachable"))
    func kernelChecksExpectations() throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.url.appendingPathComponent("wrong.json").path
        try """
        {"object": "\(Examples.firewall)", "cases": [{"name": "wrong verdict",
          "input": {"packet": "020000000000020000000001080045000024000100004011f9c10a0000010a000002303900350010000068656c6c6f212121"},
          "expect": {"verdict": "XDP_DROP", "maps": {"verdicts": [{"key": 2, "value": 1}]}}}]}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try MimicCLI.run(["test", path, "--kernel"])
        #expect(result.status == 1)
        #expect(
            result.stdout.contains(
                "  FAIL     wrong verdict [kernel]\n           verdict:\n             - expected: XDP_DROP (1)\n             + actual:   XDP_PASS (2)\n"
            ))
        #expect(result.stdout.hasSuffix("2 case(s): 0 passed, 2 failed, 0 error(s), 0 skipped\n"))
    }

    @Test(
        "--kernel: a suite configured before load (globals, map size) agrees with the kernel",
        .enabled(if: KernelBPF.isAvailable, "the kernel's BPF is not reachable"))
    func kernelConfigured() throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.url.appendingPathComponent("configured.json").path
        try """
        {"object": "\(Examples.fixture("configured.o"))",
         "config": {"mapSizes": {"hits": 16}, "globals": {"blocked_port": 53, "mode": "MODE_DROP", "enabled": true, "limits": {"low": 1}}},
         "cases": [{"name": "the configured port is dropped",
           "input": {"packet": "020000000000020000000001080045000024000100004011f9c10a0000010a000002303900350010000068656c6c6f212121"},
           "expect": {"verdict": "XDP_DROP", "maps": {"hits": [{"key": 53, "value": 1}], ".bss": [{"key": 0, "value": {"matched": 1}}],
                                                       ".rodata": [{"key": 0, "value": {"blocked_port": 53, "mode": "MODE_DROP"}}]}}}]}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try MimicCLI.run(["test", path, "--kernel"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("  ok       the configured port is dropped [kernel]\n"))
    }

    @Test(
        "--kernel: context fields in (ctx_in) and out (ctx_out) agree with the kernel",
        .enabled(if: KernelBPF.isAvailable, "the kernel's BPF is not reachable"))
    func kernelContextFields() throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.url.appendingPathComponent("mark.json").path
        let packet =
            "020000000000020000000001080045000024000100004011f9c10a0000010a000002303900350010000068656c6c6f212121"
        try """
        {"object": "\(Examples.fixture("tc_mark.o"))", "cases": [
          {"name": "mark 5", "input": {"packet": "\(packet)", "ctx": {"mark": 5, "cb[0]": 10, "priority": 1}},
           "expect": {"verdict": "TC_ACT_OK", "ctx": {"mark": 85, "cb[1]": 20, "priority": 8, "tc_classid": 65538}}},
          {"name": "mark 1", "input": {"packet": "\(packet)", "ctx": {"mark": 1}}, "expect": {"verdict": "TC_ACT_SHOT", "ctx": {"mark": 257}}}]}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try MimicCLI.run(["test", path, "--kernel"])
        #expect(result.status == 0, "\(result)")
        #expect(
            result.stdout.contains("  ok       mark 5 [kernel]\n           note: ctx.tc_classid checked in Mimic only"))
        #expect(result.stdout.contains("  ok       mark 1 [kernel]\n"))
    }
}
