import MimicCore
import MimicJSON
import MimicMemory

/// A flow dissector's input (JSON type `bpf_flow_dissector`): a frame and the dissection's
/// flags, run as the kernel's `bpf_flow_dissect` runs it (net/core/flow_dissector.c):
///
/// - R1 points to a `struct __sk_buff` of which a flow dissector may read only `data`,
///   `data_end` and `flow_keys` (`flow_dissector_is_valid_access`); `data` is the frame from
///   its Ethernet header, as in `BPF_PROG_TEST_RUN`.
/// - `flow_keys` points to a zeroed `struct bpf_flow_keys` with `n_proto` (the frame's
///   EtherType, network order), `nhoff` = `thoff` = 14 (or the context's `nhoff`) and `flags`.
/// - After the run the kernel clamps `nhoff` to [the initial nhoff, the packet's length] and
///   `thoff` to [`nhoff`, the length]; `result(of:)` gives the keys so clamped, as the test
///   run returns them in `data_out`.
/// - `bpf_skb_load_bytes` works only when the dissection runs on an sk_buff (`"skb": true`);
///   without one (the default, as in the kernel's test run and `eth_get_headlen`) it fails with
///   `-EFAULT` and zeroes the buffer (`bpf_flow_dissector_load_bytes`).
public struct FlowDissectorContext: Context, Sendable {
    public var name: String
    /// The frame, from its Ethernet header.
    public var packet: [UInt8]
    /// `BPF_FLOW_DISSECTOR_F_*` (`PARSE_1ST_FRAG` 1, `STOP_AT_FLOW_LABEL` 2, `STOP_AT_ENCAP` 4).
    public var flags: UInt32
    /// Where the network header starts (14: after the Ethernet header).
    public var networkOffset: UInt16
    /// Whether an sk_buff backs the dissection (`bpf_skb_load_bytes` works).
    public var hasSKB: Bool

    public init(
        packet: [UInt8], flags: UInt32 = 0, networkOffset: UInt16 = 14, hasSKB: Bool = false,
        name: String = "bpf_flow_dissector"
    ) {
        self.name = name
        self.packet = packet
        self.flags = flags
        self.networkOffset = networkOffset
        self.hasSKB = hasSKB
    }

    /// The layout of `struct bpf_flow_keys` (56 bytes), all writable. The address union is
    /// shown as `ipv6_src[0..3]` and `ipv6_dst[0..3]`: `ipv4_src` is `ipv6_src[0]`, `ipv4_dst`
    /// is `ipv6_src[1]`.
    public static let keysLayout = ContextLayout(
        structName: "bpf_flow_keys", size: 56,
        fields: [
            ContextField("nhoff", 0, 2, writable: true), ContextField("thoff", 2, 2, writable: true),
            ContextField("addr_proto", 4, 2, writable: true), ContextField("is_frag", 6, 1, writable: true),
            ContextField("is_first_frag", 7, 1, writable: true), ContextField("is_encap", 8, 1, writable: true),
            ContextField("ip_proto", 9, 1, writable: true), ContextField("n_proto", 10, 2, writable: true),
            ContextField("sport", 12, 2, writable: true), ContextField("dport", 14, 2, writable: true),
        ] + ContextField.words("ipv6_src", 16, count: 4, writable: true)
            + ContextField.words("ipv6_dst", 32, count: 4, writable: true) + [
                ContextField("flags", 48, writable: true), ContextField("flow_label", 52, writable: true),
            ])

