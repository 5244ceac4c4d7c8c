import MimicJSON

/// Reading a network description from JSON (`mimic run --net FILE`; Docs/Network.md).
extension Network {
    /// The largest description read: checked before parsing.
    public static let maxFileSize = 16 << 20
    /// The most interfaces, routes, rules, neighbours or sockets one description may list.
    public static let maxEntries = 65536

    /// Reads a description file's bytes. Every problem is an error naming the JSON path of the
    /// field (`routes[2].via: expected an IPv4 or IPv6 address, got "10.0.0"`); unknown fields are
    /// errors too. An absent member keeps `Network.standard`'s part only for `interfaces`; the
    /// other lists default to empty.
    public init(jsonData data: some Collection<UInt8>) throws(JSONError) {
        guard data.count <= Self.maxFileSize else {
            throw JSONError(path: "", "the file has \(data.count) bytes, more than the \(Self.maxFileSize) allowed")
        }
        try self.init(json: JSONField(try JSONValue.parse(data), path: ""))
    }

    /// Reads a description from a parsed JSON object.
    public init(json: JSONField) throws(JSONError) {
        try json.object(knownMembers: [
            "interfaces", "routes", "rules", "neighbours", "sockets", "netnsCookie", "tunnel", "tcpSyncookies",
            "conntrack", "syncookieSecret", "xfrm",
        ])
        func list(_ name: String) throws(JSONError) -> [JSONField] {
            let items = try json[name].optionalElements()
            guard items.count <= Self.maxEntries else {
                throw json[name].error("\(items.count) entries exceed the limit of \(Self.maxEntries)")
            }
            return items
        }
        var interfaces: [Interface] = []
        if json["interfaces"].isMissing {
            interfaces = Network.standard.interfaces
        } else {
            for item in try list("interfaces") { interfaces.append(try Self.interface(item)) }
        }
        var network = Network(interfaces: interfaces)
        for item in try list("routes") { network.routes.append(try network.route(item)) }
        for item in try list("rules") { network.rules.append(try network.rule(item)) }
        for item in try list("neighbours") { network.neighbours.append(try network.neighbour(item)) }
        for (index, item) in try list("sockets").enumerated() {
            network.sockets.append(try network.socket(item, index: index))
        }
        network.netnsCookie = try json["netnsCookie"].optionalInteger(UInt64.self) ?? 1
        network.tcpSyncookies = try json["tcpSyncookies"].optionalInteger(Int.self) ?? 1
        guard (0...2).contains(network.tcpSyncookies) else { throw json["tcpSyncookies"].error("expected 0, 1 or 2") }
        if !json["syncookieSecret"].isMissing {
            network.syncookieSecret = try Self.syncookieSecret(json["syncookieSecret"])
        }
        if !json["tunnel"].isMissing { network.tunnel = try Self.tunnel(json["tunnel"]) }
        for item in try list("conntrack") { network.conntrack.append(try Self.conntrackEntry(item)) }
        for item in try list("xfrm") { network.xfrm.append(try Self.xfrmState(item)) }
        try network.check(root: json)
        self = network
    }

    /// Checks what a description built in Swift must satisfy too (the JSON reader calls it):
    /// addresses of 4 or 16 bytes with prefix lengths that fit, unique, non-zero ifindexes and
    /// names of at most 15 bytes, 6-byte MACs, MTUs of 68–65536, devices that routes,
    /// neighbours, sockets and VLANs name exist, and unique socket cookies. An emulator given a
    /// description that fails it runs, but every networking helper fails naming the problem.
    public func check() throws(JSONError) { try check(root: JSONField(nil, path: "")) }

