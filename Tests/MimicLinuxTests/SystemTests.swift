import Foundation
import MimicCore
import MimicJSON
import MimicLinux
import Testing

/// The emulated system: the system file's checks, and the helpers that read the current task
/// (`Fixtures/tracing/system_helpers.bpf.c`).
@Suite struct SystemTests {
    static let systemFile = """
        {"kernel": {"namespace_device": 3, "symbols": {"do_sys_openat2": "0xffffffff81234000"}},
         "cgroups": [{"path": "/a", "id": 10}, {"path": "/a/b", "id": 11}],
         "tasks": [{"pid": 50, "comm": "app", "gid": 77, "cgroup": "/a/b",
                    "namespace": {"pid_ns": 4026532999, "pid": 5, "tgid": 5},
                    "kernel_stack": ["do_sys_openat2+0x10", "0xffffffff81000000"],
                    "files": [{"fd": 3, "path": "/var/log/app.log", "xattrs": {"user.kind": "journal"}}],
                    "memory": [{"address": "0x7fff0000", "string": "/tmp/x.txt", "writable": true},
                               {"address": "0x7ffe0000", "hex": "72 6f 00"}],
                    "regs": {"ip": "0x401136", "sp": "0x7ffd1000", "di": 3}}]}
        """

    static func system(_ text: String = systemFile) throws -> EmulatedSystem {
        try EmulatedSystem(bytes: Array(text.utf8))
    }

    @Test func systemFileIsRead() throws {
        let system = try Self.system()
        let task = try #require(system.task(pid: 50))
        #expect(task.tgid == 50 && task.comm == "app" && task.gid == 77)
        #expect(system.cgroupAncestry(of: task.cgroup) == [1, 10, 11])
        #expect(task.kernelStack.map { system.address(of: $0) } == [0xFFFF_FFFF_8123_4010, 0xFFFF_FFFF_8100_0000])
        #expect(task.memory[1].bytes == [0x72, 0x6F, 0])
        #expect(system.namespaceDevice == 3)
    }

