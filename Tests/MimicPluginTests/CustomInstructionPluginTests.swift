import Foundation
import MimicCore
import Testing

/// The C sample plugin with custom instructions (Examples/Plugins/c-custom-insn, ABI 1.2).
@Suite(.serialized) struct CustomInstructionPluginTests {
    init() { PluginFixtures.quietLogs }

    static let library: Result<String, any Error> = Result {
        try PluginFixtures.run(
            ["sh", PluginFixtures.examples.appendingPathComponent("c-custom-insn/build.sh").path],
            in: nil, environment: ["OUT": PluginFixtures.scratch.path])
        return PluginFixtures.scratch.appendingPathComponent("libcustom_insn.so").path
    }

    func plugin() throws -> PluginLibrary { try PluginLibrary.load(path: try Self.library.get()) }

    /// r1 = 0xff; popcnt r1, r1, 100; stinv [r10-8], 0x0f0f0f0f; r2 = *(u32 *)(r10-8); r0 = r1 + r2
    static let program: [RawInstruction] = [
        RawInstruction(opcode: 0xb7, destination: 1, imm: 0xff),
        RawInstruction(opcode: 0xf7, destination: 1, source: 1, imm: 100),
        RawInstruction(opcode: 0xfe, destination: 10, offset: -8, imm: 0x0f0f_0f0f),
        RawInstruction(opcode: 0x61, destination: 2, source: 10, offset: -8),
        RawInstruction(opcode: 0xbf, destination: 0, source: 1),
        RawInstruction(opcode: 0x0f, destination: 0, source: 2),
        RawInstruction(opcode: 0x95),
    ]

    @Test func describesItsCustomInstructions() throws {
        let plugin = try plugin()
        #expect(plugin.abiVersion == PluginABIVersion(major: 1, minor: 2))
        #expect(
            plugin.customInstructions == [
                PluginCustomInstructionInfo(opcode: 0xf7, name: "vendor.popcnt"),
                PluginCustomInstructionInfo(opcode: 0xfe, name: "vendor.stinv"),
            ])
        #expect(plugin.helpers.isEmpty)
    }

    @Test func runsThemWithRegistersAndMemory() throws {
        let vm = VM(emulator: try plugin().emulator)
        let process = try vm.makeProcess(for: try vm.load(Self.program, name: "vendor"))
        #expect(try process.run() == 108 + 0xf0f0_f0f0)
        #expect(process.instructionsExecuted == 7)
        // Stepping and the exact budget count each as one instruction.
        let stepped = try vm.makeProcess(for: try vm.load(Self.program, name: "vendor"))
        _ = try stepped.step()
        _ = try stepped.step()
        #expect(stepped.registers[1] == 108)
        #expect(throws: ExecutionError.self) { try stepped.run(instructionLimit: 1) }
        #expect(stepped.instructionsExecuted == 3)
        #expect(try stepped.run() == 108 + 0xf0f0_f0f0)
    }

    @Test func aBadAddressStopsTheProgramNamingTheInstruction() throws {
        let vm = VM(emulator: try plugin().emulator)
        let program = try vm.load(
            [RawInstruction(opcode: 0xfe, destination: 1, imm: 1), RawInstruction(opcode: 0x95)], name: "bad")
        let error = #expect(throws: ExecutionError.self) { try vm.makeProcess(for: program).run() }
        #expect(error?.code == .customInstructionFailed)
        #expect(error?.description.contains("vendor.stinv") == true, "\(String(describing: error))")
    }

    @Test func otherUndefinedOpcodesAreStillRefused() throws {
        let vm = VM(emulator: try plugin().emulator)
        let error = #expect(throws: LoadError.self) {
            _ = try vm.load([RawInstruction(opcode: 0xff), RawInstruction(opcode: 0x95)], name: "other")
        }
        #expect(error?.code == .unknownOpcode)
    }

    @Test func aPluginClaimingADefinedOpcodeIsRefused() throws {
        let source = """
            #include "mimic_plugin.h"
            static void nothing(const struct mimic_host *h, struct mimic_call *c, const struct mimic_instruction *i) { (void)h; (void)c; (void)i; }
            static const struct mimic_custom_instruction instructions[] = { {.opcode = 0x07, .name = "not.add", .function = nothing} };
            static const struct mimic_plugin plugin = { .abi_major = MIMIC_PLUGIN_ABI_MAJOR, .abi_minor = MIMIC_PLUGIN_ABI_MINOR,
                .size = sizeof(struct mimic_plugin), .name = "claims_add", .custom_instruction_count = 1, .custom_instructions = instructions };
            const struct mimic_plugin *mimic_plugin_entry(const struct mimic_host *host) { (void)host; return &plugin; }
            """
        let path = try PluginFixtures.cLibrary("claims_add", source: source)
        let error = #expect(throws: PluginError.self) { _ = try PluginLibrary.load(path: path) }
        #expect(error?.description.contains("opcode 0x7 is 'add'") == true, "\(String(describing: error))")
    }
}
