import Testing
import MimicCore

@Suite("Instruction limit: exact in run() and step()")
struct InstructionBudgetTests {
    /// A loop of three rounds, each with a helper call, a local call, `callx` to a local function
    /// and `callx` to a helper; R0 = 3 at the end.
    static let program: [RawInstruction] = Asm.program {
        Asm.mov64(6, imm: 0) // 0
        Asm.mov64(0, imm: 0) // 1
        Asm.call(2) // 2: no_op (loop head)
        Asm.callLocal(9) // 3 -> 13
        [
            RawInstruction(opcode: 0x18, destination: 2, source: LoadImm64Kind.function.rawValue, imm: 10),
            RawInstruction(opcode: 0),
        ] // 4: r2 = function at 15
        Asm.callx(2) // 6
        Asm.mov64(1, imm: 2) // 7
        Asm.callx(1) // 8: helper 2 by id
        Asm.add64(6, imm: 1) // 9
        Asm.jump(.jumpLess64Imm, 6, imm: 3, -9) // 10 -> 2
        Asm.mov64(0, src: 6) // 11
        Asm.exit() // 12
        Asm.add64(0, imm: 1) // 13
        Asm.exit() // 14
        Asm.add64(0, imm: 2) // 15
        Asm.exit() // 16
    }

    func process() throws -> Process {
        let vm = VM(emulator: ConformanceEmulator())
        return try vm.makeProcess(for: try vm.load(Self.program))
    }

    @Test func limitOneRunsOneInstruction() throws {
        let straight = [Asm.mov64(0, imm: 1)] + Array(repeating: Asm.add64(0, imm: 1), count: 11) + [Asm.exit()]
        let vm = VM()
        let process = try vm.makeProcess(for: try vm.load(straight))
        do {
            try process.run(instructionLimit: 1)
            Issue.record("a 13-instruction program finished within a limit of 1")
        } catch {
            #expect(error.kind == .budgetExhausted(executed: 1))
        }
        #expect(process.instructionsExecuted == 1)
        #expect(process.pc == 1)
        #expect(process.registers[0] == 1)
        #expect(try process.run() == 12) // the run continues where it stopped
        #expect(process.instructionsExecuted == 13)
    }

    /// Every limit, from 0 to past the end, stops after exactly that many instructions, where
    /// stepping that many times stops: before and after helper calls, local calls, `callx`
    /// and loop jumps alike.
    @Test func everyLimitIsExact() throws {
        let full = try process()
        #expect(try full.run() == 3)
        let total = full.instructionsExecuted
        #expect(total == 2 + 3 * 12 + 2)

        for limit in 0...(total + 1) {
            let limited = try process()
            let stepped = try process()
            for _ in 0..<min(limit, total) { _ = try stepped.step() }
            #expect(stepped.instructionsExecuted == min(limit, total))
            do {
                let result = try limited.run(instructionLimit: limit)
                #expect(limit >= total, "limit \(limit): finished early")
                #expect(result == 3)
                #expect(limited.instructionsExecuted == total)
            } catch {
                #expect(limit < total)
                #expect(error.kind == .budgetExhausted(executed: limit), "limit \(limit): \(error)")
                #expect(limited.instructionsExecuted == limit)
                #expect(limited.pc == stepped.pc, "limit \(limit)")
                #expect(limited.registers.all == stepped.registers.all, "limit \(limit)")
                #expect(limited.callStack == stepped.callStack, "limit \(limit)")
                #expect(try limited.run() == 3, "limit \(limit): continuing")
                #expect(limited.instructionsExecuted == total)
            }
        }
    }

    @Test func stepCountsOneInstructionEach() throws {
        let process = try process()
        var steps: UInt64 = 0
        while case .running = try process.step() {
            steps += 1
            #expect(process.instructionsExecuted == steps)
        }
        #expect(process.instructionsExecuted == steps + 1)
        #expect(process.state == .exited(3))
    }

    @Test func limitsAddUpOverResumedRuns() throws {
        let process = try process()
        var result: UInt64?
        var runs = 0
        while result == nil {
            runs += 1
            do { result = try process.run(instructionLimit: 5) } catch {
                #expect(error.kind == .budgetExhausted(executed: UInt64(runs) * 5))
            }
        }
        #expect(result == 3)
        #expect(runs == 8) // 40 instructions in runs of 5
    }
}
