import MimicCore
import MimicLinux

/// Assembling source text, with errors that name the file and line.
enum Assembly {
    /// Assembles `text`; a failure names `name:LINE`.
    static func assemble(_ text: String, name: String) throws(RuntimeError) -> [RawInstruction] {
        do {
            return try Assembler.assemble(text)
        } catch {
            throw RuntimeError("\(name):\(error.line): \(error.reason) in \"\(error.text)\"")
        }
    }

    /// A re-assemblable listing: labels at the left margin, instructions indented, each followed
    /// by a `# slot` comment (the assembler ignores comments).
    static func listing(_ instructions: [RawInstruction]) -> String {
        let lines = Disassembler.disassemble(instructions)
        let width =
            lines.map { line -> Int in
                if case .label = line { return 0 }
                return line.text.count
            }.max() ?? 0
        var text = ""
        for line in lines {
            switch line {
            case .label(let name):
                text += "\(name):\n"
            case .instruction(let slot, _, let body), .invalid(let slot, let body):
                let padding = String(repeating: " ", count: max(1, width - body.count + 2))
                text += "    \(body)\(padding)# \(slot)\n"
            }
        }
        return text
    }

    /// The text of the instruction at `slot` (with the following slot, for `lddw`). With
    /// `names`, helper calls and map addresses are named as bpftool does:
    /// `call bpf_map_lookup_elem#1`, `lddw %r1, map[blocklist]`; an emulator's custom
    /// instruction by its name and fields (`vendor.popcnt %r0, %r1, off 0, imm 0 (custom 0xf7)`).
    static func text(at slot: Int, in instructions: [RawInstruction], names: Names? = nil) -> String {
        guard slot >= 0, slot < instructions.count else { return "<slot \(slot) outside the program>" }
        let instruction = instructions[slot]
        let next = slot + 1 < instructions.count ? instructions[slot + 1] : nil
        if let names {
            if instruction.opcode == 0x85, instruction.source == 0, let name = names.helper(instruction.imm) {
                return "call \(name)#\(instruction.imm)"
            }
            if instruction.opcode == 0x18, let next {
                let value = UInt64(UInt32(bitPattern: instruction.imm)) | UInt64(UInt32(bitPattern: next.imm)) << 32
                if let map = names.map(value) { return "lddw %r\(instruction.destination), map[\(map)]" }
            }
            if let name = names.custom(instruction.opcode) {
                return "\(name) %r\(instruction.destination), %r\(instruction.source), off \(instruction.offset), "
                    + "imm \(instruction.imm) (custom 0x\(String(instruction.opcode, radix: 16)))"
            }
        }
        return Disassembler.text(of: instruction, next: next)
    }

    /// How listings name helpers and maps.
    struct Names {
        /// The name of a helper id.
        var helper: (Int32) -> String?
        /// The name of the map whose address (handle) a `lddw` loads.
        var map: (UInt64) -> String? = { _ in nil }
        /// The name of the emulator's custom instruction with this opcode, if it defines one
        /// (the loader accepts only opcodes the instruction set leaves undefined for them).
        var custom: (UInt8) -> String? = { _ in nil }
    }

    /// The name of helper `id`: the one place listings, traces and the debugger look helper
    /// names up (through the emulator, the Linux emulator's names by default).
    static func helperName(_ id: Int32, emulator: (any Emulator)? = nil) -> String? {
        (emulator ?? linuxEmulator).helperName(id: id)
    }

    /// The Linux emulator, for helper names when no VM is loaded (`disasm`).
    private static let linuxEmulator = LinuxEmulator()
}

