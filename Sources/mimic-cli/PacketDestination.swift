import MimicCore
import MimicLinux

/// Where a packet went after its program returned, as the kernel acts on the verdict: the
/// destinations `mimic run --pcap` counts and `--out-dir` writes one capture each
/// (`<name>.pcap`; Docs/UserGuide.md lists them).
enum PacketDestination: Hashable, CustomStringConvertible {
    /// Up the stack: `XDP_PASS`, `TC_ACT_OK`, a socket filter's kept bytes, cgroup allow, `BPF_OK`.
    case pass
    /// `XDP_TX`: back out of the interface it came in on.
    case tx
    /// Out of interface N: `bpf_redirect`, a devmap entry, a tc egress redirect or clone.
    case interface(UInt32)
    /// Into interface N's receive path: a tc redirect or clone with `BPF_F_INGRESS`.
    case interfaceIngress(UInt32)
    /// To the stack on CPU N: a cpumap entry (its key).
    case cpu(UInt32)
    /// To the AF_XDP socket of an xskmap entry.
    case socket(map: String, key: UInt32)
    /// sk_skb `SK_PASS` after `bpf_sk_redirect_map` / `_hash`: to the socket with this cookie,
    /// out of it, or into its receive queue with `BPF_F_INGRESS`.
    case socketRedirect(cookie: UInt64, ingress: Bool)
    /// sk_lookup `SK_PASS` after `bpf_sk_assign`: delivered to the socket with this cookie
    /// (the one the program selected instead of the kernel's regular lookup).
    case socketAssigned(cookie: UInt64)
    /// lwt `BPF_LWT_REROUTE`: routed again.
    case reroute
    /// Dropped: `XDP_DROP`, `TC_ACT_SHOT`, socket filter 0, cgroup deny, `BPF_DROP`.
    case drop
    /// `XDP_ABORTED`, or an R0 that is no XDP action (the kernel drops it as aborted).
    case aborted
    /// tc `TC_ACT_STOLEN` / `TC_ACT_TRAP`: consumed by the action.
    case stolen
    /// `XDP_REDIRECT` / `TC_ACT_REDIRECT` with no redirect target: the kernel drops it.
    case redirectError
    /// The run failed (a fault, the budget): the packet as read from the capture.
    case error

    /// The name in reports and, with `.pcap`, the file name in `--out-dir`.
    var description: String {
        switch self {
        case .pass: "pass"
        case .tx: "tx"
        case .interface(let index): "if\(index)"
        case .interfaceIngress(let index): "if\(index)-ingress"
        case .cpu(let cpu): "cpu\(cpu)"
        case .socket(let map, let key): "xsk-\(Self.fileSafe(map))-\(key)"
        case .socketRedirect(let cookie, let ingress): "sock-\(cookie)\(ingress ? "-ingress" : "")"
        case .socketAssigned(let cookie): "sk-\(cookie)"
        case .reroute: "reroute"
        case .drop: "drop"
        case .aborted: "aborted"
        case .stolen: "stolen"
        case .redirectError: "redirect-error"
        case .error: "error"
        }
    }

    var fileName: String { description + ".pcap" }

    /// Whether the packet leaves alive (what `--out` writes).
    var isAlive: Bool {
        switch self {
        case .pass, .tx, .interface, .interfaceIngress, .cpu, .socket, .socketRedirect, .socketAssigned, .reroute:
            true
        case .drop, .aborted, .stolen, .redirectError, .error: false
        }
    }

    /// Report order: the live destinations first, interfaces and CPUs by number.
    var sortKey: (Int, UInt32, String) {
        switch self {
        case .pass: (0, 0, "")
        case .tx: (1, 0, "")
        case .interface(let index): (2, index, "")
        case .interfaceIngress(let index): (3, index, "")
        case .cpu(let cpu): (4, cpu, "")
        case .socket(let map, let key): (5, key, map)
        case .socketRedirect(let cookie, let ingress):
            (6, UInt32(clamping: cookie), "\(String(cookie, radix: 16))\(ingress ? "i" : "")")
        case .socketAssigned(let cookie): (7, UInt32(clamping: cookie), String(cookie, radix: 16))
        case .reroute: (8, 0, "")
        case .drop: (9, 0, "")
        case .aborted: (10, 0, "")
        case .stolen: (11, 0, "")
        case .redirectError: (12, 0, "")
        case .error: (13, 0, "")
        }
    }

