import Foundation
import MimicCore

/// Runs many eBPF processes on a fixed set of worker threads, one per virtual CPU.
///
/// Worker `i` runs every job it takes as vCPU `i`: it creates the job's process on its own
/// thread with `vm.makeProcess(for:context:vCPU: i)`, runs it and hands the result over; while
/// the next jobs run the same program it reuses that process (`Process.reset(context:)`), so a
/// worker holds at most one process, released when the pool stops. A worker runs one job at a
/// time, so two jobs never run on the same vCPU at once — the kernel's guarantee that per-CPU
/// maps and `bpf_get_smp_processor_id` rely on.
///
/// Jobs wait in a bounded backlog. `submit` waits for room, `trySubmit` fails at once with
/// `PoolError.backlogFull`, `submit(contentsOf:)` hands over many jobs per visit to the pool's
/// lock, and `run` (async) suspends without holding a thread. `run(_:completion:)` lets the
/// workers take jobs from a sequence themselves, with no submitting thread at all: the fastest
/// way to run a stream of jobs (a capture's packets). Each job may have an instruction limit,
/// a time limit and a deadline, and can be cancelled through its `JobHandle`. `stop` ends the
/// pool, draining or cancelling what is pending.
///
/// Workers take up to 16 jobs from a long backlog at once (at most a `2 × workers`-th of it)
/// and 64 from a sequence, and run them without the lock: a job taken is no longer pending,
/// and waits behind the ones its worker took before it.
///
/// ```swift
/// let pool = try ProcessPool(workers: 4, backlog: 256)
/// let result = try await pool.run(Job(program: program, memory: packet))
/// print(result.r0, result.vCPU)
/// pool.stop(.drain)
/// ```
public final class ProcessPool: Sendable {
    /// What `stop` does with jobs that have not finished.
    public enum StopMode: Sendable, Equatable {
        /// Run every job in the backlog (and every parked `run`) and every job of the sequences
        /// being run (to their end: do not drain an endless one), then stop.
        case drain
        /// Complete every job that has not started with `PoolError.cancelled(nil)`; running jobs
        /// finish. Sequences being run are left: their `run(_:completion:)` throws `.stopped`.
        case cancelPending
        /// As `cancelPending`, and stop running jobs too (they complete with `.cancelled(error)`).
        case cancelAll
    }

    let core: PoolCore
    private let threads: [WorkerThread]
    /// Held while joining the threads, so a second `stop` waits for the first. A pthread mutex
    /// rather than `Mutex`, which Thread Sanitizer cannot see through.
    private let joinLock = PoolLock()
    private let joined = JoinFlag()

    /// The number of workers, which is the number of vCPUs (ids `0..<workerCount`).
    public var workerCount: Int { core.workerCount }
    /// The most jobs the backlog holds.
    public var backlogCapacity: Int { core.capacity }
    /// Jobs accepted and waiting in the backlog (or for room in it); jobs a worker took from
    /// the backlog count as started.
    public var pendingCount: Int { core.pendingCount }

