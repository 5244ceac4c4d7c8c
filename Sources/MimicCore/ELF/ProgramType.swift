/// The kind of an eBPF program (`enum bpf_prog_type`), guessed from its ELF section name the way
/// libbpf does (`SEC("xdp")`, `SEC("kprobe/do_exit")`, `SEC("tc")`, ...).
public enum ProgramType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case unspecified = 0
    case socketFilter, kprobe, schedCls, schedAct, tracepoint, xdp, perfEvent, cgroupSkb, cgroupSock
    case lwtIn, lwtOut, lwtXmit, sockOps, skSkb, cgroupDevice, skMsg, rawTracepoint, cgroupSockAddr
    case lwtSeg6Local, lircMode2, skReuseport, flowDissector, cgroupSysctl, rawTracepointWritable
    case cgroupSockopt, tracing, structOps, ext, lsm, skLookup, syscall, netfilter

    /// The C spelling, `BPF_PROG_TYPE_XDP`.
    public var cName: String {
        let names = ["UNSPEC", "SOCKET_FILTER", "KPROBE", "SCHED_CLS", "SCHED_ACT", "TRACEPOINT", "XDP", "PERF_EVENT",
                     "CGROUP_SKB", "CGROUP_SOCK", "LWT_IN", "LWT_OUT", "LWT_XMIT", "SOCK_OPS", "SK_SKB", "CGROUP_DEVICE",
                     "SK_MSG", "RAW_TRACEPOINT", "CGROUP_SOCK_ADDR", "LWT_SEG6LOCAL", "LIRC_MODE2", "SK_REUSEPORT",
                     "FLOW_DISSECTOR", "CGROUP_SYSCTL", "RAW_TRACEPOINT_WRITABLE", "CGROUP_SOCKOPT", "TRACING",
                     "STRUCT_OPS", "EXT", "LSM", "SK_LOOKUP", "SYSCALL", "NETFILTER"]
        return "BPF_PROG_TYPE_" + names[Int(rawValue)]
    }

    /// The lower-case name bpftool prints (`xdp`, `sched_cls`, `socket_filter`).
    public var description: String {
        String(cName.dropFirst("BPF_PROG_TYPE_".count)).lowercased()
    }

    /// How a section-name pattern matches, after libbpf's `SEC_DEF` rules: `exact` names match
    /// only themselves; `prefix` (libbpf's `type+`) matches `type` and `type/anything`.
    enum Match { case exact, prefix }

    /// libbpf's section table, in its order (the first match wins).
    static let sectionTable: [(String, Match, ProgramType)] = [
        ("socket", .exact, .socketFilter),
        ("sk_reuseport/migrate", .exact, .skReuseport), ("sk_reuseport", .exact, .skReuseport),
        ("kprobe", .prefix, .kprobe), ("uprobe", .prefix, .kprobe), ("uprobe.s", .prefix, .kprobe),
        ("kretprobe", .prefix, .kprobe), ("uretprobe", .prefix, .kprobe), ("uretprobe.s", .prefix, .kprobe),
        ("kprobe.multi", .prefix, .kprobe), ("kretprobe.multi", .prefix, .kprobe),
        ("uprobe.multi", .prefix, .kprobe), ("uretprobe.multi", .prefix, .kprobe),
        ("uprobe.multi.s", .prefix, .kprobe), ("uretprobe.multi.s", .prefix, .kprobe),
        ("ksyscall", .prefix, .kprobe), ("kretsyscall", .prefix, .kprobe),
        ("usdt", .prefix, .kprobe), ("usdt.s", .prefix, .kprobe),
        ("tc/ingress", .exact, .schedCls), ("tc/egress", .exact, .schedCls),
        ("tcx/ingress", .exact, .schedCls), ("tcx/egress", .exact, .schedCls),
        ("tc", .exact, .schedCls), ("classifier", .exact, .schedCls), ("action", .exact, .schedAct),
        ("netkit/primary", .exact, .schedCls), ("netkit/peer", .exact, .schedCls),
        ("tracepoint", .prefix, .tracepoint), ("tp", .prefix, .tracepoint),
        ("raw_tracepoint", .prefix, .rawTracepoint), ("raw_tp", .prefix, .rawTracepoint),
        ("raw_tracepoint.w", .prefix, .rawTracepointWritable), ("raw_tp.w", .prefix, .rawTracepointWritable),
        ("tp_btf", .prefix, .tracing), ("fentry", .prefix, .tracing), ("fmod_ret", .prefix, .tracing),
        ("fexit", .prefix, .tracing), ("fentry.s", .prefix, .tracing), ("fmod_ret.s", .prefix, .tracing),
        ("fexit.s", .prefix, .tracing), ("freplace", .prefix, .ext),
        ("lsm", .prefix, .lsm), ("lsm.s", .prefix, .lsm), ("lsm_cgroup", .prefix, .lsm),
        ("iter", .prefix, .tracing), ("iter.s", .prefix, .tracing), ("syscall", .exact, .syscall),
        ("xdp.frags/devmap", .exact, .xdp), ("xdp/devmap", .exact, .xdp),
        ("xdp.frags/cpumap", .exact, .xdp), ("xdp/cpumap", .exact, .xdp),
        ("xdp.frags", .exact, .xdp), ("xdp", .exact, .xdp),
        ("perf_event", .exact, .perfEvent),
        ("lwt_in", .exact, .lwtIn), ("lwt_out", .exact, .lwtOut), ("lwt_xmit", .exact, .lwtXmit),
        ("lwt_seg6local", .exact, .lwtSeg6Local), ("sockops", .exact, .sockOps),
        ("sk_skb/stream_parser", .exact, .skSkb), ("sk_skb/stream_verdict", .exact, .skSkb), ("sk_skb", .exact, .skSkb),
        ("sk_msg", .exact, .skMsg), ("lirc_mode2", .exact, .lircMode2), ("flow_dissector", .exact, .flowDissector),
        ("cgroup_skb/ingress", .exact, .cgroupSkb), ("cgroup_skb/egress", .exact, .cgroupSkb), ("cgroup/skb", .exact, .cgroupSkb),
        ("cgroup/sock_create", .exact, .cgroupSock), ("cgroup/sock_release", .exact, .cgroupSock),
        ("cgroup/sock", .exact, .cgroupSock), ("cgroup/post_bind4", .exact, .cgroupSock), ("cgroup/post_bind6", .exact, .cgroupSock),
        ("cgroup/bind4", .exact, .cgroupSockAddr), ("cgroup/bind6", .exact, .cgroupSockAddr),
        ("cgroup/connect4", .exact, .cgroupSockAddr), ("cgroup/connect6", .exact, .cgroupSockAddr),
        ("cgroup/connect_unix", .exact, .cgroupSockAddr),
        ("cgroup/sendmsg4", .exact, .cgroupSockAddr), ("cgroup/sendmsg6", .exact, .cgroupSockAddr),
        ("cgroup/sendmsg_unix", .exact, .cgroupSockAddr),
        ("cgroup/recvmsg4", .exact, .cgroupSockAddr), ("cgroup/recvmsg6", .exact, .cgroupSockAddr),
        ("cgroup/recvmsg_unix", .exact, .cgroupSockAddr),
        ("cgroup/getpeername4", .exact, .cgroupSockAddr), ("cgroup/getpeername6", .exact, .cgroupSockAddr),
        ("cgroup/getpeername_unix", .exact, .cgroupSockAddr),
        ("cgroup/getsockname4", .exact, .cgroupSockAddr), ("cgroup/getsockname6", .exact, .cgroupSockAddr),
        ("cgroup/getsockname_unix", .exact, .cgroupSockAddr),
        ("cgroup/sysctl", .exact, .cgroupSysctl), ("cgroup/getsockopt", .exact, .cgroupSockopt),
        ("cgroup/setsockopt", .exact, .cgroupSockopt), ("cgroup/dev", .exact, .cgroupDevice),
        ("struct_ops", .prefix, .structOps), ("struct_ops.s", .prefix, .structOps),
        ("sk_lookup", .exact, .skLookup), ("netfilter", .exact, .netfilter),
    ]

    /// The program type libbpf would pick for an ELF section name, or `.unspecified` if the name
    /// is not in libbpf's table. Exact entries match only the name itself; prefix entries match
    /// `type` and `type/extras`.
    public static func guess(sectionName: String) -> ProgramType {
        for (pattern, match, type) in sectionTable {
            switch match {
            case .exact:
                if sectionName == pattern { return type }
            case .prefix:
                if sectionName == pattern || sectionName.hasPrefix(pattern + "/") { return type }
            }
        }
        return .unspecified
    }
}

