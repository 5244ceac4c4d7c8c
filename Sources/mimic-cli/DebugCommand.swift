#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import MimicCore
import MimicLinux

/// `mimic debug OBJ.o`: an interactive debugger, driven by commands on standard input.
enum DebugCommand: Command {
    static let info = CommandInfo(
        name: "debug",
        summary: "Debug a program interactively: breakpoints, stepping, registers, memory, maps.",
        synopsis:
            "debug OBJ.o [--program P] [--context CTX.json | --packet HEX | --pcap IN.pcap [--packet N] | --events FILE.jsonl [--system FILE]] [--map NAME=FILE.json ...]",
        discussion: """
            Takes the same inputs as `mimic run` (with --pcap, debugs packet N, default 1) and
            stops before the first instruction. Commands are read from standard input one per line,
            so a debugging session can be scripted (`mimic debug ... < script`); the prompt
            `(mimic) ` is printed only when standard input is a terminal. Bad commands print an
            error and the session goes on; end of input quits.

            With --events, steps through the events of an events file as `mimic run --events`
            runs them, maps persisting: each run of the debugged program (--program, or the
            object's only one) stops before its first instruction; the events of the object's
            other programs run in their place undebugged, one line each. When a run ends, its
            records are printed; step, next or event then start the next run, and continue runs
            on through the next events to a breakpoint (stopping after a run that fails). After
            the last event, the map changes over all of them are printed.

            COMMANDS:
              step, s [N]          execute N instructions (default 1), entering calls
              next, n [N]          like step, but run BPF-to-BPF calls to their return
              continue, c          run to the next breakpoint or the exit (with --events: or
                                   the end of the events)
              event, e             with --events: run to the end of this event's run (or of
                                   the next one, when this one has ended)
              events               with --events: the events, their programs, which has run
              finish               run until the current BPF-to-BPF call returns
              break, b LOCATION    stop at an instruction number, a function name or FILE:LINE
              break, b             list the breakpoints
              delete, d [N]        delete breakpoint N (all without N)
              regs, r              show R0-R10
              x ADDR [LEN]         hex dump LEN bytes (default 64) of VM memory; ADDR is a number
                                   (0x... or decimal) or a register with an offset: r10-16, r1+4
              maps                 list the maps and their entry counts
              map NAME             show a map's entries (formatted with BTF types)
              bt                   the BPF-to-BPF call stack, with functions and source lines
              list, l              the source around the current line (else the disassembly)
              where                the current instruction and source line
              quit, q              leave the debugger
              help, h              this list
            When the program exits, R0 and its verdict are printed.
            """,
        options: RunOptions.specs(out: false, json: false, timeout: false) + [
            .value(
                "events", "FILE.jsonl",
                "Step through the tracing events of FILE (as mimic run --events): the debugged program's runs stop before their first instruction; other programs' events run undebugged."
            )
        ],
        examples: [
            (
                "Debug the firewall on a blocked SYN",
                "mimic debug Examples/xdp_firewall.o --context Examples/contexts/blocked_syn.json --map blocklist=Examples/blocklist.json"
            ),
            (
                "Debug handle_exit over a stream of events",
                "mimic debug Tests/MimicLinuxTests/Fixtures/tracing/bootstrap.bpf.o --program handle_exit --system Tests/MimicLinuxTests/Fixtures/tracing/system.json --events Tests/MimicLinuxTests/Fixtures/tracing/bootstrap.events.jsonl"
            ),
            (
                "Script a session",
                "printf 'break xdp_firewall.c:52\\ncontinue\\nregs\\nbt\\ncontinue\\n' | mimic debug Examples/xdp_firewall.o --pcap Examples/traffic.pcap --packet 4"
            ),
        ])

