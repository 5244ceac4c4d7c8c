import MimicCore
import MimicLinux

/// Context JSON: decode a context file and attach it to a process (contexts are parsed, laid out
/// and mapped), within a small memory budget.
func fuzzOne(_ bytes: [UInt8]) {
    guard let context = try? ContextFile.load(data: bytes) else { return }
    let vm = VM(emulator: LinuxEmulator(), configuration: VMConfiguration(memoryLimit: 16 << 20))
    guard let program = try? vm.load(bytecode: [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]) else { return }
    _ = try? vm.makeProcess(for: program, context: context).run(instructionLimit: fuzzInstructionLimit)
}
