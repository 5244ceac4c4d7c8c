import Foundation
import MimicCore
@testable import MimicKernel
import Testing

/// The verifier corpus (`VerifierCorpus/`): clang-built programs of the rejections users meet
/// most, each with an accepted twin, and `manifest.json` with the kernel's verdict on each.
///
/// With the kernel reachable, every program is loaded again and its verdict, error line and
/// instruction must be the manifest's. `MIMIC_RECORD_VERIFIER_CORPUS=1` rewrites the manifest
/// from this kernel instead (descriptions come from the comment above each C function).
struct VerifierCorpus {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("VerifierCorpus")
    static let manifestURL = directory.appendingPathComponent("manifest.json")

    /// One program of the corpus and the kernel's verdict on it.
    struct Entry: Codable, Equatable {
        var object: String
        var program: String
        var section: String
        var type: String
        var verdict: String
        var error: String?
        var instruction: Int?
        /// The C source line of `instruction` (BTF line info), when there is one.
        var line: Int?
        var errno: String?
        var description: String
    }

    struct Manifest: Codable, Equatable {
        /// `uname -r` of the kernel the verdicts were recorded on.
        var kernel: String
        var programs: [Entry]
    }

    /// The corpus's objects, by file name.
    static func objectNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".o") }.sorted()
    }

    static func loadManifest() throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: manifestURL))
    }

    /// The kernel's verdict on `program` of `object`, as a manifest entry.
    static func entry(object name: String, program: ObjectProgram, in object: ObjectFile, description: String)
        throws -> Entry
    {
        let verdict = try KernelObject(object: object).verdict(ofProgram: program.name)
        return Entry(
            object: name, program: program.name, section: program.sectionName,
            type: program.type.kernelName ?? "\(program.type.rawValue)",
            verdict: verdict.accepted ? "accepted" : "rejected", error: verdict.error,
            instruction: verdict.instruction,
            line: verdict.instruction.flatMap { program.sourceLine(at: $0)?.line }, errno: verdict.errno,
            description: description)
    }

    /// The comment right above `function`'s definition in `source` ("Rejected: reads the
    /// EtherType with no check against data_end.").
    static func description(of function: String, in source: String) -> String {
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard
            let definition = lines.firstIndex(where: {
                $0.contains(" \(function)(") && !$0.hasPrefix(" ") && !$0.hasSuffix(";")
            })
        else { return "" }
        var start = definition
        while start > 0, !lines[start - 1].hasPrefix("/*") { start -= 1 }
        guard start > 0, definition - start < 4 else { return "" }
        let comment = lines[(start - 1)..<definition].filter { !$0.hasPrefix("SEC(") && !$0.hasPrefix("__") }
            .joined(separator: " ")
        var text = comment.replacingOccurrences(of: "/*", with: "").replacingOccurrences(of: "*/", with: "")
            .replacingOccurrences(of: " * ", with: " ")
        while text.contains("  ") { text = text.replacingOccurrences(of: "  ", with: " ") }
        return text.trimmingCharacters(in: .whitespaces)
    }

    /// Every program of every object with the kernel's verdict.
    static func record() throws -> Manifest {
        var entries: [Entry] = []
        for name in try objectNames() {
            let object = try ObjectFile(contentsOf: directory.appendingPathComponent(name).path)
            let source = try String(
                contentsOf: directory.appendingPathComponent(String(name.dropLast(2)) + ".c"), encoding: .utf8)
            for program in object.programs {
                entries.append(
                    try entry(
                        object: name, program: program, in: object,
                        description: description(of: program.name, in: source)))
            }
        }
        return Manifest(kernel: kernelRelease(), programs: entries)
    }

    static func kernelRelease() -> String {
        var names = utsname()
        uname(&names)
        return withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}

