import MimicCore
import MimicLinux
import Testing

/// A VM, its emulator, maps and programs are freed when the host drops them, also when the VM's
/// prog arrays hold its programs and its maps of maps hold its maps (issue 20: these used to form
/// a reference cycle that leaked every such VM).
@Suite struct LifetimeTests {
    /// Loads and runs `name` in a fresh VM, dropping everything; returns weak references that
    /// must all be nil afterwards.
    static func loadRunAndDrop(_ name: String, program: String) throws -> (
        vm: () -> VM?, emulator: () -> LinuxEmulator?,
        maps: () -> [AnyObject]
    ) {
        weak var weakVM: VM?
        weak var weakEmulator: LinuxEmulator?
        var weakMaps: [() -> AnyObject?] = []
        do {
            let fixture = try Fixture.load(name)
            weakVM = fixture.vm
            weakEmulator = fixture.emulator
            for map in fixture.emulator.allMaps {
                weak let weakMap = map as AnyObject
                weakMaps.append { weakMap }
            }
            let packet = [UInt8](repeating: 0, count: 64)
            try fixture.run(program, context: XDPContext(packet: packet))
        }
        return ({ weakVM }, { weakEmulator }, { weakMaps.compactMap { $0() } })
    }

    @Test(arguments: [("tail_calls", "dispatch"), ("map_in_map", "bump")])
    func objectsWithInitialValuesAreFreed(name: String, program: String) throws {
        let object = try Fixture.object(name)
        #expect(object.programs.contains { $0.name == program }, "\(name) has no program \(program)")
        for _ in 0..<20 {
            let (vm, emulator, maps) = try Self.loadRunAndDrop(name, program: program)
            #expect(vm() == nil)
            #expect(emulator() == nil)
            // The maps too: helpers in the prog array's programs must not hold the map table.
            #expect(maps().isEmpty, "maps left: \(maps().count)")
        }
    }

    /// A prog array holding a program that looks up and updates a map: the map helpers' fast
    /// paths must not hold the emulator's map table (table → prog array → program → helper →
    /// table was a cycle that leaked every map, found by LeakSanitizer).
    @Test func mapHelpersInAProgArrayDoNotKeepTheMaps() throws {
        for _ in 0..<5 {
            weak var weakEmulator: LinuxEmulator?
            weak var weakProgs: ProgramArrayMap?
            weak var weakCounter: (any BPFMap)?
            do {
                let (vm, emulator) = makeLinuxVM()
                let progs = try #require(
                    try makeMap(emulator, vm, .progArray, key: 4, value: 4, max: 1) as? ProgramArrayMap)
                let counter = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 1, name: "counter")
                let program = try load(
                    vm,
                    """
                    stw [%r10-4], 0
                    stdw [%r10-16], 7
                    lddw %r1, \(hex(counter.handle))
                    mov %r2, %r10
                    add %r2, -4
                    call 1
                    lddw %r1, \(hex(counter.handle))
                    mov %r2, %r10
                    add %r2, -4
                    mov %r3, %r10
                    add %r3, -16
                    mov %r4, 0
                    call 2
                    exit
                    """)
                #expect(progs.setProgram(program, at: 0) == nil)
                try run(vm, program)
                weakEmulator = emulator
                weakProgs = progs
                weakCounter = counter
            }
            #expect(weakEmulator == nil)
            #expect(weakProgs == nil)
            #expect(weakCounter == nil)
        }
    }

    /// A program taken from a prog array holds its VM like any program; once the VM is gone the
    /// array no longer offers it.
    @Test func programsFromAProgArrayKeepTheirVM() throws {
        var fixture: Fixture.Loaded? = try Fixture.load("tail_calls")
        let table = try #require(try fixture?.map("jump_table", as: ProgramArrayMap.self))
        let stage = try #require(table.program(at: 0))
        weak let weakVM = fixture?.vm
        fixture = nil
        #expect(weakVM != nil, "the program holds its VM")
        #expect(try stage.vm.run(stage, context: XDPContext(packet: [UInt8](repeating: 0, count: 64))) == 2)
        _ = stage
    }
}
