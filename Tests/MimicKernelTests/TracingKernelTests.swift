import Foundation
import MimicCore
import MimicJSON
@testable import MimicKernel
import MimicLinux
import Testing

/// Tracing programs the kernel runs through `BPF_PROG_TEST_RUN` with `ctx_in`
/// (`Fixtures/tracing/test_run.bpf.c`): a raw tracepoint program (the context is its `u64`
/// arguments) and a syscall program (a context struct), run by Mimic from events and by the
/// kernel from the same bytes: the return value and the `.bss` each leaves must agree.
/// (fentry / fexit programs need an attach BTF id to load, which `KernelBPF` does not pass.)
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
}
