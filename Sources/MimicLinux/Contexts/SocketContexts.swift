import MimicCore
import MimicJSON
import MimicMemory

/// What the socket program helpers need to know about the run's context: which struct it is,
/// the socket it stands for, and what helpers changed. Set by the socket and cgroup contexts.
final class SocketProgramState {
    enum Kind: Equatable {
        case skLookup, sockAddr, sockOps, sock, flowDissector, skMsg, skReuseport, netfilter
    }

    let kind: Kind
    let attachType: AttachType?
    /// The socket the context describes (nil: none, e.g. an sk_lookup before a selection).
    var socket: SocketInfo?
    /// The address of the read-only `struct bpf_sock` mapped for `socket`, or 0.
    var socketAddress: UInt64 = 0
    /// Socket options `bpf_setsockopt` set, by (level, optname).
    var socketOptions: [SocketOptionKey: [UInt8]] = [:]
    /// sk_lookup: the selected socket's `bpf_sock` address (0: none) and its cookie.
    var selectedSocket: UInt64 = 0
    var selectedCookie: UInt64 = 0
    /// Flow dissector: whether the dissection runs on an sk_buff (`bpf_skb_load_bytes` reads
    /// it) or, as in `BPF_PROG_TEST_RUN` and `eth_get_headlen`, on bare data (it fails).
    var flowDissectorHasSKB = false
    /// sk_msg: the message and its accessible range.
    var message: SKMessage?
    /// sock_ops: the segment and header option space of the header-option callbacks.
    var tcpHeader: TCPHeaderOptionState?
    /// netfilter: the hook and family (`state->hook`, `state->pf`).
    var netfilterHook: (hook: NetfilterContext.Hook, pf: UInt8)?

    init(kind: Kind, attachType: AttachType? = nil, socket: SocketInfo? = nil) {
        self.kind = kind
        self.attachType = attachType
        self.socket = socket
    }
}

/// A socket option's level and name.
struct SocketOptionKey: Hashable {
    var level: Int32
    var name: Int32
}

extension SocketInfo {
    /// A stable non-zero cookie for the socket this describes (the kernel's come from a counter).
    var cookie: UInt64 { SocketProgramHelpers.cookie(of: bytes) }

    /// Maps `struct bpf_sock` (read-only) for this socket; returns its address.
    func map(into process: MimicCore.Process) throws(SetupError) -> UInt64 {
        guard sourceIPv4.count == 4, destinationIPv4.count == 4, sourceIPv6.count == 16, destinationIPv6.count == 16
        else { throw SetupError.message("socket addresses must be 4 (IPv4) and 16 (IPv6) bytes") }
        do {
            return try process.memory.map(RegionStorage(bytes: bytes), name: "bpf_sock", kind: .readOnly)
        } catch {
            throw .message("cannot map the bpf_sock struct: \(error)")
        }
    }
}

/// Shared readers of the socket contexts' JSON.
enum SocketContextJSON {
    static let inet: UInt32 = 2, inet6: UInt32 = 10

    /// An IPv4 or IPv6 address given as text; nil when absent or empty.
    static func address(_ field: JSONField) throws(ContextError) -> [UInt8]? {
        guard let text = try field.optionalString(), !text.isEmpty else { return nil }
        guard let bytes = IPAddress.v4(text) ?? IPAddress.v6(text) else {
            throw field.error("expected an IPv4 or IPv6 address, got \"\(text)\"")
        }
        return bytes
    }

    /// An IPv4 address given as text, or nil.
    static func ipv4(_ field: JSONField) throws(ContextError) -> [UInt8]? {
        guard let bytes = try address(field) else { return nil }
        guard bytes.count == 4 else { throw field.error("expected an IPv4 address, got an IPv6 one") }
        return bytes
    }

    /// An IPv6 address given as text, or nil.
    static func ipv6(_ field: JSONField) throws(ContextError) -> [UInt8]? {
        guard let bytes = try address(field) else { return nil }
        guard bytes.count == 16 else { throw field.error("expected an IPv6 address, got an IPv4 one") }
        return bytes
    }

    /// The attach type a context names (`"connect4"`, `"cgroup/connect4"`,
    /// `"BPF_CGROUP_INET4_CONNECT"`, `"cgroup_inet4_connect"`), or nil when absent.
    static func attachType(_ field: JSONField) throws(ContextError) -> AttachType? {
        guard let text = try field.optionalString() else { return nil }
        let short = text.hasPrefix("cgroup/") ? String(text.dropFirst(7)) : text
        if let known = shortAttachTypes[short] { return known }
        if let type = AttachType(kernelName: text) { return type }
        throw field.error(
            "unknown attach type \"\(text)\" (e.g. \(shortAttachTypes.keys.sorted().joined(separator: ", ")), or a BPF_* name)"
        )
    }

    /// Attach types by their libbpf section suffix.
    static let shortAttachTypes: [String: AttachType] = [
        "bind4": .cgroupInet4Bind, "bind6": .cgroupInet6Bind, "connect4": .cgroupInet4Connect,
        "connect6": .cgroupInet6Connect, "sendmsg4": .cgroupUdp4Sendmsg, "sendmsg6": .cgroupUdp6Sendmsg,
        "recvmsg4": .cgroupUdp4Recvmsg, "recvmsg6": .cgroupUdp6Recvmsg,
        "getpeername4": .cgroupInet4Getpeername, "getpeername6": .cgroupInet6Getpeername,
        "getsockname4": .cgroupInet4Getsockname, "getsockname6": .cgroupInet6Getsockname,
        "sock_create": .cgroupInetSockCreate, "sock_release": .cgroupInetSockRelease,
        "post_bind4": .cgroupInet4PostBind, "post_bind6": .cgroupInet6PostBind,
    ]

