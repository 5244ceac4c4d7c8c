import Foundation
import MimicCore

/// Loads near-miss programs into the kernel for its verdict. Maps are created once per set of
/// attributes and shared by the programs (the verdict does not depend on a map's contents).
public final class NearMissKernel {
    private var maps: [MapAttributes: KernelMap] = [:]

    public init() throws(KernelError) { try KernelBPF.requireAvailable() }

    /// The kernel's verdict on `program` (`BPF_PROG_LOAD`; the program is closed again).
    public func verdict(of program: NearMissProgram) throws(KernelError) -> LoadVerdict {
        var descriptors: [Int32] = []
        for attributes in program.maps {
            if let map = maps[attributes] {
                descriptors.append(map.fd)
            } else {
                let map = try KernelBPF.createMap(attributes)
                maps[attributes] = map
                descriptors.append(map.fd)
            }
        }
        return try KernelBPF.verdict(
            try program.kernelInstructions(mapDescriptors: descriptors), type: program.type, name: "near_miss")
    }
}

/// Measures a verifier against the kernel's: generates near-miss programs
/// (`NearMissGenerator`), asks the kernel (`BPF_PROG_LOAD`) and a predictor for each verdict,
/// and tallies agreement per mutation class, listing each kind of disagreement with an example.
public struct VerifierAgreement: Sendable {
    /// The tallies of one mutation class (`NearMissProgram.mutationClass`).
    public struct ClassTally: Sendable, Equatable {
        public var programs = 0
        public var kernelAccepted = 0
        public var predictedAccepted = 0
        public var agreed = 0
        /// The kernel's complaints about the class's programs (numbers as `N`), with counts.
        public var kernelErrors: [String: Int] = [:]

        public var kernelAcceptanceRate: Double { programs == 0 ? 0 : Double(kernelAccepted) / Double(programs) }
        public var agreementRate: Double { programs == 0 ? 0 : Double(agreed) / Double(programs) }
    }

    /// One kind of disagreement: a class, the kernel's verdict and the prediction (complaints
    /// with numbers as `N`), how often, and the first program that showed it.
    public struct Disagreement: Sendable, CustomStringConvertible {
        public var key: String
        public var count: Int
        public var example: NearMissProgram
        public var kernel: LoadVerdict
        public var predicted: LoadVerdict

        public var description: String {
            """
            \(count)× \(key)
              example: seed 0x\(String(example.seed, radix: 16)) (NearMissGenerator().program(seed:)), \(example.type)
              kernel: \(kernel)
              predicted: \(predicted)
            \(example.assembly.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
            """
        }
    }

    /// The outcome of a run.
    public struct Report: Sendable {
        public var programs = 0
        public var agreed = 0
        public var classes: [String: ClassTally] = [:]
        /// By `Disagreement.key`.
        public var disagreements: [String: Disagreement] = [:]
        public var seconds: Double = 0

        public var agreementRate: Double { programs == 0 ? 0 : Double(agreed) / Double(programs) }
        public var kernelAccepted: Int { classes.values.reduce(0) { $0 + $1.kernelAccepted } }

