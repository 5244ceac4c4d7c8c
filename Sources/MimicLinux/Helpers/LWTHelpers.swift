import MimicCore

/// The lightweight-tunnel helpers (`net/core/filter.c`, `net/core/lwt_bpf.c`,
/// `net/ipv6/seg6.c`, `net/ipv6/seg6_iptunnel.c`, `net/ipv6/seg6_local.c` of Linux 6.18):
///
/// - `bpf_lwt_push_encap(skb, type, hdr, len)`: lwt_in takes `BPF_LWT_ENCAP_SEG6` (0),
///   `BPF_LWT_ENCAP_SEG6_INLINE` (1) and `BPF_LWT_ENCAP_IP` (2), lwt_xmit only `IP`; any other
///   type `-EINVAL`. IP (`bpf_lwt_push_ip_encap`): a header of 20–256 bytes, IPv4 (at least
///   `ihl * 4` bytes; a zero checksum is filled in) or IPv6 (at least 40), else `-EINVAL`; it is
///   pushed before the packet, `skb->protocol` follows it and the hash is cleared. SEG6: the SRH
///   must pass `seg6_validate_srh` (`-EINVAL`); INLINE needs an IPv6 packet (`-EBADMSG`) and
///   inserts the SRH after its header (the old destination becomes `segments[0]`, the first
///   segment the destination); SEG6 pushes an outer IPv6 header (next header 41, as the kernel
///   passes `IPPROTO_IPV6` whatever the inner packet; an IPv6 inner packet's hop limit,
///   traffic class and flow label, else 64, 0 and 0; source the route's device's address) with
///   the SRH. Either then looks the new destination up (`seg6_lookup_nexthop`, below) and returns
///   its result.
/// - The seg6local helpers work on the SRH state End.BPF set up before the program ran
///   (`SKBContext` for `lwt_seg6local`, `Seg6State`): `bpf_lwt_seg6_store_bytes` writes only
///   `flags`, `tag` and the TLV area (`-EFAULT` elsewhere; TLV writes mark the SRH to be
///   revalidated), `bpf_lwt_seg6_adjust_srh` grows or shrinks the TLV area (zeroed bytes
///   inserted; `-EFAULT` outside it), `bpf_lwt_seg6_action` runs `End.X` (a next hop, 16
///   bytes), `End.T` (a table, 4 bytes), `End.DT6` (decapsulate the inner IPv6 packet, then
///   look it up in a table), `End.B6` (insert an SRH) and `End.B6.Encaps` (push an outer
///   header with an SRH): `-EBADMSG` without a valid SRH, `-EINVAL` for a wrong parameter
///   length or another action. No SRH state: `-EINVAL`.
/// - `seg6_lookup_nexthop` routes in the emulated network (IPv6, `Network.routes`): a unicast
///   route out of a device gives 0 and is the packet's route (`Seg6State.route`); a route to a
///   local address (its device would be loopback) or a blackhole route `-EINVAL`, no route
///   `-ENETUNREACH`, an unreachable route `-EHOSTUNREACH`, a prohibit route `-EACCES`; a table
///   that does not exist `-EINVAL` (the kernel's blackhole entry).
///
/// SRHs with the HMAC flag stop the program (HMAC keys are not modelled); packets are never
/// GSO.
enum LWTHelpers {
    static let encapSeg6: UInt32 = 0, encapSeg6Inline: UInt32 = 1, encapIP: UInt32 = 2
    /// `LWT_BPF_MAX_HEADROOM`.
    static let maxHeadroom = 256
    /// `SEG6_LOCAL_ACTION_*` the helper takes.
    static let endX: UInt32 = 2, endT: UInt32 = 3, endDT6: UInt32 = 7, endB6: UInt32 = 9, endB6Encap: UInt32 = 10
    /// Errnos of `dst->error` the kernel's route entries carry.
    static let badMessage = Errno(rawValue: 74), networkUnreachable = Errno(rawValue: 101)
    static let hostUnreachable = Errno(rawValue: 113), accessDenied = Errno(rawValue: 13)
    static let routingHeader: UInt8 = 43
    /// `SR6_FLAG1_HMAC`.
    static let hmacFlag: UInt8 = 1 << 3

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let network = emulator.networkState
        return [
            // long bpf_lwt_push_encap(struct __sk_buff *skb, u32 type, void *hdr, u32 len)
            LinuxHelper.make(.lwtPushEncap) { call throws(HelperFailure) in
                try network.requireValid(call)
                let buffer = try call.packet(.skb)
                let type = try programType(call, [.lwtIn, .lwtXmit], "lwt_in or lwt_xmit")
                let encap = call.arg32(2)
                let length = try call.size(4, limit: 1 << 16)
                switch encap {
                case encapIP:
                    return try pushIP(call, buffer, header: try call.read(call.arg(3), count: length))
                case encapSeg6, encapSeg6Inline:
                    guard type == .lwtIn else { return Errno.invalid.r0 } // bpf_lwt_xmit_push_encap: IP only
                    let state = try call.linuxState()
                    return try pushSeg6(
                        call, buffer, state, network, inline: encap == encapSeg6Inline,
                        srh: try call.read(call.arg(3), count: length))
                default:
                    return Errno.invalid.r0
                }
            },
            // long bpf_lwt_seg6_store_bytes(struct __sk_buff *skb, u32 offset, const void *from, u32 len)
            LinuxHelper.make(.lwtSeg6StoreBytes) { call throws(HelperFailure) in
                let (buffer, state) = try seg6Context(call)
                guard let srh = state.srhOffset else { return Errno.invalid.r0 }
                let length = try call.size(4, limit: 1 << 16)
                let bytes = buffer.data
                let firstSegment = srh + 4 < bytes.count ? Int(bytes[srh + 4]) : 0
                // As the kernel computes it: the TLVs from the SRH start plus the segments,
                // without the SRH's own 8 bytes.
                let tlvs = srh + ((firstSegment + 1) << 4)
                let end = srh + 8 + state.headerLength
                let at = Int(call.arg32(2))
                if at >= tlvs, at + length <= end {
                    state.valid = false
                } else if at < srh + 5 || at + length > srh + 8 {
                    return Errno.fault.r0
                }
                guard at + length <= buffer.length else { return Errno.fault.r0 }
                guard let found = findHeader(bytes, target: routingHeader) else { return Errno.invalid.r0 }
                state.srhOffset = found
                buffer.storage.write(try call.read(call.arg(3), count: length), at: buffer.dataOffset + at)
                return 0
            },
            // long bpf_lwt_seg6_adjust_srh(struct __sk_buff *skb, u32 offset, s32 delta)
            LinuxHelper.make(.lwtSeg6AdjustSrh) { call throws(HelperFailure) in
                let (buffer, state) = try seg6Context(call)
                guard let srh = state.srhOffset else { return Errno.invalid.r0 }
                let bytes = buffer.data
                let firstSegment = srh + 4 < bytes.count ? Int(bytes[srh + 4]) : 0
                let tlvs = srh + 8 + ((firstSegment + 1) << 4)
                let end = srh + 8 + state.headerLength
                let at = Int(call.arg32(2))
                let delta = Int(call.argInt(3))
                guard at >= tlvs, at <= end else { return Errno.fault.r0 }
                if delta < 0, at - delta > end { return Errno.fault.r0 }
                if delta > 0 {
                    try buffer.ensureRoom(head: buffer.pulledLength + delta, tail: 0, in: call.process)
                    try keepingPulledHeader(buffer) { () throws(HelperFailure) in
                        try buffer.replaceAtHead(
                            offset: at, removing: 0, inserting: [UInt8](repeating: 0, count: delta), in: call.process)
                    }
                } else {
                    guard at - delta <= buffer.length else {
                        buffer.syncContext(call.process)
                        return Errno.noMemory.r0
                    }
                    try keepingPulledHeader(buffer) { () throws(HelperFailure) in
                        try buffer.replaceAtHead(offset: at, removing: -delta, inserting: [], in: call.process)
                    }
                }
                buffer.syncContext(call.process)
                setPayloadLength(buffer)
                guard let found = findHeader(buffer.data, target: routingHeader) else { return Errno.invalid.r0 }
                state.srhOffset = found
                state.headerLength += delta
                state.valid = false
                return 0
            },
            // long bpf_lwt_seg6_action(struct __sk_buff *skb, u32 action, void *param, u32 param_len)
            LinuxHelper.make(.lwtSeg6Action) { call throws(HelperFailure) in
                try network.requireValid(call)
                let (buffer, state) = try seg6Context(call)
                let length = try call.size(4, limit: 1 << 16)
                let linux = try call.linuxState()
                switch call.arg32(2) {
                case endX:
                    guard hasValidSRH(buffer, state) else { return badMessage.r0 }
                    guard length == 16 else { return Errno.invalid.r0 }
                    let nexthop = try call.read(call.arg(3), count: 16)
                    return lookupNexthop(buffer, state, network, linux, destination: nexthop, table: 0)
                case endT:
                    guard hasValidSRH(buffer, state) else { return badMessage.r0 }
                    guard length == 4 else { return Errno.invalid.r0 }
                    let table = get32(try call.read(call.arg(3), count: 4), 0)
                    return lookupNexthop(buffer, state, network, linux, destination: nil, table: table)
                case endDT6:
                    guard hasValidSRH(buffer, state) else { return badMessage.r0 }
                    guard length == 4 else { return Errno.invalid.r0 }
                    let table = get32(try call.read(call.arg(3), count: 4), 0)
                    guard let inner = findHeader(buffer.data, target: 41) else { return badMessage.r0 }
                    try keepingPulledHeader(buffer) { () throws(HelperFailure) in
                        try buffer.replaceAtHead(offset: 0, removing: inner, inserting: [], in: call.process)
                    }
                    buffer.syncContext(call.process)
                    updateSRHState(buffer, state)
                    return lookupNexthop(buffer, state, network, linux, destination: nil, table: table)
                case endB6, endB6Encap:
                    if state.srhOffset != nil, !hasValidSRH(buffer, state) { return badMessage.r0 }
                    let result = try pushSeg6(
                        call, buffer, linux, network, inline: call.arg32(2) == endB6,
                        srh: try call.read(call.arg(3), count: length))
                    if result == 0 { updateSRHState(buffer, state) }
                    return result
                default:
                    return Errno.invalid.r0
                }
            },
        ]
    }

    /// The run's program type, when it is one of `types`; else the program stops (the kernel's
    /// verifier gives the helper only to those types).
    static func programType(_ call: HelperCall, _ types: [ProgramType], _ names: String) throws(HelperFailure)
        -> ProgramType
    {
        guard let type = call.state?.skbWriteCheck?.0, types.contains(type) else {
            throw .message(
                "\(call.name) is a helper of \(names) programs; this run's sk_buff context is not fitted to one (ContextFit)"
            )
        }
        return type
    }

    /// The packet and SRH state of an `lwt_seg6local` run.
    static func seg6Context(_ call: HelperCall) throws(HelperFailure) -> (PacketBuffer, Seg6State) {
        let buffer = try call.packet(.skb)
        _ = try programType(call, [.lwtSeg6Local], "lwt_seg6local")
        guard let state = call.state?.seg6 else {
            throw .message("\(call.name): the run has no SRH state (an lwt_seg6local sk_buff context sets it up)")
        }
        return (buffer, state)
    }

    /// Runs `change` (which moves the packet's head) keeping the pulled Ethernet header in front
    /// of the data, as the kernel keeps the MAC header in the headroom.
    static func keepingPulledHeader(_ buffer: PacketBuffer, _ change: () throws(HelperFailure) -> Void)
        throws(HelperFailure)
    {
        let pulled = buffer.storage.bytes(in: buffer.metaOffset - buffer.pulledLength..<buffer.metaOffset)
        try change()
        if !pulled.isEmpty {
            buffer.storage.write(pulled, at: buffer.metaOffset - pulled.count)
        }
    }

    /// `bpf_lwt_push_ip_encap`.
    static func pushIP(_ call: HelperCall, _ buffer: PacketBuffer, header: [UInt8]) throws(HelperFailure) -> UInt64 {
        guard header.count >= 20, header.count <= maxHeadroom else { return Errno.invalid.r0 }
        let isIPv4: Bool
        switch header[0] >> 4 {
        case 4:
            guard header.count >= Int(header[0] & 0x0F) * 4 else { return Errno.invalid.r0 }
            isIPv4 = true
        case 6:
            guard header.count >= 40 else { return Errno.invalid.r0 }
            isIPv4 = false
        default:
            return Errno.invalid.r0
        }
        try buffer.ensureRoom(head: buffer.pulledLength + header.count, tail: 0, in: call.process)
        var pushed = header
        if isIPv4, pushed[10] == 0, pushed[11] == 0 {
            let ihl = Int(pushed[0] & 0x0F) * 4
            var total: UInt32 = 0
            for i in stride(from: 0, to: ihl, by: 2) { total += UInt32(pushed[i]) << 8 | UInt32(pushed[i + 1]) }
            while total > 0xFFFF { total = (total & 0xFFFF) + (total >> 16) }
            let sum = ~UInt16(total) // ip_fast_csum
            pushed[10] = UInt8(sum >> 8)
            pushed[11] = UInt8(sum & 0xFF)
        }
        try keepingPulledHeader(buffer) { () throws(HelperFailure) in
            try buffer.replaceAtHead(offset: 0, removing: 0, inserting: pushed, in: call.process)
        }
        buffer.protocolType = isIPv4 ? 0x0800 : 0x86DD
        buffer.hashIsValid = false
        buffer.syncContext(call.process)
        return 0
    }

    /// `bpf_push_seg6_encap`: validate the SRH, insert it (INLINE) or push an outer IPv6 header
    /// with it, then look the new destination up.
    static func pushSeg6(
        _ call: HelperCall, _ buffer: PacketBuffer, _ linux: LinuxProcessState, _ network: NetworkState,
        inline: Bool, srh given: [UInt8]
    ) throws(HelperFailure) -> UInt64 {
        guard validateSRH(given, reduced: false) else { return Errno.invalid.r0 }
        guard given[5] & hmacFlag == 0 else {
            throw .message("\(call.name): the SRH has the HMAC flag; HMAC keys are not modelled")
        }
        var srh = given
        let firstSegment = Int(srh[4])
        if inline {
            guard buffer.protocolType == 0x86DD, buffer.length >= 40 else { return badMessage.r0 }
            let header = buffer.data.prefix(40)
            var ipv6 = Array(header)
            srh[0] = ipv6[6]
            ipv6[6] = routingHeader
            srh.replaceSubrange(8..<24, with: ipv6[24..<40])
            ipv6.replaceSubrange(24..<40, with: srh[(8 + 16 * firstSegment)..<(24 + 16 * firstSegment)])
            try buffer.ensureRoom(head: buffer.pulledLength + srh.count, tail: 0, in: call.process)
            try keepingPulledHeader(buffer) { () throws(HelperFailure) in
                try buffer.replaceAtHead(offset: 0, removing: 40, inserting: ipv6 + srh, in: call.process)
            }
        } else {
            let inner = buffer.data
            let innerIsIPv6 = buffer.protocolType == 0x86DD && inner.count >= 40
            var outer = [UInt8](repeating: 0, count: 40)
            // ip6_flow_hdr: an IPv6 inner packet's traffic class and, as seg6_make_flowlabel
            // copies it under the default net.ipv6.seg6_flowlabel 0, its flow label.
            outer[0] = 0x60
            if innerIsIPv6 { outer.replaceSubrange(0..<4, with: [0x60 | inner[0] & 0x0F] + inner[1..<4]) }
            outer[6] = routingHeader
            outer[7] = innerIsIPv6 ? inner[7] : 64
            srh[0] = 41 // IPPROTO_IPV6, as bpf_push_seg6_encap passes it
            let destination = Array(srh[(8 + 16 * firstSegment)..<(24 + 16 * firstSegment)])
            outer.replaceSubrange(24..<40, with: destination)
            outer.replaceSubrange(8..<24, with: tunnelSource(network, destination: destination))
            try buffer.ensureRoom(head: buffer.pulledLength + outer.count + srh.count, tail: 0, in: call.process)
            try keepingPulledHeader(buffer) { () throws(HelperFailure) in
                try buffer.replaceAtHead(offset: 0, removing: 0, inserting: outer + srh, in: call.process)
            }
        }
        buffer.syncContext(call.process)
        setPayloadLength(buffer)
        let state = linux.seg6 ?? Seg6State()
        if linux.seg6 == nil { linux.seg6 = state }
        return lookupNexthop(buffer, state, network, linux, destination: nil, table: 0)
    }

    /// The outer source address of an SRv6 encapsulation (`set_tun_src`: no tunnel source is
    /// configured, so the output device's address towards `destination`): `::` when there is
    /// no route or address.
    static func tunnelSource(_ network: NetworkState, destination: [UInt8]) -> [UInt8] {
        let zero = [UInt8](repeating: 0, count: 16)
        guard
            case .route(let route) = network.routing.lookup(
                family: 6, source: zero, destination: destination, iif: 0, oif: 0, mark: 0, ruleOif: 0),
            let device = route.ifindex.flatMap(network.interface)
        else { return zero }
        return RoutingHelpers.preferredSource6(destination: destination, device: device, network.network) ?? zero
    }

    /// The IPv6 header's payload length after the packet changed.
    static func setPayloadLength(_ buffer: PacketBuffer) {
        guard buffer.length >= 40 else { return }
        let payload = UInt16(clamping: buffer.length - 40)
        buffer.storage.write([UInt8(payload >> 8), UInt8(payload & 0xFF)], at: buffer.dataOffset + 4)
    }

    /// `seg6_lookup_nexthop(skb, nhaddr, tbl_id)` in the emulated network: the route of
    /// `destination` (else the packet's IPv6 destination), from `table` (0: through the rules),
    /// becomes the packet's route; the result is its `dst->error`.
    static func lookupNexthop(
        _ buffer: PacketBuffer, _ state: Seg6State, _ network: NetworkState, _ linux: LinuxProcessState,
        destination given: [UInt8]?, table: UInt32
    ) -> UInt64 {
        let data = buffer.data
        guard data.count >= 40 else {
            state.route = .failed(Int32(networkUnreachable.rawValue))
            return networkUnreachable.r0
        }
        let destination = given ?? Array(data[24..<40])
        let source = Array(data[8..<24])
        let found: RoutingTables.Found
        if table == 0 {
            found = network.routing.lookup(
                family: 6, source: source, destination: destination, iif: 1, oif: 0, mark: 0, ruleOif: 0)
        } else {
            guard network.routing.exists(table, family: 6) else {
                state.route = .failed(Int32(Errno.invalid.rawValue))
                return Errno.invalid.r0
            }
            found = network.routing.lookup(table: table, family: 6, destination: destination, oif: 0)
        }
        let errno: Errno?
        switch found {
        case .none: errno = networkUnreachable
        case .reject(.blackhole): errno = .invalid
        case .reject(.unreachable): errno = hostUnreachable
        case .reject(.prohibit): errno = accessDenied
        case .reject: errno = networkUnreachable
        case .route(let route):
            let device = route.ifindex.flatMap(network.interface)
            if route.type != .unicast || device?.isLoopback ?? false {
                errno = .invalid // local delivery is discarded: the blackhole entry
            } else if let ifindex = route.ifindex {
                state.route = .interface(ifindex, nexthop: route.gateway ?? destination)
                return 0
            } else {
                errno = networkUnreachable
            }
        }
        let code = errno ?? networkUnreachable
        state.route = .failed(Int32(code.rawValue))
        return code.r0
    }

    /// `seg6_bpf_has_valid_srh`: an SRH the helpers changed is revalidated (its `hdrlen` byte
    /// set from the state's length first).
    static func hasValidSRH(_ buffer: PacketBuffer, _ state: Seg6State) -> Bool {
        guard let srh = state.srhOffset else { return false }
        if !state.valid {
            guard state.headerLength & 7 == 0, srh + 8 <= buffer.length else { return false }
            let hdrlen = UInt8(truncatingIfNeeded: state.headerLength >> 3)
            buffer.storage.write([hdrlen], at: buffer.dataOffset + srh + 1)
            let length = (Int(hdrlen) + 1) << 3
            guard srh + length <= buffer.length,
                validateSRH(Array(buffer.data[srh..<srh + length]), reduced: true)
            else { return false }
            state.valid = true
        }
        return true
    }

    /// `bpf_update_srh_state`: the packet's SRH after a decapsulation or push.
    static func updateSRHState(_ buffer: PacketBuffer, _ state: Seg6State) {
        let data = buffer.data
        guard let found = findHeader(data, target: routingHeader), found + 2 <= data.count else {
            state.srhOffset = nil
            return
        }
        state.srhOffset = found
        state.headerLength = Int(data[found + 1]) << 3
        state.valid = true
    }

    /// `seg6_validate_srh(srh, len, reduced)`.
    static func validateSRH(_ srh: [UInt8], reduced: Bool) -> Bool {
        guard srh.count >= 8, srh[2] == 4 else { return false } // IPV6_SRCRT_TYPE_4
        let hdrlen = Int(srh[1])
        let segmentsLeft = Int(srh[3])
        let firstSegment = Int(srh[4])
        guard (hdrlen + 1) << 3 == srh.count else { return false }
        if !reduced, segmentsLeft > firstSegment { return false }
        guard firstSegment <= hdrlen / 2 - 1, segmentsLeft <= firstSegment + 1 else { return false }
        var offset = 8 + ((firstSegment + 1) << 4)
        var trailing = srh.count - offset
        guard trailing >= 0 else { return false }
        while trailing > 0 {
            guard trailing >= 2 else { return false }
            let tlvLength = 2 + Int(srh[offset + 1])
            trailing -= tlvLength
            guard trailing >= 0 else { return false }
            offset += tlvLength
        }
        return true
    }

    /// `ipv6_find_hdr(skb, &offset, target, NULL, flags)` on an IPv6 packet: the offset of the
    /// first header of type `target` in the extension-header chain, or nil (`-ENOENT`). With
    /// `skipDoneRoutingHeaders` (`IP6_FH_F_SKIP_RH`), routing headers with no segments left
    /// are passed over.
    static func findHeader(_ packet: [UInt8], target: UInt8, skipDoneRoutingHeaders: Bool = false) -> Int? {
        guard packet.count >= 40, packet[0] >> 4 == 6 else { return nil }
        var next = packet[6]
        var offset = 40
        var found = false
        for _ in 0..<64 {
            if next == target {
                found = true
                if target == routingHeader, skipDoneRoutingHeaders {
                    guard offset + 4 <= packet.count else { return nil }
                    found = packet[offset + 3] != 0
                }
                if found { return offset }
            }
            // ipv6_ext_hdr: hop-by-hop, routing, fragment, authentication, destination options.
            guard [0, 43, 44, 51, 60].contains(next), offset + 2 <= packet.count else { return nil }
            let length: Int
            switch next {
            case 44:
                guard offset + 8 <= packet.count else { return nil }
                // A later fragment carries no headers to look into.
                if (UInt16(packet[offset + 2]) << 8 | UInt16(packet[offset + 3])) & 0xFFF8 != 0 { return nil }
                length = 8
            case 51: length = (Int(packet[offset + 1]) + 2) << 2
            default: length = (Int(packet[offset + 1]) + 1) << 3
            }
            next = packet[offset]
            offset += length
        }
        return nil
    }

    /// End.BPF's start (`input_action_end_bpf`): the packet's SRH with segments left
    /// (`seg6_get_srh(skb, IP6_FH_F_SKIP_RH)`, validated reduced), advanced to the next segment
    /// (`segments_left` decremented, the destination set to it), as the state the helpers see.
    /// Nil with the reason End.BPF drops the packet.
    static func beginEndBPF(_ buffer: PacketBuffer) -> Result<Seg6State, Seg6Refusal> {
        let data = buffer.data
        guard buffer.protocolType == 0x86DD,
            let srh = findHeader(data, target: routingHeader, skipDoneRoutingHeaders: true),
            srh + 8 <= data.count
        else {
            return .failure(Seg6Refusal(reason: "it has no IPv6 segment routing header with segments left"))
        }
        let length = (Int(data[srh + 1]) + 1) << 3
        guard srh + length <= data.count, validateSRH(Array(data[srh..<srh + length]), reduced: true) else {
            return .failure(Seg6Refusal(reason: "its segment routing header is not valid (seg6_validate_srh)"))
        }
        guard data[srh + 5] & hmacFlag == 0 else {
            return .failure(
                Seg6Refusal(reason: "its segment routing header has the HMAC flag (HMAC keys are not modelled)"))
        }
        let left = Int(data[srh + 3]) - 1
        let segment = srh + 8 + 16 * left
        guard segment + 16 <= srh + length else {
            return .failure(Seg6Refusal(reason: "its segments_left points past the segment list"))
        }
        buffer.storage.write([UInt8(left)], at: buffer.dataOffset + srh + 3)
        buffer.storage.write(Array(data[segment..<segment + 16]), at: buffer.dataOffset + 24)
        let state = Seg6State()
        state.srhOffset = srh
        state.headerLength = Int(data[srh + 1]) << 3
        state.valid = true
        return .success(state)
    }

    /// What End.BPF does with the packet after the program returned `r0`: drop on `BPF_DROP`
    /// or another value, or when the SRH the program changed is no longer valid; else its
    /// route, `BPF_REDIRECT` keeping the one the program's `bpf_lwt_seg6_action` chose, `BPF_OK`
    /// looking the destination up (`Seg6State.route` then holds it).
    static func finishEndBPF(
        _ buffer: PacketBuffer, _ state: Seg6State, r0: UInt64, _ network: NetworkState, _ linux: LinuxProcessState
    ) -> Seg6State.Route {
        guard r0 == 0 || r0 == 7 else { return .dropped }
        if state.srhOffset != nil, !hasValidSRH(buffer, state) { return .dropped }
        if r0 == 0 { _ = lookupNexthop(buffer, state, network, linux, destination: nil, table: 0) }
        return state.route ?? .failed(Int32(networkUnreachable.rawValue))
    }
}

