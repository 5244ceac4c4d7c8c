import Foundation
import Testing
@testable import MimicCore
import MimicMemory

/// The x86-64 JIT against the interpreter (skipped on hosts without a backend).
@Suite(.enabled(if: ExecutionEngine.jit.compilesOnThisHost, "no JIT backend for this host"))
struct JITTests {
    /// 10,000 random programs, faulting ones included: both engines agree on everything.
    @Test func differentialFuzzAgrees() {
        let report = JITDifferential.run(seed: 0x5EED_0000, count: 10_000)
        #expect(report.mismatches.isEmpty, "\(report.mismatches.joined(separator: "\n\n"))")
        #expect(report.notCompiled == 0)
        // The generator must reach every kind of ending, or the comparison proves little.
        #expect(report.exited > 1_000, "\(report)")
        #expect(report.faulted > 1_000, "\(report)")
        #expect(report.budgetStops > 100, "\(report)")
    }

    func load(_ vm: VM, _ source: String) throws -> Program {
        try vm.load(Assembler.assemble(source), name: "test")
    }

    /// A run resumed after every budget stop gives the same pc and count at each stop as the
    /// interpreter, for every limit from 1 to 40 (loops, calls, helper calls).
    @Test func budgetStopsAreExactAndResumable() throws {
        let source = JITQuickEntryTests.loops
        for limit in UInt64(1)...40 {
            var traces: [[String]] = []
            for engine in [ExecutionEngine.interpreter, .jit] {
                let vm = VM(emulator: ConformanceEmulator(), configuration: VMConfiguration(engine: engine))
                let process = try vm.makeProcess(for: try load(vm, source))
                var trace: [String] = []
                for _ in 0..<1_000 {
                    do {
                        let r0 = try process.run(instructionLimit: limit)
                        trace.append("exit \(r0) \(process.instructionsExecuted)")
                        break
                    } catch {
                        trace.append("\(error.kind.code) pc \(process.pc) count \(process.instructionsExecuted)")
                    }
                }
                traces.append(trace)
            }
            #expect(traces[0] == traces[1], "limit \(limit)")
        }
    }

    /// BPF-to-BPF calls return with `ret` where compiled code made the call, and through the pc
    /// table where the frame is older than the code's entry (pushed while stepping, or before a
    /// budget stop left the code): after every number of steps and with every limit, `run()`
    /// stops and ends as the interpreter does (nested calls, and `callx` to a local function).
    @Test func callsReturnAlikeAfterStepsAndStops() throws {
        let nested = try Assembler.assemble(
            """
            mov %r6, 0
            mov %r0, 1
            loop:
            mov %r1, %r0
            call local outer
            add %r6, 1
            jlt %r6, 4, loop
            exit
            outer:
            mov %r7, %r1
            mov %r1, %r7
            call local inner
            add %r0, %r7
            exit
            inner:
            mov %r0, %r1
            mul %r0, 3
            add %r0, 1
            exit
            """)
        for program in [nested, InstructionBudgetTests.program] {
            for steps in 0..<24 {
                for limit: UInt64 in [1, 2, 3, 5, 8, 1_000] {
                    var traces: [[String]] = []
                    for engine in [ExecutionEngine.interpreter, .jit] {
                        let vm = VM(emulator: ConformanceEmulator(), configuration: VMConfiguration(engine: engine))
                        let process = try vm.makeProcess(for: try vm.load(program, name: "calls"))
                        var trace: [String] = []
                        var exited = false
                        for _ in 0..<steps where !exited {
                            if case .exited(let r0) = try process.step() {
                                trace.append("stepped to the exit: \(r0)")
                                exited = true
                            }
                        }
                        for _ in 0..<1_000 where !exited {
                            do {
                                let r0 = try process.run(instructionLimit: limit)
                                trace.append("exit \(r0) \(process.instructionsExecuted)")
                                exited = true
                            } catch {
                                trace.append(
                                    "\(error.kind.code) pc \(process.pc) count \(process.instructionsExecuted)")
                            }
                        }
                        traces.append(trace)
                    }
                    #expect(traces[0] == traces[1], "\(steps) steps, limit \(limit)")
                }
            }
        }
    }

    /// Stepping a few instructions, then running with the JIT from the middle of a run.
    @Test func runContinuesAfterStepping() throws {
        let source = """
            mov %r0, 1
            mov %r1, 2
            add %r0, %r1
            mul %r0, 3
            jeq %r0, 9, out
            mov %r0, 0
            out:
            exit
            """
        for steps in 0..<5 {
            let vm = VM(configuration: VMConfiguration(engine: .jit))
            let process = try vm.makeProcess(for: try load(vm, source))
            for _ in 0..<steps { _ = try process.step() }
            #expect(try process.run() == 9)
            #expect(process.instructionsExecuted == 6)
        }
    }

