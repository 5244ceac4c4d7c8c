import Foundation

/// The outcome of one case in a report: passed, failed (with mismatches), skipped or an error.
public struct CaseReport: Sendable {
    public enum Status: Sendable, Equatable {
        case passed
        /// Expectations did not hold.
        case failed([Mismatch])
        /// The case could not run (unreadable input, unknown map): the message.
        case error(String)
        /// Not run, and why (the kernel not reachable).
        case skipped(String)
    }

    /// The case's name (with ` [kernel]` for its kernel run).
    public var name: String
    public var status: Status
    /// Lines worth showing even when it passed (expectations not checkable in the kernel).
    public var notes: [String] = []
    public var seconds: Double = 0

    public init(name: String, status: Status, notes: [String] = [], seconds: Double = 0) {
        self.name = name
        self.status = status
        self.notes = notes
        self.seconds = seconds
    }

    public var isFailure: Bool {
        switch status {
        case .failed, .error: true
        case .passed, .skipped: false
        }
    }
}

/// The outcome of one test file.
public struct SuiteReport: Sendable {
    /// The suite's name (its file name by default).
    public var name: String
    public var file: String
    public var cases: [CaseReport]

    public init(name: String, file: String, cases: [CaseReport]) {
        self.name = name
        self.file = file
        self.cases = cases
    }

    public var failures: Int { cases.filter { if case .failed = $0.status { true } else { false } }.count }
    public var errors: Int { cases.filter { if case .error = $0.status { true } else { false } }.count }
    public var skipped: Int { cases.filter { if case .skipped = $0.status { true } else { false } }.count }
}

/// JUnit XML, TAP and text for `mimic test`'s reports.
public enum TestReportFormat {
    /// A JUnit XML document as Jenkins' JUnit schema (xunit-plugin's `junit-10.xsd`) describes
    /// it and CI systems read it: `testsuites`, one `testsuite` per file (with `properties`,
    /// `system-out`, `system-err`), a `testcase` per case holding `failure` when expectations
    /// did not hold, `error` when it could not run, `skipped` when it did not run.
    public static func junit(_ suites: [SuiteReport]) -> String {
        let total = suites.reduce(0) { $0 + $1.cases.count }
        let failures = suites.reduce(0) { $0 + $1.failures }
        let errors = suites.reduce(0) { $0 + $1.errors }
        let time = suites.reduce(0.0) { $0 + $1.cases.reduce(0.0) { $0 + $1.seconds } }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml +=
            "<testsuites name=\"mimic test\" tests=\"\(total)\" failures=\"\(failures)\" errors=\"\(errors)\" time=\"\(seconds(time))\">\n"
        for (index, suite) in suites.enumerated() {
            let suiteTime = suite.cases.reduce(0.0) { $0 + $1.seconds }
            xml +=
                "  <testsuite id=\"\(index)\" name=\"\(escape(suite.name))\" package=\"mimic\" hostname=\"localhost\" timestamp=\"\(timestamp())\" tests=\"\(suite.cases.count)\" failures=\"\(suite.failures)\" errors=\"\(suite.errors)\" skipped=\"\(suite.skipped)\" time=\"\(seconds(suiteTime))\" file=\"\(escape(suite.file))\">\n"
            xml +=
                "    <properties>\n      <property name=\"file\" value=\"\(escape(suite.file))\"/>\n    </properties>\n"
            for item in suite.cases {
                xml +=
                    "    <testcase name=\"\(escape(item.name))\" classname=\"\(escape(suite.name))\" time=\"\(seconds(item.seconds))\""
                switch item.status {
                case .passed:
                    xml += "/>\n"
                case .failed(let mismatches):
                    let first =
                        mismatches.first.map { "\($0.what): expected \($0.expected), got \($0.actual)" } ?? "failed"
                    xml +=
                        ">\n      <failure message=\"\(escape(first))\" type=\"mismatch\">\(escape(mismatches.map(\.description).joined(separator: "\n")))</failure>\n    </testcase>\n"
                case .error(let message):
                    xml +=
                        ">\n      <error message=\"\(escape(message))\" type=\"error\">\(escape(message))</error>\n    </testcase>\n"
                case .skipped(let reason):
                    xml += ">\n      <skipped message=\"\(escape(reason))\"/>\n    </testcase>\n"
                }
            }
            xml += "    <system-out></system-out>\n    <system-err></system-err>\n"
            xml += "  </testsuite>\n"
        }
        return xml + "</testsuites>\n"
    }

