import Glibc
import MimicCore

/// A signal `bpf_send_signal` or `bpf_send_signal_thread` sent to the current task.
public struct SentSignal: Sendable, Equatable, CustomStringConvertible {
    /// The signal number (`SIGKILL` 9, `SIGUSR1` 10, ...).
    public var signal: UInt32
    /// True for `bpf_send_signal_thread` (the thread, `PIDTYPE_PID`), false for
    /// `bpf_send_signal` (the whole process, `PIDTYPE_TGID`).
    public var toThread: Bool
    /// The thread id (`toThread`) or process id the signal went to.
    public var target: UInt32

    public init(signal: UInt32, toThread: Bool, target: UInt32) {
        self.signal = signal
        self.toThread = toThread
        self.target = target
    }

    public var description: String { "signal \(signal) to \(toThread ? "thread" : "process") \(target)" }
}

/// Tracing helpers whose meaning does not need a kernel: `HelperID.jiffies64`,
/// `HelperID.ktimeGetTaiNs`, `HelperID.strncmp`, `HelperID.getFuncIp`,
/// `HelperID.getAttachCookie`, `HelperID.mapLookupPercpuElem`, `HelperID.perCpuPtr`,
/// `HelperID.thisCpuPtr`, and `HelperID.sendSignal`, `HelperID.sendSignalThread`,
/// `HelperID.overrideReturn`, which are recorded in the process's `LinuxProcessState`.
enum TracingHelpers {
    /// `CONFIG_HZ` when the kernel configuration does not give it (the kernel's Kconfig default).
    static let defaultHZ: UInt64 = 250
    /// The largest valid signal number (`_NSIG`).
    static let maxSignal: UInt32 = 64

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let hz = hz(emulator)
        let cpuCount = emulator.configuration.cpuCount
        let objects = emulator.kernelObjects
        return [
            LinuxHelper.make(.jiffies64) { call throws(HelperFailure) in jiffies64(call, hz: hz) },
            LinuxHelper.make(.ktimeGetTaiNs) { call throws(HelperFailure) in TimeHelpers.now(call, CLOCK_TAI) },
            // strncmp(s1, s2, s1_sz) as lib/string.c: unsigned bytes, -1 / 0 / 1.
            LinuxHelper.make(.strncmp) { call throws(HelperFailure) in
                let size = try call.size(2)
                var offset: UInt64 = 0
                while offset < UInt64(size) {
                    let a = try call.read(call.arg(1) &+ offset, count: 1)[0]
                    let b = try call.read(call.arg(3) &+ offset, count: 1)[0]
                    if a != b { return a < b ? UInt64(bitPattern: -1) : 1 }
                    if a == 0 { break }
                    offset += 1
                }
                return 0
            },
            LinuxHelper.make(.getFuncIp) { call throws(HelperFailure) in call.state?.environment.functionAddress ?? 0 },
            LinuxHelper.make(.getAttachCookie) { call throws(HelperFailure) in call.state?.environment.attachCookie ?? 0
            },
            LinuxHelper.make(.mapLookupPercpuElem) { [weak emulator] call throws(HelperFailure) in
                let map = try MapHelpers.map(emulator, call.process)
                guard [.perCPUArray, .perCPUHash, .lruPerCPUHash].contains(map.attributes.type) else {
                    throw .message("map \(map.name) is a \(map.attributes.type.cName), not a per-CPU hash or array")
                }
                let cpu = Int(call.arg32(3))
                guard cpu < cpuCount else { return 0 }
                let key = try call.read(call.arg(2), count: map.attributes.keySize)
                return map.lookupAddress(key: key, cpu: cpu) ?? 0
            },
            LinuxHelper.make(.perCpuPtr) { call throws(HelperFailure) in
                let object = try perCPUObject(call, objects)
                let cpu = UInt64(call.arg32(2))
                guard cpu < UInt64(cpuCount) else { return 0 }
                return object.address &+ cpu &* UInt64(object.size)
            },
            LinuxHelper.make(.thisCpuPtr) { call throws(HelperFailure) in
                let object = try perCPUObject(call, objects)
                return object.address &+ UInt64(call.process.vCPU) &* UInt64(object.size)
            },
            LinuxHelper.make(.sendSignal) { call throws(HelperFailure) in try sendSignal(call, toThread: false) },
            LinuxHelper.make(.sendSignalThread) { call throws(HelperFailure) in try sendSignal(call, toThread: true) },
            // The kernel sets the probed function's return value in pt_regs and makes it return
            // at once; Mimic records the value (the context is left as it is).
            LinuxHelper.make(.overrideReturn) { call throws(HelperFailure) in
                try call.linuxState().overriddenReturn = call.arg(2)
                return 0
            },
        ]
    }

    /// `CONFIG_HZ` of the emulated kernel (`defaultHZ` when the configuration does not give it).
    /// `get_jiffies_64()`: INITIAL_JIFFIES (-5 minutes, as a u32) plus the boot time in ticks.
    static func jiffies64(_ call: HelperCall, hz: UInt64) -> UInt64 {
        let nanoseconds = TimeHelpers.now(call, CLOCK_BOOTTIME)
        let initial = UInt64(UInt32(truncatingIfNeeded: 0 &- 300 &* hz))
        return initial &+ nanoseconds / 1_000_000_000 &* hz &+ nanoseconds % 1_000_000_000 &* hz / 1_000_000_000
    }

    static func hz(_ emulator: LinuxEmulator) -> UInt64 {
        emulator.configuration.kernel.values["CONFIG_HZ"].flatMap { UInt64($0) }.flatMap { $0 > 0 ? $0 : nil }
            ?? defaultHZ
    }

    /// The per-CPU kernel object whose address is argument 1 (the verifier allows only those).
    static func perCPUObject(_ call: HelperCall, _ objects: KernelObjects) throws(HelperFailure) -> KernelObjects.Object
    {
        guard let object = objects.perCPUObject(at: call.arg(1)) else {
            throw .message(
                "r1 (0x\(String(call.arg(1), radix: 16))) is not a per-CPU kernel variable (a __ksym that KernelConfig.symbols marks per-CPU)"
            )
        }
        return object
    }

    /// `bpf_send_signal_common` for the current task: `-EPERM` for init (tgid 1), `-EINVAL` for a
    /// signal above 64, nothing sent for signal 0 (only the permission check), else recorded.
    static func sendSignal(_ call: HelperCall, toThread: Bool) throws(HelperFailure) -> UInt64 {
        let state = try call.linuxState()
        let task = state.environment
        guard task.tgid != 1 else { return Errno.notPermitted.r0 }
        let signal = call.arg32(1)
        guard signal <= maxSignal else { return Errno.invalid.r0 }
        if signal != 0 {
            state.signals.append(
                SentSignal(signal: signal, toThread: toThread, target: toThread ? task.pid : task.tgid))
        }
        return 0
    }
}
