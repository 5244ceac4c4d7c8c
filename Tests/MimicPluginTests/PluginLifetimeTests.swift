import Foundation
@testable import MimicCore
import Testing

/// A VM that uses a plugin, the plugin's instance for it, and the emulator are freed when the host
/// drops them, also when the VM's prog arrays and maps of maps hold its programs and maps
/// (issue 20: the instance's table of host programs held them, and through them the VM, whose
/// emulator held the instance: every such VM leaked with its plugin world).
@Suite(.serialized) struct PluginLifetimeTests {
    init() { PluginFixtures.quietLogs }

    /// Weak references to what one load-run-drop made; all must be nil afterwards.
    struct Dropped {
        weak var vm: VM?
        weak var instance: PluginInstance?
        weak var emulator: PluginEmulator?
    }

    /// Loads fixture `name` into a fresh VM with `emulator`, runs `program` once, drops it all.
    static func loadRunAndDrop(_ name: String, program: String, emulator makeEmulator: () throws -> PluginEmulator)
        throws -> Dropped
    {
        var dropped = Dropped()
        do {
            let emulator = try makeEmulator()
            let object = try ObjectFile(contentsOf: Backend.fixtures.appendingPathComponent("\(name).o").path)
            let vm = VM(emulator: emulator)
            let loaded = try vm.load(object: object)
            let process = try vm.makeProcess(for: try loaded.program(named: program))
            try emulator.attachContext(json: ContextJSON.xdp([UInt8](repeating: 0, count: 64), queue: 1), to: process)
            _ = try process.run()
            dropped.vm = vm
            dropped.emulator = emulator
            dropped.instance = emulator.instances.existingInstance(for: vm)
            #expect(dropped.instance != nil, "the VM has a plugin instance")
        }
        return dropped
    }

    @Test(arguments: [("tail_calls", "dispatch"), ("map_in_map", "bump")])
    func vmInstanceAndEmulatorAreFreed(name: String, program: String) throws {
        let library = try PluginLibrary.load(path: try PluginFixtures.linuxPlugin.get())
        for _ in 0..<10 {
            let dropped = try Self.loadRunAndDrop(name, program: program) { library.makeEmulator(options: "cpus=2") }
            #expect(dropped.vm == nil)
            #expect(dropped.instance == nil)
            #expect(dropped.emulator == nil)
        }
    }

    /// The library's own emulator lives as long as the library (forever); the instances it made
    /// for VMs go with their VMs.
    @Test func instancesOfTheLibrarysEmulatorGoWithTheirVM() throws {
        let library = try PluginLibrary.load(path: try PluginFixtures.linuxPlugin.get())
        for _ in 0..<5 {
            let dropped = try Self.loadRunAndDrop("tail_calls", program: "dispatch") { library.emulator }
            #expect(dropped.vm == nil)
            #expect(dropped.instance == nil)
        }
    }
}
