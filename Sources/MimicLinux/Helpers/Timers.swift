import Glibc
import MimicCore
import MimicMemory
import Synchronization

/// The emulator's virtual clock: time that passes only when the host says so
/// (`LinuxEmulator.advanceClock(to:)`), so runs are reproducible and timers fire at chosen moments.
///
/// A process reads it when its `TaskEnvironment.clock` is `.virtual`: `bpf_ktime_get_ns`,
/// `bpf_ktime_get_boot_ns` (nothing is ever suspended, so boot time is monotonic time),
/// `bpf_ktime_get_coarse_ns` (the reading rounded down to a tick of `CONFIG_HZ`), `bpf_jiffies64`
/// and `bpf_ktime_get_tai_ns` (`now + realtimeOffset + taiOffset`) all derive from the same
/// reading. `bpf_timer`s always run on it, whatever clock the process reads.
public final class VirtualClock: Sendable {
    private let nanoseconds: Atomic<UInt64>
    /// `CLOCK_REALTIME - CLOCK_MONOTONIC`: what a realtime timer's absolute expiry is measured from.
    public let realtimeOffset: UInt64
    /// `CLOCK_TAI - CLOCK_REALTIME` (37 s of leap seconds since 1972, as of 2017).
    public let taiOffset: UInt64 = 37_000_000_000

    /// A clock at `start` nanoseconds of monotonic time (time since boot).
    public init(start: UInt64 = 0, realtimeOffset: UInt64 = 0) {
        nanoseconds = Atomic(start)
        self.realtimeOffset = realtimeOffset
    }

    /// The monotonic (and boot) time, in nanoseconds.
    public var now: UInt64 { nanoseconds.load(ordering: .acquiring) }

    /// Moves the clock forward to `time` (never back). Timers do not fire: use
    /// `LinuxEmulator.advanceClock(to:)` for that.
    func set(_ time: UInt64) {
        var current = nanoseconds.load(ordering: .relaxed)
        while current < time {
            let (exchanged, original) = nanoseconds.compareExchange(
                expected: current, desired: time, ordering: .acquiringAndReleasing)
            if exchanged { return }
            current = original
        }
    }

    /// The reading of `clock` (a `clockid_t` the ktime helpers use).
    func reading(_ clock: clockid_t) -> UInt64 {
        switch clock {
        case CLOCK_TAI: now &+ realtimeOffset &+ taiOffset
        case CLOCK_REALTIME: now &+ realtimeOffset
        default: now
        }
    }
}

/// One run of a timer callback (`LinuxEmulator.advanceClock(to:)`).
public struct TimerFiring: Sendable {
    /// The virtual time the timer expired at (the clock read this during the callback).
    public var time: UInt64
    /// The VM address of the `struct bpf_timer`.
    public var timer: UInt64
    /// The map holding the timer, and the key of its element.
    public var mapName: String
    public var key: [UInt8]
    /// The callback's R0 (the verifier makes callbacks return 0), or the error it stopped with.
    public var result: Result<UInt64, ExecutionError>
    /// What the callback printed with `bpf_trace_printk`.
    public var traceOutput: [String]
}

