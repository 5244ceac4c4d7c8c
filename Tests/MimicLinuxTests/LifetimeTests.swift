import MimicCore
import MimicLinux
import Testing

/// A VM, its emulator, maps and programs are freed when the host drops them, also when the VM's
/// prog arrays hold its programs and its maps of maps hold its maps (issue 20: these used to form
/// a reference cycle that leaked every such VM).
@Suite struct LifetimeTests {
    /// Loads and runs `name` in a fresh VM, dropping everything; returns weak references that
    /// must all be nil afterwards.
    static func loadRunAndDrop(_ name: String, program: String) throws -> (vm: () -> VM?, emulator: () -> LinuxEmulator?) {
        weak var weakVM: VM?
        weak var weakEmulator: LinuxEmulator?
        do {
            let fixture = try Fixture.load(name)
            weakVM = fixture.vm
            weakEmulator = fixture.emulator
            let packet = [UInt8](repeating: 0, count: 64)
            try fixture.run(program, context: XDPContext(packet: packet))
        }
        return ({ weakVM }, { weakEmulator })
    }

    @Test(arguments: [("tail_calls", "dispatch"), ("map_in_map", "bump")])
    func objectsWithInitialValuesAreFreed(name: String, program: String) throws {
        let object = try Fixture.object(name)
        #expect(object.programs.contains { $0.name == program }, "\(name) has no program \(program)")
        for _ in 0..<20 {
            let (vm, emulator) = try Self.loadRunAndDrop(name, program: program)
            #expect(vm() == nil)
            #expect(emulator() == nil)
        }
    }

    /// A program taken from a prog array holds its VM like any program; once the VM is gone the
    /// array no longer offers it.
    @Test func programsFromAProgArrayKeepTheirVM() throws {
        var fixture: Fixture.Loaded? = try Fixture.load("tail_calls")
        let table = try #require(try fixture?.map("jump_table", as: ProgramArrayMap.self))
        let stage = try #require(table.program(at: 0))
        weak var weakVM = fixture?.vm
        fixture = nil
        #expect(weakVM != nil, "the program holds its VM")
        #expect(try stage.vm.run(stage, context: XDPContext(packet: [UInt8](repeating: 0, count: 64))) == 2)
        _ = stage
    }
}
