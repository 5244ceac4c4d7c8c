import Foundation
import Testing

/// The package's module graph as SwiftPM sees it (`swift package describe --type json`), with
/// the modules each target's Swift sources import.
struct PackageGraph {
    struct Target {
        var name: String
        var type: String
        var path: String
        var sources: [String]
        var dependencies: [String]
    }

    var targets: [String: Target]

    /// The package root: this file is `<root>/Tests/MimicModuleGraphTests/ModuleGraphTests.swift`.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Runs `swift package describe` on the package (a scratch path of its own, so the running
    /// `swift test` keeps its build folder to itself).
    static func load() throws -> PackageGraph {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("mimic-describe-\(getpid())")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "swift", "package", "--package-path", root.path, "--scratch-path", scratch.path,
            "describe", "--type", "json",
        ]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw DescribeFailed(message: "swift package describe exited with \(process.terminationStatus): \(message)")
        }
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let list = object["targets"] as? [[String: Any]]
        else {
            throw DescribeFailed(message: "swift package describe wrote no target list")
        }
        var targets: [String: Target] = [:]
        for entry in list {
            guard let name = entry["name"] as? String, let type = entry["type"] as? String,
                let path = entry["path"] as? String
            else { throw DescribeFailed(message: "a target without name, type or path") }
            targets[name] = Target(
                name: name, type: type, path: path, sources: entry["sources"] as? [String] ?? [],
                dependencies: entry["target_dependencies"] as? [String] ?? [])
        }
        return PackageGraph(targets: targets)
    }

    struct DescribeFailed: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// Every target `name` depends on, directly or not.
    func closure(of name: String) -> Set<String> {
        var seen: Set<String> = []
        var pending = targets[name]?.dependencies ?? []
        while let next = pending.popLast() {
            if seen.insert(next).inserted { pending += targets[next]?.dependencies ?? [] }
        }
        return seen
    }

    /// The package's own modules a target's Swift sources import (`import X`, `@testable import X`,
    /// `public import X`, ...; modules outside the package — the toolchain's — are left out).
    func packageImports(of target: Target) throws -> Set<String> {
        let pattern = try Regex(
            #"^\s*(?:@\w+\s+)*(?:(?:public|package|internal|fileprivate|private)\s+)?import\s+(?:(?:struct|class|enum|protocol|typealias|func|let|var)\s+)?(\w+)"#
        )
        var modules: Set<String> = []
        for source in target.sources where source.hasSuffix(".swift") {
            let url = Self.root.appendingPathComponent(target.path).appendingPathComponent(source)
            let text = try String(contentsOf: url, encoding: .utf8)
            for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
                if let match = try pattern.firstMatch(in: String(line)), let name = match.output[1].substring {
                    let module = String(name)
                    if targets[module] != nil { modules.insert(module) }
                }
            }
        }
        return modules
    }
}

@Suite("The package's module graph")
struct PackageGraphTests {
    static let graph = Result { try PackageGraph.load() }

    /// A module imports what it declares, and declares what it imports (executable targets a test
    /// target lists are built for it to run, not imported).
    @Test func everyTargetDeclaresExactlyTheModulesItImports() throws {
        let graph = try Self.graph.get()
        #expect(graph.targets.count > 10, "swift package describe listed \(graph.targets.keys.sorted())")
        for target in graph.targets.values.sorted(by: { $0.name < $1.name }) {
            let imported = try graph.packageImports(of: target)
            let declared = Set(target.dependencies.filter { graph.targets[$0]?.type != "executable" })
            #expect(
                imported.subtracting(declared).isEmpty,
                "\(target.name) imports \(imported.subtracting(declared).sorted()) without declaring them in Package.swift"
            )
            #expect(
                declared.subtracting(imported).isEmpty,
                "\(target.name) declares \(declared.subtracting(imported).sorted()) but imports none of them")
        }
    }

    /// A host app that links MimicLinux gets the emulator: not the kernel oracle (`bpf(2)`, the
    /// fuzzer), not the capture-file reader, not the pool.
    @Test func theLinuxEmulatorPullsInOnlyTheVM() throws {
        let graph = try Self.graph.get()
        #expect(
            graph.closure(of: "MimicLinux") == [
                "MimicCore", "MimicMemory", "MimicJSON", "CMimicAtomics", "CMimicPlugin",
            ])
        #expect(graph.closure(of: "MimicCore") == ["MimicMemory", "MimicJSON", "CMimicAtomics", "CMimicPlugin"])
        for library in ["MimicMemory", "MimicJSON", "MimicPcap"] {
            #expect(graph.closure(of: library).isEmpty, "\(library) depends on \(graph.closure(of: library).sorted())")
        }
    }

    /// The verifier model needs the VM's ISA and object loader only: no emulator, no kernel.
    @Test func theVerifierStandsOnTheCoreOnly() throws {
        let graph = try Self.graph.get()
        #expect(
            graph.closure(of: "MimicVerifier") == [
                "MimicCore", "MimicMemory", "MimicJSON", "CMimicAtomics", "CMimicPlugin",
            ])
    }

    /// The kernel oracle is used by the tools and the tests only: no library depends on it.
    @Test func onlyToolsAndTestsUseTheKernelOracle() throws {
        let graph = try Self.graph.get()
        let libraries = graph.targets.values.filter { $0.type == "library" }
        #expect(libraries.filter { $0.dependencies.contains("MimicKernel") }.map(\.name) == [])
        #expect(libraries.filter { $0.dependencies.contains("CMimicKernel") }.map(\.name) == ["MimicKernel"])
        let tools = graph.targets.values.filter { $0.type == "executable" && $0.dependencies.contains("MimicKernel") }
        #expect(Set(tools.map(\.name)) == ["mimic-cli", "mimic-bench"])
    }
}