    /// A port as the kernel stores a `__be16` in a u32 field's first two bytes.
    static func networkPort(_ port: UInt16) -> UInt32 { UInt32(port.bigEndian) }
    /// A port as `bpf_sock_ops` and `sk_msg_md` give `remote_port`: the `__be16` shifted into
    /// the upper half on little-endian (`bpf_ntohl(remote_port)` is the port).
    static func shiftedNetworkPort(_ port: UInt16) -> UInt32 { UInt32(port.bigEndian) << 16 }

    static func putAddress(_ bytes: inout [UInt8], _ offset: Int, _ address: [UInt8]?) {
        guard let address else { return }
        bytes.replaceSubrange(offset..<offset + address.count, with: address)
    }

    /// The family of an address: `AF_INET` for 4 bytes, `AF_INET6` for 16.
    static func family(of address: [UInt8]?) -> UInt32? {
        address.map { $0.count == 4 ? inet : inet6 }
    }
}

// MARK: - sk_lookup

/// An `sk_lookup` program's input (JSON type `bpf_sk_lookup`): the connection or datagram whose
/// socket the kernel is looking up. R1 points to a read-only `struct bpf_sk_lookup` (72
/// bytes); `sk` is the socket `bpf_sk_assign` selected (NULL at the start).
///
/// After the run, `SKLookupContext.result(of:)` gives the verdict (`SK_PASS` 1 / `SK_DROP` 0)
/// and the selected socket's cookie, as `BPF_PROG_TEST_RUN` writes it to `ctx_out.cookie`.
public struct SKLookupContext: Context, Sendable {
    public var name: String
    /// `AF_INET` (2) or `AF_INET6` (10).
    public var family: UInt32
    /// `IPPROTO_TCP` (6) or `IPPROTO_UDP` (17).
    public var `protocol`: UInt32
    /// Addresses in network order: 4 bytes for IPv4, 16 for IPv6.
    public var remoteAddress: [UInt8]
    public var localAddress: [UInt8]
    /// Ports in host order.
    public var remotePort: UInt16
    public var localPort: UInt16
    public var ingressIfindex: UInt32

    public init(
        family: UInt32 = 2, protocol: UInt32 = 6, remoteAddress: [UInt8] = [0, 0, 0, 0],
        remotePort: UInt16 = 0, localAddress: [UInt8] = [0, 0, 0, 0], localPort: UInt16 = 0,
        ingressIfindex: UInt32 = 0, name: String = "bpf_sk_lookup"
    ) {
        self.name = name
        self.family = family
        self.protocol = `protocol`
        self.remoteAddress = remoteAddress
        self.localAddress = localAddress
        self.remotePort = remotePort
        self.localPort = localPort
        self.ingressIfindex = ingressIfindex
    }

    /// The layout of `struct bpf_sk_lookup`: every field read-only.
    public static let layout = ContextLayout(
        structName: "bpf_sk_lookup", size: 72,
        fields: [
            ContextField("sk", 0, 8, pointer: true), ContextField("family", 8), ContextField("protocol", 12),
            ContextField("remote_ip4", 16),
        ] + ContextField.words("remote_ip6", 20, count: 4) + [
            ContextField("remote_port", 36), ContextField("local_ip4", 40),
        ] + ContextField.words("local_ip6", 44, count: 4) + [
            ContextField("local_port", 60), ContextField("ingress_ifindex", 64),
        ])

    static let members = [
        "family", "protocol", "remote_ip4", "remote_ip6", "remote_port", "local_ip4", "local_ip6", "local_port",
        "ingress_ifindex",
    ]

    /// Reads the `ctx` of a `bpf_sk_lookup` context file: the C field names, addresses as
    /// text (`"remote_ip4": "10.0.0.1"`, `"local_ip6": "fd00::1"`), ports in host order.
    public init(json ctx: JSONField, name: String) throws(ContextError) {
        try ctx.object(knownMembers: Self.members)
        let remote4 = try SocketContextJSON.ipv4(ctx["remote_ip4"])
        let remote6 = try SocketContextJSON.ipv6(ctx["remote_ip6"])
        let local4 = try SocketContextJSON.ipv4(ctx["local_ip4"])
        let local6 = try SocketContextJSON.ipv6(ctx["local_ip6"])
        let inferred: UInt32 = remote6 != nil || local6 != nil ? SocketContextJSON.inet6 : SocketContextJSON.inet
        let family = try ctx["family"].optionalInteger(UInt32.self) ?? inferred
        guard family == SocketContextJSON.inet || family == SocketContextJSON.inet6 else {
            throw ctx["family"].error("expected 2 (AF_INET) or 10 (AF_INET6), got \(family)")
        }
        if family == SocketContextJSON.inet, remote6 != nil || local6 != nil {
            throw ctx["family"].error("an AF_INET lookup takes remote_ip4 / local_ip4, not IPv6 addresses")
        }
        if family == SocketContextJSON.inet6, remote4 != nil || local4 != nil {
            throw ctx["family"].error("an AF_INET6 lookup takes remote_ip6 / local_ip6, not IPv4 addresses")
        }
        let zero = [UInt8](repeating: 0, count: family == SocketContextJSON.inet ? 4 : 16)
        self.init(
            family: family, protocol: try ctx["protocol"].optionalInteger(UInt32.self) ?? 6,
            remoteAddress: remote4 ?? remote6 ?? zero,
            remotePort: try ctx["remote_port"].optionalInteger(UInt16.self) ?? 0,
            localAddress: local4 ?? local6 ?? zero, localPort: try ctx["local_port"].optionalInteger(UInt16.self) ?? 0,
            ingressIfindex: try ctx["ingress_ifindex"].optionalInteger(UInt32.self) ?? 0, name: name)
    }

