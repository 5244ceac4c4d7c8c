import Testing

/// `mimic run --net FILE`: an interface's `rxMetadata` is what the XDP metadata kfuncs read for a
/// packet arriving on it (`--ctx ingress_ifindex=N`), and mistakes in it are named.
@Suite struct ReceiveMetadataCommandTests {
    static let object = MimicCLI.packageRoot.appendingPathComponent("Tests/MimicLinuxTests/Fixtures/packet_kfuncs.o")
        .path
    /// An Ethernet frame: 02:..:09 from 02:..:07, IPv4, 26 bytes of 0x45.
    static let packet = "020000000009020000000007" + "0800" + String(repeating: "45", count: 26)

    static func run(_ network: String, ingress: Int) throws -> CLIResult {
        let directory = try TemporaryDirectory()
        let path = try directory.file("net.json", network)
        return try MimicCLI.run([
            "run", object, "--program", "xdp_metadata", "--packet", packet, "--net", path, "--ctx",
            "ingress_ifindex=\(ingress)",
        ])
    }

    static let network = """
        {"interfaces": [{"ifindex": 1, "name": "lo", "loopback": true},
          {"ifindex": 2, "name": "eth0", "rxMetadata": {"hash": 7, "hash_type": 2, "vlan_proto": 33024, "vlan_tci": 100}}]}
        """

    @Test func theIngressDevicesDriverGivesTheMetadata() throws {
        let result = try Self.run(Self.network, ingress: 2)
        #expect(result.status == 0, "\(result)")
        // rx_hash 0 with 7 << 32 | 2; rx_timestamp -ENODATA; rx_vlan_tag 0 with 0x0081 << 16 | 100.
        #expect(result.stdout.contains("30064771074, -61, 3, 0, 8454244]"), "\(result)")
        // Arriving on lo, whose driver has none: -EOPNOTSUPP everywhere.
        let loopback = try Self.run(Self.network, ingress: 1)
        #expect(loopback.status == 0, "\(loopback)")
        #expect(loopback.stdout.contains("-95, 4294967298, -95, 3, -95, 262149]"), "\(loopback)")
    }

    @Test func mistakesAreNamed() throws {
        let unknown = try Self.run(
            #"{"interfaces": [{"ifindex": 2, "name": "eth0", "rxMetadata": {"hash": 1, "tstamp": 5}}]}"#, ingress: 2)
        #expect(unknown.status == 1, "\(unknown)")
        #expect(unknown.stderr.contains(#"interfaces[0].rxMetadata.tstamp: unknown field "tstamp""#), "\(unknown)")
        let half = try Self.run(
            #"{"interfaces": [{"ifindex": 2, "name": "eth0", "rxMetadata": {"vlan_proto": 33024}}]}"#, ingress: 2)
        #expect(half.status == 1 && half.stderr.contains("give vlan_proto and vlan_tci together"), "\(half)")
    }
}
