import Foundation
import Testing
import MimicKernel
import MimicLinux

@Suite("mimic compare and mimic fuzz")
struct CompareCommandTests {
    static func fixture(_ name: String) -> String {
        MimicCLI.packageRoot.appendingPathComponent("Tests/MimicLinuxTests/Fixtures/\(name)").path
    }

    static let udpPacket =
        "02000000000002000000000108004500002400010000401100000a0000010a000002303900350010000068656c6c6f212121"

    @Test("usage mistakes exit 2 before the kernel is needed")
    func usage() throws {
        let none = try MimicCLI.run(["compare", Self.fixture("xdp_firewall.o")])
        #expect(none.status == 2, "\(none)")
        #expect(none.stderr.contains("--pcap, --context or --packet"))
        let two = try MimicCLI.run(["compare", Self.fixture("xdp_firewall.o"), "--packet", "00", "--pcap", "x.pcap"])
        #expect(two.status == 2, "\(two)")
        let badMap = try MimicCLI.run(["compare", Self.fixture("xdp_firewall.o"), "--packet", "00", "--map", "oops"])
        #expect(badMap.status == 2, "\(badMap)")
    }

    @Test("a malformed pcap is reported with the record")
    func badPcap() throws {
        let directory = try TemporaryDirectory()
        let path = directory.url.appendingPathComponent("bad.pcap").path
        #expect(
            FileManager.default.createFile(
                atPath: path,
                contents: Data(
                    [0xD4, 0xC3, 0xB2, 0xA1] + [UInt8](repeating: 0, count: 16) + [1, 0, 0, 0]
                        + [UInt8](repeating: 0, count: 10))))
        let result = try MimicCLI.run(["compare", Self.fixture("xdp_firewall.o"), "--pcap", path])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("bad.pcap"), "\(result)")
    }

    @Test("without the kernel, compare says why and exits 1", .enabled(if: !KernelBPF.isAvailable))
    func unavailable() throws {
        let result = try MimicCLI.run(["compare", Self.fixture("xdp_firewall.o"), "--packet", Self.udpPacket])
        #expect(result.status == 1)
        #expect(result.stderr.contains("not reachable"), "\(result)")
    }

    @Test(
        "compare agrees on an XDP program over a pcap, text and JSON",
        .enabled(if: KernelBPF.isAvailable, "the kernel's BPF is not reachable"))
    func agree() throws {
        let directory = try TemporaryDirectory()
        let path = directory.url.appendingPathComponent("in.pcap").path
        var packet: [UInt8] = []
        var index = Self.udpPacket.startIndex
        while index < Self.udpPacket.endIndex {
            let next = Self.udpPacket.index(index, offsetBy: 2)
            packet.append(UInt8(Self.udpPacket[index..<next], radix: 16) ?? 0)
            index = next
        }
        var pcap: [UInt8] =
            [0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0] + [UInt8](repeating: 0, count: 8) + [0xFF, 0xFF, 0, 0, 1, 0, 0, 0]
        for _ in 0..<3 {
            pcap +=
                [UInt8](repeating: 0, count: 8) + [UInt8(packet.count), 0, 0, 0, UInt8(packet.count), 0, 0, 0] + packet
        }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(pcap)))
        let text = try MimicCLI.run(["compare", Self.fixture("xdp_firewall.o"), "--pcap", path])
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.contains("agree on every packet compared"), "\(text)")
        let json = try MimicCLI.run(["compare", Self.fixture("xdp_firewall.o"), "--packet", Self.udpPacket, "--json"])
        #expect(json.status == 0, "\(json)")
        #expect(json.stdout.contains("\"same\": true"), "\(json)")
    }

    @Test(
        "compare names verdicts as run does, spaces its hex as run does, and fails when nothing was compared",
        .enabled(if: KernelBPF.isAvailable, "the kernel's BPF is not reachable"))
    func verdictsAndNothingCompared() throws {
        let text = try MimicCLI.run(["compare", Self.fixture("xdp_firewall.o"), "--packet", Self.udpPacket])
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.contains("same — XDP_PASS (2)"), "\(text)")
        let json = try MimicCLI.run(["compare", Self.fixture("xdp_firewall.o"), "--packet", Self.udpPacket, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let packet = try #require((object["packets"] as? [[String: Any]])?.first)
        #expect(packet["kernel_verdict"] as? String == "XDP_PASS")
        #expect((packet["kernel_packet"] as? String)?.hasPrefix("02 00 00 00") == true, "spaced hex, as run --json")
        // A packet the kernel's test run refuses (shorter than an Ethernet header): nothing compared.
        let none = try MimicCLI.run(["compare", Self.fixture("xdp_firewall.o"), "--packet", "00"])
        expectFailure(none, status: 1, mentioning: ["nothing was compared", "at least 14 bytes"])
        #expect(!none.stdout.contains("agree"), "\(none)")
    }

    @Test(
        "a program the verifier rejects: its log and exit 1; one that needs the object's BTF runs with it",
        .enabled(if: KernelBPF.isAvailable, "the kernel's BPF is not reachable"))
    func rejected() throws {
        // A socket filter writing skb->mark, which only tc programs may.
        let result = try MimicCLI.run([
            "compare", Self.fixture("netprog_skb_forbidden.o"), "--program", "filter_writes_mark", "--packet",
            Self.udpPacket,
        ])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("verifier rejected"), "\(result)")
        #expect(result.stderr.contains("invalid bpf_context access"), "\(result)")
        // A bpf_loop callback, which the kernel refuses without the object's BTF ("missing btf
        // func_info"): compare loads it again with its BTF, as libbpf would.
        let callback = try MimicCLI.run(["compare", Self.fixture("loop.o"), "--packet", Self.udpPacket])
        #expect(callback.status == 0, "\(callback)")
    }

    @Test("fuzz runs a short seeded campaign", .enabled(if: KernelBPF.isAvailable, "the kernel's BPF is not reachable"))
    func fuzz() throws {
        let result = try MimicCLI.run(["fuzz", "--seed", "5", "--count", "200", "--quiet"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("200 programs"), "\(result)")
    }
}
