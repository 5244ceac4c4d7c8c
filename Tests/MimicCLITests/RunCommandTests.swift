import Foundation
import MimicLinux
import MimicPcap
import Testing

/// `mimic run`, `trace` and `maps` on the examples.
@Suite("mimic run / trace / maps on the examples")
struct RunCommandTests {
    @Test func firewallOverTheCaptureCountsVerdictsAndMapChanges() throws {
        let result = try MimicCLI.run([
            "run", Examples.firewall, "--pcap", Examples.traffic, "--map", Examples.blocklist,
        ])
        #expect(result.status == 0, "\(result)")
        for fragment in [
            "over", "20 packets", "XDP_DROP 5 (25.0%)", "XDP_PASS 15 (75.0%)", "blocklist (hash)",
            "[192.0.2.66] 0 -> 2", "[198.51.100.7] 0 -> 2", "verdicts (percpu_array)", "[1] 0 -> 5", "[2] 0 -> 15",
        ] {
            #expect(result.stdout.squeezed.contains(fragment), "missing '\(fragment)': \(result.stdout)")
        }
    }

    @Test func pcapRoundTripWritesPassedPacketsUnchanged() throws {
        let directory = try TemporaryDirectory()
        let out = directory.path("passed.pcap")
        let result = try MimicCLI.run([
            "run", Examples.firewall, "--pcap", Examples.traffic, "--map", Examples.blocklist,
            "--out", out, "--json",
        ])
        #expect(result.status == 0, "\(result)")
        #expect(
            result.stdout.contains(#""XDP_DROP": 5"#) && result.stdout.contains(#""XDP_PASS": 15"#), "\(result.stdout)")
        #expect(
            result.stdout.contains(#""written": 15"#) && result.stdout.contains(#""modified": 0"#), "\(result.stdout)")

        let blocked: Set<[UInt8]> = [[192, 0, 2, 66], [198, 51, 100, 7]]
        let expected = try Examples.trafficPackets().filter { packet in
            guard packet.data.count >= 14 else { return false } // runt frames are dropped
            return Examples.ipv4Source(packet.data).map { !blocked.contains($0) } ?? true
        }
        let written = try PcapReader.readAll([UInt8](Data(contentsOf: URL(fileURLWithPath: out))))
        #expect(written.count == expected.count)
        for (index, (got, want)) in zip(written, expected).enumerated() {
            #expect(got.data == want.data, "packet \(index + 1) differs")
            #expect(got.timestamp == want.timestamp, "packet \(index + 1) timestamp")
            #expect(got.originalLength == want.originalLength, "packet \(index + 1) length")
        }
    }

    @Test func pcapngInputGivesTheSameVerdicts() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.file("traffic.pcapng", bytes: Examples.pcapng(Examples.trafficPackets()))
        let result = try MimicCLI.run(["run", Examples.firewall, "--pcap", path, "--map", Examples.blocklist])
        #expect(result.status == 0, "\(result)")
        #expect(
            result.stdout.squeezed.contains("XDP_DROP 5") && result.stdout.squeezed.contains("XDP_PASS 15"),
            "\(result.stdout)")
    }

    @Test func tcRewriterChangesThePortWithAValidChecksum() throws {
        let result = try MimicCLI.run([
            "run", Examples.path("tc_rewrite.o"), "--context", Examples.path("contexts/udp_8080.json"), "--json",
        ])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains(#""verdict": "TC_ACT_OK""#), "\(result.stdout)")
        #expect(result.stdout.contains("rewrote port 8080 -> 80"), "\(result.stdout)")
        #expect(result.stdout.contains(#""packet_modified": true"#), "\(result.stdout)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let packet = Examples.bytes(hex: try #require(json["packet"] as? String))
        #expect(packet.count == 58)
        #expect(packet[36] == 0 && packet[37] == 80, "destination port")
        #expect(Examples.transportChecksumIsValid(packet))

        // Over the capture: the two datagrams to 8080 are rewritten and written out.
        let directory = try TemporaryDirectory()
        let out = directory.path("rewritten.pcap")
        let run = try MimicCLI.run(["run", Examples.path("tc_rewrite.o"), "--pcap", Examples.traffic, "--out", out])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.squeezed.contains("TC_ACT_OK 20") && run.stdout.contains("(2 modified)"), "\(run.stdout)")
        let written = try PcapReader.readAll([UInt8](Data(contentsOf: URL(fileURLWithPath: out))))
        let original = try Examples.trafficPackets()
        #expect(written.count == original.count)
        for (got, want) in zip(written, original) where got.data != want.data {
            #expect(got.data[36] == 0 && got.data[37] == 80)
            #expect(Examples.transportChecksumIsValid(got.data))
            #expect(Examples.transportChecksumIsValid(want.data))
        }
    }

