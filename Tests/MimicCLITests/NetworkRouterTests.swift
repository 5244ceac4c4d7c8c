import Foundation
import MimicPcap
import MimicTestSupport
import Testing

/// `mimic run --net`: the `fib_router` fixture asks `bpf_fib_lookup` of the network in
/// `router_net.json` and redirects by its answer; `--out-dir` shows where each packet went
/// (issue 14, the emulated network).
@Suite("mimic run --net with a router")
struct NetworkRouterTests {
    static let router = Examples.fixture("fib_router.o")
    static let network = Examples.fixture("router_net.json")

    /// An IPv4 UDP frame from 192.0.2.1 to `destination`, arriving from the WAN side.
    static func frame(to destination: String, payload: Int = 5) -> [UInt8] {
        Packet.make(source: "192.0.2.1", destination: destination, payload: [UInt8](repeating: 0x61, count: payload))
    }

    /// `frame` as the router sends it: new MAC addresses, TTL one lower, checksum updated.
    static func routed(_ frame: [UInt8], destinationMAC: [UInt8], sourceMAC: [UInt8]) -> [UInt8] {
        var out = OutDirTests.forwarded(frame)
        out.replaceSubrange(0..<6, with: destinationMAC)
        out.replaceSubrange(6..<12, with: sourceMAC)
        return out
    }

    static let frames: [[UInt8]] = [
        frame(to: "10.0.3.7"), // 0 lan neighbour: if3
        frame(to: "10.0.50.9"), // 1 via 10.0.4.2 (a stale neighbour is valid): if4
        frame(to: "10.66.1.1"), // 2 blackhole: drop
        frame(to: "10.77.1.1"), // 3 unreachable: drop
        frame(to: "10.0.3.9"), // 4 incomplete neighbour: NO_NEIGH, pass
        frame(to: "10.0.3.1"), // 5 the router itself: NOT_FWDED, pass
        frame(to: "8.8.8.8"), // 6 the default route, back out of the WAN: if2
        frame(to: "10.0.50.9", payload: 1400), // 7 longer than dmz's MTU 1400: FRAG_NEEDED, pass
    ]

    @Test func theRouterForwardsByTheNetworkDescription() throws {
        let directory = try TemporaryDirectory()
        let packets = Self.frames.enumerated().map {
            PcapPacket(data: $0.element, timestamp: (1_700_000_000 + UInt64($0.offset)) * 1_000_000_000)
        }
        let input = try directory.file("router.pcap", bytes: PcapWriter.file(packets))
        let outDir = directory.path("out")
        let result = try MimicCLI.run(
            [
                "run", Self.router, "--pcap", input, "--net", Self.network, "--ctx", "ingress_ifindex=2",
                "--out-dir", outDir,
            ])
        #expect(result.status == 0, "\(result)")
        let mac = { (last: UInt8, host: UInt8) -> [UInt8] in [2, 0, 0, 0, last, host] }
        let expected: [String: [[UInt8]]] = [
            "if3": [Self.routed(Self.frames[0], destinationMAC: mac(3, 7), sourceMAC: [2, 0, 0, 0, 0, 3])],
            "if4": [Self.routed(Self.frames[1], destinationMAC: mac(4, 2), sourceMAC: [2, 0, 0, 0, 0, 4])],
            "if2": [Self.routed(Self.frames[6], destinationMAC: mac(2, 1), sourceMAC: [2, 0, 0, 0, 0, 2])],
            "drop": [Self.frames[2], Self.frames[3]],
            "pass": [Self.frames[4], Self.frames[5], Self.frames[7]],
        ]
        let written = try FileManager.default.contentsOfDirectory(atPath: outDir).sorted()
        #expect(written == expected.keys.map { $0 + ".pcap" }.sorted())
        for (name, frames) in expected {
            #expect(try OutDirTests.read(outDir + "/" + name + ".pcap").map(\.data) == frames, "\(name)")
        }
        // The lookup results the program counted (results[rc]): 3 successes, then blackhole (1),
        // unreachable (2), NOT_FWDED (4), NO_NEIGH (7) and FRAG_NEEDED (8) once each.
        let counts = result.stdout.squeezed
        for fragment in ["[0] 0 -> 3", "[1] 0 -> 1", "[2] 0 -> 1", "[4] 0 -> 1", "[7] 0 -> 1", "[8] 0 -> 1"] {
            #expect(counts.contains(fragment), "missing '\(fragment)': \(result.stdout)")
        }
    }

