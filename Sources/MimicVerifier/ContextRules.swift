import MimicCore

/// What a context field gives when read: a scalar, or one of the packet pointers.
enum ContextField {
    case scalar
    case packet
    case packetMeta
    case packetEnd
    case socketCommonOrNull
}

/// Which context offsets and sizes a program type may read or write (`*_is_valid_access` in
/// net/core/filter.c and kernel/trace/bpf_trace.c, Linux 6.18, x86-64 layouts).
enum ContextRules {
    /// The size of the context struct, for messages and pointer checks.
    static func size(of type: ProgramType) -> Int {
        switch type {
        case .xdp: 24
        case .kprobe: 168
        case .perfEvent: 184
        case .tracepoint: 2048
        case .rawTracepoint, .rawTracepointWritable, .tracing: 96
        default: 192
        }
    }

    /// `nil` when the access is refused (`invalid bpf_context access`), else what a read gives.
    static func access(_ type: ProgramType, offset off: Int, size: Int, write: Bool) -> ContextField? {
        guard off >= 0, size > 0, off % size == 0 else { return nil }
        switch type {
        case .xdp:
            guard !write, off + size <= 24, size == 4, off != 20 else { return nil }
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
                || (off >= familyStart && off < localPortEnd) || field(tstamp, 8) || field(wireLen, 4) || field(hwtstamp, 8)
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
}
