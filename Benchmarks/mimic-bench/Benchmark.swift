import Foundation
import MimicCore

/// Command-line options of mimic-bench.
struct BenchmarkOptions {
    var quick = false
    var filter: String?
    var rounds = 7
    var showHelp = false
    var helpers = false
    /// Measure `ProcessPool` throughput instead of the interpreter benchmarks.
    var pool = false
    /// Time the programs in the kernel (BPF_PROG_TEST_RUN, JIT) next to Mimic.
    var kernel = false
    /// Run the programs of the shared benchmark directory (`SuiteBenchmark`).
    var suite = false
    var firewall = false
    /// The shared benchmark directory (`--shared DIR`; default `../shared/bench`).
    var shared: String?
    /// The engines the suite times (`--engine a,b`; default all).
    var engines = Engine.allCases
    /// `--no-build`: the suite uses what a previous run built.
    var noBuild = false
    /// `--verifier-agreement`: near-miss programs, the kernel's verdict against a predictor's.
    var verifierAgreement = false
    /// `--jit-fuzz N`: compare N random programs under the JIT and the interpreter.
    var jitFuzz: Int?
    /// `--maps` with `--jit-fuzz`: the map mode (programs calling the map helpers, `JITMapFuzz`).
    var jitFuzzMaps = false
    /// `--seed N`: the first seed of `--verifier-agreement` and `--jit-fuzz`.
    var seed: UInt64 = 1
    /// `--count N`, `--predictor NAME` of `--verifier-agreement`.
    var count = 100_000
    var predictor = "mimic"
    /// `--shape NAME` of `--verifier-agreement`: only near-miss programs of that shape.
    var shape: String?
    /// `--jit-code IN.s OUT.bin`: write the JIT's machine code for an assembler program.
    var jitCode: (source: String, output: String)?
    /// `--repeat OBJECT.o:PROGRAM N`: run one program N times (for callgrind counts).
    var repeatRuns: (source: String, runs: Int)?
    /// `--input FILE`: the input blob of `--repeat`.
    var input: String?
    var problem: String?

    init(arguments: [String]) {
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            switch argument {
            case "--quick": quick = true
            case "--maps": jitFuzzMaps = true
            case "--helpers": helpers = true
            case "--pool": pool = true
            case "--kernel": kernel = true
            case "--suite": suite = true
            case "--firewall": firewall = true
            case "--no-build": noBuild = true
            case "--verifier-agreement": verifierAgreement = true
            case "--seed":
                guard let value = rest.popFirst(), let n = UInt64(value) else {
                    problem = "--seed needs a number"
                    return
                }
                seed = n
            case "--count":
                guard let value = rest.popFirst(), let n = Int(value), n > 0 else {
                    problem = "--count needs a positive number"
                    return
                }
                count = n
            case "--predictor":
                guard let value = rest.popFirst() else {
                    problem = "--predictor needs a name"
                    return
                }
                predictor = value
            case "--shape":
                guard let value = rest.popFirst() else {
                    problem = "--shape needs a near-miss shape"
                    return
                }
                shape = value
            case "--shared":
                guard let value = rest.popFirst() else {
                    problem = "--shared needs a directory"
                    return
                }
                shared = value
            case "--engine":
                guard let value = rest.popFirst(), let list = Engine.parse(value) else {
                    let names = Engine.allCases.map(\.rawValue).joined(separator: ", ")
                    problem = "--engine needs engine names, comma-separated (\(names))"
                    return
                }
                engines = list
            case "--jit-fuzz":
                guard let value = rest.popFirst(), let n = Int(value), n > 0 else {
                    problem = "--jit-fuzz needs a number of programs"
                    return
                }
                jitFuzz = n
            case "--jit-code":
                guard let source = rest.popFirst(), let output = rest.popFirst() else {
                    problem = "--jit-code needs an assembler file and an output file"
                    return
                }
                jitCode = (source, output)
            case "--repeat":
                guard let source = rest.popFirst(), let value = rest.popFirst(), let n = Int(value), n > 0 else {
                    problem = "--repeat needs OBJECT.o:PROGRAM and a number of runs"
                    return
                }
                repeatRuns = (source, n)
            case "--input":
                guard let value = rest.popFirst() else {
                    problem = "--input needs a file"
                    return
                }
                input = value
            case "--help", "-h": showHelp = true
            case "--filter":
                guard let value = rest.popFirst() else {
                    problem = "--filter needs a name"
                    return
                }
                filter = value
            case "--rounds":
                guard let value = rest.popFirst(), let n = Int(value), n > 0, n <= 1000 else {
                    problem = "--rounds needs a number from 1 to 1000"
                    return
                }
                rounds = n
            default:
                problem = "unknown argument '\(argument)' (try --help)"
                return
            }
        }
    }
}

