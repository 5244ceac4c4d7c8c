import Foundation
import MimicCore
import MimicLinux

/// An execution engine `mimic-bench --suite` times: one column of its tables per engine.
enum Engine: String, CaseIterable, Sendable {
    /// The switch-based interpreter of `Process.run`.
    case interpreter
    /// The x86-64 JIT (`VMConfiguration.engine = .jit`; the interpreter on other hosts).
    case jit

    /// A VM with the Linux emulator (maps, helpers) that runs programs on this engine.
    func makeVM() -> VM {
        switch self {
        case .interpreter: VM(emulator: LinuxEmulator(), configuration: VMConfiguration(engine: .interpreter))
        case .jit: VM(emulator: LinuxEmulator(), configuration: VMConfiguration(engine: .jit))
        }
    }

    /// Engines by name, for `--engine` (comma-separated).
    static func parse(_ list: String) -> [Engine]? {
        var engines: [Engine] = []
        for name in list.split(separator: ",") {
            guard let engine = Engine(rawValue: String(name)) else { return nil }
            if !engines.contains(engine) { engines.append(engine) }
        }
        return engines.isEmpty ? nil : engines
    }
}

/// `mimic-bench --suite`: the programs of the project's shared benchmark directory
/// (`../shared/bench`, the programs uBPF, the Go mimic and native code were measured on; its
/// README.md has their figures) on each `Engine`, beside the `native.c` twin, and the per-operation
/// costs of `ops.c`.
///
/// The directory's Makefile builds the eBPF objects with clang, the native twin and the input
/// blobs (`gen_inputs.py`) into a scratch directory under `.build`, never into the shared
/// directory. Each program's R0 is checked against the README's "expected r0" column, on every
/// engine and natively; its instruction count is compared with the README's "insns/run".
/// Rounds are interleaved (every program and engine once per round) and the best round counts.
struct SuiteBenchmark {
    let shared: String
    let scratch: String
    let engines: [Engine]
    let rounds: Int
    let quick: Bool
    let filter: String?
    /// Use what a previous run built in `scratch` instead of running make, and leave out the
    /// native twin: for valgrind, under which Foundation cannot spawn processes.
    var skipBuild = false

    /// The six programs of the suite, in the README's order (`xdp_md` and `ops` are not among them).
    static let programNames = ["fnv", "sieve", "collatz", "xdp_parse", "calls", "maps"]

