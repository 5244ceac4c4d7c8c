/// One line of a disassembly listing.
public enum DisassembledLine: Sendable, Equatable, CustomStringConvertible {
    /// A generated label (`L12`) marking a jump or call target.
    case label(String)
    /// A valid instruction starting at `slot` (an `lddw` covers `slot` and `slot + 1`).
    case instruction(slot: Int, operation: Operation, text: String)
    /// A slot that is not a valid instruction encoding; its text starts with `.invalid`.
    case invalid(slot: Int, text: String)

    /// The line as it appears in a listing: `L12:` for labels, otherwise the instruction text.
    public var text: String {
        switch self {
        case .label(let name): "\(name):"
        case .instruction(_, _, let text), .invalid(_, let text): text
        }
    }

    public var description: String { text }
}

/// Turns instruction slots back into assembler text that `Assembler.assemble` accepts.
///
/// Listings name jump and call targets with generated labels (`L<slot>`), so
/// `Assembler.assemble(Disassembler.listing(program))` reproduces `program` exactly whenever
/// every slot is a valid encoding. Slots that are not (unknown opcodes, reserved fields set,
/// registers above r10, a broken `lddw` pair) print as `.invalid` lines, which the assembler
/// rejects on purpose.
public enum Disassembler {
    /// Disassembles a program into labels, instructions and `.invalid` lines.
    public static func disassemble(_ instructions: [RawInstruction]) -> [DisassembledLine] {
        // Pass 1: where each instruction starts and whether it is valid.
        var decoded: [(slot: Int, result: Result<DecodedInstruction, InvalidEncoding>)] = []
        var slot = 0
        while slot < instructions.count {
            let next = slot + 1 < instructions.count ? instructions[slot + 1] : nil
            let result = decode(instructions[slot], next: next)
            decoded.append((slot, result))
            if case .success(let instruction) = result { slot += instruction.slotCount } else { slot += 1 }
        }

        // Branch targets that can carry a label: the start of a valid instruction, or the end.
        var validStarts = Set<Int>()
        for entry in decoded { if case .success = entry.result { validStarts.insert(entry.slot) } }
        var labeledTargets = Set<Int>()
        for entry in decoded {
            guard case .success(let instruction) = entry.result,
                let target = instruction.branchTarget(at: entry.slot),
                validStarts.contains(target) || target == instructions.count
            else { continue }
            labeledTargets.insert(target)
        }

        // Pass 2: the text.
        var lines: [DisassembledLine] = []
        for entry in decoded {
            if labeledTargets.contains(entry.slot) { lines.append(.label(labelName(entry.slot))) }
            switch entry.result {
            case .success(let instruction):
                let text = instruction.text { distance in
                    let target = entry.slot + 1 + distance
                    return labeledTargets.contains(target) ? labelName(target) : relativeText(distance)
                }
                lines.append(.instruction(slot: entry.slot, operation: instruction.form.operation, text: text))
            case .failure(let invalid):
                lines.append(.invalid(slot: entry.slot, text: invalid.text))
            }
        }
        if labeledTargets.contains(instructions.count) { lines.append(.label(labelName(instructions.count))) }
        return lines
    }

    /// The disassembly as text, one line each, ending in a newline (empty for no instructions).
    public static func listing(_ instructions: [RawInstruction]) -> String {
        disassemble(instructions).map { $0.text + "\n" }.joined()
    }

    /// The text of one instruction, with jumps and local calls as relative offsets (`+3`, `-2`),
    /// for debuggers and tracers. Pass the following slot as `next` so `lddw` can show its full
    /// immediate; without it an `lddw` prints as `.invalid`.
    public static func text(of instruction: RawInstruction, next: RawInstruction? = nil) -> String {
        switch decode(instruction, next: next) {
        case .success(let decoded): decoded.text(target: relativeText)
        case .failure(let invalid): invalid.text
        }
    }

