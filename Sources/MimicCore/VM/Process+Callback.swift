/// Calling back into the program from a helper (`bpf_loop`, `bpf_for_each_map_elem`, timers).
extension Process {
    /// The slot of a program-local function, from a value an `lddw` with `BPF_PSEUDO_FUNC`
    /// produced (`Program.functionAddressTag | slot`); nil if the value is not a function.
    public func functionSlot(fromAddress value: UInt64) -> Int? {
        guard value & ~UInt64(0xFFFF_FFFF) == Program.functionAddressTag else { return nil }
        let slot = Int(value & 0xFFFF_FFFF)
        return program.functionEntries.contains(slot) ? slot : nil
    }

    /// Calls the program-local function at `slot` with up to five arguments in R1–R5, as a
    /// BPF-to-BPF call from the current instruction would, and returns its R0.
    ///
    /// Only for helpers, while the process runs. The callee gets a fresh stack frame and counts
    /// against the call depth limit; its instructions count against the run's instruction limit
    /// and cancellation. Every register is restored afterwards, so the helper sees the state it
    /// was called with. A fault inside the callback is thrown; report it with
    /// `HelperFailure.callback`.
    public func callFunction(at slot: Int, arguments: [UInt64]) throws(ExecutionError) -> UInt64 {
        guard program.functionEntries.contains(slot), arguments.count <= 5 else {
            throw program.error(.invalidCallTarget(Program.functionAddressTag | UInt64(max(0, slot))), at: pc)
        }
        let maxDepth = vm.configuration.maxCallDepth
        guard depth + 1 < maxDepth else {
            throw program.error(.callDepthExceeded(limit: maxDepth), at: pc)
        }
        let saved = (
            registers: registers.all, pc: pc, depth: depth, exitDepth: callbackDepth,
            limit: runLimit, cancellation: runCancellation
        )
        defer {
            for (index, value) in saved.registers.enumerated() { registers.storage[index] = value }
            pc = saved.pc
            depth = saved.depth
            callbackDepth = saved.exitDepth
            runLimit = saved.limit
            runCancellation = saved.cancellation
        }

        let r = registers.storage
        stackNeedsFullClear = true // the callee's frame is below what `StackReach` covers
        frames[depth] = CallFrame(returnPC: pc, savedRegisters: (r[6], r[7], r[8], r[9], r[10]))
        depth += 1
        r[10] &-= UInt64(vm.configuration.stackFrameSize)
        for (index, value) in arguments.enumerated() { r[index + 1] = value }
        callbackDepth = depth
        pc = slot

        let remaining = saved.limit > instructionsExecuted ? saved.limit - instructionsExecuted : 0
        switch executeExactly(limit: remaining, cancellation: saved.cancellation) {
        case .exited:
            return r[0]
        case .paused, .limitInsideRun:
            throw program.error(.budgetExhausted(executed: instructionsExecuted), at: pc)
        case .failed(let kind):
            throw program.error(kind, at: pc)
        }
    }
}

extension Process {
    /// Runs the program-local function at `slot` as a run of its own, with up to five arguments
    /// in R1–R5, and returns its R0: what an emulator does for a callback the kernel calls
    /// outside any run of the program (a `bpf_timer` expiring). The process must be ready to run
    /// (new, or `reset`); afterwards it is exited or failed, as after `run`.
    public func runFunction(at slot: Int, arguments: [UInt64], instructionLimit: UInt64 = .max) throws(ExecutionError)
        -> UInt64
    {
        guard program.functionEntries.contains(slot), arguments.count <= 5 else {
            throw program.error(.invalidCallTarget(Program.functionAddressTag | UInt64(max(0, slot))), at: pc)
        }
        for (index, value) in arguments.enumerated() { registers.storage[index + 1] = value }
        runArmed = false // not at pc 0: `run()`'s quick entry must not take it
        pc = slot
        return try run(instructionLimit: instructionLimit)
    }
}
