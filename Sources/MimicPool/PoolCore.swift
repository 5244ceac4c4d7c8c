import MimicCore
import Synchronization

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

    /// Removes up to `limit` jobs from the front, in order.
    mutating func popFirst(upTo limit: Int) -> [JobHandle] {
        var taken: [JobHandle] = []
        taken.reserveCapacity(min(limit, count))
        while taken.count < limit, let handle = popFirst() { taken.append(handle) }
        return taken
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
    /// Sequences the workers take jobs from when the backlog is empty, first started first.
    private var streams: [JobStream] = []
    /// Jobs of `run` (async) waiting for room; they move into the backlog as room frees.
    private var parked = JobQueue(initialCapacity: 4)
    private var accepting = true
    private var terminating = false
    private var idleWorkers = 0
    private var blockedSubmitters = 0
    /// The jobs each worker took from the backlog and has not finished, by vCPU: `stop` cancels
    /// them (`cancelAll`) or the ones not started yet (`cancelPending`, through
    /// `pendingCancelled`).
    private var taken: [[JobHandle]]
    /// Set by `stop(.cancelPending)` and `stop(.cancelAll)`: workers complete the jobs they took
    /// but have not started as cancelled. Read by workers without the lock.
    private let pendingCancelled = Atomic<Bool>(false)
    /// The job with a time limit or deadline each worker runs, by vCPU, for the watchdog.
    private var timed: [JobHandle?]
    /// When each worker's job must stop (monotonic ns), `.max` for none.
    private var cutoffs: [UInt64]
    private var watchdogSleepsUntil = UInt64.max
    private var liveWorkers: Int

    init(workerCount: Int, capacity: Int) {
        self.workerCount = workerCount
        self.capacity = capacity
        lowWater = capacity / 2
        backlog = JobQueue(initialCapacity: min(capacity, 1024))
        taken = Array(repeating: [], count: workerCount)
        timed = Array(repeating: nil, count: workerCount)
        cutoffs = Array(repeating: .max, count: workerCount)
        liveWorkers = workerCount
    }

    /// A worker takes at most this many jobs from the backlog at once, and at most a
    /// `2 × workerCount`-th of it, so that a short backlog still spreads over the workers.
    static let batchLimit = 16
    /// A worker takes at most this many jobs from a sequence at once: the sequence is called
    /// under its own lock, one worker at a time, so fewer, longer visits contend less.
    static let streamBatchLimit = 64

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

    /// Lets the workers take jobs from `stream` whenever the backlog is empty.
    func start(_ stream: JobStream) throws(PoolError) {
        lock.lock()
        defer { lock.unlock() }
        guard accepting else { throw .stopped }
        streams.append(stream)
        if idleWorkers > 0 { workAvailable.broadcast() }
    }

    /// Puts `handles` in the backlog in order, as many per visit as there is room for, waiting
    /// for room between visits when `blocking`; returns how many went in and, when not all did,
    /// why not (`.stopped`, or `.backlogFull` without `blocking`).
    func submit(contentsOf handles: [JobHandle], blocking: Bool) -> (accepted: Int, refusal: PoolError?) {
        lock.lock()
        defer { lock.unlock() }
        var next = 0
        while next < handles.count {
            guard accepting else { return (next, .stopped) }
            let room = capacity - backlog.count
            guard room > 0 else {
                guard blocking else { return (next, .backlogFull(capacity: capacity)) }
                blockedSubmitters += 1
                roomAvailable.wait(lock)
                blockedSubmitters -= 1
                continue
            }
            let end = min(handles.count, next + room)
            for handle in handles[next..<end] {
                handle.state = .queued
                backlog.append(handle)
            }
            for _ in 0..<min(idleWorkers, end - next) { workAvailable.signal() }
            next = end
        }
        return (next, nil)
    }

    /// Puts `handle` in the backlog, or parks it until there is room; returns why not instead
    /// (then `completion` is never called).
    func submitOrPark(
        _ handle: JobHandle, completion: @escaping @Sendable (Result<JobResult, PoolError>) -> Void
    ) -> PoolError? {
        lock.lock()
        defer { lock.unlock() }
        guard accepting else {
            handle.state = .finished
            return .stopped
        }
        guard !handle.flag.isCancelled else {
            handle.state = .finished
            return .cancelled(nil)
        }
        handle.completion = .handler(completion)
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

    /// Completes a job the pool did not accept with `error`.
    func refuse(_ handle: JobHandle, _ error: PoolError) {
        let completion = lock.withLock { takeCompletion(of: handle) }
        completion(.failure(error))
        handle.markCompleted()
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
    private func takeCompletion(of handle: JobHandle) -> Completion {
        handle.state = .finished
        let completion = handle.completion
        handle.completion = .none
        return completion
    }

    /// Stops taking jobs and tells the workers to end once the backlog is empty; with
    /// `cancelPending`, empties the backlog first (those jobs complete as cancelled), and with
    /// `cancelAll` also stops the running jobs.
    func beginStop(_ mode: ProcessPool.StopMode) {
        lock.lock()
        accepting = false
        terminating = true
        var cancelled: [Completion] = []
        if mode != .drain {
            for handle in backlog.removeAll() + parked.removeAll() {
                cancelled.append(takeCompletion(of: handle))
            }
            for stream in streams { stream.stop() }
            streams = []
            pendingCancelled.store(true, ordering: .relaxed)
            if mode == .cancelAll {
                for handle in taken.joined() { handle.flag.cancel() }
            }
        }
        workAvailable.broadcast()
        roomAvailable.broadcast()
        lock.unlock()
        for completion in cancelled { completion(.failure(.cancelled(nil))) }
    }

    // MARK: Workers

    /// A worker's life: take jobs, run them on `vCPU`, hand over the results, until stopped.
    ///
    /// The worker takes several jobs per visit to the lock when the backlog is long (see
    /// `batchLimit`) and runs them without the lock: two lock round trips per job were most of
    /// the pool's cost, and the lock's cache line moved between cores on every one. Only a job
    /// with a time limit or deadline takes the lock again, to tell the watchdog. When the
    /// backlog is empty, the worker takes jobs from the oldest running `JobStream`.
    func workerLoop(vCPU: Int) {
        // The last process this worker ran, reused while jobs run the same program.
        var reusable: MimicCore.Process?
        lock.lock()
        while true {
            let finished = taken[vCPU]
            for handle in finished { handle.state = .finished }
            taken[vCPU] = []
            var batch: [JobHandle]
            var source: JobStream?
            if !backlog.isEmpty {
                let share = min(PoolCore.batchLimit, max(1, backlog.count / (2 * workerCount)))
                batch = backlog.popFirst(upTo: share)
                backlogShrank()
            } else if let stream = streams.first {
                // Call the sequence without the pool's lock: it may be slow (reading a file).
                lock.unlock()
                withExtendedLifetime(finished) {}
                let jobs = stream.take(upTo: PoolCore.streamBatchLimit)
                lock.lock()
                guard !jobs.isEmpty else {
                    streams.removeAll { $0 === stream }
                    continue
                }
                batch = jobs.map { JobHandle(job: $0.job, core: nil, completion: .streamed(index: $0.index)) }
                source = stream
            } else {
                if terminating { break }
                idleWorkers += 1
                workAvailable.wait(lock)
                idleWorkers -= 1
                continue
            }
            for handle in batch { handle.state = .running }
            taken[vCPU] = batch
            lock.unlock()
            // Free the finished jobs (handles, and what only they hold) outside the lock.
            withExtendedLifetime(finished) {}

            // A job's completion handler is stable once it runs: `cancel` and `stop` only set
            // the flag of a running job.
            for handle in batch {
                let result = run(handle, vCPU: vCPU, reusing: &reusable)
                if let source, case .streamed(let index) = handle.completion {
                    source.completion(index, result)
                } else {
                    handle.completion(result)
                }
                handle.markCompleted()
            }
            source?.finished(batch.count)
            lock.lock()
        }
        liveWorkers -= 1
        if liveWorkers == 0 { watchdogWake.signal() }
        lock.unlock()
    }

    /// Runs one taken job unless it was cancelled or its deadline passed first; registers its
    /// cutoff with the watchdog while it runs. Called without the lock.
    private func run(_ handle: JobHandle, vCPU: Int, reusing reusable: inout MimicCore.Process?) -> Result<
        JobResult, PoolError
    > {
        if handle.flag.isCancelled || pendingCancelled.load(ordering: .relaxed) { return .failure(.cancelled(nil)) }
        guard let cutoff = cutoff(of: handle) else {
            return execute(handle, vCPU: vCPU, reusing: &reusable)
        }
        if monotonicNanoseconds() >= handle.deadline { return .failure(.deadlineExceeded(nil)) }
        lock.withLock {
            timed[vCPU] = handle
            cutoffs[vCPU] = cutoff
            if cutoff < watchdogSleepsUntil { watchdogWake.signal() }
        }
        let result = execute(handle, vCPU: vCPU, reusing: &reusable)
        lock.withLock {
            timed[vCPU] = nil
            cutoffs[vCPU] = .max
        }
        return result
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
    private func execute(_ handle: JobHandle, vCPU: Int, reusing reusable: inout MimicCore.Process?) -> Result<
        JobResult, PoolError
    > {
        let context: (any Context)?
        do {
            context = try handle.job.makeContext()
        } catch {
            return .failure(.setupFailed("the context could not be built: \(error)"))
        }
        let process: MimicCore.Process
        do {
            // A program belongs to one VM: the same program means the same VM too.
            if let previous = reusable, previous.entryProgram === handle.job.program {
                try previous.reset(context: context)
                process = previous
            } else {
                reusable = nil // release the old process before making the next
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
            guard error.code == .cancelled else { return .failure(.execution(error)) }
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
                    if let handle = timed[worker] {
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
