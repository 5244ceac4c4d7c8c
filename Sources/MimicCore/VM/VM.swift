import MimicMemory
import Synchronization

/// A virtual machine: an emulator, a configuration, and the memory shared by its processes.
///
/// Load programs into it once, then create a `Process` per run. Regions mapped with
/// `mapShared` (maps, global data) appear at the same address in every process created after.
/// Loading, mapping and creating processes are thread-safe.
public final class VM: @unchecked Sendable {
    public let emulator: (any Emulator)?
    /// What creates the VM's maps and resolves references to them: the emulator if it is a
    /// `MapProvider`, or the first member of a `CompositeEmulator` that is one; nil if none is.
    public let mapProvider: (any MapProvider)?
    public let configuration: VMConfiguration
    /// What maps, global data, contexts and packet buffers of this VM may allocate
    /// (`configuration.memoryLimit`); each charges its storage here before allocating it.
    public let memoryBudget: MemoryBudget

    private let lock = Mutex(())
    private let sharedMemory = AddressSpace()
    /// Objects that live exactly as long as this VM, by key (a plugin's instance for this VM).
    private let attachments = Mutex<[ObjectIdentifier: AnyObject]>([:])

    /// Creates a VM.
    ///
    /// - Parameter sharedRegionBroker: decides the addresses of shared regions (`mapShared`)
    ///   instead of this VM: a plugin's VM mirrors its host VM's shared memory so map values
    ///   have the same addresses on both sides (see `AddressSpace.broker`). Nil for every
    ///   ordinary VM.
    public init(
        emulator: (any Emulator)? = nil, configuration: VMConfiguration = VMConfiguration(),
        sharedRegionBroker: (any RegionBroker)? = nil
    ) {
        self.emulator = emulator
        mapProvider = emulator.flatMap(CompositeEmulator.mapProvider(of:))
        self.configuration = configuration
        memoryBudget = MemoryBudget(limit: configuration.memoryLimit)
        sharedMemory.broker = sharedRegionBroker
    }

    // MARK: Attachments

    /// The object kept with this VM under `key`, made by `make` (under the attachments' lock)
    /// if there is none yet. It is released when the VM is: state that must live as long as
    /// the VM and no longer (a plugin instance) is kept here instead of by the emulator.
    func attachment<T: AnyObject, E: Error>(_ key: ObjectIdentifier, make: () throws(E) -> T) throws(E) -> T {
        try attachments.withLock { (attachments) throws(E) -> T in
            if let existing = attachments[key] as? T { return existing }
            let created = try make()
            attachments[key] = created
            return created
        }
    }

    /// The object kept with this VM under `key`, if there is one.
    func existingAttachment<T: AnyObject>(_ key: ObjectIdentifier, as type: T.Type) -> T? {
        attachments.withLock { $0[key] as? T }
    }

    // MARK: Shared memory

    /// Maps `storage` into the memory every new process of this VM starts with.
    public func mapShared(_ storage: RegionStorage, name: String, kind: RegionKind = .plain) throws(AddressSpaceError)
        -> UInt64
    {
        try lock.withLock { _ throws(AddressSpaceError) in try sharedMemory.map(storage, name: name, kind: kind) }
    }

    /// Maps `storage` into the shared memory at exactly `address` (the address another VM gave
    /// the same bytes), bypassing any broker. See `AddressSpace.map(_:name:kind:at:)`.
    @discardableResult
    public func mapShared(
        _ storage: RegionStorage, name: String, kind: RegionKind = .plain,
        at address: UInt64
    ) throws(AddressSpaceError) -> UInt64 {
        try lock.withLock { _ throws(AddressSpaceError) in
            let broker = sharedMemory.broker
            sharedMemory.broker = nil
            defer { sharedMemory.broker = broker }
            return try sharedMemory.map(storage, name: name, kind: kind, at: address)
        }
    }

    /// A fresh address space holding the shared regions.
    func makeAddressSpace() -> AddressSpace {
        // The copy has no broker: a process's own regions are the process's business.
        lock.withLock { _ in AddressSpace(copying: sharedMemory) }
    }

    /// The shared regions (maps, global data).
    public var sharedRegions: [RegionInfo] { lock.withLock { _ in sharedMemory.regions } }

    // MARK: Loading

    /// Loads little-endian bytecode.
    public func load(bytecode: [UInt8], name: String = "program") throws(LoadError) -> Program {
        let instructions: [RawInstruction]
        do {
            instructions = try RawInstruction.decode(bytecode)
        } catch {
            throw LoadError(.invalidEncoding(error.description), programName: name, cause: error)
        }
        return try load(instructions, name: name)
    }

