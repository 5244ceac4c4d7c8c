import Foundation
import MimicCore
import MimicJSON
import MimicLinux
import Testing

/// The libbpf-bootstrap-style fixtures of `Fixtures/tracing` (`build.sh` rebuilds them), each
/// run over its events file against `system.json`, through the library API the CLI's
/// `--events` uses. Each runs twice when the running kernel's BTF is readable: CO-RE against the
/// object's own BTF and against `/sys/kernel/btf/vmlinux`, which must give the same output.
@Suite struct TracingFixtureTests {
    static var directory: URL { Fixture.directory.appendingPathComponent("tracing", isDirectory: true) }

    /// What one event left.
    struct Outcome {
        var r0: [UInt64] = []
        var trace: [String] = []
        var records: [String] = []
        var output = ""
        /// The object's `.bss` after the event (set on the last event only), formatted.
        var bss = ""
    }

    /// The running kernel's BTF, when readable (parsed once).
    static let kernelBTF: BTF? = {
        guard let data = FileManager.default.contents(atPath: "/sys/kernel/btf/vmlinux") else { return nil }
        return try? BTF(bytes: [UInt8](data))
    }()

    /// Whether to run against the running kernel's BTF (true) or the object's own: both when
    /// the kernel's is readable.
    static var targets: [Bool] { kernelBTF == nil ? [false] : [false, true] }

    static func system() throws -> EmulatedSystem {
        try EmulatedSystem(bytes: [UInt8](try Data(contentsOf: directory.appendingPathComponent("system.json"))))
    }

    /// Runs fixture `name` over `<name>.events.jsonl`; `globals` configures it first. The
    /// records of the ring buffer `ring` are decoded as the struct `record`.
    static func run(
        _ name: String, kernel: Bool, globals: [String: JSONValue] = [:], events: String? = nil,
        ring: String = "rb", record: String = "event", cpus: Int = 1
    ) throws -> [Outcome] {
        let target = kernel ? kernelBTF : nil
        let bytes = [UInt8](try Data(contentsOf: directory.appendingPathComponent("\(name).bpf.o")))
        let own = try ObjectFile(bytes: bytes).btf
        let kernelBTF = target ?? own
        var object = try ObjectFile(bytes: bytes, targetBTF: kernelBTF)
        var configuration = ObjectConfiguration()
        for (name, value) in globals { configuration.globals.append(.init(name: name, value: value)) }
        try object.configure(configuration)
        let system = try system()
        let emulator = LinuxEmulator(
            configuration: LinuxConfiguration(
                cpuCount: cpus, randomSeed: 1, kernel: system.kernel, system: system, kernelBTF: kernelBTF))
        let vm = VM(emulator: emulator)
        let loaded = try vm.load(object: object)
        let builder = TraceEvents(emulator: emulator, vm: vm, objectBTF: object.btf, registers: .x86_64)
        let events = try TraceEvent.parse(
            lines: events.map { Array($0.utf8) }
                ?? [UInt8](try Data(contentsOf: directory.appendingPathComponent("\(name).events.jsonl"))))
        var outcomes: [Outcome] = []
        for event in events {
            let source = try TraceEvents.program(for: event, in: object, default: object.programs.first)
            var outcome = Outcome()
            for context in try builder.contexts(event, program: source) {
                let process = try vm.makeProcess(
                    for: try loaded.program(named: source.name), context: context, vCPU: event.cpu)
                outcome.r0.append(try process.run())
                let state = try #require(LinuxProcessState.of(process))
                outcome.trace += state.traceOutput
                outcome.output += String(decoding: state.seqOutput, as: UTF8.self)
            }
            if let ring = emulator.map(named: ring) as? RingBufferMap, let btf = object.btf,
                let type = btf.typeID(named: record, kind: .structure)
            {
                outcome.records = ring.drainRecords().map { btf.format($0, as: type) }
            }
            outcomes.append(outcome)
        }
        if let btf = object.btf, let section = btf.typeID(named: ".bss", kind: .dataSection),
            let bss = loaded.globals[".bss"]
        {
            outcomes[outcomes.count - 1].bss = btf.format(bss.storage.bytes, as: section)
        }
        return outcomes
    }

