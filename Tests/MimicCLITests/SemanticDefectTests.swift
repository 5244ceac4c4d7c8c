import Foundation
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
        #expect(result.stderr.contains(path) && result.stderr.contains("-target bpfeb") && result.stderr.contains("not supported"),
                "\(result)")
        let inspect = try MimicCLI.run(["inspect", path])
        #expect(inspect.status == 0 && inspect.stdout.contains("big-endian"), "\(inspect)")
    }
}