    /// The struct's 72 bytes as the program sees them (and as `ctx_in` of the kernel's test run
    /// takes them; the kernel refuses a non-zero `ingress_ifindex` there).
    public var bytes: [UInt8] {
        var b = [UInt8](repeating: 0, count: Self.layout.size)
        put32(&b, 8, family)
        put32(&b, 12, `protocol`)
        if remoteAddress.count == 4 { SocketContextJSON.putAddress(&b, 16, remoteAddress) }
        if remoteAddress.count == 16 { SocketContextJSON.putAddress(&b, 20, remoteAddress) }
        put32(&b, 36, SocketContextJSON.networkPort(remotePort))
        if localAddress.count == 4 { SocketContextJSON.putAddress(&b, 40, localAddress) }
        if localAddress.count == 16 { SocketContextJSON.putAddress(&b, 44, localAddress) }
        put32(&b, 60, UInt32(localPort))
        put32(&b, 64, ingressIfindex)
        return b
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        guard [SocketContextJSON.inet, SocketContextJSON.inet6].contains(family) else {
            throw .message("bpf_sk_lookup family must be AF_INET (2) or AF_INET6 (10), got \(family)")
        }
        let record = try StructContextRecord(layout: Self.layout, bytes: bytes, into: process, kind: .readOnly)
        let state = LinuxProcessState.forContext(process)
        state.contextRecord = record
        state.socketProgram = SocketProgramState(kind: .skLookup)
        process.registers[1] = record.address
    }

    /// The outcome of an sk_lookup run.
    public struct Result: Sendable, Equatable {
        /// R0: `SK_PASS` (1) or `SK_DROP` (0).
        public var returnValue: UInt64
        /// The cookie of the socket `bpf_sk_assign` selected, 0 when none (`ctx_out.cookie`).
        public var selectedCookie: UInt64
    }

    /// The verdict and selection of an exited sk_lookup process; nil for another context.
    public static func result(of process: MimicCore.Process) -> Result? {
        guard case .exited(let value) = process.state, let state = LinuxProcessState.of(process),
            let program = state.socketProgram, program.kind == .skLookup
        else { return nil }
        return Result(returnValue: value, selectedCookie: program.selectedCookie)
    }
}

extension SKLookupContext {
    /// Whether the kernel runs `sk_lookup` for a frame that arrives, and with which context.
    public enum FrameLookup: Sendable {
        /// Looked up: the program runs with this context.
        case lookup(SKLookupContext)
        /// Not looked up (the reason, for messages): the program does not run.
        case notLookedUp(String)
    }

    /// The lookup the kernel makes for an Ethernet frame delivered locally, arriving on
    /// `ingressIfindex`: `inet_lookup_run_sk_lookup` runs from the TCP listener lookup and the
    /// UDP socket lookup, so only an IPv4 or IPv6 TCP connection request (SYN without ACK) or a
    /// UDP datagram to a unicast address is looked up. Up to two VLAN tags are skipped. Not
    /// looked up: other EtherTypes and protocols, other TCP segments (they belong to a
    /// connection), IP fragments (Mimic does not reassemble), IPv6 packets whose next header is
    /// an extension header (not walked), UDP to a multicast or the limited broadcast address
    /// (delivered to every member, without a lookup), and frames cut short before the end of
    /// their TCP or UDP header (the kernel discards them before any lookup). Remote is the
    /// source, local the destination.
    public static func lookup(frame: UnsafeRawBufferPointer, ingressIfindex: UInt32) -> FrameLookup {
        let bytes = frame
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]) }
        var offset = 12
        guard bytes.count >= offset + 2 else { return .notLookedUp("shorter than an Ethernet header") }
        var etherType = u16(offset)
        for _ in 0..<2 where etherType == 0x8100 || etherType == 0x88A8 {
            offset += 4
            guard bytes.count >= offset + 2 else { return .notLookedUp("cut short in its VLAN tag") }
            etherType = u16(offset)
        }
        let network = offset + 2
        let family: UInt32
        let proto: UInt8
        let transport: Int
        let remote: [UInt8]
        let local: [UInt8]
        switch etherType {
        case 0x0800:
            guard bytes.count >= network + 20 else { return .notLookedUp("cut short in its IPv4 header") }
            guard bytes[network] >> 4 == 4 else {
                return .notLookedUp("an IPv4 EtherType with IP version \(bytes[network] >> 4)")
            }
            let headerLength = Int(bytes[network] & 0x0F) * 4
            guard headerLength >= 20, bytes.count >= network + headerLength else {
                return .notLookedUp("an IPv4 header length of \(headerLength) bytes that the frame does not hold")
            }
            guard u16(network + 6) & 0x3FFF == 0 else { return .notLookedUp("an IPv4 fragment (not reassembled)") }
            family = SocketContextJSON.inet
            proto = bytes[network + 9]
            remote = Array(bytes[network + 12..<network + 16])
            local = Array(bytes[network + 16..<network + 20])
            transport = network + headerLength
        case 0x86DD:
            guard bytes.count >= network + 40 else { return .notLookedUp("cut short in its IPv6 header") }
            guard bytes[network] >> 4 == 6 else {
                return .notLookedUp("an IPv6 EtherType with IP version \(bytes[network] >> 4)")
            }
            family = SocketContextJSON.inet6
            proto = bytes[network + 6]
            remote = Array(bytes[network + 8..<network + 24])
            local = Array(bytes[network + 24..<network + 40])
            transport = network + 40
        default:
            return .notLookedUp("EtherType 0x\(String(etherType, radix: 16, uppercase: true)), not IPv4 or IPv6")
        }
        switch proto {
        case 6:
            guard bytes.count >= transport + 20 else { return .notLookedUp("cut short in its TCP header") }
            let flags = bytes[transport + 13]
            let syn: UInt8 = 0x02
            let ack: UInt8 = 0x10
            guard flags & syn != 0, flags & ack == 0 else {
                return .notLookedUp("a TCP segment that is not a connection request (SYN without ACK)")
            }
        case 17:
            guard bytes.count >= transport + 8 else { return .notLookedUp("cut short in its UDP header") }
            let multicast = family == SocketContextJSON.inet ? local[0] >> 4 == 0xE : local[0] == 0xFF
            if multicast || local == [255, 255, 255, 255] {
                return .notLookedUp("UDP to a multicast or broadcast address (delivered without a lookup)")
            }
        default:
            if family == SocketContextJSON.inet6, [0, 43, 44, 50, 51, 60, 135, 139, 140].contains(proto) {
                return .notLookedUp("an IPv6 extension header (\(proto)) before the transport header (not walked)")
            }
            return .notLookedUp("IP protocol \(proto), not TCP or UDP")
        }
        return .lookup(
            SKLookupContext(
                family: family, protocol: UInt32(proto), remoteAddress: remote, remotePort: u16(transport),
                localAddress: local, localPort: u16(transport + 2), ingressIfindex: ingressIfindex))
    }
}

