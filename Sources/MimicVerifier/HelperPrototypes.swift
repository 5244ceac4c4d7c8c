import MimicCore

/// What a helper argument must be (`enum bpf_arg_type`).
enum ArgumentKind: Equatable {
    /// Any initialised value (`ARG_ANYTHING`).
    case anything
    /// A map from `lddw` (`ARG_CONST_MAP_PTR`).
    case map
    /// A pointer to `key_size` readable bytes (`ARG_PTR_TO_MAP_KEY`).
    case mapKey
    /// A pointer to `value_size` readable bytes (`ARG_PTR_TO_MAP_VALUE`); `uninit`: written by the helper.
    case mapValue(uninit: Bool)
    /// Memory whose size is the next argument (`ARG_PTR_TO_MEM` + `ARG_CONST_SIZE`).
    case memory(uninit: Bool, nullable: Bool)
    /// Memory of a fixed size (`MEM_FIXED_SIZE`).
    case fixedMemory(size: Int, uninit: Bool)
    /// The size of the previous memory argument (`ARG_CONST_SIZE(_OR_ZERO)`).
    case size(zeroAllowed: Bool)
    /// The program's context (`ARG_PTR_TO_CTX`).
    case context
    /// A ring-buffer record to release (`ARG_PTR_TO_RINGBUF_MEM | OBJ_RELEASE`).
    case ringbufRecord
    /// The size of a ring-buffer reservation (`ARG_CONST_ALLOC_SIZE_OR_ZERO`).
    case allocSize
    /// A socket pointer to release (`ARG_PTR_TO_BTF_ID_SOCK_COMMON | OBJ_RELEASE`).
    case releasedSocket
    /// A `struct bpf_sock_common` pointer (`ARG_PTR_TO_SOCK_COMMON`).
    case socketCommon
    /// A socket, also as a kernel `struct sock` pointer (`ARG_PTR_TO_BTF_ID_SOCK_COMMON`).
    case kernelSocket
    /// A kernel object of the named struct (`ARG_PTR_TO_BTF_ID`).
    case kernelObject(String)
    /// A callback sub-program (`ARG_PTR_TO_FUNC`).
    case function
    /// A stack pointer or NULL (`ARG_PTR_TO_STACK_OR_NULL`), for callback contexts.
    case stackOrNull
    /// A constant string in a read-only map (`ARG_PTR_TO_CONST_STR`).
    case constString
    /// A `struct bpf_spin_lock` in a map value (`ARG_PTR_TO_SPIN_LOCK`).
    case spinLock
    /// A per-CPU kernel variable (`ARG_PTR_TO_PERCPU_BTF_ID`).
    case perCPUVariable
}

/// What a helper returns (`enum bpf_return_type`).
enum ReturnKind: Equatable {
    case integer
    case void
    case mapValueOrNull
    /// A map value that is never NULL (`RET_PTR_TO_MAP_VALUE`: `bpf_get_local_storage`).
    case mapValue
    /// `PTR_TO_MEM_OR_NULL` sized by the argument `sizeArgument`, acquired when `acquires`.
    case memoryOrNull(sizeArgument: Int, acquires: Bool)
    case socketOrNull(acquires: Bool)
    case socketCommonOrNull(acquires: Bool)
    case tcpSocketOrNull
    /// A kernel object typed by BTF (`RET_PTR_TO_BTF_ID`), named for messages.
    case btfObject(String)
    /// A kernel object of the named struct or NULL (`RET_PTR_TO_BTF_ID_OR_NULL`): a plain
    /// `ptr_or_null_`, neither trusted nor untrusted.
    case btfObjectOrNull(String)
    /// `RET_PTR_TO_MEM_OR_BTF_ID` of a per-CPU variable (`bpf_per_cpu_ptr` may be NULL).
    case perCPUPointer(maybeNull: Bool)
}

/// Which program types may call a helper.
enum HelperGroup: Equatable {
    /// Every program type (`bpf_base_func_proto`, as a privileged user).
    case base
    /// Tracing programs: kprobe, tracepoint, raw tracepoint, perf event, tracing.
    case tracing
    /// Programs on `struct __sk_buff` (socket filter, tc, cgroup skb, ...); `ctx` packet helpers.
    case skb
    /// Programs that may change an skb (tc, lwt xmit): store bytes, checksums, redirect.
    case skbWrite
    /// XDP.
    case xdp
    /// tc and XDP (redirect helpers, FIB lookups, socket lookups, MTU checks).
    case tcXDP
    /// Every type but these.
    case allBut(Set<ProgramType>)
    /// Exactly these program types.
    case types(Set<ProgramType>)
    /// Not available on the kernel Mimic follows.
    case never
}

