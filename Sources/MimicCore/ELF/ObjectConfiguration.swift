import MimicJSON

/// How a loader configures an object between opening and loading it, as a libbpf skeleton does
/// between `__open()` and `__load()`: global variables set by name, maps sized, program types
/// chosen, prog arrays and maps of maps filled. The same configuration applied to the same
/// `ObjectFile` gives Mimic (`VM.load(object:)`) and the kernel (`KernelObject`) the same object.
///
/// ```swift
/// var configuration = ObjectConfiguration()
/// configuration.globals.append(.init(name: "blocked_port", value: .number("8080")))
/// configuration.mapSizes["flows"] = 4096
/// configuration.programTypes["xdp_vlan01"] = .xdp
/// let object = try ObjectFile(contentsOf: "prog.o").configured(configuration)
/// ```
///
/// Global variables are the BTF `DATASEC` variables of `.rodata`, `.data`, `.bss`, `.data.*` and
/// `.rodata.*`; values are `JSONValue`s checked against the variable's BTF type (see
/// `ObjectFile.setGlobal(_:to:)`). `.rodata` can be written only here, before load: a loaded
/// object's `.rodata` is frozen, as in the kernel. Pinning (`LIBBPF_PIN_BY_NAME`) is not modelled.
public struct ObjectConfiguration: Sendable, Equatable {
    /// One global variable and its value.
    public struct Global: Sendable, Equatable {
        /// The variable's name (`blocked_port`), or `section:name` (`.data.custom:counter`)
        /// when two sections have a variable of that name.
        public var name: String
        /// Integers as `.number` (or a string such as `"0x1f"`), booleans, enums by name
        /// (`.string("MODE_DROP")`) or value, char arrays as `.string`, other arrays as `.array`,
        /// structs and unions as `.object` by member name (members left out keep their value).
        public var value: JSONValue

        public init(name: String, value: JSONValue) {
            self.name = name
            self.value = value
        }
    }

    /// One initial slot of a prog array (`target: .program(name)`) or a map of maps
    /// (`target: .map(name)`), like `.values = { [index] = &target }` in the object.
    public struct Slot: Sendable, Equatable {
        public var map: String
        public var index: Int
        public var target: MapSpec.Slot.Target

        public init(map: String, index: Int, target: MapSpec.Slot.Target) {
            self.map = map
            self.index = index
            self.target = target
        }
    }

    /// Global variables to set, in order (a later value of the same variable wins).
    public var globals: [Global]
    /// `max_entries` by map name. An inner-map template is named `OUTER.inner`.
    public var mapSizes: [String: Int]
    /// Program types by program (function) name, overriding what the section name gives.
    public var programTypes: [String: ProgramType]
    /// Expected attach types by program name, overriding what the section name gives.
    public var attachTypes: [String: AttachType]
    /// Prog-array and map-of-maps slots to fill, after those the object gives.
    public var slots: [Slot]

    public init(
        globals: [Global] = [], mapSizes: [String: Int] = [:], programTypes: [String: ProgramType] = [:],
        attachTypes: [String: AttachType] = [:], slots: [Slot] = []
    ) {
        self.globals = globals
        self.mapSizes = mapSizes
        self.programTypes = programTypes
        self.attachTypes = attachTypes
        self.slots = slots
    }

    /// Whether the configuration changes nothing.
    public var isEmpty: Bool {
        globals.isEmpty && mapSizes.isEmpty && programTypes.isEmpty && attachTypes.isEmpty && slots.isEmpty
    }
}

