import MimicMemory
import Synchronization

/// A flag another thread sets to stop a running process; looked at where a straight-line run of
/// instructions starts (after a jump, call or return) once 4,096 instructions have passed.
public final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    /// Asks every process watching this flag to stop with `ExecutionError.Kind.cancelled`.
    public func cancel() { flag.store(true, ordering: .relaxed) }

    /// Whether `cancel()` was called.
    public var isCancelled: Bool { flag.load(ordering: .relaxed) }
}

/// A run's deadline (`Process.runDeadline`), in a box.
final class RunDeadline {
    let instant: ContinuousClock.Instant
    init(_ instant: ContinuousClock.Instant) { self.instant = instant }
}

/// The registers of a process, R0–R10, readable and writable by host code and helpers.
public struct Registers {
    @usableFromInline let storage: UnsafeMutablePointer<UInt64>

    /// The number of registers (R0–R10).
    public static let count = 11

    init(storage: UnsafeMutablePointer<UInt64>) { self.storage = storage }

    /// Register `index` (0...10). An index outside that range is a programming error.
    @inlinable
    public subscript(index: Int) -> UInt64 {
        get {
            precondition(index >= 0 && index < Registers.count, "register index out of range")
            return storage[index]
        }
        nonmutating set {
            precondition(index >= 0 && index < Registers.count, "register index out of range")
            storage[index] = newValue
        }
    }

    /// R0–R10 as an array.
    public var all: [UInt64] { (0..<Registers.count).map { storage[$0] } }
}

/// What one `Process.step()` did.
public enum StepResult: Sendable, Equatable {
    /// The instruction executed; the program continues at `pc`.
    case running
    /// The program exited with this R0.
    case exited(UInt64)
}

/// A saved caller frame of a BPF-to-BPF call.
public struct CallFrame: Sendable, Equatable {
    /// Where execution continues when the callee exits.
    public var returnPC: Int
    /// The caller's R6–R9 and R10.
    public var savedRegisters: (UInt64, UInt64, UInt64, UInt64, UInt64)

    public static func == (a: CallFrame, b: CallFrame) -> Bool {
        a.returnPC == b.returnPC && a.savedRegisters == b.savedRegisters
    }
}

/// One execution of a program: registers, stack, memory, and where it is.
///
/// Create processes with `VM.makeProcess`. `run` executes to the end; `step` executes one
/// instruction, for debuggers and tracers. Both use the same interpreter, so they cannot
/// disagree. A process is used by one thread at a time.
///
/// The properties a run reads and writes are `@exclusivity(unchecked)`: the dynamic checks
/// cost ~5% of a short job (thread-local bookkeeping per access), and the class never lends
/// them out `inout` across a call that could reach them again.
public final class Process {
    /// The state of a process between calls to `run` and `step`.
    public enum State: Sendable, Equatable {
        /// Not finished: `run` or `step` continue from `pc`.
        case ready
        /// The program exited with this R0.
        case exited(UInt64)
        /// The program stopped with an error. (Boxed: the error is large, and the state is
        /// assigned on every run and reset, where an inline payload was copied and destroyed
        /// through value witnesses.)
        indirect case failed(ExecutionError)
    }

    public let vm: VM
    /// The running program (changes on tail calls).
    @exclusivity(unchecked) public internal(set) var program: Program
    /// The process's address space: its stack and context, plus the VM's shared regions.
    public let memory: AddressSpace
    /// The virtual CPU the process runs on (per-CPU maps, `bpf_get_smp_processor_id`).
    public let vCPU: Int
    /// The packet for legacy `ld_abs` / `ld_ind` loads, set by the context.
    @exclusivity(unchecked) public var packet: PacketBounds?