/// One helper's prototype (`struct bpf_func_proto`).
struct HelperPrototype {
    var name: String
    var arguments: [ArgumentKind]
    var returns: ReturnKind
    var group: HelperGroup
    var gplOnly = false
    /// Releases the reference of the argument at this index.
    var releases: Int? = nil
    /// Calls its callback argument, with this many arguments to the callback (`bpf_loop`: 2).
    var callbackArguments: Int? = nil

    init(
        _ name: String, _ arguments: [ArgumentKind], _ returns: ReturnKind = .integer, _ group: HelperGroup = .base,
        gpl: Bool = false, releases: Int? = nil, callback: Int? = nil
    ) {
        self.name = name
        self.arguments = arguments
        self.returns = returns
        self.group = group
        self.gplOnly = gpl
        self.releases = releases
        self.callbackArguments = callback
    }
}

enum HelperPrototypes {
    /// The tracing program types (`.tracing` helpers).
    static let tracingTypes: Set<ProgramType> = [
        .kprobe, .tracepoint, .rawTracepoint, .perfEvent, .tracing, .rawTracepointWritable,
    ]
    /// The tracing types and syscall programs, whose `syscall_prog_func_proto` falls back to
    /// `tracing_prog_func_proto` for some of the tracing helpers.
    static let tracingAndSyscall = tracingTypes.union([.syscall])
    static let tc: Set<ProgramType> = [.schedCls, .schedAct]
    /// The programs that may change an skb (`.skbWrite` helpers).
    static let skbWrite: Set<ProgramType> = [.schedCls, .schedAct, .lwtXmit]
    static let tcXDP: Set<ProgramType> = [.schedCls, .schedAct, .xdp]
    static let skbNotLWT: Set<ProgramType> = [.socketFilter, .schedCls, .schedAct, .cgroupSkb, .skSkb]
    static let socketLookups: Set<ProgramType> = [.schedCls, .schedAct, .xdp, .cgroupSkb, .skSkb]
    /// `bpf_skb_load_bytes`: the `__sk_buff` programs, sk_reuseport (`sk_reuseport_func_proto`)
    /// and the flow dissector (`flow_dissector_func_proto`).
    static let skbLoadBytes: Set<ProgramType> = [
        .socketFilter, .schedCls, .schedAct, .cgroupSkb, .lwtIn, .lwtOut, .lwtXmit, .skSkb, .lwtSeg6Local,
        .skReuseport, .flowDissector,
    ]
    /// The cgroup programs that may call `bpf_get_local_storage` (`cgroup_common_func_proto` and
    /// `cg_skb_func_proto`).
    static let cgroupStorage: Set<ProgramType> = [
        .cgroupSkb, .cgroupSock, .cgroupSockAddr, .sockOps, .cgroupDevice, .cgroupSysctl, .cgroupSockopt,
    ]
    /// The program types that may call `bpf_sk_storage_get` and `_delete` (`tc_cls_act_func_proto`,
    /// `cg_skb_func_proto`, `sock_ops_func_proto`, `sk_msg_func_proto`, `sock_addr_func_proto`,
    /// `cg_sockopt_get_prototype`, and the tracing programs' `bpf_sk_storage_get_tracing_proto`);
    /// cgroup sock programs may get but not delete (`sock_filter_func_proto`).
    static let socketStorage: Set<ProgramType> = [
        .schedCls, .schedAct, .cgroupSkb, .sockOps, .skMsg, .cgroupSockAddr, .cgroupSockopt, .tracing, .lsm,
    ]
    static let memRO = ArgumentKind.memory(uninit: false, nullable: false)
    static let memUninit = ArgumentKind.memory(uninit: true, nullable: false)
    static let size = ArgumentKind.size(zeroAllowed: false)
    static let sizeOrZero = ArgumentKind.size(zeroAllowed: true)

