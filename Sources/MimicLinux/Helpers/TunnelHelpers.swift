import MimicCore

/// The tunnel-key helpers of tc programs (`net/core/filter.c` of Linux 6.18): a received
/// packet's metadata is the network's `tunnel` (nil: the packet did not come through a
/// collect-metadata tunnel); `bpf_skb_set_tunnel_key` replaces it with transmit metadata, which
/// `bpf_skb_get_tunnel_key` then reads back as the kernel's does (the key's source is reported as
/// `remote`, so a key set with local L reads back remote L) and `LinuxProcessState.transmitTunnel`
/// reports after the run.
///
/// `struct bpf_tunnel_key` (44 bytes): `tunnel_id` 0, `remote_ipv4` / `remote_ipv6[4]` 4,
/// `tunnel_tos` 20, `tunnel_ttl` 21, `tunnel_ext` / `tunnel_flags` 22, `tunnel_label` 24,
/// `local_ipv4` / `local_ipv6[4]` 28. The older sizes 8, 22, 24 and 28 are accepted as the kernel
/// accepts them.
enum TunnelHelpers {
    static let keySize = 44
    /// `BPF_F_TUNINFO_IPV6`, `BPF_F_TUNINFO_FLAGS` (get); `BPF_F_ZERO_CSUM_TX`,
    /// `BPF_F_DONT_FRAGMENT`, `BPF_F_SEQ_NUMBER`, `BPF_F_NO_TUNNEL_KEY` (set).
    static let ipv6: UInt64 = 1, tunnelFlags: UInt64 = 1 << 4
    static let zeroChecksum: UInt64 = 1 << 1, dontFragment: UInt64 = 1 << 2, sequenceNumber: UInt64 = 1 << 3
    static let noTunnelKey: UInt64 = 1 << 4
    /// The older layouts: up to `local_ipv6[0]`, `tunnel_label`, `tunnel_ext`, `remote_ipv6[1]`.
    static let compatibleSizes = [28, 24, 22, 8]
    /// `TUNNEL_*` bits of `ip_tunnel_flags_to_be16`, as host-order values of the be16.
    static let flagChecksum: UInt16 = 0x01, flagKey: UInt16 = 0x04, flagSequence: UInt16 = 0x08
    static let flagNoCache: UInt16 = 0x2000, flagDontFragment: UInt16 = 0x100
    /// `EPROTO`: the metadata is of the other family.
    static let protocolError = Errno(rawValue: 71)

