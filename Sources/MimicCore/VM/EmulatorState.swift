import Synchronization

/// Names one kind of per-process state in every `Process`'s emulator state table: the Linux
/// emulator's `LinuxProcessState`, a plugin library's per-process state, a test emulator's token.
///
/// The key is a small integer, the state's row in the table, assigned when the key is created
/// and never given back: create one key per *kind* of state (a `static let`, or one per loaded
/// plugin library), not one per emulator or per process. A kind of state has one row whatever
/// emulator object, VM or composite it is used through, so contexts find the Linux state without
/// knowing the emulator, and a plugin emulator shared by several VMs needs no per-VM lookup.
public struct EmulatorStateKey<State: AnyObject>: Sendable, Hashable {
    /// The row in the table.
    public let index: Int

    /// Allocates a new row.
    public init() {
        index = EmulatorStateTable.nextIndex.add(1, ordering: .relaxed).oldValue
    }
}

/// The per-process state of emulators, by `EmulatorStateKey.index`: one retained object pointer
/// per row (nil: none), in a buffer the process owns, so reading a row is a load with no
/// reference counting, no dynamic cast and no exclusivity check.
///
/// A second buffer of the same capacity holds the previous run's states while `Process.reset`
/// calls `Emulator.prepare` (`beginRecycling` swaps the two, `endRecycling` releases what no
/// emulator took back).
@usableFromInline
struct EmulatorStateTable {
    /// Rows handed out so far (in this host process).
    static let nextIndex = Atomic<Int>(0)

    /// The current states; nil until a state is first stored.
    @usableFromInline private(set) var states: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    /// The previous run's states during a reset's `prepare`; otherwise all nil.
    @usableFromInline private(set) var recycled: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    @usableFromInline private(set) var capacity = 0
    /// How many current rows hold a state.
    @usableFromInline var occupied = 0

    init() {}

    /// The object in row `index` (unretained), or nil.
    @inlinable
    func object(at index: Int) -> UnsafeMutableRawPointer? {
        guard index < capacity, let states else { return nil }
        return states[index]
    }

    /// Stores `object` (retained) in row `index`, releasing what was there.
    mutating func set(_ object: AnyObject?, at index: Int) {
        if index >= capacity { grow(toInclude: index) }
        guard let states else { return }
        let old = states[index]
        states[index] = object.map { Unmanaged<AnyObject>.passRetained($0).toOpaque() }
        occupied += (object == nil ? 0 : 1) - (old == nil ? 0 : 1)
        if let old { Unmanaged<AnyObject>.fromOpaque(old).release() }
    }

    /// Moves every state to the recycled rows; the current rows are empty afterwards.
    mutating func beginRecycling() {
        swap(&states, &recycled)
        occupied = 0 // the recycled rows were all empty
    }

    /// Takes the recycled state of row `index` out (its retain goes to the caller), or nil.
    mutating func takeRecycled(at index: Int) -> UnsafeMutableRawPointer? {
        guard index < capacity, let recycled, let object = recycled[index] else { return nil }
        recycled[index] = nil
        return object
    }

    /// Puts the recycled state of row `index` back as the current state, when the current row
    /// is empty and nothing but this table holds it (no reference count changes: the table's
    /// reference moves); returns it, unretained. Nil otherwise (it stays recycled).
    ///
    /// Inlinable and generic over the state's class, so the emulator's call is specialized: the
    /// uniqueness test is the runtime's native one, not the generic function's.
    @inlinable @inline(__always)
    mutating func keepRecycled<State: AnyObject>(at index: Int, as type: State.Type) -> UnsafeMutableRawPointer? {
        guard index < capacity, let recycled, let states, let object = recycled[index], states[index] == nil else {
            return nil
        }
        // The table's reference, lent to `reference` for the test and handed back at once.
        var reference = Unmanaged<State>.fromOpaque(object).takeRetainedValue()
        let unique = isKnownUniquelyReferenced(&reference)
        _ = Unmanaged.passRetained(reference)
        guard unique else { return nil }
        recycled[index] = nil
        states[index] = object
        occupied &+= 1
        return object
    }

    /// The object in row `index` (unretained) when it is the only state in the table; nil
    /// otherwise.
    @inlinable @inline(__always)
    func soleObject(at index: Int) -> UnsafeMutableRawPointer? {
        guard occupied == 1, index < capacity, let states, let object = states[index] else { return nil }
        return object
    }

    /// Whether nothing but the table holds `object`, a state it stores: the table's reference,
    /// lent to the runtime's test and handed back at once (no reference count changes).
    @inlinable @inline(__always)
    static func isHeldOnlyByTable<State: AnyObject>(_ object: Unmanaged<State>) -> Bool {
        var reference = object.takeRetainedValue()
        let unique = isKnownUniquelyReferenced(&reference)
        _ = Unmanaged.passRetained(reference)
        return unique
    }

    /// Releases every recycled state nobody took.
    mutating func endRecycling() {
        guard let recycled else { return }
        for index in 0..<capacity {
            if let object = recycled[index] {
                recycled[index] = nil
                Unmanaged<AnyObject>.fromOpaque(object).release()
            }
        }
    }

    /// Releases every state (a reset without an emulator, and the process's end).
    mutating func removeAll() {
        occupied = 0
        guard let states else { return }
        for index in 0..<capacity {
            if let object = states[index] {
                states[index] = nil
                Unmanaged<AnyObject>.fromOpaque(object).release()
            }
        }
    }

    /// Releases everything and frees the buffers.
    mutating func deallocate() {
        removeAll()
        endRecycling()
        states?.deallocate()
        recycled?.deallocate()
        states = nil
        recycled = nil
        capacity = 0
    }

