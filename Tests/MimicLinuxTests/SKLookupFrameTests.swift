import MimicLinux
import MimicTestSupport
import Testing

/// `SKLookupContext.lookup(frame:ingressIfindex:)`: which frames the kernel looks up a socket for
/// and the `bpf_sk_lookup` it builds (issue 14, `mimic run --pcap` of sk_lookup programs).
@Suite("sk_lookup contexts from frames")
struct SKLookupFrameTests {
    static func lookup(_ frame: [UInt8], ifindex: UInt32 = 1) -> SKLookupContext.FrameLookup {
        frame.withUnsafeBytes { SKLookupContext.lookup(frame: $0, ingressIfindex: ifindex) }
    }

    static func context(_ frame: [UInt8], ifindex: UInt32 = 1) -> SKLookupContext? {
        if case .lookup(let context) = lookup(frame, ifindex: ifindex) { return context }
        return nil
    }

    static func reason(_ frame: [UInt8]) -> String? {
        if case .notLookedUp(let reason) = lookup(frame) { return reason }
        return nil
    }

    static func syn(_ flags: UInt8 = 0x02) -> [UInt8] {
        var frame = Packet.make(
            source: "192.0.2.7", destination: "10.0.0.1", protocol: Packet.tcp, sourcePort: 40000,
            destinationPort: 8080, payload: [])
        frame[47] = flags
        return frame
    }

    static func get32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        bytes[at..<at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    @Test("an IPv4 SYN: remote is the source, local the destination, in the kernel's byte orders")
    func ipv4Syn() throws {
        let context = try #require(Self.context(Self.syn(), ifindex: 2))
        #expect(context.family == 2 && context.protocol == 6)
        #expect(context.remoteAddress == [192, 0, 2, 7] && context.localAddress == [10, 0, 0, 1])
        #expect(context.remotePort == 40000 && context.localPort == 8080 && context.ingressIfindex == 2)
        let bytes = context.bytes
        #expect(Self.get32(bytes, 36) == UInt32(UInt16(40000).bigEndian)) // remote_port: __be16
        #expect(Self.get32(bytes, 60) == 8080) // local_port: host order
        #expect(Array(bytes[16..<20]) == [192, 0, 2, 7] && Array(bytes[40..<44]) == [10, 0, 0, 1])
        #expect(Self.get32(bytes, 64) == 2)
    }

    @Test("a VLAN-tagged SYN and an IPv6 UDP datagram are looked up")
    func vlanAndIPv6() throws {
        let syn = Self.syn()
        let tagged = Array(syn[0..<12]) + [0x81, 0x00, 0x00, 0x05] + Array(syn[12...])
        #expect(Self.context(tagged)?.localPort == 8080)
        let source: [UInt8] = [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [7]
        let destination: [UInt8] = [0xFD] + [UInt8](repeating: 0, count: 14) + [1]
        let udp = Packet.be16(5000) + Packet.be16(53) + Packet.be16(8) + [0, 0]
        let frame =
            [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xDD] + [0x60, 0, 0, 0] + Packet.be16(8) + [17, 64]
            + source + destination + udp
        let context = try #require(Self.context(frame))
        #expect(context.family == 10 && context.protocol == 17)
        #expect(context.remoteAddress == source && context.localAddress == destination)
        #expect(Array(context.bytes[20..<36]) == source && Array(context.bytes[44..<60]) == destination)
        #expect(context.remotePort == 5000 && context.localPort == 53)
        // A hop-by-hop header first: not walked, not looked up.
        var hopByHop = frame
        hopByHop[14 + 6] = 0
        #expect(Self.reason(hopByHop)?.contains("extension header") == true)
    }

    @Test("not looked up: non-SYN segments, fragments, multicast UDP, other protocols and EtherTypes, cut frames")
    func notLookedUp() {
        #expect(Self.reason(Self.syn(0x10))?.contains("not a connection request") == true)
        #expect(Self.reason(Self.syn(0x12))?.contains("not a connection request") == true)
        var fragment = Self.syn()
        fragment[14 + 6] = 0x20 // more fragments
        #expect(Self.reason(fragment)?.contains("fragment") == true)
        let multicast = Packet.make(source: "10.0.0.7", destination: "224.0.0.251", destinationPort: 5353)
        #expect(Self.reason(multicast)?.contains("multicast") == true)
        var icmp = Packet.make(source: "10.0.0.7", destination: "10.0.0.1")
        icmp[14 + 9] = 1
        #expect(Self.reason(icmp) == "IP protocol 1, not TCP or UDP")
        let arp: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x06] + [UInt8](repeating: 0, count: 28)
        #expect(Self.reason(arp) == "EtherType 0x806, not IPv4 or IPv6")
        #expect(Self.reason(Array(Self.syn().prefix(40)))?.contains("TCP header") == true)
        #expect(Self.reason(Array(Self.syn().prefix(20)))?.contains("IPv4 header") == true)
        #expect(Self.reason([1, 2, 3]) == "shorter than an Ethernet header")
    }
}
