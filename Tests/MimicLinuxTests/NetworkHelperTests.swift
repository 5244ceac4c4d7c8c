import Testing
import MimicCore
import MimicMemory
import MimicTestSupport
@testable import MimicLinux

/// The networking helpers' Mimic-side behaviour where the kernel's test run cannot be compared
/// (it attaches a dummy socket, runs in the caller's cgroup and namespace), and objects that
/// define map types Mimic does not emulate. `FixtureComparisonTests` compares the rest
/// (`net_xdp.o`, `net_skb.o`) with the kernel.
@Suite struct NetworkHelperTests {
    static let ipv4 = ContextTestSupport.udpPacket
    static let arp = Array(ContextTestSupport.udpPacket[0..<12]) + [0x08, 0x06] + [UInt8](repeating: 0, count: 28)
    static func errno(_ e: Errno) -> UInt64 { UInt64(bitPattern: -Int64(e.rawValue)) }

    static func run(_ source: String, _ context: any Context) throws -> UInt64 {
        try ContextTestSupport.run(source, context: context).0
    }

    @Test func theNetworkingHelpersAreEmulated() {
        let ids = Set(LinuxEmulator().implementedHelperIDs)
        let helpers: [HelperID] = [
            .xdpLoadBytes, .xdpStoreBytes, .xdpGetBuffLen, .checkMtu, .skbPullData, .skbLoadBytesRelative,
            .csumUpdate, .csumLevel, .setHash, .getHashRecalc, .setHashInvalid, .skbChangeProto,
            .skbChangeType, .skbEcnSetCe, .getSocketCookie, .getNetnsCookie, .skbCgroupId,
            .skbAncestorCgroupId, .getRouteRealm, .skbSetTstamp, .fibLookup, .redirectNeigh, .redirectPeer,
            .skLookupTcp, .skLookupUdp, .skcLookupTcp, .skRelease, .skFullsock, .tcpSock, .getListenerSock,
            .skbGetTunnelKey, .skbSetTunnelKey, .skbGetTunnelOpt, .skbSetTunnelOpt, .tcpGenSyncookie,
            .tcpCheckSyncookie, .skcToTcpSock, .skcToTcp6Sock, .skcToTcpTimewaitSock, .skcToTcpRequestSock,
            .skcToUdp6Sock, .skcToUnixSock, .skcToMptcpSock,
        ]
        for helper in helpers { #expect(ids.contains(helper.rawValue), "\(helper.name) is not emulated") }
    }

    // MARK: Map types Mimic does not emulate

    @Test func objectsDefiningUnemulatedMapTypesLoad() throws {
        let fixture = try Fixture.load("unemulated_maps")
        let arena = try fixture.map("arena", as: UnsupportedMap.self)
        #expect(arena.keys.isEmpty && arena.update(key: [], value: [], flags: .any, cpu: 0) == .notSupported)
        _ = try fixture.map("socks", as: SocketMap.self)
        _ = try fixture.map("cgroups", as: CgroupArrayMap.self)
        try fixture.run("count")
        try fixture.run("count")
        #expect(
            try fixture.map("calls").value(forKey: [0, 0, 0, 0]) == le64(2), "programs that leave those maps alone run")
        #expect(try fixture.run("redirect_lookup").state == .exited(0), "an empty sockmap slot")
        #expect {
            try fixture.run("arena_lookup")
        } throws: { error in
            "\(error)".contains("map arena is a BPF_MAP_TYPE_ARENA, which Mimic does not emulate")
        }
    }

    @Test func theHostAPIStillRefusesThem() {
        let (vm, emulator) = makeLinuxVM()
        #expect(throws: MapError.self) {
            try emulator.createMap(.init(name: "a", type: .arena, keySize: 0, valueSize: 0, maxEntries: 1), in: vm)
        }
        #expect(
            !LinuxEmulator.emulates(.arena) && !LinuxEmulator.emulates(.structOps) && LinuxEmulator.emulates(.sockMap)
                && LinuxEmulator.emulates(.devMap))
    }

    @Test func bloomFiltersHaveNoFalseNegatives() throws {
        let (vm, emulator) = makeLinuxVM()
        let attributes = MapAttributes(name: "seen", type: .bloomFilter, keySize: 0, valueSize: 4, maxEntries: 100)
        let bloom = try #require(try emulator.createMap(attributes, mapExtra: 3, in: vm) as? BloomFilterMap)
        #expect(bloom.hashCount == 3 && bloom.bitCount == 512, "100 * 3 * 7 / 5 = 420 bits, rounded up")
        for value in 0..<100 { #expect(bloom.push(value: le32(UInt32(value)), flags: .any) == nil) }
        #expect((0..<100).allSatisfy { bloom.mayContain(le32(UInt32($0))) })
        let falsePositives = (1000..<11000).filter { bloom.mayContain(le32(UInt32($0))) }.count
        #expect(
            falsePositives < 2000,
            "about 9% expected for 100 values in 512 bits with 3 hashes, got \(falsePositives) of 10000")
        #expect(bloom.push(value: le32(1), flags: .exist) == .invalid)
        #expect(bloom.pop() == .failure(.notSupported) && bloom.delete(key: []) == .notSupported)

        for (label, bad, extra) in [
            ("key", MapAttributes(name: "b", type: .bloomFilter, keySize: 4, valueSize: 4, maxEntries: 1), UInt64(0)),
            ("value", MapAttributes(name: "b", type: .bloomFilter, keySize: 0, valueSize: 0, maxEntries: 1), 0),
            ("map_extra", MapAttributes(name: "b", type: .bloomFilter, keySize: 0, valueSize: 4, maxEntries: 1), 0x10),
            ("map_extra elsewhere", MapAttributes(name: "b", type: .array, keySize: 4, valueSize: 4, maxEntries: 1), 1),
        ] {
            #expect(throws: MapError.self, "\(label)") { try emulator.createMap(bad, mapExtra: extra, in: vm) }
        }
    }

    // MARK: Timestamps (the kernel's test run answers -EOPNOTSUPP to every call; see Docs/Contexts.md)

    @Test func setTstampFollowsTheClockTypes() throws {
        let context = SKBContext(packet: Self.ipv4)
        // MONOTONIC with a time: stored, tstamp_type 1.
        #expect(
            try Self.run(
                """
                mov %r6, %r1
                mov %r2, 1000
                mov %r3, 1
                call 192
                jne %r0, 0, +3
                ldxdw %r0, [%r6+152]
                ldxb %r1, [%r6+180]
                add %r0, %r1
                exit
                """, context) == 1001)
        for (time, type, expected) in [
            (0, 1, Self.errno(.invalid)), (0, 2, Self.errno(.invalid)), (7, 3, Self.errno(.invalid)), (0, 0, 0),
            (9, 2, 0),
        ] {
            #expect(
                try Self.run("mov %r2, \(time)\nmov %r3, \(type)\ncall 192\nexit", context) == expected,
                "tstamp \(time) type \(type)")
        }
        // Only IPv4 and IPv6 packets take a delivery time.
        #expect(
            try Self.run("mov %r2, 5\nmov %r3, 1\ncall 192\nexit", SKBContext(packet: Self.arp))
                == Self.errno(.notSupported))
    }

    // MARK: Socket, namespace and cgroup identity

    @Test func socketIdentityNeedsASocket() throws {
        let none = SKBContext(packet: Self.ipv4)
        for helper in [46, 79] { // get_socket_cookie, skb_cgroup_id
            #expect(try Self.run("call \(helper)\nexit", none) == 0)
        }
        #expect(try Self.run("mov %r2, 0\ncall 83\nexit", none) == 0)

        var socket = SocketInfo()
        socket.family = 2
        socket.sourcePort = 4242
        let with = SKBContext(packet: Self.ipv4, socket: socket)
        let cookie = try Self.run("call 46\nexit", with)
        #expect(cookie != 0)
        #expect(try Self.run("call 46\nexit", with) == cookie, "the same socket has the same cookie")
        socket.sourcePort = 4243
        #expect(try Self.run("call 46\nexit", SKBContext(packet: Self.ipv4, socket: socket)) != cookie)
        #expect(try Self.run("call 79\nexit", with) == NetworkDevices.rootCgroupID)
        #expect(try Self.run("mov %r2, 0\ncall 83\nexit", with) == NetworkDevices.rootCgroupID)
        #expect(try Self.run("mov %r2, 1\ncall 83\nexit", with) == 0, "the root cgroup has no level-1 ancestor")
        #expect(try Self.run("mov %r1, 0\ncall 122\nexit", with) == 1, "init_net's cookie")
    }

    // MARK: Hash, protocol, MTU

    @Test func hashRecalcComputesAStableFlowHash() throws {
        let context = SKBContext(packet: Self.ipv4)
        let hash = try Self.run("mov %r6, %r1\ncall 34\nldxw %r0, [%r6+68]\nexit", context)
        #expect(hash != 0)
        #expect(try Self.run("call 34\nexit", context) == hash)
        var other = Self.ipv4
        other[35] ^= 1 // another source port
        #expect(try Self.run("call 34\nexit", SKBContext(packet: other)) != hash)
        // A hash the device gave is kept; set_hash_invalid makes the next call compute one.
        var given = SKBContext(packet: Self.ipv4)
        given.hash = 77
        #expect(try Self.run("call 34\nexit", given) == 77)
        #expect(try Self.run("mov %r6, %r1\ncall 41\nmov %r1, %r6\ncall 34\nexit", given) == hash)
    }

    @Test func changeProtoNeedsAWholeIPv6Header() throws {
        // An IPv6 EtherType with only 10 bytes after the MAC header cannot lose 20.
        let short = Array(Self.ipv4[0..<12]) + [0x86, 0xDD] + [UInt8](repeating: 0x60, count: 10)
        #expect(
            try Self.run("mov %r2, 8\nmov %r3, 0\ncall 31\nexit", SKBContext(packet: short)) == Self.errno(.noMemory))
    }

    @Test func checkMTUKnowsLoopbackAndTheEthernetDevice() throws {
        let mtu = """
            mov %r6, %r1
            stw [%r10-4], 0
            mov %r3, %r10
            add %r3, -4
            mov %r4, 0
            mov %r5, 0
            call 163
            ldxw %r0, [%r10-4]
            exit
            """
        for (ifindex, expected) in [(0, 65536), (1, 65536), (2, 1500)] {
            #expect(try Self.run("mov %r2, \(ifindex)\n" + mtu, SKBContext(packet: Self.ipv4)) == UInt64(expected))
        }
        // The device a packet arrived on always exists.
        #expect(try Self.run("mov %r2, 0\n" + mtu, SKBContext(packet: Self.ipv4, ifindex: 7)) == 1500)
        #expect(try Self.run("mov %r2, 7\n" + mtu, SKBContext(packet: Self.ipv4, ifindex: 7)) == 1500)
        #expect(
            try Self.run(
                "mov %r2, 3\nstw [%r10-4], 0\nmov %r3, %r10\nadd %r3, -4\nmov %r4, 0\nmov %r5, 0\ncall 163\nexit",
                SKBContext(packet: Self.ipv4)) == Self.errno(.noDevice))
    }
}
