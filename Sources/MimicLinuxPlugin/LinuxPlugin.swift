// MimicLinux as a plugin library: `libMimicLinuxPlugin.so` exports `mimic_plugin_entry` and offers
// every helper, map type and context of the Linux emulator through the C ABI of mimic_plugin.h.
//
// The library has its own copy of MimicCore and MimicLinux (Swift types do not cross dlopen). Its
// world mirrors the host's VM memory at identical addresses:
//
// - Each host VM gets an instance (`Instance`): a LinuxEmulator and a VM of this world whose shared
//   regions are placed by the host (`host->map_shared`, `SharedRegions`). Map values, ring buffers
//   and adopted global data therefore have the same VM address on both sides: the host's program
//   reads and writes the plugin's bytes directly.
// - Each host process gets a "shadow" process of this world (`ShadowProcess`) on which helpers and
//   contexts run. Its own regions (contexts, packet buffers, scratch keys) are mapped into the host
//   process first (`host->map_region`) and then here at the same address; every other address
//   (the host's stack, host allocations) is reached through the host's memory services
//   (`AddressSpace.foreign`). Callbacks (bpf_loop) run in the host program (`host->call_function`),
//   tail calls jump to host programs (`host->tail_call`).
//
// See Docs/Plugins.md, "MimicLinux as a plugin".

import CMimicPlugin
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import MimicCore
import MimicLinux
import MimicMemory
import Synchronization

/// The exported entry point.
@_cdecl("mimic_plugin_entry")
public func mimicPluginEntry(_ host: UnsafePointer<mimic_host>?) -> UnsafePointer<mimic_plugin>? {
    guard let host else { return nil }
    guard host.pointee.abi_major == UInt32(MIMIC_PLUGIN_ABI_MAJOR) else {
        host.pointee.log?(
            nil, Int32(MIMIC_LOG_ERROR.rawValue),
            "linux plugin: host ABI \(host.pointee.abi_major) is not \(MIMIC_PLUGIN_ABI_MAJOR)")
        return nil
    }
    LinuxPlugin.legacyHost = host
    return LinuxPlugin.descriptor
}

/// The plugin's description and its C callbacks.
enum LinuxPlugin {
    /// An emulator to list helper ids and names from.
    static let template = LinuxEmulator()

    /// Every helper id the Linux emulator answers (emulated ones, and the replay stand-ins that
    /// a captured context's records answer), as a statically linked `LinuxEmulator` does.
    static let helperIDs: [Int32] = (0..<4096).filter { template.helper(id: $0) != nil }

    /// The map types `LinuxEmulator.createMap` emulates (objects may define the kernel's other
    /// types too: they get placeholders, which only fail when a program uses them).
    static let mapTypes: [MapType] = MapType.known.filter(LinuxEmulator.emulates)

