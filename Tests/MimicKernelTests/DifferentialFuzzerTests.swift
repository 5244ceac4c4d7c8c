import Testing
import MimicCore
@testable import MimicKernel
import MimicLinux

/// Parses hex text (`"0a0b"`) in tests.
func hexBytes(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex, let next = text.index(index, offsetBy: 2, limitedBy: text.endIndex),
        let byte = UInt8(text[index..<next], radix: 16)
    {
        bytes.append(byte)
        index = next
    }
    return bytes
}

/// Runs assembler text as an XDP program on `packet` in the kernel and in Mimic: (kernel, Mimic's low 32 bits).
func runBoth(_ text: String, packet: [UInt8]) throws -> (kernel: UInt32, mimic: UInt32) {
    let code = try Assembler.assemble(text)
    let kernel = try KernelBPF.loadProgram(code, type: .xdp, name: "t").testRun(data: packet)
    let vm = VM(emulator: LinuxEmulator())
    let process = try vm.makeProcess(for: try vm.load(code), context: XDPContext(packet: packet))
    return (kernel.returnValue, UInt32(truncatingIfNeeded: try process.run()))
}

@Suite("Differential fuzzer: generated programs", .serialized)
struct FuzzGeneratorTests {
    @Test("the same seed gives the same program; programs end in exit and stay within the stack")
    func deterministic() {
        let generator = FuzzGenerator()
        for seed: UInt64 in [1, 2, 3, 0xFFFF] {
            let a = generator.program(seed: seed)
            #expect(a == generator.program(seed: seed))
            let code = a.instructions
            #expect(code.last?.opcode == 0x95)
            #expect(a.packets.allSatisfy { $0.count == FuzzGenerator.packetSize })
        }
        #expect(generator.program(seed: 1) != generator.program(seed: 2))
    }

    @Test("every generated program loads into Mimic and runs to the end")
    func runsInMimic() throws {
        let generator = FuzzGenerator()
        let vm = VM(emulator: LinuxEmulator())
        for seed in UInt64(0)..<300 {
            let program = generator.program(seed: seed)
            let loaded = try vm.load(program.instructions)
            let process = try vm.makeProcess(for: loaded, context: XDPContext(packet: program.packets[0]))
            _ = try process.run(instructionLimit: 1_000_000)
        }
    }

    @Test("reductions remove pieces and keep the program well formed")
    func reductions() {
        let program = FuzzGenerator().program(seed: 9)
        let smaller = DifferentialFuzzer.reductions(of: program)
        #expect(!smaller.isEmpty)
        #expect(smaller.allSatisfy { $0.instructions.count < program.instructions.count })
    }
}