    /// A map name as a file name part: letters, digits, `_`, `.`; anything else becomes `_`.
    static func fileSafe(_ name: String) -> String {
        String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ".") ? $0 : "_" })
    }
}

/// One packet a run sent somewhere, with its bytes as the program left them.
struct Delivery {
    var destination: PacketDestination
    var packet: [UInt8]
    /// A `bpf_clone_redirect` copy, sent besides the packet itself.
    var isClone = false
    /// Trace lines of the devmap / cpumap entry programs that ran on the packet.
    var trace: [String] = []
    /// Why an entry program failed (a `.error` destination).
    var failure: String?

    init(destination: PacketDestination, packet: [UInt8], isClone: Bool = false) {
        self.destination = destination
        self.packet = packet
        self.isClone = isClone
    }

    /// Where a frame redirected through a map went after its entry programs ran: dropped by a
    /// verdict (or `XDP_ABORTED`, or no room) is `drop` / `aborted`, a failed entry program `error`.
    init(_ delivery: RedirectDelivery) {
        let destination: PacketDestination
        switch delivery.target {
        case .interface(let ifindex): destination = .interface(ifindex)
        case .cpu(let cpu): destination = .cpu(cpu)
        case .socket(let map, let key): destination = .socket(map: map, key: key)
        case .dropped:
            destination =
                delivery.runs.last.map { XDPAction(returnValue: $0.returnValue) } == .aborted ? .aborted : .drop
        case .failed: destination = .error
        }
        self.init(destination: destination, packet: delivery.packet)
        trace = delivery.runs.flatMap(\.trace)
        if case .failed(let message) = delivery.target { failure = message }
    }
}

