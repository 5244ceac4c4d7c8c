/// What libbpf's section-name table (`section_defs` in libbpf's src/libbpf.c) says about an ELF
/// section: the program type, the `expected_attach_type` and the load flags.
public struct SectionDefinition: Sendable, Equatable {
    /// How a pattern matches, after libbpf's `sec_def_matches`: `exact` names match only
    /// themselves; `prefix` (libbpf's `type+`) matches `type` and `type/anything`.
    public enum Match: Sendable, Equatable { case exact, prefix }

    /// The pattern as libbpf writes it, without the trailing `+` (`kprobe`, `tc/ingress`).
    public let pattern: String
    public let match: Match
    public let programType: ProgramType
    /// The `expected_attach_type` libbpf loads the program with; nil where libbpf gives 0 and
    /// means none (`SEC("tc")`, `SEC("kprobe/...")`).
    public let attachType: AttachType?
    /// Loaded with `BPF_F_SLEEPABLE` (`.s` sections).
    public let isSleepable: Bool
    /// Loaded with `BPF_F_XDP_HAS_FRAGS` (`xdp.frags` sections).
    public let hasXDPFrags: Bool

    init(
        _ pattern: String, _ match: Match, _ programType: ProgramType, _ attachType: AttachType? = nil,
        sleepable: Bool = false, frags: Bool = false
    ) {
        self.pattern = pattern
        self.match = match
        self.programType = programType
        self.attachType = attachType
        self.isSleepable = sleepable
        self.hasXDPFrags = frags
    }

    /// Whether `sectionName` matches this row.
    public func matches(_ sectionName: String) -> Bool {
        switch match {
        case .exact: sectionName == pattern
        case .prefix: sectionName == pattern || sectionName.hasPrefix(pattern + "/")
        }
    }

    /// The first row of libbpf's table matching `sectionName` (libbpf's `find_sec_def`), or nil.
    public static func find(_ sectionName: String) -> SectionDefinition? {
        table.first { $0.matches(sectionName) }
    }

    // Attach types newer than the generated table (Linux 6.18); values from libbpf's bpf.h.
    static let traceFsession = AttachType(rawValue: 58)
    static let traceFentryMulti = AttachType(rawValue: 59)
    static let traceFexitMulti = AttachType(rawValue: 60)
    static let traceFsessionMulti = AttachType(rawValue: 61)