    /// Reads the `ctx` of a `bpf_flow_dissector` context file: `packet` (the frame), `flags`,
    /// `nhoff` (default 14), `skb` (default false).
    public init(json ctx: JSONField, name: String) throws(ContextError) {
        try ctx.object(knownMembers: ["packet", "flags", "nhoff", "skb"])
        let limit = AddressSpace.lowWindowLimit / 4
        let packet = try ctx["packet"].optionalBase64(limit: limit)
        guard packet.count >= 14 else {
            throw ctx["packet"].error(
                "a flow dissector takes a frame of at least 14 bytes (an Ethernet header), got \(packet.count)")
        }
        var hasSKB = false
        if !ctx["skb"].isMissing {
            guard case .bool(let value)? = ctx["skb"].value else { throw ctx["skb"].error("expected true or false") }
            hasSKB = value
        }
        self.init(
            packet: packet, flags: try ctx["flags"].optionalInteger(UInt32.self) ?? 0,
            networkOffset: try ctx["nhoff"].optionalInteger(UInt16.self) ?? 14, hasSKB: hasSKB, name: name)
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        guard packet.count >= 14 else {
            throw .message("a flow dissector takes a frame of at least 14 bytes, got \(packet.count)")
        }
        var keys = [UInt8](repeating: 0, count: Self.keysLayout.size)
        put16(&keys, 0, networkOffset)
        put16(&keys, 2, networkOffset)
        keys[10] = packet[12] // n_proto: the EtherType as the frame holds it (network order)
        keys[11] = packet[13]
        put32(&keys, 48, flags)
        let record = try StructContextRecord(layout: Self.keysLayout, bytes: keys, into: process)
        let regionName = "\(name) packet"
        let (storage, base) = try PacketBuffer.map(packet, headroom: 0, tailroom: 0, name: regionName, into: process)
        var fields = [UInt8](repeating: 0, count: SKBLayout.size)
        put64(&fields, SKBLayout.flowKeys, record.address)
        let context = RegionStorage(bytes: fields)
        let contextAddress: UInt64
        do {
            contextAddress = try process.memory.map(context, name: "__sk_buff", kind: .readOnly)
        } catch {
            throw .message("cannot map the flow dissector's __sk_buff: \(error)")
        }
        let buffer = PacketBuffer(
            kind: .skb, storage: storage, base: base, metaOffset: 0, dataOffset: 0, dataEndOffset: packet.count,
            reserved: 0, contextAddress: contextAddress, contextStorage: context, regionName: regionName)
        buffer.protocolType = SKBContext.etherType(of: packet)
        buffer.syncContext(process)
        // Only data, data_end and flow_keys are readable: clear what syncContext filled in.
        for offset in [SKBLayout.len, SKBLayout.protocol] { buffer.storeU32(0, at: offset) }
        let state = LinuxProcessState.forContext(process)
        state.packet = buffer
        state.contextRecord = record
        let program = SocketProgramState(kind: .flowDissector)
        program.flowDissectorHasSKB = hasSKB
        state.socketProgram = program
        process.registers[1] = contextAddress
    }

    /// The outcome of a flow dissector run.
    public struct Result: Sendable, Equatable {
        /// R0: `BPF_OK` (0), `BPF_DROP` (2), ...
        public var returnValue: UInt64
        /// `struct bpf_flow_keys` (56 bytes) after the kernel's clamping of `nhoff` and `thoff`.
        public var keys: [UInt8]
    }

    /// The verdict and flow keys of an exited flow dissector process; nil for another context.
    public static func result(of process: MimicCore.Process) -> Result? {
        guard case .exited(let value) = process.state, let state = LinuxProcessState.of(process),
            state.socketProgram?.kind == .flowDissector, let record = state.contextRecord,
            let buffer = state.packet
        else { return nil }
        var keys = record.bytes
        let initial = UInt16(record.initial[0]) | UInt16(record.initial[1]) << 8
        let length = UInt16(clamping: buffer.length)
        func clamp(_ value: UInt16, _ low: UInt16, _ high: UInt16) -> UInt16 { min(max(value, low), high) }
        let nhoff = clamp(UInt16(keys[0]) | UInt16(keys[1]) << 8, initial, length)
        let thoff = clamp(UInt16(keys[2]) | UInt16(keys[3]) << 8, nhoff, length)
        put16(&keys, 0, nhoff)
        put16(&keys, 2, thoff)
        return Result(returnValue: value, keys: keys)
    }
}
