import Foundation
import MimicCore
import MimicPool
import Synchronization
import Testing

// Serialized: several tests block their thread on purpose (waiting for a worker, a blocked
// submit), which would starve the concurrently running async tests of cooperative threads.
@Suite("ProcessPool", .serialized)
struct ProcessPoolTests {
    // MARK: Per-CPU guarantee

    @Test("two jobs never share a vCPU: non-atomic per-CPU increments lose no count", arguments: [2, 3])
    func perCPUCountersLoseNothing(workers: Int) throws {
        let fixture = try PerCPUFixture(vCPUs: workers)
        let program = try fixture.load(PerCPUFixture.incrementSource)
        let pool = try ProcessPool(workers: workers, backlog: 64)
        let jobs = 20_000
        let perVCPU = PerVCPUTally(vCPUs: workers)
        let failures = Atomic<Int>(0)
        let mismatches = Atomic<Int>(0)
        for _ in 0..<jobs {
            try pool.submit(Job(program: program)) { result in
                switch result {
                case .success(let value):
                    // The program reports the vCPU its helpers saw; it must be the worker's.
                    if value.r0 != UInt64(value.vCPU) { mismatches.add(1, ordering: .relaxed) }
                    perVCPU.increment(value.vCPU)
                case .failure:
                    failures.add(1, ordering: .relaxed)
                }
            }
        }
        pool.stop(.drain)

        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(mismatches.load(ordering: .relaxed) == 0)
        let counts = perVCPU.values
        let slots = (0..<workers).map { fixture.counter($0) }
        #expect(slots.reduce(0, +) == UInt64(jobs))
        #expect(slots == counts.map { UInt64($0) })
        #expect(fixture.emulator.live.load(ordering: .relaxed) == 0)
        #expect(fixture.emulator.prepared.load(ordering: .relaxed) == jobs)
    }

    @Test("each worker runs its jobs as its own vCPU, 0..<n")
    func vCPUIdsAreWorkerIndexes() async throws {
        let fixture = try PerCPUFixture(vCPUs: 4)
        let program = try fixture.load("call 2\nexit")
        let pool = try ProcessPool(workers: 4, backlog: 16)
        defer { pool.stop() }
        var seen = Set<Int>()
        for _ in 0..<200 {
            let result = try await pool.run(Job(program: program))
            #expect(result.r0 == UInt64(result.vCPU))
            #expect(result.instructionsExecuted == 2)
            seen.insert(result.vCPU)
        }
        #expect(seen.isSubset(of: Set(0..<4)))
        #expect(pool.workerCount == 4)
    }

    // MARK: Deadlines and cancellation

