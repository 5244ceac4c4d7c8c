import MimicCore
import MimicMemory

/// The socket lookups of tc and XDP programs and what a program does with their result, against
/// the network's `sockets` (`net/core/filter.c` of Linux 6.18):
///
/// - `HelperID.skLookupTcp`, `HelperID.skLookupUdp`, `HelperID.skcLookupTcp`: a 4-tuple from the
///   packet's point of view (source = the remote end). TCP finds an established socket with that
///   exact tuple first, then a listener on the destination address and then on the wildcard
///   address; UDP takes the best-scoring socket (connected peers, bound device and family score,
///   as `compute_score` does). A tuple whose length is neither 12 nor 36, any flag, or a netns id
///   other than the current namespace (`BPF_F_CURRENT_NETNS`, any negative s32) finds nothing.
///   Each socket found is a reference the program holds.
/// - `HelperID.skRelease`: gives a reference back. A run that exits still holding one fails
///   (`unreleasedReference`), as the verifier refuses such a program; releasing what the program
///   does not hold is a helper failure (the verifier refuses that too).
/// - `HelperID.skFullsock`, `HelperID.tcpSock`, `HelperID.getListenerSock`: by the socket's state.
/// - `HelperID.skcToTcpSock` and the other `bpf_skc_to_*` casts: NULL or not as the kernel
///   decides; the struct behind the pointer is not emulated (`cast`).
///
/// A socket is a read-only `struct bpf_sock` (80 bytes, the UAPI layout) mapped once per run;
/// `bpf_tcp_sock` gives a read-only `struct bpf_tcp_sock` (112 bytes) of the socket's `tcp` values.
enum SocketHelpers {
    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let network = emulator.networkState
        return [
            // struct bpf_sock *bpf_sk_lookup_tcp(void *ctx, struct bpf_sock_tuple *tuple, u32 tuple_size, u64 netns, u64 flags)
            LinuxHelper.make(.skLookupTcp) { call throws(HelperFailure) in
                try lookup(call, network, transport: .tcp, full: true)
            },
            // struct bpf_sock *bpf_sk_lookup_udp(void *ctx, struct bpf_sock_tuple *tuple, u32 tuple_size, u64 netns, u64 flags)
            LinuxHelper.make(.skLookupUdp) { call throws(HelperFailure) in
                try lookup(call, network, transport: .udp, full: true)
            },
            // struct bpf_sock *bpf_skc_lookup_tcp(void *ctx, struct bpf_sock_tuple *tuple, u32 tuple_size, u64 netns, u64 flags)
            LinuxHelper.make(.skcLookupTcp) { call throws(HelperFailure) in
                try lookup(call, network, transport: .tcp, full: false)
            },
            // long bpf_sk_release(void *sock)
            LinuxHelper.make(.skRelease) { call throws(HelperFailure) in
                let state = try call.linuxState()
                let address = call.arg(1)
                let references = state.sockets ?? SocketReferences()
                let owner = references.tcpOwner[address] ?? address
                guard let count = references.held[owner], count > 0 else {
                    throw .message(
                        "r1 (0x\(String(address, radix: 16))) is not a socket reference the program holds; the kernel's verifier refuses releasing it"
                    )
                }
                references.held[owner] = count - 1
                return 0
            },
            // struct bpf_sock *bpf_sk_fullsock(struct bpf_sock *sk)
            LinuxHelper.make(.skFullsock) { call throws(HelperFailure) in
                let (state, _) = try describe(call, network)
                return state == 6 || state == 12 ? 0 : call.arg(1) // time-wait and request sockets are not full
            },
            // struct bpf_tcp_sock *bpf_tcp_sock(struct bpf_sock *sk)
            LinuxHelper.make(.tcpSock) { call throws(HelperFailure) in
                let (state, socket) = try describe(call, network)
                let bytes = try call.read(call.arg(1), count: 16)
                guard get32(bytes, 12) == 6, get32(bytes, 8) == 1, state != 6, state != 12 else { return 0 }
                guard let socket else {
                    throw .unsupported(
                        "\(call.name) on a socket the network description does not list (the context's own socket has no TCP state); describe it under \"sockets\" in --net"
                    )
                }
                return try tcpAddress(call, network, socket)
            },
            // struct tcp_sock *bpf_skc_to_tcp_sock(void *sk), and the other casts
            LinuxHelper.make(.skcToTcpSock) { call throws(HelperFailure) in try cast(call, network, "tcp_sock") },
            LinuxHelper.make(.skcToTcp6Sock) { call throws(HelperFailure) in try cast(call, network, "tcp6_sock") },
            LinuxHelper.make(.skcToTcpTimewaitSock) { call throws(HelperFailure) in
                try cast(call, network, "tcp_timewait_sock")
            },
            LinuxHelper.make(.skcToTcpRequestSock) { call throws(HelperFailure) in
                try cast(call, network, "tcp_request_sock")
            },
            LinuxHelper.make(.skcToUdp6Sock) { call throws(HelperFailure) in try cast(call, network, "udp6_sock") },
            LinuxHelper.make(.skcToUnixSock) { call throws(HelperFailure) in try cast(call, network, "unix_sock") },
            LinuxHelper.make(.skcToMptcpSock) { call throws(HelperFailure) in try cast(call, network, "mptcp_sock") },
            // struct bpf_sock *bpf_get_listener_sock(struct bpf_sock *sk)
            LinuxHelper.make(.getListenerSock) { call throws(HelperFailure) in
                let (state, _) = try describe(call, network)
                let bytes = try call.read(call.arg(1), count: 16)
                // A TCP listener (SOCK_RCU_FREE); request sockets are not modelled.
                return state == 10 && get32(bytes, 12) == 6 ? call.arg(1) : 0
            },
        ]
    }

    /// `bpf_skc_to_*`: the socket as the kernel struct `type` when it is one (by state, protocol,
    /// type and family, as the kernel decides; an MPTCP socket never, Mimic has no subflows), else
    /// NULL. The kernel returns a pointer to its own struct, laid out by its BTF, which Mimic does
    /// not emulate: the pointer is to an empty region named after the struct, so a program can
    /// test it and release the socket through it, and any field read fails naming the struct.
    static func cast(_ call: HelperCall, _ network: NetworkState, _ type: String) throws(HelperFailure) -> UInt64 {
        let address = call.arg(1)
        guard address != 0 else { return 0 }
        let (state, _) = try describe(call, network)
        let owner = call.state?.sockets?.tcpOwner[address] ?? address
        let bytes = try call.read(owner, count: 16)
        let (family, sockType, proto) = (get32(bytes, 4), get32(bytes, 8), get32(bytes, 12))
        let full = state != 6 && state != 12
        let matches: Bool =
            switch type {
            case "tcp_sock": full && proto == 6
            case "tcp6_sock": full && proto == 6 && family == 10
            case "tcp_timewait_sock": proto == 6 && state == 6
            case "tcp_request_sock": proto == 6 && state == 12
            case "udp6_sock": full && proto == 17 && sockType == 2 && family == 10
            case "unix_sock": full && family == 1
            default: false
            }
        guard matches else { return 0 }
        let cast: UInt64
        do {
            cast = try call.process.memory.map(
                RegionStorage(count: 0), name: "struct \(type) (the kernel's layout is not emulated)", kind: .readOnly)
        } catch {
            throw .message("cannot map a struct \(type) stand-in: \(error)")
        }
        try Self.references(call, network).tcpOwner[cast] = owner
        return cast
    }

    /// The state of the socket at r1 and, when it is one of the network's sockets (or its
    /// `bpf_tcp_sock`), its index.
    static func describe(_ call: HelperCall, _ network: NetworkState) throws(HelperFailure) -> (UInt32, Int?) {
        try network.requireValid(call)
        let address = call.arg(1)
        let references = call.state?.sockets
        let owner = references?.tcpOwner[address] ?? address
        if let index = references?.socketAt[owner] { return (network.network.sockets[index].state.value, index) }
        let bytes = try call.read(owner, count: 80)
        return (get32(bytes, 72), nil)
    }

    static func references(_ call: HelperCall, _ network: NetworkState) throws(HelperFailure) -> SocketReferences {
        let state = try call.linuxState()
        if let existing = state.sockets { return existing }
        let created = SocketReferences()
        state.sockets = created
        let previous = call.process.exitCheck  // another kind of reference's check (conntrack)
        call.process.exitCheck = { process in
            LinuxProcessState.of(process)?.sockets?.unreleased(in: network.network) ?? previous?(process)
        }
        return created
    }

    static func lookup(
        _ call: HelperCall, _ network: NetworkState, transport: Network.Socket.TransportProtocol, full: Bool
    ) throws(HelperFailure) -> UInt64 {
        try network.requireValid(call)
        guard let kind = call.state?.packet?.kind else {
            throw .message("\(call.name) needs a packet context (xdp_md or sk_buff); the process has none")
        }
        let buffer = try call.packet(kind)
        let family: Int
        switch call.arg32(3) {
        case 12: family = 4
        case 36: family = 6
        default: return 0
        }
        let netns = call.arg(4)
        guard call.arg(5) == 0 else { return 0 }
        let low = Int32(truncatingIfNeeded: netns)
        // XDP takes a u32 netns; sk_buff programs a u64 that must fit an s32 id or be negative.
        if kind == .skb, !(low < 0 || netns <= UInt64(Int32.max)) { return 0 }
        guard low < 0 else { return 0 } // another namespace's id: the network has no peers
        let tuple = try call.read(call.arg(2), count: family == 4 ? 12 : 36)
        let width = family == 4 ? 4 : 16
        let source = Array(tuple[0..<width])
        let destination = Array(tuple[width..<2 * width])
        let sourcePort = UInt16(tuple[2 * width]) << 8 | UInt16(tuple[2 * width + 1])
        let destinationPort = UInt16(tuple[2 * width + 2]) << 8 | UInt16(tuple[2 * width + 3])
        let current =
            kind == .xdp ? buffer.loadU32(at: NetworkHelpers.xdpIngressIfindex) : buffer.loadU32(at: SKBLayout.ifindex)
        let device = current == 0 ? 1 : current
        let found = SocketTable.find(
            network.network.sockets, transport: transport, family: family, source: source, sourcePort: sourcePort,
            destination: destination, destinationPort: destinationPort, device: device, full: full)
        guard let found else { return 0 }
        let references = try references(call, network)
        let address = try sockAddress(call, network, found, references)
        references.held[address, default: 0] += 1
        return address
    }

    /// The run's `struct bpf_sock` of socket `index`, mapped on first use.
    static func sockAddress(
        _ call: HelperCall, _ network: NetworkState, _ index: Int, _ references: SocketReferences
    ) throws(HelperFailure) -> UInt64 {
        if let address = references.sockAddresses[index] { return address }
        let socket = network.network.sockets[index]
        let address: UInt64
        do {
            address = try call.process.memory.map(
                RegionStorage(bytes: sockBytes(socket)),
                name: "bpf_sock \(Network.endpointText(socket.localAddress, socket.localPort))", kind: .readOnly)
        } catch {
            throw .message("cannot map a socket's struct bpf_sock: \(error)")
        }
        references.sockAddresses[index] = address
        references.socketAt[address] = index
        return address
    }

    static func tcpAddress(_ call: HelperCall, _ network: NetworkState, _ index: Int) throws(HelperFailure) -> UInt64 {
        let references = try references(call, network)
        if let address = references.tcpAddresses[index] { return address }
        let socket = network.network.sockets[index]
        var bytes = [UInt8](repeating: 0, count: TCPSockLayout.size)
        for field in TCPSockLayout.fields {
            let value = socket.tcp[field.name] ?? 0
            if field.size == 8 {
                put64(&bytes, field.offset, value)
            } else {
                put32(&bytes, field.offset, UInt32(truncatingIfNeeded: value))
            }
        }
        let address: UInt64
        do {
            address = try call.process.memory.map(RegionStorage(bytes: bytes), name: "bpf_tcp_sock", kind: .readOnly)
        } catch {
            throw .message("cannot map a socket's struct bpf_tcp_sock: \(error)")
        }
        references.tcpAddresses[index] = address
        if let sock = references.sockAddresses[index] { references.tcpOwner[address] = sock }
        return address
    }

    /// `struct bpf_sock` of a network socket (the UAPI layout, 80 bytes): an IPv6 socket's
    /// `src_ip4` / `dst_ip4` are 127.0.0.6 (`LOOPBACK4_IPV6`) when its address is set, as
    /// `inet6_bind` and `tcp_v6_connect` leave them; a connected IPv4 TCP socket's IPv6 fields
    /// hold its addresses v4-mapped (compared with the kernel: NetworkNamespaceTests).
    static func sockBytes(_ socket: Network.Socket) -> [UInt8] {
        var info = SocketInfo()
        info.boundDeviceIndex = socket.boundIfindex
        info.family = socket.family == 4 ? 2 : 10
        info.type = socket.transport == .tcp ? 1 : 2
        info.protocol = socket.transport == .tcp ? 6 : 17
        info.mark = socket.mark
        info.priority = socket.priority
        let zero4: [UInt8] = [0, 0, 0, 0]
        let loopback6: [UInt8] = [127, 0, 0, 6]
        if socket.family == 4 {
            info.sourceIPv4 = socket.localAddress
            info.destinationIPv4 = socket.remoteAddress
            if socket.transport == .tcp, socket.state != .listen {
                // tcp_v4_connect and tcp_v4_syn_recv_sock set the addresses with sk_daddr_set /
                // sk_rcv_saddr_set, which also store them v4-mapped in the IPv6 fields.
                let mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]
                info.sourceIPv6 = mapped + socket.localAddress
                info.destinationIPv6 = mapped + socket.remoteAddress
            }
        } else {
            info.sourceIPv6 = socket.localAddress
            info.destinationIPv6 = socket.remoteAddress
            info.sourceIPv4 = socket.localAddress.allSatisfy { $0 == 0 } ? zero4 : loopback6
            info.destinationIPv4 = socket.remoteAddress.allSatisfy { $0 == 0 } ? zero4 : loopback6
        }
        info.sourcePort = socket.localPort
        info.destinationPort = socket.remotePort
        info.state = socket.state.value
        info.rxQueueMapping = -1
        return info.bytes
    }
}

