/// Runs a process's program callbacks elsewhere (`Process.callbackBridge`).
///
/// A plugin's stand-in ("shadow") process runs helpers on behalf of a host process but has no
/// program of its own: its bridge forwards `callFunction` to the host, which runs the callback
/// in the real program.
public protocol CallbackBridge: AnyObject {
    /// Runs the function at `slot` with `arguments` (at most five) and returns its R0, or throws
    /// the error it stopped with.
    func callFunction(at slot: Int, arguments: [UInt64], of process: Process) throws(ExecutionError) -> UInt64
}

/// Calling back into the program from a helper (`bpf_loop`, `bpf_for_each_map_elem`, timers).
extension Process {
    /// The slot of a program-local function, from a value an `lddw` with `BPF_PSEUDO_FUNC`
    /// produced (`Program.functionAddressTag | slot`); nil if the value is not a function.
    /// With a `callbackBridge`, the program is elsewhere: any tagged value passes here and the
    /// bridge's side checks it.
    public func functionSlot(fromAddress value: UInt64) -> Int? {
        guard value & ~UInt64(0xFFFF_FFFF) == Program.functionAddressTag else { return nil }
        let slot = Int(value & 0xFFFF_FFFF)
        if callbackBridge != nil { return slot }
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
        if let callbackBridge { return try callThroughBridge(callbackBridge, at: slot, arguments: arguments) }
        guard program.functionEntries.contains(slot), arguments.count <= 5 else {
            throw program.error(.invalidCallTarget(Program.functionAddressTag | UInt64(max(0, slot))), at: pc)
        }
        let maxDepth = vm.configuration.maxCallDepth
        guard depth + 1 < maxDepth else {
            throw program.error(.callDepthExceeded(limit: maxDepth), at: pc)
        }
        let saved = (registers: registers.all, pc: pc, depth: depth, exitDepth: callbackDepth,
                     limit: runLimit, cancellation: runCancellation)
        defer {
            for (index, value) in saved.registers.enumerated() { registers.storage[index] = value }
            pc = saved.pc
            depth = saved.depth
            callbackDepth = saved.exitDepth
            runLimit = saved.limit
            runCancellation = saved.cancellation
        }

        let r = registers.storage
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

    /// `callFunction` for a process whose program lives elsewhere. Registers are restored
    /// afterwards, as for a local callback: the bridge's side may run helpers on this process
    /// again. Kept out of line, away from the interpreter's code.
    @inline(never)
    private func callThroughBridge(_ bridge: any CallbackBridge, at slot: Int, arguments: [UInt64]) throws(ExecutionError) -> UInt64 {
        let saved = registers.all
        defer { for (index, value) in saved.enumerated() { registers.storage[index] = value } }
        return try bridge.callFunction(at: slot, arguments: arguments, of: self)
    }
}
