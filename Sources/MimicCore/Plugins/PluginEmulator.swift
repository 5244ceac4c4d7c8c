import CMimicPlugin
import MimicMemory

/// A plugin library's helpers as an `Emulator`.
///
/// Each helper becomes a `Helper` that builds a `struct mimic_call` on the stack, passes R1–R5
/// to the plugin's C function and puts its result in R0. What the plugin reports through host
/// services turns into the usual errors: `host->fail` stops the program with
/// `ExecutionError.Kind.helperFailed` naming the helper (with the memory fault the host
/// remembered, if the plugin passes its status); `MIMIC_ERR_UNSUPPORTED` as the status stops with
/// `unknownHelper`; `host->request_exit` ends the program with the helper's value in R0.
///
/// A plugin provides helpers only: it does not create maps or resolve map references (use it in
/// a `CompositeEmulator` behind an emulator that does, such as `LinuxEmulator`). Tail calls and
/// program callbacks (`bpf_loop`-style) cannot be requested through ABI 1.0.
public final class PluginEmulator: Emulator {
    /// The library this emulator calls.
    public let library: PluginLibrary
    private let helpers: [Int32: Helper]

    init(library: PluginLibrary) {
        self.library = library
        var helpers: [Int32: Helper] = [:]
        let plugin = library.descriptor.pointee
        for i in 0..<Int(plugin.helper_count) {
            guard let entry = plugin.helpers?[i], let function = entry.function else { continue }
            let name = library.helpers[i].name
            helpers[entry.id] = PluginEmulator.makeHelper(id: entry.id, name: name, function: function,
                                                          data: entry.data, library: library)
        }
        self.helpers = helpers
    }

    /// The plugin's name.
    public var name: String { library.name }

    public func helper(id: Int32) -> Helper? { helpers[id] }

    public var helperIDs: [Int32] { library.helpers.map(\.id).sorted() }

    /// Creates the plugin's per-process state (its `process_start`).
    public func prepare(_ process: Process) throws(HelperFailure) {
        _ = PluginEmulator.state(of: process, library: library)
    }

    /// What the plugin logged during `process`'s helper calls (at most the last 10,000).
    public func messages(of process: Process) -> [PluginLogMessage] {
        let index = library.index
        guard index < process.pluginStates.count, let state = process.pluginStates[index] else { return [] }
        return state.messages
    }

    /// The plugin's state for `process`, created on first use.
    static func state(of process: Process, library: PluginLibrary) -> PluginProcessState {
        let index = library.index
        if index < process.pluginStates.count, let state = process.pluginStates[index] { return state }
        if process.pluginStates.count <= index {
            process.pluginStates += [PluginProcessState?](repeating: nil, count: index + 1 - process.pluginStates.count)
        }
        let state = PluginProcessState(library: library, vCPU: process.vCPU)
        process.pluginStates[index] = state
        // Mirror it in the plain slots the call path reads.
        if process.pluginSlotCount <= index {
            let count = max(index + 1, 2 * process.pluginSlotCount)
            let slots = UnsafeMutablePointer<PluginSlot>.allocate(capacity: count)
            slots.initialize(repeating: PluginSlot(id: 0, data: nil, state: nil), count: count)
            if let old = process.pluginSlots {
                slots.update(from: old, count: process.pluginSlotCount)
                old.deallocate()
            }
            process.pluginSlots = slots
            process.pluginSlotCount = count
        }
        process.pluginSlots?[index] = PluginSlot(id: state.id, data: state.processData, state: Unmanaged.passUnretained(state))
        return state
    }

    /// The call path's view of a process's state: plain data, kept alive by `pluginStates`.
    @inline(__always)
    static func slot(of process: Process, index: Int, library: PluginLibrary) -> PluginSlot {
        if index < process.pluginSlotCount, let slots = process.pluginSlots, slots[index].id != 0 { return slots[index] }
        let state = state(of: process, library: library)
        return PluginSlot(id: state.id, data: state.processData, state: Unmanaged.passUnretained(state))
    }

    private static func makeHelper(id: Int32, name: String, function: mimic_helper_fn, data: UnsafeMutableRawPointer?,
                                   library: PluginLibrary) -> Helper {
        nonisolated(unsafe) let data = data
        nonisolated(unsafe) let table = HostServices.table
        let index = library.index
        let libraryIndex = UInt32(truncatingIfNeeded: index)
        return Helper(id: id, name: name) { process throws(HelperFailure) in
            let slot = PluginEmulator.slot(of: process, index: index, library: library)
            var call = mimic_call()
            call.size = UInt32(MemoryLayout<mimic_call>.size)
            call.helper_id = id
            call.helper_data = data
            call.process_data = slot.data
            call.process_id = slot.id
            call.vcpu = UInt32(truncatingIfNeeded: process.vCPU)
            call.host_process = Unmanaged.passUnretained(process).toOpaque()
            call.host_magic = HostServices.magic
            call.host_library = libraryIndex
            let r = process.registers
            let value = function(table, &call, r[1], r[2], r[3], r[4], r[5])
            if call.host_flags == 0 { return .value(value) }
            return try PluginEmulator.finish(call.host_flags, value: value, state: PluginEmulator.state(of: process, library: library))
        }
    }

    /// The slow end of a call that failed or asked to exit. A fault remembered from an earlier
    /// call is never reported: a fault status comes from a service of this call, which recorded
    /// its own fault.
    private static func finish(_ flags: UInt32, value: UInt64, state: PluginProcessState) throws(HelperFailure) -> HelperResult {
        let fault = state.lastFault
        let failure = state.failure
        state.lastFault = nil
        state.failure = nil
        guard flags & HostServices.failedFlag != 0, let failure else { return .exit(value) }
        let message = failure.message ?? ""
        if failure.status == MIMIC_ERR_UNSUPPORTED.rawValue {
            throw .unsupported(message.isEmpty ? "the plugin does not support this call" : message)
        }
        let isFault = failure.status <= MIMIC_ERR_UNMAPPED.rawValue && failure.status >= MIMIC_ERR_READ_ONLY.rawValue
        if isFault, let fault {
            if message.isEmpty { throw .memory(fault) }
            throw .message("\(message): \(fault)")
        }
        throw .message(message.isEmpty ? "the plugin reported a failure (status \(failure.status))" : message)
    }
}

/// One plugin's per-process data as the helper-call path reads it (see `Process.pluginSlots`).
struct PluginSlot {
    /// `mimic_call.process_id`; 0 marks an empty slot.
    var id: UInt64
    /// What the plugin's `process_start` returned.
    var data: UnsafeMutableRawPointer?
    /// The state object (owned by `Process.pluginStates`).
    var state: Unmanaged<PluginProcessState>?
}
