import MimicCore
import MimicLinux

/// `mimic trace OBJ.o`: run a program one instruction at a time, printing each instruction,
/// its C source line when it changes, and the registers it changed.
enum TraceCommand: Command {
    static let info = CommandInfo(
        name: "trace",
        summary: "Run a program printing each instruction, its source line and the registers it changed.",
        synopsis:
            "trace OBJ.o [--program P] [--context CTX.json | --packet HEX | --pcap IN.pcap [--packet N] | --events FILE.jsonl [--system FILE]] [--map NAME=FILE.json ...] [--json]",
        discussion: """
            Takes the same inputs as `mimic run`. Before each group of instructions from one C
            source line, prints that line (`; text  (file.c:LINE)`); then each instruction as
            `SLOT: ASSEMBLY` followed by the registers it changed (`r0=0x2`), `-> function` when a
            BPF-to-BPF call enters a function and `<- function` when a return comes back to one.
            Helper calls and maps are named as bpftool does (`call bpf_map_lookup_elem#1`,
            `lddw %r1, map[blocklist]`). After the exit, prints the run's report as
            `mimic run` does. With --pcap, traces every packet (or only packet N with --packet).
            With --events, replays the events as `mimic run --events` does, maps persisting, and
            traces the runs of the traced program (--program, or the object's only one) on CPU 0;
            the events of the object's other programs run untraced in their place, so the traced
            runs see the maps those left.
            With --json, the output is JSON Lines: one JSON object per line, one line per run (per
            packet with --pcap), each the report of `mimic run --json` with a "steps" array. An
            error is a line {"error": MESSAGE, "status": CODE} too.
            """,
        options: RunOptions.specs(out: false, json: true).map { spec in
            var spec = spec
            if spec.name == "json" { spec.help = "Print JSON Lines: one JSON object per run, one per line." }
            return spec
        } + [
            .value(
                "events", "FILE.jsonl",
                "Replay the tracing events of FILE (as mimic run --events), tracing the runs of the traced program; other programs' events run untraced."
            )
        ],
        examples: [
            (
                "Trace the firewall on one SYN packet",
                "mimic trace Examples/xdp_firewall.o --context Examples/contexts/blocked_syn.json"
            ),
            (
                "Trace the third packet of a capture",
                "mimic trace Examples/xdp_firewall.o --pcap Examples/traffic.pcap --packet 3"
            ),
        ])

    static func run(_ arguments: ParsedArguments) throws {
        let options = try RunOptions(arguments, command: info.name)
        let session = try options.session()
        if options.eventsPath != nil {
            try tracedEvents(session: session, options: options)
            return
        }
        if options.pcapPath != nil, options.packetNumber == nil {
            let packets = try options.packets()
            for (index, (number, packet)) in packets.enumerated() {
                if !options.json { Console.out((index > 0 ? "\n" : "") + "=== packet \(number) ===\n") }
                if session.type == .skLookup {
                    // A packet the kernel looks no socket up for: the program does not run.
                    let ingress = try session.lookupIngressIfindex()
                    let lookup = packet.data.withUnsafeBytes {
                        SKLookupContext.lookup(frame: $0, ingressIfindex: ingress)
                    }
                    if case .notLookedUp(let reason) = lookup {
                        Console.out(
                            options.json
                                ? JSONOutput.object([
                                    ("input", .string("packet \(number)")), ("not_looked_up", .string(reason)),
                                ]).text + "\n"
                                : "not looked up (the program does not run): \(reason)\n")
                        continue
                    }
                }
                let context = try session.context(packet: packet.data)
                try traced(session: session, options: options, context: context, inputName: "packet \(number)")
            }
            return
        }
        if let contextPath = options.contextPath {
            let contexts = try session.contexts(file: contextPath)
            if contexts.count > 1 {
                for (index, entry) in contexts.enumerated() {
                    if !options.json { Console.out((index > 0 ? "\n" : "") + "=== \(entry.name) ===\n") }
                    try traced(session: session, options: options, context: entry.context, inputName: entry.name)
                }
                return
            }
        }
        let input = try options.singleContext(session)
        try traced(session: session, options: options, context: input.context, inputName: input.name)
    }