    static func run(_ arguments: ParsedArguments) throws {
        var options = try RunOptions(arguments, command: info.name)
        if options.pcapPath != nil, options.packetNumber == nil { options.packetNumber = 1 }
        let session = try options.session()
        let debugger: Debugger
        if let eventsPath = options.eventsPath {
            guard options.programName != nil || session.object.programs.count == 1 else {
                throw RuntimeError(
                    "the object has \(session.object.programs.count) programs: name the one to debug with --program NAME (the events of the others run undebugged)"
                )
            }
            let events = try DebugEvents(session: session, path: eventsPath)
            Console.out(
                "program \(session.source.name) (\(session.type)) over the \(events.count) event\(events.count == 1 ? "" : "s") of \(events.name): \(session.program.count) instructions; type 'help' for commands\n"
            )
            guard let first = events.next() else { return }
            debugger = Debugger(session: session, process: first.process, inputName: first.label, events: events)
            Console.out(first.header)
        } else {
            let input = try options.singleContext(session)
            let process = try session.makeProcess(context: input.context)
            debugger = Debugger(session: session, process: process, inputName: input.name)
            Console.out(
                "program \(session.source.name) (\(session.type)) on \(input.name): \(session.program.count) instructions; type 'help' for commands\n"
            )
        }
        Console.out(debugger.location())
        let interactive = isatty(STDIN_FILENO) == 1
        while true {
            if interactive { Console.out("(mimic) ") }
            guard let line = readLine(strippingNewline: true) else { break }
            if !debugger.execute(line) { break }
        }
    }
}

/// The debugger's state and commands.
final class Debugger {
    let session: Session
    /// The run being debugged (with --events, the current event's).
    private(set) var process: Process
    private(set) var inputName: String
    private(set) var stepper: SourceStepper
    let display: ValueDisplay
    /// With --events: the runs still to come.
    let events: DebugEvents?
    /// Breakpoints by number: the instruction slot and how the user wrote it.
    private var breakpoints: [(number: Int, pc: Int, location: String)] = []
    private var nextBreakpoint = 1
    /// Trace lines already shown.
    private var traceShown = 0

    init(session: Session, process: Process, inputName: String, events: DebugEvents? = nil) {
        self.session = session
        self.process = process
        self.inputName = inputName
        self.events = events
        stepper = SourceStepper(session: session)
        display = ValueDisplay(object: session.object, cpus: session.cpus)
    }

    /// How a command that runs the program finds something to run.
    private enum Resumption { case running, started, nothing }

    /// The current run when it is still going; with --events, after a run has ended, the next
    /// event's run (its header printed); else nothing, saying why.
    private func resume() -> Resumption {
        if case .ready = process.state { return .running }
        guard let events else {
            _ = checkRunning()
            return .nothing
        }
        guard let run = events.next() else {
            error("every event has run; use maps, map NAME or quit")
            return .nothing
        }
        process = run.process
        inputName = run.label
        stepper = SourceStepper(session: session)
        traceShown = 0
        Console.out(run.header)
        return .started
    }

    /// Runs one command line; false to quit.
    func execute(_ line: String) -> Bool {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let command = words.first else { return true }
        let arguments = Array(words.dropFirst())
        switch command {
        case "step", "s", "stepi", "si": step(count: arguments, over: false)
        case "next", "n", "nexti", "ni": step(count: arguments, over: true)
        case "continue", "c", "cont": continueRunning(acrossEvents: true)
        case "event", "e":
            if events == nil {
                error("'event' steps through the events of --events FILE.jsonl; use continue")
            } else {
                continueRunning(acrossEvents: false)
            }
        case "events":
            if let events { Console.out(events.list()) } else { error("no --events file") }
        case "finish", "fin": finish()
        case "break", "b": breakpoint(arguments)
        case "delete", "d": delete(arguments)
        case "regs", "r", "registers", "info": registers()
        case "x": examine(arguments)
        case "maps": listMaps()
        case "map": showMap(arguments)
        case "bt", "backtrace", "where", "w":
            if command == "where" || command == "w" { Console.out(location()) } else { backtrace() }
        case "list", "l": list()
        case "quit", "q", "exit": return false
        case "help", "h", "?": Console.out(Debugger.help)
        default:
            error("unknown command '\(command)'; type 'help' for the list")
        }
        return true
    }