    /// Checks and pre-decodes `instructions`, resolving helpers and references through the emulator.
    ///
    /// `lineInfo` (from `ObjectProgram.lineInfo`) lets errors and debuggers show source lines.
    /// `kfuncNames` names the kernel functions the program calls: a `call` with src 2
    /// (`BPF_PSEUDO_KFUNC_CALL`) calls `kfuncNames[imm]`, bound through `Emulator.kfunc(named:)`
    /// (the kernel's imm is a BTF id of the kernel's BTF, which Mimic does not have; object files
    /// are bound by name, see `LoadedObject`). A kfunc in `weakKfuncNames` (declared `__weak`)
    /// that the emulator does not provide does not stop the load: calling it stops the program
    /// (libbpf poisons such calls). `objectBTF` is the object's BTF, kept as `Program.objectBTF`.
    public func load(
        _ instructions: [RawInstruction], name: String = "program",
        lineInfo: [SourceLineInfo] = [], kfuncNames: [String] = [],
        weakKfuncNames: Set<String> = [], objectBTF: BTF? = nil
    ) throws(LoadError) -> Program {
        var loader = Loader(
            vm: self, name: name, instructions: instructions, lineInfo: lineInfo, kfuncNames: kfuncNames)
        loader.weakKfuncNames = weakKfuncNames
        loader.objectBTF = objectBTF
        return try loader.load()
    }

    // MARK: Processes

    /// Creates a process that will run `program` with `context` as its input.
    public func makeProcess(for program: Program, context: (any Context)? = nil, vCPU: Int = 0) throws(SetupError)
        -> Process
    {
        let process = try Process(program: program, memory: makeAddressSpace(), vCPU: vCPU)
        try emulator?.prepare(process)
        try context?.attach(to: process)
        return process
    }

    /// Why a program or object that refers to maps cannot load: no map provider.
    var noMapProvider: String {
        guard let emulator else { return "needs an emulator that provides maps" }
        return "needs an emulator that provides maps; \(emulator.name) does not"
    }

    /// Loads nothing, creates a process, runs it to the end and returns R0: the one-call way.
    public func run(_ program: Program, context: (any Context)? = nil, instructionLimit: UInt64 = .max) throws -> UInt64
    {
        let process = try makeProcess(for: program, context: context)
        return try process.run(instructionLimit: instructionLimit)
    }
}

/// Turns raw instructions into a `Program`: validation, pre-decoding and resolution.
private struct Loader {
    let vm: VM
    let name: String
    let instructions: [RawInstruction]
    let lineInfo: [SourceLineInfo]
    let kfuncNames: [String]
    var weakKfuncNames: Set<String> = []
    var objectBTF: BTF?
    var helpers: [Helper] = []
    var helperIndexByID: [Int32: Int] = [:]
    var kfuncIndexByName: [String: Int] = [:]

    init(vm: VM, name: String, instructions: [RawInstruction], lineInfo: [SourceLineInfo], kfuncNames: [String]) {
        self.vm = vm
        self.name = name
        self.instructions = instructions
        self.lineInfo = lineInfo
        self.kfuncNames = kfuncNames
    }

    func error(_ reason: LoadError.Reason, at pc: Int? = nil) -> LoadError {
        LoadError(
            reason, pc: pc, instruction: pc.flatMap { $0 < instructions.count ? instructions[$0] : nil },
            programName: name)
    }

