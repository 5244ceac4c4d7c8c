// `mimic-bench --verifier-agreement`: the long agreement run of issue 18 — near-miss programs
// (NearMissGenerator) loaded into the kernel and judged by a predictor, agreement tallied per
// mutation class (VerifierAgreement). Needs root (BPF_PROG_LOAD).

import Foundation
import MimicKernel
import MimicVerifier

enum VerifierAgreementBenchmark {
    /// The predictors `--predictor` can name (a closure from `NearMissProgram` to
    /// `LoadVerdict`); the first is the default.
    static let predictors:
        [(name: String, summary: String, make: @Sendable () throws -> (NearMissProgram) -> LoadVerdict)] = [
            (
                "mimic", "MimicVerifier, given the program type and maps the kernel load gets",
                {
                    mimicPredictor()
                }
            ),
            (
                "kernel", "a second BPF_PROG_LOAD of each program (checks the kernel is deterministic)",
                {
                    try VerifierAgreement.kernelPredictor()
                }
            ),
            (
                "accept-all", "accepts everything (agreement = the kernel's acceptance rate)",
                {
                    VerifierAgreement.acceptAllPredictor()
                }
            ),
        ]

    /// MimicVerifier's verdict (privileged, as the load runs as root) on the program the kernel
    /// gets: the same instructions, program type and maps (map `i` of `program.maps` is the
    /// `lddw` map index `i`, which `VerifierProgram` reads as the kernel reads the descriptor).
    static func mimicPredictor() -> (NearMissProgram) -> LoadVerdict {
        let verifier = Verifier()
        return { program in
            let report = verifier.verify(
                VerifierProgram(
                    name: "near_miss", instructions: program.instructions, type: program.type,
                    maps: program.maps.map(VerifierMap.init)))
            guard let error = report.error else { return .accepted }
            return .rejected(error.message, instruction: error.instructionIndex)
        }
    }

    static func run(seed: UInt64, count: Int, predictor name: String, shape: String?) throws {
        guard let entry = predictors.first(where: { $0.name == name }) else {
            let names = predictors.map(\.name).joined(separator: ", ")
            throw AgreementError(description: "unknown predictor '\(name)' (predictors: \(names))")
        }
        var shapes = NearMissShape.allCases
        if let shape {
            guard let chosen = NearMissShape(rawValue: shape) else {
                let names = NearMissShape.allCases.map(\.rawValue).joined(separator: ", ")
                throw AgreementError(description: "unknown shape '\(shape)' (shapes: \(names))")
            }
            shapes = [chosen]
        }
        let predict = try entry.make()
        print(
            "verifier agreement: seed \(seed), \(count) programs\(shape.map { " of shape \($0)" } ?? ""), predictor \(name) (\(entry.summary))"
        )
        let step = max(1, count / 20)
        let agreement = VerifierAgreement(generator: NearMissGenerator(shapes: shapes))
        let report = try agreement.run(seed: seed, count: count, predict: predict) { report in
            if report.programs % step == 0 {
                let rate = String(format: "%.2f", report.agreementRate * 100)
                FileHandle.standardError.write(
                    Data("  \(report.programs) programs, \(rate) % agreement, \(Int(report.seconds)) s\n".utf8))
            }
        }
        print(report.summary)
    }

    struct AgreementError: Error, CustomStringConvertible {
        var description: String
    }
}
