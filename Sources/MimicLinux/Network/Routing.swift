/// The routing side of a `Network`, as the kernel's FIB answers `bpf_fib_lookup`: the routes the
/// description lists plus those the kernel derives from interface addresses, by table, and the
/// policy rules (Docs/Network.md describes the derived routes and the rules).
///
/// Built once per emulator (`NetworkState`); lookups only read it.
struct RoutingTables: Sendable {
    /// Routes by table and family (4 or 6), longest prefix first, then by ascending metric.
    private var tables: [Key: [Network.Route]] = [:]
    let rules4: [Network.Rule]
    let rules6: [Network.Rule]
    /// Without custom IPv4 rules the kernel merges the local table into main (`fib_unmerge`
    /// undoes it when the first rule is added): a main-table lookup then finds local routes.
    let mergedIPv4: Bool

    struct Key: Hashable {
        var table: UInt32
        var family: Int
    }

    /// What a table lookup found.
    enum Found: Equatable {
        case route(Network.Route)
        /// A blackhole, unreachable or prohibit route (`BPF_FIB_LKUP_RET_BLACKHOLE` ...).
        case reject(Network.RouteType)
        /// No route (the kernel's `-EAGAIN`, which sends the lookup on to the next rule), or a
        /// `throw` route.
        case none
    }

    init(_ network: Network) {
        var all = network.routes
        for interface in network.interfaces {
            for address in interface.addresses {
                all += Self.derivedRoutes(address, on: interface, network: network)
            }
        }
        for route in all {
            tables[Key(table: route.table, family: route.isIPv4 ? 4 : 6), default: []].append(route)
        }
        for key in tables.keys {
            tables[key]?.sort { a, b in
                a.prefixLength != b.prefixLength ? a.prefixLength > b.prefixLength : a.metric < b.metric
            }
        }
        let custom4 = network.rules.filter { $0.family == 4 }
        let custom6 = network.rules.filter { $0.family == 6 }
        mergedIPv4 = custom4.isEmpty
        let local = Network.Rule(priority: 0, table: Network.localTable)
        let main = Network.Rule(priority: 32766, table: Network.mainTable)
        let fallback = Network.Rule(priority: 32767, table: Network.defaultTable)
        // Stable by priority: the defaults first among equals, as they were added first.
        rules4 = ([local, main, fallback] + custom4).enumerated().sorted {
            ($0.element.priority, $0.offset) < ($1.element.priority, $1.offset)
        }.map(\.element)
        rules6 = ([local, main] + custom6).enumerated().sorted {
            ($0.element.priority, $0.offset) < ($1.element.priority, $1.offset)
        }.map(\.element)
    }

    /// What `fib_add_ifaddr` (IPv4) and `addrconf` (IPv6) add for an interface address.
    static func derivedRoutes(
        _ address: Network.InterfaceAddress, on interface: Network.Interface, network: Network
    ) -> [Network.Route] {
        let prefix = Network.masked(address.address, address.prefixLength)
        let full = address.address.count * 8
        var routes: [Network.Route] = [
            Network.Route(
                type: .local, destination: address.address, prefixLength: full, ifindex: interface.ifindex, metric: 0,
                table: Network.localTable, source: address.address)
        ]
        if address.isIPv4 {
            // Only the first address of a subnet is primary and adds the prefix route.
            let primary = interface.addresses.first {
                $0.isIPv4 && $0.prefixLength == address.prefixLength
                    && Network.masked($0.address, $0.prefixLength) == prefix
            }
            guard primary == address else { return routes }
            if interface.isLoopback {
                routes.append(
                    Network.Route(
                        type: .local, destination: prefix, prefixLength: address.prefixLength,
                        ifindex: interface.ifindex, metric: 0, table: Network.localTable, source: address.address))
            } else if address.prefixLength < 32 {
                routes.append(
                    Network.Route(
                        destination: prefix, prefixLength: address.prefixLength, ifindex: interface.ifindex, metric: 0,
                        table: Network.mainTable, source: address.address))
            }
            if address.prefixLength < 31 {
                var broadcast = prefix
                for i in 0..<4 {
                    let bits = address.prefixLength - i * 8
                    if bits < 8 { broadcast[i] |= bits <= 0 ? 0xFF : UInt8(0xFF >> bits) }
                }
                routes.append(
                    Network.Route(
                        type: .broadcast, destination: broadcast, prefixLength: 32, ifindex: interface.ifindex,
                        metric: 0, table: Network.localTable, source: address.address))
            }
        } else if address.prefixLength < 128, !interface.isLoopback {
            routes.append(
                Network.Route(
                    destination: prefix, prefixLength: address.prefixLength, ifindex: interface.ifindex, metric: 256,
                    table: Network.mainTable))
            if interface.forwarding {
                // The subnet-router anycast address of a forwarding interface.
                routes.append(
                    Network.Route(
                        type: .anycast, destination: prefix, prefixLength: 128, ifindex: interface.ifindex, metric: 0,
                        table: Network.localTable))
            }
        }
        return routes
    }

