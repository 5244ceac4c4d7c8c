// mimic-bench: interpreter speed on a fixed set of eBPF programs, next to the same logic in
// native Swift. Run in release mode: `swift run -c release mimic-bench [--quick] [--filter NAME]`.
// `--pool` measures ProcessPool throughput instead (PoolBenchmark.swift); `--suite` runs the
// programs of ../shared/bench beside native code (SuiteBenchmark.swift).
//
// For each program it prints instructions per run, ns per run, ns per instruction and the
// ratio to native code. Figures are the best of several timed rounds (the machine is shared).

import Foundation
import MimicCore
import MimicKernel
import MimicLinux

var options = BenchmarkOptions(arguments: Array(CommandLine.arguments.dropFirst()))
if options.showHelp {
    print(
        """
        usage: mimic-bench [--quick] [--filter NAME] [--rounds N]
               mimic-bench --helpers [--rounds N]
               mimic-bench --kernel [--quick] [--filter NAME] [--rounds N]
               mimic-bench --pool [--quick] [--rounds N] [--filter MODE]
               mimic-bench --suite [--shared DIR] [--engine LIST] [--no-build] [--quick] [--rounds N] [--filter NAME]
               mimic-bench --firewall [--engine LIST] [--quick] [--rounds N]
               mimic-bench --verifier-agreement [--seed N] [--count N] [--predictor NAME] [--shape NAME]
               mimic-bench --jit-fuzz N [--seed S] [--maps]
               mimic-bench --jit-code IN.s OUT.bin
               mimic-bench --repeat OBJECT.o:PROGRAM N [--input FILE] [--engine E]

        Runs each benchmark program in the Mimic interpreter and as native Swift, and prints
        instructions per run, ns per run, ns per instruction and the interpreter/native ratio.
          --quick       fewer iterations (a smoke run, figures are noisier)
          --filter NAME only benchmarks whose name contains NAME
          --rounds N    timed rounds per benchmark (best is reported; default 7)
          --helpers     the cost of a helper call: statically linked vs through the plugin ABI
          --kernel      the programs as XDP programs in the kernel (BPF_PROG_TEST_RUN, JIT;
                        needs root) next to Mimic running the same variant
          --pool        ProcessPool throughput for a ~100-instruction XDP-style program on 1 and
                        2 workers, against making and running the process directly; --filter
                        picks modes: interpreter, direct, direct2, reuse1, reuse2, pool1, pool2,
                        batch1, batch2, stream1, stream2, latency
          --suite       the programs of ../shared/bench (fnv, sieve, collatz, xdp_parse, calls,
                        maps; built with its Makefile and clang into .build/shared-bench) on each
                        engine beside their native twin, R0 checked against its README, and the
                        per-operation costs of ops.c; --filter picks programs (or ops)
          --firewall    one packet of `mimic run --pcap` for Examples/xdp_firewall.o: process reset +
                        XDP context attach (+ run), ns per packet on each engine, beside the kernel's
                        JIT (BPF_PROG_TEST_RUN with repeat; needs root, else left out); then
                        each frame alone, repeated as the kernel runs it, beside its kernel figure
          --shared DIR  the shared benchmark directory (default: ../shared/bench beside the package)
          --engine LIST engines for --suite, comma-separated: \(Engine.allCases.map(\.rawValue).joined(separator: ", "))
                        (default: all)
          --jit-fuzz N  the JIT's differential fuzzer: N random programs (seeds S, S+1, ...; --seed,
                        default 1) under the JIT and the interpreter, every outcome compared; exits
                        1 on a mismatch (printed with the program); --maps: programs that also call
                        bpf_map_lookup_elem / update / delete on array, per-CPU array and hash maps
                        (the JIT's inline lookups and hash probe) and use the value pointer; the maps'
                        contents at the end are compared too
          --jit-code    write the JIT's x86-64 code for the assembler program IN.s (or the program
                        PROGRAM of an object file, IN = OBJECT.o:PROGRAM, with the Linux emulator's
                        maps) to OUT.bin (objdump -D -b binary -mi386:x86-64 OUT.bin disassembles it)
          --repeat      run the program PROGRAM of an object file N times on one engine (the first
                        of --engine) after a warm-up run, inside measuredRunsEntry, for
                        deterministic counts: valgrind --tool=callgrind
                        --toggle-collect='*measuredRunsEntry*'; --input FILE is the blob in R1/R2
          --no-build    use what an earlier --suite run built in .build/shared-bench (for valgrind,
                        under which mimic-bench cannot run make; the native twin is not run either)
          --verifier-agreement
                        near-miss programs (default 100000, --count) from --seed (default 1) loaded
                        into the kernel (needs root) and judged by --predictor: \(VerifierAgreementBenchmark.predictors.map(\.name).joined(separator: ", "))
                        (default mimic); prints agreement and kernel acceptance per mutation class;
                        --shape keeps to one shape (\(NearMissShape.allCases.map(\.rawValue).joined(separator: ", ")))
        """)
    exit(0)
}
if let problem = options.problem {
    FileHandle.standardError.write(Data("mimic-bench: \(problem)\n".utf8))
    exit(2)
}

