import Foundation
import Testing
import MimicCore
import MimicJSON
@testable import MimicLinux

/// The network description (`Network`, `--net FILE`) and the helpers that read it, on Mimic's
/// side; `NetworkNamespaceTests` (MimicKernelTests) compares them with the kernel in a namespace.
@Suite struct NetworkDescriptionTests {
    static let description = """
        {
          "interfaces": [
            {"ifindex": 1, "name": "lo", "loopback": true, "addresses": ["127.0.0.1/8", "::1/128"]},
            {"ifindex": 2, "name": "eth0", "mac": "02:00:00:00:00:02", "addresses": ["10.1.0.1/24", "fd00:1::1/64"]},
            {"ifindex": 3, "name": "eth1", "mac": "02:00:00:00:00:03", "mtu": 9000, "addresses": ["10.2.0.1/24"],
             "forwarding": false, "peer": 7},
            {"ifindex": 4, "name": "eth0.100", "mac": "02:00:00:00:00:02", "vlan": {"id": 100, "parent": 2}}
          ],
          "routes": [
            {"to": "10.9.0.0/16", "via": "10.1.0.254", "metric": 10},
            {"to": "10.9.1.0/24", "via": "10.2.0.254", "dev": "eth1", "src": "10.2.0.1", "mtu": 1400, "mtuLock": true},
            {"type": "blackhole", "to": "192.0.2.0/24"},
            {"to": "10.50.0.0/16", "via": "10.1.0.254", "table": 100},
            {"to": "fd00:9::/32", "via": "fd00:1::fe"}
          ],
          "rules": [{"priority": 100, "table": 100, "fwmark": 7}],
          "neighbours": [
            {"ip": "10.1.0.254", "mac": "02:00:00:00:01:fe", "dev": "eth0"},
            {"ip": "fd00:1::fe", "mac": "02:00:00:00:01:ff", "dev": 2, "state": "delay"}
          ],
          "sockets": [
            {"protocol": "tcp", "local": "10.1.0.1:80", "cookie": 11},
            {"protocol": "tcp", "local": "10.1.0.1:80", "remote": "10.9.0.5:4000", "tcp": {"snd_cwnd": 10, "bytes_acked": 99}},
            {"protocol": "udp", "local": "[::]:53", "v6only": true, "dev": "eth0"}
          ],
          "netnsCookie": 4096,
          "tunnel": {"id": 42, "remote": "192.0.2.9", "local": "192.0.2.1", "options": {"hex": "01020304"}}
        }
        """

    static func network() throws -> Network { try Network(jsonData: Array(description.utf8)) }

