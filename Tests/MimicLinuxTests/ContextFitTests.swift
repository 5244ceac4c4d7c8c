import Testing
import MimicCore
import MimicJSON
@testable import MimicLinux

/// Issue 13.3 and 13.6: contexts of the wrong kind are refused; an sk_buff's data start follows
/// the program type (or the context); `pkt_type` comes from the destination MAC.
@Suite struct ContextFitTests {
    static let frame = ContextTestSupport.udpPacket // to 01:02:03:04:05:06 (a group address)

    /// Fits `context` to a program of `type` (named "prog").
    static func fit(_ context: any Context, _ type: ProgramType) throws(ContextError) -> any Context {
        try ContextFit.fit(context, type: type, describing: "program prog (type \(type))")
    }

    @Test func wrongKindIsRefusedNamingBoth() throws {
        let firewall = try #require(try Fixture.object("xdp_firewall").programs.first)
        do {
            _ = try ContextFit.fit(SKBContext(packet: Self.frame), to: firewall)
            Issue.record("an sk_buff context was accepted for an XDP program")
        } catch {
            #expect(
                error.description
                    == #"type: a context of kind "sk_buff" does not fit program \#(firewall.name) (type xdp, section "xdp"), which takes an xdp_md context"#
            )
        }
        let xdp = ProgramType.xdp
        #expect(throws: ContextError.self) { try Self.fit(XDPContext(packet: Self.frame), ProgramType.schedCls) }
        #expect(throws: ContextError.self) { try Self.fit(XDPContext(packet: Self.frame), ProgramType.kprobe) }
        let captured = CapturedContext(subContext: SKBContext(packet: Self.frame), helperCalls: [:])
        #expect(throws: ContextError.self) { try Self.fit(captured, xdp) }
        // Generic contexts (a layout of the user's making) fit any program; the right kinds pass.
        _ = try Self.fit(GenericContext(), xdp)
        _ = try Self.fit(GenericContext(), ProgramType.kprobe)
        _ = try Self.fit(XDPContext(packet: Self.frame), xdp)
        _ = try Self.fit(CapturedContext(subContext: XDPContext(packet: Self.frame), helperCalls: [:]), xdp)
    }

    @Test func dataStartFollowsTheProgramTypeUnlessTheContextSays() throws {
        let filter = try #require(try Self.fit(SKBContext(packet: Self.frame), ProgramType.socketFilter) as? SKBContext)
        #expect(filter.dataStart == .network)
        let tc = try #require(try Self.fit(SKBContext(packet: Self.frame), ProgramType.schedCls) as? SKBContext)
        #expect(tc.dataStart == .mac)
        var chosen = SKBContext(packet: Self.frame)
        chosen.dataStart = .mac
        let kept = try #require(try Self.fit(chosen, ProgramType.socketFilter) as? SKBContext)
        #expect(kept.dataStart == .mac)
    }

    /// r0 = len << 32 | first byte at data (legacy load) << 8 | pkt_type.
    static let fields = """
        mov %r6, %r1
        ldabsb 0
        lsh %r0, 8
        ldxw %r2, [%r6+4]
        or %r0, %r2
        ldxw %r2, [%r6+0]
        lsh %r2, 32
        or %r0, %r2
        exit
        """

    @Test func networkStartPullsTheEthernetHeader() throws {
        var skb = SKBContext(packet: Self.frame)
        skb.dataStart = .network
        let (r0, process) = try ContextTestSupport.run(Self.fields, context: skb)
        #expect(r0 >> 32 == UInt64(Self.frame.count - 14))
        #expect((r0 >> 8) & 0xFF == 0x45, "data starts at the IPv4 header")
        let result = try #require(SKBContext.result(of: process))
        #expect(result.packet == Array(Self.frame.dropFirst(14)))
        #expect(
            result.fields.protocol == UInt32(UInt16(0x0800).bigEndian), "protocol still comes from the Ethernet header")
        #expect(LinuxProcessState.of(process)?.packet?.frame == Self.frame)

        skb.dataStart = .mac
        let (mac, _) = try ContextTestSupport.run(Self.fields, context: skb)
        #expect(mac >> 32 == UInt64(Self.frame.count) && (mac >> 8) & 0xFF == Self.frame[0])
    }

    @Test(arguments: [
        ([0, 0, 0, 0, 0, 0] as [UInt8], nil as String?, SKBContext.PacketType.host),
        ([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], nil, .multicast), // the loopback's broadcast is zero
        ([0x01, 0x00, 0x5E, 0, 0, 1], nil, .multicast),
        ([0x02, 0, 0, 0, 0, 2], nil, .otherHost),
        ([0x02, 0, 0, 0, 0, 2], "02:00:00:00:00:02", .host),
        ([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], "02:00:00:00:00:02", .broadcast),
        ([0x33, 0x33, 0, 0, 0, 1], "02:00:00:00:00:02", .multicast),
        ([0, 0, 0, 0, 0, 0], "02:00:00:00:00:02", .otherHost),
    ])
    func packetTypeFromTheDestination(destination: [UInt8], deviceMAC: String?, expected: SKBContext.PacketType) throws
    {
        let packet = Base64.encode(destination + Self.frame.dropFirst(6))
        let dev = deviceMAC.map { #","dev":{"ifIndex":2,"mac":"\#($0)"}"# } ?? ""
        let json = #"{"name":"p","type":"sk_buff","ctx":{"packet":"\#(packet)"\#(dev)}}"#
        let context = try ContextFile.load(data: Array(json.utf8))
        let (r0, _) = try ContextTestSupport.run(Self.fields, context: context)
        #expect(UInt32(r0 & 0xFF) == expected.rawValue)
    }

    @Test func contextFileFieldsForDataStartAndPacketType() throws {
        let packet = Base64.encode(Self.frame)
        let json = #"{"name":"p","type":"sk_buff","ctx":{"packet":"\#(packet)","dataStart":"network","pktType":4}}"#
        let skb = try #require(try ContextFile.load(data: Array(json.utf8)) as? SKBContext)
        #expect(skb.dataStart == .network && skb.pktType == 4)
        for (field, value, message) in [
            ("dataStart", #""ip""#, #"expected "mac" or "network", got "ip""#),
            ("dev", #"{"mac":"01:02"}"#, "expected a MAC address like"),
        ] {
            let bad = #"{"name":"p","type":"sk_buff","ctx":{"packet":"\#(packet)","\#(field)":\#(value)}}"#
            do {
                _ = try ContextFile.load(data: Array(bad.utf8))
                Issue.record("\(field) \(value) was accepted")
            } catch {
                #expect(error.description.contains(message), "\(error)")
            }
        }
    }
}
