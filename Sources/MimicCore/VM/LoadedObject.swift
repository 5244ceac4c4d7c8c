import MimicMemory
import Synchronization

/// An object file instantiated in a VM: its maps created by the emulator, its global data mapped
/// into the VM's shared memory, and its programs loadable by name — what libbpf's
/// `bpf_object__load` does.
///
/// Every program of the object shares the same maps and global data, as in the kernel. Create
/// it with `VM.load(object:)`.
public final class LoadedObject: @unchecked Sendable {
    /// Global data mapped into the VM: `.data`, `.rodata`, `.bss` and their named variants.
    public struct GlobalData: Sendable {
        public let spec: GlobalDataSpec
        /// The VM address of the section's first byte.
        public let address: UInt64
        /// The bytes, shared by every process: read them after a run to see what programs wrote.
        public let storage: RegionStorage
    }

    public let object: ObjectFile
    public let vm: VM
    /// Map handles (what an `lddw` of the map yields), by map name.
    public let mapHandles: [String: UInt64]
    /// Global data, by section name (`.kconfig` holds the resolved `__kconfig` externs).
    public let globals: [String: GlobalData]
    /// The address of each `__ksym` variable the map provider resolved, by name (weak ones it
    /// left out read as 0), and of each provided kfunc whose address a program takes
    /// (`bpf_ksym_exists`).
    public let ksymAddresses: [String: UInt64]

    /// Loaded programs by name; guarded by `lock` (hence `@unchecked Sendable`).
    private let lock = Mutex(())
    private var loaded: [String: Program] = [:]

    init(
        object: ObjectFile, vm: VM, mapHandles: [String: UInt64], globals: [String: GlobalData],
        ksymAddresses: [String: UInt64]
    ) {
        self.object = object
        self.vm = vm
        self.mapHandles = mapHandles
        self.globals = globals
        self.ksymAddresses = ksymAddresses
    }

    /// The program named `name`, loaded into the VM with its map and global references bound
    /// (loaded once, then cached).
    public func program(named name: String) throws(LoadError) -> Program {
        if let program = lock.withLock({ _ in loaded[name] }) { return program }
        guard let source = object.program(named: name) else {
            let names = object.programs.map(\.name).joined(separator: ", ")
            throw LoadError(
                .unresolvedReference(
                    "the object has no program named '\(name)' (programs: \(names.isEmpty ? "none" : names))"),
                programName: name)
        }
        let (instructions, kfuncNames) = try bind(source)
        let weak = Set(object.externs.filter { $0.kind == .kfunc && $0.isWeak }.map(\.name))
        let program = try vm.load(
            instructions, name: name, lineInfo: source.lineInfo, kfuncNames: kfuncNames,
            weakKfuncNames: weak.intersection(kfuncNames), objectBTF: object.btf)
        return lock.withLock { _ in
            if let existing = loaded[name] { return existing }
            loaded[name] = program
            return program
        }
    }

    /// Every program of the object, loaded.
    public func allPrograms() throws(LoadError) -> [Program] {
        var programs: [Program] = []
        for source in object.programs { programs.append(try program(named: source.name)) }
        return programs
    }

    /// The program's instructions with every map and global-data `lddw` turned into a plain
    /// 64-bit constant (the map's handle, or the address of the global byte), and every call of
    /// an extern function into a kfunc call (`BPF_PSEUDO_KFUNC_CALL`) whose imm indexes the
    /// returned names, for `VM.load(_:name:lineInfo:kfuncNames:)` to bind by name.
    func bind(_ program: ObjectProgram) throws(LoadError) -> (instructions: [RawInstruction], kfuncNames: [String]) {
        var instructions = program.instructions
        var kfuncNames: [String] = []
        for reference in program.references {
            let slot = reference.instructionIndex
            func fail(_ detail: String) -> LoadError {
                LoadError(
                    .unresolvedReference(detail), pc: slot, instruction: instructions[slot], programName: program.name)
            }
            if case .external(let name) = reference.target, slot < instructions.count, instructions[slot].opcode == 0x85
            {
                let index = kfuncNames.firstIndex(of: name) ?? kfuncNames.count
                if index == kfuncNames.count { kfuncNames.append(name) }
                instructions[slot].source = 2
                instructions[slot].imm = Int32(index)
                continue
            }
            guard slot + 1 < instructions.count, instructions[slot].opcode == 0x18 else {
                throw fail("\(reference.target) is not referenced by an lddw")
            }
            let value: UInt64
            switch reference.target {
            case .map(let name):
                guard let handle = mapHandles[name] else { throw fail("map \(name) was not created") }
                value = handle
            case .globalData(let section, let offset):
                guard let global = globals[section] else { throw fail("global data \(section) was not mapped") }
                guard offset <= UInt64(global.spec.size) else {
                    throw fail("offset \(offset) is outside \(section) (\(global.spec.size) bytes)")
                }
                value = global.address &+ offset
            case .external(let name):
                if let kfunc = object.externs.first(where: { $0.name == name && $0.kind == .kfunc }) {
                    // bpf_ksym_exists(kfunc): the address of the emulated kernel function.
                    if let address = ksymAddresses[name] {
                        value = address
                    } else if kfunc.isWeak {
                        value = 0
                    } else {
                        throw fail("kfunc \(name) is not provided by the emulator")
                    }
                    instructions[slot].source = 0
                    instructions[slot].imm = Int32(truncatingIfNeeded: value)
                    instructions[slot + 1].imm = Int32(truncatingIfNeeded: value >> 32)
                    continue
                }
                guard let ksym = object.externs.first(where: { $0.name == name && $0.isVariable }) else {
                    throw fail("extern variable \(name) is not described by the object's BTF as __ksym or __kconfig")
                }
                if let address = ksymAddresses[name] {
                    value = address
                } else if ksym.isWeak {
                    value = 0 // an unresolved weak ksym: libbpf leaves its address 0
                } else {
                    throw fail("extern \(name) (__ksym) was not resolved")
                }
            }
            instructions[slot].source = 0
            instructions[slot].imm = Int32(truncatingIfNeeded: value)
            instructions[slot + 1].imm = Int32(truncatingIfNeeded: value >> 32)
        }
        return (instructions, kfuncNames)
    }
}

