import MimicMemory

// Errors that can grow (see Docs/Architecture.md, "Errors"): each error is a struct with an
// extensible `Code` (a struct of static constants, so adding one breaks no client's `switch`),
// structured fields where they apply and an optional underlying `cause`. Static factories with the
// former enum case names build the common errors (`throw .message("...")`).

/// Whether two optional causes are the same: equal values when the type is `Equatable`, equal
/// type and description otherwise.
func causesEqual(_ a: (any Error & Sendable)?, _ b: (any Error & Sendable)?) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case (let a?, let b?):
        let boxed: Any = a
        if let a = boxed as? any Equatable { return equal(a, b) }
        return type(of: a) == type(of: b) && String(describing: a) == String(describing: b)
    default: return false
    }
}

private func equal<E: Equatable>(_ a: E, _ b: Any) -> Bool { (b as? E) == a }

/// Why a program could not be loaded, with the program, the instruction (slot index) at fault and,
/// when another error caused it, that error.
public struct LoadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong: a `Code` and the fields that apply to it.
    public struct Reason: Error, Sendable, Equatable, CustomStringConvertible {
        /// The kind of load failure. New codes may be added; match with `==`, not exhaustively.
        public struct Code: Hashable, Sendable, CustomStringConvertible {
            private enum Base: String, Hashable, Sendable {
                case emptyProgram, tooLarge, unknownOpcode, invalidEncoding, invalidRegister
                case writesFramePointer, incompleteLoadImm64, jumpOutOfRange, jumpIntoLoadImm64
                case lastInstructionNotExitOrJump, unresolvedReference, unsupported
                case reservedField, jumpOutOfFunction, functionFallsThrough
            }

            private let base: Base
            private init(_ base: Base) { self.base = base }

            public static let emptyProgram = Code(.emptyProgram)
            public static let tooLarge = Code(.tooLarge)
            public static let unknownOpcode = Code(.unknownOpcode)
            /// Known opcode, but a field that selects the form (offset, imm or src) has no meaning.
            public static let invalidEncoding = Code(.invalidEncoding)
            public static let invalidRegister = Code(.invalidRegister)
            public static let writesFramePointer = Code(.writesFramePointer)
            public static let incompleteLoadImm64 = Code(.incompleteLoadImm64)
            public static let jumpOutOfRange = Code(.jumpOutOfRange)
            public static let jumpIntoLoadImm64 = Code(.jumpIntoLoadImm64)
            public static let lastInstructionNotExitOrJump = Code(.lastInstructionNotExitOrJump)
            /// An `lddw` with a pseudo source (map, map value, BTF id) that no emulator resolved.
            public static let unresolvedReference = Code(.unresolvedReference)
            public static let unsupported = Code(.unsupported)
            /// A field the instruction does not use is not zero (`field` as in `struct bpf_insn`).
            public static let reservedField = Code(.reservedField)
            /// A jump from the function starting at `function` lands outside it (`target`).
            public static let jumpOutOfFunction = Code(.jumpOutOfFunction)
            /// The function starting at `function` ends in an instruction that falls through into
            /// the next function (at `next`); it must end in `exit` or `ja`.
            public static let functionFallsThrough = Code(.functionFallsThrough)

            /// The code's name, as written in Swift (`unknownOpcode`).
            public var description: String { base.rawValue }
        }

        public var code: Code
        /// The instruction count (`tooLarge`).
        public var count: Int?
        /// The limit that was exceeded (`tooLarge`).
        public var limit: Int?
        /// The opcode byte (`unknownOpcode`).
        public var opcode: UInt8?
        /// Which register field (`invalidRegister`: "destination" or "source").
        public var field: String?
        /// The register number (`invalidRegister`).
        public var register: UInt8?
        /// The jump or call target slot (`jumpOutOfRange`, `jumpIntoLoadImm64`).
        public var target: Int?
        /// What is wrong, for the user (`invalidEncoding`, `unresolvedReference`, `unsupported`).
        public var detail: String?
        /// The instruction's mnemonic (`reservedField`).
        public var mnemonic: String?
        /// The reserved field's value (`reservedField`).
        public var value: Int64?
        /// The first slot of the function at fault (`jumpOutOfFunction`, `functionFallsThrough`).
        public var function: Int?
        /// The first slot of the next function (`functionFallsThrough`).
        public var next: Int?

        public init(
            _ code: Code, count: Int? = nil, limit: Int? = nil, opcode: UInt8? = nil, field: String? = nil,
            register: UInt8? = nil, target: Int? = nil, detail: String? = nil, mnemonic: String? = nil,
            value: Int64? = nil, function: Int? = nil, next: Int? = nil
        ) {
            self.code = code
            self.count = count
            self.limit = limit
            self.opcode = opcode
            self.field = field
            self.register = register
            self.target = target
            self.detail = detail
            self.mnemonic = mnemonic
            self.value = value
            self.function = function
            self.next = next
        }

        public static let emptyProgram = Reason(.emptyProgram)
        public static func tooLarge(count: Int, limit: Int) -> Reason { Reason(.tooLarge, count: count, limit: limit) }
        public static func unknownOpcode(_ opcode: UInt8) -> Reason { Reason(.unknownOpcode, opcode: opcode) }
        public static func invalidEncoding(_ detail: String) -> Reason { Reason(.invalidEncoding, detail: detail) }
        public static func invalidRegister(field: String, register: UInt8) -> Reason {
            Reason(.invalidRegister, field: field, register: register)
        }
        public static let writesFramePointer = Reason(.writesFramePointer)
        public static let incompleteLoadImm64 = Reason(.incompleteLoadImm64)
        public static func jumpOutOfRange(target: Int) -> Reason { Reason(.jumpOutOfRange, target: target) }
        public static func jumpIntoLoadImm64(target: Int) -> Reason { Reason(.jumpIntoLoadImm64, target: target) }
        public static let lastInstructionNotExitOrJump = Reason(.lastInstructionNotExitOrJump)
        public static func unresolvedReference(_ detail: String) -> Reason {
            Reason(.unresolvedReference, detail: detail)
        }
        public static func unsupported(_ detail: String) -> Reason { Reason(.unsupported, detail: detail) }
        public static func reservedField(mnemonic: String, field: String, value: Int64) -> Reason {
            Reason(.reservedField, field: field, mnemonic: mnemonic, value: value)
        }
        public static func jumpOutOfFunction(target: Int, function: Int) -> Reason {
            Reason(.jumpOutOfFunction, target: target, function: function)
        }
        public static func functionFallsThrough(function: Int, next: Int) -> Reason {
            Reason(.functionFallsThrough, function: function, next: next)
        }

        /// What went wrong, without where.
        public var description: String {
            switch code {
            case .emptyProgram: "the program has no instructions"
            case .tooLarge: "\(count ?? 0) instructions exceed the limit of \(limit ?? 0)"
            case .unknownOpcode: "unknown opcode 0x\(String(opcode ?? 0, radix: 16))"
            case .invalidEncoding: "invalid encoding: \(detail ?? "")"
            case .invalidRegister: "invalid \(field ?? "") register r\(register ?? 0) (valid: r0-r10)"
            case .writesFramePointer: "r10 is the read-only frame pointer and cannot be written"
            case .incompleteLoadImm64: "lddw is missing its second instruction slot"
            case .jumpOutOfRange: "jump target \(target ?? 0) is outside the program"
            case .jumpIntoLoadImm64: "jump target \(target ?? 0) is the second half of an lddw"
            case .lastInstructionNotExitOrJump: "the last instruction must be exit or an unconditional jump"
            case .unresolvedReference: "unresolved reference: \(detail ?? "")"
            case .unsupported: "unsupported: \(detail ?? "")"
            case .reservedField: "'\(mnemonic ?? "")' uses reserved field \(field ?? "") (\(value ?? 0)); it must be 0"
            case .jumpOutOfFunction:
                "jump target \(target ?? 0) is outside the function starting at instruction \(function ?? 0)"
            case .functionFallsThrough:
                "the function starting at instruction \(function ?? 0) falls through into the function at \(next ?? 0); "
                    + "its last instruction must be exit or an unconditional jump"
            default: detail.map { "\(code): \($0)" } ?? "\(code)"
            }
        }
    }

    public typealias Code = Reason.Code

    public var reason: Reason
    /// The slot index of the offending instruction, if the error is about one.
    public var pc: Int?
    public var instruction: RawInstruction?
    public var programName: String
    /// The error that caused this one, if any.
    public var cause: (any Error & Sendable)?

    public init(
        _ reason: Reason, pc: Int? = nil, instruction: RawInstruction? = nil, programName: String,
        cause: (any Error & Sendable)? = nil
    ) {
        self.reason = reason
        self.pc = pc
        self.instruction = instruction
        self.programName = programName
        self.cause = cause
    }

    /// The reason's code.
    public var code: Code { reason.code }

    public static func == (a: LoadError, b: LoadError) -> Bool {
        a.reason == b.reason && a.pc == b.pc && a.instruction == b.instruction && a.programName == b.programName
            && causesEqual(a.cause, b.cause)
    }

    public var description: String {
        var where_ = "program \(programName)"
        if let pc { where_ += ", instruction \(pc)" }
        if let instruction { where_ += " \(instruction)" }
        return "\(where_): \(reason)"
    }
}