/// `bpf_timer_init`, `bpf_timer_set_callback`, `bpf_timer_start` and `bpf_timer_cancel`, as
/// `kernel/bpf/helpers.c` implements them, on the emulator's `VirtualClock`.
///
/// A `struct bpf_timer` (16 bytes) lives in a hash, LRU hash or array map value. `bpf_timer_init`
/// writes a timer id into its first 8 bytes (the kernel stores a pointer to its `bpf_hrtimer`
/// there) and the emulator's `TimerTable` keeps the rest. A timer whose element is deleted (or
/// whose value is overwritten by an update, which in the kernel frees the old element) is
/// cancelled: its callback does not run.
enum TimerHelpers {
    /// `BPF_F_TIMER_ABS` and `BPF_F_TIMER_CPU_PIN`.
    static let absolute: UInt64 = 1
    static let cpuPin: UInt64 = 2
    /// `sizeof(struct bpf_timer)`.
    static let size = 16

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let table = emulator.timers
        let clock = emulator.clock
        return [
            // long bpf_timer_init(struct bpf_timer *timer, void *map, u64 flags)
            LinuxHelper.make(.timerInit) { [weak emulator] call throws(HelperFailure) in
                let address = call.arg(1)
                let map = try MapHelpers.map(emulator, call.process, argument: 2)
                let clockID = call.arg(3)
                guard
                    clockID == UInt64(CLOCK_MONOTONIC) || clockID == UInt64(CLOCK_REALTIME)
                        || clockID == UInt64(CLOCK_BOOTTIME)
                else { return Errno.invalid.r0 }
                if table.timer(call, at: address) != nil { return Errno.busy.r0 }
                let id = table.create(at: address, map: map, clock: clockid_t(clockID))
                try call.write(withUnsafeBytes(of: id.littleEndian, Array.init), at: address)
                return 0
            },
            // long bpf_timer_set_callback(struct bpf_timer *timer, void *callback_fn)
            LinuxHelper.make(.timerSetCallback) { call throws(HelperFailure) in
                let address = call.arg(1)
                guard table.timer(call, at: address) != nil else { return Errno.invalid.r0 }
                guard let slot = ProgramCallbacks.functionSlot(call.process, fromAddress: call.arg(2)) else {
                    throw .message(
                        "r2 (0x\(String(call.arg(2), radix: 16))) is not a program function (load it with lddw BPF_PSEUDO_FUNC)"
                    )
                }
                let environment = call.state?.environment ?? TaskEnvironment()
                table.update(address) { entry in
                    entry.program = call.process.program
                    entry.slot = slot
                    entry.environment = environment
                }
                return 0
            },
            // long bpf_timer_start(struct bpf_timer *timer, u64 nsecs, u64 flags)
            LinuxHelper.make(.timerStart) { call throws(HelperFailure) in
                let address = call.arg(1)
                let nanoseconds = call.arg(2)
                let flags = call.arg(3)
                guard flags & ~(absolute | cpuPin) == 0 else { return Errno.invalid.r0 }
                guard let entry = table.timer(call, at: address), entry.slot != nil else { return Errno.invalid.r0 }
                let expiry: UInt64
                if flags & absolute != 0 {
                    // An absolute time on the timer's clock; a realtime one is measured from the epoch.
                    let offset = entry.clock == CLOCK_REALTIME ? clock.realtimeOffset : 0
                    expiry = nanoseconds >= offset ? nanoseconds - offset : 0
                } else {
                    let (sum, overflow) = clock.now.addingReportingOverflow(nanoseconds)
                    expiry = overflow ? .max : sum
                }
                let cpu = call.process.vCPU
                let sequence = table.nextSequence()
                table.update(address) { entry in
                    entry.expiry = expiry
                    entry.cpu = cpu
                    entry.sequence = sequence
                }
                return 0
            },
            // long bpf_timer_cancel(struct bpf_timer *timer)
            LinuxHelper.make(.timerCancel) { call throws(HelperFailure) in
                let address = call.arg(1)
                guard let entry = table.timer(call, at: address) else { return Errno.invalid.r0 }
                // The timer's own callback may not wait for itself to finish.
                if call.state?.runningTimer == address { return Errno.deadlock.r0 }
                // The kernel also drops the callback and its program (`drop_prog_refcnt`): the
                // timer needs `bpf_timer_set_callback` again before `bpf_timer_start`.
                table.update(address) { entry in
                    entry.expiry = nil
                    entry.programReference = nil
                    entry.slot = nil
                    entry.environment = TaskEnvironment()
                }
                return entry.expiry != nil ? 1 : 0
            },
        ]
    }
}

extension Errno {
    /// `EDEADLK`.
    static let deadlock = Errno(rawValue: 35)
}

