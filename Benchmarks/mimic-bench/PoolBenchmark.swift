import Foundation
import MimicCore
import MimicPool
import Synchronization

/// `mimic-bench --pool`: jobs per second through `ProcessPool` for a short XDP-style program, on
/// 1 and 2 workers, against creating and running the same process directly on one thread.
struct PoolBenchmark {
    /// An XDP-style parse of a 64-byte Ethernet/IPv4/UDP packet: bounds checks, the IPv4 header
    /// checksum (a 10-step loop), ports and addresses, a flow hash, and a verdict (3 = XDP_TX for
    /// DNS, 2 = XDP_PASS, 1 = XDP_DROP). About 100 instructions per run.
    static let source = """
        mov %r6, %r1
        mov %r7, %r1
        add %r7, %r2
        mov %r3, %r6
        add %r3, 42
        jgt %r3, %r7, pass
        ldxh %r4, [%r6+12]
        jne %r4, 0x0008, pass
        ldxb %r4, [%r6+14]
        mov %r5, %r4
        rsh %r5, 4
        jne %r5, 4, drop
        and %r4, 0x0f
        lsh %r4, 2
        jlt %r4, 20, drop
        mov %r0, 0
        mov %r3, %r6
        add %r3, 14
        mov %r5, %r3
        add %r5, %r4
        jgt %r5, %r7, drop
        checksum:
        ldxh %r9, [%r3]
        add %r0, %r9
        add %r3, 2
        jlt %r3, %r5, checksum
        mov %r9, %r0
        rsh %r9, 16
        and %r0, 0xffff
        add %r0, %r9
        mov %r9, %r0
        rsh %r9, 16
        add %r0, %r9
        and %r0, 0xffff
        jne %r0, 0xffff, drop
        ldxb %r9, [%r6+23]
        jne %r9, 17, pass
        mov %r3, %r5
        add %r3, 8
        jgt %r3, %r7, drop
        ldxh %r8, [%r5+2]
        be16 %r8
        ldxh %r9, [%r5]
        be16 %r9
        ldxw %r3, [%r6+26]
        be32 %r3
        ldxw %r4, [%r6+30]
        be32 %r4
        mov %r0, %r3
        xor %r0, %r4
        lddw %r1, 0x9e3779b97f4a7c15
        mul %r0, %r1
        mov %r2, %r9
        lsh %r2, 16
        or %r2, %r8
        xor %r0, %r2
        mov %r2, %r0
        rsh %r2, 29
        xor %r0, %r2
        mul %r0, %r1
        stxdw [%r10-8], %r0
        ldxh %r2, [%r5+4]
        be16 %r2
        jlt %r2, 8, drop
        jeq %r8, 53, dns
        jeq %r9, 53, dns
        pass:
        mov %r0, 2
        exit
        dns:
        ldxdw %r0, [%r10-8]
        and %r0, 0xff
        jeq %r0, 0x100, drop
        mov %r0, 3
        exit
        drop:
        mov %r0, 1
        exit
        """

