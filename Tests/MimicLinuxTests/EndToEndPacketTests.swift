import MimicCore
import MimicLinux
import Testing
import MimicTestSupport

/// Clang-compiled packet programs from `Fixtures/`, loaded with `VM.load(object:)` and run on
/// the kernel's contexts.
@Suite("End to end: packet programs")
struct EndToEndPacketTests {
    // MARK: (a) XDP firewall

    @Test(arguments: Fixture.engines)
    func xdpFirewallDropsBlockedSourcesAndCountsPerCPU(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("xdp_firewall", engine: engine)
        let blocked = try fixture.map("blocked", as: HashTableMap.self)
        let verdicts = try fixture.map("verdicts", as: ArrayMap.self)
        #expect(verdicts.isPerCPU)
        for address in ["192.0.2.1", "198.51.100.7"] {
            #expect(blocked.update(key: Packet.ip(address), value: le64(0), flags: .noExist, cpu: 0) == nil)
        }

        func verdict(from source: String, vCPU: Int) throws -> XDPAction? {
            let process = try fixture.run(
                "firewall", context: XDPContext(packet: Packet.make(source: source, destination: "10.0.0.2")),
                vCPU: vCPU)
            return XDPContext.result(of: process)?.action
        }
        #expect(try verdict(from: "192.0.2.1", vCPU: 0) == .drop)
        #expect(try verdict(from: "10.1.1.1", vCPU: 0) == .pass)
        #expect(try verdict(from: "198.51.100.7", vCPU: 1) == .drop)
        #expect(try verdict(from: "192.0.2.1", vCPU: 1) == .drop)
        #expect(try verdict(from: "10.1.1.2", vCPU: 1) == .pass)
        #expect(try verdict(from: "10.1.1.3", vCPU: 1) == .pass)
        // Too short for an IPv4 header: aborted; not IPv4: passed.
        let short = try fixture.run(
            "firewall",
            context: XDPContext(packet: Array(Packet.make(source: "1.2.3.4", destination: "5.6.7.8")[0..<20])))
        #expect(XDPContext.result(of: short)?.action == .aborted)
        var arp = Packet.make(source: "1.2.3.4", destination: "5.6.7.8")
        arp[12] = 0x08
        arp[13] = 0x06
        #expect(XDPContext.result(of: try fixture.run("firewall", context: XDPContext(packet: arp)))?.action == .pass)

        func counts(_ action: XDPAction) -> [UInt64] {
            (verdicts.perCPUValues(forKey: le32(action.rawValue)) ?? []).map(uint64)
        }
        #expect(counts(.drop) == [1, 2])
        #expect(counts(.pass) == [2, 2])
        #expect(counts(.aborted) == [1, 0])
        #expect(blocked.value(forKey: Packet.ip("192.0.2.1")).map(uint64) == 2)
        #expect(blocked.value(forKey: Packet.ip("198.51.100.7")).map(uint64) == 1)
    }

    // MARK: (b) tc rewrite with checksum helpers

    @Test(arguments: [Packet.udp, Packet.tcp], Fixture.engines)
    func tcNATRewritesDestinationAndKeepsChecksumsValid(proto: UInt8, engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("tc_nat", engine: engine)
        let input = Packet.make(
            source: "10.0.0.1", destination: "10.0.0.99", protocol: proto, sourcePort: 40000, destinationPort: 80)
        #expect(Packet.ipChecksumIsValid(input) && Packet.l4ChecksumIsValid(input))

        let process = try fixture.run("dnat", context: SKBContext(packet: input))
        let result = try #require(SKBContext.result(of: process))
        #expect(result.action == .ok)
        #expect(result.fields.mark == 0x4E4154)

        // Byte for byte: the packet a correct NAT builds from scratch.
        let expected = Packet.make(
            source: "10.0.0.1", destination: "192.168.1.100", protocol: proto, sourcePort: 40000,
            destinationPort: 8080)
        #expect(result.packet == expected)
        #expect(Packet.ipChecksumIsValid(result.packet))
        #expect(Packet.l4ChecksumIsValid(result.packet))
    }

    @Test(arguments: Fixture.engines)
    func tcNATLeavesOtherDestinationsAlone(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("tc_nat", engine: engine)
        let input = Packet.make(source: "10.0.0.1", destination: "10.0.0.98")
        let result = try #require(SKBContext.result(of: try fixture.run("dnat", context: SKBContext(packet: input))))
        #expect(result.packet == input)
        #expect(result.fields.mark == 0)
    }
}
