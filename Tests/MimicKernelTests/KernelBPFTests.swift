import Testing
import MimicCore
@testable import MimicKernel
import MimicLinux

/// Why the kernel tests did not run, printed once so a skipped run says so.
enum KernelGate {
    static let enabled: Bool = {
        if let reason = KernelBPF.unavailableReason {
            print("◇ MimicKernelTests skipped: \(reason)")
            return false
        }
        return true
    }()
}

@Suite(
    "KernelBPF: maps, programs, test runs",
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct KernelBPFTests {
    func assemble(_ text: String) throws -> [RawInstruction] { try Assembler.assemble(text) }

    @Test("load and test-run an XDP program")
    func xdpTestRun() throws {
        let program = try KernelBPF.loadProgram(try assemble("mov %r0, 2\nexit"), type: .xdp, name: "pass")
        let run = try program.testRun(data: [UInt8](repeating: 0xAB, count: 60))
        #expect(run.returnValue == 2)
        #expect(run.data == [UInt8](repeating: 0xAB, count: 60))
    }

    @Test("verifier rejection carries the log")
    func rejection() throws {
        do {
            _ = try KernelBPF.loadProgram(try assemble("mov %r0, %r5\nexit"), type: .xdp, name: "bad")
            Issue.record("the verifier accepted a read of an uninitialized register")
        } catch let error as KernelError {
            #expect(error.verifierLog?.contains("R5 !read_ok") == true, "\(error)")
            #expect(error.description.contains("rejected program bad"))
        }
    }

    @Test("maps: create, update, lookup, iterate, delete; per-CPU values")
    func maps() throws {
        let hash = try KernelBPF.createMap(
            MapAttributes(name: "h", type: .hash, keySize: 4, valueSize: 8, maxEntries: 8))
        #expect(try hash.lookup(key: [1, 0, 0, 0]) == nil)
        try hash.update(key: [1, 0, 0, 0], value: [1, 2, 3, 4, 5, 6, 7, 8])
        try hash.update(key: [2, 0, 0, 0], value: [8, 7, 6, 5, 4, 3, 2, 1])
        #expect(try hash.lookup(key: [1, 0, 0, 0]) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Set(try hash.keys()) == [[1, 0, 0, 0], [2, 0, 0, 0]])
        #expect(try hash.delete(key: [1, 0, 0, 0]))
        #expect(try !hash.delete(key: [1, 0, 0, 0]))
        #expect(throws: KernelError.self) { try hash.update(key: [1], value: [0]) }

        let perCPU = try KernelBPF.createMap(
            MapAttributes(name: "pc", type: .perCPUArray, keySize: 4, valueSize: 4, maxEntries: 1))
        #expect(perCPU.userValueSize == 8 * KernelBPF.possibleCPUs)
        #expect(try perCPU.lookup(key: [0, 0, 0, 0])?.count == perCPU.userValueSize)
    }

    @Test("a program reads and writes a map through an fd reference")
    func programWithMap() throws {
        let array = try KernelBPF.createMap(
            MapAttributes(name: "a", type: .array, keySize: 4, valueSize: 8, maxEntries: 1))
        // r0 = *lookup(array, 0) + 1, stored back.
        var code = try assemble(
            """
            stw [%r10-4], 0
            lddw %r1, 0
            mov %r2, %r10
            add %r2, -4
            call 1
            jne %r0, 0, +2
            mov %r0, 0
            exit
            ldxdw %r1, [%r0]
            add %r1, 41
            stxdw [%r0], %r1
            mov %r0, %r1
            exit
            """)
        code[1].source = 1
        code[1].imm = array.fd
        let program = try KernelBPF.loadProgram(code, type: .xdp, name: "counter", maps: [array])
        #expect(try program.testRun(data: [UInt8](repeating: 0, count: 64)).returnValue == 41)
        #expect(try array.lookup(key: [0, 0, 0, 0]) == [41, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test("test-run repeats and reports a duration")
    func repeatRuns() throws {
        let program = try KernelBPF.loadProgram(try assemble("mov %r0, 2\nexit"), type: .xdp, name: "pass")
        let run = try program.testRun(data: [UInt8](repeating: 0, count: 64), repeat: 1000)
        #expect(run.returnValue == 2)
        #expect(run.durationNanoseconds < 1_000_000)
    }
}
