import CMimicPlugin
import MimicMemory
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How important a plugin's log message is (`enum mimic_log_level`).
public enum PluginLogLevel: Int32, Sendable, CustomStringConvertible {
    case debug = 0
    case info = 1
    case warning = 2
    case error = 3
    /// Program output the plugin produced on the program's behalf (e.g. `bpf_trace_printk`).
    case trace = 4

    public var description: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .warning: "warning"
        case .error: "error"
        case .trace: "trace"
        }
    }
}

/// A message a plugin logged through `host->log`.
public struct PluginLogMessage: Sendable, Equatable, CustomStringConvertible {
    /// The plugin's name (or its path while it is being loaded).
    public var plugin: String
    public var level: PluginLogLevel
    public var message: String
    /// The process whose helper call logged it (`mimic_call.process_id`); nil outside a call.
    public var processID: UInt64?

    public var description: String { "plugin \(plugin): \(level): \(message)" }
}

/// Where plugin log messages go.
public enum PluginLog {
    /// Receives every message any plugin logs; by default writes `description` to standard
    /// error. Replace it to route or silence plugin logs. Messages logged during a helper call are
    /// also kept per process (`PluginEmulator.messages(of:)`).
    public static var handler: @Sendable (PluginLogMessage) -> Void {
        get { _handler.withLock { $0 } }
        set { _handler.withLock { $0 = newValue } }
    }

    private static let _handler = Mutex<@Sendable (PluginLogMessage) -> Void>({ message in
        let line = Array((message.description + "\n").utf8)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    })

    /// The library being loaded on this host (for messages its entry logs), guarded by `loading`.
    static let loading = Mutex<String?>(nil)
}

/// What the host remembers about one process for one plugin library: its row of the process's
/// emulator state table (`PluginLibrary.stateKey`), released with the process (or by a reset no
/// plugin emulator took it back in), which runs the plugin's `process_end`.
final class PluginProcessState {
    let library: PluginLibrary
    /// The plugin's state for the process's VM (ABI 1.1), kept alive while the process lives.
    let instance: PluginInstance?
    /// `mimic_call.process_id`.
    let id: UInt64
    /// What the plugin's `process_start` returned.
    let processData: UnsafeMutableRawPointer?
    /// What the plugin's `instance_create` returned (`instance?.data`), for the call path.
    let instanceData: UnsafeMutableRawPointer?
    /// Regions `host->allocate` mapped for this plugin in this process.
    var allocations: Set<UInt64> = []
    /// Regions `host->map_region` mapped for this plugin in this process (plugin-owned bytes).
    var mappedRegions: Set<UInt64> = []
    /// The error of the last callback `host->call_function` ran that failed.
    var callbackError: ExecutionError?
    /// The program `host->tail_call` asked for during the current call.
    var tailCallTarget: Program?
    /// The last fault a memory service met during the current call.
    var lastFault: MemoryFault?
    /// What `host->fail` reported during the current call.
    var failure: (status: Int32, message: String?)?
    /// Messages logged during this process's calls.
    var messages: [PluginLogMessage] = []

    private static let nextID = Atomic<UInt64>(1)

    init(library: PluginLibrary, instance: PluginInstance?, vCPU: Int) {
        self.library = library
        self.instance = instance
        instanceData = instance?.data
        id = Self.nextID.add(1, ordering: .relaxed).oldValue
        processData = library.processStart?(HostServices.table, id, UInt32(truncatingIfNeeded: vCPU))
    }

    deinit {
        library.processEnd?(HostServices.table, id, processData)
    }

    /// The most messages kept per process; older ones are dropped (the log handler saw them).
    static let messageLimit = 10_000
}

/// The `struct mimic_host` table every plugin receives, and its services.
///
/// Every service checks its `mimic_call` (non-NULL, built by this host) before touching the
/// process, and reports misuse with `MIMIC_ERR_INVALID` instead of crashing.
enum HostServices {
    /// Marks a `mimic_call` as built by this host (`host_magic`).
    static let magic: UInt64 = 0x4D49_4D49_4343_414C // "MIMICCAL"
    /// `host_flags` bits.
    static let failedFlag: UInt32 = 1
    static let exitFlag: UInt32 = 2
    static let tailCallFlag: UInt32 = 4

    static let ok = MIMIC_OK.rawValue
    static let invalid = MIMIC_ERR_INVALID.rawValue

