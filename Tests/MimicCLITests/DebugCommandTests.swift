import Testing

/// `mimic debug` driven by a script on standard input.
@Suite("mimic debug")
struct DebugCommandTests {
    static func debug(_ script: [String], _ arguments: [String]) throws -> CLIResult {
        try MimicCLI.run(["debug"] + arguments, stdin: script.joined(separator: "\n") + "\n")
    }

    @Test func breakStepInspectAndContinue() throws {
        let result = try Self.debug(
            [
                "break xdp_firewall.c:52", "continue", "regs", "x r10-8 4", "map blocklist", "bt", "list",
                "frobnicate", "step", "next", "continue", "map verdicts", "quit",
            ], [Examples.firewall, "--pcap", Examples.traffic, "--packet", "4", "--map", Examples.blocklist])
        #expect(result.status == 0, "\(result)")
        #expect(!result.stdout.contains("(mimic) "), "no prompt on a pipe")
        let expected = [
            "stopped at instruction 0 (in xdp_firewall, xdp_firewall.c:38)",
            "breakpoint 1 at instruction 44 (in xdp_firewall, xdp_firewall.c:52)",
            "breakpoint 1 at instruction 44 (in xdp_firewall, xdp_firewall.c:52)\n    ; if (hits) {",
            "=> 44: jeq %r0, 0, +11",
            "r0   0x0000000100000000", // regs: a pointer into the blocklist value
            "-> map:blocklist+0",
            "c0 00 02 42", // x: the source address on the stack
            "[192.0.2.66] 0", // map blocklist before the update
            "#0  in xdp_firewall, xdp_firewall.c:52 at instruction 44",
            "=>   52      if (hits) {", // list, from the C file beside the object
            "error: unknown command 'frobnicate'",
            "44: jeq %r0, 0, +11",
            "45: mov %r1, 1",
            "program exited: r0 = 1 (0x1) XDP_DROP",
            "[1] 1", // map verdicts after the run
        ]
        var rest = Substring(result.stdout)
        for fragment in expected {
            guard let range = rest.range(of: fragment) else {
                Issue.record("missing '\(fragment)' (in order) in:\n\(result.stdout)")
                return
            }
            rest = rest[range.upperBound...]
        }
    }

    @Test func functionBreakpointsBacktraceNextAndFinish() throws {
        let result = try Self.debug(
            [
                "b ip_protocol", "c", "bt", "finish", "d 1", "b 0", "b", "n 3", "c", "step",
            ], [Examples.path("packet_counter.o"), "--pcap", Examples.traffic])
        #expect(result.status == 0, "\(result)")
        for fragment in [
            "on packet 1", "breakpoint 1 at instruction 48 (in ip_protocol",
            "#0  in ip_protocol, packet_counter.c:31 at instruction 48",
            "#1  in count_packets, packet_counter.c:60 at instruction 20",
            "returned r0 = 6", "deleted breakpoint 1", "breakpoint 2: instruction 0",
            "program exited: r0 = 2 (0x2) XDP_PASS", "error: the program has exited",
        ] {
            #expect(result.stdout.contains(fragment), "missing '\(fragment)': \(result.stdout)")
        }
    }

    @Test func nextStepsOverCalls() throws {
        // Stop at the call of fill_event (instruction 6) and step over it.
        let result = try Self.debug(
            ["b 6", "c", "next", "bt", "c"],
            [Examples.path("trace_exec.o"), "--context", Examples.path("contexts/exec_captured.json")])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("=>  6: call"), "\(result.stdout)")
        #expect(result.stdout.contains("stopped at instruction 7 (in trace_exec"), "\(result.stdout)")
        #expect(result.stdout.contains("trace: exec bash pid 4242"), "\(result.stdout)")
    }

    @Test func badDebuggerCommandsKeepTheSessionGoing() throws {
        let result = try Self.debug(
            ["b nowhere", "b nofile.c:3", "d 9", "x", "x r99", "x 0x10 4", "step zero", "map nothing", "c"],
            [Examples.firewall, "--context", Examples.path("contexts/blocked_syn.json")])
        #expect(result.status == 0, "\(result)")
        for fragment in [
            "unknown location 'nowhere'", "no code at nofile.c:3", "no breakpoint '9'", "usage: x ADDR",
            "cannot read address 'r99'", "0x10 is not mapped", "expected a positive count", "no map named 'nothing'",
            "program exited: r0 = 2 (0x2) XDP_PASS",
        ] {
            #expect(result.stdout.contains(fragment), "missing '\(fragment)': \(result.stdout)")
        }
    }
}
