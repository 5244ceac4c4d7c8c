import CMimicPlugin
import MimicMemory
import Synchronization

/// A plugin library as an `Emulator`: its helpers and, for an ABI 1.1 plugin with `create_map`,
/// the VM's maps, global data, map references and contexts.
///
/// Each helper becomes a `Helper` that builds a `struct mimic_call` on the stack, passes R1–R5
/// to the plugin's C function and puts its result in R0. What the plugin reports through host
/// services turns into the usual errors: `host->fail` stops the program with
/// `ExecutionError.Kind.helperFailed` naming the helper (with the memory fault the host
/// remembered, if the plugin passes its status; with a callback's own error for
/// `MIMIC_ERR_CALLBACK`); `MIMIC_ERR_UNSUPPORTED` as the status stops with `unknownHelper`;
/// `host->request_exit` ends the program with the helper's value in R0; `host->tail_call`
/// replaces the program.
///
/// Instances (ABI 1.1): every VM that uses the emulator gets its own plugin instance
/// (`instance_create`, with the emulator's `options`), destroyed once the VM is gone. A plugin
/// with `create_map` gets a `PluginMapEmulator`, which is also the VM's `MapProvider`: maps live
/// in the instance, and `maps(in:)` lists them for host code. A plugin without `create_map`
/// provides helpers only: use it in a `CompositeEmulator` beside an emulator that provides maps.
///
/// Per-process state (`process_start` data, allocated regions, the last fault a service met,
/// logged messages) lives in the process's emulator state table under the library's key
/// (`PluginLibrary.stateKey`).
public class PluginEmulator: Emulator, @unchecked Sendable {
    /// The library this emulator calls.
    public let library: PluginLibrary
    /// The text every instance is created with (`instance_create`'s `options`).
    public let options: String
    private let helpers: [Int32: Helper]
    private let customInstructions: [UInt8: CustomInstruction]
    let instances: PluginInstances

    /// The emulator for `library`: a `PluginMapEmulator` when the plugin creates maps.
    static func make(library: PluginLibrary, options: String) -> PluginEmulator {
        library.providesMaps
            ? PluginMapEmulator(library: library, options: options) : PluginEmulator(library: library, options: options)
    }

    init(library: PluginLibrary, options: String) {
        self.library = library
        self.options = options
        let instances = PluginInstances(library: library, options: options)
        self.instances = instances
        var helpers: [Int32: Helper] = [:]
        let plugin = library.descriptor.pointee
        for i in 0..<Int(plugin.helper_count) {
            guard let entry = plugin.helpers?[i], let function = entry.function else { continue }
            let name = library.helpers[i].name
            helpers[entry.id] = PluginEmulator.makeHelper(
                id: entry.id, name: name, function: function,
                data: entry.data, instances: instances)
        }
        self.helpers = helpers
        var custom: [UInt8: CustomInstruction] = [:]
        for (i, info) in library.customInstructions.enumerated() {
            guard let entry = plugin.custom_instructions?[i], let function = entry.function else { continue }
            custom[info.opcode] = PluginEmulator.makeCustomInstruction(
                info, function: function, data: entry.data,
                instances: instances)
        }
        customInstructions = custom
    }

    /// The plugin's name.
    public var name: String { library.name }

    public func helper(id: Int32) -> Helper? { helpers[id] }

    public var helperIDs: [Int32] { library.helpers.map(\.id).sorted() }

    /// The plugin's custom instruction for `opcode` (ABI 1.2), if it provides one.
    public func customInstruction(opcode: UInt8) -> CustomInstruction? { customInstructions[opcode] }

    /// Creates the plugin's per-process state (its `process_start`), and the VM's instance on
    /// first use. For a process being reused (`Process.reset`) it takes the state of the run
    /// before back, forgets the regions the plugin had mapped and calls the plugin's
    /// `process_reset`.
    public func prepare(_ process: Process) throws(SetupError) {
        let key = library.stateKey
        if let state = process.takeRecycledEmulatorState(key) {
            process.setEmulatorState(state, for: key)
            state.allocations.removeAll()
            state.mappedRegions.removeAll()
            state.lastFault = nil
            state.failure = nil
            state.callbackError = nil
            state.tailCallTarget = nil
            state.messages.removeAll()
            if let reset = library.processReset {
                PluginEmulator.withCall(process, state) { reset(HostServices.table, $0) }
            }
            return
        }
        do {
            _ = try instances.instance(for: process.vm)
        } catch {
            throw .message(error.description)
        }
        _ = PluginEmulator.state(of: process, instances: instances)
    }

    /// What the plugin logged during `process`'s helper calls (at most the last 10,000).
    public func messages(of process: Process) -> [PluginLogMessage] {
        process.emulatorState(library.stateKey)?.messages ?? []
    }

    // MARK: Per-process state