    func check(root: JSONField) throws(JSONError) {
        func address(_ bytes: [UInt8], _ field: JSONField) throws(JSONError) {
            guard bytes.count == 4 || bytes.count == 16 else {
                throw field.error("an address has 4 (IPv4) or 16 (IPv6) bytes, not \(bytes.count)")
            }
        }
        func prefix(_ bytes: [UInt8], _ length: Int, _ field: JSONField) throws(JSONError) {
            try address(bytes, field)
            guard (0...bytes.count * 8).contains(length) else {
                throw field.error("the prefix length must be 0...\(bytes.count * 8), got \(length)")
            }
        }
        for (i, interface) in interfaces.enumerated() {
            for (j, item) in interface.addresses.enumerated() {
                try prefix(item.address, item.prefixLength, root["interfaces"].element(i)["addresses"].element(j))
            }
        }
        for (i, route) in routes.enumerated() {
            let field = root["routes"].element(i)
            try prefix(route.destination, route.prefixLength, field["to"])
            if let gateway = route.gateway { try address(gateway, field["via"]) }
            if let source = route.source, source.count != route.destination.count {
                throw field["src"].error("the source address is not of the route's family")
            }
        }
        for (i, rule) in rules.enumerated() {
            for (key, item) in [("from", rule.from), ("to", rule.to)] {
                if let item { try prefix(item.address, item.prefixLength, root["rules"].element(i)[key]) }
            }
        }
        for (i, neighbour) in neighbours.enumerated() {
            try address(neighbour.address, root["neighbours"].element(i)["ip"])
            guard neighbour.mac.count == 6 else {
                throw root["neighbours"].element(i)["mac"].error("a MAC address has 6 bytes")
            }
        }
        for (i, socket) in sockets.enumerated() {
            let field = root["sockets"].element(i)
            try address(socket.localAddress, field["local"])
            guard socket.remoteAddress.count == socket.localAddress.count else {
                throw field["remote"].error("the remote address is not of the local one's family")
            }
        }
        if let tunnel {
            try address(tunnel.remote, root["tunnel"]["remote"])
            guard tunnel.local.count == tunnel.remote.count else {
                throw root["tunnel"]["local"].error("not of the remote address's family")
            }
            guard tunnel.options.count % 4 == 0, tunnel.options.count <= 252 else {
                throw root["tunnel"]["options"].error("tunnel options are whole 4-byte words, at most 252 bytes")
            }
        }
        for (family, secret) in [("ipv4", syncookieSecret.ipv4), ("ipv6", syncookieSecret.ipv6)]
        where secret.count != SyncookieSecret.size {
            throw root["syncookieSecret"][family].error(
                "a syncookie secret has \(SyncookieSecret.size) bytes, not \(secret.count)")
        }
        guard xfrm.count <= Network.xfrmMaxDepth else {
            throw root["xfrm"].error(
                "a packet passes at most \(Network.xfrmMaxDepth) xfrm states (XFRM_MAX_DEPTH), got \(xfrm.count)")
        }
        for (i, state) in xfrm.enumerated() { try address(state.remote, root["xfrm"].element(i)["remote"]) }
        var seen = Set<UInt32>()
        var names = Set<String>()
        for (i, interface) in interfaces.enumerated() {
            let field = root["interfaces"].element(i)
            guard interface.ifindex != 0, seen.insert(interface.ifindex).inserted else {
                throw field["ifindex"].error("ifindex \(interface.ifindex) is 0 or used twice")
            }
            guard !interface.name.isEmpty, interface.name.utf8.count <= 15, names.insert(interface.name).inserted else {
                throw field["name"].error("\"\(interface.name)\" is empty, longer than 15 bytes or used twice")
            }
            guard interface.mac.count == 6 else { throw field["mac"].error("a MAC address has 6 bytes") }
            guard (68...65536).contains(interface.mtu) else {
                throw field["mtu"].error("expected an MTU of 68...65536, got \(interface.mtu)")
            }
        }
        for (i, described) in interfaces.enumerated() {
            let field = root["interfaces"].element(i)
            if let vlan = described.vlan, interface(ifindex: vlan.parent) == nil || vlan.id >= 4095 {
                throw field["vlan"].error(
                    "the parent device \(vlan.parent) does not exist, or id \(vlan.id) is not 0...4094")
            }
        }
        func requireDevice(_ ifindex: UInt32?, _ field: JSONField) throws(JSONError) {
            if let ifindex, ifindex != 0, interface(ifindex: ifindex) == nil {
                throw field.error("no interface has ifindex \(ifindex)")
            }
        }
        for (i, route) in routes.enumerated() {
            let field = root["routes"].element(i)
            try requireDevice(route.ifindex, field["dev"])
            if route.type == .unicast, route.ifindex == nil, route.gateway == nil {
                throw field.error("a unicast route needs \"dev\" or \"via\"")
            }
        }
        for (i, neighbour) in neighbours.enumerated() {
            try requireDevice(neighbour.ifindex, root["neighbours"].element(i)["dev"])
        }
        var cookies = Set<UInt64>()
        for (i, socket) in sockets.enumerated() {
            let field = root["sockets"].element(i)
            try requireDevice(socket.boundIfindex, field["dev"])
            guard socket.cookie != 0, cookies.insert(socket.cookie).inserted else {
                throw field["cookie"].error("cookie \(socket.cookie) is 0 or used twice")
            }
        }
    }

    // MARK: Members

