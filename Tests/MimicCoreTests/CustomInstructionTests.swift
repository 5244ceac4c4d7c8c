import Testing
import MimicCore
import MimicMemory

/// An emulator with three instructions of its own, on opcode bytes the ISA leaves undefined.
final class VendorEmulator: Emulator {
    let name = "vendor"
    /// `dst = popcount(src) + imm` (ALU64 class, operation 0xf0, K).
    static let popcount: UInt8 = 0xf7
    /// `*(u32 *)(dst + off) = imm ^ 0xffffffff` (a store through the process's memory).
    static let storeInverted: UInt8 = 0xfe
    /// Always fails.
    static let broken: UInt8 = 0xff

    func helper(id: Int32) -> Helper? { nil }

    func customInstruction(opcode: UInt8) -> CustomInstruction? {
        switch opcode {
        case Self.popcount:
            CustomInstruction(opcode: opcode, name: "vendor.popcnt") { i, process throws(HelperFailure) in
                let value = process.registers[Int(i.source)]
                process.registers[Int(i.destination)] =
                    UInt64(value.nonzeroBitCount) &+ UInt64(bitPattern: Int64(i.imm))
            }
        case Self.storeInverted:
            CustomInstruction(opcode: opcode, name: "vendor.stinv") { i, process throws(HelperFailure) in
                let address = process.registers[Int(i.destination)] &+ UInt64(bitPattern: Int64(i.offset))
                do throws(MemoryFault) {
                    try process.memory.store(UInt64(UInt32(bitPattern: i.imm) ^ 0xffff_ffff), at: address, size: 4)
                } catch {
                    throw .memory(error)
                }
            }
        case Self.broken:
            CustomInstruction(opcode: opcode, name: "vendor.broken") { _, _ throws(HelperFailure) in
                throw .message("not today")
            }
        default: nil
        }
    }
}

@Suite("Custom instructions: an emulator's opcodes the ISA leaves undefined")
struct CustomInstructionTests {
    static func popcount(_ dst: UInt8, _ src: UInt8, imm: Int32) -> RawInstruction {
        RawInstruction(opcode: VendorEmulator.popcount, destination: dst, source: src, imm: imm)
    }

    static let program: [RawInstruction] = [
        Asm.mov64(1, imm: 0xff),
        popcount(0, 1, imm: 100), // r0 = 8 + 100
        RawInstruction(opcode: VendorEmulator.storeInverted, destination: 10, offset: -8, imm: 0x0f0f_0f0f),
        RawInstruction(opcode: 0x61, destination: 2, source: 10, offset: -8), // r2 = *(u32 *)(r10 - 8)
        Asm.add64(0, src: 2),
        Asm.exit(),
    ]

    @Test func customInstructionsRunWithTheProcessRegistersAndMemory() throws {
        let process = try Runner.process(Self.program, emulator: VendorEmulator())
        #expect(try process.run() == 108 + 0xf0f0_f0f0)
        #expect(process.instructionsExecuted == 6)
    }

    @Test func stepExecutesACustomInstructionAsOne() throws {
        let process = try Runner.process(Self.program, emulator: VendorEmulator())
        #expect(try process.step() == .running)
        #expect(try process.step() == .running)
        #expect(process.registers[0] == 108)
        #expect(process.pc == 2)
        #expect(process.instructionsExecuted == 2)
    }

    @Test func theExactBudgetCountsACustomInstructionAsOne() throws {
        for limit in UInt64(0)..<6 {
            let process = try Runner.process(Self.program, emulator: VendorEmulator())
            let error = #expect(throws: ExecutionError.self) { try process.run(instructionLimit: limit) }
            #expect(error?.code == .budgetExhausted)
            #expect(process.instructionsExecuted == limit)
            #expect(try process.run() == 108 + 0xf0f0_f0f0)
        }
    }

    @Test func withoutTheEmulatorTheOpcodeIsRefused() throws {
        let error = #expect(throws: LoadError.self) { _ = try VM().load(Self.program, name: "vendor") }
        #expect(error?.code == .unknownOpcode)
        #expect(error?.pc == 1)
        // The emulator is asked about undefined opcodes only: other invalid slots stay invalid.
        let other = RawInstruction(opcode: 0xef, destination: 0)
        let refused = #expect(throws: LoadError.self) {
            _ = try VM(emulator: VendorEmulator()).load([other, Asm.exit()], name: "other")
        }
        #expect(refused?.code == .unknownOpcode)
        let reserved = RawInstruction(opcode: 0x07, destination: 0, offset: 3, imm: 1) // add with an offset
        let alsoRefused = #expect(throws: LoadError.self) {
            _ = try VM(emulator: VendorEmulator()).load([reserved, Asm.exit()], name: "reserved")
        }
        #expect(alsoRefused?.code == .reservedField)
    }

    @Test func registerFieldsMustNameR0ToR10() throws {
        let error = #expect(throws: LoadError.self) {
            _ = try VM(emulator: VendorEmulator()).load([Self.popcount(11, 1, imm: 0), Asm.exit()], name: "bad")
        }
        #expect(error?.code == .invalidRegister)
    }

    @Test func aFailingCustomInstructionStopsTheProgramNamingIt() throws {
        let process = try Runner.process(
            [Asm.mov64(0, imm: 1), RawInstruction(opcode: VendorEmulator.broken), Asm.exit()],
            emulator: VendorEmulator())
        let error = #expect(throws: ExecutionError.self) { try process.run() }
        #expect(error?.code == .customInstructionFailed)
        #expect(error?.pc == 1)
        #expect(error?.description.contains("vendor.broken: not today") == true, "\(String(describing: error))")
    }

    @Test func aCompositeEmulatorAsksItsMembers() throws {
        let composite = try CompositeEmulator([ConformanceEmulator(), VendorEmulator()])
        let process = try Runner.process(Self.program, emulator: composite)
        #expect(try process.run() == 108 + 0xf0f0_f0f0)
    }
}
