import MimicCore
import MimicMemory

/// What `VM.load(object:)` asks of the emulator, as libbpf's `bpf_object__load` does it:
/// create the object's maps, expose its global data as array maps, and fill prog arrays and
/// maps of maps from their `.values = { ... }` initialisers.
extension LinuxEmulator {
    /// Creates a map an object file declares and returns its handle.
    ///
    /// The map is created from the spec's attributes (with its inner map template for maps of
    /// maps, and the `bpf_spin_lock` offset the BTF value type gives); the kernel's checks
    /// apply, and failures name the map. Map types Mimic does not emulate get placeholders
    /// (`createObjectMap(_:mapExtra:in:)`).
    public func createMap(_ spec: MapSpec, in vm: VM) throws(LoadError.Reason) -> UInt64 {
        try layOutSystem(in: vm)
        do {
            return try createObjectMap(spec.attributes, mapExtra: spec.mapExtra, in: vm).handle
        } catch {
            throw .unsupported("\(error) (\(error.errno))")
        }
    }

    /// The map object loading creates for a definition: the emulated map (`createMap(_:mapExtra:in:)`),
    /// or, for a map type the kernel defines but Mimic does not emulate (struct_ops, arena,
    /// ...), an `UnsupportedMap` placeholder: the object loads, and only a program that
    /// passes that map to a helper stops, naming it. The Linux plugin creates its maps here too.
    public func createObjectMap(_ attributes: MapAttributes, mapExtra: UInt64 = 0, in vm: VM) throws(MapError)
        -> any BPFMap
    {
        let type = attributes.type
        if !Self.emulates(type), type.kernelName != nil, type != .unspec {
            let map = UnsupportedMap(attributes: attributes, id: reserveMapID())
            register(map)
            return map
        }
        return try createMap(attributes, mapExtra: mapExtra, in: vm)
    }

    /// Exposes a global-data section as the single-element array map libbpf makes of it,
    /// named after the section (`.data`, `.rodata`, `.bss`, `.data.custom`; libbpf also prefixes
    /// the object's name, which Mimic does not know). The map's value *is* the section's
    /// storage at the address the programs already use, so `bpf_map_lookup_elem(&map, &zero)`
    /// and host reads through the map API see what programs wrote. Read-only sections are
    /// `BPF_F_RDONLY_PROG` and frozen (updates fail with `-EPERM`); empty sections get no map.
    public func adoptGlobalData(_ spec: GlobalDataSpec, storage: RegionStorage, address: UInt64, in vm: VM)
        throws(LoadError.Reason)
    {
        try layOutSystem(in: vm)
        guard spec.size > 0 else { return }
        let flags: MapFlags = spec.isReadOnly ? [.mmapable, .readOnlyProgram] : .mmapable
        let attributes = MapAttributes(
            name: spec.name, type: .array, keySize: 4, valueSize: spec.size, maxEntries: 1,
            flags: flags.rawValue)
        do {
            try Self.validate(attributes, cpuCount: configuration.cpuCount)
        } catch {
            throw .unsupported("global data \(error)")
        }
        let map = ArrayMap(
            globalData: attributes, id: reserveMapID(), storage: storage, address: address,
            readOnly: spec.isReadOnly)
        register(map)
    }

    /// Fills the initial slots an object gives its prog arrays (`.values = { [0] = &prog }`:
    /// the programs are loaded with `object.program(named:)`) and its maps of maps
    /// (`.values = { [0] = &inner }`: the object's maps by name). Errors name the map and slot.
    public func initializeMaps(of object: LoadedObject) throws(LoadError) {
        for spec in object.object.maps where !spec.initialSlots.isEmpty {
            func fail(_ detail: String) -> LoadError {
                LoadError(.unresolvedReference(detail), programName: "map \(spec.name)")
            }
            guard let handle = object.mapHandles[spec.name], let outer = map(handle: handle) else {
                throw fail("map \(spec.name) was not created")
            }
            for slot in spec.initialSlots {
                switch slot.target {
                case .program(let name):
                    guard let array = outer as? ProgramArrayMap else {
                        throw fail(
                            "\(spec.name)[\(slot.index)] names program \(name), but \(spec.name) is a \(spec.attributes.type.cName), not a prog array"
                        )
                    }
                    let program: Program
                    do {
                        program = try object.program(named: name)
                    } catch {
                        throw LoadError(
                            error.reason, pc: error.pc, instruction: error.instruction,
                            programName: "\(error.programName) (for \(spec.name)[\(slot.index)])")
                    }
                    if let errno = array.setProgram(program, at: slot.index) {
                        throw fail("cannot set \(spec.name)[\(slot.index)] to program \(name): \(errno)")
                    }
                case .map(let name):
                    guard let mapOfMaps = outer as? MapOfMaps else {
                        throw fail(
                            "\(spec.name)[\(slot.index)] names map \(name), but \(spec.name) is a \(spec.attributes.type.cName), not a map of maps"
                        )
                    }
                    guard let innerHandle = object.mapHandles[name], let inner = map(handle: innerHandle) else {
                        throw fail("\(spec.name)[\(slot.index)] names \(name), which is not a map of the object")
                    }
                    guard mapOfMaps.attributes.keySize == 4 else {
                        throw fail(
                            "initial values need 4-byte (index) keys; \(spec.name) has \(mapOfMaps.attributes.keySize)-byte keys"
                        )
                    }
                    if let errno = mapOfMaps.setInnerMap(
                        inner, forKey: littleEndianBytes(UInt32(truncatingIfNeeded: slot.index)))
                    {
                        throw fail(
                            "cannot set \(spec.name)[\(slot.index)] to map \(name): \(errno)"
                                + (errno == .invalid ? " (it does not match the inner map definition)" : ""))
                    }
                }
            }
        }
    }
}
