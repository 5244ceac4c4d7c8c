/// Turns eBPF assembler text (the bpf_conformance syntax) into instruction slots.
///
/// The syntax, one instruction or label per line:
///
///     # a comment; blank lines are fine
///     mov %r1, -1                 # ALU: register, then register or immediate
///     ldxdw %r0, [%r10-8]         # memory operands [%rN], [%rN+off], [%rN-off]
///     lddw %r0, 0x123456789abcdef0
///     lock fetch add32 [%r10-8], %r1
///     jne %r1, 5, failed          # jump targets: a label, or +N / -N slots
///     call local func1            # BPF-to-BPF call; `call 5` calls helper 5; `call %r2` is callx
///     exit                        # the first exit also defines the label `exit`
///     failed:
///
/// Immediates are decimal or `0x` hex and may be negative. A 32-bit immediate accepts
/// -2^31 ... 2^32-1 (the upper half wraps to negative); `lddw` takes any signed or unsigned
/// 64-bit value. Memory offsets and 16-bit jump distances are signed 16-bit.
///
/// Every mnemonic comes from `InstructionSet.forms` (plus `InstructionSet.mnemonicAliases`).
public enum Assembler {
    /// Assembles `text` into instruction slots (`lddw` takes two).
    ///
    /// Never traps on malformed input: every problem is an `AssemblerError` naming the line.
    public static func assemble(_ text: String) throws(AssemblerError) -> [RawInstruction] {
        var parsed: [ParsedInstruction] = []
        var labels: [String: Int] = [:]
        var firstExitSlot: Int?
        var slot = 0

        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let lineText = rawLine.trimmingWhitespace()
            let source = SourceLine(number: index + 1, text: String(lineText))
            var code = lineText
            if let hash = code.firstIndex(of: "#") { code = code[..<hash] }
            code = code.trimmingWhitespace()
            if code.isEmpty { continue }

            if let colon = code.firstIndex(of: ":") {
                let name = String(code[..<colon].trimmingWhitespace())
                guard isValidLabelName(name) else { throw source.error(.invalidLabelName(name)) }
                guard labels[name] == nil else { throw source.error(.duplicateLabel(name)) }
                labels[name] = slot
                code = code[code.index(after: colon)...].trimmingWhitespace()
                if code.isEmpty { continue }
            }

            let instruction = try parseInstruction(code, source: source, slot: slot)
            if instruction.form.operation == .exit, firstExitSlot == nil { firstExitSlot = slot }
            slot += instruction.form.shape == .loadImm64 ? 2 : 1
            parsed.append(instruction)
        }

        // The first `exit` is an implicit label, unless the program defines `exit:` itself.
        if labels["exit"] == nil, let firstExitSlot { labels["exit"] = firstExitSlot }

        var output: [RawInstruction] = []
        output.reserveCapacity(slot)
        for var instruction in parsed {
            if let reference = instruction.labelReference {
                guard let target = labels[reference.name] else {
                    throw instruction.source.error(.undefinedLabel(reference.name))
                }
                let distance = target - (instruction.slot + 1)
                switch reference.field {
                case .offset:
                    guard let offset = Int16(exactly: distance) else {
                        throw instruction.source.error(.jumpOutOfRange(target: reference.name, distance: distance))
                    }
                    instruction.fields.offset = offset
                case .imm:
                    guard let imm = Int32(exactly: distance) else {
                        throw instruction.source.error(.jumpOutOfRange(target: reference.name, distance: distance))
                    }
                    instruction.fields.imm = imm
                }
            }
            output += instruction.fields.encode(as: instruction.form)
        }
        return output
    }

    /// Whether `name` can be a label: `[A-Za-z_.][A-Za-z0-9_.]*`.
    public static func isValidLabelName(_ name: some StringProtocol) -> Bool {
        guard let first = name.unicodeScalars.first, !isDecimalDigit(first) else { return false }
        return name.unicodeScalars.allSatisfy { isDecimalDigit($0) || isLetter($0) || $0 == "_" || $0 == "." }
    }
}

// MARK: - Parsing one line

/// A line of source, for error reporting.
private struct SourceLine {
    var number: Int
    var text: String

    func error(_ reason: AssemblerError.Reason) -> AssemblerError {
        AssemblerError(line: number, text: text, reason: reason)
    }
}

