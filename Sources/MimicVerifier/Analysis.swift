import MimicCore

/// A refusal found while exploring: the kernel's message and what to show with it.
struct Failure: Error {
    var kind: VerificationErrorKind
    var pc: Int
    var message: String
    /// Registers to show (their values are taken from the state at `pc`).
    var registers: [Int] = []
    var advice: String = ""
}

/// A stored state for pruning (`struct bpf_verifier_state_list`).
final class Checkpoint {
    let state: VerifierState
    let pc: Int
    /// Paths still being explored below this state (`branches`).
    var branches = 1
    /// Prunes and misses, to drop states that never help (`hit_cnt`, `miss_cnt`).
    var hits = 0
    var misses = 0
    let parent: Checkpoint?
    /// The instructions from `parent` to this state on the path that stored it.
    let history: [HistoryEntry]
    /// Per frame, the scalars some later instruction needed (`reg->precise`, `Precision.swift`).
    var marks: [PreciseMarks]
    /// Every scalar is precise here and in every state before it on its path
    /// (`mark_all_scalars_precise` reached it, or the program keeps every scalar precise).
    var allPrecise: Bool

    init(state: VerifierState, pc: Int, parent: Checkpoint?, history: [HistoryEntry], allPrecise: Bool) {
        self.state = state
        self.pc = pc
        self.parent = parent
        self.history = history
        marks = [PreciseMarks](repeating: allPrecise ? .all : PreciseMarks(), count: state.frames.count)
        self.allPrecise = allPrecise
    }
}

/// One verification: the static checks, then the path exploration (`do_check`).
final class Analysis {
    let program: VerifierProgram
    let insns: [RawInstruction]
    let options: VerifierOptions
    let type: ProgramType

    var logText = ""
    var processed = 0
    var storedStates = 0
    var idGen: UInt32 = 0
    /// Sub-program starts, sorted (entry 0 first).
    var subprogramStarts: [Int] = [0]
    /// The sub-program of each instruction.
    var subprogramOf: [Int] = []
    var stackDepth: [Int] = []
    var callEdges = Set<[Int]>()
    var prunePoint: [Bool] = []
    var liveIn: [UInt16] = []
    /// Stack slots of the main frame a later instruction may read (`computeStackLiveness`).
    var liveStack: [UInt64] = []
    var explored: [[Checkpoint]] = []
    /// The pointer each load or store instruction first went through (`insn_aux_data.ptr_type`).
    var accessPointers: [Register?] = []
    /// Whether scalars are compared only where precise (`Precision.swift`): for privileged
    /// loaders of programs without iterator or `may_goto` loops.
    var tracksPrecision = false
    /// The path being explored: the instruction being checked, the last state it stored and the
    /// instructions since, and what the instruction being checked did that the walk back needs.
    var currentPC = 0
    var pathParent: Checkpoint?
    var pathHistory: [HistoryEntry] = []
    var stepStackSlot: (frame: Int, slot: Int)?
    var stepLinked: [Location]?
    /// Jumps processed, and the counts when the last state was stored (`jmps_processed`...).
    var jumpsProcessed = 0
    var jumpsAtLastState = 0
    var processedAtLastState = 0
    /// The state before the instruction being checked, for the registers of a message.
    var currentState = VerifierState()

    /// The kernel's types, when the program comes with the kernel's BTF.
    let kernelTypes: KernelTypes?
    /// A BTF-typed context (fentry, fexit, tp_btf, LSM, iterators): the attach target's
    /// arguments, when the kernel's BTF has the target.
    let btfContext: KernelTypes.Context?

    init(program: VerifierProgram, options: VerifierOptions) {
        self.program = program
        self.insns = program.instructions
        self.options = options
        self.type = program.type
        let types = program.kernelBTF.map(KernelTypes.init)
        kernelTypes = types
        btfContext = program.attachTarget.flatMap { target in types?.context(of: target, program: program) }
    }

    /// A trusted, never NULL pointer to the kernel struct `name` (a helper's or a context
    /// field's): typed when the kernel's BTF has the struct.
    func trustedPointer(to name: String) -> Register {
        var r = Register.pointer(.btfObject)
        r.btfName = name
        if let id = kernelTypes?.structID(named: name) {
            r.btfID = id
            r.btfFlags = .trusted
        }
        return r
    }

    func newID() -> UInt32 {
        idGen += 1
        return idGen
    }

    func log(_ line: @autoclosure () -> String) {
        if options.log { logText += line() + "\n" }
    }

    // MARK: Running

