/// How the operands of each `OperandShape` map onto instruction fields, shared by the
/// assembler (text → fields) and the disassembler (fields → text), so the two cannot disagree.

/// One operand position as written in assembler text.
enum OperandSlot: Sendable, Equatable {
    /// `%rN` stored in the destination field.
    case destinationRegister
    /// `%rN` stored in the source field.
    case sourceRegister
    /// `[%rN+off]`: the register goes to the destination field (stores, atomics).
    case destinationMemory
    /// `[%rN+off]`: the register goes to the source field (loads).
    case sourceMemory
    /// A 32-bit immediate in the imm field.
    case immediate32
    /// The 64-bit immediate of `lddw`, split across two slots.
    case immediate64
    /// A label or `+N`/`-N` relative to the next instruction, in the 16-bit offset field.
    case offsetTarget
    /// A label or `+N`/`-N` relative to the next instruction, in the 32-bit imm field.
    case immediateTarget

    /// Whether the text for this slot is a register (`%rN`).
    var isRegister: Bool { self == .destinationRegister || self == .sourceRegister }
    /// Whether the text for this slot is a memory operand (`[...]`).
    var isMemory: Bool { self == .destinationMemory || self == .sourceMemory }

    /// What the operand should look like, for error messages.
    var expectation: String {
        switch self {
        case .destinationRegister, .sourceRegister: "a register %r0..%r10"
        case .destinationMemory, .sourceMemory: "a memory operand like [%r1+8]"
        case .immediate32, .immediate64: "an immediate"
        case .offsetTarget, .immediateTarget: "a label or a relative offset like +3"
        }
    }
}

extension OperandShape {
    /// The operands this shape takes, in text order.
    var operandSlots: [OperandSlot] {
        switch self {
        case .aluImm: [.destinationRegister, .immediate32]
        case .aluReg: [.destinationRegister, .sourceRegister]
        case .unary: [.destinationRegister]
        case .load: [.destinationRegister, .sourceMemory]
        case .storeImm: [.destinationMemory, .immediate32]
        case .storeReg, .atomic: [.destinationMemory, .sourceRegister]
        case .loadImm64: [.destinationRegister, .immediate64]
        case .packetAbsolute: [.immediate32]
        case .packetIndirect: [.sourceRegister, .immediate32]
        case .jump: [.offsetTarget]
        case .jump32, .callLocal: [.immediateTarget]
        case .jumpImm: [.destinationRegister, .immediate32, .offsetTarget]
        case .jumpReg: [.destinationRegister, .sourceRegister, .offsetTarget]
        case .callHelper: [.immediate32]
        case .callRegister: [.destinationRegister]
        case .none: []
        }
    }

    /// Whether the instruction's offset or imm field is a jump distance.
    var branchField: BranchField? {
        switch self {
        case .jump, .jumpImm, .jumpReg: .offset
        case .jump32, .callLocal: .imm
        default: nil
        }
    }
}

/// Which field holds a branch distance.
enum BranchField: Sendable {
    case offset, imm
}

/// The field values an instruction's operands set; everything else is zero or fixed by the form.
struct OperandFields: Sendable, Equatable {
    var destination: UInt8 = 0
    var source: UInt8 = 0
    var offset: Int16 = 0
    var imm: Int32 = 0
    /// Upper 32 bits of the `lddw` immediate (the second slot's imm).
    var immHigh: Int32 = 0

    /// The canonical encoding of `form` with these operand fields: one slot, or two for `lddw`.
    func encode(as form: InstructionForm) -> [RawInstruction] {
        var first = RawInstruction(
            opcode: form.opcode, destination: destination, source: source, offset: offset, imm: imm)
        switch form.discriminator {
        case .none: break
        case .offset(let value): first.offset = value
        case .imm(let value): first.imm = value
        case .source(let value): first.source = value
        }
        guard form.shape == .loadImm64 else { return [first] }
        return [first, RawInstruction(opcode: 0, imm: immHigh)]
    }

    /// Only the fields `shape`'s operands use, taken from an encoded instruction.
    init(extractingFrom instruction: RawInstruction, next: RawInstruction?, shape: OperandShape) {
        for slot in shape.operandSlots {
            switch slot {
            case .destinationRegister: destination = instruction.destination
            case .sourceRegister: source = instruction.source
            case .destinationMemory:
                destination = instruction.destination
                offset = instruction.offset
            case .sourceMemory:
                source = instruction.source
                offset = instruction.offset
            case .immediate32, .immediateTarget: imm = instruction.imm
            case .immediate64:
                imm = instruction.imm
                immHigh = next?.imm ?? 0
            case .offsetTarget: offset = instruction.offset
            }
        }
    }

    init() {}
}

/// The highest register number the text syntax (and the VM) accepts: `%r10`, the frame pointer.
let highestRegister: UInt8 = 10
