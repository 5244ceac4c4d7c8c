/// Where a packet that a tc program redirected with `bpf_redirect_neigh` or `bpf_redirect_peer`
/// goes once the program returns `TC_ACT_REDIRECT`, as the kernel's `skb_do_redirect` resolves it
/// against the network.
public enum ResolvedRedirect: Sendable, Equatable {
    /// Sent out of `ifindex` as `frame`: the Ethernet header rewritten for the next hop's
    /// neighbour entry (destination) and the device (source).
    case transmit(ifindex: UInt32, frame: [UInt8])
    /// Received by `ifindex`, the peer of the veth device the program named (in the peer's
    /// namespace), unchanged.
    case peerIngress(ifindex: UInt32)
    /// Dropped, with why (no route, no valid neighbour entry, no such device, no peer, ...).
    case drop(String)
}

extension LinuxEmulator {
    /// How the kernel resolves a `bpf_redirect_neigh` / `bpf_redirect_peer` target (nil for other
    /// redirects): for a neighbour redirect without a next hop, the route to the IPv4 or IPv6
    /// destination out of the target device gives it (its gateway, else the destination); the
    /// valid neighbour entry of the next hop on the device gives the destination MAC, the device
    /// its source MAC. A next hop of an unknown family, other protocols, or no valid entry drop
    /// the packet (the kernel would first queue it for address resolution). `nexthop` is
    /// `LinuxProcessState.redirectNexthop`; `frame` starts at the Ethernet header.
    public func resolve(_ redirect: Redirect, frame: [UInt8], nexthop: [UInt8]?) -> ResolvedRedirect? {
        guard case .interface(let ifindex, let flags) = redirect else { return nil }
        let network = networkState
        if let problem = network.problem { return .drop("the network description is invalid: \(problem)") }
        if flags & RoutingHelpers.peerFlag != 0 {
            guard let device = network.interface(ifindex) else { return .drop("no device has ifindex \(ifindex)") }
            guard let peer = device.peer else { return .drop("\(device.name) has no peer (only veth devices do)") }
            return .peerIngress(ifindex: peer)
        }
        guard flags & RoutingHelpers.neighbourFlag != 0 else { return nil }
        guard let device = network.interface(ifindex) else { return .drop("no device has ifindex \(ifindex)") }
        guard frame.count >= 14 else { return .drop("the frame is shorter than an Ethernet header") }
        let etherType = UInt16(frame[12]) << 8 | UInt16(frame[13])
        let target: [UInt8]
        if flags & RoutingHelpers.nexthopFlag != 0, let nexthop, nexthop.count >= 20 {
            switch get32(nexthop, 0) {
            case 2: target = Array(nexthop[4..<8])
            case 10: target = Array(nexthop[4..<20])
            default: return .drop("the next hop's family \(get32(nexthop, 0)) is neither AF_INET nor AF_INET6")
            }
        } else {
            let family: Int
            let destination: [UInt8]
            switch etherType {
            case 0x0800 where frame.count >= 34: (family, destination) = (4, Array(frame[30..<34]))
            case 0x86DD where frame.count >= 54: (family, destination) = (6, Array(frame[38..<54]))
            default: return .drop("neither IPv4 nor IPv6 (EtherType 0x\(String(etherType, radix: 16)))")
            }
            let source = family == 4 ? Array(frame[26..<30]) : Array(frame[22..<38])
            let found = network.routing.lookup(
                family: family, source: source, destination: destination, iif: 1, oif: ifindex, mark: 0,
                ruleOif: ifindex)
            guard case .route(let route) = found, route.type == .unicast || route.type == .local else {
                return .drop("no route out of \(device.name)")
            }
            target = route.gateway ?? destination
        }
        guard let neighbour = network.neighbour(target, on: device) else {
            return .drop("no valid neighbour entry on \(device.name)")
        }
        return .transmit(ifindex: ifindex, frame: neighbour.mac + device.mac + Array(frame[12...]))
    }
}
