/// A map an object file defines, from the legacy `maps` section (`struct bpf_map_def`) or from
/// BTF-defined `.maps`.
public struct MapSpec: Sendable, Equatable {
    /// Where a map was defined.
    public enum Source: Sendable, Equatable {
        /// `struct bpf_map_def SEC("maps")`.
        case legacy
        /// A BTF-described variable in `.maps`.
        case btf
        /// The inner-map template of a map-in-map (the `values` member of its outer map).
        case innerTemplate
    }

    /// An initial value of one slot of a prog array or map-in-map (`.values = { [1] = &x }`).
    public struct Slot: Sendable, Equatable {
        public enum Target: Sendable, Equatable {
            /// A program, by its function name (prog arrays).
            case program(String)
            /// A map, by name (maps of maps).
            case map(String)
        }
        public var index: Int
        public var target: Target

        public init(index: Int, target: Target) {
            self.index = index
            self.target = target
        }
    }

    /// What the map is: the `BPF_MAP_CREATE` attributes, with the BTF value's `bpf_spin_lock`
    /// offset. Its `innerMap` is always `innerMap?.attributes`.
    public var attributes: MapAttributes {
        didSet { attributes.innerMap = innerMap?.attributes }
    }
    /// `LIBBPF_PIN_NONE` 0 or `LIBBPF_PIN_BY_NAME` 1.
    public var pinning: UInt32
    public var numaNode: UInt32
    public var mapExtra: UInt64
    /// BTF type ids of key and value in `ObjectFile.btf`, when the map declares them (`__type`).
    public var keyTypeID: UInt32?
    public var valueTypeID: UInt32?
    /// Initial slot values from relocations in `.maps`, ordered by index.
    public var initialSlots: [Slot]
    public var source: Source
    /// The ELF section and the byte offset of the definition in it.
    public var sectionName: String
    public var sectionOffset: UInt64
    /// Boxed so `MapSpec` can contain a `MapSpec`.
    private var innerStorage: [MapSpec]

    /// For a map of maps: the template every inner map must match, as the object declares it.
    /// Setting it also sets `attributes.innerMap`.
    public var innerMap: MapSpec? {
        get { innerStorage.first }
        set {
            innerStorage = newValue.map { [$0] } ?? []
            attributes.innerMap = newValue?.attributes
        }
    }

    /// The map's name (`attributes.name`).
    public var name: String { attributes.name }

    /// A spec with `attributes` (whose inner map is replaced by `innerMap`'s attributes).
    public init(
        attributes: MapAttributes, pinning: UInt32 = 0, numaNode: UInt32 = 0, mapExtra: UInt64 = 0,
        keyTypeID: UInt32? = nil, valueTypeID: UInt32? = nil, initialSlots: [Slot] = [], innerMap: MapSpec? = nil,
        source: Source, sectionName: String, sectionOffset: UInt64
    ) {
        var attributes = attributes
        attributes.innerMap = innerMap?.attributes
        self.attributes = attributes
        self.pinning = pinning
        self.numaNode = numaNode
        self.mapExtra = mapExtra
        self.keyTypeID = keyTypeID
        self.valueTypeID = valueTypeID
        self.initialSlots = initialSlots
        self.source = source
        self.sectionName = sectionName
        self.sectionOffset = sectionOffset
        self.innerStorage = innerMap.map { [$0] } ?? []
    }
}

/// A global-data section (`.data`, `.rodata`, `.bss`, `.data.*`, `.rodata.*`), which libbpf turns
/// into a single-element array map whose value is the section's contents.
public struct GlobalDataSpec: Sendable, Equatable {
    /// A named variable in the section (from the symbol table).
    public struct Variable: Sendable, Equatable {
        public var name: String
        public var offset: UInt64
        public var size: UInt64

        public init(name: String, offset: UInt64, size: UInt64) {
            self.name = name
            self.offset = offset
            self.size = size
        }
    }

    /// The section name, which is also the map's name (`.rodata.str1.1`).
    public var name: String
    /// The initial contents; zeros for `.bss`.
    public var contents: [UInt8]
    public var size: Int { contents.count }
    /// `.rodata*` sections (and any section without `SHF_WRITE`) are read-only to programs.
    public var isReadOnly: Bool
    /// The variables the symbol table places in the section, by offset.
    public var variables: [Variable]
    /// The BTF `DATASEC` describing the section, if the object has one.
    public var btfTypeID: UInt32?

    public init(name: String, contents: [UInt8], isReadOnly: Bool, variables: [Variable] = [], btfTypeID: UInt32? = nil)
    {
        self.name = name
        self.contents = contents
        self.isReadOnly = isReadOnly
        self.variables = variables
        self.btfTypeID = btfTypeID
    }
}

/// What an instruction of a program refers to, before an emulator gives it an address.
public enum ReferenceTarget: Sendable, Equatable, CustomStringConvertible {
    /// A map, by name (an index into `ObjectFile.maps`).
    case map(String)
    /// A byte in a global-data section.
    case globalData(section: String, offset: UInt64)
    /// A symbol the object does not define (`__ksym`, `__kconfig`, kfuncs); left unresolved.
    case external(String)

