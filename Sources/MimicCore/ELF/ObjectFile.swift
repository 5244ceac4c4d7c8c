import Foundation

/// An eBPF object file (`clang -O2 -g -target bpf -c prog.c`), read without libbpf: programs,
/// maps, global data, license, BTF, line info and CO-RE relocations.
///
/// ## How references are rewritten
///
/// Each program's `lddw` instructions that refer to maps or global data are rewritten to the
/// kernel's pseudo forms, so `VM.load` passes them to the emulator's
/// `resolveLoadImm64(kind:imm:nextImm:in:)`:
///
/// - a map: `src = 5` (`BPF_PSEUDO_MAP_IDX`, `LoadImm64Kind.mapIndex`), `imm` = the index of the
///   map in `maps`, next `imm` = 0;
/// - global data: `src = 6` (`BPF_PSEUDO_MAP_IDX_VALUE`, `LoadImm64Kind.mapIndexValue`), `imm` =
///   an index into the **combined list `maps + globals`** — that is `maps.count + i` for
///   `globals[i]` — and next `imm` = the byte offset in that section. `dataObject(atPseudoIndex:)`
///   decodes the index.
///
/// Calls to sub-programs (`.text` functions, `R_BPF_64_32`) and pseudo-function `lddw`s
/// (`src = 4`) are linked: each called function is appended once after the entry function and
/// the immediates are set to the relative slot distance, as the VM expects. `references`
/// keeps what each rewritten slot referred to.
public struct ObjectFile: Sendable {
    /// The ELF container.
    public let elf: ELFFile
    /// The programs; `configure(_:)` may change their types.
    public internal(set) var programs: [ObjectProgram]
    /// Legacy and BTF-defined maps, in that order (legacy by offset, BTF in `.maps` order);
    /// `configure(_:)` may change their sizes and initial slots.
    public internal(set) var maps: [MapSpec]
    /// Global-data sections, in section order, then `.kconfig` when the object has `__kconfig`
    /// externs (zeros here: the loader fills it); `configure(_:)` may change their contents.
    public internal(set) var globals: [GlobalDataSpec]
    /// The `__kconfig` and `__ksym` externs (variables and kfuncs), as libbpf collects them.
    public let externs: [ObjectExtern]
    /// The `license` section's string, if any.
    public let license: String?
    /// The `version` section's value (old kprobe objects), if any.
    public let kernelVersion: UInt32?
    public let btf: BTF?
    public let btfExt: BTFExt?
    /// Things a user should know that are not errors: CO-RE relocations applied against the
    /// object's own types, unsupported relocation kinds, unresolved externs.
    public let notes: [String]

    /// Whether the object is big-endian (`-target bpfeb`).
    public var isBigEndian: Bool { elf.isBigEndian }

    /// Why the object cannot run, for a big-endian one (nil for little-endian): Mimic runs eBPF
    /// as a little-endian machine (x86, arm64) does, and does not emulate a big-endian one
    /// (byte-swapped loads and stores, data and map keys in big-endian order). `VM.load(object:)`
    /// and `KernelObject` refuse such objects with this message; `inspect` still reads them.
    public var byteOrderProblem: String? {
        guard isBigEndian else { return nil }
        return
            "the object is big-endian (compiled with -target bpfeb), and Mimic runs eBPF as a little-endian machine (x86, arm64) does; -target bpfeb objects are not supported: compile with -target bpfel, or -target bpf on a little-endian host"
    }

    /// One entry of the combined `maps + globals` list used by `BPF_PSEUDO_MAP_IDX_VALUE`.
    public enum DataObject: Sendable, Equatable {
        case map(MapSpec)
        case global(GlobalDataSpec)
    }

    /// Decodes the `imm` of a rewritten `lddw`: an index into `maps` followed by `globals`.
    public func dataObject(atPseudoIndex index: Int32) -> DataObject? {
        let i = Int(index)
        if i >= 0, i < maps.count { return .map(maps[i]) }
        if i >= maps.count, i - maps.count < globals.count { return .global(globals[i - maps.count]) }
        return nil
    }

    /// The program whose function is named `name`.
    public func program(named name: String) -> ObjectProgram? {
        programs.first { $0.name == name }
    }

    /// The map named `name`.
    public func map(named name: String) -> MapSpec? {
        maps.first { $0.name == name }
    }

    /// The global-data section named `name` (`.data`, `.rodata.str1.1`).
    public func global(named name: String) -> GlobalDataSpec? {
        globals.first { $0.name == name }
    }

