import MimicCore

/// Whether `BPF_PROG_LOAD` accepts a program, and if not, the verifier's complaint: what the
/// kernel says (`KernelBPF.verdict`) or what a verifier predicts it would say. Agreement is
/// measured on `accepted` alone; the error line and instruction are shown beside it.
public struct LoadVerdict: Sendable, Equatable, CustomStringConvertible {
    public var accepted: Bool
    /// The complaint: the last meaningful line of the verifier log ("R1 invalid mem access
    /// 'scalar'"), nil when accepted.
    public var error: String?
    /// The instruction the complaint is about (the index of a slot in the program), when known.
    public var instruction: Int?
    /// The errno of the load (`EACCES`, `EINVAL`, ...), when rejected by the kernel.
    public var errno: String?

    public init(accepted: Bool, error: String? = nil, instruction: Int? = nil, errno: String? = nil) {
        self.accepted = accepted
        self.error = error
        self.instruction = instruction
        self.errno = errno
    }

    /// An accepted program.
    public static let accepted = LoadVerdict(accepted: true)

    /// A rejected program with the complaint `error` about instruction `instruction`.
    public static func rejected(_ error: String, instruction: Int? = nil) -> LoadVerdict {
        LoadVerdict(accepted: false, error: error, instruction: instruction)
    }

    public var description: String {
        if accepted { return "accepted" }
        let place = instruction.map { " (instruction \($0))" } ?? ""
        return "rejected: \(error ?? "(no message)")\(place)"
    }

    /// The verdict a rejection's log gives: its last meaningful line (not the statistics the
    /// verifier appends: `processed N insns ...`, `verification time ...`, `stack depth ...`,
    /// nor the `cur state:` / `old state:` dumps after "infinite loop detected"),
    /// and the instruction it names — `insn N` in that line ("infinite loop detected at insn
    /// 24"), else the last instruction the log shows being verified (`N: (op) ...`).
    public static func rejection(log: String, errno: String? = nil) -> LoadVerdict {
        let lines = log.split(separator: "\n").map { String($0).trimmingSpaces() }.filter {
            !$0.isEmpty && !$0.hasPrefix("processed ") && !$0.hasPrefix("verification time")
                && !$0.hasPrefix("stack depth") && !$0.hasPrefix("cur state:") && !$0.hasPrefix("old state:")
        }
        guard let last = lines.last else {
            return LoadVerdict(accepted: false, error: "(no log)", instruction: nil, errno: errno)
        }
        var instruction = number(after: "insn ", in: last)
        if instruction == nil {
            for line in lines.reversed() {
                if let index = instructionIndex(ofLogLine: line) {
                    instruction = index
                    break
                }
            }
        }
        return LoadVerdict(accepted: false, error: last, instruction: instruction, errno: errno)
    }

    /// `12` for a log line `12: (61) r1 = *(u32 *)(r1 +0)`, nil for other lines.
    static func instructionIndex(ofLogLine line: String) -> Int? {
        guard let colon = line.firstIndex(of: ":") else { return nil }
        let digits = line[..<colon]
        guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigitCharacter) else { return nil }
        let rest = line[line.index(after: colon)...]
        guard rest.hasPrefix(" (") else { return nil }
        return Int(digits)
    }

    /// The decimal number right after `marker` in `text` ("at insn 24" → 24).
    static func number(after marker: String, in text: String) -> Int? {
        guard let range = text.range(of: marker) else { return nil }
        let digits = text[range.upperBound...].prefix(while: \.isASCIIDigitCharacter)
        return digits.isEmpty ? nil : Int(digits)
    }
}

extension KernelBPF {
    /// The kernel's verdict on `instructions`: loads them (`BPF_PROG_LOAD`) and closes the
    /// program again. A rejection by the verifier is a verdict; other failures (the kernel is
    /// not reachable, the program cannot be handed over) are thrown.
    public static func verdict(
        _ instructions: [RawInstruction], type: ProgramType, license: String = "GPL", name: String = "",
        expectedAttachType: AttachType = AttachType(rawValue: 0), flags: UInt32 = 0
    ) throws(KernelError) -> LoadVerdict {
        do {
            _ = try loadProgram(
                instructions, type: type, license: license, name: name, expectedAttachType: expectedAttachType,
                flags: flags)
            return .accepted
        } catch {
            return try verdict(ofLoadError: error)
        }
    }

    /// A load failure as a verdict: the verifier's rejection (with its log's error line), or the
    /// error again when it is not one (the kernel is not reachable, not permitted, ...).
    public static func verdict(ofLoadError error: KernelError) throws(KernelError) -> LoadVerdict {
        guard case .verifierRejected(_, let code, let log) = error else { throw error }
        return LoadVerdict.rejection(log: log, errno: "\(Errno(rawValue: code))")
    }
}

extension KernelObject {
    /// The kernel's verdict on the program named `name` (loaded with the object's maps, as
    /// `program(named:)` does; an accepted program stays loaded and cached).
    public func verdict(ofProgram name: String) throws(KernelError) -> LoadVerdict {
        do {
            _ = try program(named: name)
            return .accepted
        } catch {
            return try KernelBPF.verdict(ofLoadError: error)
        }
    }
}

extension Character {
    fileprivate var isASCIIDigitCharacter: Bool { ("0"..."9").contains(self) }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" || first == "\r" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" || last == "\r" { text = text.dropLast() }
        return String(text)
    }
}