    /// Registers a program never names are neither loaded nor stored by the code
    /// (`keptRegisters`): values the host put there stay, through a helper call and a budget
    /// stop, and the named ones come back as the interpreter leaves them.
    @Test func registersTheProgramDoesNotNameKeepTheHostsValues() throws {
        let source = """
            mov %r0, 7
            add %r0, %r1
            call 2
            add %r0, 1
            exit
            """
        for limit in [UInt64.max, 2] {
            var results: [[UInt64]] = []
            for engine in [ExecutionEngine.interpreter, .jit] {
                let vm = VM(emulator: ConformanceEmulator(), configuration: VMConfiguration(engine: engine))
                let process = try vm.makeProcess(for: try load(vm, source))
                for r in 1...9 { process.registers[r] = UInt64(r) &* 0x1111_0000_0001 }
                var outcome: UInt64 = 0
                while true {
                    do {
                        outcome = try process.run(instructionLimit: limit)
                        break
                    } catch {
                        #expect(error.kind.code == .budgetExhausted)
                        for r in 6...9 { process.registers[r] &+= 1 } // the host changes them between runs
                    }
                }
                results.append([outcome, process.instructionsExecuted] + process.registers.all)
            }
            #expect(results[0] == results[1], "limit \(limit)")
            #expect(results[1][2 + 6] >= 6 &* 0x1111_0000_0001)
        }
    }

    /// `jne %r1, 0` right after `and %r1, …` uses the flags of the `and`; a run resumed at the jump
    /// (after `step()`) enters through a stub that compares first.
    @Test func jumpsOnFlagsOfTheInstructionBeforeResumeAlike() throws {
        for (value, expected) in [(UInt64(6), UInt64(2)), (9, 1), (0x1_0000_0004, 2)] {
            let source = """
                lddw %r1, \(value)
                and32 %r1, 6
                jne %r1, 0, set
                mov %r0, 1
                exit
                set:
                mov %r0, 2
                exit
                """
            for steps in 0..<4 {
                let vm = VM(configuration: VMConfiguration(engine: .jit))
                let process = try vm.makeProcess(for: try load(vm, source))
                for _ in 0..<steps { _ = try process.step() }
                #expect(try process.run() == expected, "\(value), \(steps) steps")
                #expect(process.instructionsExecuted == 5, "\(value), \(steps) steps")
            }
        }
    }

    /// A fault reports the same pc, instruction, address and region under both engines.
    @Test func faultsMatchTheInterpreter() throws {
        let cases = [
            "mov %r1, 0\nldxdw %r0, [%r1+0]\nexit", // NULL
            "ldxdw %r0, [%r10+0]\nexit", // past the stack
            "stdw [%r10-520], 1\nexit", // below the first frame... still in the stack?
            "mov %r1, %r10\nstxdw [%r1-4100], %r1\nexit", // out of the stack
            "mov %r0, 0\nmov %r1, %r10\nadd %r1, -3\nlock add [%r1+0], %r0\nexit", // misaligned atomic
        ]
        for source in cases {
            var errors: [String] = []
            for engine in [ExecutionEngine.interpreter, .jit] {
                let vm = VM(configuration: VMConfiguration(engine: engine))
                let process = try vm.makeProcess(for: try load(vm, source))
                do {
                    errors.append("exit \(try process.run())")
                } catch {
                    errors.append("\(error) pc \(error.pc) count \(process.instructionsExecuted)")
                }
            }
            #expect(errors[0] == errors[1], "\(source)")
        }
    }

    /// A stale address (a region unmapped and replaced) faults in compiled code too.
    @Test func staleAddressesFault() throws {
        let vm = VM(configuration: VMConfiguration(engine: .jit))
        let program = try load(vm, "ldxdw %r0, [%r1+0]\nexit")
        let process = try vm.makeProcess(for: program, context: MemoryContext([1, 0, 0, 0, 0, 0, 0, 0]))
        #expect(try process.run() == 1)
        let stale = process.registers[1]
        try process.reset(context: MemoryContext([2, 0, 0, 0, 0, 0, 0, 0]))
        #expect(process.registers[1] != stale)
        #expect(try process.run() == 2)
        try process.reset(context: MemoryContext([3, 0, 0, 0, 0, 0, 0, 0]))
        process.registers.storage[1] = stale
        #expect(throws: ExecutionError.self) { try process.run() }
    }

