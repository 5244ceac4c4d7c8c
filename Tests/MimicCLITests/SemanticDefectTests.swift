import Foundation
import MimicJSON
import Testing

/// Command-line sides of issue 13's wrong answers: the random seed, contexts of the wrong kind,
/// big-endian objects.
@Suite("mimic run: seeds, context kinds, byte order")
struct SemanticDefectTests {
    static var sampler: String { Examples.fixture("sampler.o") }

    /// The verdict counts of a `--json` run of the sampler over the example capture.
    static func verdicts(_ extra: [String]) throws -> (pass: Int, drop: Int, output: String) {
        let result = try MimicCLI.run(["run", sampler, "--pcap", Examples.traffic, "--json"] + extra)
        #expect(result.status == 0, "\(result)")
        func count(_ name: String) -> Int {
            guard let range = result.stdout.range(of: "\"\(name)\": ") else { return 0 }
            return Int(result.stdout[range.upperBound...].prefix { $0.isNumber }) ?? 0
        }
        return (count("XDP_PASS"), count("XDP_DROP"), result.stdout)
    }

    @Test func everyPacketDrawsANewRandomValueAndASeedRepeatsThem() throws {
        let first = try Self.verdicts(["--seed", "5"])
        let second = try Self.verdicts(["--seed", "5"])
        #expect(first.pass + first.drop == 20, "\(first.output)")
        #expect(first.pass > 0 && first.drop > 0, "prandom & 1 must vary over 20 packets: \(first.output)")
        #expect(first.output == second.output, "the same seed must give the same run")
        let others = try (1...4).map { try Self.verdicts(["--seed", "\(100 + $0)"]).pass }
        #expect(Set(others + [first.pass]).count > 1, "different seeds gave the same verdicts")
    }

    @Test func seedMustBeANumber() throws {
        let result = try MimicCLI.run(["run", Self.sampler, "--pcap", Examples.traffic, "--seed", "x"])
        #expect(result.status == 2 && result.stderr.contains("--seed expects a whole number"), "\(result)")
    }

    @Test func bigEndianObjectsAreRefusedNamingTheObject() throws {
        let path = MimicCLI.packageRoot.appendingPathComponent("Tests/MimicCoreTests/Fixtures/bigendian.o").path
        let result = try MimicCLI.run(["run", path])
        #expect(result.status == 1, "\(result)")
        #expect(
            result.stderr.contains(path) && result.stderr.contains("-target bpfeb")
                && result.stderr.contains("not supported"),
            "\(result)")
        let inspect = try MimicCLI.run(["inspect", path])
        #expect(inspect.status == 0 && inspect.stdout.contains("big-endian"), "\(inspect)")
    }

    /// An sk_buff context file of `frame`.
    static func skbContext(_ frame: [UInt8], extra: String = "") -> String {
        #"{"name":"s","type":"sk_buff","ctx":{"packet":"\#(Base64.encode(frame))"\#(extra)}}"#
    }

    @Test func aContextOfTheWrongKindIsRefusedNamingBoth() throws {
        let directory = try TemporaryDirectory()
        let context = try directory.file("skb.json", Self.skbContext([UInt8](repeating: 0, count: 60)))
        let result = try MimicCLI.run(["run", Examples.firewall, "--context", context])
        #expect(result.status == 1, "\(result)")
        #expect(
            result.stderr.contains(#"a context of kind "sk_buff" does not fit program"#)
                && result.stderr.contains("type xdp") && result.stderr.contains("takes an xdp_md context"), "\(result)")
    }

    /// A socket filter sees the packet from the network header, as in `mimic compare` (the
    /// kernel's test run); `--data-start mac` or the context's `dataStart` choose the frame.
    @Test func socketFiltersStartAtTheNetworkHeaderUnlessAsked() throws {
        let filter = MimicCLI.packageRoot.appendingPathComponent("Tests/MimicCoreTests/Fixtures/socket_filter.o").path
        let frame = [UInt8](repeating: 0, count: 12) + [0x08, 0x00, 0x45] + [UInt8](repeating: 0, count: 95) // 110 bytes
        let directory = try TemporaryDirectory()
        let plain = try directory.file("plain.json", Self.skbContext(frame))
        let mac = try directory.file("mac.json", Self.skbContext(frame, extra: #","dataStart":"mac""#))
        let network = try MimicCLI.run(["run", filter, "--context", plain])
        #expect(network.status == 0 && network.stdout.contains("keep 96 bytes"), "len is 110 - 14: \(network)")
        let asked = try MimicCLI.run(["run", filter, "--context", plain, "--data-start", "mac"])
        #expect(asked.status == 0 && asked.stdout.contains("keep 64 bytes"), "len is 110 > 100: \(asked)")
        let inFile = try MimicCLI.run(["run", filter, "--context", mac])
        #expect(inFile.status == 0 && inFile.stdout.contains("keep 64 bytes"), "\(inFile)")
        let bad = try MimicCLI.run(["run", filter, "--context", plain, "--data-start", "ip"])
        #expect(bad.status == 2 && bad.stderr.contains("--data-start expects mac or network"), "\(bad)")
        let xdp = try MimicCLI.run(["run", Examples.firewall, "--pcap", Examples.traffic, "--data-start", "mac"])
        #expect(
            xdp.status == 1 && xdp.stderr.contains("--data-start applies to programs that take an sk_buff"), "\(xdp)")
    }
}
