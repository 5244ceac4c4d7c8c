import MimicCore
import MimicKernel
import Testing

/// The JIT's differential fuzzer in its map mode (`JITMapFuzz`): programs calling the map
/// helpers on arrays, per-CPU arrays and hash maps, under the JIT and the interpreter (no kernel
/// needed; skipped on hosts without a JIT backend).
@Suite(.enabled(if: ExecutionEngine.jit.compilesOnThisHost, "no JIT backend for this host"))
struct JITMapFuzzTests {
    /// 3,000 map programs: both engines agree on everything, the maps' contents included.
    @Test func mapProgramsAgree() throws {
        let report = try JITMapFuzz.run(seed: 0x3A95_0000, count: 3_000)
        #expect(report.mismatches.isEmpty, "\(report.mismatches.joined(separator: "\n\n"))")
        #expect(report.programs == 3_000 && report.notCompiled == 0, "\(report)")
        #expect(report.exited > 300, "\(report)")
        #expect(report.faulted > 300, "\(report)")
    }

    /// The generator writes the lookups the JIT treats apart: most in the proven form
    /// (`lddw r1, handle; mov r2, r10; add r2, k; call 1`), the rest otherwise, on every map.
    @Test func mapProgramsCallTheHelpersInEveryForm() throws {
        let maps = try JITMapFuzz.maps()
        var proven = 0
        var other = 0
        var handles: Set<UInt64> = []
        for seed: UInt64 in 0..<500 {
            let code = JITDifferential.program(seed: seed, maps: maps)
            for (pc, instruction) in code.enumerated() where instruction.opcode == 0x85 && instruction.imm == 1 {
                guard pc >= 4 else { continue }
                let r2 = code[pc - 2].opcode == 0xBF && code[pc - 2].destination == 2 && code[pc - 2].source == 10
                    && code[pc - 1].opcode == 0x07 && code[pc - 1].destination == 2
                let lddw = code[pc - 4].opcode == 0x18 && code[pc - 4].destination == 1
                if r2 && lddw {
                    proven += 1
                    let low = UInt64(UInt32(bitPattern: code[pc - 4].imm))
                    handles.insert(low | UInt64(UInt32(bitPattern: code[pc - 3].imm)) << 32)
                } else {
                    other += 1
                }
            }
        }
        #expect(proven > 300 && other > 100, "proven \(proven), other \(other)")
        #expect(handles.isSuperset(of: maps.map(\.handle)), "\(handles)")
    }
}
