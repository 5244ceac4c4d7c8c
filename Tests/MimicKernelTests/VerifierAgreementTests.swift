import MimicCore
@testable import MimicKernel
import Testing

@Suite("Near-miss generator")
struct NearMissGeneratorTests {
    @Test("the same seed gives the same program; programs assemble and name their maps")
    func deterministic() {
        let generator = NearMissGenerator()
        for index in 0..<500 {
            let seed = VerifierAgreement.programSeed(runSeed: 0xA9EE, index: index)
            let program = generator.program(seed: seed)
            #expect(program == generator.program(seed: seed))
            #expect(program.instructions.count > 2, "\(program.mutationClass) did not assemble:\n\(program.assembly)")
            #expect(program.instructions.last?.opcode == 0x95 || program.mutation == .uninitializedRegister)
            for instruction in program.instructions
            where instruction.opcode == 0x18 && instruction.source == LoadImm64Kind.mapIndex.rawValue {
                #expect(Int(instruction.imm) < program.maps.count)
            }
        }
    }

    @Test("every shape and mutation is generated, each mutation only where it applies")
    func coverage() {
        let generator = NearMissGenerator()
        var classes = Set<String>()
        for index in 0..<3000 {
            let program = generator.program(seed: VerifierAgreement.programSeed(runSeed: 1, index: index))
            classes.insert(program.mutationClass)
            #expect(
                program.mutation == .valid
                    || NearMissMutation.applicable(to: program.shape).contains(program.mutation))
        }
        var expected = Set<String>()
        for shape in NearMissShape.allCases {
            expected.insert("\(shape.rawValue).valid")
            for mutation in NearMissMutation.applicable(to: shape) {
                expected.insert("\(shape.rawValue).\(mutation.rawValue)")
            }
        }
        #expect(classes == expected)
    }

    @Test("map references become BPF_PSEUDO_MAP_FD with the kernel map's descriptor")
    func mapRewrite() throws {
        let program = NearMissGenerator().program(shape: .mapLookup, mutation: .valid, seed: 3)
        let code = try program.kernelInstructions(mapDescriptors: [42])
        let loads = code.filter { $0.opcode == 0x18 && $0.source != 0 }
        #expect(loads.count == 1)
        #expect(loads.first?.source == LoadImm64Kind.mapFileDescriptor.rawValue && loads.first?.imm == 42)
        #expect(throws: KernelError.self) { try program.kernelInstructions(mapDescriptors: []) }
    }

    @Test("the tally counts agreement per class and keeps one example per kind of disagreement")
    func tally() {
        let generator = NearMissGenerator()
        let program = generator.program(shape: .packet, mutation: .dropBoundsCheck, seed: 9)
        var report = VerifierAgreement.Report()
        let rejected = LoadVerdict.rejected("invalid access to packet, off=12 size=2", instruction: 4)
        VerifierAgreement.record(program, kernel: rejected, predicted: .accepted, into: &report)
        VerifierAgreement.record(
            program, kernel: .rejected("invalid access to packet, off=20 size=4"), predicted: .accepted, into: &report)
        VerifierAgreement.record(program, kernel: rejected, predicted: rejected, into: &report)
        #expect(report.programs == 3 && report.agreed == 1)
        #expect(report.classes["packet.dropBoundsCheck"]?.kernelAccepted == 0)
        #expect(report.disagreements.count == 1)
        #expect(report.disagreements.values.first?.count == 2)
        #expect(
            report.disagreements.keys.first
                == "packet.dropBoundsCheck: kernel rejects (invalid access to packet, off=N size=N), predicted accepts")
        #expect(report.summary.contains("packet.dropBoundsCheck"))
    }
}

@Suite(
    "Verifier agreement against the kernel",
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct VerifierAgreementKernelTests {
    /// 1,000 programs: the kernel's verdicts are deterministic (a second load agrees on every
    /// one), valid programs are accepted, and the mutations give both verdicts.
    @Test("kernel verdicts are deterministic; valid programs load; mutations give both verdicts")
    func sample() throws {
        let report = try VerifierAgreement().run(
            seed: 0x5EED, count: 1000, predict: try VerifierAgreement.kernelPredictor())
        print(report.summary)
        #expect(report.programs == 1000)
        #expect(report.agreed == report.programs, "the kernel's verdicts changed between two loads")
        for (name, tally) in report.classes where name.hasSuffix(".valid") {
            #expect(tally.kernelAccepted == tally.programs, "\(name): \(tally.kernelErrors)")
        }
        let mutated = report.classes.filter { !$0.key.hasSuffix(".valid") }.values
        let accepted = mutated.reduce(0) { $0 + $1.kernelAccepted }
        let programs = mutated.reduce(0) { $0 + $1.programs }
        #expect(accepted > programs / 10 && accepted < programs * 9 / 10, "\(accepted) of \(programs) accepted")
        // Per mutation (over all shapes it applies to), both verdicts appear.
        for mutation in NearMissMutation.allCases where mutation != .valid {
            let tallies = report.classes.filter { $0.key.hasSuffix(".\(mutation.rawValue)") }.values
            let total = tallies.reduce(0) { $0 + $1.programs }
            let yes = tallies.reduce(0) { $0 + $1.kernelAccepted }
            #expect(total > 0 && yes > 0 && yes < total, "\(mutation): \(yes) of \(total) accepted")
        }
    }

    @Test("an accept-everything predictor agrees exactly on the accepted programs")
    func acceptAll() throws {
        let report = try VerifierAgreement().run(
            seed: 7, count: 100, predict: VerifierAgreement.acceptAllPredictor())
        #expect(report.agreed == report.kernelAccepted)
        #expect(report.disagreements.values.allSatisfy { $0.key.contains("predicted accepts") && !$0.kernel.accepted })
    }
}