    /// The prototypes Mimic knows, by helper id.
    static let table: [Int32: HelperPrototype] = {
        let list: [HelperPrototype] = [
            .init("bpf_map_lookup_elem", [.map, .mapKey], .mapValueOrNull),
            .init("bpf_map_update_elem", [.map, .mapKey, .mapValue(uninit: false), .anything]),
            .init("bpf_map_delete_elem", [.map, .mapKey]),
            .init("bpf_map_push_elem", [.map, .mapValue(uninit: false), .anything]),
            .init("bpf_map_pop_elem", [.map, .mapValue(uninit: true)]),
            .init("bpf_map_peek_elem", [.map, .mapValue(uninit: true)]),
            .init("bpf_map_lookup_percpu_elem", [.map, .mapKey, .anything], .mapValueOrNull),
            .init(
                "bpf_probe_read", [memUninit, sizeOrZero, .anything], .integer, .types(tracingAndSyscall), gpl: true),
            .init("bpf_probe_read_kernel", [memUninit, sizeOrZero, .anything], .integer, .base, gpl: true),
            .init("bpf_probe_read_user", [memUninit, sizeOrZero, .anything], .integer, .base, gpl: true),
            .init(
                "bpf_probe_read_str", [memUninit, sizeOrZero, .anything], .integer, .types(tracingAndSyscall), gpl: true
            ),
            .init("bpf_probe_read_kernel_str", [memUninit, sizeOrZero, .anything], .integer, .base, gpl: true),
            .init("bpf_probe_read_user_str", [memUninit, sizeOrZero, .anything], .integer, .base, gpl: true),
            .init("bpf_ktime_get_ns", []),
            .init("bpf_ktime_get_boot_ns", []),
            // Not in tracing_prog_func_proto, nor for cgroup device and sockopt programs.
            .init(
                "bpf_ktime_get_coarse_ns", [], .integer,
                .allBut(tracingAndSyscall.union([.cgroupDevice, .cgroupSockopt]))),
            .init("bpf_ktime_get_tai_ns", []),
            .init("bpf_jiffies64", []),
            .init("bpf_trace_printk", [memRO, size], .integer, .base, gpl: true),
            .init("bpf_get_prandom_u32", []),
            .init("bpf_get_smp_processor_id", []),
            .init("bpf_get_numa_node_id", []),
            .init("bpf_tail_call", [.context, .map, .anything], .void),
            .init("bpf_get_current_pid_tgid", []),
            .init("bpf_get_current_uid_gid", []),
            .init("bpf_get_current_comm", [memUninit, size]),
            .init("bpf_get_current_task", [], .integer, .base, gpl: true),
            .init("bpf_get_current_task_btf", [], .btfObject("task_struct"), .base, gpl: true),
            // Tracing and LSM programs only (`tracing_prog_func_proto`, `bpf_lsm_func_proto`); the
            // kernel also limits it to the functions of `btf_allowlist_d_path`, not modelled.
            .init("bpf_d_path", [.anything, memUninit, sizeOrZero], .integer, .types([.tracing, .lsm])),
            .init("bpf_get_current_cgroup_id", []),
            .init(
                "bpf_perf_event_output", [.context, .map, .anything, memRO, sizeOrZero], .integer,
                .allBut([.flowDissector, .skReuseport])),
            .init("bpf_perf_event_read", [.map, .anything]),
            .init("bpf_get_stackid", [.context, .map, .anything], .integer, .types(tracingAndSyscall)),
            .init("bpf_get_stack", [.context, memUninit, sizeOrZero, .anything], .integer, .types(tracingAndSyscall)),
            .init("bpf_send_signal", [.anything]),
            .init("bpf_send_signal_thread", [.anything]),
            // Needs CONFIG_BPF_KPROBE_OVERRIDE, which this machine's kernel (and many distributions') lacks.
            .init("bpf_override_return", [.context, .anything], .integer, .never, gpl: true),
            .init("bpf_get_func_ip", [.context], .integer, .types(tracingAndSyscall)),
            .init("bpf_get_attach_cookie", [.context], .integer, .tracing),
            .init("bpf_ringbuf_output", [.map, memRO, sizeOrZero, .anything]),
            .init(
                "bpf_ringbuf_reserve", [.map, .allocSize, .anything], .memoryOrNull(sizeArgument: 1, acquires: true)),
            // The dynptr argument is not modelled (any value passes); the slice is NULL or `len` bytes.
            .init(
                "bpf_dynptr_data", [.anything, .anything, .allocSize], .memoryOrNull(sizeArgument: 2, acquires: false)),
            .init("bpf_ringbuf_submit", [.ringbufRecord, .anything], .void, releases: 0),
            .init("bpf_ringbuf_discard", [.ringbufRecord, .anything], .void, releases: 0),
            .init("bpf_ringbuf_query", [.map, .anything]),
            .init("bpf_spin_lock", [.spinLock], .void),
            .init("bpf_spin_unlock", [.spinLock], .void),
            .init("bpf_loop", [.anything, .function, .stackOrNull, .anything], .integer, callback: 2),
            .init("bpf_for_each_map_elem", [.map, .function, .stackOrNull, .anything], .integer, callback: 4),
            .init("bpf_strncmp", [memRO, size, .constString]),
            .init("bpf_strtol", [memRO, size, .anything, .fixedMemory(size: 8, uninit: true)]),
            .init("bpf_strtoul", [memRO, size, .anything, .fixedMemory(size: 8, uninit: true)]),
            .init(
                "bpf_snprintf",
                [
                    .memory(uninit: true, nullable: true), sizeOrZero, .constString,
                    .memory(uninit: false, nullable: true), sizeOrZero,
                ], .integer, gpl: true),
            .init("bpf_get_local_storage", [.map, .anything], .mapValue, .types(cgroupStorage)),
            // The socket, value and flags are not checked; R0 is the storage (a value of the map).
            .init(
                "bpf_sk_storage_get", [.map, .anything, .anything, .anything], .mapValueOrNull,
                .types(socketStorage.union([.cgroupSock]))),
            .init("bpf_sk_storage_delete", [.map, .anything], .integer, .types(socketStorage)),
            // Task and cgroup storage: every program type on this kernel (`bpf_base_func_proto`).
            .init("bpf_task_storage_get", [.map, .anything, .anything, .anything], .mapValueOrNull),
            .init("bpf_cgrp_storage_get", [.map, .anything, .anything, .anything], .mapValueOrNull),
            // `RET_PTR_TO_SOCKET_OR_NULL` without a reference of its own (the argument is not checked).
            .init(
                "bpf_get_listener_sock", [.anything], .socketOrNull(acquires: false),
                .types([.schedCls, .schedAct, .cgroupSkb])),
            // The dynptr argument is not modelled (any initialised value); the slice is PTR_TO_MEM
            // of the constant length, or NULL (`RET_PTR_TO_DYNPTR_MEM_OR_NULL`).
            .init(
                "bpf_dynptr_data", [.anything, .anything, .allocSize], .memoryOrNull(sizeArgument: 2, acquires: false)),
            .init("bpf_per_cpu_ptr", [.perCPUVariable, .anything], .perCPUPointer(maybeNull: true)),
            .init("bpf_this_cpu_ptr", [.perCPUVariable], .perCPUPointer(maybeNull: false)),
            // Packets.
            .init(
                "bpf_skb_store_bytes", [.context, .anything, memRO, size, .anything], .integer,
                .types(skbWrite.union([.skSkb]))),
            .init("bpf_skb_load_bytes", [.context, .anything, memUninit, size], .integer, .types(skbLoadBytes)),
            .init(
                "bpf_skb_load_bytes_relative", [.context, .anything, memUninit, size, .anything], .integer,
                .types(skbNotLWT.union([.skReuseport]).subtracting([.skSkb]))),
            .init("bpf_l3_csum_replace", [.context, .anything, .anything, .anything, .anything], .integer, .skbWrite),
            .init("bpf_l4_csum_replace", [.context, .anything, .anything, .anything, .anything], .integer, .skbWrite),
            .init(
                "bpf_csum_diff",
                [
                    .memory(uninit: false, nullable: true), sizeOrZero, .memory(uninit: false, nullable: true),
                    sizeOrZero, .anything,
                ], .integer, .types(tcXDP.union(skbWrite).union([.lwtIn, .lwtOut]))),
            .init("bpf_csum_update", [.context, .anything], .integer, .skbWrite),
            .init("bpf_csum_level", [.context, .anything], .integer, .skbWrite),
            .init("bpf_clone_redirect", [.context, .anything, .anything], .integer, .skbWrite),
            .init("bpf_redirect", [.anything, .anything], .integer, .tcXDP),
            .init("bpf_redirect_map", [.map, .anything, .anything], .integer, .xdp),
            .init("bpf_get_cgroup_classid", [.context]),
            .init("bpf_get_route_realm", [.context], .integer, .types(skbWrite.union([.lwtIn, .lwtOut]))),
            .init("bpf_get_hash_recalc", [.context], .integer, .types(skbWrite.union([.lwtIn, .lwtOut]))),
            .init("bpf_set_hash_invalid", [.context], .integer, .skbWrite),
            .init("bpf_set_hash", [.context, .anything], .integer, .types(tc)),
            .init("bpf_skb_vlan_push", [.context, .anything, .anything], .integer, .types(tc)),
            .init("bpf_skb_vlan_pop", [.context], .integer, .types(tc)),
            .init("bpf_skb_change_proto", [.context, .anything, .anything], .integer, .types(tc)),
            .init("bpf_skb_change_type", [.context, .anything], .integer, .types(tc)),
            .init("bpf_skb_change_tail", [.context, .anything, .anything], .integer, .types(skbWrite.union([.skSkb]))),
            .init("bpf_skb_change_head", [.context, .anything, .anything], .integer, .types(skbWrite.union([.skSkb]))),
            .init(
                "bpf_skb_pull_data", [.context, .anything], .integer,
                .types(skbWrite.union([.skSkb, .lwtIn, .lwtOut]))),
            .init(
                "bpf_skb_adjust_room", [.context, .anything, .anything, .anything], .integer,
                .types(tc.union([.skSkb]))),
            .init("bpf_skb_ecn_set_ce", [.context], .integer, .types(tc.union([.cgroupSkb]))),
            .init("bpf_skb_get_tunnel_key", [.context, memUninit, size, .anything], .integer, .skbWrite),
            .init("bpf_skb_set_tunnel_key", [.context, memRO, size, .anything], .integer, .skbWrite),
            .init(
                "bpf_get_socket_cookie", [.context], .integer,
                .types(skbNotLWT.union([.sockOps, .skReuseport, .cgroupSock, .cgroupSockAddr]))),
            .init("bpf_get_socket_uid", [.context], .integer, .types(skbNotLWT)),
            .init("bpf_xdp_adjust_head", [.context, .anything], .integer, .xdp),
            .init("bpf_xdp_adjust_meta", [.context, .anything], .integer, .xdp),
            .init("bpf_xdp_adjust_tail", [.context, .anything], .integer, .xdp),
            .init("bpf_xdp_load_bytes", [.context, .anything, memUninit, size], .integer, .xdp),
            .init("bpf_xdp_store_bytes", [.context, .anything, memRO, size], .integer, .xdp),
            .init("bpf_xdp_get_buff_len", [.context], .integer, .xdp),
            .init(
                "bpf_fib_lookup", [.context, .memory(uninit: false, nullable: false), size, .anything], .integer,
                .types(tcXDP)),
            .init(
                "bpf_check_mtu", [.context, .anything, .fixedMemory(size: 4, uninit: false), .anything, .anything],
                .integer, .types(tcXDP)),
            // The tuple's size is ARG_CONST_SIZE_OR_ZERO since Linux 6.11 (a wrong size finds nothing).
            .init(
                "bpf_sk_lookup_tcp", [.context, memRO, sizeOrZero, .anything, .anything], .socketOrNull(acquires: true),
                .types(socketLookups.union([.cgroupSockAddr]))),
            .init(
                "bpf_sk_lookup_udp", [.context, memRO, sizeOrZero, .anything, .anything], .socketOrNull(acquires: true),
                .types(socketLookups.union([.cgroupSockAddr]))),
            .init(
                "bpf_skc_lookup_tcp", [.context, memRO, sizeOrZero, .anything, .anything],
                .socketCommonOrNull(acquires: true), .types(socketLookups.union([.cgroupSockAddr]))),
            // sk_lookup_func_proto too: it releases a socket a sockmap / sockhash lookup gave.
            .init(
                "bpf_sk_release", [.releasedSocket], .integer,
                .types(socketLookups.union([.skLookup, .cgroupSockAddr])), releases: 0),
            .init(
                "bpf_tcp_sock", [.socketCommon], .tcpSocketOrNull,
                .types(tc.union([.cgroupSkb, .sockOps, .cgroupSockopt]))),
            .init("bpf_sk_fullsock", [.socketCommon], .socketOrNull(acquires: false), .types(tc.union([.cgroupSkb]))),
        ]
        var table: [Int32: HelperPrototype] = [:]
        for p in list {
            if let id = HelperID(kernelName: p.name) { table[id.rawValue] = p }
        }
        return table
    }()

