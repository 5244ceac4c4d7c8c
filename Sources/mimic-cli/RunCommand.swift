import MimicCore
import MimicMemory

/// Loading and running a program in a VM with the conformance helpers, shared by `run-raw` and
/// the conformance plugin.
struct ProgramRunner {
    /// Kept alive for as long as the program: a `Program` does not own its VM.
    let vm: VM
    let program: Program

    /// Loads `instructions` into a fresh VM with the `ConformanceEmulator` helpers, plus the
    /// helpers of `plugins` (a conflicting helper id is an error naming both providers).
    init(
        _ instructions: [RawInstruction], name: String, plugins: [PluginLibrary] = [],
        engine: ExecutionEngine = .automatic
    ) throws(RuntimeError) {
        let configuration = VMConfiguration(engine: engine)
        if plugins.isEmpty {
            vm = VM(emulator: ConformanceEmulator(), configuration: configuration)
        } else {
            do {
                vm = VM(
                    emulator: try CompositeEmulator([ConformanceEmulator()] + plugins.map(\.emulator)),
                    configuration: configuration)
            } catch {
                throw RuntimeError(error.description)
            }
        }
        do {
            program = try vm.load(instructions, name: name)
        } catch {
            throw RuntimeError("cannot load \(error)")
        }
    }

    /// A process over `memory` (R1 = its address, R2 = its length; both 0 when empty).
    func makeProcess(memory: [UInt8]) throws(RuntimeError) -> Process {
        do {
            return try vm.makeProcess(for: program, context: MemoryContext(memory))
        } catch {
            throw RuntimeError("cannot set up the input memory: \(error)")
        }
    }

    /// The message for an execution error (its description names the slot and instruction).
    func message(for error: ExecutionError, limitHint: Bool = true) -> String {
        var text = "execution failed: \(error)"
        if limitHint, error.code == .budgetExhausted {
            text += "; raise the budget with --limit N (0 = no limit)"
        }
        return text
    }
}

/// `mimic run-raw FILE`: run bytecode or assembler text with optional input memory.
enum RunRawCommand: Command {
    /// The default instruction budget: enough for any realistic program, and a loop that never
    /// ends stops within seconds.
    static let defaultLimit: UInt64 = 100_000_000

    static let info = CommandInfo(
        name: "run-raw",
        summary: "Run a raw eBPF program (bytecode or assembler text) and print R0.",
        synopsis:
            "run-raw FILE [--mem HEX | --mem-file PATH] [--asm] [--limit N] [--timeout DURATION] [--json] [--trace] [--plugin PATH]... [--engine interpreter|jit|auto]",
        discussion: """
            FILE (or `-` for standard input) is assembler text if its name ends in .s or .asm or
            --asm is given; otherwise bytecode, as raw little-endian bytes or as hex text (see
            `mimic disasm --help`).
            The program gets the input memory in R1 (a pointer) and its length in R2, as the
            bpf_conformance vectors and uBPF expect; without input memory both are 0. R10 points
            to the top of a 512-byte stack per call frame. Helpers: the six bpf_conformance test
            helpers (0 gather_bytes, 1 memfrob, 2 no_op, 3 sqrti, 4 strcmp_ext, 5 unwind), plus
            those of each --plugin library (see `mimic plugins --help`).
            Prints R0 in hex and decimal and the number of instructions executed.
            """,
        options: [
            .value("mem", "HEX", "Input memory as hex bytes (\"00 01 02\" or \"000102\")."),
            .value("mem-file", "PATH", "Input memory: the raw bytes of the file at PATH."),
            .flag("asm", "Read FILE as assembler text whatever its name."),
            .value("limit", "N", "Stop after N instructions (default \(defaultLimit); 0 = no limit)."),
            Timeout.spec,
            .flag("json", "Print the result as a JSON object {\"r0\", \"r0_hex\", \"instructions\"}."),
            .flag("trace", "Print each executed instruction and the registers it changed (to stderr with --json)."),
            .value("plugin", "PATH", "Add the helpers of the plugin library at PATH (repeatable)."),
            EngineOption.spec,
        ],
        examples: [
            ("Sum the bytes of a buffer", "mimic run-raw Examples/checksum.s --mem \"01 02 03 04\""),
            ("Run hex bytecode, result as JSON", "mimic run-raw prog.hex --json"),
            ("Single-step with a register trace", "mimic run-raw Examples/checksum.s --mem 0102 --trace"),
            (
                "Call helpers of a plugin (ids 10000+)",
                "mimic run-raw prog.s --plugin Examples/Plugins/c-kvstore/libkvstore.so"
            ),
        ])

