import Foundation
import MimicCore

/// `mimic bpf-conformance-plugin [MEMORY_HEX]`: the plugin protocol of the public
/// bpf_conformance runner.
///
/// The runner starts the plugin with the input memory as a hex string argument (before any
/// plugin options), writes the program as hex bytes to standard input, and reads R0 as hex
/// (`printf("%lx")`) from standard output. A failure exits 1 with the message on standard error.
enum ConformancePluginCommand: Command {
    /// The executable name under which `mimic` behaves as this command (via a symbolic link).
    static let executableName = "mimic-bpf-conformance-plugin"

    static let info = CommandInfo(
        name: "bpf-conformance-plugin",
        summary: "Run one program for the bpf_conformance test runner (its plugin protocol).",
        synopsis: "bpf-conformance-plugin [MEMORY_HEX] [--debug] [--elf]",
        discussion: """
            MEMORY_HEX is the program's input memory as hex ("00 01 02" or "000102"; spaces
            optional; empty or absent for none): R1 points to it and R2 holds its length.
            The program arrives on standard input as hex bytes (whitespace allowed). Prints R0 as
            lowercase hex without leading zeros (like printf("%lx")) and exits 0; on a load or
            execution error prints the message on standard error and exits 1.
            Helpers: the six bpf_conformance test helpers (gather_bytes, memfrob, no_op, sqrti,
            strcmp_ext, unwind).

            The runner executes --plugin_path directly, so use the wrapper script
            Scripts/mimic-bpf-conformance-plugin, or a link: when `mimic` is started under the name
            \(executableName) it behaves as this command:
                ln -s mimic \(executableName)
            """,
        options: [
            .flag("debug", "Trace each executed instruction and changed registers on standard error."),
            .flag("elf", "The program is an ELF object (not supported yet: exits 1)."),
        ],
        examples: [
            (
                "Run a program that adds 1 and 2",
                "echo 'b4 00 00 00 01 00 00 00 04 00 00 00 02 00 00 00 95 00 00 00 00 00 00 00' | mimic bpf-conformance-plugin"
            ),
            ("Pass 4 bytes of memory", "mimic asm prog.s | mimic bpf-conformance-plugin \"aa bb cc dd\""),
            (
                "Use it from the conformance runner",
                "bpf_conformance_runner --test_file_directory tests --plugin_path ./mimic-bpf-conformance-plugin"
            ),
        ])

    /// Accepts the shapes of command line the runner produces: the memory first (possibly
    /// empty, with spaces between bytes), then the plugin options either as separate arguments
    /// or all in one argument (`"--debug --elf"`), which is empty when there are none.
    static func normalize(_ arguments: [String]) -> [String] {
        var result: [String] = []
        for (index, argument) in arguments.enumerated() {
            if index == 0, !argument.hasPrefix("-") {
                result.append(argument) // the memory, kept whole even when empty
            } else {
                result += argument.split(whereSeparator: \.isWhitespace).map(String.init)
            }
        }
        return result
    }

    static func run(_ arguments: ParsedArguments) throws {
        try arguments.requirePositionals(["MEMORY_HEX"], optional: 1, command: info.name)
        if arguments.has("elf") {
            throw RuntimeError(
                "ELF programs are not supported yet by bpf-conformance-plugin; run the runner without --elf")
        }
        let memory =
            try arguments.positionals.first.map { text throws(RuntimeError) in
                try Hex.parse(text, what: "the memory argument")
            } ?? []

        let input = FileHandle.standardInput.readDataToEndOfFile()
        guard let text = String(data: input, encoding: .utf8) else {
            throw RuntimeError("malformed hex on standard input: the program is not text")
        }
        let bytes = try Hex.parse(text, what: "the program on standard input")
        guard !bytes.isEmpty else { throw RuntimeError("no program on standard input (expected hex bytes)") }
        let instructions: [RawInstruction]
        do {
            instructions = try RawInstruction.decode(bytes)
        } catch {
            throw RuntimeError("the program on standard input: \(error)")
        }

        let runner = try ProgramRunner(instructions, name: "<stdin>")
        let process = try runner.makeProcess(memory: memory)
        let r0: UInt64
        do {
            if arguments.has("debug") {
                var tracer = Tracer(program: runner.program, process: process)
                tracer.write = Console.err
                r0 = try tracer.run(limit: RunRawCommand.defaultLimit)
            } else {
                r0 = try process.run(instructionLimit: RunRawCommand.defaultLimit)
            }
        } catch {
            throw RuntimeError(runner.message(for: error, limitHint: false))
        }
        Console.out(String(r0, radix: 16) + "\n")
    }
}
