import Foundation
import MimicCore
import MimicMemory
import MimicPool
import Synchronization

/// A test emulator: per-CPU counter slots, the vCPU id, and a count of live processes.
///
/// | id | name | result |
/// |---|---|---|
/// | 1 | percpu_counter_ptr | address of this vCPU's 8-byte slot in the shared counter region |
/// | 2 | get_smp_processor_id | the process's vCPU |
final class PerCPUEmulator: Emulator {
    let name = "percpu-test"
    /// VM address of the counter region (one 8-byte slot per vCPU).
    let counterBase = Atomic<UInt64>(0)
    /// Processes prepared so far.
    let prepared = Atomic<Int>(0)
    /// Processes alive now: each prepared process holds a `LiveToken` until it is released.
    let live = Atomic<Int>(0)

    func helper(id: Int32) -> Helper? {
        switch id {
        case 1:
            Helper(id: 1, name: "percpu_counter_ptr") { [unowned self] process throws(HelperFailure) in
                .value(counterBase.load(ordering: .relaxed) &+ UInt64(process.vCPU) &* 8)
            }
        case 2:
            Helper(id: 2, name: "get_smp_processor_id") { process throws(HelperFailure) in
                .value(UInt64(process.vCPU))
            }
        default:
            nil
        }
    }

    func prepare(_ process: MimicCore.Process) throws(SetupError) {
        prepared.add(1, ordering: .relaxed)
        process.setEmulatorState(LiveToken(emulator: self), for: LiveToken.key)
    }

    /// Counts itself in `emulator.live` while it exists.
    final class LiveToken {
        static let key = EmulatorStateKey<LiveToken>()
        let emulator: PerCPUEmulator
        init(emulator: PerCPUEmulator) {
            self.emulator = emulator
            emulator.live.add(1, ordering: .relaxed)
        }
        deinit { emulator.live.subtract(1, ordering: .relaxed) }
    }
}

/// A VM with the per-CPU emulator and a shared region of `vCPUs` counters.
struct PerCPUFixture {
    let emulator = PerCPUEmulator()
    let vm: VM
    let counters: RegionStorage

    init(vCPUs: Int) throws {
        vm = VM(emulator: emulator)
        counters = RegionStorage(count: vCPUs * 8)
        let base = try vm.mapShared(counters, name: "percpu_counters")
        emulator.counterBase.store(base, ordering: .relaxed)
    }

    func load(_ source: String, name: String = "test") throws -> Program {
        try vm.load(Assembler.assemble(source), name: name)
    }

    /// The counter of `vCPU`.
    func counter(_ vCPU: Int) -> UInt64 {
        counters.pointer.loadUnaligned(fromByteOffset: vCPU * 8, as: UInt64.self)
    }

    /// Reads this vCPU's counter, spins a while, stores counter + 1 without an atomic, returns
    /// the vCPU id the program sees. The spin (~1,500 instructions) makes the race window wide
    /// enough that running all jobs as vCPU 0 on two workers loses hundreds of counts in 20,000
    /// jobs (checked by breaking the pool on purpose); with 40 iterations it lost none.
    static let incrementSource = """
        call 1
        mov %r6, %r0
        ldxdw %r7, [%r6]
        mov %r8, 500
        spin:
        sub %r8, 1
        jne %r8, 0, spin
        add %r7, 1
        stxdw [%r6], %r7
        call 2
        exit
        """

    /// Never ends.
    static let runawaySource = "ja -1"

    /// Returns 7 at once.
    static let quickSource = """
        mov %r0, 7
        exit
        """
}

/// A value behind an `NSLock`.
///
/// The tests use it rather than `Synchronization.Mutex`: Thread Sanitizer does not see the
/// synchronisation inside `Mutex` (it lives in the uninstrumented standard library) and reported
/// accesses under it from two workers as races; a pthread-based lock it understands.
final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched with `lock` held.
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// Per-vCPU tallies without a lock: slot `v` is written only by completion handlers of jobs that
/// ran on vCPU `v`, which the pool calls one after another on worker `v`'s thread. Thread
/// Sanitizer checks that claim; read the slots only after `stop` has joined the workers.
final class PerVCPUTally: @unchecked Sendable {
    // @unchecked: see above — one writer thread per slot, reads after the writers are joined.
    private let slots: UnsafeMutablePointer<Int>
    let count: Int

    init(vCPUs: Int) {
        count = vCPUs
        slots = .allocate(capacity: vCPUs)
        slots.initialize(repeating: 0, count: vCPUs)
    }

    deinit { slots.deallocate() }

    func increment(_ vCPU: Int) { slots[vCPU] += 1 }
    var values: [Int] { (0..<count).map { slots[$0] } }
}

/// Collects job results by key, thread-safely, and lets a test wait for them.
final class Outcomes: Sendable {
    private let results = Locked<[Int: Result<JobResult, PoolError>]>([:])
    private let arrived = DispatchSemaphore(value: 0)

    /// A completion handler that records its result under `key`.
    func completion(_ key: Int) -> @Sendable (Result<JobResult, PoolError>) -> Void {
        { result in
            self.results.withLock { $0[key] = result }
            self.arrived.signal()
        }
    }

    /// Waits until `count` more results arrived; false on timeout.
    func wait(for count: Int, seconds: Double = 30) -> Bool {
        for _ in 0..<count where arrived.wait(timeout: .now() + seconds) == .timedOut { return false }
        return true
    }

    subscript(key: Int) -> Result<JobResult, PoolError>? { results.withLock { $0[key] } }

    var all: [Int: Result<JobResult, PoolError>] { results.withLock { $0 } }
}

/// Polls `condition` until it holds or `seconds` pass.
func eventually(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        usleep(1000)
    }
    return condition()
}

/// Polls `condition` until it holds or `seconds` pass, without blocking a cooperative thread.
func eventually(seconds: Double = 10, _ condition: () -> Bool) async -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(1))
    }
    return condition()
}

extension Result where Failure == PoolError {
    var error: PoolError? {
        if case .failure(let error) = self { return error }
        return nil
    }

    var value: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}