    /// The prototype of helper `id` for programs of `type`: the table's, but where a program type
    /// has a prototype of its own (`tracing_prog_func_proto` gives `bpf_get_socket_cookie` a
    /// kernel socket instead of the context).
    static func prototype(_ id: Int32, for type: ProgramType) -> HelperPrototype? {
        if type == .tracing || type == .lsm || type == .syscall, let variant = tracingVariants[id] { return variant }
        return table[id]
    }

    static let tracingVariants: [Int32: HelperPrototype] = [
        Int32(HelperID.getSocketCookie.rawValue): .init(
            "bpf_get_socket_cookie", [.kernelSocket], .integer, .types([.tracing, .lsm, .syscall])),
        // The socket casts, for tracing programs only: in tc and the other socket programs their
        // NULL branches, compared exactly for want of precision tracking, take net_socket.o's
        // tc_socket past the 1,000,000-instruction limit (Verifier.md), so there they stay unknown.
        Int32(HelperID.skcToTcp6Sock.rawValue): skcTo("tcp6_sock"),
        Int32(HelperID.skcToTcpSock.rawValue): skcTo("tcp_sock"),
        Int32(HelperID.skcToTcpTimewaitSock.rawValue): skcTo("tcp_timewait_sock"),
        Int32(HelperID.skcToTcpRequestSock.rawValue): skcTo("tcp_request_sock"),
        Int32(HelperID.skcToUdp6Sock.rawValue): skcTo("udp6_sock"),
        Int32(HelperID.skcToUnixSock.rawValue): skcTo("unix_sock"),
        Int32(HelperID.skcToMptcpSock.rawValue): skcTo("mptcp_sock"),
        // bpf_xdp_get_buff_len_trace_proto: an xdp_buff of the traced function.
        Int32(HelperID.xdpGetBuffLen.rawValue): .init(
            "bpf_xdp_get_buff_len", [.kernelObject("xdp_buff")], .integer, .types([.tracing, .lsm, .syscall])),
    ]