    /// The description the entry returns, built once and never freed.
    nonisolated(unsafe) static let descriptor: UnsafePointer<mimic_plugin> = {
        let helpers = UnsafeMutablePointer<mimic_helper>.allocate(capacity: max(helperIDs.count, 1))
        for (i, id) in helperIDs.enumerated() {
            let name = HelperID(rawValue: id).kernelName ?? "bpf_helper_\(id)"
            helpers[i] = mimic_helper(
                id: id, flags: 0, name: UnsafePointer(strdup(name)), function: callHelper, data: nil)
        }
        let types = UnsafeMutablePointer<mimic_map_type>.allocate(capacity: mapTypes.count)
        for (i, type) in mapTypes.enumerated() {
            types[i] = mimic_map_type(type: type.rawValue, flags: 0, name: UnsafePointer(strdup(type.cName)))
        }
        var plugin = mimic_plugin()
        plugin.abi_major = UInt32(MIMIC_PLUGIN_ABI_MAJOR)
        plugin.abi_minor = UInt32(MIMIC_PLUGIN_ABI_MINOR)
        plugin.size = UInt32(MemoryLayout<mimic_plugin>.size)
        plugin.name = UnsafePointer(strdup("linux"))
        plugin.version = UnsafePointer(strdup("0.2.0"))
        plugin.description = UnsafePointer(strdup("MimicLinux: the Linux kernel's helpers, maps and contexts"))
        plugin.helper_count = UInt32(helperIDs.count)
        plugin.helpers = UnsafePointer(helpers)
        plugin.map_type_count = UInt32(mapTypes.count)
        plugin.map_types = UnsafePointer(types)
        plugin.process_start = processStart
        plugin.process_end = processEnd
        plugin.instance_create = instanceCreate
        plugin.instance_destroy = instanceDestroy
        plugin.process_reset = processReset
        plugin.create_map = PluginMaps.createMap
        plugin.resolve_ld_imm64 = PluginMaps.resolveLoadImm64
        plugin.adopt_global_data = PluginMaps.adoptGlobalData
        plugin.set_slot = PluginMaps.setSlot
        plugin.map_count = PluginMaps.mapCount
        plugin.map_info = PluginMaps.mapInfo
        plugin.map_lookup = PluginMaps.lookup
        plugin.map_update = PluginMaps.update
        plugin.map_delete = PluginMaps.delete
        plugin.map_next_key = PluginMaps.nextKey
        plugin.map_lookup_address = PluginMaps.lookupAddress
        plugin.map_pop_record = PluginMaps.popRecord
        plugin.attach_context = PluginContexts.attach
        plugin.context_result = PluginContexts.result
        let pointer = UnsafeMutablePointer<mimic_plugin>.allocate(capacity: 1)
        pointer.initialize(to: plugin)
        return UnsafePointer(pointer)
    }()

    /// Copies `text` into a caller's error buffer (truncated, always NUL-terminated).
    static func copy(_ text: String, to buffer: UnsafeMutablePointer<CChar>?, capacity: Int) {
        guard let buffer, capacity > 0 else { return }
        let bytes = Array(text.utf8.prefix(capacity - 1))
        for (i, byte) in bytes.enumerated() { buffer[i] = CChar(bitPattern: byte) }
        buffer[bytes.count] = 0
    }

    // MARK: Instances and processes

    static let instanceCreate:
        @convention(c) (
            UnsafePointer<mimic_host>?, UInt64, UnsafePointer<CChar>?,
            UnsafeMutablePointer<CChar>?, Int
        ) -> UnsafeMutableRawPointer? = {
            host, id, options, errorBuffer, capacity in
            guard let host else { return nil }
            do throws(PluginFailure) {
                let configuration = try Instance.configuration(options: options.map { String(cString: $0) } ?? "")
                let instance = try Instance(host: host, id: id, configuration: configuration)
                return Unmanaged.passRetained(instance).toOpaque()
            } catch {
                copy(error.description, to: errorBuffer, capacity: capacity)
                return nil
            }
        }

    static let instanceDestroy: @convention(c) (UnsafePointer<mimic_host>?, UnsafeMutableRawPointer?) -> Void = {
        _, data in
        guard let data else { return }
        Unmanaged<Instance>.fromOpaque(data).release()
    }

    static let processStart: @convention(c) (UnsafePointer<mimic_host>?, UInt64, UInt32) -> UnsafeMutableRawPointer? = {
        host, _, vcpu in
        guard let host else { return nil }
        return Unmanaged.passRetained(ProcessHolder(host: host, vCPU: Int(vcpu))).toOpaque()
    }

    static let processEnd: @convention(c) (UnsafePointer<mimic_host>?, UInt64, UnsafeMutableRawPointer?) -> Void = {
        _, _, data in
        guard let data else { return }
        Unmanaged<ProcessHolder>.fromOpaque(data).release()
    }

