/// Human-readable views of an object, for `mimic inspect` and `mimic disasm`.
extension ObjectFile {
    /// A report of the object's programs (name, section, type, instruction count), maps (name,
    /// type, key/value size, max entries, flags), global data, externs, license, BTF and notes.
    public func inspectionReport() -> String {
        var out = ""
        out +=
            "object: \(elf.isBigEndian ? "big" : "little")-endian eBPF, license \(license.map { "\"\($0)\"" } ?? "none")"
        if let btf { out += ", BTF with \(btf.count - 1) types" }
        if let btfExt { out += ", \(btfExt.lineInfo.count) line info records" }
        out += "\n"

        out += "\nprograms (\(programs.count)):\n"
        let programRows = programs.map { program -> [String] in
            let subprograms = program.functions.count > 1 ? " (+\(program.functions.count - 1) sub-programs)" : ""
            return [
                program.name, program.sectionName, program.type.description,
                "\(program.instructions.count) instructions" + subprograms,
            ]
        }
        out += ObjectFile.table(["name", "section", "type", "size"], programRows)

        out += "\nmaps (\(maps.count)):\n"
        var mapRows: [[String]] = []
        for map in maps {
            mapRows.append(mapRow(map))
            if let inner = map.innerMap { mapRows.append(mapRow(inner, indent: "  inner ")) }
        }
        out += ObjectFile.table(["name", "type", "key", "value", "max entries", "flags", "details"], mapRows)

        out += "\nglobal data (\(globals.count)):\n"
        let globalRows = globals.map { global -> [String] in
            [
                global.name, "\(global.size) bytes", global.isReadOnly ? "read-only" : "read-write",
                global.variables.map { "\($0.name)@\($0.offset)" }.joined(separator: ", "),
            ]
        }
        out += ObjectFile.table(["section", "size", "access", "variables"], globalRows)

        if !externs.isEmpty {
            out += "\nexterns (\(externs.count)):\n"
            let externRows = externs.map { external -> [String] in
                let what: String
                switch external.kind {
                case .kconfig(let kconfig): what = "__kconfig \(kconfig.typeName) at .kconfig+\(kconfig.offset)"
                case .ksymVariable(let typeID, _):
                    what =
                        "__ksym variable"
                        + (typeID.flatMap { id in btf.map { " \($0.typeName(id))" } } ?? " (typeless)")
                case .kfunc: what = "kfunc"
                }
                return [external.name, what, external.isWeak ? "weak" : "strong"]
            }
            out += ObjectFile.table(["name", "kind", "binding"], externRows)
        }

        if !notes.isEmpty {
            out += "\nnotes:\n"
            for note in notes { out += "  - \(note)\n" }
        }
        return out
    }

    private func mapRow(_ map: MapSpec, indent: String = "") -> [String] {
        var details: [String] = []
        if let key = map.keyTypeID, let btf { details.append("key \(btf.typeName(key))") }
        if let value = map.valueTypeID, let btf { details.append("value \(btf.typeName(value))") }
        let attributes = map.attributes
        if let offset = attributes.spinLockOffset { details.append("bpf_spin_lock at \(offset)") }
        if map.pinning != 0 { details.append("pinned by name") }
        if !map.initialSlots.isEmpty {
            details.append(
                "initial "
                    + map.initialSlots.map { slot in
                        switch slot.target {
                        case .program(let name): "[\(slot.index)]=\(name)"
                        case .map(let name): "[\(slot.index)]=\(name)"
                        }
                    }.joined(separator: " "))
        }
        if map.source == .legacy { details.append("legacy") }
        return [
            indent + attributes.name, attributes.type.description, "\(attributes.keySize)", "\(attributes.valueSize)",
            "\(attributes.maxEntries)", MapAttributes.flagNames(attributes.flags),
            details.joined(separator: ", "),
        ]
    }

    /// Left-aligned columns, two spaces apart, indented by two.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        guard !rows.isEmpty else { return "  (none)\n" }
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var text = "  "
            for (i, cell) in cells.enumerated() {
                text += i == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count + 2)
            }
            while text.hasSuffix(" ") { text.removeLast() }
            return text + "\n"
        }
        return line(header) + rows.map(line).joined()
    }
}

