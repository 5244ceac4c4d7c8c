/// Links the programs of an object: copies each entry function, appends the sub-programs it
/// calls, rewrites map / global-data `lddw`s, maps line info and applies CO-RE relocations.
struct ProgramLinker {
    let elf: ELFFile
    let btf: BTF?
    let btfExt: BTFExt?
    let maps: [MapSpec]
    let globals: [GlobalDataSpec]
    let targetBTF: BTF?
    /// The object's externs: `__kconfig` ones become references into `.kconfig`.
    var externs: [ObjectExtern] = []
    var notes: [String] = []

    /// Decoded instructions of each executable section.
    private var sectionCode: [Int: [RawInstruction]] = [:]
    /// Relocations of each executable section, by byte offset.
    private var sectionRelocations: [Int: [UInt64: ELFFile.Relocation]] = [:]
    /// Function symbols of each executable section, by value.
    private var sectionFunctions: [Int: [ELFFile.Symbol]] = [:]
    private var lineInfoBySection: [String: [BTFExt.LineInfo]] = [:]
    private var coreBySection: [String: [BTFExt.CORERelocation]] = [:]
    private var notedExternals = Set<String>()

    /// `BPF_PSEUDO_CALL` target of an unsatisfiable CO-RE relocation, as libbpf poisons it.
    static let poisonHelperID: Int32 = 0xBAD2310

    /// A run of a section's instructions placed in the program.
    struct Block {
        var section: Int
        var start: Int
        var end: Int
        var base: Int
        var name: String
    }

    init(elf: ELFFile, btf: BTF?, btfExt: BTFExt?, maps: [MapSpec], globals: [GlobalDataSpec], targetBTF: BTF?) {
        self.elf = elf
        self.btf = btf
        self.btfExt = btfExt
        self.maps = maps
        self.globals = globals
        self.targetBTF = targetBTF
        for line in btfExt?.lineInfo ?? [] { lineInfoBySection[line.section, default: []].append(line) }
        for relocation in btfExt?.coreRelocations ?? [] {
            coreBySection[relocation.section, default: []].append(relocation)
        }
    }

    mutating func linkAll() throws(ObjectFileError) -> [ObjectProgram] {
        // Decode every executable section and index its relocations and functions.
        for section in elf.sections where section.isExecutable && section.type == ELFFile.Section.typeProgBits {
            let structure = "section \(section.name)"
            guard section.size % 8 == 0 else {
                throw .invalidField(
                    structure: structure, field: "sh_size",
                    detail: "\(section.size) is not a whole number of 8-byte instructions")
            }
            let bytes = elf.contents(of: section)
            var code: [RawInstruction] = []
            code.reserveCapacity(bytes.count / 8)
            for start in stride(from: 0, to: bytes.count, by: 8) {
                code.append(RawInstruction(bytes: bytes[start..<(start + 8)], bigEndian: elf.isBigEndian))
            }
            sectionCode[section.index] = code
            var relocations: [UInt64: ELFFile.Relocation] = [:]
            for relocation in elf.relocations[section.index] ?? [] {
                guard relocation.offset % 8 == 0, relocation.offset < section.size else {
                    throw .badRelocation(
                        section: ".rel\(section.name)", offset: relocation.offset,
                        detail: "r_offset is not the start of an instruction in \(section.name) (\(section.size) bytes)"
                    )
                }
                relocations[relocation.offset] = relocation
            }
            sectionRelocations[section.index] = relocations
            var functions: [ELFFile.Symbol] = []
            for symbol in elf.symbols where symbol.isFunction && Int(symbol.sectionIndex) == section.index {
                guard symbol.value % 8 == 0, symbol.value <= section.size, symbol.size <= section.size - symbol.value
                else {
                    throw .invalidField(
                        structure: "section .symtab", field: "symbol \(symbol.index) (\(symbol.name)) st_value/st_size",
                        detail:
                            "\(symbol.value)+\(symbol.size) is not a run of whole instructions inside \(section.name)")
                }
                functions.append(symbol)
            }
            sectionFunctions[section.index] = functions.sorted { $0.value < $1.value }
        }

        var programs: [ObjectProgram] = []
        for section in elf.sections where sectionCode[section.index] != nil && section.name != ".text" {
            let functions = sectionFunctions[section.index] ?? []
            if functions.isEmpty {
                let count = sectionCode[section.index]?.count ?? 0
                if count > 0 { programs.append(try link(section: section, start: 0, end: count, name: section.name)) }
                continue
            }
            for function in functions {
                let (start, end) = extent(of: function, in: section.index)
                guard end > start else { continue }
                programs.append(try link(section: section, start: start, end: end, name: function.name))
            }
        }
        return programs
    }

