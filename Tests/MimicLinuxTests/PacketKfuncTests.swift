import Testing
import MimicCore
import MimicJSON
@testable import MimicLinux

/// `Fixtures/packet_kfuncs.c`: packet dynptrs (`bpf_dynptr_from_skb` / `_xdp`), the XDP metadata
/// kfuncs and per-CPU objects. FixtureComparisonTests compares the tc and XDP programs with the
/// kernel; these tests check what the kernel's test run cannot show (receive metadata a driver
/// gives, read-only skb dynptrs, per-CPU objects) and the packet the writes leave.
struct PacketKfuncTests {
    static let packet: [UInt8] =
        [0x02, 0, 0, 0, 0, 0x09, 0x02, 0, 0, 0, 0, 0x07, 0x08, 0x00] + [UInt8](repeating: 0x45, count: 26)

    static func longs(_ loaded: Fixture.Loaded, _ name: String) throws -> [Int64] {
        try TimerDynptrTests.longs(loaded, name)
    }

    /// Reads, writes with and without flags, slices, and a dynptr past the packet's end.
    static func expectDynptrResults(_ results: [Int64], readOnly: Bool) {
        #expect(results[0] == 0) // made
        #expect(results[1] == 40) // size: the packet's length
        #expect(results[2] == (readOnly ? 1 : 0))
        #expect(results[3] == 0 && results[4] == 0x0702) // source MAC 02:..:07
        #expect(results[5] == -7) // -E2BIG: past the dynptr
        #expect(results[6] == -22) // read flags
        #expect(results[7] == (readOnly ? -22 : 0)) // write
        #expect(results[9] == (readOnly ? 0x0200_0800 : Int64(Int32(bitPattern: 0xABCD_0800)))) // the slice sees the write (an int, sign-extended)
        #expect(results[10] == (readOnly ? 0 : 1)) // a writable slice
        #expect(results[11] == 1) // a slice past the end is NULL
        #expect(results[12] == -22 && results[13] == 1) // flags: -EINVAL and a NULL dynptr
    }

    /// Without a writable slice, the packet keeps the bytes the slice would have written.
    @Test func programsWithoutAWritableSliceLeaveThoseBytes() throws {
        let loaded = try Fixture.load("packet_kfuncs")
        let process = try loaded.run("tc_dynptr", context: SKBContext(packet: Self.packet))
        #expect(try Self.longs(loaded, "results")[10] == 0)
        let after = try #require(SKBContext.result(of: process)).packet
        #expect(Array(after[0..<4]) == [0xAB, 0xCD, 0, 0])
    }

    @Test func skbDynptrsReadAndWriteThePacket() throws {
        let loaded = try Fixture.load("packet_kfuncs")
        var context = SKBContext(packet: Self.packet)
        context.programType = .schedCls
        let process = try loaded.run("tc_dynptr_rdwr", context: context)
        #expect(process.state == .exited(0))
        let results = try Self.longs(loaded, "results")
        Self.expectDynptrResults(results, readOnly: false)
        #expect(results[8] == -22) // a write flag other than BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH
        let after = try #require(SKBContext.result(of: process)).packet
        #expect(Array(after[0..<4]) == [0xAB, 0xCD, 0x11, 0x22] && after[4...] == Self.packet[4...])
    }

    /// A program type that may not write packet data gets a read-only skb dynptr, as the
    /// kernel's verifier swaps in `bpf_dynptr_from_skb_rdonly`.
    @Test func skbDynptrsAreReadOnlyWhereTheProgramMayNotWrite() throws {
        let loaded = try Fixture.load("packet_kfuncs")
        var context = SKBContext(packet: Self.packet)
        context.programType = .cgroupSkb
        let process = try loaded.run("tc_dynptr_rdwr", context: context)
        #expect(process.state == .exited(0))
        Self.expectDynptrResults(try Self.longs(loaded, "results"), readOnly: true)
        #expect(try #require(SKBContext.result(of: process)).packet == Self.packet)
    }

    @Test func xdpDynptrsAndMissingReceiveMetadata() throws {
        let loaded = try Fixture.load("packet_kfuncs")
        let process = try loaded.run("xdp_dynptr_rdwr", context: XDPContext(packet: Self.packet))
        #expect(process.state == .exited(2))
        try loaded.run("xdp_metadata", context: XDPContext(packet: Self.packet))
        let results = try Self.longs(loaded, "xdp_results")
        Self.expectDynptrResults(results, readOnly: false)
        #expect(results[8] == -22) // XDP dynptr writes take no flags
        let after = try #require(XDPContext.result(of: process)).packet
        #expect(Array(after[0..<4]) == [0xAB, 0xCD, 0x11, 0x22])
        // No driver metadata: -EOPNOTSUPP, the outputs untouched.
        #expect(Array(results[14...19]) == [-95, 1 << 32 | 2, -95, 3, -95, 4 << 16 | 5])
    }