// MARK: - cgroup_sock_addr

/// A `cgroup_sock_addr` program's input (JSON type `bpf_sock_addr`): the address a socket is
/// binding, connecting or sending to (`bind4/6`, `connect4/6`, `sendmsg4/6`, `recvmsg4/6`,
/// `getpeername4/6`, `getsockname4/6`). R1 points to a `struct bpf_sock_addr` (72 bytes) whose
/// writable fields follow the kernel (`sock_addr_is_valid_access`): `user_port` always,
/// `user_ip4` / `user_ip6` for the IPv4 / IPv6 hooks, `msg_src_ip4` / `msg_src_ip6` for
/// `sendmsg4` / `sendmsg6`. What the program rewrote is the address the kernel then uses.
public struct SockAddrContext: Context, Sendable {
    public var name: String
    /// The hook; nil takes the program's (`ContextFit` fills it from the section).
    public var attachType: AttachType?
    /// `user_ip4` / `user_ip6` (network order, 4 or 16 bytes; zeros when nil).
    public var userAddress: [UInt8]?
    /// `user_port`, host order (stored in network order).
    public var userPort: UInt16
    /// `type`: `SOCK_STREAM` (1) or `SOCK_DGRAM` (2); nil gives the hook's (datagram for sendmsg/recvmsg).
    public var socketType: UInt32?
    /// `protocol`; nil gives TCP for stream sockets, UDP for datagram ones.
    public var `protocol`: UInt32?
    /// `msg_src_ip4` / `msg_src_ip6` (sendmsg only).
    public var messageSource: [UInt8]?
    /// The socket (`sk`); nil builds one from the fields above.
    public var socket: SocketInfo?

    public init(
        attachType: AttachType? = nil, userAddress: [UInt8]? = nil, userPort: UInt16 = 0,
        socketType: UInt32? = nil, protocol: UInt32? = nil, messageSource: [UInt8]? = nil,
        socket: SocketInfo? = nil, name: String = "bpf_sock_addr"
    ) {
        self.name = name
        self.attachType = attachType
        self.userAddress = userAddress
        self.userPort = userPort
        self.socketType = socketType
        self.protocol = `protocol`
        self.messageSource = messageSource
        self.socket = socket
    }

    static let inet4Hooks: [AttachType] = [
        .cgroupInet4Bind, .cgroupInet4Connect, .cgroupUdp4Sendmsg, .cgroupUdp4Recvmsg, .cgroupInet4Getpeername,
        .cgroupInet4Getsockname,
    ]
    static let inet6Hooks: [AttachType] = [
        .cgroupInet6Bind, .cgroupInet6Connect, .cgroupUdp6Sendmsg, .cgroupUdp6Recvmsg, .cgroupInet6Getpeername,
        .cgroupInet6Getsockname,
    ]

    /// The layout of `struct bpf_sock_addr` with the fields `attachType` may write.
    public static func layout(for attachType: AttachType) -> ContextLayout {
        let v4 = inet4Hooks.contains(attachType)
        let v6 = inet6Hooks.contains(attachType)
        return ContextLayout(
            structName: "bpf_sock_addr", size: 72,
            fields: [ContextField("user_family", 0), ContextField("user_ip4", 4, writable: v4)]
                + ContextField.words("user_ip6", 8, count: 4, writable: v6) + [
                    ContextField("user_port", 24, writable: true), ContextField("family", 28),
                    ContextField("type", 32), ContextField("protocol", 36),
                    ContextField("msg_src_ip4", 40, writable: attachType == .cgroupUdp4Sendmsg),
                ] + ContextField.words("msg_src_ip6", 44, count: 4, writable: attachType == .cgroupUdp6Sendmsg)
                + [ContextField("sk", 64, 8, pointer: true)])
    }

    /// Reads the `ctx` of a `bpf_sock_addr` context file: `attach_type` (`"connect4"`, ...),
    /// `user_ip` (text), `user_port` (host order), `type`, `protocol`, `msg_src_ip`, `sock`.
    public init(json ctx: JSONField, name: String) throws(ContextError) {
        try ctx.object(knownMembers: ["attach_type", "user_ip", "user_port", "type", "protocol", "msg_src_ip", "sock"])
        let attachType = try SocketContextJSON.attachType(ctx["attach_type"])
        if let attachType, !Self.inet4Hooks.contains(attachType), !Self.inet6Hooks.contains(attachType) {
            throw ctx["attach_type"].error(
                "\(attachType) is not an IPv4 or IPv6 cgroup_sock_addr hook (unix socket hooks are not emulated)")
        }
        self.init(
            attachType: attachType, userAddress: try SocketContextJSON.address(ctx["user_ip"]),
            userPort: try ctx["user_port"].optionalInteger(UInt16.self) ?? 0,
            socketType: try ctx["type"].optionalInteger(UInt32.self),
            protocol: try ctx["protocol"].optionalInteger(UInt32.self),
            messageSource: try SocketContextJSON.address(ctx["msg_src_ip"]),
            socket: ctx["sock"].isMissing ? nil : try SKBContext.socket(ctx["sock"]), name: name)
        if let attachType { try check(attachType, json: ctx) }
    }