    /// The instruction range of a function symbol (a zero size runs to the next function).
    func extent(of function: ELFFile.Symbol, in section: Int) -> (Int, Int) {
        let start = Int(function.value / 8)
        if function.size > 0 { return (start, start + Int(function.size / 8)) }
        let count = sectionCode[section]?.count ?? 0
        let next = (sectionFunctions[section] ?? []).map { Int($0.value / 8) }.filter { $0 > start }.min()
        return (start, next ?? count)
    }

    /// The function containing instruction `index` of `section`, as a block to place.
    func functionContaining(_ index: Int, in section: Int) -> (start: Int, end: Int, name: String) {
        for function in sectionFunctions[section] ?? [] {
            let (start, end) = extent(of: function, in: section)
            if index >= start && index < end { return (start, end, function.name) }
        }
        let count = sectionCode[section]?.count ?? 0
        let next = (sectionFunctions[section] ?? []).map { Int($0.value / 8) }.filter { $0 > index }.min()
        return (index, next ?? count, "\(elf.sections[section].name)+\(index * 8)")
    }

    mutating func link(section: ELFFile.Section, start: Int, end: Int, name: String) throws(ObjectFileError)
        -> ObjectProgram
    {
        var code: [RawInstruction] = []
        var blocks: [Block] = []
        var references: [ObjectReference] = []

        /// Places a block (once) and returns its index.
        func place(_ section: Int, _ start: Int, _ end: Int, _ name: String) -> Int {
            if let existing = blocks.firstIndex(where: { $0.section == section && $0.start == start }) {
                return existing
            }
            let source = sectionCode[section] ?? []
            blocks.append(Block(section: section, start: start, end: end, base: code.count, name: name))
            code.append(contentsOf: source[start..<end])
            return blocks.count - 1
        }
        /// The final slot of instruction `index` of `section`, placing its function if needed.
        func finalSlot(_ index: Int, in section: Int) -> Int {
            if let block = blocks.first(where: { $0.section == section && index >= $0.start && index < $0.end }) {
                return block.base + index - block.start
            }
            let function = functionContaining(index, in: section)
            let block = blocks[place(section, function.start, function.end, function.name)]
            return block.base + index - block.start
        }

        _ = place(section.index, start, end, name)
        var next = 0
        while next < blocks.count {
            let block = blocks[next]
            next += 1
            let sectionName = elf.sections[block.section].name
            let relocations = sectionRelocations[block.section] ?? [:]
            let sectionLength = sectionCode[block.section]?.count ?? 0
            var i = block.start
            while i < block.end {
                let pc = block.base + i - block.start
                let instruction = code[pc]
                let isLoadImm64 = instruction.opcode == 0x18
                if let relocation = relocations[UInt64(i * 8)] {
                    let symbol = elf.symbols[relocation.symbolIndex]
                    let where_ = ".rel\(sectionName)"
                    switch relocation.type {
                    case ELFFile.Relocation.none:
                        break
                    case ELFFile.Relocation.bpf64_32:
                        guard instruction.opcode == 0x85 else {
                            throw .badRelocation(
                                section: where_, offset: relocation.offset,
                                detail:
                                    "R_BPF_64_32 on an instruction that is not a call (opcode 0x\(String(instruction.opcode, radix: 16)))"
                            )
                        }
                        guard symbol.isDefined else {
                            references.append(ObjectReference(instructionIndex: pc, target: .external(symbol.name)))
                            if !externs.contains(where: { $0.symbolIndex == symbol.index }) {
                                noteExternal(symbol.name, "function")
                            }
                            break
                        }
                        guard instruction.source == 1 else {
                            throw .badRelocation(
                                section: where_, offset: relocation.offset,
                                detail:
                                    "call relocation against \(symbol.name) on a call with src \(instruction.source), not 1 (BPF_PSEUDO_CALL)"
                            )
                        }
                        let targetByte =
                            Int64(bitPattern: symbol.value) &+ (relocation.addend ?? (Int64(instruction.imm) &+ 1) &* 8)
                        let slot = try codeTarget(
                            byte: targetByte, section: Int(symbol.sectionIndex), symbol: symbol.name, at: where_,
                            offset: relocation.offset)
                        let final = finalSlot(slot, in: Int(symbol.sectionIndex))
                        code[pc].imm = Int32(clamping: final - (pc + 1))
                    case ELFFile.Relocation.bpf64_64:
                        guard isLoadImm64, i + 1 < block.end else {
                            throw .badRelocation(
                                section: where_, offset: relocation.offset,
                                detail: "R_BPF_64_64 on an instruction that is not a whole lddw")
                        }
                        guard symbol.isDefined else {
                            if let index = globals.firstIndex(where: { $0.name == ObjectExtern.kconfigSection }),
                                case .kconfig(let kconfig)? = externs.first(where: { $0.symbolIndex == symbol.index })?
                                    .kind
                            {
                                // libbpf: BPF_PSEUDO_MAP_VALUE of the .kconfig map at the extern's offset.
                                code[pc].source = LoadImm64Kind.mapIndexValue.rawValue
                                code[pc].imm = Int32(maps.count + index)
                                code[pc + 1].imm = Int32(kconfig.offset)
                                references.append(
                                    ObjectReference(
                                        instructionIndex: pc,
                                        target: .globalData(
                                            section: ObjectExtern.kconfigSection, offset: UInt64(kconfig.offset))))
                                break
                            }
                            references.append(ObjectReference(instructionIndex: pc, target: .external(symbol.name)))
                            if !externs.contains(where: { $0.symbolIndex == symbol.index }) {
                                noteExternal(symbol.name, "variable")
                            }
                            break
                        }
                        let addend = relocation.addend ?? Int64(UInt32(bitPattern: instruction.imm))
                        let targetSection = elf.sections[Int(symbol.sectionIndex)]
                        if targetSection.name == ".maps" || targetSection.name == "maps"
                            || targetSection.name.hasPrefix("maps/")
                        {
                            let offset =
                                symbol.isSection
                                ? UInt64(bitPattern: Int64(bitPattern: symbol.value) &+ addend) : symbol.value
                            guard
                                let index = maps.firstIndex(where: {
                                    $0.sectionName == targetSection.name && $0.sectionOffset == offset
                                })
                            else {
                                throw .badRelocation(
                                    section: where_, offset: relocation.offset,
                                    detail:
                                        "no map is defined at offset \(offset) of \(targetSection.name) (symbol \(symbol.name))"
                                )
                            }
                            code[pc].source = LoadImm64Kind.mapIndex.rawValue
                            code[pc].imm = Int32(index)
                            code[pc + 1].imm = 0
                            references.append(ObjectReference(instructionIndex: pc, target: .map(maps[index].name)))
                        } else if targetSection.isExecutable {
                            let slot = try codeTarget(
                                byte: Int64(bitPattern: symbol.value) &+ addend, section: targetSection.index,
                                symbol: symbol.name, at: where_, offset: relocation.offset)
                            let final = finalSlot(slot, in: targetSection.index)
                            code[pc].source = LoadImm64Kind.function.rawValue
                            code[pc].imm = Int32(clamping: final - (pc + 1))
                            code[pc + 1].imm = 0
                        } else if let index = globals.firstIndex(where: { $0.name == targetSection.name }) {
                            let offset = Int64(bitPattern: symbol.value) &+ addend
                            guard offset >= 0, offset <= Int64(globals[index].size) else {
                                throw .badRelocation(
                                    section: where_, offset: relocation.offset,
                                    detail:
                                        "offset \(offset) is outside \(targetSection.name) (\(globals[index].size) bytes)"
                                )
                            }
                            code[pc].source = LoadImm64Kind.mapIndexValue.rawValue
                            code[pc].imm = Int32(maps.count + index)
                            code[pc + 1].imm = Int32(truncatingIfNeeded: offset)
                            references.append(
                                ObjectReference(
                                    instructionIndex: pc,
                                    target: .globalData(section: targetSection.name, offset: UInt64(offset))))
                        } else {
                            throw .badRelocation(
                                section: where_, offset: relocation.offset,
                                detail:
                                    "symbol \(symbol.name) is in section \(targetSection.name), which holds no map, global data or code"
                            )
                        }
                    default:
                        throw .badRelocation(
                            section: where_, offset: relocation.offset,
                            detail: "relocation type \(relocation.type) is not valid in code")
                    }
                } else if instruction.opcode == 0x85 && instruction.source == 1 {
                    // A call inside the section without a relocation: relative to this instruction.
                    let target = i + 1 + Int(instruction.imm)
                    guard target >= 0, target < sectionLength else {
                        throw .invalidField(
                            structure: "section \(sectionName)", field: "instruction \(i) call imm",
                            detail: "target \(target) is outside the section")
                    }
                    code[pc].imm = Int32(clamping: finalSlot(target, in: block.section) - (pc + 1))
                } else if isLoadImm64 && instruction.source == LoadImm64Kind.function.rawValue {
                    let target = i + 1 + Int(instruction.imm)
                    guard target >= 0, target < sectionLength else {
                        throw .invalidField(
                            structure: "section \(sectionName)", field: "instruction \(i) lddw imm",
                            detail: "function \(target) is outside the section")
                    }
                    code[pc].imm = Int32(clamping: finalSlot(target, in: block.section) - (pc + 1))
                }
                i += isLoadImm64 ? 2 : 1
            }
        }

        // Line info and CO-RE, mapped through the blocks.
        var lines: [SourceLineInfo] = []
        for block in blocks {
            let sectionName = elf.sections[block.section].name
            for line in lineInfoBySection[sectionName] ?? [] where line.instructionOffset % 8 == 0 {
                let index = Int(line.instructionOffset / 8)
                guard index >= block.start && index < block.end else { continue }
                lines.append(
                    SourceLineInfo(
                        instructionIndex: block.base + index - block.start, file: line.fileName,
                        line: Int(line.line), column: Int(line.column), sourceText: line.sourceText))
            }
            for relocation in coreBySection[sectionName] ?? [] where relocation.instructionOffset % 8 == 0 {
                let index = Int(relocation.instructionOffset / 8)
                guard index >= block.start && index < block.end else { continue }
                applyCORE(relocation, at: block.base + index - block.start, in: &code, program: name)
            }
        }
        lines.sort { $0.instructionIndex < $1.instructionIndex }
        let functions = blocks.map {
            ObjectFunction(
                name: $0.name, sectionName: elf.sections[$0.section].name, instructionIndex: $0.base,
                instructionCount: $0.end - $0.start)
        }
        let definition = SectionDefinition.find(section.name)
        return ObjectProgram(
            name: name, sectionName: section.name, type: definition?.programType ?? .unspec,
            attachType: definition?.attachType,
            instructions: code, references: references, lineInfo: lines, functions: functions)
    }

