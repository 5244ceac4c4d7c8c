// The `mimic` command: dispatch to subcommands, help, version, exit codes.
//
// Exit codes: 0 success, 1 runtime failure (`mimic: error: ...`), 2 command-line mistake.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The top level of `mimic`.
enum Mimic {
    static let version = "0.1.0"

    /// Every subcommand, in the order `mimic help` lists them.
    static let commands: [any Command.Type] = [
        RunObjectCommand.self, TraceCommand.self, DebugCommand.self, MapsCommand.self,
        RunRawCommand.self, InspectCommand.self, AsmCommand.self, DisasmCommand.self, ConformancePluginCommand.self,
        PluginsCommand.self,
        CompareCommand.self, FuzzCommand.self, TestCommand.self, VerifyCommand.self,
    ]

    static var help: String {
        var text = """
            OVERVIEW: Mimic \(version), a userspace eBPF virtual machine.

            USAGE: mimic COMMAND [ARGUMENTS] [OPTIONS]

            COMMANDS:

            """
        let rows =
            commands.map { ($0.info.name, $0.info.summary) }
            + [("help", "Show this help, or a command's help (mimic help COMMAND).")]
        let width = rows.map(\.0.count).max() ?? 0
        for (name, summary) in rows {
            text += "  \(name)\(String(repeating: " ", count: width - name.count + 2))\(summary)\n"
        }
        text += """

            OPTIONS:
              -h, --help     Show this help.
              --version      Show the version.

            See 'mimic COMMAND --help' for a command's options and examples.

            """
        return text
    }

    /// Runs `mimic` with `arguments` (without the program name) and returns the exit code.
    static func main(executable: String, arguments: [String]) -> Int32 {
        // Under the plugin's name, behave as the plugin command.
        let base = executable.split(separator: "/").last.map(String.init) ?? executable
        if base == ConformancePluginCommand.executableName {
            return run(ConformancePluginCommand.self, arguments)
        }

        guard let first = arguments.first else {
            Console.err(help)
            return ExitCode.usage
        }
        switch first {
        case "-h", "--help":
            Console.out(help)
            return ExitCode.success
        case "--version", "version":
            Console.out("mimic \(version)\n")
            return ExitCode.success
        case "help":
            guard arguments.count > 1, !["-h", "--help", "help"].contains(arguments[1]) else {
                Console.out(help)
                return ExitCode.success
            }
            guard let command = command(named: arguments[1]) else {
                return usageFailure(UsageError(message: "unknown command '\(arguments[1])'", command: nil))
            }
            Console.out(command.info.help)
            return ExitCode.success
        default:
            guard let command = command(named: first) else {
                let message = first.hasPrefix("-") ? "unknown option '\(first)'" : "unknown command '\(first)'"
                return usageFailure(UsageError(message: message, command: nil))
            }
            return run(command, Array(arguments.dropFirst()))
        }
    }

    static func command(named name: String) -> (any Command.Type)? {
        commands.first { $0.info.name == name }
    }

    /// Parses and runs one command, turning its errors into messages and exit codes.
    static func run(_ command: any Command.Type, _ arguments: [String]) -> Int32 {
        let status = runCommand(command, arguments)
        // Under --json, a failure is JSON on standard output too (the message stays on stderr).
        if status != ExitCode.success, arguments.contains("--json"),
            let message = lastErrorMessage
        {
            Console.out(JSONOutput.object([("error", .string(message)), ("status", .integer(Int64(status)))]).line)
        }
        return status
    }

    /// The message of the last error reported (for the `--json` error line).
    nonisolated(unsafe) static var lastErrorMessage: String?

    private static func runCommand(_ command: any Command.Type, _ arguments: [String]) -> Int32 {
        do {
            let parsed = try command.info.parser.parse(command.normalize(arguments))
            if parsed.wantsHelp {
                Console.out(command.info.help)
                return ExitCode.success
            }
            try command.run(parsed)
            return ExitCode.success
        } catch let error as UsageError {
            return usageFailure(error)
        } catch let error as RuntimeError {
            lastErrorMessage = error.message
            Console.error(error.message)
            return ExitCode.failure
        } catch {
            lastErrorMessage = "\(error)"
            Console.error("\(error)")
            return ExitCode.failure
        }
    }

    static func usageFailure(_ error: UsageError) -> Int32 {
        lastErrorMessage = error.message
        Console.error(error.message)
        if let command = error.command {
            Console.err("usage: mimic \(Mimic.command(named: command)?.info.synopsis ?? command)\n")
            Console.err("See 'mimic \(command) --help'.\n")
        } else {
            Console.err("See 'mimic --help'.\n")
        }
        return ExitCode.usage
    }
}

let arguments = CommandLine.arguments
let status = Mimic.main(executable: arguments.first ?? "mimic", arguments: Array(arguments.dropFirst()))
exit(status)
