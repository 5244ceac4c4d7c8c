/// Assembler text that could not be turned into instructions, with where and why.
public struct AssemblerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong with the line: a `Code` and the fields that apply to it.
    public struct Reason: Sendable, Equatable, CustomStringConvertible {
        /// The kind of problem. New codes may be added; match with `==`, not exhaustively.
        public struct Code: Hashable, Sendable, CustomStringConvertible {
            private enum Base: String, Hashable, Sendable {
                case unknownMnemonic, wrongOperandCount, badRegister, immediateOutOfRange, offsetOutOfRange
                case malformedNumber, malformedMemoryOperand, unexpectedOperand, undefinedLabel, duplicateLabel
                case jumpOutOfRange, invalidLabelName
            }

            private let base: Base
            private init(_ base: Base) { self.base = base }

            /// The first word(s) name no instruction (`text`).
            public static let unknownMnemonic = Code(.unknownMnemonic)
            /// The instruction (`text`) takes `expected` operands but `found` were written.
            public static let wrongOperandCount = Code(.wrongOperandCount)
            /// A register other than `%r0`..`%r10` (`text`).
            public static let badRegister = Code(.badRegister)
            /// An immediate that does not fit its field (`text`).
            public static let immediateOutOfRange = Code(.immediateOutOfRange)
            /// A memory offset that does not fit in 16 signed bits (`text`).
            public static let offsetOutOfRange = Code(.offsetOutOfRange)
            /// Text where a number was expected that is not a decimal or `0x` hex integer (`text`).
            public static let malformedNumber = Code(.malformedNumber)
            /// A memory operand not of the form `[%rN]`, `[%rN+off]` or `[%rN-off]` (`text`).
            public static let malformedMemoryOperand = Code(.malformedMemoryOperand)
            /// An operand of the wrong kind, e.g. an immediate where a register belongs: operand
            /// `position` (1-based) is `text` but should be `expectedText`.
            public static let unexpectedOperand = Code(.unexpectedOperand)
            /// A jump or call names a label that is never defined (`text`).
            public static let undefinedLabel = Code(.undefinedLabel)
            /// A label is defined twice (`text`).
            public static let duplicateLabel = Code(.duplicateLabel)
            /// A jump's distance (`distance`) to label `text` does not fit its field (16 bits, or
            /// 32 for `ja32` and `call local`).
            public static let jumpOutOfRange = Code(.jumpOutOfRange)
            /// A label definition or reference that is not an identifier (`[A-Za-z_.][A-Za-z0-9_.]*`).
            public static let invalidLabelName = Code(.invalidLabelName)

            /// The code's name, as written in Swift (`unknownMnemonic`).
            public var description: String { base.rawValue }
        }

        public var code: Code
        /// The text at fault: a mnemonic, register, number, operand or label.
        public var text: String
        /// The operand count the instruction takes (`wrongOperandCount`).
        public var expected: Int?
        /// The operand count written (`wrongOperandCount`).
        public var found: Int?
        /// The 1-based operand position (`unexpectedOperand`).
        public var position: Int?
        /// What the operand should be (`unexpectedOperand`).
        public var expectedText: String?
        /// The jump distance (`jumpOutOfRange`).
        public var distance: Int?

        public init(
            _ code: Code, text: String, expected: Int? = nil, found: Int? = nil, position: Int? = nil,
            expectedText: String? = nil, distance: Int? = nil
        ) {
            self.code = code
            self.text = text
            self.expected = expected
            self.found = found
            self.position = position
            self.expectedText = expectedText
            self.distance = distance
        }

        public static func unknownMnemonic(_ name: String) -> Reason { Reason(.unknownMnemonic, text: name) }
        public static func wrongOperandCount(mnemonic: String, expected: Int, found: Int) -> Reason {
            Reason(.wrongOperandCount, text: mnemonic, expected: expected, found: found)
        }
        public static func badRegister(_ text: String) -> Reason { Reason(.badRegister, text: text) }
        public static func immediateOutOfRange(_ text: String) -> Reason { Reason(.immediateOutOfRange, text: text) }
        public static func offsetOutOfRange(_ text: String) -> Reason { Reason(.offsetOutOfRange, text: text) }
        public static func malformedNumber(_ text: String) -> Reason { Reason(.malformedNumber, text: text) }
        public static func malformedMemoryOperand(_ text: String) -> Reason {
            Reason(.malformedMemoryOperand, text: text)
        }
        public static func unexpectedOperand(position: Int, found: String, expected: String) -> Reason {
            Reason(.unexpectedOperand, text: found, position: position, expectedText: expected)
        }
        public static func undefinedLabel(_ name: String) -> Reason { Reason(.undefinedLabel, text: name) }
        public static func duplicateLabel(_ name: String) -> Reason { Reason(.duplicateLabel, text: name) }
        public static func jumpOutOfRange(target: String, distance: Int) -> Reason {
            Reason(.jumpOutOfRange, text: target, distance: distance)
        }
        public static func invalidLabelName(_ name: String) -> Reason { Reason(.invalidLabelName, text: name) }

        public var description: String {
            switch code {
            case .unknownMnemonic: return "unknown mnemonic '\(excerpt(text))'"
            case .wrongOperandCount:
                let expected = expected ?? 0
                let found = found ?? 0
                return
                    "'\(excerpt(text))' takes \(expected) operand\(expected == 1 ? "" : "s") but \(found) \(found == 1 ? "was" : "were") given"
            case .badRegister: return "bad register '\(excerpt(text))' (only %r0..%r10 exist)"
            case .immediateOutOfRange: return "immediate '\(excerpt(text))' does not fit its field"
            case .offsetOutOfRange: return "offset '\(excerpt(text))' does not fit in 16 signed bits"
            case .malformedNumber: return "'\(excerpt(text))' is not a number (decimal or 0x hex)"
            case .malformedMemoryOperand:
                return "malformed memory operand '\(excerpt(text))' (expected [%rN], [%rN+off] or [%rN-off])"
            case .unexpectedOperand:
                return "operand \(position ?? 0) '\(excerpt(text))' should be \(expectedText ?? "")"
            case .undefinedLabel: return "undefined label '\(excerpt(text))'"
            case .duplicateLabel: return "duplicate label '\(excerpt(text))'"
            case .jumpOutOfRange: return "jump to '\(excerpt(text))' is out of range (distance \(distance ?? 0))"
            case .invalidLabelName: return "invalid label name '\(excerpt(text))'"
            default: return "\(code) '\(excerpt(text))'"
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

    /// The reason's code.
    public var code: Reason.Code { reason.code }

    public var description: String { "line \(line): \(reason) in \"\(excerpt(text))\"" }
}

/// At most `limit` characters of `text` for a message, with how much was left out: an error
/// never echoes a whole (possibly huge) input line.
func excerpt(_ text: String, limit: Int = 80) -> String {
    guard text.count > limit else { return text }
    return "\(text.prefix(limit))... (\(text.count - limit) more characters)"
}
