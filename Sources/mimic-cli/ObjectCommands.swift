import MimicCore

/// Reading ELF objects for the commands that accept them.
enum ObjectInput {
    /// Whether `bytes` start like an ELF file.
    static func isELF(_ bytes: [UInt8]) -> Bool { bytes.starts(with: ProgramInput.elfMagic) }

    /// Reads and parses the object at `path`; says plainly when the file is not ELF.
    static func load(path: String) throws(RuntimeError) -> ObjectFile {
        let name = Input.displayName(path)
        let bytes = try Input.read(path)
        guard isELF(bytes) else {
            throw RuntimeError("\(name) is not an ELF object (it does not start with 0x7f 'ELF')")
        }
        return try object(bytes, name: name)
    }

    /// Parses an object; a failure names the file and what is malformed.
    static func object(_ bytes: [UInt8], name: String, targetBTF: BTF? = nil) throws(RuntimeError) -> ObjectFile {
        do {
            return try ObjectFile(bytes: bytes, targetBTF: targetBTF)
        } catch {
            throw RuntimeError("\(name): \(error)")
        }
    }

    /// The programs `--program P` / `--section S` select (all when neither is given).
    static func selectPrograms(in object: ObjectFile, name: String, arguments: ParsedArguments) throws(RuntimeError)
        -> [ObjectProgram]
    {
        var programs = object.programs
        if let wanted = arguments.value("program") {
            programs = programs.filter { $0.name == wanted }
            guard !programs.isEmpty else {
                throw RuntimeError("\(name) has no program named '\(wanted)'; programs: \(names(object))")
            }
        }
        if let section = arguments.value("section") {
            programs = programs.filter { $0.sectionName == section }
            guard !programs.isEmpty else {
                let sections = Set(object.programs.map(\.sectionName)).sorted().joined(separator: ", ")
                throw RuntimeError(
                    "\(name) has no program in section '\(section)'; sections: \(sections.isEmpty ? "none" : sections)")
            }
        }
        guard !programs.isEmpty else { throw RuntimeError("\(name) contains no programs") }
        return programs
    }

    static func names(_ object: ObjectFile) -> String {
        object.programs.isEmpty ? "none" : object.programs.map(\.name).joined(separator: ", ")
    }
}

/// `mimic inspect OBJ.o`: what an object file holds.
enum InspectCommand: Command {
    static let info = CommandInfo(
        name: "inspect",
        summary: "List the programs, maps and global data of an eBPF object file.",
        synopsis: "inspect OBJ.o [--json]",
        discussion: """
            Reads an ELF object compiled with `clang -O2 -g -target bpf -c` and prints its programs
            (name, section, program type, instruction count), maps (name, type, key and value size,
            max entries, flags, BTF key/value types), global data sections (.data, .rodata, .bss)
            and anything the loader noticed (CO-RE relocations applied against the object's own
            types, unresolved externs). Map flags are shown by name, as `mimic maps` shows them.
            """,
        options: [.flag("json", "Print the report as a JSON object: object, programs, maps, globals, notes.")],
        examples: [
            ("Inspect a compiled XDP program", "mimic inspect Tests/MimicCoreTests/Fixtures/xdp_parse.o"),
            ("As JSON", "mimic inspect Examples/xdp_firewall.o --json"),
        ])

    static func run(_ arguments: ParsedArguments) throws {
        try arguments.requirePositionals(["OBJ.o"], command: info.name)
        let object = try ObjectInput.load(path: arguments.positionals[0])
        Console.out(arguments.has("json") ? json(object).text : object.inspectionReport())
    }

    /// The report as JSON: what the text report shows, with the maps as `mimic maps --json`.
    static func json(_ object: ObjectFile) -> JSONOutput {
        let programs: [JSONOutput] = object.programs.map { program in
            .object([
                ("name", .string(program.name)),
                ("section", .string(program.sectionName)),
                ("type", .string(program.type.description)),
                ("instructions", .integer(Int64(program.instructions.count))),
                ("functions", .array(program.functions.map { .string($0.name) })),
            ])
        }
        let globals: [JSONOutput] = object.globals.map { global in
            .object([
                ("section", .string(global.name)),
                ("size", .integer(Int64(global.size))),
                ("read_only", .bool(global.isReadOnly)),
                (
                    "variables",
                    .array(
                        global.variables.map {
                            .object([("name", .string($0.name)), ("offset", .unsigned($0.offset))])
                        })
                ),
            ])
        }
        return .object([
            ("endianness", .string(object.elf.isBigEndian ? "big" : "little")),
            ("license", object.license.map(JSONOutput.string) ?? .null),
            ("btf_types", object.btf.map { .integer(Int64($0.count - 1)) } ?? .null),
            ("line_info_records", object.btfExt.map { .integer(Int64($0.lineInfo.count)) } ?? .null),
            ("programs", .array(programs)),
            ("maps", .array(MapsCommand.jsonItems(object))),
            ("globals", .array(globals)),
            ("notes", .array(object.notes.map(JSONOutput.string))),
        ])
    }
}