    @Test func badNetworkFilesAreClearErrors() throws {
        let directory = try TemporaryDirectory()
        let cases: [(String, String)] = [
            (
                #"{"interfaces": [{"ifindex": 1, "name": "lo", "mtu": 9}]}"#,
                "interfaces[0].mtu: expected an MTU of 68...65536, got 9"
            ),
            (
                #"{"routes": [{"to": "10.1.0.0/16", "via": "10.0.0.1", "dev": "eth9"}]}"#,
                "routes[0].dev: no interface is named \"eth9\""
            ),
            (
                #"{"neighbours": [{"ip": "10.0.0.2", "dev": "eth0", "sate": "stale"}]}"#,
                "neighbours[0].sate: unknown field \"sate\""
            ),
            (
                #"{"sockets": [{"protocol": "sctp", "local": "10.0.0.1:1"}]}"#,
                "sockets[0].protocol: expected \"tcp\" or \"udp\", got \"sctp\""
            ),
            (#"{"routes": [{"to": "10.1.0.0/33", "dev": "eth0"}]}"#, "routes[0].to: the prefix length must be 0...32"),
        ]
        for (index, (text, message)) in cases.enumerated() {
            let file = try directory.file("net\(index).json", bytes: Array(text.utf8))
            let result = try MimicCLI.run(
                ["run", Self.router, "--packet", "02000000000202000000020108004500", "--net", file])
            #expect(result.status == 1, "\(text): \(result)")
            #expect(result.stderr.contains(message), "\(text): \(result.stderr)")
        }
    }

    @Test func redirectNeighResolvesTheNextHopWhenThePacketLeaves() throws {
        let directory = try TemporaryDirectory()
        let frames = [
            Self.frame(to: "10.0.3.7"), // 0 the connected neighbour: if3
            Self.frame(to: "10.0.50.9"), // 1 via 10.0.4.2: if4
            Self.frame(to: "10.0.3.9"), // 2 an incomplete neighbour: not sent
            Self.frame(to: "10.0.3.200"), // 3 the fixed next hop 10.0.3.7: if3
            Self.frame(to: "10.0.99.5"), // 4 bpf_redirect_peer(3): into lan's peer, ifindex 9
            Self.frame(to: "10.66.1.1"), // 5 blackhole: the lookup fails, pass
        ]
        let packets = frames.enumerated().map {
            PcapPacket(data: $0.element, timestamp: (1_700_000_000 + UInt64($0.offset)) * 1_000_000_000)
        }
        let input = try directory.file("router.pcap", bytes: PcapWriter.file(packets))
        let outDir = directory.path("out")
        let result = try MimicCLI.run(
            [
                "run", Examples.fixture("tc_neigh_router.o"), "--pcap", input, "--net", Self.network, "--ctx",
                "ingress_ifindex=2", "--out-dir", outDir,
            ])
        #expect(result.status == 0, "\(result)")
        // The tc router leaves the TTL alone; the kernel writes the Ethernet header.
        func sent(_ frame: [UInt8], to mac: [UInt8], from device: [UInt8]) -> [UInt8] {
            mac + device + Array(frame[12...])
        }
        let expected: [String: [[UInt8]]] = [
            "if3": [
                sent(frames[0], to: [2, 0, 0, 0, 3, 7], from: [2, 0, 0, 0, 0, 3]),
                sent(frames[3], to: [2, 0, 0, 0, 3, 7], from: [2, 0, 0, 0, 0, 3]),
            ],
            "if4": [sent(frames[1], to: [2, 0, 0, 0, 4, 2], from: [2, 0, 0, 0, 0, 4])],
            "if9-ingress": [frames[4]],
            "drop": [frames[2]],
            "pass": [frames[5]],
        ]
        let written = try FileManager.default.contentsOfDirectory(atPath: outDir).sorted()
        #expect(written == expected.keys.map { $0 + ".pcap" }.sorted())
        for (name, frames) in expected {
            #expect(try OutDirTests.read(outDir + "/" + name + ".pcap").map(\.data) == frames, "\(name)")
        }
    }
}
