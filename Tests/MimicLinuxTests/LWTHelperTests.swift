import Foundation
import MimicCore
import MimicTestSupport
import Testing

@testable import MimicLinux

/// The lightweight-tunnel helpers (`bpf_lwt_push_encap`, `bpf_lwt_seg6_*`) and
/// `bpf_skb_get_xfrm_state`, on `Fixtures/net_seg6.c` and `net_lwt.c`, by the kernel's source
/// (`LWTHelpers`): what the kernel's test run can do of them is compared in
/// FixtureComparisonTests (`net_lwt.o`).
struct LWTHelperTests {
    static let networkJSON = """
        { "interfaces": [
            {"ifindex": 1, "name": "lo", "loopback": true, "addresses": ["127.0.0.1/8", "::1/128"]},
            {"ifindex": 2, "name": "eth0", "mac": "02:00:00:00:00:02", "addresses": ["10.0.0.1/24", "fd00::1/64"]},
            {"ifindex": 3, "name": "eth1", "mac": "02:00:00:00:00:03", "addresses": ["fd00:3::1/64"]}],
          "routes": [
            {"to": "fd00:2::/48", "via": "fd00::9"},
            {"to": "fd00:4::/48", "via": "fd00:3::9"},
            {"type": "unreachable", "to": "fd00:66::/32"}],
          "xfrm": [{"reqid": 7, "spi": 258, "remote": "198.51.100.1"}, {"spi": 1, "remote": "2001:db8::5"}] }
        """

    static func network() throws -> Network { try Network(jsonData: Array(networkJSON.utf8)) }

    static func load(_ name: String) throws -> Fixture.Loaded {
        let emulator = LinuxEmulator(
            configuration: LinuxConfiguration(cpuCount: 1, randomSeed: 1, network: try network()))
        let vm = VM(emulator: emulator)
        return Fixture.Loaded(vm: vm, emulator: emulator, object: try vm.load(object: Fixture.object(name)))
    }

