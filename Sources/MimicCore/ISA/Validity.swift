/// Which slots are valid instructions: the one rule the loader and the disassembler share.
///
/// A slot is valid when its opcode and form-selecting field name a row of `InstructionSet.forms`,
/// the register fields it uses name r0–r10, and every field it does not use is zero (RFC 9669 §3:
/// "unused fields SHALL be cleared to zero"; the kernel's verifier refuses them with "... uses
/// reserved fields"). The one field the kernel does not check, `exit`'s offset, is refused here
/// too, as the RFC asks. `lddw`'s source field is not reserved: it names the pseudo kind
/// (`LoadImm64Kind`), and its second slot must be all zero but for the immediate.

/// A field of an instruction slot, named as in `struct bpf_insn`.
public enum InstructionField: String, Sendable, Equatable {
    case destination = "dst_reg"
    case source = "src_reg"
    case offset = "off"
    case imm = "imm"
}

/// Why a slot is not a valid instruction.
public enum EncodingProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// No form uses this opcode byte.
    case unknownOpcode(UInt8)
    /// The opcode is known, but the field that selects its form has a value with no meaning.
    case unknownForm(opcode: UInt8, field: InstructionField, value: Int64)
    /// A register field the form uses is above r10.
    case invalidRegister(field: InstructionField, register: UInt8)
    /// A field the form does not use is not zero.
    case reservedField(mnemonic: String, field: InstructionField, value: Int64)
    /// `lddw` is the last slot, or its second slot has fields other than `imm` set.
    case incompleteLoadImm64

    public var description: String {
        switch self {
        case .unknownOpcode(let opcode): "unknown opcode \(hex(opcode))"
        case .unknownForm(let opcode, let field, let value):
            switch opcode {
            case 0x37, 0x3f, 0x97, 0x9f, 0x34, 0x3c, 0x94, 0x9c:
                "division/modulo offset must be 0 or 1, got \(value)"
            case 0xbf, 0xbc: "mov offset must be 0 or a sign-extension width (8, 16, 32), got \(value)"
            case 0xb7, 0xb4: "mov with an immediate must have offset 0 (movsx takes a register), got \(value)"
            case 0xd4, 0xdc, 0xd7: "byte swap width must be 16, 32 or 64, got \(value)"
            case 0xc3, 0xdb: "unknown atomic operation 0x\(String(UInt32(truncatingIfNeeded: value), radix: 16))"
            case 0x85: "call source must be 0 (helper), 1 (local) or 2 (kfunc), got \(value)"
            default: "opcode \(hex(opcode)) with an unknown \(field.rawValue) \(value)"
            }
        case .invalidRegister(let field, let register): "invalid \(field.rawValue) r\(register) (valid: r0-r10)"
        case .reservedField(let mnemonic, let field, let value):
            "'\(mnemonic)' uses reserved field \(field.rawValue) (\(value)); it must be 0"
        case .incompleteLoadImm64: "lddw without its second slot (opcode 0, only imm set)"
        }
    }

    private func hex(_ opcode: UInt8) -> String { "0x" + (opcode < 0x10 ? "0" : "") + String(opcode, radix: 16) }
}

extension InstructionSet {
    /// The form of `instruction`, or why it is not a valid instruction. Pass the following slot
    /// as `next`; an `lddw` without a valid second slot is invalid.
    public static func validate(_ instruction: RawInstruction, next: RawInstruction?) -> Result<
        InstructionForm, EncodingProblem
    > {
        guard let form = form(of: instruction) else {
            guard let known = forms.first(where: { $0.opcode == instruction.opcode }) else {
                return .failure(.unknownOpcode(instruction.opcode))
            }
            let (field, value): (InstructionField, Int64) =
                switch known.discriminator {
                case .offset: (.offset, Int64(instruction.offset))
                case .imm: (.imm, Int64(instruction.imm))
                case .source: (.source, Int64(instruction.source))
                case .none: (.imm, Int64(instruction.imm))
                }
            return .failure(.unknownForm(opcode: instruction.opcode, field: field, value: value))
        }
        let fields = OperandFields(extractingFrom: instruction, next: next, shape: form.shape)
        for slot in form.shape.operandSlots {
            switch slot {
            case .destinationRegister, .destinationMemory:
                if fields.destination > highestRegister {
                    return .failure(.invalidRegister(field: .destination, register: fields.destination))
                }
            case .sourceRegister, .sourceMemory:
                if fields.source > highestRegister {
                    return .failure(.invalidRegister(field: .source, register: fields.source))
                }
            default:
                break
            }
        }
        var canonical = fields.encode(as: form)
        if form.shape == .loadImm64 { canonical[0].source = instruction.source } // the pseudo kind
        let first = canonical[0]
        let reserved: (InstructionField, Int64)? =
            if instruction.destination != first.destination {
                (.destination, Int64(instruction.destination))
            } else if instruction.source != first.source {
                (.source, Int64(instruction.source))
            } else if instruction.offset != first.offset {
                (.offset, Int64(instruction.offset))
            } else if instruction.imm != first.imm { (.imm, Int64(instruction.imm)) } else { nil }
        if let (field, value) = reserved {
            return .failure(.reservedField(mnemonic: form.mnemonic, field: field, value: value))
        }
        if canonical.count == 2, canonical[1] != next { return .failure(.incompleteLoadImm64) }
        return .success(form)
    }
}