    /// A driver's receive metadata: values, and -ENODATA for what it lacks.
    @Test func xdpReceiveMetadataComesFromTheContext() throws {
        let json = try JSONValue.parse(
            Array(#"{"hash": 305419896, "hash_type": 9, "vlan_proto": 33024, "vlan_tci": 100}"#.utf8))
        var context = XDPContext(packet: Self.packet)
        context.rxMetadata = try XDPRxMetadata(json: JSONField(json, path: "rx_metadata"))
        let loaded = try Fixture.load("packet_kfuncs")
        try loaded.run("xdp_metadata", context: context)
        let results = try Self.longs(loaded, "xdp_results")
        // vlan_proto is __be16: 0x8100 reads back as 0x0081 on a little-endian machine.
        #expect(Array(results[14...19]) == [0, 0x1234_5678 << 32 | 9, -61, 3, 0, 0x0081 << 16 | 100])
        let bad = try JSONValue.parse(Array(#"{"vlan_proto": 33024}"#.utf8))
        #expect(throws: JSONError.self) { try XDPRxMetadata(json: JSONField(bad, path: "rx_metadata")) }
    }

    /// The network's interfaces give their driver's metadata to the packets arriving on them
    /// (`interfaces[].rxMetadata` of `--net`); a context's own `rx_metadata` wins over it.
    @Test func xdpReceiveMetadataComesFromTheIngressDevice() throws {
        let network = try Network(
            jsonData: Array(
                #"""
                {"interfaces": [
                  {"ifindex": 1, "name": "lo", "loopback": true},
                  {"ifindex": 2, "name": "eth0", "rxMetadata": {"hash": 7, "hash_type": 2, "timestamp_ns": 1000}},
                  {"ifindex": 3, "name": "eth1"}]}
                """#.utf8))
        #expect(network.interface(ifindex: 2)?.rxMetadata == XDPRxMetadata(hash: 7, hashType: 2, timestamp: 1000))
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1, network: network))
        let vm = VM(emulator: emulator)
        let loaded = Fixture.Loaded(
            vm: vm, emulator: emulator, object: try vm.load(object: Fixture.object("packet_kfuncs")))
        func results(_ context: XDPContext) throws -> [Int64] {
            #expect(try loaded.run("xdp_metadata", context: context).state == .exited(2))
            return Array(try Self.longs(loaded, "xdp_results")[14...19])
        }
        // Arriving on eth0: its driver's values, -ENODATA for the VLAN tag it has none of.
        #expect(
            try results(XDPContext(packet: Self.packet, ingressIfindex: 2)) == [
                0, 7 << 32 | 2, 0, 1000, -61, 4 << 16 | 5,
            ])
        // eth1's driver has no metadata kfuncs; nor has lo (ifindex 0 is loopback).
        #expect(
            try results(XDPContext(packet: Self.packet, ingressIfindex: 3)) == [
                -95, 1 << 32 | 2, -95, 3, -95, 4 << 16 | 5,
            ])
        #expect(
            try results(XDPContext(packet: Self.packet, ingressIfindex: 0)) == [
                -95, 1 << 32 | 2, -95, 3, -95, 4 << 16 | 5,
            ])
        // The packet's own metadata replaces the device's, whole.
        var own = XDPContext(packet: Self.packet, ingressIfindex: 2)
        own.rxMetadata = XDPRxMetadata(timestamp: 55)
        #expect(try results(own) == [-61, 1 << 32 | 2, 0, 55, -61, 4 << 16 | 5])
    }

    @Test func networkReceiveMetadataMistakesAreNamed() {
        for (text, message) in [
            (
                #"{"interfaces": [{"ifindex": 2, "name": "eth0", "rxMetadata": {"hsah": 1}}]}"#,
                #"interfaces[0].rxMetadata.hsah: unknown field "hsah""#
            ),
            (
                #"{"interfaces": [{"ifindex": 2, "name": "eth0", "rxMetadata": {"vlan_tci": 1}}]}"#,
                "interfaces[0].rxMetadata: give vlan_proto and vlan_tci together"
            ),
            (
                #"{"interfaces": [{"ifindex": 2, "name": "eth0", "rxMetadata": {"hash": -1}}]}"#,
                "interfaces[0].rxMetadata.hash"
            ),
        ] {
            do {
                _ = try Network(jsonData: Array(text.utf8))
                Issue.record("accepted \(text)")
            } catch {
                #expect("\(error)".contains(message), "\(error)")
            }
        }
    }

    @Test func perCPUObjectsHaveACopyPerCPU() throws {
        let loaded = try Fixture.load("packet_kfuncs", cpus: 2)
        let process = try loaded.run("percpu_objects", vCPU: 1)
        #expect(process.state == .exited(0))
        // vCPU 1's copy is `second`; copies are 16 bytes apart; CPU 4096 is past the CPUs.
        #expect(try Self.longs(loaded, "percpu_results") == [7, 7, 16, 1, 1, 0])
        // Dropped: the heap gives the same block again.
        #expect(try loaded.run("percpu_objects", vCPU: 0).state == .exited(0))
        #expect(try Self.longs(loaded, "percpu_results") == [5, 7, 16, 1, 1, 0])
    }
}