    @Test(arguments: [
        (#"{"task": []}"#, "unknown field \"task\""),
        (#"{"tasks": [{"pid": 1, "comm": "a", "colour": 1}]}"#, "tasks[0].colour: unknown field"),
        (#"{"tasks": [{"pid": 1, "comm": "a"}, {"pid": 1, "comm": "b"}]}"#, "pid 1 is listed twice"),
        (#"{"tasks": [{"pid": 1, "comm": "a", "cgroup": "/nope"}]}"#, "no cgroup /nope"),
        (#"{"tasks": [{"pid": 1, "comm": "a-very-long-name-indeed"}]}"#, "longer than 15 bytes"),
        (#"{"tasks": [{"pid": 1, "comm": "a", "kernel_stack": ["nosuch+0x4"]}]}"#, "kernel.symbols does not list"),
        (
            #"{"tasks": [{"pid": 1, "comm": "a", "memory": [{"address": 16, "string": "ab"}, {"address": 17, "string": "c"}]}]}"#,
            "overlaps"
        ),
        (#"{"cgroups": [{"path": "/a", "id": 1}]}"#, "also cgroup /'s"),
        (#"{"kernel": {"version": "six"}}"#, "expected a release"),
        (#"{"tasks": [{"pid": 1, "comm": "a", "regs": {"ip": "here"}}]}"#, "tasks[0].regs.ip: expected an integer"),
        (
            #"{"tasks": [{"pid": 1, "comm": "a", "files": [{"fd": 3, "path": "/x", "xattrs": {"user.a": 5}}]}]}"#,
            "tasks[0].files[0].xattrs"
        ),
        (
            #"{"tasks": [{"pid": 1, "comm": "a", "files": [{"fd": 3, "path": "/x", "xattrs": {"user.a": {"hex": "01", "b": 1}}}]}]}"#,
            "unknown field \"b\""
        ),
        (
            #"{"tasks": [{"pid": 1, "comm": "a", "files": [{"fd": 3, "path": "/x", "xattrs": {"user.a": {"hex": "01", "base64": "AQ=="}}}]}]}"#,
            "give exactly one of hex or base64"
        ),
        (
            #"{"tasks": [{"pid": 1, "comm": "a", "files": [{"fd": 3, "path": "/x", "xattrs": {"user.a": {"hex": "0g"}}}]}]}"#,
            "expected hex bytes"
        ),
        (
            #"{"tasks": [{"pid": 1, "comm": "a", "files": [{"fd": 3, "path": "/x"}, {"fd": 3, "path": "/y"}]}]}"#,
            "fd 3 is listed twice"
        ),
        (#"{"tasks": [{"pid": 1, "comm": "a", "files": [{"fd": -1, "path": "/x"}]}]}"#, "tasks[0].files[0].fd"),
        (#"{"tasks": [{"pid": 1, "comm": "a", "files": [{"fd": 3}]}]}"#, "tasks[0].files[0].path"),
        (#"{"tasks": [{"pid": 1, "comm": "a", "regs": [1, 2]}]}"#, "tasks[0].regs"),
    ])
    func systemFileMistakesAreNamed(text: String, message: String) throws {
        let error = try #require(throws: JSONError.self) { try Self.system(text) }
        #expect(error.description.contains(message), "\(error)")
    }

    @Test func helpersReadTheCurrentTask() throws {
        let url = Fixture.directory.appendingPathComponent("tracing/system_helpers.bpf.o")
        var object = try ObjectFile(contentsOf: url.path)
        var configuration = ObjectConfiguration()
        configuration.globals = [
            .init(name: "ns_dev", value: .number("3")), .init(name: "ns_ino", value: .number("4026532999")),
        ]
        try object.configure(configuration)
        let system = try Self.system()
        let emulator = LinuxEmulator(
            configuration: LinuxConfiguration(cpuCount: 1, system: system, kernelBTF: object.btf))
        let vm = VM(emulator: emulator)
        let loaded = try vm.load(object: object)
        let events = TraceEvents(emulator: emulator, vm: vm, objectBTF: object.btf, registers: .x86_64)
        let event = try TraceEvent(
            json: JSONField(try JSONValue.parse(#"{"pid": 50, "args": [-100, "0x7fff0000"]}"#), path: "event"))
        for context in try events.contexts(event, program: try #require(object.programs.first)) {
            let process = try vm.makeProcess(for: loaded.program(named: "observe"), context: context)
            #expect(try process.run() == 0)
            #expect(context.environment.functionAddress == 0xFFFF_FFFF_8123_4000)
        }
        let btf = try #require(object.btf)
        let bss = try #require(emulator.map(named: ".bss"))
        let value = try #require(bss.value(forKey: [0, 0, 0, 0]))
        let section = try #require(btf.typeID(named: ".bss", kind: .dataSection))
        #expect(
            btf.format(value, as: section)
                == "{ seen = { .ns_ret = 0, .ns = { .pid = 5, .tgid = 5 }, .ns_bad_ret = -22, .cgroup_id = 11, .ancestor = [1, 10, 11, 0], .path_len = 17, .path = \"/var/log/app.log\", .user_len = 11, .user = \"/tmp/x.txt\", .user_fault = -14, .write_ret = 0, .write_ro_ret = -14, .copy_ret = 0, .copied = \"/TMP/x.t\", .leader_pid = 50, .cred_gid = 77, .user_ip = 4198710, .user_sp = 2147291136, .user_di = 3, .xattr_len = 7, .xattr = \"journal\", .xattr_small = -34, .xattr_missing = -61, .xattr_denied = -1 }, xattr_buffer = \"journal\", xattr_tiny = \"\" }"
        )
        // bpf_probe_write_user's change persists in the task's memory for later events.
        let environment = try emulator.environment(forTask: 50, in: vm)
        #expect(environment.userMemory?.readString(0x7FFF_0000, limit: 32) == Array("/TMP/x.txt".utf8))
    }

    /// A register `struct pt_regs` does not have stops the load, naming the task and register.
    @Test func unknownRegistersAreNamed() throws {
        let url = Fixture.directory.appendingPathComponent("tracing/system_helpers.bpf.o")
        let object = try ObjectFile(contentsOf: url.path)
        let system = try Self.system(#"{"tasks": [{"pid": 7, "comm": "a", "regs": {"rip": 1}}]}"#)
        let vm = VM(
            emulator: LinuxEmulator(
                configuration: LinuxConfiguration(cpuCount: 1, system: system, kernelBTF: object.btf)))
        let error = try #require(throws: (any Error).self) { try vm.load(object: object) }
        #expect("\(error)".contains("task 7: register rip is not an 8-byte member of struct pt_regs"), "\(error)")
    }

    @Test func taskStructNeedsAKernelBTF() throws {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1, system: try Self.system()))
        let vm = VM(emulator: emulator)
        #expect(try emulator.kernelMemory(in: vm) == nil)
        let environment = try emulator.environment(forTask: 50, in: vm)
        #expect(environment.taskAddress == 0 && environment.pid == 50 && environment.cgroupAncestry == [1, 10, 11])
        #expect(throws: SetupError.self) { try emulator.environment(forTask: 51, in: vm) }
    }

    /// A generic context whose pid is a task of the system runs as that task.
    @Test func genericContextsRunAsTheSystemsTask() throws {
        let url = Fixture.directory.appendingPathComponent("tracing/system_helpers.bpf.o")
        let object = try ObjectFile(contentsOf: url.path)
        let emulator = LinuxEmulator(
            configuration: LinuxConfiguration(cpuCount: 1, system: try Self.system(), kernelBTF: object.btf))
        let vm = VM(emulator: emulator)
        let loaded = try vm.load(object: object)
        let context = GenericContext(
            memories: [("regs", .block([UInt8](repeating: 0, count: 168)))], registers: [1: "regs"],
            environment: TaskEnvironment(pid: 50, tgid: 50, comm: "other"))
        let process = try vm.makeProcess(for: loaded.program(named: "observe"), context: context)
        #expect(try process.run() == 0)
        let state = try #require(LinuxProcessState.of(process))
        #expect(state.environment.comm == "app" && state.environment.taskAddress != 0)
        let btf = try #require(object.btf)
        let value = try #require(emulator.map(named: ".bss")?.value(forKey: [0, 0, 0, 0]))
        let text = btf.format(value, as: try #require(btf.typeID(named: ".bss", kind: .dataSection)))
        #expect(text.contains(".cgroup_id = 11") && text.contains(".leader_pid = 50"), "\(text)")
    }
}
