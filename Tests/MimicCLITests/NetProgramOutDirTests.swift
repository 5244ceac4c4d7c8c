import Foundation
import MimicPcap
import MimicTestSupport
import Testing

/// `mimic run --pcap --out-dir` for the program types whose destinations are not interfaces of
/// XDP or tc: an sk_skb verdict's socket redirect (`sock-COOKIE`), a netfilter program's verdict
/// and an lwt_seg6local (End.BPF) program's route.
@Suite("mimic run --pcap: socket redirects, netfilter and End.BPF destinations")
struct NetProgramOutDirTests {
    static func linuxFixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("MimicLinuxTests/Fixtures/\(name)").path
    }

    static func capture(_ frames: [[UInt8]]) -> [UInt8] {
        PcapWriter.file(
            frames.enumerated().map {
                PcapPacket(data: $0.element, timestamp: (1_700_000_000 + UInt64($0.offset)) * 1_000_000_000)
            })
    }

    static func read(_ path: String) throws -> [[UInt8]] {
        try PcapReader.readAll([UInt8](Data(contentsOf: URL(fileURLWithPath: path)))).map(\.data)
    }

    static func destinations(_ stdout: String) throws -> [String: Int] {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        let entries = try #require(json["destinations"] as? [[String: Any]])
        var counts: [String: Int] = [:]
        for entry in entries {
            counts[try #require(entry["destination"] as? String)] = entry["packets"] as? Int
        }
        return counts
    }

    @Test("sk_skb: SK_PASS with bpf_sk_redirect_map goes to sock-COOKIE-ingress; refused redirects drop")
    func socketRedirects() throws {
        let directory = try TemporaryDirectory()
        let net = try directory.file(
            "net.json",
            """
            {"sockets": [{"protocol": "tcp", "local": "10.0.0.1:80", "cookie": 100},
                         {"protocol": "tcp", "local": "10.0.0.1:80", "remote": "10.0.0.7:40000", "cookie": 101}]}
            """)
        let map = try directory.file("sock_map.json", #"[{"key": 0, "value": 101}, {"key": 1, "value": 100}]"#)
        // The verdict's key is the data's first byte: 0 is the connected socket, 1 a listener
        // (no redirects), 3 an empty slot.
        let frames: [[UInt8]] = [[0, 9, 9], [1, 2], [3], [0, 7]]
        let input = try directory.file("stream.pcap", bytes: Self.capture(frames))
        let outDir = directory.path("out")
        let result = try MimicCLI.run([
            "run", Self.linuxFixture("netprog_sockmap.o"), "--program", "verdict", "--pcap", input, "--net", net,
            "--map", "sock_map=" + map, "--out-dir", outDir, "--json",
        ])
        #expect(result.status == 0, "\(result)")
        #expect(try Self.destinations(result.stdout) == ["sock-101-ingress": 2, "drop": 2])
        #expect(try Self.read(outDir + "/sock-101-ingress.pcap") == [frames[0], frames[3]])
        #expect(try Self.read(outDir + "/drop.pcap") == [frames[1], frames[2]])
        let text = try MimicCLI.run([
            "run", Self.linuxFixture("netprog_sockmap.o"), "--program", "verdict", "--pcap", input, "--net", net,
            "--map", "sock_map=" + map, "--out-dir", outDir,
        ])
        #expect(text.stdout.squeezed.contains("sock-101-ingress 2 sock-101-ingress.pcap"), "\(text.stdout)")
    }

    @Test("netfilter: each frame at pre-routing; NF_ACCEPT passes, NF_DROP drops, a non-IP frame is an error")
    func netfilter() throws {
        let directory = try TemporaryDirectory()
        let telnet = Packet.make(source: "10.0.0.1", destination: "10.0.0.2", protocol: Packet.tcp, destinationPort: 23)
        let dns = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")
        let discard = Packet.make(source: "10.0.0.1", destination: "10.0.0.2", destinationPort: 9)
        let arp = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x06] + [UInt8](repeating: 0, count: 28)
        let input = try directory.file("nf.pcap", bytes: Self.capture([telnet, dns, discard]))
        let outDir = directory.path("out")
        let result = try MimicCLI.run([
            "run", Self.linuxFixture("netprog_netfilter.o"), "--pcap", input, "--out-dir", outDir, "--json",
        ])
        #expect(result.status == 0, "\(result)")
        #expect(try Self.destinations(result.stdout) == ["pass": 1, "drop": 2])
        #expect(try Self.read(outDir + "/pass.pcap") == [dns])
        #expect(try Self.read(outDir + "/drop.pcap") == [telnet, discard])

        let withARP = try directory.file("arp.pcap", bytes: Self.capture([dns, arp]))
        let text = try MimicCLI.run(["run", Self.linuxFixture("netprog_netfilter.o"), "--pcap", withARP])
        #expect(text.status == 1, "\(text)")
        #expect(text.stdout.squeezed.contains("NF_ACCEPT 1"), "\(text.stdout)")
        #expect(text.stdout.squeezed.contains("error 1"), "\(text.stdout)")
        #expect(text.stderr.contains("packet 2: packet: the frame's EtherType 0x806"), "\(text.stderr)")
    }

    @Test("a netfilter context from a file runs and names its verdict; --ctx is refused for netfilter")
    func netfilterContextFile() throws {
        let directory = try TemporaryDirectory()
        let telnet = Packet.make(source: "10.0.0.1", destination: "10.0.0.2", protocol: Packet.tcp, destinationPort: 23)
        let hex = telnet.dropFirst(14).map { String(format: "%02x", $0) }.joined(separator: " ")
        let context = try directory.file(
            "nf.json", #"{"type": "bpf_nf_ctx", "ctx": {"hook": "output", "packet": {"hex": "\#(hex)"}}}"#)
        let run = try MimicCLI.run(["run", Self.linuxFixture("netprog_netfilter.o"), "--context", context])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.contains("NF_DROP"), "\(run.stdout)")
        let input = try directory.file("one.pcap", bytes: Self.capture([telnet]))
        let refused = try MimicCLI.run([
            "run", Self.linuxFixture("netprog_netfilter.o"), "--pcap", input, "--ctx", "mark=1",
        ])
        #expect(refused.status != 0 && refused.stderr.contains("takes a bpf_nf_ctx"), "\(refused)")
    }

    @Test("lwt_seg6local: End.BPF's route is the destination; an SRH left invalid drops")
    func endBPF() throws {
        let directory = try TemporaryDirectory()
        let net = try directory.file(
            "net.json",
            """
            { "interfaces": [
                {"ifindex": 1, "name": "lo", "loopback": true, "addresses": ["127.0.0.1/8", "::1/128"]},
                {"ifindex": 2, "name": "eth0", "mac": "02:00:00:00:00:02", "addresses": ["fd00::1/64"]},
                {"ifindex": 3, "name": "eth1", "mac": "02:00:00:00:00:03", "addresses": ["fd00:3::1/64"]}],
              "routes": [{"to": "fd00:2::/48", "via": "fd00::9"}] }
            """)
        // IPv6 fd00::50 -> fd00::100 with an SRH (segments_left 1: fd00::100, then fd00:2::5).
        func address(_ last: [UInt8], prefix: [UInt8]) -> [UInt8] {
            prefix + [UInt8](repeating: 0, count: 16 - prefix.count - last.count) + last
        }
        let srh: [UInt8] =
            [17, 4, 4, 1, 1, 0, 0, 0] + address([5], prefix: [0xFD, 0, 0, 2])
            + address([1, 0], prefix: [0xFD, 0])
        let udp: [UInt8] = [0x30, 0x39, 0, 53, 0, 8, 0, 0]
        let ipv6: [UInt8] =
            [0x60, 0, 0, 0, 0, UInt8(srh.count + udp.count), 43, 64]
            + address([0x50], prefix: [0xFD, 0]) + address([1, 0], prefix: [0xFD, 0])
        let frame = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xDD] + ipv6 + srh + udp
        let input = try directory.file("srv6.pcap", bytes: Self.capture([frame, frame]))
        for (program, expected) in [("seg6_tag", ["if3": 2]), ("seg6_grow", ["if2": 2]), ("seg6_break", ["drop": 2])] {
            let outDir = directory.path("out-\(program)")
            let result = try MimicCLI.run([
                "run", Self.linuxFixture("net_seg6.o"), "--program", program, "--pcap", input, "--net", net,
                "--out-dir", outDir, "--json",
            ])
            #expect(result.status == 0, "\(program): \(result)")
            #expect(try Self.destinations(result.stdout) == expected, "\(program)")
        }
    }
}