/// Why a configuration cannot be applied: an unknown name (with the close names the object has),
/// a value out of range or of the wrong shape for its BTF type, a bad size or slot.
public struct ObjectConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }

    /// "unknown global variable 'x'" with up to three close names, or all names if there are few.
    static func unknown(_ what: String, _ name: String, among names: [String]) -> ObjectConfigurationError {
        guard !names.isEmpty else { return ObjectConfigurationError("unknown \(what) '\(name)': the object has none") }
        let close = names.map { (name: $0, distance: editDistance($0.lowercased(), name.lowercased())) }
            .filter { $0.distance <= max(2, name.count / 3) || $0.name.lowercased().contains(name.lowercased()) }
            .sorted { ($0.distance, $0.name) < ($1.distance, $1.name) }
            .prefix(3).map(\.name)
        if !close.isEmpty {
            return ObjectConfigurationError(
                "unknown \(what) '\(name)' (did you mean \(close.joined(separator: ", "))?)")
        }
        let listed =
            names.count <= 12 ? names.joined(separator: ", ") : names.prefix(12).joined(separator: ", ") + ", ..."
        return ObjectConfigurationError("unknown \(what) '\(name)' (the object has: \(listed))")
    }

    /// Levenshtein distance.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var current = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...max(1, b.count) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}

extension ObjectFile {
    /// A global variable of the object: where it lives and its BTF type.
    public struct GlobalVariable: Sendable, Equatable {
        public var name: String
        /// The global-data section (`.rodata`, `.bss`, ...).
        public var section: String
        public var offset: Int
        public var size: Int
        /// The variable's BTF type id (nil without BTF: then only integers and strings fit).
        public var typeID: UInt32?
        /// Whether the section is read-only to programs (`.rodata*`): settable only before load.
        public var isReadOnly: Bool
    }

    /// Every global variable, from the BTF `DATASEC`s (or, without BTF, the symbol table), in
    /// section order.
    public var globalVariables: [GlobalVariable] {
        var result: [GlobalVariable] = []
        for spec in globals {
            if let btf, let id = spec.btfTypeID, case .dataSection(_, _, let variables)? = btf.type(id) {
                for variable in variables {
                    guard case .variable(let name, let type, _)? = btf.type(variable.type) else { continue }
                    result.append(
                        GlobalVariable(
                            name: name, section: spec.name, offset: Int(variable.offset),
                            size: Int(variable.size), typeID: type, isReadOnly: spec.isReadOnly))
                }
            } else {
                for variable in spec.variables {
                    result.append(
                        GlobalVariable(
                            name: variable.name, section: spec.name, offset: Int(variable.offset),
                            size: Int(variable.size), typeID: nil, isReadOnly: spec.isReadOnly))
                }
            }
        }
        return result
    }

    /// The global variable `name` (or `section:name`).
    public func globalVariable(named name: String) throws(ObjectConfigurationError) -> GlobalVariable {
        let all = globalVariables
        var matches: [GlobalVariable]
        if let colon = name.lastIndex(of: ":"), name.hasPrefix(".") {
            let section = String(name[..<colon])
            let variable = String(name[name.index(after: colon)...])
            matches = all.filter { $0.section == section && $0.name == variable }
        } else {
            matches = all.filter { $0.name == name }
        }
        if matches.count > 1 {
            throw ObjectConfigurationError(
                "global variable '\(name)' is in \(matches.map(\.section).joined(separator: " and ")); name it as SECTION:NAME (\(matches[0].section):\(name))"
            )
        }
        guard let variable = matches.first else {
            throw .unknown("global variable", name, among: all.map(\.name))
        }
        return variable
    }

    /// Sets global variable `name` to `value`, encoded by the variable's BTF type, in the
    /// section's initial contents (what `VM.load(object:)` and `KernelObject` start from).
    /// Errors name the variable, its type, and what is wrong (out of range, wrong shape).
    public mutating func setGlobal(_ name: String, to value: JSONValue) throws(ObjectConfigurationError) {
        let variable = try globalVariable(named: name)
        guard let index = globals.firstIndex(where: { $0.name == variable.section }) else {
            throw ObjectConfigurationError("global variable '\(name)': section \(variable.section) is missing")
        }
        guard variable.offset >= 0, variable.size >= 0, variable.offset + variable.size <= globals[index].contents.count
        else {
            throw ObjectConfigurationError("global variable '\(name)' lies outside its section \(variable.section)")
        }
        var bytes = Array(globals[index].contents[variable.offset..<(variable.offset + variable.size)])
        if let btf, let typeID = variable.typeID {
            let encoder = BTFValueEncoder(btf: btf)
            try encoder.write(value, type: typeID, into: &bytes, bitOffset: 0, path: name)
        } else {
            try BTFValueEncoder.writeUntyped(value, into: &bytes, name: name)
        }
        globals[index].contents.replaceSubrange(variable.offset..<(variable.offset + variable.size), with: bytes)
    }

