import MimicMemory

extension Process {
    /// Whether `run()` (and callbacks run from it) execute compiled code.
    var runsCompiledCode: Bool { vm.configuration.engine.compilesOnThisHost }

    /// `executeExactly` for compiled code (`run()` calls it directly: `executeExactly`'s frame
    /// holds the interpreter's loop, a stack protector and a large frame that compiled runs do
    /// not need).
    @inline(__always)
    func executeCompiledExactly(limit: UInt64, cancellation: CancellationFlag?) -> Stop {
        let start = instructionsExecuted
        let stop = executeCompiled(limit: limit, cancellation: cancellation)
        guard case .limitInsideRun = stop else { return stop }
        return finishByStepping(limit: limit &- (instructionsExecuted &- start), cancellation: cancellation)
    }

    /// `run()` on compiled code from an armed process (`runArmed`: the run state exactly as a
    /// reset left it) through the quick entry (`QuickEntry`): the code's status, or nil (nothing
    /// changed) when the general driver must take the run — no quick entry set up yet, the
    /// process's context in use (a run nested in another), a budget ending within the first run
    /// (`limit` not above the longest run: a limit check is due), or R10 moved by the host.
    ///
    /// What an armed process guarantees is not checked again: the entry program at pc 0 with
    /// nothing executed, depth 0, exit depth 0, ready, no cancellation flag or deadline. The
    /// caller disarms (`runArmed = false`) whatever this returns. Writes the context words the
    /// code reads (the checkpoint, the depth words, the pc and helper tables, the bypass flag,
    /// the translation table), enters through the code's quick entry (which starts the count
    /// with the first run's length), and writes pc, count and depth back.
    @inline(__always)
    func enterArmed(limit: UInt64) -> UInt64? {
        // `longestRun` is `.max` until the quick entry is set up: no limit is above it.
        guard limit > quick.longestRun, !jitContextInUse, registers.storage[10] == quick.stackTop else { return nil }
        let context = quick.context.unsafelyUnwrapped
        quick.runs &+= 1
        runLimit = limit
        jitContextInUse = true
        context[JITSlot.checkpoint] = limit &- quick.longestRun
        context[JITSlot.depth] = 0
        context[JITSlot.exitDepth] = 0
        context[JITSlot.pcTable] = quick.pcTable
        context[JITSlot.helperTable] = quick.helperTable
        context[JITSlot.inlineBypass] = inlineHelpersBypassed ? 1 : 0
        refreshTable(context)
        let status = quick.enter.unsafelyUnwrapped(context)
        jitContextInUse = false
        pc = Int(truncatingIfNeeded: context[JITSlot.pc])
        instructionsExecuted = context[JITSlot.count]
        depth = Int(truncatingIfNeeded: context[JITSlot.depth])
        return status
    }

    /// `run()` after a quick entry that did not end in an exit with no exit check: the exit
    /// check, or the general driver from where the code stopped (a limit check, a fault, a tail
    /// call, a deeper call) with the quick entry's checkpoint (still in the context), then the
    /// last instructions one at a time if the budget ends inside a run.
    @inline(never)
    func finishArmedRun(_ status: UInt64, limit: UInt64) throws(ExecutionError) -> UInt64 {
        guard status != JITStatus.exited else { return try finish(.exited) }
        let context = quick.context.unsafelyUnwrapped
        var stop = continueCompiled(
            status, quick.code.unsafelyUnwrapped, context, limit: limit, checkpoint: context[JITSlot.checkpoint])
        if case .limitInsideRun = stop {
            // The run started at 0 instructions (armed).
            stop = finishByStepping(limit: limit &- instructionsExecuted, cancellation: nil)
        }
        return try finish(stop)
    }

    /// Records what `enterArmed` needs once the entry program's code and the process's own
    /// context exist (the general driver's first run).
    private func setUpQuickEntry(_ code: Unmanaged<CompiledProgram>, _ context: UnsafeMutablePointer<UInt64>) {
        code._withUnsafeGuaranteedRef { compiled in
            guard compiled.canEnter(at: 0) else { return }
            quick = QuickEntry(
                longestRun: UInt64(entryProgram.longestRun),
                stackTop: stackBase &+ UInt64(truncatingIfNeeded: stackSize),
                pcTable: UInt64(UInt(bitPattern: compiled.pcTable)),
                helperTable: UInt64(UInt(bitPattern: entryProgram.helperCalls)),
                context: context, code: code, enter: compiled.quickEntry)
        }
    }