/// An instruction whose label operand (if any) is not resolved yet.
private struct ParsedInstruction {
    var form: InstructionForm
    var fields: OperandFields
    var labelReference: (name: String, field: BranchField)?
    var slot: Int
    var source: SourceLine
}

/// An operand, classified by its first character.
private enum OperandToken {
    case register(UInt8)
    case memory(register: UInt8, offset: Int16)
    /// A number or a label, interpreted by the slot it fills.
    case word(String)

    var kindMatches: (OperandSlot) -> Bool {
        switch self {
        case .register: { $0.isRegister }
        case .memory: { $0.isMemory }
        case .word: { !$0.isRegister && !$0.isMemory }
        }
    }
}

extension Assembler {
    /// The longest mnemonic in the table, in words (`lock fetch add32`).
    private static let longestMnemonicWordCount: Int =
        InstructionSet.formsByMnemonic.keys.map { $0.split(separator: " ").count }.max() ?? 1

    private static func parseInstruction(
        _ code: Substring, source: SourceLine, slot: Int
    ) throws(AssemblerError) -> ParsedInstruction {
        // Mnemonics may be several words (`lock fetch add`, `call local`): take the longest
        // run of leading words that names a form.
        let words = code.split(maxSplits: longestMnemonicWordCount, whereSeparator: { $0 == " " || $0 == "\t" })
        var candidates: [InstructionForm] = []
        var mnemonic = ""
        var operandText: Substring = ""
        for wordCount in stride(from: min(longestMnemonicWordCount, words.count), through: 1, by: -1) {
            let name = words[0..<wordCount].joined(separator: " ").lowercased()
            if let forms = InstructionSet.formsByMnemonic[name] {
                candidates = forms
                mnemonic = name
                operandText = wordCount < words.count ? code[words[wordCount].startIndex...] : ""
                break
            }
        }
        guard !candidates.isEmpty else {
            throw source.error(.unknownMnemonic(unknownMnemonicName(words)))
        }

        let operandStrings =
            operandText.isEmpty
            ? []
            : operandText.split(separator: ",", omittingEmptySubsequences: false).map {
                String($0.trimmingWhitespace())
            }
        var tokens: [OperandToken] = []
        for text in operandStrings { tokens.append(try classify(text, source: source)) }

        // Forms sharing a mnemonic differ in whether an operand is a register (`add %r0, 1`
        // vs `add %r0, %r1`, `call 5` vs `call %r2`).
        let sameCount = candidates.filter { $0.shape.operandSlots.count == tokens.count }
        guard let fallback = sameCount.first else {
            throw source.error(
                .wrongOperandCount(
                    mnemonic: mnemonic, expected: candidates[0].shape.operandSlots.count, found: tokens.count))
        }
        let form =
            sameCount.first { candidate in
                zip(candidate.shape.operandSlots, tokens).allSatisfy { slot, token in token.kindMatches(slot) }
            } ?? fallback

        var instruction = ParsedInstruction(
            form: form, fields: OperandFields(), labelReference: nil, slot: slot, source: source)
        for (position, (operandSlot, token)) in zip(form.shape.operandSlots, tokens).enumerated() {
            guard token.kindMatches(operandSlot), !operandStrings[position].isEmpty else {
                throw source.error(
                    .unexpectedOperand(
                        position: position + 1, found: operandStrings[position], expected: operandSlot.expectation))
            }
            switch (operandSlot, token) {
            case (.destinationRegister, .register(let register)):
                instruction.fields.destination = register
            case (.sourceRegister, .register(let register)):
                instruction.fields.source = register
            case (.destinationMemory, .memory(let register, let offset)):
                instruction.fields.destination = register
                instruction.fields.offset = offset
            case (.sourceMemory, .memory(let register, let offset)):
                instruction.fields.source = register
                instruction.fields.offset = offset
            case (.immediate32, .word(let text)):
                instruction.fields.imm = try parseImmediate32(text, source: source)
            case (.immediate64, .word(let text)):
                let value = try parseImmediate64(text, source: source)
                instruction.fields.imm = Int32(truncatingIfNeeded: value)
                instruction.fields.immHigh = Int32(truncatingIfNeeded: value >> 32)
            case (.offsetTarget, .word(let text)):
                if let distance = try parseRelativeTarget(text, bits: 16, source: source) {
                    instruction.fields.offset = Int16(truncatingIfNeeded: distance)
                } else {
                    instruction.labelReference = (text, .offset)
                }
            case (.immediateTarget, .word(let text)):
                if let distance = try parseRelativeTarget(text, bits: 32, source: source) {
                    instruction.fields.imm = Int32(truncatingIfNeeded: distance)
                } else {
                    instruction.labelReference = (text, .imm)
                }
            default:
                // kindMatches ruled every other pairing out.
                throw source.error(
                    .unexpectedOperand(
                        position: position + 1, found: operandStrings[position], expected: operandSlot.expectation))
            }
        }
        return instruction
    }

