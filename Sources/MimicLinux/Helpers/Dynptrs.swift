import MimicCore
import MimicMemory

/// Dynamic pointers (`struct bpf_dynptr`), as `kernel/bpf/helpers.c` and `kernel/bpf/ringbuf.c`
/// implement them: `HelperID.dynptrFromMem`, `.dynptrRead`, `.dynptrWrite`, `.dynptrData`,
/// `.ringbufReserveDynptr`, `.ringbufSubmitDynptr`, `.ringbufDiscardDynptr`, and the kfuncs
/// `bpf_dynptr_slice`, `bpf_dynptr_slice_rdwr`, `bpf_dynptr_adjust`, `bpf_dynptr_is_null`,
/// `bpf_dynptr_is_rdonly`, `bpf_dynptr_size` and `bpf_dynptr_clone`.
///
/// A dynptr is the kernel's 16-byte `struct bpf_dynptr_kern` on the program's stack:
/// `void *data; u32 size; u32 offset;`, where `size` keeps the length in its low 24 bits, the type
/// in bits 28–30 (`BPF_DYNPTR_TYPE_LOCAL` 1, `RINGBUF` 2) and read-only in bit 31. A NULL dynptr
/// (all zeros) is what a failed constructor leaves.
///
/// Packet dynptrs (`bpf_dynptr_from_skb`, `bpf_dynptr_from_xdp`: types `SKB` 3 and `XDP` 4) hold
/// the context's address where the kernel holds the `sk_buff` / `xdp_buff`, and reach the
/// packet through the process's `PacketBuffer`, as the kernel's `__bpf_skb_load_bytes`,
/// `__bpf_skb_store_bytes`, `__bpf_xdp_load_bytes` and `__bpf_xdp_store_bytes` do: reads and
/// writes land in the packet as it is at the call; `bpf_dynptr_data` gives NULL for them (the
/// kernel wants `bpf_dynptr_slice`), and slices point into the packet (Mimic's packets are
/// linear). An skb dynptr is read-only in program types that may not write packet data
/// (`may_access_direct_pkt_data`: only sched_cls, sched_act, xdp, lwt_xmit, sk_skb, sk_msg and
/// cgroup_sockopt may), as the verifier swaps in `bpf_dynptr_from_skb_rdonly` for them.
enum Dynptrs {
    struct Kern {
        var data: UInt64
        var sizeWord: UInt32
        var offset: UInt32

        static let sizeMask: UInt32 = 0xFF_FFFF
        static let typeShift: UInt32 = 28
        static let readOnlyBit: UInt32 = 1 << 31
        /// `BPF_DYNPTR_TYPE_LOCAL` and `_RINGBUF`.
        static let local: UInt32 = 1
        static let ringBuffer: UInt32 = 2
        /// `BPF_DYNPTR_TYPE_SKB` and `_XDP`: `data` is the context's address.
        static let skb: UInt32 = 3
        static let xdp: UInt32 = 4

        var size: UInt64 { UInt64(sizeWord & Kern.sizeMask) }
        var type: UInt32 { (sizeWord >> Kern.typeShift) & 0x7 }
        var isReadOnly: Bool { sizeWord & Kern.readOnlyBit != 0 }
        var isNull: Bool { data == 0 }
        var isPacket: Bool { type == Kern.skb || type == Kern.xdp }
        /// Where byte `offset` of the dynptr's view is.
        func address(_ offset: UInt64) -> UInt64 { data &+ UInt64(self.offset) &+ offset }

        /// `bpf_dynptr_check_off_len`: `-E2BIG` past the end.
        func check(offset: UInt64, length: UInt64) -> Errno? {
            length > size || offset > size - length ? .tooBig : nil
        }

        var bytes: [UInt8] {
            withUnsafeBytes(of: data.littleEndian, Array.init) + littleEndianBytes(sizeWord) + littleEndianBytes(offset)
        }
    }