    // MARK: Decoding

    private static func labelName(_ slot: Int) -> String { "L\(slot)" }

    private static func relativeText(_ distance: Int) -> String { distance < 0 ? "\(distance)" : "+\(distance)" }

    /// A valid instruction and the operand fields its text shows.
    private struct DecodedInstruction {
        var form: InstructionForm
        var fields: OperandFields

        var slotCount: Int { form.shape == .loadImm64 ? 2 : 1 }

        /// The slot a jump or local call lands on, if this is one.
        func branchTarget(at slot: Int) -> Int? {
            switch form.shape.branchField {
            case .offset: slot + 1 + Int(fields.offset)
            case .imm: slot + 1 + Int(fields.imm)
            case nil: nil
            }
        }

        /// The instruction's text; `target` spells a branch distance (a label or `+N`).
        func text(target: (Int) -> String) -> String {
            let operands = form.shape.operandSlots.map { slot -> String in
                switch slot {
                case .destinationRegister: "%r\(fields.destination)"
                case .sourceRegister: "%r\(fields.source)"
                case .destinationMemory: memoryText(register: fields.destination, offset: fields.offset)
                case .sourceMemory: memoryText(register: fields.source, offset: fields.offset)
                case .immediate32: immediateText(Int64(fields.imm))
                case .immediate64:
                    immediateText(
                        Int64(
                            bitPattern: UInt64(UInt32(bitPattern: fields.imm))
                                | UInt64(UInt32(bitPattern: fields.immHigh)) << 32), hexUnsigned: true)
                case .offsetTarget: target(Int(fields.offset))
                case .immediateTarget: target(Int(fields.imm))
                }
            }
            return operands.isEmpty ? form.mnemonic : form.mnemonic + " " + operands.joined(separator: ", ")
        }

        private func memoryText(register: UInt8, offset: Int16) -> String {
            switch offset {
            case 0: "[%r\(register)]"
            case ..<0: "[%r\(register)\(offset)]"
            default: "[%r\(register)+\(offset)]"
            }
        }

        /// Decimal for small magnitudes, hex for large ones. Large negative 64-bit values
        /// print as their unsigned hex bit pattern when `hexUnsigned`, else as `-0x...`.
        private func immediateText(_ value: Int64, hexUnsigned: Bool = false) -> String {
            if value > -0x10000 && value < 0x10000 { return "\(value)" }
            if value >= 0 { return "0x" + String(value, radix: 16) }
            if hexUnsigned { return "0x" + String(UInt64(bitPattern: value), radix: 16) }
            return "-0x" + String(value.magnitude, radix: 16)
        }
    }

    /// A slot that is not a valid instruction, with why.
    private struct InvalidEncoding: Error {
        var instruction: RawInstruction
        var reason: String

        /// `.invalid 0x<slot as a little-endian 64-bit word> # reason`.
        var text: String {
            let word = instruction.bytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let hex = String(word, radix: 16)
            return ".invalid 0x" + String(repeating: "0", count: 16 - hex.count) + hex + " # " + reason
        }
    }

    private static func decode(
        _ instruction: RawInstruction, next: RawInstruction?
    ) -> Result<DecodedInstruction, InvalidEncoding> {
        switch InstructionSet.validate(instruction, next: next) {
        case .failure(let problem):
            return .failure(InvalidEncoding(instruction: instruction, reason: problem.description))
        case .success(let form):
            if form.shape == .loadImm64 && instruction.source != 0 {
                // Valid for the loader (a map or function reference), but the text syntax has
                // plain constants only; `Inspection` prints these with their kind.
                return .failure(
                    InvalidEncoding(instruction: instruction, reason: "lddw with pseudo source \(instruction.source)"))
            }
            return .success(
                DecodedInstruction(
                    form: form, fields: OperandFields(extractingFrom: instruction, next: next, shape: form.shape)))
        }
    }
}