    /// A UDP packet to port 53 with a valid IPv4 header checksum.
    static let packet: [UInt8] = {
        var p = [UInt8](repeating: 0, count: 64)
        p[12] = 0x08
        p[13] = 0x00 // IPv4
        p[14] = 0x45 // version 4, IHL 5
        p[16] = 0
        p[17] = 50 // total length
        p[22] = 64
        p[23] = 17 // TTL, UDP
        p[26...29] = [10, 0, 0, 1]
        p[30...33] = [192, 168, 1, 2]
        p[34] = 0x30
        p[35] = 0x39 // source port 12345
        p[36] = 0x00
        p[37] = 0x35 // destination port 53
        p[38] = 0
        p[39] = 30 // UDP length
        var sum: UInt32 = 0
        for i in stride(from: 14, to: 34, by: 2) { sum += UInt32(p[i]) << 8 | UInt32(p[i + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        p[24] = UInt8(checksum >> 8)
        p[25] = UInt8(checksum & 0xff)
        return p
    }()

    static let expectedR0: UInt64 = 3

    let rounds: Int
    let jobs: Int
    /// Only the modes whose key (interpreter, direct, direct2, reuse1, reuse2, pool1, pool2, batch1,
    /// batch2, stream1, stream2, latency)
    /// contains this.
    let filter: String?

    init(rounds: Int, quick: Bool, filter: String?) {
        self.rounds = rounds
        self.filter = filter
        jobs = quick ? 20_000 : 200_000
    }

    func run() throws {
        let vm = VM()
        let program = try vm.load(Assembler.assemble(Self.source), name: "xdp-parse")
        let packet = Self.packet

        let check = try vm.makeProcess(for: program, context: MemoryContext(packet))
        let r0 = try check.run()
        guard r0 == Self.expectedR0 else { throw BenchmarkError.mismatch(program: r0, native: Self.expectedR0) }
        let instructions = check.instructionsExecuted

        var failure: (any Error)?
        /// Runs `body` if `key` passes the filter; nil if filtered out or failed.
        func measure(_ key: String, _ body: () throws -> Timing) -> Timing? {
            guard filter.map({ key.contains($0) }) ?? true else { return nil }
            do {
                return try body()
            } catch {
                failure = error
                return nil
            }
        }

        // Direct: what a caller without a pool does per job, on the calling thread.
        let direct = measure("direct") {
            try timePerJob {
                for _ in 0..<jobs {
                    let process = try vm.makeProcess(for: program, context: MemoryContext(packet))
                    guard try process.run() == Self.expectedR0 else {
                        throw BenchmarkError.mismatch(program: 0, native: 3)
                    }
                }
            }
        }
        // The machine's own scaling: the direct loop on two threads at once, no pool. On a
        // shared machine this is the ceiling for the pool's 2-worker figure.
        let direct2 = measure("direct2") {
            try timePerJob {
                let half = jobs / 2
                try runOnThreads(2) {
                    for _ in 0..<half {
                        let process = try vm.makeProcess(for: program, context: MemoryContext(packet))
                        guard try process.run() == Self.expectedR0 else {
                            throw BenchmarkError.mismatch(program: 0, native: 3)
                        }
                    }
                }
            }
        }
        // What a pool worker does per job, without the pool: reset one reused process with a
        // new context and run it, on 1 and on 2 threads (each with its own process). The
        // 2-thread figure is the pool's 2-worker ceiling on this machine.
        @Sendable func reuseLoop(count: Int) throws {
            let packet = packet.map { $0 } // a buffer of this thread's own, as each pool job has
            let process = try vm.makeProcess(for: program, context: MemoryContext(packet))
            _ = try process.run()
            for _ in 0..<count {
                try process.reset(context: MemoryContext(packet))
                guard try process.run() == Self.expectedR0 else { throw BenchmarkError.mismatch(program: 0, native: 3) }
            }
        }
        let reuse = measure("reuse1") { try timePerJob { try reuseLoop(count: jobs) } }
        let reuse2 = measure("reuse2") {
            try timePerJob { try runOnThreads(2) { try reuseLoop(count: jobs / 2) } }
        }
        // Interpreter alone, processes created before the clock starts.
        let interpreterOnly = measure("interpreter") {
            try bestPerJob(jobs: jobs / 10) {
                var processes: [MimicCore.Process] = []
                processes.reserveCapacity(jobs / 10)
                for _ in 0..<(jobs / 10) {
                    processes.append(try vm.makeProcess(for: program, context: MemoryContext(packet)))
                }
                return try timed { for process in processes { _ = try process.run() } }
            }
        }
        let job = Job(program: program, memory: packet)
        let pool1 = measure("pool1") { try poolThroughput(workers: 1, program: program, chunk: 1) }
        let pool2 = measure("pool2") { try poolThroughput(workers: 2, program: program, chunk: 1) }
        let stream1 = measure("stream1") { try streamThroughput(workers: 1, program: program) }
        let stream2 = measure("stream2") { try streamThroughput(workers: 2, program: program) }
        let batch1 = measure("batch1") { try poolThroughput(workers: 1, program: program, chunk: Self.chunk) }
        let batch2 = measure("batch2") { try poolThroughput(workers: 2, program: program, chunk: Self.chunk) }
        let latency = measure("latency") { try roundTrip(job: job) }
        if let failure { throw failure }

        func line(_ name: String, _ timing: Timing?, _ note: String = "") -> String? {
            guard let timing else { return nil }
            return name.padding(toLength: 44, withPad: " ", startingAt: 0)
                + String(
                    format: "%10.0f %10.0f %12.0f %7.2f", timing.wall, timing.cpu, 1e9 / timing.wall,
                    timing.cpu / timing.wall)
                + (note.isEmpty ? "" : "   " + note)
        }
        func ratio(_ format: String, _ a: Timing?, _ b: Timing?) -> String {
            guard let a, let b else { return "" }
            return String(format: format, a.wall / b.wall)
        }
        print("xdp-parse: \(instructions) instructions per job, \(jobs) jobs per round, best of \(rounds)")
        print(
            "mode".padding(toLength: 44, withPad: " ", startingAt: 0)
                + "    ns/job  CPU ns/job      jobs/s   cores")
        let lines = [
            line("interpreter only (process made before)", interpreterOnly),
            line("direct: make process + run, 1 thread", direct),
            line("direct on 2 threads (no pool)", direct2, ratio("throughput %.2fx 1 thread", direct, direct2)),
            line("reuse: reset + run, 1 thread", reuse),
            line("reuse on 2 threads (no pool)", reuse2, ratio("throughput %.2fx 1 thread", reuse, reuse2)),
            line("pool, 1 worker (callback)", pool1, ratio("%.2fx direct", pool1, direct)),
            line("pool, 2 workers (callback)", pool2, ratio("throughput %.2fx 1 worker", pool1, pool2)),
            line("pool, 1 worker, \(Self.chunk)-job batches", batch1, ratio("%.2fx direct", batch1, direct)),
            line(
                "pool, 2 workers, \(Self.chunk)-job batches", batch2, ratio("throughput %.2fx 1 worker", batch1, batch2)
            ),
            line("pool, 1 worker, jobs taken from a sequence", stream1, ratio("%.2fx direct", stream1, direct)),
            line(
                "pool, 2 workers, jobs taken from a sequence", stream2,
                ratio("throughput %.2fx 1 worker", stream1, stream2)),
            line("pool, 1 job at a time (async round trip)", latency, ratio("%.2fx direct", latency, direct)),
        ]
        for line in lines.compactMap({ $0 }) { print(line) }
        print("(ns/job: wall clock; CPU ns/job: CPU time of the whole process per job; cores: their ratio)")
    }

    /// Runs `body` on `count` new threads at once and waits for all; rethrows the first error.
    private func runOnThreads(_ count: Int, _ body: @escaping @Sendable () throws -> Void) throws {
        let firstError = Mutex<(any Error)?>(nil)
        let finished = DispatchSemaphore(value: 0)
        for _ in 0..<count {
            Thread {
                do { try body() } catch { firstError.withLock { $0 = $0 ?? error } }
                finished.signal()
            }.start()
        }
        for _ in 0..<count { finished.wait() }
        if let error = firstError.withLock({ $0 }) { throw error }
    }

    /// Wall-clock and process CPU time per job.
    struct Timing {
        var wall: Double
        var cpu: Double
    }

    /// The best time per job over `rounds` rounds of `body`, which runs `jobs` jobs.
    private func timePerJob(_ body: () throws -> Void) throws -> Timing {
        try bestPerJob(jobs: jobs) { try timed(body) }
    }

    /// The round with the best wall-clock time of `rounds` rounds of `measure` (`jobs` jobs each).
    private func bestPerJob(jobs: Int, _ measure: () throws -> Timing) throws -> Timing {
        var best = Timing(wall: .infinity, cpu: .infinity)
        for _ in 0..<rounds {
            let round = try measure()
            if round.wall < best.wall { best = round }
        }
        return Timing(wall: best.wall / Double(jobs), cpu: best.cpu / Double(jobs))
    }

    private func timed(_ body: () throws -> Void) rethrows -> Timing {
        let start = (wall: DispatchTime.now().uptimeNanoseconds, cpu: processCPUNanoseconds())
        try body()
        return Timing(
            wall: Double(DispatchTime.now().uptimeNanoseconds - start.wall),
            cpu: Double(processCPUNanoseconds() - start.cpu))
    }

    /// CPU time used by all threads of this process.
    private func processCPUNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// Jobs per `submit(contentsOf:)` call in the batch modes: what a capture reader would hand
    /// over at a time.
    static let chunk = 256

    /// Time per job with `workers` workers: one thread submits `jobs` jobs (blocking when the
    /// backlog is full), one at a time with `submit` (`chunk` 1) or `chunk` at a time with
    /// `submit(contentsOf:)`, and the clock stops when the last has completed.
    ///
    /// Each job is its own `Job` with its own copy of the packet, as jobs made from a capture
    /// are (built before the clock starts): one shared `Job` would time reference-count
    /// contention on that one object between the workers, which real workloads do not have.
    private func poolThroughput(workers: Int, program: Program, chunk: Int) throws -> Timing {
        try bestPerJob(jobs: jobs) {
            let batch = (0..<jobs).map { _ in Self.job(program) }
            let pool = try ProcessPool(workers: workers, backlog: 1024)
            let wrong = Atomic<Int>(0)
            let completion: @Sendable (Result<JobResult, PoolError>) -> Void = { result in
                if case .success(let value) = result, value.r0 == Self.expectedR0 { return }
                wrong.add(1, ordering: .relaxed)
            }
            let elapsed = try timed {
                if chunk == 1 {
                    for job in batch { try pool.submit(job, completion: completion) }
                } else {
                    for start in stride(from: 0, to: jobs, by: chunk) {
                        pool.submit(contentsOf: Array(batch[start..<min(start + chunk, jobs)])) { completion($1) }
                    }
                }
                pool.stop(.drain)
            }
            guard wrong.load(ordering: .relaxed) == 0 else { throw BenchmarkError.mismatch(program: 0, native: 3) }
            return elapsed
        }
    }

    /// Time per job with `workers` workers taking the jobs from a sequence themselves
    /// (`ProcessPool.run(_:completion:)`), the same jobs as the submitting modes get, made
    /// before the clock starts; the clock stops when `run` returns.
    private func streamThroughput(workers: Int, program: Program) throws -> Timing {
        try bestPerJob(jobs: jobs) {
            let batch = (0..<jobs).map { _ in Self.job(program) }
            let pool = try ProcessPool(workers: workers, backlog: 1024)
            defer { pool.stop() }
            let wrong = Atomic<Int>(0)
            let elapsed = try timed {
                try pool.run(batch) { _, result in
                    if case .success(let value) = result, value.r0 == Self.expectedR0 { return }
                    wrong.add(1, ordering: .relaxed)
                }
            }
            guard wrong.load(ordering: .relaxed) == 0 else { throw BenchmarkError.mismatch(program: 0, native: 3) }
            return elapsed
        }
    }

    /// A job of its own with its own copy of the packet, as the jobs a capture reader submits.
    static func job(_ program: Program) -> Job { Job(program: program, memory: packet.map { $0 }) }

    /// Time per job when each job is awaited before the next is submitted (hand-off latency).
    private func roundTrip(job: Job) throws -> Timing {
        let count = max(1, jobs / 20)
        let result = Mutex<Result<Timing, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let benchmark = self
        Task {
            do {
                let pool = try ProcessPool(workers: 1, backlog: 16)
                var best = Timing(wall: .infinity, cpu: .infinity)
                for _ in 0..<benchmark.rounds {
                    let start = (wall: DispatchTime.now().uptimeNanoseconds, cpu: benchmark.processCPUNanoseconds())
                    for _ in 0..<count { _ = try await pool.run(job) }
                    let round = Timing(
                        wall: Double(DispatchTime.now().uptimeNanoseconds - start.wall) / Double(count),
                        cpu: Double(benchmark.processCPUNanoseconds() - start.cpu) / Double(count))
                    if round.wall < best.wall { best = round }
                }
                pool.stop()
                result.withLock { $0 = .success(best) }
            } catch {
                result.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        guard let outcome = result.withLock({ $0 }) else { return Timing(wall: 0, cpu: 0) }
        return try outcome.get()
    }
}
