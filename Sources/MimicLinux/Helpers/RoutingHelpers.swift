import MimicCore

/// `bpf_fib_lookup`, `bpf_redirect_neigh` and `bpf_redirect_peer` against the emulator's
/// `Network`, with the kernel's checks and results (`net/core/filter.c` of Linux 6.18:
/// `bpf_ipv4_fib_lookup`, `bpf_ipv6_fib_lookup`, `bpf_skb_fib_lookup`, `bpf_xdp_fib_lookup`).
enum RoutingHelpers {
    /// `BPF_FIB_LOOKUP_*` flags.
    static let direct: UInt32 = 1, output: UInt32 = 2, skipNeighbour: UInt32 = 4, tableID: UInt32 = 8
    static let setSource: UInt32 = 16, useMark: UInt32 = 32
    static let knownFlags: UInt32 = 63
    /// `BPF_FIB_LKUP_RET_*`.
    enum Result: UInt64 {
        case success = 0, blackhole, unreachable, prohibit, notForwarded, forwardingDisabled, unsupportedLWT
        case noNeighbour, fragmentationNeeded, noSourceAddress
    }
    /// The kernel's internal redirect flags (`BPF_F_NEIGH`, `BPF_F_PEER`, `BPF_F_NEXTHOP`), kept
    /// with the target as `bpf_redirect_info.flags` keeps them.
    static let neighbourFlag: UInt64 = 1 << 16, peerFlag: UInt64 = 1 << 17, nexthopFlag: UInt64 = 1 << 18
    /// `IP_MAX_MTU`, `IPV6_MIN_MTU`, `IP6_MAX_MTU`.
    static let ipMaxMTU: UInt32 = 0xFFF0, ipv6MinMTU: UInt32 = 1280, ipv6MaxMTU: UInt32 = 65535 + 40

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let network = emulator.networkState
        return [
            // long bpf_fib_lookup(void *ctx, struct bpf_fib_lookup *params, int plen, u32 flags)
            LinuxHelper.make(.fibLookup) { call throws(HelperFailure) in
                guard let kind = call.state?.packet?.kind else {
                    throw .message("\(call.name) needs a packet context (xdp_md or sk_buff); the process has none")
                }
                let buffer = try call.packet(kind)
                return try fibLookup(call, network, skb: kind == .skb ? buffer : nil)
            },
            // long bpf_redirect_neigh(u32 ifindex, struct bpf_redir_neigh *params, int plen, u64 flags)
            LinuxHelper.make(.redirectNeigh) { call throws(HelperFailure) in
                let state = try call.linuxState()
                let length = Int(call.argInt(3))
                guard length == 0 || length >= 20, call.arg(4) == 0 else { return UInt64(TCAction.shot.rawValue) }
                // The next hop (struct bpf_redir_neigh: family, address) is used when the packet
                // leaves; an unknown family drops it then, not here.
                state.redirectNexthop = length != 0 ? try call.read(call.arg(2), count: 20) : nil
                state.redirect = .interface(
                    ifindex: call.arg32(1), flags: neighbourFlag | (length != 0 ? nexthopFlag : 0))
                return UInt64(TCAction.redirect.rawValue)
            },
            // long bpf_redirect_peer(u32 ifindex, u64 flags)
            LinuxHelper.make(.redirectPeer) { call throws(HelperFailure) in
                let state = try call.linuxState()
                guard call.arg(2) == 0 else { return UInt64(TCAction.shot.rawValue) }
                state.redirect = .interface(ifindex: call.arg32(1), flags: peerFlag)
                return UInt64(TCAction.redirect.rawValue)
            },
        ]
    }

    /// `struct bpf_fib_lookup` (64 bytes) offsets.
    enum Params {
        static let size = 64
        static let family = 0, l4Protocol = 1, sport = 2, dport = 4, totalLength = 6, ifindex = 8, tos = 12
        static let source = 16, destination = 32, vlanProto = 48, vlanTCI = 50, tbid = 48, mark = 52
        static let sourceMAC = 52, destinationMAC = 58
    }

    static func fibLookup(_ call: HelperCall, _ network: NetworkState, skb: PacketBuffer?) throws(HelperFailure)
        -> UInt64
    {
        try network.requireValid(call)
        guard call.argInt(3) >= Int32(Params.size) else { return Errno.invalid.r0 }
        let flags = call.arg32(4)
        guard flags & ~knownFlags == 0 else { return Errno.invalid.r0 }
        let address = call.arg(2)
        var params = try call.read(address, count: Params.size)
        let totalLength = UInt32(params[Params.totalLength]) | UInt32(params[Params.totalLength + 1]) << 8
        let checkMTU = skb == nil || totalLength != 0
        let result: Int64
        switch params[Params.family] {
        case 2: result = lookup(&params, family: 4, flags: flags, checkMTU: checkMTU, network)
        case 10: result = lookup(&params, family: 6, flags: flags, checkMTU: checkMTU, network)
        default: return Errno(rawValue: 97).r0 // -EAFNOSUPPORT
        }
        if let skb, result == 0, !checkMTU, let device = network.interface(get32(params, Params.ifindex)) {
            // is_skb_forwardable: the frame fits the device's MTU plus its header and a VLAN tag.
            let limit = Int(device.mtu) + device.hardHeaderLength + 4
            put16(&params, Params.totalLength, UInt16(truncatingIfNeeded: device.mtu))
            try call.write(params, at: address)
            return skb.length <= limit ? 0 : Result.fragmentationNeeded.rawValue
        }
        try call.write(params, at: address)
        return UInt64(bitPattern: result)
    }

    /// `bpf_ipv4_fib_lookup` / `bpf_ipv6_fib_lookup`: `params` is updated as the kernel updates
    /// it (also on the way to a non-success result); returns the result or `-errno`.
    static func lookup(_ params: inout [UInt8], family: Int, flags: UInt32, checkMTU: Bool, _ network: NetworkState)
        -> Int64
    {
        let width = family == 4 ? 4 : 16
        let source = Array(params[Params.source..<Params.source + width])
        var destination = Array(params[Params.destination..<Params.destination + width])
        if family == 6, needsStrict(destination) || needsStrict(source) {
            return Int64(Result.notForwarded.rawValue) // link-local addresses are never forwarded
        }
        let ifindex = get32(params, Params.ifindex)
        guard let device = network.interface(ifindex) else { return -Int64(Errno.noDevice.rawValue) }
        guard device.forwarding else { return Int64(Result.forwardingDisabled.rawValue) }
        let isOutput = flags & output != 0
        let iif: UInt32 = isOutput ? 1 : ifindex
        let oif: UInt32 = isOutput ? ifindex : 0
        // IPv6 prefers routes out of the given device in both directions (a preference only).
        let preferred = family == 6 ? ifindex : oif
        let found: RoutingTables.Found
        if flags & direct != 0 {
            var table = Network.mainTable
            if flags & tableID != 0 {
                table = get32(params, Params.tbid)
                put32(&params, Params.tbid, 0)
            }
            guard network.routing.exists(table, family: family) else { return Int64(Result.notForwarded.rawValue) }
            found = network.routing.lookup(table: table, family: family, destination: destination, oif: preferred)
        } else {
            let mark = flags & useMark != 0 ? get32(params, Params.mark) : 0
            found = network.routing.lookup(
                family: family, source: source, destination: destination, iif: iif, oif: preferred, mark: mark,
                ruleOif: oif)
        }
        let route: Network.Route
        switch found {
        case .none: return Int64(Result.notForwarded.rawValue)
        case .reject(.blackhole): return Int64(Result.blackhole.rawValue)
        case .reject(.unreachable): return Int64(Result.unreachable.rawValue)
        case .reject(.prohibit): return Int64(Result.prohibit.rawValue)
        case .reject: return Int64(Result.notForwarded.rawValue)
        case .route(let found):
            guard found.type == .unicast else { return Int64(Result.notForwarded.rawValue) }
            route = found
        }
        guard let outDevice = route.ifindex.flatMap(network.interface) else {
            return Int64(Result.notForwarded.rawValue)
        }
        var mtu: UInt32 = 0
        if checkMTU {
            if family == 4 {
                mtu = route.mtuLock ? (route.mtu ?? 0) : 0
                if mtu == 0 { mtu = min(outDevice.mtu, ipMaxMTU) }
            } else {
                mtu = route.mtuLock ? (route.mtu ?? 0) : 0
                if mtu == 0 { mtu = max(ipv6MinMTU, outDevice.mtu) }
                mtu = min(mtu, ipv6MaxMTU)
            }
            let totalLength = UInt32(params[Params.totalLength]) | UInt32(params[Params.totalLength + 1]) << 8
            if totalLength > mtu {
                put16(&params, Params.totalLength, UInt16(truncatingIfNeeded: mtu))
                return Int64(Result.fragmentationNeeded.rawValue)
            }
        }
        put32(&params, Params.tos, route.metric)
        put32(&params, Params.ifindex, outDevice.ifindex)
        if family == 4 {
            if flags & setSource != 0 {
                let chosen = preferredSource4(route, outDevice, network.network)
                params.replaceSubrange(Params.source..<Params.source + 4, with: chosen)
            }
            if let gateway = route.gateway {
                if gateway.count == 4 {
                    params.replaceSubrange(Params.destination..<Params.destination + 4, with: gateway)
                } else {
                    params[Params.family] = 10
                    params.replaceSubrange(Params.destination..<Params.destination + 16, with: gateway)
                }
                destination = gateway
            }
        } else {
            if let gateway = route.gateway {
                params.replaceSubrange(Params.destination..<Params.destination + 16, with: gateway)
                destination = gateway
            }
            if flags & setSource != 0 {
                guard
                    let chosen = route.source
                        ?? preferredSource6(destination: destination, device: outDevice, network.network)
                else { return Int64(Result.noSourceAddress.rawValue) }
                params.replaceSubrange(Params.source..<Params.source + 16, with: chosen)
            }
        }
        if flags & skipNeighbour == 0 {
            guard let neighbour = network.neighbour(destination, on: outDevice) else {
                return Int64(Result.noNeighbour.rawValue)
            }
            params.replaceSubrange(Params.destinationMAC..<Params.destinationMAC + 6, with: neighbour.mac)
            params.replaceSubrange(Params.sourceMAC..<Params.sourceMAC + 6, with: outDevice.mac)
        }
        // bpf_fib_set_fwd_params: no VLAN header to add; the MTU when it was checked.
        put16(&params, Params.vlanProto, 0)
        put16(&params, Params.vlanTCI, 0)
        if mtu != 0 { put16(&params, Params.totalLength, UInt16(truncatingIfNeeded: mtu)) }
        return 0
    }

    /// `rt6_need_strict`: multicast, link-local and loopback addresses.
    static func needsStrict(_ address: [UInt8]) -> Bool {
        if address[0] == 0xFF { return true }
        if address[0] == 0xFE, address[1] & 0xC0 == 0x80 { return true }
        return address == [UInt8](repeating: 0, count: 15) + [1]
    }

    /// `fib_result_prefsrc`: the route's `src`, else `inet_select_addr` on the output device for
    /// the route's scope (link for a connected route, universe for one via a gateway): a primary
    /// address of the device of a fitting scope, preferring one whose subnet holds the gateway;
    /// else the first such address of any device; else 0.0.0.0.
    static func preferredSource4(_ route: Network.Route, _ device: Network.Interface, _ network: Network) -> [UInt8] {
        if let source = route.source { return source }
        let routeScope = route.gateway == nil ? 253 : 0
        let gateway = route.gateway?.count == 4 ? route.gateway : nil
        func scope(_ address: [UInt8]) -> Int { address[0] == 127 ? 254 : 0 }
        func primaries(_ interface: Network.Interface) -> [Network.InterfaceAddress] {
            var seen: [[UInt8]] = []
            return interface.addresses.filter { address in
                guard address.isIPv4 else { return false }
                let key = Network.masked(address.address, address.prefixLength) + [UInt8(address.prefixLength)]
                if seen.contains(key) { return false }
                seen.append(key)
                return true
            }
        }
        var first: [UInt8]?
        for address in primaries(device) where min(scope(address.address), 254) <= routeScope {
            if gateway == nil
                || Network.contains(
                    Network.masked(address.address, address.prefixLength), address.prefixLength, gateway!)
            {
                return address.address
            }
            if first == nil { first = address.address }
        }
        if let first { return first }
        for interface in network.interfaces.sorted(by: { $0.ifindex < $1.ifindex }) {
            if let address = primaries(interface).first(where: {
                scope($0.address) <= routeScope && scope($0.address) == 0
            }) {
                return address.address
            }
        }
        return [0, 0, 0, 0]
    }

    /// `ipv6_dev_get_saddr`, simplified to its rules that apply to static addresses: the
    /// destination itself; then an address of at least the destination's scope; then one on the
    /// output device; then the longest prefix shared with the destination (up to the address's
    /// prefix length). Nil when the namespace has no IPv6 address to use.
    static func preferredSource6(destination: [UInt8], device: Network.Interface, _ network: Network) -> [UInt8]? {
        func scope(_ address: [UInt8]) -> Int {
            if address == [UInt8](repeating: 0, count: 15) + [1] { return 1 }
            if address[0] == 0xFE, address[1] & 0xC0 == 0x80 { return 2 }
            return 14
        }
        let destinationScope = scope(destination)
        var best: (score: [Int], address: [UInt8])?
        for interface in network.interfaces {
            for candidate in interface.addresses where !candidate.isIPv4 {
                let address = candidate.address
                if address == [UInt8](repeating: 0, count: 16) || address[0] == 0xFF { continue }
                let own = scope(address)
                let scoreScope = own >= destinationScope ? -own : own - 128
                var common = 0
                while common < min(candidate.prefixLength, 128) {
                    let byte = common / 8
                    let bit = 7 - common % 8
                    if (address[byte] >> bit) & 1 != (destination[byte] >> bit) & 1 { break }
                    common += 1
                }
                let score = [
                    address == destination ? 1 : 0, scoreScope, interface.ifindex == device.ifindex ? 1 : 0, common,
                ]
                if best.map({ $0.score.lexicographicallyPrecedes(score) }) ?? true { best = (score, address) }
            }
        }
        return best?.address
    }
}
