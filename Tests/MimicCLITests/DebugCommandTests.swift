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

    static func tracing(_ name: String) -> String { EventsCommandTests.path(name) }

    /// `--events`: handle_exec's event runs undebugged, handle_exit's two runs stop before their
    /// first instruction; `event` ends a run, `step` starts the next, a breakpoint stops the
    /// last, and the end prints the records and the map changes over all the events.
    @Test func eventsAreSteppedThroughOneRunAfterAnother() throws {
        let result = try Self.debug(
            [
                "events", "step 2", "event", "regs", "events", "step", "break bootstrap.bpf.c:106", "continue",
                "map exec_start", "continue", "continue", "step",
            ],
            [
                Self.tracing("bootstrap.bpf.o"), "--program", "handle_exit", "--system", Self.tracing("system.json"),
                "--events", Self.tracing("bootstrap.events.jsonl"), "--btf", Self.tracing("bootstrap.bpf.o"),
            ])
        #expect(result.status == 0, "\(result)")
        let expected = [
            "program handle_exit (tracepoint) over the 3 events of", "bootstrap.events.jsonl: 83 instructions",
            "event 1: handle_exec, not debugged: r0 = 0",
            "rb: struct event { .pid = 4242, .ppid = 1200, .exit_code = 0, .duration_ns = 0, .comm = \"ls\", .filename = \"/usr/bin/ls\", .exit_event = false }",
            "event 2: handle_exit (tp/sched/sched_process_exit) cpu 0 pid 4243 at 7500000 ns",
            "stopped at instruction 0 (in handle_exit",
            "   event 1: handle_exec (not debugged), run\n=> event 2: handle_exit, current\n   event 3: handle_exit, to run",
            " 0: call bpf_get_current_pid_tgid#14", " 1: mov",
            "program exited: r0 = 0 (0x0)", // a thread's exit: ignored
            "end of event 2; step, next, event or continue go on to the next event",
            "pc   none (the program has exited)",
            "=> event 2: handle_exit, current",
            "event 3: handle_exit (tp/sched/sched_process_exit) cpu 0 pid 4242 at 9000000 ns",
            "stopped at instruction 0 (in handle_exit",
            "breakpoint 1 at instruction",
            "breakpoint 1 at instruction", "; e->exit_event = true;",
            "exec_start (hash, 0 entries)", // handle_exit deleted pid 4242's start time
            "program exited: r0 = 0 (0x0)",
            "rb: struct event { .pid = 4242, .ppid = 1200, .exit_code = 2, .duration_ns = 4000000, .comm = \"ls\", .filename = \"\", .exit_event = true }",
            "end of event 3, the last event", "all 3 events run\nmaps: no changes",
            "error: every event has run", "error: every event has run",
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

    /// `continue` goes on through the events to the end; a bad event is reported and skipped.
    @Test func continueRunsThroughTheEventsAndBadOnesAreNamed() throws {
        let directory = try TemporaryDirectory()
        let events = try directory.file(
            "events.jsonl",
            """
            {"program": "handle_exit", "pid": 4243}
            {"program": "nope"}
            {"program": "handle_exec", "time_ns": 1000, "pid": 4242, "fields": {"__data_loc_filename": "/bin/true"}}
            {"program": "handle_exit", "time_ns": 3000, "pid": 4242}

            """)
        let arguments = [
            Self.tracing("bootstrap.bpf.o"), "--program", "handle_exit", "--system", Self.tracing("system.json"),
            "--events", events, "--btf", Self.tracing("bootstrap.bpf.o"),
        ]
        let result = try Self.debug(["continue", "e", "maps"], arguments)
        #expect(result.status == 0, "\(result)")
        for fragment in [
            "event 1: handle_exit (tp/sched/sched_process_exit) cpu 0 pid 4243",
            "event 2: error: ", "events.jsonl line 2.program: no program named nope",
            "event 3: handle_exec, not debugged: r0 = 0", ".filename = \"/bin/true\"",
            "event 4: handle_exit (tp/sched/sched_process_exit) cpu 0 pid 4242 at 3000 ns",
            ".duration_ns = 2000", "all 4 events run, 1 failed", "error: every event has run",
            "exec_start", // maps still answer after the end
        ] {
            #expect(result.stdout.contains(fragment), "missing '\(fragment)': \(result.stdout)")
        }
        // A mistake in the file stops the session before it starts, naming the line and field.
        let bad = try directory.file("bad.jsonl", #"{"program": "handle_exit", "argz": []}"# + "\n")
        var badArguments = arguments
        badArguments[badArguments.firstIndex(of: events)!] = bad
        let refused = try Self.debug(["quit"], badArguments)
        #expect(refused.status == 1 && refused.stderr.contains("line 1.argz: unknown field \"argz\""), "\(refused)")
        // The object has two programs: the one to debug must be named.
        let unnamed = try Self.debug(["quit"], Array(arguments[0...0]) + Array(arguments[3...]))
        #expect(unnamed.status == 1 && unnamed.stderr.contains("name the one to debug with --program"), "\(unnamed)")
        // `event` without --events.
        let plain = try Self.debug(
            ["event", "events", "quit"], [Examples.firewall, "--context", Examples.path("contexts/blocked_syn.json")])
        #expect(plain.stdout.contains("error: 'event' steps through the events of --events"), "\(plain)")
        #expect(plain.stdout.contains("error: no --events file"), "\(plain)")
    }
}