    func check(_ attachType: AttachType, json ctx: JSONField? = nil) throws(ContextError) {
        let width = Self.inet4Hooks.contains(attachType) ? 4 : 16
        if let userAddress, userAddress.count != width {
            throw ContextError(
                path: ctx?["user_ip"].path ?? "user_ip",
                "\(attachType) takes an IPv\(width == 4 ? 4 : 6) user_ip")
        }
        if let messageSource {
            guard attachType == .cgroupUdp4Sendmsg || attachType == .cgroupUdp6Sendmsg else {
                throw ContextError(
                    path: ctx?["msg_src_ip"].path ?? "msg_src_ip", "msg_src_ip applies to sendmsg4/6 only")
            }
            guard messageSource.count == width else {
                throw ContextError(
                    path: ctx?["msg_src_ip"].path ?? "msg_src_ip",
                    "\(attachType) takes an IPv\(width == 4 ? 4 : 6) msg_src_ip")
            }
        }
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        guard let attachType else {
            throw .message(
                "a bpf_sock_addr context needs its hook: give \"attach_type\" (connect4, bind6, sendmsg4, ...) or run a program whose section names it"
            )
        }
        do { try check(attachType) } catch { throw .message(error.message) }
        let isV4 = Self.inet4Hooks.contains(attachType)
        let family = isV4 ? SocketContextJSON.inet : SocketContextJSON.inet6
        let datagram = [.cgroupUdp4Sendmsg, .cgroupUdp6Sendmsg, .cgroupUdp4Recvmsg, .cgroupUdp6Recvmsg].contains(
            attachType)
        let type = socketType ?? socket?.type ?? (datagram ? 2 : 1)
        let proto = `protocol` ?? socket?.protocol ?? (type == 2 ? 17 : 6)
        var b = [UInt8](repeating: 0, count: 72)
        put32(&b, 0, family)
        if isV4 {
            SocketContextJSON.putAddress(&b, 4, userAddress)
        } else {
            SocketContextJSON.putAddress(&b, 8, userAddress)
        }
        put32(&b, 24, SocketContextJSON.networkPort(userPort))
        put32(&b, 28, socket?.family ?? family)
        put32(&b, 32, type)
        put32(&b, 36, proto)
        if isV4 {
            SocketContextJSON.putAddress(&b, 40, messageSource)
        } else {
            SocketContextJSON.putAddress(&b, 44, messageSource)
        }
        var sock = socket ?? SocketInfo()
        if socket == nil {
            sock.family = family
            sock.type = type
            sock.protocol = proto
            sock.state = 7 // TCP_CLOSE: not yet connected
        }
        let socketAddress = try sock.map(into: process)
        put64(&b, 64, socketAddress)
        let record = try StructContextRecord(layout: Self.layout(for: attachType), bytes: b, into: process)
        let state = LinuxProcessState.forContext(process)
        state.contextRecord = record
        let program = SocketProgramState(kind: .sockAddr, attachType: attachType, socket: sock)
        program.socketAddress = socketAddress
        state.socketProgram = program
        process.registers[1] = record.address
    }
}

// MARK: - sock_ops

/// A `sock_ops` program's input (JSON type `bpf_sock_ops`): one TCP event (`op`) on a socket.
/// R1 points to a `struct bpf_sock_ops` (216 bytes) whose fields are given by their C names;
/// the program may write `reply` / `replylong[0..3]` (the same words as `args`) and
/// `sk_txhash`, and call `bpf_sock_ops_cb_flags_set`, `bpf_setsockopt` and `bpf_getsockopt`,
/// which are recorded (`LinuxProcessState.socketEffects`).
public struct SockOpsContext: Context, Sendable {
    public var name: String
    /// Field values by C name (`op`, `family`, `snd_cwnd`, `bytes_acked`, ...), except the
    /// addresses and ports below.
    public var fields: [String: UInt64]
    public var remoteAddress: [UInt8]?
    public var localAddress: [UInt8]?
    public var remotePort: UInt16
    public var localPort: UInt16
    /// The TCP segment of the callback, from its TCP header (JSON `skb`): `skb_data` points to
    /// it; nil: none (`skb_data` NULL). See `attach(to:)` for where `skb_data_end` points.
    public var segment: [UInt8]?
    /// The SYN's TCP header (JSON `syn`), which `bpf_load_hdr_opt` with
    /// `BPF_LOAD_HDR_OPT_TCP_SYN` searches; nil: no SYN saved (`-ENOENT`).
    public var syn: [UInt8]?
    /// The kernel's `remaining_opt_len` (JSON `remaining_opt_len`): the header option space left
    /// in `HDR_OPT_LEN_CB` (default 40 minus the options of `segment`'s header), the space
    /// reserved in `WRITE_HDR_OPT_CB` (default `args[1]`, which defaults to it).
    public var remainingOptionLength: UInt32?