    /// libbpf's `section_defs`, row for row and in its order (the first match wins), as of
    /// libbpf commit f7081a6 (July 2026). `SEC_DEF("kprobe+", ...)` is `("kprobe", .prefix, ...)`.
    public static let table: [SectionDefinition] = [
        .init("socket", .exact, .socketFilter),
        .init("sk_reuseport/migrate", .exact, .skReuseport, .skReuseportSelectOrMigrate),
        .init("sk_reuseport", .exact, .skReuseport, .skReuseportSelect),
        .init("kprobe", .prefix, .kprobe),
        .init("uprobe", .prefix, .kprobe),
        .init("uprobe.s", .prefix, .kprobe, sleepable: true),
        .init("kretprobe", .prefix, .kprobe),
        .init("uretprobe", .prefix, .kprobe),
        .init("uretprobe.s", .prefix, .kprobe, sleepable: true),
        .init("kprobe.multi", .prefix, .kprobe, .traceKprobeMulti),
        .init("kretprobe.multi", .prefix, .kprobe, .traceKprobeMulti),
        .init("kprobe.session", .prefix, .kprobe, .traceKprobeSession),
        .init("uprobe.multi", .prefix, .kprobe, .traceUprobeMulti),
        .init("uretprobe.multi", .prefix, .kprobe, .traceUprobeMulti),
        .init("uprobe.session", .prefix, .kprobe, .traceUprobeSession),
        .init("uprobe.multi.s", .prefix, .kprobe, .traceUprobeMulti, sleepable: true),
        .init("uretprobe.multi.s", .prefix, .kprobe, .traceUprobeMulti, sleepable: true),
        .init("uprobe.session.s", .prefix, .kprobe, .traceUprobeSession, sleepable: true),
        .init("ksyscall", .prefix, .kprobe),
        .init("kretsyscall", .prefix, .kprobe),
        .init("usdt", .prefix, .kprobe),
        .init("usdt.s", .prefix, .kprobe, sleepable: true),
        .init("tc/ingress", .exact, .schedCls, .tcxIngress),
        .init("tc/egress", .exact, .schedCls, .tcxEgress),
        .init("tcx/ingress", .exact, .schedCls, .tcxIngress),
        .init("tcx/egress", .exact, .schedCls, .tcxEgress),
        .init("tc", .exact, .schedCls),
        .init("classifier", .exact, .schedCls),
        .init("action", .exact, .schedAct),
        .init("netkit/primary", .exact, .schedCls, .netkitPrimary),
        .init("netkit/peer", .exact, .schedCls, .netkitPeer),
        .init("tracepoint", .prefix, .tracepoint),
        .init("tp", .prefix, .tracepoint),
        .init("tracepoint.s", .prefix, .tracepoint, sleepable: true),
        .init("tp.s", .prefix, .tracepoint, sleepable: true),
        .init("raw_tracepoint", .prefix, .rawTracepoint),
        .init("raw_tp", .prefix, .rawTracepoint),
        .init("raw_tracepoint.s", .prefix, .rawTracepoint, sleepable: true),
        .init("raw_tp.s", .prefix, .rawTracepoint, sleepable: true),
        .init("raw_tracepoint.w", .prefix, .rawTracepointWritable),
        .init("raw_tp.w", .prefix, .rawTracepointWritable),
        .init("tp_btf", .prefix, .tracing, .traceRawTp),
        .init("tp_btf.s", .prefix, .tracing, .traceRawTp, sleepable: true),
        .init("fentry", .prefix, .tracing, .traceFentry),
        .init("fmod_ret", .prefix, .tracing, .modifyReturn),
        .init("fexit", .prefix, .tracing, .traceFexit),
        .init("fentry.s", .prefix, .tracing, .traceFentry, sleepable: true),
        .init("fmod_ret.s", .prefix, .tracing, .modifyReturn, sleepable: true),
        .init("fexit.s", .prefix, .tracing, .traceFexit, sleepable: true),
        .init("fsession", .prefix, .tracing, traceFsession),
        .init("fsession.s", .prefix, .tracing, traceFsession, sleepable: true),
        .init("fsession.multi", .prefix, .tracing, traceFsessionMulti),
        .init("fsession.multi.s", .prefix, .tracing, traceFsessionMulti, sleepable: true),
        .init("fentry.multi", .prefix, .tracing, traceFentryMulti),
        .init("fexit.multi", .prefix, .tracing, traceFexitMulti),
        .init("fentry.multi.s", .prefix, .tracing, traceFentryMulti, sleepable: true),
        .init("fexit.multi.s", .prefix, .tracing, traceFexitMulti, sleepable: true),
        .init("freplace", .prefix, .ext),
        .init("lsm", .prefix, .lsm, .lsmMac),
        .init("lsm.s", .prefix, .lsm, .lsmMac, sleepable: true),
        .init("lsm_cgroup", .prefix, .lsm, .lsmCgroup),
        .init("iter", .prefix, .tracing, .traceIter),
        .init("iter.s", .prefix, .tracing, .traceIter, sleepable: true),
        .init("syscall", .exact, .syscall, sleepable: true),
        .init("xdp.frags/devmap", .exact, .xdp, .xdpDevmap, frags: true),
        .init("xdp/devmap", .exact, .xdp, .xdpDevmap),
        .init("xdp.frags/cpumap", .exact, .xdp, .xdpCpumap, frags: true),
        .init("xdp/cpumap", .exact, .xdp, .xdpCpumap),
        .init("xdp.frags", .exact, .xdp, .xdp, frags: true),
        .init("xdp", .exact, .xdp, .xdp),
        .init("perf_event", .exact, .perfEvent),
        .init("lwt_in", .exact, .lwtIn),
        .init("lwt_out", .exact, .lwtOut),
        .init("lwt_xmit", .exact, .lwtXmit),
        .init("lwt_seg6local", .exact, .lwtSeg6Local),
        .init("sockops", .exact, .sockOps, .cgroupSockOps),
        .init("sk_skb/stream_parser", .exact, .skSkb, .skSkbStreamParser),
        .init("sk_skb/stream_verdict", .exact, .skSkb, .skSkbStreamVerdict),
        .init("sk_skb/verdict", .exact, .skSkb, .skSkbVerdict),
        .init("sk_skb", .exact, .skSkb),
        .init("sk_msg", .exact, .skMsg, .skMsgVerdict),
        .init("lirc_mode2", .exact, .lircMode2, .lircMode2),
        .init("flow_dissector", .exact, .flowDissector, .flowDissector),
        .init("cgroup_skb/ingress", .exact, .cgroupSkb, .cgroupInetIngress),
        .init("cgroup_skb/egress", .exact, .cgroupSkb, .cgroupInetEgress),
        .init("cgroup/skb", .exact, .cgroupSkb),
        .init("cgroup/sock_create", .exact, .cgroupSock, .cgroupInetSockCreate),
        .init("cgroup/sock_release", .exact, .cgroupSock, .cgroupInetSockRelease),
        .init("cgroup/sock", .exact, .cgroupSock, .cgroupInetSockCreate),
        .init("cgroup/post_bind4", .exact, .cgroupSock, .cgroupInet4PostBind),
        .init("cgroup/post_bind6", .exact, .cgroupSock, .cgroupInet6PostBind),
        .init("cgroup/bind4", .exact, .cgroupSockAddr, .cgroupInet4Bind),
        .init("cgroup/bind6", .exact, .cgroupSockAddr, .cgroupInet6Bind),
        .init("cgroup/connect4", .exact, .cgroupSockAddr, .cgroupInet4Connect),
        .init("cgroup/connect6", .exact, .cgroupSockAddr, .cgroupInet6Connect),
        .init("cgroup/connect_unix", .exact, .cgroupSockAddr, .cgroupUnixConnect),
        .init("cgroup/sendmsg4", .exact, .cgroupSockAddr, .cgroupUdp4Sendmsg),
        .init("cgroup/sendmsg6", .exact, .cgroupSockAddr, .cgroupUdp6Sendmsg),
        .init("cgroup/sendmsg_unix", .exact, .cgroupSockAddr, .cgroupUnixSendmsg),
        .init("cgroup/recvmsg4", .exact, .cgroupSockAddr, .cgroupUdp4Recvmsg),
        .init("cgroup/recvmsg6", .exact, .cgroupSockAddr, .cgroupUdp6Recvmsg),
        .init("cgroup/recvmsg_unix", .exact, .cgroupSockAddr, .cgroupUnixRecvmsg),
        .init("cgroup/getpeername4", .exact, .cgroupSockAddr, .cgroupInet4Getpeername),
        .init("cgroup/getpeername6", .exact, .cgroupSockAddr, .cgroupInet6Getpeername),
        .init("cgroup/getpeername_unix", .exact, .cgroupSockAddr, .cgroupUnixGetpeername),
        .init("cgroup/getsockname4", .exact, .cgroupSockAddr, .cgroupInet4Getsockname),
        .init("cgroup/getsockname6", .exact, .cgroupSockAddr, .cgroupInet6Getsockname),
        .init("cgroup/getsockname_unix", .exact, .cgroupSockAddr, .cgroupUnixGetsockname),
        .init("cgroup/sysctl", .exact, .cgroupSysctl, .cgroupSysctl),
        .init("cgroup/getsockopt", .exact, .cgroupSockopt, .cgroupGetsockopt),
        .init("cgroup/setsockopt", .exact, .cgroupSockopt, .cgroupSetsockopt),
        .init("cgroup/dev", .exact, .cgroupDevice, .cgroupDevice),
        .init("struct_ops", .prefix, .structOps),
        .init("struct_ops.s", .prefix, .structOps, sleepable: true),
        .init("sk_lookup", .exact, .skLookup, .skLookup),
        .init("netfilter", .exact, .netfilter, .netfilter),
    ]
}

extension ProgramType {
    /// The program type libbpf would pick for an ELF section name, or `.unspec` if the name
    /// is not in libbpf's table (`SectionDefinition.table`); a loader then has to give one
    /// (`ObjectConfiguration.programTypes`, `mimic run --type`).
    public static func guess(sectionName: String) -> ProgramType {
        SectionDefinition.find(sectionName)?.programType ?? .unspec
    }
}
