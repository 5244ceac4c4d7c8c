import MimicCore
import MimicLinux

/// `mimic debug OBJ.o --events FILE.jsonl`: the runs of an events file handed to the debugger
/// one after another, maps persisting, as `mimic run --events` runs them. The runs of the
/// debugged program (`--program`, or the object's only one) stop before their first
/// instruction; the events of the object's other programs run in their place undebugged (one
/// line each, with their records), as `mimic trace --events` runs them, so the debugged runs see
/// the maps those left.
final class DebugEvents {
    let session: Session
    /// The events file's name, for messages.
    let name: String
    private let events: [TraceEvent]
    private let builder: TraceEvents
    private let display: ValueDisplay
    private let before: MapSnapshot
    /// The next event to start, and the contexts of the current event still to run.
    private var nextEvent = 0
    private var pending: [(context: TracingContext, run: Int)] = []
    private var pendingEvent = 0
    private var pendingRuns = 0
    private var failures = 0
    private var summarised = false

    /// One run handed to the debugger.
    struct Run {
        var process: Process
        /// `event N` (`event N run R` when the event runs several times, as a task iterator).
        var label: String
        /// The event's line: program, section, CPU, task and time.
        var header: String
    }

    init(session: Session, path: String) throws {
        self.session = session
        name = Input.displayName(path)
        let bytes = try Input.read(path, what: "events files")
        do { events = try TraceEvent.parse(lines: bytes) } catch { throw RuntimeError("\(name): \(error)") }
        builder = TraceEvents(emulator: session.emulator, vm: session.vm, objectBTF: session.object.btf)
        display = ValueDisplay(object: session.object, cpus: session.cpus)
        before = session.snapshot()
    }

    var count: Int { events.count }

    /// The event number (from 1) of the run being debugged or last debugged.
    private(set) var currentEvent = 0

    /// Whether any event is left to run.
    var hasMore: Bool { !pending.isEmpty || nextEvent < events.count }

    /// The next run of the debugged program, after running the other programs' events before it
    /// (printed); nil when every event has run (the summary is printed the first time).
    func next() -> Run? {
        while true {
            if !pending.isEmpty {
                let (context, run) = pending.removeFirst()
                let number = pendingEvent
                let event = events[number - 1]
                let label = "event \(number)" + (pendingRuns > 1 ? " run \(run)" : "")
                do {
                    let process = try session.vm.makeProcess(
                        for: session.program, context: context, vCPU: event.cpu)
                    currentEvent = number
                    return Run(
                        process: process, label: label,
                        header: header(event, label: label, pid: context.environment.pid))
                } catch {
                    fail(label, "cannot set up the context: \(error)")
                    continue
                }
            }
            guard nextEvent < events.count else {
                summarise()
                return nil
            }
            nextEvent += 1
            let number = nextEvent
            let event = events[number - 1]
            let source: ObjectProgram
            let contexts: [TracingContext]
            do {
                source = try TraceEvents.program(for: event, in: session.object, default: session.source)
                contexts = try builder.contexts(event, program: source)
            } catch {
                // Errors about the event's JSON name its line already.
                let message = "\(error)"
                fail(
                    "event \(number)",
                    message.hasPrefix(event.json.path) ? "\(name) \(message)" : "\(name) \(event.json.path): \(message)"
                )
                continue
            }
            guard event.cpu < session.cpus else {
                fail(
                    "event \(number)",
                    "\(name) \(event.json.path): cpu \(event.cpu) is not one of the \(session.cpus) CPUs (--cpus)")
                continue
            }
            if source.name == session.source.name {
                pending = contexts.enumerated().map { ($0.element, $0.offset + 1) }
                pendingEvent = number
                pendingRuns = contexts.count
                continue
            }
            runUndebugged(event, number: number, source: source, contexts: contexts)
        }
    }

    /// An event of another program: run to its end, one line a run and its records.
    private func runUndebugged(_ event: TraceEvent, number: Int, source: ObjectProgram, contexts: [TracingContext]) {
        for (index, context) in contexts.enumerated() {
            let label = "event \(number)" + (contexts.count > 1 ? " run \(index + 1)" : "")
            let r0: UInt64
            let process: Process
            do {
                process = try session.vm.makeProcess(
                    for: session.loaded.program(named: source.name), context: context, vCPU: event.cpu)
            } catch {
                fail(label, "cannot set up \(source.name): \(error)")
                continue
            }
            do { r0 = try Timeout.run(process, limit: session.limit, timeout: session.timeout) } catch {
                fail(label, "\(source.name): \(session.message(for: error))")
                continue
            }
            Console.out("\(label): \(source.name), not debugged: r0 = \(Int64(bitPattern: r0))\n" + report(process))
        }
    }

    private func fail(_ label: String, _ message: String) {
        failures += 1
        Console.out("\(label): error: \(message)\n")
    }

    /// Counts a debugged run that stopped with an error.
    func debuggedRunFailed() { failures += 1 }

    private func header(_ event: TraceEvent, label: String, pid: UInt32) -> String {
        var out = "\(label): \(session.source.name) (\(session.source.sectionName)) cpu \(event.cpu) pid \(pid)"
        if let time = event.time { out += " at \(time) ns" }
        return out + "\n"
    }

    /// What a finished run left besides R0: trace lines are shown as they come, so this is the
    /// iterator output, the ring buffer and perf records (decoded), signals and an overridden
    /// return value.
    func report(_ process: Process) -> String {
        var out = ""
        if let state = LinuxProcessState.of(process) {
            if !state.seqOutput.isEmpty {
                out += "  output:\n"
                let text = String(decoding: state.seqOutput, as: UTF8.self)
                for line in text.split(separator: "\n", omittingEmptySubsequences: false)
                    .dropLast(state.seqOutput.last == 10 ? 1 : 0)
                {
                    out += "    \(line)\n"
                }
            }
            for signal in state.signals { out += "  sent \(signal)\n" }
            if let overridden = state.overriddenReturn {
                out += "  override_return: the probed function returns \(Int64(bitPattern: overridden))\n"
            }
        }
        for record in session.drainEvents() { out += "  \(display.describe(record))\n" }
        return out
    }

    /// The end of the events: how many ran and the map changes over them all (printed once).
    func summarise() {
        guard !summarised else { return }
        summarised = true
        var out = "all \(events.count) event\(events.count == 1 ? "" : "s") run"
        out += failures > 0 ? ", \(failures) failed\n" : "\n"
        let changes = before.changes(to: session.snapshot())
        out += changes.isEmpty ? "maps: no changes\n" : "map changes:\n" + display.describe(changes)
        Console.out(out)
    }

    /// The events, each with its program and whether it has run (`events` command).
    func list() -> String {
        var out = ""
        for (index, event) in events.enumerated() {
            let number = index + 1
            let program = (try? TraceEvents.program(for: event, in: session.object, default: session.source))?.name
            let mark = number == currentEvent ? "=>" : "  "
            let status = number == currentEvent ? "current" : number <= nextEvent ? "run" : "to run"
            out += "\(mark) event \(number): \(program ?? "(no program)")"
            out += program == session.source.name ? "" : " (not debugged)"
            out += ", \(status)\n"
        }
        return out
    }
}