    /// The immutable table, allocated once and never freed.
    nonisolated(unsafe) static let table: UnsafePointer<mimic_host> = {
        let table = UnsafeMutablePointer<mimic_host>.allocate(capacity: 1)
        table.initialize(
            to: mimic_host(
                abi_major: UInt32(MIMIC_PLUGIN_ABI_MAJOR), abi_minor: UInt32(MIMIC_PLUGIN_ABI_MINOR),
                size: UInt32(MemoryLayout<mimic_host>.size), reserved: 0,
                get_register: getRegister, set_register: setRegister, read: read, write: write,
                allocate: allocate, free: free, fail: fail, request_exit: requestExit, log: log,
                map_shared: mapShared, map_region: mapRegion, unmap_region: unmapRegion, call_function: callFunction,
                tail_call: tailCall, set_packet: setPacket))
        return UnsafePointer(table)
    }()

    /// The process behind a call, or nil when the pointer is not a live call of this host.
    static func process(_ call: UnsafeMutablePointer<mimic_call>?) -> Process? {
        guard let call, call.pointee.host_magic == magic, let raw = call.pointee.host_process else { return nil }
        return Unmanaged<Process>.fromOpaque(raw).takeUnretainedValue()
    }

    /// The process and this plugin's state for it.
    static func state(_ call: UnsafeMutablePointer<mimic_call>?) -> (Process, PluginProcessState)? {
        guard let call, let process = process(call) else { return nil }
        // `host_library` is the library's row in the state table; the plugin could have changed
        // it, so the row's type is checked.
        guard let state = process.anyEmulatorState(at: Int(call.pointee.host_library)) as? PluginProcessState else {
            return nil
        }
        return (process, state)
    }

    static func status(of fault: MemoryFault) -> Int32 {
        switch fault.reason {
        case .unmapped: MIMIC_ERR_UNMAPPED.rawValue
        case .outOfBounds, .misaligned: MIMIC_ERR_OUT_OF_BOUNDS.rawValue
        case .readOnly: MIMIC_ERR_READ_ONLY.rawValue
        }
    }

    static func record(_ fault: MemoryFault, _ call: UnsafeMutablePointer<mimic_call>?) -> Int32 {
        state(call)?.1.lastFault = fault
        return status(of: fault)
    }

    static let getRegister: @convention(c) (UnsafeMutablePointer<mimic_call>?, UInt32) -> UInt64 = { call, index in
        guard let process = process(call), index <= 10 else { return 0 }
        return process.registers[Int(index)]
    }

    static let setRegister: @convention(c) (UnsafeMutablePointer<mimic_call>?, UInt32, UInt64) -> Int32 = {
        call, index, value in
        guard let process = process(call), index <= 9 else { return invalid }
        process.registers[Int(index)] = value
        return ok
    }

    static let read:
        @convention(c) (UnsafeMutablePointer<mimic_call>?, UInt64, UnsafeMutableRawPointer?, UInt64) -> Int32 = {
            call, address, buffer, size in
            guard let process = process(call) else { return invalid }
            if size == 0 { return ok }
            guard let buffer, size <= UInt64(AddressSpace.regionLimit) else { return invalid }
            switch process.memory.resolve(address, size: Int(size), access: .read) {
            case .success(let pointer):
                buffer.copyMemory(from: pointer, byteCount: Int(size))
                return ok
            case .failure(let fault):
                // Rings wrapping around their end take the copying path.
                guard let bytes = try? process.memory.read(address, count: Int(size)) else {
                    return record(fault, call)
                }
                bytes.withUnsafeBytes {
                    if let base = $0.baseAddress { buffer.copyMemory(from: base, byteCount: $0.count) }
                }
                return ok
            }
        }

    static let write: @convention(c) (UnsafeMutablePointer<mimic_call>?, UInt64, UnsafeRawPointer?, UInt64) -> Int32 = {
        call, address, buffer, size in
        guard let process = process(call) else { return invalid }
        if size == 0 { return ok }
        guard let buffer, size <= UInt64(AddressSpace.regionLimit) else { return invalid }
        switch process.memory.resolve(address, size: Int(size), access: .write) {
        case .success(let pointer):
            pointer.copyMemory(from: buffer, byteCount: Int(size))
            return ok
        case .failure(let fault):
            let bytes = UnsafeRawBufferPointer(start: buffer, count: Int(size))
            guard (try? process.memory.write(bytes, at: address)) != nil else { return record(fault, call) }
            return ok
        }
    }