    static func address(_ text: String) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 16)
        let halves = text.components(separatedBy: "::")
        func groups(_ part: String) -> [UInt16] {
            part.isEmpty ? [] : part.split(separator: ":").map { UInt16($0, radix: 16)! }
        }
        let head = groups(halves[0])
        let tail = halves.count > 1 ? groups(halves[1]) : []
        for (i, group) in head.enumerated() {
            bytes[2 * i] = UInt8(group >> 8)
            bytes[2 * i + 1] = UInt8(group & 0xFF)
        }
        for (i, group) in tail.enumerated() {
            let at = 16 - 2 * (tail.count - i)
            bytes[at] = UInt8(group >> 8)
            bytes[at + 1] = UInt8(group & 0xFF)
        }
        return bytes
    }

    /// Ethernet + IPv6 fd00::50 -> fd00::100 + an SRH (segments_left 1: fd00::100, then
    /// fd00:2::5) + UDP with 4 bytes of payload: 14 + 92 bytes.
    static func srv6Frame(segmentsLeft: UInt8 = 1, flow: [UInt8] = [0x60, 0, 0, 0]) -> [UInt8] {
        let udp: [UInt8] = [0x30, 0x39, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]
        let srh: [UInt8] = [17, 4, 4, segmentsLeft, 1, 0, 0, 0] + address("fd00:2::5") + address("fd00::100")
        var ipv6: [UInt8] = flow + [0, UInt8(srh.count + udp.count), 43, 64]
        ipv6 += address("fd00::50") + address("fd00::100")
        return [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xDD] + ipv6 + srh + udp
    }

    static func results(_ loaded: Fixture.Loaded, count: Int = 8) throws -> [Int64] {
        let map = try loaded.map("results")
        return (0..<count).map { index in
            let value = map.value(forKey: littleEndianBytes(UInt32(index))) ?? []
            return Int64(
                bitPattern: value.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) })
        }
    }

    /// Runs `program` of `loaded` on `frame`; the process and End.BPF's outcome.
    static func run(_ loaded: Fixture.Loaded, _ program: String, _ frame: [UInt8], as type: ProgramType? = nil) throws
        -> (MimicCore.Process, Seg6State.Route?)
    {
        let source = try #require(loaded.object.object.program(named: program))
        let context = try ContextFit.fit(
            SKBContext(packet: frame), type: type ?? source.type, describing: "program \(program)")
        let process = try loaded.run(program, context: context)
        guard case .exited(let r0) = process.state else { throw FixtureError("\(program) did not exit") }
        return (process, loaded.emulator.seg6Outcome(of: process, returnValue: r0))
    }

    @Test("End.BPF: the SRH advanced; tag and flags written, the segments refused; End.T and End.X route")
    func seg6Tag() throws {
        let loaded = try Self.load("net_seg6")
        let (process, outcome) = try Self.run(loaded, "seg6_tag", Self.srv6Frame())
        #expect(try Self.results(loaded) == [0, 0, -14, -14, -22, -22, 0, -22])
        let packet = try #require(SKBContext.result(of: process)).packet
        #expect(Array(packet[24..<40]) == Self.address("fd00:2::5"), "the destination is the next segment")
        #expect(packet[43] == 0, "segments_left decremented")
        #expect(packet[46] == 0x12 && packet[47] == 0x34, "the tag")
        #expect(outcome == .interface(3, nexthop: Self.address("fd00:3::7")), "End.X's route")
    }

    @Test("adjust_srh grows the TLV area, store_bytes fills it, End.BPF revalidates and routes")
    func seg6Grow() throws {
        let loaded = try Self.load("net_seg6")
        let (process, outcome) = try Self.run(loaded, "seg6_grow", Self.srv6Frame())
        #expect(try Self.results(loaded, count: 5) == [0, 0, -14, -14, 100])
        let packet = try #require(SKBContext.result(of: process)).packet
        #expect(packet[41] == 5, "hdrlen set from the grown length")
        #expect(Array(packet[80..<88]) == [4, 6, 0, 0, 0, 0, 0, 0], "the PadN TLV")
        #expect(packet[4] == 0 && packet[5] == 60, "payload length")
        #expect(outcome == .interface(2, nexthop: Self.address("fd00::9")))
    }

    @Test("an SRH left invalid: End.X refuses it and End.BPF drops the packet")
    func seg6Break() throws {
        let loaded = try Self.load("net_seg6")
        let (_, outcome) = try Self.run(loaded, "seg6_break", Self.srv6Frame())
        #expect(try Self.results(loaded, count: 2) == [0, -74])
        #expect(outcome == .dropped)
    }

    @Test("End.B6 inserts an SRH, End.DT6 without an inner packet and a bad SRH are refused")
    func seg6Bind() throws {
        let loaded = try Self.load("net_seg6")
        let (process, outcome) = try Self.run(loaded, "seg6_bind", Self.srv6Frame())
        #expect(try Self.results(loaded, count: 4) == [-74, 0, 92 + 24, -22])
        let packet = try #require(SKBContext.result(of: process)).packet
        #expect(packet[6] == 43 && packet[40] == 43, "the new SRH comes first and leads to the old one")
        #expect(Array(packet[48..<64]) == Self.address("fd00:2::5"), "its segments[0] is the old destination")
        #expect(outcome == .interface(2, nexthop: Self.address("fd00::9")))
    }

    @Test(
        "End.B6.Encaps pushes an outer IPv6 header with the SRH, from the output device's address, with the inner flow label"
    )
    func seg6Encap() throws {
        let loaded = try Self.load("net_seg6")
        // Traffic class 0xAB, flow label 0xCDEF1: the outer header copies both.
        let flow: [UInt8] = [0x6A, 0xBC, 0xDE, 0xF1]
        let (process, outcome) = try Self.run(loaded, "seg6_encap", Self.srv6Frame(flow: flow))
        #expect(try Self.results(loaded, count: 2) == [0, 92 + 64])
        let packet = try #require(SKBContext.result(of: process)).packet
        #expect(Array(packet[0..<4]) == flow && packet[6] == 43 && packet[7] == 64)
        #expect(Array(packet[8..<24]) == Self.address("fd00:3::1"), "source: eth1's address")
        #expect(Array(packet[24..<40]) == Self.address("fd00:4::1"))
        #expect(packet[40] == 41, "the SRH leads to the inner IPv6 packet")
        // The inner packet as End.BPF advanced it: segments_left 0, the destination fd00:2::5.
        var inner = Array(Self.srv6Frame(flow: flow).dropFirst(14))
        inner[43] = 0
        inner.replaceSubrange(24..<40, with: Self.address("fd00:2::5"))
        #expect(Array(packet[64...]) == inner)
        #expect(outcome == .interface(3, nexthop: Self.address("fd00:3::9")))
    }

    @Test("End.BPF drops a packet without an SRH with segments left before the program runs")
    func seg6Refused() throws {
        let loaded = try Self.load("net_seg6")
        let source = try #require(loaded.object.object.program(named: "seg6_tag"))
        for frame in [Self.srv6Frame(segmentsLeft: 0), Packet.make(source: "10.0.0.1", destination: "10.0.0.2")] {
            let context = try ContextFit.fit(SKBContext(packet: frame), to: source)
            #expect {
                _ = try loaded.vm.makeProcess(for: loaded.object.program(named: "seg6_tag"), context: context)
            } throws: { error in
                "\(error)".contains("segment routing header")
            }
        }
    }

    @Test("lwt_in SRv6: SEG6_INLINE on IPv6 (-EBADMSG on IPv4), SEG6 around IPv4 (next header 41, protocol kept)")
    func lwtInSRv6() throws {
        let loaded = try Self.load("net_seg6")
        let ipv6 = Array(Self.srv6Frame())
        let (process, _) = try Self.run(loaded, "lwt_in_srv6", ipv6, as: .lwtIn)
        #expect(try Self.results(loaded, count: 4) == [0, 0, 92 + 24 + 64, 0xDD86])
        let packet = try #require(SKBContext.result(of: process)).packet
        #expect(packet[6] == 43 && packet[40] == 41 && packet[64 + 6] == 43)

        let loaded4 = try Self.load("net_seg6")
        let ipv4 = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")
        let (process4, _) = try Self.run(loaded4, "lwt_in_srv6", ipv4, as: .lwtIn)
        #expect(try Self.results(loaded4, count: 4) == [-74, 0, Int64(ipv4.count - 14 + 64), 0x0008])
        let packet4 = try #require(SKBContext.result(of: process4)).packet
        #expect(packet4[40] == 41 && packet4[64] == 0x45)
    }

    @Test("bpf_skb_get_xfrm_state reads the network's xfrm states; -EINVAL and zeroes otherwise")
    func xfrmState() throws {
        let loaded = try Self.load("net_lwt")
        let source = try #require(loaded.object.object.program(named: "tc_xfrm"))
        let frame = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")
        _ = try loaded.run("tc_xfrm", context: try ContextFit.fit(SKBContext(packet: frame), to: source))
        // reqid 7 | spi 258 in network order (0x02010000) | AF_INET 2 | remote_ipv6[3] 0.
        let values = try Self.results(loaded, count: 5)
        #expect(values == [0, 7 | 0x0201_0000 | 2, -22, -22, -22], "\(values.map { String($0, radix: 16) })")

        let plain = try Fixture.load("net_lwt")
        _ = try plain.run("tc_xfrm", context: try ContextFit.fit(SKBContext(packet: frame), to: source))
        #expect(try Self.results(plain, count: 5) == [-22, 0, -22, -22, -22], "no xfrm state: -EINVAL, zeroed")
    }

    @Test("bpf_lwt_push_encap with an IP header: pushed before the packet, the checksum filled in")
    func lwtInIP() throws {
        let loaded = try Fixture.load("net_lwt")
        let source = try #require(loaded.object.object.program(named: "lwt_in_encap"))
        let frame = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")
        let process = try loaded.run("lwt_in_encap", context: try ContextFit.fit(SKBContext(packet: frame), to: source))
        let inner = Array(frame.dropFirst(14))
        #expect(
            try Self.results(loaded, count: 13) == [
                -22, -22, -22, -22, -22, -22, -22, -22, -22, 0, 0, Int64(inner.count + 20), 0x0008,
            ])
        let packet = try #require(SKBContext.result(of: process)).packet
        #expect(Array(packet.dropFirst(20)) == inner)
        #expect(Packet.checksum(Array(packet.prefix(20))) == 0, "a valid header checksum")
    }

    @Test("the lwt helpers stop a program of another type, naming the types they belong to")
    func wrongType() throws {
        let loaded = try Fixture.load("net_lwt")
        let frame = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")
        // lwt_in_encap's code run as a tc program.
        let context = try ContextFit.fit(SKBContext(packet: frame), type: .schedCls, describing: "a tc program")
        #expect {
            _ = try loaded.run("lwt_in_encap", context: context)
        } throws: { error in
            "\(error)".contains("lwt_in or lwt_xmit")
        }
    }

    @Test("xfrm states in a network description: unknown fields, a bad address, too many")
    func xfrmDescription() throws {
        for (json, path) in [
            (#"{"xfrm": [{"spi": 1, "remote": "10.0.0.1", "reqi": 2}]}"#, "xfrm[0].reqi"),
            (#"{"xfrm": [{"spi": 1, "remote": "10.0.0"}]}"#, "xfrm[0].remote"),
            (#"{"xfrm": [{"remote": "10.0.0.1"}]}"#, "xfrm[0].spi"),
            (
                #"{"xfrm": [\#(Array(repeating: #"{"spi": 1, "remote": "10.0.0.1"}"#, count: 7).joined(separator: ","))]}"#,
                "xfrm"
            ),
        ] {
            #expect {
                _ = try Network(jsonData: Array(json.utf8))
            } throws: { error in
                "\(error)".hasPrefix(path)
            }
        }
        let network = try Self.network()
        #expect(
            network.xfrm == [
                .init(reqid: 7, spi: 258, remote: [198, 51, 100, 1]),
                .init(reqid: 0, spi: 1, remote: Self.address("2001:db8::5")),
            ])
    }
}
