import Foundation
import MimicJSON
import MimicLinux
import MimicTestSupport
import MimicTesting
import Testing

/// The bundled examples and their test files (`Examples/tests`).
enum ExampleFiles {
    static let examples = ExternalTestData.packageRoot.appendingPathComponent("Examples").path
    static func object(_ name: String) -> String { "\(examples)/\(name)" }
    static func test(_ name: String) -> String { "\(examples)/tests/\(name)" }
    /// Every example test file meant to pass (all but `failing.json`).
    static var passing: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "\(examples)/tests")) ?? []
        return names.filter { $0.hasSuffix(".json") && $0 != "failing.json" }.sorted().map(test)
    }
}

@Suite("ProgramTest: cases written in Swift")
struct ProgramTestInCodeTests {
    /// The README-style use: a case in code, `#expect` on the result.
    @Test func firewallDropsABlockedSource() throws {
        let blocked = Packet.make(source: "192.0.2.66", destination: "10.0.0.2")
        let test = try ProgramTest(
            object: ExampleFiles.object("xdp_firewall.o"),
            setup: [
                MapSeed(map: "blocklist", entries: [MapEntry(key: .string("192.0.2.66"), value: .number("7"))])
            ])
        let result = try test.run(
            TestCase(
                name: "blocked", input: .packet(blocked),
                expect: Expectation(
                    verdict: .drop,
                    maps: [MapExpectation(map: "blocklist", key: .string("192.0.2.66"), value: .number("8"))])))
        #expect(result.verdict == .drop)
        #expect(result.passed, "\(result.report)")
        #expect(result.observation.packet == blocked)
    }

    /// The example of Docs/Testing-Programs.md, as written there (paths from the package root).
    @Test func theDocumentedExample() throws {
        let root = ExternalTestData.packageRoot.path
        let test = try ProgramTest(
            object: "\(root)/Examples/xdp_firewall.o",
            setup: [
                MapSeed(map: "blocklist", entries: [MapEntry(key: .string("192.0.2.66"), value: .number("0"))])
            ])
        let result = try test.run(
            TestCase(
                name: "blocked", input: .pcap(path: "\(root)/Examples/traffic.pcap", number: 4), // from 192.0.2.66
                expect: Expectation(
                    verdict: .drop,
                    maps: [MapExpectation(map: "blocklist", key: .string("192.0.2.66"), value: .number("1"))])))
        #expect(result.verdict == .drop)
        #expect(result.passed, "\(result.report)")
    }

