import Foundation
import MimicJSON
import MimicPcap
import MimicTestSupport
import Testing

/// `mimic run --pcap --workers N` (issue 17): packets spread over N threads by flow give the
/// verdicts, captures and shared-map contents of a one-worker run, each flow in capture order.
@Suite("mimic run --pcap --workers")
struct WorkersTests {
    static let flowSequence = Examples.fixture("flow_sequence.o")

    /// A capture of `count` packets over 48 IPv4 flows (UDP and TCP), interleaved by a fixed
    /// pseudo-random order, with IPv6, ARP and runt frames among them.
    static func syntheticPackets(count: Int) -> [PcapPacket] {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33)
        }
        let ipv6: [UInt8] =
            [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xDD, 0x60, 0, 0, 0, 0, 12, 17, 64]
            + [UInt8](repeating: 0x20, count: 16) + [UInt8](repeating: 0x30, count: 16)
            + [0x30, 0x39, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]
        let arp: [UInt8] =
            [255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, 1, 0x08, 0x06] + [UInt8](repeating: 0, count: 28)
        return (0..<count).map { index in
            let pick = next() % 52
            let frame: [UInt8]
            switch pick {
            case 48, 49: frame = ipv6
            case 50: frame = arp
            case 51: frame = [2, 0, 0, 0, 0, 2, 2, 0] // a runt
            default:
                frame = Packet.make(
                    source: "10.0.\(pick % 6).\(pick % 8 + 1)", destination: "10.1.0.\(pick % 3 + 1)",
                    protocol: pick % 4 == 0 ? Packet.tcp : Packet.udp, sourcePort: UInt16(1000 + pick),
                    destinationPort: UInt16(pick % 2 == 0 ? 53 : 443), payload: Array("sequence".utf8))
            }
            return PcapPacket(data: frame, timestamp: (1_700_000_000 + UInt64(index)) * 1_000_000)
        }
    }

    /// What a run gives: its JSON report, `--out` capture and `--out-dir` captures by name.
    struct Outcome {
        var report: JSONValue
        var out: [UInt8]
        var outDir: [String: [UInt8]]

        /// Packets per destination ("pass 12"), in report order.
        var destinations: [String] {
            guard case .array(let rows)? = report["destinations"] else { return [] }
            return rows.map {
                "\($0["destination"].map(String.init(describing:)) ?? "") \($0["packets"].map(String.init(describing:)) ?? "")"
            }
        }

        /// The map changes as "map key -> after" lines, in report order (hash maps' entries in the
        /// order of their key bytes, whatever the workers' timing), without the maps `excluding` names.
        func mapChanges(excluding: Set<String> = []) -> [String] {
            guard case .array(let changes)? = report["map_changes"] else { return [] }
            return changes.compactMap { change -> String? in
                guard case .string(let map)? = change["map"], !excluding.contains(map),
                    case .string(let key)? = change["key"], let after = change["after_formatted"]
                else { return nil }
                return "\(map) \(key) -> \(after)"
            }
        }
    }

    static func run(_ object: String, capture: String, workers: Int?, extra: [String] = []) throws -> Outcome {
        let directory = try TemporaryDirectory()
        let out = directory.path("out.pcap")
        let outDir = directory.path("dir")
        let result = try MimicCLI.run(
            ["run", object, "--pcap", capture, "--out", out, "--out-dir", outDir, "--json"]
                + (workers.map { ["--workers", String($0)] } ?? []) + extra)
        #expect(result.status == 0, "\(result)")
        var files: [String: [UInt8]] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: outDir)) ?? [] {
            files[name] = [UInt8](try Data(contentsOf: URL(fileURLWithPath: outDir + "/" + name)))
        }
        return Outcome(
            report: try JSONValue.parse(result.stdout), out: [UInt8](try Data(contentsOf: URL(fileURLWithPath: out))),
            outDir: files)
    }

    @Test(arguments: [2, 3, 5])
    func syntheticCaptureAsOneWorker(workers: Int) throws {
        let directory = try TemporaryDirectory()
        let packets = Self.syntheticPackets(count: 3000)
        let capture = try directory.file("synthetic.pcap", bytes: PcapWriter.file(packets))
        let one = try Self.run(Self.flowSequence, capture: capture, workers: nil)
        let many = try Self.run(Self.flowSequence, capture: capture, workers: workers)

        #expect(many.report["verdicts"] == one.report["verdicts"])
        #expect(many.destinations == one.destinations)
        #expect(many.report["instructions"] == one.report["instructions"])
        #expect(many.out == one.out, "--out is written in capture order")
        #expect(many.outDir == one.outDir, "--out-dir captures are written in capture order")
        #expect(many.mapChanges(excluding: ["per_cpu"]) == one.mapChanges(excluding: ["per_cpu"]))
        #expect(one.mapChanges().count > 48)

        // Each flow's packets ran in capture order: the k-th packet of a flow carries k.
        var seen: [[UInt8]: UInt32] = [:]
        var expected: [[UInt8]] = []
        for packet in packets {
            var frame = packet.data
            if frame.count >= 42, frame[12] == 0x08, frame[13] == 0x00 {
                let key = Array(frame[26..<38]) + [frame[23]]
                let count = (seen[key] ?? 0) + 1
                seen[key] = count
                if count % 3 == 0 { continue } // dropped
                let payload = 34 + (frame[23] == 17 ? 8 : 20)
                frame.replaceSubrange(payload..<payload + 4, with: withUnsafeBytes(of: count.littleEndian, Array.init))
            }
            expected.append(frame)
        }
        #expect(try PcapReader.readAll(many.out).map(\.data) == expected)

        // The per-CPU counter: worker i counted on CPU i, one value per worker, all packets.
        guard case .array(let changes)? = many.report["map_changes"],
            let perCPU = changes.first(where: { $0["map"] == .string("per_cpu") }),
            case .array(let values)? = perCPU["after"]
        else {
            Issue.record("no per_cpu change in \(many.report)")
            return
        }
        #expect(values.count == workers)
        let total = values.reduce(0) { sum, value in
            guard case .string(let hex) = value else { return sum }
            let bytes = hex.split(separator: " ").compactMap { UInt8($0, radix: 16) }
            return sum + bytes.reversed().reduce(0) { $0 << 8 | Int($1) }
        }
        #expect(total == packets.count)
    }

    /// `--out` with packets the program grew at the front, shortened or dropped: each record as
    /// the program left it, in capture order, with 1, 2 and 3 workers, with `--out-dir` (records
    /// from the deliveries) and without (records from the packet buffer). The output capture's
    /// slots are as large as the packets unchanged, so a grown packet's record is kept aside.
    @Test(arguments: [1, 2, 3])
    func resizedPacketsInOut(workers: Int) throws {
        let directory = try TemporaryDirectory()
        let packets = Self.syntheticPackets(count: 2000)
        let capture = try directory.file("synthetic.pcap", bytes: PcapWriter.file(packets))
        var expected: [PcapPacket] = []
        for packet in packets {
            var frame = packet.data
            if frame.count >= 38, frame[12] == 0x08, frame[13] == 0x00, frame[23] == 6 || frame[23] == 17 {
                switch frame[35] % 4 {
                case 0: frame = [0xAB, 0xAB, 0xAB, 0xAB] + frame
                case 1: frame.removeLast(2)
                case 2: continue // dropped
                default: break
                }
            }
            let unchanged = frame == packet.data
            expected.append(
                PcapPacket(
                    data: frame, timestamp: packet.timestamp,
                    originalLength: unchanged ? packet.originalLength : UInt32(frame.count)))
        }
        #expect(expected.contains { $0.data.count > 60 } && expected.contains { $0.data.count < 50 })
        let object = Examples.fixture("xdp_resize.o")
        let withDirectory = try Self.run(object, capture: capture, workers: workers)
        let out = directory.path("plain.pcap")
        let plain = try MimicCLI.run(["run", object, "--pcap", capture, "--out", out, "--workers", String(workers)])
        #expect(plain.status == 0, "\(plain)")
        for file in [withDirectory.out, [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))] {
            let read = try PcapReader.readAll(file)
            #expect(read.map(\.data) == expected.map(\.data))
            #expect(read.map(\.originalLength) == expected.map(\.originalLength))
            #expect(read.map(\.timestamp) == expected.map(\.timestamp))
        }
        #expect(plain.stdout.contains("wrote \(expected.count) packets"), "\(plain)")
    }

    @Test func exampleFirewallAsOneWorker() throws {
        let one = try Self.run(
            Examples.firewall, capture: Examples.traffic, workers: 1, extra: ["--map", Examples.blocklist])
        let two = try Self.run(
            Examples.firewall, capture: Examples.traffic, workers: 2, extra: ["--map", Examples.blocklist])
        #expect(two.report["verdicts"] == one.report["verdicts"])
        #expect(two.out == one.out)
        #expect(two.outDir == one.outDir)
        #expect(two.mapChanges(excluding: ["verdicts"]) == one.mapChanges(excluding: ["verdicts"]))
        #expect(one.mapChanges(excluding: ["verdicts"]).contains { $0.hasPrefix("blocklist") })
    }

    @Test func badWorkerCountsAreUsageErrors() throws {
        let base = ["run", Examples.firewall, "--pcap", Examples.traffic]
        for bad in ["0", "-1", "two", "513", ""] {
            expectFailure(try MimicCLI.run(base + ["--workers", bad]), status: 2, mentioning: ["--workers expects"])
        }
        expectFailure(
            try MimicCLI.run(base + ["--workers", "4", "--cpus", "2"]), status: 2,
            mentioning: ["--workers 4 runs worker i as CPU i", "--cpus 4"])
        expectFailure(
            try MimicCLI.run(["run", Examples.firewall, "--packet", "0011", "--workers", "2"]), status: 2,
            mentioning: ["give --pcap"])
        expectFailure(
            try MimicCLI.run(base + ["--packet", "1", "--workers", "2"]), status: 2, mentioning: ["without --packet"])
        // Event records would interleave by timing: refused before any packet runs.
        // (The fixture loads with go-mimic's map rules, so load warnings come first.)
        let events = try MimicCLI.run(
            [
                "run", Examples.fixture("edb_maps.o"), "--compat", "go-mimic", "--pcap", Examples.traffic, "--workers",
                "2",
            ])
        #expect(events.status == 1 && !events.crashed, "\(events)")
        #expect(
            events.stderr.contains(
                "mimic: error: --workers 2: program push_ifindex has a ring buffer or perf event array map"),
            "\(events)")
        #expect(events.stdout.isEmpty, "no report: refused before any packet runs")
    }
}
