import MimicCore

/// A first-in first-out queue of jobs on a ring buffer that grows when full.
struct JobQueue {
    private var storage: [JobHandle?]
    private var head = 0
    private(set) var count = 0

    init(initialCapacity: Int) {
        storage = Array(repeating: nil, count: max(1, initialCapacity))
    }

    var isEmpty: Bool { count == 0 }

    mutating func append(_ handle: JobHandle) {
        if count == storage.count { grow() }
        storage[(head + count) % storage.count] = handle
        count += 1
    }

    mutating func popFirst() -> JobHandle? {
        guard count > 0 else { return nil }
        let handle = storage[head]
        storage[head] = nil
        head = (head + 1) % storage.count
        count -= 1
        return handle
    }

    /// Removes `handle` if it is queued; O(count).
    mutating func remove(_ handle: JobHandle) -> Bool {
        let size = storage.count
        guard let found = (0..<count).first(where: { storage[(head + $0) % size] === handle }) else { return false }
        for i in found..<(count - 1) {
            storage[(head + i) % size] = storage[(head + i + 1) % size]
        }
        storage[(head + count - 1) % size] = nil
        count -= 1
        return true
    }

    mutating func removeAll() -> [JobHandle] {
        var all: [JobHandle] = []
        all.reserveCapacity(count)
        while let handle = popFirst() { all.append(handle) }
        return all
    }

    private mutating func grow() {
        var bigger = [JobHandle?](repeating: nil, count: storage.count * 2)
        for i in 0..<count { bigger[i] = storage[(head + i) % storage.count] }
        storage = bigger
        head = 0
    }
}

/// The shared state of a pool: backlog, workers' current jobs, the watchdog's timers.
///
/// Workers, the watchdog and submitting threads meet here. Every stored `var` is read and
/// written only with `lock` held; that is what makes the `@unchecked Sendable` honest. Jobs run
/// and completion handlers are called with the lock released.
final class PoolCore: @unchecked Sendable {
    let lock = PoolLock()
    /// Signalled when a job enters the backlog and a worker is idle, and on stop.
    private let workAvailable = PoolCondition()
    /// Signalled when the backlog falls to `lowWater` and a submitter is blocked, and on stop.
    private let roomAvailable = PoolCondition()
    /// Signalled when a job gets an earlier cutoff than the watchdog sleeps to, and on stop.
    private let watchdogWake = PoolCondition()

    let workerCount: Int
    let capacity: Int
    /// Blocked submitters are woken when the backlog is down to this many jobs, not at every
    /// free slot: a full backlog then costs one wake-up per `capacity - lowWater` jobs.
    private let lowWater: Int

    private var backlog: JobQueue
    /// Jobs of `run` (async) waiting for room; they move into the backlog as room frees.
    private var parked = JobQueue(initialCapacity: 4)
    private var accepting = true
    private var terminating = false
    private var idleWorkers = 0
    private var blockedSubmitters = 0
    /// The job each worker runs, by vCPU.
    private var running: [JobHandle?]
    /// When each worker's job must stop (monotonic ns), `.max` for none.
    private var cutoffs: [UInt64]
    private var watchdogSleepsUntil = UInt64.max
    private var liveWorkers: Int

    static let ignore: @Sendable (Result<JobResult, PoolError>) -> Void = { _ in }

    init(workerCount: Int, capacity: Int) {
        self.workerCount = workerCount
        self.capacity = capacity
        lowWater = capacity / 2
        backlog = JobQueue(initialCapacity: min(capacity, 1024))
        running = Array(repeating: nil, count: workerCount)
        cutoffs = Array(repeating: .max, count: workerCount)
        liveWorkers = workerCount
    }

    /// Jobs waiting in the backlog or parked.
    var pendingCount: Int { lock.withLock { backlog.count + parked.count } }

    // MARK: Submission

    /// Puts `handle` in the backlog, waiting for room when `blocking`; throws when the pool is
    /// stopped or, without `blocking`, when the backlog is full.
    func submit(_ handle: JobHandle, blocking: Bool) throws(PoolError) {
        lock.lock()
        defer { lock.unlock() }
        while true {
            guard accepting else { throw .stopped }
            if backlog.count < capacity {
                enqueue(handle)
                return
            }
            guard blocking else { throw .backlogFull(capacity: capacity) }
            blockedSubmitters += 1
            roomAvailable.wait(lock)
            blockedSubmitters -= 1
        }
    }

    /// Puts `handle` in the backlog, or parks it until there is room; returns why not instead
    /// (then `completion` is never called).
    func submitOrPark(
        _ handle: JobHandle, completion: @escaping @Sendable (Result<JobResult, PoolError>) -> Void
    ) -> PoolError? {
        lock.lock()
        defer { lock.unlock() }
        guard accepting else { handle.state = .finished; return .stopped }
        guard !handle.flag.isCancelled else { handle.state = .finished; return .cancelled(nil) }
        handle.completion = completion
        if backlog.count < capacity && parked.isEmpty {
            enqueue(handle)
        } else {
            handle.state = .parked
            parked.append(handle)
        }
        return nil
    }

    /// Lock held.
    private func enqueue(_ handle: JobHandle) {
        handle.state = .queued
        backlog.append(handle)
        if idleWorkers > 0 { workAvailable.signal() }
    }

    /// Moves parked jobs into free backlog slots and wakes a blocked submitter if there is room
    /// enough. Lock held.
    private func backlogShrank() {
        while backlog.count < capacity, let next = parked.popFirst() {
            enqueue(next)
        }
        if blockedSubmitters > 0 && backlog.count <= lowWater { roomAvailable.signal() }
    }

    // MARK: Cancellation and stop

