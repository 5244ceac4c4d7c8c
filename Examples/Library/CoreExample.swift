import MimicCore

/// MimicCore alone: assemble a program, load it into a VM, run it, read R0.
func coreExample() throws -> UInt64 {
    let instructions = try Assembler.assemble("""
        mov %r0, 40
        add %r0, 2
        exit
        """)
    let vm = VM()                                   // no emulator: no helpers, no maps
    let program = try vm.load(instructions, name: "answer")
    let process = try vm.makeProcess(for: program)
    return try process.run(instructionLimit: 1_000)  // R0 = 42
}
