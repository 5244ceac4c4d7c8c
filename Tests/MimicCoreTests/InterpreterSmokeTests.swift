import Testing
@testable import MimicCore

@Test func smokeAddExit() throws {
    let vm = VM(emulator: ConformanceEmulator())
    let program = try vm.load([
        RawInstruction(opcode: 0xb7, destination: 0, imm: 40), // mov r0, 40
        RawInstruction(opcode: 0x07, destination: 0, imm: 2), // add r0, 2
        RawInstruction(opcode: 0x95),
    ])
    #expect(try vm.run(program) == 42)
}

/// A program keeps its VM alive: using it after dropping every other reference is safe.
@Test func programOutlivesItsVMReference() throws {
    let program = try VM(emulator: ConformanceEmulator()).load(Assembler.assemble("mov %r0, 7\nexit"))
    #expect(try program.vm.run(program) == 7)
}
