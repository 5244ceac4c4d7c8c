// MimicLinux as a plugin library: `libMimicLinuxPlugin.so` exports `mimic_plugin_entry` and offers
// the Linux helpers that need only registers and VM memory through the C ABI of mimic_plugin.h.
//
// The library has its own copy of MimicCore and MimicLinux (Swift types do not cross dlopen), so
// it runs each helper on a process of its own world: a "shadow" process per host process, whose
// address space holds no regions and forwards every access to the host's bounds-checked memory
// services (`AddressSpace.foreign`). Maps and contexts live in the host's world and are not
// reachable from here; see Docs/Plugins.md, "MimicLinux as a plugin".

import CMimicPlugin
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import MimicCore
import MimicLinux
import MimicMemory

/// The exported entry point.
@_cdecl("mimic_plugin_entry")
public func mimicPluginEntry(_ host: UnsafePointer<mimic_host>?) -> UnsafePointer<mimic_plugin>? {
    guard let host else { return nil }
    guard host.pointee.abi_major == UInt32(MIMIC_PLUGIN_ABI_MAJOR) else {
        host.pointee.log?(nil, Int32(MIMIC_LOG_ERROR.rawValue), "linux plugin: host ABI \(host.pointee.abi_major) is not \(MIMIC_PLUGIN_ABI_MAJOR)")
        return nil
    }
    return LinuxPlugin.descriptor
}

/// The plugin's state: one Linux emulator, a VM to make shadow processes in, the helper table.
enum LinuxPlugin {
    /// The helpers offered: those that need only their arguments, VM memory and the emulator's
    /// per-process state (trace output, clock, task identity). Map, ring buffer, packet,
    /// tail-call and callback helpers (bpf_loop) need the host's maps, contexts or program and
    /// are left out.
    static let helperIDs: [Int32] = [
        4, 5, 6, 7, 8, 14, 15, 16, 28, 42, 45, 105, 106, 112, 113, 114, 115, 125, 160, 165, 177,
    ]

    /// The emulator the helpers come from; 256 CPUs so any host vCPU number is accepted.
    static let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 256))
    static let vm = VM(emulator: emulator)
    /// A one-instruction program (`exit`) that shadow processes are created for; never run.
    static let program: Program? = try? vm.load(bytecode: [0x95, 0, 0, 0, 0, 0, 0, 0], name: "linux-plugin")

    /// The helpers by id, resolved once.
    static let helpers: [Int32: Helper] = {
        var table: [Int32: Helper] = [:]
        for id in helperIDs {
            if let helper = emulator.helper(id: id) { table[id] = helper }
        }
        return table
    }()

    /// The description the entry returns, built once and never freed.
    nonisolated(unsafe) static let descriptor: UnsafePointer<mimic_plugin> = {
        let ids = helperIDs.filter { helpers[$0] != nil }
        let array = UnsafeMutablePointer<mimic_helper>.allocate(capacity: max(ids.count, 1))
        for (i, id) in ids.enumerated() {
            let name = LinuxHelpers.name(of: id) ?? "bpf_helper_\(id)"
            array[i] = mimic_helper(id: id, flags: 0, name: UnsafePointer(strdup(name)), function: callHelper, data: nil)
        }
        let plugin = UnsafeMutablePointer<mimic_plugin>.allocate(capacity: 1)
        plugin.initialize(to: mimic_plugin(
            abi_major: UInt32(MIMIC_PLUGIN_ABI_MAJOR), abi_minor: UInt32(MIMIC_PLUGIN_ABI_MINOR),
            size: UInt32(MemoryLayout<mimic_plugin>.size), flags: 0,
            name: UnsafePointer(strdup("linux")), version: UnsafePointer(strdup("0.1.0")),
            description: UnsafePointer(strdup("MimicLinux helpers that need only registers and VM memory")),
            helper_count: UInt32(ids.count), reserved0: 0, helpers: UnsafePointer(array),
            map_type_count: 0, reserved1: 0, map_types: nil,
            process_start: processStart, process_end: processEnd))
        return UnsafePointer(plugin)
    }()

    static let processStart: @convention(c) (UnsafePointer<mimic_host>?, UInt64, UInt32) -> UnsafeMutableRawPointer? = {
        host, _, vcpu in
        guard let host, let program, let process = try? vm.makeProcess(for: program, vCPU: Int(vcpu)) else { return nil }
        // No regions of its own: every address reaches the host's memory.
        try? process.memory.unmap(process.stackBase)
        let shadow = ShadowProcess(process: process, host: host)
        return Unmanaged.passRetained(shadow).toOpaque()
    }

    static let processEnd: @convention(c) (UnsafePointer<mimic_host>?, UInt64, UnsafeMutableRawPointer?) -> Void = {
        _, _, data in
        guard let data else { return }
        Unmanaged<ShadowProcess>.fromOpaque(data).release()
    }

    /// Every helper's C function: runs the Linux helper `call->helper_id` on the shadow process.
    static let callHelper: mimic_helper_fn = { host, call, r1, r2, r3, r4, r5 in
        guard let host, let call else { return 0 }
        let services = host.pointee
        guard let data = call.pointee.process_data else {
            services.fail?(call, 0, "the Linux plugin could not set up this process (vCPU \(call.pointee.vcpu))")
            return 0
        }
        guard let helper = helpers[call.pointee.helper_id] else {
            services.fail?(call, MIMIC_ERR_UNSUPPORTED.rawValue, "the Linux plugin does not offer helper \(call.pointee.helper_id)")
            return 0
        }
        let shadow = Unmanaged<ShadowProcess>.fromOpaque(data).takeUnretainedValue()
        return shadow.run(helper, call: call, host: host, arguments: (r1, r2, r3, r4, r5))
    }
}

