import MimicCore

/// What a context field gives when read: a scalar, or one of the packet pointers.
enum ContextField {
    case scalar
    case packet
    case packetMeta
    case packetEnd
    case socketCommonOrNull
    /// `PTR_TO_SOCKET`, never NULL (`sk_msg_md.sk`, `bpf_sock_addr.sk`).
    case socket
    /// `PTR_TO_FLOW_KEYS` (`__sk_buff.flow_keys` in the flow dissector).
    case flowKeys
    /// A trusted `PTR_TO_BTF_ID` of the named kernel struct, never NULL (`bpf_nf_ctx.state`,
    /// `bpf_nf_ctx.skb`).
    case btfObject(String)
}

/// Which context offsets and sizes a program type may read or write (`*_is_valid_access` in
/// net/core/filter.c and kernel/trace/bpf_trace.c, Linux 6.18, x86-64 layouts).
enum ContextRules {
    /// The size of the context struct, for messages and pointer checks.
    static func size(of type: ProgramType) -> Int {
        switch type {
        case .xdp: 24
        case .skMsg: 80
        case .cgroupSockAddr: 72
        case .skReuseport: 56
        case .kprobe: 168
        case .perfEvent: 184
        case .tracepoint: 2048
        case .rawTracepoint, .rawTracepointWritable, .tracing: 96
        case .netfilter: 16
        default: 192
        }
    }

    /// `nil` when the access is refused (`invalid bpf_context access`), else what a read gives.
    /// `attachType` is the program's expected attach type (cgroup/sock_addr fields depend on it).
    static func access(
        _ type: ProgramType, offset off: Int, size: Int, write: Bool, attachType: AttachType? = nil
    ) -> ContextField? {
        guard off >= 0, size > 0, off % size == 0 else { return nil }
        switch type {
        case .flowDissector:
            return flowDissector(off: off, size: size, write: write)
        case .skMsg:
            return skMsg(off: off, size: size, write: write)
        case .skReuseport:
            return skReuseport(off: off, size: size, write: write)
        case .cgroupSockAddr:
            return sockAddr(off: off, size: size, write: write, attachType: attachType)
        case .xdp:
            // egress_ifindex (20) only in a devmap entry's program (xdp_is_valid_access).
            guard !write, off + size <= 24, size == 4, off != 20 || attachType == .xdpDevmap else { return nil }
            switch off {
            case 0: return .packet
            case 4: return .packetEnd
            case 8: return .packetMeta
            default: return .scalar
            }
        case .socketFilter, .schedCls, .schedAct, .cgroupSkb, .lwtIn, .lwtOut, .lwtXmit, .skSkb, .lwtSeg6Local:
            return skb(type, off: off, size: size, write: write)
        case .kprobe:
            guard !write, off + size <= 168 else { return nil }
            return .scalar
        case .tracepoint:
            guard !write, off >= 8, off < 2048 else { return nil }
            return .scalar
        case .rawTracepoint, .rawTracepointWritable, .tracing:
            guard !write, off + size <= 96 else { return nil }
            return .scalar
        case .perfEvent:
            guard !write, off + size <= 184 else { return nil }
            if off < 168, size != 8 { return nil }
            return .scalar
        case .netfilter:
            // struct bpf_nf_ctx: `state` and `skb`, read whole only (nf_is_valid_access).
            guard !write, size == 8 else { return nil }
            switch off {
            case 0: return .btfObject("nf_hook_state")
            case 8: return .btfObject("sk_buff")
            default: return nil
            }
        default:
            // Program types without modelled rules: any aligned read inside 256 bytes.
            guard off + size <= 256 else { return nil }
            return .scalar
        }
    }

    // struct __sk_buff offsets.
    static let cbStart = 48, cbEnd = 68, tcClassid = 72, data = 76, dataEnd = 80, familyStart = 88
    static let localPortEnd = 140, dataMeta = 140, flowKeys = 144, tstamp = 152, wireLen = 160, sk = 168
    static let tstampType = 180, hwtstamp = 184, skbSize = 192

    private static func skb(_ type: ProgramType, off: Int, size: Int, write: Bool) -> ContextField? {
        guard off < skbSize, off + size <= skbSize else { return nil }
        // The access starts inside the field at `start` (the kernel's `bpf_ctx_range`).
        func field(_ start: Int, _ size: Int) -> Bool { off >= start && off < start + size }
        let isTC = type == .schedCls || type == .schedAct
        var result = ContextField.scalar
        switch type {
        case .socketFilter:
            if field(tcClassid, 4) || field(data, 4) || field(dataMeta, 4) || field(dataEnd, 4)
                || (off >= familyStart && off < localPortEnd) || field(tstamp, 8) || field(wireLen, 4)
                || field(hwtstamp, 8)
            {
                return nil
            }
            if write, !(off >= cbStart && off < cbEnd) { return nil }
        default:
            if write {
                let writable =
                    off == 8 || off == 32 || (off >= cbStart && off < cbEnd) || off == tstamp
                    || (isTC && (off == 44 || off == tcClassid || off == 12))
                if !writable { return nil }
            }
            if off >= familyStart && off < localPortEnd, type != .cgroupSkb, type != .skSkb { return nil }
            if field(dataMeta, 4) && !isTC && type != .cgroupSkb { return nil }
            if field(data, 4) { result = .packet }
            if field(dataEnd, 4) { result = .packetEnd }
            if field(dataMeta, 4) { result = .packetMeta }
        }
        switch off {
        case cbStart..<cbEnd:
            guard off + size <= cbEnd else { return nil }
        case 92..<100, 100..<132, data..<(data + 4), dataEnd..<(dataEnd + 4), dataMeta..<(dataMeta + 4):
            guard size == 4 else { return nil }
        case flowKeys..<tstamp:
            return nil
        case hwtstamp..<(hwtstamp + 8):
            guard !write, size == 8 else { return nil }
        case tstamp..<(tstamp + 8):
            guard size == 8 else { return nil }
        case sk:
            guard !write, size == 8 else { return nil }
            return .socketCommonOrNull
        case tstampType:
            guard isTC, size == 1 else { return nil }
        case (tstampType + 1)..<hwtstamp, (sk + 1)..<(sk + 8):
            return nil
        default:
            if write { guard size == 4 else { return nil } } else { guard size <= 4 else { return nil } }
        }
        return result
    }

