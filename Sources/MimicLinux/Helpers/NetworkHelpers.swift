import MimicCore
import MimicMemory

/// Identities Mimic's network namespace gives sockets it does not describe.
enum NetworkDevices {
    /// The cgroup id of a socket's cgroup: Mimic has no cgroup hierarchy, so sockets belong to
    /// the root cgroup (id 1, level 0).
    static let rootCgroupID: UInt64 = 1
}

/// Networking helpers of tc, socket-filter and XDP programs beyond the packet-shaping ones of
/// `PacketHelpers`, with the kernel's checks and return codes (`net/core/filter.c`):
///
/// - XDP: `HelperID.xdpLoadBytes`, `HelperID.xdpStoreBytes`, `HelperID.xdpGetBuffLen` (single
///   buffer: Mimic's XDP packets have no fragments), `HelperID.checkMtu`.
/// - sk_buff: `HelperID.checkMtu`, `HelperID.skbPullData` (the packet is always linear),
///   `HelperID.skbLoadBytesRelative`, `HelperID.csumUpdate` (`-ENOTSUPP`: never
///   `CHECKSUM_COMPLETE`), `HelperID.csumLevel`, `HelperID.setHash`, `HelperID.getHashRecalc`,
///   `HelperID.setHashInvalid`, `HelperID.skbChangeProto`, `HelperID.skbChangeType`,
///   `HelperID.skbEcnSetCe`, `HelperID.getSocketCookie`, `HelperID.getNetnsCookie`,
///   `HelperID.skbCgroupId`, `HelperID.skbAncestorCgroupId`, `HelperID.getRouteRealm` (0: no
///   route is attached), `HelperID.skbSetTstamp`.
///
/// Devices come from the emulator's `Network` (`NetworkState.device`). `bpf_get_hash_recalc` cannot give the kernel's value
/// (a siphash of the flow keys with a secret boot-time seed): Mimic hashes the same flow keys
/// (protocol, addresses, ports) with FNV-1a, and like the kernel never returns 0 for a computed
/// hash.
enum NetworkHelpers {
    static let ipv4: UInt16 = 0x0800, ipv6: UInt16 = 0x86DD
    /// `BPF_MTU_CHK_SEGS`; results `BPF_MTU_CHK_RET_SUCCESS` / `_FRAG_NEEDED`.
    static let mtuCheckSegments: UInt64 = 1
    static let mtuSuccess: UInt64 = 0, mtuFragmentationNeeded: UInt64 = 1
    /// `PACKET_OTHERHOST`: the highest packet type `bpf_skb_change_type` accepts.
    static let packetOtherHost: UInt32 = 3
    /// `SKB_MAX_CSUM_LEVEL`.
    static let maxChecksumLevel = 3
    /// Offset of the `xdp_md.ingress_ifindex` field.
    static let xdpIngressIfindex = 12

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let network = emulator.networkState
        return xdpHelpers(network) + skbHelpers() + identityHelpers(network) + RoutingHelpers.all(for: emulator)
            + SocketHelpers.all(for: emulator) + TunnelHelpers.all(for: emulator) + SyncookieHelpers.all(for: emulator)
    }

    /// `skb_clear_hash`.
    static func clearHash(_ buffer: PacketBuffer) {
        buffer.hashIsValid = false
        buffer.storeU32(0, at: SKBLayout.hash)
    }

    // MARK: XDP

    static func xdpHelpers(_ network: NetworkState) -> [Helper] {
        [
            // long bpf_xdp_load_bytes(struct xdp_buff *xdp_md, u32 offset, void *buf, u32 len)
            LinuxHelper.make(.xdpLoadBytes) { call throws(HelperFailure) in
                let buffer = try call.packet(.xdp)
                let offset = Int(call.arg32(2))
                let length = Int(call.arg32(4))
                if let errno = xdpRangeError(buffer, offset: offset, length: length) { return errno.r0 }
                let start = buffer.dataOffset + offset
                try call.write(buffer.storage.bytes(in: start..<start + length), at: call.arg(3))
                return 0
            },
            // long bpf_xdp_store_bytes(struct xdp_buff *xdp_md, u32 offset, void *buf, u32 len)
            LinuxHelper.make(.xdpStoreBytes) { call throws(HelperFailure) in
                let buffer = try call.packet(.xdp)
                let offset = Int(call.arg32(2))
                let length = Int(call.arg32(4))
                if let errno = xdpRangeError(buffer, offset: offset, length: length) { return errno.r0 }
                buffer.storage.write(try call.read(call.arg(3), count: length), at: buffer.dataOffset + offset)
                return 0
            },
            // long bpf_xdp_get_buff_len(struct xdp_buff *xdp_md)
            LinuxHelper.make(.xdpGetBuffLen) { call throws(HelperFailure) in
                UInt64(try call.packet(.xdp).length)
            },
            // long bpf_check_mtu(void *ctx, u32 ifindex, u32 *mtu_len, s32 len_diff, u64 flags)
            LinuxHelper.make(.checkMtu) { call throws(HelperFailure) in
                guard let buffer = call.state?.packet else {
                    throw .message("\(call.name) needs a packet context (xdp_md or sk_buff); the process has none")
                }
                return try buffer.kind == .xdp ? xdpCheckMTU(call, network) : skbCheckMTU(call, network)
            },
        ]
    }

    /// `bpf_xdp_pointer`'s checks: offsets and lengths past 0xffff are `-EFAULT`, a range past
    /// the packet `-EINVAL`.
    static func xdpRangeError(_ buffer: PacketBuffer, offset: Int, length: Int) -> Errno? {
        if offset > 0xFFFF || length > 0xFFFF { return .fault }
        if offset + length > buffer.length { return .invalid }
        return nil
    }

    /// `bpf_xdp_check_mtu`: no flags; `*mtu_len`, when not 0, is the L3 length to check instead
    /// of the packet's.
    static func xdpCheckMTU(_ call: HelperCall, _ network: NetworkState) throws(HelperFailure) -> UInt64 {
        try network.requireValid(call)
        let buffer = try call.packet(.xdp)
        let lengthAddress = call.arg(3)
        let difference = Int(call.argInt(4))
        guard call.arg(5) == 0 else { return Errno.invalid.r0 }
        guard let device = network.device(call.arg32(2), current: buffer.loadU32(at: xdpIngressIfindex)) else {
            return Errno.noDevice.r0
        }
        let given = Int(try loadU32(call, lengthAddress))
        var length = given != 0 ? given + device.hardHeaderLength : buffer.length
        length += difference
        try storeU32(call, device.mtu, at: lengthAddress)
        return length > Int(device.mtu) + device.hardHeaderLength ? mtuFragmentationNeeded : mtuSuccess
    }

    /// `bpf_skb_check_mtu`: `BPF_MTU_CHK_SEGS` only without a length difference or input length
    /// (Mimic's packets are never GSO, so it changes nothing else).
    static func skbCheckMTU(_ call: HelperCall, _ network: NetworkState) throws(HelperFailure) -> UInt64 {
        try network.requireValid(call)
        let buffer = try call.packet(.skb)
        let lengthAddress = call.arg(3)
        let difference = Int(call.argInt(4))
        let flags = call.arg(5)
        guard flags & ~mtuCheckSegments == 0 else { return Errno.invalid.r0 }
        let given = Int(try loadU32(call, lengthAddress))
        if flags & mtuCheckSegments != 0, difference != 0 || given != 0 { return Errno.invalid.r0 }
        guard let device = network.device(call.arg32(2), current: buffer.loadU32(at: SKBLayout.ifindex)) else {
            return Errno.noDevice.r0
        }
        var length = given != 0 ? given + device.hardHeaderLength : buffer.length
        length += difference
        try storeU32(call, device.mtu, at: lengthAddress)
        return length <= Int(device.mtu) + device.hardHeaderLength ? mtuSuccess : mtuFragmentationNeeded
    }

    static func loadU32(_ call: HelperCall, _ address: UInt64) throws(HelperFailure) -> UInt32 {
        let bytes = try call.read(address, count: 4)
        return UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
    }

    static func storeU32(_ call: HelperCall, _ value: UInt32, at address: UInt64) throws(HelperFailure) {
        try call.write(
            [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 24)], at: address)
    }

    // MARK: sk_buff

    static func skbHelpers() -> [Helper] {
        [
            // long bpf_skb_pull_data(struct sk_buff *skb, u32 len)
            LinuxHelper.make(.skbPullData) { call throws(HelperFailure) in
                // The packet is linear: pulling succeeds up to its length (pskb_may_pull).
                let buffer = try call.packet(.skb)
                return Int(call.arg32(2)) <= buffer.length ? 0 : Errno.noMemory.r0
            },
            // long bpf_skb_load_bytes_relative(const void *skb, u32 offset, void *to, u32 len, u32 start_header)
            LinuxHelper.make(.skbLoadBytesRelative) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                let offset = Int(call.arg32(2))
                let length = try call.size(4)
                let start: Int? =
                    switch call.arg32(5) {
                    case 0: buffer.dataOffset - buffer.pulledLength // BPF_HDR_START_MAC
                    case 1: buffer.dataOffset + buffer.networkOffset // BPF_HDR_START_NET
                    default: nil
                    }
                guard offset <= 0xFFFF, let start, start + offset + length <= buffer.dataEndOffset else {
                    try call.zero(call.arg(3), count: length)
                    return Errno.fault.r0
                }
                try call.write(buffer.storage.bytes(in: start + offset..<start + offset + length), at: call.arg(3))
                return 0
            },
            // s64 bpf_csum_update(struct sk_buff *skb, __wsum csum)
            LinuxHelper.make(.csumUpdate) { call throws(HelperFailure) in
                _ = try call.packet(.skb)
                return Errno.kernelNotSupported.r0 // only CHECKSUM_COMPLETE packets have a csum to update
            },
            // long bpf_csum_level(struct sk_buff *skb, u64 level)
            LinuxHelper.make(.csumLevel) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                switch call.arg(2) {
                case 0: // BPF_CSUM_LEVEL_QUERY
                    return buffer.checksumUnnecessary ? UInt64(buffer.checksumLevel) : Errno.accessDenied.r0
                case 1: // BPF_CSUM_LEVEL_INC
                    if buffer.checksumUnnecessary {
                        buffer.checksumLevel = min(buffer.checksumLevel + 1, maxChecksumLevel)
                    } else {
                        buffer.checksumUnnecessary = true
                        buffer.checksumLevel = 0
                    }
                case 2: // BPF_CSUM_LEVEL_DEC
                    if buffer.checksumUnnecessary {
                        if buffer.checksumLevel == 0 {
                            buffer.checksumUnnecessary = false
                        } else {
                            buffer.checksumLevel -= 1
                        }
                    }
                case 3: // BPF_CSUM_LEVEL_RESET
                    buffer.checksumUnnecessary = false
                    buffer.checksumLevel = 0
                default:
                    return Errno.invalid.r0
                }
                return 0
            },
            // long bpf_set_hash(struct sk_buff *skb, u32 hash)
            LinuxHelper.make(.setHash) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                buffer.storeU32(call.arg32(2), at: SKBLayout.hash)
                buffer.hashIsValid = true
                return 0
            },
            // u32 bpf_get_hash_recalc(struct sk_buff *skb)
            LinuxHelper.make(.getHashRecalc) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                if !buffer.hashIsValid {
                    buffer.storeU32(flowHash(buffer), at: SKBLayout.hash)
                    buffer.hashIsValid = true
                }
                return UInt64(buffer.loadU32(at: SKBLayout.hash))
            },
            // void bpf_set_hash_invalid(struct sk_buff *skb)
            LinuxHelper.make(.setHashInvalid) { call throws(HelperFailure) in
                clearHash(try call.packet(.skb))
                return 0
            },
            // long bpf_skb_change_proto(struct sk_buff *skb, __be16 proto, u64 flags)
            LinuxHelper.make(.skbChangeProto) { call throws(HelperFailure) in try changeProtocol(call) },
            // long bpf_skb_change_type(struct sk_buff *skb, u32 type)
            LinuxHelper.make(.skbChangeType) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                let type = call.arg32(2)
                guard buffer.loadU32(at: SKBLayout.pktType) <= packetOtherHost, type <= packetOtherHost else {
                    return Errno.invalid.r0
                }
                buffer.storeU32(type, at: SKBLayout.pktType)
                return 0
            },
            // long bpf_skb_ecn_set_ce(struct sk_buff *skb)
            LinuxHelper.make(.skbEcnSetCe) { call throws(HelperFailure) in try setCongestionExperienced(call) },
            // long bpf_get_route_realm(struct sk_buff *skb)
            LinuxHelper.make(.getRouteRealm) { call throws(HelperFailure) in
                _ = try call.packet(.skb)
                return 0 // no route (dst) is attached to Mimic's packets
            },
            // long bpf_skb_set_tstamp(struct sk_buff *skb, u64 tstamp, u32 tstamp_type)
            LinuxHelper.make(.skbSetTstamp) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                let stamp = call.arg(2)
                let type = call.arg32(3)
                // skb_clear_delivery_time() is done for inet protocols only.
                guard buffer.protocolType == ipv4 || buffer.protocolType == ipv6 else { return Errno.notSupported.r0 }
                // BPF_SKB_CLOCK_REALTIME (0) takes any value; MONOTONIC (1) and TAI (2) not 0.
                guard type <= 2, type == 0 || stamp != 0 else { return Errno.invalid.r0 }
                buffer.storeU32(UInt32(truncatingIfNeeded: stamp), at: SKBLayout.tstamp)
                buffer.storeU32(UInt32(truncatingIfNeeded: stamp >> 32), at: SKBLayout.tstamp + 4)
                let word = buffer.loadU32(at: SKBLayout.tstampType) & ~0xFF | type
                buffer.storeU32(word, at: SKBLayout.tstampType)
                return 0
            },
        ]
    }

    /// `bpf_skb_change_proto`: IPv4 ↔ IPv6 only, by inserting (zeros) or removing the 20 bytes
    /// the IPv6 header is longer after the MAC header; the program rewrites the header itself.
    static func changeProtocol(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        let buffer = try call.packet(.skb)
        guard buffer.pulledLength == 0 else {
            throw .unsupported("\(call.name) is a tc helper; this sk_buff starts at the network header")
        }
        guard call.arg(3) == 0 else { return Errno.invalid.r0 }
        let target = UInt16(truncatingIfNeeded: call.arg(2)).byteSwapped
        let difference = 40 - 20
        switch (buffer.protocolType, target) {
        case (ipv4, ipv6):
            try buffer.replaceAtHead(
                offset: buffer.networkOffset, removing: 0,
                inserting: [UInt8](repeating: 0, count: difference), in: call.process)
        case (ipv6, ipv4):
            guard buffer.networkOffset + difference <= buffer.length else { return Errno.noMemory.r0 }
            try buffer.replaceAtHead(
                offset: buffer.networkOffset, removing: difference, inserting: [], in: call.process)
        default:
            return Errno.kernelNotSupported.r0
        }
        buffer.protocolType = target
        clearHash(buffer)
        buffer.syncContext(call.process)
        return 0
    }

    /// `INET_ECN_set_ce`: marks an ECN-capable IPv4 or IPv6 packet Congestion Experienced
    /// (IPv4 also fixes the header checksum); returns 1 when the packet is (now) CE, else 0.
    static func setCongestionExperienced(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        let buffer = try call.packet(.skb)
        let network = buffer.dataOffset + buffer.networkOffset
        switch buffer.protocolType {
        case ipv4:
            guard network + 20 <= buffer.dataEndOffset else { return 0 }
            let tos = buffer.storage.bytes(in: network + 1..<network + 2)[0]
            let ecn = (tos &+ 1) & 3
            guard ecn & 2 != 0 else { return ecn == 0 ? 1 : 0 }
            // check += htons(0xFFFB) + htons(ecn), on the checksum as it sits in memory.
            let checkBytes = buffer.storage.bytes(in: network + 10..<network + 12)
            let check = UInt16(checkBytes[0]) | UInt16(checkBytes[1]) << 8
            let add = UInt16(0xFBFF) &+ UInt16(ecn) << 8
            let new = Checksum.add16(check, add)
            buffer.storage.write([tos | 3], at: network + 1)
            buffer.storage.write([UInt8(new & 0xFF), UInt8(new >> 8)], at: network + 10)
            return 1
        case ipv6:
            guard network + 40 <= buffer.dataEndOffset else { return 0 }
            let first = buffer.storage.bytes(in: network..<network + 2)
            // The traffic class straddles bytes 0 and 1; its ECN bits are bits 4-5 of byte 1.
            guard (first[1] >> 4) & 3 != 0 else { return 0 }
            buffer.storage.write([first[1] | 0x30], at: network + 1)
            return 1
        default:
            return 0
        }
    }

    /// The flow hash Mimic gives `bpf_get_hash_recalc`: FNV-1a over the EtherType, the IP
    /// addresses, the L4 protocol and (TCP, UDP, SCTP, UDP-Lite; not for IPv4 fragments) the
    /// ports; never 0.
    static func flowHash(_ buffer: PacketBuffer) -> UInt32 {
        var keys: [UInt8] = [UInt8(buffer.protocolType >> 8), UInt8(buffer.protocolType & 0xFF)]
        let network = buffer.dataOffset + buffer.networkOffset
        let end = buffer.dataEndOffset
        var transport: Int?
        var l4: UInt8 = 0
        if buffer.protocolType == ipv4, network + 20 <= end {
            let header = buffer.storage.bytes(in: network..<network + 20)
            l4 = header[9]
            keys += header[12..<20] + [l4]
            let fragment = (UInt16(header[6]) << 8 | UInt16(header[7])) & 0x3FFF != 0
            if !fragment { transport = network + Int(header[0] & 0x0F) * 4 }
        } else if buffer.protocolType == ipv6, network + 40 <= end {
            let header = buffer.storage.bytes(in: network..<network + 40)
            l4 = header[6]
            keys += header[8..<40] + [l4]
            transport = network + 40
        }
        if let transport, [6, 17, 132, 136].contains(l4), transport + 4 <= end {
            keys += buffer.storage.bytes(in: transport..<transport + 4)
        }
        var hash: UInt32 = 0x811C_9DC5
        for byte in keys { hash = (hash ^ UInt32(byte)) &* 0x0100_0193 }
        return hash == 0 ? 1 : hash
    }

    // MARK: Socket, namespace and cgroup identity

    static func identityHelpers(_ network: NetworkState) -> [Helper] {
        [
            // u64 bpf_get_socket_cookie(struct sk_buff *skb)
            LinuxHelper.make(.getSocketCookie) { call throws(HelperFailure) in
                // sock_addr, sock_ops and cgroup_sock programs: the context's socket.
                if let socket = call.state?.socketProgram?.socket { return socket.cookie }
                guard let socket = try socketBytes(call) else { return 0 }
                // A stable cookie per socket description (the kernel's come from a counter).
                var cookie: UInt64 = 0xCBF2_9CE4_8422_2325
                for byte in socket { cookie = (cookie ^ UInt64(byte)) &* 0x0100_0000_01B3 }
                return cookie == 0 ? 1 : cookie
            },
            // u64 bpf_get_netns_cookie(void *ctx)
            LinuxHelper.make(.getNetnsCookie) { call throws(HelperFailure) in
                // NULL, or an sk_buff without a socket, is init_net's (cookie 1); else the socket's
                // namespace: the network's.
                guard call.arg(1) != 0 else { return 1 }
                if call.state?.packet?.kind == .skb {
                    return try socketBytes(call) == nil ? 1 : network.network.netnsCookie
                }
                return network.network.netnsCookie
            },
            // u64 bpf_skb_cgroup_id(struct sk_buff *skb)
            LinuxHelper.make(.skbCgroupId) { call throws(HelperFailure) in
                try socketBytes(call) == nil ? 0 : NetworkDevices.rootCgroupID
            },
            // u64 bpf_skb_ancestor_cgroup_id(struct sk_buff *skb, int ancestor_level)
            LinuxHelper.make(.skbAncestorCgroupId) { call throws(HelperFailure) in
                // The root cgroup is level 0 and has no ancestors below it.
                guard try socketBytes(call) != nil, call.argInt(2) == 0 else { return 0 }
                return NetworkDevices.rootCgroupID
            },
        ]
    }

    /// The `struct bpf_sock` of the sk_buff's socket (`__sk_buff.sk`), or nil without one.
    static func socketBytes(_ call: HelperCall) throws(HelperFailure) -> [UInt8]? {
        let buffer = try call.packet(.skb)
        let address = UInt64(buffer.loadU32(at: SKBLayout.sk)) | UInt64(buffer.loadU32(at: SKBLayout.sk + 4)) << 32
        guard address != 0 else { return nil }
        return try call.read(address, count: 80)
    }
}
