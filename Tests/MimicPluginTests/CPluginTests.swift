import Foundation
import MimicCore
import MimicLinux
import Testing

/// The C sample plugin (Examples/Plugins/c-kvstore): built with clang, loaded with dlopen, its
/// helpers called from an eBPF program.
@Suite(.serialized) struct CPluginTests {
    init() { PluginFixtures.quietLogs }

    func library() throws -> PluginLibrary {
        try PluginLibrary.load(path: try PluginFixtures.kvstore.get())
    }

    @Test func describesItself() throws {
        let plugin = try library()
        #expect(plugin.name == "kvstore")
        #expect(plugin.version == "1.0")
        #expect(plugin.abiVersion == PluginLibrary.hostABI)
        #expect(plugin.helpers.map(\.id) == Array(10000...10005))
        #expect(
            plugin.helpers.map(\.name) == ["kv_put", "kv_get", "kv_count", "clock_ns", "log_message", "call_count"])
        #expect(plugin.mapTypes.isEmpty)
        // Loading again gives the same library (its entry ran once).
        #expect(try library() === plugin)
    }

    @Test func programCallsTheHelpers() throws {
        let plugin = try library()
        let vm = VM(emulator: plugin.emulator)
        let loaded = try vm.load(object: PluginFixtures.object("Examples/Plugins/c-kvstore/kv_demo.bpf.o"))
        let program = try loaded.program(named: "kv_demo")
        let process = try vm.makeProcess(for: program, context: MemoryContext([]))
        // value 41 + 1, 2 keys, 8 helper calls in this process (the plugin's process_data).
        #expect(try process.run() == 802_042)
        let messages = plugin.emulator.messages(of: process)
        #expect(messages.map(\.message) == ["hello from eBPF"])
        #expect(messages.first?.level == .info)
        #expect(messages.first?.plugin == "kvstore")
        // A second process starts its own call count.
        #expect(try vm.run(program) == 802_042)
    }

    @Test func badPointerStopsTheProgramCleanly() throws {
        let plugin = try library()
        let vm = VM(emulator: plugin.emulator)
        let loaded = try vm.load(object: PluginFixtures.object("Examples/Plugins/c-kvstore/kv_demo.bpf.o"))
        let process = try vm.makeProcess(for: try loaded.program(named: "kv_bad_pointer"))
        let error = try #require(throws: ExecutionError.self) { try process.run() }
        guard error.code == .helperFailed, let id = error.kind.helperID, let name = error.kind.helperName,
            let failure = error.kind.failure
        else {
            Issue.record("expected a helper failure, got \(error)")
            return
        }
        #expect(id == 10001)
        #expect(name == "kv_get")
        #expect(failure.description.hasPrefix("kv_get: cannot read the key: read of 4 bytes at 0x10: no region mapped"))
        #expect(error.description.contains("helper kv_get (#10001) failed"))
    }

    @Test func combinesWithTheLinuxEmulator() throws {
        let plugin = try library()
        let emulator = try CompositeEmulator([LinuxEmulator(), plugin.emulator])
        #expect(emulator.name == "linux+kvstore")
        #expect(emulator.mapProvider != nil)
        #expect(emulator.helper(id: 10001)?.name == "kv_get")
        #expect(emulator.helper(id: 6)?.name == "bpf_trace_printk")
        let vm = VM(emulator: emulator)
        // bpf_get_smp_processor_id (Linux) + kv_count (plugin, 2 keys after kv_demo ran).
        let program = try vm.load(
            Assembler.assemble(
                """
                call 8
                mov %r6, %r0
                call 10002
                lsh %r6, 8
                add %r0, %r6
                exit
                """))
        let loaded = try vm.load(object: PluginFixtures.object("Examples/Plugins/c-kvstore/kv_demo.bpf.o"))
        _ = try vm.run(try loaded.program(named: "kv_demo"))
        let process = try vm.makeProcess(for: program, vCPU: 1)
        #expect(try process.run() == 0x100 + 2)
    }

    @Test func pluginHelpersReachLinuxMapValues() throws {
        let plugin = try library()
        let linux = LinuxEmulator()
        let vm = VM(emulator: try CompositeEmulator([linux, plugin.emulator]))
        let loaded = try vm.load(object: PluginFixtures.object("Tests/MimicPluginTests/Fixtures/maps_and_plugin.o"))
        #expect(try vm.run(try loaded.program(named: "maps_and_plugin")) == 1234)
        // The plugin wrote the value into the map's own storage.
        let table = try #require(linux.map(named: "table"))
        let value = try #require(table.value(forKey: [0, 0, 0, 0]))
        #expect(Array(value[0..<3]) == Array("map".utf8))
        #expect(value[8..<16].reversed().reduce(0) { $0 << 8 | UInt64($1) } == 1234)
    }

    @Test func conflictingIDsNameBothProviders() throws {
        let plugin = try library()
        let first = try #require(throws: PluginError.self) {
            try CompositeEmulator([plugin.emulator, plugin.emulator])
        }
        #expect(first == .conflictingHelperID(id: 10000, first: "kvstore (kv_put)", second: "kvstore (kv_put)"))
        let second = try #require(throws: PluginError.self) {
            try CompositeEmulator([ConformanceEmulator(), LinuxEmulator()])
        }
        #expect(
            second.description
                == "cannot combine emulators: helper id 1 is provided by both conformance (memfrob) and linux (bpf_map_lookup_elem)"
        )
    }
}