    static let allocate:
        @convention(c) (
            UnsafeMutablePointer<mimic_call>?, UInt64, UnsafeRawPointer?, UInt32,
            UnsafePointer<CChar>?, UnsafeMutablePointer<UInt64>?
        ) -> Int32 = {
            call, size, initial, flags, name, address in
            guard let (process, state) = state(call), let address else { return invalid }
            guard flags & ~MIMIC_REGION_READ_ONLY.rawValue == 0 else { return invalid }
            guard size <= UInt64(AddressSpace.regionLimit) else { return MIMIC_ERR_NO_SPACE.rawValue }
            let storage = RegionStorage(count: Int(size))
            if let initial, size > 0 { storage.pointer.copyMemory(from: initial, byteCount: Int(size)) }
            let regionName = "\(state.library.name):" + (name.map { String(cString: $0) } ?? "region")
            let kind: RegionKind = flags & MIMIC_REGION_READ_ONLY.rawValue != 0 ? .readOnly : .plain
            guard let base = try? process.memory.map(storage, name: regionName, kind: kind) else {
                return MIMIC_ERR_NO_SPACE.rawValue
            }
            state.allocations.insert(base)
            address.pointee = base
            return ok
        }

    static let free: @convention(c) (UnsafeMutablePointer<mimic_call>?, UInt64) -> Int32 = { call, address in
        guard let (process, state) = state(call), state.allocations.contains(address) else { return invalid }
        guard (try? process.memory.unmap(address)) != nil else { return invalid }
        state.allocations.remove(address)
        return ok
    }

    static let fail: @convention(c) (UnsafeMutablePointer<mimic_call>?, Int32, UnsafePointer<CChar>?) -> Void = {
        call, status, message in
        guard let call, let (_, state) = state(call) else { return }
        state.failure = (status, message.map { String(cString: $0) })
        call.pointee.host_flags |= failedFlag
    }

    static let requestExit: @convention(c) (UnsafeMutablePointer<mimic_call>?) -> Void = { call in
        guard let call, process(call) != nil else { return }
        call.pointee.host_flags |= exitFlag
    }

    static let log: @convention(c) (UnsafeMutablePointer<mimic_call>?, Int32, UnsafePointer<CChar>?) -> Void = {
        call, level, message in
        let text = message.map { String(cString: $0) } ?? ""
        let logLevel = PluginLogLevel(rawValue: level) ?? .info
        if let (_, state) = state(call) {
            let entry = PluginLogMessage(
                plugin: state.library.name, level: logLevel, message: text, processID: state.id)
            if state.messages.count >= PluginProcessState.messageLimit { state.messages.removeFirst() }
            state.messages.append(entry)
            PluginLog.handler(entry)
        } else {
            let plugin = PluginLog.loading.withLock { $0 } ?? "(unknown)"
            PluginLog.handler(PluginLogMessage(plugin: plugin, level: logLevel, message: text, processID: nil))
        }
    }

    // MARK: ABI 1.1

    /// The VMs of live plugin instances, by the instance id `host->map_shared` receives.
    static let instanceVMs = Mutex<[UInt64: WeakVM]>([:])

    /// The region kind and placement `flags` (mimic_region_flags) ask for, or nil for bits that
    /// are not allowed: `extra` is the one flag besides READ_ONLY the service accepts.
    static func regionKind(_ flags: UInt32, allowing extra: UInt32) -> RegionKind? {
        guard flags & ~(MIMIC_REGION_READ_ONLY.rawValue | extra) == 0 else { return nil }
        if flags & MIMIC_REGION_RING.rawValue != 0 {
            return flags & MIMIC_REGION_READ_ONLY.rawValue != 0 ? nil : .ring
        }
        return flags & MIMIC_REGION_READ_ONLY.rawValue != 0 ? .readOnly : .plain
    }

    /// Storage over plugin memory, after checking what the plugin passed.
    static func borrowedStorage(_ pointer: UnsafeMutableRawPointer?, _ size: UInt64, limit: Int) -> RegionStorage? {
        guard let pointer, size <= UInt64(limit) else { return nil }
        return RegionStorage(borrowing: pointer, count: Int(size))
    }