    /// Loads and stores through one register in straight-line code are checked once (an access
    /// group); where that check fails, each access is checked alone: a fault has the interpreter's
    /// pc, address, region and count, the accesses before it done (registers and memory), for a
    /// group in bounds, one running past the end, one through a stale pointer, one storing into a
    /// read-only region, and entering in the middle of a group after `step()`.
    @Test func accessGroupsFaultExactly() throws {
        let group = """
            ldxb %r2, [%r1+0]
            ldxh %r3, [%r1+2]
            add %r2, %r3
            stxb [%r1+6], %r2
            ldxw %r4, [%r1OFFSET]
            ldxdw %r5, [%r1+8]
            mov %r0, %r2
            add %r0, %r4
            add %r0, %r5
            exit
            """
        let bytes: [UInt8] = (0..<16).map { UInt8($0 * 3 + 1) }
        for (offset, size) in [(4, 16), (12, 16), (4, 15), (40, 16), (-4, 16)] {
            for steps in 0..<4 {
                var outcomes: [String] = []
                for engine in [ExecutionEngine.interpreter, .jit] {
                    let vm = VM(configuration: VMConfiguration(engine: engine))
                    let program = try load(
                        vm, group.replacingOccurrences(of: "OFFSET", with: offset < 0 ? "\(offset)" : "+\(offset)"))
                    let context = MemoryContext(Array(bytes.prefix(size)))
                    let process = try vm.makeProcess(for: program, context: context)
                    if engine == .jit {
                        // `movzx esi, byte [rdi + r11 + 0]`: the group's first member addresses
                        // through the host delta (in r11: no slot between uses it).
                        let code = try #require(program.machineCode)
                        let load: [UInt8] = [0x42, 0x0F, 0xB6, 0x74, 0x1F, 0x00]
                        #expect((0...(code.count - load.count)).contains { Array(code[$0..<$0 + load.count]) == load })
                    }
                    for _ in 0..<steps { _ = try process.step() }
                    var outcome: String
                    do {
                        outcome = "exit \(try process.run())"
                    } catch {
                        outcome = "\(error) pc \(error.pc)"
                    }
                    outcome += " count \(process.instructionsExecuted) r \(process.registers.all)"
                    let region = try #require(process.memory.storage(containing: process.registers[1]))
                    outcome += " memory \(region.storage.bytes(in: 0..<region.storage.count))"
                    outcomes.append(outcome)
                }
                #expect(outcomes[0] == outcomes[1], "offset \(offset), size \(size), \(steps) steps")
            }
        }
        // A stale pointer: the first access of the group faults, in both engines alike.
        var stale: [String] = []
        for engine in [ExecutionEngine.interpreter, .jit] {
            let vm = VM(configuration: VMConfiguration(engine: engine))
            let program = try load(vm, group.replacingOccurrences(of: "OFFSET", with: "+4"))
            let process = try vm.makeProcess(for: program, context: MemoryContext(bytes))
            _ = try process.run()
            let old = process.registers[1]
            try process.reset(context: MemoryContext(bytes))
            process.registers.storage[1] = old
            do {
                stale.append("exit \(try process.run())")
            } catch {
                stale.append("\(error) pc \(error.pc) count \(process.instructionsExecuted)")
            }
        }
        #expect(stale[0] == stale[1])
        #expect(stale[0].contains("pc 0"), "\(stale[0])")
        // Into a read-only region: the group's span check fails on the write limit; the loads
        // before the store run, the store faults.
        var readOnly: [String] = []
        for engine in [ExecutionEngine.interpreter, .jit] {
            let vm = VM(configuration: VMConfiguration(engine: engine))
            let program = try load(vm, group.replacingOccurrences(of: "OFFSET", with: "+4"))
            let process = try vm.makeProcess(for: program)
            let address = try process.memory.map(RegionStorage(count: 16), name: "rodata", kind: .readOnly)
            process.registers.storage[1] = address
            do {
                readOnly.append("exit \(try process.run())")
            } catch {
                readOnly.append(
                    "\(error) pc \(error.pc) count \(process.instructionsExecuted) r \(process.registers.all)")
            }
        }
        #expect(readOnly[0] == readOnly[1])
        #expect(readOnly[0].contains("pc 3"), "\(readOnly[0])")
    }