/// Why a helper function failed; the interpreter turns it into an `ExecutionError`.
public struct HelperFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of helper failure. New codes may be added; match with `==`, not exhaustively.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case memory, message, unsupported, callback
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A memory access the helper made on the program's behalf faulted (`fault`).
        public static let memory = Code(.memory)
        /// Any other failure, described for the user (`message`).
        public static let message = Code(.message)
        /// The helper, or the way it was called, is not supported; stops with `unknownHelper`.
        public static let unsupported = Code(.unsupported)
        /// A program callback the helper ran (`Process.callFunction`) stopped with the
        /// `ExecutionError` in `cause` (`callbackError`).
        public static let callback = Code(.callback)

        /// The code's name, as written in Swift (`memory`).
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// What went wrong, for the user (`message`, `unsupported` and codes without structure).
    public var message: String
    /// The fault (`memory`).
    public var fault: MemoryFault?
    /// The error that caused this one: the callback's `ExecutionError` for `callback`.
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, message: String = "", fault: MemoryFault? = nil, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.fault = fault
        self.cause = cause
    }

    /// A memory access the helper made on the program's behalf faulted.
    public static func memory(_ fault: MemoryFault) -> HelperFailure { HelperFailure(.memory, fault: fault) }
    /// Any other failure, described for the user.
    public static func message(_ text: String) -> HelperFailure { HelperFailure(.message, message: text) }
    /// The helper, or the way it was called, is not supported; stops with `unknownHelper`.
    public static func unsupported(_ text: String) -> HelperFailure { HelperFailure(.unsupported, message: text) }
    /// A program callback the helper ran (`Process.callFunction`) stopped with this error.
    public static func callback(_ error: ExecutionError) -> HelperFailure { HelperFailure(.callback, cause: error) }

    /// The callback's error, for `callback`.
    public var callbackError: ExecutionError? { cause as? ExecutionError }

    public static func == (a: HelperFailure, b: HelperFailure) -> Bool {
        a.code == b.code && a.message == b.message && a.fault == b.fault && causesEqual(a.cause, b.cause)
    }

    public var description: String {
        if code == .memory, let fault { return fault.description }
        if code == .callback, let cause { return "callback \(cause)" }
        return message
    }
}