    static func interface(_ item: JSONField) throws(JSONError) -> Interface {
        try item.object(knownMembers: [
            "ifindex", "name", "mac", "mtu", "addresses", "forwarding", "loopback", "peer", "vlan", "rxMetadata",
        ])
        let isLoopback = try item["loopback"].optionalBool() ?? false
        var interface = Interface(
            ifindex: try item["ifindex"].integer(UInt32.self), name: try item["name"].string(),
            mac: try item["mac"].optionalString().map { text throws(JSONError) in try mac(text, item["mac"]) }
                ?? [0, 0, 0, 0, 0, 0],
            mtu: try item["mtu"].optionalInteger(UInt32.self) ?? (isLoopback ? 65536 : 1500),
            forwarding: try item["forwarding"].optionalBool() ?? true, isLoopback: isLoopback,
            peer: try item["peer"].optionalInteger(UInt32.self))
        for field in try item["addresses"].optionalElements() {
            let (address, length) = try prefix(field, requireLength: true)
            interface.addresses.append(InterfaceAddress(address: address, prefixLength: length))
        }
        let vlan = item["vlan"]
        if !vlan.isMissing {
            try vlan.object(knownMembers: ["id", "parent"])
            interface.vlan = VLAN(
                id: try vlan["id"].integer(UInt16.self), parent: try vlan["parent"].integer(UInt32.self))
        }
        if !item["rxMetadata"].isMissing { interface.rxMetadata = try XDPRxMetadata(json: item["rxMetadata"]) }
        return interface
    }

    func route(_ item: JSONField) throws(JSONError) -> Route {
        try item.object(knownMembers: ["type", "to", "via", "dev", "metric", "table", "src", "mtu", "mtuLock"])
        var type = RouteType.unicast
        if let text = try item["type"].optionalString() {
            guard let known = RouteType(rawValue: text) else {
                throw item["type"].error(
                    "expected one of \(RouteType.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\"")
            }
            type = known
        }
        let gateway = try item["via"].optionalString().map { text throws(JSONError) in
            try Self.address(text, item["via"])
        }
        let destination: [UInt8]
        let length: Int
        if try item["to"].string() == "default" {
            destination = [UInt8](repeating: 0, count: gateway?.count ?? 4)
            length = 0
        } else {
            (destination, length) = try Self.prefix(item["to"], requireLength: false)
        }
        let source = try item["src"].optionalString().map { text throws(JSONError) in
            try Self.address(text, item["src"])
        }
        if let source, source.count != destination.count {
            throw item["src"].error("the source address is not of the route's family")
        }
        if let gateway, gateway.count == 16, destination.count == 4, item["dev"].isMissing {
            throw item["dev"].error("an IPv4 route via an IPv6 gateway needs \"dev\"")
        }
        if let gateway, gateway.count == 4, destination.count == 16 {
            throw item["via"].error("an IPv6 route cannot go via an IPv4 gateway")
        }
        if type != .unicast, type != .local, gateway != nil {
            throw item["via"].error("a \(type.rawValue) route has no gateway")
        }
        var ifindex = try device(item["dev"])
        if ifindex == nil, type == .unicast, let gateway {
            // As `ip route add ... via GW` without dev: the device whose connected prefix holds GW.
            ifindex =
                interfaces.first { interface in
                    interface.addresses.contains {
                        Network.contains(Network.masked($0.address, $0.prefixLength), $0.prefixLength, gateway)
                    }
                }?.ifindex
            guard ifindex != nil else {
                throw item["via"].error("no interface's prefix reaches the gateway (give \"dev\")")
            }
        }
        return Route(
            type: type, destination: destination, prefixLength: length, gateway: gateway, ifindex: ifindex,
            metric: try item["metric"].optionalInteger(UInt32.self),
            table: try item["table"].optionalInteger(UInt32.self) ?? Network.mainTable, source: source,
            mtu: try item["mtu"].optionalInteger(UInt32.self), mtuLock: try item["mtuLock"].optionalBool() ?? false)
    }

    func rule(_ item: JSONField) throws(JSONError) -> Rule {
        try item.object(knownMembers: ["priority", "table", "family", "fwmark", "fwmask", "from", "to", "iif", "oif"])
        var rule = Rule(
            priority: try item["priority"].integer(UInt32.self), table: try item["table"].integer(UInt32.self),
            family: try item["family"].optionalInteger(Int.self) ?? 4,
            fwmark: try item["fwmark"].optionalInteger(UInt32.self),
            fwmask: try item["fwmask"].optionalInteger(UInt32.self) ?? 0xFFFF_FFFF,
            iif: try device(item["iif"]), oif: try device(item["oif"]))
        guard rule.family == 4 || rule.family == 6 else { throw item["family"].error("expected 4 or 6") }
        for key in ["from", "to"] where !item[key].isMissing {
            let (address, length) = try Self.prefix(item[key], requireLength: false)
            guard address.count == (rule.family == 4 ? 4 : 16) else {
                throw item[key].error("the prefix is not of the rule's family (\(rule.family))")
            }
            let prefix = InterfaceAddress(address: Network.masked(address, length), prefixLength: length)
            if key == "from" { rule.from = prefix } else { rule.to = prefix }
        }
        return rule
    }