    /// R0–R10.
    public let registers: Registers
    /// The slot index of the next instruction.
    @exclusivity(unchecked) public internal(set) var pc: Int = 0
    @exclusivity(unchecked) public internal(set) var state: State = .ready
    /// Instructions executed so far, over all `run` and `step` calls.
    @exclusivity(unchecked) public internal(set) var instructionsExecuted: UInt64 = 0
    /// `instructionsExecuted` read through a call: another module's read of the stored property
    /// makes a dynamic exclusivity check (`@exclusivity(unchecked)` does not reach it), ~75 host
    /// instructions, where a packet loop reads it for every packet.
    public var instructionCount: UInt64 { instructionsExecuted }
    /// Tail calls taken so far.
    @exclusivity(unchecked) public internal(set) var tailCallCount = 0

    /// The VM address of the stack's first byte, and its size (all frames).
    public let stackBase: UInt64
    public let stackSize: Int
    let stack: RegionStorage
    /// Where `reset` starts zeroing the stack: below it the program never writes
    /// (`Program.stackReach`), so those bytes stay as zero as the new process had them.
    let stackClearStart: Int
    /// Set when code ran in another frame than the program's analysis covers (a callback called
    /// through `callFunction`): the next `reset` zeroes the whole stack.
    @exclusivity(unchecked) var stackNeedsFullClear = false
    /// The program the process was created for (`program` changes on tail calls).
    public let entryProgram: Program
    /// The regions the process was created with (shared regions and the stack); `reset` keeps them.
    let baseRegions: RegionSnapshot

    let frames: UnsafeMutablePointer<CallFrame>
    /// Frames currently saved (0 when running the entry function).
    @exclusivity(unchecked) var depth = 0
    /// The fault a cold path recorded for the interpreter loop to report.
    @exclusivity(unchecked) var pendingFault: ExecutionError.Kind?
    /// Asked when the program exits: a non-nil answer (what the program still holds) fails the
    /// run with `unreleasedReference` instead, as the kernel's verifier refuses a program that
    /// can exit holding a reference. An emulator sets it while the run holds something (the
    /// Linux emulator's socket lookups); `reset` clears it.
    @exclusivity(unchecked) public var exitCheck: ((Process) -> String?)?
    /// While set, compiled code calls the helpers it would otherwise compute inline
    /// (`Helper.inline`): an emulator sets it while it answers them another way (the Linux
    /// emulator, while a captured context replays recorded helper results); `reset` clears it.
    @exclusivity(unchecked) public var inlineHelpersBypassed = false
    /// The frame depth whose `exit` ends the current run (non-zero inside `callFunction`).
    @exclusivity(unchecked) var callbackDepth = 0
    /// The instruction count at which the current run stops, and its cancellation flag, for
    /// callbacks run from inside it.
    @exclusivity(unchecked) var runLimit: UInt64 = .max
    @exclusivity(unchecked) var runCancellation: CancellationFlag?
    /// The current run's deadline (`run(deadline:)`), looked at with the cancellation flag.
    /// Boxed: `ContinuousClock.Instant` is resilient (its layout is unknown outside the standard
    /// library), so an optional of it was tested and copied through value witnesses on every
    /// reset and run; a nil reference is one compare.
    @exclusivity(unchecked) var runDeadline: RunDeadline?
    /// What each emulator (and context) keeps for this process, by `EmulatorStateKey`: see
    /// `emulatorState(_:)`. (Declared last: the fields the interpreter touches keep their place
    /// in the object.)
    @exclusivity(unchecked) @usableFromInline var emulatorStates = EmulatorStateTable()
    /// The entry program's compiled code once the JIT published it (`executeCompiled`),
    /// unretained: `entryProgram` is a `let`, and owns its cache, which keeps the code.
    @exclusivity(unchecked) var entryCode: Unmanaged<CompiledProgram>?
    /// The context of compiled runs not nested in another (`executeCompiled`), made on first use;
    /// its words that stay the same for the process are written once. In use while such a run is.
    @exclusivity(unchecked) var jitContext: UnsafeMutablePointer<UInt64>?
    @exclusivity(unchecked) var jitContextInUse = false
    /// Set by every reset (`resetRunState`) and cleared by every `run`, `step` and `runFunction`:
    /// while set, the run state is exactly what a reset leaves (the entry program at pc 0, nothing
    /// executed, depth and exit depth 0, ready, no cancellation flag or deadline), which `run()`'s
    /// compiled quick entry (`enterArmed`) relies on instead of checking each.
    @exclusivity(unchecked) var runArmed = false
    /// What the quick entry needs of the entry program's code and the JIT context, once they exist.
    @exclusivity(unchecked) var quick = QuickEntry()
    /// `memory.mappingEpoch` when the last reset ended (`UInt64.max`: no reset yet, or it
    /// failed): while it has not changed, the regions mapped are those that reset left, which
    /// `reset(context:)`'s quick path relies on.
    @usableFromInline @exclusivity(unchecked) var armedEpoch = UInt64.max
    /// The regions the last reset kept (`baseRegions` still mapped) and how many its context
    /// mapped besides (`renewAttachedRegions`).
    @exclusivity(unchecked) var keptRegionCount = 0
    @usableFromInline @exclusivity(unchecked) var attachedRegionCount = 0
    /// Resets that took the quick path, for tests.
    @exclusivity(unchecked) var rearmCount = 0
    /// `Emulator.rearmsThroughContext` of the VM's emulator (false without one), read once: the
    /// quick path runs only when it is true.
    let rearmsThroughContext: Bool