    static let help = """
        step, s [N]        execute N instructions (default 1)
        next, n [N]        step over BPF-to-BPF calls
        continue, c        run to the next breakpoint or the exit (--events: or the end)
        event, e           --events: run to the end of this event's run
        events             --events: list the events
        finish             run to the return of the current call
        break, b LOCATION  break at an instruction number, function name or FILE:LINE; no argument lists them
        delete, d [N]      delete breakpoint N (all without N)
        regs, r            show registers
        x ADDR [LEN]       hex dump memory; ADDR: 0x..., decimal, or rN[+-OFFSET]
        maps / map NAME    list maps / show a map's entries
        bt                 call stack
        list, l            source around the current line
        where              the current location
        quit, q            leave

        """

    private func error(_ message: String) {
        Console.out("error: \(message)\n")
    }

    /// Refuses to run a finished process, saying why.
    private func checkRunning() -> Bool {
        switch process.state {
        case .ready: return true
        case .exited(let r0) where events?.hasMore == true:
            error("the run has exited with r0 = \(r0); step, next, event or continue go on to the next event")
        case .exited(let r0): error("the program has exited with r0 = \(r0); use maps, map NAME or quit")
        case .failed: error("the program stopped with an error; use regs, x, maps or quit")
        }
        return false
    }

    // MARK: Execution

    /// Executes one instruction, printing it and any trace output; false when the run ended.
    @discardableResult
    private func stepOnce(quiet: Bool = false) -> Bool {
        do {
            let step = try stepper.step(process)
            if !quiet { Console.out(step.line) }
            showTraceOutput()
            if case .exited(let r0) = step.result {
                exited(r0)
                ended()
                return false
            }
            return true
        } catch {
            showTraceOutput()
            Console.out(stepper.describeFault(error))
            Console.out("program stopped: \(session.message(for: error))\n")
            events?.debuggedRunFailed()
            ended()
            return false
        }
    }

    private func showTraceOutput() {
        let lines = LinuxProcessState.of(process)?.traceOutput ?? []
        while traceShown < lines.count {
            Console.out("trace: \(lines[traceShown])\n")
            traceShown += 1
        }
    }

    /// With --events, what the run left (records, iterator output, signals) and what comes next.
    private func ended() {
        guard let events else { return }
        Console.out(events.report(process))
        if events.hasMore {
            Console.out("end of \(inputName); step, next, event or continue go on to the next event\n")
        } else {
            Console.out("end of \(inputName), the last event\n")
            events.summarise()
        }
    }

    private func exited(_ r0: UInt64) {
        var text = "program exited: r0 = \(r0) (0x\(String(r0, radix: 16)))"
        if let verdict = session.verdict(r0) { text += " \(verdict)" }
        Console.out(text + "\ninstructions executed: \(process.instructionsExecuted)\n")
    }

    private func count(_ arguments: [String]) -> Int? {
        guard let first = arguments.first else { return 1 }
        guard let value = Int(first), value >= 1 else {
            error("expected a positive count, got '\(first)'")
            return nil
        }
        return value
    }

    private func step(count arguments: [String], over: Bool) {
        guard let count = count(arguments) else { return }
        switch resume() {
        case .running: break
        case .started:
            Console.out(location())
            return
        case .nothing: return
        }
        for _ in 0..<count {
            let depth = process.callStack.count
            let isCall = session.program.decoded(at: process.pc)?.operation == .callLocal
            guard stepOnce() else { return }
            if over && isCall {
                // Run the callee quietly to its return (or a breakpoint inside it).
                while process.callStack.count > depth {
                    guard stepOnce(quiet: true) else { return }
                    if let hit = breakpoint(at: process.pc) {
                        Console.out(location(breakpoint: hit.number))
                        return
                    }
                }
            }
        }
        Console.out(location())
    }

