import MimicMemory

/// A differential fuzzer of the JIT against the interpreter: random valid programs (ALU and
/// division edge cases, loads, stores and atomics on the stack, the context buffer and wild
/// pointers, `ld_abs`, jumps backwards and forwards, BPF-to-BPF calls and recursion, `callx`,
/// helpers including one that calls back into the program and one with a C-ABI entry that
/// sometimes declines), each run under both engines from
/// the same state; the outcomes must agree exactly: R0–R10, the error (kind, pc, instruction,
/// address, region), the instruction count, the pc, the depth, the call frames, the stack and
/// the context buffer. Every eighth program runs with a call depth limit above 64, where the
/// compiled code keeps its call frames in `Process.frames` instead of on the machine stack.
///
/// Used by the test suite (10,000 programs) and `mimic-bench --jit-fuzz N` (long runs).
public enum JITDifferential {
    /// The result of comparing `count` programs from `seed`.
    public struct Report: Sendable, CustomStringConvertible {
        public var programs = 0
        public var exited = 0
        public var faulted = 0
        public var budgetStops = 0
        /// Programs the JIT did not compile (counted, never expected).
        public var notCompiled = 0
        /// The first few disagreements, described.
        public var mismatches: [String] = []

        public init() {}

        public var description: String {
            "\(programs) programs: \(exited) exited, \(faulted) faulted, \(budgetStops) stopped by the budget, "
                + "\(notCompiled) not compiled, \(mismatches.count) mismatches"
        }
    }

    /// The instruction budget of each run (programs may loop).
    static let budget: UInt64 = 3_000

    /// Runs `count` random programs (seeds `seed`, `seed + 1`, ...) under both engines.
    public static func run(seed: UInt64, count: Int) -> Report {
        compare(seed: seed, count: count, program: { program(seed: $0) }) { instructions, engine, depth, _, notCompiled in
            try outcome(instructions, engine: engine, maxCallDepth: depth, compiled: notCompiled)
        }
    }

    /// The fuzzing loop both modes share: for each seed, the program `program` writes, run by
    /// `outcome` under the interpreter and then the JIT (the JIT's run counts a program it did
    /// not compile in `notCompiled`), with a call depth of 72 for every eighth seed (4 otherwise);
    /// the two outcomes counted in the report, a disagreement or an error among its mismatches.
    static func compare(
        seed: UInt64, count: Int, program: (_ seed: UInt64) -> [RawInstruction],
        outcome: (
            _ instructions: [RawInstruction], _ engine: ExecutionEngine, _ maxCallDepth: Int, _ seed: UInt64,
            _ notCompiled: UnsafeMutablePointer<Int>?
        ) throws -> Outcome
    ) -> Report {
        var report = Report()
        guard JITBackends.native != nil else { return report }
        for index in 0..<count {
            let programSeed = seed &+ UInt64(index)
            let instructions = program(programSeed)
            let depth = programSeed % 8 == 7 ? 72 : 4
            report.programs += 1
            let interpreted: Outcome
            let compiled: Outcome
            do {
                interpreted = try outcome(instructions, .interpreter, depth, programSeed, nil)
                compiled = try withUnsafeMutablePointer(to: &report.notCompiled) {
                    try outcome(instructions, .jit, depth, programSeed, $0)
                }
            } catch {
                if report.mismatches.count < 10 { report.mismatches.append("seed \(programSeed): \(error)") }
                continue
            }
            tally(&report, seed: programSeed, instructions, interpreted, compiled)
        }
        return report
    }

    /// Counts one program's outcome in `report`, and a disagreement among its mismatches.
    static func tally(
        _ report: inout Report, seed: UInt64, _ instructions: [RawInstruction], _ interpreted: Outcome,
        _ compiled: Outcome
    ) {
        if interpreted.text.hasPrefix("exit") {
            report.exited += 1
        } else if interpreted.text.contains("budget") {
            report.budgetStops += 1
        } else {
            report.faulted += 1
        }
        if interpreted != compiled, report.mismatches.count < 10 {
            let listing = Disassembler.listing(instructions).split(separator: "\n").map { "  " + $0 }
            report.mismatches.append(
                "seed \(seed):\n interpreter: \(interpreted.text)\n jit:         \(compiled.text)\n"
                    + listing.joined(separator: "\n"))
        }
    }