    /// Writes the context words the code reads at entry (besides the fixed ones and the exit
    /// depth) and runs `compiled` from slot `pc` (at `native`, its pc-table entry, when the
    /// caller has it); returns the `JITStatus`. The code writes the count, pc and depth back into
    /// the context.
    @inline(__always)
    private func enter(
        _ compiled: Unmanaged<CompiledProgram>, _ context: UnsafeMutablePointer<UInt64>, at pc: Int,
        native: UInt64? = nil, count: UInt64, checkpoint: UInt64, depth: Int
    ) -> UInt64 {
        let pcTable = compiled._withUnsafeGuaranteedRef { $0.pcTable }
        context[JITSlot.count] = count &+ pcTable[2 &* pc &+ 1]
        context[JITSlot.checkpoint] = checkpoint
        context[JITSlot.depth] = UInt64(truncatingIfNeeded: depth)
        context[JITSlot.pcTable] = UInt64(UInt(bitPattern: pcTable))
        context[JITSlot.helperTable] = UInt64(UInt(bitPattern: program.helperCalls))
        context[JITSlot.inlineBypass] = inlineHelpersBypassed ? 1 : 0
        refreshTable(context)
        if let native { return compiled._withUnsafeGuaranteedRef { $0.enter(context, native: native) } }
        return compiled._withUnsafeGuaranteedRef { $0.enter(context, at: pc) }
    }

    /// What follows a quick entry that did not exit (a limit check, a fault, a tail call, a
    /// deeper call): the general driver, from the state the code left (`pc`,
    /// `instructionsExecuted`, `depth`) with the same checkpoint, as if its own loop had entered.
    @inline(never)
    private func continueCompiled(
        _ status: UInt64, _ code: Unmanaged<CompiledProgram>, _ context: UnsafeMutablePointer<UInt64>,
        limit: UInt64, checkpoint: UInt64
    ) -> Stop {
        var compiled = code
        var held: CompiledProgram?
        defer { withExtendedLifetime(held) {} }
        let end = runLimit
        var pc = self.pc
        var count = instructionsExecuted
        var depth = self.depth
        var checkpoint = checkpoint
        defer {
            self.pc = pc
            self.instructionsExecuted = count
            self.depth = depth
        }
        jitContextInUse = true
        defer { jitContextInUse = false }
        return driveCompiled(
            context, &compiled, &held, &pc, &count, &depth, &checkpoint, end: end, cancellation: nil,
            status: status)
    }