    /// Runs `name` over `events` and returns its `.bss` after the last, formatted.
    static func loadedRun(_ name: String, kernel: Bool, events: String) throws -> String {
        try run(name, kernel: kernel, events: events).last?.bss ?? ""
    }

    @Test(arguments: targets) func minimal(kernel: Bool) throws {
        let outcomes = try Self.run("minimal", kernel: kernel, globals: ["my_pid": .number("4242")])
        #expect(outcomes.map(\.trace) == [["BPF triggered from PID 4242."], []])
    }

    @Test(arguments: targets) func bootstrap(kernel: Bool) throws {
        let outcomes = try Self.run("bootstrap", kernel: kernel)
        #expect(outcomes.count == 3)
        #expect(
            outcomes[0].records == [
                "{ .pid = 4242, .ppid = 1200, .exit_code = 0, .duration_ns = 0, .comm = \"ls\", .filename = \"/usr/bin/ls\", .exit_event = false }"
            ])
        // A thread's exit is ignored; the process's reports its lifetime and exit status.
        #expect(outcomes[1].records.isEmpty)
        #expect(
            outcomes[2].records == [
                "{ .pid = 4242, .ppid = 1200, .exit_code = 2, .duration_ns = 4000000, .comm = \"ls\", .filename = \"\", .exit_event = true }"
            ])
    }

    /// A perf_event sample of each task: its kernel stack (symbols of the system file plus
    /// their offsets) and user stack, innermost first; a task without stacks gets none.
    @Test(arguments: targets) func profile(kernel: Bool) throws {
        let outcomes = try Self.run("profile", kernel: kernel, ring: "events", record: "stacktrace_event")
        #expect(outcomes.map(\.r0) == [[0], [0]])
        #expect(
            outcomes.map(\.records) == [
                [
                    "{ .pid = 4242, .cpu_id = 0, .comm = \"ls\", .kstack_sz = 16, .ustack_sz = 24, .kstack = [18446744071583042095, 18446744071579577936, 0, 0], .ustack = [4198710, 4198400, 139637977784368, 0] }"
                ],
                [
                    "{ .pid = 1200, .cpu_id = 0, .comm = \"bash\", .kstack_sz = 0, .ustack_sz = 0, .kstack = [0, 0, 0, 0], .ustack = [0, 0, 0, 0] }"
                ],
            ])
    }

    @Test(arguments: targets) func kprobe(kernel: Bool) throws {
        let outcomes = try Self.run("kprobe", kernel: kernel)
        #expect(
            outcomes.map(\.trace) == [
                ["KPROBE ENTRY pid = 4242, filename = /tmp/notes.txt"], ["KPROBE EXIT: pid = 4242, ret = -2"],
            ])
    }

    @Test(arguments: targets) func fentry(kernel: Bool) throws {
        let outcomes = try Self.run("fentry", kernel: kernel)
        #expect(
            outcomes.map(\.trace) == [
                ["fentry: pid = 4242, filename = /tmp/notes.txt"],
                ["fexit: pid = 4242, filename = /tmp/notes.txt, ret = 0"],
            ])
    }

    @Test(arguments: targets) func ksyscall(kernel: Bool) throws {
        let outcomes = try Self.run("ksyscall", kernel: kernel)
        #expect(
            outcomes.map(\.trace) == [
                ["KILL syscall called by PID 1200 (bash) for PID 4242 with signal 15."], [],
                ["tgkill syscall called by PID 1200 (bash) for thread id 4243 with pid 4242 and signal 9."],
            ])
    }

    @Test(arguments: targets) func taskIterator(kernel: Bool) throws {
        let outcomes = try Self.run("task_iter", kernel: kernel)
        #expect(outcomes.count == 1)
        #expect(outcomes[0].r0.count == 5) // four tasks, then the NULL task
        #expect(
            outcomes[0].output == """
                    tgid      pid     ppid      uid comm
                       1        1        0        0 systemd
                    1200     1200        1     1000 bash
                    4242     4242     1200     1000 ls
                    4242     4243     1200     1000 ls
                4 tasks

                """)
    }

    /// An `iter/bpf_map_elem` program over the hash map a tracepoint filled: one run per
    /// element and a last with NULL key and value; its writes through the value pointer reach
    /// the map, so the second iteration sees the counts it reset. A per-CPU array's iterator
    /// gets every CPU's value, each padded to 8 bytes.
    @Test(arguments: targets) func mapElementIterator(kernel: Bool) throws {
        let outcomes = try Self.run("map_iter", kernel: kernel, globals: ["num_cpus": .number("2")], cpus: 2)
        #expect(outcomes.count == 6)
        #expect(outcomes[3].r0 == [0, 0, 0]) // two elements, then the end
        #expect(outcomes[3].output == "  pid writes\n 4242      2\n 1200      1\n3 writes\n")
        #expect(outcomes[4].output == "  pid writes\n 4242      0\n 1200      0\n3 writes\n")
        #expect(outcomes[5].r0 == [0, 0, 0])
        #expect(outcomes[5].output == "[0] cpu 0: 2\n[0] cpu 1: 1\n[1] cpu 0: 0\n[1] cpu 1: 0\n")
        #expect(outcomes[5].bss == "{ total = 3 }")
    }

    /// The map an iter/bpf_map_elem event names must be one it can walk.
    @Test func mapElementIteratorMistakesAreNamed() throws {
        for (events, message) in [
            (#"{"program": "dump_writes"}"#, #"names the map it iterates: "map": NAME"#),
            (#"{"program": "dump_writes", "map": "nope"}"#, "line 1.map: no map named nope"),
            (#"{"program": "count_write", "map": "writes"}"#, "line 1.map: only iter/bpf_map_elem events name a map"),
        ] {
            do {
                _ = try Self.run("map_iter", kernel: false, events: events)
                Issue.record("accepted \(events)")
            } catch {
                #expect("\(error)".contains(message), "\(error)")
            }
        }
    }

    /// fentry/fexit arguments by name come from the traced function's prototype in the kernel's
    /// BTF (the object's has none: BPF_PROG's inner function is inlined).
    @Test func fentryArgumentsByName() throws {
        let events = """
            {"program": "do_unlinkat", "pid": 4242, "args": {"dfd": -100, "name": {"struct": "filename", "fields": {"name": {"string": "/a"}}}}}
            {"program": "do_unlinkat_exit", "pid": 4242, "args": {"name": {"struct": "filename", "fields": {"name": {"string": "/b"}}}, "ret": -13}}
            """
        if Self.kernelBTF != nil {
            let outcomes = try Self.run("fentry", kernel: true, events: events)
            #expect(
                outcomes.map(\.trace) == [
                    ["fentry: pid = 4242, filename = /a"], ["fexit: pid = 4242, filename = /b, ret = -13"],
                ])
        }
        #expect(throws: JSONError.self) { try Self.run("fentry", kernel: false, events: events) }
    }

    @Test(arguments: targets) func uprobe(kernel: Bool) throws {
        let outcomes = try Self.run("uprobe", kernel: kernel)
        #expect(
            outcomes.map(\.trace) == [
                ["uprobed_add ENTRY: a = 3, b = 4"], ["uprobed_add EXIT: return = 7"],
                ["uprobed_sub ENTRY: a = 10, b = 4"], ["uprobed_sub EXIT: return = 6"],
                // A user string from the task's memory; an address outside it faults.
                ["puts(hello from ls) 14 bytes"], ["puts() -14 bytes"],
            ])
    }

    /// tp_btf arguments by name (`__bpf_trace_sched_process_exec` in the kernel's BTF), and a
    /// task_struct read through its BTF pointer.
    @Test func tpBTFArgumentsAndTaskPointer() throws {
        if Self.kernelBTF != nil {
            let bss = try Self.loadedRun(
                "exec_btf", kernel: true,
                events: try String(
                    contentsOf: Self.directory.appendingPathComponent("exec_btf.events.jsonl"), encoding: .utf8))
            #expect(
                bss == "{ exec_seen = { .pid = 4242, .ppid = 1200, .old_pid = 4242, .uid = 1000, .comm = \"ls\" } }")
        }
        // Positionally, the object's own BTF is enough.
        let events = #"{"program": "on_exec", "pid": 4242, "args": [{"task": 4242}, 4242, 0]}"#
        for kernel in Self.targets {
            let object = try Self.loadedRun("exec_btf", kernel: kernel, events: events)
            #expect(
                object == "{ exec_seen = { .pid = 4242, .ppid = 1200, .old_pid = 4242, .uid = 1000, .comm = \"ls\" } }")
        }
    }
}