    /// `DYNPTR_MAX_SIZE`.
    static let maxSize: UInt64 = UInt64(Kern.sizeMask)

    static func read(_ call: HelperCall, at address: UInt64) throws(HelperFailure) -> Kern {
        let bytes = try call.read(address, count: 16)
        return Kern(
            data: get64(bytes, 0), sizeWord: littleEndianUInt32(Array(bytes[8..<12])),
            offset: littleEndianUInt32(Array(bytes[12..<16])))
    }

    static func write(_ call: HelperCall, _ dynptr: Kern, at address: UInt64) throws(HelperFailure) {
        try call.write(dynptr.bytes, at: address)
    }

    /// `bpf_dynptr_set_null`.
    static func setNull(_ call: HelperCall, at address: UInt64) throws(HelperFailure) {
        try call.write([UInt8](repeating: 0, count: 16), at: address)
    }

    static func make(data: UInt64, type: UInt32, size: UInt64) -> Kern {
        Kern(data: data, sizeWord: UInt32(size) | type << Kern.typeShift, offset: 0)
    }

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            // long bpf_dynptr_from_mem(void *data, u32 size, u64 flags, struct bpf_dynptr *ptr)
            LinuxHelper.make(.dynptrFromMem) { call throws(HelperFailure) in
                let size = UInt64(call.arg32(2))
                let target = call.arg(4)
                guard size <= maxSize else {
                    try setNull(call, at: target)
                    return Errno.tooBig.r0
                }
                guard call.arg(3) == 0 else {
                    try setNull(call, at: target)
                    return Errno.invalid.r0
                }
                try write(call, make(data: call.arg(1), type: Kern.local, size: size), at: target)
                return 0
            },
            // long bpf_dynptr_read(void *dst, u32 len, const struct bpf_dynptr *src, u32 offset, u64 flags)
            LinuxHelper.make(.dynptrRead) { call throws(HelperFailure) in
                let length = UInt64(call.arg32(2))
                let source = try read(call, at: call.arg(3))
                let offset = UInt64(call.arg32(4))
                guard !source.isNull, call.arg(5) == 0 else { return Errno.invalid.r0 }
                if let errno = source.check(offset: offset, length: length) { return errno.r0 }
                if source.isPacket {
                    return try readPacket(call, source, offset: offset, length: Int(length), into: call.arg(1))
                }
                try call.write(try call.read(source.address(offset), count: Int(length)), at: call.arg(1))
                return 0
            },
            // long bpf_dynptr_write(const struct bpf_dynptr *dst, u32 offset, void *src, u32 len, u64 flags)
            LinuxHelper.make(.dynptrWrite) { call throws(HelperFailure) in
                let target = try read(call, at: call.arg(1))
                let offset = UInt64(call.arg32(2))
                let length = UInt64(call.arg32(4))
                guard !target.isNull, !target.isReadOnly else { return Errno.invalid.r0 }
                if let errno = target.check(offset: offset, length: length) { return errno.r0 }
                if target.isPacket {
                    return try writePacket(call, target, offset: offset, length: Int(length), flags: call.arg(5))
                }
                guard call.arg(5) == 0 else { return Errno.invalid.r0 }
                try call.write(try call.read(call.arg(3), count: Int(length)), at: target.address(offset))
                return 0
            },
            // void *bpf_dynptr_data(const struct bpf_dynptr *ptr, u32 offset, u32 len)
            LinuxHelper.make(.dynptrData) { call throws(HelperFailure) in
                let dynptr = try read(call, at: call.arg(1))
                let offset = UInt64(call.arg32(2))
                // Packet dynptrs give NULL: the kernel wants bpf_dynptr_slice for them.
                guard !dynptr.isNull, dynptr.check(offset: offset, length: UInt64(call.arg32(3))) == nil,
                    !dynptr.isReadOnly, !dynptr.isPacket
                else { return 0 }
                return dynptr.address(offset)
            },
            // long bpf_ringbuf_reserve_dynptr(void *ringbuf, u32 size, u64 flags, struct bpf_dynptr *ptr)
            LinuxHelper.make(.ringbufReserveDynptr) { [weak emulator] call throws(HelperFailure) in
                let ring = try MapHelpers.map(
                    emulator, call.process, as: RingBufferMap.self, "a BPF_MAP_TYPE_RINGBUF")
                let size = UInt64(call.arg32(2))
                let target = call.arg(4)
                guard call.arg(3) == 0 else {
                    try setNull(call, at: target)
                    return Errno.invalid.r0
                }
                guard size <= maxSize else {
                    try setNull(call, at: target)
                    return Errno.tooBig.r0
                }
                // No room is -EINVAL here (bpf_ringbuf_reserve_dynptr), not -EAGAIN.
                guard let record = ring.reserve(size: size, flags: 0) else {
                    try setNull(call, at: target)
                    return Errno.invalid.r0
                }
                try write(call, make(data: record, type: Kern.ringBuffer, size: size), at: target)
                return 0
            },
            commitDynptr(emulator, discard: false),
            commitDynptr(emulator, discard: true),
        ]
    }

    /// `void bpf_ringbuf_submit_dynptr(struct bpf_dynptr *ptr, u64 flags)` and
    /// `bpf_ringbuf_discard_dynptr`: nothing for a NULL dynptr; the record is committed and the
    /// dynptr set to NULL.
    static func commitDynptr(_ emulator: LinuxEmulator, discard: Bool) -> Helper {
        LinuxHelper.make(discard ? .ringbufDiscardDynptr : .ringbufSubmitDynptr) {
            [weak emulator] call throws(HelperFailure) in
            let dynptr = try read(call, at: call.arg(1))
            guard !dynptr.isNull else { return 0 }
            guard dynptr.type == Kern.ringBuffer,
                RingBufferHelpers.commit(emulator, call.process, record: dynptr.data, discard: discard)
            else {
                throw .message("the dynptr at 0x\(String(call.arg(1), radix: 16)) is not a reserved ring buffer record")
            }
            try setNull(call, at: call.arg(1))
            return 0
        }
    }

    /// The dynptr kfuncs.
    static func kfuncs() -> [Helper] {
        [
            // int bpf_dynptr_from_skb(struct __sk_buff *skb, u64 flags, struct bpf_dynptr *ptr__uninit)
            LinuxKfuncs.make("bpf_dynptr_from_skb") { call throws(HelperFailure) in
                guard call.arg(2) == 0 else {
                    try setNull(call, at: call.arg(3))
                    return Errno.invalid.r0
                }
                let buffer = try call.packet(.skb)
                var dynptr = make(data: buffer.contextAddress, type: Kern.skb, size: UInt64(buffer.length))
                let type = call.state?.skbWriteCheck?.0
                if let type, !writesPackets.contains(type) { dynptr.sizeWord |= Kern.readOnlyBit }
                try write(call, dynptr, at: call.arg(3))
                return 0
            },
            // int bpf_dynptr_from_xdp(struct xdp_md *xdp, u64 flags, struct bpf_dynptr *ptr__uninit)
            LinuxKfuncs.make("bpf_dynptr_from_xdp") { call throws(HelperFailure) in
                guard call.arg(2) == 0 else {
                    try setNull(call, at: call.arg(3))
                    return Errno.invalid.r0
                }
                let buffer = try call.packet(.xdp)
                try write(call, make(data: buffer.contextAddress, type: Kern.xdp, size: UInt64(buffer.length)), at: call.arg(3))
                return 0
            },
            // void *bpf_dynptr_slice(const struct bpf_dynptr *p, u32 offset, void *buffer__opt, u32 buffer__szk)
            LinuxKfuncs.make("bpf_dynptr_slice") { call throws(HelperFailure) in
                try slice(call, writable: false)
            },
            LinuxKfuncs.make("bpf_dynptr_slice_rdwr") { call throws(HelperFailure) in
                try slice(call, writable: true)
            },
            // int bpf_dynptr_adjust(const struct bpf_dynptr *p, u32 start, u32 end)
            LinuxKfuncs.make("bpf_dynptr_adjust") { call throws(HelperFailure) in
                var dynptr = try read(call, at: call.arg(1))
                let start = UInt64(call.arg32(2))
                let end = UInt64(call.arg32(3))
                guard !dynptr.isNull else { return Errno.invalid.r0 }
                guard start <= dynptr.size, end <= dynptr.size else { return Errno.outOfRange.r0 }
                guard start <= end else { return Errno.invalid.r0 }
                dynptr.offset &+= UInt32(start)
                dynptr.sizeWord = dynptr.sizeWord & ~Kern.sizeMask | UInt32(end - start)
                try write(call, dynptr, at: call.arg(1))
                return 0
            },
            LinuxKfuncs.make("bpf_dynptr_is_null") { call throws(HelperFailure) in
                try read(call, at: call.arg(1)).isNull ? 1 : 0
            },
            LinuxKfuncs.make("bpf_dynptr_is_rdonly") { call throws(HelperFailure) in
                let dynptr = try read(call, at: call.arg(1))
                return !dynptr.isNull && dynptr.isReadOnly ? 1 : 0
            },
            // __u32 bpf_dynptr_size(const struct bpf_dynptr *p): (u32)-EINVAL for a NULL one.
            LinuxKfuncs.make("bpf_dynptr_size") { call throws(HelperFailure) in
                let dynptr = try read(call, at: call.arg(1))
                return dynptr.isNull ? Errno.invalid.r0 & 0xFFFF_FFFF : dynptr.size
            },
            // int bpf_dynptr_clone(const struct bpf_dynptr *p, struct bpf_dynptr *clone__uninit)
            LinuxKfuncs.make("bpf_dynptr_clone") { call throws(HelperFailure) in
                let dynptr = try read(call, at: call.arg(1))
                guard !dynptr.isNull else {
                    try setNull(call, at: call.arg(2))
                    return Errno.invalid.r0
                }
                try write(call, dynptr, at: call.arg(2))
                return 0
            },
        ]
    }

    /// `bpf_dynptr_slice(_rdwr)`: a pointer into the dynptr's memory (local and ring buffer
    /// dynptrs are always contiguous, and so are Mimic's packets, so the buffer is not used),
    /// NULL when out of range (of the dynptr, or of a packet that shrank since), for a NULL
    /// dynptr, or (`_rdwr`) for a read-only one. A slice of a packet is the packet's own bytes:
    /// writes through it change the packet.
    static func slice(_ call: HelperCall, writable: Bool) throws(HelperFailure) -> UInt64 {
        let dynptr = try read(call, at: call.arg(1))
        let offset = UInt64(call.arg32(2))
        let length = UInt64(call.arg32(4))
        guard !dynptr.isNull, !(writable && dynptr.isReadOnly), dynptr.check(offset: offset, length: length) == nil
        else { return 0 }
        guard dynptr.isPacket else { return dynptr.address(offset) }
        let buffer = try packet(call, dynptr)
        let start = UInt64(dynptr.offset) + offset
        // skb_header_pointer / bpf_xdp_pointer: within the packet as it is now.
        if dynptr.type == Kern.xdp, start > 0xFFFF || length > 0xFFFF { return 0 }
        guard start + length <= UInt64(buffer.length) else { return 0 }
        return buffer.dataAddress + start
    }

    /// `__bpf_dynptr_data_rw`: where a kernel function may write the dynptr's bytes (its
    /// memory, or the packet's for a packet dynptr, which Mimic keeps linear); nil for a NULL or
    /// read-only dynptr.
    static func writableData(_ call: HelperCall, _ dynptr: Kern) throws(HelperFailure) -> UInt64? {
        guard !dynptr.isNull, !dynptr.isReadOnly else { return nil }
        guard dynptr.isPacket else { return dynptr.address(0) }
        let buffer = try packet(call, dynptr)
        guard UInt64(dynptr.offset) + dynptr.size <= UInt64(buffer.length) else { return nil }
        return buffer.dataAddress + UInt64(dynptr.offset)
    }

    /// The program types whose skb dynptrs are writable (`may_access_direct_pkt_data` with
    /// `BPF_WRITE`).
    static let writesPackets: Set<ProgramType> = [
        .schedCls, .schedAct, .xdp, .lwtXmit, .skSkb, .skMsg, .cgroupSockopt,
    ]

    /// The packet a packet dynptr is over: the process's, when its context is the one the dynptr
    /// was made from.
    static func packet(_ call: HelperCall, _ dynptr: Kern) throws(HelperFailure) -> PacketBuffer {
        let kind: PacketBuffer.Kind = dynptr.type == Kern.skb ? .skb : .xdp
        guard let buffer = call.state?.packet, buffer.kind == kind, buffer.contextAddress == dynptr.data else {
            throw .message(
                "the \(kind.rawValue) dynptr's context (0x\(String(dynptr.data, radix: 16))) is not this run's packet context")
        }
        return buffer
    }

    /// `__bpf_skb_load_bytes` / `__bpf_xdp_load_bytes` at the dynptr's `offset`: `-EFAULT` with
    /// the destination cleared (skb) or `-EFAULT` / `-EINVAL` (xdp) past the packet.
    static func readPacket(_ call: HelperCall, _ dynptr: Kern, offset: UInt64, length: Int, into target: UInt64)
        throws(HelperFailure) -> UInt64
    {
        let buffer = try packet(call, dynptr)
        let start = UInt64(dynptr.offset) + offset
        if dynptr.type == Kern.xdp {
            if start > 0xFFFF || length > 0xFFFF { return Errno.fault.r0 }
            if start + UInt64(length) > UInt64(buffer.length) { return Errno.invalid.r0 }
        } else if start > UInt64(Int32.max) || start + UInt64(length) > UInt64(buffer.length) {
            try call.zero(target, count: length)
            return Errno.fault.r0
        }
        let from = buffer.dataOffset + Int(start)
        try call.write(buffer.storage.bytes(in: from..<from + length), at: target)
        return 0
    }

    /// `__bpf_skb_store_bytes` (flags `BPF_F_RECOMPUTE_CSUM`, `BPF_F_INVALIDATE_HASH`, else
    /// `-EINVAL`; `-EFAULT` past the packet) / `__bpf_xdp_store_bytes` (no flags) at the
    /// dynptr's `offset`.
    static func writePacket(_ call: HelperCall, _ dynptr: Kern, offset: UInt64, length: Int, flags: UInt64)
        throws(HelperFailure) -> UInt64
    {
        let buffer = try packet(call, dynptr)
        let start = UInt64(dynptr.offset) + offset
        if dynptr.type == Kern.xdp {
            guard flags == 0 else { return Errno.invalid.r0 }
            if start > 0xFFFF || length > 0xFFFF { return Errno.fault.r0 }
            if start + UInt64(length) > UInt64(buffer.length) { return Errno.invalid.r0 }
        } else {
            guard flags & ~3 == 0 else { return Errno.invalid.r0 }
            guard start <= UInt64(Int32.max), start + UInt64(length) <= UInt64(buffer.length) else {
                return Errno.fault.r0
            }
        }
        buffer.storage.write(try call.read(call.arg(3), count: length), at: buffer.dataOffset + Int(start))
        if dynptr.type == Kern.skb, flags & 2 != 0 { NetworkHelpers.clearHash(buffer) }
        return 0
    }
}
