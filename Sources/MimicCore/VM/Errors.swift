import MimicMemory

/// Why a program could not be loaded. Each case names the instruction (slot index) at fault.
public struct LoadError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Error, Sendable, Equatable {
        case emptyProgram
        case tooLarge(count: Int, limit: Int)
        case unknownOpcode(UInt8)
        /// Known opcode, but a field that selects the form (offset, imm or src) has no meaning.
        case invalidEncoding(String)
        case invalidRegister(field: String, register: UInt8)
        /// A field the instruction does not use is not zero (`field` as in `struct bpf_insn`).
        case reservedField(mnemonic: String, field: String, value: Int64)
        case writesFramePointer
        case incompleteLoadImm64
        case jumpOutOfRange(target: Int)
        case jumpIntoLoadImm64(target: Int)
        case lastInstructionNotExitOrJump
        /// A jump from the function starting at `function` lands outside it.
        case jumpOutOfFunction(target: Int, function: Int)
        /// The function starting at `function` ends in an instruction that falls through into
        /// the next function (at `next`); it must end in `exit` or `ja`.
        case functionFallsThrough(function: Int, next: Int)
        /// An `lddw` with a pseudo source (map, map value, BTF id) that no emulator resolved.
        case unresolvedReference(String)
        case unsupported(String)
    }

    public var reason: Reason
    /// The slot index of the offending instruction, if the error is about one.
    public var pc: Int?
    public var instruction: RawInstruction?
    public var programName: String

    public init(_ reason: Reason, pc: Int? = nil, instruction: RawInstruction? = nil, programName: String) {
        self.reason = reason
        self.pc = pc
        self.instruction = instruction
        self.programName = programName
    }

    public var description: String {
        var where_ = "program \(programName)"
        if let pc { where_ += ", instruction \(pc)" }
        if let instruction { where_ += " \(instruction)" }
        let what: String
        switch reason {
        case .emptyProgram: what = "the program has no instructions"
        case .tooLarge(let count, let limit): what = "\(count) instructions exceed the limit of \(limit)"
        case .unknownOpcode(let op): what = "unknown opcode 0x\(String(op, radix: 16))"
        case .invalidEncoding(let detail): what = "invalid encoding: \(detail)"
        case .invalidRegister(let field, let register): what = "invalid \(field) register r\(register) (valid: r0-r10)"
        case .reservedField(let mnemonic, let field, let value):
            what = "'\(mnemonic)' uses reserved field \(field) (\(value)); it must be 0"
        case .writesFramePointer: what = "r10 is the read-only frame pointer and cannot be written"
        case .incompleteLoadImm64: what = "lddw is missing its second instruction slot"
        case .jumpOutOfRange(let target): what = "jump target \(target) is outside the program"
        case .jumpIntoLoadImm64(let target): what = "jump target \(target) is the second half of an lddw"
        case .lastInstructionNotExitOrJump: what = "the last instruction must be exit or an unconditional jump"
        case .jumpOutOfFunction(let target, let function):
            what = "jump target \(target) is outside the function starting at instruction \(function)"
        case .functionFallsThrough(let function, let next):
            what = "the function starting at instruction \(function) falls through into the function at \(next); "
                + "its last instruction must be exit or an unconditional jump"
        case .unresolvedReference(let detail): what = "unresolved reference: \(detail)"
        case .unsupported(let detail): what = "unsupported: \(detail)"
        }
        return "\(where_): \(what)"
    }
}

/// Why a helper function failed; the interpreter turns it into an `ExecutionError`.
public enum HelperFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// A memory access the helper made on the program's behalf faulted.
    case memory(MemoryFault)
    /// Any other failure, described for the user.
    case message(String)
    /// The helper, or the way it was called, is not supported; stops with `unknownHelper`.
    case unsupported(String)
    /// A program callback the helper ran (`Process.callFunction`) stopped with this error.
    indirect case callback(ExecutionError)

    public var description: String {
        switch self {
        case .memory(let fault): fault.description
        case .message(let text), .unsupported(let text): text
        case .callback(let error): "callback \(error)"
        }
    }
}

/// Why a running program stopped abnormally, with where it happened.
public struct ExecutionError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case memory(MemoryFault)
        case callDepthExceeded(limit: Int)
        case budgetExhausted(executed: UInt64)
        case cancelled
        case helperFailed(id: Int32, name: String, failure: HelperFailure)
        case unknownHelper(id: Int32, name: String?)
        case invalidCallTarget(UInt64)
        case tailCallLimit(Int)
        case noPacket
        /// The process already finished or faulted; create a new one to run again.
        case notRunnable
        case unsupported(String)
    }

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

    public var description: String {
        let what: String
        switch kind {
        case .memory(let fault): what = "invalid memory access: \(fault)"
        case .callDepthExceeded(let limit): what = "call depth exceeds the limit of \(limit) frames"
        case .budgetExhausted(let executed): what = "instruction budget exhausted after \(executed) instructions"
        case .cancelled: what = "cancelled"
        case .helperFailed(let id, let name, let failure): what = "helper \(name) (#\(id)) failed: \(failure)"
        case .unknownHelper(let id, let name):
            what = "call to unknown or unsupported helper #\(id)" + (name.map { " (\($0))" } ?? "")
        case .invalidCallTarget(let value): what = "callx target 0x\(String(value, radix: 16)) is neither a helper id nor a function"
        case .tailCallLimit(let limit): what = "more than \(limit) tail calls"
        case .noPacket: what = "legacy packet load without a packet in the context"
        case .notRunnable: what = "the process has already finished"
        case .unsupported(let detail): what = "unsupported: \(detail)"
        }
        var text = "program \(programName), instruction \(pc)"
        if let instruction { text += " (\(Disassembler.text(of: instruction)))" }
        text += ": " + what
        if let line = sourceLine {
            let file = line.file.split(separator: "/").last.map(String.init) ?? line.file
            let source = line.sourceText.drop { $0 == " " || $0 == "\t" }
            text += "\n  at \(file):\(line.line)" + (source.isEmpty ? "" : ": \(source)")
        }
        return text
    }
}