    func neighbour(_ item: JSONField) throws(JSONError) -> Neighbour {
        try item.object(knownMembers: ["ip", "mac", "dev", "state"])
        var state = NeighbourState.permanent
        if let text = try item["state"].optionalString() {
            guard let known = NeighbourState(rawValue: text) else {
                throw item["state"].error(
                    "expected one of \(NeighbourState.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\""
                )
            }
            state = known
        }
        guard let ifindex = try device(item["dev"]) else { throw item["dev"].error("a neighbour needs its device") }
        return Neighbour(
            address: try Self.address(try item["ip"].string(), item["ip"]),
            mac: try Self.mac(try item["mac"].optionalString() ?? "00:00:00:00:00:00", item["mac"]),
            ifindex: ifindex, state: state)
    }

    func socket(_ item: JSONField, index: Int) throws(JSONError) -> Socket {
        try item.object(knownMembers: [
            "protocol", "local", "remote", "state", "dev", "v6only", "cookie", "mark", "priority", "tcp", "synOverflow",
            "reuseport", "uid", "cgroup", "classid",
        ])
        let text = try item["protocol"].string()
        guard let transport = Socket.TransportProtocol(rawValue: text) else {
            throw item["protocol"].error("expected \"tcp\" or \"udp\", got \"\(text)\"")
        }
        let (local, localPort) = try Self.endpoint(item["local"])
        var remote: [UInt8]?
        var remotePort: UInt16 = 0
        if !item["remote"].isMissing {
            let (address, port) = try Self.endpoint(item["remote"])
            guard address.count == local.count else {
                throw item["remote"].error("the remote address is not of the local one's family")
            }
            (remote, remotePort) = (address, port)
        }
        var state: Socket.State?
        if let name = try item["state"].optionalString() {
            guard let known = Socket.State(rawValue: name) else {
                throw item["state"].error(
                    "expected one of \(Socket.State.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(name)\"")
            }
            state = known
        }
        var tcp: [String: UInt64] = [:]
        for (key, field) in try item["tcp"].isMissing ? [] : item["tcp"].members() {
            guard TCPSockLayout.offsets[key] != nil else {
                throw field.error(
                    "unknown field \"\(key)\" (known: \(TCPSockLayout.fields.map(\.name).joined(separator: ", ")))")
            }
            tcp[key] = try field.integer(UInt64.self)
        }
        var socket = Socket(
            transport: transport, localAddress: local, localPort: localPort, remoteAddress: remote,
            remotePort: remotePort, state: state, boundIfindex: try device(item["dev"]) ?? 0,
            v6only: try item["v6only"].optionalBool() ?? false,
            cookie: try item["cookie"].optionalInteger(UInt64.self) ?? UInt64(index + 1),
            mark: try item["mark"].optionalInteger(UInt32.self) ?? 0,
            priority: try item["priority"].optionalInteger(UInt32.self) ?? 0, tcp: tcp)
        socket.synOverflow = try item["synOverflow"].optionalBool() ?? false
        socket.reuseport = try item["reuseport"].optionalBool() ?? false
        socket.uid = try item["uid"].optionalInteger(UInt32.self) ?? 0
        socket.classid = try item["classid"].optionalInteger(UInt32.self) ?? 0
        if let cgroup = try item["cgroup"].optionalString() {
            guard cgroup.hasPrefix("/") else {
                throw item["cgroup"].error("expected a cgroup path from /, got \"\(cgroup)\"")
            }
            socket.cgroup = cgroup
        }
        return socket
    }

    /// `syncookieSecret`: `ipv4` and `ipv6`, 32 bytes each (base64 or `{"hex": ...}`); a family
    /// left out keeps zeros.
    static func syncookieSecret(_ item: JSONField) throws(JSONError) -> SyncookieSecret {
        try item.object(knownMembers: ["ipv4", "ipv6"])
        var secret = SyncookieSecret.zero
        for family in ["ipv4", "ipv6"] where !item[family].isMissing {
            let bytes = try item[family].optionalBase64(limit: SyncookieSecret.size)
            guard bytes.count == SyncookieSecret.size else {
                throw item[family].error(
                    "a syncookie secret has \(SyncookieSecret.size) bytes (two SipHash keys), got \(bytes.count)")
            }
            if family == "ipv4" { secret.ipv4 = bytes } else { secret.ipv6 = bytes }
        }
        return secret
    }