    struct Outcome: Equatable {
        var text: String
        var stack: [UInt8]
        var buffer: [UInt8]
    }

    static func outcome(
        _ instructions: [RawInstruction], engine: ExecutionEngine, maxCallDepth: Int = 4,
        compiled notCompiled: UnsafeMutablePointer<Int>?
    ) throws -> Outcome {
        let vm = VM(
            emulator: FuzzEmulator(), configuration: VMConfiguration(maxCallDepth: maxCallDepth, engine: engine))
        let program = try vm.load(instructions, name: "fuzz")
        if let notCompiled, program.jitCache.compiled(program) == nil { notCompiled.pointee += 1 }
        let buffer = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let context = MemoryContext(buffer)
        let process = try vm.makeProcess(for: program, context: context)
        return record(process, context: context, buffer: buffer)
    }

    /// Runs `process` (its R1 the context buffer, holding `buffer`) within the budget, resets it
    /// with the same context and runs it again — the per-packet path, which under the JIT takes
    /// `run()`'s quick entry (`Process.enterArmed`) —, and records what the engines must agree on
    /// after each run.
    static func record(_ process: Process, context: some Context, buffer: [UInt8]) -> Outcome {
        let first = recordRun(process, buffer: buffer)
        do {
            try process.reset(context: context)
        } catch {
            return Outcome(text: first.text + " | reset failed: \(error)", stack: first.stack, buffer: first.buffer)
        }
        let second = recordRun(process, buffer: buffer)
        return Outcome(
            text: first.text + " | after a reset: " + second.text, stack: first.stack + second.stack,
            buffer: first.buffer + second.buffer)
    }

    /// One run of `record`.
    static func recordRun(_ process: Process, buffer: [UInt8]) -> Outcome {
        let bufferAddress = process.registers[1]
        var text: String
        do {
            let r0 = try process.run(instructionLimit: budget)
            text = "exit \(r0)"
        } catch {
            text = "error \(error.kind.code) at \(error.pc): \(error)"
        }
        text +=
            " count \(process.instructionsExecuted) pc \(process.pc) depth \(process.depth) registers \(process.registers.all)"
            + " frames \(process.callStack.map { "\($0.returnPC) \($0.savedRegisters)" })"
        let stack = (try? process.memory.read(process.stackBase, count: process.stackSize)) ?? []
        let after = (try? process.memory.read(bufferAddress, count: buffer.count)) ?? []
        return Outcome(text: text, stack: stack, buffer: after)
    }

    /// A helper set for fuzzing: the conformance helpers, and id 6 calling the function whose
    /// address is in R1 R2 & 3 times with the iteration in R1 (as `bpf_loop`), summing R0.
    final class FuzzEmulator: Emulator {
        let name = "jit-fuzz"
        private let base = ConformanceEmulator()
        private let loop = Helper(id: 6, name: "loop") { process throws(HelperFailure) in
            guard let slot = process.functionSlot(fromAddress: process.argument(1)) else { return .value(UInt64.max) }
            var sum: UInt64 = 0
            for iteration in 0..<(process.argument(2) & 3) {
                do {
                    sum &+= try process.callFunction(at: slot, arguments: [iteration, process.argument(3)])
                } catch {
                    throw .message("callback failed: \(error)")
                }
            }
            return .value(sum)
        }