    /// The instruction index a code relocation lands on, checked.
    func codeTarget(byte: Int64, section: Int, symbol: String, at where_: String, offset: UInt64)
        throws(ObjectFileError) -> Int
    {
        let count = sectionCode[section]?.count ?? 0
        guard sectionCode[section] != nil, byte >= 0, byte % 8 == 0, byte / 8 < Int64(count) else {
            throw .badRelocation(
                section: where_, offset: offset,
                detail: "target \(symbol)+\(byte) is not an instruction of section \(elf.sections[section].name)")
        }
        return Int(byte / 8)
    }

    mutating func noteExternal(_ name: String, _ what: String) {
        if notedExternals.insert(name).inserted {
            notes.append("extern \(what) \(name) is not defined in the object; references to it are left unresolved")
        }
    }

    mutating func applyCORE(
        _ relocation: BTFExt.CORERelocation, at pc: Int, in code: inout [RawInstruction], program: String
    ) {
        guard let btf else { return }
        let relocator = CORERelocator(local: btf, target: targetBTF ?? btf, bigEndian: elf.isBigEndian)
        let describe = "\(relocation.kind) on \(btf.typeName(relocation.typeID)) access \(relocation.accessString)"
        switch relocator.resolve(relocation) {
        case .value(let value):
            if let problem = CORERelocator.patch(&code, at: pc, value: value) {
                notes.append("CO-RE: program \(program) instruction \(pc): \(describe): \(problem)")
            }
        case .missing(let why):
            if code[pc].opcode == 0x18, pc + 1 < code.count {
                code[pc + 1] = RawInstruction(opcode: 0x85, imm: ProgramLinker.poisonHelperID)
            }
            code[pc] = RawInstruction(opcode: 0x85, imm: ProgramLinker.poisonHelperID)
            notes.append(
                "CO-RE: program \(program) instruction \(pc): \(describe) cannot be satisfied (\(why)); the instruction now calls the invalid helper 0xbad2310, as libbpf does"
            )
        case .unsupported(let why):
            notes.append("CO-RE: program \(program) instruction \(pc): \(describe) left as compiled (\(why))")
        }
    }
}