/// The emulator's timers, by the VM address of their `struct bpf_timer`.
/// A weak reference to a program (`TimerTable.Entry.program`).
final class WeakProgram: @unchecked Sendable {
    weak var program: Program?
    init(_ program: Program) { self.program = program }
}

final class TimerTable: @unchecked Sendable {
    struct Entry {
        var id: UInt64
        var mapHandle: UInt64
        var clock: clockid_t
        /// The program whose callback runs, held weakly: the program holds its VM, which holds
        /// this emulator, so a strong reference would keep them all alive (a timer of a program
        /// the host has released does not fire).
        var program: Program? {
            get { programReference?.program }
            set { programReference = newValue.map(WeakProgram.init) }
        }
        var programReference: WeakProgram? = nil
        var slot: Int?
        /// The task the callback runs as: the one that set the callback.
        var environment = TaskEnvironment()
        /// When the timer fires (virtual monotonic ns), nil when it is not active.
        var expiry: UInt64?
        var cpu = 0
        /// Start order: timers expiring together fire in the order they were started.
        var sequence: UInt64 = 0
    }

    private let lock = Mutex(())
    private var entries: [UInt64: Entry] = [:]
    private var lastID: UInt64 = 0
    private var lastSequence: UInt64 = 0

    /// A new timer at `address`; returns the id written into the `struct bpf_timer`.
    func create(at address: UInt64, map: any BPFMap, clock: clockid_t) -> UInt64 {
        lock.withLock { _ in
            lastID += 1
            // The high bit keeps the id from ever being 0, the "not initialised" value.
            let id = lastID | 1 << 63
            entries[address] = Entry(id: id, mapHandle: map.handle, clock: clock)
            return id
        }
    }

    func nextSequence() -> UInt64 {
        lock.withLock { _ in
            lastSequence += 1
            return lastSequence
        }
    }

    /// The timer at `address` if the memory there still holds its id (an element created anew or
    /// overwritten since `bpf_timer_init` holds other bytes: that timer is gone).
    func timer(_ call: HelperCall, at address: UInt64) -> Entry? {
        guard let bytes = try? call.process.memory.read(address, count: 8) else { return nil }
        let id = get64(bytes, 0)
        return lock.withLock { _ in
            guard let entry = entries[address] else { return nil }
            guard entry.id == id else {
                entries[address] = nil
                return nil
            }
            return entry
        }
    }

    func update(_ address: UInt64, _ change: (inout Entry) -> Void) {
        lock.withLock { _ in
            guard var entry = entries[address] else { return }
            change(&entry)
            entries[address] = entry
        }
    }

    /// The earliest active timer expiring at or before `time`, made inactive (a callback restarts
    /// it with `bpf_timer_start`).
    func takeDue(upTo time: UInt64) -> (address: UInt64, entry: Entry)? {
        lock.withLock { _ in
            var best: (address: UInt64, entry: Entry, order: (UInt64, UInt64))?
            for (address, entry) in entries {
                guard let expiry = entry.expiry, expiry <= time else { continue }
                if let current = best, current.order <= (expiry, entry.sequence) { continue }
                best = (address, entry, (expiry, entry.sequence))
            }
            guard let (address, entry, _) = best else { return nil }
            entries[address]?.expiry = nil
            return (address, entry)
        }
    }

    /// Drops the timer at `address` (its element is gone).
    func remove(_ address: UInt64) { lock.withLock { _ in entries[address] = nil } }

    /// Active timers: address and expiry, soonest first.
    var pending: [(timer: UInt64, expiry: UInt64)] {
        lock.withLock { _ in
            entries.compactMap { address, entry in entry.expiry.map { (address, $0) } }.sorted { $0.1 < $1.1 }
        }
    }
}