    static func run(_ arguments: ParsedArguments) throws {
        try arguments.requirePositionals(["FILE"], command: info.name)
        let path = arguments.positionals[0]
        let name = Input.displayName(path)

        // Command-line checks first, so mistakes exit 2 before any file is read.
        if arguments.value("mem") != nil, arguments.value("mem-file") != nil {
            throw UsageError(message: "give either --mem or --mem-file, not both", command: info.name)
        }
        var limit = defaultLimit
        if let text = arguments.value("limit") {
            guard let value = UInt64(text) else {
                throw UsageError(
                    message: "--limit expects a whole number of instructions, got '\(text)'", command: info.name)
            }
            limit = value == 0 ? .max : value
        }
        let json = arguments.has("json")
        let trace = arguments.has("trace")
        let timeout = try Timeout.value(of: arguments, command: info.name)
        let engine = try EngineOption.value(of: arguments, command: info.name)

        let memory: [UInt8]
        if let hex = arguments.value("mem") {
            memory = try Hex.parse(hex, what: "--mem")
        } else if let memoryPath = arguments.value("mem-file") {
            memory = try Input.read(memoryPath, limit: AddressSpace.lowWindowLimit, what: "--mem-file inputs")
        } else {
            memory = []
        }

        var plugins: [PluginLibrary] = []
        for pluginPath in arguments.values("plugin") {
            do {
                plugins.append(try PluginLibrary.load(path: pluginPath))
            } catch {
                throw RuntimeError(error.description)
            }
        }

        let bytes = try Input.read(path)
        let isAssembler = arguments.has("asm") || path.hasSuffix(".s") || path.hasSuffix(".asm")
        let instructions: [RawInstruction]
        if isAssembler {
            instructions = try Assembly.assemble(Input.text(bytes, from: path), name: name)
        } else {
            instructions = try ProgramInput.instructions(fromBytecode: bytes, name: name, command: info.name)
        }

        let runner: ProgramRunner
        do {
            runner = try ProgramRunner(instructions, name: name, plugins: plugins, engine: engine)
        } catch {
            guard !isAssembler, let hint = ProgramInput.assemblerHint(for: bytes) else { throw error }
            throw RuntimeError(error.message + hint)
        }
        let process = try runner.makeProcess(memory: memory)
        let r0: UInt64
        do {
            if trace {
                var tracer = Tracer(program: runner.program, process: process)
                if json { tracer.write = Console.err } // keep standard output valid JSON
                r0 = try tracer.run(limit: limit, timeout: timeout)
            } else {
                r0 = try Timeout.run(process, limit: limit, timeout: timeout)
            }
        } catch {
            throw RuntimeError(runner.message(for: error))
        }

        let executed = process.instructionsExecuted
        if json {
            Console.out("{\"r0\": \(r0), \"r0_hex\": \"0x\(String(r0, radix: 16))\", \"instructions\": \(executed)}\n")
        } else {
            var value = "r0 = 0x\(String(r0, radix: 16)) (\(r0)"
            let signed = Int64(bitPattern: r0)
            if signed < 0 { value += ", signed \(signed)" }
            Console.out(value + ")\ninstructions executed: \(executed)\n")
        }
    }
}

/// Single-steps a process, printing each instruction and the registers it changed.
struct Tracer {
    let program: Program
    let process: Process
    /// Where trace lines go (standard output for `run-raw`, standard error for the plugin).
    var write: (String) -> Void = Console.out

    /// Custom instructions by their emulator's names (helper calls stay numbered: `run-raw`'s
    /// helpers are the conformance set, not the kernel's).
    private var names: Assembly.Names {
        let emulator = program.vm.emulator
        return Assembly.Names(helper: { _ in nil }, custom: { emulator?.customInstruction(opcode: $0)?.name })
    }

    /// Runs to the end (or `limit` instructions) and returns R0.
    func run(limit: UInt64, timeout: Duration? = nil) throws(ExecutionError) -> UInt64 {
        let width = String(max(0, program.count - 1)).count
        var before = process.registers.all
        write("registers at entry: \(Tracer.describe(changes: Array(0..<before.count), in: before))\n")
        var executed: UInt64 = 0
        let deadline = Timeout.deadline(timeout)
        while true {
            try Timeout.check(deadline, steps: executed, process: process)
            guard executed < limit else {
                throw program.error(.budgetExhausted(executed: process.instructionsExecuted), at: process.pc)
            }
            let pc = process.pc
            let slot = String(pc)
            let text = Assembly.text(at: pc, in: program.instructions, names: names)
            let result: StepResult
            do {
                result = try process.step()
            } catch {
                write(
                    "\(String(repeating: " ", count: max(0, width - slot.count)))\(slot): \(text)    <- \(SourceStepper.reason(error))\n"
                )
                throw error
            }
            executed += 1
            let after = process.registers.all
            let changed = (0..<after.count).filter { after[$0] != before[$0] }
            var line = "\(String(repeating: " ", count: max(0, width - slot.count)))\(slot): \(text)"
            if !changed.isEmpty {
                line = line.padded(to: 36) + Tracer.describe(changes: changed, in: after)
            }
            write(line + "\n")
            before = after
            if case .exited(let r0) = result { return r0 }
        }
    }

    static func describe(changes registers: [Int], in values: [UInt64]) -> String {
        registers.map { "r\($0)=0x\(String(values[$0], radix: 16))" }.joined(separator: " ")
    }
}

extension String {
    /// The string padded with spaces to at least `length` characters.
    func padded(to length: Int) -> String {
        count >= length ? self + "  " : self + String(repeating: " ", count: length - count)
    }
}