    public init(
        fields: [String: UInt64] = [:], remoteAddress: [UInt8]? = nil, remotePort: UInt16 = 0,
        localAddress: [UInt8]? = nil, localPort: UInt16 = 0, segment: [UInt8]? = nil, syn: [UInt8]? = nil,
        remainingOptionLength: UInt32? = nil, name: String = "bpf_sock_ops"
    ) {
        self.name = name
        self.fields = fields
        self.remoteAddress = remoteAddress
        self.localAddress = localAddress
        self.remotePort = remotePort
        self.localPort = localPort
        self.segment = segment
        self.syn = syn
        self.remainingOptionLength = remainingOptionLength
    }

    /// `BPF_SOCK_OPS_*` callbacks by name, `op`'s values.
    public static let operations = [
        "VOID", "TIMEOUT_INIT", "RWND_INIT", "TCP_CONNECT_CB", "ACTIVE_ESTABLISHED_CB", "PASSIVE_ESTABLISHED_CB",
        "NEEDS_ECN", "BASE_RTT", "RTO_CB", "RETRANS_CB", "STATE_CB", "TCP_LISTEN_CB", "RTT_CB", "PARSE_HDR_OPT_CB",
        "HDR_OPT_LEN_CB", "WRITE_HDR_OPT_CB",
    ]

    static let counters = [
        "is_fullsock", "snd_cwnd", "srtt_us", "bpf_sock_ops_cb_flags", "state", "rtt_min", "snd_ssthresh", "rcv_nxt",
        "snd_nxt", "snd_una", "mss_cache", "ecn_flags", "rate_delivered", "rate_interval_us", "packets_out",
        "retrans_out", "total_retrans", "segs_in", "data_segs_in", "segs_out", "data_segs_out", "lost_out",
        "sacked_out", "sk_txhash",
    ]

    /// The layout of `struct bpf_sock_ops` (`sock_ops_is_valid_access`: `reply`, `replylong`
    /// and `sk_txhash` writable).
    public static let layout = ContextLayout(
        structName: "bpf_sock_ops", size: 216,
        fields: [ContextField("op", 0), ContextField("reply", 4, writable: true)]
            + (1..<4).map { ContextField("replylong[\($0)]", 4 + 4 * $0, writable: true) } + [
                ContextField("family", 20), ContextField("remote_ip4", 24), ContextField("local_ip4", 28),
            ] + ContextField.words("remote_ip6", 32, count: 4) + ContextField.words("local_ip6", 48, count: 4)
            + [ContextField("remote_port", 64), ContextField("local_port", 68)]
            + counters.enumerated().map { ContextField($1, 72 + 4 * $0, writable: $1 == "sk_txhash") } + [
                ContextField("bytes_received", 168, 8), ContextField("bytes_acked", 176, 8),
                ContextField("sk", 184, 8, pointer: true), ContextField("skb_data", 192, 8, pointer: true),
                ContextField("skb_data_end", 200, 8, pointer: true), ContextField("skb_len", 208),
                ContextField("skb_tcp_flags", 212),
            ])

    /// Reads the `ctx` of a `bpf_sock_ops` context file: `op` (a number or a name such as
    /// `"TCP_CONNECT_CB"` / `"BPF_SOCK_OPS_TCP_CONNECT_CB"`), `args` (up to 4 u32), `family`,
    /// `remote_ip` / `local_ip` (text), `remote_port` / `local_port` (host order), and the
    /// counters by C name (`snd_cwnd`, `srtt_us`, `state`, `bytes_acked`, ...).
    public init(json ctx: JSONField, name: String) throws(ContextError) {
        let scalars = Self.counters + ["bytes_received", "bytes_acked", "skb_len", "skb_tcp_flags"]
        try ctx.object(
            knownMembers: [
                "op", "args", "family", "remote_ip", "local_ip", "remote_port", "local_port", "skb", "syn",
                "remaining_opt_len",
            ] + scalars)
        var fields: [String: UInt64] = [:]
        let op = ctx["op"]
        if let text = try? op.string() {
            let short = text.hasPrefix("BPF_SOCK_OPS_") ? String(text.dropFirst(13)) : text
            guard let index = Self.operations.firstIndex(of: short) else {
                throw op.error(
                    "unknown sock_ops operation \"\(text)\" (known: \(Self.operations.joined(separator: ", ")))")
            }
            fields["op"] = UInt64(index)
        } else if let value = try op.optionalInteger(UInt32.self) {
            fields["op"] = UInt64(value)
        }
        let args = try ctx["args"].optionalElements()
        guard args.count <= 4 else { throw ctx["args"].error("bpf_sock_ops has 4 args, got \(args.count)") }
        for (i, arg) in args.enumerated() {
            fields[i == 0 ? "reply" : "replylong[\(i)]"] = UInt64(try arg.integer(UInt32.self))
        }
        for key in scalars {
            let wide = key.hasPrefix("bytes_")
            if wide, let value = try ctx[key].optionalInteger(UInt64.self) { fields[key] = value }
            if !wide, let value = try ctx[key].optionalInteger(UInt32.self) { fields[key] = UInt64(value) }
        }
        let remote = try SocketContextJSON.address(ctx["remote_ip"])
        let local = try SocketContextJSON.address(ctx["local_ip"])
        if let remote, let local, remote.count != local.count {
            throw ctx["local_ip"].error("remote_ip and local_ip must be of one family")
        }
        let family =
            try ctx["family"].optionalInteger(UInt32.self) ?? SocketContextJSON.family(of: remote ?? local) ?? 2
        fields["family"] = UInt64(family)
        if fields["is_fullsock"] == nil { fields["is_fullsock"] = 1 }
        let segment = ctx["skb"].isMissing ? nil : try ctx["skb"].optionalBase64(limit: 65536)
        let syn = ctx["syn"].isMissing ? nil : try ctx["syn"].optionalBase64(limit: 60)
        for (field, bytes) in [("skb", segment), ("syn", syn)] {
            guard let bytes else { continue }
            guard bytes.count >= 20, Int(bytes[12] >> 4) * 4 >= 20, Int(bytes[12] >> 4) * 4 <= bytes.count else {
                throw ctx[field].error(
                    "expected a TCP header (at least 20 bytes, its data offset within them), got \(bytes.count) bytes")
            }
        }
        self.init(
            fields: fields, remoteAddress: remote, remotePort: try ctx["remote_port"].optionalInteger(UInt16.self) ?? 0,
            localAddress: local, localPort: try ctx["local_port"].optionalInteger(UInt16.self) ?? 0,
            segment: segment, syn: syn,
            remainingOptionLength: try ctx["remaining_opt_len"].optionalInteger(UInt32.self),
            name: name)
    }

