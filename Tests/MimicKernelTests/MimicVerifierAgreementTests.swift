import Foundation
import MimicCore
@testable import MimicKernel
import MimicVerifier
import Testing

/// MimicVerifier measured against the kernel's verdicts: the corpus's recorded ones (no kernel
/// needed: the manifest is the kernel's record) and near-miss programs loaded now.
@Suite("MimicVerifier against the kernel's verdicts")
struct MimicVerifierAgreementTests {
    /// Corpus programs whose rejection Mimic places at another instruction than the kernel, with
    /// why; their verdict and error line must still agree.
    static let knownInstructionDifferences: [String: String] = [
        "loops.o/loop_unbounded":
            "the kernel names the instruction where its count passed 1,000,000, which depends on the order it explores paths in and on what its pruning skipped; Mimic runs out one instruction further on"
    ]

    @Test("Mimic gives the manifest's verdict on every corpus program, and a rejection's instruction and error line")
    func corpus() throws {
        let manifest = try VerifierCorpus.loadManifest()
        #expect(manifest.programs.count == 83)
        var objects: [String: ObjectFile] = [:]
        for entry in manifest.programs {
            let name = "\(entry.object)/\(entry.program)"
            let object =
                try objects[entry.object]
                ?? ObjectFile(contentsOf: VerifierCorpus.directory.appendingPathComponent(entry.object).path)
            objects[entry.object] = object
            let program = try #require(
                object.programs.first { $0.name == entry.program }, "\(name) is not in its object")
            let report = Verifier().verify(object: object, program: program)
            let mimic = report.error.map { "rejected at \($0.instructionIndex): \($0.message)" } ?? "accepted"
            #expect(
                report.accepted == (entry.verdict == "accepted"),
                "\(name): the kernel \(entry.verdict) it (\(entry.error ?? "")), Mimic \(mimic)")
            guard let error = report.error, entry.verdict == "rejected" else { continue }
            // The manifest's error is the log's last line; Mimic's message may have lines before it.
            let lastLine = error.message.split(separator: "\n").last.map(String.init)
            #expect(lastLine == entry.error, "\(name): kernel '\(entry.error ?? "")', Mimic '\(error.message)'")
            // The kernel's log names an instruction for most rejections (not for a program that
            // does not end in an exit, say: it is refused before any instruction is walked).
            if let instruction = entry.instruction, Self.knownInstructionDifferences[name] == nil {
                #expect(error.instructionIndex == instruction, "\(name): kernel at \(instruction), Mimic \(mimic)")
            }
        }
    }

    /// MimicVerifier's prediction for a near-miss program: the kernel load's instructions,
    /// program type and maps (as `mimic-bench --verifier-agreement --predictor mimic`).
    static func predict(_ program: NearMissProgram) -> LoadVerdict {
        let report = Verifier().verify(
            VerifierProgram(
                name: "near_miss", instructions: program.instructions, type: program.type,
                maps: program.maps.map(VerifierMap.init)))
        guard let error = report.error else { return .accepted }
        return .rejected(error.message, instruction: error.instructionIndex)
    }

    @Test(
        "Mimic agrees with the kernel on at least 99 % of 1,000 near-miss programs",
        .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
    func nearMisses() throws {
        let report = try VerifierAgreement().run(seed: 0xA6EE, count: 1000, predict: Self.predict)
        print(report.summary)
        #expect(report.programs == 1000)
        #expect(report.agreed * 100 >= report.programs * 99, "\(report.agreed) of \(report.programs) agree")
    }
}
