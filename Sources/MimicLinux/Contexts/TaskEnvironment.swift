import MimicCore
import MimicJSON

/// What the helpers that describe the running task, the time and randomness report:
/// `bpf_get_current_pid_tgid`, `_uid_gid`, `_comm`, `bpf_ktime_get_*_ns`,
/// `bpf_get_prandom_u32`, `bpf_get_numa_node_id`.
///
/// Contexts set it for their process (`GenericContext` reads it from its `emulator` data); a
/// `CapturedContext` overrides single calls with recorded results.
public struct TaskEnvironment: Sendable, Equatable {
    /// How `bpf_ktime_get_ns`, `_boot_ns` and `_coarse_ns` tell the time.
    public enum Clock: Sendable, Equatable {
        /// The host's `CLOCK_MONOTONIC`, `CLOCK_BOOTTIME` and `CLOCK_MONOTONIC_COARSE`.
        case system
        /// Reproducible time: the n-th reading of the run (from 0, over all three helpers) is
        /// `start + n * step` nanoseconds.
        case manual(start: UInt64, step: UInt64)
        /// The emulator's `VirtualClock`, which the host advances (`LinuxEmulator.advanceClock`)
        /// and `bpf_timer`s run on: every reading until the next advance is the same.
        case virtual
    }

    /// The thread id (`pid` in kernel terms), the low half of `bpf_get_current_pid_tgid`.
    public var pid: UInt32 = 1
    /// The process id (`tgid`), the high half of `bpf_get_current_pid_tgid`.
    public var tgid: UInt32 = 1
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    /// The task's name (`comm`, at most 15 bytes are used, as `TASK_COMM_LEN` is 16).
    public var comm: String = "mimic"
    /// What `bpf_get_numa_node_id` returns.
    public var numaNode: UInt32 = 0
    public var clock: Clock = .system
    /// Seed of a `bpf_get_prandom_u32` stream of this process's own (restarted by each context
    /// that sets it); nil draws from the emulator's per-vCPU stream (`LinuxConfiguration.randomSeed`),
    /// which the clock seeds when that is nil too.
    public var randomSeed: UInt64?
    /// What `bpf_get_attach_cookie` returns: the BPF cookie the program was attached with.
    public var attachCookie: UInt64 = 0
    /// What `bpf_get_func_ip` returns: the address of the probed or traced function (0 when the
    /// program is not a kprobe or fentry/fexit one, or the address is not known).
    public var functionAddress: UInt64 = 0
    /// The address of the task's `task_struct` in the emulated kernel's memory
    /// (`bpf_get_current_task`); 0 when no kernel objects are laid out (`KernelMemory`).
    public var taskAddress: UInt64 = 0
    /// The ids of the task's cgroup v2 and its ancestors, the root first (index = level):
    /// `bpf_get_current_cgroup_id` is the last, `bpf_get_current_ancestor_cgroup_id(level)` the
    /// one at `level`. Default: the root cgroup, id 1.
    public var cgroupAncestry: [UInt64] = [1]
    /// The inode number and device of the task's pid namespace, and its ids there
    /// (`bpf_get_ns_current_pid_tgid`); nil ids are `pid` and `tgid`.
    public var pidNamespace: UInt64 = EmulatedSystem.initialPidNamespace
    public var namespaceDevice: UInt64 = 4
    public var namespacePid: UInt32?
    public var namespaceTgid: UInt32?
    /// Return addresses of the task's kernel and user stacks, innermost first.
    public var kernelStack: [UInt64] = []
    public var userStack: [UInt64] = []
    /// The task's user memory (`bpf_probe_read_user`, `bpf_copy_from_user`,
    /// `bpf_probe_write_user`); nil: user pointers are read from VM memory, as before.
    public var userMemory: UserMemory?

    public init(
        pid: UInt32 = 1, tgid: UInt32 = 1, uid: UInt32 = 0, gid: UInt32 = 0, comm: String = "mimic",
        numaNode: UInt32 = 0, clock: Clock = .system, randomSeed: UInt64? = nil
    ) {
        self.pid = pid
        self.tgid = tgid
        self.uid = uid
        self.gid = gid
        self.comm = comm
        self.numaNode = numaNode
        self.clock = clock
        self.randomSeed = randomSeed
    }

    /// Reads the keys Mimic understands from a context's `emulator` object; other keys are left
    /// for other emulators. Keys: `pid`, `tgid`, `uid`, `gid` (u32), `comm` (string),
    /// `numa_node` (u32), `ktime_ns` (a fixed clock start; with optional `ktime_step_ns`, default 0),
    /// `virtual_clock` (true: read the emulator's `VirtualClock`; `ktime_ns` is then ignored),
    /// `prandom_seed` (u64), `attach_cookie` and `func_ip` (u64).
    public init(emulatorData field: JSONField) throws(ContextError) {
        self.init()
        guard !field.isMissing else { return }
        try field.object()
        if let value = try field["pid"].optionalInteger(UInt32.self) { pid = value }
        if let value = try field["tgid"].optionalInteger(UInt32.self) { tgid = value }
        if let value = try field["uid"].optionalInteger(UInt32.self) { uid = value }
        if let value = try field["gid"].optionalInteger(UInt32.self) { gid = value }
        if let value = try field["comm"].optionalString() { comm = value }
        if let value = try field["numa_node"].optionalInteger(UInt32.self) { numaNode = value }
        let virtualClock = field["virtual_clock"]
        if !virtualClock.isMissing {
            guard case .bool(let on) = virtualClock.value else { throw virtualClock.error("must be true or false") }
            if on { clock = .virtual }
        }
        if case .virtual = clock {
        } else if let start = try field["ktime_ns"].optionalInteger(UInt64.self) {
            clock = .manual(start: start, step: try field["ktime_step_ns"].optionalInteger(UInt64.self) ?? 0)
        } else if !field["ktime_step_ns"].isMissing {
            throw field["ktime_step_ns"].error("needs ktime_ns beside it")
        }
        if let value = try field["prandom_seed"].optionalInteger(UInt64.self) { randomSeed = value }
        if let value = try field["attach_cookie"].optionalInteger(UInt64.self) { attachCookie = value }
        if let value = try field["func_ip"].optionalInteger(UInt64.self) { functionAddress = value }
    }

    /// `comm` as the kernel stores it: at most 15 bytes of UTF-8 and a NUL, zero-padded to 16.
    public var commBytes: [UInt8] {
        var bytes = Array(comm.utf8.prefix(15))
        bytes += [UInt8](repeating: 0, count: 16 - bytes.count)
        return bytes
    }
}

extension LinuxProcessState {
    /// The state of `process`, created and installed when the Linux emulator did not prepare one
    /// (a VM without the Linux emulator).
    static func forContext(_ process: MimicCore.Process) -> LinuxProcessState {
        if let state = process.emulatorState(key) { return state }
        let state = LinuxProcessState()
        process.setEmulatorState(state, for: key)
        return state
    }

    /// `forContext`, unretained (the process holds the state): for a context's attach per
    /// packet, which reads it within `_withUnsafeGuaranteedRef` and pays no reference count.
    static func unretainedForContext(_ process: MimicCore.Process) -> Unmanaged<LinuxProcessState> {
        if let state = process.unretainedEmulatorState(key) { return state }
        return Unmanaged.passUnretained(forContext(process))
    }
}