/// Why a process could not be set up: a context that cannot be attached, an emulator that cannot
/// prepare the process, a reset that failed. Thrown by `Context.attach`, `VM.makeProcess` and
/// `Process.reset`.
public struct SetupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of setup failure. New codes may be added; match with `==`, not exhaustively.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case memory, message, unsupported
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Writing the context or its data into the process's memory faulted (`fault`).
        public static let memory = Code(.memory)
        /// The context or emulator refused, described for the user (`message`).
        public static let message = Code(.message)
        /// The context, or what it asks for, is not supported here (`message`).
        public static let unsupported = Code(.unsupported)

        /// The code's name, as written in Swift (`message`).
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// What went wrong, for the user (`message`, `unsupported`).
    public var message: String
    /// The fault (`memory`).
    public var fault: MemoryFault?
    /// The error that caused this one, if any.
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, message: String = "", fault: MemoryFault? = nil, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.fault = fault
        self.cause = cause
    }

    /// Writing into the process's memory faulted.
    public static func memory(_ fault: MemoryFault) -> SetupError { SetupError(.memory, fault: fault) }
    /// The context or emulator refused, described for the user.
    public static func message(_ text: String) -> SetupError { SetupError(.message, message: text) }
    /// The context, or what it asks for, is not supported here.
    public static func unsupported(_ text: String) -> SetupError { SetupError(.unsupported, message: text) }

    public static func == (a: SetupError, b: SetupError) -> Bool {
        a.code == b.code && a.message == b.message && a.fault == b.fault && causesEqual(a.cause, b.cause)
    }

    public var description: String {
        if code == .memory, let fault { return fault.description }
        return message
    }
}