    /// Sets `max_entries` of map `name` (`OUTER.inner` for an inner-map template).
    public mutating func setMapSize(_ name: String, to size: Int) throws(ObjectConfigurationError) {
        guard size > 0, size <= Int(UInt32.max) else {
            throw ObjectConfigurationError("map size of \(name) must be 1...\(UInt32.max), not \(size)")
        }
        if let index = maps.firstIndex(where: { $0.name == name }) {
            maps[index].attributes.maxEntries = size
            return
        }
        if let index = maps.firstIndex(where: { $0.innerMap?.name == name }) {
            maps[index].innerMap?.attributes.maxEntries = size
            return
        }
        throw .unknown("map", name, among: maps.map(\.name) + maps.compactMap { $0.innerMap?.name })
    }

    /// Applies `configuration`: sizes first (slots are checked against them), then globals,
    /// program types and slots. Each step's errors name what they refer to.
    public mutating func configure(_ configuration: ObjectConfiguration) throws(ObjectConfigurationError) {
        for (name, size) in configuration.mapSizes.sorted(by: { $0.key < $1.key }) {
            try setMapSize(name, to: size)
        }
        for global in configuration.globals {
            try setGlobal(global.name, to: global.value)
        }
        let programNames = programs.map(\.name)
        for (name, type) in configuration.programTypes.sorted(by: { $0.key < $1.key }) {
            guard let index = programs.firstIndex(where: { $0.name == name }) else {
                throw .unknown("program", name, among: programNames)
            }
            programs[index].type = type
        }
        for (name, type) in configuration.attachTypes.sorted(by: { $0.key < $1.key }) {
            guard let index = programs.firstIndex(where: { $0.name == name }) else {
                throw .unknown("program", name, among: programNames)
            }
            programs[index].attachType = type
        }
        for slot in configuration.slots {
            try addSlot(slot)
        }
    }

    /// A copy with `configuration` applied.
    public func configured(_ configuration: ObjectConfiguration) throws(ObjectConfigurationError) -> ObjectFile {
        var copy = self
        try copy.configure(configuration)
        return copy
    }

    /// Adds (or replaces) an initial slot of a prog array or map of maps.
    mutating func addSlot(_ slot: ObjectConfiguration.Slot) throws(ObjectConfigurationError) {
        guard let index = maps.firstIndex(where: { $0.name == slot.map }) else {
            throw .unknown("map", slot.map, among: maps.map(\.name))
        }
        let spec = maps[index]
        let type = spec.attributes.type
        switch slot.target {
        case .program(let name):
            guard type == .progArray else {
                throw ObjectConfigurationError(
                    "map \(slot.map) is a \(type.cName), not a prog array (BPF_MAP_TYPE_PROG_ARRAY)")
            }
            guard program(named: name) != nil else { throw .unknown("program", name, among: programs.map(\.name)) }
        case .map(let name):
            guard type == .arrayOfMaps || type == .hashOfMaps else {
                throw ObjectConfigurationError("map \(slot.map) is a \(type.cName), not a map of maps")
            }
            guard map(named: name) != nil else { throw .unknown("map", name, among: maps.map(\.name)) }
        }
        let isArray = type == .progArray || type == .arrayOfMaps
        guard slot.index >= 0, slot.index <= Int(UInt32.max), !isArray || slot.index < spec.attributes.maxEntries else {
            throw ObjectConfigurationError(
                "index \(slot.index) is outside map \(slot.map) (max_entries \(spec.attributes.maxEntries))")
        }
        maps[index].initialSlots.removeAll { $0.index == slot.index }
        maps[index].initialSlots.append(MapSpec.Slot(index: slot.index, target: slot.target))
        maps[index].initialSlots.sort { $0.index < $1.index }
    }

