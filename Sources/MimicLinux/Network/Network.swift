import MimicJSON

/// The host around a program: the network namespace the networking helpers see
/// (`bpf_fib_lookup`, `bpf_check_mtu`, `bpf_redirect_neigh`, the socket lookups, ...).
///
/// Build one in Swift or read it from JSON (`Network(json:)`, `mimic run --net FILE`; the format
/// is Docs/Network.md) and give it to the emulator as `LinuxConfiguration.network`. Without one,
/// `Network.standard` applies: loopback and one Ethernet interface.
///
/// What the kernel derives from addresses is derived here too, so a description lists only what
/// `ip addr`, `ip route`, `ip neigh` and the sockets would be given: each interface address adds
/// its connected route (main table; IPv4 metric 0 with the address as preferred source, IPv6
/// metric 256) and its local-table entries (the address itself, and for IPv4 prefixes shorter
/// than /31 the subnet's broadcast address; `127.0.0.0/8` for loopback's `127.0.0.1/8`).
public struct Network: Sendable, Equatable {
    public var interfaces: [Interface]
    /// Routes as `ip route add` takes them (connected routes are derived, not listed).
    public var routes: [Route]
    /// Policy-routing rules beyond the kernel's defaults (local 0, main 32766, default 32767).
    public var rules: [Rule]
    public var neighbours: [Neighbour]
    public var sockets: [Socket]
    /// The namespace's cookie (`bpf_get_netns_cookie`); `init_net`'s is 1.
    public var netnsCookie: UInt64
    /// `net.ipv4.tcp_syncookies`: 0 never, 1 (default) when a listener's SYN queue overflows,
    /// 2 always (`bpf_tcp_gen_syncookie`, `bpf_tcp_check_syncookie`).
    public var tcpSyncookies: Int = 1
    /// The secrets SYN cookies are hashed with (`SyncookieSecret`; default all zeros): give the
    /// kernel's to reproduce its cookies.
    public var syncookieSecret: SyncookieSecret = .zero
    /// The tunnel metadata arriving sk_buffs carry (`bpf_skb_get_tunnel_key` / `_opt`), or nil:
    /// packets that did not come through a collect-metadata tunnel device.
    public var tunnel: TunnelMetadata?
    /// The connection tracking entries the conntrack kfuncs find (`ConntrackEntry`).
    public var conntrack: [ConntrackEntry] = []
    /// The xfrm (IPsec) states that decapsulated arriving sk_buffs, outermost first (the
    /// packet's `sec_path`, `bpf_skb_get_xfrm_state`); empty: packets that did not pass IPsec.
    public var xfrm: [XfrmState] = []

    public init(
        interfaces: [Interface], routes: [Route] = [], rules: [Rule] = [], neighbours: [Neighbour] = [],
        sockets: [Socket] = [], netnsCookie: UInt64 = 1, tunnel: TunnelMetadata? = nil
    ) {
        self.interfaces = interfaces
        self.routes = routes
        self.rules = rules
        self.neighbours = neighbours
        self.sockets = sockets
        self.netnsCookie = netnsCookie
        self.tunnel = tunnel
    }

    /// Loopback (ifindex 1, `lo`, MTU 65536, 127.0.0.1/8 and ::1/128) and `eth0` (ifindex 2,
    /// 02:00:00:00:00:01, MTU 1500, 10.0.0.1/24), with no other routes, neighbours or sockets:
    /// the environment when no description is given.
    public static let standard = Network(interfaces: [.loopback, .ethernet])

    // MARK: Interfaces

    /// A network device.
    public struct Interface: Sendable, Equatable {
        public var ifindex: UInt32
        /// At most 15 bytes (`IFNAMSIZ` - 1).
        public var name: String
        public var mac: [UInt8]
        public var mtu: UInt32
        public var addresses: [InterfaceAddress]
        /// Whether the device forwards (the `forwarding` sysctl, one for both families here):
        /// `bpf_fib_lookup` on a device that does not answers `BPF_FIB_LKUP_RET_FWD_DISABLED`.
        /// The kernel's default is off; a description's default is on.
        public var forwarding: Bool
        /// A loopback device (no link-layer neighbours; MAC all zeros).
        public var isLoopback: Bool
        /// The ifindex of the other end of a veth pair, in another namespace: where
        /// `bpf_redirect_peer` sends packets. Nil for other devices.
        public var peer: UInt32?
        /// An 802.1Q device on `parent` with this VLAN id.
        public var vlan: VLAN?
        /// What the device's driver reports of every packet it receives, which the XDP metadata
        /// kfuncs read (`bpf_xdp_metadata_rx_hash`, ...) when the packet's own context has no
        /// `rxMetadata`; nil: a driver without them (`-EOPNOTSUPP`).
        public var rxMetadata: XDPRxMetadata?
        /// Bytes of link-layer header (`hard_header_len`): 14 for Ethernet and loopback.
        public var hardHeaderLength: Int { 14 }

