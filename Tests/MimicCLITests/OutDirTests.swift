import Foundation
import MimicKernel
import MimicPcap
import MimicTestSupport
import Testing

/// `mimic run --pcap` records where each packet went; `--out-dir` writes one capture per
/// destination (issue 14, output per interface), on the `xdp_router` fixture.
@Suite("mimic run --pcap --out-dir")
struct OutDirTests {
    static let router = Examples.fixture("xdp_router.o")
    /// The router's maps, and the 2 CPUs its cpumap entry 1 needs.
    static var maps: [String] {
        [
            "--cpus", "2", "--map", "ports=" + Examples.fixture("router_ports.json"), "--map",
            "cpus=" + Examples.fixture("router_cpus.json"),
            "--map", "xsks=" + Examples.fixture("router_xsks.json"),
        ]
    }

    /// An IPv4 UDP frame to `destination` with the given TTL (header checksum valid).
    static func frame(to destination: String, ttl: UInt8 = 64) -> [UInt8] {
        var frame = Packet.make(source: "192.0.2.1", destination: destination)
        frame[22] = ttl
        frame.replaceSubrange(24..<26, with: [0, 0])
        frame.replaceSubrange(24..<26, with: Packet.be16(Packet.checksum(Array(frame[14..<34]))))
        return frame
    }

    /// `frame` with its TTL one lower, as the router forwards it.
    static func forwarded(_ frame: [UInt8]) -> [UInt8] {
        var out = frame
        out[22] -= 1
        out.replaceSubrange(24..<26, with: [0, 0])
        out.replaceSubrange(24..<26, with: Packet.be16(Packet.checksum(Array(out[14..<34]))))
        return out
    }

    /// The capture: packet i (from 0) at second 1_700_000_000 + i, 250 µs.
    static let frames: [[UInt8]] = [
        frame(to: "10.0.1.5"), // 0 pass
        frame(to: "10.0.2.5"), // 1 if2 (bpf_redirect), TTL 63
        frame(to: "10.0.3.5"), // 2 if3 (devmap ports[1]), TTL 63
        frame(to: "10.0.4.5"), // 3 cpu1 (cpumap)
        frame(to: "10.0.5.5"), // 4 xsk-xsks-0 (xskmap)
        frame(to: "10.0.6.5"), // 5 broadcast: if3 and if4, not the ingress if2
        frame(to: "10.0.7.5"), // 6 devmap miss, falls back to XDP_PASS
        frame(to: "10.0.8.5"), // 7 XDP_REDIRECT without a target
        frame(to: "10.0.9.5"), // 8 XDP_TX, MACs swapped
        frame(to: "10.0.2.6", ttl: 1), // 9 TTL expires: drop
        frame(to: "192.168.1.1"), // 10 no route: drop
        [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 20], // 11 truncated IPv4: aborted
        [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x06] + [UInt8](repeating: 0, count: 28), // 12 ARP: drop
    ]

    static func packets() -> [PcapPacket] {
        frames.enumerated().map {
            PcapPacket(data: $0.element, timestamp: (1_700_000_000 + UInt64($0.offset)) * 1_000_000_000 + 250_000)
        }
    }