        /// The totals, a table of the classes (programs, kernel acceptance, agreement) and the
        /// disagreements, most frequent first.
        public var summary: String {
            func percent(_ value: Double) -> String { String(format: "%.1f %%", value * 100) }
            var text = """
                \(programs) programs, \(kernelAccepted) accepted by the kernel, agreement \(agreed)/\(programs) (\(percent(agreementRate))), \(String(format: "%.1f", seconds)) s
                class                                   programs  kernel accepts  agreement  kernel's most frequent complaint

                """
            for (name, tally) in classes.sorted(by: { $0.key < $1.key }) {
                let complaint = tally.kernelErrors.max {
                    $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key)
                }
                text +=
                    name.padding(40) + String(tally.programs).leftPadding(8)
                    + percent(tally.kernelAcceptanceRate).leftPadding(16) + percent(tally.agreementRate).leftPadding(11)
                    + "  " + (complaint?.key ?? "-") + "\n"
            }
            if disagreements.isEmpty {
                text += "no disagreements\n"
            } else {
                text += "disagreements:\n"
                for disagreement in disagreements.values.sorted(by: { ($0.count, $1.key) > ($1.count, $0.key) }) {
                    text += disagreement.description + "\n"
                }
            }
            return text
        }
    }

    public var generator: NearMissGenerator

    public init(generator: NearMissGenerator = NearMissGenerator()) { self.generator = generator }

    /// The seed of program `index` in a run seeded with `seed`.
    public static func programSeed(runSeed seed: UInt64, index: Int) -> UInt64 {
        DifferentialFuzzer.programSeed(runSeed: seed, index: index)
    }

    /// Generates `count` programs and compares the kernel's verdict with `predict`'s.
    ///
    /// - Parameter progress: called after every program with the report so far.
    /// - Throws: `KernelError` when the kernel cannot be used (not a rejection: those are verdicts).
    public func run(
        seed: UInt64, count: Int, predict: (NearMissProgram) -> LoadVerdict,
        progress: ((Report) -> Void)? = nil
    ) throws(KernelError) -> Report {
        let kernel = try NearMissKernel()
        let start = DifferentialFuzzer.now()
        var report = Report()
        for index in 0..<max(0, count) {
            let program = generator.program(seed: Self.programSeed(runSeed: seed, index: index))
            let actual = try kernel.verdict(of: program)
            let predicted = predict(program)
            Self.record(program, kernel: actual, predicted: predicted, into: &report)
            report.seconds = DifferentialFuzzer.now() - start
            progress?(report)
        }
        return report
    }

    /// Adds one program's verdicts to `report`.
    static func record(
        _ program: NearMissProgram, kernel: LoadVerdict, predicted: LoadVerdict, into report: inout Report
    ) {
        let name = program.mutationClass
        var tally = report.classes[name] ?? ClassTally()
        tally.programs += 1
        if kernel.accepted { tally.kernelAccepted += 1 }
        if predicted.accepted { tally.predictedAccepted += 1 }
        if let error = kernel.error, !kernel.accepted { tally.kernelErrors[normalized(error), default: 0] += 1 }
        report.programs += 1
        if kernel.accepted == predicted.accepted {
            tally.agreed += 1
            report.agreed += 1
        } else {
            func side(_ verdict: LoadVerdict) -> String {
                verdict.accepted ? "accepts" : "rejects (\(normalized(verdict.error ?? "no message")))"
            }
            let key = "\(name): kernel \(side(kernel)), predicted \(side(predicted))"
            if var known = report.disagreements[key] {
                known.count += 1
                report.disagreements[key] = known
            } else {
                report.disagreements[key] = Disagreement(
                    key: key, count: 1, example: program, kernel: kernel, predicted: predicted)
            }
        }
        report.classes[name] = tally
    }

    /// A complaint with its numbers as `N`, so the same mistake at other offsets counts once.
    static func normalized(_ message: String) -> String { DifferentialFuzzer.reason(fromLog: message) }

    // MARK: Predictors without a verifier

    /// A predictor that asks the kernel again (a second `BPF_PROG_LOAD`): the run then measures
    /// whether the kernel's verdicts are deterministic, and should agree 100%.
    public static func kernelPredictor() throws(KernelError) -> (NearMissProgram) -> LoadVerdict {
        let kernel = try NearMissKernel()
        return { program in
            do {
                return try kernel.verdict(of: program)
            } catch {
                return .rejected("the kernel could not be asked: \(error)")
            }
        }
    }

    /// A predictor that accepts everything: its agreement is the kernel's acceptance rate, the
    /// baseline a verifier must beat.
    public static func acceptAllPredictor() -> (NearMissProgram) -> LoadVerdict { { _ in .accepted } }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
    fileprivate func leftPadding(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
