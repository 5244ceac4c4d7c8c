import MimicCore
import MimicMemory

/// A tiny assembler DSL for tests: builds `RawInstruction`s from `Operation`s.
///
/// Opcode bytes and the fields that tell forms apart (sdiv's offset 1, an atomic's imm, a
/// call's source) come from `InstructionSet.forms`, so the instruction table stays the one
/// source of truth. Registers are plain numbers (`0` is R0).
///
///     let code = Asm.program {
///         Asm.mov64(0, imm: 1)
///         Asm.lddw(1, 0x1122_3344_5566_7788)
///         Asm.exit()
///     }
enum Asm {
    // MARK: Generic encoding

    /// Encodes `operation` with the given fields; the form's discriminator overrides the field
    /// it lives in.
    static func op(_ operation: Operation, dst: UInt8 = 0, src: UInt8 = 0, off: Int16 = 0, imm: Int32 = 0)
        -> RawInstruction
    {
        let form = InstructionSet.form(of: operation)
        var instruction = RawInstruction(opcode: form.opcode, destination: dst, source: src, offset: off, imm: imm)
        switch form.discriminator {
        case .none: break
        case .offset(let value): instruction.offset = value
        case .imm(let value): instruction.imm = value
        case .source(let value): instruction.source = value
        }
        return instruction
    }

    /// The register-source twin of an immediate ALU or jump form (`add64Imm` -> `add64Reg`).
    static func registerForm(of operation: Operation) -> Operation {
        let form = InstructionSet.form(of: operation)
        let wanted: OperandShape = form.shape == .jumpImm ? .jumpReg : .aluReg
        guard let twin = InstructionSet.forms.first(where: { $0.mnemonic == form.mnemonic && $0.shape == wanted })
        else {
            fatalError("test DSL: \(operation) has no register form")
        }
        return twin.operation
    }

    // MARK: ALU

    /// `op dst, imm` (ALU immediate forms).
    static func alu(_ operation: Operation, _ dst: UInt8, imm: Int32) -> RawInstruction {
        op(operation, dst: dst, imm: imm)
    }

    /// `op dst, src` (ALU register forms, movsx).
    static func alu(_ operation: Operation, _ dst: UInt8, src: UInt8) -> RawInstruction {
        op(operation, dst: dst, src: src)
    }

    /// `op dst` (neg, byte swaps).
    static func unary(_ operation: Operation, _ dst: UInt8) -> RawInstruction { op(operation, dst: dst) }

    static func mov64(_ dst: UInt8, imm: Int32) -> RawInstruction { op(.mov64Imm, dst: dst, imm: imm) }
    static func mov64(_ dst: UInt8, src: UInt8) -> RawInstruction { op(.mov64Reg, dst: dst, src: src) }
    static func mov32(_ dst: UInt8, imm: Int32) -> RawInstruction { op(.mov32Imm, dst: dst, imm: imm) }
    static func mov32(_ dst: UInt8, src: UInt8) -> RawInstruction { op(.mov32Reg, dst: dst, src: src) }
    static func add64(_ dst: UInt8, imm: Int32) -> RawInstruction { op(.add64Imm, dst: dst, imm: imm) }
    static func add64(_ dst: UInt8, src: UInt8) -> RawInstruction { op(.add64Reg, dst: dst, src: src) }
    static func sub64(_ dst: UInt8, src: UInt8) -> RawInstruction { op(.sub64Reg, dst: dst, src: src) }

    /// `lddw dst, value`: two slots.
    static func lddw(_ dst: UInt8, _ value: UInt64, pseudo: UInt8 = 0) -> [RawInstruction] {
        [
            op(.loadImm64, dst: dst, src: pseudo, imm: Int32(truncatingIfNeeded: value)),
            RawInstruction(opcode: 0, imm: Int32(truncatingIfNeeded: value >> 32)),
        ]
    }

    /// `lddw dst, value` for a signed constant.
    static func lddw(_ dst: UInt8, signed value: Int64) -> [RawInstruction] {
        lddw(dst, UInt64(bitPattern: value))
    }

    // MARK: Memory

    /// `ldx* dst, [src+off]`.
    static func load(_ operation: Operation, _ dst: UInt8, _ src: UInt8, off: Int16 = 0) -> RawInstruction {
        op(operation, dst: dst, src: src, off: off)
    }

    /// `st* [dst+off], imm`.
    static func store(_ operation: Operation, _ dst: UInt8, off: Int16 = 0, imm: Int32) -> RawInstruction {
        op(operation, dst: dst, off: off, imm: imm)
    }