        public init(
            ifindex: UInt32, name: String, mac: [UInt8], mtu: UInt32 = 1500, addresses: [InterfaceAddress] = [],
            forwarding: Bool = true, isLoopback: Bool = false, peer: UInt32? = nil, vlan: VLAN? = nil
        ) {
            self.ifindex = ifindex
            self.name = name
            self.mac = mac
            self.mtu = mtu
            self.addresses = addresses
            self.forwarding = forwarding
            self.isLoopback = isLoopback
            self.peer = peer
            self.vlan = vlan
        }

        public static let loopback = Interface(
            ifindex: 1, name: "lo", mac: [0, 0, 0, 0, 0, 0], mtu: 65536,
            addresses: [
                InterfaceAddress(address: [127, 0, 0, 1], prefixLength: 8),
                InterfaceAddress(address: [UInt8](repeating: 0, count: 15) + [1], prefixLength: 128),
            ], isLoopback: true)
        public static let ethernet = Interface(
            ifindex: 2, name: "eth0", mac: [2, 0, 0, 0, 0, 1], mtu: 1500,
            addresses: [InterfaceAddress(address: [10, 0, 0, 1], prefixLength: 24)])
    }

    /// An 802.1Q VLAN device's tag and the device it sits on.
    public struct VLAN: Sendable, Equatable {
        public var id: UInt16
        public var parent: UInt32
        public init(id: UInt16, parent: UInt32) {
            self.id = id
            self.parent = parent
        }
    }

    /// An address with its prefix (`10.0.0.1/24`): 4 bytes (IPv4) or 16 (IPv6), network order.
    public struct InterfaceAddress: Sendable, Equatable {
        public var address: [UInt8]
        public var prefixLength: Int
        public init(address: [UInt8], prefixLength: Int) {
            self.address = address
            self.prefixLength = prefixLength
        }
        public var isIPv4: Bool { address.count == 4 }
    }

    // MARK: Routes and rules

    /// What a route does (`RTN_*`). Only unicast routes forward; local, broadcast and anycast
    /// ones (which the kernel derives from addresses) answer `BPF_FIB_LKUP_RET_NOT_FWDED`.
    public enum RouteType: String, Sendable, Equatable, CaseIterable {
        case unicast, local, broadcast, anycast, blackhole, unreachable, prohibit, `throw`
    }

    /// A route of one table.
    public struct Route: Sendable, Equatable {
        public var type: RouteType
        /// The destination prefix: 4 or 16 bytes, network order, bits past the prefix zero.
        public var destination: [UInt8]
        public var prefixLength: Int
        /// The next hop's address (`via`): 4 or 16 bytes (an IPv4 route may go via an IPv6
        /// gateway, as `via inet6` allows); nil for a directly connected destination.
        public var gateway: [UInt8]?
        /// The output device (`dev`); reject types (blackhole, unreachable, prohibit, throw) have none.
        public var ifindex: UInt32?
        /// `metric`: IPv4 routes default to 0, IPv6 ones to 1024 (`ip -6 route`'s default).
        public var metric: UInt32
        /// `table`: main (254) by default; local is 255.
        public var table: UInt32
        /// `src`, the preferred source address.
        public var source: [UInt8]?
        /// `mtu`: the route's MTU. `bpf_fib_lookup` uses it only when locked (`mtu lock N`, as
        /// the kernel's `ip_mtu_from_fib_result` does without `ip_forward_use_pmtu`), else the
        /// device's MTU.
        public var mtu: UInt32?
        public var mtuLock: Bool

        public init(
            type: RouteType = .unicast, destination: [UInt8], prefixLength: Int, gateway: [UInt8]? = nil,
            ifindex: UInt32? = nil, metric: UInt32? = nil, table: UInt32 = Network.mainTable, source: [UInt8]? = nil,
            mtu: UInt32? = nil, mtuLock: Bool = false
        ) {
            self.type = type
            self.mtuLock = mtuLock
            self.destination = Network.masked(destination, prefixLength)
            self.prefixLength = prefixLength
            self.gateway = gateway
            self.ifindex = ifindex
            self.metric = metric ?? (destination.count == 4 ? 0 : 1024)
            self.table = table
            self.source = source
            self.mtu = mtu
        }

        public var isIPv4: Bool { destination.count == 4 }
    }

    public static let localTable: UInt32 = 255, mainTable: UInt32 = 254, defaultTable: UInt32 = 253