    /// The name to report for an unknown mnemonic: the first word, or `lock <op>` words.
    private static func unknownMnemonicName(_ words: [Substring]) -> String {
        guard let first = words.first else { return "" }
        guard first.lowercased() == "lock" || first.lowercased() == "call" else { return String(first) }
        let nameWords = words.prefix { word in
            guard let character = word.first else { return false }
            return character != "%" && character != "[" && character != "+" && character != "-" && !character.isNumber
        }
        return nameWords.prefix(longestMnemonicWordCount).joined(separator: " ")
    }

    // MARK: Operands

    private static func classify(_ text: String, source: SourceLine) throws(AssemblerError) -> OperandToken {
        if text.hasPrefix("%") {
            guard let register = parseRegister(text) else { throw source.error(.badRegister(text)) }
            return .register(register)
        }
        if text.hasPrefix("[") {
            return try parseMemory(text, source: source)
        }
        return .word(text)
    }

    /// `%r0` ... `%r10` (no leading zeros), or nil.
    private static func parseRegister(_ text: some StringProtocol) -> UInt8? {
        let lowered = text.lowercased()
        guard lowered.hasPrefix("%r") else { return nil }
        let digits = lowered.dropFirst(2)
        guard !digits.isEmpty, digits.count <= 2, digits.unicodeScalars.allSatisfy(isDecimalDigit),
            digits == "0" || !digits.hasPrefix("0"),
            let number = UInt8(digits), number <= highestRegister
        else { return nil }
        return number
    }

    /// `[%rN]`, `[%rN+off]` or `[%rN-off]`, spaces allowed inside the brackets.
    private static func parseMemory(_ text: String, source: SourceLine) throws(AssemblerError) -> OperandToken {
        guard text.hasSuffix("]"), text.count >= 2 else { throw source.error(.malformedMemoryOperand(text)) }
        let inside = text.dropFirst().dropLast().filter { $0 != " " && $0 != "\t" }
        guard inside.hasPrefix("%") else { throw source.error(.malformedMemoryOperand(text)) }
        let signIndex = inside.firstIndex { $0 == "+" || $0 == "-" }
        let registerText = signIndex.map { inside[..<$0] } ?? inside[...]
        guard registerText.allSatisfy({ $0 == "%" || $0.isLetter || $0.isNumber }) else {
            throw source.error(.malformedMemoryOperand(text))
        }
        guard let register = parseRegister(registerText) else { throw source.error(.badRegister(String(registerText))) }
        guard let signIndex else { return .memory(register: register, offset: 0) }

        let offsetText = String(inside[signIndex...])
        guard let number = SignedMagnitude(offsetText) else {
            throw source.error(isMalformed(offsetText) ? .malformedMemoryOperand(text) : .offsetOutOfRange(offsetText))
        }
        guard let offset = number.fitting(Int16.self) else { throw source.error(.offsetOutOfRange(offsetText)) }
        return .memory(register: register, offset: offset)
    }

    /// A 32-bit immediate: -2^31 ... 2^32-1, values above 2^31-1 wrapping to negative.
    private static func parseImmediate32(_ text: String, source: SourceLine) throws(AssemblerError) -> Int32 {
        guard let number = SignedMagnitude(text) else {
            throw source.error(isMalformed(text) ? .malformedNumber(text) : .immediateOutOfRange(text))
        }
        if number.isNegative {
            guard let value = number.fitting(Int32.self) else { throw source.error(.immediateOutOfRange(text)) }
            return value
        }
        guard let value = UInt32(exactly: number.magnitude) else { throw source.error(.immediateOutOfRange(text)) }
        return Int32(bitPattern: value)
    }