    @Test("a time limit stops a runaway program quickly")
    func timeLimitStopsRunaway() async throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let program = try fixture.load(PerCPUFixture.runawaySource)
        let pool = try ProcessPool(workers: 1, backlog: 4)
        defer { pool.stop() }
        let start = ContinuousClock.now
        let error = await #expect(throws: PoolError.self) {
            try await pool.run(Job(program: program, options: JobOptions(timeLimit: .milliseconds(50))))
        }
        let elapsed = ContinuousClock.now - start
        guard case .deadlineExceeded(let stop?) = error else {
            Issue.record("expected deadlineExceeded with the program's error, got \(String(describing: error))")
            return
        }
        #expect(stop.kind == .cancelled)
        #expect(elapsed >= .milliseconds(50))
        #expect(elapsed < .seconds(5))
    }

    @Test("a deadline stops a runaway program; a job queued past its deadline never runs")
    func deadlineStopsRunawayAndExpiresQueuedJobs() throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let runaway = try fixture.load(PerCPUFixture.runawaySource)
        let quick = try fixture.load(PerCPUFixture.quickSource)
        let pool = try ProcessPool(workers: 1, backlog: 4)
        defer { pool.stop() }
        let outcomes = Outcomes()
        let deadline = ContinuousClock.now + .milliseconds(100)
        try pool.submit(
            Job(program: runaway, options: JobOptions(deadline: deadline)), completion: outcomes.completion(0))
        // Queued behind the runaway with the same deadline: it is past when the worker gets to it.
        try pool.submit(
            Job(program: quick, options: JobOptions(deadline: deadline)), completion: outcomes.completion(1))
        #expect(outcomes.wait(for: 2))
        guard case .deadlineExceeded(let stop?)? = outcomes[0]?.error else {
            Issue.record("runaway: \(String(describing: outcomes[0]))")
            return
        }
        #expect(stop.kind == .cancelled)
        #expect(outcomes[1]?.error == .deadlineExceeded(nil))
        #expect(fixture.emulator.prepared.load(ordering: .relaxed) == 1)
    }

    @Test("an instruction limit stops a runaway program")
    func instructionLimitStopsRunaway() async throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let program = try fixture.load(PerCPUFixture.runawaySource)
        let pool = try ProcessPool(workers: 1, backlog: 4)
        defer { pool.stop() }
        do {
            _ = try await pool.run(Job(program: program, options: JobOptions(instructionLimit: 10_000)))
            Issue.record("a runaway program finished")
        } catch {
            guard case .execution(let stop) = error, stop.code == .budgetExhausted else {
                Issue.record("expected budgetExhausted, got \(error)")
                return
            }
        }
    }

    @Test("cancelling a queued job completes it without running; cancelling a running one stops it")
    func cancelQueuedAndRunning() throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let runaway = try fixture.load(PerCPUFixture.runawaySource)
        let quick = try fixture.load(PerCPUFixture.quickSource)
        let pool = try ProcessPool(workers: 1, backlog: 4)
        defer { pool.stop() }
        let outcomes = Outcomes()
        let running = try pool.submit(Job(program: runaway), completion: outcomes.completion(0))
        #expect(eventually { pool.pendingCount == 0 && fixture.emulator.prepared.load(ordering: .relaxed) == 1 })
        let queued = try pool.submit(Job(program: quick), completion: outcomes.completion(1))
        #expect(pool.pendingCount == 1)

        queued.cancel()
        #expect(outcomes.wait(for: 1, seconds: 5))
        #expect(outcomes[1]?.error == .cancelled(nil))
        #expect(queued.isFinished)
        #expect(pool.pendingCount == 0)
        #expect(!running.isFinished)

        running.cancel()
        #expect(outcomes.wait(for: 1, seconds: 10))
        guard case .cancelled(let stop?)? = outcomes[0]?.error else {
            Issue.record("running job: \(String(describing: outcomes[0]))")
            return
        }
        #expect(stop.kind == .cancelled)
        #expect(fixture.emulator.prepared.load(ordering: .relaxed) == 1) // the queued job never ran
        queued.cancel() // cancelling a finished job does nothing
        #expect(outcomes.all.count == 2)
    }

    @Test("cancelling the task of an async run stops the job")
    func taskCancellationStopsJob() async throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let program = try fixture.load(PerCPUFixture.runawaySource)
        let pool = try ProcessPool(workers: 1, backlog: 4)
        defer { pool.stop() }
        let task = Task { try await pool.run(Job(program: program)) }
        #expect(await eventually { fixture.emulator.prepared.load(ordering: .relaxed) == 1 })
        task.cancel()
        let result = await task.result
        guard case .failure(let error) = result, case .cancelled(let stop?)? = error as? PoolError else {
            Issue.record("expected cancelled, got \(result)")
            return
        }
        #expect(stop.kind == .cancelled)
    }

    // MARK: Back-pressure

    @Test("a full backlog reports itself to trySubmit; an async run waits for room")
    func fullBacklog() async throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let runaway = try fixture.load(PerCPUFixture.runawaySource)
        let quick = try fixture.load(PerCPUFixture.quickSource)
        let pool = try ProcessPool(workers: 1, backlog: 2)
        defer { pool.stop() }
        let outcomes = Outcomes()
        let blocker = try pool.submit(Job(program: runaway), completion: outcomes.completion(0))
        #expect(await eventually { pool.pendingCount == 0 })
        try pool.trySubmit(Job(program: quick), completion: outcomes.completion(1))
        try pool.trySubmit(Job(program: quick), completion: outcomes.completion(2))
        #expect(throws: PoolError.backlogFull(capacity: 2)) {
            try pool.trySubmit(Job(program: quick), completion: outcomes.completion(3))
        }
        #expect(pool.backlogCapacity == 2)

        // An async run parks until there is room, then runs.
        let parked = Task { try await pool.run(Job(program: quick)) }
        #expect(await eventually { pool.pendingCount == 3 })
        blocker.cancel()
        let result = try await parked.value
        #expect(result.r0 == 7)
        #expect(outcomes.wait(for: 3))
        #expect(outcomes[1]?.value?.r0 == 7)
        #expect(outcomes[2]?.value?.r0 == 7)
        #expect(outcomes[3] == nil) // refused jobs never complete
    }

    @Test("a blocking submit waits for room and fails when the pool stops")
    func blockedSubmitFailsOnStop() throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let runaway = try fixture.load(PerCPUFixture.runawaySource)
        let pool = try ProcessPool(workers: 1, backlog: 1)
        let outcomes = Outcomes()
        try pool.submit(Job(program: runaway), completion: outcomes.completion(0))
        #expect(eventually { pool.pendingCount == 0 })
        try pool.submit(Job(program: runaway), completion: outcomes.completion(1))
        let blockedResult = Locked<PoolError?>(nil)
        let returned = DispatchSemaphore(value: 0)
        let submitter = Thread {
            do {
                try pool.submit(Job(program: runaway), completion: outcomes.completion(2))
            } catch {
                blockedResult.withLock { $0 = error as? PoolError }
            }
            returned.signal()
        }
        submitter.start()
        #expect(returned.wait(timeout: .now() + 0.2) == .timedOut) // it waits for room
        pool.stop(.cancelAll)
        #expect(returned.wait(timeout: .now() + 10) == .success)
        #expect(blockedResult.withLock { $0 } == .stopped)
        #expect(outcomes.wait(for: 2))
        #expect(outcomes[1]?.error == .cancelled(nil))
        guard case .cancelled(_?)? = outcomes[0]?.error else {
            Issue.record("running job: \(String(describing: outcomes[0]))")
            return
        }
    }

    // MARK: Stopping

    @Test("stop(.drain) runs every pending job")
    func stopDrains() throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let slow = try fixture.load(PerCPUFixture.runawaySource)
        let quick = try fixture.load(PerCPUFixture.quickSource)
        let pool = try ProcessPool(workers: 1, backlog: 100)
        let outcomes = Outcomes()
        try pool.submit(
            Job(program: slow, options: JobOptions(timeLimit: .milliseconds(100))), completion: outcomes.completion(0))
        #expect(eventually { pool.pendingCount == 0 }) // the worker took the slow job
        for key in 1...50 { try pool.submit(Job(program: quick), completion: outcomes.completion(key)) }
        #expect(pool.pendingCount == 50)
        pool.stop(.drain)
        let results = outcomes.all
        #expect(results.count == 51)
        #expect((1...50).allSatisfy { results[$0]?.value?.r0 == 7 })
        #expect(fixture.emulator.prepared.load(ordering: .relaxed) == 51)
        #expect(fixture.emulator.live.load(ordering: .relaxed) == 0)
    }

    @Test("stop(.cancelPending) cancels pending jobs and lets the running one finish")
    func stopCancelsPending() throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let slow = try fixture.load(PerCPUFixture.runawaySource)
        let quick = try fixture.load(PerCPUFixture.quickSource)
        let pool = try ProcessPool(workers: 1, backlog: 100)
        let outcomes = Outcomes()
        try pool.submit(
            Job(program: slow, options: JobOptions(timeLimit: .milliseconds(100))), completion: outcomes.completion(0))
        #expect(eventually { pool.pendingCount == 0 })
        for key in 1...50 { try pool.submit(Job(program: quick), completion: outcomes.completion(key)) }
        pool.stop(.cancelPending)
        let results = outcomes.all
        #expect(results.count == 51)
        #expect((1...50).allSatisfy { results[$0]?.error == .cancelled(nil) })
        guard case .deadlineExceeded(_?)? = results[0]?.error else {
            Issue.record("running job: \(String(describing: results[0]))")
            return
        }
        #expect(fixture.emulator.prepared.load(ordering: .relaxed) == 1)
    }

    @Test("submitting after stop fails, with every API")
    func submitAfterStop() async throws {
        let fixture = try PerCPUFixture(vCPUs: 1)
        let quick = try fixture.load(PerCPUFixture.quickSource)
        let pool = try ProcessPool(workers: 2, backlog: 4)
        pool.stop()
        pool.stop(.cancelAll) // a second stop is harmless
        let outcomes = Outcomes()
        #expect(throws: PoolError.stopped) { try pool.submit(Job(program: quick), completion: outcomes.completion(0)) }
        #expect(throws: PoolError.stopped) {
            try pool.trySubmit(Job(program: quick), completion: outcomes.completion(1))
        }
        await #expect(throws: PoolError.stopped) { try await pool.run(Job(program: quick)) }
        #expect(outcomes.all.isEmpty)
    }

    @Test("invalid configurations are refused")
    func invalidConfiguration() {
        #expect(throws: PoolError.self) { try ProcessPool(workers: 0) }
        #expect(throws: PoolError.self) { try ProcessPool(workers: 2, backlog: 0) }
    }

    // MARK: Results and failures

    @Test("faults, setup failures and results come back as they are")
    func resultsAndFailures() async throws {
        let fixture = try PerCPUFixture(vCPUs: 2)
        let pool = try ProcessPool(workers: 2, backlog: 8)
        defer { pool.stop() }
        let sum = try fixture.load(
            """
            ldxb %r0, [%r1]
            ldxb %r3, [%r1+1]
            add %r0, %r3
            exit
            """)
        let result = try await pool.run(Job(program: sum, memory: [40, 2]))
        #expect(result.r0 == 42)
        #expect(result.instructionsExecuted == 4)

        await #expect(throws: PoolError.self) { try await pool.run(Job(program: sum, memory: [1])) }

        struct NoContext: Error {}
        do {
            _ = try await pool.run(Job(program: sum) { throw NoContext() })
            Issue.record("the job ran without its context")
        } catch {
            guard case .setupFailed = error else {
                Issue.record("got \(error)")
                return
            }
        }
    }

    // MARK: Memory

    @Test("processes are bounded by the workers and released at stop")
    func processesAreReleased() async throws {
        let fixture = try PerCPUFixture(vCPUs: 2)
        let program = try fixture.load(PerCPUFixture.incrementSource)
        weak var weakPool: ProcessPool?
        do {
            let pool = try ProcessPool(workers: 2, backlog: 32)
            weakPool = pool
            for _ in 0..<1000 { _ = try await pool.run(Job(program: program, memory: [1, 2, 3])) }
            // Each worker keeps at most one process (reset and reused for the next job of the
            // same program); memory does not grow with the number of jobs.
            #expect(fixture.emulator.live.load(ordering: .relaxed) <= 2)
            let outcomes = Outcomes()
            for key in 0..<1000 { try pool.submit(Job(program: program), completion: outcomes.completion(key)) }
            pool.stop(.drain)
        }
        #expect(weakPool == nil)
        #expect(fixture.emulator.prepared.load(ordering: .relaxed) == 2000)
        #expect(fixture.emulator.live.load(ordering: .relaxed) == 0)
    }
}