    @Test func eventsByNamedTypeOrBytes() throws {
        let test = try ProgramTest(object: ExampleFiles.object("trace_exec.o"))
        let context = TestInput.context(path: "\(ExampleFiles.examples)/contexts/exec_captured.json")
        let record: [UInt8] =
            [0x93, 0x10, 0, 0, 0x92, 0x10, 0, 0] + Array("bash".utf8) + [UInt8](repeating: 0, count: 12)
        let byType = try test.run(
            TestCase(
                name: "typed", input: context,
                expect: Expectation(events: [
                    EventExpectation(
                        map: "events", type: "exec_event",
                        value: .object([("tgid", .number("4242")), ("comm", .string("bash"))]))
                ])))
        #expect(byType.passed, "\(byType.report)")
        let byBytes = try test.run(
            TestCase(
                name: "bytes", input: context,
                expect: Expectation(events: [
                    EventExpectation(value: .array(record.map { .number("\($0)") }))
                ])))
        #expect(byBytes.passed, "\(byBytes.report)")
        let wrongMap = try test.run(
            TestCase(
                name: "map", input: context,
                expect: Expectation(events: [
                    EventExpectation(map: "other", value: .string("00")), EventExpectation(value: .string("00")),
                ])))
        #expect(wrongMap.failures.map(\.what) == ["events", "event 0 map"])
        #expect(
            wrongMap.failures.first?.detail == [
                "events: struct exec_event { .pid = 4243, .tgid = 4242, .comm = \"bash\" }"
            ])
    }

    @Test func aWrongExpectationFailsWithWhatAndWhy() throws {
        let test = try ProgramTest(object: ExampleFiles.object("xdp_firewall.o"))
        let packet = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")
        let result = try test.run(
            TestCase(
                name: "wrong", input: .packet(packet),
                expect: Expectation(
                    verdict: .drop, packet: PacketExpectation(length: 99, bytes: [(offset: 12, bytes: [0x86, 0xdd])]),
                    maps: [MapExpectation(map: "verdicts", key: .number("2"), value: .number("5"))],
                    trace: ["hello"], redirect: "ifindex 3")))
        #expect(result.verdict == .pass)
        #expect(!result.passed)
        let failures = Dictionary(result.failures.map { ($0.what, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(failures["verdict"]?.expected == "XDP_DROP (1)")
        #expect(failures["verdict"]?.actual == "XDP_PASS (2)")
        #expect(failures["packet length"]?.actual == "\(packet.count)")
        #expect(failures["packet[12..<14]"]?.actual == "08 00")
        #expect(failures["map verdicts [2]"]?.expected == "5")
        #expect(failures["map verdicts [2]"]?.actual == "1")
        #expect(failures["trace"]?.detail == ["- hello"])
        #expect(failures["redirect"]?.actual == "none")
        #expect(result.failures.count == 6)
    }

    @Test func aFaultingRunIsAFailureOrTheExpectedError() throws {
        let test = try ProgramTest(object: ExampleFiles.object("trace_exec.o"))
        // A budget of 3 instructions stops the run: a failure, unless the case expects that error.
        var limited = test
        limited.instructionLimit = 3
        let failing = try limited.run(TestCase(name: "budget", input: .none, expect: Expectation(verdict: Verdict(0))))
        #expect(!failing.passed)
        #expect(failing.failures.first?.what == "run")
        let expected = try limited.run(TestCase(name: "budget", input: .none, expect: Expectation(error: "budget")))
        #expect(expected.passed, "\(expected.report)")
    }

    @Test func perCPUValuesAndBTFStructFields() throws {
        let test = try ProgramTest(object: ExampleFiles.object("packet_counter.o"), config: TestConfiguration(cpus: 2))
        let packet = Packet.make(source: "10.0.0.1", destination: "10.0.0.2", protocol: Packet.tcp)
        let totals: JSONValue = .object([("packets", .number("1")), ("bytes", .number("\(packet.count + 1)"))])
        let result = try test.run(
            TestCase(
                name: "tcp", input: .packet(packet),
                expect: Expectation(maps: [
                    MapExpectation(map: "totals", key: .number("0"), value: totals),
                    MapExpectation(map: "by_protocol", key: .number("6"), value: .object([("packets", .number("1"))])),
                ])))
        #expect(result.failures.count == 1)
        let failure = try #require(result.failures.first)
        #expect(failure.what == "map totals [0] .bytes")
        #expect(failure.expected == "\(packet.count + 1)")
        #expect(failure.actual == "\(packet.count)")
        #expect(failure.detail == ["value: { .packets = 1, .bytes = \(packet.count) }"])
    }
}

@Suite("mimic test files")
struct TestFileTests {
    @Test func theExampleFilesPass() throws {
        let files = ExampleFiles.passing
        #expect(files.count >= 4)
        for file in files {
            let report = ProgramTest.run(suite: try TestSuite.load(path: file))
            #expect(!report.cases.isEmpty)
            for item in report.cases {
                #expect(item.status == .passed, "\(file): \(item.name): \(item.status)")
            }
        }
    }

    /// The deliberately failing example fails with exactly the diff Docs/Testing-Programs.md shows.
    @Test func theFailingExampleFailsWithItsDiff() throws {
        let report = ProgramTest.run(suite: try TestSuite.load(path: ExampleFiles.test("failing.json")))
        guard case .failed(let failures) = try #require(report.cases.first).status else {
            Issue.record("failing.json did not fail: \(report.cases)")
            return
        }
        #expect(
            failures.map(\.what) == [
                "trace", "event 0 (events) .pid", "event 0 (events) .comm", "map exec_count [\"bash\"]",
            ])
        #expect(failures[1].expected == "4242" && failures[1].actual == "4243")
        #expect(failures[2].expected == "\"zsh\"" && failures[2].actual == "\"bash\"")
        #expect(failures[3].expected == "2" && failures[3].actual == "1")
        let docs = try String(
            contentsOfFile: ExternalTestData.packageRoot.appendingPathComponent("Docs/Testing-Programs.md").path,
            encoding: .utf8)
        for line in TestReportFormat.text([report]).split(separator: "\n")
        where !line.hasSuffix(".json:") && !line.contains("case(s)") {
            #expect(docs.contains(line), "Docs/Testing-Programs.md does not show the line: \(line)")
        }
    }

    func suite(_ json: String) throws -> TestSuite {
        try TestSuite.parse(
            JSONField(try JSONValue.parse(json), path: ""), path: "\(ExampleFiles.examples)/tests/inline.json")
    }

    /// The configure-before-load fixtures (globals in `.rodata`, a `max_entries 0` map, a
    /// legacy section), shared with the CLI tests.
    static func fixture(_ name: String) -> String {
        ExternalTestData.packageRoot.appendingPathComponent("Tests/MimicCLITests/Fixtures/\(name)").path
    }

    /// A UDP packet to port 53 (the configured fixture blocks a port given in `.rodata`).
    static let udpTo53 =
        "020000000000020000000001080045000024000100004011f9c10a0000010a000002303900350010000068656c6c6f212121"

    @Test func configurationSetsGlobalsMapSizesAndTheProgramType() throws {
        let configured = try suite(
            """
            {"object": "\(Self.fixture("configured.o"))",
             "config": {"cpus": 2, "seed": 9, "mapSizes": {"hits": 16},
                        "globals": {"blocked_port": 53, "mode": "MODE_DROP", "enabled": true, "limits": {"low": 1}}},
             "cases": [{"name": "the configured port is dropped and counted", "input": {"packet": "\(Self.udpTo53)"},
                        "expect": {"verdict": "XDP_DROP", "maps": {"hits": [{"key": 53, "value": 1}], ".bss": [{"key": 0, "value": {"matched": 1}}]}}}]}
            """)
        #expect(configured.config.cpus == 2)
        #expect(configured.config.seed == 9)
        #expect(configured.config.object.mapSizes == ["hits": 16])
        #expect(configured.config.object.globals.map(\.name) == ["blocked_port", "mode", "enabled", "limits"])
        let report = ProgramTest.run(suite: configured)
        #expect(report.cases.map(\.status) == [.passed], "\(report.cases)")

        // Without the size, the max_entries 0 map is a clear error naming the option.
        let unsized = ProgramTest.run(
            suite: try suite(
                """
                {"object": "\(Self.fixture("configured.o"))", "cases": [{"name": "c", "input": {"packet": "\(Self.udpTo53)"}, "expect": {}}]}
                """))
        guard case .error(let message) = unsized.cases.first?.status else {
            Issue.record("an unsized map was accepted: \(unsized.cases)")
            return
        }
        #expect(message.contains("max_entries 0"), "\(message)")

        // A legacy section (SEC("xdp_vlan01")) runs with "type".
        let legacy = try suite(
            """
            {"object": "\(Self.fixture("legacy_section.o"))", "config": {"type": "xdp"},
             "cases": [{"name": "runs as XDP", "input": {"packet": "\(Self.udpTo53)"}, "expect": {"verdict": "XDP_PASS"}}]}
            """)
        #expect(legacy.config.programType == .xdp)
        let legacyReport = ProgramTest.run(suite: legacy)
        #expect(legacyReport.cases.map(\.status) == [.passed], "\(legacyReport.cases)")
    }

    @Test func contextFieldsInAndOut() throws {
        let marked = try suite(
            """
            {"object": "\(Self.fixture("tc_mark.o"))", "cases": [
              {"name": "mark 5 passes", "input": {"packet": "\(Self.udpTo53)", "ctx": {"mark": 5, "cb[0]": 10, "priority": 1}},
               "expect": {"verdict": "TC_ACT_OK", "ctx": {"mark": 85, "cb[1]": 20, "cb[4]": 50, "priority": 8, "tc_classid": 65538}}},
              {"name": "wrong mark", "input": {"packet": "\(Self.udpTo53)", "ctx": {"mark": 1}}, "expect": {"verdict": "TC_ACT_SHOT", "ctx": {"mark": 1}}},
              {"name": "a field the kernel may not set", "input": {"packet": "\(Self.udpTo53)", "ctx": {"tc_classid": 1}}, "expect": {}}
            ]}
            """)
        #expect(marked.cases[0].contextFields.map(\.name) == ["mark", "cb[0]", "priority"])
        let report = ProgramTest.run(suite: marked)
        #expect(report.cases[0].status == .passed, "\(report.cases[0])")
        #expect(report.cases[1].status == .failed([Mismatch(what: "ctx.mark", expected: "1", actual: "257 (0x101)")]))
        guard case .error(let message) = report.cases[2].status else {
            Issue.record("tc_classid was accepted as input: \(report.cases[2])")
            return
        }
        #expect(message.contains("input.ctx"), "\(message)")
    }

    @Test func configurationMistakesAreNamed() throws {
        #expect(throws: JSONError.self) {
            _ = try suite(#"{"object": "a.o", "config": {"type": "xpd"}, "cases": [{"name": "c", "expect": {}}]}"#)
        }
        #expect(throws: JSONError.self) {
            _ = try suite(
                #"{"object": "a.o", "config": {"mapSizes": {"m": 0}}, "cases": [{"name": "c", "expect": {}}]}"#)
        }
        let unknownGlobal = ProgramTest.run(
            suite: try suite(
                """
                {"object": "\(Self.fixture("configured.o"))", "config": {"mapSizes": {"hits": 4}, "globals": {"blocked_prot": 1}},
                 "cases": [{"name": "c", "input": {"packet": "00"}, "expect": {}}]}
                """))
        guard case .error(let message) = unknownGlobal.cases.first?.status else {
            Issue.record("an unknown global was accepted")
            return
        }
        #expect(message.contains("config: ") && message.contains("blocked_prot"), "\(message)")
    }

    @Test func mistakesInTestFilesAreNamedByPath() throws {
        let cases: [(String, String)] = [
            (#"{"object": "a.o", "cases": [{"name": "c", "expect": {"verdikt": 1}}]}"#, "unknown member \"verdikt\""),
            (
                #"{"object": "a.o", "cases": [{"name": "c", "expect": {"verdict": "XDP_DORP"}}]}"#,
                "unknown verdict \"XDP_DORP\""
            ),
            (#"{"object": "a.o", "cases": []}"#, "at least one case"),
            (#"{"cases": [{"name": "c", "expect": {}}]}"#, "object"),
            (#"{"object": "a.o", "cases": [{"name": "c", "input": {"packet": "zz"}, "expect": {}}]}"#, "'zz' is not"),
            (
                #"{"object": "a.o", "cases": [{"name": "c", "input": {"packet": "00", "pcap": "x"}, "expect": {}}]}"#,
                "not several"
            ),
            (
                #"{"object": "a.o", "cases": [{"name": "c", "expect": {}}, {"name": "c", "expect": {}}]}"#,
                "repeats the name"
            ),
            (
                #"{"object": "a.o", "cases": [{"name": "c", "expect": {"error": "x", "verdict": 1}}]}"#,
                "no verdict or packet"
            ),
        ]
        for (json, message) in cases {
            #expect(throws: JSONError.self) { _ = try suite(json) }
            do {
                _ = try suite(json)
            } catch {
                #expect("\(error)".contains(message), "\(error) should mention \(message)")
            }
        }
    }

    @Test func unknownMapsAndWrongSizesAreErrorsOfTheCase() throws {
        let parsed = try suite(
            """
            {"object": "../xdp_firewall.o", "cases": [
              {"name": "no such map", "input": {"packet": "00"}, "expect": {"maps": {"nope": [{"key": 1, "value": 1}]}}},
              {"name": "key too long", "maps": {"blocklist": [{"key": "00 00 00 00 00", "value": 1}]}, "input": {"packet": "00"}, "expect": {}},
              {"name": "no such packet", "input": {"pcap": "../traffic.pcap", "number": 999}, "expect": {}}
            ]}
            """)
        let report = ProgramTest.run(suite: parsed)
        let messages = report.cases.map { item -> String in
            if case .error(let message) = item.status { return message }
            return "not an error: \(item.status)"
        }
        #expect(messages[0].contains("has no map named 'nope' (maps: blocklist, verdicts"))
        #expect(messages[1].contains("5 bytes, but the key has 4 bytes"))
        #expect(messages[2].contains("there is no packet 999"))
    }
}