    static let processReset: @convention(c) (UnsafePointer<mimic_host>?, UnsafeMutablePointer<mimic_call>?) -> Void = {
        _, call in
        guard let call, let data = call.pointee.process_data else { return }
        Unmanaged<ProcessHolder>.fromOpaque(data).takeUnretainedValue().shadow?.reset()
    }

    /// The instance a call belongs to: the one the host created for its VM, or, for a host that
    /// predates instances (ABI 1.0), a shared one without maps.
    static func instance(of call: UnsafeMutablePointer<mimic_call>) -> Instance? {
        if MemoryLayout<mimic_call>.offset(of: \mimic_call.instance_data).map({ Int(call.pointee.size) >= $0 + 8 })
            == true,
            let data = call.pointee.instance_data
        {
            return Unmanaged<Instance>.fromOpaque(data).takeUnretainedValue()
        }
        return legacyInstance
    }

    /// The host table the entry received (immutable, valid forever; set before any callback).
    nonisolated(unsafe) static var legacyHost: UnsafePointer<mimic_host>?
    /// The instance for ABI 1.0 hosts: helpers only (256 CPUs, so any host vCPU is accepted).
    static let legacyInstance: Instance? = legacyHost.flatMap {
        try? Instance(host: $0, id: 0, configuration: LinuxConfiguration(cpuCount: 256))
    }

    /// The shadow process behind a call, created on first use; or the reason there is none.
    static func shadow(of call: UnsafeMutablePointer<mimic_call>, host: UnsafePointer<mimic_host>) -> Result<
        ShadowProcess, PluginFailure
    > {
        guard let data = call.pointee.process_data else {
            return .failure(PluginFailure("the Linux plugin has no state for this process"))
        }
        let holder = Unmanaged<ProcessHolder>.fromOpaque(data).takeUnretainedValue()
        if let shadow = holder.shadow { return .success(shadow) }
        guard let instance = instance(of: call) else {
            return .failure(PluginFailure("the Linux plugin has no instance for this VM"))
        }
        do {
            let shadow = try ShadowProcess(instance: instance, vCPU: holder.vCPU)
            holder.shadow = shadow
            return .success(shadow)
        } catch {
            return .failure(PluginFailure("the Linux plugin could not set up this process: \(error)"))
        }
    }

    // MARK: Helpers

    /// Every helper's C function: runs the Linux helper `call->helper_id` on the shadow process.
    static let callHelper: mimic_helper_fn = { host, call, r1, r2, r3, r4, r5 in
        guard let host, let call else { return 0 }
        let services = host.pointee
        let shadow: ShadowProcess
        switch LinuxPlugin.shadow(of: call, host: host) {
        case .success(let found): shadow = found
        case .failure(let failure):
            services.fail?(call, 0, failure.description)
            return 0
        }
        guard let helper = shadow.instance.helpers[call.pointee.helper_id] else {
            services.fail?(
                call, MIMIC_ERR_UNSUPPORTED.rawValue, "the Linux plugin does not offer helper \(call.pointee.helper_id)"
            )
            return 0
        }
        return shadow.run(helper, call: call, arguments: (r1, r2, r3, r4, r5))
    }
}

/// A failure to report to the host.
struct PluginFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What process_start returns: the host process's vCPU and, once a call needed it, its shadow.
final class ProcessHolder {
    let vCPU: Int
    var shadow: ShadowProcess?

    init(host: UnsafePointer<mimic_host>, vCPU: Int) {
        self.vCPU = vCPU
    }
}

/// The plugin's world for one host VM: a Linux emulator whose maps live in a VM whose shared
/// regions the host places, so they have the host's addresses.
final class Instance: @unchecked Sendable {
    let host: UnsafePointer<mimic_host>
    let emulator: LinuxEmulator
    let vm: VM
    /// A one-instruction program (`exit`) that shadow processes are created for; never run.
    let program: Program
    /// The emulator's helpers by id, resolved once.
    let helpers: [Int32: Helper]

