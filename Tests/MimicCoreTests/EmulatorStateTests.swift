import Testing
@testable import MimicCore

/// `Process`'s emulator state table: one row per kind of state, handed over across `reset`.
@Suite struct EmulatorStateTests {
    /// Counts live instances, to see when the table releases them.
    final class Token {
        static let key = EmulatorStateKey<Token>()
        let run: Int
        let live: LiveCount
        init(run: Int, live: LiveCount) {
            self.run = run
            self.live = live
            live.count += 1
        }
        deinit { live.count -= 1 }
    }

    final class LiveCount: @unchecked Sendable { var count = 0 }

    final class Other {
        static let key = EmulatorStateKey<Other>()
    }

    /// Keeps its token across resets when `recycles`, otherwise makes a new one per run.
    final class TokenEmulator: Emulator, @unchecked Sendable {
        let name = "token"
        let recycles: Bool
        let live = LiveCount()
        var runs = 0
        init(recycles: Bool) { self.recycles = recycles }
        func helper(id: Int32) -> Helper? { nil }
        func prepare(_ process: Process) throws(SetupError) {
            runs += 1
            let token = (recycles ? process.takeRecycledEmulatorState(Token.key) : nil) ?? Token(run: runs, live: live)
            process.setEmulatorState(token, for: Token.key)
        }
    }

    func program(_ vm: VM) throws -> Program { try vm.load(Assembler.assemble("mov %r0, 0\nexit")) }

    @Test func keysAreDistinctRows() {
        #expect(Token.key.index != Other.key.index)
        #expect(Token.key == Token.key)
    }

    @Test func statesAreStoredPerKeyAndReleasedWithTheProcess() throws {
        let emulator = TokenEmulator(recycles: false)
        let vm = VM(emulator: emulator)
        var process: Process? = try vm.makeProcess(for: program(vm))
        #expect(process?.emulatorState(Token.key)?.run == 1)
        #expect(process?.emulatorState(Other.key) == nil)
        let other = Other()
        process?.setEmulatorState(other, for: Other.key)
        #expect(process?.emulatorState(Other.key) === other)
        #expect(emulator.live.count == 1)
        process = nil
        #expect(emulator.live.count == 0)
    }

    @Test func resetOffersTheStatesOnceAndReleasesWhatNobodyTakes() throws {
        let recycling = TokenEmulator(recycles: true)
        let vm = VM(emulator: recycling)
        let process = try vm.makeProcess(for: program(vm))
        process.setEmulatorState(Other(), for: Other.key)
        try process.reset()
        try process.reset()
        #expect(process.emulatorState(Token.key)?.run == 1) // the first token, taken back each time
        #expect(process.emulatorState(Other.key) == nil) // nobody took it: released
        #expect(process.takeRecycledEmulatorState(Token.key) == nil) // outside prepare: nothing on offer
        #expect(recycling.live.count == 1)

        let fresh = TokenEmulator(recycles: false)
        let vm2 = VM(emulator: fresh)
        let process2 = try vm2.makeProcess(for: program(vm2))
        try process2.reset()
        #expect(process2.emulatorState(Token.key)?.run == 2)
        #expect(fresh.live.count == 1) // the first run's token was released
    }

    @Test func aResetWithoutAnEmulatorClearsTheTable() throws {
        let vm = VM()
        let process = try vm.makeProcess(for: program(vm))
        process.setEmulatorState(Other(), for: Other.key)
        try process.reset()
        #expect(process.emulatorState(Other.key) == nil)
    }
}
