import MimicCore
import MimicJSON
import MimicLinux

/// `mimic run OBJ.o --events FILE.jsonl`: the object's tracing programs run over a stream of
/// events, in order, as `--pcap` runs a program over packets: maps keep their contents from one
/// event to the next; each event's return value, trace output, iterator output and ring buffer
/// / perf records (decoded with the object's BTF) are printed, then the map changes.
struct EventsRun {
    let session: Session
    let options: RunOptions

    func run() throws {
        guard let path = options.eventsPath else { return }
        let name = Input.displayName(path)
        let bytes = try Input.read(path, what: "events files")
        let events: [TraceEvent]
        do { events = try TraceEvent.parse(lines: bytes) } catch { throw RuntimeError("\(name): \(error)") }
        let builder = TraceEvents(emulator: session.emulator, vm: session.vm, objectBTF: session.object.btf)
        let display = ValueDisplay(object: session.object, cpus: session.cpus)
        let before = session.snapshot()
        var failures = 0
        for (index, event) in events.enumerated() {
            let number = index + 1
            do throws(RuntimeError) {
                try run(event, number: number, builder: builder, display: display)
            } catch {
                failures += 1
                // Errors about the event's JSON name their line already.
                let message =
                    error.message.hasPrefix(event.json.path)
                    ? "\(name) \(error.message)" : "\(name) \(event.json.path): \(error.message)"
                if options.json {
                    Console.out(
                        JSONOutput.object([("event", .integer(Int64(number))), ("error", .string(message))]).line)
                } else {
                    Console.out("event \(number): error: \(message)\n")
                }
            }
        }
        let changes = before.changes(to: session.snapshot())
        if options.json {
            Console.out(
                JSONOutput.object([
                    ("events", .integer(Int64(events.count))), ("failed", .integer(Int64(failures))),
                    ("map_changes", .array(changes.map(display.json))),
                ]).line)
        } else {
            var out = "\(events.count) event\(events.count == 1 ? "" : "s") run"
            out += failures > 0 ? ", \(failures) failed\n" : "\n"
            out += changes.isEmpty ? "maps: no changes\n" : "map changes:\n" + display.describe(changes)
            Console.out(out)
        }
        if failures > 0 { throw RuntimeError("\(failures) of \(events.count) events failed") }
    }

    func run(_ event: TraceEvent, number: Int, builder: TraceEvents, display: ValueDisplay) throws(RuntimeError) {
        let source: ObjectProgram
        // Without --program, an object of several programs has no default: events name theirs.
        let fallback = options.programName != nil || session.object.programs.count == 1 ? session.source : nil
        do { source = try TraceEvents.program(for: event, in: session.object, default: fallback) } catch {
            throw RuntimeError("\(error)")
        }
        guard event.cpu < session.cpus else {
            throw RuntimeError("cpu \(event.cpu) is not one of the \(session.cpus) CPUs (--cpus)")
        }
        let program: Program
        do { program = try session.loaded.program(named: source.name) } catch {
            throw RuntimeError("cannot load program \(source.name): \(error)")
        }
        let contexts: [TracingContext]
        do { contexts = try builder.contexts(event, program: source) } catch { throw RuntimeError(error.description) }
        var results: [UInt64] = []
        var trace: [String] = []
        var output: [UInt8] = []
        var signals: [SentSignal] = []
        var overridden: UInt64?
        var instructions: UInt64 = 0
        for context in contexts {
            let process: Process
            do { process = try session.vm.makeProcess(for: program, context: context, vCPU: event.cpu) } catch {
                throw RuntimeError("cannot set up the context: \(error)")
            }
            do {
                results.append(try Timeout.run(process, limit: session.limit, timeout: session.timeout))
            } catch {
                for line in LinuxProcessState.of(process)?.traceOutput ?? [] { Console.err("trace: \(line)\n") }
                throw RuntimeError(session.message(for: error))
            }
            instructions += process.instructionsExecuted
            if let state = LinuxProcessState.of(process) {
                trace += state.traceOutput
                output += state.seqOutput
                signals += state.signals
                overridden = state.overriddenReturn ?? overridden
            }
        }
        let records = session.drainEvents()
        let pid = contexts.first?.environment.pid ?? 0
        let r0 = results.last ?? 0
        if options.json {
            var members: [(String, JSONOutput)] = [
                ("event", .integer(Int64(number))), ("program", .string(source.name)),
                ("section", .string(source.sectionName)), ("cpu", .integer(Int64(event.cpu))),
                ("pid", .unsigned(UInt64(pid))),
            ]
            if let time = event.time { members.append(("time_ns", .unsigned(time))) }
            members.append(("r0", .integer(Int64(bitPattern: r0))))
            if results.count > 1 { members.append(("runs", .integer(Int64(results.count)))) }
            members.append(("instructions", .unsigned(instructions)))
            if !trace.isEmpty { members.append(("trace", .array(trace.map(JSONOutput.string)))) }
            if !output.isEmpty || source.sectionName.hasPrefix("iter") {
                members.append(("output", .string(String(decoding: output, as: UTF8.self))))
            }
            if !records.isEmpty { members.append(("records", .array(records.map(display.json)))) }
            if !signals.isEmpty {
                members.append(("signals", .array(signals.map { .string($0.description) })))
            }
            if let overridden { members.append(("override_return", .integer(Int64(bitPattern: overridden)))) }
            Console.out(JSONOutput.object(members).line)
            return
        }
        var out = "event \(number): \(source.name) (\(source.sectionName)) cpu \(event.cpu) pid \(pid)"
        if let time = event.time { out += " at \(time) ns" }
        out += "\n  r0 = \(Int64(bitPattern: r0))"
        if results.count > 1 { out += " (last of \(results.count) runs)" }
        out += ", \(instructions) instructions\n"
        for line in trace { out += "  trace: \(line)\n" }
        if !output.isEmpty {
            out += "  output:\n"
            for line in String(decoding: output, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                .dropLast(output.last == 10 ? 1 : 0)
            {
                out += "    \(line)\n"
            }
        }
        for record in records { out += "  \(display.describe(record))\n" }
        for signal in signals { out += "  sent \(signal)\n" }
        if let overridden { out += "  override_return: the probed function returns \(Int64(bitPattern: overridden))\n" }
        Console.out(out)
    }
}