    /// Guards `standIns`, `hostIDs`, `names` and `pendingRecords`.
    private let lock = Mutex(())
    /// Stand-in programs (in this world's prog arrays) for host programs, by host program id.
    private var standIns: [UInt64: Program] = [:]
    private var hostIDs: [ObjectIdentifier: UInt64] = [:]
    /// Map names as C strings for map_info, by handle (freed with the instance).
    private var names: [UInt64: UnsafeMutablePointer<CChar>] = [:]
    /// Records taken out of a map but not yet handed to the host (map_pop_record).
    private var pendingRecords: [UInt64: [(cpu: Int32, data: [UInt8])]] = [:]

    init(host: UnsafePointer<mimic_host>, id: UInt64, configuration: LinuxConfiguration) throws(PluginFailure) {
        self.host = host
        emulator = LinuxEmulator(configuration: configuration)
        // Hosts of ABI 1.1 place shared regions; older ones cannot (helpers only, no maps).
        let broker: SharedRegions? =
            id != 0 && hasService(host, \.map_shared) ? SharedRegions(host: host, instanceID: id) : nil
        vm = VM(emulator: emulator, sharedRegionBroker: broker)
        do {
            program = try vm.load(bytecode: [0x95, 0, 0, 0, 0, 0, 0, 0], name: "linux-plugin")
        } catch {
            throw PluginFailure("cannot load the shadow program: \(error)")
        }
        var helpers: [Int32: Helper] = [:]
        for id in LinuxPlugin.helperIDs {
            if let helper = emulator.helper(id: id) { helpers[id] = helper }
        }
        self.helpers = helpers
    }

    deinit {
        for name in names.values { free(name) }
    }

    /// The emulator settings `options` asks for: `cpus=N` (default the host's CPUs, as
    /// `LinuxEmulator()`) and `seed=N` (the `bpf_get_prandom_u32` seed; default the clock),
    /// separated by commas or spaces.
    static func configuration(options: String) throws(PluginFailure) -> LinuxConfiguration {
        var configuration = LinuxConfiguration()
        for item in options.split(whereSeparator: { $0 == "," || $0 == " " }) {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw PluginFailure("option \"\(item)\" is not name=value (known: cpus, seed)")
            }
            switch parts[0] {
            case "cpus":
                guard let count = Int(parts[1]), (1...4096).contains(count) else {
                    throw PluginFailure("option cpus: expected 1...4096, got \(parts[1])")
                }
                configuration.cpuCount = count
            case "seed":
                guard let seed = UInt64(parts[1]) else {
                    throw PluginFailure("option seed: expected an unsigned number, got \(parts[1])")
                }
                configuration.randomSeed = seed
            default:
                throw PluginFailure("unknown option \(parts[0]) (known: cpus, seed)")
            }
        }
        return configuration
    }

    /// The stand-in program a prog array holds for host program `id`, made on first use.
    func standIn(forHostProgram id: UInt64) throws(PluginFailure) -> Program {
        if let program = lock.withLock({ _ in standIns[id] }) { return program }
        let program: Program
        do {
            program = try vm.load(bytecode: [0x95, 0, 0, 0, 0, 0, 0, 0], name: "host program \(id)")
        } catch {
            throw PluginFailure("cannot load a stand-in program: \(error)")
        }
        return lock.withLock { _ in
            if let existing = standIns[id] { return existing }
            standIns[id] = program
            hostIDs[ObjectIdentifier(program)] = id
            return program
        }
    }

    /// The host program id a stand-in stands for.
    func hostProgramID(of program: Program) -> UInt64? { lock.withLock { _ in hostIDs[ObjectIdentifier(program)] } }

    /// The map's name as a C string that lives as long as the instance.
    func cName(of map: any BPFMap) -> UnsafePointer<CChar>? {
        lock.withLock { _ in
            if let name = names[map.handle] { return UnsafePointer(name) }
            guard let name = strdup(map.name) else { return nil }
            names[map.handle] = name
            return UnsafePointer(name)
        }
    }

    /// Takes the next record of `map` (refilling from the map when none is pending).
    func withPendingRecords<R>(of handle: UInt64, _ body: (inout [(cpu: Int32, data: [UInt8])]) -> R) -> R {
        lock.withLock { _ in body(&pendingRecords[handle, default: []]) }
    }
}

