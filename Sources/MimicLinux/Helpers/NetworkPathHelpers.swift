import MimicCore

/// Networking helpers of the packet's way through the kernel: perf event output with the packet
/// appended (`bpf_xdp_output`, `bpf_skb_output`) and the helpers whose feature Mimic's network
/// does not have, which answer as the kernel does without it (Docs/Network.md).
enum NetworkPathHelpers {
    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [packetOutput(.xdpOutput, .xdp, emulator), packetOutput(.skbOutput, .skb, emulator)]
    }

    /// `long bpf_xdp_output(xdp_buff, map, flags, data, size)` and `long bpf_skb_output(skb, map,
    /// flags, data, size)`: `bpf_perf_event_output` for tracing programs given a packet, the
    /// kernel's `bpf_xdp_event_output` / `bpf_skb_event_output` themselves: a record of `size`
    /// bytes from `data` with `flags >> 32` bytes of the packet appended (`BPF_F_CTXLEN_MASK`;
    /// more than the packet holds is `-EFAULT`), to the perf buffer of the CPU the event at
    /// `flags & BPF_F_INDEX_MASK` is bound to; other flag bits are `-EINVAL`. The packet is the
    /// run's `xdp_md` / `__sk_buff` (R1 must be its context pointer): the kernel's argument is its
    /// own `struct xdp_buff` / `struct sk_buff`, which Mimic does not lay out, so a tracing
    /// program's pointer to one stops the program naming the struct.
    static func packetOutput(_ id: HelperID, _ kind: PacketBuffer.Kind, _ emulator: LinuxEmulator) -> Helper {
        LinuxHelper.make(id) { [weak emulator] call throws(HelperFailure) in
            let structName = kind == .xdp ? "struct xdp_buff" : "struct sk_buff"
            guard let buffer = call.state?.packet, buffer.kind == kind, call.arg(1) == buffer.contextAddress else {
                throw .message(
                    "\(call.name) needs r1 to be the run's \(kind == .xdp ? "xdp_md" : "__sk_buff") packet context: the kernel's \(structName) objects are not emulated"
                )
            }
            let map = try MapHelpers.map(
                emulator, call.process, argument: 2, as: PerfEventArrayMap.self, "a BPF_MAP_TYPE_PERF_EVENT_ARRAY")
            let flags = call.arg(3)
            let indexMask = PerfEventHelpers.indexMask
            let contextMask = PerfEventHelpers.contextLengthMask
            guard flags & ~(indexMask | contextMask) == 0 else { return Errno.invalid.r0 }
            let packetBytes = (flags & contextMask) >> 32
            guard packetBytes <= UInt64(buffer.length) else { return Errno.fault.r0 }
            let size = call.arg(5)
            guard size <= UInt64(Int32.max) else { return Errno.invalid.r0 }
            var data = try call.read(call.arg(4), count: Int(size))
            if packetBytes > 0 { data += try call.read(buffer.dataAddress, count: Int(packetBytes)) }
            if let errno = map.output(data, index: flags & indexMask, cpu: call.process.vCPU) { return errno.r0 }
            return 0
        }
    }
}