    func cancel(_ handle: JobHandle) {
        lock.lock()
        switch handle.state {
        case .created, .running:
            handle.flag.cancel()
            lock.unlock()
            return
        case .finished:
            lock.unlock()
            return
        case .parked:
            _ = parked.remove(handle)
        case .queued:
            _ = backlog.remove(handle)
            backlogShrank()
        }
        let completion = takeCompletion(of: handle)
        lock.unlock()
        completion(.failure(.cancelled(nil)))
    }

    /// Marks `handle` finished and returns its completion handler, leaving none. Lock held.
    private func takeCompletion(of handle: JobHandle) -> @Sendable (Result<JobResult, PoolError>) -> Void {
        handle.state = .finished
        let completion = handle.completion
        handle.completion = PoolCore.ignore
        return completion
    }

    /// Stops taking jobs and tells the workers to end once the backlog is empty; with
    /// `cancelPending`, empties the backlog first (those jobs complete as cancelled), and with
    /// `cancelAll` also stops the running jobs.
    func beginStop(_ mode: ProcessPool.StopMode) {
        lock.lock()
        accepting = false
        terminating = true
        var cancelled: [@Sendable (Result<JobResult, PoolError>) -> Void] = []
        if mode != .drain {
            for handle in backlog.removeAll() + parked.removeAll() {
                cancelled.append(takeCompletion(of: handle))
            }
            if mode == .cancelAll {
                for handle in running { handle?.flag.cancel() }
            }
        }
        workAvailable.broadcast()
        roomAvailable.broadcast()
        lock.unlock()
        for completion in cancelled { completion(.failure(.cancelled(nil))) }
    }

    // MARK: Workers

    /// A worker's life: take a job, run it on `vCPU`, hand over the result, until stopped.
    func workerLoop(vCPU: Int) {
        var finished: JobHandle?
        // The last process this worker ran, reused while jobs run the same program.
        var reusable: MimicCore.Process?
        lock.lock()
        while true {
            if let done = finished {
                done.state = .finished
                done.completion = PoolCore.ignore
                running[vCPU] = nil
                cutoffs[vCPU] = .max
                finished = nil
            }
            guard let handle = backlog.popFirst() else {
                if terminating { break }
                idleWorkers += 1
                workAvailable.wait(lock)
                idleWorkers -= 1
                continue
            }
            backlogShrank()
            handle.state = .running
            running[vCPU] = handle
            let completion = handle.completion
            var expiredBeforeStart = false
            if let cutoff = cutoff(of: handle) {
                if monotonicNanoseconds() >= handle.deadline {
                    expiredBeforeStart = true
                } else {
                    cutoffs[vCPU] = cutoff
                    if cutoff < watchdogSleepsUntil { watchdogWake.signal() }
                }
            }
            lock.unlock()

            let result: Result<JobResult, PoolError> =
                expiredBeforeStart ? .failure(.deadlineExceeded(nil)) : execute(handle, vCPU: vCPU, reusing: &reusable)
            completion(result)
            finished = handle
            lock.lock()
        }
        liveWorkers -= 1
        if liveWorkers == 0 { watchdogWake.signal() }
        lock.unlock()
    }

    /// The monotonic time at which `handle` must stop, counted from now; nil for no limit.
    private func cutoff(of handle: JobHandle) -> UInt64? {
        var cutoff = handle.deadline
        let limit = handle.job.options.timeLimitNanoseconds
        if limit != .max {
            let (end, overflow) = monotonicNanoseconds().addingReportingOverflow(limit)
            cutoff = min(cutoff, overflow ? .max : end)
        }
        return cutoff == .max ? nil : cutoff
    }

    /// Runs the job's program on this thread: in `reusable` (reset) when it is the same program
    /// of the same VM, else in a new process that becomes the reusable one.
    private func execute(_ handle: JobHandle, vCPU: Int, reusing reusable: inout MimicCore.Process?) -> Result<JobResult, PoolError> {
        let context: (any Context)?
        do {
            context = try handle.job.makeContext()
        } catch {
            return .failure(.setupFailed("the context could not be built: \(error)"))
        }
        let process: MimicCore.Process
        do {
            if let previous = reusable, previous.vm === handle.job.vm, previous.entryProgram === handle.job.program {
                try previous.reset(context: context)
                process = previous
            } else {
                reusable = nil  // release the old process before making the next
                process = try handle.job.vm.makeProcess(for: handle.job.program, context: context, vCPU: vCPU)
                reusable = process
            }
        } catch {
            reusable = nil
            return .failure(.setupFailed(error.description))
        }
        do {
            let r0 = try process.run(instructionLimit: handle.job.options.instructionLimit, cancellation: handle.flag)
            return .success(JobResult(r0: r0, instructionsExecuted: process.instructionsExecuted, vCPU: vCPU))
        } catch {
            guard case .cancelled = error.kind else { return .failure(.execution(error)) }
            let timedOut = lock.withLock { handle.timedOut }
            return .failure(timedOut ? .deadlineExceeded(error) : .cancelled(error))
        }
    }

    /// The watchdog's life: stop running jobs whose cutoff passed; ends after the last worker.
    func watchdogLoop() {
        lock.lock()
        while liveWorkers > 0 {
            let now = monotonicNanoseconds()
            var next = UInt64.max
            for worker in 0..<workerCount where cutoffs[worker] != .max {
                if cutoffs[worker] <= now {
                    if let handle = running[worker] {
                        handle.timedOut = true
                        handle.flag.cancel()
                    }
                    cutoffs[worker] = .max
                } else {
                    next = min(next, cutoffs[worker])
                }
            }
            watchdogSleepsUntil = next
            if next == .max {
                watchdogWake.wait(lock)
            } else {
                watchdogWake.wait(lock, until: next)
            }
        }
        lock.unlock()
    }
}
