import Foundation
import Synchronization
import Testing
import MimicCore
import MimicLinux
import MimicPool

/// The pool with the real Linux emulator: a `BPF_MAP_TYPE_PERCPU_ARRAY` counter incremented
/// non-atomically, and `bpf_get_smp_processor_id`, across many jobs on several workers.
@Suite struct LinuxPerCPUTests {
    @Test(arguments: [2, 3])
    func perCPUArrayCountsEveryJob(workers: Int) throws {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: workers))
        let vm = VM(emulator: emulator)
        let counters = try emulator.createMap(
            MapAttributes(name: "counters", type: .perCPUArray, keySize: 4, valueSize: 8, maxEntries: 1), in: vm)
        // value = lookup(counters, 0); *value = *value + 1 (a load, some work, a store: not atomic);
        // return bpf_get_smp_processor_id().
        let source = """
            stw [%r10-4], 0
            lddw %r1, \(counters.handle)
            mov %r2, %r10
            add %r2, -4
            call 1
            jeq %r0, 0, fail
            ldxdw %r6, [%r0+0]
            mov %r7, 50
            spin:
            sub %r7, 1
            jne %r7, 0, spin
            add %r6, 1
            stxdw [%r0+0], %r6
            call 8
            exit
            fail:
            mov %r0, -1
            exit
            """
        let program = try vm.load(Assembler.assemble(source))
        let pool = try ProcessPool(workers: workers, backlog: 64)
        let jobs = 10_000
        let wrongCPU = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        for _ in 0..<jobs {
            try pool.submit(Job(program: program)) { result in
                switch result {
                case .success(let value) where value.r0 == UInt64(value.vCPU): break
                case .success: wrongCPU.add(1, ordering: .relaxed)
                case .failure: failures.add(1, ordering: .relaxed)
                }
            }
        }
        pool.stop(.drain)
        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(wrongCPU.load(ordering: .relaxed) == 0)

        let values = try #require(counters.perCPUValues(forKey: [0, 0, 0, 0]))
        #expect(values.count == workers)
        let perCPU = values.map { bytes in
            bytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
        }
        #expect(perCPU.reduce(0, +) == UInt64(jobs))
        #expect(perCPU.allSatisfy { $0 > 0 })
    }

    /// Issue 13.5: the defaults agree (a default pool runs every job of a default emulator), and
    /// a pool with more workers than its VM's emulator has CPUs is refused when it is created.
    @Test func poolAndEmulatorDefaultsAgree() throws {
        let emulator = LinuxEmulator()
        #expect(emulator.cpuCount == HostCPUs.count)
        let vm = VM(emulator: emulator)
        let program = try vm.load(Assembler.assemble("call 8\nexit"))
        let pool = try ProcessPool(backlog: 64)
        #expect(pool.workerCount == emulator.cpuCount)
        let failures = Atomic<Int>(0)
        for _ in 0..<40 {
            try pool.submit(Job(program: program)) { result in
                if case .failure = result { failures.add(1, ordering: .relaxed) }
            }
        }
        pool.stop(.drain)
        #expect(failures.load(ordering: .relaxed) == 0)
    }

    @Test func morePoolWorkersThanEmulatorCPUsAreRefused() throws {
        let vm = VM(emulator: LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2)))
        #expect(vm.cpuCount == 2)
        #expect(
            throws: PoolError.invalidConfiguration(
                "4 workers run jobs as vCPUs 0...3, but the VM's emulator has 2 CPUs (vCPUs 0...1); use at most 2 workers, or give the emulator 4 CPUs (LinuxConfiguration(cpuCount: 4))"
            )
        ) {
            try ProcessPool(workers: 4, vm: vm)
        }
        let sized = try ProcessPool(vm: vm)
        #expect(sized.workerCount == 2)
        sized.stop(.drain)
        let fewer = try ProcessPool(workers: 1, vm: vm)
        #expect(fewer.workerCount == 1)
        fewer.stop(.drain)
        // An emulator without a fixed CPU count does not limit the pool.
        let plain = try ProcessPool(workers: 3, vm: VM())
        #expect(plain.workerCount == 3)
        plain.stop(.drain)
    }

    /// Issue 13.1: pool jobs draw from their vCPU's stream, which continues from job to job;
    /// processes sharing a vCPU on several threads still draw distinct values (no lock).
    @Test func poolJobsDrawNewRandomValues() throws {
        let vm = VM(emulator: LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2, randomSeed: 3)))
        let program = try vm.load(Assembler.assemble("call 7\nexit"))
        let pool = try ProcessPool(vm: vm)
        let values = Mutex<[UInt64]>([])
        for _ in 0..<40 {
            try pool.submit(Job(program: program)) { result in
                if case .success(let value) = result { values.withLock { $0.append(value.r0) } }
            }
        }
        pool.stop(.drain)
        #expect(values.withLock { Set($0).count } == 40)

        // A fresh emulator: the values drawn are then always the stream's first 2000 (a fixed
        // set, whatever the threads' order), so the check cannot flake on a 32-bit collision.
        let fresh = VM(emulator: LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2, randomSeed: 3)))
        let draw = try fresh.load(Assembler.assemble("call 7\nexit"))
        let shared = Mutex<[UInt64]>([])
        let threads = (0..<4).map { _ in
            Thread {
                var mine: [UInt64] = []
                for _ in 0..<500 {
                    if let value = try? fresh.makeProcess(for: draw, vCPU: 0).run() { mine.append(value) }
                }
                shared.withLock { $0 += mine }
            }
        }
        for thread in threads { thread.start() }
        while threads.contains(where: { !$0.isFinished }) { usleep(1000) }
        #expect(shared.withLock { $0.count } == 2000)
        #expect(shared.withLock { Set($0).count } == 2000, "a value was drawn twice on vCPU 0")
    }
}