    /// What the header-option callbacks leave for the kernel: the space reserved
    /// (`HDR_OPT_LEN_CB`) and the header with the options written (`WRITE_HDR_OPT_CB`).
    public struct HeaderOptions: Sendable, Equatable {
        /// `remaining_opt_len` after the run.
        public var remainingOptionLength: UInt32
        /// `HDR_OPT_LEN_CB`: the option space the kernel adds to the header
        /// (`bpf_skops_hdr_opt_len`: what was reserved, rounded up to 4 bytes; 0 when the program
        /// did not return 1). 0 for other callbacks.
        public var reserved: UInt32
        /// `WRITE_HDR_OPT_CB`: the bytes the program wrote (0 when it did not return 1: the kernel
        /// then discards them).
        public var written: UInt32
        /// The segment as the kernel sends it (`WRITE_HDR_OPT_CB`: the reserved space after the
        /// written options filled with NOPs, `bpf_skops_write_hdr_opt`), or as it was given.
        public var segment: [UInt8]
    }

    /// The header-option result of a finished run of a `bpf_sock_ops` context with R0
    /// `returnValue`; nil for other contexts.
    public static func headerOptions(of process: MimicCore.Process, returnValue: UInt64) -> HeaderOptions? {
        guard let header = LinuxProcessState.of(process)?.socketProgram?.tcpHeader else { return nil }
        // BPF_CGROUP_RUN_PROG_SOCK_OPS: an even return value is -EPERM.
        let failed = returnValue & 1 == 0
        var result = HeaderOptions(
            remainingOptionLength: header.remaining, reserved: 0, written: 0, segment: header.bytes)
        switch header.op {
        case TCPHeaderOptionHelpers.headerOptionLengthCallback:
            let taken = header.initialRemaining - header.remaining
            if !failed, taken > 0 { result.reserved = (taken + 3) & ~3 }
        case TCPHeaderOptionHelpers.writeHeaderOptionCallback:
            let written = failed ? 0 : Int(header.initialRemaining - header.remaining)
            result.written = UInt32(written)
            let start = header.firstOptionOffset + written
            let end = header.firstOptionOffset + Int(header.initialRemaining)
            if start < end, end <= result.segment.count {
                result.segment.replaceSubrange(start..<end, with: [UInt8](repeating: 1, count: end - start))
            }
        default: break
        }
        return result
    }

