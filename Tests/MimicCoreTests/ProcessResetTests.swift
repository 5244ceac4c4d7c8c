import Testing
@testable import MimicCore

/// `Process.reset(context:)`: a reused process behaves as a new one.
@Suite struct ProcessResetTests {
    /// Sums the input bytes; leaves a marker on the stack and in R6.
    static let source = """
        ldxdw %r0, [%r10-8]
        jne %r0, 0, dirty
        mov %r0, 0
        mov %r3, 0
        loop:
        jge %r3, %r2, done
        mov %r4, %r1
        add %r4, %r3
        ldxb %r4, [%r4+0]
        add %r0, %r4
        add %r3, 1
        ja loop
        done:
        stdw [%r10-8], 1
        mov %r6, 99
        exit
        dirty:
        mov %r0, -1
        exit
        """

    @Test func resetRunsAgainFromACleanState() throws {
        let vm = VM()
        let program = try vm.load(Assembler.assemble(Self.source))
        let process = try vm.makeProcess(for: program, context: MemoryContext([1, 2, 3]))
        #expect(try process.run() == 6)
        let firstPacket = process.registers[1]
        let regionsAfterFirst = process.memory.regions.count

        try process.reset(context: MemoryContext([10, 20]))
        #expect(process.state == .ready && process.pc == 0 && process.instructionsExecuted == 0)
        #expect(process.registers[6] == 0)
        #expect(try process.run() == 30) // a stale stack marker would give -1
        #expect(process.memory.regions.count == regionsAfterFirst)
        // The first run's packet address no longer reaches anything.
        #expect(throws: (any Error).self) { try process.memory.load(firstPacket, size: 1) }
    }

    @Test func resetWithOrWithoutAContext() throws {
        let vm = VM()
        let program = try vm.load(Assembler.assemble(Self.source))
        let process = try vm.makeProcess(for: program, context: MemoryContext([1]))
        try process.reset() // no context: R1 = 0, R2 = 0 is an empty input
        #expect(try process.run() == 0)
        try process.reset(context: MemoryContext([5]))
        #expect(try process.run() == 5)
    }

    /// The bytes of the stack each program can write (`StackReach`), as `reset` zeroes them.
    @Test(arguments: [
        // Stores through R10 only: the lowest one.
        ("stdw [%r10-8], 1\nstw [%r10-20], 2\nmov %r0, 0\nexit", 24),
        // A pointer derived by adding constants, and one passed to a helper (written upward).
        ("mov %r1, %r10\nadd %r1, -100\nstb [%r1+2], 5\nmov %r2, %r10\nadd %r2, -300\ncall 1\nmov %r0, 0\nexit", 304),
        // Different constants on two paths: the lower one counts.
        ("mov %r1, %r10\njeq %r2, 0, low\nadd %r1, -16\nja store\nlow:\nadd %r1, -64\nstore:\nstdw [%r1+0], 1\nmov %r0, 0\nexit", 64),
        // Reads do not dirty: nothing to zero.
        ("ldxdw %r0, [%r10-400]\nexit", 0),
        // A stack pointer spilled to memory: untracked, the whole stack.
        ("mov %r1, %r10\nstxdw [%r10-8], %r1\nmov %r0, 0\nexit", 4096),
        // A variable offset: the whole stack.
        ("mov %r1, %r10\nadd %r1, %r2\nstb [%r1-1], 1\nmov %r0, 0\nexit", 4096),
        // A pointer walking down in a loop: the whole stack.
        ("mov %r1, %r10\nloop:\nadd %r1, -8\nstdw [%r1+0], 0\njne %r1, 0, loop\nmov %r0, 0\nexit", 4096),
        // BPF-to-BPF calls run in frames below: the whole stack.
        ("call local f\nexit\nf:\nstdw [%r10-8], 1\nmov %r0, 0\nexit", 4096),
    ])
    func stackReach(source: String, expected: Int) throws {
        let vm = VM()
        let program = try vm.load(Assembler.assemble(source))
        #expect(program.stackReach(stackSize: 4096) == expected)
    }

    /// A byte written below R10 through a derived pointer reads zero in the next run.
    @Test func resetZeroesWhatDerivedPointersWrote() throws {
        let source = """
            ldxb %r0, [%r10-200]
            mov %r1, %r10
            add %r1, -256
            stb [%r1+56], 7
            exit
            """
        let vm = VM()
        let program = try vm.load(Assembler.assemble(source))
        let process = try vm.makeProcess(for: program)
        #expect(try process.run() == 0)
        #expect(process.stackClearStart == process.stackSize - 200)
        try process.reset()
        #expect(try process.run() == 0) // a stale byte would give 7
        // Host code writing below the reach is not cleared, and says so in the documentation;
        // a callback (`callFunction`) makes the next reset clear everything.
        process.stackNeedsFullClear = true
        try process.memory.store(9, at: process.stackBase, size: 1)
        try process.reset()
        #expect(try process.memory.load(process.stackBase, size: 1) == 0)
    }
}

