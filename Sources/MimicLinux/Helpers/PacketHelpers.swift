import MimicCore
import MimicMemory

/// Packet helpers on the context's live packet (`LinuxProcessState.packet`), with the kernel's
/// checks and return codes (`net/core/filter.c`):
///
/// - sk_buff: `HelperID.skbLoadBytes`, `HelperID.skbStoreBytes`, `HelperID.skbChangeTail`,
///   `HelperID.skbChangeHead`, `HelperID.skbAdjustRoom` (the basic MAC/NET grow and shrink;
///   encapsulation flags are checked but only `skb->protocol` follows them), `HelperID.skbVlanPush`,
///   `HelperID.skbVlanPop`, `HelperID.cloneRedirect`.
/// - XDP: `HelperID.xdpAdjustHead`, `HelperID.xdpAdjustTail`, `HelperID.xdpAdjustMeta`.
/// - both: `HelperID.redirect`, with XDP's or tc's return values by the attached context; it
///   replaces `LinuxProcessState.redirect` (the last redirect of a run decides).
///
/// Every helper that changes the packet rewrites the context's `data` / `data_end` /
/// `data_meta` (and `len`, `protocol`, VLAN fields), as the kernel's `bpf_compute_data_pointers`.
enum PacketHelpers {
    static let ethernetHeaderLength = 14
    /// `BPF_SKB_MAX_LEN` = `SKB_MAX_ALLOC` on x86-64: 16 KiB minus the 320-byte `skb_shared_info`.
    static let skbMaxLength = 16384 - 320
    static let vlanHeaderLength = 4
    static let ingressFlag: UInt64 = 1

