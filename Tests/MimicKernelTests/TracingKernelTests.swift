import Foundation
import MimicCore
import MimicJSON
@testable import MimicKernel
import MimicLinux
import Testing

/// Tracing programs the kernel runs through `BPF_PROG_TEST_RUN` with `ctx_in`
/// (`Fixtures/tracing/test_run.bpf.c`): a raw tracepoint program (the context is its `u64`
/// arguments) and a syscall program (a context struct), run by Mimic from events and by the
/// kernel from the same bytes: the return value and the `.bss` each leaves must agree. And
/// fentry / fexit / fmod_ret programs (`Fixtures/tracing/fentry_test_run.bpf.c`) on the functions
/// the kernel's test run of a tracing program calls (`bpf_fentry_test1`.., `bpf_modify_return_test`):
/// loaded with their attach BTF id, attached, and triggered by `BPF_PROG_TEST_RUN`; Mimic runs
/// each from an event with the arguments the kernel passes.
@Suite(.enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct TracingKernelTests {
    static var path: String {
        Fixtures.directories[1].appendingPathComponent("tracing/test_run.bpf.o").path
    }

    /// Runs `program` in Mimic on `event` (a JSON line) and in the kernel on `ctx_in`.
    static func compare(_ program: String, event: String) throws {
        let object = try ObjectFile(contentsOf: path)
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1))
        let vm = VM(emulator: emulator)
        let loaded = try vm.load(object: object)
        let builder = TraceEvents(emulator: emulator, vm: vm, objectBTF: object.btf)
        let parsed = try TraceEvent(json: JSONField(try JSONValue.parse(event), path: "event"))
        let source = try #require(object.program(named: program))
        let context = try #require(try builder.contexts(parsed, program: source).first)
        let process = try vm.makeProcess(for: loaded.program(named: program), context: context)
        let mimicR0 = try process.run()
        let mimicBSS = try #require(loaded.globals[".bss"]).storage.bytes

        let kernelObject = try KernelObject(object: object)
        let kernelR0 = try kernelObject.program(named: program).testRunSyscall(context: context.bytes)
        let kernelBSS = try #require(try kernelObject.maps[".bss"]?.lookup(key: [0, 0, 0, 0]))
        #expect(UInt32(truncatingIfNeeded: mimicR0) == kernelR0)
        #expect(mimicBSS == kernelBSS)
        #expect(mimicBSS.contains { $0 != 0 }, "the program wrote its results")
    }

    @Test(arguments: [
        #"{"program": "on_args", "args": [1311768467463790320, -123456789, 4000000000]}"#,
        #"{"program": "on_args", "args": ["0xffffffffffffffff", 7, 1]}"#,
    ])
    func rawTracepointArgumentsAgree(event: String) throws {
        try Self.compare("on_args", event: event)
    }

    @Test func syscallContextAgrees() throws {
        try Self.compare(
            "on_syscall",
            event:
                #"{"program": "on_syscall", "data": {"hex": "05 00 00 00 02 00 00 00 0a 00 00 00 00 00 00 00 6d 69 6d 69 63 00 00 00 00 00 00 00 00 00 00 00"}}"#
        )
    }

    /// Loads and attaches the tracing programs `names`; nil (printed) when the kernel refuses
    /// them with `EPERM` before its verifier ran (no log): a policy of this kernel (lockdown, an
    /// LSM) that forbids tracing programs, while the other tests of the suite still compare.
    static func attach(_ names: [String], of object: KernelObject) throws -> [KernelFileDescriptor]? {
        var links: [KernelFileDescriptor] = []
        for name in names {
            switch Result(catching: { () throws(KernelError) in try object.program(named: name).attachTracing() }) {
            case .success(let link): links.append(link)
            case .failure(let error):
                if case .systemCall(_, let errno, _) = error, errno == 1 {
                    print("◇ fentry_test_run.bpf.o: not compared, the kernel refuses tracing programs here: \(error)")
                    return nil
                }
                throw error
            }
        }
        return links
    }

    static var fentryPath: String {
        Fixtures.directories[1].appendingPathComponent("tracing/fentry_test_run.bpf.o").path
    }

    /// The calls `bpf_prog_test_run_tracing` makes (net/bpf/test_run.c), as events: fexit
    /// programs get the return value last; fmod_ret's first program sees 0 as the return so far.
    static let fentryEvents = [
        #"{"program": "on_test1", "args": [1]}"#,
        #"{"program": "on_test3", "args": [4, 5, 6]}"#,
        #"{"program": "on_test6", "args": [16, 17, 18, 19, 20, 21]}"#,
        #"{"program": "on_test2_exit", "args": [2, 3, 5]}"#,
        #"{"program": "on_test5_exit", "args": [11, 12, 13, 14, 15, 65]}"#,
    ]

    /// Every fentry / fexit program attached at once and one test run of the fentry kind (each
    /// runs once), then the fmod_ret program's: the `.bss` both sides leave must agree, and the
    /// test run's result must be what the program's return value makes of it.
    @Test(arguments: [0, 21])
    func fentryFexitAndModifyReturnAgree(override: Int) throws {
        var object = try ObjectFile(contentsOf: Self.fentryPath)
        var configuration = ObjectConfiguration()
        configuration.globals = [.init(name: "fmod_override", value: .number("\(override)"))]
        try object.configure(configuration)

        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1))
        let vm = VM(emulator: emulator)
        let loaded = try vm.load(object: object)
        let builder = TraceEvents(emulator: emulator, vm: vm, objectBTF: object.btf)
        var modifyR0: UInt64 = 0
        for text in Self.fentryEvents + [#"{"program": "on_modify_return", "args": [1, 0, 0]}"#] {
            let event = try TraceEvent(json: JSONField(try JSONValue.parse(text), path: "event"))
            let name = try #require(event.program)
            let source = try #require(object.program(named: name))
            let context = try #require(try builder.contexts(event, program: source).first)
            let r0 = try vm.makeProcess(for: loaded.program(named: name), context: context).run()
            if name == "on_modify_return" { modifyR0 = r0 } else { #expect(r0 == 0) }
        }
        let mimicBSS = try #require(loaded.globals[".bss"]).storage.bytes
        let btf = try #require(object.btf)
        let section = try #require(btf.typeID(named: ".bss", kind: .dataSection))
        // What the kernel's calls give (bpf_get_func_ret is -EOPNOTSUPP in fentry).
        #expect(
            btf.format(mimicBSS, as: section)
                == "{ fentry_seen = { .t1_a = 1, .t1_count = 1, .t3_sum = 4005006, .t6_count = 6, .t6_args = [16, 17, 18, 19, 20, 21], .t6_arg_past_end = -22, .t6_ret_error = -95, .t2_ret = 5, .t2_count = 2, .t2_ret_helper = 5, .t2_ret_status = 0, .t5_mixed = 12107526453263, .t5_ret = 65, .fmod_a = 1, .fmod_prev_ret = 0, .fmod_count = 2, .calls = 6 } }"
        )

        let kernelObject = try KernelObject(object: object)
        let names = ["on_test1", "on_test3", "on_test6", "on_test2_exit", "on_test5_exit", "on_modify_return"]
        guard let links = try Self.attach(names, of: kernelObject) else { return }
        let fentryRun = try kernelObject.program(named: "on_test1").testRunSyscall()
        #expect(fentryRun == 0)
        let modifyRun = try kernelObject.program(named: "on_modify_return").testRunSyscall()
        let kernelBSS = try #require(try kernelObject.maps[".bss"]?.lookup(key: [0, 0, 0, 0]))
        withExtendedLifetime(links) {}

        #expect(mimicBSS == kernelBSS, "kernel: \(btf.format(kernelBSS, as: section))")
        // bpf_modify_return_test(1, &b) returns 1 + (b + 1) = 4 and bumps b (a side effect)
        // unless the program's non-zero return replaces it; bpf_modify_return_test2(1, &b, 3, 4,
        // 5, 6, 7), which nothing replaces, adds 29 and another side effect.
        let replaced = UInt32(truncatingIfNeeded: modifyR0) != 0
        let result = (replaced ? UInt32(truncatingIfNeeded: modifyR0) : 4) &+ 29
        let sideEffects: UInt32 = replaced ? 1 : 2
        #expect(modifyRun == sideEffects << 16 | result & 0xFFFF, "kernel retval 0x\(String(modifyRun, radix: 16))")
    }
}