extension MapAttributes {
    /// Map flags by their `BPF_F_*` names, lowercase without the prefix, as bpftool shows
    /// them (`no_prealloc, rdonly_prog`); unknown bits as hex; `0` for none.
    public static func flagNames(_ value: UInt32) -> String {
        let names: [(UInt32, String)] = [
            (1, "no_prealloc"), (2, "no_common_lru"), (4, "numa_node"), (8, "rdonly"),
            (16, "wronly"), (32, "stack_build_id"), (64, "zero_seed"), (128, "rdonly_prog"),
            (256, "wronly_prog"), (512, "clone"), (1024, "mmapable"), (2048, "preserve_elems"),
            (4096, "inner_map"),
        ]
        guard value != 0 else { return "0" }
        var parts = names.filter { value & $0.0 != 0 }.map(\.1)
        let known = names.reduce(UInt32(0)) { $0 | $1.0 }
        if value & ~known != 0 { parts.append("0x" + String(value & ~known, radix: 16)) }
        return parts.joined(separator: ", ")
    }
}

extension ObjectProgram {
    /// The program's disassembly with its C source interleaved: each function's name as a
    /// label, a `; source text  (file:line:column)` comment whenever the source line changes,
    /// and the slot number and map / global-data reference of each instruction.
    ///
    /// - Parameter helperName: the name of a helper id, if known; helper calls then print as
    ///   bpftool does, `call bpf_map_lookup_elem#1`.
    public func annotatedListing(helperName: (Int32) -> String? = { _ in nil }) -> String {
        var out = ""
        let functionStarts = Dictionary(
            functions.map { ($0.instructionIndex, $0) }, uniquingKeysWith: { first, _ in first })
        let referenceBySlot = Dictionary(
            references.map { ($0.instructionIndex, $0.target) }, uniquingKeysWith: { first, _ in first })
        var lineBySlot: [Int: SourceLineInfo] = [:]
        for line in lineInfo { lineBySlot[line.instructionIndex] = line }
        var lastSource: (String, Int)?
        // The disassembler prints plain lddw only; pseudo forms (maps, global data, functions)
        // are shown with their kind and the reference they were rewritten from.
        var plain = instructions
        var pseudoText: [Int: String] = [:]
        for (slot, instruction) in instructions.enumerated()
        where instruction.opcode == 0x18 && instruction.source != 0 && slot + 1 < instructions.count {
            plain[slot].source = 0
            let next = instructions[slot + 1].imm
            let operand: String
            switch LoadImm64Kind(rawValue: instruction.source) {
            case .mapIndex?: operand = "map[\(instruction.imm)]"
            case .mapIndexValue?: operand = "map_value[\(instruction.imm)]+\(next)"
            case .function?: operand = "func \(instruction.imm >= 0 ? "+" : "")\(instruction.imm)"
            case .mapFileDescriptor?: operand = "map_fd \(instruction.imm)"
            case .mapValue?: operand = "map_fd_value \(instruction.imm)+\(next)"
            case .btfID?: operand = "btf_id \(instruction.imm)"
            case .immediate?, nil: operand = "pseudo \(instruction.source) \(instruction.imm)"
            }
            pseudoText[slot] = "lddw %r\(instruction.destination), \(operand)"
        }
        for (slot, instruction) in instructions.enumerated() where instruction.opcode == 0x85 && instruction.source == 0
        {
            if let name = helperName(instruction.imm) { pseudoText[slot] = "call \(name)#\(instruction.imm)" }
        }
        var pendingLabels: [String] = []
        for entry in Disassembler.disassemble(plain) {
            switch entry {
            case .label(let name):
                pendingLabels.append(name)
            case .instruction(let slot, _, let decodedText), .invalid(let slot, let decodedText):
                if let function = functionStarts[slot] {
                    out += "\n<\(function.name)> (\(function.sectionName)):\n"
                }
                for label in pendingLabels { out += "\(label):\n" }
                pendingLabels.removeAll()
                if let line = lineBySlot[slot], lastSource.map({ $0 != (line.file, line.line) }) ?? true {
                    let file = line.file.split(separator: "/").last.map(String.init) ?? line.file
                    let source = line.sourceText.trimmingLeadingSpaces()
                    out +=
                        "    ; \(source.isEmpty ? "(no source text)" : source)  (\(file):\(line.line):\(line.column))\n"
                    lastSource = (line.file, line.line)
                }
                let number = String(slot)
                out +=
                    String(repeating: " ", count: max(0, 6 - number.count)) + number + ":  "
                    + (pseudoText[slot] ?? decodedText)
                if let target = referenceBySlot[slot] { out += "  # \(target)" }
                out += "\n"
            }
        }
        for label in pendingLabels { out += "\(label):\n" }
        return out
    }
}

extension String {
    func trimmingLeadingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" })
    }
}
