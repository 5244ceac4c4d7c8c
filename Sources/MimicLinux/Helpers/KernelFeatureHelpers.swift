import MimicCore
import MimicMemory

/// The function a tracing program (fentry, fexit, fmod_ret) is attached to, for
/// `bpf_get_func_arg`, `bpf_get_func_ret` and `bpf_get_func_arg_cnt`: the context is the array
/// of its arguments (u64 each), followed by the return value for fexit and fmod_ret.
public struct TracedFunction: Sendable, Equatable {
    /// How many arguments the context holds.
    public var argumentCount: UInt32
    /// Whether the return value follows the arguments (fexit, fmod_ret).
    public var hasReturnValue: Bool

    public init(argumentCount: UInt32, hasReturnValue: Bool = false) {
        self.argumentCount = argumentCount
        self.hasReturnValue = hasReturnValue
    }
}

/// Helpers whose kernel side is a subsystem Mimic has no model of. Each keeps the kernel's
/// argument checks and then answers as the kernel does when the feature is absent (no LBR, no
/// IMA, no kernel BTF, no remote-control device, no file descriptors), or works on what the
/// emulator does have:
///
/// - `HelperID.getFuncArg`, `.getFuncRet`, `.getFuncArgCnt`: as the verifier inlines them, from
///   `LinuxProcessState.tracedFunction` (no traced function: 0 arguments).
/// - `HelperID.kptrXchg`: swaps the 8-byte kptr field at `map_value` (atomically, as `xchg`).
/// - `HelperID.readBranchRecords`, `.getBranchSnapshot`: `-ENOENT`, no branch records (no LBR).
/// - `HelperID.snprintfBtf`, `.seqPrintfBtf`, `.btfFindByNameKind`: `-EINVAL` once their
///   arguments pass, as in a kernel without `CONFIG_DEBUG_INFO_BTF` (`bpf_get_btf_vmlinux` NULL).
/// - `HelperID.imaInodeHash`, `.imaFileHash`: `-EOPNOTSUPP`, IMA is off.
/// - `HelperID.rcRepeat`, `.rcKeydown`, `.rcPointerRel`: 0 (the kernel's always return 0);
///   there is no input device to report to.
/// - `HelperID.bprmOptsSet`: `-EINVAL` for unknown flags, else 0.
/// - `HelperID.findVma`: `-EINVAL` for flags, else `-ENOENT` (the task model has no memory map).
/// - `HelperID.kallsymsLookupName`: the address of the emulated kernel object of a `__ksym` the
///   emulator made, `-ENOENT` for other names.
/// - `HelperID.sysBpf`: `-EINVAL` for commands a program may not use, `-EOPNOTSUPP` for the
///   others (there are no file descriptors or BPF objects to create from a program);
///   `HelperID.sysClose`: `-EBADF`.
/// - `HelperID.perfEventRead`, `.perfEventReadValue`: the events of a perf event array are
///   Mimic's `bpf-output` events, which count nothing: 0 (`-E2BIG`, `-ENOENT`, `-EINVAL` for the
///   kernel's index, empty-slot and other-CPU cases); `HelperID.perfProgReadValue`: the sampling
///   event is not modelled, zeros.
enum KernelFeatureHelpers {
    /// `BPF_F_GET_BRANCH_RECORDS_SIZE`, `sizeof(struct perf_branch_entry)`,
    /// `sizeof(struct bpf_perf_event_value)`.
    static let branchRecordsSize: UInt64 = 1
    static let branchEntrySize: UInt64 = 24
    static let perfValueSize = 24
    /// `BTF_F_COMPACT | BTF_F_NONAME | BTF_F_PTR_RAW | BTF_F_ZERO` and `sizeof(struct btf_ptr)`.
    static let btfFlags: UInt64 = 0xF
    static let btfPointerSize: UInt64 = 16
    /// `BPF_F_BPRM_SECUREEXEC`.
    static let bprmSecureExec: UInt64 = 1
    /// The `bpf_cmd`s `bpf_sys_bpf` lets a program use: MAP_CREATE, MAP_UPDATE_ELEM,
    /// MAP_DELETE_ELEM, PROG_LOAD, RAW_TRACEPOINT_OPEN, BTF_LOAD, MAP_GET_FD_BY_ID, MAP_FREEZE,
    /// LINK_CREATE.
    static let programBPFCommands: Set<UInt64> = [0, 2, 3, 5, 17, 18, 14, 22, 28]

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let kernelObjects = emulator.kernelObjects
        return [
            // long bpf_get_func_arg(void *ctx, u32 n, u64 *value)
            LinuxHelper.make(.getFuncArg) { call throws(HelperFailure) in
                let count = call.state?.tracedFunction?.argumentCount ?? 0
                let n = call.arg32(2)
                guard n < count else { return Errno.invalid.r0 }
                try call.write(try call.read(call.arg(1) &+ UInt64(n) * 8, count: 8), at: call.arg(3))
                return 0
            },
            // long bpf_get_func_ret(void *ctx, u64 *value): fexit and fmod_ret only.
            LinuxHelper.make(.getFuncRet) { call throws(HelperFailure) in
                guard let function = call.state?.tracedFunction, function.hasReturnValue else {
                    return Errno.notSupported.r0
                }
                let value = try call.read(call.arg(1) &+ UInt64(function.argumentCount) * 8, count: 8)
                try call.write(value, at: call.arg(2))
                return 0
            },
            LinuxHelper.make(.getFuncArgCnt) { call throws(HelperFailure) in
                UInt64(call.state?.tracedFunction?.argumentCount ?? 0)
            },
            // void *bpf_kptr_xchg(void *map_value, void *ptr)
            LinuxHelper.make(.kptrXchg) { call throws(HelperFailure) in
                let old = get64(try call.read(call.arg(1), count: 8), 0)
                try call.write(withUnsafeBytes(of: call.arg(2).littleEndian, Array.init), at: call.arg(1))
                return old
            },
            // long bpf_read_branch_records(struct bpf_perf_event_data *ctx, void *buf, u32 size, u64 flags)
            LinuxHelper.make(.readBranchRecords) { call throws(HelperFailure) in
                guard call.arg(4) & ~branchRecordsSize == 0 else { return Errno.invalid.r0 }
                return Errno.noEntry.r0
            },
            // long bpf_get_branch_snapshot(void *entries, u32 size, u64 flags)
            LinuxHelper.make(.getBranchSnapshot) { call throws(HelperFailure) in
                guard call.arg(3) == 0, call.arg(1) != 0, UInt64(call.arg32(2)) % branchEntrySize == 0 else {
                    return Errno.invalid.r0
                }
                return Errno.noEntry.r0
            },
            // long bpf_snprintf_btf(char *str, u32 str_size, struct btf_ptr *ptr, u32 btf_ptr_size, u64 flags)
            LinuxHelper.make(.snprintfBtf) { call throws(HelperFailure) in
                guard call.arg(5) & ~btfFlags == 0, UInt64(call.arg32(4)) == btfPointerSize else {
                    return Errno.invalid.r0
                }
                return Errno.invalid.r0 // no kernel BTF
            },
            // long bpf_seq_printf_btf(struct seq_file *m, struct btf_ptr *ptr, u32 ptr_size, u64 flags)
            LinuxHelper.make(.seqPrintfBtf) { call throws(HelperFailure) in
                guard call.arg(4) & ~btfFlags == 0, UInt64(call.arg32(3)) == btfPointerSize else {
                    return Errno.invalid.r0
                }
                return Errno.invalid.r0 // no kernel BTF
            },
            // long bpf_btf_find_by_name_kind(char *name, int name_sz, u32 kind, int flags)
            LinuxHelper.make(.btfFindByNameKind) { call throws(HelperFailure) in
                let size = call.argInt(2)
                guard call.arg32(4) == 0, size > 1 else { return Errno.invalid.r0 }
                guard try call.read(call.arg(1) &+ UInt64(size - 1), count: 1)[0] == 0 else {
                    return Errno.invalid.r0
                }
                return Errno.invalid.r0 // no kernel BTF
            },
            LinuxHelper.make(.imaInodeHash) { _ throws(HelperFailure) in Errno.notSupported.r0 },
            LinuxHelper.make(.imaFileHash) { _ throws(HelperFailure) in Errno.notSupported.r0 },
            LinuxHelper.make(.rcRepeat) { _ throws(HelperFailure) in 0 },
            LinuxHelper.make(.rcKeydown) { _ throws(HelperFailure) in 0 },
            LinuxHelper.make(.rcPointerRel) { _ throws(HelperFailure) in 0 },
            // long bpf_bprm_opts_set(struct linux_binprm *bprm, u64 flags)
            LinuxHelper.make(.bprmOptsSet) { call throws(HelperFailure) in
                call.arg(2) & ~bprmSecureExec == 0 ? 0 : Errno.invalid.r0
            },
            // long bpf_find_vma(struct task_struct *task, u64 addr, void *callback_fn, void *callback_ctx, u64 flags)
            LinuxHelper.make(.findVma) { call throws(HelperFailure) in
                call.arg(5) == 0 ? Errno.noEntry.r0 : Errno.invalid.r0
            },
            // long bpf_kallsyms_lookup_name(const char *name, int name_sz, int flags, u64 *res)
            LinuxHelper.make(.kallsymsLookupName) { call throws(HelperFailure) in
                let size = call.argInt(2)
                guard call.arg32(3) == 0, size > 1 else { return Errno.invalid.r0 }
                let bytes = try call.read(call.arg(1), count: Int(size))
                guard bytes.last == 0 else { return Errno.invalid.r0 }
                let name = String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
                let address = kernelObjects.address(named: name) ?? 0
                try call.write(withUnsafeBytes(of: address.littleEndian, Array.init), at: call.arg(4))
                return address != 0 ? 0 : Errno.noEntry.r0
            },
            // long bpf_sys_bpf(u32 cmd, void *attr, u32 attr_size)
            LinuxHelper.make(.sysBpf) { call throws(HelperFailure) in
                programBPFCommands.contains(UInt64(call.arg32(1))) ? Errno.notSupported.r0 : Errno.invalid.r0
            },
            LinuxHelper.make(.sysClose) { _ throws(HelperFailure) in Errno.badFileDescriptor.r0 },
            // u64 bpf_perf_event_read(struct bpf_map *map, u64 flags)
            LinuxHelper.make(.perfEventRead) { [weak emulator] call throws(HelperFailure) in
                if let errno = try perfEvent(emulator, call, flags: call.arg(2)) { return errno.r0 }
                return 0
            },
            // long bpf_perf_event_read_value(struct bpf_map *map, u64 flags, struct bpf_perf_event_value *buf, u32 buf_size)
            LinuxHelper.make(.perfEventReadValue) { [weak emulator] call throws(HelperFailure) in
                let size = Int(call.arg32(4))
                try call.zero(call.arg(3), count: size)
                guard size == perfValueSize else { return Errno.invalid.r0 }
                return try perfEvent(emulator, call, flags: call.arg(2))?.r0 ?? 0
            },
            // long bpf_perf_prog_read_value(struct bpf_perf_event_data *ctx, struct bpf_perf_event_value *buf, u32 buf_size)
            LinuxHelper.make(.perfProgReadValue) { call throws(HelperFailure) in
                let size = Int(call.arg32(3))
                try call.zero(call.arg(2), count: size)
                return size == perfValueSize ? 0 : Errno.invalid.r0
            },
        ]
    }

    /// `get_map_perf_counter`: checks the flags and the event at the index; nil when the event
    /// can be read (its count is 0).
    static func perfEvent(_ emulator: LinuxEmulator?, _ call: HelperCall, flags: UInt64) throws(HelperFailure)
        -> Errno?
    {
        let map = try MapHelpers.map(
            emulator, call.process, as: PerfEventArrayMap.self, "a BPF_MAP_TYPE_PERF_EVENT_ARRAY")
        guard flags & ~PerfEventHelpers.indexMask == 0 else { return .invalid }
        let index = flags == PerfEventHelpers.indexMask ? UInt64(call.process.vCPU) : flags
        guard index < UInt64(map.attributes.maxEntries) else { return .tooBig }
        guard let cpu = map.eventCPU(index: Int(index)) else { return .noEntry }
        return cpu == call.process.vCPU ? nil : .invalid
    }
}
