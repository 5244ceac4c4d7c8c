import MimicMemory

extension Process {
    /// Calls the program-local function that starts at instruction slot `slot` with `arguments`
    /// in R1–R5, runs it to its `exit`, and returns its R0: how helpers such as
    /// `bpf_for_each_map_elem` and `bpf_loop` call back into the program.
    ///
    /// The callback runs in this process, on a fresh stack frame below the caller's (R10 moves
    /// down by one frame, as for a BPF-to-BPF call), and counts against the call depth. Every
    /// register (R0–R10), the program counter and the call stack are restored afterwards, so
    /// the helper's caller continues as if the helper had returned normally. Instructions the
    /// callback executes count towards the process's instruction total and the current run's
    /// limit and cancellation flag.
    ///
    /// Call it only from a helper function while the process runs. A callback may not tail
    /// call (the kernel's verifier refuses that too).
    ///
    /// - Parameters:
    ///   - slot: the function's first instruction; must be a function entry of the program
    ///     (`Program.functionEntries`), e.g. from `Program.functionSlot(ofAddress:)`.
    ///   - arguments: up to five values for R1–R5; missing ones are 0.
    /// - Throws: `ExecutionError` from the callback (fault, call depth, budget, cancellation),
    ///   located at the callback's instruction. Helpers wrap it in `HelperFailure.callbackFailed`.
    public func callFunction(at slot: Int, arguments: [UInt64]) throws(ExecutionError) -> UInt64 {
        guard program.isFunctionEntry(slot) else {
            throw ExecutionError(.invalidCallTarget(Program.functionAddressTag | UInt64(truncatingIfNeeded: slot)),
                                 pc: pc, instruction: instruction(at: pc), programName: program.name)
        }
        guard arguments.count <= 5 else {
            throw ExecutionError(.unsupported("a callback takes at most 5 arguments, got \(arguments.count)"),
                                 pc: pc, instruction: instruction(at: pc), programName: program.name)
        }
        let configuration = vm.configuration
        let base = callbackFrameBase + depth + 1
        guard base < configuration.maxCallDepth else {
            throw ExecutionError(.callDepthExceeded(limit: configuration.maxCallDepth),
                                 pc: pc, instruction: instruction(at: pc), programName: program.name)
        }

        let saved = registers.all
        let savedPC = pc
        let savedDepth = depth
        let savedBase = callbackFrameBase
        let savedLimit = callbackLimit
        let savedCancellation = callbackCancellation
        defer {
            for index in 0..<Registers.count { registers.storage[index] = saved[index] }
            pc = savedPC
            depth = savedDepth
            callbackFrameBase = savedBase
            callbackLimit = savedLimit
            callbackCancellation = savedCancellation
        }

        for index in 1...5 { registers.storage[index] = index <= arguments.count ? arguments[index - 1] : 0 }
        registers.storage[0] = 0
        registers.storage[10] = saved[10] &- UInt64(configuration.stackFrameSize)
        pc = slot
        depth = 0
        callbackFrameBase = base

        let remaining = savedLimit > instructionsExecuted ? savedLimit - instructionsExecuted : 0
        switch execute(RunningMode.self, limit: remaining, cancellation: savedCancellation) {
        case .exited:
            return registers.storage[0]
        case .paused:
            throw ExecutionError(.budgetExhausted(executed: instructionsExecuted), pc: pc,
                                 instruction: instruction(at: pc), programName: program.name)
        case .failed(let kind):
            throw ExecutionError(kind, pc: pc, instruction: instruction(at: pc), programName: program.name)
        }
    }
}

extension Program {
    /// The instruction slot of a function address made by `lddw` with `BPF_PSEUDO_FUNC`
    /// (`functionAddressTag | slot`), or nil if `address` is not one or names no function entry.
    public func functionSlot(ofAddress address: UInt64) -> Int? {
        guard address & ~UInt64(0xFFFF_FFFF) == Program.functionAddressTag else { return nil }
        let slot = Int(address & 0xFFFF_FFFF)
        return isFunctionEntry(slot) ? slot : nil
    }

    /// Whether a local function starts at `slot`.
    func isFunctionEntry(_ slot: Int) -> Bool {
        var low = 0, high = functionEntries.count
        while low < high {
            let middle = (low + high) / 2
            if functionEntries[middle] < slot { low = middle + 1 } else { high = middle }
        }
        return low < functionEntries.count && functionEntries[low] == slot
    }
}
