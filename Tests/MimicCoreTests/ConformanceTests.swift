import Foundation
import Testing
@testable import MimicCore
import MimicTestSupport

/// Runs every bpf_conformance vector through the assembler and the VM and checks R0.
///
/// Vectors Mimic cannot pass would be listed in `knownFailures` with the reason; the list is
/// empty, and a vector listed there that starts passing fails the test so the list stays true.
@Suite struct ConformanceTests {
    /// Vectors expected to fail, by file name, with why.
    static let knownFailures: [String: String] = [:]

    static let vectors: [ConformanceVector] = (try? ConformanceVector.all()) ?? []

    /// Fails when the vectors are required (CI) but absent, so the list below is never empty there.
    @Test(.enabled(if: ExternalTestData.runConformance, Comment(rawValue: ExternalTestData.conformanceSkipMessage)))
    func vectorsArePresent() {
        #expect(
            Self.vectors.count >= 300, "expected the bpf_conformance vectors in \(TestPaths.conformanceDirectory.path)")
    }

    // External data (../shared): runs when present, skipped with the message otherwise.
    @Test(
        .enabled(if: ExternalTestData.conformanceAvailable, Comment(rawValue: ExternalTestData.conformanceSkipMessage)),
        arguments: vectors, [ExecutionEngine.interpreter, .jit])
    func vector(_ vector: ConformanceVector, engine: ExecutionEngine) throws {
        let outcome = Result { try Self.run(vector, engine: engine) }
        if let reason = Self.knownFailures[vector.name] {
            #expect(throws: (any Error).self, "\(vector.name) is listed as failing (\(reason)) but passed") {
                try outcome.get()
            }
            return
        }
        try outcome.get()
    }

    /// Assembles, loads and runs a vector both ways (run and step) and checks its result.
    /// Under `.jit` the program must have compiled (on x86-64 hosts), so the JIT is what ran.
    static func run(_ vector: ConformanceVector, engine: ExecutionEngine = .interpreter) throws {
        let assembly = try #require(vector.assembly, "\(vector.name) has no -- asm section")
        let expected = try #require(vector.expectedResult, "\(vector.name) has no -- result section")
        let instructions = try Assembler.assemble(assembly)
        let vm = VM(emulator: ConformanceEmulator(), configuration: VMConfiguration(engine: engine))
        let program = try vm.load(instructions, name: vector.name)
        if engine.compilesOnThisHost {
            #expect(program.jitCache.compiled(program) != nil, "\(vector.name) did not compile")
        }

        let process = try vm.makeProcess(for: program, context: MemoryContext(vector.memory))
        let r0 = try process.run(instructionLimit: 10_000_000)
        #expect(
            r0 == expected, "\(vector.name): r0 = 0x\(String(r0, radix: 16)), expected 0x\(String(expected, radix: 16))"
        )

        // Single-stepping must agree with running, instruction for instruction.
        let stepper = try vm.makeProcess(for: program, context: MemoryContext(vector.memory))
        var result: StepResult = .running
        var steps = 0
        while case .running = result, steps < 10_000_000 {
            result = try stepper.step()
            steps += 1
        }
        #expect(result == .exited(r0), "\(vector.name): stepping gave \(result)")
        #expect(stepper.instructionsExecuted == process.instructionsExecuted)
    }
}