/// Runs one of the other benchmark modes and exits: 0 on success, 1 with the error.
func runMode(_ name: String, _ body: () throws -> Void) -> Never {
    do {
        try body()
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("mimic-bench: \(name): \(error)\n".utf8))
        exit(1)
    }
}

if let (source, output) = options.jitCode {
    runMode("jit-code") {
        let program: Program
        if let colon = source.lastIndex(of: ":"), source[..<colon].hasSuffix(".o") {
            // OBJECT.o:PROGRAM: a program of an object file, with the Linux emulator's maps.
            let vm = VM(emulator: LinuxEmulator(), configuration: VMConfiguration(engine: .jit))
            let object = try vm.load(object: ObjectFile(contentsOf: String(source[..<colon])))
            program = try object.program(named: String(source[source.index(after: colon)...]))
        } else {
            let vm = VM(emulator: ConformanceEmulator(), configuration: VMConfiguration(engine: .jit))
            program = try vm.load(Assembler.assemble(String(contentsOfFile: source, encoding: .utf8)), name: source)
        }
        guard let code = program.machineCode else { throw JITFuzzFailure(reason: "no JIT on this host") }
        try Data(code).write(to: URL(fileURLWithPath: output))
        print("\(code.count) bytes of x86-64 code written to \(output)")
    }
}
if let (source, runs) = options.repeatRuns {
    runMode("repeat") {
        try RepeatBenchmark(source: source, runs: runs, engine: options.engines[0], input: options.input).run()
    }
}
if let count = options.jitFuzz {
    runMode("jit-fuzz") {
        // In chunks, so a long run shows progress.
        var total = JITDifferential.Report()
        var next = options.seed
        var remaining = count
        while remaining > 0 {
            let chunk = min(remaining, 10_000)
            let report =
                options.jitFuzzMaps
                ? try JITMapFuzz.run(seed: next, count: chunk) : JITDifferential.run(seed: next, count: chunk)
            total.programs += report.programs
            total.exited += report.exited
            total.faulted += report.faulted
            total.budgetStops += report.budgetStops
            total.notCompiled += report.notCompiled
            total.mismatches += report.mismatches
            next &+= UInt64(chunk)
            remaining -= chunk
            print("seeds \(options.seed)..<\(next): \(total)")
            if !total.mismatches.isEmpty { break }
        }
        for mismatch in total.mismatches { print(mismatch) }
        if !total.mismatches.isEmpty {
            throw JITFuzzFailure(reason: "the JIT and the interpreter disagree (see above)")
        }
    }
}
struct JITFuzzFailure: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}
if options.helpers { runMode("helpers") { try HelperCallBenchmark.run(rounds: options.rounds) } }
if options.kernel {
    runMode("kernel") {
        try KernelBenchmark(rounds: options.rounds, quick: options.quick, filter: options.filter).run()
    }
}
if options.suite {
    runMode("suite") {
        try SuiteBenchmark(
            shared: options.shared ?? SuiteBenchmark.defaultShared, scratch: SuiteBenchmark.defaultScratch,
            engines: options.engines, rounds: options.rounds, quick: options.quick, filter: options.filter,
            skipBuild: options.noBuild
        ).run()
    }
}
if options.firewall {
    runMode("firewall") {
        try FirewallBenchmark(rounds: options.rounds, quick: options.quick, engines: options.engines).run()
    }
}
if options.verifierAgreement {
    runMode("verifier-agreement") {
        try VerifierAgreementBenchmark.run(
            seed: options.seed, count: options.count, predictor: options.predictor, shape: options.shape)
    }
}
if options.pool {
    runMode("pool") { try PoolBenchmark(rounds: options.rounds, quick: options.quick, filter: options.filter).run() }
}

print("benchmark            insns/run     ns/run   ns/insn   native ns/run   ratio")
var failed = false
for benchmark in Benchmark.all where options.filter.map({ benchmark.name.contains($0) }) ?? true {
    do {
        let result = try benchmark.measure(rounds: options.rounds, quick: options.quick)
        print(result.formatted)
    } catch {
        failed = true
        FileHandle.standardError.write(Data("mimic-bench: \(benchmark.name): \(error)\n".utf8))
    }
}
exit(failed ? 1 : 0)
