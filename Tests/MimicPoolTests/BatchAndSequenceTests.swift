import Foundation
import MimicCore
import MimicPool
import Synchronization
import Testing

/// `submit(contentsOf:)`, `run(_:completion:)` (jobs taken from a sequence) and workers taking
/// several jobs from the backlog at once.
@Suite("ProcessPool batches and sequences", .serialized)
struct BatchAndSequenceTests {
    /// Records, per index, how often a completion arrived and what it said.
    final class IndexedOutcomes: Sendable {
        private let results = Locked<[Int: [Result<JobResult, PoolError>]]>([:])

        func record(_ index: Int, _ result: Result<JobResult, PoolError>) {
            results.withLock { $0[index, default: []].append(result) }
        }

        var all: [Int: [Result<JobResult, PoolError>]] { results.withLock { $0 } }
    }

    @Test("a sequence's jobs keep the per-CPU guarantee and each completes once, with its index", arguments: [1, 2, 3])
    func sequencePerCPU(workers: Int) throws {
        let fixture = try PerCPUFixture(vCPUs: workers)
        let program = try fixture.load(PerCPUFixture.incrementSource)
        let pool = try ProcessPool(workers: workers, backlog: 16)
        defer { pool.stop() }
        let jobs = 10_000
        let made = Atomic<Int>(0)
        let outcomes = IndexedOutcomes()
        // Lazy: each job is made by the worker that takes it.
        try pool.run(
            (0..<jobs).lazy.map { _ in
                made.add(1, ordering: .relaxed)
                return Job(program: program)
            }
        ) { index, result in
            outcomes.record(index, result)
        }
        let all = outcomes.all
        #expect(made.load(ordering: .relaxed) == jobs)
        #expect(all.count == jobs && all.keys.min() == 0 && all.keys.max() == jobs - 1)
        #expect(all.values.allSatisfy { $0.count == 1 }, "every job completes exactly once")
        let values = all.values.compactMap { $0.first?.value }
        #expect(values.count == jobs)
        #expect(values.allSatisfy { $0.r0 == UInt64($0.vCPU) })
        let slots = (0..<workers).map { fixture.counter($0) }
        #expect(slots.reduce(0, +) == UInt64(jobs), "non-atomic per-CPU increments lost no count")
        #expect(fixture.emulator.live.load(ordering: .relaxed) <= workers)
    }