/// Whether the host has service `field` (`MIMIC_HOST_HAS`).
func hasService<T>(_ host: UnsafePointer<mimic_host>, _ field: KeyPath<mimic_host, T>) -> Bool {
    guard let offset = MemoryLayout<mimic_host>.offset(of: field) else { return false }
    return Int(host.pointee.size) >= offset + MemoryLayout<UnsafeRawPointer>.size
}

/// The region flags (`mimic_region_flags`) of a kind and placement.
func regionFlags(_ kind: RegionKind, _ placement: Placement) -> UInt32 {
    var flags: UInt32 = 0
    switch kind {
    case .plain: break
    case .readOnly: flags |= MIMIC_REGION_READ_ONLY.rawValue
    case .ring: flags |= MIMIC_REGION_RING.rawValue
    }
    if placement == .low32 { flags |= MIMIC_REGION_LOW32.rawValue }
    return flags
}

/// Places an instance VM's shared regions (maps, ring buffers) in the host VM's shared memory.
final class SharedRegions: RegionBroker, @unchecked Sendable {
    let host: UnsafePointer<mimic_host>
    let instanceID: UInt64

    init(host: UnsafePointer<mimic_host>, instanceID: UInt64) {
        self.host = host
        self.instanceID = instanceID
    }

    func place(_ storage: RegionStorage, name: String, kind: RegionKind, placement: Placement) throws(AddressSpaceError)
        -> UInt64
    {
        var address: UInt64 = 0
        let status =
            host.pointee.map_shared?(
                instanceID, storage.pointer, UInt64(storage.count), regionFlags(kind, placement),
                name, &address) ?? MIMIC_ERR_UNSUPPORTED.rawValue
        guard status == MIMIC_OK.rawValue else {
            throw .addressUnavailable(0, reason: "the host could not map \(name) (status \(status))")
        }
        return address
    }

    /// Shared regions live as long as the VM: nothing to tell the host.
    func release(_ base: UInt64) {}
}

/// A process of the plugin's world standing in for one host process.
final class ShadowProcess: CallbackBridge {
    let process: MimicCore.Process
    let instance: Instance
    let memory: HostMemory
    /// Trace lines already forwarded to the host's log.
    var forwardedTraceLines = 0
    /// The packet bounds the host was last told of.
    var reportedPacket: PacketBounds?
    /// Set when a callback the host ran failed during the current helper.
    var callbackFailed = false

    init(instance: Instance, vCPU: Int) throws(SetupError) {
        self.instance = instance
        process = try instance.vm.makeProcess(for: instance.program, vCPU: vCPU)
        memory = HostMemory(host: instance.host)
        // The shadow's stack is not the program's: the host's stack is reached as foreign memory.
        try? process.memory.unmap(process.stackBase)
        process.memory.foreign = memory
        if hasService(instance.host, \.map_region) { process.memory.broker = memory }
        state?.callbackBridge = self
    }

    /// The Linux emulator's state of the process (trace output, packet, redirect).
    var state: LinuxProcessState? { LinuxProcessState.of(process) }

    /// Starts over for a host process being reused: the host already unmapped this process's
    /// regions, so they go here without telling it.
    func reset() {
        let broker = process.memory.broker
        process.memory.broker = nil
        try? process.reset()
        process.memory.broker = broker
        state?.callbackBridge = self // kept by a recycled state, set again on a new one
        forwardedTraceLines = 0
        reportedPacket = nil
        callbackFailed = false
    }

