import Foundation
import Testing

/// `mimic run OBJ.o --system FILE --events FILE.jsonl` over the tracing fixtures.
@Suite struct EventsCommandTests {
    static func path(_ name: String) -> String {
        MimicCLI.packageRoot.appendingPathComponent("Tests/MimicLinuxTests/Fixtures/tracing/\(name)").path
    }

    /// The fixture's run with its own BTF as the target (the same output on every machine).
    static func run(_ fixture: String, _ extra: [String] = []) throws -> CLIResult {
        try MimicCLI.run(
            [
                "run", path("\(fixture).bpf.o"), "--system", path("system.json"), "--events",
                path("\(fixture).events.jsonl"), "--btf", path("\(fixture).bpf.o"),
            ] + extra)
    }

    @Test func bootstrapRecordsAreDecodedAsJSONLines() throws {
        let result = try Self.run("bootstrap", ["--json"])
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(result)")
        let records = try lines.map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        #expect(records[0]["program"] as? String == "handle_exec")
        #expect(records[0]["pid"] as? Int == 4242)
        let first = try #require((records[0]["records"] as? [[String: Any]])?.first)
        #expect(
            first["formatted"] as? String
                == "struct event { .pid = 4242, .ppid = 1200, .exit_code = 0, .duration_ns = 0, .comm = \"ls\", .filename = \"/usr/bin/ls\", .exit_event = false }"
        )
        #expect(records[1]["records"] == nil)
        #expect(records[3]["events"] as? Int == 3 && records[3]["failed"] as? Int == 0)
    }

    @Test func iteratorOutputAndTraceLinesArePrinted() throws {
        let iterator = try Self.run("task_iter")
        #expect(iterator.status == 0, "\(iterator)")
        #expect(iterator.stdout.contains("    4242     4243     1200     1000 ls\n"), "\(iterator)")
        #expect(iterator.stdout.contains("[0] { tasks_seen = 0 } -> { tasks_seen = 4 }"), "\(iterator)")
        let ksyscall = try Self.run("ksyscall")
        #expect(ksyscall.status == 0, "\(ksyscall)")
        #expect(
            ksyscall.stdout.contains("KILL syscall called by PID 1200 (bash) for PID 4242 with signal 15."),
            "\(ksyscall)")
    }

    /// `mimic trace --events`: handle_exit's runs are traced, handle_exec's run untraced before
    /// them and leaves the start time handle_exit reads (the ring buffer record of pid 4242).
    @Test func traceReplaysEventsTracingOneProgram() throws {
        let arguments = [
            "trace", Self.path("bootstrap.bpf.o"), "--program", "handle_exit", "--system", Self.path("system.json"),
            "--events", Self.path("bootstrap.events.jsonl"), "--btf", Self.path("bootstrap.bpf.o"),
        ]
        let result = try MimicCLI.run(arguments)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("=== event 1: handle_exec, not traced: r0 = 0 ==="), "\(result)")
        #expect(result.stdout.contains("=== event 2: handle_exit ==="), "\(result)")
        #expect(result.stdout.contains("=== event 3: handle_exit ==="), "\(result)")
        #expect(result.stdout.contains("call bpf_ringbuf_reserve#131"), "\(result)")
        #expect(result.stdout.contains(".duration_ns = 4000000"), "\(result)")
        let several = try MimicCLI.run(Array(arguments[0...1]) + Array(arguments[4...]))
        #expect(several.status != 0 && several.stderr.contains("name the one to trace with --program"), "\(several)")
    }

    @Test func mistakesAreNamed() throws {
        let directory = try TemporaryDirectory()
        let events = try directory.file(
            "events.jsonl", #"{"attach": "kprobe/do_unlinkat", "pid": 4242, "argz": []}"# + "\n")
        let unknown = try MimicCLI.run([
            "run", Self.path("kprobe.bpf.o"), "--system", Self.path("system.json"), "--events", events,
        ])
        #expect(unknown.status == 1, "\(unknown)")
        #expect(unknown.stderr.contains("line 1.argz: unknown field \"argz\""), "\(unknown)")

        let missingTask = try directory.file("task.jsonl", #"{"attach": "kprobe/do_unlinkat", "pid": 9}"# + "\n")
        let noTask = try MimicCLI.run([
            "run", Self.path("kprobe.bpf.o"), "--system", Self.path("system.json"), "--events", missingTask,
        ])
        #expect(noTask.status == 1, "\(noTask)")
        #expect(noTask.stdout.contains("no task with pid 9"), "\(noTask)")

        let system = try directory.file("system.json", #"{"tasks": [{"pid": 1, "comm": "x", "uid": "root"}]}"#)
        let badSystem = try MimicCLI.run([
            "run", Self.path("kprobe.bpf.o"), "--system", system, "--events", events,
        ])
        #expect(badSystem.status == 1, "\(badSystem)")
        #expect(badSystem.stderr.contains("tasks[0].uid"), "\(badSystem)")

        let both = try MimicCLI.run([
            "run", Self.path("kprobe.bpf.o"), "--events", events, "--context", system,
        ])
        #expect(both.status == 2, "\(both)")
    }
}
