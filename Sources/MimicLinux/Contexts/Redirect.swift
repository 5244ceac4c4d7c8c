import MimicCore

/// Where a packet goes when its program returns `XDP_REDIRECT` or `TC_ACT_REDIRECT`.
///
/// The kernel keeps one target per CPU (`struct bpf_redirect_info`): each `bpf_redirect` or
/// successful `bpf_redirect_map` replaces it, a `bpf_redirect_map` miss clears it, and the
/// driver acts on whatever is left when the program returns. `LinuxProcessState.redirect` is
/// that target; `XDPResult.redirect` and `SKBResult.redirect` report it after the run.
public enum Redirect: Sendable, Equatable, CustomStringConvertible {
    /// `bpf_redirect(ifindex, flags)`: an interface (`BPF_F_INGRESS`, 1, selects tc's ingress path);
    /// also `bpf_redirect_neigh` and `bpf_redirect_peer`, with the kernel's internal flags
    /// `BPF_F_NEIGH` (1 << 16, plus `BPF_F_NEXTHOP`, 1 << 18, with a next hop) and `BPF_F_PEER`
    /// (1 << 17).
    case interface(ifindex: UInt32, flags: UInt64)
    /// `bpf_redirect_map(map, key, flags)`: an entry of a devmap, devmap_hash, cpumap or xskmap.
    case map(MapRedirect)

    /// The target interface: the ifindex of `bpf_redirect`, or of a devmap entry.
    public var ifindex: UInt32? {
        switch self {
        case .interface(let ifindex, _): ifindex
        case .map(let target): target.ifindex
        }
    }

    /// Whether `BPF_F_INGRESS` was set (`bpf_redirect` from tc only).
    public var isIngress: Bool {
        if case .interface(_, let flags) = self { return flags & 1 != 0 }
        return false
    }

    public var description: String {
        switch self {
        case .interface(let ifindex, let flags) where flags & (1 << 16) != 0:
            "redirect to ifindex \(ifindex) by its neighbour table (bpf_redirect_neigh\(flags & (1 << 18) != 0 ? ", next hop given" : ""))"
        case .interface(let ifindex, let flags) where flags & (1 << 17) != 0:
            "redirect into the peer of ifindex \(ifindex) (bpf_redirect_peer)"
        case .interface(let ifindex, let flags):
            "redirect to ifindex \(ifindex) (\(flags & 1 != 0 ? "ingress" : "egress"), flags 0x\(String(flags, radix: 16)))"
        case .map(let target):
            target.broadcastKeys.isEmpty
                ? "redirect to \(target.mapName)[\(target.key)]"
                : "broadcast to \(target.mapName)\(target.broadcastKeys)\(target.excludeIngress ? " excluding ingress" : "")"
        }
    }
}

/// Where `bpf_redirect_map` sent the packet: the map entry, as the kernel's
/// `bpf_redirect_info` remembers it for the driver to act on after the program returns.
public struct MapRedirect: Sendable, Equatable {
    /// `XDP_REDIRECT`, what the helper returns on success.
    public static let xdpRedirect: UInt64 = 4
    /// `BPF_F_BROADCAST` / `BPF_F_EXCLUDE_INGRESS`.
    public static let broadcastFlag: UInt64 = 1 << 3
    public static let excludeIngressFlag: UInt64 = 1 << 4

    public var mapName: String
    public var mapType: MapType
    /// The key passed to the helper.
    public var key: UInt32
    /// The entry's value (devmap: ifindex [+ program fd], cpumap: queue size [+ fd], xskmap:
    /// socket fd); nil for broadcasts.
    public var value: [UInt8]?
    /// `BPF_F_BROADCAST`: the keys of every entry the packet goes to.
    public var broadcastKeys: [UInt32]
    /// `BPF_F_EXCLUDE_INGRESS` was given with the broadcast.
    public var excludeIngress: Bool

    /// The target interface index of a devmap redirect (the value's first 4 bytes).
    public var ifindex: UInt32? {
        guard mapType == .devMap || mapType == .devMapHash, let value, value.count >= 4 else { return nil }
        return littleEndianUInt32(value)
    }
}

/// A copy of the packet `bpf_clone_redirect` sent to an interface. The clone leaves at once,
/// whatever the program returns, so a run may send several.
public struct ClonedPacket: Sendable, Equatable, CustomStringConvertible {
    /// The target interface.
    public var ifindex: UInt32
    /// The flags the program passed (`BPF_F_INGRESS` = 1 selects the ingress path).
    public var flags: UInt64
    /// The packet bytes as cloned.
    public var packet: [UInt8]

    public init(ifindex: UInt32, flags: UInt64, packet: [UInt8]) {
        self.ifindex = ifindex
        self.flags = flags
        self.packet = packet
    }

    /// Whether `BPF_F_INGRESS` was set.
    public var isIngress: Bool { flags & 1 != 0 }

    public var description: String {
        "clone of \(packet.count) bytes to ifindex \(ifindex) (\(isIngress ? "ingress" : "egress"))"
    }
}