    init(program: Program, memory: AddressSpace, vCPU: Int) throws(SetupError) {
        vm = program.vm
        self.program = program
        self.memory = memory
        self.vCPU = vCPU
        let storage = UnsafeMutablePointer<UInt64>.allocate(capacity: 16)
        storage.initialize(repeating: 0, count: 16)
        registers = Registers(storage: storage)
        let configuration = program.vm.configuration
        frames = .allocate(capacity: configuration.maxCallDepth)
        stackSize = configuration.stackFrameSize * configuration.maxCallDepth
        stack = RegionStorage(count: stackSize)
        do {
            stackBase = try memory.map(stack, name: "stack")
        } catch {
            // Only when the VM's shared regions fill the whole address space.
            storage.deallocate()
            frames.deallocate()
            throw .message("cannot map the process's stack: \(error)")
        }
        storage[10] = stackBase &+ UInt64(stackSize)
        entryProgram = program
        rearmsThroughContext = program.vm.emulator?.rearmsThroughContext ?? false
        stackClearStart = stackSize - program.stackReach(stackSize: stackSize)
        baseRegions = memory.snapshot()
    }

    /// Makes the process ready to run its program again from the start with a new context,
    /// as if it were new: registers, stack (zeroed), call frames, counters and emulator states
    /// are reset, and every region mapped since creation (context, packet) is unmapped (or, when
    /// the context maps the same storage again, moved to a new address). Of the
    /// stack, the bytes the program can write are zeroed (`StackReach`; all of it after a tail
    /// call or a callback): the rest were never written and are still zero. The
    /// emulator's `prepare` may recycle the previous run's states
    /// (`takeRecycledEmulatorState(_:)`); regions mapped again get new addresses, so pointers
    /// into the previous run's context fault.
    ///
    /// Reusing a process saves the allocations of a new one; a pool worker that runs the same
    /// program many times does this. The vCPU stays the same.
    ///
    /// **The quick path** (a process reset per packet): when the emulator leaves its states to
    /// the context (`Emulator.rearmsThroughContext`), no region was mapped, unmapped or moved
    /// and no state stored since the last reset ended (`AddressSpace.mappingEpoch`,
    /// `setEmulatorState(_:for:)`), and the context can renew what the previous context set up
    /// (`Context.rearm`: for an XDP context, the Linux state found untouched by the run, the
    /// packet buffer and `xdp_md` moved to new addresses and rewritten), the reset does only
    /// that, besides the registers, stack and counters — no regions retired and mapped again, no
    /// states recycled, no call of the emulator. The result reads exactly as the general path's:
    /// the same addresses, bytes, states and memory budget. Anything else takes the general path.
    public func reset(context: (any Context)? = nil) throws(SetupError) {
        if let context {
            try reset(opened: context)
        } else {
            try beginReset()
            memory.releaseRetired()
            arm()
        }
    }