    /// Starts `workers` worker threads (vCPUs `0..<workers`) with a backlog of `backlog` jobs.
    ///
    /// Give the `vm` whose programs the pool runs when its emulator has a fixed number of vCPUs
    /// (`LinuxEmulator`'s `cpuCount`): the pool then defaults to that many workers and refuses
    /// more, since a worker runs its jobs as the vCPU of its index and the emulator refuses
    /// processes outside its CPUs. Without `vm` the default is the host's CPUs (`HostCPUs.count`),
    /// which is also `LinuxConfiguration`'s default, so default pools fit default emulators.
    ///
    /// - Throws: `PoolError.invalidConfiguration` for a worker count outside 1...4096, more
    ///   workers than `vm`'s emulator has CPUs, a backlog outside 1...16,777,216, or when the
    ///   system refuses to start a thread.
    public init(workers requested: Int? = nil, backlog: Int = 1024, vm: VM? = nil) throws(PoolError) {
        let cpus = vm?.cpuCount
        let workers = requested ?? cpus ?? HostCPUs.count
        guard (1...4096).contains(workers) else {
            throw .invalidConfiguration("the worker count must be from 1 to 4096, not \(workers)")
        }
        if let cpus, workers > cpus {
            throw .invalidConfiguration(
                "\(workers) workers run jobs as vCPUs 0...\(workers - 1), but the VM's emulator has \(cpus) CPU\(cpus == 1 ? "" : "s") (vCPUs 0...\(cpus - 1)); use at most \(cpus) workers, or give the emulator \(workers) CPUs (LinuxConfiguration(cpuCount: \(workers)))"
            )
        }
        guard (1...(1 << 24)).contains(backlog) else {
            throw .invalidConfiguration("the backlog must hold from 1 to 16777216 jobs, not \(backlog)")
        }
        let core = PoolCore(workerCount: workers, capacity: backlog)
        var threads: [WorkerThread] = []
        for vCPU in 0..<workers {
            guard let thread = WorkerThread.start({ core.workerLoop(vCPU: vCPU) }) else {
                break
            }
            threads.append(thread)
        }
        let watchdog =
            threads.count == workers
            ? WorkerThread.start({ core.watchdogLoop() }) : nil
        guard let watchdog else {
            let started = threads.count
            core.beginStop(.cancelAll)
            for thread in threads { thread.join() }
            throw .invalidConfiguration("could not start worker threads (\(started) of \(workers) started)")
        }
        threads.append(watchdog)
        self.core = core
        self.threads = threads
    }

    /// Stops a pool that was not stopped with `.cancelAll`: pending jobs complete as cancelled
    /// and running ones are stopped, so dropping a pool never waits for a runaway program.
    deinit { stop(.cancelAll) }

    // MARK: Submitting

    /// Submits `job`, waiting while the backlog is full.
    ///
    /// `completion` is called exactly once, on a worker thread (or on the thread that cancels
    /// the job or stops the pool, for a job that never started); keep it short, the worker runs
    /// nothing else meanwhile. It is not called when `submit` throws. Called from a completion
    /// handler, `submit` does not wait (the worker would wait for itself): a full backlog
    /// throws `PoolError.backlogFull`, as for `trySubmit`.
    /// - Throws: `PoolError.stopped` if the pool is stopped, also while waiting for room.
    @discardableResult
    public func submit(
        _ job: Job, completion: @escaping @Sendable (Result<JobResult, PoolError>) -> Void
    ) throws(PoolError) -> JobHandle {
        let handle = JobHandle(job: job, core: core, completion: .handler(completion))
        try core.submit(handle, blocking: !isWorkerThread)
        return handle
    }

    /// Whether the calling thread is one of the pool's own (a completion handler runs there).
    private var isWorkerThread: Bool { threads.contains(where: \.isCurrent) }

    /// Submits `jobs` in order, waiting while the backlog is full, and returns their handles.
    ///
    /// The jobs enter the backlog as many at a time as there is room for, so a stream of jobs
    /// (the packets of a capture) costs the pool one visit to its lock per backlog-full rather
    /// than one per job. `completion(index, result)` is called exactly once for every job, with
    /// the job's index in `jobs`, on a worker thread as for `submit`; jobs the pool did not take
    /// because it was stopped complete there and then with `PoolError.stopped` (and, called from
    /// a completion handler, which does not wait, those that found the backlog full with
    /// `.backlogFull`).
    @discardableResult
    public func submit(
        contentsOf jobs: [Job], completion: @escaping @Sendable (_ index: Int, Result<JobResult, PoolError>) -> Void
    ) -> [JobHandle] {
        let handles = jobs.indices.map {
            JobHandle(job: jobs[$0], core: core, completion: .batch(completion, index: $0))
        }
        let (accepted, refusal) = core.submit(contentsOf: handles, blocking: !isWorkerThread)
        if let refusal {
            for handle in handles[accepted...] { core.refuse(handle, refusal) }
        }
        return handles
    }

