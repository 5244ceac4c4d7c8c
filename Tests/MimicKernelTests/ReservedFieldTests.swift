import Testing
import MimicCore
@testable import MimicKernel

/// The loader's validity rule against the kernel's verifier: a field an instruction does not
/// use must be zero ("... uses reserved fields"), and a function may neither jump out of itself
/// nor fall into the next one ("jump out of range", "last insn is not an exit or jmp").
@Suite(
    "Reserved fields and function structure: Mimic refuses what the kernel refuses",
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct ReservedFieldTests {
    static func op(_ operation: Operation, dst: UInt8 = 0, src: UInt8 = 0, off: Int16 = 0, imm: Int32 = 0)
        -> RawInstruction
    {
        var instruction = RawInstruction(
            opcode: operation.form.opcode, destination: dst, source: src, offset: off, imm: imm)
        if case .source(let value) = operation.form.discriminator { instruction.source = value }
        return instruction
    }

    static let mov0 = op(.mov64Imm)
    static let exit = op(.exit)

    /// Programs the kernel refuses, with the verifier's words.
    static let refused: [(String, [RawInstruction], String)] = [
        ("exit dst=1", [mov0, op(.exit, dst: 1)], "uses reserved fields"),
        ("exit imm=1", [mov0, op(.exit, imm: 1)], "uses reserved fields"),
        ("ja imm=1", [mov0, op(.jump, imm: 1), exit], "uses reserved fields"),
        ("add imm src=1", [mov0, op(.add64Imm, src: 1, imm: 1), exit], "uses reserved fields"),
        ("add reg imm=1", [mov0, op(.add64Reg, src: 0, imm: 1), exit], "uses reserved fields"),
        ("ldxdw imm=1", [op(.load64, dst: 0, src: 10, off: -8, imm: 1), exit], "uses reserved fields"),
        ("stdw src=1", [op(.store64Imm, dst: 10, src: 1, off: -8, imm: 1), mov0, exit], "uses reserved fields"),
        ("call dst=1", [op(.callHelper, dst: 1, imm: 7), exit], "uses reserved fields"),
        ("jeq imm src=1", [mov0, op(.jumpEqual64Imm, dst: 0, src: 1), exit], "uses reserved fields"),
        ("jump out of a function", [op(.callLocal, imm: 2), op(.jump, off: 1), exit, mov0, exit], "jump out of range"),
        ("function falls through", [op(.callLocal, imm: 1), mov0, mov0, exit], "last insn is not an exit or jmp"),
    ]

    @Test func theKernelAndMimicRefuseTheSamePrograms() throws {
        for (name, code, words) in Self.refused {
            do {
                _ = try KernelBPF.loadProgram(code, type: .socketFilter, name: "reserved")
                Issue.record("\(name): the kernel accepted it")
            } catch {
                #expect(
                    error.verifierLog?.contains(words) == true || error.description.contains(words),
                    "\(name): \(error)")
            }
            #expect(throws: LoadError.self, "\(name): Mimic accepted it") { try VM().load(code) }
        }
    }

    /// The one reserved field the kernel does not check: `exit`'s offset. RFC 9669 reserves it
    /// and Mimic refuses it, a documented difference.
    @Test func exitOffsetIsTheOneDifference() throws {
        let code = [Self.mov0, Self.op(.exit, off: 1)]
        _ = try KernelBPF.loadProgram(code, type: .socketFilter, name: "exit_off")
        let error = #expect(throws: LoadError.self) { try VM().load(code) }
        #expect(error?.reason == .reservedField(mnemonic: "exit", field: "off", value: 1))
    }
}
