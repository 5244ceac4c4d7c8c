import Foundation
import MimicCore
import MimicLinux

/// An `ObjectFile` instantiated in the kernel, as libbpf's `bpf_object__load` would: its maps
/// created with `BPF_MAP_CREATE`, its global-data sections as single-element array maps holding
/// their initial contents (`.rodata*` read-only to programs and frozen), and its programs loaded
/// with their map references rewritten to the kernel's file descriptors.
///
/// The object's `lddw` references follow `ObjectFile`'s convention: `src = 5`
/// (`BPF_PSEUDO_MAP_IDX`, imm = map index) becomes `src = 1` (`BPF_PSEUDO_MAP_FD`, imm = fd);
/// `src = 6` (`BPF_PSEUDO_MAP_IDX_VALUE`, imm = index into `maps + globals`, next imm = offset)
/// becomes `src = 2` (`BPF_PSEUDO_MAP_VALUE`, imm = fd, next imm = offset).
public final class KernelObject {
    public let object: ObjectFile
    /// Kernel maps by map name, and global-data maps by section name (`.data`, `.rodata`).
    public private(set) var maps: [String: KernelMap] = [:]
    /// One entry per `maps + globals` pseudo index (nil for an empty section, which has no map).
    private var mapsByPseudoIndex: [KernelMap?] = []
    private var programs: [String: KernelProgram] = [:]
    /// The kernel's BTF, which names the kfuncs programs call (read from
    /// `/sys/kernel/btf/vmlinux` when the first kfunc call needs it, if not given).
    private var kernelBTF: BTF?
    /// The object's own BTF loaded into the kernel (`loadsObjectBTF`), which its maps and
    /// programs are created with.
    private var objectBTF: KernelFileDescriptor?

    /// Creates the object's maps and global data in the kernel and fills initial map-of-maps
    /// slots. Programs are loaded on demand with `program(named:)`.
    ///
    /// - Parameters:
    ///   - kconfig: the `.kconfig` section's bytes with the `__kconfig` externs' values (as
    ///     `VM.load(object:)` resolved them: `LoadedObject.globals[".kconfig"]`); required when
    ///     the object has such externs, so both sides see the same values.
    ///   - kernelBTF: the running kernel's BTF (`/sys/kernel/btf/vmlinux`), which gives each kfunc
    ///     call its BTF id (`BPF_PSEUDO_KFUNC_CALL`); nil reads `/sys/kernel/btf/vmlinux` when a
    ///     program calls kfuncs. `__ksym` variables are not supported.
    ///   - loadsObjectBTF: load the object's `.BTF` into the kernel (with libbpf's fixups,
    ///     `LoadableBTF`) and create the maps and load the programs with it, as libbpf does: what
    ///     a map value holding a `bpf_spin_lock`, `bpf_timer`, kptr, list or tree root needs, and a
    ///     program calling `bpf_obj_new`. Off by default: the kernel's verdicts recorded without
    ///     it (the verifier corpus) stay comparable.
    public init(object: ObjectFile, kconfig: [UInt8]? = nil, kernelBTF: BTF? = nil, loadsObjectBTF: Bool = false)
        throws(KernelError)
    {
        if let problem = object.byteOrderProblem { throw KernelError.invalidArgument(problem) }
        if let problem = object.unsizedMapProblem { throw KernelError.invalidArgument(problem) }
        self.object = object
        self.kernelBTF = kernelBTF
        if loadsObjectBTF {
            guard let loadable = try LoadableBTF(object: object) else {
                throw KernelError.invalidArgument("the object has no .BTF section to load")
            }
            objectBTF = try KernelBPF.loadBTF(loadable.bytes)
        }
        func btf(key: UInt32?, value: UInt32?) -> MapBTF? {
            guard let objectBTF, let value else { return nil }
            return MapBTF(descriptor: objectBTF, keyTypeID: key ?? 0, valueTypeID: value)
        }
        for spec in object.maps {
            var inner: KernelMap?
            if let template = spec.innerMap {
                inner = try KernelBPF.createMap(
                    Self.attributes(template), btf: btf(key: template.keyTypeID, value: template.valueTypeID))
            }
            let map = try KernelBPF.createMap(
                Self.attributes(spec), innerMap: inner, btf: btf(key: spec.keyTypeID, value: spec.valueTypeID))
            maps[spec.name] = map
            mapsByPseudoIndex.append(map)
        }
        for global in object.globals {
            guard global.size > 0 else {
                mapsByPseudoIndex.append(nil)
                continue
            }
            var contents = global.contents
            if global.name == ObjectExtern.kconfigSection {
                guard let kconfig, kconfig.count == global.size else {
                    throw KernelError.invalidArgument(
                        "the object's __kconfig externs need their values: pass the \(global.size) bytes of its resolved .kconfig section (kconfig:)"
                    )
                }
                contents = kconfig
            }
            let readOnlyProgram: UInt32 = 1 << 7 // BPF_F_RDONLY_PROG
            let map = try KernelBPF.createMap(
                MapAttributes(
                    name: global.name, type: .array, keySize: 4, valueSize: global.size, maxEntries: 1,
                    flags: global.isReadOnly ? readOnlyProgram : 0),
                btf: btf(key: nil, value: global.btfTypeID))
            try map.update(key: [0, 0, 0, 0], value: contents)
            if global.isReadOnly { try map.freeze() }
            maps[global.name] = map
            mapsByPseudoIndex.append(map)
        }
        for spec in object.maps {
            for slot in spec.initialSlots {
                guard case .map(let name) = slot.target else { continue }
                guard let outer = maps[spec.name], let inner = maps[name] else {
                    throw KernelError.invalidArgument("map \(spec.name) slot \(slot.index): map \(name) does not exist")
                }
                try outer.update(key: Self.u32(UInt32(slot.index)), value: Self.u32(UInt32(bitPattern: inner.fd)))
            }
        }
    }

