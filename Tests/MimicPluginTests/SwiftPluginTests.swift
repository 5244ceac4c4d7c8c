import Foundation
import MimicCore
import MimicLinux
import Testing

/// The Swift sample plugin (Examples/Plugins/swift-counter), built once with SwiftPM.
@Suite(.serialized) struct SwiftPluginTests {
    init() { PluginFixtures.quietLogs }

    func library() throws -> PluginLibrary {
        try PluginLibrary.load(path: try PluginFixtures.counter.get())
    }

    @Test func describesItself() throws {
        let plugin = try library()
        #expect(plugin.name == "counter")
        #expect(plugin.helpers.map(\.id) == Array(20000...20005))
        #expect(
            plugin.helpers.map(\.name) == [
                "counter_add", "counter_get", "fnv1a", "greet", "make_buffer", "free_buffer",
            ])
    }

    @Test func programCallsTheHelpers() throws {
        let plugin = try library()
        let vm = VM(emulator: plugin.emulator)
        let loaded = try vm.load(object: PluginFixtures.object("Examples/Plugins/swift-counter/counter_demo.bpf.o"))
        let process = try vm.makeProcess(for: try loaded.program(named: "counter_demo"))
        // 0: every check passed (counters, FNV-1a, greeting, allocate / write / free).
        #expect(try process.run() == 0)
        // The freed buffer is gone from the process's memory.
        #expect(!process.memory.regions.contains { $0.name.hasPrefix("counter:") })
    }

    @Test func badPointerStopsTheProgramCleanly() throws {
        let plugin = try library()
        let vm = VM(emulator: plugin.emulator)
        let loaded = try vm.load(object: PluginFixtures.object("Examples/Plugins/swift-counter/counter_demo.bpf.o"))
        let error = try #require(throws: ExecutionError.self) {
            try vm.run(try loaded.program(named: "counter_bad_pointer"))
        }
        #expect(
            error.kind
                == .helperFailed(
                    id: 20002, name: "fnv1a",
                    failure: .message(
                        "fnv1a: cannot read the data: read of 8 bytes at 0x20: no region mapped")))

        // A freed plugin buffer faults like any stale VM address.
        let stale = try #require(throws: ExecutionError.self) {
            try vm.run(try loaded.program(named: "counter_use_after_free"))
        }
        guard stale.code == .memory, let fault = stale.kind.fault else {
            Issue.record("expected a memory fault, got \(stale)")
            return
        }
        #expect(fault.reason == .unmapped)
    }

    @Test func bothSamplesAndLinuxInOneVM() throws {
        let counter = try library()
        let kvstore = try PluginLibrary.load(path: try PluginFixtures.kvstore.get())
        let vm = VM(emulator: try CompositeEmulator([LinuxEmulator(), kvstore.emulator, counter.emulator]))
        // counter_add (Swift) of kv_count + 1 (C), + bpf_get_smp_processor_id (Linux).
        let program = try vm.load(
            Assembler.assemble(
                """
                call 10002
                mov %r2, %r0
                add %r2, 1
                mov %r1, 99
                call 20000
                mov %r6, %r0
                call 8
                add %r0, %r6
                exit
                """))
        let before = try vm.run(program)
        #expect(try vm.run(program) > before)
    }
}