    func run() -> VerificationReport {
        var failure: Failure?
        do {
            try checkStructure()
            try explore()
            try checkStackDepth()
        } catch let f as Failure {
            failure = f
        } catch {
            failure = Failure(kind: .invalidInstruction, pc: 0, message: "\(error)")
        }
        var report = VerificationReport(
            error: nil, processedInstructions: processed, storedStates: storedStates,
            stackDepths: stackDepth, log: nil)
        if let f = failure {
            let error = makeError(f)
            report.error = error
            log(f.message)
            log("processed \(processed) insns (limit \(options.complexityLimit)) total_states \(storedStates)")
        } else {
            let depths = stackDepth.map(String.init).joined(separator: "+")
            log("processed \(processed) insns (limit \(options.complexityLimit)) total_states \(storedStates)")
            log("stack depth \(depths)")
        }
        if options.log { report.log = logText }
        return report
    }

    /// A frame's share of the 512 bytes: rounded up to 16 bytes, as with the JIT
    /// (`round_up_stack_depth`).
    func roundUp(_ depth: Int) -> Int { (depth + 15) / 16 * 16 }

    func makeError(_ f: Failure) -> VerificationError {
        let pc = f.pc
        let text = pc >= 0 && pc < insns.count ? KernelText.instruction(insns, at: pc, maps: program.maps) : ""
        var registers: [RegisterSnapshot] = []
        if !currentState.frames.isEmpty {
            for r in f.registers where r >= 0 && r <= 10 {
                registers.append(
                    RegisterSnapshot(register: r, value: KernelText.register(currentState[register: r], program.maps)))
            }
        }
        let line = program.lineInfo.line(at: pc)
        let advice = f.advice.isEmpty ? Advice.sentence(for: f, analysis: self) : f.advice
        return VerificationError(
            kind: f.kind, instructionIndex: pc, instruction: text, message: f.message, sourceLine: line,
            registers: registers, advice: advice)
    }

    // MARK: Static checks (check_subprogs, check_cfg)

    func isLoadImm64(_ i: RawInstruction) -> Bool { i.opcode == 0x18 }
    func isExit(_ i: RawInstruction) -> Bool { i.opcode == 0x95 }
    func isCall(_ i: RawInstruction) -> Bool { i.opcode == 0x85 }
    func isMayGoto(_ i: RawInstruction) -> Bool { i.opcode == 0xe5 }
    func isUnconditionalJump(_ i: RawInstruction) -> Bool { i.opcode == 0x05 || i.opcode == 0x06 }
    func isJump(_ i: RawInstruction) -> Bool {
        let c = i.opcode & 7
        return (c == 5 || c == 6) && !isCall(i) && !isExit(i)
    }

    func jumpTarget(_ pc: Int) -> Int {
        let i = insns[pc]
        if i.opcode == 0x06 { return pc + Int(i.imm) + 1 }
        return pc + Int(i.offset) + 1
    }