    static func read(_ path: String) throws -> [PcapPacket] {
        try PcapReader.readAll([UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
    }

    @Test func routerWritesOneCapturePerDestination() throws {
        let directory = try TemporaryDirectory()
        let input = try directory.file("router.pcap", bytes: PcapWriter.file(Self.packets()))
        let outDir = directory.path("out/router") // created, parents too
        let alive = directory.path("alive.pcap")
        let result = try MimicCLI.run(
            ["run", Self.router, "--pcap", input, "--ctx", "ingress_ifindex=2"]
                + Self.maps + ["--out-dir", outDir, "--out", alive, "--json"])
        #expect(result.status == 0, "\(result)")

        let frames = Self.frames
        let swapped = Array(frames[8][6..<12]) + Array(frames[8][0..<6]) + Array(frames[8][12...])
        // Each destination's packets, by packet number (from 0) and expected bytes.
        let expected: [String: [(Int, [UInt8])]] = [
            "pass": [(0, frames[0]), (6, frames[6])],
            "tx": [(8, swapped)],
            "if2": [(1, Self.forwarded(frames[1]))],
            "if3": [(2, Self.forwarded(frames[2])), (5, frames[5])],
            "if4": [(5, frames[5])],
            "cpu1": [(3, frames[3])],
            "xsk-xsks-0": [(4, frames[4])],
            "drop": [(9, frames[9]), (10, frames[10]), (12, frames[12])],
            "aborted": [(11, frames[11])],
            "redirect-error": [(7, frames[7])],
        ]
        let written = try FileManager.default.contentsOfDirectory(atPath: outDir).sorted()
        #expect(written == expected.keys.map { $0 + ".pcap" }.sorted())
        let timestamps = Self.packets().map(\.timestamp)
        for (name, packets) in expected {
            let file = outDir + "/" + name + ".pcap"
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            #expect(
                bytes.count >= 24 && bytes[20] == 1 && bytes[0] == 0xD4,
                "\(name): a microsecond pcap of link type Ethernet")
            let got = try Self.read(file)
            #expect(got.map(\.data) == packets.map(\.1), "\(name)")
            #expect(got.map(\.timestamp) == packets.map { timestamps[$0.0] }, "\(name) timestamps")
        }
        for packet in try Self.read(outDir + "/if2.pcap") + Self.read(outDir + "/if3.pcap") {
            #expect(Packet.ipChecksumIsValid(packet.data), "a forwarded packet keeps a valid header checksum")
        }

        // --out: every packet that left alive, once (the broadcast too), in capture order.
        let aliveFrames: [[UInt8]] = [
            frames[0], Self.forwarded(frames[1]), Self.forwarded(frames[2]), frames[3], frames[4],
            frames[5], frames[6], swapped,
        ]
        #expect(try Self.read(alive).map(\.data) == aliveFrames)

        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let destinations = try #require(json["destinations"] as? [[String: Any]])
        #expect(
            destinations.map { $0["destination"] as? String } == [
                "pass", "tx", "if2", "if3", "if4", "cpu1", "xsk-xsks-0", "drop",
                "aborted", "redirect-error",
            ])
        for entry in destinations {
            let name = try #require(entry["destination"] as? String)
            #expect(entry["packets"] as? Int == expected[name]?.count, "\(name)")
            #expect(entry["file"] as? String == outDir + "/" + name + ".pcap")
        }
        #expect(json["out_dir"] as? String == outDir)
        #expect(json["written"] as? Int == aliveFrames.count)

        // The text report: a row per destination with its file.
        let text = try MimicCLI.run(
            ["run", Self.router, "--pcap", input, "--ctx", "ingress_ifindex=2"]
                + Self.maps + ["--out-dir", outDir])
        #expect(text.status == 0, "\(text)")
        for fragment in [
            "destinations (one capture each in \(outDir)):", "if3 2 if3.pcap", "if4 1 if4.pcap", "drop 3 drop.pcap",
            "xsk-xsks-0 1 xsk-xsks-0.pcap", "redirect-error 1 redirect-error.pcap",
        ] {
            #expect(text.stdout.squeezed.contains(fragment), "missing '\(fragment)': \(text.stdout)")
        }
    }

    /// Without `--out-dir`, the runner counts XDP_PASS / TX / DROP / ABORTED packets and writes
    /// their `--out` records straight from the packet buffer, with no outcome made; the
    /// redirects go the general way. Counts, verdicts, `--out` and `modified` must be those of
    /// the `--out-dir` run, which makes an outcome for every packet; with 1 and 2 workers.
    @Test(arguments: [1, 2])
    func plainVerdictsCountAsOutcomesDo(workers: Int) throws {
        let directory = try TemporaryDirectory()
        let input = try directory.file("router.pcap", bytes: PcapWriter.file(Self.packets()))
        func run(outDir: Bool) throws -> (json: [String: Any], out: [UInt8]) {
            let out = directory.path(outDir ? "with.pcap" : "without.pcap")
            let result = try MimicCLI.run(
                ["run", Self.router, "--pcap", input, "--ctx", "ingress_ifindex=2", "--workers", String(workers)]
                    + Self.maps + ["--out", out, "--json"] + (outDir ? ["--out-dir", directory.path("dir")] : []))
            #expect(result.status == 0, "\(result)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            return (json, [UInt8](try Data(contentsOf: URL(fileURLWithPath: out))))
        }
        let general = try run(outDir: true)
        let plain = try run(outDir: false)
        #expect(plain.out == general.out, "--out, record for record")
        func destinations(_ json: [String: Any]) -> [String] {
            ((json["destinations"] as? [[String: Any]]) ?? []).map {
                "\($0["destination"] ?? "?") \($0["packets"] ?? "?")"
            }
        }
        #expect(destinations(plain.json) == destinations(general.json))
        #expect(destinations(plain.json).contains("tx 1") && destinations(plain.json).contains("aborted 1"))
        #expect(plain.json["verdicts"] as? [String: Int] == general.json["verdicts"] as? [String: Int])
        for key in ["errors", "instructions", "written", "modified"] {
            #expect("\(plain.json[key] ?? "none")" == "\(general.json[key] ?? "none")", "\(key)")
        }
        #expect(plain.json["modified"] as? Int == 3, "two forwarded (TTL), one XDP_TX (MACs swapped)")
    }

