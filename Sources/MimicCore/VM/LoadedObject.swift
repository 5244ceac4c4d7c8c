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
    /// Global data, by section name.
    public let globals: [String: GlobalData]

    /// Loaded programs by name; guarded by `lock` (hence `@unchecked Sendable`).
    private let lock = Mutex(())
    private var loaded: [String: Program] = [:]

    init(object: ObjectFile, vm: VM, mapHandles: [String: UInt64], globals: [String: GlobalData]) {
        self.object = object
        self.vm = vm
        self.mapHandles = mapHandles
        self.globals = globals
    }

    /// The program named `name`, loaded into the VM with its map and global references bound
    /// (loaded once, then cached).
    public func program(named name: String) throws(LoadError) -> Program {
        if let program = lock.withLock({ _ in loaded[name] }) { return program }
        guard let source = object.program(named: name) else {
            let names = object.programs.map(\.name).joined(separator: ", ")
            throw LoadError(.unresolvedReference("the object has no program named '\(name)' (programs: \(names.isEmpty ? "none" : names))"),
                            programName: name)
        }
        let program = try vm.load(bind(source), name: name, lineInfo: source.lineInfo)
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
    /// 64-bit constant: the map's handle, or the address of the global byte.
    func bind(_ program: ObjectProgram) throws(LoadError) -> [RawInstruction] {
        var instructions = program.instructions
        for reference in program.references {
            let slot = reference.instructionIndex
            func fail(_ detail: String) -> LoadError {
                LoadError(.unresolvedReference(detail), pc: slot, instruction: instructions[slot], programName: program.name)
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
                throw fail("extern \(name) (__ksym / __kconfig / kfunc) is not supported")
            }
            instructions[slot].source = 0
            instructions[slot].imm = Int32(truncatingIfNeeded: value)
            instructions[slot + 1].imm = Int32(truncatingIfNeeded: value >> 32)
        }
        return instructions
    }
}

extension VM {
    /// Instantiates an object file: maps its global data (read-only for `.rodata*`) into the
    /// VM's shared memory, asks the emulator to create its maps, then lets the emulator fill
    /// initial map slots (prog arrays, maps of maps). Programs are loaded on demand with
    /// `LoadedObject.program(named:)`.
    public func load(object: ObjectFile) throws(LoadError) -> LoadedObject {
        let objectName = "object"
        var globals: [String: LoadedObject.GlobalData] = [:]
        for spec in object.globals {
            let storage: RegionStorage
            do {
                storage = try RegionStorage(count: spec.contents.count, charging: memoryBudget,
                                            for: "global data \(spec.name)")
            } catch {
                throw LoadError(.unsupported(error.description), programName: objectName)
            }
            storage.write(spec.contents, at: 0)
            do {
                let address = try mapShared(storage, name: spec.name, kind: spec.isReadOnly ? .readOnly : .plain)
                globals[spec.name] = LoadedObject.GlobalData(spec: spec, address: address, storage: storage)
                try emulator?.adoptGlobalData(spec, storage: storage, address: address, in: self)
            } catch let error as LoadError.Reason {
                throw LoadError(error, programName: objectName)
            } catch {
                throw LoadError(.unresolvedReference("cannot map global data \(spec.name): \(error)"), programName: objectName)
            }
        }

        var handles: [String: UInt64] = [:]
        for spec in object.maps {
            guard let emulator else {
                throw LoadError(.unresolvedReference("map \(spec.name) needs an emulator that provides maps"),
                                programName: objectName)
            }
            do {
                handles[spec.name] = try emulator.createMap(spec, in: self)
            } catch {
                throw LoadError(error, programName: "map \(spec.name)")
            }
        }

        let loaded = LoadedObject(object: object, vm: self, mapHandles: handles, globals: globals)
        if let emulator, object.maps.contains(where: { !$0.initialSlots.isEmpty }) {
            try emulator.initializeMaps(of: loaded)
        }
        return loaded
    }
}