    public var description: String {
        switch self {
        case .map(let name): "map \(name)"
        case .globalData(let section, let offset): "\(section)+\(offset)"
        case .external(let name): "extern \(name)"
        }
    }
}

/// One reference of a program: the instruction slot and what it refers to.
public struct ObjectReference: Sendable, Equatable {
    public var instructionIndex: Int
    public var target: ReferenceTarget
}

/// A source line for an instruction, from `.BTF.ext` line info.
public struct SourceLineInfo: Sendable, Equatable {
    /// The slot in `ObjectProgram.instructions`.
    public var instructionIndex: Int
    public var file: String
    public var line: Int
    public var column: Int
    /// The text of the line (as the compiler saw it; may be empty).
    public var sourceText: String
}

/// A function placed in a program: its entry or a sub-program linked in for a call.
public struct ObjectFunction: Sendable, Equatable {
    public var name: String
    /// The ELF section the function came from.
    public var sectionName: String
    /// The first slot of the function in `ObjectProgram.instructions`.
    public var instructionIndex: Int
    public var instructionCount: Int
}

/// One program of an object: an entry function with its sub-programs linked in and its
/// references rewritten, ready for `VM.load`.
public struct ObjectProgram: Sendable {
    /// The function symbol's name.
    public var name: String
    public var sectionName: String
    public var type: ProgramType
    /// The `expected_attach_type` libbpf loads the program with (from the section name, e.g.
    /// `BPF_CGROUP_INET_INGRESS` for `cgroup_skb/ingress`), nil when the section implies none.
    public var attachType: AttachType? = nil
    /// The entry function followed by every sub-program it calls; call immediates, pseudo-function
    /// `lddw`s and map / global-data `lddw`s are rewritten (see `ObjectFile`).
    public var instructions: [RawInstruction]
    /// Every map, global-data and external reference, by instruction slot.
    public var references: [ObjectReference]
    /// Source lines, by instruction slot (sorted; not every slot has one).
    public var lineInfo: [SourceLineInfo]
    /// The functions placed in `instructions`, the entry first.
    public var functions: [ObjectFunction]

    /// The source line in effect at `instructionIndex` (the last line info at or before it).
    public func sourceLine(at instructionIndex: Int) -> SourceLineInfo? { lineInfo.line(at: instructionIndex) }

    /// What a BTF-typed tracing or LSM program attaches to, by its name in the kernel's BTF, as
    /// libbpf finds it from the section (`find_attach_btf_id`): the function of `fentry/NAME`,
    /// `fexit/NAME` and `fmod_ret/NAME` (and their sleepable `.s` forms), the typedef
    /// `btf_trace_NAME` of `tp_btf/NAME`, the function `bpf_lsm_NAME` of `lsm/NAME` and
    /// `bpf_iter_NAME` of `iter/NAME`. Nil for other programs. The kernel types such a program's
    /// context from the target's prototype (`btf_ctx_access`).
    public var kernelAttachTarget: KernelAttachTarget? {
        guard type == .tracing || type == .lsm else { return nil }
        let parts = sectionName.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else { return nil }
        let kind = parts[0].hasSuffix(".s") ? String(parts[0].dropLast(2)) : parts[0]
        switch kind {
        case "fentry", "fexit", "fmod_ret": return KernelAttachTarget(name: parts[1], kind: .function)
        case "tp_btf": return KernelAttachTarget(name: "btf_trace_" + parts[1], kind: .typedef)
        case "lsm", "lsm_cgroup": return KernelAttachTarget(name: "bpf_lsm_" + parts[1], kind: .function)
        case "iter": return KernelAttachTarget(name: "bpf_iter_" + parts[1], kind: .function)
        default: return nil
        }
    }
}

/// A name in the kernel's BTF that a program attaches to (`ObjectProgram.kernelAttachTarget`).
public struct KernelAttachTarget: Sendable, Hashable {
    /// The type's name: a function (`do_unlinkat`, `bpf_lsm_file_open`, `bpf_iter_task`) or the
    /// typedef of a BTF-enabled tracepoint (`btf_trace_sched_switch`).
    public var name: String
    public var kind: BTF.Kind

    public init(name: String, kind: BTF.Kind) {
        self.name = name
        self.kind = kind
    }
}

extension [SourceLineInfo] {
    /// The line in effect at `instructionIndex`: the last entry at or before it. The entries must
    /// be sorted by instruction index, as `.BTF.ext` line info is.
    public func line(at instructionIndex: Int) -> SourceLineInfo? {
        var low = 0
        var high = count
        while low < high {
            let mid = (low + high) / 2
            if self[mid].instructionIndex <= instructionIndex { low = mid + 1 } else { high = mid }
        }
        return low > 0 ? self[low - 1] : nil
    }
}
