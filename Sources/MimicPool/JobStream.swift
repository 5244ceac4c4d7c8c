/// A sequence of jobs the workers take from themselves (`ProcessPool.run(_:completion:)`).
///
/// Workers call the sequence's iterator one at a time, under `lock`, several jobs per call to
/// `take`; the thread that called `run` waits in `waitUntilDone` until every job taken has
/// completed and the sequence has ended (or the pool stopped taking from it).
final class JobStream: @unchecked Sendable {
    // @unchecked: `next`, `taken`, `completed`, `ended` and `stopped` are used only with `lock`
    // held; `next` was handed over (`sending`) and only workers call it.
    private let lock = PoolLock()
    private let done = PoolCondition()
    /// The sequence's iterator's `next()`.
    private let next: () -> Job?
    /// Jobs taken from the sequence so far; the next one gets this index.
    private var taken = 0
    private var completed = 0
    /// The sequence returned nil.
    private var ended = false
    /// The pool stopped taking jobs from the sequence before it ended.
    private var stopped = false
    let completion: @Sendable (Int, Result<JobResult, PoolError>) -> Void

    init(next: @escaping () -> Job?, completion: @escaping @Sendable (Int, Result<JobResult, PoolError>) -> Void) {
        self.next = next
        self.completion = completion
    }

    /// Takes up to `limit` jobs with their indexes; none once the sequence ended or was stopped.
    func take(upTo limit: Int) -> [(index: Int, job: Job)] {
        lock.withLock {
            var jobs: [(index: Int, job: Job)] = []
            guard !ended && !stopped else { return jobs }
            jobs.reserveCapacity(limit)
            while jobs.count < limit {
                guard let job = next() else {
                    ended = true
                    break
                }
                jobs.append((taken, job))
                taken += 1
            }
            if ended && completed == taken { done.broadcast() }
            return jobs
        }
    }

    /// Counts `count` taken jobs as completed.
    func finished(_ count: Int) {
        lock.withLock {
            completed += count
            if (ended || stopped) && completed == taken { done.broadcast() }
        }
    }

    /// Takes no more jobs from the sequence (the pool is stopping).
    func stop() {
        lock.withLock {
            guard !ended else { return }
            stopped = true
            if completed == taken { done.broadcast() }
        }
    }

    /// Waits until the sequence ended or was stopped and every job taken has completed;
    /// returns whether it ended (false: stopped early).
    func waitUntilDone() -> Bool {
        lock.withLock {
            while !((ended || stopped) && completed == taken) { done.wait(lock) }
            return ended
        }
    }
}
