import Testing
@testable import MimicCore

/// `run()`'s quick entry into compiled code (`Process.enterArmed`): taken only from an armed
/// process (`runArmed`, set by every reset), trusting what the reset left instead of checking it.
/// Each test makes the process run once (which sets the quick entry up), resets it, then does what
/// must disarm it or make the quick entry decline, and compares every result, fault, pc and
/// count with the interpreter doing the same.
@Suite(.enabled(if: ExecutionEngine.jit.compilesOnThisHost, "no JIT backend for this host"))
struct JITQuickEntryTests {
    /// A process of `source` on `engine` that ran once (to its end or a budget stop) and was reset.
    func armedProcess(
        _ source: String, engine: ExecutionEngine, emulator: (any Emulator)? = ConformanceEmulator()
    ) throws -> Process {
        let vm = VM(emulator: emulator, configuration: VMConfiguration(engine: engine))
        let process = try vm.makeProcess(for: try vm.load(Assembler.assemble(source), name: "quick"))
        _ = try? process.run(instructionLimit: 10_000)
        try process.reset()
        #expect(process.runArmed)
        if engine == .jit { #expect(process.quick.isSetUp, "the quick entry is set up") }
        return process
    }

    /// The outcome of `run` as text: R0 and the count, or the error's code, pc and count.
    func outcome(_ process: Process, _ run: (Process) throws -> UInt64) -> String {
        do {
            let r0 = try run(process)
            return "exit \(r0) count \(process.instructionsExecuted) pc \(process.pc) \(process.state)"
        } catch let error as ExecutionError {
            return "\(error.kind.code) pc \(process.pc) count \(process.instructionsExecuted) \(process.state)"
        } catch {
            return "\(error)"
        }
    }

    /// A loop with BPF-to-BPF and helper calls (also `JITTests.budgetStopsAreExactAndResumable`'s).
    static let loops = """
        mov %r6, 0
        mov %r0, 0
        loop:
        add %r0, %r6
        call local helper
        add %r6, 1
        jlt %r6, 5, loop
        call 2
        exit
        helper:
        mov %r1, %r0
        lsh %r1, 1
        jeq %r1, 1000, never
        mov %r0, %r1
        exit
        never:
        exit
        """

    /// From an armed process, every budget (those ending in the first run decline the quick
    /// entry; the rest take it) stops and resumes exactly as the interpreter.
    @Test func armedRunsStopAndResumeAsTheInterpreter() throws {
        for limit in Array(UInt64(1)...40) + [1_000, .max] {
            var traces: [[String]] = []
            for engine in [ExecutionEngine.interpreter, .jit] {
                let process = try armedProcess(Self.loops, engine: engine)
                let before = process.quick.runs
                var trace: [String] = []
                for _ in 0..<1_000 {
                    let text = outcome(process) { try $0.run(instructionLimit: limit) }
                    trace.append(text)
                    if text.hasPrefix("exit") { break }
                }
                traces.append(trace)
                if engine == .jit {
                    let longest = UInt64(process.entryProgram.longestRun)
                    #expect(process.quick.runs == before + (limit > longest ? 1 : 0), "limit \(limit)")
                }
            }
            #expect(traces[0] == traces[1], "limit \(limit)")
        }
    }

    /// `step()` disarms: the run after it continues where the steps stopped.
    @Test func stepsAfterAResetDisarm() throws {
        for steps in 0..<8 {
            var results: [String] = []
            for engine in [ExecutionEngine.interpreter, .jit] {
                let process = try armedProcess(Self.loops, engine: engine)
                for _ in 0..<steps { _ = try process.step() }
                #expect(process.runArmed == false || steps == 0)
                results.append(outcome(process) { try $0.run() })
            }
            #expect(results[0] == results[1], "\(steps) steps")
        }
    }

    /// `runFunction(at:)` disarms: it runs the function, not the program from pc 0.
    @Test func runFunctionAfterAResetRunsTheFunction() throws {
        let source = """
            mov %r1, 1
            mov %r2, 2
            call local function
            exit
            function:
            mov %r0, %r1
            add %r0, %r2
            exit
            """
        var results: [String] = []
        for engine in [ExecutionEngine.interpreter, .jit] {
            let process = try armedProcess(source, engine: engine)
            let slot = try #require(process.program.functionEntries.first { $0 != 0 })
            results.append(outcome(process) { try $0.runFunction(at: slot, arguments: [40, 2]) })
        }
        #expect(results[0] == results[1])
        #expect(results[1].hasPrefix("exit 42 "))
    }

    /// R10 moved by the host after the reset: the quick entry declines, and the run is the
    /// interpreter's (within the stack, past it, out of it).
    @Test func aMovedFramePointerAfterAResetDeclines() throws {
        let source = """
            stdw [%r10-8], 7
            ldxdw %r0, [%r10-8]
            exit
            """
        for move: Int64 in [-100, 64, -4000, 1 << 40] {
            var results: [String] = []
            for engine in [ExecutionEngine.interpreter, .jit] {
                let process = try armedProcess(source, engine: engine)
                let before = process.quick.runs
                process.registers.storage[10] &+= UInt64(bitPattern: move)
                results.append(outcome(process) { try $0.run() })
                #expect(process.quick.runs == before)
            }
            #expect(results[0] == results[1], "R10 moved by \(move)")
        }
    }

    /// A cancellation flag, a deadline or a budget after a reset: each honoured (the flag and the
    /// deadline by the general driver), and the process armed again by the next reset.
    @Test func cancellationDeadlinesAndBudgetsAfterAReset() throws {
        let endless = "loop:\nadd %r0, 1\nja loop"
        for engine in [ExecutionEngine.interpreter, .jit] {
            let process = try armedProcess(endless, engine: engine)
            let flag = CancellationFlag()
            flag.cancel()
            #expect(outcome(process) { try $0.run(cancellation: flag) }.hasPrefix("cancelled"))
            try process.reset()
            #expect(outcome(process) { try $0.run(timeout: Duration.zero) }.hasPrefix("deadlineExceeded"))
            try process.reset()
            #expect(outcome(process) { try $0.run(instructionLimit: 1_001) }.hasPrefix("budgetExhausted"))
            #expect(process.instructionsExecuted == 1_001)
            #expect(outcome(process) { try $0.run(instructionLimit: 10) }.hasPrefix("budgetExhausted"))
            #expect(process.instructionsExecuted == 1_011)
        }
    }

    /// `inlineHelpersBypassed` set between a reset and the run reaches the code (its context word
    /// is written by every quick entry): the helper is called instead of the inline result, and
    /// after the next reset (which clears it) the inline result is back.
    @Test func theInlineBypassIsReadOnEveryRun() throws {
        let source = "call 8\nexit"
        let process = try armedProcess(source, engine: .jit, emulator: ProcessorIDEmulator())
        #expect(try process.run() == 0) // inline: the vCPU
        try process.reset()
        process.inlineHelpersBypassed = true
        #expect(try process.run() == 99) // the helper
        try process.reset()
        #expect(try process.run() == 0)
    }
}

extension JITQuickEntryTests {
    /// Registers the code only reads are not stored back (`writtenRegisters`): what the host put
    /// there and what a helper changed in `Process.registers` stays, at the exit and at every
    /// budget stop, fresh and armed, as under the interpreter.
    @Test func registersTheCodeOnlyReadsKeepTheirValues() throws {
        let source = """
            mov %r0, %r4
            add %r0, %r3
            call 1
            add %r0, %r4
            add %r0, %r5
            exit
            """
        for limit: UInt64 in [1, 2, 3, 4, .max] {
            var traces: [[String]] = []
            for engine in [ExecutionEngine.interpreter, .jit] {
                let process = try armedProcess(source, engine: engine, emulator: RegisterWritingEmulator())
                var trace: [String] = []
                for armed in [false, true] {
                    if armed { try process.reset() }
                    process.registers.storage[3] = 5
                    process.registers.storage[4] = 7
                    process.registers.storage[5] = 9
                    for _ in 0..<10 {
                        let text = outcome(process) { try $0.run(instructionLimit: limit) }
                        trace.append(text + " registers \(process.registers.all)")
                        if text.hasPrefix("exit") { break }
                    }
                }
                traces.append(trace)
            }
            #expect(traces[0] == traces[1], "limit \(limit)")
        }
    }
}

/// Helper 1 adds 100 to R4 in `Process.registers` and returns 1.
private final class RegisterWritingEmulator: Emulator {
    let name = "register-writing"
    private let add = Helper(id: 1, name: "add_r4") { process throws(HelperFailure) in
        process.registers.storage[4] &+= 100
        return .value(1)
    }

    func helper(id: Int32) -> Helper? { id == 1 ? add : nil }
}

/// Helper 8 answers 99 when called; compiled code computes it inline (`processorID`: the vCPU, 0).
private final class ProcessorIDEmulator: Emulator {
    let name = "processor-id"
    private let helper: Helper = {
        var helper = Helper(id: 8, name: "get_smp_processor_id") { _ throws(HelperFailure) in .value(99) }
        helper.inline = .processorID
        return helper
    }()

    func helper(id: Int32) -> Helper? { id == 8 ? helper : nil }
}