    /// `reset(context:)` with a context of a known type: the same reset, without wrapping the
    /// context in an existential (a copy and a destroy through value witnesses per packet). A
    /// non-optional `any Context` argument comes here too, opened in place; an optional one goes
    /// to the form above, which has to copy it out of its box to unwrap it (whatever the form:
    /// `if let`, `switch`, `?.`), so callers that have a context should not make it optional.
    public func reset<C: Context>(context: C) throws(SetupError) {
        // The quick path (see `reset(context:)` above). The context's `rearm` may clear what the
        // emulator's `prepare` would before it declines: the general path clears it again, and
        // resets the process's run state again (a second time finds nothing to clear).
        if rearmsThroughContext, armedEpoch == memory.mappingEpoch {
            resetRunState()
            if context.rearm(self) {
                armedEpoch = memory.mappingEpoch
                rearmCount &+= 1
                return
            }
        }
        try resetGenerally(context: context)
    }

    /// `reset(context:)`'s general path. Out of line: the quick path's frame stays small (no
    /// room or saved registers for what this path keeps).
    @inline(never)
    private func resetGenerally<C: Context>(context: C) throws(SetupError) {
        try beginReset()
        do {
            try context.attach(to: self)
        } catch {
            memory.releaseRetired()
            throw error
        }
        memory.releaseRetired()
        arm()
    }

    /// `reset(context:)` of an existential context through its opened type (not copied out of
    /// its box).
    private func reset<C: Context>(opened context: C) throws(SetupError) {
        try reset(context: context)
    }

    /// Records, at the end of a reset's general path, what the quick path of the next one checks:
    /// the mapping epoch and the regions the context mapped.
    private func arm() {
        armedEpoch = memory.mappingEpoch
        attachedRegionCount = memory.regionCount - keptRegionCount
    }

    /// For `Context.rearm(_:)`: moves the two regions the previous reset's context mapped —
    /// `first`'s storage at `firstBase`, given the count `firstCount`, and `second`'s at
    /// `secondBase`, and no others — to new addresses in place (`AddressSpace.renew`, which
    /// also requires that neither storage is lent): the addresses the general path would give
    /// them, so pointers into the previous ones fault. Returns the new bases, or nil (nothing
    /// changed) when the previous context mapped other regions than these two, these are not
    /// mapped there, or `AddressSpace.renew` declines. Inlinable: its checks are two loads in
    /// the context's `rearm` (another module), not a call.
    @inlinable
    public func renewAttachedRegions(
        _ first: RegionStorage, at firstBase: UInt64, count firstCount: Int, _ second: RegionStorage,
        at secondBase: UInt64
    ) -> (UInt64, UInt64)? {
        guard attachedRegionCount == 2, armedEpoch == memory.mappingEpoch else { return nil }
        return memory.renew(first, at: firstBase, count: firstCount, second, at: secondBase)
    }

    /// Everything `reset` does before the context is attached. The regions mapped since creation
    /// are retired: the caller calls `memory.releaseRetired()` once the context is attached (this
    /// does when it throws).
    private func beginReset() throws(SetupError) {
        // Retired rather than unmapped: a context that maps the same storage again (the next
        // packet refilled into the previous packet's buffer) gets it back at a new address without
        // taking the slot out and putting it back; whatever it does not map again is unmapped
        // when the reset ends (`AddressSpace.retireAll(except:)`).
        armedEpoch = .max // until the reset succeeds
        memory.retireAll(except: baseRegions)
        keptRegionCount = memory.regionCount
        resetRunState()
        try prepareEmulator(of: vm)
    }

