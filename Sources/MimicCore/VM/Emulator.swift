import MimicMemory

/// What a helper function asks the interpreter to do next.
public enum HelperResult: Sendable {
    /// Continue after the call with this value in R0.
    case value(UInt64)
    /// Stop the program now, with this value in R0 (e.g. the conformance `unwind` helper).
    case exit(UInt64)
    /// Replace the running program with another one (`bpf_tail_call`); R1 keeps its value.
    case tailCall(Program)
}

/// A helper function the program can `call`.
///
/// Helpers read their arguments from R1–R5 of the process (`process.argument(1)`), access
/// VM memory through `process.memory`, and return a `HelperResult`. A failure stops the
/// program with an error that names the helper.
public struct Helper: Sendable {
    public typealias Function = @Sendable (Process) throws(HelperFailure) -> HelperResult

    public let id: Int32
    public let name: String
    public let function: Function
    /// A C-ABI entry for the common calls of this helper, which compiled code calls directly
    /// and the interpreter before `function` (`DirectHelper`); nil: always `function`.
    public var direct: DirectHelper?
    /// For a `bpf_map_lookup_elem`: the layout of the array map a handle names, which compiled
    /// code then looks up inline (`InlineArrayLookup`); nil for every other map or helper.
    public var inlineArrayLookup: (@Sendable (_ mapHandle: UInt64) -> InlineArrayLookup?)?
    /// For a `bpf_map_lookup_elem`: how compiled code calls the search of the hash map a handle
    /// names directly (`InlineHashLookup`); nil for every other map or helper.
    public var inlineHashLookup: (@Sendable (_ mapHandle: UInt64) -> InlineHashLookup?)?
    /// A result compiled code computes in place of calling this helper (`InlineHelper`); nil:
    /// compiled code calls it.
    public var inline: InlineHelper?

    public init(id: Int32, name: String, function: @escaping Function) {
        self.id = id
        self.name = name
        self.function = function
    }
}

/// An instruction an emulator defines for an opcode byte the instruction set leaves undefined:
/// vendor or experimental instructions (the Go mimic's `Emulator.CustomInstruction`).
///
/// The loader asks the emulator (`Emulator.customInstruction(opcode:)`) only about opcode bytes
/// no instruction form uses, so every other invalid slot is still refused. A custom instruction
/// is one slot; its register fields must name r0–r10, its offset and immediate are the
/// handler's to interpret. It runs through the interpreter's helper-call path: it counts as one
/// instruction (exact budget), works in `step()`, and sees the process's registers
/// (`process.registers`) and memory (`process.memory`). R0 is whatever the handler leaves in it.
public struct CustomInstruction: Sendable {
    /// Executes the instruction `instruction` (the slot as loaded) in `process`. A failure stops
    /// the program with `ExecutionError.Code.customInstructionFailed`.
    public typealias Function =
        @Sendable (_ instruction: RawInstruction, _ process: Process) throws(HelperFailure) -> Void

    public let opcode: UInt8
    /// A name for messages and traces (`vendor.popcnt`).
    public let name: String
    public let function: Function

    public init(opcode: UInt8, name: String, function: @escaping Function) {
        self.opcode = opcode
        self.name = name
        self.function = function
    }

    /// The helper id a custom instruction's helper-table entry carries (never a helper's).
    static let helperID = Int32.min

    /// The helper-table entry that runs this instruction for the slot `raw`: R0 is kept.
    func helper(for raw: RawInstruction) -> Helper {
        let function = function
        return Helper(id: Self.helperID, name: name) { process throws(HelperFailure) in
            try function(raw, process)
            return .value(process.registers.storage[0])
        }
    }
}

/// The kinds of 64-bit immediate load (`lddw`), by its source register field.
///
/// Everything but `.immediate` and `.function` is resolved by the emulator (maps, BTF ids).
public enum LoadImm64Kind: UInt8, Sendable, CaseIterable {
    /// `BPF_PSEUDO_MAP_FD`: the map with this file descriptor.
    case mapFileDescriptor = 1
    /// `BPF_PSEUDO_MAP_VALUE`: address of a map value (global data) plus an offset.
    case mapValue = 2
    /// `BPF_PSEUDO_BTF_ID`: a kernel variable by BTF id.
    case btfID = 3
    /// `BPF_PSEUDO_FUNC`: the address of a program-local function (for `callx` and callbacks).
    case function = 4
    /// `BPF_PSEUDO_MAP_IDX`: the map with this index in the program's map array.
    case mapIndex = 5
    /// `BPF_PSEUDO_MAP_IDX_VALUE`: address of a value of the map with this index.
    case mapIndexValue = 6
    /// A plain 64-bit constant.
    case immediate = 0