    mutating func load() throws(LoadError) -> Program {
        let count = instructions.count
        guard count > 0 else { throw error(.emptyProgram) }
        guard count <= vm.configuration.maxInstructions else {
            throw error(.tooLarge(count: count, limit: vm.configuration.maxInstructions))
        }

        // Pass 1: decode every slot and mark lddw second halves.
        var code: [DecodedInstruction] = []
        code.reserveCapacity(count)
        var isSecondHalf = [Bool](repeating: false, count: count)
        var isCustom = [Bool](repeating: false, count: count)
        var pc = 0
        while pc < count {
            let raw = instructions[pc]
            let form: InstructionForm
            switch InstructionSet.validate(raw, next: pc + 1 < count ? instructions[pc + 1] : nil) {
            case .success(let valid): form = valid
            case .failure(.unknownOpcode(let opcode)):
                guard let custom = vm.emulator?.customInstruction(opcode: opcode) else {
                    throw error(.unknownOpcode(opcode), at: pc)
                }
                code.append(try customCall(custom, raw, at: pc))
                isCustom[pc] = true
                pc += 1
                continue
            case .failure(let problem): throw error(Loader.reason(problem), at: pc)
            }
            try checkFramePointerWrites(raw, form: form, at: pc)
            var decoded = DecodedInstruction(
                operation: form.operation, destination: raw.destination, source: raw.source,
                offset: Int32(raw.offset), imm: UInt64(bitPattern: Int64(raw.imm)))
            if form.operation == .loadImm64 {
                let next = instructions[pc + 1] // `validate` checked the second slot
                decoded.imm = try resolveLoadImm64(raw, next: next, at: pc)
                code.append(decoded)
                code.append(decoded) // the second slot is never executed; jumps into it are refused
                isSecondHalf[pc + 1] = true
                pc += 2
                continue
            }
            code.append(decoded)
            pc += 1
        }

        // Pass 2: resolve jump and call targets, bind helpers.
        var functionEntries: Set<Int> = [0]
        for pc in 0..<count where !isSecondHalf[pc] && !isCustom[pc] {
            let raw = instructions[pc]
            let operation = code[pc].operation
            switch InstructionSet.form(of: operation).shape {
            case .jump, .jumpImm, .jumpReg:
                code[pc].offset = Int32(try target(pc + 1 + Int(raw.offset), from: pc, isSecondHalf))
            case .jump32:
                code[pc].offset = Int32(try target(pc + 1 + Int(raw.imm), from: pc, isSecondHalf))
            case .callLocal:
                let entry = try target(pc + 1 + Int(raw.imm), from: pc, isSecondHalf)
                code[pc].offset = Int32(entry)
                functionEntries.insert(entry)
            case .callHelper:
                if operation == .callKernelFunction {
                    // Bound like a helper: the interpreter calls it through the helper table.
                    code[pc].operation = .callHelper
                    code[pc].imm = UInt64(try kfuncIndex(for: raw.imm, at: pc))
                } else {
                    code[pc].imm = UInt64(helperIndex(for: raw.imm))
                }
            default:
                break
            }
        }
        for pc in 0..<count
        where code[pc].operation == .loadImm64 && instructions[pc].source == LoadImm64Kind.function.rawValue
            && !isSecondHalf[pc]
        {
            let entry = try target(pc + 1 + Int(instructions[pc].imm), from: pc, isSecondHalf)
            code[pc].imm = Program.functionAddressTag | UInt64(entry)
            code[pc + 1].imm = code[pc].imm
            functionEntries.insert(entry)
        }

        try checkFunctions(code, entries: functionEntries.sorted(), isSecondHalf)

        return Program(
            name: name, instructions: instructions, code: code, helpers: helpers,
            helperIndexByID: helperIndexByID, functionEntries: functionEntries.sorted(), lineInfo: lineInfo, vm: vm,
            objectBTF: objectBTF)
    }

    func target(_ target: Int, from pc: Int, _ isSecondHalf: [Bool]) throws(LoadError) -> Int {
        guard target >= 0, target < instructions.count else { throw error(.jumpOutOfRange(target: target), at: pc) }
        guard !isSecondHalf[target] else { throw error(.jumpIntoLoadImm64(target: target), at: pc) }
        return target
    }

    /// The index in the helper table of helper `id`; unknown ids get a stub that fails when called.
    mutating func helperIndex(for id: Int32) -> Int {
        if let index = helperIndexByID[id] { return index }
        let helper: Helper
        if let found = vm.emulator?.helper(id: id) {
            helper = found
        } else {
            helper = Loader.unknownHelper(id: id, name: vm.emulator?.helperName(id: id))
        }
        helpers.append(helper)
        helperIndexByID[id] = helpers.count - 1
        return helpers.count - 1
    }

    /// A custom instruction's slot: a call through the helper table, so it runs on the
    /// interpreter's helper path (one instruction, exact budget, `step()`).
    mutating func customCall(_ custom: CustomInstruction, _ raw: RawInstruction, at pc: Int) throws(LoadError)
        -> DecodedInstruction
    {
        for (field, register) in [("dst_reg", raw.destination), ("src_reg", raw.source)] where register > 10 {
            throw error(.invalidRegister(field: field, register: register), at: pc)
        }
        helpers.append(custom.helper(for: raw))
        return DecodedInstruction(
            operation: .callHelper, destination: raw.destination, source: raw.source,
            offset: Int32(raw.offset), imm: UInt64(helpers.count - 1))
    }

    /// The index in the helper table of the kfunc `kfuncNames[imm]`, from the emulator.
    mutating func kfuncIndex(for imm: Int32, at pc: Int) throws(LoadError) -> Int {
        guard imm >= 0, Int(imm) < kfuncNames.count else {
            throw error(
                .unsupported(
                    "kfunc calls (call with src=2, BTF id \(imm)): kfuncs are bound by name, from an object file"),
                at: pc)
        }
        let name = kfuncNames[Int(imm)]
        if let index = kfuncIndexByName[name] { return index }
        let provider = vm.emulator.map { "emulator \($0.name) does not provide it" } ?? "the VM has no emulator"
        let kfunc: Helper
        if let provided = vm.emulator?.kfunc(named: name) {
            kfunc = provided
        } else if weakKfuncNames.contains(name) {
            kfunc = Helper(id: -1, name: name) { _ throws(HelperFailure) in
                throw .unsupported(
                    "weak kfunc \(name) was called, but \(provider) (guard the call with bpf_ksym_exists)")
            }
        } else {
            throw error(.unresolvedReference("kfunc \(name): \(provider)"), at: pc)
        }
        helpers.append(kfunc)
        kfuncIndexByName[name] = helpers.count - 1
        return helpers.count - 1
    }