    /// A TAP version 14 stream: `ok N - suite: case` / `not ok`, the diff as a YAML block,
    /// `# SKIP reason` for skipped cases.
    public static func tap(_ suites: [SuiteReport]) -> String {
        let all = suites.flatMap { suite in suite.cases.map { (suite.name, $0) } }
        var text = "TAP version 14\n1..\(all.count)\n"
        for (index, (suite, item)) in all.enumerated() {
            let title = "\(suite): \(item.name)".replacingOccurrences(of: "#", with: "\\#")
            switch item.status {
            case .passed:
                text += "ok \(index + 1) - \(title)\n"
            case .skipped(let reason):
                text += "ok \(index + 1) - \(title) # SKIP \(reason)\n"
            case .failed(let mismatches):
                text +=
                    "not ok \(index + 1) - \(title)\n  ---\n  message: \(yamlQuote(mismatches.first?.what ?? "failed"))\n  diff: |\n"
                text += mismatches.map(\.description).joined(separator: "\n").split(
                    separator: "\n", omittingEmptySubsequences: false
                )
                .map { "    \($0)\n" }.joined()
                text += "  ...\n"
            case .error(let message):
                text +=
                    "not ok \(index + 1) - \(title)\n  ---\n  message: \(yamlQuote(message))\n  severity: error\n  ...\n"
            }
        }
        return text
    }

    /// The readable report: a line per case, the diff under each failure, and a summary.
    public static func text(_ suites: [SuiteReport]) -> String {
        var text = ""
        for suite in suites {
            text += "\(suite.file):\n"
            for item in suite.cases {
                switch item.status {
                case .passed:
                    text += "  ok       \(item.name)\n"
                case .skipped(let reason):
                    text += "  skipped  \(item.name): \(reason)\n"
                case .failed(let mismatches):
                    text += "  FAIL     \(item.name)\n"
                    for line in mismatches.map(\.description).joined(separator: "\n").split(
                        separator: "\n", omittingEmptySubsequences: false)
                    {
                        text += "           \(line)\n"
                    }
                case .error(let message):
                    text += "  ERROR    \(item.name): \(message)\n"
                }
                for note in item.notes { text += "           note: \(note)\n" }
            }
        }
        let cases = suites.flatMap(\.cases)
        let passed = cases.filter { $0.status == .passed }.count
        let failed = cases.filter { if case .failed = $0.status { true } else { false } }.count
        let errors = cases.filter { if case .error = $0.status { true } else { false } }.count
        let skipped = cases.count - passed - failed - errors
        text += "\(cases.count) case(s): \(passed) passed, \(failed) failed, \(errors) error(s), \(skipped) skipped\n"
        return text
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "\n", "\t", "\r": out.unicodeScalars.append(scalar)
            default:
                // XML 1.0 allows no other control characters, even escaped.
                out.unicodeScalars.append(scalar.value < 0x20 ? "?" : scalar)
            }
        }
        return out
    }

    static func yamlQuote(_ text: String) -> String {
        "\""
            + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    static func seconds(_ value: Double) -> String {
        let millis = Int((value * 1000).rounded())
        let fraction = String(millis % 1000)
        return "\(millis / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }

    /// Now in ISO 8601 without a time zone (the JUnit schema's `ISO8601_DATETIME_PATTERN`).
    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }
}
