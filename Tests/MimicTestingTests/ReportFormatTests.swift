import Foundation
#if canImport(FoundationXML)
    import FoundationXML
#endif
import MimicTesting
import Testing

/// The rules of Jenkins' JUnit schema (jenkinsci/xunit-plugin, `junit-10.xsd`, the schema CI
/// systems validate JUnit reports with), restated: for each element, the attributes it may
/// carry, those it must carry, and the elements it may contain.
enum JUnitSchema {
    struct Rule {
        var attributes: Set<String>
        var required: Set<String>
        var children: Set<String>
        /// Whether text content is allowed.
        var text: Bool
    }

    static let rules: [String: Rule] = [
        "testsuites": Rule(
            attributes: ["name", "time", "tests", "failures", "disabled", "errors"], required: [],
            children: ["testsuite"], text: false),
        "testsuite": Rule(
            attributes: [
                "name", "tests", "failures", "errors", "time", "disabled", "skipped", "skips", "timestamp",
                "hostname", "id", "package", "assertions", "file", "skip", "log", "url",
            ],
            required: ["tests"], children: ["testsuite", "properties", "testcase", "system-out", "system-err"],
            text: false),
        "properties": Rule(attributes: [], required: [], children: ["property"], text: false),
        "property": Rule(attributes: ["name", "value"], required: ["name", "value"], children: [], text: false),
        "testcase": Rule(
            attributes: [
                "name", "assertions", "time", "timestamp", "classname", "status", "class", "file", "line",
                "log", "group", "url",
            ],
            required: ["name"], children: ["skipped", "error", "failure", "system-out", "system-err"], text: false),
        "failure": Rule(attributes: ["type", "message"], required: [], children: [], text: true),
        "error": Rule(attributes: ["type", "message"], required: [], children: [], text: true),
        "skipped": Rule(attributes: ["type", "message"], required: [], children: [], text: true),
        "system-out": Rule(attributes: [], required: [], children: [], text: true),
        "system-err": Rule(attributes: [], required: [], children: [], text: true),
    ]

    /// Every way `xml` breaks the rules (empty when it follows them); also parse errors.
    static func violations(_ xml: String) -> [String] {
        let checker = Checker()
        let parser = XMLParser(data: Data(xml.utf8))
        parser.delegate = checker
        if !parser.parse() {
            checker.problems.append("not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "unknown")")
        }
        if checker.root != "testsuites" {
            checker.problems.append("the root is \(checker.root ?? "nothing"), not testsuites")
        }
        return checker.problems
    }

    final class Checker: NSObject, XMLParserDelegate {
        var problems: [String] = []
        var stack: [String] = []
        var root: String?
        /// The attributes of every element seen, by element name (for tests that read them).
        var seen: [String: [[String: String]]] = [:]

        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            if root == nil { root = name }
            seen[name, default: []].append(attributes)
            guard let rule = rules[name] else {
                problems.append("element \(name) is not in the schema")
                stack.append(name)
                return
            }
            if let parent = stack.last, let parentRule = rules[parent], !parentRule.children.contains(name) {
                problems.append("\(name) may not appear in \(parent)")
            }
            for attribute in attributes.keys where !rule.attributes.contains(attribute) {
                problems.append("\(name) may not carry the attribute \(attribute)")
            }
            for attribute in rule.required where attributes[attribute] == nil {
                problems.append("\(name) lacks the required attribute \(attribute)")
            }
            stack.append(name)
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            stack.removeLast()
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            guard let current = stack.last, let rule = rules[current] else { return }
            if !rule.text, !string.allSatisfy(\.isWhitespace) {
                problems.append("\(current) may not hold text (\(string.prefix(20)))")
            }
        }
    }
}

@Suite("JUnit XML and TAP reports")
struct ReportFormatTests {
    static let mismatch = Mismatch(what: "map a <b> & \"c\"", expected: "1", actual: "2", detail: ["value: { .x = 2 }"])

    static let suites = [
        SuiteReport(
            name: "first & <one>", file: "tests/first.json",
            cases: [
                CaseReport(name: "passes", status: .passed, seconds: 0.0125),
                CaseReport(name: "fails", status: .failed([mismatch]), seconds: 0.5),
            ]),
        SuiteReport(
            name: "second", file: "tests/second.json",
            cases: [
                CaseReport(name: "could not run", status: .error("no such file \u{1}")),
                CaseReport(name: "in the kernel # too", status: .skipped("the kernel is not reachable")),
            ]),
    ]