    /// The C spelling.
    public var cName: String {
        switch self {
        case .immediate: "0"
        case .mapFileDescriptor: "BPF_PSEUDO_MAP_FD"
        case .mapValue: "BPF_PSEUDO_MAP_VALUE"
        case .btfID: "BPF_PSEUDO_BTF_ID"
        case .function: "BPF_PSEUDO_FUNC"
        case .mapIndex: "BPF_PSEUDO_MAP_IDX"
        case .mapIndexValue: "BPF_PSEUDO_MAP_IDX_VALUE"
        }
    }
}

/// What a VM's programs can call, and per-process setup: helper functions, kfuncs, and the
/// state each process keeps.
///
/// `MimicLinux` implements it for the Linux kernel's helpers; the conformance test helpers are
/// another implementation. Helpers are resolved once, when a program is loaded, into a table the
/// interpreter indexes directly. An emulator that also creates the maps and global data programs
/// refer to conforms to `MapProvider`.
public protocol Emulator: AnyObject, Sendable {
    /// A short name for messages (`linux`, `conformance`).
    var name: String { get }

    /// The helper with this id, or nil if the emulator does not provide it. Called at load time.
    func helper(id: Int32) -> Helper?

    /// The name of a helper id this emulator knows of but does not implement, for error messages.
    func helperName(id: Int32) -> String?

    /// The ids of every helper the emulator provides, sorted; `CompositeEmulator` checks them
    /// for conflicts. The default probes `helper(id:)` for ids 0–4095 (the kernel's range and
    /// more); emulators with helpers elsewhere (plugins in 10000+) list them.
    var helperIDs: [Int32] { get }

    /// The kernel function (kfunc) with this BTF name (`bpf_obj_new_impl`), or nil if the
    /// emulator does not provide it. Default nil.
    ///
    /// Called at load time for each `call` of a function an object file declares `__ksym` and
    /// does not define (`BPF_PSEUDO_KFUNC_CALL`, bound by name instead of the kernel's BTF id);
    /// the returned `Helper` then runs like a helper, with its arguments in R1–R5 (its `id` only
    /// appears in messages: a kfunc has no helper id). A program calling a kfunc nobody provides
    /// fails to load with an error naming it.
    func kfunc(named name: String) -> Helper?

    /// The custom instruction for `opcode`, an opcode byte the instruction set leaves undefined,
    /// or nil (the loader then refuses the slot as an unknown opcode). Called at load time.
    /// Default nil.
    func customInstruction(opcode: UInt8) -> CustomInstruction?

    /// Called for each new process before it runs, and again for a process being reused
    /// (`Process.reset`), e.g. to create per-process state in the process's emulator state table
    /// (`Process.setEmulatorState(_:for:)`, or `takeRecycledEmulatorState(_:)` on reuse).
    func prepare(_ process: Process) throws(SetupError)

    /// Whether `Process.reset(context:)`'s quick path (see there) may leave this emulator's
    /// per-process states to the context: true promises that the contexts of this emulator that
    /// implement `Context.rearm(_:)` (the Linux emulator's `XDPContext`) check there that the
    /// previous run changed nothing `prepare` would have to undo and clear what `prepare` clears,
    /// so that the states read exactly as `prepare` would leave them; the reset then calls no
    /// `prepare` and no other method of the emulator. Read once, when a process is made (a
    /// per-packet call through the existential cost more than the checks). Default: false
    /// (plugins, composites, test emulators: every reset calls `prepare`).
    var rearmsThroughContext: Bool { get }
}

extension Emulator {
    public func helperName(id: Int32) -> String? { nil }

    public var helperIDs: [Int32] { (0..<4096).filter { helper(id: $0) != nil } }

    public func kfunc(named name: String) -> Helper? { nil }

    public func customInstruction(opcode: UInt8) -> CustomInstruction? { nil }

    public func prepare(_ process: Process) throws(SetupError) {}

    public var rearmsThroughContext: Bool { false }
}

/// An emulator that also provides the objects programs refer to: maps, global data and the `lddw`
/// references to them. `VM.load(object:)` and the loader use the VM's map provider
/// (`VM.mapProvider`: the emulator itself, or the first member of a `CompositeEmulator` that is
/// one); an emulator that is not one provides helpers only.
public protocol MapProvider: Emulator {
    /// Resolves an `lddw` whose source field names a map or other object: returns the 64-bit
    /// value the destination register receives (usually a VM address). `imm` and `nextImm` are
    /// the immediates of the two slots. Default: refuses (object files reach the loader with their
    /// map references already bound to handles by `VM.load(object:)`).
    func resolveLoadImm64(kind: LoadImm64Kind, imm: Int32, nextImm: Int32, in vm: VM) throws(LoadError.Reason) -> UInt64

    /// Creates a map an object file declares (`VM.load(object:)`) and returns its handle: the
    /// value an `lddw` of the map puts in a register, which the emulator's map helpers accept.
    func createMap(_ spec: MapSpec, in vm: VM) throws(LoadError.Reason) -> UInt64

