// `mimic-bench --verifier-agreement`: the long agreement run of issue 18 — near-miss programs
// (NearMissGenerator) loaded into the kernel and judged by a predictor, agreement tallied per
// mutation class (VerifierAgreement). Needs root (BPF_PROG_LOAD).

import Foundation
import MimicKernel

enum VerifierAgreementBenchmark {
    /// The predictors `--predictor` can name. A verifier module adds its own entry here
    /// (a closure from `NearMissProgram` to `LoadVerdict`).
    static let predictors: [(name: String, summary: String, make: @Sendable () throws -> (NearMissProgram) -> LoadVerdict)] = [
        ("kernel", "a second BPF_PROG_LOAD of each program (checks the kernel is deterministic)", {
            try VerifierAgreement.kernelPredictor()
        }),
        ("accept-all", "accepts everything (agreement = the kernel's acceptance rate)", {
            VerifierAgreement.acceptAllPredictor()
        }),
    ]

    static func run(seed: UInt64, count: Int, predictor name: String) throws {
        guard let entry = predictors.first(where: { $0.name == name }) else {
            let names = predictors.map(\.name).joined(separator: ", ")
            throw AgreementError(description: "unknown predictor '\(name)' (predictors: \(names))")
        }
        let predict = try entry.make()
        print("verifier agreement: seed \(seed), \(count) programs, predictor \(name) (\(entry.summary))")
        let step = max(1, count / 20)
        let report = try VerifierAgreement().run(seed: seed, count: count, predict: predict) { report in
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