    /// Written captures keep nanosecond timestamps when the input has any (`--out` and
    /// `--out-dir`), and are microsecond captures otherwise.
    @Test(arguments: [false, true])
    func writtenCapturesKeepTheInputsResolution(nanosecond: Bool) throws {
        let directory = try TemporaryDirectory()
        let packets = (0..<4).map { index in
            PcapPacket(
                data: Self.frame(to: "10.0.1.\(index + 1)"),
                timestamp: 1_700_000_000_000_000_000 + UInt64(index) * 1_000_000 + (nanosecond ? 7 : 0))
        }
        let input = try directory.file("in.pcap", bytes: PcapWriter.file(packets, nanosecond: true))
        let out = directory.path("out.pcap")
        let outDir = directory.path("dir")
        let result = try MimicCLI.run([
            "run", Examples.firewall, "--pcap", input, "--map", Examples.blocklist, "--out", out, "--out-dir", outDir,
        ])
        #expect(result.status == 0, "\(result)")
        let magic: [UInt8] = nanosecond ? [0x4D, 0x3C, 0xB2, 0xA1] : [0xD4, 0xC3, 0xB2, 0xA1]
        for file in [out, outDir + "/pass.pcap"] {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            #expect(Array(bytes.prefix(4)) == magic, "\(file)")
            #expect(try Self.read(file).map(\.timestamp) == packets.map(\.timestamp), "\(file)")
        }
    }