    /// `--events`: every event in order, maps persisting; the traced program's runs are traced,
    /// the other programs' run as `mimic run --events` runs them and print one line each.
    static func tracedEvents(session: Session, options: RunOptions) throws {
        guard let path = options.eventsPath else { return }
        let name = Input.displayName(path)
        guard options.programName != nil || session.object.programs.count == 1 else {
            throw RuntimeError(
                "the object has \(session.object.programs.count) programs: name the one to trace with --program NAME (the events of the others run untraced)"
            )
        }
        let bytes = try Input.read(path, what: "events files")
        let events: [TraceEvent]
        do { events = try TraceEvent.parse(lines: bytes) } catch { throw RuntimeError("\(name): \(error)") }
        let builder = TraceEvents(emulator: session.emulator, vm: session.vm, objectBTF: session.object.btf)
        for (index, event) in events.enumerated() {
            let number = index + 1
            let source: ObjectProgram
            let contexts: [TracingContext]
            do {
                source = try TraceEvents.program(for: event, in: session.object, default: session.source)
                contexts = try builder.contexts(event, program: source)
            } catch {
                throw RuntimeError("\(name) \(error)")
            }
            guard event.cpu < session.cpus else {
                throw RuntimeError(
                    "\(name) \(event.json.path): cpu \(event.cpu) is not one of the \(session.cpus) CPUs (--cpus)")
            }
            for (run, context) in contexts.enumerated() {
                let label = "event \(number)" + (contexts.count > 1 ? " run \(run + 1)" : "")
                guard source.name == session.source.name else {
                    let process: Process
                    do {
                        process = try session.vm.makeProcess(
                            for: session.loaded.program(named: source.name), context: context, vCPU: event.cpu)
                    } catch {
                        throw RuntimeError("\(label): cannot set up \(source.name): \(error)")
                    }
                    let r0: UInt64
                    do { r0 = try Timeout.run(process, limit: session.limit, timeout: session.timeout) } catch {
                        throw RuntimeError("\(label): \(source.name): \(session.message(for: error))")
                    }
                    _ = session.drainEvents() // its records are not the traced runs'
                    if options.json {
                        Console.out(
                            JSONOutput.object([
                                ("event", .integer(Int64(number))), ("program", .string(source.name)),
                                ("traced", .bool(false)), ("r0", .integer(Int64(bitPattern: r0))),
                            ]).line)
                    } else {
                        Console.out("=== \(label): \(source.name), not traced: r0 = \(Int64(bitPattern: r0)) ===\n")
                    }
                    continue
                }
                guard event.cpu == 0 else {
                    throw RuntimeError(
                        "\(name) \(event.json.path): trace runs the traced program on CPU 0; this event asks for cpu \(event.cpu)"
                    )
                }
                if !options.json { Console.out("=== \(label): \(source.name) ===\n") }
                try traced(session: session, options: options, context: context, inputName: label)
            }
        }
    }

    static func traced(session: Session, options: RunOptions, context: (any Context)?, inputName: String) throws {
        let stepper = SourceStepper(session: session)
        var steps: [JSONOutput] = []
        let json = options.json
        try SingleRun(session: session, options: options).run(
            context: context, inputName: inputName, jsonLines: true,
            execute: { process throws(ExecutionError) in
                var executed: UInt64 = 0
                let deadline = Timeout.deadline(session.timeout)
                while true {
                    try Timeout.check(deadline, steps: executed, process: process)
                    guard executed < session.limit else {
                        throw session.program.error(
                            .budgetExhausted(executed: process.instructionsExecuted), at: process.pc)
                    }
                    let step: SourceStepper.Step
                    do throws(ExecutionError) {
                        step = try stepper.step(process)
                    } catch {
                        if !json { Console.out(stepper.describeFault(error)) }
                        throw error
                    }
                    executed += 1
                    if json {
                        steps.append(step.json)
                    } else {
                        Console.out(step.text)
                    }
                    if case .exited(let r0) = step.result { return r0 }
                }
            }, extraJSON: { [("steps", .array(steps))] })
    }
}

/// Executes single instructions and describes them with their source: the shared core of
/// `trace` and `debug`.
final class SourceStepper {
    let session: Session
    /// The source line printed last (so a line is printed once per run of instructions).
    private var lastLine: (String, Int)?
    private var lastFunction: String?
    /// The call depth of the previous step (a smaller one now means a return).
    private var lastDepth = 0
    let slotWidth: Int

