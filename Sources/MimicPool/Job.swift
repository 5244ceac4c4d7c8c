import MimicCore
import Synchronization

/// One run of a program on a pool: the program, how to build its input, and its limits.
///
/// The context is built by `makeContext` on the worker thread that runs the job, because a
/// context attaches to a `Process`, which never leaves its thread. A job is immutable and may be
/// submitted any number of times; it is a class so that submitting it retains one object, not
/// its VM, program and context factory each (those reference counts are shared with the
/// workers, and every atomic on a shared count moves a cache line between cores).
public final class Job: Sendable {
    /// The VM the program was loaded into (kept alive while the job is pending).
    public let vm: VM
    /// The program to run.
    public let program: Program
    /// Builds the program's context (R1–R5 and the memory they point to); nil for none.
    public let makeContext: @Sendable () throws -> (any Context)?
    /// Limits of this run.
    public let options: JobOptions

    /// A job running `program` with the context `makeContext` builds on the worker.
    public init(
        program: Program, options: JobOptions = JobOptions(),
        context makeContext: @escaping @Sendable () throws -> (any Context)? = { nil }
    ) {
        self.vm = program.vm
        self.program = program
        self.makeContext = makeContext
        self.options = options
    }

    /// A job running `program` over a copy of `bytes` (`MemoryContext`: R1 = address, R2 = length).
    public convenience init(program: Program, memory bytes: [UInt8], options: JobOptions = JobOptions()) {
        self.init(program: program, options: options) { MemoryContext(bytes) }
    }
}

/// Limits of one job. A job past a limit stops with an error instead of running on.
public struct JobOptions: Sendable, Equatable {
    /// The most instructions the program may execute (`ExecutionError` `budgetExhausted`).
    public var instructionLimit: UInt64
    /// The time limit in nanoseconds, `.max` for none. Kept as an integer, like the deadline, so
    /// that copying a job costs no calls into the standard library's value witnesses.
    var timeLimitNanoseconds: UInt64 = .max
    /// The deadline on the monotonic clock `PoolCondition` waits on (ns), `.max` for none.
    var deadlineNanoseconds: UInt64 = .max

    public init(instructionLimit: UInt64 = .max, timeLimit: Duration? = nil, deadline: ContinuousClock.Instant? = nil) {
        self.instructionLimit = instructionLimit
        self.timeLimit = timeLimit
        self.deadline = deadline
    }

    /// The longest the program may run, counted from when a worker starts it. When it passes,
    /// the job's cancellation flag is set and the job fails with `PoolError.deadlineExceeded`.
    public var timeLimit: Duration? {
        get { timeLimitNanoseconds == .max ? nil : .nanoseconds(Int64(clamping: timeLimitNanoseconds)) }
        set { timeLimitNanoseconds = newValue.map { min(nanoseconds($0), .max - 1) } ?? .max }
    }

    /// A point in time after which the job should not run or go on running: a job still queued
    /// then fails with `deadlineExceeded(nil)` without running; a running one is stopped.
    public var deadline: ContinuousClock.Instant? {
        get {
            guard deadlineNanoseconds != .max else { return nil }
            let now = monotonicNanoseconds()
            let offset =
                deadlineNanoseconds >= now
                ? Duration.nanoseconds(Int64(clamping: deadlineNanoseconds - now))
                : .zero - .nanoseconds(Int64(clamping: now - deadlineNanoseconds))
            return ContinuousClock.now.advanced(by: offset)
        }
        set {
            guard let newValue else {
                deadlineNanoseconds = .max
                return
            }
            let remaining = ContinuousClock.now.duration(to: newValue)
            let (end, overflow) = monotonicNanoseconds().addingReportingOverflow(nanoseconds(remaining))
            deadlineNanoseconds = overflow ? .max - 1 : min(end, .max - 1)
        }
    }
}

/// What a job computed.
public struct JobResult: Sendable, Equatable {
    /// R0 when the program exited.
    public var r0: UInt64
    /// Instructions the program executed.
    public var instructionsExecuted: UInt64
    /// The virtual CPU (worker index) the job ran on.
    public var vCPU: Int

    public init(r0: UInt64, instructionsExecuted: UInt64, vCPU: Int) {
        self.r0 = r0
        self.instructionsExecuted = instructionsExecuted
        self.vCPU = vCPU
    }
}