    private mutating func grow(toInclude index: Int) {
        // Room for every key made so far, so later keys rarely grow the table again.
        let count = max(index + 1, EmulatorStateTable.nextIndex.load(ordering: .relaxed), 2 * capacity)
        func enlarged(_ old: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> UnsafeMutablePointer<
            UnsafeMutableRawPointer?
        > {
            let buffer = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: count)
            buffer.initialize(repeating: nil, count: count)
            if let old {
                buffer.update(from: old, count: capacity)
                old.deallocate()
            }
            return buffer
        }
        states = enlarged(states)
        recycled = enlarged(recycled)
        capacity = count
    }
}

/// The emulator state table of a process: what each emulator (and each context that keeps
/// state) remembers about this process, by `EmulatorStateKey`.
///
/// States belong to one run: `reset(context:)` offers each to the emulators' `prepare` through
/// `takeRecycledEmulatorState(_:)` and releases the ones nobody took, and the process releases
/// them when it goes away. State that must outlive a process (a per-vCPU random generator that
/// continues from one packet to the next) belongs to the emulator, indexed by `vCPU`, not here.
extension Process {
    /// The state stored under `key`, or nil.
    @inlinable
    public func emulatorState<State>(_ key: EmulatorStateKey<State>) -> State? {
        guard let object = emulatorStates.object(at: key.index) else { return nil }
        return Unmanaged<State>.fromOpaque(object).takeUnretainedValue()
    }

    /// The state stored under `key` without a reference count: for helper-call paths, which read
    /// it inside `_withUnsafeGuaranteedRef` while the process keeps it alive.
    @inlinable
    public func unretainedEmulatorState<State>(_ key: EmulatorStateKey<State>) -> Unmanaged<State>? {
        guard let object = emulatorStates.object(at: key.index) else { return nil }
        return Unmanaged<State>.fromOpaque(object)
    }

    /// Stores `state` under `key` (nil removes it), releasing the state stored there before.
    /// The next reset takes the general path (`reset(context:)`): the quick path trusts that the
    /// states are those the emulator's `prepare` stored.
    public func setEmulatorState<State>(_ state: State?, for key: EmulatorStateKey<State>) {
        emulatorStates.set(state, at: key.index)
        armedEpoch = .max
    }

    /// During `reset(context:)`'s call of `Emulator.prepare`: the state stored under `key` in the
    /// run before, handed over once, for the emulator to clear and store again instead of
    /// allocating a new state per run (a pool worker or `mimic run --pcap` resets a process for
    /// every input). Nil for a new process, outside `prepare`, and once taken; states nobody
    /// takes are released when `prepare` returns.
    ///
    /// An emulator that takes a state must make it indistinguishable from a new one, and should
    /// reuse it only if nothing else holds it (`isKnownUniquelyReferenced`): host code may keep a
    /// previous run's state to read its results.
    public func takeRecycledEmulatorState<State>(_ key: EmulatorStateKey<State>) -> State? {
        guard let object = emulatorStates.takeRecycled(at: key.index) else { return nil }
        return Unmanaged<State>.fromOpaque(object).takeRetainedValue()
    }

    /// During `reset(context:)`'s call of `Emulator.prepare`: the state stored under `key` in
    /// the run before, stored again under `key` and returned (unretained: the process holds it)
    /// when nothing but the process holds it — `takeRecycledEmulatorState(_:)`, the uniqueness
    /// test and `setEmulatorState(_:for:)` in one, without reference counting (a process reset
    /// per packet pays for each). Nil when there is none or host code still holds it. The
    /// emulator must make it indistinguishable from a new state.
    @inlinable @inline(__always)
    public func reuseRecycledEmulatorState<State>(_ key: EmulatorStateKey<State>) -> Unmanaged<State>? {
        guard let object = emulatorStates.keepRecycled(at: key.index, as: State.self) else { return nil }
        return Unmanaged<State>.fromOpaque(object)
    }

    /// For `Context.rearm` (the quick path, when the emulator leaves its states to the context):
    /// the state stored under `key` (unretained: the process holds it) when it is the only state
    /// the process holds; nil otherwise. With `isEmulatorStateUnique(_:)` true (asked before
    /// anything is changed), it is the state `prepare` would take back
    /// (`reuseRecycledEmulatorState(_:)`) with nothing else to release. Two calls, so that the
    /// context can ask the second in the frame where it works on the state (a runtime call in the
    /// look-up's frame gave it saved registers of its own).
    @inlinable @inline(__always)
    public func soleEmulatorState<State>(_ key: EmulatorStateKey<State>) -> Unmanaged<State>? {
        guard let object = emulatorStates.soleObject(at: key.index) else { return nil }
        return Unmanaged<State>.fromOpaque(object)
    }

    /// Whether nothing but this process holds `state`, a state it stores (as
    /// `soleEmulatorState(_:)` returns it): host code may keep a previous run's state.
    @inlinable @inline(__always)
    public func isEmulatorStateUnique<State: AnyObject>(_ state: Unmanaged<State>) -> Bool {
        EmulatorStateTable.isHeldOnlyByTable(state)
    }

    /// The state in row `index` whatever its type, for callers that got the row from outside
    /// (a plugin's `mimic_call`) and check the type themselves.
    func anyEmulatorState(at index: Int) -> AnyObject? {
        guard index >= 0, let object = emulatorStates.object(at: index) else { return nil }
        return Unmanaged<AnyObject>.fromOpaque(object).takeUnretainedValue()
    }
}