    init(session: Session) {
        self.session = session
        slotWidth = String(max(0, session.program.count - 1)).count
    }

    struct Step {
        var pc: Int
        var instruction: String
        /// The source line, when it differs from the previous step's.
        var newSource: SourceLineInfo?
        /// The function a BPF-to-BPF call entered at this step.
        var newFunction: String?
        /// The function a return came back to at this step.
        var returnedTo: String?
        var changed: [(Int, UInt64)]
        var result: StepResult
        /// The source header lines (if any) and the instruction line.
        var text: String
        /// The instruction line alone.
        var line: String

        var json: JSONOutput {
            var members: [(String, JSONOutput)] = [("pc", .integer(Int64(pc))), ("instruction", .string(instruction))]
            if let newSource {
                members.append(("source", .string(newSource.sourceText.trimmingIndent())))
                members.append(("location", .string("\(Session.baseName(newSource.file)):\(newSource.line)")))
            }
            if let newFunction { members.append(("function", .string(newFunction))) }
            if let returnedTo { members.append(("returned_to", .string(returnedTo))) }
            members.append(("changed", .object(changed.map { ("r\($0.0)", .string("0x" + String($0.1, radix: 16))) })))
            return .object(members)
        }
    }

    /// The source line of `pc` as `; text  (file:line)`.
    func sourceText(_ line: SourceLineInfo) -> String {
        let text = line.sourceText.trimmingIndent()
        return "; \(text.isEmpty ? "(no source text)" : text)  (\(Session.baseName(line.file)):\(line.line))"
    }

    /// The assembly of the instruction at `pc`, helpers and maps named.
    func instructionText(at pc: Int) -> String {
        Assembly.text(at: pc, in: session.program.instructions, names: session.names)
    }

    func slot(_ pc: Int) -> String {
        let text = String(pc)
        return String(repeating: " ", count: max(0, slotWidth - text.count)) + text
    }

    /// Executes one instruction of `process` and describes it.
    func step(_ process: Process) throws(ExecutionError) -> Step {
        let pc = process.pc
        let before = process.registers.all
        var header = ""
        var newFunction: String?
        var returnedTo: String?
        let depth = process.callStack.count
        if let function = session.function(at: pc)?.name, function != lastFunction {
            if lastFunction != nil, depth < lastDepth {
                header += "<- \(function)\n"
                returnedTo = function
            } else {
                if lastFunction != nil || function != session.source.name { header += "-> \(function)\n" }
                newFunction = function
            }
            lastFunction = function
        }
        lastDepth = depth
        var newSource: SourceLineInfo?
        if let line = session.program.sourceLine(at: pc), lastLine.map({ $0 != (line.file, line.line) }) ?? true {
            header += "    " + sourceText(line) + "\n"
            newSource = line
            lastLine = (line.file, line.line)
        }
        let text = instructionText(at: pc)
        let result = try process.step()
        let after = process.registers.all
        let changed = (0..<after.count).filter { after[$0] != before[$0] }.map { ($0, after[$0]) }
        var line = "\(slot(pc)): \(text)"
        if !changed.isEmpty {
            line = line.padded(to: 40) + changed.map { "r\($0.0)=0x\(String($0.1, radix: 16))" }.joined(separator: " ")
        }
        if case .exited(let r0) = result {
            line += "    exit r0=\(r0)" + (session.verdict(r0).map { " \($0)" } ?? "")
        }
        return Step(
            pc: pc, instruction: text, newSource: newSource, newFunction: newFunction, returnedTo: returnedTo,
            changed: changed,
            result: result, text: header + line + "\n", line: line + "\n")
    }

    /// The line for an instruction that faulted.
    func describeFault(_ error: ExecutionError) -> String {
        "\(slot(error.pc)): \(instructionText(at: error.pc))    <- \(SourceStepper.reason(error))\n"
    }

    /// Why `error` stopped the run, in words: its description without the program and
    /// instruction it names first (`call to unknown or unsupported helper #27 (...)`).
    static func reason(_ error: ExecutionError) -> String {
        let first = error.description.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
        if let range = first.range(of: "): ") ?? first.range(of: ": ") { return String(first[range.upperBound...]) }
        return first
    }
}

extension String {
    /// The string without its leading spaces and tabs.
    func trimmingIndent() -> String { String(drop { $0 == " " || $0 == "\t" }) }
}
