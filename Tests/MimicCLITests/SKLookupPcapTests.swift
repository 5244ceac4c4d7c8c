import Foundation
import MimicPcap
import MimicTestSupport
import Testing

/// `mimic run --pcap` of an sk_lookup program (issue 14): each TCP connection request and UDP
/// datagram of the capture runs with the `bpf_sk_lookup` context the kernel builds for it;
/// `SK_DROP` drops, `SK_PASS` after `bpf_sk_assign` goes to the socket (`sk-COOKIE`), other
/// packets are not looked up and pass without a run.
@Suite("mimic run --pcap: sk_lookup programs")
struct SKLookupPcapTests {
    static let object = Examples.fixture("sk_lookup_steer.o")

    /// A TCP segment from 10.0.0.7:40000 with `flags` (0x02 SYN, 0x10 ACK).
    static func tcp(to destination: String, port: UInt16, flags: UInt8) -> [UInt8] {
        var frame = Packet.make(
            source: "10.0.0.7", destination: destination, protocol: Packet.tcp, sourcePort: 40000,
            destinationPort: port, payload: [])
        frame[14 + 20 + 13] = flags
        return frame
    }

    static func udp(port: UInt16) -> [UInt8] {
        Packet.make(source: "10.0.0.7", destination: "10.0.0.1", sourcePort: 5000, destinationPort: port)
    }

    /// A UDP datagram from fd00::7 port 5000 to fd00::1 `port`.
    static func udp6(port: UInt16) -> [UInt8] {
        let source: [UInt8] = [0xFD] + [UInt8](repeating: 0, count: 14) + [7]
        let destination: [UInt8] = [0xFD] + [UInt8](repeating: 0, count: 14) + [1]
        let udp = Packet.be16(5000) + Packet.be16(port) + Packet.be16(8) + [0, 0]
        let ip: [UInt8] = [0x60, 0, 0, 0] + Packet.be16(8) + [17, 64] + source + destination
        return [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xDD] + ip + udp
    }