extension LinuxEmulator {
    /// Moves the virtual clock (`clock`) forward to `time` nanoseconds, running on the way every
    /// `bpf_timer` callback that falls due, in expiry order (the clock reads the expiry time
    /// during each). A callback that restarts its timer for a time still before `time` runs again.
    /// Each callback runs in a process of its own on the vCPU that started the timer, as the task
    /// that set the callback; a callback whose element was deleted since does not run. Returns
    /// what ran. A `time` before the clock's reading runs due timers only.
    ///
    /// `instructionLimit` bounds each callback.
    @discardableResult
    public func advanceClock(to time: UInt64, instructionLimit: UInt64 = 1 << 24) -> [TimerFiring] {
        var firings: [TimerFiring] = []
        while let (address, entry) = timers.takeDue(upTo: max(time, clock.now)) {
            guard let expiry = entry.expiry, let program = entry.program, let slot = entry.slot else { continue }
            clock.set(expiry)
            guard let map = map(handle: entry.mapHandle), let key = Self.key(of: address, in: map) else {
                timers.remove(address)
                continue
            }
            firings.append(
                fire(
                    program: program, slot: slot, address: address, map: map, key: key, entry: entry,
                    instructionLimit: instructionLimit))
        }
        clock.set(time)
        return firings
    }

    /// `advanceClock(to: clock.now + nanoseconds)`.
    @discardableResult
    public func advanceClock(by nanoseconds: UInt64, instructionLimit: UInt64 = 1 << 24) -> [TimerFiring] {
        let (target, overflow) = clock.now.addingReportingOverflow(nanoseconds)
        return advanceClock(to: overflow ? .max : target, instructionLimit: instructionLimit)
    }

    /// The active timers: the VM address of each `struct bpf_timer` and when it fires, soonest first.
    public var pendingTimers: [(timer: UInt64, expiry: UInt64)] { timers.pending }

    /// The key of the element whose value holds `address`, or nil if no element does any more.
    static func key(of address: UInt64, in map: any BPFMap) -> [UInt8]? {
        let size = UInt64(map.attributes.valueSize)
        for key in map.keys {
            guard let value = map.lookupAddress(key: key, cpu: 0) else { continue }
            if address >= value, address - value < size { return key }
        }
        return nil
    }

    private func fire(
        program: Program, slot: Int, address: UInt64, map: any BPFMap, key: [UInt8], entry: TimerTable.Entry,
        instructionLimit: UInt64
    ) -> TimerFiring {
        let time = clock.now
        func failed(_ message: String) -> TimerFiring {
            let error = ExecutionError(
                .helperFailed(id: HelperID.timerStart.rawValue, name: "timer callback", failure: .message(message)),
                pc: slot, instruction: nil, programName: program.name)
            return TimerFiring(
                time: time, timer: address, mapName: map.name, key: key, result: .failure(error), traceOutput: [])
        }
        let process: MimicCore.Process
        do {
            process = try program.vm.makeProcess(for: program, vCPU: min(entry.cpu, cpuCount - 1))
        } catch {
            return failed("cannot make a process for the timer callback: \(error)")
        }
        guard let value = map.lookupAddress(key: key, cpu: 0), let state = LinuxProcessState.of(process) else {
            return failed("the timer's element is gone")
        }
        var environment = entry.environment
        environment.clock = .virtual
        state.environment = environment
        state.runningTimer = address
        // The callback's key argument points at a copy of the key in the callback's memory.
        let keyStorage = RegionStorage(count: max(key.count, 1))
        keyStorage.pointer.copyMemory(from: key, byteCount: key.count)
        let keyAddress: UInt64
        do {
            keyAddress = try process.memory.map(keyStorage, name: "timer key", kind: .readOnly)
        } catch {
            return failed("cannot map the timer's key: \(error)")
        }
        let result: Result<UInt64, ExecutionError>
        do {
            result = .success(
                try process.runFunction(
                    at: slot, arguments: [map.handle, keyAddress, value], instructionLimit: instructionLimit))
        } catch {
            result = .failure(error)
        }
        return TimerFiring(
            time: time, timer: address, mapName: map.name, key: key, result: result, traceOutput: state.traceOutput)
    }
}
