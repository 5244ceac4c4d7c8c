import Testing
import MimicCore
import MimicJSON
@testable import MimicLinux

/// The kernel's SYN cookie (`Syncookie`) and the helpers that share it. The kernel's secret is
/// random (chosen at boot), so its cookie values cannot be compared value for value: the
/// algorithm is checked against vectors from the kernel source (SipHash-2-4 of
/// `lib/tests/siphash_kunit.c`, the key and message layout of `cookie_hash`), by round trips
/// and by its counter and MSS encoding; `net_syncookie.o` compares the secret-independent
/// results with the kernel (FixtureComparisonTests).
@Suite struct SyncookieTests {
    /// `test_vectors_siphash` of the kernel's SipHash test: key 00..0f, message 00 01 .. of each length.
    static let sipHashVectors: [Int: UInt64] = [
        0: 0x726f_db47_dd0e_0e31, 1: 0x74f8_39c5_93dc_67fd, 7: 0xab02_00f5_8b01_d137, 8: 0x93f5_f579_9a93_2462,
        15: 0xa129_ca61_49be_45e5, 16: 0x3f2a_cc7f_57c2_9bdb, 20: 0xbed6_5cf2_1aa2_ee98, 31: 0x32d8_92fa_d841_c342,
        40: 0x0e3e_a96b_5304_a7d0, 63: 0x958a_324c_eb06_4572,
    ]
    static let key: [UInt8] = Array(0..<16)

    @Test func sipHashMatchesTheKernelsVectors() {
        for (length, expected) in Self.sipHashVectors {
            #expect(Syncookie.sipHash24(Array(0..<UInt8(length)), key: Self.key) == expected, "length \(length)")
        }
    }