    /// Runs every job of `jobs` and returns when all have completed.
    ///
    /// The workers take the jobs from the sequence themselves, several at a time, whenever
    /// the backlog is empty: no thread hands them over, so with a core per worker every core
    /// runs jobs (a submitting thread takes its share of a core from the workers). A lazy
    /// sequence (`packets.lazy.map { Job(program: program, memory: $0) }`) even builds each job
    /// on the worker that runs it. The sequence is called by one worker at a time.
    ///
    /// `completion(index, result)` is called exactly once for every job taken from the
    /// sequence, with its position in it, on the worker that ran it.
    /// - Throws: `PoolError.stopped` if the pool is stopped, or stops with `cancelPending` or
    ///   `cancelAll` before the sequence ended (jobs not yet taken are never made);
    ///   `.calledFromWorker` from a completion handler (it would wait for its own worker).
    @inlinable
    public func run<S: Sequence<Job>>(
        _ jobs: sending S, completion: @escaping @Sendable (_ index: Int, Result<JobResult, PoolError>) -> Void
    ) throws(PoolError) where S.Iterator: SendableMetatype {
        // Inlinable, and the iterator wrapped in a closure, so that it is specialised in the
        // caller's module (an `AnyIterator` would step through unspecialised generic code).
        var iterator = jobs.makeIterator()
        try run(next: { iterator.next() }, completion: completion)
    }

    @usableFromInline
    func run(
        next: sending @escaping () -> Job?, completion: @escaping @Sendable (Int, Result<JobResult, PoolError>) -> Void
    ) throws(PoolError) {
        guard !isWorkerThread else { throw .calledFromWorker }
        let stream = JobStream(next: next, completion: completion)
        try core.start(stream)
        guard stream.waitUntilDone() else { throw .stopped }
    }

    /// Submits `job` if the backlog has room, without waiting.
    ///
    /// `completion` is called as for `submit`.
    /// - Throws: `PoolError.backlogFull` when the backlog is full, `.stopped` when stopped.
    @discardableResult
    public func trySubmit(
        _ job: Job, completion: @escaping @Sendable (Result<JobResult, PoolError>) -> Void
    ) throws(PoolError) -> JobHandle {
        let handle = JobHandle(job: job, core: core, completion: .handler(completion))
        try core.submit(handle, blocking: false)
        return handle
    }

    /// Runs `job` and returns its result. While the backlog is full the call suspends (no thread
    /// waits). Cancelling the task cancels the job: a waiting job never runs, a running one is
    /// stopped.
    /// - Throws: the `PoolError` the job failed with, or `.stopped`.
    public func run(_ job: Job) async throws(PoolError) -> JobResult {
        let handle = JobHandle(job: job, core: core, completion: .none)
        let core = self.core
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<JobResult, PoolError>, Never>) in
                if let refusal = core.submitOrPark(handle, completion: { continuation.resume(returning: $0) }) {
                    continuation.resume(returning: .failure(refusal))
                }
            }
        } onCancel: {
            handle.cancel()
        }
        return try result.get()
    }

    // MARK: Stopping

    /// Stops the pool and waits for its threads to end. Submitting afterwards throws
    /// `PoolError.stopped`, and so does a `submit` that was waiting for room. Calling `stop`
    /// again waits for the first call to finish; called from a completion handler (a worker
    /// thread) it does not wait.
    public func stop(_ mode: StopMode = .drain) {
        core.beginStop(mode)
        joinLock.withLock {
            guard !joined.isSet else { return }
            joined.isSet = true
            if threads.contains(where: \.isCurrent) {
                for thread in threads { thread.detach() }
            } else {
                for thread in threads { thread.join() }
            }
        }
    }
}

/// Whether a pool's threads were joined (or detached).
private final class JoinFlag: @unchecked Sendable {
    // @unchecked: `isSet` is read and written only with the pool's `joinLock` held.
    var isSet = false
}
