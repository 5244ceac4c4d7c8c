import Foundation
import MimicCore
import MimicLinux
import MimicVerifier

/// `mimic verify`: the kernel verifier's verdict, predicted without a kernel.
enum VerifyCommand: Command {
    static let info = CommandInfo(
        name: "verify",
        summary: "Predict whether the kernel's verifier accepts an object's programs, and explain why not.",
        synopsis:
            "verify OBJ.o [--program NAME] [--type TYPE] [--btf FILE] [--json] [--log] | verify FILE --type TYPE [--asm]",
        discussion: """
            Runs MimicVerifier (Docs/Verifier.md), a model of the Linux 6.18 verifier as a
            privileged (root) loader sees it, over every program of the object, or only --program.
            A rejected program is reported at the C source line (from BTF line info) with the
            kernel's message, the registers involved and a sentence of advice. Exit status 0 when
            every program verified is accepted, 1 when one is rejected. --log adds the kernel-style
            log of the instructions processed. FILE may also be one program as assembler text
            (*.s, *.asm, or --asm) or bytecode (raw or hex), with its program type given by --type
            (xdp, sched_cls, socket_filter, kprobe, ...); such a program has no maps.
            The kernel's BTF (--btf, default /sys/kernel/btf/vmlinux when readable) types the
            contexts of fentry, fexit, tp_btf, LSM and iterator programs and the kernel structs
            they read; CO-RE relocations are applied against it, as libbpf does. Without it, reads
            through kernel pointers are taken as numbers and such programs may be refused.
            """,
        options: [
            .value("program", short: "p", "NAME", "Verify only this program (function name)."),
            .value(
                "btf", "FILE",
                "The target kernel's BTF (raw, as /sys/kernel/btf/vmlinux, or an ELF object's .BTF). Default: /sys/kernel/btf/vmlinux when readable."
            ),
            .flag("json", "Print a JSON object: a verdict per program with the error's details."),
            .flag("log", "Include the kernel-style verifier log."),
            .value(
                "type", "TYPE",
                "The program type of an assembler or bytecode FILE (xdp, sched_cls, kprobe, ...), or given to an object's programs (or --program's), for sections that name none."
            ),
            .flag("asm", "Read FILE as assembler text whatever its name."),
        ],
        examples: [
            ("Verify every program of an object", "mimic verify Examples/xdp_firewall.o"),
            ("One program, with the log", "mimic verify prog.o --program xdp_main --log"),
        ])

    static func run(_ arguments: ParsedArguments) throws {
        try arguments.requirePositionals(["OBJ.o"], command: info.name)
        let path = arguments.positionals[0]
        let bytes = try Input.read(path)
        let isObject = ObjectInput.isELF(bytes)
        if let typeName = arguments.value("type"), !isObject || arguments.has("asm") {
            try verifyRaw(path, typeName: typeName, arguments)
            return
        }
        let name = Input.displayName(path)
        guard isObject else {
            throw RuntimeError(
                "\(name) is not an ELF object (it does not start with 0x7f 'ELF'); give --type TYPE for assembler text or bytecode"
            )
        }
        // The kernel's BTF (megabytes to parse) only for an object whose verdict depends on it.
        let local = try ObjectInput.object(bytes, name: name)
        let kernelBTF =
            arguments.value("btf") != nil || Self.needsKernelTypes(local)
            ? try RunOptions.kernelBTF(path: arguments.value("btf")) : nil
        var object = kernelBTF == nil ? local : try ObjectInput.object(bytes, name: name, targetBTF: kernelBTF)
        // --type with an object: the programs' type where the section does not say it (SEC("xdp1")
        // of old samples), or overrides it, as `mimic run --type` does.
        if let typeName = arguments.value("type") {
            guard let type = ConfigurationOptions.programType(typeName) else {
                throw UsageError(
                    message: "unknown program type '\(typeName)' (e.g. xdp, sched_cls, kprobe)", command: info.name)
            }
            var configuration = ObjectConfiguration()
            for program in object.programs where arguments.value("program").map({ $0 == program.name }) ?? true {
                configuration.programTypes[program.name] = type
            }
            do {
                object = try object.configured(configuration)
            } catch {
                throw RuntimeError("\(name): --type \(typeName): \(error)")
            }
        }
        var programs = object.programs
        if let name = arguments.value("program") {
            guard let program = object.program(named: name) else {
                let names = object.programs.map(\.name).joined(separator: ", ")
                throw RuntimeError("no program named '\(name)' in \(arguments.positionals[0]) (programs: \(names))")
            }
            programs = [program]
        }
        if kernelBTF == nil, let typed = programs.first(where: { $0.kernelAttachTarget != nil }) {
            Console.err(
                "mimic: warning: no kernel BTF (give --btf FILE): \(typed.name) (\(typed.sectionName)) has a BTF-typed context, whose kernel pointers are taken as numbers\n"
            )
        }
        let kconfig = Self.kconfig(of: object)
        let verifier = Verifier(options: VerifierOptions(log: arguments.has("log")))
        var results: [Result] = []
        for program in programs {
            let (report, ms) = timed {
                verifier.verify(object: object, program: program, kernelBTF: kernelBTF, kconfig: kconfig)
            }
            results.append(
                Result(name: program.name, section: program.sectionName, type: program.type, report: report, ms: ms))
        }
        try show(results, arguments)
    }