    /// `executeExactly`'s compiled engine (and `run()`'s when the process is not armed or the
    /// quick entry declines): any program, a nested run, a cancellation flag or a deadline, a
    /// budget ending in the first run. Runs the interpreter if the program cannot be compiled.
    @inline(never)
    func executeCompiled(limit: UInt64, cancellation: CancellationFlag?) -> Stop {
        guard case .ready = state else { return .failed(.notRunnable) }
        // The entry program's code is borrowed, not retained (`entryCode`): `entryProgram` is a
        // `let` of the process, and the program owns its cache, which owns the code. Any other
        // program (after a tail call) is held: a later tail call may drop the last reference to a
        // program whose code is still returning to this driver.
        var held: CompiledProgram?
        var compiled: Unmanaged<CompiledProgram>
        if program === entryProgram {
            if let code = entryCode {
                compiled = code
            } else {
                guard let code = entryProgram.jitCache.borrowedCompiled(entryProgram) else {
                    return execute(RunningMode.self, limit: limit, cancellation: cancellation)
                }
                entryCode = code
                compiled = code
            }
        } else {
            guard let code = program.jitCache.compiled(program) else {
                return execute(RunningMode.self, limit: limit, cancellation: cancellation)
            }
            held = code
            compiled = Unmanaged.passUnretained(code)
        }
        defer { withExtendedLifetime(held) {} } // held until the driver returns
        let entryPC = pc
        guard compiled._withUnsafeGuaranteedRef({ $0.canEnter(at: entryPC) }) else {
            return execute(RunningMode.self, limit: limit, cancellation: cancellation)
        }
        let start = instructionsExecuted
        var count = start
        let end = limit > UInt64.max - start ? UInt64.max : start + limit
        runLimit = end
        if cancellation != nil || runCancellation != nil { runCancellation = cancellation }
        let longest = UInt64(program.longestRun)
        var checkpoint = min(
            max(end >= longest ? end - longest : 0, count),
            cancellation == nil && runDeadline == nil ? .max : count &+ cancellationInterval)
        var pc = pc
        var depth = depth
        defer {
            self.pc = pc
            self.instructionsExecuted = count
            self.depth = depth
        }
        // A run not nested in another uses the process's own context, whose words that stay the
        // same for the process were written once (`makeJITContext`); a callback run while compiled
        // code waits in a helper (`bpf_loop`) needs its own, since the waiting code still reads
        // and writes the outer one.
        if !jitContextInUse {
            let context = jitContext ?? makeJITContext()
            if !quick.isSetUp, program === entryProgram { setUpQuickEntry(compiled, context) }
            jitContextInUse = true
            defer { jitContextInUse = false }
            return driveCompiled(
                context, &compiled, &held, &pc, &count, &depth, &checkpoint, end: end, cancellation: cancellation,
                status: JITStatus.check)
        }
        return driveInOwnContext(&compiled, &held, &pc, &count, &depth, &checkpoint, end: end, cancellation: cancellation)
    }

