import Foundation
import Testing

/// Bad input to `run`, `trace`, `debug` and `maps`: a clear message and a non-zero exit code.
@Suite("run / trace / debug / maps: bad input")
struct RunBadInputTests {
    @Test func runtimeProblemsExit1() throws {
        let directory = try TemporaryDirectory()
        let traffic = try Data(contentsOf: URL(fileURLWithPath: Examples.traffic))
        let truncated = try directory.file("truncated.pcap", bytes: Array(traffic.prefix(100)))
        let garbage = try directory.file("garbage.pcap", "this is not a capture")
        let cooked = try directory.file("cooked.pcap", bytes: Array(traffic.prefix(20)) + [113, 0, 0, 0])
        let badJSON = try directory.file("bad.json", #"{"type": "xdp_md", "ctx": {"packet": "AAAA"#)
        let badField = try directory.file("field.json", #"{"type": "xdp_md", "ctx": {"packet": 42}}"#)
        let badMap = try directory.file("map.json", #"[{"key": "1.2.3", "value": 0}]"#)
        let shortKey = try directory.file("short.json", #"[{"key": [1, 2], "value": 0}]"#)
        let notArray = try directory.file("object.json", #"{"key": 1}"#)
        let firewall = Examples.firewall
        let cases: [([String], [String])] = [
            (
                ["run", directory.path("nope.o"), "--pcap", Examples.traffic],
                ["cannot read", "nope.o", "no such file"]
            ),
            (["run", firewall, "--pcap", directory.path("nope.pcap")], ["cannot read", "nope.pcap"]),
            (
                ["run", firewall, "--program", "nope", "--pcap", Examples.traffic],
                ["no program named 'nope'", "xdp_firewall"]
            ),
            (
                ["run", firewall, "--pcap", truncated],
                ["truncated.pcap", "packet 2 (byte offset 94)", "truncated packet record header"]
            ),
            (["run", firewall, "--pcap", garbage], ["garbage.pcap", "not a pcap or pcapng capture"]),
            (["run", firewall, "--pcap", cooked], ["link type 113", "only Ethernet"]),
            (["run", firewall, "--context", badJSON], ["bad.json", "invalid JSON", "line 1"]),
            (["run", firewall, "--context", badField], ["field.json", "ctx.packet", "expected a string"]),
            (
                ["run", firewall, "--pcap", Examples.traffic, "--map", "blocklist=" + badMap],
                ["map.json", "[0].key", "malformed hex"]
            ),
            (
                ["run", firewall, "--pcap", Examples.traffic, "--map", "blocklist=" + shortKey],
                ["short.json", "[0].key", "2 bytes", "4 bytes"]
            ),
            (
                ["run", firewall, "--pcap", Examples.traffic, "--map", "blocklist=" + notArray],
                ["object.json", "expected an array"]
            ),
            (
                ["run", firewall, "--pcap", Examples.traffic, "--memory-limit", "1K"],
                ["map 'blocklist'", "more than the VM's memory budget", "of 1024 bytes in use", "--memory-limit"]
            ),
            (
                ["run", firewall, "--pcap", Examples.traffic, "--map", "nomap=" + badMap],
                ["no map named 'nomap'", "blocklist, verdicts"]
            ),
            (
                ["run", Examples.fixture("unknown_helper.o")],
                ["unknown or unsupported helper #212", "unknown_helper.c:9", "does not implement this helper"]
            ),
            (
                ["run", firewall, "--pcap", Examples.traffic, "--plugin", directory.path("libfoo.so")],
                ["cannot load plugin", "libfoo.so", "no such file"]
            ),
            (["run", firewall], ["needs a packet", "--pcap"]),
            (["run", Examples.path("trace_exec.o"), "--pcap", Examples.traffic], ["does not take packets"]),
            (["run", firewall, "--pcap", Examples.traffic, "--packet", "99"], ["--packet 99", "has 20 packets"]),
            (["run", Examples.path("checksum.s")], ["is not an ELF object", "run-raw"]),
            (["trace", Examples.fixture("unknown_helper.o")], ["#212"]),
            (["debug", directory.path("nope.o")], ["no such file"]),
            (["maps", Examples.traffic], ["is not an ELF object"]),
        ]
        for (arguments, fragments) in cases {
            expectFailure(try MimicCLI.run(arguments), status: 1, mentioning: fragments)
        }
    }

    @Test func usageMistakesExit2() throws {
        let firewall = Examples.firewall
        let cases: [([String], String)] = [
            (["run"], "missing argument OBJ.o"),
            (["run", firewall, "--context", "a.json", "--pcap", "b.pcap"], "either --context or --pcap"),
            (["run", firewall, "--out", "x.pcap"], "--out writes the packets of a --pcap run"),
            (["run", firewall, "--pcap", "x.pcap", "--packet", "0"], "--packet expects a packet number"),
            (["run", firewall, "--cpus", "none"], "--cpus expects"),
            (["run", firewall, "--memory-limit", "lots"], "--memory-limit expects a number of bytes"),
            (["run", firewall, "--map", "blocklist"], "--map expects NAME=FILE.json"),
            (["trace", firewall, "--out", "x.pcap"], "unknown option '--out'"),
            (["debug", firewall, "--json"], "unknown option '--json'"),
            (["maps"], "missing argument OBJ.o"),
        ]
        for (arguments, fragment) in cases {
            expectFailure(try MimicCLI.run(arguments), status: 2, mentioning: [fragment])
        }
    }

    @Test func failingRunsInACaptureAreCountedAndExit1() throws {
        // A budget too small for any packet: every run fails, the summary still prints.
        let result = try MimicCLI.run(["run", Examples.firewall, "--pcap", Examples.traffic, "--limit", "3"])
        #expect(result.status == 1, "\(result)")
        #expect(result.stdout.squeezed.contains("error 20"), "\(result.stdout)")
        #expect(
            result.stderr.contains("20 of 20 runs failed") && result.stderr.contains("packet 1:"), "\(result.stderr)")
        #expect(result.stderr.contains("--limit"), "\(result.stderr)")
    }
}