/// `struct bpf_tcp_sock` (UAPI, 112 bytes): field names, offsets and sizes.
enum TCPSockLayout {
    static let size = 112
    static let fields: [(name: String, offset: Int, size: Int)] = {
        let names32 = [
            "snd_cwnd", "srtt_us", "rtt_min", "snd_ssthresh", "rcv_nxt", "snd_nxt", "snd_una", "mss_cache",
            "ecn_flags", "rate_delivered", "rate_interval_us", "packets_out", "retrans_out", "total_retrans",
            "segs_in", "data_segs_in", "segs_out", "data_segs_out", "lost_out", "sacked_out",
        ]
        var fields = names32.enumerated().map { (name: $1, offset: 4 * $0, size: 4) }
        fields += [("bytes_received", 80, 8), ("bytes_acked", 88, 8)]
        fields += ["dsack_dups", "delivered", "delivered_ce", "icsk_retransmits"].enumerated().map {
            (name: $1, offset: 96 + 4 * $0, size: 4)
        }
        return fields
    }()
    static let offsets: [String: Int] = Dictionary(uniqueKeysWithValues: fields.map { ($0.name, $0.offset) })
}

/// How the kernel's socket tables answer a lookup (`__inet_lookup`, `__udp4_lib_lookup`, and
/// their IPv6 counterparts), over the network's sockets.
enum SocketTable {
    /// The index of the socket a packet from `source`:`sourcePort` to
    /// `destination`:`destinationPort` arriving on `device` belongs to, or nil.
    static func find(
        _ sockets: [Network.Socket], transport: Network.Socket.TransportProtocol, family: Int, source: [UInt8],
        sourcePort: UInt16, destination: [UInt8], destinationPort: UInt16, device: UInt32, full: Bool
    ) -> Int? {
        func deviceMatches(_ socket: Network.Socket) -> Bool {
            socket.boundIfindex == 0 || socket.boundIfindex == device
        }
        let wildcard = [UInt8](repeating: 0, count: destination.count)
        if transport == .tcp {
            // Established (and time-wait, request) sockets: the exact 4-tuple.
            if let index = sockets.indices.first(where: { i in
                let s = sockets[i]
                return s.transport == .tcp && s.state != .listen && s.family == family && s.localAddress == destination
                    && s.localPort == destinationPort && s.remoteAddress == source && s.remotePort == sourcePort
                    && deviceMatches(s)
            }) {
                if full, sockets[index].state == .newSynRecv {
                    // sk_to_full_sk: a request socket stands for its listener.
                    return listener(
                        sockets, family: family, destination: destination, port: destinationPort, device: device)
                }
                return index
            }
            return listener(sockets, family: family, destination: destination, port: destinationPort, device: device)
        }
        // UDP: the best score over the exact local address, then the wildcard.
        for local in [destination, wildcard] {
            var best: (score: Int, index: Int)?
            for (i, s) in sockets.enumerated() where s.transport == .udp && s.localPort == destinationPort {
                var score: Int
                if family == 4 {
                    guard s.family == 4 || (s.family == 6 && !s.v6only && s.localAddress.allSatisfy { $0 == 0 }) else {
                        continue
                    }
                    let bound = s.family == 4 ? s.localAddress : [0, 0, 0, 0]
                    guard bound == local else { continue }
                    score = s.family == 4 ? 2 : 1
                    if s.remoteAddress.contains(where: { $0 != 0 }) {
                        guard s.family == 4, s.remoteAddress == source else { continue }
                        score += 4
                    }
                    if s.remotePort != 0 {
                        guard s.remotePort == sourcePort else { continue }
                        score += 4
                    }
                    guard deviceMatches(s) else { continue }
                    if s.boundIfindex != 0 { score += 4 }
                } else {
                    guard s.family == 6, s.localAddress == local else { continue }
                    score = 0
                    if s.remotePort != 0 {
                        guard s.remotePort == sourcePort else { continue }
                        score += 1
                    }
                    if s.remoteAddress.contains(where: { $0 != 0 }) {
                        guard s.remoteAddress == source else { continue }
                        score += 1
                    }
                    guard deviceMatches(s) else { continue }
                    if s.boundIfindex != 0 { score += 1 }
                }
                if best == nil || score > best!.score { best = (score, i) }
            }
            if let best { return best.index }
            if local == wildcard { break }
        }
        return nil
    }

