import Foundation
import MimicCore
import MimicKernel
import MimicLinux

/// `mimic-bench --kernel`: the benchmark programs as XDP programs in the kernel (JIT), timed by
/// `BPF_PROG_TEST_RUN` with a repeat count, next to Mimic running the same kernel variant.
///
/// The programs take their input as R1 = pointer, R2 = length. For the kernel they become XDP
/// programs whose packet is the input; the ones that touch memory are adapted so the verifier
/// can prove every access in bounds (see `kernelSource`).
struct KernelBenchmark {
    let rounds: Int
    let quick: Bool
    let filter: String?

    /// The kernel variant of a benchmark: its source with an XDP prologue, and what changed.
    static func kernelSource(_ benchmark: Benchmark) -> (source: String, note: String) {
        switch benchmark.name {
        case "packet-parse":
            // R3 = data_end from the context (the verifier accepts only data_end as the bound).
            let body = benchmark.source
                .replacingOccurrences(of: "mov %r3, %r1\nadd %r3, %r2\n", with: "")
                .replacingOccurrences(of: "mov %r9, 5000", with: "mov %r9, 500")
                .replacingOccurrences(
                    of: "add %r6, %r5\n", with: "add %r6, %r5\nmov %r4, %r6\nadd %r4, 18\njgt %r4, %r3, done\n")
            return (
                "ldxw %r3, [%r1+4]\nldxw %r1, [%r1]\n" + body,
                "data_end bound loaded once; +3 insns bounds-checking the UDP port; 500 passes, not 5,000 (verifier's state limit)"
            )
        case "memory-loop":
            // A per-byte check against data_end instead of a precomputed last address.
            return (
                """
                ldxw %r9, [%r1+4]
                ldxw %r1, [%r1]
                mov %r0, 0
                mov %r6, 2
                pass:
                mov %r3, %r1
                mov %r7, 99
                byte:
                mov %r4, %r3
                add %r4, 2
                jgt %r4, %r9, next
                ldxb %r5, [%r3]
                add %r0, %r5
                stxdw [%r10-8], %r0
                ldxdw %r0, [%r10-8]
                ldxh %r5, [%r3]
                stxh [%r10-16], %r5
                ldxh %r5, [%r10-16]
                xor %r0, %r5
                add %r3, 1
                sub %r7, 1
                jne %r7, 0, byte
                next:
                sub %r6, 1
                jne %r6, 0, pass
                exit
                """,
                "per-byte bounds check against data_end and a counter the verifier can bound (5 insns, not 1); 2 passes over 100 bytes, not 20 over 1,501 (verifier's jump limit)"
            )
        default:
            return (benchmark.source, "unchanged (does not read the input)")
        }
    }

    func run() throws {
        guard KernelBPF.isAvailable else {
            throw BenchmarkError.kernel(KernelBPF.unavailableReason ?? "unknown reason")
        }
        print("benchmark          insns/run  kernel ns/run  kernel ns/insn  mimic ns/run  mimic/kernel  adaptation")
        for benchmark in Benchmark.all where filter.map({ benchmark.name.contains($0) }) ?? true {
            let (source, note) = Self.kernelSource(benchmark)
            let code = try Assembler.assemble(source)
            let program: KernelProgram
            do {
                program = try KernelBPF.loadProgram(
                    code, type: .xdp, name: benchmark.name.replacingOccurrences(of: "-", with: "_"))
            } catch {
                print(
                    "\(benchmark.name): the kernel's verifier rejects it: \(error.verifierLog.map(DifferentialFuzzer.reasonLine) ?? "\(error)")"
                )
                continue
            }
            // XDP needs a non-empty packet.
            var packet = benchmark.input.isEmpty ? [UInt8](repeating: 0, count: 64) : benchmark.input
            if benchmark.name == "memory-loop" { packet = Array(packet.prefix(100)) }
            let repeats = quick ? 20 : benchmark.runs * 20
            var kernelBest = UInt32.max
            var kernelReturn: UInt32 = 0
            for _ in 0..<rounds {
                let run = try program.testRun(data: packet, repeat: repeats)
                kernelBest = min(kernelBest, run.durationNanoseconds)
                kernelReturn = run.returnValue
            }

            // Mimic on the same kernel variant and packet.
            let vm = VM(emulator: LinuxEmulator())
            let loaded = try vm.load(code, name: benchmark.name)
            let check = try vm.makeProcess(for: loaded, context: XDPContext(packet: packet))
            let r0 = try check.run()
            guard UInt32(truncatingIfNeeded: r0) == kernelReturn else {
                throw BenchmarkError.mismatch(program: r0, native: UInt64(kernelReturn))
            }
            let instructions = check.instructionsExecuted
            let runs = quick ? max(1, benchmark.runs / 20) : benchmark.runs
            var mimicBest = Double.infinity
            for _ in 0..<rounds {
                var processes: [MimicCore.Process] = []
                for _ in 0..<runs {
                    processes.append(try vm.makeProcess(for: loaded, context: XDPContext(packet: packet)))
                }
                let start = DispatchTime.now().uptimeNanoseconds
                for process in processes { _ = try process.run() }
                mimicBest = min(mimicBest, Double(DispatchTime.now().uptimeNanoseconds - start) / Double(runs))
            }
            print(
                benchmark.name.padding(toLength: 18, withPad: " ", startingAt: 0)
                    + String(
                        format: "%10llu %14u %15.3f %13.0f %12.1fx  ", instructions, kernelBest,
                        Double(kernelBest) / Double(instructions), mimicBest, mimicBest / Double(max(1, kernelBest)))
                    + note)
        }
    }
}

extension DifferentialFuzzer {
    /// The verifier's complaint in a log (its last meaningful line).
    static func reasonLine(_ log: String) -> String {
        log.split(separator: "\n").last { !$0.hasPrefix("processed ") && !$0.hasPrefix("verification time") }.map(
            String.init) ?? log
    }
}
