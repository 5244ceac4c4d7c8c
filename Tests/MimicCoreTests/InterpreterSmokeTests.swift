import Testing
@testable import MimicCore

@Test func smokeAddExit() throws {
    let vm = VM(emulator: ConformanceEmulator())
    let program = try vm.load([
        RawInstruction(opcode: 0xb7, destination: 0, imm: 40),  // mov r0, 40
        RawInstruction(opcode: 0x07, destination: 0, imm: 2),  // add r0, 2
        RawInstruction(opcode: 0x95),
    ])
    #expect(try vm.run(program) == 42)
}