    /// Runs `body` with `call` as the call services go through (restored after: helpers nest
    /// when a callback calls them).
    func serving<R>(_ call: UnsafeMutablePointer<mimic_call>, _ body: () -> R) -> R {
        let previous = memory.call
        memory.call = call
        defer { memory.call = previous }
        return body()
    }

    func run(
        _ helper: Helper, call: UnsafeMutablePointer<mimic_call>, arguments: (UInt64, UInt64, UInt64, UInt64, UInt64)
    ) -> UInt64 {
        serving(call) {
            let services = instance.host.pointee
            let registers = process.registers
            registers[1] = arguments.0
            registers[2] = arguments.1
            registers[3] = arguments.2
            registers[4] = arguments.3
            registers[5] = arguments.4
            callbackFailed = false
            let result: HelperResult
            do throws(HelperFailure) {
                result = try helper.function(process)
            } catch {
                forwardTrace(call)
                if error.code == .memory, let fault = error.fault {
                    // The host remembers the fault it reported: let it describe it, exactly.
                    services.fail?(call, HostMemory.status(of: fault.reason), nil)
                } else if error.code == .unsupported {
                    services.fail?(call, MIMIC_ERR_UNSUPPORTED.rawValue, error.message)
                } else {
                    services.fail?(call, callbackFailed ? MIMIC_ERR_CALLBACK.rawValue : 0, error.description)
                }
                return 0
            }
            forwardTrace(call)
            syncToHost(call, arguments: arguments)
            switch result {
            case .value(let value):
                return value
            case .exit(let value):
                services.request_exit?(call)
                return value
            case .tailCall(let program):
                guard let id = instance.hostProgramID(of: program) else {
                    services.fail?(call, 0, "program \(program.name) is not a program of the host")
                    return 0
                }
                let status = services.tail_call?(call, id) ?? MIMIC_ERR_UNSUPPORTED.rawValue
                switch status {
                case MIMIC_OK.rawValue:
                    return 0
                case MIMIC_ERR_LIMIT.rawValue:
                    // The kernel falls through once the limit is reached.
                    return UInt64(bitPattern: -2) // -ENOENT, as the static bpf_tail_call returns
                default:
                    services.fail?(call, status, "the host refused the tail call to its program \(id)")
                    return 0
                }
            }
        }
    }

    /// Tells the host what the helper changed beyond memory: argument registers a replayed call
    /// set, and where the packet now lives.
    func syncToHost(_ call: UnsafeMutablePointer<mimic_call>, arguments: (UInt64, UInt64, UInt64, UInt64, UInt64)?) {
        let services = instance.host.pointee
        let registers = process.registers
        let before = arguments.map { [$0.0, $0.1, $0.2, $0.3, $0.4] }
        for index in 1...5 where before == nil || registers[index] != before?[index - 1] {
            _ = services.set_register?(call, UInt32(index), registers[index])
        }
        if process.packet != reportedPacket, hasService(instance.host, \.set_packet) {
            reportedPacket = process.packet
            _ = services.set_packet?(call, process.packet?.address ?? 0, UInt64(process.packet?.length ?? 0))
        }
    }

    /// Sends trace output the helper produced to the host's log.
    func forwardTrace(_ call: UnsafeMutablePointer<mimic_call>) {
        guard let state, state.traceOutput.count > forwardedTraceLines else { return }
        for line in state.traceOutput[forwardedTraceLines...] {
            instance.host.pointee.log?(call, Int32(MIMIC_LOG_TRACE.rawValue), line)
        }
        forwardedTraceLines = state.traceOutput.count
    }