    /// `inet_lhash2_lookup` / `inet6_lhash2_lookup`: a TCP listener on `destination`, then on
    /// the wildcard address; a socket bound to the device scores above an unbound one, and for
    /// IPv4 an IPv4 socket above a dual-stack IPv6 one.
    static func listener(
        _ sockets: [Network.Socket], family: Int, destination: [UInt8], port: UInt16, device: UInt32
    ) -> Int? {
        let wildcard = [UInt8](repeating: 0, count: destination.count)
        for local in [destination, wildcard] {
            var best: (score: Int, index: Int)?
            for (i, s) in sockets.enumerated() where s.transport == .tcp && s.state == .listen && s.localPort == port {
                guard s.boundIfindex == 0 || s.boundIfindex == device else { continue }
                var score = s.boundIfindex != 0 ? 2 : 1
                if family == 4 {
                    if s.family == 4 {
                        guard s.localAddress == local else { continue }
                        score += 1
                    } else {
                        guard !s.v6only, local == wildcard, s.localAddress.allSatisfy({ $0 == 0 }) else { continue }
                    }
                } else {
                    guard s.family == 6, s.localAddress == local else { continue }
                }
                if best == nil || score > best!.score { best = (score, i) }
            }
            if let best { return best.index }
            if local == wildcard { break }
        }
        return nil
    }
}
