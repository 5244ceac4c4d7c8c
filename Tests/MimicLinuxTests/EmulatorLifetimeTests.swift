import Foundation
import MimicCore
import Testing

@testable import MimicLinux

/// A `LinuxEmulator` is freed when its last user drops it: no helper, kfunc, timer or state table
/// may hold it strongly (a cycle leaks every VM that uses it; issue 20).
@Suite struct EmulatorLifetimeTests {
    @Test func anEmulatorIsFreedWhenDropped() {
        weak var released: LinuxEmulator?
        do {
            let emulator = LinuxEmulator()
            released = emulator
            #expect(released != nil)
        }
        #expect(released == nil, "a reference cycle keeps LinuxEmulator alive")
    }

    @Test func anEmulatorInAVMIsFreedWithTheVM() throws {
        weak var released: LinuxEmulator?
        do {
            let emulator = LinuxEmulator()
            released = emulator
            let vm = VM(emulator: emulator)
            let program = try vm.load(bytecode: [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
            #expect(try vm.makeProcess(for: program).run() == 0)
        }
        #expect(released == nil, "a reference cycle keeps LinuxEmulator alive")
    }
}

extension EmulatorLifetimeTests {
    /// Every fixture object loaded and its programs run, as the `elf` fuzz harness does.
    static var fixtures: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: Fixture.directory.path)) ?? [])
            .filter { $0.hasSuffix(".o") }.map { String($0.dropLast(2)) }.sorted()
    }

    @Test(arguments: fixtures)
    func anEmulatorThatLoadedAnObjectIsFreed(fixture: String) throws {
        weak var released: LinuxEmulator?
        do {
            let object = try ObjectFile(contentsOf: Fixture.directory.appendingPathComponent("\(fixture).o").path)
            let emulator = LinuxEmulator()
            released = emulator
            let vm = VM(emulator: emulator, configuration: VMConfiguration(memoryLimit: 64 << 20))
            let loaded = try vm.load(object: object)
            for program in object.programs {
                if let p = try? loaded.program(named: program.name) {
                    _ = try? vm.makeProcess(for: p).run(instructionLimit: 10_000)
                }
            }
        }
        #expect(released == nil, "\(fixture): a reference cycle keeps LinuxEmulator alive")
    }
}
