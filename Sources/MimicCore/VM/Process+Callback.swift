import MimicMemory

extension Process {
    /// Calls the program-local function that starts at `slot` from inside a helper, runs it to
    /// its `exit` and returns its R0 — what `bpf_loop`, `bpf_for_each_map_elem` and other
    /// helpers taking a callback do.
    ///
    /// The callee runs with the same interpreter as the program, as if the instruction that called
    /// the helper had made a BPF-to-BPF call: it gets a fresh stack frame below the caller's (R10
    /// moves down by one frame), `arguments` in R1–R5 (missing ones are 0), and the nested call
    /// counts against the call depth limit. When it returns, the caller's R6–R10, program counter
    /// and call depth are restored; R0–R5 are left as the callee left them (the helper sets R0).
    ///
    /// The callee's instructions count towards the running `run`'s instruction limit and watch its
    /// cancellation flag (a `step` runs a callback to its end). Because a helper cannot be paused
    /// half-way, running out of budget inside a callback is reported as an error, not a pause.
    ///
    /// - Parameters:
    ///   - slot: the slot index of the function's first instruction; it must be a function entry
    ///     of the running program (the low 32 bits of an `lddw` with `BPF_PSEUDO_FUNC`).
    ///   - arguments: at most five values for R1–R5.
    /// - Returns: the callee's R0.
    /// - Throws: `ExecutionError` if `slot` is not a function, the call depth limit is reached, or
    ///   the callee faults; the error names the callee's instruction.
    public func callFunction(at slot: Int, arguments: [UInt64]) throws(ExecutionError) -> UInt64 {
        let callSite = max(0, pc - 1)
        guard arguments.count <= 5 else {
            throw ExecutionError(.unsupported("a callback takes at most 5 arguments, got \(arguments.count)"),
                                 pc: callSite, instruction: instruction(at: callSite), programName: program.name)
        }
        guard Self.contains(program.functionEntries, slot) else {
            throw ExecutionError(.invalidCallTarget(Program.functionAddressTag | UInt64(UInt32(truncatingIfNeeded: slot))),
                                 pc: callSite, instruction: instruction(at: callSite), programName: program.name)
        }
        let maxDepth = vm.configuration.maxCallDepth
        guard depth + 1 < maxDepth else {
            throw ExecutionError(.callDepthExceeded(limit: maxDepth), pc: callSite,
                                 instruction: instruction(at: callSite), programName: program.name)
        }

        let r = registers.storage
        let savedDepth = depth
        let savedEntryDepth = entryDepth
        let savedPC = pc
        let savedLimitEnd = callbackLimitEnd
        let savedCancellation = callbackCancellation
        frames[savedDepth] = CallFrame(returnPC: savedPC, savedRegisters: (r[6], r[7], r[8], r[9], r[10]))
        depth = savedDepth + 1
        entryDepth = depth
        r[10] &-= UInt64(vm.configuration.stackFrameSize)
        for n in 1...5 { r[n] = n <= arguments.count ? arguments[n - 1] : 0 }
        pc = slot
        defer {
            (r[6], r[7], r[8], r[9], r[10]) = frames[savedDepth].savedRegisters
            depth = savedDepth
            entryDepth = savedEntryDepth
            pc = savedPC
            callbackLimitEnd = savedLimitEnd
            callbackCancellation = savedCancellation
        }

        let remaining = savedLimitEnd > instructionsExecuted ? savedLimitEnd - instructionsExecuted : 0
        switch execute(RunningMode.self, limit: remaining, cancellation: savedCancellation) {
        case .exited:
            return r[0]
        case .paused:
            throw ExecutionError(.budgetExhausted(executed: instructionsExecuted), pc: pc,
                                 instruction: instruction(at: pc), programName: program.name)
        case .failed(let kind):
            throw ExecutionError(kind, pc: pc, instruction: instruction(at: pc), programName: program.name)
        }
    }

    /// Binary search in the sorted function entry list.
    private static func contains(_ sorted: [Int], _ value: Int) -> Bool {
        var low = 0, high = sorted.count
        while low < high {
            let mid = (low + high) / 2
            if sorted[mid] < value { low = mid + 1 } else { high = mid }
        }
        return low < sorted.count && sorted[low] == value
    }
}