    @Test func tracingProgramReplaysItsCapturedContext() throws {
        let result = try MimicCLI.run([
            "run", Examples.path("trace_exec.o"), "--context", Examples.path("contexts/exec_captured.json"),
        ])
        #expect(result.status == 0, "\(result)")
        for fragment in [
            "r0 = 0", "exec bash pid 4242", "struct exec_event { .pid = 4243, .tgid = 4242, .comm = \"bash\" }",
            "exec_count (hash)", "+ [\"bash\"] 1",
        ] {
            #expect(result.stdout.contains(fragment), "missing '\(fragment)': \(result.stdout)")
        }
    }

    @Test func packetCounterShowsPerCPUValues() throws {
        let result = try MimicCLI.run([
            "run", Examples.path("packet_counter.o"), "--pcap", Examples.traffic, "--cpus", "2",
        ])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.squeezed.contains("XDP_PASS 20"), "\(result.stdout)")
        #expect(
            result.stdout.contains("{cpu0: { .packets = 10, .bytes = 513 }, cpu1: { .packets = 10, .bytes = 572 }}"),
            "\(result.stdout)")
        #expect(
            result.stdout.contains("by_protocol (percpu_hash)") && result.stdout.contains("+ [6]"), "\(result.stdout)")
    }

    @Test func singlePacketOfACapture() throws {
        let result = try MimicCLI.run([
            "run", Examples.firewall, "--pcap", Examples.traffic, "--packet", "4", "--map", Examples.blocklist,
        ])
        #expect(result.status == 0, "\(result)")
        #expect(
            result.stdout.contains("on packet 4") && result.stdout.contains("r0 = 1 (0x1) XDP_DROP"), "\(result.stdout)"
        )
    }

    @Test func traceShowsSourceLinesAndChangedRegisters() throws {
        let result = try MimicCLI.run([
            "trace", Examples.firewall, "--context", Examples.path("contexts/blocked_syn.json"),
            "--map", Examples.blocklist,
        ])
        #expect(result.status == 0, "\(result)")
        for fragment in [
            "; __be32 source = ip->saddr;  (xdp_firewall.c:50)", "37: ldxw %r1, [%r1+26]", "r1=0x420200c0",
            "call bpf_map_lookup_elem#1", "lddw %r1, map[blocklist]", "exit r0=1 XDP_DROP", "r0 = 1 (0x1) XDP_DROP",
            "[192.0.2.66] 0 -> 1",
        ] {
            #expect(result.stdout.contains(fragment), "missing '\(fragment)': \(result.stdout)")
        }
        let json = try MimicCLI.run([
            "trace", Examples.path("packet_counter.o"), "--pcap", Examples.traffic, "--packet", "1", "--json",
        ])
        #expect(json.status == 0, "\(json)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let steps = try #require(object["steps"] as? [[String: Any]])
        #expect(steps.count == object["instructions"] as? Int)
        #expect(steps.contains { $0["function"] as? String == "ip_protocol" })
    }

    @Test func mapsListsDefinitionsWithBTFTypes() throws {
        let result = try MimicCLI.run(["maps", Examples.path("packet_counter.o")])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("by_protocol  percpu_hash"), "\(result.stdout)")
        #expect(
            result.stdout.contains("1 (__u8)") && result.stdout.contains("16 (struct counters)"), "\(result.stdout)")
        let json = try MimicCLI.run(["maps", Examples.firewall, "--json"])
        #expect(json.status == 0, "\(json)")
        let maps = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(maps.map { $0["name"] as? String } == ["blocklist", "verdicts"])
        #expect(maps.first?["key_type"] as? String == "__be32")
    }

    @Test func everyNewCommandHasHelpWithExamples() throws {
        for command in ["run", "trace", "debug", "maps"] {
            let result = try MimicCLI.run([command, "--help"])
            #expect(result.status == 0, "\(result)")
            #expect(
                result.stdout.contains("USAGE: mimic \(command)") && result.stdout.contains("EXAMPLES:"), "\(result)")
        }
    }
}