    /// `long bpf_skb_get_xfrm_state(skb, u32 index, struct bpf_xfrm_state *xfrm_state, u32 size,
    /// u64 flags)` (tc): the `index`-th xfrm state of the packet's `sec_path`, the network's
    /// `xfrm` list, as `struct bpf_xfrm_state` (28 bytes: `reqid`, `spi` in network order,
    /// `family`, `ext` 0, `remote_ipv4` / `remote_ipv6`). No state at `index` (a packet that did
    /// not pass IPsec has none), flags, or a size other than 28: `-EINVAL` with the buffer
    /// zeroed, as the kernel answers.
    static func xfrmState(_ network: NetworkState) -> Helper {
        LinuxHelper.make(.skbGetXfrmState) { call throws(HelperFailure) in
            try network.requireValid(call)
            _ = try call.packet(.skb)
            let size = try call.size(4, limit: 1 << 16)
            let states = network.network.xfrm
            let index = call.arg32(2)
            guard index < states.count, call.arg(5) == 0, size == 28 else {
                try call.zero(call.arg(3), count: size)
                return Errno.invalid.r0
            }
            let state = states[Int(index)]
            var out = [UInt8](repeating: 0, count: 28)
            put32(&out, 0, state.reqid)
            put32(&out, 4, state.spi.bigEndian)
            put16(&out, 8, state.remote.count == 16 ? 10 : 2) // AF_INET6, AF_INET
            out.replaceSubrange(12..<12 + state.remote.count, with: state.remote)
            try call.write(out, at: call.arg(3))
            return 0
        }
    }

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let network = emulator.networkState
        return [
            // long bpf_skb_get_tunnel_key(struct sk_buff *skb, struct bpf_tunnel_key *key, u32 size, u64 flags)
            LinuxHelper.make(.skbGetTunnelKey) { call throws(HelperFailure) in
                try network.requireValid(call)
                let state = try call.linuxState()
                _ = try call.packet(.skb)
                let size = try call.size(3, limit: 1 << 16)
                let flags = call.arg(4)
                let info = state.transmitTunnel ?? network.network.tunnel
                func fail(_ errno: Errno) throws(HelperFailure) -> UInt64 {
                    try call.zero(call.arg(2), count: size)
                    return errno.r0
                }
                guard let info, flags & ~(ipv6 | tunnelFlags) == 0 else { return try fail(.invalid) }
                guard info.isIPv6 == (flags & ipv6 != 0) else { return try fail(protocolError) }
                if size != keySize {
                    guard compatibleSizes.contains(size), size != 8 || !info.isIPv6 else { return try fail(.invalid) }
                }
                var key = [UInt8](repeating: 0, count: keySize)
                put32(&key, 0, info.id)
                key[20] = info.tos
                key[21] = info.ttl
                if flags & tunnelFlags != 0 { put16(&key, 22, info.flags.bigEndian) }
                if info.isIPv6 {
                    key.replaceSubrange(4..<20, with: info.remote)
                    key.replaceSubrange(28..<44, with: info.local)
                    put32(&key, 24, info.label)
                } else {
                    put32(
                        &key, 4,
                        UInt32(info.remote[0]) << 24 | UInt32(info.remote[1]) << 16 | UInt32(info.remote[2]) << 8
                            | UInt32(info.remote[3]))
                    put32(
                        &key, 28,
                        UInt32(info.local[0]) << 24 | UInt32(info.local[1]) << 16 | UInt32(info.local[2]) << 8
                            | UInt32(info.local[3]))
                }
                try call.write(key[0..<size], at: call.arg(2))
                return 0
            },
            // long bpf_skb_set_tunnel_key(struct sk_buff *skb, struct bpf_tunnel_key *key, u32 size, u64 flags)
            LinuxHelper.make(.skbSetTunnelKey) { call throws(HelperFailure) in
                let state = try call.linuxState()
                _ = try call.packet(.skb)
                let flags = call.arg(4)
                guard flags & ~(ipv6 | zeroChecksum | dontFragment | sequenceNumber | noTunnelKey) == 0 else {
                    return Errno.invalid.r0
                }
                let size = Int(call.arg32(3))
                guard size == keySize || compatibleSizes.contains(size) else { return Errno.invalid.r0 }
                var key = try call.read(call.arg(2), count: size)
                key += [UInt8](repeating: 0, count: keySize - size)
                let label = get32(key, 24)
                guard flags & ipv6 != 0 || label == 0, key[22] == 0, key[23] == 0 else { return Errno.invalid.r0 }
                var tunnelFlags = flagNoCache
                if flags & dontFragment != 0 { tunnelFlags |= flagDontFragment }
                if flags & zeroChecksum == 0 { tunnelFlags |= flagChecksum }
                if flags & sequenceNumber != 0 { tunnelFlags |= flagSequence }
                if flags & noTunnelKey == 0 { tunnelFlags |= flagKey }
                // The key's destination is the remote end, its source the local one; get reads the
                // source back as `remote`.
                let remote: [UInt8]
                let local: [UInt8]
                if flags & ipv6 != 0 {
                    (remote, local) = (Array(key[28..<44]), Array(key[4..<20]))
                } else {
                    let l = get32(key, 28)
                    let r = get32(key, 4)
                    local = [UInt8(r >> 24), UInt8(r >> 16 & 0xFF), UInt8(r >> 8 & 0xFF), UInt8(r & 0xFF)]
                    remote = [UInt8(l >> 24), UInt8(l >> 16 & 0xFF), UInt8(l >> 8 & 0xFF), UInt8(l & 0xFF)]
                }
                var info = Network.TunnelMetadata(
                    id: get32(key, 0), remote: remote, local: local, tos: key[20], ttl: key[21],
                    label: flags & ipv6 != 0 ? label & 0x000F_FFFF : 0)
                info.flags = tunnelFlags
                info.isTransmit = true
                state.transmitTunnel = info
                return 0
            },
            // long bpf_skb_get_tunnel_opt(struct sk_buff *skb, void *opt, u32 size)
            LinuxHelper.make(.skbGetTunnelOpt) { call throws(HelperFailure) in
                try network.requireValid(call)
                let state = try call.linuxState()
                _ = try call.packet(.skb)
                let size = try call.size(3, limit: 1 << 16)
                guard let info = state.transmitTunnel ?? network.network.tunnel, !info.options.isEmpty else {
                    try call.zero(call.arg(2), count: size)
                    return Errno.noEntry.r0
                }
                guard size >= info.options.count else {
                    try call.zero(call.arg(2), count: size)
                    return Errno.noMemory.r0
                }
                try call.write(info.options + [UInt8](repeating: 0, count: size - info.options.count), at: call.arg(2))
                return UInt64(info.options.count)
            },
            // long bpf_skb_set_tunnel_opt(struct sk_buff *skb, void *opt, u32 size)
            LinuxHelper.make(.skbSetTunnelOpt) { call throws(HelperFailure) in
                let state = try call.linuxState()
                _ = try call.packet(.skb)
                let size = Int(call.arg32(3))
                // Only on metadata this run's bpf_skb_set_tunnel_key attached.
                guard var info = state.transmitTunnel, info.isTransmit, size % 4 == 0 else { return Errno.invalid.r0 }
                guard size <= 255 else { return Errno.noMemory.r0 }
                info.options = try call.read(call.arg(2), count: size)
                state.transmitTunnel = info
                return 0
            },
            xfrmState(network),
        ]
    }
}