    /// The socket the event is about, as `struct bpf_sock` shows it.
    var socket: SocketInfo {
        var s = SocketInfo()
        s.family = UInt32(fields["family"] ?? 2)
        s.type = 1
        s.protocol = 6
        s.state = UInt32(fields["state"] ?? 0)
        if let localAddress, localAddress.count == 4 { s.sourceIPv4 = localAddress }
        if let localAddress, localAddress.count == 16 { s.sourceIPv6 = localAddress }
        if let remoteAddress, remoteAddress.count == 4 { s.destinationIPv4 = remoteAddress }
        if let remoteAddress, remoteAddress.count == 16 { s.destinationIPv6 = remoteAddress }
        s.sourcePort = localPort
        s.destinationPort = remotePort
        return s
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        var b = [UInt8](repeating: 0, count: Self.layout.size)
        for field in Self.layout.fields where !field.isPointer {
            guard let value = fields[field.name] else { continue }
            for i in 0..<field.size { b[field.offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
        }
        if let remoteAddress { SocketContextJSON.putAddress(&b, remoteAddress.count == 4 ? 24 : 32, remoteAddress) }
        if let localAddress { SocketContextJSON.putAddress(&b, localAddress.count == 4 ? 28 : 48, localAddress) }
        put32(&b, 64, SocketContextJSON.shiftedNetworkPort(remotePort))
        put32(&b, 68, UInt32(localPort))
        let sock = socket
        let socketAddress = try sock.map(into: process)
        put64(&b, 184, socketAddress)
        let header = try mapSegment(into: process, context: &b)
        let record = try StructContextRecord(layout: Self.layout, bytes: b, into: process)
        let state = LinuxProcessState.forContext(process)
        state.contextRecord = record
        let program = SocketProgramState(kind: .sockOps, socket: sock)
        program.socketAddress = socketAddress
        program.tcpHeader = header
        state.socketProgram = program
        process.registers[1] = record.address
    }

    /// Maps `segment` (read-only) and sets `skb_data`, `skb_data_end`, and unless given
    /// `skb_len` (the segment's length) and `skb_tcp_flags` (its header's flags byte), as
    /// `bpf_skops_init_skb` does for the callback: `skb_data_end` at the end of the TCP header
    /// (`tcp_hdrlen`), except in `HDR_OPT_LEN_CB` (at `skb_data`: the header is not written
    /// yet) and `WRITE_HDR_OPT_CB` (where the reserved space starts: the header length minus
    /// `remaining_opt_len`). In `WRITE_HDR_OPT_CB` `args[1]` is the reserved space, as the kernel
    /// sets it.
    func mapSegment(into process: MimicCore.Process, context b: inout [UInt8]) throws(SetupError)
        -> TCPHeaderOptionState
    {
        let op = UInt32(fields["op"] ?? 0)
        let headerLength = segment.map { $0.count >= 20 ? Int($0[12] >> 4) * 4 : 0 } ?? 0
        var remaining: UInt32 = 0
        switch op {
        case TCPHeaderOptionHelpers.headerOptionLengthCallback:
            remaining = remainingOptionLength ?? UInt32(40 - max(0, min(40, headerLength - 20)))
        case TCPHeaderOptionHelpers.writeHeaderOptionCallback:
            remaining = remainingOptionLength ?? UInt32(fields["replylong[1]"] ?? 0)
            if fields["replylong[1]"] == nil { put32(&b, 8, remaining) }
        default:
            remaining = remainingOptionLength ?? 0
        }
        guard let segment else {
            return TCPHeaderOptionState(
                op: op, storage: nil, address: 0, end: 0, remaining: remaining, firstOptionOffset: 0, syn: syn)
        }
        guard segment.count >= 20, headerLength >= 20, headerLength <= segment.count else {
            throw .message(
                "bpf_sock_ops skb: expected a TCP header (at least 20 bytes, its data offset within them), got \(segment.count) bytes"
            )
        }
        var end = headerLength
        if op == TCPHeaderOptionHelpers.headerOptionLengthCallback { end = 0 }
        if op == TCPHeaderOptionHelpers.writeHeaderOptionCallback {
            guard Int(remaining) <= headerLength - 20 else {
                throw .message(
                    "bpf_sock_ops: \(remaining) bytes of reserved option space do not fit the header's \(headerLength - 20) bytes of options"
                )
            }
            end = headerLength - Int(remaining)
        }
        let storage = RegionStorage(bytes: segment)
        let address: UInt64
        do {
            address = try process.memory.map(storage, name: "tcp segment (skb_data)", kind: .readOnly)
        } catch {
            throw .message("cannot map the sock_ops segment: \(error)")
        }
        put64(&b, 192, address)
        put64(&b, 200, address &+ UInt64(end))
        if fields["skb_len"] == nil { put32(&b, 208, UInt32(segment.count)) }
        if fields["skb_tcp_flags"] == nil { put32(&b, 212, UInt32(segment[13])) }
        return TCPHeaderOptionState(
            op: op, storage: storage, address: address, end: end, remaining: remaining, firstOptionOffset: end,
            syn: syn)
    }
}

// MARK: - cgroup_sock

/// A `cgroup_sock` program's input (JSON type `bpf_sock`): a socket being created, released or
/// bound (`sock_create`, `sock_release`, `post_bind4`, `post_bind6`). R1 points to a
/// `struct bpf_sock` (80 bytes); `sock_create` and `sock_release` programs may write
/// `bound_dev_if`, `mark` and `priority` (`sock_filter_is_valid_access`), the others nothing.
public struct SockContext: Context, Sendable {
    public var name: String
    public var attachType: AttachType?
    public var socket: SocketInfo

    public init(socket: SocketInfo, attachType: AttachType? = nil, name: String = "bpf_sock") {
        self.name = name
        self.socket = socket
        self.attachType = attachType
    }

    static let hooks: [AttachType] = [
        .cgroupInetSockCreate, .cgroupInetSockRelease, .cgroupInet4PostBind, .cgroupInet6PostBind,
    ]

    /// The layout of `struct bpf_sock` with the fields `attachType` may write.
    public static func layout(for attachType: AttachType) -> ContextLayout {
        let settable = attachType == .cgroupInetSockCreate || attachType == .cgroupInetSockRelease
        return ContextLayout(
            structName: "bpf_sock", size: 80,
            fields: [
                ContextField("bound_dev_if", 0, writable: settable), ContextField("family", 4), ContextField("type", 8),
                ContextField("protocol", 12), ContextField("mark", 16, writable: settable),
                ContextField("priority", 20, writable: settable), ContextField("src_ip4", 24),
            ] + ContextField.words("src_ip6", 28, count: 4) + [
                ContextField("src_port", 44), ContextField("dst_port", 48), ContextField("dst_ip4", 52),
            ] + ContextField.words("dst_ip6", 56, count: 4) + [
                ContextField("state", 72), ContextField("rx_queue_mapping", 76),
            ])
    }

    /// Reads the `ctx` of a `bpf_sock` context file: `attach_type` (`"sock_create"`,
    /// `"post_bind4"`, ...) and the socket's members as in an sk_buff's `sock` (`family`,
    /// `sockType`, `protocol`, `mark`, `priority`, `boundDevIF`, `srcIP4`, `srcPort`, ...).
    public init(json ctx: JSONField, name: String) throws(ContextError) {
        try ctx.object(knownMembers: ["attach_type", "sock"])
        let attachType = try SocketContextJSON.attachType(ctx["attach_type"])
        if let attachType, !Self.hooks.contains(attachType) {
            throw ctx["attach_type"].error(
                "\(attachType) is not a cgroup_sock hook (sock_create, sock_release, post_bind4, post_bind6)")
        }
        let socket = ctx["sock"].isMissing ? SocketInfo() : try SKBContext.socket(ctx["sock"])
        self.init(socket: socket, attachType: attachType, name: name)
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        guard let attachType else {
            throw .message(
                "a bpf_sock context needs its hook: give \"attach_type\" (sock_create, post_bind4, ...) or run a program whose section names it"
            )
        }
        let record = try StructContextRecord(layout: Self.layout(for: attachType), bytes: socket.bytes, into: process)
        let state = LinuxProcessState.forContext(process)
        state.contextRecord = record
        let program = SocketProgramState(kind: .sock, attachType: attachType, socket: socket)
        program.socketAddress = record.address
        state.socketProgram = program
        process.registers[1] = record.address
    }
}
