import MimicCore

/// `mimic maps OBJ.o`: the map definitions of an object.
enum MapsCommand: Command {
    static let info = CommandInfo(
        name: "maps",
        summary: "List the maps an eBPF object defines, with their BTF key and value types.",
        synopsis: "maps OBJ.o [--json]",
        discussion: """
            Prints each map of the object: name, type, key and value size with their BTF types
            (when the object has BTF), max entries and flags, like `bpftool map show`. Global data
            sections (.data, .rodata, .bss) are listed too: programs see them as one-entry arrays.
            """,
        options: [.flag("json", "Print the maps as a JSON array.")],
        examples: [
            ("The maps of the XDP firewall", "mimic maps Examples/xdp_firewall.o"),
            ("As JSON", "mimic maps Examples/packet_counter.o --json"),
        ])

    static func run(_ arguments: ParsedArguments) throws {
        try arguments.requirePositionals(["OBJ.o"], command: info.name)
        let name = Input.displayName(arguments.positionals[0])
        let object = try ObjectInput.load(path: arguments.positionals[0])
        let btf = object.btf
        func typeName(_ id: UInt32?) -> String? { id.flatMap { id in btf.map { $0.typeName(id) } } }

        if arguments.has("json") {
            Console.out(JSONOutput.array(jsonItems(object)).text)
            return
        }

        var rows: [[String]] = object.maps.map { map in
            let attributes = map.attributes
            return [
                attributes.name, attributes.type.description,
                "\(attributes.keySize)" + (typeName(map.keyTypeID).map { " (\($0))" } ?? ""),
                "\(attributes.valueSize)" + (typeName(map.valueTypeID).map { " (\($0))" } ?? ""),
                "\(attributes.maxEntries)", MapAttributes.flagNames(attributes.flags),
            ]
        }
        rows += object.globals.map { global in
            [
                global.name, "array (global data)", "4", "\(global.size)", "1",
                global.isReadOnly ? "rdonly_prog, mmapable" : "mmapable",
            ]
        }
        guard !rows.isEmpty else {
            Console.out("\(name) defines no maps\n")
            return
        }
        Console.out(Table.render(["name", "type", "key", "value", "max entries", "flags"], rows))
    }

    /// The maps and global-data sections of `object` as JSON objects (`maps --json`,
    /// `inspect --json`).
    static func jsonItems(_ object: ObjectFile) -> [JSONOutput] {
        let btf = object.btf
        func typeName(_ id: UInt32?) -> String? { id.flatMap { id in btf.map { $0.typeName(id) } } }
        var items: [JSONOutput] = object.maps.map { map in
            let attributes = map.attributes
            return .object([
                ("name", .string(attributes.name)),
                ("type", .string(attributes.type.description)),
                ("key_size", .unsigned(UInt64(clamping: attributes.keySize))),
                ("value_size", .unsigned(UInt64(clamping: attributes.valueSize))),
                ("key_type", typeName(map.keyTypeID).map(JSONOutput.string) ?? .null),
                ("value_type", typeName(map.valueTypeID).map(JSONOutput.string) ?? .null),
                ("max_entries", .unsigned(UInt64(clamping: attributes.maxEntries))),
                ("flags", .unsigned(UInt64(attributes.flags))),
                ("flag_names", .string(MapAttributes.flagNames(attributes.flags))),
            ])
        }
        items += object.globals.map { global in
            .object([
                ("name", .string(global.name)),
                ("type", .string("array")),
                ("key_size", .unsigned(4)),
                ("value_size", .unsigned(UInt64(global.size))),
                ("key_type", .null),
                ("value_type", .string(global.name)),
                ("max_entries", .unsigned(1)),
                ("flags", .unsigned(global.isReadOnly ? 0x480 : 0x400)),
                ("flag_names", .string(MapAttributes.flagNames(global.isReadOnly ? 0x480 : 0x400))),
            ])
        }
        return items
    }
}

/// Left-aligned text tables.
enum Table {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var text = ""
            for (i, cell) in cells.enumerated() {
                text += i == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count + 2)
            }
            return text + "\n"
        }
        return line(header) + rows.map(line).joined()
    }
}