    /// Runs to the next breakpoint or the end of the run; `acrossEvents`: with --events, on
    /// through the next events' runs (not past a run that failed, left to inspect).
    private func continueRunning(acrossEvents: Bool) {
        switch resume() {
        case .running: break
        case .started:
            if let hit = breakpoint(at: process.pc) {
                Console.out(location(breakpoint: hit.number))
                return
            }
        case .nothing: return
        }
        var executed: UInt64 = 0
        while true {
            guard stepOnce(quiet: true) else {
                guard acrossEvents, events != nil, case .exited = process.state, events?.hasMore == true else { return }
                guard resume() == .started else { return }
                executed = 0
                if let hit = breakpoint(at: process.pc) {
                    Console.out(location(breakpoint: hit.number))
                    return
                }
                continue
            }
            executed += 1
            if let hit = breakpoint(at: process.pc) {
                Console.out(location(breakpoint: hit.number))
                return
            }
            if executed >= session.limit {
                error("stopped after \(executed) instructions (the --limit budget)")
                Console.out(location())
                return
            }
        }
    }

    /// Runs until the current BPF-to-BPF call returns.
    private func finish() {
        guard checkRunning() else { return }
        let depth = process.callStack.count
        guard depth > 0 else {
            error("not inside a call ('finish' runs to the return of a BPF-to-BPF call); use continue")
            return
        }
        while process.callStack.count >= depth {
            guard stepOnce(quiet: true) else { return }
            if let hit = breakpoint(at: process.pc) {
                Console.out(location(breakpoint: hit.number))
                return
            }
        }
        Console.out("returned r0 = \(process.registers[0])\n" + location())
    }

    private func breakpoint(at pc: Int) -> (number: Int, pc: Int, location: String)? {
        breakpoints.first { $0.pc == pc }
    }

    // MARK: Breakpoints

    private func breakpoint(_ arguments: [String]) {
        guard let spec = arguments.first else {
            if breakpoints.isEmpty {
                Console.out("no breakpoints\n")
            } else {
                for point in breakpoints {
                    Console.out("breakpoint \(point.number): instruction \(point.pc) (\(point.location))\n")
                }
            }
            return
        }
        guard let pc = resolve(spec) else { return }
        let description = describe(pc: pc)
        breakpoints.append((nextBreakpoint, pc, description))
        Console.out("breakpoint \(nextBreakpoint) at instruction \(pc) (\(description))\n")
        nextBreakpoint += 1
    }

    /// The instruction a breakpoint location names: a number, a function name or FILE:LINE.
    private func resolve(_ spec: String) -> Int? {
        let count = session.program.count
        if let number = Int(spec) {
            guard number >= 0, number < count else {
                error("instruction \(number) is outside the program (0...\(count - 1))")
                return nil
            }
            return number
        }
        if let function = session.source.functions.first(where: { $0.name == spec }) {
            return function.instructionIndex
        }
        if let colon = spec.lastIndex(of: ":"), let line = Int(spec[spec.index(after: colon)...]) {
            let file = String(spec[..<colon])
            let lines = session.program.lineInfo.filter {
                ($0.file == file || Session.baseName($0.file) == Session.baseName(file)) && $0.line >= line
            }
            guard !lines.isEmpty else {
                let files = Set(session.program.lineInfo.map { Session.baseName($0.file) }).sorted()
                error(
                    files.isEmpty
                        ? "the program has no line info (compile with -g)"
                        : "no code at \(spec); source files: \(files.joined(separator: ", "))")
                return nil
            }
            // The first instruction of the line, or of the next line that has code.
            let target = lines.map(\.line).min() ?? line
            return lines.filter { $0.line == target }.map(\.instructionIndex).min()
        }
        let functions = session.source.functions.map(\.name).joined(separator: ", ")
        error("unknown location '\(spec)'; give an instruction number, a function (\(functions)) or FILE:LINE")
        return nil
    }

    private func delete(_ arguments: [String]) {
        guard let first = arguments.first else {
            Console.out("deleted \(breakpoints.count) breakpoint\(breakpoints.count == 1 ? "" : "s")\n")
            breakpoints.removeAll()
            return
        }
        guard let number = Int(first), let index = breakpoints.firstIndex(where: { $0.number == number }) else {
            error("no breakpoint '\(first)'")
            return
        }
        breakpoints.remove(at: index)
        Console.out("deleted breakpoint \(number)\n")
    }

    // MARK: Inspection

    private func describe(pc: Int) -> String {
        var parts: [String] = []
        if let function = session.function(at: pc) { parts.append("in \(function.name)") }
        if let location = session.location(at: pc) { parts.append(location) }
        return parts.isEmpty ? "instruction \(pc)" : parts.joined(separator: ", ")
    }

