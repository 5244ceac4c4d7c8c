import MimicCore
import MimicMemory

/// The sysctl a `cgroup/sysctl` program sees (`struct bpf_sysctl_kern`): set it on the process's
/// `LinuxProcessState.sysctl` before the run; `bpf_sysctl_set_new_value` changes `newValue`.
public struct SysctlAccess: Sendable, Equatable {
    /// The sysctl's path under `/proc/sys`, with `/` separators (`net/ipv4/tcp_mem`).
    public var name: String
    /// The value being read or replaced, as text (`"4096\t16384\t4194304"`).
    public var currentValue: [UInt8]
    /// For a write: the value being written (nil for a read).
    public var newValue: [UInt8]?
    /// Whether a program replaced `newValue` (`new_updated`).
    public internal(set) var newValueUpdated = false

    public init(name: String, currentValue: [UInt8], newValue: [UInt8]? = nil) {
        self.name = name
        self.currentValue = currentValue
        self.newValue = newValue
    }
}

/// `HelperID.sysctlGetName`, `.sysctlGetCurrentValue`, `.sysctlGetNewValue`,
/// `.sysctlSetNewValue` (`kernel/bpf/cgroup.c`) over `LinuxProcessState.sysctl`, and
/// `HelperID.userRingbufDrain` (`kernel/bpf/ringbuf.c`) over `UserRingBufferMap`.
enum SysctlAndRingHelpers {
    /// `BPF_F_SYSCTL_BASE_NAME`.
    static let baseName: UInt64 = 1
    /// `BPF_MAX_USER_RINGBUF_SAMPLES`.
    static let maxSamples = 128 * 1024

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            // long bpf_sysctl_get_name(struct bpf_sysctl *ctx, char *buf, size_t buf_len, u64 flags)
            LinuxHelper.make(.sysctlGetName) { call throws(HelperFailure) in
                let sysctl = try access(call)
                let size = Int(call.arg32(3))
                guard call.arg(4) & ~baseName == 0, size > 0 else { return Errno.invalid.r0 }
                var name = Array(sysctl.name.utf8)
                if call.arg(4) & baseName != 0, let slash = name.lastIndex(of: UInt8(ascii: "/")) {
                    name = Array(name[(slash + 1)...])
                }
                // strscpy: at most size - 1 bytes and a NUL; -E2BIG when cut.
                let copied = Array(name.prefix(size - 1))
                try call.write(copied + [0], at: call.arg(2))
                return copied.count < name.count ? Errno.tooBig.r0 : UInt64(copied.count)
            },
            LinuxHelper.make(.sysctlGetCurrentValue) { call throws(HelperFailure) in
                try copyValue(call, try access(call).currentValue)
            },
            LinuxHelper.make(.sysctlGetNewValue) { call throws(HelperFailure) in
                let sysctl = try access(call)
                guard let newValue = sysctl.newValue else {
                    if call.arg(2) != 0 { try call.zero(call.arg(2), count: Int(call.arg32(3))) }
                    return Errno.invalid.r0
                }
                return try copyValue(call, newValue)
            },
            // long bpf_sysctl_set_new_value(struct bpf_sysctl *ctx, const char *buf, size_t buf_len)
            LinuxHelper.make(.sysctlSetNewValue) { call throws(HelperFailure) in
                let state = try call.linuxState()
                let sysctl = try access(call)
                let size = Int(call.arg32(3))
                guard let current = sysctl.newValue, !current.isEmpty, call.arg(2) != 0, size > 0,
                    size <= linuxPageSize - 1
                else { return Errno.invalid.r0 }
                state.sysctl?.newValue = try call.read(call.arg(2), count: size)
                state.sysctl?.newValueUpdated = true
                return 0
            },
            drain(emulator),
        ]
    }

    static func access(_ call: HelperCall) throws(HelperFailure) -> SysctlAccess {
        guard let sysctl = call.state?.sysctl else {
            throw .message("\(call.name) needs a sysctl (LinuxProcessState.sysctl): a cgroup/sysctl program's context")
        }
        return sysctl
    }

    /// `copy_sysctl_value`: the value NUL-padded to the buffer (its length), or cut with a NUL
    /// (`-E2BIG`).
    static func copyValue(_ call: HelperCall, _ value: [UInt8]) throws(HelperFailure) -> UInt64 {
        let buffer = call.arg(2)
        let size = Int(call.arg32(3))
        guard buffer != 0 else { return Errno.invalid.r0 }
        guard size > 0 else { return Errno.tooBig.r0 }
        guard !value.isEmpty else {
            try call.zero(buffer, count: size)
            return Errno.invalid.r0
        }
        if size > value.count {
            try call.write(value + [UInt8](repeating: 0, count: size - value.count), at: buffer)
            return UInt64(value.count)
        }
        try call.write(Array(value.prefix(size - 1)) + [0], at: buffer)
        return Errno.tooBig.r0
    }

    /// `long bpf_user_ringbuf_drain(struct bpf_map *map, void *callback_fn, void *ctx, u64 flags)`:
    /// calls `callback_fn(dynptr, ctx)` for each sample (a local dynptr over it) until one returns
    /// non-zero or the ring is empty; returns the samples drained, `-EINVAL` for flags other than
    /// `BPF_RB_NO_WAKEUP` / `BPF_RB_FORCE_WAKEUP`, `-EBUSY` while another drain runs.
    static func drain(_ emulator: LinuxEmulator) -> Helper {
        LinuxHelper.make(.userRingbufDrain) { [weak emulator] call throws(HelperFailure) in
            let ring = try MapHelpers.map(
                emulator, call.process, as: UserRingBufferMap.self, "a BPF_MAP_TYPE_USER_RINGBUF")
            guard call.arg(4) & ~UInt64(3) == 0 else { return Errno.invalid.r0 }
            guard ring.beginDrain() else { return Errno.busy.r0 }
            defer { ring.endDrain() }
            guard ring.pendingSamples > 0 else { return 0 }
            guard let slot = ProgramCallbacks.functionSlot(call.process, fromAddress: call.arg(2)) else {
                throw .message(
                    "r2 (0x\(String(call.arg(2), radix: 16))) is not a program function (load it with lddw BPF_PSEUDO_FUNC)"
                )
            }
            var drained: UInt64 = 0
            while drained < UInt64(maxSamples), let sample = ring.take() {
                // The dynptr (16 bytes) and the sample, in a region of their own for the callback.
                let storage = RegionStorage(count: 16 + max(sample.count, 1))
                let base: UInt64
                do {
                    base = try call.process.memory.map(storage, name: "user ringbuf sample")
                } catch {
                    throw .message("cannot map a user ring buffer sample: \(error)")
                }
                defer { try? call.process.memory.unmap(base) }
                let dynptr = Dynptrs.make(data: base + 16, type: Dynptrs.Kern.local, size: UInt64(sample.count))
                try call.write(dynptr.bytes + sample, at: base)
                drained += 1
                let result: UInt64
                do throws(ExecutionError) {
                    result = try ProgramCallbacks.call(call.process, at: slot, arguments: [base, call.arg(3)])
                } catch {
                    throw .callback(error)
                }
                if result != 0 { break }
            }
            return drained
        }
    }
}