    static let mapShared:
        @convention(c) (
            UInt64, UnsafeMutableRawPointer?, UInt64, UInt32, UnsafePointer<CChar>?,
            UnsafeMutablePointer<UInt64>?
        ) -> Int32 = {
            instanceID, pointer, size, flags, name, address in
            guard let address, let kind = regionKind(flags, allowing: MIMIC_REGION_RING.rawValue),
                let vm = instanceVMs.withLock({ $0[instanceID]?.vm })
            else { return invalid }
            guard let storage = borrowedStorage(pointer, size, limit: AddressSpace.regionLimit) else {
                return pointer == nil ? invalid : MIMIC_ERR_NO_SPACE.rawValue
            }
            guard
                let base = try? vm.mapShared(
                    storage, name: name.map { String(cString: $0) } ?? "plugin region", kind: kind)
            else {
                return MIMIC_ERR_NO_SPACE.rawValue
            }
            address.pointee = base
            return ok
        }

    static let mapRegion:
        @convention(c) (
            UnsafeMutablePointer<mimic_call>?, UnsafeMutableRawPointer?, UInt64, UInt32,
            UnsafePointer<CChar>?, UnsafeMutablePointer<UInt64>?
        ) -> Int32 = {
            call, pointer, size, flags, name, address in
            guard let (process, state) = state(call), let address,
                let kind = regionKind(flags, allowing: MIMIC_REGION_LOW32.rawValue)
            else { return invalid }
            let low32 = flags & MIMIC_REGION_LOW32.rawValue != 0
            guard
                let storage = borrowedStorage(
                    pointer, size, limit: low32 ? AddressSpace.lowWindowLimit : AddressSpace.regionLimit)
            else {
                return pointer == nil ? invalid : MIMIC_ERR_NO_SPACE.rawValue
            }
            let regionName = name.map { String(cString: $0) } ?? "\(state.library.name) region"
            guard
                let base = try? process.memory.map(
                    storage, name: regionName, kind: kind, placement: low32 ? .low32 : .anywhere)
            else {
                return MIMIC_ERR_NO_SPACE.rawValue
            }
            state.mappedRegions.insert(base)
            address.pointee = base
            return ok
        }

    static let unmapRegion: @convention(c) (UnsafeMutablePointer<mimic_call>?, UInt64) -> Int32 = { call, address in
        guard let (process, state) = state(call), state.mappedRegions.contains(address) else { return invalid }
        state.mappedRegions.remove(address)
        guard (try? process.memory.unmap(address)) != nil else { return invalid }
        return ok
    }

    static let callFunction:
        @convention(c) (
            UnsafeMutablePointer<mimic_call>?, UInt64, UnsafePointer<UInt64>?,
            UnsafeMutablePointer<UInt64>?
        ) -> Int32 = { call, slot, arguments, result in
            guard let (process, state) = state(call), let arguments, let result, slot <= UInt64(Int32.max),
                process.program.functionEntries.contains(Int(slot))
            else { return invalid }
            do throws(ExecutionError) {
                result.pointee = try process.callFunction(
                    at: Int(slot), arguments: Array(UnsafeBufferPointer(start: arguments, count: 5)))
                return ok
            } catch {
                state.callbackError = error
                return MIMIC_ERR_CALLBACK.rawValue
            }
        }

    static let tailCall: @convention(c) (UnsafeMutablePointer<mimic_call>?, UInt64) -> Int32 = { call, programID in
        guard let call, let (process, state) = state(call), let program = state.instance?.program(id: programID),
            program.vm === process.vm
        else { return invalid }
        guard process.tailCallCount < process.vm.configuration.tailCallLimit else { return MIMIC_ERR_LIMIT.rawValue }
        state.tailCallTarget = program
        call.pointee.host_flags |= tailCallFlag
        return ok
    }

    static let setPacket: @convention(c) (UnsafeMutablePointer<mimic_call>?, UInt64, UInt64) -> Int32 = {
        call, address, length in
        guard let process = process(call), length <= UInt64(Int32.max) else { return invalid }
        process.packet = length == 0 && address == 0 ? nil : PacketBounds(address: address, length: Int(length))
        return ok
    }
}

/// A VM a plugin instance serves, held weakly (the VM owns its emulator, not the reverse).
struct WeakVM {
    weak var vm: VM?
}