    /// Where the process is stopped: the source line and the next instruction. `breakpoint`
    /// names the breakpoint that stopped it (said in the same header line).
    func location(breakpoint: Int? = nil) -> String {
        switch process.state {
        case .exited(let r0): return "the program has exited (r0 = \(r0))\n"
        case .failed(let error): return "the program stopped: \(session.message(for: error))\n"
        case .ready: break
        }
        let pc = process.pc
        let what = breakpoint.map { "breakpoint \($0) at" } ?? "stopped at"
        var out = "\(what) instruction \(pc) (\(describe(pc: pc)))\n"
        if let line = session.program.sourceLine(at: pc) { out += "    \(stepper.sourceText(line))\n" }
        out += "=> \(stepper.slot(pc)): \(stepper.instructionText(at: pc))\n"
        return out
    }

    private func registers() {
        let values = process.registers.all
        var out = ""
        for (index, value) in values.enumerated() {
            let name = "r\(index)".padding(toLength: 4, withPad: " ", startingAt: 0)
            var line =
                "\(name) 0x" + String(value, radix: 16).leftPadded(to: 16, with: "0") + "  \(Int64(bitPattern: value))"
            if let region = process.memory.region(containing: value) {
                line += "  -> \(region.name)+\(value - region.base)"
            } else if let map = session.emulator.map(handle: value) {
                line += "  -> map \(map.name)"
            }
            out += line + "\n"
        }
        switch process.state {
        case .ready: out += "pc   \(process.pc)\n"
        case .exited: out += "pc   none (the program has exited)\n"
        case .failed(let error): out += "pc   \(error.pc) (the faulting instruction)\n"
        }
        Console.out(out)
    }

    /// `x ADDR [LEN]`.
    private func examine(_ arguments: [String]) {
        guard let spec = arguments.first else {
            error("usage: x ADDR [LEN], e.g. x r10-16 16")
            return
        }
        guard let address = evaluate(spec) else {
            error("cannot read address '\(spec)': give 0x..., a decimal number, or rN with an optional +/- offset")
            return
        }
        var length = 64
        if arguments.count > 1 {
            guard let value = Int(arguments[1]), value > 0, value <= 65536 else {
                error("length must be 1 to 65536 bytes, got '\(arguments[1])'")
                return
            }
            length = value
        }
        guard let region = process.memory.region(containing: address) else {
            error("0x\(String(address, radix: 16)) is not mapped")
            return
        }
        // Stop at the end of the region rather than fault.
        let available = Int(min(UInt64(length), region.base &+ UInt64(region.size) &- address))
        do {
            let bytes = try process.memory.read(address, count: available)
            var out = "\(region.name)+\(address - region.base):\n"
            out += HexDump.lines(bytes, start: address, addressWidth: 1).map { "  0x\($0)\n" }.joined()
            if available < length {
                out += "  (\(length - available) bytes past the end of \(region.name) not shown)\n"
            }
            Console.out(out)
        } catch {
            self.error("\(error)")
        }
    }

    /// A number (0x..., decimal) or `rN[+-OFFSET]`.
    private func evaluate(_ text: String) -> UInt64? {
        func number(_ text: Substring) -> UInt64? {
            if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
            return UInt64(text)
        }
        let spec = Substring(text)
        if spec.hasPrefix("r") || spec.hasPrefix("%r") {
            let body = spec.drop { $0 == "%" }.dropFirst()
            let digits = body.prefix { $0.isNumber }
            guard let register = Int(digits), register >= 0, register < Registers.count else { return nil }
            let base = process.registers[register]
            let rest = body.dropFirst(digits.count)
            if rest.isEmpty { return base }
            guard let sign = rest.first, sign == "+" || sign == "-", let offset = number(rest.dropFirst()) else {
                return nil
            }
            return sign == "+" ? base &+ offset : base &- offset
        }
        return number(spec)
    }