/// A map type (`enum bpf_map_type`), with the C spelling kept (`MapType.hash.cName` is
/// `BPF_MAP_TYPE_HASH`). Unknown values are kept as they are.
public struct MapType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let unspec = MapType(rawValue: 0)
    public static let hash = MapType(rawValue: 1)
    public static let array = MapType(rawValue: 2)
    public static let progArray = MapType(rawValue: 3)
    public static let perfEventArray = MapType(rawValue: 4)
    public static let perCPUHash = MapType(rawValue: 5)
    public static let perCPUArray = MapType(rawValue: 6)
    public static let stackTrace = MapType(rawValue: 7)
    public static let cgroupArray = MapType(rawValue: 8)
    public static let lruHash = MapType(rawValue: 9)
    public static let lruPerCPUHash = MapType(rawValue: 10)
    public static let lpmTrie = MapType(rawValue: 11)
    public static let arrayOfMaps = MapType(rawValue: 12)
    public static let hashOfMaps = MapType(rawValue: 13)
    public static let devMap = MapType(rawValue: 14)
    public static let sockMap = MapType(rawValue: 15)
    public static let cpuMap = MapType(rawValue: 16)
    public static let xskMap = MapType(rawValue: 17)
    public static let sockHash = MapType(rawValue: 18)
    public static let cgroupStorage = MapType(rawValue: 19)
    public static let reuseportSockarray = MapType(rawValue: 20)
    public static let perCPUCgroupStorage = MapType(rawValue: 21)
    public static let queue = MapType(rawValue: 22)
    public static let stack = MapType(rawValue: 23)
    public static let skStorage = MapType(rawValue: 24)
    public static let devMapHash = MapType(rawValue: 25)
    public static let structOps = MapType(rawValue: 26)
    public static let ringBuffer = MapType(rawValue: 27)
    public static let inodeStorage = MapType(rawValue: 28)
    public static let taskStorage = MapType(rawValue: 29)
    public static let bloomFilter = MapType(rawValue: 30)
    public static let userRingBuffer = MapType(rawValue: 31)

    static let names = ["UNSPEC", "HASH", "ARRAY", "PROG_ARRAY", "PERF_EVENT_ARRAY", "PERCPU_HASH", "PERCPU_ARRAY",
                        "STACK_TRACE", "CGROUP_ARRAY", "LRU_HASH", "LRU_PERCPU_HASH", "LPM_TRIE", "ARRAY_OF_MAPS",
                        "HASH_OF_MAPS", "DEVMAP", "SOCKMAP", "CPUMAP", "XSKMAP", "SOCKHASH", "CGROUP_STORAGE",
                        "REUSEPORT_SOCKARRAY", "PERCPU_CGROUP_STORAGE", "QUEUE", "STACK", "SK_STORAGE", "DEVMAP_HASH",
                        "STRUCT_OPS", "RINGBUF", "INODE_STORAGE", "TASK_STORAGE", "BLOOM_FILTER", "USER_RINGBUF"]

    /// `BPF_MAP_TYPE_HASH`, or `BPF_MAP_TYPE_<n>` for values this version does not know.
    public var cName: String {
        Int(rawValue) < MapType.names.count ? "BPF_MAP_TYPE_" + MapType.names[Int(rawValue)] : "BPF_MAP_TYPE_\(rawValue)"
    }

    /// The lower-case name bpftool prints (`hash`, `percpu_array`).
    public var description: String {
        Int(rawValue) < MapType.names.count ? MapType.names[Int(rawValue)].lowercased() : "type \(rawValue)"
    }

    /// Whether the values of this map are other maps (`array_of_maps`, `hash_of_maps`).
    public var isMapOfMaps: Bool { self == .arrayOfMaps || self == .hashOfMaps }
}