    /// What every reset does to the process itself: registers, the stack's reach (all of it
    /// after a tail call or a callback), pc, state, counters and the run's settings, as a new
    /// process has them.
    @inline(__always)
    private func resetRunState() {
        var clearStart = stackClearStart
        if program !== entryProgram { // no shared reference count traffic
            program = entryProgram
            clearStart = 0 // a tail call ran another program, which wrote its own bytes
        }
        if stackNeedsFullClear {
            clearStart = 0
            stackNeedsFullClear = false
        }
        if stackSize >= 32, clearStart >= stackSize &- 32 {
            // The usual reach, a few words: the stack's top 32 bytes zeroed with four stores, no
            // `memset` call (those below the reach are zero already: zeroing them again is harmless).
            let top = stack.pointer + (stackSize &- 32)
            top.storeBytes(of: 0, as: UInt64.self)
            top.storeBytes(of: 0, toByteOffset: 8, as: UInt64.self)
            top.storeBytes(of: 0, toByteOffset: 16, as: UInt64.self)
            top.storeBytes(of: 0, toByteOffset: 24, as: UInt64.self)
        } else {
            (stack.pointer + clearStart).initializeMemory(as: UInt8.self, repeating: 0, count: stackSize - clearStart)
        }
        registers.storage.update(repeating: 0, count: 16)
        registers.storage[10] = stackBase &+ UInt64(stackSize)
        pc = 0
        // A fault is taken (`takeFault`) before a run returns, so `pendingFault` is nil here; it
        // is tested only after a run that did not exit (reading the tag of this multi-payload
        // optional is an outlined call), and assigning nil to it costs value-witness calls.
        switch state {
        case .exited: state = .ready // the old state holds nothing to release: no outlined destroy
        case .ready:
            if case .some = pendingFault { pendingFault = nil }
        case .failed:
            state = .ready
            if case .some = pendingFault { pendingFault = nil }
        }
        instructionsExecuted = 0
        tailCallCount = 0
        depth = 0
        callbackDepth = 0
        runLimit = .max
        // Tested first: both are nil after any run, and storing nil releases the old value (a
        // runtime call per reset even for nil).
        if runCancellation != nil { runCancellation = nil }
        if runDeadline != nil { runDeadline = nil }
        packet = nil
        if exitCheck != nil { exitCheck = nil }
        inlineHelpersBypassed = false
        runArmed = true
    }

    /// `Emulator.prepare` for a reset (see `beginReset`), or no emulator states without one.
    ///
    /// `vm.emulator` is read where it is used, never bound to a local: with other calls between a
    /// binding and its use the compiler retains and releases the emulator around them (per
    /// reset, and on the runtime's slow path when a weak reference made its counts live in a side
    /// table). The process holds `vm` (a `let`), which holds `emulator` (a `let`).
    private func prepareEmulator(of vm: VM) throws(SetupError) {
        guard vm.emulator != nil else {
            emulatorStates.removeAll()
            return
        }
        // The previous states are offered to the emulator for reuse (see
        // `takeRecycledEmulatorState(_:)`); what it does not take is released before `attach`.
        emulatorStates.beginRecycling()
        do {
            try vm.emulator?.prepare(self)
        } catch {
            emulatorStates.endRecycling()
            memory.releaseRetired()
            throw error
        }
        emulatorStates.endRecycling()
    }

    deinit {
        registers.storage.deallocate()
        frames.deallocate()
        emulatorStates.deallocate()
        jitContext?.deallocate()
    }

    /// Argument `n` (1...5) of a helper call.
    @inlinable
    public func argument(_ n: Int) -> UInt64 { registers[n] }

    /// The caller frames of BPF-to-BPF calls, outermost first.
    public var callStack: [CallFrame] { (0..<depth).map { frames[$0] } }

    /// Runs until the program exits and returns R0.
    ///
    /// The limit is exact: a run stops with `budgetExhausted` after exactly `instructionLimit`
    /// more instructions (an `lddw` counts as one; a helper's callbacks count too). The
    /// cancellation flag is looked at where straight-line runs start, once 4,096 instructions
    /// have passed since the last look. A run stopped by the limit can be continued by calling `run` or `step` again.
    ///
    /// - Parameters:
    ///   - instructionLimit: stop with `budgetExhausted` after this many more instructions.
    ///   - cancellation: stop with `cancelled` once this flag is set.
    @discardableResult
    public func run(instructionLimit: UInt64 = .max, cancellation: CancellationFlag? = nil) throws(ExecutionError)
        -> UInt64
    {
        if runArmed {
            runArmed = false
            if cancellation == nil, let status = enterArmed(limit: instructionLimit) {
                if status == JITStatus.exited, exitCheck == nil { return finishExit() }
                return try finishArmedRun(status, limit: instructionLimit)
            }
        }
        return try runInGeneral(limit: instructionLimit, cancellation: cancellation)
    }