@Suite("Verifier corpus: the manifest and reading verifier logs")
struct VerifierCorpusManifestTests {
    @Test("the manifest lists every program of every corpus object, with both verdicts and a description")
    func manifestCoversObjects() throws {
        let manifest = try VerifierCorpus.loadManifest()
        var listed = Set(manifest.programs.map { "\($0.object)/\($0.program)" })
        #expect(listed.count == manifest.programs.count, "a program is listed twice")
        for name in try VerifierCorpus.objectNames() {
            let object = try ObjectFile(contentsOf: VerifierCorpus.directory.appendingPathComponent(name).path)
            for program in object.programs {
                #expect(
                    listed.remove("\(name)/\(program.name)") != nil, "\(name): \(program.name) is not in the manifest")
                let entry = manifest.programs.first { $0.object == name && $0.program == program.name }
                #expect(entry?.section == program.sectionName)
                #expect(entry?.type == program.type.kernelName)
            }
        }
        #expect(listed.isEmpty, "the manifest lists programs no object has: \(listed.sorted())")
        for entry in manifest.programs {
            #expect(!entry.description.isEmpty, "\(entry.program) has no description")
            #expect(["accepted", "rejected"].contains(entry.verdict))
            #expect((entry.verdict == "rejected") == (entry.error != nil), "\(entry.program)")
        }
        let rejected = manifest.programs.filter { $0.verdict == "rejected" }.count
        #expect(rejected >= 20 && manifest.programs.count - rejected >= 15)
    }

    @Test("a rejection's log gives the last meaningful line and the instruction it is about")
    func logParsing() {
        let log = """
            0: R1=ctx() R10=fp0
            0: (61) r1 = *(u32 *)(r1 +0)          ; R1_w=pkt(r=0)
            1: (69) r1 = *(u16 *)(r1 +12)
            invalid access to packet, off=12 size=2, R1(id=0,off=0,r=0)
            R1 offset is outside of the packet
            processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0

            """
        let verdict = LoadVerdict.rejection(log: log)
        #expect(verdict.error == "R1 offset is outside of the packet")
        #expect(verdict.instruction == 1)
        #expect(LoadVerdict.rejection(log: "infinite loop detected at insn 24\n").instruction == 24)
        #expect(LoadVerdict.rejection(log: "").error == "(no log)")
        let loop = LoadVerdict.rejection(
            log:
                "2: (05) goto pc-1\ninfinite loop detected at insn 2\ncur state: R1=7 R10=fp0\nold state: R1=7 R10=fp0\n"
        )
        #expect(loop.error == "infinite loop detected at insn 2" && loop.instruction == 2)
    }
}

@Suite(
    "Verifier corpus: the kernel's verdicts",
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct VerifierCorpusKernelTests {
    @Test("every corpus program gets the manifest's verdict, error line and instruction from this kernel")
    func kernelAgreesWithManifest() throws {
        let current = try VerifierCorpus.record()
        if ProcessInfo.processInfo.environment["MIMIC_RECORD_VERIFIER_CORPUS"] == "1" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try (encoder.encode(current) + Data("\n".utf8)).write(to: VerifierCorpus.manifestURL)
            print("◇ recorded \(current.programs.count) verdicts into \(VerifierCorpus.manifestURL.path)")
            return
        }
        let manifest = try VerifierCorpus.loadManifest()
        let release = VerifierCorpus.kernelRelease()
        if release != manifest.kernel {
            print("◇ the verifier corpus was recorded on \(manifest.kernel); this kernel is \(release)")
        }
        for entry in manifest.programs {
            guard let now = current.programs.first(where: { $0.object == entry.object && $0.program == entry.program })
            else {
                Issue.record("\(entry.object): \(entry.program) is not in the corpus objects")
                continue
            }
            #expect(now.verdict == entry.verdict, "\(entry.program): \(now.error ?? "accepted")")
            #expect(now.error == entry.error, "\(entry.program)")
            #expect(now.instruction == entry.instruction, "\(entry.program)")
        }
    }
}