    /// The plugin's state for `process`, created on first use.
    static func state(of process: Process, instances: PluginInstances) -> PluginProcessState {
        let library = instances.library
        if let state = process.emulatorState(library.stateKey) { return state }
        // `prepare` created the instance (or reported why it could not); a helper never runs
        // without it, but a failure here leaves the instance out rather than stopping.
        let instance = try? instances.instance(for: process.vm)
        let state = PluginProcessState(library: library, instance: instance, vCPU: process.vCPU)
        process.setEmulatorState(state, for: library.stateKey)
        return state
    }

    /// Runs `body` with a `mimic_call` for `process` that is not a helper call (helper id -1):
    /// for context and reset callbacks, which use host services on the process.
    static func withCall<R>(
        _ process: Process, _ state: PluginProcessState,
        _ body: (UnsafeMutablePointer<mimic_call>) -> R
    ) -> R {
        var call = mimic_call()
        call.size = UInt32(MemoryLayout<mimic_call>.size)
        call.helper_id = -1
        call.process_data = state.processData
        call.process_id = state.id
        call.vcpu = UInt32(truncatingIfNeeded: process.vCPU)
        call.host_process = Unmanaged.passUnretained(process).toOpaque()
        call.host_magic = HostServices.magic
        call.host_library = UInt32(truncatingIfNeeded: state.library.stateKey.index)
        call.instance_data = state.instanceData
        return withExtendedLifetime(process) { body(&call) }
    }

    // MARK: Helpers

    private static func makeHelper(
        id: Int32, name: String, function: mimic_helper_fn, data: UnsafeMutableRawPointer?,
        instances: PluginInstances
    ) -> Helper {
        nonisolated(unsafe) let data = data
        nonisolated(unsafe) let table = HostServices.table
        let key = instances.library.stateKey
        let libraryIndex = UInt32(truncatingIfNeeded: key.index)
        return Helper(id: id, name: name) { process throws(HelperFailure) in
            // The state, read without reference counting (the process keeps it alive).
            let state =
                process.unretainedEmulatorState(key)
                ?? Unmanaged.passUnretained(PluginEmulator.state(of: process, instances: instances))
            var call = mimic_call()
            call.size = UInt32(MemoryLayout<mimic_call>.size)
            call.helper_id = id
            call.helper_data = data
            state._withUnsafeGuaranteedRef { state in
                call.process_data = state.processData
                call.process_id = state.id
                call.instance_data = state.instanceData
            }
            call.vcpu = UInt32(truncatingIfNeeded: process.vCPU)
            call.host_process = Unmanaged.passUnretained(process).toOpaque()
            call.host_magic = HostServices.magic
            call.host_library = libraryIndex
            let r = process.registers
            let value = function(table, &call, r[1], r[2], r[3], r[4], r[5])
            if call.host_flags == 0 { return .value(value) }
            return try PluginEmulator.finish(
                call.host_flags, value: value,
                state: PluginEmulator.state(of: process, instances: instances))
        }
    }

    /// A custom instruction calling the plugin's C function with the slot, on a `mimic_call`
    /// whose helper id is -1. `host->fail` stops the program; `host->request_exit` and
    /// `host->tail_call` are for helpers and fail it too.
    private static func makeCustomInstruction(
        _ info: PluginCustomInstructionInfo, function: mimic_custom_instruction_fn,
        data: UnsafeMutableRawPointer?, instances: PluginInstances
    ) -> CustomInstruction {
        nonisolated(unsafe) let data = data
        nonisolated(unsafe) let table = HostServices.table
        return CustomInstruction(opcode: info.opcode, name: info.name) { raw, process throws(HelperFailure) in
            let state = PluginEmulator.state(of: process, instances: instances)
            var slot = mimic_instruction(
                opcode: raw.opcode, dst_reg: raw.destination, src_reg: raw.source, reserved0: 0,
                off: raw.offset, reserved1: 0, imm: raw.imm)
            let flags = withCall(process, state) { call in
                call.pointee.helper_data = data
                function(table, call, &slot)
                return call.pointee.host_flags
            }
            guard flags != 0 else { return }
            switch try PluginEmulator.finish(flags, value: 0, state: state) {
            case .value: return
            case .exit, .tailCall: throw .message("request_exit and tail_call are for helpers, not custom instructions")
            }
        }
    }

