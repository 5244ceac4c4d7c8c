import Foundation
import MimicCore
import MimicLinux
import Testing

/// MimicLinux loaded as a plugin (`libMimicLinuxPlugin.so`) gives the same results as linked
/// statically for helpers that need only registers and VM memory (maps, contexts, tail calls and
/// callbacks: PluginEndToEndTests).
@Suite(.serialized) struct LinuxPluginTests {
    init() { PluginFixtures.quietLogs }

    func library() throws -> PluginLibrary {
        try PluginLibrary.load(path: try PluginFixtures.linuxPlugin.get())
    }

    /// What one run produced: R0 or the error, and the trace output.
    struct Outcome: Equatable, CustomStringConvertible {
        var result: String
        var trace: [String]
        var description: String { "\(result) \(trace)" }
    }

    static let input: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8] + Array("mimic".utf8) + [0, 9, 9]

    /// Runs program `name` of the fixture with `emulator`, on vCPU 1.
    func run(_ name: String, emulator: any Emulator, trace: (MimicCore.Process) -> [String]) throws -> Outcome {
        let vm = VM(emulator: emulator)
        let loaded = try vm.load(object: PluginFixtures.object("Tests/MimicPluginTests/Fixtures/linux_helpers.o"))
        let process = try vm.makeProcess(
            for: try loaded.program(named: name), context: MemoryContext(Self.input), vCPU: 1)
        let result: String
        do {
            result = "r0 = \(try process.run())"
        } catch {
            result = "\(error)"
        }
        return Outcome(result: result, trace: trace(process))
    }

    /// An object defining map types Mimic does not emulate loads through the plugin as it does
    /// linked statically: only the program that uses such a map stops, naming it.
    @Test func objectsWithUnemulatedMapTypesLoad() throws {
        let vm = VM(emulator: try library().makeEmulator(options: "cpus=2,seed=1"))
        let loaded = try vm.load(object: PluginFixtures.object("Tests/MimicLinuxTests/Fixtures/unemulated_maps.o"))
        let count = try vm.makeProcess(for: try loaded.program(named: "count"), context: MemoryContext(Self.input))
        #expect(try count.run() == 0)
        let lookup = try vm.makeProcess(
            for: try loaded.program(named: "arena_lookup"), context: MemoryContext(Self.input))
        #expect {
            try lookup.run()
        } throws: { error in
            "\(error)".contains("map arena is a BPF_MAP_TYPE_ARENA")
        }
    }

    @Test func describesTheHelpersItOffers() throws {
        let plugin = try library()
        #expect(plugin.name == "linux")
        #expect(plugin.helpers.contains(PluginHelperInfo(id: 6, name: "bpf_trace_printk")))
        #expect(plugin.helpers.contains(PluginHelperInfo(id: 105, name: "bpf_strtol")))
        // Every helper of the Linux emulator, maps and callbacks included (ABI 1.1).
        #expect(plugin.helpers.contains(PluginHelperInfo(id: 1, name: "bpf_map_lookup_elem")))
        #expect(plugin.helpers.contains(PluginHelperInfo(id: 12, name: "bpf_tail_call")))
        #expect(plugin.helpers.contains(PluginHelperInfo(id: 181, name: "bpf_loop")))
        let implemented = Set(LinuxEmulator().implementedHelperIDs)
        #expect(implemented.isSubset(of: Set(plugin.helpers.map(\.id))))
        #expect(plugin.abiVersion == PluginABIVersion(major: 1, minor: 2))
        #expect(plugin.providesMaps)
        #expect(plugin.emulator is any MapProvider)
        #expect(
            plugin.mapTypes.contains(PluginMapTypeInfo(type: MapType.ringBuffer.rawValue, name: "BPF_MAP_TYPE_RINGBUF"))
        )
    }

    @Test(arguments: ["numbers", "printing", "memory", "task", "fault"])
    func sameResultsAsStaticallyLinked(_ name: String) throws {
        let plugin = try library()
        let statically = try run(name, emulator: LinuxEmulator()) { LinuxProcessState.of($0)?.traceOutput ?? [] }
        let viaPlugin = try run(name, emulator: plugin.emulator) { process in
            plugin.emulator.messages(of: process).filter { $0.level == .trace }.map(\.message)
        }
        #expect(viaPlugin == statically)
        // Sanity: the programs do what they say.
        switch name {
        case "numbers": #expect(statically.result == "r0 = \(1_000_000 + 123_000 + 310 + 4 + 4)")
        case "printing": #expect(statically.trace == ["value 42 from plugin"])
        case "fault":
            #expect(
                statically.result.contains(
                    "helper bpf_trace_printk (#6) failed: read of 8 bytes at 0x50: no region mapped"))
        default: break
        }
    }

    @Test func combinesWithOtherPlugins() throws {
        // The Linux plugin conflicts with the statically linked emulator (same ids), which the
        // composite refuses; with a helper-only plugin it is the map provider.
        let plugin = try library()
        #expect(throws: PluginError.self) { try CompositeEmulator([LinuxEmulator(), plugin.emulator]) }
        let kvstore = try PluginLibrary.load(path: try PluginFixtures.kvstore.get())
        let composite = try CompositeEmulator([plugin.emulator, kvstore.emulator])
        #expect(composite.mapProvider != nil)
        #expect(composite.mapProvider === plugin.emulator)
        #expect(composite.helper(id: 10001)?.name == "kv_get")
        #expect(composite.helper(id: 6)?.name == "bpf_trace_printk")
    }
}