    /// `driveCompiled` with a context of its own, for a run nested in another (see
    /// `executeCompiled`). Out of line: its temporary allocation would give the common path a
    /// stack protector.
    @inline(never)
    private func driveInOwnContext(
        _ compiled: inout Unmanaged<CompiledProgram>, _ held: inout CompiledProgram?, _ pc: inout Int,
        _ count: inout UInt64, _ depth: inout Int, _ checkpoint: inout UInt64, end: UInt64,
        cancellation: CancellationFlag?
    ) -> Stop {
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: JITSlot.wordCount) { buffer in
            let context = buffer.baseAddress!
            writeFixedWords(context)
            return driveCompiled(
                context, &compiled, &held, &pc, &count, &depth, &checkpoint, end: end, cancellation: cancellation,
                status: JITStatus.check)
        }
    }

    /// The process's own JIT context (`jitContext`), made on first use.
    @inline(never)
    private func makeJITContext() -> UnsafeMutablePointer<UInt64> {
        let context = UnsafeMutablePointer<UInt64>.allocate(capacity: JITSlot.wordCount)
        writeFixedWords(context)
        jitContext = context
        return context
    }

    /// Zeroes a context and writes the words that stay the same for the process.
    private func writeFixedWords(_ context: UnsafeMutablePointer<UInt64>) {
        context.initialize(repeating: 0, count: JITSlot.wordCount)
        context[JITSlot.frames] = UInt64(UInt(bitPattern: frames))
        context[JITSlot.registers] = UInt64(UInt(bitPattern: registers.storage))
        context[JITSlot.process] = UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()))
        // `DirectHelperCall`: the process (its first word), data and declined zero.
        context[JITSlot.directCall] = context[JITSlot.process]
        context[JITSlot.stackBase] = stackBase
        context[JITSlot.stackDelta] = UInt64(UInt(bitPattern: stack.pointer)) &- stackBase
        context[JITSlot.vCPU] = UInt64(UInt32(truncatingIfNeeded: vCPU))
        context[JITSlot.callFloor] = stackBase &+ UInt64(truncatingIfNeeded: vm.configuration.stackFrameSize)
    }

    /// `executeCompiled`'s loop with `context` (its fixed words written): turns the code's
    /// `status` into a `Stop`, or checks the limit where a run starts and enters the code again
    /// (`JITStatus.check`: also how the loop starts). The other words the code reads are written
    /// before each entry; those the code writes (`pc`, `machineStack`, `hostCallR10`,
    /// `helperIndex`, `DirectHelperCall`'s data and declined flag) it writes before reading
    /// them, so a reused context's leftovers are never seen.
    private func driveCompiled(
        _ context: UnsafeMutablePointer<UInt64>, _ compiled: inout Unmanaged<CompiledProgram>,
        _ held: inout CompiledProgram?, _ pc: inout Int, _ count: inout UInt64, _ depth: inout Int,
        _ checkpoint: inout UInt64, end: UInt64, cancellation: CancellationFlag?, status: UInt64
    ) -> Stop {
        context[JITSlot.exitDepth] = UInt64(callbackDepth)
        var status = status
        while true {
            switch status {
            case JITStatus.exited:
                return .exited
            case JITStatus.check:
                break
            case JITStatus.fault:
                return .failed(takeFault())
            case JITStatus.callDepth:
                return .failed(.callDepthExceeded(limit: vm.configuration.maxCallDepth))
            case JITStatus.tailCall:
                pc = 0
                checkpoint = count // the next program's runs differ: take the slow path
                guard let next = program.jitCache.compiled(program) else {
                    return interpretRest(&pc, &count, &depth, end: end, cancellation: cancellation)
                }
                held = next
                compiled = Unmanaged.passUnretained(next)
            default:
                return .failed(.unsupported("internal error: JIT status \(status)"))
            }
            // Where a run starts: the interpreter's `enter`. The pc table holds each run's length.
            if count >= checkpoint {
                let length = compiled._withUnsafeGuaranteedRef { $0.pcTable[2 &* pc &+ 1] }
                if let stop = limitReached(
                    count, length, end, cancellation, &checkpoint, longestRun: UInt64(program.longestRun))
                {
                    return stop
                }
            }
            // The code's R10-relative accesses within a frame rely on R10 being the top of the
            // stack minus `depth` frames; if host code or a helper moved R10, interpret the rest.
            guard
                registers.storage[10] &+ UInt64(depth &* vm.configuration.stackFrameSize)
                    == stackBase &+ UInt64(stackSize)
            else {
                return interpretRest(&pc, &count, &depth, end: end, cancellation: cancellation)
            }
            status = enter(compiled, context, at: pc, count: count, checkpoint: checkpoint, depth: depth)
            count = context[JITSlot.count]
            pc = Int(truncatingIfNeeded: context[JITSlot.pc])
            depth = Int(truncatingIfNeeded: context[JITSlot.depth])
        }
    }

    /// Runs the rest of the run in the interpreter from the driver's `pc`, `count` and `depth`
    /// (compiled code cannot continue: host code moved R10, or a tail call reached a program that
    /// does not compile), and hands back where it stopped.
    private func interpretRest(
        _ pc: inout Int, _ count: inout UInt64, _ depth: inout Int, end: UInt64, cancellation: CancellationFlag?
    ) -> Stop {
        self.pc = pc
        self.instructionsExecuted = count
        self.depth = depth
        let stop = execute(RunningMode.self, limit: end &- count, cancellation: cancellation)
        (pc, count, depth) = (self.pc, instructionsExecuted, self.depth)
        return stop
    }

    /// Copies the current translation table into the context (after anything that may map).
    @inline(__always)
    private func refreshTable(_ context: UnsafeMutablePointer<UInt64>) {
        let table = memory.table
        context[JITSlot.entries] = UInt64(UInt(bitPattern: table.entryBase))
        context[JITSlot.mask] = table.indexMask &* UInt64(MemoryLayout<SlotEntry>.stride)
    }

    /// Takes back the instructions after `pc` that the code counted for its run but did not
    /// execute (a fault or an exit in the middle of a run).
    private func settleCount(_ context: UnsafeMutablePointer<UInt64>, at pc: Int) {
        let unexecuted = UInt64(Program.runLength(program.code.baseAddress!, pc)) &- 1
        context[JITSlot.count] &-= unexecuted
    }

    /// A helper call from compiled code (`jitHelperEntry`): the interpreter's `callHelper` case.
    func compiledHelperCall(_ context: UnsafeMutablePointer<UInt64>) -> UInt64 {
        let at = Int(truncatingIfNeeded: context[JITSlot.pc])
        let helpers = UnsafePointer<Unmanaged<HelperBox>>(bitPattern: UInt(context[JITSlot.helperTable]))!
        pc = at &+ 1
        instructionsExecuted = context[JITSlot.count]
        depth = Int(truncatingIfNeeded: context[JITSlot.depth])
        let result = invokeHelper(helpers[Int(truncatingIfNeeded: context[JITSlot.helperIndex])])
        refreshTable(context) // a helper may have mapped or unmapped regions
        context[JITSlot.count] = instructionsExecuted // and run callbacks (`bpf_loop`)
        let r = registers.storage
        switch result {
        case .value(let value):
            r[0] = value
            return JITStatus.proceed
        case .exit(let value):
            r[0] = value
            context[JITSlot.pc] = UInt64(at &+ 1)
            return JITStatus.exited
        case .tailCall(let next):
            guard depth == 0 else {
                pendingFault = .unsupported("tail call from inside a BPF-to-BPF function")
                return JITStatus.fault
            }
            guard tailCallCount < vm.configuration.tailCallLimit else {
                pendingFault = .tailCallLimit(vm.configuration.tailCallLimit)
                return JITStatus.fault
            }
            tailCallCount += 1
            program = next
            context[JITSlot.pc] = 0
            return JITStatus.tailCall
        case .none:
            return JITStatus.fault
        }
    }

    /// The slow path of the instruction at the context's pc (`jitSlowEntry`): memory accesses
    /// the inline check refused, atomics the code does not inline, `ld_abs`/`ld_ind`, `callx`.
    /// Each case is the interpreter's own code for the instruction.
    func compiledSlowPath(_ context: UnsafeMutablePointer<UInt64>) -> UInt64 {
        let at = Int(truncatingIfNeeded: context[JITSlot.pc])
        let i = program.code[at]
        let r = registers.storage
        let table = memory.table
        let s = Int(truncatingIfNeeded: i.source)
        let succeeded: Bool
        switch i.operation {
        case .load64: succeeded = load(UInt64.self, i, r, table)
        case .load32: succeeded = load(UInt32.self, i, r, table)
        case .load16: succeeded = load(UInt16.self, i, r, table)
        case .load8: succeeded = load(UInt8.self, i, r, table)
        case .loadSigned32: succeeded = load(Int32.self, i, r, table)
        case .loadSigned16: succeeded = load(Int16.self, i, r, table)
        case .loadSigned8: succeeded = load(Int8.self, i, r, table)
        case .store64Imm: succeeded = store(UInt64.self, i.imm, i, r, table)
        case .store32Imm: succeeded = store(UInt32.self, i.imm, i, r, table)
        case .store16Imm: succeeded = store(UInt16.self, i.imm, i, r, table)
        case .store8Imm: succeeded = store(UInt8.self, i.imm, i, r, table)
        case .store64Reg: succeeded = store(UInt64.self, r[s], i, r, table)
        case .store32Reg: succeeded = store(UInt32.self, r[s], i, r, table)
        case .store16Reg: succeeded = store(UInt16.self, r[s], i, r, table)
        case .store8Reg: succeeded = store(UInt8.self, r[s], i, r, table)
        case .atomicAdd64, .atomicOr64, .atomicAnd64, .atomicXor64,
            .atomicFetchAdd64, .atomicFetchOr64, .atomicFetchAnd64, .atomicFetchXor64,
            .atomicExchange64, .atomicCompareExchange64:
            let address = r[Int(truncatingIfNeeded: i.destination)] &+ UInt64(bitPattern: Int64(i.offset))
            if address & 7 == 0, let p = table.pointer(forWriting: address, size: 8) {
                Semantics.atomic64(i.operation, p, r, source: s)
                succeeded = true
            } else {
                pendingFault = atomicFault(address, size: 8)
                succeeded = false
            }
        case .atomicAdd32, .atomicOr32, .atomicAnd32, .atomicXor32,
            .atomicFetchAdd32, .atomicFetchOr32, .atomicFetchAnd32, .atomicFetchXor32,
            .atomicExchange32, .atomicCompareExchange32:
            let address = r[Int(truncatingIfNeeded: i.destination)] &+ UInt64(bitPattern: Int64(i.offset))
            if address & 3 == 0, let p = table.pointer(forWriting: address, size: 4) {
                Semantics.atomic32(i.operation, p, r, source: s)
                succeeded = true
            } else {
                pendingFault = atomicFault(address, size: 4)
                succeeded = false
            }
        case .loadPacketAbsolute32, .loadPacketAbsolute16, .loadPacketAbsolute8,
            .loadPacketIndirect32, .loadPacketIndirect16, .loadPacketIndirect8:
            switch loadPacket(i, registers: r) {
            case .some(let value):
                r[0] = value
                return JITStatus.proceed
            case .none where pendingFault == nil:
                r[0] = 0
                settleCount(context, at: at)
                context[JITSlot.pc] = UInt64(at &+ 1)
                return JITStatus.exited // out of bounds: the program returns 0
            case .none:
                settleCount(context, at: at)
                return JITStatus.fault
            }
        case .callRegister:
            return compiledRegisterCall(context, i, at: at)
        default:
            pendingFault = .unsupported("internal error: no JIT slow path for \(i.operation)")
            succeeded = false
        }
        if succeeded { return JITStatus.proceed }
        settleCount(context, at: at)
        return JITStatus.fault
    }

    /// `callx`: a program-local function (a new frame, continuing at its first run) or a helper
    /// by id, as the interpreter's `callRegister` case.
    private func compiledRegisterCall(
        _ context: UnsafeMutablePointer<UInt64>, _ i: DecodedInstruction, at: Int
    ) -> UInt64 {
        let r = registers.storage
        let target = r[Int(truncatingIfNeeded: i.destination)]
        let maxDepth = vm.configuration.maxCallDepth
        var depth = Int(truncatingIfNeeded: context[JITSlot.depth])
        pc = at &+ 1
        instructionsExecuted = context[JITSlot.count]
        if target & ~UInt64(0xFFFF_FFFF) == Program.functionAddressTag,
            program.functionEntries.contains(Int(target & 0xFFFF_FFFF))
        {
            guard depth + 1 < maxDepth else {
                pendingFault = .callDepthExceeded(limit: maxDepth)
                return JITStatus.fault
            }
            frames[depth] = CallFrame(returnPC: at &+ 1, savedRegisters: (r[6], r[7], r[8], r[9], r[10]))
            depth &+= 1
            context[JITSlot.depth] = UInt64(depth)
            r[10] &-= UInt64(vm.configuration.stackFrameSize)
            context[JITSlot.pc] = target & 0xFFFF_FFFF
            return JITStatus.enterDynamic
        }
        guard let result = callHelper(registerValue: target, depth: depth) else {
            pendingFault = .invalidCallTarget(target)
            return JITStatus.fault
        }
        refreshTable(context)
        context[JITSlot.count] = instructionsExecuted
        switch result {
        case .value(let value):
            r[0] = value
            return JITStatus.proceed
        case .exit(let value):
            r[0] = value
            context[JITSlot.pc] = UInt64(at &+ 1)
            return JITStatus.exited
        case .tailCall:
            pendingFault = .unsupported("tail call through callx")
            return JITStatus.fault
        case .none:
            return JITStatus.fault
        }
    }
}