    /// Reads and parses the object at `path`.
    public init(contentsOf path: String, targetBTF: BTF? = nil) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try self.init(bytes: [UInt8](data), targetBTF: targetBTF)
    }

    /// Parses an object. CO-RE relocations are applied against `targetBTF` (the BTF of the kernel
    /// the programs pretend to run on); without one, against the object's own types, and a note
    /// says so.
    public init(bytes: [UInt8], targetBTF: BTF? = nil) throws(ObjectFileError) {
        let elf = try ELFFile(bytes: bytes)
        self.elf = elf
        var notes: [String] = []

        // BTF.
        var btf: BTF?
        if let section = elf.section(named: ".BTF") {
            btf = try BTF(bytes: elf.contents(of: section), section: ".BTF")
            btf?.fixUpDataSections(
                sectionSize: { name in elf.section(named: name)?.size },
                symbolOffset: { sectionName, variable in
                    guard let index = elf.section(named: sectionName)?.index else { return nil }
                    return elf.symbols.first { $0.name == variable && Int($0.sectionIndex) == index && !$0.isSection }?
                        .value
                })
        }
        // Externs, and the .kconfig DATASEC laid out as libbpf lays out the section it makes.
        let (externs, kconfig) = try ObjectParser(elf: elf, btf: btf).externs()
        if let kconfig {
            btf?.fixUpDataSections(
                sectionSize: { $0 == ObjectExtern.kconfigSection ? UInt64(kconfig.size) : nil },
                symbolOffset: { section, variable in
                    section == ObjectExtern.kconfigSection
                        ? kconfig.variables.first { $0.name == variable }?.offset : nil
                })
        }
        var btfExt: BTFExt?
        if let section = elf.section(named: ".BTF.ext") {
            guard let btf else { throw .missingSection(".BTF (needed by .BTF.ext)") }
            btfExt = try BTFExt(bytes: elf.contents(of: section), btf: btf, section: ".BTF.ext")
        }
        self.btf = btf
        self.btfExt = btfExt

        // License and version.
        if let section = elf.section(named: "license") {
            let bytes = elf.contents(of: section)
            license = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        } else {
            license = nil
        }
        if let section = elf.section(named: "version") {
            kernelVersion = try ByteReader(
                elf.contents(of: section), bigEndian: elf.isBigEndian, structure: "section version"
            )
            .u32(0, "kernel version")
        } else {
            kernelVersion = nil
        }

        let parser = ObjectParser(elf: elf, btf: btf)
        let maps = try parser.legacyMaps() + parser.btfMaps()
        var seen = Set<String>()
        for map in maps where !seen.insert(map.name).inserted {
            throw .invalidField(
                structure: "section \(map.sectionName)", field: "map \(map.name)", detail: "a second map with this name"
            )
        }
        self.maps = maps
        var globals = try parser.globalData()
        if let kconfig { globals.append(kconfig) }
        self.globals = globals
        self.externs = externs

        var linker = ProgramLinker(
            elf: elf, btf: btf, btfExt: btfExt, maps: maps, globals: globals, targetBTF: targetBTF)
        linker.externs = externs
        programs = try linker.linkAll()
        notes += linker.notes
        if let ext = btfExt, !ext.coreRelocations.isEmpty, targetBTF == nil {
            notes.insert(
                "CO-RE: \(ext.coreRelocations.count) relocation(s) applied against the object's own BTF (no target BTF was given)",
                at: 0)
        }
        self.notes = notes
    }
}

/// Reads maps and global data out of an `ELFFile`.
struct ObjectParser {
    let elf: ELFFile
    let btf: BTF?

    /// Symbols defined in section `index` that are not section or file symbols, by value.
    func symbols(in index: Int) -> [ELFFile.Symbol] {
        elf.symbols.filter {
            Int($0.sectionIndex) == index && $0.isDefined && !$0.isSection && $0.type != 4 && !$0.name.isEmpty
        }
        .sorted { $0.value < $1.value }
    }

    // MARK: Legacy maps