        /// Id 7: a helper with a C-ABI entry (`DirectHelper`) that declines when R1 is a
        /// multiple of 4; its `function` computes the same from R1–R5 (so a decline shows only
        /// as the path taken), and touches every register the call must keep.
        private let mix: Helper = {
            var helper = Helper(id: 7, name: "mix") { process throws(HelperFailure) in
                .value(
                    FuzzEmulator.mixed(
                        process.argument(1), process.argument(2), process.argument(3), process.argument(4),
                        process.argument(5)))
            }
            helper.direct = DirectHelper(
                { r1, r2, r3, r4, r5, call in
                    if r1 & 3 == 0 {
                        DirectHelperCall.at(call).pointee.decline()
                        return 0
                    }
                    return FuzzEmulator.mixed(r1, r2, r3, r4, r5)
                })
            return helper
        }()

        static func mixed(_ r1: UInt64, _ r2: UInt64, _ r3: UInt64, _ r4: UInt64, _ r5: UInt64) -> UInt64 {
            (r1 &* 0x9E37_79B9_7F4A_7C15) ^ (r2 &+ 1) ^ (r3 << 1) ^ (r4 >> 3) ^ (r5 &* 7)
        }

        func helper(id: Int32) -> Helper? { id == 6 ? loop : id == 7 ? mix : base.helper(id: id) }
        var helperIDs: [Int32] { [0, 1, 2, 3, 4, 5, 6, 7] }
    }