/// What `run()`'s quick entry (`Process.enterArmed`) needs of the entry program's compiled code
/// and the process's own JIT context, recorded once both exist (the general driver's first run of
/// the entry program): the words it would otherwise load through the program, the code and the
/// process on every run. `enter` is nil (and `longestRun` `.max`) until then.
struct QuickEntry {
    /// `Program.longestRun` of the entry program: a budget above it leaves no limit check due
    /// at the entry. `.max` until set up, so that no budget is above it.
    var longestRun: UInt64 = .max
    /// R10 at depth 0: the top of the stack.
    var stackTop: UInt64 = 0
    /// The context words `pcTable` and `helperTable` for the entry program.
    var pcTable: UInt64 = 0
    var helperTable: UInt64 = 0
    /// The process's own context (`Process.jitContext`), the code (unretained, as
    /// `Process.entryCode`) and its quick entry function (`CompiledProgram.quickEntry`).
    var context: UnsafeMutablePointer<UInt64>?
    var code: Unmanaged<CompiledProgram>?
    var enter: (@convention(c) (UnsafeMutablePointer<UInt64>) -> UInt64)?
    /// Whether the quick entry is set up.
    var isSetUp: Bool { enter != nil }
    /// Runs that took the quick entry, for tests.
    var runs = 0
}
