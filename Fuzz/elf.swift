import MimicCore
import MimicLinux

/// ELF + load: parse an object (sections, BTF, relocations, CO-RE), instantiate it in a VM with
/// the Linux emulator (maps, global data, initial values) and load every program.
func fuzzOne(_ bytes: [UInt8]) {
    guard let object = try? ObjectFile(bytes: bytes) else { return }
    let vm = VM(emulator: LinuxEmulator(), configuration: VMConfiguration(memoryLimit: 64 << 20))
    guard let loaded = try? vm.load(object: object) else { return }
    for program in object.programs {
        guard let loadedProgram = try? loaded.program(named: program.name) else { continue }
        _ = try? vm.makeProcess(for: loadedProgram).run(instructionLimit: fuzzInstructionLimit)
    }
}
