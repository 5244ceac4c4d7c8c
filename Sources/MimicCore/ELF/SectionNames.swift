/// The program type libbpf gives an ELF section name (`SEC("xdp")`, `SEC("kprobe/do_exit")`,
/// `SEC("tc")`, ...).
extension ProgramType {
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

    /// The program type libbpf would pick for an ELF section name, or `.unspec` if the name
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
        return .unspec
    }
}