    static func isVLAN(_ type: UInt16) -> Bool { type == 0x8100 || type == 0x88A8 }

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        skbHelpers() + xdpHelpers() + redirectHelpers() + NetworkHelpers.all(for: emulator)
    }

    static func skbHelpers() -> [Helper] {
        [
            // long HelperID.skbLoadBytes(const void *skb, u32 offset, void *to, u32 len)
            LinuxHelper.make(.skbLoadBytes) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                let offset = UInt64(call.arg32(2))
                let length = try call.size(4)
                // A flow dissector's bpf_flow_dissector_load_bytes: offsets past 0xffff, and any
                // call without an sk_buff behind the dissection, fail.
                if let program = call.state?.socketProgram, program.kind == .flowDissector,
                    !program.flowDissectorHasSKB || offset > 0xFFFF
                {
                    try call.zero(call.arg(3), count: length)
                    return Errno.fault.r0
                }
                guard offset <= UInt64(Int32.max), offset + UInt64(length) <= UInt64(buffer.length) else {
                    try call.zero(call.arg(3), count: length)
                    return Errno.fault.r0
                }
                let start = buffer.dataOffset + Int(offset)
                try call.write(buffer.storage.bytes(in: start..<start + length), at: call.arg(3))
                return 0
            },
            // long HelperID.skbStoreBytes(struct sk_buff *skb, u32 offset, const void *from, u32 len, u64 flags)
            LinuxHelper.make(.skbStoreBytes) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                let offset = UInt64(call.arg32(2))
                let length = try call.size(4)
                let flags = call.arg(5)
                guard flags & ~3 == 0 else { return Errno.invalid.r0 } // BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH
                guard offset <= UInt64(Int32.max), offset + UInt64(length) <= UInt64(buffer.length) else {
                    return Errno.fault.r0
                }
                let bytes = try call.read(call.arg(3), count: length)
                buffer.storage.write(bytes, at: buffer.dataOffset + Int(offset))
                if flags & 2 != 0 { NetworkHelpers.clearHash(buffer) } // skb_clear_hash
                return 0
            },
            // long HelperID.skbChangeTail(struct sk_buff *skb, u32 len, u64 flags)
            LinuxHelper.make(.skbChangeTail) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                let newLength = Int(call.arg32(2))
                guard call.arg(3) == 0, newLength <= skbMaxLength, newLength >= buffer.networkOffset else {
                    return Errno.invalid.r0
                }
                if newLength > buffer.length {
                    try buffer.ensureRoom(head: 0, tail: newLength - buffer.length, in: call.process)
                    buffer.storage.write(
                        [UInt8](repeating: 0, count: newLength - buffer.length), at: buffer.dataEndOffset)
                }
                buffer.dataEndOffset = buffer.dataOffset + newLength
                buffer.syncContext(call.process)
                return 0
            },
            // long HelperID.skbChangeHead(struct sk_buff *skb, u32 len, u64 flags)
            LinuxHelper.make(.skbChangeHead) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                let room = Int(call.arg32(2))
                guard call.arg(3) == 0, buffer.length + room <= skbMaxLength else { return Errno.invalid.r0 }
                try buffer.replaceAtHead(
                    offset: 0, removing: 0, inserting: [UInt8](repeating: 0, count: room), in: call.process)
                buffer.networkOffset += room // the new bytes become the MAC header
                buffer.syncContext(call.process)
                return 0
            },
            // long HelperID.skbAdjustRoom(struct sk_buff *skb, s32 len_diff, u32 mode, u64 flags)
            LinuxHelper.make(.skbAdjustRoom) { call throws(HelperFailure) in try adjustRoom(call) },
            // long HelperID.skbVlanPush(struct sk_buff *skb, __be16 vlan_proto, u16 vlan_tci)
            LinuxHelper.make(.skbVlanPush) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                var proto = UInt16(truncatingIfNeeded: call.arg(2)).byteSwapped // __be16 → host order
                if !isVLAN(proto) { proto = 0x8100 }
                let tci = UInt16(truncatingIfNeeded: call.arg(3))
                if let current = buffer.vlanTag {
                    // skb_vlan_push: the tag already held moves into the packet (__vlan_insert_tag).
                    guard buffer.length >= 2 * 6 else { return Errno.invalid.r0 }
                    let tag = [
                        UInt8(current.proto >> 8), UInt8(current.proto & 0xFF), UInt8(current.tci >> 8),
                        UInt8(current.tci & 0xFF),
                    ]
                    try buffer.replaceAtHead(offset: 12, removing: 0, inserting: tag, in: call.process)
                    buffer.protocolType = current.proto
                    buffer.networkOffset += vlanHeaderLength
                }
                buffer.vlanTag = (proto, tci)
                buffer.syncContext(call.process)
                return 0
            },
            // long HelperID.skbVlanPop(struct sk_buff *skb)
            LinuxHelper.make(.skbVlanPop) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                defer { buffer.syncContext(call.process) }
                if buffer.vlanTag != nil {
                    buffer.vlanTag = nil
                } else {
                    guard isVLAN(buffer.protocolType) else { return 0 }
                    guard (try popInlineTag(buffer, call)) != nil else { return Errno.noMemory.r0 }
                }
                // Move the next inline tag, if any, to the accelerated tag.
                guard isVLAN(buffer.protocolType) else { return 0 }
                let proto = buffer.protocolType
                guard let tci = try popInlineTag(buffer, call) else { return Errno.noMemory.r0 }
                buffer.vlanTag = (proto, tci)
                return 0
            },
            // long HelperID.cloneRedirect(struct sk_buff *skb, u32 ifindex, u64 flags)
            LinuxHelper.make(.cloneRedirect) { call throws(HelperFailure) in
                let buffer = try call.packet(.skb)
                let flags = call.arg(3)
                let ifindex = call.arg32(2)
                guard flags & ~ingressFlag == 0, ifindex != 0 else { return Errno.invalid.r0 }
                try call.linuxState().clones.append(ClonedPacket(ifindex: ifindex, flags: flags, packet: buffer.data))
                return 0
            },
        ]
    }

    /// `__skb_vlan_pop`: removes the 802.1Q header after the MAC addresses and returns its TCI;
    /// nil when the packet is shorter than `VLAN_ETH_HLEN` (18).
    static func popInlineTag(_ buffer: PacketBuffer, _ call: HelperCall) throws(HelperFailure) -> UInt16? {
        guard buffer.length >= ethernetHeaderLength + vlanHeaderLength else { return nil }
        let header = buffer.storage.bytes(in: buffer.dataOffset + 12..<buffer.dataOffset + 18)
        let tci = UInt16(header[2]) << 8 | UInt16(header[3])
        let inner = UInt16(header[4]) << 8 | UInt16(header[5])
        try buffer.replaceAtHead(offset: 12, removing: vlanHeaderLength, inserting: [], in: call.process)
        // vlan_set_encap_proto
        buffer.protocolType = inner >= 0x0600 ? inner : 0x0004
        buffer.networkOffset = max(ethernetHeaderLength, buffer.networkOffset - vlanHeaderLength)
        return tci
    }

    static func adjustRoom(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        let buffer = try call.packet(.skb)
        let difference = Int(call.argInt(2))
        let mode = call.arg32(3)
        let flags = call.arg(4)
        let fixedGSO: UInt64 = 1
        let encapIPv4: UInt64 = 1 << 1
        let encapIPv6: UInt64 = 1 << 2
        let encapGRE: UInt64 = 1 << 3
        let encapUDP: UInt64 = 1 << 4
        let noChecksumReset: UInt64 = 1 << 5
        let encapL2Ethernet: UInt64 = 1 << 6
        let encapL2Length: UInt64 = 0xFF << 56
        let known = fixedGSO | encapIPv4 | encapIPv6 | encapGRE | encapUDP | encapL2Ethernet | encapL2Length
        guard flags & ~(known | noChecksumReset) == 0 else { return Errno.invalid.r0 }
        let magnitude = difference.magnitude
        guard magnitude <= 0xFFF else { return Errno.fault.r0 }
        let ipv4: UInt16 = 0x0800
        let ipv6: UInt16 = 0x86DD
        guard buffer.protocolType == ipv4 || buffer.protocolType == ipv6 else { return Errno.kernelNotSupported.r0 }
        let networkBase = buffer.protocolType == ipv4 ? 20 : 40
        var offset = buffer.networkOffset // skb_mac_header_len
        switch mode {
        case 0: offset += networkBase // BPF_ADJ_ROOM_NET
        case 1: break // BPF_ADJ_ROOM_MAC
        default: return Errno.kernelNotSupported.r0
        }
        let current = buffer.length - buffer.networkOffset
        if difference < 0 {
            guard magnitude < current, current - Int(magnitude) >= networkBase else {
                return Errno.kernelNotSupported.r0
            }
            guard flags & ~(fixedGSO | noChecksumReset) == 0 else { return Errno.invalid.r0 }
            guard offset + Int(magnitude) <= buffer.length else { return Errno.kernelNotSupported.r0 }
            try buffer.replaceAtHead(offset: offset, removing: Int(magnitude), inserting: [], in: call.process)
        } else {
            guard buffer.length + Int(magnitude) <= skbMaxLength else { return Errno.kernelNotSupported.r0 }
            let encapsulating = flags & (encapIPv4 | encapIPv6) != 0
            if encapsulating {
                guard flags & (encapIPv4 | encapIPv6) != (encapIPv4 | encapIPv6),
                    flags & (encapGRE | encapUDP) != (encapGRE | encapUDP)
                else { return Errno.invalid.r0 }
                let innerMAC = Int(flags >> 56)
                guard flags & encapL2Ethernet == 0 || innerMAC >= ethernetHeaderLength, innerMAC <= Int(magnitude)
                else {
                    return Errno.invalid.r0
                }
            }
            guard offset <= buffer.length else { return Errno.kernelNotSupported.r0 }
            try buffer.replaceAtHead(
                offset: offset, removing: 0, inserting: [UInt8](repeating: 0, count: Int(magnitude)),
                in: call.process)
            if encapsulating {
                if buffer.protocolType == ipv4, flags & encapIPv6 != 0 { buffer.protocolType = ipv6 }
                if buffer.protocolType == ipv6, flags & encapIPv4 != 0 { buffer.protocolType = ipv4 }
            }
        }
        buffer.syncContext(call.process)
        return 0
    }

    static func xdpHelpers() -> [Helper] {
        [
            // long HelperID.xdpAdjustHead(struct xdp_buff *xdp_md, int delta)
            LinuxHelper.make(.xdpAdjustHead) { call throws(HelperFailure) in
                let buffer = try call.packet(.xdp)
                let delta = Int(call.argInt(2))
                let metaLength = buffer.dataOffset - buffer.metaOffset
                let newData = buffer.dataOffset + delta
                guard newData >= buffer.reserved + metaLength, newData <= buffer.dataEndOffset - ethernetHeaderLength
                else {
                    return Errno.invalid.r0
                }
                if metaLength > 0 {
                    let meta = buffer.storage.bytes(in: buffer.metaOffset..<buffer.dataOffset)
                    buffer.storage.write(meta, at: buffer.metaOffset + delta)
                }
                buffer.metaOffset += delta
                buffer.dataOffset = newData
                buffer.syncContext(call.process)
                return 0
            },
            // long HelperID.xdpAdjustTail(struct xdp_buff *xdp_md, int delta)
            LinuxHelper.make(.xdpAdjustTail) { call throws(HelperFailure) in
                let buffer = try call.packet(.xdp)
                let delta = Int(call.argInt(2))
                let newEnd = buffer.dataEndOffset + delta
                guard newEnd <= buffer.storage.count, newEnd >= buffer.dataOffset + ethernetHeaderLength else {
                    return Errno.invalid.r0
                }
                if delta > 0 { buffer.storage.write([UInt8](repeating: 0, count: delta), at: buffer.dataEndOffset) }
                buffer.dataEndOffset = newEnd
                buffer.syncContext(call.process)
                return 0
            },
            // long HelperID.xdpAdjustMeta(struct xdp_buff *xdp_md, int delta)
            LinuxHelper.make(.xdpAdjustMeta) { call throws(HelperFailure) in
                let buffer = try call.packet(.xdp)
                let newMeta = buffer.metaOffset + Int(call.argInt(2))
                guard newMeta >= buffer.reserved, newMeta <= buffer.dataOffset else { return Errno.invalid.r0 }
                let metaLength = buffer.dataOffset - newMeta
                // xdp_metalen_invalid: a multiple of 4, at most skb_shared_info.meta_len's 255.
                guard metaLength % 4 == 0, metaLength <= 255 else { return Errno.accessDenied.r0 }
                buffer.metaOffset = newMeta
                buffer.syncContext(call.process)
                return 0
            },
        ]
    }

    static func redirectHelpers() -> [Helper] {
        [
            // long HelperID.redirect(u32 ifindex, u64 flags)
            LinuxHelper.make(.redirect) { call throws(HelperFailure) in
                let state = try call.linuxState()
                let flags = call.arg(2)
                if state.packet?.kind == .xdp {
                    guard flags == 0 else { return UInt64(XDPAction.aborted.rawValue) }
                    state.redirect = .interface(ifindex: call.arg32(1), flags: flags)
                    return UInt64(XDPAction.redirect.rawValue)
                }
                guard flags & ~ingressFlag == 0 else { return UInt64(TCAction.shot.rawValue) }
                state.redirect = .interface(ifindex: call.arg32(1), flags: flags)
                return UInt64(TCAction.redirect.rawValue)
            }
        ]
    }
}