    /// `stx* [dst+off], src`.
    static func store(_ operation: Operation, _ dst: UInt8, off: Int16 = 0, src: UInt8) -> RawInstruction {
        op(operation, dst: dst, src: src, off: off)
    }

    /// `lock ... [dst+off], src`.
    static func atomic(_ operation: Operation, _ dst: UInt8, off: Int16 = 0, src: UInt8) -> RawInstruction {
        op(operation, dst: dst, src: src, off: off)
    }

    /// `ldabs* imm`.
    static func loadAbsolute(_ operation: Operation, imm: Int32) -> RawInstruction { op(operation, imm: imm) }

    /// `ldind* src, imm`.
    static func loadIndirect(_ operation: Operation, _ src: UInt8, imm: Int32) -> RawInstruction {
        op(operation, src: src, imm: imm)
    }

    // MARK: Control flow

    /// `ja +off`.
    static func ja(_ off: Int16) -> RawInstruction { op(.jump, off: off) }
    /// `ja32 +imm` (gotol).
    static func ja32(_ imm: Int32) -> RawInstruction { op(.jump32, imm: imm) }

    /// `jxx dst, imm, +off`.
    static func jump(_ operation: Operation, _ dst: UInt8, imm: Int32, _ off: Int16) -> RawInstruction {
        op(operation, dst: dst, off: off, imm: imm)
    }

    /// `jxx dst, src, +off`.
    static func jump(_ operation: Operation, _ dst: UInt8, src: UInt8, _ off: Int16) -> RawInstruction {
        op(operation, dst: dst, src: src, off: off)
    }

    /// `call id` (helper).
    static func call(_ helper: Int32) -> RawInstruction { op(.callHelper, imm: helper) }
    /// `call local +imm`: the function starts at pc + 1 + imm.
    static func callLocal(_ imm: Int32) -> RawInstruction { op(.callLocal, imm: imm) }
    /// `callx dst`.
    static func callx(_ dst: UInt8) -> RawInstruction { op(.callRegister, dst: dst) }
    static func exit() -> RawInstruction { op(.exit) }

    // MARK: Building

    static func program(@CodeBuilder _ body: () -> [RawInstruction]) -> [RawInstruction] { body() }
}

/// Lets `Asm.program { ... }` list single instructions and `lddw` pairs alike.
@resultBuilder
enum CodeBuilder {
    static func buildExpression(_ instruction: RawInstruction) -> [RawInstruction] { [instruction] }
    static func buildExpression(_ instructions: [RawInstruction]) -> [RawInstruction] { instructions }
    static func buildBlock(_ parts: [RawInstruction]...) -> [RawInstruction] { parts.flatMap { $0 } }
    static func buildArray(_ parts: [[RawInstruction]]) -> [RawInstruction] { parts.flatMap { $0 } }
    static func buildOptional(_ part: [RawInstruction]?) -> [RawInstruction] { part ?? [] }
    static func buildEither(first: [RawInstruction]) -> [RawInstruction] { first }
    static func buildEither(second: [RawInstruction]) -> [RawInstruction] { second }
}

/// Running test programs.
enum Runner {
    /// Loads `code` into a fresh VM and runs it; returns R0.
    static func run(
        _ code: [RawInstruction], memory: [UInt8]? = nil, emulator: (any Emulator)? = nil,
        configuration: VMConfiguration = VMConfiguration()
    ) throws -> UInt64 {
        try process(code, memory: memory, emulator: emulator, configuration: configuration).run()
    }

    /// Loads `code` and creates a process for it (with `memory` as a `MemoryContext`, if given).
    static func process(
        _ code: [RawInstruction], memory: [UInt8]? = nil, emulator: (any Emulator)? = nil,
        configuration: VMConfiguration = VMConfiguration()
    ) throws -> Process {
        let vm = VM(emulator: emulator, configuration: configuration)
        let program = try vm.load(code, name: "test")
        return try vm.makeProcess(for: program, context: memory.map { MemoryContext($0) })
    }

    /// The current bytes of the process's `MemoryContext` buffer.
    static func memoryBytes(of process: Process) -> [UInt8] {
        guard let region = process.memory.regions.first(where: { $0.name == "memory" }),
            let bytes = try? process.memory.read(region.base, count: region.size)
        else { return [] }
        return bytes
    }
}

/// Little-endian bytes of `value`.
func leBytes(_ value: UInt64, count: Int = 8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}