/// Why End.BPF drops a packet before the program runs.
struct Seg6Refusal: Error {
    var reason: String
}

/// The seg6local SRH state of a run (the kernel's per-CPU `seg6_bpf_srh_states`): where the
/// SRH is (bytes from `data`), its length as the helpers changed it, whether it needs
/// revalidating, and the route the last next-hop lookup chose.
public final class Seg6State {
    /// Where a seg6 packet goes: out of an interface towards a next hop, nowhere (`dst->error`),
    /// or dropped by End.BPF.
    public enum Route: Sendable, Equatable {
        case interface(UInt32, nexthop: [UInt8])
        case failed(Int32)
        case dropped
    }

    /// Bytes from `data` to the SRH; nil: none.
    public internal(set) var srhOffset: Int?
    /// The SRH's length past its first 8 bytes (`hdrlen << 3`, plus what adjust_srh added).
    public internal(set) var headerLength = 0
    public internal(set) var valid = false
    /// The route of the last `seg6_lookup_nexthop`, nil before one.
    public internal(set) var route: Route?

    init() {}
}

extension LinuxEmulator {
    /// What End.BPF does with the packet of an `lwt_seg6local` run whose program returned `r0`
    /// (`LWTHelpers.finishEndBPF`): out of an interface towards a next hop, no route
    /// (`.failed`), or dropped. Nil when `process` is not such a run.
    public func seg6Outcome(of process: MimicCore.Process, returnValue r0: UInt64) -> Seg6State.Route? {
        guard let state = LinuxProcessState.of(process), state.skbWriteCheck?.0 == .lwtSeg6Local,
            let seg6 = state.seg6, let buffer = state.packet
        else { return nil }
        return LWTHelpers.finishEndBPF(buffer, seg6, r0: r0, networkState, state)
    }
}
