import Foundation
import MimicLinux
import Testing

/// The library examples the README shows: they must compile (this target builds them), run,
/// and be in the README exactly as they are here.
@Suite("README library examples")
struct LibraryExampleTests {
    /// The package root: this file is `<root>/Examples/Library/LibraryExampleTests.swift`.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func coreExampleReturns42() throws {
        #expect(try coreExample() == 42)
    }

    @Test func linuxExampleDropsTheBlockedSourceAndCountsTheHit() throws {
        let result = try linuxExample(objectPath: Self.root.appendingPathComponent("Examples/xdp_firewall.o").path)
        #expect(result.verdict == .drop)
        #expect(result.hits == 1)
    }

    /// Each example file is one of the README's ```swift blocks, character for character.
    @Test(arguments: ["CoreExample.swift", "LinuxExample.swift"])
    func theReadmeShowsTheExample(_ file: String) throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let source = try String(contentsOf: Self.root.appendingPathComponent("Examples/Library/\(file)"), encoding: .utf8)
        let blocks = readme.components(separatedBy: "```swift\n").dropFirst().compactMap { $0.components(separatedBy: "```\n").first }
        #expect(blocks.contains(source), "README.md must show Examples/Library/\(file) verbatim in a ```swift block")
    }
}