    /// Why the object cannot be loaded as it is for lack of a map size (nil when every map has
    /// one): a map declared with `max_entries 0` is sized by its loader, and Mimic needs that
    /// size given (`ObjectConfiguration.mapSizes`, `--map-size NAME=N`). Perf event arrays are
    /// exempt: libbpf sizes them to the number of CPUs; so are the storage maps (cgroup, socket,
    /// inode, task storage), whose `max_entries` the kernel requires to be 0.
    public var unsizedMapProblem: String? {
        let exempt: [MapType] = [
            .perfEventArray, .cgroupStorage, .perCPUCgroupStorage, .skStorage, .inodeStorage, .taskStorage,
            .cgrpStorage,
        ]
        var unsized: [String] = []
        for spec in maps {
            if spec.attributes.maxEntries == 0, !exempt.contains(spec.attributes.type) { unsized.append(spec.name) }
            if let inner = spec.innerMap, inner.attributes.maxEntries == 0, !exempt.contains(inner.attributes.type) {
                unsized.append(inner.name)
            }
        }
        guard !unsized.isEmpty else { return nil }
        let s = unsized.count == 1 ? "" : "s"
        return
            "map\(s) \(unsized.joined(separator: ", ")) declare\(unsized.count == 1 ? "s" : "") max_entries 0, which the loader must set: "
            + "give a size with " + unsized.map { "--map-size \($0)=N" }.joined(separator: " ")
            + " (ObjectConfiguration.mapSizes in Swift)"
    }
}

extension ObjectConfiguration {
    /// Reads a configuration from JSON (for files that carry one, such as test files), with
    /// the names the CLI options use:
    ///
    /// ```json
    /// { "globals": { "blocked_port": 53, "mode": "MODE_DROP", "limits": { "low": 10 } },
    ///   "map_sizes": { "hits": 16, "outer.inner": 4 },
    ///   "program_types": { "xdp_vlan01_prog": "xdp" },
    ///   "attach_types": { "xdp_vlan01_prog": "xdp" },
    ///   "prog_array": [ { "map": "jump_table", "index": 2, "program": "stage_pass" } ],
    ///   "map_of_maps": [ { "map": "outer", "index": 0, "inner": "inner_a" } ] }
    /// ```
    ///
    /// Every member is optional; unknown members are errors naming their JSON path.
    public init(json field: JSONField) throws(JSONError) {
        self.init()
        let known = ["globals", "map_sizes", "program_types", "attach_types", "prog_array", "map_of_maps"]
        for (key, member) in try field.members() where !known.contains(key) {
            throw member.error("unknown member (known: \(known.joined(separator: ", ")))")
        }
        if !field["globals"].isMissing {
            for (name, value) in try field["globals"].members() {
                guard let json = value.value else { continue }
                globals.append(Global(name: name, value: json))
            }
        }
        if !field["map_sizes"].isMissing {
            for (name, size) in try field["map_sizes"].members() {
                let value = try size.integer(Int.self)
                guard value >= 1, value <= Int(UInt32.max) else {
                    throw size.error("expected 1...\(UInt32.max), got \(value)")
                }
                mapSizes[name] = value
            }
        }
        if !field["program_types"].isMissing {
            for (name, type) in try field["program_types"].members() {
                let text = try type.string()
                guard let value = text == "tc" ? ProgramType.schedCls : ProgramType(kernelName: text) else {
                    throw type.error("unknown program type \"\(text)\"")
                }
                programTypes[name] = value
            }
        }
        if !field["attach_types"].isMissing {
            for (name, type) in try field["attach_types"].members() {
                let text = try type.string()
                guard let value = AttachType(kernelName: text) else {
                    throw type.error("unknown attach type \"\(text)\"")
                }
                attachTypes[name] = value
            }
        }
        for (key, targetKey) in [("prog_array", "program"), ("map_of_maps", "inner")] {
            for entry in try field[key].optionalElements() {
                let index = try entry["index"].integer(Int.self)
                let name = try entry[targetKey].string()
                slots.append(
                    Slot(
                        map: try entry["map"].string(), index: index,
                        target: targetKey == "program" ? .program(name) : .map(name)))
            }
        }
    }
}