    // MARK: Program generation

    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
        mutating func pick<T>(_ values: [T]) -> T { values[below(values.count)] }
    }

    static func encode(_ operation: Operation, dst: UInt8 = 0, src: UInt8 = 0, off: Int16 = 0, imm: Int32 = 0)
        -> RawInstruction
    {
        let form = InstructionSet.form(of: operation)
        var instruction = RawInstruction(opcode: form.opcode, destination: dst, source: src, offset: off, imm: imm)
        switch form.discriminator {
        case .none: break
        case .offset(let value): instruction.offset = value
        case .imm(let value): instruction.imm = value
        case .source(let value): instruction.source = value
        }
        return instruction
    }

    /// One item of a function body: one instruction, or an `lddw`'s two, with a jump or call to
    /// resolve once slots are known.
    enum Item {
        case plain(RawInstruction)
        case wide(RawInstruction, RawInstruction)
        /// A jump (`op`) to item `target` of the same function.
        case jump(RawInstruction, target: Int)
        /// `call` of function `function`.
        case call(function: Int)
        /// `lddw dst, <function>` (`BPF_PSEUDO_FUNC`).
        case functionAddress(dst: UInt8, function: Int)
    }

    static let aluOperations = Operation.allCases.filter {
        [.aluImm, .aluReg, .unary].contains(InstructionSet.form(of: $0).shape)
    }
    static let jumpOperations = Operation.allCases.filter {
        [.jumpImm, .jumpReg].contains(InstructionSet.form(of: $0).shape)
    }
    static let loads = Operation.allCases.filter { InstructionSet.form(of: $0).shape == .load }
    static let stores = Operation.allCases.filter {
        [.storeImm, .storeReg].contains(InstructionSet.form(of: $0).shape)
    }
    static let atomics = Operation.allCases.filter { InstructionSet.form(of: $0).shape == .atomic }
    static let packetLoads = Operation.allCases.filter {
        [.packetAbsolute, .packetIndirect].contains(InstructionSet.form(of: $0).shape)
    }
    static let interestingImmediates: [Int32] = [
        0, 1, -1, 2, 7, 8, 31, 32, 33, 63, 64, 255, 0x7FFF_FFFF, Int32.min, -8, 16,
    ]

    /// The random program of `seed`.
    /// The random program of `seed`; with `maps`, one that also calls the map helpers on them
    /// (the map mode, `runMaps`; with none, the same programs as ever for each seed).
    public static func program(seed: UInt64, maps: [FuzzMap] = []) -> [RawInstruction] {
        var random = Random(state: seed)
        let functionCount = 1 + random.below(3)
        var functions: [[Item]] = []
        for function in 0..<functionCount {
            functions.append(body(&random, function: function, functionCount: functionCount, maps: maps))
        }
        // Lay out: slots of each item, then resolve targets.
        var starts: [[Int]] = []
        var functionStart: [Int] = []
        var slot = 0
        for items in functions {
            functionStart.append(slot)
            var itemStarts: [Int] = []
            for item in items {
                itemStarts.append(slot)
                if case .wide = item { slot += 2 } else if case .functionAddress = item { slot += 2 } else { slot += 1 }
            }
            starts.append(itemStarts)
        }
        var instructions: [RawInstruction] = []
        for (f, items) in functions.enumerated() {
            for (index, item) in items.enumerated() {
                let pc = starts[f][index]
                switch item {
                case .plain(let i): instructions.append(i)
                case .wide(let a, let b): instructions += [a, b]
                case .jump(var i, let target):
                    let offset = starts[f][target] - (pc + 1)
                    if i.opcode == InstructionSet.form(of: .jump32).opcode {
                        i.imm = Int32(offset)
                    } else {
                        i.offset = Int16(offset)
                    }
                    instructions.append(i)
                case .call(let function):
                    instructions.append(encode(.callLocal, imm: Int32(functionStart[function] - (pc + 1))))
                case .functionAddress(let dst, let function):
                    instructions.append(
                        RawInstruction(
                            opcode: 0x18, destination: dst, source: 4, imm: Int32(functionStart[function] - (pc + 1))))
                    instructions.append(RawInstruction(opcode: 0))
                }
            }
        }
        return instructions
    }

    static func body(_ random: inout Random, function: Int, functionCount: Int, maps: [FuzzMap]) -> [Item] {
        var items: [Item] = []
        func register(_ random: inout Random) -> UInt8 { UInt8(random.below(10)) }
        func written(_ random: inout Random) -> UInt8 {
            // R1 keeps the context buffer most of the time, so memory accesses reach it.
            var r = UInt8(random.below(10))
            if r == 1, random.chance(80) { r = 0 }
            return r
        }
        func immediate(_ random: inout Random) -> Int32 {
            random.chance(50) ? random.pick(interestingImmediates) : Int32(truncatingIfNeeded: random.next())
        }
        if function == 0 {
            for r in 2...9 where random.chance(70) {
                items.append(.plain(encode(.mov64Imm, dst: UInt8(r), imm: immediate(&random))))
            }
            if random.chance(50) {
                // R6 = a stack pointer.
                items.append(.plain(encode(.mov64Reg, dst: 6, src: 10)))
                items.append(.plain(encode(.add64Imm, dst: 6, imm: -Int32(8 * random.below(70)))))
            }
        }
        if function == 0, !maps.isEmpty, random.chance(60) {
            // A map call before the random code has had its chance to fault.
            items += mapCall(&random, maps: maps)
        }
        let length = 8 + random.below(40)
        for _ in 0..<length {
            if !maps.isEmpty, random.chance(10) {
                items += mapCall(&random, maps: maps)
                continue
            }
            let kind = random.below(100)
            switch kind {
            case 0..<35:
                let op = random.pick(aluOperations)
                let shape = InstructionSet.form(of: op).shape
                let dst = written(&random)
                switch shape {
                case .aluImm: items.append(.plain(encode(op, dst: dst, imm: immediate(&random))))
                case .aluReg: items.append(.plain(encode(op, dst: dst, src: register(&random))))
                default: items.append(.plain(encode(op, dst: dst)))
                }
            case 35..<43:
                var value = random.next()
                if random.chance(30) { value = UInt64(bitPattern: Int64(random.pick(interestingImmediates))) }
                items.append(
                    .wide(
                        RawInstruction(
                            opcode: 0x18, destination: written(&random), imm: Int32(truncatingIfNeeded: value)),
                        RawInstruction(opcode: 0, imm: Int32(truncatingIfNeeded: value >> 32))))
            case 43..<60:
                // Sometimes a burst through one base register (the JIT checks such a group once).
                let (base, first) = address(&random)
                let burst = random.chance(30) ? 2 + random.below(3) : 1
                for index in 0..<burst {
                    let op = random.pick(loads + stores + stores)
                    let shape = InstructionSet.form(of: op).shape
                    let offset = index == 0 ? first : first &+ Int16(random.below(24) - 8)
                    if shape == .load {
                        items.append(.plain(encode(op, dst: written(&random), src: base, off: offset)))
                    } else if shape == .storeImm {
                        items.append(.plain(encode(op, dst: base, off: offset, imm: immediate(&random))))
                    } else {
                        items.append(.plain(encode(op, dst: base, src: register(&random), off: offset)))
                    }
                    if index + 1 < burst, random.chance(30) {
                        let op = random.pick(aluOperations)
                        if InstructionSet.form(of: op).shape == .aluImm {
                            items.append(.plain(encode(op, dst: written(&random), imm: immediate(&random))))
                        }
                    }
                }
            case 60..<65:
                let op = random.pick(atomics)
                var (base, offset) = address(&random)
                if random.chance(80) { offset &= ~7 }
                items.append(.plain(encode(op, dst: base, src: register(&random), off: offset)))
            case 65..<67:
                let op = random.pick(packetLoads)
                let imm = random.chance(70) ? Int32(random.below(70)) : immediate(&random)
                let indirect = InstructionSet.form(of: op).shape == .packetIndirect
                items.append(.plain(encode(op, src: indirect ? register(&random) : 0, imm: imm)))
            case 67..<85:
                let op = random.pick(jumpOperations)
                let reg = InstructionSet.form(of: op).shape == .jumpReg
                let instruction = encode(
                    op, dst: register(&random), src: reg ? register(&random) : 0, imm: reg ? 0 : immediate(&random))
                // Mostly forward; backwards ones loop until the budget.
                items.append(.jump(instruction, target: -1))
            case 85..<87:
                items.append(.jump(encode(random.chance(50) ? .jump : .jump32), target: -1))
            case 87..<92 where functionCount > 1:
                items.append(.call(function: 1 + random.below(functionCount - 1)))
            case 92..<95 where !maps.isEmpty:
                items += mapCall(&random, maps: maps)
            case 92..<95:
                // A helper: mostly the cheap ones, sometimes the callback loop or memfrob.
                let id = random.pick([0, 2, 2, 3, 5, 1, 6, 6, 9, 7, 7])
                if id == 6, functionCount > 1 {
                    items.append(.functionAddress(dst: 1, function: 1 + random.below(functionCount - 1)))
                }
                items.append(.plain(encode(.callHelper, imm: Int32(id))))
            case 95..<97 where functionCount > 1:
                let dst = written(&random)
                items.append(.functionAddress(dst: dst, function: random.below(functionCount)))
                items.append(.plain(encode(.callRegister, dst: random.chance(80) ? dst : register(&random))))
            default:
                items.append(.plain(encode(.mov64Reg, dst: written(&random), src: register(&random))))
            }
        }
        items.append(.plain(encode(.exit)))
        // Resolve jump targets now that the item count is known (any item of this function).
        let count = items.count
        for index in items.indices {
            if case .jump(let instruction, _) = items[index] {
                let target =
                    random.chance(75) ? index + 1 + random.below(max(1, count - index - 1)) : random.below(count)
                items[index] = .jump(instruction, target: min(target, count - 1))
            }
        }
        return items
    }

    /// A base register and offset: the stack, the context buffer, R6 (a stack pointer or a
    /// number) or any register (often not an address).
    static func address(_ random: inout Random) -> (UInt8, Int16) {
        switch random.below(10) {
        case 0..<5: return (10, Int16(-8 * random.below(66) + random.below(8) - 4 * (random.chance(10) ? 1 : 0)))
        case 5..<8: return (1, Int16(random.below(72) - 4))
        case 8: return (6, Int16(random.below(64) - 8))
        default: return (UInt8(random.below(10)), Int16(truncatingIfNeeded: random.next()))
        }
    }
}