extension PacketDestination {
    /// Where the packet of a run that returned `r0` went, by program type, as the kernel acts
    /// on the verdict: usually one delivery; a devmap broadcast gives one per interface, and tc
    /// clones add theirs. `ingressIfindex` is the interface the packet came in on (a broadcast
    /// with `BPF_F_EXCLUDE_INGRESS` skips it).
    static func deliveries(r0: UInt64, process: MimicCore.Process, session: Session, ingressIfindex: UInt32)
        -> [Delivery]
    {
        guard let state = LinuxProcessState.of(process), let buffer = state.packet else { return [] }
        switch session.type {
        case .xdp:
            let packet = buffer.data
            if let destination = xdpVerdict(r0) { return [Delivery(destination: destination, packet: packet)] }
            // A map entry: the kernel runs the entry's program (if any) before the frame goes.
            if let deliveries = session.emulator.deliver(redirectOf: process) { return deliveries.map(Delivery.init) }
            return redirected(state.redirect, packet: packet, session: session, ingressIfindex: ingressIfindex)
        case .schedCls, .schedAct:
            guard let result = SKBContext.result(of: process, returnValue: r0) else { return [] }
            let packet = result.framedPacket
            let clones = result.clones.map {
                Delivery(
                    destination: $0.isIngress ? .interfaceIngress($0.ifindex) : .interface($0.ifindex),
                    packet: $0.packet,
                    isClone: true)
            }
            let main: [Delivery]
            switch tcOutcome(Int32(truncatingIfNeeded: r0), session: session) {
            case .redirectError:
                if let redirect = result.redirect,
                    let resolved = session.emulator.resolve(redirect, frame: packet, nexthop: state.redirectNexthop)
                {
                    // bpf_redirect_neigh / bpf_redirect_peer, resolved against the network.
                    switch resolved {
                    case .transmit(let ifindex, let frame):
                        main = [Delivery(destination: .interface(ifindex), packet: frame)]
                    case .peerIngress(let ifindex):
                        main = [Delivery(destination: .interfaceIngress(ifindex), packet: packet)]
                    case .drop: main = [Delivery(destination: .drop, packet: packet)]
                    }
                } else {
                    main = redirected(result.redirect, packet: packet, session: session, ingressIfindex: ingressIfindex)
                }
            case let destination:
                main = [Delivery(destination: destination, packet: packet)]
            }
            return main + clones
        case .socketFilter:
            // r0 bytes of the data are kept; a header pulled before the data leaves with them.
            guard r0 != 0 else { return [Delivery(destination: .drop, packet: buffer.data)] }
            let kept = Array(buffer.frame.prefix(buffer.pulledLength + Int(min(r0, UInt64(buffer.length)))))
            return [Delivery(destination: .pass, packet: kept)]
        case .netfilter:
            // nf_hook_slow: NF_ACCEPT (1) continues, NF_DROP (0) drops (the verifier allows no
            // other value).
            return [Delivery(destination: r0 == NetfilterContext.accept ? .pass : .drop, packet: buffer.frame)]
        case .lwtSeg6Local:
            // End.BPF (seg6_local.c): BPF_OK routes the packet to its (new) destination,
            // BPF_REDIRECT by the route a bpf_lwt_seg6_action chose; BPF_DROP, other values, an
            // SRH the program left invalid or no usable route drop it.
            if case .interface(let ifindex, _)? = session.emulator.seg6Outcome(of: process, returnValue: r0) {
                return [Delivery(destination: .interface(ifindex), packet: buffer.data)]
            }
            return [Delivery(destination: .drop, packet: buffer.data)]
        case .lwtIn, .lwtOut, .lwtXmit:
            // run_lwt_bpf (net/core/lwt_bpf.c): BPF_OK, BPF_DROP, BPF_REDIRECT (lwt_xmit only;
            // elsewhere it counts as BPF_OK), BPF_LWT_REROUTE (lwt_in, lwt_xmit); any other
            // value drops the packet.
            let packet = buffer.data
            switch r0 {
            case 0: return [Delivery(destination: .pass, packet: packet)]
            case 7 where session.type == .lwtXmit:
                return redirected(state.redirect, packet: packet, session: session, ingressIfindex: ingressIfindex)
            case 7 where session.type != .lwtXmit: return [Delivery(destination: .pass, packet: packet)]
            case 128 where session.type == .lwtIn || session.type == .lwtXmit:
                return [Delivery(destination: .reroute, packet: packet)]
            case 128: return [Delivery(destination: .pass, packet: packet)]
            default: return [Delivery(destination: .drop, packet: packet)]
            }
        case .flowDissector:
            // BPF_OK (0) and BPF_FLOW_DISSECTOR_CONTINUE (129) dissected; anything else failed.
            return [Delivery(destination: r0 == 0 || r0 == 129 ? .pass : .drop, packet: buffer.data)]
        case .skSkb where session.source.attachType == .skSkbStreamParser:
            return [Delivery(destination: .pass, packet: buffer.data)]
        case .skSkb:
            // sk_psock_map_verd: SK_PASS (1) goes to the socket a bpf_sk_redirect_map / _hash
            // picked (__SK_REDIRECT), else up the stack; everything else is SK_DROP.
            guard r0 == 1 else { return [Delivery(destination: .drop, packet: buffer.data)] }
            if let redirect = state.socketRedirect {
                return [
                    Delivery(
                        destination: .socketRedirect(cookie: redirect.cookie, ingress: redirect.ingress),
                        packet: buffer.data)
                ]
            }
            return [Delivery(destination: .pass, packet: buffer.data)]
        default:
            // cgroup_skb: bit 0 allows.
            return [Delivery(destination: r0 & 1 == 1 ? .pass : .drop, packet: buffer.data)]
        }
    }