    /// A 64-bit immediate: -2^63 ... 2^64-1.
    private static func parseImmediate64(_ text: String, source: SourceLine) throws(AssemblerError) -> UInt64 {
        guard let number = SignedMagnitude(text) else {
            throw source.error(isMalformed(text) ? .malformedNumber(text) : .immediateOutOfRange(text))
        }
        if number.isNegative {
            guard let value = number.fitting(Int64.self) else { throw source.error(.immediateOutOfRange(text)) }
            return UInt64(bitPattern: value)
        }
        return number.magnitude
    }

    /// A relative jump distance (`+3`, `-2`, `7`), or nil when `text` is a label name.
    private static func parseRelativeTarget(_ text: String, bits: Int, source: SourceLine) throws(AssemblerError)
        -> Int64?
    {
        guard let first = text.unicodeScalars.first, first == "+" || first == "-" || isDecimalDigit(first) else {
            guard isValidLabelName(text) else { throw source.error(.invalidLabelName(text)) }
            return nil
        }
        guard let number = SignedMagnitude(text) else {
            throw source.error(
                isMalformed(text) ? .malformedNumber(text) : .jumpOutOfRange(target: text, distance: Int.max))
        }
        let value = bits == 16 ? number.fitting(Int16.self).map(Int64.init) : number.fitting(Int32.self).map(Int64.init)
        guard let value else {
            let distance = number.fitting(Int64.self).map { Int($0) } ?? (number.isNegative ? Int.min : Int.max)
            throw source.error(.jumpOutOfRange(target: text, distance: distance))
        }
        return value
    }

    /// Whether `text` is not even shaped like a number (as opposed to a number too large).
    private static func isMalformed(_ text: String) -> Bool {
        SignedMagnitude.digits(of: text) == nil
    }
}

// MARK: - Numbers

/// An integer as written: a sign and a magnitude that fits in 64 bits.
private struct SignedMagnitude {
    var isNegative: Bool
    var magnitude: UInt64

    /// Parses `[+-]digits` or `[+-]0xhex`; nil when malformed or wider than 64 bits.
    init?(_ text: String) {
        guard let (negative, digits, radix) = Self.digits(of: text),
            let magnitude = UInt64(digits, radix: radix)
        else { return nil }
        self.isNegative = negative
        self.magnitude = magnitude
    }

    /// The sign, digit string and radix of a well-formed number, or nil.
    static func digits(of text: String) -> (negative: Bool, digits: Substring, radix: Int)? {
        var rest = Substring(text)
        var negative = false
        if let sign = rest.first, sign == "+" || sign == "-" {
            negative = sign == "-"
            rest = rest.dropFirst()
        }
        var radix = 10
        if rest.hasPrefix("0x") || rest.hasPrefix("0X") {
            radix = 16
            rest = rest.dropFirst(2)
        }
        guard !rest.isEmpty,
            rest.unicodeScalars.allSatisfy({ radix == 16 ? isHexDigit($0) : isDecimalDigit($0) })
        else { return nil }
        return (negative, rest, radix)
    }

    /// The value as `T` if it is in range.
    func fitting<T: FixedWidthInteger & SignedInteger>(_: T.Type) -> T? {
        if isNegative {
            // -magnitude fits when magnitude <= |T.min|.
            guard magnitude <= T.min.magnitude else { return nil }
            return magnitude == T.min.magnitude ? T.min : -T(magnitude)
        }
        return T(exactly: magnitude)
    }
}

private func isDecimalDigit(_ scalar: Unicode.Scalar) -> Bool { ("0"..."9").contains(scalar) }
private func isHexDigit(_ scalar: Unicode.Scalar) -> Bool {
    isDecimalDigit(scalar) || ("a"..."f").contains(scalar) || ("A"..."F").contains(scalar)
}
private func isLetter(_ scalar: Unicode.Scalar) -> Bool {
    ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and carriage returns.
    func trimmingWhitespace() -> SubSequence {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }),
            let end = lastIndex(where: { !isSpace($0) })
        else { return self[endIndex...] }
        return self[start...end]
    }
}