    @Test("an empty sequence returns at once; run after stop throws")
    func emptySequenceAndStoppedPool() throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let quick = try fixture.load(PerCPUFixture.quickSource)
        let pool = try ProcessPool(workers: 2, backlog: 4)
        let outcomes = IndexedOutcomes()
        try pool.run([Job]()) { outcomes.record($0, $1) }
        #expect(outcomes.all.isEmpty)
        pool.stop()
        #expect(throws: PoolError.stopped) { try pool.run([Job(program: quick)]) { outcomes.record($0, $1) } }
        #expect(outcomes.all.isEmpty)
    }

    @Test("stop(.cancelPending) ends a sequence: jobs taken complete, the rest are never made")
    func stopEndsSequence() throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let slow = try fixture.load(PerCPUFixture.runawaySource)
        let pool = try ProcessPool(workers: 1, backlog: 4)
        let outcomes = IndexedOutcomes()
        let made = Atomic<Int>(0)
        // Another thread stops the pool once two jobs have completed.
        let stopper = Thread {
            _ = eventually { outcomes.all.count >= 2 }
            pool.stop(.cancelPending)
        }
        stopper.start()
        // An endless sequence of jobs that each run until their 20 ms time limit.
        var thrown: PoolError?
        do {
            try pool.run(
                (0...).lazy.map { _ in
                    made.add(1, ordering: .relaxed)
                    return Job(program: slow, options: JobOptions(timeLimit: .milliseconds(20)))
                }
            ) { outcomes.record($0, $1) }
        } catch {
            thrown = error
        }
        #expect(thrown == .stopped)

        let all = outcomes.all
        #expect(all.count == made.load(ordering: .relaxed), "every job made completed")
        #expect(all.values.allSatisfy { $0.count == 1 })
        let ran = all.values.filter { if case .deadlineExceeded(_?)? = $0.first?.error { true } else { false } }.count
        let cancelled = all.values.filter { $0.first?.error == .cancelled(nil) }.count
        #expect(ran + cancelled == all.count, "\(all)")
        #expect(ran >= 2)
        #expect(fixture.emulator.prepared.load(ordering: .relaxed) == ran, "cancelled jobs never ran")
    }

    @Test("submit(contentsOf:) keeps the per-CPU guarantee and reports every index once")
    func batchSubmission() throws {
        let fixture = try PerCPUFixture(vCPUs: 2)
        let program = try fixture.load(PerCPUFixture.incrementSource)
        let pool = try ProcessPool(workers: 2, backlog: 64)
        let outcomes = IndexedOutcomes()
        var handles: [JobHandle] = []
        for _ in 0..<20 {
            // 500 jobs a call, more than the backlog holds: the call waits for room.
            handles += pool.submit(contentsOf: (0..<500).map { _ in Job(program: program) }) { outcomes.record($0, $1) }
        }
        pool.stop(.drain)
        #expect(handles.count == 10_000 && handles.allSatisfy { $0.isFinished })
        let all = outcomes.all
        #expect(all.count == 500 && all.values.allSatisfy { $0.count == 20 })
        #expect(all.values.joined().allSatisfy { $0.value.map { $0.r0 == UInt64($0.vCPU) } == true })
        #expect(fixture.counter(0) + fixture.counter(1) == 10_000)
    }

    @Test("submit(contentsOf:) on a stopped pool completes every job with .stopped")
    func batchOnStoppedPool() throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let quick = try fixture.load(PerCPUFixture.quickSource)
        let pool = try ProcessPool(workers: 1, backlog: 4)
        pool.stop()
        let outcomes = IndexedOutcomes()
        let handles = pool.submit(contentsOf: [Job(program: quick), Job(program: quick)]) { outcomes.record($0, $1) }
        #expect(handles.allSatisfy { $0.isFinished })
        #expect(outcomes.all.mapValues { $0.map(\.error) } == [0: [.stopped], 1: [.stopped]])
    }

    @Test("from a completion handler, submitting never waits and run(jobs) refuses")
    func completionHandlersDoNotWaitForThemselves() throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let quick = try fixture.load(PerCPUFixture.quickSource)
        let pool = try ProcessPool(workers: 1, backlog: 1)
        defer { pool.stop() }
        let errors = Locked<[PoolError?]>([])
        let done = DispatchSemaphore(value: 0)
        try pool.submit(Job(program: quick)) { _ in
            // On the only worker: the first fits, the second would wait for this very worker.
            func attempt(_ body: () throws(PoolError) -> Void) {
                do {
                    try body()
                    errors.withLock { $0.append(nil) }
                } catch { errors.withLock { $0.append(error) } }
            }
            attempt { () throws(PoolError) in _ = try pool.submit(Job(program: quick)) { _ in } }
            attempt { () throws(PoolError) in _ = try pool.submit(Job(program: quick)) { _ in } }
            attempt { () throws(PoolError) in try pool.run([Job(program: quick)]) { _, _ in } }
            pool.submit(contentsOf: [Job(program: quick)]) { _, result in
                errors.withLock { $0.append(result.error) }
            }
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 10) == .success, "a completion handler waited for its own worker")
        #expect(
            errors.withLock { $0 } == [nil, .backlogFull(capacity: 1), .calledFromWorker, .backlogFull(capacity: 1)])
    }

    @Test("a job a worker took but has not started is cancelled without running")
    func cancelTakenJob() throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let slow = try fixture.load(PerCPUFixture.runawaySource)
        let quick = try fixture.load(PerCPUFixture.quickSource)
        let pool = try ProcessPool(workers: 1, backlog: 64)
        defer { pool.stop() }
        let outcomes = IndexedOutcomes()
        // One call puts all 40 in the backlog at once; the idle worker then takes a share of
        // them (40 / 2 = 20, at most 16): the slow one first, the next ones behind it.
        let jobs =
            [Job(program: slow, options: JobOptions(timeLimit: .milliseconds(300)))]
            + (1..<40).map { _ in Job(program: quick) }
        let handles = pool.submit(contentsOf: jobs) { outcomes.record($0, $1) }
        #expect(eventually { fixture.emulator.prepared.load(ordering: .relaxed) == 1 })
        #expect(pool.pendingCount < 39, "the worker took more than the slow job")
        handles[1].cancel()
        #expect(eventually { outcomes.all.count == 40 })
        #expect(outcomes.all[1]?.first?.error == .cancelled(nil))
        #expect((2..<40).allSatisfy { outcomes.all[$0]?.first?.value?.r0 == 7 })
        #expect(fixture.emulator.prepared.load(ordering: .relaxed) == 39, "the cancelled job never ran")
    }
}