    /// A policy-routing rule (`ip rule add`): packets matching every given selector are looked up
    /// in `table`; rules are tried by ascending priority, a table without a route for the
    /// destination passing on to the next rule.
    public struct Rule: Sendable, Equatable {
        public var priority: UInt32
        public var table: UInt32
        /// `fwmark MARK/MASK`: matches when `mark & mask == fwmark`.
        public var fwmark: UInt32?
        public var fwmask: UInt32
        /// `from PREFIX` and `to PREFIX` (4 or 16 bytes with a prefix length).
        public var from: InterfaceAddress?
        public var to: InterfaceAddress?
        /// `iif` / `oif` by ifindex.
        public var iif: UInt32?
        public var oif: UInt32?
        /// The family the rule applies to: 4 or 6.
        public var family: Int

        public init(
            priority: UInt32, table: UInt32, family: Int = 4, fwmark: UInt32? = nil, fwmask: UInt32 = 0xFFFF_FFFF,
            from: InterfaceAddress? = nil, to: InterfaceAddress? = nil, iif: UInt32? = nil, oif: UInt32? = nil
        ) {
            self.priority = priority
            self.table = table
            self.family = family
            self.fwmark = fwmark
            self.fwmask = fwmask
            self.from = from
            self.to = to
            self.iif = iif
            self.oif = oif
        }
    }

    // MARK: Neighbours

    /// A neighbour entry's state (`NUD_*`); `bpf_fib_lookup` uses entries whose state is valid
    /// (permanent, noarp, reachable, stale, delay, probe).
    public enum NeighbourState: String, Sendable, Equatable, CaseIterable {
        case incomplete, reachable, stale, delay, probe, failed, noarp, permanent, none

        /// `NUD_VALID`.
        public var isValid: Bool {
            switch self {
            case .reachable, .stale, .delay, .probe, .noarp, .permanent: true
            case .incomplete, .failed, .none: false
            }
        }
    }

    /// An ARP (IPv4) or NDP (IPv6) entry.
    public struct Neighbour: Sendable, Equatable {
        public var address: [UInt8]
        public var mac: [UInt8]
        public var ifindex: UInt32
        public var state: NeighbourState
        public init(address: [UInt8], mac: [UInt8], ifindex: UInt32, state: NeighbourState = .permanent) {
            self.address = address
            self.mac = mac
            self.ifindex = ifindex
            self.state = state
        }
    }

    // MARK: Sockets

    /// A socket of the namespace, as the socket lookups find it.
    public struct Socket: Sendable, Equatable {
        public enum TransportProtocol: String, Sendable, Equatable { case tcp, udp }

        /// TCP states (`BPF_TCP_*`, the `state` of `struct bpf_sock`).
        public enum State: String, Sendable, Equatable, CaseIterable {
            case established, synSent = "syn_sent", synRecv = "syn_recv", finWait1 = "fin_wait1"
            case finWait2 = "fin_wait2", timeWait = "time_wait", close, closeWait = "close_wait"
            case lastAck = "last_ack", listen, closing, newSynRecv = "new_syn_recv"

            public var value: UInt32 {
                switch self {
                case .established: 1
                case .synSent: 2
                case .synRecv: 3
                case .finWait1: 4
                case .finWait2: 5
                case .timeWait: 6
                case .close: 7
                case .closeWait: 8
                case .lastAck: 9
                case .listen: 10
                case .closing: 11
                case .newSynRecv: 12
                }
            }

            /// `sk_fullsock`: not a time-wait or request socket.
            public var isFull: Bool { self != .timeWait && self != .newSynRecv }
        }

        public var transport: TransportProtocol
        /// 4 (`AF_INET`) or 6 (`AF_INET6`).
        public var family: Int
        /// The bound (local) address, 4 or 16 bytes; all zeros is the wildcard.
        public var localAddress: [UInt8]
        public var localPort: UInt16
        /// The connected peer; zeros for a listening or unconnected socket.
        public var remoteAddress: [UInt8]
        public var remotePort: UInt16
        public var state: State
        /// `SO_BINDTODEVICE`'s ifindex, 0 for none.
        public var boundIfindex: UInt32
        /// `IPV6_V6ONLY`: an IPv6 socket on the wildcard address that IPv4 lookups do not find.
        public var v6only: Bool
        /// `SO_COOKIE` (`bpf_get_socket_cookie`).
        public var cookie: UInt64
        public var mark: UInt32
        public var priority: UInt32
        /// `struct bpf_tcp_sock` values by field name (`snd_cwnd`, `srtt_us`, ...), for TCP sockets.
        public var tcp: [String: UInt64]
        /// A listener whose SYN queue overflowed recently, so it sends and accepts SYN cookies.
        public var synOverflow: Bool = false
        /// `SO_REUSEPORT`: the socket belongs to the reuseport group of its protocol, family,
        /// local address, port and device (a `REUSEPORT_SOCKARRAY` holds only such sockets, and
        /// `bpf_sk_select_reuseport` selects within the group).
        public var reuseport: Bool = false
        /// The owner's uid (`sk_uid`, `bpf_get_socket_uid`).
        public var uid: UInt32 = 0
        /// The path of the socket's cgroup v2 in the emulated system (`LinuxConfiguration.system`;
        /// `bpf_sk_cgroup_id`, `bpf_skb_under_cgroup`), `/` by default.
        public var cgroup: String = "/"
        /// The net_cls class id of the socket (`sock_cgroup_classid`, `bpf_skb_cgroup_classid`).
        public var classid: UInt32 = 0

