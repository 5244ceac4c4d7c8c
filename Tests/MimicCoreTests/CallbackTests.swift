import Testing
@testable import MimicCore

/// `Process.callFunction`: helpers calling back into the program, as `bpf_loop` does.
@Suite struct CallbackTests {
    /// Helper 1 is a minimal `bpf_loop(nr_loops, callback, ctx)`: calls `callback(i, ctx)` until
    /// it returns non-zero, and returns the number of calls.
    final class LoopEmulator: Emulator {
        let name = "loop-test"

        func helper(id: Int32) -> Helper? {
            guard id == 1 else { return nil }
            return Helper(id: 1, name: "loop") { process throws(HelperFailure) in
                let count = process.argument(1)
                guard let slot = process.functionSlot(fromAddress: process.argument(2)) else {
                    throw .message("not a function")
                }
                let context = process.argument(3)
                var calls: UInt64 = 0
                while calls < count {
                    let result: UInt64
                    do throws(ExecutionError) {
                        result = try process.callFunction(at: slot, arguments: [calls, context])
                    } catch {
                        throw .callback(error)
                    }
                    calls += 1
                    if result != 0 { break }
                }
                return .value(calls)
            }
        }
    }

    /// Sums 0..<10 into a stack slot through the callback; R6 must survive the helper call.
    static let source = """
        mov %r6, 77
        stdw [%r10-8], 0
        mov %r1, 10
        lddw %r2, 0
        mov %r3, %r10
        add %r3, -8
        call 1
        ldxdw %r0, [%r10-8]
        jne %r6, 77, bad
        exit
        bad:
        mov %r0, -1
        exit
        callback:
        ldxdw %r3, [%r2+0]
        add %r3, %r1
        stxdw [%r2+0], %r3
        mov %r6, 0
        mov %r0, 0
        exit
        """

    /// Assembles `source` and turns its `lddw %r2, 0` into `BPF_PSEUDO_FUNC` pointing at `callback`.
    static func program(in vm: VM, source: String = source) throws -> Program {
        var instructions = try Assembler.assemble(source)
        let lddw = try #require(instructions.firstIndex { $0.opcode == 0x18 })
        let callbackSlot = instructions.count - 6
        instructions[lddw].source = LoadImm64Kind.function.rawValue
        instructions[lddw].imm = Int32(callbackSlot - lddw - 1)
        return try vm.load(instructions)
    }

    @Test func callbackRunsAndRegistersAreRestored() throws {
        let vm = VM(emulator: LoopEmulator())
        let process = try vm.makeProcess(for: try Self.program(in: vm))
        #expect(try process.run() == 45)
        #expect(process.callStack.isEmpty)
    }

    @Test func callbackInstructionsCountAgainstTheLimit() throws {
        let vm = VM(emulator: LoopEmulator())
        let process = try vm.makeProcess(for: try Self.program(in: vm))
        let error = try #require(throws: ExecutionError.self) { try process.run(instructionLimit: 30) }
        guard error.code == .helperFailed, error.kind.helperName == "loop",
            let inner = error.kind.failure?.callbackError,
            inner.code == .budgetExhausted
        else {
            Issue.record("expected a budget error inside the callback, got \(error)")
            return
        }
    }

    @Test func faultInCallbackNamesTheHelperAndTheCallbackInstruction() throws {
        let vm = VM(emulator: LoopEmulator())
        // The callback dereferences its first argument (0): a NULL read.
        let program = try Self.program(
            in: vm,
            source: Self.source.replacingOccurrences(
                of: "ldxdw %r3, [%r2+0]", with: "ldxdw %r3, [%r1+0]"))
        let error = try #require(throws: ExecutionError.self) { try vm.run(program) }
        guard error.code == .helperFailed, error.kind.helperName == "loop",
            let inner = error.kind.failure?.callbackError,
            inner.code == .memory
        else {
            Issue.record("expected a memory fault inside the callback, got \(error)")
            return
        }
        #expect(inner.pc == program.count - 6)
        #expect(error.description.contains("loop"))
    }
}