    static let arp: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x06] + [UInt8](repeating: 0, count: 28)

    static func setUp(_ directory: TemporaryDirectory, _ frames: [[UInt8]]) throws -> (
        input: String, net: String, map: String
    ) {
        let net = try directory.file(
            "net.json",
            """
            {"sockets": [{"protocol": "tcp", "local": "10.0.0.1:80", "cookie": 100},
                         {"protocol": "tcp", "local": "127.0.0.1:8080", "cookie": 200}]}
            """)
        let map = try directory.file("redir.json", #"[{"key": 0, "value": 200}]"#)
        let input = try directory.file("in.pcap", bytes: NetProgramOutDirTests.capture(frames))
        return (input, net, map)
    }

    @Test("SYNs to 10.0.0.1:80-89 go to the sockmap's socket, UDP to 53 drops, the rest passes; each capture exact")
    func endToEnd() throws {
        let directory = try TemporaryDirectory()
        let steered = [
            Self.tcp(to: "10.0.0.1", port: 80, flags: 0x02), Self.tcp(to: "10.0.0.1", port: 89, flags: 0x02),
        ]
        let otherPort = Self.tcp(to: "10.0.0.1", port: 90, flags: 0x02)
        let otherAddress = Self.tcp(to: "10.0.0.2", port: 80, flags: 0x02)
        let ack = Self.tcp(to: "10.0.0.1", port: 80, flags: 0x10)
        let synAck = Self.tcp(to: "10.0.0.1", port: 80, flags: 0x12)
        let dns = Self.udp(port: 53)
        let mdns = Self.udp(port: 5353)
        let dns6 = Self.udp6(port: 53)
        // A SYN cut short in its TCP header: the kernel discards it before any lookup.
        let truncated = Array(steered[0].prefix(14 + 20 + 10))
        let frames = [
            steered[0], otherPort, ack, dns, Self.arp, otherAddress, synAck, steered[1], mdns, dns6, truncated,
        ]
        let (input, net, map) = try Self.setUp(directory, frames)
        let outDir = directory.path("out")
        let result = try MimicCLI.run([
            "run", Self.object, "--pcap", input, "--net", net, "--map", "redir_map=" + map, "--out-dir", outDir,
            "--json",
        ])
        #expect(result.status == 0, "\(result)")
        #expect(try NetProgramOutDirTests.destinations(result.stdout) == ["sk-200": 2, "drop": 2, "pass": 7])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let verdicts = try #require(json["verdicts"] as? [String: Int])
        #expect(verdicts == ["SK_PASS": 5, "SK_DROP": 2, "not looked up": 4])
        #expect(try NetProgramOutDirTests.read(outDir + "/sk-200.pcap") == steered)
        #expect(try NetProgramOutDirTests.read(outDir + "/drop.pcap") == [dns, dns6])
        #expect(
            try NetProgramOutDirTests.read(outDir + "/pass.pcap")
                == [otherPort, ack, Self.arp, otherAddress, synAck, mdns, truncated])
        #expect(
            try Set(FileManager.default.contentsOfDirectory(atPath: outDir)) == [
                "sk-200.pcap", "drop.pcap", "pass.pcap",
            ])
        // Maps persist across packets: the two steered SYNs counted.
        #expect(result.stdout.contains("\"steered\""), "\(result.stdout)")

        let text = try MimicCLI.run([
            "run", Self.object, "--pcap", input, "--net", net, "--map", "redir_map=" + map, "--out-dir", outDir,
        ])
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.squeezed.contains("not looked up 4"), "\(text.stdout)")
        #expect(text.stdout.squeezed.contains("sk-200 2 sk-200.pcap"), "\(text.stdout)")
        #expect(text.stdout.squeezed.contains("[0] 0 -> 2"), "\(text.stdout)")

        // --workers spreads the packets by flow: the same destinations and counts.
        let workers = try MimicCLI.run([
            "run", Self.object, "--pcap", input, "--net", net, "--map", "redir_map=" + map, "--workers", "2",
            "--out-dir", directory.path("workers"), "--json",
        ])
        #expect(workers.status == 0, "\(workers)")
        #expect(try NetProgramOutDirTests.destinations(workers.stdout) == ["sk-200": 2, "drop": 2, "pass": 7])
        #expect(try NetProgramOutDirTests.read(directory.path("workers") + "/sk-200.pcap") == steered)
        #expect(try NetProgramOutDirTests.read(directory.path("workers") + "/pass.pcap").count == 7)

        // --out writes what leaves alive (here all but the drops), unchanged.
        let out = directory.path("alive.pcap")
        let written = try MimicCLI.run([
            "run", Self.object, "--pcap", input, "--net", net, "--map", "redir_map=" + map, "--out", out,
        ])
        #expect(written.status == 0, "\(written)")
        #expect(try NetProgramOutDirTests.read(out) == frames.filter { $0 != dns && $0 != dns6 })
    }

    @Test("an empty sockmap slot: the program drops the SYNs it would steer")
    func emptySocketMap() throws {
        let directory = try TemporaryDirectory()
        let syn = Self.tcp(to: "10.0.0.1", port: 85, flags: 0x02)
        let (input, net, _) = try Self.setUp(directory, [syn])
        let result = try MimicCLI.run([
            "run", Self.object, "--pcap", input, "--net", net, "--out-dir", directory.path("out"), "--json",
        ])
        #expect(result.status == 0, "\(result)")
        #expect(try NetProgramOutDirTests.destinations(result.stdout) == ["drop": 1])
        #expect(try NetProgramOutDirTests.read(directory.path("out") + "/drop.pcap") == [syn])

        // An established TCP socket in the slot: bpf_sk_assign refuses it (-ESOCKTNOSUPPORT, the
        // kernel takes only sockets freed by RCU: listeners and UDP), so the program drops.
        let establishedNet = try directory.file(
            "established.json",
            #"{"sockets": [{"protocol": "tcp", "local": "10.0.0.1:80", "remote": "10.0.0.7:40000", "cookie": 300}]}"#)
        let map = try directory.file("established_map.json", #"[{"key": 0, "value": 300}]"#)
        let refused = try MimicCLI.run([
            "run", Self.object, "--pcap", input, "--packet", "1", "--net", establishedNet, "--map", "redir_map=" + map,
        ])
        #expect(refused.status == 0, "\(refused)")
        #expect(refused.stdout.contains("r0 = 0 (0x0) SK_DROP"), "\(refused.stdout)")
        #expect(!refused.stdout.contains("bpf_sk_assign(socket cookie"), "\(refused.stdout)")
    }

    @Test("--ctx ingress_ifindex sets the context's; other --ctx fields and unlooked-up --packet N are refused")
    func mistakes() throws {
        let directory = try TemporaryDirectory()
        let (input, net, map) = try Self.setUp(
            directory, [Self.tcp(to: "10.0.0.1", port: 80, flags: 0x02), Self.arp])
        let one = try MimicCLI.run([
            "run", Self.object, "--pcap", input, "--packet", "1", "--net", net, "--map", "redir_map=" + map,
            "--ctx", "ingress_ifindex=2",
        ])
        #expect(one.status == 0, "\(one)")
        #expect(one.stdout.contains("remote_port=16540"), "\(one.stdout)") // 40000 in network order
        #expect(one.stdout.contains("local_port=80 ingress_ifindex=2"), "\(one.stdout)")
        #expect(one.stdout.contains("bpf_sk_assign(socket cookie 200, flags 0) = 0"), "\(one.stdout)")

        // trace over the capture traces the looked-up packets and names why the others are not.
        let trace = try MimicCLI.run([
            "trace", Self.object, "--pcap", input, "--net", net, "--map", "redir_map=" + map,
        ])
        #expect(trace.status == 0, "\(trace)")
        #expect(trace.stdout.contains("bpf_sk_assign(socket cookie 200, flags 0) = 0"), "\(trace.stdout)")
        #expect(
            trace.stdout.contains(
                "=== packet 2 ===\nnot looked up (the program does not run): EtherType 0x806, not IPv4 or IPv6"),
            "\(trace.stdout)")

        let mark = try MimicCLI.run(["run", Self.object, "--pcap", input, "--ctx", "mark=3"])
        #expect(mark.status != 0)
        #expect(mark.stderr.contains("takes only ingress_ifindex from --ctx"), "\(mark)")

        let arp = try MimicCLI.run(["run", Self.object, "--pcap", input, "--packet", "2"])
        #expect(arp.status != 0)
        #expect(arp.stderr.contains("does not run for this packet: EtherType 0x806, not IPv4 or IPv6"), "\(arp)")
    }
}
