import MimicCore

/// `--engine interpreter|jit|auto`: what executes the program (`VMConfiguration.engine`).
enum EngineOption {
    static let spec = OptionSpec.value(
        "engine", "interpreter|jit|auto",
        "What runs the program: the interpreter, the x86-64 JIT, or auto (the JIT where the host has one; default).")

    /// `--engine` of `arguments` (`.automatic` when absent).
    static func value(of arguments: ParsedArguments, command: String) throws(UsageError) -> ExecutionEngine {
        guard let text = arguments.value("engine") else { return .automatic }
        switch text {
        case "interpreter": return .interpreter
        case "jit": return .jit
        case "auto", "automatic": return .automatic
        default:
            throw UsageError(message: "--engine expects interpreter, jit or auto, got '\(text)'", command: command)
        }
    }
}