    static func tunnel(_ item: JSONField) throws(JSONError) -> TunnelMetadata {
        try item.object(knownMembers: ["id", "remote", "local", "tos", "ttl", "label", "options", "flags"])
        let remote = try address(try item["remote"].string(), item["remote"])
        let local = try item["local"].optionalString().map { text throws(JSONError) in try address(text, item["local"])
        }
        if let local, local.count != remote.count { throw item["local"].error("not of the remote address's family") }
        let options = try item["options"].optionalBase64(limit: 252)
        guard options.count % 4 == 0 else { throw item["options"].error("tunnel options are whole 4-byte words") }
        return TunnelMetadata(
            id: try item["id"].integer(UInt32.self), remote: remote, local: local,
            tos: try item["tos"].optionalInteger(UInt8.self) ?? 0,
            ttl: try item["ttl"].optionalInteger(UInt8.self) ?? 64,
            label: try item["label"].optionalInteger(UInt32.self) ?? 0, options: options,
            flags: try item["flags"].optionalInteger(UInt16.self) ?? 0x04)
    }

    static func xfrmState(_ item: JSONField) throws(JSONError) -> XfrmState {
        try item.object(knownMembers: ["reqid", "spi", "remote"])
        return XfrmState(
            reqid: try item["reqid"].optionalInteger(UInt32.self) ?? 0, spi: try item["spi"].integer(UInt32.self),
            remote: try address(try item["remote"].string(), item["remote"]))
    }

    // MARK: Values

    /// A device by name or ifindex; nil when absent.
    func device(_ field: JSONField) throws(JSONError) -> UInt32? {
        if field.isMissing { return nil }
        if case .number? = field.value { return try field.integer(UInt32.self) }
        let name = try field.string()
        guard let found = interfaces.first(where: { $0.name == name }) else {
            throw field.error("no interface is named \"\(name)\"")
        }
        return found.ifindex
    }

    static func address(_ text: String, _ field: JSONField) throws(JSONError) -> [UInt8] {
        guard let bytes = IPAddress.v4(text) ?? IPAddress.v6(text) else {
            throw field.error("expected an IPv4 or IPv6 address, got \"\(text)\"")
        }
        return bytes
    }

    /// `10.0.0.0/24`, `2001:db8::/32`; without `/N`, a host prefix unless `requireLength`.
    static func prefix(_ field: JSONField, requireLength: Bool) throws(JSONError) -> ([UInt8], Int) {
        let text = try field.string()
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, !(requireLength && parts.count == 1) else {
            throw field.error("expected ADDRESS/PREFIX-LENGTH, got \"\(text)\"")
        }
        let address = try address(String(parts[0]), field)
        let length = parts.count == 2 ? Int(parts[1]) : address.count * 8
        guard let length, (0...address.count * 8).contains(length) else {
            throw field.error("the prefix length must be 0...\(address.count * 8), got \"\(text)\"")
        }
        return (address, length)
    }

    /// `10.0.0.1:80`, `[2001:db8::1]:80`.
    static func endpoint(_ field: JSONField) throws(JSONError) -> ([UInt8], UInt16) {
        let text = try field.string()
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            throw field.error("expected ADDRESS:PORT (IPv6 as [ADDRESS]:PORT), got \"\(text)\"")
        }
        var host = text[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
            guard let bytes = IPAddress.v6(String(host)) else {
                throw field.error("expected an IPv6 address in [...], got \"\(text)\"")
            }
            return (bytes, port)
        }
        guard let bytes = IPAddress.v4(String(host)) else {
            throw field.error("expected ADDRESS:PORT (IPv6 as [ADDRESS]:PORT), got \"\(text)\"")
        }
        return (bytes, port)
    }

    static func mac(_ text: String, _ field: JSONField) throws(JSONError) -> [UInt8] {
        guard let bytes = SKBContext.macAddress(text) else {
            throw field.error("expected a MAC address like 02:00:00:00:00:01, got \"\(text)\"")
        }
        return bytes
    }
}

extension JSONField {
    /// `true` / `false`, or nil when absent.
    func optionalBool() throws(JSONError) -> Bool? {
        if isMissing { return nil }
        guard case .bool(let flag)? = value else { throw error("expected true or false") }
        return flag
    }

    /// The path of element `i` of this array (for errors about values already read).
    func element(_ i: Int) -> JSONField {
        JSONField(nil, path: path.isEmpty ? "[\(i)]" : "\(path)[\(i)]")
    }
}