    /// Told about each global-data section `VM.load(object:)` mapped, so the emulator can expose
    /// it as the single-element array map libbpf makes of it. Default: nothing.
    func adoptGlobalData(_ spec: GlobalDataSpec, storage: RegionStorage, address: UInt64, in vm: VM) throws(LoadError
        .Reason)

    /// Gives an object's extern variables their values, as libbpf's `bpf_object__resolve_externs`
    /// does, before `VM.load(object:)` maps its global data: writes each `__kconfig` extern into
    /// `kconfig` (the `.kconfig` section's zeroed bytes, at `ObjectExtern.Kconfig.offset`; see
    /// `ObjectExtern.Kconfig.encode`) and returns the address of each `__ksym` variable. A weak
    /// extern it cannot resolve stays zero (left out of the result); a strong one is an error
    /// naming it. Default: refuses every extern variable.
    func resolveExterns(_ externs: [ObjectExtern], kconfig: inout [UInt8], in vm: VM) throws(LoadError.Reason)
        -> [String: UInt64]

    /// Fills the initial slots of an object's prog arrays and maps of maps (`.values = {...}`),
    /// once all its maps exist; load programs with `object.program(named:)`. Default: refuses.
    func initializeMaps(of object: LoadedObject) throws(LoadError)
}

extension MapProvider {
    public func resolveLoadImm64(kind: LoadImm64Kind, imm: Int32, nextImm: Int32, in vm: VM) throws(LoadError.Reason)
        -> UInt64
    {
        throw .unresolvedReference(
            "\(kind.cName) (imm \(imm)) is not resolved by \(name): load the program from its object file (VM.load(object:)), which binds map references"
        )
    }

    public func adoptGlobalData(_ spec: GlobalDataSpec, storage: RegionStorage, address: UInt64, in vm: VM)
        throws(LoadError.Reason)
    {}

    public func resolveExterns(_ externs: [ObjectExtern], kconfig: inout [UInt8], in vm: VM) throws(LoadError.Reason)
        -> [String: UInt64]
    {
        let names = externs.map(\.name).joined(separator: ", ")
        throw .unsupported("extern variables (__kconfig / __ksym) \(names) are not supported by \(name)")
    }

    public func initializeMaps(of object: LoadedObject) throws(LoadError) {
        let names = object.object.maps.filter { !$0.initialSlots.isEmpty }.map(\.name)
        throw LoadError(
            .unsupported("initial values of \(names.joined(separator: ", ")) are not supported by \(name)"),
            programName: "object")
    }
}

/// Sets up a process's inputs: the memory its arguments point to and registers R1–R5.
///
/// `MimicLinux` provides the kernel's contexts (`xdp_md`, `__sk_buff`, captured data); a plain
/// memory buffer is `MemoryContext`.
public protocol Context {
    /// Maps the context's memory into `process` and sets its argument registers.
    func attach(to process: Process) throws(SetupError)

    /// `Process.reset(context:)`'s quick path (see there): attaches this context by renewing
    /// in place what the previous reset's context set up — its regions moved to new addresses
    /// (`Process.renewAttachedRegions`), their bytes rewritten so they read exactly as freshly
    /// attached ones — and returns true; returns false, having changed nothing the general path
    /// would not change, when it cannot (the reset then takes its general path and calls the
    /// emulator's `prepare` and `attach(to:)`). Called after the registers, stack and counters
    /// are reset, and only when the emulator leaves its states to the context
    /// (`Emulator.rearmsThroughContext`): true also promises that the emulator's states read as
    /// its `prepare` would leave them (the context checks and clears them). Default: false.
    func rearm(_ process: Process) -> Bool
}

extension Context {
    public func rearm(_ process: Process) -> Bool { false }
}

/// The simplest context: a byte buffer passed in R1 with its length in R2, as the
/// bpf_conformance vectors and uBPF expect. An empty buffer passes R1 = 0, R2 = 0.
public struct MemoryContext: Context {
    public var bytes: [UInt8]
    public var name: String

    public init(_ bytes: [UInt8], name: String = "memory") {
        self.bytes = bytes
        self.name = name
    }

    public func attach(to process: Process) throws(SetupError) {
        guard !bytes.isEmpty else {
            process.registers[1] = 0
            process.registers[2] = 0
            return
        }
        let address: UInt64
        do {
            address = try process.memory.map(RegionStorage(bytes: bytes), name: name, placement: .low32)
        } catch {
            throw .message("cannot map the \(name) buffer: \(error)")
        }
        process.registers[1] = address
        process.registers[2] = UInt64(bytes.count)
        process.packet = PacketBounds(address: address, length: bytes.count)
    }
}

/// Where the packet lives, for the legacy `ld_abs` / `ld_ind` loads of socket filters.
public struct PacketBounds: Sendable, Equatable {
    public var address: UInt64
    public var length: Int

    public init(address: UInt64, length: Int) {
        self.address = address
        self.length = length
    }
}