extension VM {
    /// Instantiates an object file: maps its global data (read-only for `.rodata*`) into the
    /// VM's shared memory, asks the map provider to create its maps, then lets it fill
    /// initial map slots (prog arrays, maps of maps). Programs are loaded on demand with
    /// `LoadedObject.program(named:)`. Big-endian objects (`-target bpfeb`) are refused
    /// (`ObjectFile.byteOrderProblem`), and so are objects with maps of `max_entries 0` not yet
    /// sized (`ObjectFile.unsizedMapProblem`; configure them first with
    /// `ObjectFile.configure(_:)`).
    public func load(object: ObjectFile) throws(LoadError) -> LoadedObject {
        let objectName = "object"
        if let problem = object.byteOrderProblem {
            throw LoadError(.unsupported(problem), programName: objectName)
        }
        if let problem = object.unsizedMapProblem {
            throw LoadError(.unsupported(problem), programName: objectName)
        }
        // Extern variables first (libbpf's bpf_object__resolve_externs): the map provider fills
        // the .kconfig section and gives each __ksym variable an address.
        var kconfig: [UInt8]?
        var ksymAddresses: [String: UInt64] = [:]
        let externVariables = object.externs.filter(\.isVariable)
        // A kfunc has an address where a program takes it (bpf_ksym_exists): a one-byte
        // read-only region standing for the kernel function, when the emulator provides it.
        let takenKfuncs = Set(
            object.programs.flatMap { program in
                program.references.compactMap { reference -> String? in
                    guard case .external(let name) = reference.target,
                        reference.instructionIndex < program.instructions.count,
                        program.instructions[reference.instructionIndex].opcode == 0x18
                    else { return nil }
                    return name
                }
            })
        for external in object.externs where external.kind == .kfunc && takenKfuncs.contains(external.name) {
            guard emulator?.kfunc(named: external.name) != nil else { continue }
            do {
                ksymAddresses[external.name] = try mapShared(
                    RegionStorage(count: 1), name: "kfunc \(external.name)", kind: .readOnly)
            } catch {
                throw LoadError(
                    .unresolvedReference("cannot map kfunc \(external.name): \(error)"), programName: objectName)
            }
        }
        if !externVariables.isEmpty {
            guard let mapProvider else {
                let names = externVariables.map(\.name).joined(separator: ", ")
                throw LoadError(
                    .unresolvedReference("extern variables \(names) \(noMapProvider)"), programName: objectName)
            }
            var contents = object.global(named: ObjectExtern.kconfigSection)?.contents ?? []
            do {
                ksymAddresses.merge(try mapProvider.resolveExterns(externVariables, kconfig: &contents, in: self)) {
                    $1
                }
            } catch {
                throw LoadError(error, programName: objectName)
            }
            kconfig = contents
        }

        var globals: [String: LoadedObject.GlobalData] = [:]
        for var spec in object.globals {
            if spec.name == ObjectExtern.kconfigSection, let kconfig {
                guard kconfig.count == spec.size else {
                    throw LoadError(
                        .unresolvedReference(
                            "the map provider changed the size of .kconfig (\(spec.size) to \(kconfig.count) bytes)"),
                        programName: objectName)
                }
                spec.contents = kconfig
            }
            let storage: RegionStorage
            do {
                storage = try RegionStorage(
                    count: spec.contents.count, charging: memoryBudget,
                    for: "global data \(spec.name)")
            } catch {
                throw LoadError(.unsupported(error.description), programName: objectName)
            }
            storage.write(spec.contents, at: 0)
            do {
                let address = try mapShared(storage, name: spec.name, kind: spec.isReadOnly ? .readOnly : .plain)
                globals[spec.name] = LoadedObject.GlobalData(spec: spec, address: address, storage: storage)
                try mapProvider?.adoptGlobalData(spec, storage: storage, address: address, in: self)
            } catch let error as LoadError.Reason {
                throw LoadError(error, programName: objectName)
            } catch {
                throw LoadError(
                    .unresolvedReference("cannot map global data \(spec.name): \(error)"), programName: objectName,
                    cause: error)
            }
        }

        var handles: [String: UInt64] = [:]
        for spec in object.maps {
            guard let mapProvider else {
                throw LoadError(.unresolvedReference("map \(spec.name) \(noMapProvider)"), programName: objectName)
            }
            do {
                handles[spec.name] = try mapProvider.createMap(spec, in: self)
            } catch {
                throw LoadError(error, programName: "map \(spec.name)")
            }
        }

        let loaded = LoadedObject(
            object: object, vm: self, mapHandles: handles, globals: globals, ksymAddresses: ksymAddresses)
        if let mapProvider, object.maps.contains(where: { !$0.initialSlots.isEmpty }) {
            try mapProvider.initializeMaps(of: loaded)
        }
        return loaded
    }
}
