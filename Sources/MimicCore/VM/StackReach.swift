/// How far below the top of its stack a program can write: the part of the stack
/// `Process.reset` must zero for the next run to find the stack as a new process has it.
///
/// A run writes the stack through R10, which is read-only, and through pointers derived from it.
/// The analysis follows every register that may hold `R10 + c` through the program's control
/// flow (a forward data-flow pass keeping, per register, the lowest `c` it may hold) and takes
/// the lowest byte written: stores and atomics through such a register (`c + off`), and the
/// pointer itself where one is passed to a helper or kfunc (helpers write upward from the
/// pointers they are given, as every `ARG_PTR_TO_*` argument of the kernel's does).
///
/// It gives up — the whole stack is cleared — when it cannot see where a stack pointer goes:
/// a stack pointer stored to memory, combined with a register or changed by anything but
/// adding or subtracting a constant, an offset beyond the stack's size; a program with
/// BPF-to-BPF calls, `callx`, callbacks (`BPF_PSEUDO_FUNC`), tail calls or custom
/// instructions (other frames, programs or code writing the stack); or a program too large for
/// the pass's budget. What it does not see: stack addresses a program forges from integers or
/// reads back from memory a helper wrote them to (no verified program does either), and host
/// code writing the stack through `Process.memory` (`Process.reset` clears the whole stack
/// after `callFunction`, the one host path that runs code in another frame).
enum StackReach {
    /// The bytes at the top of the entry frame's stack that `code` can write, rounded up to 8,
    /// or `stackSize` when the analysis gives up (see `StackReach`).
    static func bytes(
        code: UnsafeBufferPointer<DecodedInstruction>, instructions: [RawInstruction], helpers: [Helper],
        functionCount: Int, stackSize: Int
    ) -> Int {
        guard functionCount == 1, !code.isEmpty, code.count == instructions.count else { return stackSize }
        guard let lowest = lowestWrite(code: code, instructions: instructions, helpers: helpers, stackSize: stackSize)
        else { return stackSize }
        let reach = (max(0, -lowest) + 7) & ~7
        return min(reach, stackSize)
    }

    /// Not a stack pointer (as far as the analysis sees).
    private static let none = Int.max

    /// The lowest offset from R10 the program writes, or nil when the analysis gives up.
    private static func lowestWrite(
        code: UnsafeBufferPointer<DecodedInstruction>, instructions: [RawInstruction], helpers: [Helper],
        stackSize: Int
    ) -> Int? {
        let count = code.count
        // Per slot, the state on entry: for each of r0–r9 the lowest R10 offset it may hold.
        var states = [[Int]?](repeating: nil, count: count)
        // At the entry only R10 points into the stack (R1 is the context).
        states[0] = [Int](repeating: none, count: 10)
        var worklist = [0]
        var queued = [Bool](repeating: false, count: count)
        queued[0] = true
        var lowest = 0 // nothing written: no bytes to clear
        var budget = 32 * count + 1024
        let floor = -stackSize

        /// Merges `state` into the entry state of `target`; queues it when that changed.
        func flow(_ state: [Int], to target: Int) -> Bool {
            guard target >= 0, target < count else { return false }
            if var existing = states[target] {
                var changed = false
                for index in 0..<10 where state[index] < existing[index] {
                    existing[index] = state[index]
                    changed = true
                }
                guard changed else { return true }
                states[target] = existing
            } else {
                states[target] = state
            }
            if !queued[target] {
                queued[target] = true
                worklist.append(target)
            }
            return true
        }

        while let pc = worklist.popLast() {
            queued[pc] = false
            budget -= 1
            guard budget > 0, var r = states[pc] else { return nil }
            let i = code[pc]
            let d = Int(i.destination)
            let s = Int(i.source)
            /// The R10 offset register `n` may hold (r10 itself: 0).
            func value(_ n: Int) -> Int { n == 10 ? 0 : r[n] }
            /// A write at `offset` from R10 (a stack pointer plus an instruction's offset).
            func write(_ offset: Int) -> Bool {
                guard offset >= floor else { return false }
                lowest = min(lowest, offset)
                return true
            }
            var next: [Int] = [pc + 1]
            let operation = i.operation
            switch InstructionSet.form(of: operation).shape {
            case .aluImm:
                if operation == .mov64Imm || operation == .mov32Imm {
                    r[d] = none
                } else if value(d) != none {
                    // Only adding or subtracting a constant keeps a stack pointer one.
                    guard operation == .add64Imm || operation == .sub64Imm else { return nil }
                    let delta = Int(Int64(bitPattern: i.imm))
                    guard delta > Int(Int32.min) - 1, delta < Int(Int32.max) + 1 else { return nil }
                    let moved = operation == .add64Imm ? value(d) + delta : value(d) - delta
                    guard moved >= floor else { return nil }
                    r[d] = moved
                } else {
                    r[d] = none
                }
            case .aluReg:
                if operation == .mov64Reg {
                    r[d] = value(s)
                } else if value(s) == none, overwritesDestination(operation) {
                    r[d] = none
                } else {
                    guard value(d) == none, value(s) == none else { return nil }
                }
            case .unary:
                guard value(d) == none else { return nil }
            case .load:
                r[d] = none
            case .storeImm:
                if value(d) != none, !write(value(d) + Int(i.offset)) { return nil }
            case .storeReg:
                guard value(s) == none else { return nil } // a stack pointer spilled to memory
                if value(d) != none, !write(value(d) + Int(i.offset)) { return nil }
            case .atomic:
                guard value(s) == none else { return nil }
                if value(d) != none, !write(value(d) + Int(i.offset)) { return nil }
                switch operation {
                case .atomicCompareExchange64, .atomicCompareExchange32: r[0] = none
                case .atomicFetchAdd64, .atomicFetchOr64, .atomicFetchAnd64, .atomicFetchXor64, .atomicExchange64,
                    .atomicFetchAdd32, .atomicFetchOr32, .atomicFetchAnd32, .atomicFetchXor32, .atomicExchange32:
                    r[s] = none
                default: break
                }
            case .loadImm64:
                // A function's address (BPF_PSEUDO_FUNC): a callback runs in a frame below.
                guard i.imm & ~UInt64(0xFFFF_FFFF) != Program.functionAddressTag else { return nil }
                r[d] = none
                next = [pc + 2]
            case .packetAbsolute, .packetIndirect:
                r[0] = none
            case .jump, .jump32:
                next = [Int(i.offset)]
            case .jumpImm, .jumpReg:
                next = [pc + 1, Int(i.offset)]
            case .callHelper:
                // A custom instruction (bound as a helper) may do anything with registers; a tail
                // call continues in another program, which writes its own stack bytes.
                guard instructions[pc].opcode == 0x85, Int(i.imm) < helpers.count,
                    helpers[Int(i.imm)].id != tailCallHelperID
                else { return nil }
                for argument in 1...5 where value(argument) != none {
                    if !write(value(argument)) { return nil }
                }
                r[0] = none
            case .callLocal, .callRegister:
                return nil
            case .none:
                next = []
            }
            for target in next where !flow(r, to: target) { return nil }
        }
        return lowest
    }

    /// Whether a register-to-register operation sets its destination from the source alone.
    private static func overwritesDestination(_ operation: Operation) -> Bool {
        switch operation {
        case .mov32Reg, .movsx8to64, .movsx16to64, .movsx32to64, .movsx8to32, .movsx16to32: true
        default: false
        }
    }

    /// `bpf_tail_call`.
    private static let tailCallHelperID: Int32 = 12
}