/// Why a running program stopped abnormally, with where it happened.
public struct ExecutionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What stopped the program: a `Code` and the fields that apply to it.
    public struct Kind: Sendable, Equatable, CustomStringConvertible {
        /// The kind of stop. New codes may be added; match with `==`, not exhaustively.
        public struct Code: Hashable, Sendable, CustomStringConvertible {
            private enum Base: String, Hashable, Sendable {
                case memory, callDepthExceeded, budgetExhausted, cancelled, helperFailed, unknownHelper
                case invalidCallTarget, tailCallLimit, noPacket, notRunnable, unsupported
                case deadlineExceeded, customInstructionFailed, unreleasedReference
            }

            private let base: Base
            private init(_ base: Base) { self.base = base }

            /// An invalid memory access (`fault`).
            public static let memory = Code(.memory)
            /// Too many nested BPF-to-BPF calls (`limit`).
            public static let callDepthExceeded = Code(.callDepthExceeded)
            /// The instruction budget ran out (`executed`); the process can resume.
            public static let budgetExhausted = Code(.budgetExhausted)
            public static let cancelled = Code(.cancelled)
            /// The run's deadline passed (`Process.run(deadline:)`); the process can resume.
            public static let deadlineExceeded = Code(.deadlineExceeded)
            /// An emulator's custom instruction failed (`detail`).
            public static let customInstructionFailed = Code(.customInstructionFailed)
            /// A helper failed (`helperID`, `helperName`, `failure`).
            public static let helperFailed = Code(.helperFailed)
            /// A call to a helper no emulator provides or supports (`helperID`, `helperName`).
            public static let unknownHelper = Code(.unknownHelper)
            /// A `callx` target that is neither a helper id nor a function (`target`).
            public static let invalidCallTarget = Code(.invalidCallTarget)
            /// Too many tail calls (`limit`).
            public static let tailCallLimit = Code(.tailCallLimit)
            public static let noPacket = Code(.noPacket)
            /// The process already finished or faulted; create a new one to run again.
            public static let notRunnable = Code(.notRunnable)
            /// Something the program does that Mimic does not support (`detail`).
            public static let unsupported = Code(.unsupported)
            /// The program exited holding a reference it must release (`detail`), which the
            /// kernel's verifier refuses ("Unreleased reference"): see `Process.exitCheck`.
            public static let unreleasedReference = Code(.unreleasedReference)

            /// The code's name, as written in Swift (`budgetExhausted`).
            public var description: String { base.rawValue }
        }

        public var code: Code
        /// The fault (`memory`).
        public var fault: MemoryFault?
        /// The limit that was reached (`callDepthExceeded`, `tailCallLimit`).
        public var limit: Int?
        /// Instructions executed so far (`budgetExhausted`, `deadlineExceeded`).
        public var executed: UInt64?
        /// The helper id (`helperFailed`, `unknownHelper`).
        public var helperID: Int32?
        /// The helper's name, if known (`helperFailed`, `unknownHelper`).
        public var helperName: String?
        /// How the helper failed (`helperFailed`).
        public var failure: HelperFailure?
        /// The `callx` target (`invalidCallTarget`).
        public var target: UInt64?
        /// What is wrong, for the user (`unsupported`).
        public var detail: String?

        public init(
            _ code: Code, fault: MemoryFault? = nil, limit: Int? = nil, executed: UInt64? = nil,
            helperID: Int32? = nil, helperName: String? = nil, failure: HelperFailure? = nil,
            target: UInt64? = nil, detail: String? = nil
        ) {
            self.code = code
            self.fault = fault
            self.limit = limit
            self.executed = executed
            self.helperID = helperID
            self.helperName = helperName
            self.failure = failure
            self.target = target
            self.detail = detail
        }

        public static func memory(_ fault: MemoryFault) -> Kind { Kind(.memory, fault: fault) }
        public static func callDepthExceeded(limit: Int) -> Kind { Kind(.callDepthExceeded, limit: limit) }
        public static func budgetExhausted(executed: UInt64) -> Kind { Kind(.budgetExhausted, executed: executed) }
        public static let cancelled = Kind(.cancelled)
        /// The run's deadline passed after `executed` instructions in all.
        public static func deadlineExceeded(executed: UInt64) -> Kind { Kind(.deadlineExceeded, executed: executed) }
        /// An emulator's custom instruction failed, with why.
        public static func customInstructionFailed(_ detail: String) -> Kind {
            Kind(.customInstructionFailed, detail: detail)
        }
        public static func helperFailed(id: Int32, name: String, failure: HelperFailure) -> Kind {
            Kind(.helperFailed, helperID: id, helperName: name, failure: failure)
        }
        public static func unknownHelper(id: Int32, name: String?) -> Kind {
            Kind(.unknownHelper, helperID: id, helperName: name)
        }
        public static func invalidCallTarget(_ target: UInt64) -> Kind { Kind(.invalidCallTarget, target: target) }
        public static func tailCallLimit(_ limit: Int) -> Kind { Kind(.tailCallLimit, limit: limit) }
        public static let noPacket = Kind(.noPacket)
        /// The process already finished or faulted; create a new one to run again.
        public static let notRunnable = Kind(.notRunnable)
        public static func unsupported(_ detail: String) -> Kind { Kind(.unsupported, detail: detail) }

        /// What stopped the program, without where.
        public var description: String {
            switch code {
            case .memory: "invalid memory access: \(fault.map { "\($0)" } ?? "")"
            case .callDepthExceeded: "call depth exceeds the limit of \(limit ?? 0) frames"
            case .budgetExhausted: "instruction budget exhausted after \(executed ?? 0) instructions"
            case .cancelled: "cancelled"
            case .deadlineExceeded: "deadline exceeded after \(executed ?? 0) instructions"
            case .customInstructionFailed: "custom instruction failed: \(detail ?? "")"
            case .helperFailed:
                "helper \(helperName ?? "") (#\(helperID ?? 0)) failed: \(failure.map { "\($0)" } ?? "")"
            case .unknownHelper:
                "call to unknown or unsupported helper #\(helperID ?? 0)" + (helperName.map { " (\($0))" } ?? "")
            case .invalidCallTarget:
                "callx target 0x\(String(target ?? 0, radix: 16)) is neither a helper id nor a function"
            case .tailCallLimit: "more than \(limit ?? 0) tail calls"
            case .noPacket: "legacy packet load without a packet in the context"
            case .notRunnable: "the process has already finished"
            case .unsupported: "unsupported: \(detail ?? "")"
            case .unreleasedReference: detail ?? "unreleased reference at exit"
            default: detail.map { "\(code): \($0)" } ?? "\(code)"
            }
        }
    }

    public typealias Code = Kind.Code

    public var kind: Kind
    /// The slot index of the instruction that stopped.
    public var pc: Int
    public var instruction: RawInstruction?
    public var programName: String
    /// The C source line of the instruction, when the program has line info.
    public var sourceLine: SourceLineInfo?

    public init(_ kind: Kind, pc: Int, instruction: RawInstruction?, programName: String) {
        self.kind = kind
        self.pc = pc
        self.instruction = instruction
        self.programName = programName
    }

    /// The kind's code.
    public var code: Code { kind.code }

    public var description: String {
        var text = "program \(programName), instruction \(pc)"
        if let instruction { text += " (\(Disassembler.text(of: instruction)))" }
        text += ": \(kind)"
        if let line = sourceLine {
            let file = line.file.split(separator: "/").last.map(String.init) ?? line.file
            let source = line.sourceText.drop { $0 == " " || $0 == "\t" }
            text += "\n  at \(file):\(line.line)" + (source.isEmpty ? "" : ": \(source)")
        }
        return text
    }
}