    private func listMaps() {
        let maps = session.maps
        guard !maps.isEmpty else {
            Console.out("the object has no maps\n")
            return
        }
        var rows: [[String]] = []
        for map in maps {
            let attributes = map.attributes
            let entries = MapSnapshot.hasEntries(attributes.type) ? "\(map.keys.count)" : "-"
            rows.append([
                map.name, attributes.type.description, "\(attributes.keySize)", "\(attributes.valueSize)",
                "\(attributes.maxEntries)", entries,
            ])
        }
        Console.out(Table.render(["name", "type", "key", "value", "max entries", "entries"], rows))
    }

    private func showMap(_ arguments: [String]) {
        guard let name = arguments.first else {
            error("usage: map NAME (see 'maps')")
            return
        }
        guard let map = session.map(named: name) else {
            error("no map named '\(name)'; maps: \(session.maps.map(\.name).joined(separator: ", "))")
            return
        }
        guard MapSnapshot.hasEntries(map.attributes.type) else {
            Console.out("\(name) is a \(map.attributes.type) map; its contents cannot be listed\n")
            return
        }
        let keys = map.keys
        var out = "\(name) (\(map.attributes.type), \(keys.count) entr\(keys.count == 1 ? "y" : "ies")):\n"
        let shown = 64
        for key in keys.prefix(shown) {
            guard let values = map.perCPUValues(forKey: key) else { continue }
            out +=
                "  [\(display.key(key, map: name))] \(display.values(values, map: name, type: map.attributes.type))\n"
        }
        if keys.count > shown { out += "  ... \(keys.count - shown) more\n" }
        Console.out(out)
    }

    private func backtrace() {
        let pc: Int
        switch process.state {
        case .ready: pc = process.pc
        case .failed(let error): pc = error.pc
        case .exited:
            Console.out(location())
            return
        }
        var out = "#0  \(describe(pc: pc)) at instruction \(pc)\n"
        for (depth, frame) in process.callStack.reversed().enumerated() {
            let call = max(0, frame.returnPC - 1)
            out += "#\(depth + 1)  \(describe(pc: call)) at instruction \(call)\n"
        }
        Console.out(out)
    }

    /// The source around the current line: from the file when it can be found, else the lines
    /// the line info knows, else the disassembly.
    private func list() {
        let pc: Int
        switch process.state {
        case .ready: pc = process.pc
        case .failed(let error): pc = error.pc
        case .exited: pc = max(0, session.program.count - 1)
        }
        guard let current = session.program.sourceLine(at: pc) else {
            let range = max(0, pc - 5)...min(session.program.count - 1, pc + 5)
            var out = ""
            for slot in range {
                out += (slot == pc ? "=> " : "   ") + "\(stepper.slot(slot)): \(stepper.instructionText(at: slot))\n"
            }
            Console.out(out)
            return
        }
        let range = max(1, current.line - 5)...(current.line + 5)
        var text: [Int: String] = [:]
        if let file = readSource(current.file) {
            for number in range where number - 1 < file.count { text[number] = file[number - 1] }
        }
        if text.isEmpty {
            for info in session.program.lineInfo where info.file == current.file && range.contains(info.line) {
                text[info.line] = info.sourceText
            }
        }
        var out = "\(Session.baseName(current.file)):\n"
        for number in range {
            guard let line = text[number] else { continue }
            out +=
                (number == current.line ? "=> " : "   ") + String(number).leftPadded(to: 4, with: " ") + "  \(line)\n"
        }
        Console.out(out)
    }

    /// The lines of a source file: at its recorded path, or beside the object file.
    private func readSource(_ path: String) -> [String]? {
        var candidates = [path]
        let objectDirectory = session.objectName.split(separator: "/", omittingEmptySubsequences: false).dropLast()
            .joined(separator: "/")
        candidates.append((objectDirectory.isEmpty ? "" : objectDirectory + "/") + Session.baseName(path))
        for candidate in candidates {
            if let bytes = try? Input.read(candidate), let text = String(validating: bytes, as: UTF8.self) {
                return text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            }
        }
        return nil
    }
}

extension String {
    /// The string padded on the left to `length` characters.
    func leftPadded(to length: Int, with pad: Character) -> String {
        count >= length ? self : String(repeating: pad, count: length - count) + self
    }
}