    @Test func tcRedirectsClonesAndStolenPackets() throws {
        let directory = try TemporaryDirectory()
        let input = try directory.file("router.pcap", bytes: PcapWriter.file(Self.packets()))
        let outDir = directory.path("tc")
        let result = try MimicCLI.run([
            "run", Examples.fixture("tc_redirect.o"), "--pcap", input, "--out-dir", outDir, "--json",
        ])
        #expect(result.status == 0, "\(result)")
        // By packet number (from 0): the program leaves every packet unchanged.
        let expected: [String: [Int]] = [
            "pass": [0, 6, 7, 8, 10, 11, 12], // TC_ACT_OK, and TC_ACT_PIPE (6) as cls_bpf treats it
            "if2": [1, 9],
            "if3-ingress": [2],
            "if4": [3], // the bpf_clone_redirect copy ...
            "drop": [3], // ... of a packet then shot
            "stolen": [4],
            "redirect-error": [5],
        ]
        let written = try FileManager.default.contentsOfDirectory(atPath: outDir).sorted()
        #expect(written == expected.keys.map { $0 + ".pcap" }.sorted())
        for (name, numbers) in expected {
            let got = try Self.read(outDir + "/" + name + ".pcap")
            #expect(got.map(\.data) == numbers.map { Self.frames[$0] }, "\(name)")
        }
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let destinations = try #require(json["destinations"] as? [[String: Any]])
        #expect(
            destinations.map { $0["destination"] as? String } == [
                "pass", "if2", "if4", "if3-ingress", "drop", "stolen",
                "redirect-error",
            ])
    }

    /// The kernel accepts both fixtures and returns the same verdicts and packet bytes (the
    /// forwarded packets' TTL and checksum included) on the test capture.
    @Test(.enabled(if: KernelBPF.isAvailable, "the kernel's BPF is not reachable"))
    func theKernelAgreesOnTheFixtures() throws {
        let directory = try TemporaryDirectory()
        let input = try directory.file("router.pcap", bytes: PcapWriter.file(Self.packets()))
        // The kernel's sk_buff test run refuses the truncated IPv4 packet (11): 12 of 13 for tc.
        for (arguments, compared) in [
            ([Self.router, "--map", "ports=" + Examples.fixture("router_ports.json")], 13),
            ([Examples.fixture("tc_redirect.o")], 12),
        ] {
            let result = try MimicCLI.run(["compare"] + arguments + ["--pcap", input])
            #expect(
                result.status == 0 && result.stdout.contains("agree on every packet compared (\(compared) of 13)"),
                "\(result)")
        }
    }

    @Test func destinationsAreCountedWithoutOutDir() throws {
        let firewall = try MimicCLI.run([
            "run", Examples.firewall, "--pcap", Examples.traffic, "--map", Examples.blocklist,
        ])
        #expect(firewall.status == 0, "\(firewall)")
        #expect(firewall.stdout.squeezed.contains("destinations:\n pass 15\n drop 5\n"), "\(firewall.stdout)")
        let tc = try MimicCLI.run(["run", Examples.path("tc_rewrite.o"), "--pcap", Examples.traffic, "--json"])
        #expect(tc.status == 0, "\(tc)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(tc.stdout.utf8)) as? [String: Any])
        let destinations = try #require(json["destinations"] as? [[String: Any]])
        #expect(
            destinations.count == 1 && destinations[0]["destination"] as? String == "pass"
                && destinations[0]["packets"] as? Int == 20)
        #expect(destinations[0]["file"] == nil)
        // tc_mark: TC_ACT_OK for mark 5, TC_ACT_SHOT otherwise.
        let shot = try MimicCLI.run(["run", Examples.fixture("tc_mark.o"), "--pcap", Examples.traffic])
        #expect(shot.status == 0 && shot.stdout.squeezed.contains("destinations:\n drop 20\n"), "\(shot)")
        let ok = try MimicCLI.run(["run", Examples.fixture("tc_mark.o"), "--pcap", Examples.traffic, "--ctx", "mark=5"])
        #expect(ok.status == 0 && ok.stdout.squeezed.contains("destinations:\n pass 20\n"), "\(ok)")
    }

    @Test func outDirMistakesAreClearErrors() throws {
        let directory = try TemporaryDirectory()
        let input = try directory.file("router.pcap", bytes: PcapWriter.file(Self.packets()))
        let file = try directory.file("plain", "not a directory")

        let notDirectory = try MimicCLI.run(["run", Self.router, "--pcap", input, "--out-dir", file] + Self.maps)
        #expect(
            notDirectory.status == 1 && notDirectory.stderr.contains("exists and is not a directory"), "\(notDirectory)"
        )

        let uncreatable = try MimicCLI.run(
            ["run", Self.router, "--pcap", input, "--out-dir", file + "/sub"] + Self.maps)
        #expect(uncreatable.status == 1 && uncreatable.stderr.contains("cannot create the directory"), "\(uncreatable)")

        let noPcap = try MimicCLI.run(["run", Self.router, "--out-dir", directory.path("out")])
        #expect(
            noPcap.status == 2 && noPcap.stderr.contains("--out-dir writes the packets of a --pcap run"), "\(noPcap)")

        let dash = try MimicCLI.run(["run", Self.router, "--pcap", input, "--out-dir", "-"])
        #expect(dash.status == 2 && dash.stderr.contains("--out-dir expects a directory"), "\(dash)")

        // --out naming one of the destination captures: refused before anything is written.
        let out = directory.path("out")
        let clash = try MimicCLI.run(
            ["run", Self.router, "--pcap", input, "--out-dir", out, "--out", out + "/pass.pcap"] + Self.maps)
        #expect(clash.status == 1 && clash.stderr.contains("is also the --out-dir capture"), "\(clash)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty)

        // The input capture inside the directory under a destination's name.
        let inside = try directory.file("pass.pcap", bytes: PcapWriter.file(Self.packets()))
        let overwrite = try MimicCLI.run(
            ["run", Self.router, "--pcap", inside, "--out-dir", directory.url.path] + Self.maps)
        #expect(overwrite.status == 1 && overwrite.stderr.contains("would overwrite the input capture"), "\(overwrite)")
        #expect(try Self.read(inside).count == Self.frames.count, "the input is untouched")
    }
}
