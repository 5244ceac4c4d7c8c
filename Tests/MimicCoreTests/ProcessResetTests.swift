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
}
