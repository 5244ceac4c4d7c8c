import MimicCore
import MimicJSON
import MimicMemory

/// An `sk_reuseport` program's input (JSON type `sk_reuseport_md`): a packet (a TCP SYN or a
/// UDP datagram) for which the kernel picks one socket of a `SO_REUSEPORT` group. R1 points to a
/// read-only `struct sk_reuseport_md` (56 bytes): `data` .. `data_end` from the transport
/// header (as the kernel's skb is at that point), `len` (bytes from the transport header),
/// `eth_protocol` (the EtherType, network order), `ip_protocol`, `bind_inany`, `hash`, `sk` (a
/// socket of the group) and `migrating_sk` (NULL: no migration).
///
/// `bpf_skb_load_bytes` reads from the transport header (`sk_reuseport_load_bytes`). R0 is
/// `SK_PASS` (1) or `SK_DROP` (0); `bpf_sk_select_reuseport` needs a
/// `REUSEPORT_SOCKARRAY`, which Mimic does not emulate (the call stops, naming the map).
public struct SKReuseportContext: Context, Sendable {
    public var name: String
    /// The frame, from its Ethernet header (IPv4 or IPv6, then TCP or UDP).
    public var packet: [UInt8]
    /// `hash`: nil gives Mimic's flow hash of the packet (the kernel's is a siphash with a
    /// secret key, Docs/Contexts.md "Flow hash").
    public var hash: UInt32?
    public var bindInany: UInt32
    /// The group's socket `sk` stands for.
    public var socket: SocketInfo

    public init(
        packet: [UInt8], hash: UInt32? = nil, bindInany: UInt32 = 0, socket: SocketInfo = SocketInfo(),
        name: String = "sk_reuseport_md"
    ) {
        self.name = name
        self.packet = packet
        self.hash = hash
        self.bindInany = bindInany
        self.socket = socket
    }

    /// The layout of `struct sk_reuseport_md`: nothing writable (`sk_reuseport_is_valid_access`).
    public static let layout = ContextLayout(
        structName: "sk_reuseport_md", size: 56,
        fields: [
            ContextField("data", 0, 8, pointer: true), ContextField("data_end", 8, 8, pointer: true),
            ContextField("len", 16), ContextField("eth_protocol", 20), ContextField("ip_protocol", 24),
            ContextField("bind_inany", 28), ContextField("hash", 32), ContextField("sk", 40, 8, pointer: true),
            ContextField("migrating_sk", 48, 8, pointer: true),
        ])

    /// Reads the `ctx` of an `sk_reuseport_md` context file: `packet`, `hash`, `bind_inany`,
    /// `sock` (as an sk_buff's).
    public init(json ctx: JSONField, name: String) throws(ContextError) {
        try ctx.object(knownMembers: ["packet", "hash", "bind_inany", "sock"])
        let packet = try ctx["packet"].optionalBase64(limit: AddressSpace.lowWindowLimit / 4)
        guard Self.transportOffset(of: packet) != nil else {
            throw ctx["packet"].error("expected an Ethernet frame with a whole IPv4 or IPv6 header")
        }
        self.init(
            packet: packet, hash: try ctx["hash"].optionalInteger(UInt32.self),
            bindInany: try ctx["bind_inany"].optionalInteger(UInt32.self) ?? 0,
            socket: ctx["sock"].isMissing ? SocketInfo() : try SKBContext.socket(ctx["sock"]), name: name)
    }

    /// Where the transport header starts and the IP protocol, for IPv4 and IPv6 frames.
    static func transportOffset(of packet: [UInt8]) -> (offset: Int, protocol: UInt8)? {
        guard packet.count >= 14 else { return nil }
        switch SKBContext.etherType(of: packet) {
        case 0x0800:
            guard packet.count >= 34, packet[14] >> 4 == 4 else { return nil }
            let headerLength = Int(packet[14] & 0x0F) * 4
            guard headerLength >= 20, packet.count >= 14 + headerLength else { return nil }
            return (14 + headerLength, packet[23])
        case 0x86DD:
            guard packet.count >= 54, packet[14] >> 4 == 6 else { return nil }
            return (54, packet[20])
        default:
            return nil
        }
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        guard let (offset, ipProtocol) = Self.transportOffset(of: packet) else {
            throw .message("an sk_reuseport packet must be an Ethernet frame with a whole IPv4 or IPv6 header")
        }
        let regionName = "\(name) packet"
        let (storage, base) = try PacketBuffer.map(packet, headroom: 0, tailroom: 0, name: regionName, into: process)
        // The helpers see an sk_buff with data at the transport header (`skbView`, not mapped);
        // R1 is the sk_reuseport_md.
        let etherType = SKBContext.etherType(of: packet)
        var b = [UInt8](repeating: 0, count: Self.layout.size)
        put64(&b, 0, base + UInt64(offset))
        put64(&b, 8, base + UInt64(packet.count))
        put32(&b, 16, UInt32(packet.count - offset))
        put32(&b, 20, UInt32(etherType.bigEndian))
        put32(&b, 24, UInt32(ipProtocol))
        put32(&b, 28, bindInany)
        let socketAddress = try socket.map(into: process)
        put64(&b, 40, socketAddress)
        let record = try StructContextRecord(layout: Self.layout, bytes: b, into: process, kind: .readOnly)
        let skbView = RegionStorage(count: SKBLayout.size)
        let buffer = PacketBuffer(
            kind: .skb, storage: storage, base: base, metaOffset: offset, dataOffset: offset,
            dataEndOffset: packet.count, reserved: 0, contextAddress: record.address, contextStorage: skbView,
            regionName: regionName)
        buffer.protocolType = etherType
        buffer.networkOffset = 14 - offset
        buffer.pulledLength = offset
        buffer.syncContext(process)
        record.setUp32(hash ?? NetworkHelpers.flowHash(buffer), at: 32)
        let state = LinuxProcessState.forContext(process)
        state.packet = buffer
        state.contextRecord = record
        let program = SocketProgramState(kind: .skReuseport, socket: socket)
        program.socketAddress = socketAddress
        state.socketProgram = program
        process.registers[1] = record.address
    }
}
