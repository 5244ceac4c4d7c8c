import Foundation
import MimicLinux
import Testing

/// What users of the Go mimic and edb bring along: edb's context arrays, per-run deadlines.
@Suite("Coming from mimic and edb: context arrays, --timeout")
struct GoMimicCompatibilityTests {
    static let contextArray = Examples.path("contexts/edb_array.json")

    @Test func aContextArrayRunsEachContextInTurn() throws {
        let result = try MimicCLI.run([
            "run", Examples.firewall, "--context", Self.contextArray, "--map", Examples.blocklist,
        ])
        #expect(result.status == 0, "\(result)")
        let text = result.stdout.squeezed
        for fragment in [
            "=== context 1 (blocked SYN, built by hand as edb does) ===", "r0 = 1 (0x1) XDP_DROP",
            "=== context 2 (UDP to port 8080) ===", "r0 = 2 (0x2) XDP_PASS",
        ] {
            #expect(text.contains(fragment), "missing '\(fragment)': \(result.stdout)")
        }
        // Maps carry over from one context to the next, as from packet to packet.
        #expect(text.contains("[1] 0 -> 1") && text.contains("[2] 0 -> 1"), "\(result.stdout)")
    }

    @Test func aContextArrayGivesAJSONArrayOfReports() throws {
        let result = try MimicCLI.run([
            "run", Examples.firewall, "--context", Self.contextArray, "--map", Examples.blocklist, "--json",
        ])
        #expect(result.status == 0, "\(result)")
        let reports = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        #expect(reports.count == 2)
        #expect(reports.map { $0["verdict"] as? String } == ["XDP_DROP", "XDP_PASS"])
        #expect(
            reports.map { $0["input"] as? String } == [
                "context 1 (blocked SYN, built by hand as edb does)",
                "context 2 (UDP to port 8080)",
            ])
    }

    @Test func traceRunsEachContextToo() throws {
        let result = try MimicCLI.run(["trace", Examples.firewall, "--context", Self.contextArray, "--json"])
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 2, "one JSON line per context: \(result.stdout)")
        #expect(lines.allSatisfy { $0.contains(#""steps""#) })
    }

    @Test func aFailingContextIsReportedAndTheOthersStillRun() throws {
        let directory = try TemporaryDirectory()
        // The first context's packet is a runt frame (the firewall drops it), the
        // second is a generic context without r1: the program faults on it.
        let path = try directory.file(
            "two.json",
            """
            [ { "name": "short", "type": "xdp_md", "ctx": { "packet": "AAEC" } },
              { "name": "no registers", "type": "generic", "ctx": { "registers": {}, "memory": [] } },
              { "type": "xdp_md", "ctx": { "packet": "AAECAwQFBgcICQoLDA0=" } } ]
            """)
        let result = try MimicCLI.run(["run", Examples.firewall, "--context", path, "--json"])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("1 of 3 contexts failed"), "\(result)")
        // As with --pcap: the reports, then the error as a JSON line.
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.last?.contains(#""error": "1 of 3 contexts failed""#) == true, "\(result.stdout)")
        let document = lines.dropLast().joined(separator: "\n")
        let reports = try #require(try JSONSerialization.jsonObject(with: Data(document.utf8)) as? [[String: Any]])
        #expect(reports.count == 3)
        #expect(reports[0]["verdict"] as? String == "XDP_DROP")
        #expect((reports[1]["error"] as? String)?.contains("execution failed") == true, "\(reports[1])")
        #expect(reports[2]["input"] as? String == "context 3")
    }

    @Test func badArraysAreClearErrors() throws {
        let directory = try TemporaryDirectory()
        let empty = try directory.file("empty.json", "[]")
        expectFailure(
            try MimicCLI.run(["run", Examples.firewall, "--context", empty]), status: 1,
            mentioning: ["empty.json", "an empty array of contexts"])
        let bad = try directory.file(
            "bad.json", #"[ { "type": "xdp_md", "ctx": { "packet": "AAEC" } }, { "type": "nope", "ctx": {} } ]"#)
        expectFailure(
            try MimicCLI.run(["run", Examples.firewall, "--context", bad]), status: 1,
            mentioning: ["[1].type", "unknown context type \"nope\""])
        // `debug` takes one context.
        expectFailure(
            try MimicCLI.run(["debug", Examples.firewall, "--context", Self.contextArray], stdin: "quit\n"), status: 1,
            mentioning: ["array of 2 contexts"])
    }

    @Test func loadAllReadsOneEnvelopeOrAnArray() throws {
        let one = try ContextFile.loadAll(
            data: Array(#"{ "name": "a", "type": "xdp_md", "ctx": { "packet": "AAEC" } }"#.utf8))
        #expect(one.map(\.name) == ["a"])
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.contextArray))
        let many = try ContextFile.loadAll(data: data)
        #expect(many.map(\.type) == ["generic", "xdp_md"])
    }

    @Test func timeoutStopsAnEndlessProgram() throws {
        let directory = try TemporaryDirectory()
        let endless = try directory.file("endless.s", "    mov %r0, 0\nloop:\n    add %r0, 1\n    ja loop\n")
        let result = try MimicCLI.run(["run-raw", endless, "--limit", "0", "--timeout", "200ms"])
        expectFailure(result, status: 1, mentioning: ["deadline exceeded"])
        let traced = try MimicCLI.run(["run-raw", endless, "--limit", "0", "--timeout", "0.2s", "--trace"])
        expectFailure(traced, status: 1, mentioning: ["deadline exceeded"])
        // A program that ends in time is not affected.
        let ok = try MimicCLI.run([
            "run", Examples.firewall, "--context", Examples.path("contexts/blocked_syn.json"), "--timeout", "30s",
        ])
        #expect(ok.status == 0, "\(ok)")
    }

    @Test func badTimeoutsAreUsageErrors() throws {
        for text in ["0", "-1s", "soon", "5parsecs", "1e30s"] {
            expectFailure(
                try MimicCLI.run(["run", Examples.firewall, "--timeout", text]), status: 2,
                mentioning: ["--timeout expects a positive duration"])
        }
    }

    // MARK: --compat go-mimic

    static let edbMaps = Examples.fixture("edb_maps.o")

    @Test func mapsTheKernelRefusesAreRefusedByDefault() throws {
        expectFailure(
            try MimicCLI.run(["run", Self.edbMaps, "--packet", "00010203040506070809"]), status: 1,
            mentioning: ["events_queue", "key_size must be 0, got 4"])
    }

    @Test func compatGoMimicLoadsThemWithAWarningEach() throws {
        let result = try MimicCLI.run(["run", Self.edbMaps, "--compat", "go-mimic", "--packet", "00010203040506070809"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("XDP_PASS"), "the push into the queue worked: \(result.stdout)")
        for fragment in [
            "map events_queue (BPF_MAP_TYPE_QUEUE): key_size 4 breaks the kernel's rule key_size == 0",
            "map perf_out (BPF_MAP_TYPE_PERF_EVENT_ARRAY): value_size 8 breaks the kernel's rule value_size == 4",
            "map outer (BPF_MAP_TYPE_ARRAY_OF_MAPS): no inner map definition",
        ] {
            #expect(result.stderr.contains("mimic: warning: " + fragment), "missing '\(fragment)': \(result.stderr)")
        }
        expectFailure(
            try MimicCLI.run(["run", Self.edbMaps, "--compat", "go"]), status: 2,
            mentioning: ["--compat expects go-mimic or kernel"])
    }
}