    /// The code pages are never writable and executable at once: read-execute once compiled.
    @Test func codeIsMappedReadExecute() throws {
        let vm = VM(configuration: VMConfiguration(engine: .jit))
        let program = try load(vm, "mov %r0, 7\nexit")
        let compiled = try #require(program.jitCache.compiled(program))
        let address = UInt(compiled.pcTable[0])
        // /proc files report size 0: read to the end rather than by size.
        let data = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/maps")).readToEnd() ?? Data()
        let maps = String(decoding: data, as: UTF8.self)
        let line = maps.split(separator: "\n").first { line in
            let range = line.split(separator: " ")[0].split(separator: "-").compactMap { UInt($0, radix: 16) }
            return range.count == 2 && range[0] <= address && address < range[1]
        }
        #expect(line.map { $0.split(separator: " ")[1] } == "r-xp")
    }

    /// Cancellation stops compiled code in a loop without end.
    @Test func cancellationStopsALoop() throws {
        let vm = VM(configuration: VMConfiguration(engine: .jit))
        let process = try vm.makeProcess(for: try load(vm, "loop:\nadd %r0, 1\nja loop"))
        let flag = CancellationFlag()
        flag.cancel()
        #expect {
            try process.run(cancellation: flag)
        } throws: { error in
            (error as? ExecutionError)?.kind.code == .cancelled
        }
    }
}

/// A helper that maps 100 regions (the translation table grows and moves) and returns the
/// address of the last: compiled code must use the new table after the call.
private final class MappingEmulator: Emulator {
    let name = "mapping"
    private let mapMany = Helper(id: 1, name: "map_many") { process throws(HelperFailure) in
        var last: UInt64 = 0
        for index in 0..<100 {
            do {
                last = try process.memory.allocate(size: 16, name: "region \(index)").address
            } catch {
                throw .message("\(error)")
            }
        }
        return .value(last)
    }

    func helper(id: Int32) -> Helper? { id == 1 ? mapMany : nil }
}

extension JITTests {
    @Test func helpersThatMapRegionsMoveTheTable() throws {
        let source = """
            call 1
            stdw [%r0+8], 42
            ldxdw %r0, [%r0+8]
            exit
            """
        for engine in [ExecutionEngine.interpreter, .jit] {
            let vm = VM(emulator: MappingEmulator(), configuration: VMConfiguration(engine: engine))
            let process = try vm.makeProcess(for: try load(vm, source))
            #expect(try process.run() == 42, "\(engine)")
        }
    }
}

/// A helper that moves R10 by its first argument (host code may write any register).
private final class FramePointerEmulator: Emulator {
    let name = "frame-pointer"
    private let move = Helper(id: 1, name: "move_r10") { process throws(HelperFailure) in
        process.registers.storage[10] &+= process.registers.storage[1]
        return .value(0)
    }

    func helper(id: Int32) -> Helper? { id == 1 ? move : nil }
}

extension JITTests {
    /// Compiled code checks no R10-relative access within a frame, relying on R10 being the top
    /// of the stack minus the call depth's frames: when host code or a helper moves R10 (within
    /// the stack, or out of it), both engines still agree on every result and fault.
    @Test func movedFramePointersBehaveAsInTheInterpreter() throws {
        let source = """
            stdw [%r10-8], 7
            mov %r1, %r2
            call 1
            stdw [%r10-16], 5
            ldxdw %r0, [%r10-8]
            ldxdw %r3, [%r10-16]
            add %r0, %r3
            call local f
            exit
            f:
            stdw [%r10-512], 1
            ldxdw %r0, [%r10-512]
            exit
            """
        // (R10 set by the host, R10 moved by the helper): consistent, moved within the stack,
        // moved past its end, and moved out of it.
        let cases: [(Int64, Int64)] = [(0, 0), (-100, 0), (0, -520), (0, 64), (-4000, 0), (0, 1 << 40)]
        for (hostMove, helperMove) in cases {
            var results: [String] = []
            for engine in [ExecutionEngine.interpreter, .jit] {
                let vm = VM(emulator: FramePointerEmulator(), configuration: VMConfiguration(engine: engine))
                let process = try vm.makeProcess(for: try load(vm, source))
                process.registers.storage[10] &+= UInt64(bitPattern: hostMove)
                process.registers.storage[2] = UInt64(bitPattern: helperMove)
                do {
                    results.append("exit \(try process.run()) count \(process.instructionsExecuted)")
                } catch {
                    results.append("\(error) pc \(error.pc) count \(process.instructionsExecuted)")
                }
            }
            #expect(results[0] == results[1], "host \(hostMove), helper \(helperMove)")
        }
    }
}