    func legacyMaps() throws(ObjectFileError) -> [MapSpec] {
        guard let section = elf.sections.first(where: { $0.name == "maps" || $0.name.hasPrefix("maps/") }) else {
            return []
        }
        let structure = "section \(section.name)"
        let reader = ByteReader(elf.contents(of: section), bigEndian: elf.isBigEndian, structure: structure)
        let symbols = self.symbols(in: section.index)
        guard !symbols.isEmpty else { return [] }
        var result: [MapSpec] = []
        for symbol in symbols {
            var size = symbol.size
            if size == 0 { size = section.size / UInt64(symbols.count) } // old objects: evenly split
            guard let offset = intValue(symbol.value), let length = intValue(size), reader.contains(offset, length)
            else {
                throw .invalidField(
                    structure: structure, field: "map \(symbol.name) (symbol \(symbol.index) st_value/st_size)",
                    detail: "\(symbol.value)+\(size) lies outside the section's \(section.size) bytes")
            }
            guard length >= 16 else {
                throw .invalidField(
                    structure: structure, field: "map \(symbol.name) st_size",
                    detail: "\(length) bytes is too small for struct bpf_map_def")
            }
            func field(_ index: Int, _ name: String) throws(ObjectFileError) -> UInt32 {
                index * 4 + 4 <= length ? try reader.u32(offset + index * 4, "map \(symbol.name) \(name)") : 0
            }
            let attributes = MapAttributes(
                name: symbol.name, type: MapType(rawValue: try field(0, "type")),
                keySize: Int(try field(1, "key_size")), valueSize: Int(try field(2, "value_size")),
                maxEntries: Int(try field(3, "max_entries")), flags: try field(4, "map_flags"))
            result.append(
                MapSpec(attributes: attributes, source: .legacy, sectionName: section.name, sectionOffset: symbol.value)
            )
        }
        return result
    }

    // MARK: BTF maps

    func btfMaps() throws(ObjectFileError) -> [MapSpec] {
        guard let section = elf.section(named: ".maps") else { return [] }
        guard let btf else { throw .missingSection(".BTF (needed to read the map definitions in .maps)") }
        guard let datasecID = btf.typeID(named: ".maps", kind: .dataSection),
            case .dataSection(_, _, let variables)? = btf.type(datasecID)
        else {
            throw .invalidField(
                structure: "section .BTF", field: "DATASEC .maps",
                detail: "missing, so the maps in .maps cannot be described")
        }
        let relocations = elf.relocations[section.index] ?? []
        var maps: [MapSpec] = []
        for variable in variables {
            guard case .variable(let name, let type, _)? = btf.type(variable.type) else {
                throw .invalidField(
                    structure: "section .BTF", field: "DATASEC .maps variable type \(variable.type)",
                    detail: "is not a VAR")
            }
            var spec = try mapDefinition(
                name: name, typeID: type, btf: btf, offset: UInt64(variable.offset), section: section.name, depth: 0)
            // Initial slot values: relocations inside this map's `values` array.
            if let valuesOffset = try valuesMemberOffset(typeID: type, btf: btf) {
                let start = UInt64(variable.offset) + valuesOffset
                let end = UInt64(variable.offset) + UInt64(variable.size)
                for relocation in relocations where relocation.offset >= start && relocation.offset < end {
                    let symbol = elf.symbols[relocation.symbolIndex]
                    let slot = Int((relocation.offset - start) / 8)
                    let target: MapSpec.Slot.Target = symbol.isFunction ? .program(symbol.name) : .map(symbol.name)
                    spec.initialSlots.append(MapSpec.Slot(index: slot, target: target))
                }
                spec.initialSlots.sort { $0.index < $1.index }
            }
            maps.append(spec)
        }
        return maps
    }

    /// The byte offset of the `values` member in a BTF map definition, if it has one.
    func valuesMemberOffset(typeID: UInt32, btf: BTF) throws(ObjectFileError) -> UInt64? {
        guard let member = btf.type(btf.resolve(typeID))?.members.first(where: { $0.name == "values" }) else {
            return nil
        }
        return UInt64(member.bitOffset / 8)
    }