    /// `run()` without the quick entry. Out of line: `run()`'s frame then holds only what the
    /// quick entry needs.
    @inline(never)
    private func runInGeneral(limit: UInt64, cancellation: CancellationFlag?) throws(ExecutionError) -> UInt64 {
        if runsCompiledCode { return try finish(executeCompiledExactly(limit: limit, cancellation: cancellation)) }
        let stop = executeExactly(limit: limit, cancellation: cancellation)
        if case .exited = stop, exitCheck == nil { return finishExit() }
        return try finish(stop)
    }

    /// Runs until the program exits and returns R0, or stops with `deadlineExceeded` once
    /// `deadline` has passed (the Go mimic's `Run(ctx)` with a context deadline).
    ///
    /// The clock is read where the cancellation flag is looked at (where straight-line runs
    /// start, once 4,096 instructions have passed), so a deadline costs the interpreter nothing
    /// in between and is noticed within about 4,096 instructions of passing (a helper is not
    /// interrupted; a deadline passing in its callbacks, `bpf_loop`, fails that helper). A run
    /// stopped by the deadline can be continued, like one stopped by the instruction limit.
    @discardableResult
    public func run(
        deadline: ContinuousClock.Instant, instructionLimit: UInt64 = .max,
        cancellation: CancellationFlag? = nil
    ) throws(ExecutionError) -> UInt64 {
        runArmed = false
        runDeadline = RunDeadline(deadline)
        defer { runDeadline = nil }
        return try finish(executeExactly(limit: instructionLimit, cancellation: cancellation))
    }

    /// Runs until the program exits and returns R0, or stops with `deadlineExceeded` once
    /// `timeout` has passed since the call (see `run(deadline:instructionLimit:cancellation:)`).
    @discardableResult
    public func run(
        timeout: Duration, instructionLimit: UInt64 = .max,
        cancellation: CancellationFlag? = nil
    ) throws(ExecutionError) -> UInt64 {
        try run(
            deadline: ContinuousClock.now.advanced(by: timeout), instructionLimit: instructionLimit,
            cancellation: cancellation)
    }

    /// Executes one instruction (an `lddw` counts as one).
    @discardableResult
    public func step() throws(ExecutionError) -> StepResult {
        runArmed = false
        let stop = execute(SteppingMode.self, limit: 1, cancellation: nil)
        if case .paused = stop { return .running }
        return .exited(try finish(stop))
    }

    /// The common end of a run, inline: an exit with no exit check (`finish` does the same).
    /// Returns R0.
    @inline(__always)
    func finishExit() -> UInt64 {
        let result = registers.storage[0]
        if case .ready = state {
            state = .exited(result) // the old state holds nothing to release: no outlined destroy
        } else {
            state = .exited(result)
        }
        return result
    }

    func finish(_ stop: Stop) throws(ExecutionError) -> UInt64 {
        switch stop {
        case .exited:
            if let exitCheck, let problem = exitCheck(self) {
                let error = program.error(ExecutionError.Kind(.unreleasedReference, detail: problem), at: pc)
                state = .failed(error)
                throw error
            }
            state = .exited(registers.storage[0])
            return registers.storage[0]
        case .paused, .limitInsideRun: // (`executeExactly` finishes runs: never the latter)
            // Budget stops are resumable: the state stays `.ready`.
            throw program.error(.budgetExhausted(executed: instructionsExecuted), at: pc)
        case .failed(let kind):
            if kind.code == .deadlineExceeded { // like the budget, resumable: stopped where a run starts
                throw program.error(kind, at: pc)
            }
            if kind.code == .notRunnable {
                throw ExecutionError(kind, pc: pc, instruction: nil, programName: program.name)
            }
            let error = program.error(kind, at: pc)
            state = .failed(error)
            throw error
        }
    }
}
