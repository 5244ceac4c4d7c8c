import Testing
import MimicCore

@Suite("A deadline on one process: Process.run(deadline:) and run(timeout:)")
struct DeadlineTests {
    /// An endless loop: `r0 += 1` forever.
    static let endless: [RawInstruction] = [Asm.mov64(0, imm: 0), Asm.add64(0, imm: 1), Asm.ja(-2)]
    /// A safety net in case the deadline is never noticed (minutes of the debug interpreter, about
    /// a minute of JIT code).
    static let safetyLimit: UInt64 = 200_000_000_000

    @Test func aTimeoutStopsAnEndlessLoopAndTheRunResumes() throws {
        let process = try Runner.process(Self.endless)
        let clock = ContinuousClock()
        let started = clock.now
        let error = #expect(throws: ExecutionError.self) {
            try process.run(timeout: .milliseconds(50), instructionLimit: Self.safetyLimit)
        }
        let elapsed = clock.now - started
        #expect(error?.code == .deadlineExceeded)
        #expect(error?.kind.executed == process.instructionsExecuted)
        #expect(elapsed >= .milliseconds(50))
        #expect(elapsed < .seconds(10))
        // Stopped where a straight-line run starts: resumable, like the instruction budget.
        #expect(process.state == .ready)
        let executed = process.instructionsExecuted
        let again = #expect(throws: ExecutionError.self) { try process.run(instructionLimit: 10) }
        #expect(again?.code == .budgetExhausted)
        #expect(process.instructionsExecuted == executed + 10)
    }

    /// The clock is read where the cancellation flag is: once 4,096 instructions have passed.
    @Test func aPassedDeadlineStopsAtTheFirstLook() throws {
        let process = try Runner.process(Self.endless)
        let error = #expect(throws: ExecutionError.self) {
            try process.run(deadline: ContinuousClock.now - .seconds(1), instructionLimit: Self.safetyLimit)
        }
        #expect(error?.code == .deadlineExceeded)
        #expect(process.instructionsExecuted > 0)
        #expect(process.instructionsExecuted <= 4096 + 3)
        #expect(error?.description.contains("deadline exceeded") == true)
    }

    @Test func aProgramThatEndsInTimeIsNotStopped() throws {
        let process = try Runner.process([Asm.mov64(0, imm: 7), Asm.exit()])
        #expect(try process.run(timeout: .seconds(60)) == 7)
        // The deadline belongs to that run only.
        let endless = try Runner.process(Self.endless)
        #expect(throws: ExecutionError.self) {
            try endless.run(deadline: ContinuousClock.now + .seconds(3600), instructionLimit: 1000)
        }
        #expect(endless.instructionsExecuted == 1000)
    }

    @Test func theInstructionLimitStaysExactWithADeadline() throws {
        let process = try Runner.process(Self.endless)
        let error = #expect(throws: ExecutionError.self) {
            try process.run(timeout: .seconds(3600), instructionLimit: 12_345)
        }
        #expect(error?.code == .budgetExhausted)
        #expect(process.instructionsExecuted == 12_345)
    }
}
