import Foundation

/// Test suites whose data lives outside the repository: the bpf_conformance vectors, kept in
/// `../shared/conformance/bpf_conformance` beside the package (they are not ours to copy in).
///
/// Tests over them run whenever the data is present and are skipped, with a message naming the
/// missing folder, when it is not — so a fresh clone passes `swift test` on its own. CI sets
/// `MIMIC_REQUIRE_SHARED=1` (`.ci/run`), which turns the absence into a failure: there the
/// suites always run, never over an empty list.
public enum ExternalTestData {
    /// The package root (this file is `<root>/Tests/MimicTestSupport/ExternalTestData.swift`).
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent() // MimicTestSupport
        .deletingLastPathComponent() // Tests
        .deletingLastPathComponent() // package root

    /// The bpf_conformance vectors (`*.data`).
    public static let conformanceDirectory = packageRoot.deletingLastPathComponent()
        .appendingPathComponent("shared/conformance/bpf_conformance", isDirectory: true)
        .standardizedFileURL

    /// Whether `MIMIC_REQUIRE_SHARED` is set (to anything but empty or `0`): missing external
    /// data is then a failure, not a skip.
    public static let required: Bool = {
        let value = ProcessInfo.processInfo.environment["MIMIC_REQUIRE_SHARED"] ?? ""
        return !value.isEmpty && value != "0"
    }()

    /// Whether the conformance directory holds at least one vector.
    public static let conformanceAvailable: Bool = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: conformanceDirectory.path)) ?? []
        return names.contains { $0.hasSuffix(".data") }
    }()

    /// Whether tests over the conformance vectors run: the vectors are present, or they are
    /// required (and the tests then fail on their absence). Use with `.enabled(if:)` and
    /// `conformanceSkipMessage`.
    public static var runConformance: Bool { conformanceAvailable || required }

    /// Why conformance tests were skipped, for `.enabled(if: runConformance, Comment(rawValue: ...))`.
    public static let conformanceSkipMessage =
        "external data: the bpf_conformance vectors are not in \(conformanceDirectory.path) (MIMIC_REQUIRE_SHARED=1 makes this a failure)"
}