/// `mimic asm FILE [-o OUT]`: assembler text to bytecode.
enum AsmCommand: Command {
    static let info = CommandInfo(
        name: "asm",
        summary: "Assemble eBPF assembler text into bytecode.",
        synopsis: "asm FILE [-o OUT]",
        discussion: """
            Reads assembler text (the bpf_conformance syntax: `mov %r0, 1`, `ldxw %r0, [%r1+4]`,
            labels, `#` comments) from FILE, or from standard input if FILE is `-`.
            With -o, writes the raw little-endian bytecode (8 bytes per instruction slot) to OUT;
            without it, prints the bytecode as hex on standard output, one slot per line.
            """,
        options: [.value("output", short: "o", "OUT", "Write raw bytecode to OUT instead of hex to stdout.")],
        examples: [
            ("Show the bytecode of a program as hex", "mimic asm Examples/checksum.s"),
            ("Write a binary file", "mimic asm Examples/checksum.s -o checksum.bin"),
            ("Assemble from standard input", "printf 'mov %r0, 42\\nexit\\n' | mimic asm -"),
        ])

    static func run(_ arguments: ParsedArguments) throws {
        try arguments.requirePositionals(["FILE"], command: info.name)
        let path = arguments.positionals[0]
        let name = Input.displayName(path)
        let text = try Input.text(Input.read(path), from: path)
        let instructions = try Assembly.assemble(text, name: name)
        guard !instructions.isEmpty else { throw RuntimeError("\(name) contains no instructions") }
        if let output = arguments.value("output") {
            try Input.write(RawInstruction.encode(instructions), to: output)
        } else {
            Console.out(instructions.map { Hex.string($0.bytes) + "\n" }.joined())
        }
    }
}

/// `mimic disasm FILE`: bytecode to assembler text.
enum DisasmCommand: Command {
    static let info = CommandInfo(
        name: "disasm",
        summary: "Disassemble eBPF bytecode into assembler text.",
        synopsis: "disasm FILE [--program P | --section S]",
        discussion: """
            Reads bytecode from FILE (or standard input if FILE is `-`): either raw little-endian
            bytes, or text of hex bytes (`b7 00 00 00 2a 00 00 00`, `0xb7 ...`, any spacing) — a
            file of only hex digits, whitespace and `0x` prefixes is read as hex.
            Prints one instruction per line with its slot number as a `# N` comment, and labels
            `L<slot>:` at jump targets. The output assembles back to the same bytecode with
            `mimic asm`. Slots that are not valid instructions print as `.invalid` lines.

            FILE may also be an ELF object (`clang -O2 -g -target bpf -c`): then every program (or
            the one --program names, or those in the --section) is printed with its C source lines
            interleaved (from the object's BTF line info), its sub-programs, and the map and global
            data each `lddw` refers to.
            """,
        options: [
            .value("program", "P", "With an ELF object: only the program named P."),
            .value("section", "S", "With an ELF object: only the programs in section S."),
        ],
        examples: [
            (
                "Disassemble a compiled object with its C source",
                "mimic disasm Tests/MimicCoreTests/Fixtures/xdp_parse.o"
            ),
            ("Disassemble a binary file", "mimic disasm checksum.bin"),
            (
                "Disassemble hex from standard input",
                "echo 'b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00' | mimic disasm -"
            ),
        ])

    static func run(_ arguments: ParsedArguments) throws {
        try arguments.requirePositionals(["FILE"], command: info.name)
        let path = arguments.positionals[0]
        let name = Input.displayName(path)
        let bytes = try Input.read(path)
        if ObjectInput.isELF(bytes) {
            let object = try ObjectInput.object(bytes, name: name)
            let programs = try ObjectInput.selectPrograms(in: object, name: name, arguments: arguments)
            Console.out(
                programs.map {
                    "\($0.name) (section \($0.sectionName), \($0.type)):\n"
                        + $0.annotatedListing(helperName: { Assembly.helperName($0) })
                }
                .joined(separator: "\n"))
            return
        }
        if arguments.value("program") != nil || arguments.value("section") != nil {
            throw UsageError(
                message: "--program and --section apply to ELF objects; \(name) is bytecode", command: info.name)
        }
        if ProgramInput.assemblerHint(for: bytes) != nil {
            throw RuntimeError(
                "\(name) looks like text, not bytecode (raw bytes or hex); if it is assembler, `mimic asm \(path)` assembles it"
            )
        }
        let instructions = try ProgramInput.instructions(fromBytecode: bytes, name: name, command: info.name)
        Console.out(Assembly.listing(instructions))
    }
}