        public init(
            transport: TransportProtocol, localAddress: [UInt8], localPort: UInt16, remoteAddress: [UInt8]? = nil,
            remotePort: UInt16 = 0, state: State? = nil, boundIfindex: UInt32 = 0, v6only: Bool = false,
            cookie: UInt64, mark: UInt32 = 0, priority: UInt32 = 0, tcp: [String: UInt64] = [:]
        ) {
            self.transport = transport
            self.family = localAddress.count == 4 ? 4 : 6
            self.localAddress = localAddress
            self.localPort = localPort
            self.remoteAddress = remoteAddress ?? [UInt8](repeating: 0, count: localAddress.count)
            self.remotePort = remotePort
            let connected = remotePort != 0
            self.state =
                state
                ?? (transport == .tcp ? (connected ? .established : .listen) : (connected ? .established : .close))
            self.boundIfindex = boundIfindex
            self.v6only = v6only
            self.cookie = cookie
            self.mark = mark
            self.priority = priority
            self.tcp = tcp
        }
    }

    /// The metadata of a packet received through a collect-metadata tunnel device (`ip_tunnel_key`
    /// and its options), as `bpf_skb_get_tunnel_key` / `bpf_skb_get_tunnel_opt` report it.
    public struct TunnelMetadata: Sendable, Equatable {
        public var id: UInt32
        /// The outer source address: 4 bytes (IPv4) or 16 (IPv6), network order.
        public var remote: [UInt8]
        /// The outer destination address (`local_ipv4` / `local_ipv6`).
        public var local: [UInt8]
        public var tos: UInt8
        public var ttl: UInt8
        /// `tunnel_label` (IPv6 flow label).
        public var label: UInt32
        /// The tunnel options (Geneve TLVs, VXLAN GBP, ERSPAN metadata) as bytes.
        public var options: [UInt8]
        /// The `TUNNEL_*` flags as `BPF_F_TUNINFO_FLAGS` reports them (host order of the be16):
        /// key present (0x04) by default.
        public var flags: UInt16
        /// Transmit metadata `bpf_skb_set_tunnel_key` attached (the only kind
        /// `bpf_skb_set_tunnel_opt` adds options to).
        public var isTransmit: Bool = false
        public init(
            id: UInt32, remote: [UInt8], local: [UInt8]? = nil, tos: UInt8 = 0, ttl: UInt8 = 64, label: UInt32 = 0,
            options: [UInt8] = [], flags: UInt16 = 0x04
        ) {
            self.flags = flags
            self.id = id
            self.remote = remote
            self.local = local ?? [UInt8](repeating: 0, count: remote.count)
            self.tos = tos
            self.ttl = ttl
            self.label = label
            self.options = options
        }
        public var isIPv6: Bool { remote.count == 16 }
    }

    /// One xfrm state of a packet's `sec_path`, as `bpf_skb_get_xfrm_state` reports it in
    /// `struct bpf_xfrm_state`.
    public struct XfrmState: Sendable, Equatable {
        /// `props.reqid`.
        public var reqid: UInt32
        /// The SPI (`id.spi`), a host-order number here; the helper stores it in network order.
        public var spi: UInt32
        /// The peer's address (`props.saddr`): 4 bytes (IPv4, family `AF_INET`) or 16 (IPv6).
        public var remote: [UInt8]
        public init(reqid: UInt32, spi: UInt32, remote: [UInt8]) {
            self.reqid = reqid
            self.spi = spi
            self.remote = remote
        }
    }

    /// The most xfrm states a `sec_path` holds (`XFRM_MAX_DEPTH`).
    public static let xfrmMaxDepth = 6

    // MARK: Lookups

    /// The interface with this ifindex.
    public func interface(ifindex: UInt32) -> Interface? { interfaces.first { $0.ifindex == ifindex } }

    /// `address` with the bits past `prefixLength` cleared.
    static func masked(_ address: [UInt8], _ prefixLength: Int) -> [UInt8] {
        var result = address
        for i in 0..<result.count {
            let bits = prefixLength - i * 8
            if bits >= 8 { continue }
            result[i] &= bits <= 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
        }
        return result
    }

    /// Whether `address` lies in `prefix`/`length` (same family).
    static func contains(_ prefix: [UInt8], _ length: Int, _ address: [UInt8]) -> Bool {
        prefix.count == address.count && masked(address, length) == prefix
    }
}
