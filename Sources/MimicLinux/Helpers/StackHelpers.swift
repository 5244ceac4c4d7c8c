import MimicCore

/// The stacks `bpf_get_stack`, `bpf_get_task_stack` and `bpf_get_stackid` report: return
/// addresses, innermost first (what the kernel's `get_perf_callchain` collects).
public struct TaskStacks: Sendable, Equatable {
    /// The kernel stack (`BPF_F_USER_STACK` clear).
    public var kernel: [UInt64]
    /// The user stack (`BPF_F_USER_STACK`).
    public var user: [UInt64]

    public init(kernel: [UInt64] = [], user: [UInt64] = []) {
        self.kernel = kernel
        self.user = user
    }
}

/// `HelperID.getStack`, `.getTaskStack`, `.getStackid` (`kernel/bpf/stackmap.c`), over the
/// process's `LinuxProcessState.stacks`, and the local storage helpers `HelperID.taskStorageGet`
/// / `Delete`, `.inodeStorageGet` / `Delete`, `.cgrpStorageGet` / `Delete` over `LocalStorageMap`.
///
/// `bpf_get_task_stack` reports the current task's stacks whatever task it is given (Mimic's
/// processes describe one task). Build ids (`BPF_F_USER_BUILD_ID`) are not known: each entry is
/// `BPF_STACK_BUILD_ID_IP` with the address, as the kernel reports a frame it finds no build id for.
enum StackHelpers {
    static let skipMask: UInt64 = 0xFF
    static let userStack: UInt64 = 1 << 8
    static let userBuildID: UInt64 = 1 << 11
    /// `sizeof(struct bpf_stack_build_id)` and `BPF_STACK_BUILD_ID_IP`.
    static let buildIDEntrySize = 32
    static let buildIDStatusIP: UInt32 = 2
    /// `BPF_LOCAL_STORAGE_GET_F_CREATE`.
    static let create: UInt64 = 1

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            LinuxHelper.make(.getStack) { call throws(HelperFailure) in try stack(call, buffer: 2, size: 3, flags: 4) },
            LinuxHelper.make(.getTaskStack) { call throws(HelperFailure) in
                try stack(call, buffer: 2, size: 3, flags: 4)
            },
            // long bpf_get_stackid(void *ctx, struct bpf_map *map, u64 flags)
            LinuxHelper.make(.getStackid) { [weak emulator] call throws(HelperFailure) in
                let map = try MapHelpers.map(
                    emulator, call.process, argument: 2, as: StackTraceMap.self, "a BPF_MAP_TYPE_STACK_TRACE")
                let flags = call.arg(3)
                guard flags & ~(skipMask | userStack | StackTraceMap.fastCompare | StackTraceMap.reuseID) == 0 else {
                    return Errno.invalid.r0
                }
                let skip = Int(flags & skipMask)
                let maxDepth = min(map.depth + skip, StackTraceMap.maxDepth)
                let trace = Array(frames(call, user: flags & userStack != 0).prefix(maxDepth))
                guard trace.count > skip else { return Errno.fault.r0 }
                switch map.stackID(for: Array(trace[skip...]), flags: flags) {
                case .success(let id): return id
                case .failure(let errno): return errno.r0
                }
            },
        ] + storage(.taskStorageGet, .taskStorageDelete, .taskStorage, emulator)
            + storage(.inodeStorageGet, .inodeStorageDelete, .inodeStorage, emulator)
            + storage(.cgrpStorageGet, .cgrpStorageDelete, .cgrpStorage, emulator)
    }

    /// The stack the helpers report: what the host set on the process (`LinuxProcessState.stacks`),
    /// else the current task's (`TaskEnvironment.kernelStack` / `userStack`: an event's task of
    /// the emulated system, `tasks[].kernel_stack` / `user_stack`).
    static func frames(_ call: HelperCall, user: Bool) -> [UInt64] {
        guard let state = call.state else { return [] }
        if state.stacks != TaskStacks() { return user ? state.stacks.user : state.stacks.kernel }
        return user ? state.environment.userStack : state.environment.kernelStack
    }

    /// `__bpf_get_stack`: copies the trace (after `skip` frames) into the buffer, zero-filling the
    /// rest; returns the bytes copied, `-EINVAL` (bad flags or size: buffer cleared) or `-EFAULT`
    /// (no more frames than skipped: buffer cleared).
    static func stack(_ call: HelperCall, buffer: Int, size: Int, flags flagsArgument: Int) throws(HelperFailure)
        -> UInt64
    {
        let address = call.arg(buffer)
        let size = Int(call.arg32(size))
        let flags = call.arg(flagsArgument)
        let user = flags & userStack != 0
        let buildID = flags & userBuildID != 0
        func clear(_ errno: Errno) throws(HelperFailure) -> UInt64 {
            try call.zero(address, count: size)
            return errno.r0
        }
        guard flags & ~(skipMask | userStack | userBuildID) == 0, user || !buildID else { return try clear(.invalid) }
        let elementSize = buildID ? buildIDEntrySize : 8
        guard size % elementSize == 0 else { return try clear(.invalid) }
        let skip = Int(flags & skipMask)
        let maxDepth = min(size / elementSize + skip, StackTraceMap.maxDepth)
        let trace = Array(frames(call, user: user).prefix(maxDepth))
        guard trace.count >= skip else { return try clear(.fault) }
        let copied = Array(trace[skip...].prefix(size / elementSize))
        var bytes: [UInt8] = []
        for ip in copied {
            if buildID {
                bytes += littleEndianBytes(buildIDStatusIP) + [UInt8](repeating: 0, count: 20) + [0, 0, 0, 0]
            }
            bytes += withUnsafeBytes(of: ip.littleEndian, Array.init)
        }
        try call.zero(address, count: size)
        try call.write(bytes, at: address)
        return UInt64(bytes.count)
    }

    /// `bpf_<kind>_storage_get(map, owner, value, flags)` and `_delete(map, owner)`.
    static func storage(_ get: HelperID, _ delete: HelperID, _ type: MapType, _ emulator: LinuxEmulator) -> [Helper] {
        let what = "a \(type.cName)"
        return [
            LinuxHelper.make(get) { [weak emulator] call throws(HelperFailure) in
                let map = try MapHelpers.map(emulator, call.process, as: LocalStorageMap.self, what)
                guard map.attributes.type == type else { throw .message("map \(map.name) is not \(what)") }
                let owner = call.arg(2)
                let flags = call.arg(4)
                guard flags & ~create == 0, owner != 0 else { return 0 }
                let initial = call.arg(3) == 0 ? nil : try call.read(call.arg(3), count: map.attributes.valueSize)
                return map.value(owner: owner, create: flags & create != 0, initial: initial) ?? 0
            },
            LinuxHelper.make(delete) { [weak emulator] call throws(HelperFailure) in
                let map = try MapHelpers.map(emulator, call.process, as: LocalStorageMap.self, what)
                guard map.attributes.type == type else { throw .message("map \(map.name) is not \(what)") }
                guard call.arg(2) != 0 else { return Errno.invalid.r0 }
                return map.remove(owner: call.arg(2))?.r0 ?? 0
            },
        ]
    }
}