/// Why a pool refused a job, or why a job did not produce a result.
public enum PoolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `trySubmit` found the backlog full (it holds `capacity` jobs).
    case backlogFull(capacity: Int)
    /// The pool is stopped (or stopping) and takes no more jobs; a blocked `submit` also fails so.
    case stopped
    /// The job was cancelled. Before it started (explicit `cancel`, task cancellation or
    /// `stop(.cancelPending)`): nil, it never ran. While running: the error it stopped with.
    case cancelled(ExecutionError?)
    /// The job's time limit or deadline passed: nil if it passed before the job started (it never
    /// ran), otherwise the error the stopped program reported (kind `cancelled`).
    case deadlineExceeded(ExecutionError?)
    /// Building the context or preparing the process failed; the program did not run.
    case setupFailed(String)
    /// The program stopped abnormally (memory fault, instruction limit, helper failure, ...).
    case execution(ExecutionError)
    /// The pool could not be created as configured.
    case invalidConfiguration(String)
    /// `run(_:completion:)` was called on one of the pool's own threads (in a completion
    /// handler): it would wait for jobs that only that thread could run.
    case calledFromWorker

    public var description: String {
        switch self {
        case .backlogFull(let capacity): "the pool's backlog is full (\(capacity) jobs)"
        case .stopped: "the pool is stopped"
        case .cancelled(nil): "the job was cancelled before it ran"
        case .cancelled(let error?): "the job was cancelled while running: \(error)"
        case .deadlineExceeded(nil): "the job's deadline passed before it ran"
        case .deadlineExceeded(let error?): "the job's time limit passed: \(error)"
        case .setupFailed(let message): "the job could not be set up: \(message)"
        case .execution(let error): error.description
        case .invalidConfiguration(let message): "invalid pool configuration: \(message)"
        case .calledFromWorker:
            "run(_:completion:) was called on one of the pool's workers (in a completion handler), which would wait for itself"
        }
    }
}

/// A submitted job: cancel it, or ask whether it finished.
///
/// The completion handler given at submission is called exactly once, whatever happens.
public final class JobHandle: @unchecked Sendable {
    // @unchecked: `job`, `flag`, `deadline` and `core` are immutable (the flag is atomic);
    // `state`, `completion` and `timedOut` are read and written only under the pool's lock,
    // except that the worker that took the job reads `completion` without it: once a job is
    // taken (`.running`), nothing writes its completion again.
    let job: Job
    let flag = CancellationFlag()
    /// `job.options.deadline` on the monotonic clock (ns), `.max` for none.
    let deadline: UInt64
    /// The pool; nil for a job taken from a sequence (`ProcessPool.run(_:completion:)`), whose
    /// handle never leaves the pool: its workers share no reference count per job.
    let core: PoolCore?
    /// Set by the watchdog when it sets `flag` because the time limit or deadline passed.
    var timedOut = false
    var state: State = .created
    var completion: Completion

    enum State {
        /// Not yet handed to the pool.
        case created
        /// Accepted by `run` (async) and waiting for room in the backlog.
        case parked
        /// In the backlog.
        case queued
        /// Taken by a worker: running, or next in the worker's batch.
        case running
        case finished
    }

    init(job: Job, core: PoolCore?, completion: Completion) {
        self.job = job
        self.core = core
        self.completion = completion
        deadline = job.options.deadlineNanoseconds
    }

    /// Cancels the job: a job still waiting completes at once with `PoolError.cancelled(nil)`
    /// without running; a running one is stopped at its next check (within 4,096 instructions)
    /// and completes with `.cancelled(error)`. Does nothing once the job has finished.
    public func cancel() { core?.cancel(self) }

    /// Whether the job has completed (its completion handler was called or is being called).
    public var isFinished: Bool {
        completed.load(ordering: .acquiring) || core?.lock.withLock({ state == .finished }) == true
    }

    /// Set by the worker once the completion handler returned, before `state` (which the worker
    /// sets at its next visit to the lock) says `.finished`.
    private let completed = Atomic<Bool>(false)

    func markCompleted() { completed.store(true, ordering: .releasing) }
}

/// Whom a job's result goes to: a handler of its own (`submit`), the handler of the batch it
/// was submitted in with its index there (`submit(contentsOf:)`), the sequence it was taken
/// from (`run(_:completion:)`), or nobody (done, or `run(_:)` before it is accepted).
enum Completion: Sendable {
    case handler(@Sendable (Result<JobResult, PoolError>) -> Void)
    case batch(@Sendable (Int, Result<JobResult, PoolError>) -> Void, index: Int)
    /// Taken from a sequence: the worker reports to the `JobStream` it took the job from, so
    /// that the job holds no reference the workers share.
    case streamed(index: Int)
    case none

    func callAsFunction(_ result: Result<JobResult, PoolError>) {
        switch self {
        case .handler(let handler): handler(result)
        case .batch(let handler, let index): handler(index, result)
        case .streamed, .none: break
        }
    }
}