    /// `bpf_skc_to_<name>`: a socket cast to struct `name`, or NULL when it is not one.
    static func skcTo(_ name: String) -> HelperPrototype {
        .init("bpf_skc_to_" + name, [.kernelSocket], .btfObjectOrNull(name), .types([.tracing, .lsm, .syscall]))
    }

    /// A helper's `allowed` rule (`struct bpf_func_proto.allowed`), for a program of
    /// `attachType`: `bpf_d_path` is refused to BTF-enabled tracepoints, whose targets are never
    /// on its allow-list (`bpf_d_path_allowed`). Its allow-lists for fentry and fexit targets
    /// (`btf_allowlist_d_path`) and LSM hooks (sleepable ones) are not modelled: allowed.
    static func allowedInProbe(_ name: String, attachType: AttachType?) -> Bool {
        !(name == "bpf_d_path" && attachType == .traceRawTp)
    }

    /// Whether a program of `type` may call helpers of `group` (`*_func_proto` of each type).
    static func allows(_ group: HelperGroup, in type: ProgramType) -> Bool {
        let tracing = tracingTypes
        let skb: Set<ProgramType> = [
            .socketFilter, .schedCls, .schedAct, .cgroupSkb, .lwtIn, .lwtOut, .lwtXmit, .skSkb, .lwtSeg6Local,
        ]
        switch group {
        case .base: return true
        case .tracing: return tracing.contains(type)
        case .allBut(let set): return !set.contains(type)
        case .types(let set): return set.contains(type)
        case .never: return false
        case .skb: return skb.contains(type)
        case .skbWrite: return skbWrite.contains(type)
        case .xdp: return type == .xdp
        case .tcXDP: return type == .xdp || skbWrite.contains(type)
        }
    }
}