    func checkStructure() throws {
        guard !insns.isEmpty else { throw Failure(kind: .invalidInstruction, pc: 0, message: "empty program") }
        guard type != .unspec, type.kernelName != nil else {
            throw Failure(
                kind: .invalidInstruction, pc: 0, message: "unknown program type \(type.rawValue)",
                advice:
                    "the section name does not give a program type libbpf knows (e.g. SEC(\"xdp\"), SEC(\"tc\")); name the section so, or give the type (mimic verify --type xdp)"
            )
        }
        guard insns.count <= 1_000_000 else {
            throw Failure(kind: .complexity, pc: 0, message: "BPF program is too large. Max 1000000 insns")
        }
        // Instruction encodings and sub-program starts.
        var pc = 0
        var isSecondSlot = [Bool](repeating: false, count: insns.count)
        var starts = Set<Int>([0])
        while pc < insns.count {
            let i = insns[pc]
            if isLoadImm64(i) {
                guard pc + 1 < insns.count, insns[pc + 1].opcode == 0, insns[pc + 1].destination == 0,
                    insns[pc + 1].source == 0, insns[pc + 1].offset == 0
                else { throw Failure(kind: .invalidInstruction, pc: pc, message: "invalid BPF_LD_IMM insn") }
                guard i.source <= 6 else {
                    throw Failure(kind: .invalidInstruction, pc: pc, message: "unrecognized bpf_ld_imm64 insn")
                }
                if i.source == 4 { starts.insert(pc + Int(i.imm) + 1) }
                isSecondSlot[pc + 1] = true
                pc += 2
                continue
            }
            if isMayGoto(i) {
                guard i.destination == 0, i.source == 0, i.imm == 0 else {
                    throw Failure(kind: .invalidInstruction, pc: pc, message: "invalid may_goto imm \(i.imm)")
                }
            } else if isCall(i), i.source == 1 {
                guard i.destination == 0, i.offset == 0 else {
                    throw Failure(kind: .invalidInstruction, pc: pc, message: "BPF_CALL uses reserved fields")
                }
                starts.insert(pc + Int(i.imm) + 1)
            } else if isCall(i), i.source == 2 {
                // kfunc: the immediate is a kernel BTF id.
            } else {
                let next = pc + 1 < insns.count ? insns[pc + 1] : nil
                if case .failure(let problem) = InstructionSet.validate(i, next: next) {
                    throw Failure(kind: .invalidInstruction, pc: pc, message: KernelText.encodingMessage(i, problem))
                }
            }
            pc += 1
        }
        for s in starts where s < 0 || s >= insns.count {
            throw Failure(
                kind: .controlFlow, pc: 0, message: "call to invalid destination (insn \(s) of \(insns.count))")
        }
        subprogramStarts = starts.sorted()
        subprogramOf = [Int](repeating: 0, count: insns.count)
        for (index, start) in subprogramStarts.enumerated() {
            let end = index + 1 < subprogramStarts.count ? subprogramStarts[index + 1] : insns.count
            for p in start..<end { subprogramOf[p] = index }
            let last = end - 1
            // The last slot of an lddw pair is its second half: the instruction is at last - 1.
            let lastInsn = isSecondSlot[last] ? insns[last - 1] : insns[last]
            if !isExit(lastInsn) && !isUnconditionalJump(lastInsn) {
                throw Failure(kind: .controlFlow, pc: last, message: "last insn is not an exit or jmp")
            }
        }
        stackDepth = [Int](repeating: 0, count: subprogramStarts.count)
        // Jumps stay inside their sub-program and land on instructions.
        prunePoint = [Bool](repeating: false, count: insns.count)
        for s in subprogramStarts { prunePoint[s] = true }
        for pc in insns.indices where !isSecondSlot[pc] {
            let i = insns[pc]
            if isJump(i) {
                let t = jumpTarget(pc)
                guard t >= 0, t < insns.count, subprogramOf[t] == subprogramOf[pc] else {
                    throw Failure(kind: .controlFlow, pc: pc, message: "jump out of range from insn \(pc) to \(t)")
                }
                if isSecondSlot[t] {
                    throw Failure(kind: .controlFlow, pc: pc, message: "jump into the middle of ldimm64 insn \(t - 1)")
                }
                prunePoint[t] = true
                if !isUnconditionalJump(i), pc + 1 < insns.count { prunePoint[pc + 1] = true }
                if isMayGoto(i) { prunePoint[pc] = true }
            } else if isCall(i), pc + 1 < insns.count {
                prunePoint[pc + 1] = true
                if i.source == 2, program.externs[pc] == "bpf_iter_num_next" { prunePoint[pc] = true }
            }
        }
        try checkControlFlow(isSecondSlot)
        computeLiveness(isSecondSlot)
        computeStackLiveness(isSecondSlot)
        explored = [[Checkpoint]](repeating: [], count: insns.count)
        accessPointers = [Register?](repeating: nil, count: insns.count)
        // Iterator and may_goto loops compare loop states before their paths end (and kfunc
        // calls are taken as such loop heads): those programs keep every scalar precise.
        let loopHeads = insns.indices.contains {
            !isSecondSlot[$0] && (isMayGoto(insns[$0]) || (isCall(insns[$0]) && insns[$0].source == 2))
        }
        tracksPrecision = options.privileged && !loopHeads
    }

    /// Every instruction is reachable; back-edges only when privileged (`check_cfg`).
    func checkControlFlow(_ isSecondSlot: [Bool]) throws {
        var state = [UInt8](repeating: 0, count: insns.count) // 0 new, 1 on stack, 2 done
        for start in subprogramStarts {
            var stack: [(Int, Int)] = [(start, 0)]
            if state[start] != 0 { continue }
            state[start] = 1
            while let (pc, edge) = stack.last {
                let succ = successors(pc)
                if edge < succ.count {
                    stack[stack.count - 1].1 += 1
                    let t = succ[edge]
                    guard t < insns.count else {
                        throw Failure(kind: .controlFlow, pc: pc, message: "jump out of range from insn \(pc) to \(t)")
                    }
                    if state[t] == 0 {
                        state[t] = 1
                        stack.append((t, 0))
                    } else if state[t] == 1, !options.privileged {
                        throw Failure(kind: .loop, pc: pc, message: "back-edge from insn \(pc) to \(t)")
                    }
                } else {
                    state[pc] = 2
                    stack.removeLast()
                }
            }
        }
        for pc in insns.indices where state[pc] == 0 && !isSecondSlot[pc] {
            throw Failure(kind: .controlFlow, pc: pc, message: "unreachable insn \(pc)")
        }
    }