    /// Where an sk_lookup verdict sends the packet (`BPF_PROG_SK_LOOKUP_RUN_ARRAY`): `SK_DROP`
    /// drops it, `SK_PASS` with a socket `bpf_sk_assign` selected delivers it to that socket;
    /// `SK_PASS` without one (or any other value, which the verifier refuses) leaves it to the
    /// kernel's regular socket lookup: `pass`.
    static func skLookup(r0: UInt64, process: MimicCore.Process) -> PacketDestination {
        if r0 == 0 { return .drop }
        if r0 == 1, let result = SKLookupContext.result(of: process), result.selectedCookie != 0 {
            return .socketAssigned(cookie: result.selectedCookie)
        }
        return .pass
    }

    /// Where an XDP verdict sends the packet, or nil for `XDP_REDIRECT` (its target decides).
    static func xdpVerdict(_ r0: UInt64) -> PacketDestination? {
        PacketTally.xdpPlainIndex(r0).map { PacketTally.plainDestinations[$0] }
    }

    /// The fate of a tc action, `.redirectError` standing for "redirect" (the caller resolves
    /// the target). `tc`/`classifier` programs follow cls_bpf's direct action
    /// (`cls_bpf_exec_opcode`: OK, SHOT, STOLEN, TRAP, REDIRECT; every other value is UNSPEC,
    /// which continues); `tcx/*` follow `tcx_action_code` (PASS, DROP, REDIRECT; others are
    /// NEXT, which continues); netkit drops what is not PASS, NEXT or REDIRECT; `action`
    /// programs (act_bpf) pass all but SHOT and REDIRECT.
    static func tcOutcome(_ code: Int32, session: Session) -> PacketDestination {
        let redirect: Int32 = 7
        let shot: Int32 = 2
        if code == redirect { return .redirectError }
        if code == shot { return .drop }
        switch session.source.attachType {
        case .netkitPrimary, .netkitPeer:
            return code == 0 || code == -1 ? .pass : .drop
        case .tcxIngress, .tcxEgress:
            return .pass
        default:
            if session.type == .schedAct { return .pass }
            return code == 4 || code == 8 ? .stolen : .pass // TC_ACT_STOLEN, TC_ACT_TRAP
        }
    }

    /// The deliveries of a redirected packet: to the interface, devmap entries (every entry of
    /// a broadcast), the CPU of a cpumap entry or the socket of an xskmap entry; no target is
    /// `redirectError`.
    static func redirected(_ redirect: Redirect?, packet: [UInt8], session: Session, ingressIfindex: UInt32)
        -> [Delivery]
    {
        switch redirect {
        case nil:
            return [Delivery(destination: .redirectError, packet: packet)]
        case .interface(let ifindex, let flags)?:
            return [
                Delivery(destination: flags & 1 != 0 ? .interfaceIngress(ifindex) : .interface(ifindex), packet: packet)
            ]
        case .map(let target)?:
            switch target.mapType {
            case .cpuMap:
                return [Delivery(destination: .cpu(target.key), packet: packet)]
            case .xskMap:
                return [Delivery(destination: .socket(map: target.mapName, key: target.key), packet: packet)]
            default:
                if target.broadcastKeys.isEmpty {
                    guard let ifindex = target.ifindex else {
                        return [Delivery(destination: .redirectError, packet: packet)]
                    }
                    return [Delivery(destination: .interface(ifindex), packet: packet)]
                }
                // dev_map_enqueue_multi: a copy to every entry's interface (but the ingress one
                // with BPF_F_EXCLUDE_INGRESS); none left frees the packet.
                let map = session.map(named: target.mapName) as? RedirectMap
                let interfaces = target.broadcastKeys.compactMap { key -> UInt32? in
                    guard let value = map?.target(forKey: key), value.count >= 4 else { return nil }
                    return UInt32(value[0]) | UInt32(value[1]) << 8 | UInt32(value[2]) << 16 | UInt32(value[3]) << 24
                }.filter { !target.excludeIngress || $0 != ingressIfindex }
                if interfaces.isEmpty { return [Delivery(destination: .drop, packet: packet)] }
                return interfaces.map { Delivery(destination: .interface($0), packet: packet) }
            }
        }
    }
}
