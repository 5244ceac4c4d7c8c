import MimicCore
import MimicVerifier

/// `mimic verify`: the kernel verifier's verdict, predicted without a kernel.
enum VerifyCommand: Command {
    static let info = CommandInfo(
        name: "verify",
        summary: "Predict whether the kernel's verifier accepts an object's programs, and explain why not.",
        synopsis: "verify OBJ.o [--program NAME] [--json] [--log]",
        discussion: """
            Runs MimicVerifier (Docs/Verifier.md), a model of the Linux 6.18 verifier as a
            privileged (root) loader sees it, over every program of the object, or only --program.
            A rejected program is reported at the C source line (from BTF line info) with the
            kernel's message, the registers involved and a sentence of advice. Exit status 0 when
            every program verified is accepted, 1 when one is rejected. --log adds the kernel-style
            log of the instructions processed.
            """,
        options: [
            .value("program", short: "p", "NAME", "Verify only this program (function name)."),
            .flag("json", "Print a JSON object: a verdict per program with the error's details."),
            .flag("log", "Include the kernel-style verifier log."),
        ],
        examples: [
            ("Verify every program of an object", "mimic verify Examples/xdp_firewall.o"),
            ("One program, with the log", "mimic verify prog.o --program xdp_main --log"),
        ])

    static func run(_ arguments: ParsedArguments) throws {
        try arguments.requirePositionals(["OBJ.o"], command: info.name)
        let object = try ObjectInput.load(path: arguments.positionals[0])
        var programs = object.programs
        if let name = arguments.value("program") {
            guard let program = object.program(named: name) else {
                let names = object.programs.map(\.name).joined(separator: ", ")
                throw RuntimeError("no program named '\(name)' in \(arguments.positionals[0]) (programs: \(names))")
            }
            programs = [program]
        }
        let verifier = Verifier(options: VerifierOptions(log: arguments.has("log")))
        var results: [(ObjectProgram, VerificationReport, Double)] = []
        for program in programs {
            let start = ContinuousClock.now
            let report = verifier.verify(object: object, program: program)
            let elapsed = ContinuousClock.now - start
            let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            results.append((program, report, ms))
        }
        if arguments.has("json") {
            Console.out(json(results).text)
        } else {
            var text = ""
            for (program, report, ms) in results {
                if let log = report.log { text += log }
                if let error = report.error {
                    text += "\(program.name) (\(program.sectionName)): rejected\n"
                    text += error.explanation.split(separator: "\n", omittingEmptySubsequences: false)
                        .map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
                } else {
                    text += "\(program.name) (\(program.sectionName)): accepted"
                    text += " (\(report.processedInstructions) instructions processed, stack \(report.stackDepths.reduce(0, +)) bytes, \(formatMS(ms)))\n"
                }
            }
            Console.out(text)
        }
        if results.contains(where: { !$0.1.accepted }) {
            let rejected = results.filter { !$0.1.accepted }.map(\.0.name).joined(separator: ", ")
            throw RuntimeError("the kernel's verifier would reject: \(rejected)")
        }
    }

    static func formatMS(_ ms: Double) -> String {
        let tenths = Int((ms * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) ms"
    }

    static func json(_ results: [(ObjectProgram, VerificationReport, Double)]) -> JSONOutput {
        .object([
            (
                "programs",
                .array(
                    results.map { program, report, _ in
                        var members: [(String, JSONOutput)] = [
                            ("name", .string(program.name)),
                            ("section", .string(program.sectionName)),
                            ("type", .string(program.type.description)),
                            ("verdict", .string(report.accepted ? "accepted" : "rejected")),
                            ("processed_instructions", .integer(Int64(report.processedInstructions))),
                            ("stack_depth", .integer(Int64(report.stackDepths.first ?? 0))),
                        ]
                        if let e = report.error {
                            var error: [(String, JSONOutput)] = [
                                ("kind", .string(e.kind.rawValue)),
                                ("instruction_index", .integer(Int64(e.instructionIndex))),
                                ("instruction", .string(e.instruction)),
                                ("message", .string(e.message)),
                                ("advice", .string(e.advice)),
                                (
                                    "registers",
                                    .array(
                                        e.registers.map {
                                            .object([("register", .integer(Int64($0.register))), ("value", .string($0.value))])
                                        })
                                ),
                            ]
                            if let line = e.sourceLine {
                                error.append(
                                    ("source", .object([
                                        ("file", .string(line.file)), ("line", .integer(Int64(line.line))),
                                        ("text", .string(line.sourceText)),
                                    ])))
                            }
                            members.append(("error", .object(error)))
                        }
                        if let log = report.log { members.append(("log", .string(log))) }
                        return .object(members)
                    })
            )
        ])
    }
}
