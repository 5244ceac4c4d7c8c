#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import MimicCore
import MimicLinux

/// Runs generated programs in the kernel (`BPF_PROG_TEST_RUN`, JIT-compiled) and in Mimic, and
/// reports every difference in the 32-bit return value, with the program's disassembly and a
/// minimized reproduction.
///
/// Programs the verifier rejects are counted (by the last line of the verifier's log) and
/// skipped; the generator is built to keep that rate low.
public struct DifferentialFuzzer: Sendable {
    /// What one program did in both places.
    public enum Evaluation: Sendable {
        /// The verifier refused the program; its log.
        case rejected(log: String)
        /// Results per packet: the kernel's and Mimic's (a value, or an error message).
        case ran([PacketResult])

        /// The first packet on which the two disagree.
        var firstMismatch: PacketResult? {
            if case .ran(let results) = self { return results.first { !$0.agrees } }
            return nil
        }
    }

    /// One packet's results.
    public struct PacketResult: Sendable {
        public var packet: [UInt8]
        public var kernel: UInt32
        /// Mimic's R0 truncated to 32 bits, or why Mimic failed.
        public var mimic: Result<UInt32, MimicFailure>

        public var agrees: Bool {
            if case .success(let value) = mimic { return value == kernel }
            return false
        }
    }

    /// Why Mimic could not run a program the kernel accepted.
    public struct MimicFailure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// A program on which Mimic and the kernel disagree.
    public struct Mismatch: Sendable, CustomStringConvertible {
        /// The index of the program in the run and the seed that generates it
        /// (`FuzzGenerator.program(seed:)`).
        public var index: Int
        public var programSeed: UInt64
        public var program: [RawInstruction]
        public var result: PacketResult
        /// The smallest program found (by deleting pieces) that still disagrees, and its result.
        public var minimized: [RawInstruction]
        public var minimizedResult: PacketResult

        public var description: String {
            func show(_ r: PacketResult) -> String {
                let mimic: String
                switch r.mimic {
                case .success(let value): mimic = "0x\(String(value, radix: 16))"
                case .failure(let failure): mimic = "error: \(failure)"
                }
                return "kernel 0x\(String(r.kernel, radix: 16)), mimic \(mimic)"
            }
            return """
                mismatch in program #\(index) (seed 0x\(String(programSeed, radix: 16))): \(show(result))
                packet: \(r(minimizedResult.packet))
                minimized (\(minimized.count) slots, was \(program.count)): \(show(minimizedResult))
                \(Disassembler.listing(minimized))
                """
        }

        func r(_ bytes: [UInt8]) -> String {
            bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        }
    }

    /// Counts and findings of a run.
    public struct Report: Sendable {
        public var programs = 0
        public var rejected = 0
        /// Packets run in both places.
        public var runs = 0
        public var mismatches: [Mismatch] = []
        /// Rejections by the last line of the verifier log (numbers replaced by `N`).
        public var rejectionReasons: [String: Int] = [:]
        public var seconds: Double = 0

        /// Rejected programs as a fraction of all.
        public var rejectionRate: Double { programs == 0 ? 0 : Double(rejected) / Double(programs) }

        public var summary: String {
            let rate = (rejectionRate * 1000).rounded() / 10
            var text =
                "\(programs) programs, \(rejected) rejected by the verifier (\(rate)%), \(runs) runs compared, \(mismatches.count) mismatches, \(String(format: "%.1f", seconds)) s"
            if !rejectionReasons.isEmpty {
                text +=
                    "\nrejections: "
                    + rejectionReasons.sorted { $0.value > $1.value }.prefix(5)
                    .map { "\($0.value)× \($0.key)" }.joined(separator: "; ")
            }
            return text
        }
    }

    public var generator: FuzzGenerator
    /// Mimic's instruction limit per run (generated loops are short; this only catches hangs).
    public var instructionLimit: UInt64
    /// Minimize mismatching programs (costs many kernel loads per mismatch).
    public var minimize: Bool
    /// Keep at most this many mismatches (the run continues and counts the rest).
    public var maxReportedMismatches: Int

    public init(
        generator: FuzzGenerator = FuzzGenerator(), instructionLimit: UInt64 = 1_000_000, minimize: Bool = true,
        maxReportedMismatches: Int = 10
    ) {
        self.generator = generator
        self.instructionLimit = instructionLimit
        self.minimize = minimize
        self.maxReportedMismatches = maxReportedMismatches
    }

    /// The seed of program `index` in a run seeded with `seed`.
    public static func programSeed(runSeed seed: UInt64, index: Int) -> UInt64 {
        var random = SeededRandom(seed: seed ^ (UInt64(truncatingIfNeeded: index) &* 0xD1B5_4A32_D192_ED03))
        return random.next()
    }

    /// Generates and compares `count` programs.
    ///
    /// - Parameter progress: called after every program with the report so far.
    /// - Throws: `KernelError.unavailable` when the kernel cannot be used.
    public func run(seed: UInt64, count: Int, progress: ((Report) -> Void)? = nil) throws(KernelError) -> Report {
        try KernelBPF.requireAvailable()
        let start = Self.now()
        let vm = VM(emulator: LinuxEmulator())
        var report = Report()
        for index in 0..<max(0, count) {
            let programSeed = Self.programSeed(runSeed: seed, index: index)
            let program = generator.program(seed: programSeed)
            report.programs += 1
            let evaluation = evaluate(program, vm: vm)
            switch evaluation {
            case .rejected(let log):
                report.rejected += 1
                report.rejectionReasons[Self.reason(fromLog: log), default: 0] += 1
            case .ran(let results):
                report.runs += results.count
                if let bad = results.first(where: { !$0.agrees }) {
                    if report.mismatches.count < maxReportedMismatches {
                        let (small, smallResult) = minimize ? reduce(program, failing: bad, vm: vm) : (program, bad)
                        report.mismatches.append(
                            Mismatch(
                                index: index, programSeed: programSeed, program: program.instructions,
                                result: bad, minimized: small.instructions, minimizedResult: smallResult))
                    } else {
                        report.mismatches.append(
                            Mismatch(
                                index: index, programSeed: programSeed, program: program.instructions,
                                result: bad, minimized: program.instructions, minimizedResult: bad))
                    }
                }
            }
            report.seconds = Self.now() - start
            progress?(report)
        }
        return report
    }