    /// The size of `struct bpf_flow_keys`.
    static let flowKeysSize: Int64 = 56

    /// `flow_dissector_is_valid_access`: only `data`, `data_end` and `flow_keys` are read.
    private static func flowDissector(off: Int, size: Int, write: Bool) -> ContextField? {
        guard !write else { return nil }
        switch off {
        case data: return size == 4 ? .packet : nil
        case dataEnd: return size == 4 ? .packetEnd : nil
        case flowKeys: return size == 8 ? .flowKeys : nil
        default: return nil
        }
    }

    /// `sk_msg_is_valid_access` (struct sk_msg_md): read-only; 8-byte packet pointers and socket.
    private static func skMsg(off: Int, size: Int, write: Bool) -> ContextField? {
        guard !write else { return nil }
        switch off {
        case 0: return size == 8 ? .packet : nil
        case 8: return size == 8 ? .packetEnd : nil
        case 72: return size == 8 ? .socket : nil
        case 16..<72: return size == 4 ? .scalar : nil // family .. size
        default: return nil
        }
    }

    /// `sk_reuseport_is_valid_access` (struct sk_reuseport_md): read-only; `len`, `eth_protocol`
    /// (at least 2 bytes), `ip_protocol` and `bind_inany` may be read narrower than 4 bytes.
    private static func skReuseport(off: Int, size: Int, write: Bool) -> ContextField? {
        guard !write, off + size <= 56 else { return nil }
        switch off {
        case 0: return size == 8 ? .packet : nil
        case 8: return size == 8 ? .packetEnd : nil
        case 32: return size == 4 ? .scalar : nil // hash
        case 40: return size == 8 ? .socket : nil
        case 48: return size == 8 ? .socketCommonOrNull : nil // migrating_sk
        case 20..<24: return size >= 2 && size <= 4 ? .scalar : nil // eth_protocol
        case 16..<32: return size <= 4 ? .scalar : nil // len, ip_protocol, bind_inany
        default: return nil
        }
    }

    /// `sock_addr_is_valid_access` (struct bpf_sock_addr): the address fields of the attach
    /// type's family only (`msg_src_*` for sendmsg only); addresses and the port may be written
    /// with 4 bytes (8 inside the IPv6 arrays) and read narrower; family, type and protocol are
    /// read-only 4-byte fields.
    private static func sockAddr(off: Int, size: Int, write: Bool, attachType: AttachType?) -> ContextField? {
        guard off < 72, off + size <= 72 else { return nil }
        let userIP4: Set<AttachType> = [
            .cgroupInet4Bind, .cgroupInet4Connect, .cgroupInet4Getpeername, .cgroupInet4Getsockname,
            .cgroupUdp4Sendmsg, .cgroupUdp4Recvmsg,
        ]
        let userIP6: Set<AttachType> = [
            .cgroupInet6Bind, .cgroupInet6Connect, .cgroupInet6Getpeername, .cgroupInet6Getsockname,
            .cgroupUdp6Sendmsg, .cgroupUdp6Recvmsg,
        ]
        // Without an attach type (a bare program), the family checks are not applied.
        func allowed(_ types: Set<AttachType>) -> Bool { attachType.map { types.contains($0) } ?? true }
        let ip4 = 4..<8
        let ip6 = 8..<24
        let port = 24..<28
        let srcIP4 = 40..<44
        let srcIP6 = 44..<60
        switch off {
        case ip4: guard allowed(userIP4) else { return nil }
        case ip6: guard allowed(userIP6) else { return nil }
        case srcIP4: guard allowed([.cgroupUdp4Sendmsg]) else { return nil }
        case srcIP6: guard allowed([.cgroupUdp6Sendmsg]) else { return nil }
        default: break
        }
        switch off {
        case ip4, ip6, port, srcIP4, srcIP6:
            // An 8-byte access inside one of the IPv6 arrays is allowed (`bpf_ctx_wide_access_ok`).
            if size == 8, ip6.contains(off) || srcIP6.contains(off) { return .scalar }
            if write { return size == 4 ? .scalar : nil }
            return size <= 4 ? .scalar : nil
        case 0, 28, 32, 36:
            return !write && size == 4 ? .scalar : nil
        case 64:
            return !write && size == 8 ? .socket : nil
        default:
            return nil
        }
    }
}