/// A process of the plugin's world standing in for one host process.
final class ShadowProcess {
    let process: MimicCore.Process
    let memory: HostMemory
    /// The Linux emulator's state of `process` (trace output), looked up once.
    let state: LinuxProcessState?
    /// Trace lines already forwarded to the host's log.
    var forwardedTraceLines = 0

    init(process: MimicCore.Process, host: UnsafePointer<mimic_host>) {
        self.process = process
        memory = HostMemory(host: host)
        state = LinuxProcessState.of(process)
        process.memory.foreign = memory
    }

    func run(_ helper: Helper, call: UnsafeMutablePointer<mimic_call>, host: UnsafePointer<mimic_host>,
             arguments: (UInt64, UInt64, UInt64, UInt64, UInt64)) -> UInt64 {
        let services = host.pointee
        process.registers[1] = arguments.0
        process.registers[2] = arguments.1
        process.registers[3] = arguments.2
        process.registers[4] = arguments.3
        process.registers[5] = arguments.4
        memory.call = call
        defer { memory.call = nil }
        let result: HelperResult
        do {
            result = try helper.function(process)
        } catch {
            forwardTrace(call: call, host: host)
            switch error {
            case .memory(let fault):
                // The host remembers the fault it reported: let it describe it, exactly.
                services.fail?(call, HostMemory.status(of: fault.reason), nil)
            case .unsupported(let text):
                services.fail?(call, MIMIC_ERR_UNSUPPORTED.rawValue, text)
            default:
                services.fail?(call, 0, error.description)
            }
            return 0
        }
        forwardTrace(call: call, host: host)
        switch result {
        case .value(let value):
            return value
        case .exit(let value):
            services.request_exit?(call)
            return value
        case .tailCall:
            services.fail?(call, MIMIC_ERR_UNSUPPORTED.rawValue, "tail calls cannot cross the plugin boundary")
            return 0
        }
    }

    /// Sends trace output the helper produced to the host's log.
    private func forwardTrace(call: UnsafeMutablePointer<mimic_call>, host: UnsafePointer<mimic_host>) {
        guard let state, state.traceOutput.count > forwardedTraceLines else { return }
        for line in state.traceOutput[forwardedTraceLines...] {
            host.pointee.log?(call, Int32(MIMIC_LOG_TRACE.rawValue), line)
        }
        forwardedTraceLines = state.traceOutput.count
    }
}

/// The host's VM memory, reached through its read and write services.
final class HostMemory: ForeignMemory {
    let host: UnsafePointer<mimic_host>
    /// The call being served (the services need it); nil between calls.
    var call: UnsafeMutablePointer<mimic_call>?

    init(host: UnsafePointer<mimic_host>) { self.host = host }

    func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(MemoryFault) {
        let status = host.pointee.read?(call, address, buffer.baseAddress, UInt64(buffer.count)) ?? MIMIC_ERR_UNSUPPORTED.rawValue
        if status != MIMIC_OK.rawValue { throw HostMemory.fault(status, .read, address, buffer.count) }
    }

    func write(_ address: UInt64, from buffer: UnsafeRawBufferPointer) throws(MemoryFault) {
        let status = host.pointee.write?(call, address, buffer.baseAddress, UInt64(buffer.count)) ?? MIMIC_ERR_UNSUPPORTED.rawValue
        if status != MIMIC_OK.rawValue { throw HostMemory.fault(status, .write, address, buffer.count) }
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