    /// The package root (three levels above this file), where `.build` lives.
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }
    /// `../shared/bench` beside the package.
    static var defaultShared: String {
        packageRoot.deletingLastPathComponent().appendingPathComponent("shared/bench").path
    }
    /// Where the shared programs are built.
    static var defaultScratch: String { packageRoot.appendingPathComponent(".build/shared-bench").path }

    /// A row of the README's program table.
    struct Expectation {
        let name: String
        let instructionsPerRun: UInt64
        let r0: UInt64
        /// `r0` as the README writes it (hexadecimal or decimal).
        let r0Text: String
    }

    func run() throws {
        let expectations = try checkSharedDirectory()
        if skipBuild {
            for file in ["native", "ops.o"] + Self.programNames.flatMap({ ["\($0).o", "\($0).in"] })
            where !FileManager.default.fileExists(atPath: path(file)) {
                throw SuiteError(
                    "--no-build: \(path(file)) is missing (run --suite once without --no-build to build it)")
            }
        } else {
            try build()
        }
        let chosen = expectations.filter { expectation in filter.map { expectation.name.contains($0) } ?? true }
        let runOps = filter.map { "ops".contains($0) } ?? true
        guard !chosen.isEmpty || runOps else {
            throw SuiteError(
                "--filter \(filter ?? "") matches none of \(Self.programNames.joined(separator: ", ")), ops")
        }
        print("shared benchmarks: \(shared) (built in \(scratch)); best of \(rounds) interleaved rounds")
        if !chosen.isEmpty { try runPrograms(chosen) }
        if runOps { try runOperations() }
    }

    // MARK: Preparation

    /// Checks that `shared` is the benchmark directory and reads its README's expectations.
    func checkSharedDirectory() throws -> [Expectation] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: shared, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SuiteError(
                "the shared benchmark directory \(shared) does not exist: the suite needs the programs of "
                    + "../shared/bench beside the package (pass another with --shared DIR)")
        }
        let readme = (shared as NSString).appendingPathComponent("README.md")
        for file in ["Makefile", "native.c", "gen_inputs.py", "ops.c"] + Self.programNames.map({ "\($0).c" })
        where !FileManager.default.fileExists(atPath: (shared as NSString).appendingPathComponent(file)) {
            throw SuiteError("\(shared) is not the shared benchmark directory: it has no \(file)")
        }
        guard let text = try? String(contentsOfFile: readme, encoding: .utf8) else {
            throw SuiteError("cannot read \(readme), which holds the expected r0 of each program")
        }
        return try Self.expectations(readme: text)
    }

    /// The expected instruction count and R0 of each program, from the README's table
    /// (`| program | what it stresses | input | insns/run | expected r0 |`).
    static func expectations(readme: String) throws -> [Expectation] {
        var found: [Expectation] = []
        for line in readme.split(separator: "\n") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            // "", program, what, input, insns, r0, ""
            guard cells.count == 7, programNames.contains(cells[1]), !found.contains(where: { $0.name == cells[1] })
            else { continue }
            let countText = cells[4].replacingOccurrences(of: ",", with: "")
            let r0Text = cells[5]
            let r0 = r0Text.hasPrefix("0x") ? UInt64(r0Text.dropFirst(2), radix: 16) : UInt64(r0Text)
            guard let count = UInt64(countText), let r0 else {
                throw SuiteError(
                    "README.md: cannot read the insns/run '\(cells[4])' or expected r0 '\(r0Text)' of \(cells[1])")
            }
            found.append(Expectation(name: cells[1], instructionsPerRun: count, r0: r0, r0Text: r0Text))
        }
        let missing = programNames.filter { name in !found.contains { $0.name == name } }
        guard missing.isEmpty else {
            throw SuiteError("README.md has no expected r0 for \(missing.joined(separator: ", "))")
        }
        return found
    }

    /// Builds the objects, the native twin and the inputs with the directory's Makefile.
    func build() throws {
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let make = Foundation.Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        make.arguments = ["make", "--no-print-directory", "-C", shared, "CLANG=clang", "OUT=\(scratch)"]
        let output = Pipe()
        make.standardOutput = output
        make.standardError = output
        do {
            try make.run()
        } catch {
            throw SuiteError("cannot run make to build \(shared): \(error)")
        }
        let log = output.fileHandleForReading.readDataToEndOfFile()
        make.waitUntilExit()
        guard make.terminationStatus == 0 else {
            throw SuiteError(
                "building \(shared) with `make CLANG=clang OUT=\(scratch)` failed:\n"
                    + String(decoding: log, as: UTF8.self))
        }
    }

    func path(_ file: String) -> String { (scratch as NSString).appendingPathComponent(file) }

    /// Loads the object `name.o` into a fresh VM of `engine`.
    func load(_ name: String, engine: Engine) throws -> LoadedObject {
        let vm = engine.makeVM()
        return try vm.load(object: ObjectFile(contentsOf: path("\(name).o")))
    }

    // MARK: Programs

    /// One program on one engine: the loaded program and its input.
    struct Runner {
        let program: Program
        let input: [UInt8]
        /// Runs per timed round.
        var runs = 1

        /// Runs once and returns R0 and the instructions executed.
        func check() throws -> (r0: UInt64, instructions: UInt64) {
            let process = try program.vm.makeProcess(for: program, context: MemoryContext(input, name: "input"))
            let r0 = try process.run()
            return (r0, process.instructionsExecuted)
        }

        /// ns per run of one round of `runs` runs; processes are made before the clock starts.
        func time() throws -> Double {
            var processes: [MimicCore.Process] = []
            processes.reserveCapacity(runs)
            let context = MemoryContext(input, name: "input")
            for _ in 0..<runs { processes.append(try program.vm.makeProcess(for: program, context: context)) }
            let start = DispatchTime.now().uptimeNanoseconds
            for process in processes { _ = try process.run() }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(runs)
        }
    }

    /// The wall-clock time one timed round aims at, per program and engine.
    var roundTarget: Double { quick ? 20e6 : 200e6 }

    func runPrograms(_ expectations: [Expectation]) throws {
        var runners: [[Runner]] = [] // [program][engine]
        var instructions: [UInt64] = []
        var nativeRuns: [Int] = []
        for expectation in expectations {
            let input = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path("\(expectation.name).in"))))
            var row: [Runner] = []
            var count: UInt64 = 0
            for engine in engines {
                let object = try load(expectation.name, engine: engine)
                var runner = Runner(program: try object.program(named: "bench_\(expectation.name)"), input: input)
                let (r0, executed) = try runner.check()
                guard r0 == expectation.r0 else {
                    throw SuiteError(
                        "\(expectation.name) on the \(engine.rawValue) returned \(hex(r0)), the README expects \(hex(expectation.r0))"
                    )
                }
                count = executed
                // Calibrate: enough runs for the round to take about `roundTarget`.
                let once = try runner.time()
                runner.runs = max(1, min(2_000, Int(roundTarget / max(once, 1))))
                row.append(runner)
            }
            if count != expectation.instructionsPerRun {
                print(
                    "note: \(expectation.name) executes \(count) instructions per run, the README says \(expectation.instructionsPerRun) "
                        + "(another clang can emit other code)")
            }
            if !skipBuild {
                let probe = try runNative(expectation, runs: 10)
                nativeRuns.append(max(1, Int(roundTarget / max(probe, 1))))
            }
            runners.append(row)
            instructions.append(count)
        }

        var best = [[Double]](
            repeating: [Double](repeating: .infinity, count: engines.count), count: expectations.count)
        var nativeBest = [Double](repeating: .infinity, count: expectations.count)
        for _ in 0..<rounds {
            for (p, row) in runners.enumerated() {
                for (e, runner) in row.enumerated() { best[p][e] = min(best[p][e], try runner.time()) }
                if !skipBuild {
                    nativeBest[p] = min(nativeBest[p], try runNative(expectations[p], runs: nativeRuns[p]))
                }
            }
        }

        var header = "program    insns/run  r0 (= README)      "
        for engine in engines {
            header += "  " + pad("\(engine.rawValue) ns/run", 20) + pad("ns/insn", 9)
        }
        if !skipBuild {
            header += "   native ns/run"
            for engine in engines { header += "  " + pad("\(engine.rawValue) ÷ native", 20) }
        }
        print(header)
        for (p, expectation) in expectations.enumerated() {
            var line =
                pad(expectation.name, 10, left: false) + pad(grouped(instructions[p]), 10) + "  "
                + pad(expectation.r0Text, 18, left: false) + " "
            for e in engines.indices {
                line +=
                    "  " + pad(grouped(best[p][e]), 20)
                    + pad(String(format: "%.2f", best[p][e] / Double(instructions[p])), 9)
            }
            guard !skipBuild else {
                print(line + "  (native not run with --no-build)")
                continue
            }
            line += "  " + pad(grouped(nativeBest[p]), 14)
            for e in engines.indices { line += "  " + pad(String(format: "%.1f×", best[p][e] / nativeBest[p]), 20) }
            print(line)
        }
    }

    /// ns per run of the native twin over `runs` runs (one process, `-reps 1`); checks its R0.
    func runNative(_ expectation: Expectation, runs: Int) throws -> Double {
        let native = Foundation.Process()
        native.executableURL = URL(fileURLWithPath: path("native"))
        native.arguments = [expectation.name, path("\(expectation.name).in"), "-n", String(runs), "-reps", "1"]
        let output = Pipe()
        native.standardOutput = output
        try native.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        native.waitUntilExit()
        // "r0=N (0xH) runs=1xR total=...ms per_run_ns=T"
        func field(_ key: String) -> Substring? {
            text.split(separator: " ").first { $0.hasPrefix(key) }.map { $0.dropFirst(key.count) }
        }
        guard native.terminationStatus == 0, let r0 = field("r0=").flatMap({ UInt64($0) }),
            let ns = field("per_run_ns=").flatMap({ Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        else {
            throw SuiteError("the native twin failed on \(expectation.name): \(text)")
        }
        guard r0 == expectation.r0 else {
            throw SuiteError(
                "the native twin returned \(hex(r0)) for \(expectation.name), the README expects \(hex(expectation.r0))"
            )
        }
        return ns
    }

    // MARK: Operations

    /// Iterations of each `ops.c` loop (its `N`).
    static let operationIterations = 100_000

    /// The programs of `ops.c` and what each returns (computed here from its C source).
    static let operationPrograms: [(name: String, expected: UInt64)] = {
        let n = UInt32(operationIterations)
        func sum(_ term: (UInt32, UInt32) -> UInt64) -> UInt64 {
            (0..<n).reduce(0) { acc, i in acc &+ term(i, (i &* 40503) & 255) }
        }
        return [
            ("op_base", sum { i, k in UInt64(k ^ i) }),
            ("op_array", sum { i, _ in UInt64(i) }), // the array is all zeros: 0 ^ i
            ("op_hash", sum { i, k in UInt64(k) &* 3 ^ UInt64(i) }),
            ("op_hashfill", 0),
            ("op_hashupd", sum { _, k in UInt64(k) }), // bpf_map_update_elem returns 0
            ("op_cpu", sum { i, k in UInt64(k ^ i) }), // vCPU 0
        ]
    }()

    func runOperations() throws {
        var runners: [[Runner]] = [] // [engine][program]
        for engine in engines {
            let object = try load("ops", engine: engine)
            var row: [Runner] = []
            for (name, expected) in Self.operationPrograms {
                var runner = Runner(program: try object.program(named: name), input: [])
                let (r0, _) = try runner.check()
                guard r0 == expected else {
                    throw SuiteError("ops.c \(name) on the \(engine.rawValue) returned \(r0), expected \(expected)")
                }
                let once = try runner.time()
                runner.runs = max(1, min(2_000, Int(roundTarget / 4 / max(once, 1))))
                row.append(runner)
            }
            runners.append(row)
        }
        // best[engine][program name]: ns per run
        var best = [[String: Double]](repeating: [:], count: engines.count)
        for _ in 0..<rounds {
            for (e, row) in runners.enumerated() {
                for runner in row {
                    best[e][runner.program.name] = min(best[e][runner.program.name] ?? .infinity, try runner.time())
                }
            }
        }
        func ns(_ e: Int, _ name: String) -> Double { best[e][name] ?? 0 } // every program was timed
        print("")
        print(
            pad("operation (ops.c, cost = (op − base) / \(grouped(UInt64(Self.operationIterations))))", 62, left: false)
                + engines.map { pad("\($0.rawValue) ns/op", 20) }.joined())
        let rows: [(String, (Int) -> Double)] = [
            ("array lookup (op_array − op_base)", { e in ns(e, "op_array") - ns(e, "op_base") }),
            (
                "hash lookup (op_hash − op_hashfill − op_base)",
                { e in ns(e, "op_hash") - ns(e, "op_hashfill") - ns(e, "op_base") }
            ),
            ("hash update (op_hashupd − op_base)", { e in ns(e, "op_hashupd") - ns(e, "op_base") }),
            (
                "trivial helper, bpf_get_smp_processor_id (op_cpu − op_base)",
                { e in ns(e, "op_cpu") - ns(e, "op_base") }
            ),
        ]
        for (label, cost) in rows {
            print(
                pad(label, 62, left: false)
                    + engines.indices.map {
                        pad(String(format: "%.1f", cost($0) / Double(Self.operationIterations)), 20)
                    }.joined())
        }
        print(
            pad("(op_base loop alone, ns/run)", 62, left: false)
                + engines.indices.map { pad(grouped(ns($0, "op_base")), 20) }.joined())
    }
}

struct SuiteError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

private func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

/// `value` rounded, with thousands separators.
private func grouped<T: BinaryFloatingPoint>(_ value: T) -> String { grouped(UInt64(max(0, value.rounded()))) }
private func grouped(_ value: UInt64) -> String {
    var digits = Array(String(value))
    var index = digits.count - 3
    while index > 0 {
        digits.insert(",", at: index)
        index -= 3
    }
    return String(digits)
}

/// `text` padded to `width` characters, right-aligned unless `left` is false.
private func pad(_ text: String, _ width: Int, left: Bool = true) -> String {
    let fill = String(repeating: " ", count: max(0, width - text.count))
    return left ? fill + text : text + fill
}