    /// `cookie_hash` feeds `siphash_4u32(saddr, daddr, sport << 16 | dport, count)` (IPv4) and the
    /// 40-byte `{saddr, daddr, count, sport, dport}` (IPv6): the kernel's test says
    /// `siphash_4u32(0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c)` is vector 16.
    @Test func theHashInputIsLaidOutAsTheKernels() {
        let secret = Self.key + [UInt8](repeating: 0, count: 16)
        // th->source = 0x0b0a as loaded little-endian: bytes 0a 0b; th->dest bytes 08 09.
        let v4 = Syncookie.Flow(
            ipHeader: [UInt8](repeating: 0, count: 12) + Array(0..<8), isIPv6: false,
            tcpHeader: [0x0a, 0x0b, 0x08, 0x09])
        #expect(Syncookie.hash(v4, count: 0x0f0e_0d0c, key: secret, 0) == 0x57c2_9bdb)
        let v6 = Syncookie.Flow(
            ipHeader: [UInt8](repeating: 0, count: 8) + Array(0..<32), isIPv6: true,
            tcpHeader: [36, 37, 38, 39])
        #expect(Syncookie.hash(v6, count: 0x2322_2120, key: secret, 0) == 0x5304_a7d0)
        // Key 1 is the secret's second half.
        #expect(
            Syncookie.hash(v4, count: 0x0f0e_0d0c, key: [UInt8](repeating: 0, count: 16) + Self.key, 1) == 0x57c2_9bdb)
    }

    static let iph: [UInt8] = [0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 1, 0, 50, 10, 1, 0, 1]
    static let th: [UInt8] = [0x04, 0xD2, 0x1F, 0x90] + [UInt8](repeating: 0, count: 16)

    @Test func aCookieChecksForTwoMinutesAndCarriesItsMSSIndex() {
        let secret = SyncookieSecret(ipv4: Array(0..<32), ipv6: Array(32..<64))
        let flow = Syncookie.Flow(ipHeader: Self.iph, isIPv6: false, tcpHeader: Self.th)
        for (mss, index) in [(1400, 1), (535, 0), (536, 0), (1440, 2), (1459, 2), (1460, 3), (9000, 3)] {
            let (cookie, found) = Syncookie.generate(flow, mss: UInt32(mss), sequence: 1000, count: 77, secret: secret)
            #expect(found == index, "MSS \(mss)")
            #expect(Syncookie.check(cookie, flow, sequence: 1000, count: 77, secret: secret) == UInt32(index))
            #expect(Syncookie.check(cookie, flow, sequence: 1000, count: 78, secret: secret) == UInt32(index))
            #expect(Syncookie.check(cookie, flow, sequence: 1000, count: 79, secret: secret) == UInt32.max, "too old")
            #expect(
                Syncookie.check(cookie, flow, sequence: 1000, count: 76, secret: secret) == UInt32.max,
                "from the future")
        }
        // The top 8 bits carry the counter above H0 + seq: the cookie of count + 1 is 1 << 24 more
        // before the H1 term, which is below 2^24.
        let a = Syncookie.generate(flow, mss: 536, sequence: 1000, count: 5, secret: secret).cookie
        let h0 = Syncookie.hash(flow, count: 0, key: secret.ipv4, 0) &+ 1000
        #expect((a &- h0) >> 24 == 5)
        #expect((a &- h0) & 0xFF_FFFF == Syncookie.hash(flow, count: 5, key: secret.ipv4, 1) & 0xFF_FFFF)
        // IPv6 uses its own secret and table.
        var v6 = [UInt8](repeating: 0, count: 40)
        v6[0] = 0x60
        v6[23] = 0x50
        v6[39] = 1
        let flow6 = Syncookie.Flow(ipHeader: v6, isIPv6: true, tcpHeader: Self.th)
        let (c6, i6) = Syncookie.generate(flow6, mss: 1500, sequence: 1, count: 0, secret: secret)
        #expect(i6 == 2 && Syncookie.ipv6MSS[i6] == 1440)
        #expect(Syncookie.check(c6, flow6, sequence: 1, count: 1, secret: secret) == 2)
        var other = secret
        other.ipv6[0] ^= 1
        #expect(Syncookie.check(c6, flow6, sequence: 1, count: 1, secret: other) >= 4, "another secret")
    }

    @Test func theMSSOptionIsTheLastNonZeroOne() {
        func header(_ options: [UInt8]) -> [UInt8] {
            var th = Self.th + options
            th[12] = UInt8(th.count / 4) << 4
            return th
        }
        #expect(Syncookie.mssOption(header([2, 4, 0x05, 0x78])) == 1400)
        #expect(Syncookie.mssOption(Self.th) == 0)
        #expect(Syncookie.mssOption(header([2, 4, 0x05, 0x78, 2, 4, 0, 0])) == 1400, "zero is skipped")
        #expect(Syncookie.mssOption(header([2, 4, 0x05, 0x78, 2, 4, 0x05, 0xA0])) == 1440, "the last counts")
        #expect(Syncookie.mssOption(header([1, 1, 1, 1, 2, 4, 0x05, 0x78])) == 1400, "after NOPs")
        #expect(Syncookie.mssOption(header([0, 1, 1, 1, 2, 4, 0x05, 0x78])) == 0, "EOL ends the options")
        #expect(Syncookie.mssOption(header([3, 1, 0, 0, 2, 4, 0x05, 0x78])) == 0, "a length below 2 ends them")
        #expect(Syncookie.mssOption(header([2, 3, 0x05, 0x78])) == 0, "a length other than 4 is no MSS")
    }

    /// `net_syncookie.o` in Mimic: what FixtureComparisonTests compares with the kernel, with the
    /// values the kernel's source gives.
    @Test(arguments: Fixture.engines)
    func theRawHelpersFixture(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("net_syncookie", engine: engine)
        let process = try fixture.run(
            "xdp_raw_syncookie", context: XDPContext(packet: [UInt8](repeating: 0, count: 60)))
        #expect(process.registers[0] == 2)
        let results = try fixture.map("results", as: ArrayMap.self)
        let values = (0..<20).map { i in
            Int64(
                bitPattern: (results.value(forKey: le32(UInt32(i))) ?? []).reversed().reduce(UInt64(0)) {
                    $0 << 8 | UInt64($1)
                })
        }
        let invalid: Int64 = -22
        let denied: Int64 = -13
        #expect(
            values == [
                1300, invalid, invalid, 1, 0, denied, denied, 1460, 536, 1460, 1440, 1300, 536,
                1220, invalid, 0, denied, 8940, 1440, 1220,
            ])
    }

    /// The listener helpers and the raw ones share the cookie: on a listener whose SYN queue
    /// overflowed, bpf_tcp_gen_syncookie's cookie checks with bpf_tcp_check_syncookie and with
    /// bpf_tcp_raw_check_syncookie_ipv4.
    @Test func theListenerHelpersShareTheCookie() throws {
        var listener = Network.Socket(transport: .tcp, localAddress: [10, 1, 0, 1], localPort: 8080, cookie: 1)
        listener.synOverflow = true
        var network = Network.standard
        network.sockets = [listener]
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1, network: network))
        let vm = VM(emulator: emulator)
        let program = try vm.load(object: Fixture.object("net_syncookie")).program(named: "xdp_listener_syncookie")
        let process = try vm.makeProcess(for: program, context: XDPContext(packet: [UInt8](repeating: 0, count: 60)))
        #expect(try process.run() == 2)
        let results = try #require(emulator.map(named: "results"))
        let values = (20..<24).map { i in
            Int64(
                bitPattern: (results.value(forKey: le32(UInt32(i))) ?? []).reversed().reduce(UInt64(0)) {
                    $0 << 8 | UInt64($1)
                })
        }
        #expect(values == [1440, 0, 0, -13])
    }

    @Test func theSecretIsReadFromTheDescription() throws {
        let hex = (0..<32).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let network = try Network(jsonData: Array(#"{"syncookieSecret": {"ipv4": {"hex": "\#(hex)"}}}"#.utf8))
        #expect(network.syncookieSecret.ipv4 == Array(0..<32))
        #expect(network.syncookieSecret.ipv6 == SyncookieSecret.zero.ipv6)
        for (json, message) in [
            (#"{"syncookieSecret": {"ipv5": "AAAA"}}"#, #"syncookieSecret.ipv5: unknown field "ipv5""#),
            (
                #"{"syncookieSecret": {"ipv6": {"hex": "00 01"}}}"#,
                "syncookieSecret.ipv6: a syncookie secret has 32 bytes"
            ),
            (#"{"syncookieSecret": 7}"#, "syncookieSecret"),
        ] {
            #expect(throws: JSONError.self, "\(json)") { try Network(jsonData: Array(json.utf8)) }
            do {
                _ = try Network(jsonData: Array(json.utf8))
            } catch {
                #expect("\(error)".contains(message), "\(error)")
            }
        }
        var built = Network.standard
        built.syncookieSecret.ipv4 = [1, 2, 3]
        #expect(throws: JSONError.self) { try built.check() }
    }

    /// A cookie generated under one secret checks under it, in another emulator with the same
    /// description: the secret, not the emulator, decides.
    @Test func theConfiguredSecretDecides() throws {
        let program = """
            mov %r6, %r1
            ldxw %r1, [%r6+0]
            ldxw %r2, [%r6+4]
            mov %r3, %r1
            add %r3, 20
            mov %r4, %r3
            add %r4, 20
            jgt %r4, %r2, fail
            mov %r2, %r3
            mov %r3, 20
            call 204
            exit
            fail:
            mov %r0, 0
            exit
            """
        var packet = Self.iph + Self.th
        packet[32] = 5 << 4
        packet[33] = 2
        func cookie(_ secret: SyncookieSecret) throws -> UInt64 {
            var network = Network.standard
            network.syncookieSecret = secret
            let configuration = LinuxConfiguration(network: network)
            return try ContextTestSupport.run(
                program, context: XDPContext(packet: packet), configuration: configuration
            ).0
        }
        let a = try cookie(SyncookieSecret(ipv4: Array(0..<32), ipv6: Array(0..<32)))
        let b = try cookie(SyncookieSecret(ipv4: Array(0..<32), ipv6: Array(0..<32)))
        let c = try cookie(.zero)
        #expect(a >> 32 == 536 && c >> 32 == 536)
        #expect(a == b)
        #expect(a != c)
    }

    func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
}
