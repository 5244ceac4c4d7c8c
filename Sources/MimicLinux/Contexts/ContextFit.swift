import MimicCore

/// Which contexts can drive which programs, and what a program type fixes about its context.
///
/// A packet context must be the one the program type takes in the kernel: `xdp_md` for XDP,
/// `sk_buff` for tc, socket filters, cgroup_skb, lwt, sk_skb and flow dissectors (netfilter
/// programs take a `bpf_nf_ctx`, a struct context of their own). Another kind
/// would run and return a verdict that means nothing (an sk_buff read as an xdp_md), so it is
/// refused. A `generic` context (a layout of the user's making) drives any program; a
/// `captured` one is checked by its sub-context.
public enum ContextFit {
    /// The context kind (`type` of a context file) a program of `type` takes its packet in, or
    /// nil when it takes no packet.
    public static func packetKind(of type: ProgramType) -> PacketBuffer.Kind? {
        switch type {
        case .xdp: .xdp
        case .schedCls, .schedAct, .socketFilter, .cgroupSkb, .lwtIn, .lwtOut, .lwtXmit, .lwtSeg6Local, .skSkb,
            .flowDissector:
            .skb
        default: nil
        }
    }

    /// Where an sk_buff's data starts for a program of `type` in the kernel's test run
    /// (`BPF_PROG_TEST_RUN`, `bpf_prog_test_run_skb`): the MAC header for tc (`sched_cls`,
    /// `sched_act`, the "L2" types), the network header for the others.
    ///
    /// `sk_skb` programs (stream parser and verdict) see the stream's bytes: their `packet` is
    /// that data, with no headers, and `data` starts at its first byte (`.mac`: nothing pulled).
    public static func dataStart(of type: ProgramType) -> SKBContext.DataStart {
        type == .schedCls || type == .schedAct || type == .skSkb ? .mac : .network
    }

    /// `context` made ready for `program`: refused when it is a packet context of a kind the
    /// program's type does not take (the error names both); an sk_buff that leaves `dataStart`
    /// open gets the type's (`dataStart(of:)`).
    public static func fit(_ context: any Context, to program: ObjectProgram) throws(ContextError) -> any Context {
        try fit(
            context, type: program.type, attachType: program.attachType,
            describing: "program \(program.name) (type \(program.type), section \"\(program.sectionName)\")")
    }

    /// As `fit(_:to:)` for a program known by its type; `describing` names it in errors.
    /// `attachType` (the program's, from its section) fills in the hook of a `bpf_sock_addr` or
    /// `bpf_sock` context that does not name one.
    public static func fit(
        _ context: any Context, type: ProgramType, attachType: AttachType? = nil, describing program: String
    ) throws(ContextError) -> any Context {
        switch context {
        case let captured as CapturedContext:
            var fitted = captured
            do {
                fitted.subContext = try fit(
                    captured.subContext, type: type, attachType: attachType, describing: program)
            } catch {
                throw ContextError(path: "ctx.subContext", error.message)
            }
            return fitted
        case let xdp as XDPContext:
            try require(.xdp, type: type, describing: program)
            return xdp
        case var skb as SKBContext:
            try require(.skb, type: type, describing: program)
            if skb.dataStart == nil { skb.dataStart = dataStart(of: type) }
            skb.programType = type
            return skb
        case var addr as SockAddrContext:
            try requireStruct("bpf_sock_addr", .cgroupSockAddr, type: type, describing: program)
            if addr.attachType == nil { addr.attachType = attachType }
            return addr
        case var sock as SockContext:
            try requireStruct("bpf_sock", .cgroupSock, type: type, describing: program)
            if sock.attachType == nil { sock.attachType = attachType }
            return sock
        case is SockOpsContext:
            try requireStruct("bpf_sock_ops", .sockOps, type: type, describing: program)
            return context
        case is SKLookupContext:
            try requireStruct("bpf_sk_lookup", .skLookup, type: type, describing: program)
            return context
        case is SKReuseportContext:
            try requireStruct("sk_reuseport_md", .skReuseport, type: type, describing: program)
            return context
        case is SKMsgContext:
            try requireStruct("sk_msg_md", .skMsg, type: type, describing: program)
            return context
        case is FlowDissectorContext:
            try requireStruct("bpf_flow_dissector", .flowDissector, type: type, describing: program)
            return context
        case is NetfilterContext:
            try requireStruct("bpf_nf_ctx", .netfilter, type: type, describing: program)
            return context
        default:
            return context
        }
    }

    /// The context kind (`type` of a context file) a program of `type` takes when it is a
    /// socket or cgroup struct, or nil.
    public static func structKind(of type: ProgramType) -> String? {
        switch type {
        case .cgroupSockAddr: "bpf_sock_addr"
        case .cgroupSock: "bpf_sock"
        case .sockOps: "bpf_sock_ops"
        case .skLookup: "bpf_sk_lookup"
        case .flowDissector: "bpf_flow_dissector"
        case .skMsg: "sk_msg_md"
        case .skReuseport: "sk_reuseport_md"
        case .netfilter: "bpf_nf_ctx"
        default: nil
        }
    }

    static func requireStruct(_ kind: String, _ wanted: ProgramType, type: ProgramType, describing program: String)
        throws(ContextError)
    {
        guard type != wanted else { return }
        let takes =
            structKind(of: type).map { "takes a \($0) context" }
            ?? packetKind(of: type).map { "takes an \($0.rawValue) context" }
            ?? "takes no such context (give a generic context)"
        throw ContextError(path: "type", "a context of kind \"\(kind)\" does not fit \(program), which \(takes)")
    }

    static func require(_ kind: PacketBuffer.Kind, type: ProgramType, describing program: String) throws(ContextError) {
        let wanted = packetKind(of: type)
        guard wanted != kind else { return }
        let takes = wanted.map { "takes an \($0.rawValue) context" } ?? "takes no packet (give a generic context)"
        throw ContextError(
            path: "type", "a context of kind \"\(kind.rawValue)\" does not fit \(program), which \(takes)")
    }
}