    /// Whether the kernel's BTF decides part of the verdict: CO-RE relocations (applied against
    /// it), BTF-typed contexts, netfilter's kernel pointers, `__ksym` externs,
    /// `bpf_get_current_task_btf`.
    static func needsKernelTypes(_ object: ObjectFile) -> Bool {
        if object.btfExt?.coreRelocations.isEmpty == false { return true }
        return object.programs.contains { program in
            program.kernelAttachTarget != nil || program.type == .netfilter
                || program.references.contains { if case .external = $0.target { true } else { false } }
                || program.instructions.contains {
                    $0.opcode == 0x85 && $0.source == 0 && $0.imm == Int32(HelperID.getCurrentTaskBtf.rawValue)
                }
        }
    }

    /// The `.kconfig` section with its `__kconfig` externs resolved as libbpf resolves them
    /// against the running kernel (`LINUX_KERNEL_VERSION` from `uname`; the Linux emulator's
    /// defaults, `KernelConfig`), so that the verifier prunes the branches for other kernels as
    /// the kernel's does. Nil without externs; zeros, with a warning, when one cannot be resolved.
    static func kconfig(of object: ObjectFile) -> [UInt8]? {
        do {
            return try LinuxEmulator.resolvedKconfig(of: object)
        } catch {
            Console.err("mimic: warning: __kconfig externs read as 0: \(error)\n")
            return nil
        }
    }

    /// One program's verdict, for the report.
    struct Result {
        var name: String
        var section: String
        var type: ProgramType
        var report: VerificationReport
        var ms: Double
    }

    static func timed(_ body: () -> VerificationReport) -> (VerificationReport, Double) {
        let start = ContinuousClock.now
        let report = body()
        let elapsed = ContinuousClock.now - start
        return (report, Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
    }

    /// Prints the results; a rejection is exit status 1.
    static func show(_ results: [Result], _ arguments: ParsedArguments) throws {
        if arguments.has("json") {
            Console.out(json(results).text)
        } else {
            var text = ""
            for r in results {
                if let log = r.report.log { text += log }
                if let error = r.report.error {
                    text += "\(r.name) (\(r.section)): rejected\n"
                    text += error.explanation.split(separator: "\n", omittingEmptySubsequences: false)
                        .map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
                    if !text.hasSuffix("\n") { text += "\n" }
                } else {
                    text += "\(r.name) (\(r.section)): accepted"
                    text +=
                        " (\(r.report.processedInstructions) instructions processed, stack \(r.report.stackDepths.reduce(0, +)) bytes, \(formatMS(r.ms)))\n"
                }
            }
            Console.out(text)
        }
        let rejected = results.filter { !$0.report.accepted }.map(\.name)
        guard !rejected.isEmpty else { return }
        // A rejection is the answer, not a failure: under --json the verdicts are the one
        // document, and the status says it (as `compare` does for a difference).
        if arguments.has("json") { exit(ExitCode.failure) }
        throw RuntimeError("the kernel's verifier would reject: \(rejected.joined(separator: ", "))")
    }

    /// One program from assembler text or bytecode, without maps.
    static func verifyRaw(_ path: String, typeName: String, _ arguments: ParsedArguments) throws {
        guard let type = ProgramType(kernelName: typeName) else {
            throw UsageError(
                message: "unknown program type '\(typeName)' (e.g. xdp, sched_cls, kprobe)", command: info.name)
        }
        let bytes = try Input.read(path)
        let name = Input.displayName(path)
        let instructions =
            arguments.has("asm") || path.hasSuffix(".s") || path.hasSuffix(".asm")
            ? try Assembly.assemble(Input.text(bytes, from: path), name: name)
            : try ProgramInput.instructions(fromBytecode: bytes, name: name, command: info.name)
        let verifier = Verifier(options: VerifierOptions(log: arguments.has("log")))
        let (report, ms) = timed {
            verifier.verify(VerifierProgram(name: name, instructions: instructions, type: type))
        }
        try show([Result(name: name, section: type.description, type: type, report: report, ms: ms)], arguments)
    }

    static func formatMS(_ ms: Double) -> String {
        let tenths = Int((ms * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) ms"
    }

    static func json(_ results: [Result]) -> JSONOutput {
        .object([
            (
                "programs",
                .array(
                    results.map { result in
                        let report = result.report
                        var members: [(String, JSONOutput)] = [
                            ("name", .string(result.name)),
                            ("section", .string(result.section)),
                            ("type", .string(result.type.description)),
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
                                            .object([
                                                ("register", .integer(Int64($0.register))),
                                                ("value", .string($0.value)),
                                            ])
                                        })
                                ),
                            ]
                            if let line = e.sourceLine {
                                error.append(
                                    (
                                        "source",
                                        .object([
                                            ("file", .string(line.file)), ("line", .integer(Int64(line.line))),
                                            ("text", .string(line.sourceText)),
                                        ])
                                    ))
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