    /// Reads one BTF map definition: a struct whose members encode the attributes
    /// (`__uint(name, n)` = pointer to `int[n]`, `__type(name, T)` = pointer to T,
    /// `__array(values, T)` = array of pointers to T).
    func mapDefinition(name: String, typeID: UInt32, btf: BTF, offset: UInt64, section: String, depth: Int)
        throws(ObjectFileError) -> MapSpec
    {
        let structure = "section .BTF"
        guard depth < 2 else {
            throw .invalidField(structure: structure, field: "map \(name)", detail: "inner maps nest too deeply")
        }
        guard case .structure(_, _, let members)? = btf.type(btf.resolve(typeID)) else {
            throw .invalidField(
                structure: structure, field: "map \(name) type \(typeID)",
                detail: "a BTF map definition must be a struct")
        }
        var spec = MapSpec(
            attributes: MapAttributes(name: name, type: .unspec, keySize: 0, valueSize: 0, maxEntries: 0),
            source: depth == 0 ? .btf : .innerTemplate, sectionName: section, sectionOffset: offset)
        func number(_ member: BTF.Member) throws(ObjectFileError) -> UInt32 {
            guard case .pointer(let target)? = btf.type(btf.resolve(member.type)),
                case .array(_, _, let count)? = btf.type(btf.resolve(target))
            else {
                throw .invalidField(
                    structure: structure, field: "map \(name) member \(member.name)",
                    detail: "expected __uint(\(member.name), N): a pointer to an array")
            }
            return count
        }
        func pointee(_ member: BTF.Member) throws(ObjectFileError) -> UInt32 {
            guard case .pointer(let target)? = btf.type(btf.resolve(member.type)) else {
                throw .invalidField(
                    structure: structure, field: "map \(name) member \(member.name)",
                    detail: "expected __type(\(member.name), T): a pointer")
            }
            return target
        }
        func typeSize(_ id: UInt32, _ what: String) throws(ObjectFileError) -> Int {
            guard let size = btf.size(of: id), size <= Int(UInt32.max) else {
                throw .invalidField(
                    structure: structure, field: "map \(name) \(what) type \(id)", detail: "has no size")
            }
            return size
        }
        var innerTypeID: UInt32?
        for member in members {
            switch member.name {
            case "type": spec.attributes.type = MapType(rawValue: try number(member))
            case "max_entries": spec.attributes.maxEntries = Int(try number(member))
            case "map_flags": spec.attributes.flags = try number(member)
            case "numa_node": spec.numaNode = try number(member)
            case "pinning": spec.pinning = try number(member)
            case "map_extra": spec.mapExtra = UInt64(try number(member))
            case "key_size": spec.attributes.keySize = Int(try number(member))
            case "value_size": spec.attributes.valueSize = Int(try number(member))
            case "key":
                let id = try pointee(member)
                spec.keyTypeID = id
                spec.attributes.keySize = try typeSize(id, "key")
            case "value":
                let id = try pointee(member)
                spec.valueTypeID = id
                spec.attributes.valueSize = try typeSize(id, "value")
                spec.attributes.spinLockOffset = btf.spinLockOffset(in: id).map { Int($0) }
            case "values":
                guard case .array(let element, _, _)? = btf.type(btf.resolve(member.type)),
                    case .pointer(let target)? = btf.type(btf.resolve(element))
                else {
                    throw .invalidField(
                        structure: structure, field: "map \(name) member values",
                        detail: "expected __array(values, T): an array of pointers")
                }
                let resolved = btf.resolve(target)
                if case .structure? = btf.type(resolved) { innerTypeID = resolved }
                // Prog arrays point to a FUNC_PROTO: nothing to read, the values are programs.
                spec.attributes.valueSize = 4
            default:
                break // libbpf warns about unknown attributes; they do not change the map here.
            }
        }
        if let innerTypeID {
            spec.innerMap = try mapDefinition(
                name: name + ".inner", typeID: innerTypeID, btf: btf, offset: offset, section: section, depth: depth + 1
            )
            if spec.attributes.keySize == 0 { spec.attributes.keySize = 4 }
        }
        return spec
    }

    // MARK: Global data

    static func isGlobalDataSection(_ name: String) -> Bool {
        for base in [".data", ".rodata", ".bss"] where name == base || name.hasPrefix(base + ".") { return true }
        return false
    }

    func globalData() throws(ObjectFileError) -> [GlobalDataSpec] {
        var result: [GlobalDataSpec] = []
        for section in elf.sections
        where ObjectParser.isGlobalDataSection(section.name)
            && (section.type == ELFFile.Section.typeProgBits || section.type == ELFFile.Section.typeNoBits)
        {
            if section.type == ELFFile.Section.typeNoBits, section.size > ELFFile.maxZeroFillSize {
                throw .absurdCount(
                    structure: "section \(section.name)", field: "sh_size", count: section.size,
                    limit: ELFFile.maxZeroFillSize)
            }
            let variables = symbols(in: section.index).map {
                GlobalDataSpec.Variable(name: $0.name, offset: $0.value, size: $0.size)
            }
            let readOnly = section.name.hasPrefix(".rodata") || section.flags & ELFFile.Section.flagWrite == 0
            result.append(
                GlobalDataSpec(
                    name: section.name, contents: elf.contents(of: section), isReadOnly: readOnly,
                    variables: variables, btfTypeID: btf?.typeID(named: section.name, kind: .dataSection)))
        }
        return result
    }
}
