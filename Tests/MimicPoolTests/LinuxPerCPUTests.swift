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
        let perCPU = values.map { bytes in bytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) } }
        #expect(perCPU.reduce(0, +) == UInt64(jobs))
        #expect(perCPU.allSatisfy { $0 > 0 })
    }
}