    /// The attributes libbpf creates `spec`'s map with: a perf event array without
    /// `max_entries` gets one entry per possible CPU.
    static func attributes(_ spec: MapSpec) -> MapAttributes {
        var attributes = spec.attributes
        if attributes.type == .perfEventArray, attributes.maxEntries == 0 {
            attributes.maxEntries = KernelBPF.possibleCPUs
        }
        return attributes
    }

    /// The running kernel's BTF, `/sys/kernel/btf/vmlinux`.
    public static func runningKernelBTF() throws(KernelError) -> BTF {
        let path = "/sys/kernel/btf/vmlinux"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KernelError.unavailable("\(path) is not readable, so kfunc calls cannot be given their BTF ids")
        }
        do {
            return try BTF(bytes: [UInt8](data))
        } catch {
            throw KernelError.invalidArgument("\(path): \(error)")
        }
    }

    static func u32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    /// The program's instructions with map and global-data references rewritten to kernel fds.
    public func instructions(of program: ObjectProgram) throws(KernelError) -> [RawInstruction] {
        var code = program.instructions
        var slot = 0
        while slot < code.count {
            let instruction = code[slot]
            guard instruction.opcode == 0x18 else {
                slot += 1
                continue
            }
            guard slot + 1 < code.count else {
                throw KernelError.invalidArgument("program \(program.name), slot \(slot): lddw without its second slot")
            }
            switch instruction.source {
            case LoadImm64Kind.mapIndex.rawValue, LoadImm64Kind.mapIndexValue.rawValue:
                let index = Int(instruction.imm)
                guard index >= 0, index < mapsByPseudoIndex.count, let map = mapsByPseudoIndex[index] else {
                    throw KernelError.invalidArgument(
                        "program \(program.name), slot \(slot): lddw refers to map index \(index), which has no kernel map"
                    )
                }
                code[slot].source =
                    instruction.source == LoadImm64Kind.mapIndex.rawValue
                    ? LoadImm64Kind.mapFileDescriptor.rawValue : LoadImm64Kind.mapValue.rawValue
                code[slot].imm = map.fd
            case LoadImm64Kind.btfID.rawValue:
                throw KernelError.invalidArgument(
                    "program \(program.name), slot \(slot): kernel variables (__ksym) are not supported")
            default:
                break
            }
            slot += 2
        }
        for reference in program.references {
            guard case .external(let name) = reference.target else { continue }
            let slot = reference.instructionIndex
            guard slot < code.count, code[slot].opcode == 0x85 else {
                throw KernelError.invalidArgument(
                    "program \(program.name), slot \(slot): \(reference.target) (a __ksym variable) is not supported")
            }
            if kernelBTF == nil { kernelBTF = try Self.runningKernelBTF() }
            guard let kernelBTF else { continue }
            guard let id = kernelBTF.typeID(named: name, kind: .function), id <= UInt32(Int32.max) else {
                throw KernelError.invalidArgument(
                    "program \(program.name), slot \(slot): kfunc \(name) is not a function of the kernel's BTF")
            }
            code[slot].source = 2 // BPF_PSEUDO_KFUNC_CALL, of vmlinux (off 0)
            code[slot].offset = 0
            code[slot].imm = Int32(id)
        }
        return code
    }

    /// The program named `name`, loaded into the kernel (once, then cached). Prog arrays that
    /// list it in their initial slots get its fd.
    public func program(named name: String) throws(KernelError) -> KernelProgram {
        if let loaded = programs[name] { return loaded }
        guard let source = object.program(named: name) else {
            let names = object.programs.map(\.name).joined(separator: ", ")
            throw KernelError.invalidArgument(
                "the object has no program named '\(name)' (programs: \(names.isEmpty ? "none" : names))")
        }
        // libbpf loads SEC("syscall") programs sleepable, which the kernel requires of them.
        let sleepable: UInt32 = 1 << 4 // BPF_F_SLEEPABLE
        let loaded = try KernelBPF.loadProgram(
            try instructions(of: source), type: source.type, license: object.license ?? "GPL",
            name: name, expectedAttachType: source.attachType ?? AttachType(rawValue: 0),
            flags: source.type == .syscall ? sleepable : 0, maps: Array(maps.values),
            attachBTFID: try attachBTFID(of: source), btf: try programBTF(of: source))
        programs[name] = loaded
        for spec in object.maps {
            for slot in spec.initialSlots {
                guard case .program(let target) = slot.target, target == name, let array = maps[spec.name] else {
                    continue
                }
                try array.update(key: Self.u32(UInt32(slot.index)), value: Self.u32(UInt32(bitPattern: loaded.fd)))
            }
        }
        return loaded
    }

    /// The vmlinux BTF id a tracing or LSM program attaches to (`ObjectProgram.kernelAttachTarget`);
    /// 0 for other programs. A target the kernel's BTF lacks is an error naming it.
    func attachBTFID(of program: ObjectProgram) throws(KernelError) -> UInt32 {
        guard let target = program.kernelAttachTarget else { return 0 }
        let (name, btfKind) = (target.name, target.kind)
        if kernelBTF == nil { kernelBTF = try Self.runningKernelBTF() }
        guard let id = kernelBTF?.typeID(named: name, kind: btfKind) else {
            throw KernelError.invalidArgument(
                "program \(program.name) attaches to \(name), which the kernel's BTF does not have")
        }
        return id
    }

    /// The object's BTF and each function's `FUNC` for loading `program`, when the object's BTF
    /// is loaded (`loadsObjectBTF`); nil otherwise.
    func programBTF(of program: ObjectProgram) throws(KernelError) -> ProgramBTF? {
        guard let objectBTF else { return nil }
        var functions: [(instructionIndex: UInt32, typeID: UInt32)] = []
        for function in program.functions {
            guard let id = object.btf?.typeID(named: function.name, kind: .function) else {
                throw KernelError.invalidArgument(
                    "program \(program.name): function \(function.name) has no FUNC in the object's BTF")
            }
            functions.append((UInt32(function.instructionIndex), id))
        }
        return ProgramBTF(descriptor: objectBTF, functions: functions)
    }

    /// Loads every program other programs can tail-call (those in prog arrays' initial slots).
    public func loadTailCallTargets() throws(KernelError) {
        for spec in object.maps {
            for slot in spec.initialSlots {
                if case .program(let target) = slot.target { _ = try program(named: target) }
            }
        }
    }
}