    /// The slow end of a call that failed, asked to exit or asked for a tail call. A fault
    /// remembered from an earlier call is never reported: a fault status comes from a service
    /// of this call, which recorded its own fault.
    private static func finish(_ flags: UInt32, value: UInt64, state: PluginProcessState) throws(HelperFailure)
        -> HelperResult
    {
        let fault = state.lastFault
        let failure = state.failure
        let callbackError = state.callbackError
        let tailCall = state.tailCallTarget
        state.lastFault = nil
        state.failure = nil
        state.callbackError = nil
        state.tailCallTarget = nil
        guard flags & HostServices.failedFlag != 0, let failure else {
            if flags & HostServices.tailCallFlag != 0, let tailCall { return .tailCall(tailCall) }
            return .exit(value)
        }
        let message = failure.message ?? ""
        if failure.status == MIMIC_ERR_UNSUPPORTED.rawValue {
            throw .unsupported(message.isEmpty ? "the plugin does not support this call" : message)
        }
        if failure.status == MIMIC_ERR_CALLBACK.rawValue, let callbackError { throw .callback(callbackError) }
        let isFault = failure.status <= MIMIC_ERR_UNMAPPED.rawValue && failure.status >= MIMIC_ERR_READ_ONLY.rawValue
        if isFault, let fault {
            if message.isEmpty { throw .memory(fault) }
            throw .message("\(message): \(fault)")
        }
        throw .message(message.isEmpty ? "the plugin reported a failure (status \(failure.status))" : message)
    }
}

/// The instances of one `PluginEmulator`: one per VM that uses it, created on first use and
/// kept by the VM itself (`VM.attachment`), so each is destroyed with its VM (once no process of
/// it is left). The emulator does not hold them: the VM holds the emulator, and an instance holds
/// the VM's programs (weakly), so holding instances here would keep dropped VMs alive.
final class PluginInstances: Sendable {
    let library: PluginLibrary
    let options: String
    private static let nextID = Atomic<UInt64>(1)

    init(library: PluginLibrary, options: String) {
        self.library = library
        self.options = options
    }

    /// The key of this emulator's instance among a VM's attachments.
    private var key: ObjectIdentifier { ObjectIdentifier(self) }

    /// The instance serving `vm`, created now if needed; nil for a plugin without instances.
    func instance(for vm: VM) throws(PluginError) -> PluginInstance? {
        guard let create = library.instanceCreate else { return nil }
        return try vm.attachment(key) { () throws(PluginError) -> PluginInstance in
            let id = Self.nextID.add(1, ordering: .relaxed).oldValue
            HostServices.instanceVMs.withLock { $0[id] = WeakVM(vm: vm) }
            var error = [CChar](repeating: 0, count: 1024)
            let data = options.withCString { options in
                error.withUnsafeMutableBufferPointer { buffer in
                    create(HostServices.table, id, options, buffer.baseAddress, buffer.count)
                }
            }
            guard let data else {
                HostServices.instanceVMs.withLock { $0[id] = nil }
                let message = PluginText.string(error)
                throw .instanceRefused(
                    plugin: library.name, reason: message.isEmpty ? "instance_create returned NULL" : message)
            }
            return PluginInstance(library: library, id: id, data: data)
        }
    }

    /// The instance serving `vm`, if one was created.
    func existingInstance(for vm: VM) -> PluginInstance? {
        vm.existingAttachment(key, as: PluginInstance.self)
    }
}

/// A plugin's state for one VM (what `instance_create` returned), and the host programs its
/// prog arrays refer to by id.
final class PluginInstance: @unchecked Sendable {
    let library: PluginLibrary
    /// The id `host->map_shared` receives.
    let id: UInt64
    /// What `instance_create` returned; passed to every callback.
    let data: UnsafeMutableRawPointer
    /// Host programs by the id the plugin keeps for them (tail calls), and the reverse; detached
    /// (no strong reference to the VM, which holds this instance).
    private let programs = Mutex<(byID: [UInt64: Program.DetachedProgram], ids: [ObjectIdentifier: UInt64])>(([:], [:]))

    init(library: PluginLibrary, id: UInt64, data: UnsafeMutableRawPointer) {
        self.library = library
        self.id = id
        self.data = data
    }

    deinit {
        library.instanceDestroy?(HostServices.table, data)
        HostServices.instanceVMs.withLock { $0[id] = nil }
    }

    /// The id of `program`, assigned on first use (ids start at 1).
    func id(for program: Program) -> UInt64 {
        programs.withLock { table in
            // An identifier of a program since freed may be reused: the id must still name it.
            if let id = table.ids[ObjectIdentifier(program)], table.byID[id]?.program === program { return id }
            let id = UInt64(table.byID.count + 1)
            table.byID[id] = program.detached
            table.ids[ObjectIdentifier(program)] = id
            return id
        }
    }

    /// The program with this id.
    func program(id: UInt64) -> Program? { programs.withLock { $0.byID[id] }?.program }
}

/// Reading text plugins write into buffers.
enum PluginText {
    /// The NUL-terminated text in `buffer` (all of it if there is no NUL), as UTF-8.
    static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs a callback that writes an error message, and returns its status and the message.
    static func withError<R>(_ body: (UnsafeMutablePointer<CChar>?, Int) -> R) -> (R, String) {
        var buffer = [CChar](repeating: 0, count: 1024)
        let result = buffer.withUnsafeMutableBufferPointer { body($0.baseAddress, $0.count) }
        return (result, string(buffer))
    }
}