    /// Whether table `table` exists for `family`: local and main always do, others once they
    /// hold a route (`fib_get_table` / `fib6_get_table`; id 0 is main).
    func exists(_ table: UInt32, family: Int) -> Bool {
        let id = table == 0 ? Network.mainTable : table
        return id == Network.mainTable || id == Network.localTable || tables[Key(table: id, family: family)] != nil
    }

    /// `fib_table_lookup` / `fib6_table_lookup` in one table.
    ///
    /// IPv4: the longest matching prefix first; a reject route answers at once, a unicast or
    /// local route only if its device is `oif` (when given), else shorter prefixes are tried.
    /// IPv6: the longest matching prefix with routes, the lowest metric, preferring a route out
    /// of `oif` (the kernel's `rt6_score_route` without `RT6_LOOKUP_F_IFACE`).
    func lookup(table: UInt32, family: Int, destination: [UInt8], oif: UInt32) -> Found {
        let id = table == 0 ? Network.mainTable : table
        var routes = tables[Key(table: id, family: family)] ?? []
        if family == 4, mergedIPv4, id == Network.mainTable {
            routes = (routes + (tables[Key(table: Network.localTable, family: 4)] ?? [])).sorted { a, b in
                a.prefixLength != b.prefixLength ? a.prefixLength > b.prefixLength : a.metric < b.metric
            }
        }
        let matching = routes.filter { Network.contains($0.destination, $0.prefixLength, destination) }
        if family == 4 {
            for route in matching {
                switch route.type {
                case .blackhole, .unreachable, .prohibit: return .reject(route.type)
                case .throw: return .none
                default:
                    if oif != 0, route.ifindex != oif { continue }
                    return .route(route)
                }
            }
            return .none
        }
        guard let longest = matching.first else { return .none }
        let group = matching.filter { $0.prefixLength == longest.prefixLength && $0.metric == longest.metric }
        let chosen = group.first { oif != 0 && $0.ifindex == oif } ?? longest
        switch chosen.type {
        case .throw: return .none
        case .blackhole, .unreachable, .prohibit: return .reject(chosen.type)
        default: return .route(chosen)
        }
    }

    /// A lookup through the policy rules (`fib_lookup` / `fib6_lookup`), for a flow from `source`
    /// to `destination` arriving on `iif` or leaving by `oif`, with `mark`.
    /// `oif` is the table lookups' (IPv4: required device; IPv6: preferred), `ruleOif` the flow's
    /// output device that `oif` rules match.
    func lookup(
        family: Int, source: [UInt8], destination: [UInt8], iif: UInt32, oif: UInt32, mark: UInt32, ruleOif: UInt32
    ) -> Found {
        if family == 4, mergedIPv4 {
            // Main (merged with local), then the default table if it exists.
            let found = lookup(table: Network.mainTable, family: 4, destination: destination, oif: oif)
            if case .route = found { return found }
            if tables[Key(table: Network.defaultTable, family: 4)] != nil {
                return lookup(table: Network.defaultTable, family: 4, destination: destination, oif: oif)
            }
            return found
        }
        for rule in family == 4 ? rules4 : rules6 {
            if let from = rule.from, !Network.contains(from.address, from.prefixLength, source) { continue }
            if let to = rule.to, !Network.contains(to.address, to.prefixLength, destination) { continue }
            if let want = rule.iif, want != 0, want != iif { continue }
            if let want = rule.oif, want != 0, want != ruleOif { continue }
            if let fwmark = rule.fwmark, (mark ^ fwmark) & rule.fwmask != 0 { continue }
            guard exists(rule.table, family: family) else { continue }
            let found = lookup(table: rule.table, family: family, destination: destination, oif: oif)
            if found != .none { return found }
        }
        return .none
    }
}
