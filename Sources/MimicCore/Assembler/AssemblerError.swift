/// Assembler text that could not be turned into instructions, with where and why.
public struct AssemblerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong with the line.
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        /// The first word(s) name no instruction.
        case unknownMnemonic(String)
        /// The instruction takes `expected` operands but `found` were written.
        case wrongOperandCount(mnemonic: String, expected: Int, found: Int)
        /// A register other than `%r0`..`%r10`.
        case badRegister(String)
        /// An immediate that does not fit its field.
        case immediateOutOfRange(String)
        /// A memory offset that does not fit in 16 signed bits.
        case offsetOutOfRange(String)
        /// Text where a number was expected that is not a decimal or `0x` hex integer.
        case malformedNumber(String)
        /// A memory operand not of the form `[%rN]`, `[%rN+off]` or `[%rN-off]`.
        case malformedMemoryOperand(String)
        /// An operand of the wrong kind, e.g. an immediate where a register belongs.
        /// `position` is 1-based.
        case unexpectedOperand(position: Int, found: String, expected: String)
        /// A jump or call names a label that is never defined.
        case undefinedLabel(String)
        /// A label is defined twice.
        case duplicateLabel(String)
        /// A jump's distance does not fit its field (16 bits, or 32 for `ja32` and `call local`).
        case jumpOutOfRange(target: String, distance: Int)
        /// A label definition or reference that is not an identifier (`[A-Za-z_.][A-Za-z0-9_.]*`).
        case invalidLabelName(String)

        public var description: String {
            switch self {
            case .unknownMnemonic(let name): "unknown mnemonic '\(excerpt(name))'"
            case .wrongOperandCount(let mnemonic, let expected, let found):
                "'\(excerpt(mnemonic))' takes \(expected) operand\(expected == 1 ? "" : "s") but \(found) \(found == 1 ? "was" : "were") given"
            case .badRegister(let text): "bad register '\(excerpt(text))' (only %r0..%r10 exist)"
            case .immediateOutOfRange(let text): "immediate '\(excerpt(text))' does not fit its field"
            case .offsetOutOfRange(let text): "offset '\(excerpt(text))' does not fit in 16 signed bits"
            case .malformedNumber(let text): "'\(excerpt(text))' is not a number (decimal or 0x hex)"
            case .malformedMemoryOperand(let text): "malformed memory operand '\(excerpt(text))' (expected [%rN], [%rN+off] or [%rN-off])"
            case .unexpectedOperand(let position, let found, let expected):
                "operand \(position) '\(excerpt(found))' should be \(expected)"
            case .undefinedLabel(let name): "undefined label '\(excerpt(name))'"
            case .duplicateLabel(let name): "duplicate label '\(excerpt(name))'"
            case .jumpOutOfRange(let target, let distance): "jump to '\(excerpt(target))' is out of range (distance \(distance))"
            case .invalidLabelName(let name): "invalid label name '\(excerpt(name))'"
            }
        }
    }

    /// The 1-based line number in the source text.
    public var line: Int
    /// The line as written (without its trailing newline).
    public var text: String
    public var reason: Reason

    public init(line: Int, text: String, reason: Reason) {
        self.line = line
        self.text = text
        self.reason = reason
    }

    public var description: String { "line \(line): \(reason) in \"\(excerpt(text))\"" }
}

/// At most `limit` characters of `text` for a message, with how much was left out: an error
/// never echoes a whole (possibly huge) input line.
func excerpt(_ text: String, limit: Int = 80) -> String {
    guard text.count > limit else { return text }
    return "\(text.prefix(limit))... (\(text.count - limit) more characters)"
}