    @Test func junitFollowsTheSchema() {
        let xml = TestReportFormat.junit(Self.suites)
        #expect(JUnitSchema.violations(xml) == [], "\(xml)")
    }

    @Test func junitCountsAndEscapes() throws {
        let xml = TestReportFormat.junit(Self.suites)
        let checker = JUnitSchema.Checker()
        let parser = XMLParser(data: Data(xml.utf8))
        parser.delegate = checker
        #expect(parser.parse())
        let suites = try #require(checker.seen["testsuite"])
        #expect(suites.map { $0["name"] } == ["first & <one>", "second"])
        #expect(suites.map { $0["tests"] } == ["2", "2"])
        #expect(suites.map { $0["failures"] } == ["1", "0"])
        #expect(suites.map { $0["errors"] } == ["0", "1"])
        #expect(suites.map { $0["skipped"] } == ["0", "1"])
        #expect(suites.first?["time"] == "0.513")
        #expect(checker.seen["testsuites"]?.first?["tests"] == "4")
        #expect(
            checker.seen["testcase"]?.map { $0["name"] } == ["passes", "fails", "could not run", "in the kernel # too"])
        #expect(checker.seen["failure"]?.first?["message"] == "map a <b> & \"c\": expected 1, got 2")
        #expect(checker.seen["skipped"]?.first?["message"] == "the kernel is not reachable")
        // The timestamp has the schema family's ISO 8601 form without a zone.
        let stamp = try #require(suites.first?["timestamp"])
        #expect(stamp.count == 19 && stamp.dropFirst(10).first == "T")
    }

    @Test func tapIsVersion14WithAPlanAndYAMLDiffs() {
        let lines = TestReportFormat.tap(Self.suites).split(separator: "\n", omittingEmptySubsequences: false).map(
            String.init)
        #expect(lines[0] == "TAP version 14")
        #expect(lines[1] == "1..4")
        let points = lines.filter { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") }
        #expect(
            points == [
                "ok 1 - first & <one>: passes",
                "not ok 2 - first & <one>: fails",
                "not ok 3 - second: could not run",
                "ok 4 - second: in the kernel \\# too # SKIP the kernel is not reachable",
            ])
        // A YAML block follows each failure: "  ---" ... "  ...".
        let failure = lines.firstIndex(of: "not ok 2 - first & <one>: fails") ?? 0
        #expect(lines[failure + 1] == "  ---")
        #expect(lines[failure + 2] == "  message: \"map a <b> & \\\"c\\\"\"")
        #expect(lines[failure + 3] == "  diff: |")
        #expect(lines[failure + 4] == "    map a <b> & \"c\":")
        #expect(lines.contains("  ..."))
    }

    @Test func textSummarises() {
        let text = TestReportFormat.text(Self.suites)
        #expect(
            text.contains(
                "  FAIL     fails\n           map a <b> & \"c\":\n             - expected: 1\n             + actual:   2\n"
            ))
        #expect(text.hasSuffix("4 case(s): 1 passed, 1 failed, 1 error(s), 1 skipped\n"))
    }

    /// The checker is not vacuous: it catches what the schema forbids.
    @Test func theSchemaCheckCatchesViolations() {
        let bad = """
            <testsuites skipped="1"><testsuite name="x"><testcase classname="c"><failure/><oops/></testcase>text</testsuite></testsuites>
            """
        #expect(
            JUnitSchema.violations(bad) == [
                "testsuites may not carry the attribute skipped", "testsuite lacks the required attribute tests",
                "testcase lacks the required attribute name", "element oops is not in the schema",
                "testsuite may not hold text (text)",
            ])
        #expect(JUnitSchema.violations("<testsuite tests=\"1\"/>") == ["the root is testsuite, not testsuites"])
    }

    /// With xmllint on the machine, a second parser reads the report as well-formed XML (the
    /// XSD itself is not shipped, so the schema's rules are checked by `JUnitSchema`).
    @Test func xmllintReadsItWhenPresent() throws {
        let xmllint = ["/usr/bin/xmllint", "/usr/local/bin/xmllint"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        guard let xmllint else {
            print(
                "◇ xmllint is not installed: the JUnit report is checked by the schema's rules restated in JUnitSchema only"
            )
            return
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mimic-junit-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let report = directory.appendingPathComponent("report.xml")
        try TestReportFormat.junit(Self.suites).write(to: report, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: xmllint)
        process.arguments = ["--noout", report.path]
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "xmllint finds the report malformed")
    }
}
