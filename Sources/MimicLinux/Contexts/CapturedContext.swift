import MimicCore
import MimicJSON
import MimicMemory

/// One recorded helper call of a captured context: what the program passed and what the helper
/// returned (R0) or wrote (memory behind a pointer register).
public struct HelperCallRecord: Sendable, Equatable {
    /// A recorded register value: a number, or bytes written to the memory the register points to.
    public enum Value: Sendable, Equatable {
        case number(UInt64)
        case bytes([UInt8])
    }

    public var helper: Int32
    /// `(register, value)` pairs the program passed.
    public var params: [(register: Int, value: Value)]
    /// `(register, value)` results: R0 is the return value; bytes go to the memory a register
    /// pointed to when the helper was called.
    public var results: [(register: Int, value: Value)]

    public init(helper: Int32, params: [(register: Int, value: Value)] = [], results: [(register: Int, value: Value)]) {
        self.helper = helper
        self.params = params
        self.results = results
    }

    public static func == (a: HelperCallRecord, b: HelperCallRecord) -> Bool {
        a.helper == b.helper
            && a.params.count == b.params.count && zip(a.params, b.params).allSatisfy { $0 == $1 }
            && a.results.count == b.results.count && zip(a.results, b.results).allSatisfy { $0 == $1 }
    }
}

/// A context that wraps another and replays recorded helper results (JSON type `captured`), so a
/// trace captured on a real system can run again: the n-th call of helper H replays the n-th
/// record for H. Helpers that can be emulated fall back to emulation once their records are used
/// up; the others stop the program with an error naming the helper.
public struct CapturedContext: Context {
    public var name: String
    public var subContext: any Context
    /// Records by helper id, in call order.
    public var helperCalls: [Int32: [HelperCallRecord]]

    public init(name: String = "captured", subContext: any Context, helperCalls: [Int32: [HelperCallRecord]]) {
        self.name = name
        self.subContext = subContext
        self.helperCalls = helperCalls
    }

    /// Reads the `ctx` object of a `captured` context file: `subContext` (a whole context envelope)
    /// and `helperCalls` (helper number as a string → records).
    public init(json ctx: JSONField, name: String) throws(ContextError) {
        try ctx.object()
        let sub = ctx["subContext"]
        guard !sub.isMissing else { throw sub.error("missing (a captured context wraps another context)") }
        let subContext = try ContextFile.decode(sub)
        var calls: [Int32: [HelperCallRecord]] = [:]
        let callsField = ctx["helperCalls"]
        if !callsField.isMissing {
            for (key, list) in try callsField.members() {
                guard let id = Int32(key, radix: 10), id > 0 else {
                    throw list.error("the key must be a helper number, got \"\(key)\"")
                }
                var records: [HelperCallRecord] = []
                for entry in try list.optionalElements() {
                    try entry.object()
                    if let recorded = try entry["helperFn"].optionalInteger(Int32.self), recorded != id {
                        throw entry["helperFn"].error("record of helper \(recorded) listed under helper \(id)")
                    }
                    records.append(
                        HelperCallRecord(
                            helper: id, params: try Self.values(entry["params"]),
                            results: try Self.values(entry["results"])))
                }
                calls[id] = records
            }
        }
        self.init(name: name, subContext: subContext.context, helperCalls: calls)
    }

    static func values(_ field: JSONField) throws(ContextError) -> [(register: Int, value: HelperCallRecord.Value)] {
        var values: [(register: Int, value: HelperCallRecord.Value)] = []
        for item in try field.optionalElements() {
            try item.object()
            let register = try item["reg"].integer(Int.self)
            guard (0...10).contains(register) else {
                throw item["reg"].error("expected a register number 0...10, got \(register)")
            }
            let value = item["value"]
            switch value.value {
            case .string?: values.append((register, .bytes(try value.base64())))
            case .number?: values.append((register, .number(try value.bits64())))
            default:
                throw value.error("expected a number or a base64 string, got \(value.value?.kindName ?? "nothing")")
            }
        }
        return values
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        try subContext.attach(to: process)
        let state = LinuxProcessState.forContext(process)
        state.replay = HelperReplay(helperCalls)
        process.inlineHelpersBypassed = true // compiled code calls the helpers, which replay
    }
}

/// The recorded helper calls of a process and how far replay has got.
public final class HelperReplay {
    private var records: [Int32: [HelperCallRecord]]
    private var used: [Int32: Int] = [:]
    private var warnedExhausted: Set<Int32> = []

    public init(_ records: [Int32: [HelperCallRecord]]) { self.records = records }

    /// How many records of `helper` were replayed so far.
    public func replayedCount(of helper: Int32) -> Int { used[helper] ?? 0 }

    /// How many records of `helper` are left.
    public func remainingCount(of helper: Int32) -> Int { (records[helper]?.count ?? 0) - replayedCount(of: helper) }

    /// Whether any records were captured for `helper`.
    public func hasRecords(for helper: Int32) -> Bool { !(records[helper]?.isEmpty ?? true) }

    /// The next record of `helper`, consumed; nil when none are left.
    func next(for helper: Int32) -> HelperCallRecord? {
        guard let list = records[helper] else { return nil }
        let index = used[helper] ?? 0
        guard index < list.count else { return nil }
        used[helper] = index + 1
        return list[index]
    }

    /// Records a one-time note that `helper` ran out of records and is emulated from now on.
    func noteExhausted(_ helper: Int32, name: String, state: LinuxProcessState) {
        guard hasRecords(for: helper), !warnedExhausted.contains(helper) else { return }
        warnedExhausted.insert(helper)
        state.warnings.append(
            "\(name): all \(records[helper]?.count ?? 0) recorded calls were replayed; later calls are emulated")
    }

    /// Applies `record` to `process`: compares parameters (a warning on mismatch), writes byte
    /// results to the memory their registers point to, sets numeric registers, and returns R0.
    func apply(
        _ record: HelperCallRecord, to process: MimicCore.Process, state: LinuxProcessState,
        helperName: String
    ) throws(HelperFailure) -> UInt64 {
        let callNumber = replayedCount(of: record.helper)
        for (register, value) in record.params {
            guard case .number(let recorded) = value, (1...5).contains(register) else { continue }
            let actual = process.registers[register]
            // Pointers cannot match a recording from another machine; compare plain values only.
            if actual != recorded, process.memory.region(containing: actual) == nil {
                state.warnings.append(
                    "\(helperName) call \(callNumber): r\(register) is \(actual), the record has \(recorded)")
            }
        }
        let atCall = process.registers.all
        var r0: UInt64 = 0
        for (register, value) in record.results {
            switch value {
            case .bytes(let bytes):
                do {
                    try process.memory.write(bytes, at: atCall[register])
                } catch {
                    throw .memory(error)
                }
            case .number(let number):
                if register == 0 { r0 = number } else if register <= 9 { process.registers[register] = number }
            }
        }
        return r0
    }
}