    /// Runs `program` on each of its packets in the kernel and in `vm`.
    public func evaluate(_ program: FuzzProgram, vm: VM) -> Evaluation {
        let instructions = program.instructions
        let kernelProgram: KernelProgram
        do {
            kernelProgram = try KernelBPF.loadProgram(instructions, type: .xdp, name: "mimic_fuzz")
        } catch {
            return .rejected(log: error.verifierLog ?? error.description)
        }
        let loaded: Program
        do {
            loaded = try vm.load(instructions, name: "fuzz")
        } catch {
            let failure = MimicFailure(description: "load: \(error)")
            return .ran(
                program.packets.compactMap { packet in
                    (try? kernelProgram.testRun(data: packet)).map {
                        PacketResult(packet: packet, kernel: $0.returnValue, mimic: .failure(failure))
                    }
                })
        }
        var results: [PacketResult] = []
        for packet in program.packets {
            guard let kernelRun = try? kernelProgram.testRun(data: packet) else { continue }
            let mimic: Result<UInt32, MimicFailure>
            do {
                let process = try vm.makeProcess(for: loaded, context: XDPContext(packet: packet))
                mimic = .success(UInt32(truncatingIfNeeded: try process.run(instructionLimit: instructionLimit)))
            } catch {
                mimic = .failure(MimicFailure(description: "\(error)"))
            }
            results.append(PacketResult(packet: packet, kernel: kernelRun.returnValue, mimic: mimic))
        }
        return .ran(results)
    }

    // MARK: Minimizing

    /// Deletes pieces of `program` (items, branch and loop wrappers, whole callees) while the
    /// kernel still accepts it and the results still differ on the failing packet.
    func reduce(_ program: FuzzProgram, failing: PacketResult, vm: VM) -> (FuzzProgram, PacketResult) {
        var current = program
        current.packets = [failing.packet]
        var currentResult = failing
        var attempts = 0
        var improved = true
        while improved, attempts < 4000 {
            improved = false
            for candidate in Self.reductions(of: current) {
                attempts += 1
                if attempts >= 4000 { break }
                if let bad = evaluate(candidate, vm: vm).firstMismatch {
                    current = candidate
                    currentResult = bad
                    improved = true
                    break
                }
            }
        }
        return (current, currentResult)
    }

    /// Smaller variants of `program`, biggest cuts first.
    static func reductions(of program: FuzzProgram) -> [FuzzProgram] {
        var result: [FuzzProgram] = []
        // Drop a callee and every call of it.
        for function in program.functions.indices.dropFirst().reversed() {
            result.append(program.removingFunction(function))
        }
        for function in program.functions.indices {
            for items in reductions(of: program.functions[function]) {
                var smaller = program
                smaller.functions[function] = items
                result.append(smaller)
            }
        }
        return result
    }

    static func reductions(of items: [FuzzItem]) -> [[FuzzItem]] {
        var result: [[FuzzItem]] = []
        for index in items.indices {
            if case .fixed = items[index] { continue }
            var removed = items
            removed.remove(at: index)
            result.append(removed)
            func replace(with pieces: [FuzzItem]) {
                var copy = items
                copy.replaceSubrange(index...index, with: pieces)
                result.append(copy)
            }
            switch items[index] {
            case .skip(let condition, let body):
                replace(with: body)
                for smaller in reductions(of: body) { replace(with: [.skip(condition: condition, body: smaller)]) }
            case .ifElse(let condition, let elseBody, let thenBody, let long):
                replace(with: elseBody)
                replace(with: thenBody)
                for smaller in reductions(of: elseBody) {
                    replace(with: [.ifElse(condition: condition, elseBody: smaller, thenBody: thenBody, longJump: long)]
                    )
                }
                for smaller in reductions(of: thenBody) {
                    replace(with: [.ifElse(condition: condition, elseBody: elseBody, thenBody: smaller, longJump: long)]
                    )
                }
            case .loop(let counter, let times, let body, let jump32):
                replace(with: body)
                if times > 1 { replace(with: [.loop(counter: counter, times: 1, body: body, jump32: jump32)]) }
                for smaller in reductions(of: body) {
                    replace(with: [.loop(counter: counter, times: times, body: smaller, jump32: jump32)])
                }
            default:
                break
            }
        }
        return result
    }

    // MARK: Helpers

    /// The verifier's complaint: the last log line that is not a statistic, numbers as `N`.
    static func reason(fromLog log: String) -> String {
        let lines = log.split(separator: "\n").map(String.init).filter {
            !$0.hasPrefix("processed ") && !$0.hasPrefix("verification time") && !$0.hasPrefix("stack depth")
                && !$0.isEmpty
        }
        guard let last = lines.last else { return "(no log)" }
        var text = ""
        var inNumber = false
        for character in last {
            if character.isNumber {
                if !inNumber { text.append("N") }
                inNumber = true
            } else {
                inNumber = false
                text.append(character)
            }
        }
        return text
    }

    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
