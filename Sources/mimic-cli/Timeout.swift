import MimicCore

/// `--timeout DURATION`: a wall-clock deadline for each run of a program, as the Go mimic's
/// `Run(ctx)` with a context deadline. Each run (each packet of a capture, each context of a
/// file) gets the whole duration.
enum Timeout {
    static let spec = OptionSpec.value(
        "timeout", "DURATION",
        "Stop each run after DURATION of wall-clock time (500ms, 2s, 1m; a bare number is seconds).")

    /// Parses `500ms`, `2s`, `1.5s`, `1m`, `250us`, `100ns` or a bare number of seconds.
    static func parse(_ text: String, command: String) throws(UsageError) -> Duration {
        let units: [(suffix: String, nanoseconds: Double)] = [
            ("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9),
        ]
        var number = Substring(text)
        var scale = 1e9
        // Longest suffix first: "ms" before "s", "ns" before "s".
        for unit in units.sorted(by: { $0.suffix.count > $1.suffix.count }) where text.hasSuffix(unit.suffix) {
            number = text.dropLast(unit.suffix.count)
            scale = unit.nanoseconds
            break
        }
        guard let value = Double(number), value.isFinite, value > 0, value * scale <= 1e18 else {
            throw UsageError(
                message: "--timeout expects a positive duration such as 500ms, 2s or 1m, got '\(text)'",
                command: command)
        }
        return .nanoseconds(Int64(value * scale))
    }

    /// `--timeout` of `arguments`, or nil.
    static func value(of arguments: ParsedArguments, command: String) throws(UsageError) -> Duration? {
        guard let text = arguments.value("timeout") else { return nil }
        return try parse(text, command: command)
    }

    /// Runs `process` to the end with the instruction limit and, when given, the timeout.
    static func run(_ process: Process, limit: UInt64, timeout: Duration?) throws(ExecutionError) -> UInt64 {
        guard let timeout else { return try process.run(instructionLimit: limit) }
        return try process.run(timeout: timeout, instructionLimit: limit)
    }

    /// The deadline of a single-stepped run starting now (the tracers check it between steps).
    static func deadline(_ timeout: Duration?) -> ContinuousClock.Instant? {
        timeout.map { ContinuousClock.now.advanced(by: $0) }
    }

    /// Throws `deadlineExceeded` once `deadline` has passed; single-stepping loops call it every
    /// 4,096 steps, as the interpreter looks at the clock.
    static func check(_ deadline: ContinuousClock.Instant?, steps: UInt64, process: Process) throws(ExecutionError) {
        guard let deadline, steps & 4095 == 0, ContinuousClock.now >= deadline else { return }
        throw process.program.error(.deadlineExceeded(executed: process.instructionsExecuted), at: process.pc)
    }
}