/// One benchmark: an eBPF program, its input, and the same computation in native Swift.
struct Benchmark {
    let name: String
    /// Assembler text of the program.
    let source: String
    /// The input memory (R1 = pointer, R2 = length).
    let input: [UInt8]
    /// Runs per timed round (full mode).
    let runs: Int
    /// The same computation as native code; must return the program's R0.
    let native: @Sendable ([UInt8]) -> UInt64

    struct Result {
        let name: String
        let instructionsPerRun: UInt64
        let nsPerRun: Double
        let nativeNsPerRun: Double

        var formatted: String {
            let perInstruction = nsPerRun / Double(instructionsPerRun)
            return name.padding(toLength: 18, withPad: " ", startingAt: 0)
                + String(
                    format: "%11llu %10.0f %9.2f %15.1f %7.1fx", instructionsPerRun, nsPerRun,
                    perInstruction, nativeNsPerRun, nsPerRun / nativeNsPerRun)
        }
    }

    func measure(rounds: Int, quick: Bool) throws -> Result {
        let vm = VM(emulator: ConformanceEmulator(), configuration: VMConfiguration(engine: .interpreter))
        let program = try vm.load(Assembler.assemble(source), name: name)
        let context = MemoryContext(input)
        let runs = quick ? max(1, self.runs / 20) : self.runs

        // Check once that the program computes what the native code computes.
        let check = try vm.makeProcess(for: program, context: context)
        let r0 = try check.run()
        let expected = native(input)
        guard r0 == expected else {
            throw BenchmarkError.mismatch(program: r0, native: expected)
        }
        let instructions = check.instructionsExecuted

        var best = Double.infinity
        for _ in 0..<rounds {
            var processes: [MimicCore.Process] = []
            processes.reserveCapacity(runs)
            for _ in 0..<runs { processes.append(try vm.makeProcess(for: program, context: context)) }
            let start = DispatchTime.now().uptimeNanoseconds
            for process in processes { _ = try process.run() }
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            best = min(best, Double(elapsed) / Double(runs))
        }

        var nativeBest = Double.infinity
        let nativeRuns = runs * 10
        var sink: UInt64 = 0
        for _ in 0..<rounds {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<nativeRuns { sink &+= native(blackHole(input)) }
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            nativeBest = min(nativeBest, Double(elapsed) / Double(nativeRuns))
        }
        _ = blackHole(sink)
        return Result(name: name, instructionsPerRun: instructions, nsPerRun: best, nativeNsPerRun: nativeBest)
    }
}

enum BenchmarkError: Error, CustomStringConvertible {
    case mismatch(program: UInt64, native: UInt64)
    case kernel(String)

    var description: String {
        switch self {
        case .mismatch(let program, let native): "program returned \(program), native code \(native)"
        case .kernel(let reason): "the kernel's BPF is not reachable: \(reason)"
        }
    }
}

/// Keeps the optimiser from deleting or hoisting work on `value`.
@inline(never)
func blackHole<T>(_ value: T) -> T { value }