    /// Runs a callback of the host program (`CallbackBridge`).
    func callFunction(at slot: Int, arguments: [UInt64], of process: MimicCore.Process) throws(ExecutionError) -> UInt64
    {
        func failure(_ kind: ExecutionError.Kind) -> ExecutionError {
            ExecutionError(kind, pc: slot, instruction: nil, programName: "host program")
        }
        guard let call = memory.call, let callFunction = instance.host.pointee.call_function,
            hasService(instance.host, \.call_function)
        else {
            throw failure(.unsupported("the host cannot run program callbacks for plugins (ABI 1.0)"))
        }
        var padded = arguments + [UInt64](repeating: 0, count: max(0, 5 - arguments.count))
        var result: UInt64 = 0
        let status = padded.withUnsafeMutableBufferPointer { callFunction(call, UInt64(slot), $0.baseAddress, &result) }
        switch status {
        case MIMIC_OK.rawValue:
            return result
        case MIMIC_ERR_CALLBACK.rawValue:
            callbackFailed = true
            throw failure(.unsupported("the callback stopped with an error (reported by the host)"))
        default:
            throw failure(.invalidCallTarget(Program.functionAddressTag | UInt64(slot)))
        }
    }
}

/// The host's VM memory, reached through its read and write services; and the broker that maps a
/// shadow process's regions into the host process first.
final class HostMemory: ForeignMemory, RegionBroker {
    let host: UnsafePointer<mimic_host>
    /// The call being served (the services need it); nil between calls.
    var call: UnsafeMutablePointer<mimic_call>?

    init(host: UnsafePointer<mimic_host>) { self.host = host }

    func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(MemoryFault) {
        let status =
            host.pointee.read?(call, address, buffer.baseAddress, UInt64(buffer.count))
            ?? MIMIC_ERR_UNSUPPORTED.rawValue
        if status != MIMIC_OK.rawValue { throw HostMemory.fault(status, .read, address, buffer.count) }
    }

    func write(_ address: UInt64, from buffer: UnsafeRawBufferPointer) throws(MemoryFault) {
        let status =
            host.pointee.write?(call, address, buffer.baseAddress, UInt64(buffer.count))
            ?? MIMIC_ERR_UNSUPPORTED.rawValue
        if status != MIMIC_OK.rawValue { throw HostMemory.fault(status, .write, address, buffer.count) }
    }

    func place(_ storage: RegionStorage, name: String, kind: RegionKind, placement: Placement) throws(AddressSpaceError)
        -> UInt64
    {
        guard let call else { throw .addressUnavailable(0, reason: "\(name) is mapped outside a call of the host") }
        var address: UInt64 = 0
        let status =
            host.pointee.map_region?(
                call, storage.pointer, UInt64(storage.count), regionFlags(kind, placement),
                name, &address) ?? MIMIC_ERR_UNSUPPORTED.rawValue
        guard status == MIMIC_OK.rawValue else {
            if placement == .low32 { throw .lowWindowOccupied(by: "a region of the host process") }
            throw .addressUnavailable(0, reason: "the host could not map \(name) (status \(status))")
        }
        return address
    }

    func release(_ base: UInt64) {
        guard let call else { return }
        _ = host.pointee.unmap_region?(call, base)
    }

    /// A fault for a failed service call (the host keeps the full description with the region).
    static func fault(_ status: Int32, _ access: MemoryAccess, _ address: UInt64, _ size: Int) -> MemoryFault {
        let reason: MemoryFault.Reason
        switch status {
        case MIMIC_ERR_OUT_OF_BOUNDS.rawValue: reason = .outOfBounds
        case MIMIC_ERR_READ_ONLY.rawValue: reason = .readOnly
        default: reason = .unmapped
        }
        return MemoryFault(reason: reason, access: access, address: address, size: size, region: nil)
    }

    static func status(of reason: MemoryFault.Reason) -> Int32 {
        switch reason {
        case .unmapped: MIMIC_ERR_UNMAPPED.rawValue
        case .outOfBounds, .misaligned: MIMIC_ERR_OUT_OF_BOUNDS.rawValue
        case .readOnly: MIMIC_ERR_READ_ONLY.rawValue
        }
    }
}