@Suite(
    "Differential fuzzer: Mimic against the kernel",
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct DifferentialFuzzerTests {
    @Test("5,000 programs with a fixed seed: every accepted program gives the kernel's result")
    func fixedSeed() throws {
        let report = try DifferentialFuzzer().run(seed: 0x5EED, count: 5_000)
        print(report.summary)
        for mismatch in report.mismatches { print(mismatch) }
        #expect(report.mismatches.isEmpty)
        #expect(report.programs == 5_000)
        #expect(report.rejectionRate < 0.02, "\(report.summary)")
    }

    @Test("cpu v4 instructions are supported by this kernel: sdiv, smod, movsx, bswap, ldsx, gotol")
    func cpuV4() throws {
        let packet = [UInt8](repeating: 0xF0, count: 64)
        let cases: [(String, UInt32)] = [
            ("mov %r0, -7\nmov %r1, 2\nsdiv %r0, %r1\nexit", UInt32(bitPattern: -3)),
            ("mov %r0, -7\nmov %r1, 2\nsmod %r0, %r1\nexit", UInt32(bitPattern: -1)),
            ("mov %r1, 0x80\nmovsx864 %r0, %r1\nexit", 0xFFFF_FF80),
            ("mov %r0, 0x12345678\nbswap32 %r0\nexit", 0x7856_3412),
            ("stdw [%r10-8], 0xf0\nldxsb %r0, [%r10-8]\nexit", 0xFFFF_FFF0),
            ("ldxw %r2, [%r1+12]\nmov %r0, 1\njeq %r2, 0, +1\nja32 +1\nmov %r0, 2\nexit", 1),
        ]
        for (text, expected) in cases {
            let (kernel, mimic) = try runBoth(text, packet: packet)
            #expect(kernel == expected, "\(text)")
            #expect(mimic == expected, "\(text)")
        }
    }

    @Test("division by zero is allowed by the verifier and defined: div → 0, mod → dividend")
    func divisionByZero() throws {
        let packet = [UInt8](repeating: 0, count: 64)
        #expect(try runBoth("mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nexit", packet: packet) == (0, 0))
        #expect(try runBoth("mov %r0, 7\nmov %r1, 0\nmod %r0, %r1\nexit", packet: packet) == (7, 7))
        #expect(try runBoth("mov %r0, 7\nmov %r1, 0\nsdiv32 %r0, %r1\nexit", packet: packet) == (0, 0))
    }

    /// Found by the fuzzer (seed 7, program #3176): after a 32-bit `cmpxchg` whose comparison
    /// succeeds, reached through a branch whose other side skips it, the kernel (x86-64 JIT,
    /// 6.18) left R0's upper half unchanged — the zero-extension the verifier should insert after
    /// it is missing. RFC 9669 says R0 gets the old value zero-extended, which is what Mimic does;
    /// without the branch the kernel agrees.
    @Test("kernel quirk: 32-bit cmpxchg does not always zero-extend R0")
    func cmpxchg32Quirk() throws {
        let text = """
            ldxw %r2, [%r1]
            ldxw %r3, [%r1+4]
            mov %r4, %r2
            add %r4, 64
            jle %r4, %r3, +2
            mov %r0, 0
            exit
            ldxsw %r0, [%r2]
            ldxdw %r8, [%r2+24]
            lddw %r5, 31
            mov32 %r6, 255
            stxdw [%r10-8], %r0
            stdw [%r10-16], 1
            stxdw [%r10-24], %r5
            stxdw [%r10-32], %r2
            stdw [%r10-40], -1
            stxdw [%r10-48], %r5
            stxdw [%r10-56], %r4
            stxdw [%r10-64], %r6
            lddw %r0, 0x7fffffffffffffff
            jne %r8, 0x3d83d113, +1
            ja32 +1
            lock cmpxchg32 [%r10-36], %r8
            mov %r1, %r0
            rsh %r1, 32
            xor %r0, %r1
            exit
            """
        let packet = hexBytes(
            "0f000000000000000b000000000000000e0000000000000078ec7a94addeb0bd0200000000000000312075d65317f7340f000000000000000200000000000000"
        )
        let (kernel, mimic) = try runBoth(text, packet: packet)
        #expect(mimic == 0xFFFF_FFFF) // R0 = 0x00000000_ffffffff, the old value zero-extended
        withKnownIssue(
            "the kernel returns 0x80000000: it leaves R0 = 0x7fffffff_ffffffff (x86-64 JIT)", isIntermittent: true
        ) {
            #expect(kernel == 0xFFFF_FFFF)
        }
    }

    /// Found by the fuzzer (seed 7, program #4808): with a conditional jump to the next
    /// instruction before a counted loop, the kernel treats the result of an atomic fetch-and
    /// in a later loop as if it were still 0, and the branch on it goes the wrong way. Mimic
    /// follows the ISA (the fetch returns the old value, 11).
    @Test("kernel quirk: a fetch-and result after a loop is mis-tracked")
    func fetchAndAfterLoopQuirk() throws {
        let text = """
            ldxw %r2, [%r1]
            ldxw %r3, [%r1+4]
            mov %r4, %r2
            add %r4, 64
            jle %r4, %r3, +2
            mov %r0, 0
            exit
            ldxb %r7, [%r2+16]
            ldxdw %r4, [%r2+40]
            ldxb %r0, [%r2+48]
            stxdw [%r10-56], %r4
            jsgt32 %r4, -2, +0
            mov32 %r6, 1
            add %r6, -1
            jne %r6, 0, -2
            mov32 %r9, 1
            lock fetch and [%r10-56], %r6
            add %r9, -1
            jne %r9, 0, -3
            mov %r4, %r6
            mov %r5, 0
            jsle32 %r4, 7, +1
            mov %r5, %r7
            xor %r0, %r5
            exit
            """
        let packet = hexBytes(
            "0500000000000000f6ffffffffffffff0300000000000000000000000000000007000000000000000b00000000000000f4ffffffffffffff0900000000000000"
        )
        let (kernel, mimic) = try runBoth(text, packet: packet)
        #expect(mimic == 0xF7) // r6 = 11 (old value), 11 > 7, so r5 = r7 = 3; 0xf4 ^ 3
        withKnownIssue("the kernel returns 0xf4: it takes the jsle32 branch", isIntermittent: true) {
            #expect(kernel == 0xF7)
        }
    }
}
