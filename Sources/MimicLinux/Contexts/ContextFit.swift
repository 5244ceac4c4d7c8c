import MimicCore

/// Which contexts can drive which programs, and what a program type fixes about its context.
///
/// A packet context must be the one the program type takes in the kernel: `xdp_md` for XDP,
/// `sk_buff` for tc, socket filters, cgroup_skb, lwt, sk_skb and flow dissectors. Another kind
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
    public static func dataStart(of type: ProgramType) -> SKBContext.DataStart {
        type == .schedCls || type == .schedAct ? .mac : .network
    }

    /// `context` made ready for `program`: refused when it is a packet context of a kind the
    /// program's type does not take (the error names both); an sk_buff that leaves `dataStart`
    /// open gets the type's (`dataStart(of:)`).
    public static func fit(_ context: any Context, to program: ObjectProgram) throws(ContextError) -> any Context {
        try fit(
            context, type: program.type,
            describing: "program \(program.name) (type \(program.type), section \"\(program.sectionName)\")")
    }

    /// As `fit(_:to:)` for a program known by its type; `describing` names it in errors.
    public static func fit(_ context: any Context, type: ProgramType, describing program: String) throws(ContextError)
        -> any Context
    {
        switch context {
        case let captured as CapturedContext:
            var fitted = captured
            do {
                fitted.subContext = try fit(captured.subContext, type: type, describing: program)
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
            return skb
        default:
            return context
        }
    }

    static func require(_ kind: PacketBuffer.Kind, type: ProgramType, describing program: String) throws(ContextError) {
        let wanted = packetKind(of: type)
        guard wanted != kind else { return }
        let takes = wanted.map { "takes an \($0.rawValue) context" } ?? "takes no packet (give a generic context)"
        throw ContextError(
            path: "type", "a context of kind \"\(kind.rawValue)\" does not fit \(program), which \(takes)")
    }
}