    func successors(_ pc: Int) -> [Int] {
        let i = insns[pc]
        if isExit(i) { return [] }
        if isLoadImm64(i) { return [pc + 2] }
        if isJump(i) {
            if isUnconditionalJump(i) { return [jumpTarget(pc)] }
            return [pc + 1, jumpTarget(pc)]
        }
        return [pc + 1]
    }

    // MARK: Liveness (which registers a later instruction may read)

    func uses(_ pc: Int) -> (use: UInt16, def: UInt16) {
        let i = insns[pc]
        let d = UInt16(1) << UInt16(i.destination & 0xf)
        let s = UInt16(1) << UInt16(i.source & 0xf)
        let argRegs: UInt16 = 0b111110
        let callerSaved: UInt16 = 0b111111
        switch i.opcode & 7 {
        case 0x07, 0x04:
            let op = i.opcode & 0xf0
            let srcUse: UInt16 = i.opcode & 0x08 != 0 ? s : 0
            if op == 0xb0 { return (srcUse, d) }
            return (d | srcUse, d)
        case 0x01: return (s, d)
        case 0x02: return (d, 0)
        case 0x03:
            if i.opcode & 0xe0 == 0xc0 {
                if i.imm == 0xf1 { return (d | s | 1, 1) }
                return (d | s, i.imm & 1 != 0 ? s : 0)
            }
            return (d | s, 0)
        case 0x00:
            if isLoadImm64(i) { return (0, d) }
            let ind: UInt16 = i.opcode & 0xe0 == 0x40 ? s : 0
            return ((1 << 6) | ind, callerSaved)
        default:
            if isExit(i) { return (1, 0) }
            if isCall(i) {
                if i.source == 0, let proto = HelperPrototypes.prototype(i.imm, for: type) {
                    var use: UInt16 = 0
                    for a in proto.arguments.indices { use |= 1 << UInt16(a + 1) }
                    return (use, callerSaved)
                }
                return (argRegs, callerSaved)
            }
            if isMayGoto(i) || isUnconditionalJump(i) { return (0, 0) }
            return (d | (i.opcode & 0x08 != 0 ? s : 0), 0)
        }
    }

    func computeLiveness(_ isSecondSlot: [Bool]) {
        liveIn = [UInt16](repeating: 0, count: insns.count)
        var effects: [(UInt16, UInt16)] = []
        effects.reserveCapacity(insns.count)
        for pc in insns.indices { effects.append(isSecondSlot[pc] ? (0, 0) : uses(pc)) }
        var succ: [[Int]] = insns.indices.map { isSecondSlot[$0] ? [] : successors($0) }
        for pc in succ.indices { succ[pc] = succ[pc].filter { $0 < insns.count } }
        var changed = true
        while changed {
            changed = false
            for pc in stride(from: insns.count - 1, through: 0, by: -1) where !isSecondSlot[pc] {
                var out: UInt16 = 0
                for t in succ[pc] { out |= liveIn[t] }
                let (use, def) = effects[pc]
                let value = use | (out & ~def)
                if value != liveIn[pc] {
                    liveIn[pc] = value
                    changed = true
                }
            }
        }
    }

    func checkStackDepth() throws {
        // The deepest chain of calls from the entry, each frame rounded up (`check_max_stack_depth`).
        var edges: [Int: [Int]] = [:]
        for e in callEdges { edges[e[0], default: []].append(e[1]) }
        // Longest chain from each function, memoised (BPF forbids recursion, so the graph is a DAG).
        var best: [Int: (depth: Int, chain: [Int])] = [:]
        var visiting = Set<Int>()
        func deepest(_ s: Int) -> (depth: Int, chain: [Int]) {
            if let known = best[s] { return known }
            guard visiting.insert(s).inserted else { return (0, []) }
            var result = (depth: roundUp(stackDepth[s]), chain: [s])
            for t in edges[s] ?? [] {
                let below = deepest(t)
                if roundUp(stackDepth[s]) + below.depth > result.depth {
                    result = (roundUp(stackDepth[s]) + below.depth, [s] + below.chain)
                }
            }
            visiting.remove(s)
            best[s] = result
            return result
        }
        let (worst, worstChain) = deepest(0)
        if worst > 512 {
            throw Failure(
                kind: .stackDepth, pc: subprogramStarts[worstChain.last ?? 0],
                message: "combined stack size of \(worstChain.count) calls is \(worst). Too large",
                advice:
                    "the functions on this call chain use \(worst) bytes of stack together and the kernel allows 512; move large locals into a per-CPU array map or make a function __always_inline"
            )
        }
    }
}