    /// A helper that stops the program with `unknownHelper` when called: the kernel would refuse
    /// to load the program, but Mimic lets the paths that never call it run.
    static func unknownHelper(id: Int32, name: String?) -> Helper {
        Helper(id: id, name: name ?? "#\(id)") { _ throws(HelperFailure) in
            throw .unsupported("no emulator provides this helper")
        }
    }

    func resolveLoadImm64(_ raw: RawInstruction, next: RawInstruction, at pc: Int) throws(LoadError) -> UInt64 {
        let plain = UInt64(UInt32(bitPattern: raw.imm)) | UInt64(UInt32(bitPattern: next.imm)) << 32
        guard let kind = LoadImm64Kind(rawValue: raw.source) else {
            throw error(.invalidEncoding("lddw source \(raw.source) is not a known pseudo kind"), at: pc)
        }
        switch kind {
        case .immediate, .function:
            return plain // functions are resolved in pass 2, once all slots are known
        default:
            guard let mapProvider = vm.mapProvider else {
                throw error(.unresolvedReference("\(kind.cName) (imm \(raw.imm)) \(vm.noMapProvider)"), at: pc)
            }
            do {
                return try mapProvider.resolveLoadImm64(kind: kind, imm: raw.imm, nextImm: next.imm, in: vm)
            } catch {
                throw self.error(error, at: pc)
            }
        }
    }

    /// The kernel's `check_subprogs`: a jump stays inside its function, and every function ends
    /// in `exit` or an unconditional jump (nothing falls into the next function, and the
    /// interpreter never runs past the end).
    func checkFunctions(_ code: [DecodedInstruction], entries: [Int], _ isSecondHalf: [Bool]) throws(LoadError) {
        for (index, start) in entries.enumerated() {
            let end = index + 1 < entries.count ? entries[index + 1] : code.count
            for pc in start..<end where !isSecondHalf[pc] {
                switch InstructionSet.form(of: code[pc].operation).shape {
                case .jump, .jump32, .jumpImm, .jumpReg:
                    let target = Int(code[pc].offset)
                    guard target >= start && target < end else {
                        throw error(.jumpOutOfFunction(target: target, function: start), at: pc)
                    }
                default:
                    break
                }
            }
            let last = isSecondHalf[end - 1] ? nil : code[end - 1].operation
            guard let last, last == .exit || last == .jump || last == .jump32 else {
                if end == code.count { throw error(.lastInstructionNotExitOrJump, at: end - 1) }
                throw error(.functionFallsThrough(function: start, next: end), at: end - 1)
            }
        }
    }

    /// The load error for an invalid slot.
    static func reason(_ problem: EncodingProblem) -> LoadError.Reason {
        switch problem {
        case .unknownOpcode(let opcode): .unknownOpcode(opcode)
        case .unknownForm: .invalidEncoding(problem.description)
        case .invalidRegister(let field, let register):
            .invalidRegister(field: field == .destination ? "destination" : "source", register: register)
        case .reservedField(let mnemonic, let field, let value):
            .reservedField(mnemonic: mnemonic, field: field.rawValue, value: value)
        case .incompleteLoadImm64: .incompleteLoadImm64
        }
    }

    /// r10, the frame pointer, is read-only (`validate` checked the register range).
    func checkFramePointerWrites(_ raw: RawInstruction, form: InstructionForm, at pc: Int) throws(LoadError) {
        let writesDestination: Bool
        var writesSource = false
        switch form.shape {
        case .aluImm, .unary, .loadImm64, .aluReg, .load:
            writesDestination = true
        case .atomic:
            writesDestination = false
            // Fetching forms and xchg write the old value back into the source register.
            switch form.operation {
            case .atomicFetchAdd64, .atomicFetchOr64, .atomicFetchAnd64, .atomicFetchXor64, .atomicExchange64,
                .atomicFetchAdd32, .atomicFetchOr32, .atomicFetchAnd32, .atomicFetchXor32, .atomicExchange32:
                writesSource = true
            default:
                writesSource = false
            }
        case .storeImm, .storeReg, .jumpImm, .jumpReg, .callRegister, .packetIndirect,
            .packetAbsolute, .jump, .jump32, .callHelper, .callLocal, .none:
            writesDestination = false
        }
        if (writesDestination && raw.destination == 10) || (writesSource && raw.source == 10) {
            throw error(.writesFramePointer, at: pc)
        }
    }
}