    @Test func aDescriptionReadsWhole() throws {
        let network = try Self.network()
        #expect(network.interfaces.map(\.name) == ["lo", "eth0", "eth1", "eth0.100"])
        #expect(
            network.interfaces[2].mtu == 9000 && !network.interfaces[2].forwarding && network.interfaces[2].peer == 7)
        #expect(network.interfaces[0].mtu == 65536 && network.interfaces[0].isLoopback)
        #expect(network.interfaces[3].vlan == Network.VLAN(id: 100, parent: 2))
        let first = network.routes[0]
        #expect(
            first.destination == [10, 9, 0, 0] && first.prefixLength == 16 && first.ifindex == 2,
            "dev from the gateway's subnet")
        #expect(network.routes[4].metric == 1024, "IPv6 routes default to metric 1024")
        #expect(network.rules == [Network.Rule(priority: 100, table: 100, fwmark: 7)])
        #expect(network.neighbours[1].state == .delay && network.neighbours[1].ifindex == 2)
        #expect(network.sockets.map(\.cookie) == [11, 2, 3], "cookies default to the socket's position")
        #expect(network.sockets[0].state == .listen && network.sockets[1].state == .established)
        #expect(
            network.sockets[2].state == .close && network.sockets[2].family == 6 && network.sockets[2].boundIfindex == 2
        )
        #expect(network.netnsCookie == 4096 && network.tunnel?.options == [1, 2, 3, 4])
        #expect(Network.standard.interfaces.map(\.ifindex) == [1, 2])
    }

    @Test func theDocumentedDescriptionReads() throws {
        let page = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Docs/Network.md")
        let text = try String(contentsOf: page, encoding: .utf8)
        let block = try #require(
            text.components(separatedBy: "```json\n").dropFirst().first?.components(separatedBy: "```").first)
        let network = try Network(jsonData: Array(block.utf8))
        #expect(network.interfaces.count == 4 && network.routes.count == 7 && network.sockets.count == 4)
        #expect(network.routes[0].ifindex == 2 && network.routes[6].type == .prohibit)
        #expect(network.sockets[2].cookie == 9000 && network.sockets[3].boundIfindex == 3)
        #expect(
            network.syncookieSecret.ipv4.prefix(2) == [0x00, 0x11]
                && network.syncookieSecret.ipv6 == SyncookieSecret.zero.ipv6)
    }

    @Test func mistakesNameTheirField() {
        let cases: [(String, String)] = [
            (#"{"interfaces": [{"ifindex": 1, "name": "lo"}, {"ifindex": 1, "name": "x"}]}"#, "interfaces[1].ifindex"),
            (#"{"interfaces": [{"ifindex": 1, "name": "a-name-of-sixteen"}]}"#, "interfaces[0].name"),
            (#"{"routes": [{"to": "10.0.0.0/8"}]}"#, "routes[0]: a unicast route needs"),
            (#"{"routes": [{"to": "fd00::/8", "via": "10.0.0.1", "dev": "eth0"}]}"#, "routes[0].via"),
            (#"{"routes": [{"to": "10.7.0.0/16", "via": "172.16.0.1"}]}"#, "routes[0].via: no interface's prefix"),
            (#"{"sockets": [{"protocol": "tcp", "local": "10.0.0.1"}]}"#, "sockets[0].local"),
            (
                #"{"sockets": [{"protocol": "tcp", "local": "10.0.0.1:1", "cookie": 5}, {"protocol": "udp", "local": "10.0.0.1:1", "cookie": 5}]}"#,
                "sockets[1].cookie"
            ),
            (#"{"sockets": [{"protocol": "tcp", "local": "10.0.0.1:1", "tcp": {"cwnd": 1}}]}"#, "sockets[0].tcp.cwnd"),
            (#"{"tunnel": {"id": 1, "remote": "10.0.0.1", "options": {"hex": "0102"}}}"#, "tunnel.options"),
            (#"{"neighbours": [{"ip": "10.0.0.9", "dev": "eth0", "state": "gone"}]}"#, "neighbours[0].state"),
            (#"{"mtu": 1500}"#, "mtu: unknown field"),
            (
                #"{"conntrack": [{"protocol": "sctp", "source": "10.0.0.2:1", "destination": "10.0.0.1:80"}]}"#,
                "conntrack[0].protocol"
            ),
            (
                #"{"conntrack": [{"protocol": "tcp", "source": "10.0.0.2", "destination": "10.0.0.1:80"}]}"#,
                "conntrack[0].source"
            ),
            (
                #"{"conntrack": [{"protocol": "tcp", "source": "10.0.0.2:1", "destination": "[fd00::1]:80"}]}"#,
                "conntrack[0].destination"
            ),
            (
                #"{"conntrack": [{"protocol": "tcp", "source": "10.0.0.2:1", "destination": "10.0.0.1:70000"}]}"#,
                "conntrack[0].destination"
            ),
            (
                #"{"conntrack": [{"protocol": "tcp", "source": "10.0.0.2:1", "destination": "10.0.0.1:80", "state": 1}]}"#,
                "conntrack[0].state: unknown field"
            ),
            (
                #"{"conntrack": [{"protocol": "udp", "source": "10.0.0.2:1", "destination": "10.0.0.1:53", "replySource": "10.0.0.1:53"}]}"#,
                "conntrack[0].replyDestination"
            ),
            (
                #"{"conntrack": [{"protocol": "udp", "source": "10.0.0.2:1", "destination": "10.0.0.1:53", "replySource": "[fd00::1]:53", "replyDestination": "[fd00::2]:1"}]}"#,
                "conntrack[0].replySource"
            ),
            (
                #"{"conntrack": [{"protocol": "tcp", "source": "10.0.0.2:1", "destination": "10.0.0.1:80", "zone": 70000}]}"#,
                "conntrack[0].zone"
            ),
            (#"{"conntrack": {"protocol": "tcp"}}"#, "conntrack"),
        ]
        for (text, path) in cases {
            #expect {
                _ = try Network(jsonData: Array(text.utf8))
            } throws: { error in
                "\(error)".hasPrefix(path) || "\(error)".contains(path)
            }
        }
    }

    @Test func routesAreDerivedFromAddresses() throws {
        let tables = RoutingTables(try Self.network())
        func ip(_ text: String) -> [UInt8] { IPAddress.v4(text) ?? IPAddress.v6(text)! }
        // The own address is local (merged into main without custom rules... here there is one).
        #expect(
            tables.lookup(table: 255, family: 4, destination: ip("10.1.0.1"), oif: 0)
                == .route(
                    Network.Route(
                        type: .local, destination: ip("10.1.0.1"), prefixLength: 32, ifindex: 2, metric: 0, table: 255,
                        source: ip("10.1.0.1"))))
        guard case .route(let broadcast) = tables.lookup(table: 255, family: 4, destination: ip("10.1.0.255"), oif: 0)
        else {
            Issue.record("no broadcast route")
            return
        }
        #expect(broadcast.type == .broadcast)
        guard case .route(let connected) = tables.lookup(table: 254, family: 4, destination: ip("10.1.0.77"), oif: 0)
        else {
            Issue.record("no connected route")
            return
        }
        #expect(connected.gateway == nil && connected.ifindex == 2 && connected.source == ip("10.1.0.1"))
        // Longest prefix first; an output device that does not match falls back to shorter ones.
        guard case .route(let longest) = tables.lookup(table: 254, family: 4, destination: ip("10.9.1.1"), oif: 0),
            case .route(let viaEth0) = tables.lookup(table: 254, family: 4, destination: ip("10.9.1.1"), oif: 2)
        else {
            Issue.record("no route to 10.9.1.1")
            return
        }
        #expect(longest.prefixLength == 24 && viaEth0.prefixLength == 16)
        #expect(tables.lookup(table: 254, family: 4, destination: ip("192.0.2.9"), oif: 0) == .reject(.blackhole))
        #expect(tables.lookup(table: 254, family: 4, destination: ip("172.16.0.1"), oif: 0) == .none)
        // The fwmark rule sends marked flows to table 100.
        let marked = tables.lookup(
            family: 4, source: ip("10.1.0.5"), destination: ip("10.50.1.1"), iif: 2, oif: 0, mark: 7, ruleOif: 0)
        let unmarked = tables.lookup(
            family: 4, source: ip("10.1.0.5"), destination: ip("10.50.1.1"), iif: 2, oif: 0, mark: 0, ruleOif: 0)
        #expect(unmarked == .none)
        guard case .route(let table100) = marked else {
            Issue.record("the rule did not apply")
            return
        }
        #expect(table100.table == 100)
        #expect(tables.exists(100, family: 4) && !tables.exists(101, family: 4) && tables.exists(0, family: 6))
    }

    // MARK: Helpers

    /// Stores the IPv4 tuple 10.9.0.5:4000 -> 10.1.0.1:80 at r10-16 and calls helper `id`
    /// (a lookup) with length `length`; r6 keeps the context.
    static func lookup(_ id: Int, source: String = "0x0500090a", length: Int = 12) -> String {
        """
        mov %r6, %r1
        mov %r2, \(source)
        stxw [%r10-16], %r2
        mov %r2, 0x0100010a
        stxw [%r10-12], %r2
        mov %r2, 0x5000a00f
        stxw [%r10-8], %r2
        mov %r1, %r6
        mov %r2, %r10
        add %r2, -16
        mov %r3, \(length)
        mov %r4, -1
        mov %r5, 0
        call \(id)
        """
    }

    @Test func socketLookupsFindAndMustRelease() throws {
        let configuration = LinuxConfiguration(network: try Self.network())
        let context = SKBContext(packet: ContextTestSupport.udpPacket, ifindex: 2)
        // The established socket (its state, 1) is found, then released.
        let (state, _) = try ContextTestSupport.run(
            Self.lookup(84) + """

                jeq %r0, 0, +5
                ldxw %r7, [%r0+72]
                mov %r1, %r0
                call 86
                mov %r0, %r7
                exit
                mov %r0, 99
                exit
                """, context: context, configuration: configuration)
        #expect(state == 1)
        // Another peer finds the listener (state 10).
        let (listener, _) = try ContextTestSupport.run(
            Self.lookup(84, source: "0x0600090a") + """

                jeq %r0, 0, +5
                ldxw %r7, [%r0+72]
                mov %r1, %r0
                call 86
                mov %r0, %r7
                exit
                mov %r0, 99
                exit
                """, context: context, configuration: configuration)
        #expect(listener == 10)
        // Wrong tuple size or a flag: nothing.
        #expect(
            try ContextTestSupport.run(
                Self.lookup(84, length: 13) + "\nexit", context: context, configuration: configuration
            ).0 == 0)
        // Holding the reference at exit is refused, as the verifier refuses it.
        #expect {
            _ = try ContextTestSupport.run(
                Self.lookup(84) + "\nmov %r0, 0\nexit", context: context, configuration: configuration)
        } throws: { error in
            guard let error = error as? ExecutionError else { return false }
            return error.kind.code == .unreleasedReference && "\(error)".contains("tcp socket 10.1.0.1:80")
        }
        // Releasing what was not acquired is refused too.
        #expect(throws: ExecutionError.self) {
            _ = try ContextTestSupport.run(
                "mov %r6, %r1\nmov %r1, %r10\nadd %r1, -8\ncall 86\nexit", context: context,
                configuration: configuration)
        }
    }

    @Test func tcpSockAndListenerFollowTheSocket() throws {
        let configuration = LinuxConfiguration(network: try Self.network())
        let context = SKBContext(packet: ContextTestSupport.udpPacket, ifindex: 2)
        // bpf_tcp_sock of the established socket: bytes_acked (offset 88) is 99; get_listener_sock 0.
        let (acked, _) = try ContextTestSupport.run(
            Self.lookup(84) + """

                mov %r7, %r0
                mov %r1, %r0
                call 98
                mov %r8, %r0
                mov %r1, %r7
                call 96
                ldxdw %r9, [%r0+88]
                mov %r1, %r7
                call 86
                add %r9, %r8
                mov %r0, %r9
                exit
                """, context: context, configuration: configuration)
        #expect(acked == 99)
    }

    @Test func theTunnelKeyReadsBackAsTheKernelStoresIt() throws {
        let configuration = LinuxConfiguration(network: try Self.network())
        let context = SKBContext(packet: ContextTestSupport.udpPacket)
        // get_tunnel_key: id 42, remote_ipv4 192.0.2.9 in host order.
        let get = """
            mov %r2, %r10
            add %r2, -48
            mov %r3, 44
            mov %r4, 0
            call 20
            jne %r0, 0, +3
            ldxw %r0, [%r10-44]
            ldxw %r1, [%r10-48]
            add %r0, %r1
            exit
            """
        #expect(try ContextTestSupport.run(get, context: context, configuration: configuration).0 == 0xC000_0209 + 42)
        // IPv6 flag on IPv4 metadata: -EPROTO; no metadata at all: -EINVAL; options: 4 bytes.
        let ipv6 = get.replacingOccurrences(of: "mov %r4, 0", with: "mov %r4, 1")
        #expect(
            try ContextTestSupport.run(ipv6, context: context, configuration: configuration).0
                == UInt64(bitPattern: -71))
        #expect(try ContextTestSupport.run(get, context: context).0 == UInt64(bitPattern: -22))
        let options = "mov %r2, %r10\nadd %r2, -8\nmov %r3, 8\ncall 29\nexit"
        #expect(try ContextTestSupport.run(options, context: context, configuration: configuration).0 == 4)
        // set_tunnel_opt needs this run's set_tunnel_key first.
        let setOptions = "mov %r2, %r10\nadd %r2, -8\nmov %r3, 4\ncall 30\nexit"
        #expect(
            try ContextTestSupport.run(setOptions, context: context, configuration: configuration).0
                == UInt64(bitPattern: -22))
    }

    @Test func getNetnsCookieIsTheNamespaces() throws {
        let configuration = LinuxConfiguration(network: try Self.network())
        var socket = SocketInfo()
        socket.family = 2
        let with = SKBContext(packet: ContextTestSupport.udpPacket, socket: socket)
        #expect(try ContextTestSupport.run("call 122\nexit", context: with, configuration: configuration).0 == 4096)
        #expect(
            try ContextTestSupport.run("mov %r1, 0\ncall 122\nexit", context: with, configuration: configuration).0 == 1
        )
    }

    /// The Swift example of Docs/Network.md, and the lookup it enables.
    @Test func theDocumentedHostAPIExampleRoutes() throws {
        var network = Network(interfaces: [
            .loopback,
            .init(
                ifindex: 2, name: "eth0", mac: [2, 0, 0, 0, 0, 1],
                addresses: [.init(address: [10, 0, 0, 1], prefixLength: 24)]),
        ])
        network.routes = [.init(destination: [0, 0, 0, 0], prefixLength: 0, gateway: [10, 0, 0, 254], ifindex: 2)]
        network.neighbours = [.init(address: [10, 0, 0, 254], mac: [2, 0, 0, 0, 0, 0xFE], ifindex: 2)]
        try network.check()
        let state = NetworkState(network)
        var params = [UInt8](repeating: 0, count: 64)
        params[0] = 2
        put32(&params, 8, 2)
        params.replaceSubrange(32..<36, with: [192, 0, 2, 1])
        #expect(RoutingHelpers.lookup(&params, family: 4, flags: 0, checkMTU: true, state) == 0)
        #expect(Array(params[32..<36]) == [10, 0, 0, 254] && Array(params[58..<64]) == [2, 0, 0, 0, 0, 0xFE])
        #expect(get32(params, 8) == 2 && params[6] == 0xDC && params[7] == 0x05, "ifindex 2, mtu_result 1500")
    }

    @Test func castsTestTheTypeAndRefuseFieldReads() throws {
        let configuration = LinuxConfiguration(network: try Self.network())
        let context = SKBContext(packet: ContextTestSupport.udpPacket, ifindex: 2)
        // skc_to_tcp_sock is non-NULL for the TCP socket, skc_to_udp6_sock NULL; release by the cast.
        let (value, _) = try ContextTestSupport.run(
            Self.lookup(84) + """

                mov %r6, %r0
                mov %r1, %r0
                call 140
                mov %r7, %r0
                mov %r1, %r6
                call 137
                mov %r8, %r0
                mov %r1, %r0
                call 86
                mov %r0, %r7
                jne %r8, 0, +1
                add %r0, 100
                exit
                """, context: context, configuration: configuration)
        #expect(value == 0, "udp6_sock NULL, tcp_sock not")
        #expect {
            _ = try ContextTestSupport.run(
                Self.lookup(84) + "\nmov %r6, %r0\nmov %r1, %r0\ncall 137\nldxw %r0, [%r0+0]\nexit",
                context: context, configuration: configuration)
        } throws: { error in
            "\(error)".contains("struct tcp_sock (the kernel's layout is not emulated)")
        }
    }

    @Test func anUncheckedInvalidDescriptionFailsTheHelpers() throws {
        var network = Network.standard
        network.neighbours = [.init(address: [10, 0, 0, 9], mac: [2, 0, 0], ifindex: 2)]
        #expect(throws: JSONError.self) { try network.check() }
        let context = SKBContext(packet: ContextTestSupport.udpPacket, ifindex: 2)
        #expect {
            _ = try ContextTestSupport.run(
                "mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nstxw [%r3+0], %r2\nmov %r4, 0\nmov %r5, 0\ncall 163\nexit",
                context: context, configuration: LinuxConfiguration(network: network))
        } throws: { error in
            "\(error)".contains("the network description is invalid: neighbours[0].mac: a MAC address has 6 bytes")
        }
    }
}
