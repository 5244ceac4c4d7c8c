import Foundation
import Testing

/// `mimic inspect` and `mimic disasm` on clang-compiled objects (the MimicCore fixtures).
@Suite("mimic inspect / disasm on ELF objects")
struct ObjectCommandTests {
    static func fixture(_ name: String) -> String {
        MimicCLI.packageRoot.appendingPathComponent("Tests/MimicCoreTests/Fixtures/\(name)").path
    }

    @Test func inspectListsProgramsMapsAndGlobals() throws {
        let maps = try MimicCLI.run(["inspect", Self.fixture("btf_maps.o")])
        #expect(maps.status == 0, "\(maps)")
        for fragment in ["track", "xdp", "flows", "hash", "4096", "percpu_array", "ringbuf", "struct flow_key"] {
            #expect(maps.stdout.contains(fragment), "missing \(fragment): \(maps.stdout)")
        }
        let globals = try MimicCLI.run(["inspect", Self.fixture("globals.o")])
        #expect(globals.status == 0, "\(globals)")
        for fragment in [".data", ".rodata", ".bss"] {
            #expect(globals.stdout.contains(fragment), "missing \(fragment): \(globals.stdout)")
        }
    }

    @Test func inspectNamesFlagsAsMapsDoesAndHasJSON() throws {
        let lpm = MimicCLI.packageRoot.appendingPathComponent("Tests/MimicLinuxTests/Fixtures/lpm_route.o").path
        let text = try MimicCLI.run(["inspect", lpm])
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.contains("64           no_prealloc"), "\(text.stdout)")
        #expect(!text.stdout.contains("0x1 "), "\(text.stdout)")
        let json = try MimicCLI.run(["inspect", lpm, "--json"])
        #expect(json.status == 0, "\(json)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let programs = try #require(object["programs"] as? [[String: Any]])
        #expect(programs.first?["type"] as? String == "xdp", "\(programs)")
        let maps = try #require(object["maps"] as? [[String: Any]])
        #expect(maps.first?["name"] as? String == "routes")
        #expect(maps.first?["flag_names"] as? String == "no_prealloc")
        #expect(maps.first?["flags"] as? Int == 1)
    }

    @Test func disasmShowsCSourceLines() throws {
        let result = try MimicCLI.run(["disasm", Self.fixture("xdp_parse.o"), "--program", "xdp_filter"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("xdp_parse.c:"))
        #expect(result.stdout.contains("void *data_end = (void *)(long)ctx->data_end;"))
        #expect(result.stdout.contains("ldxw %r2, [%r1+4]"))

        let bySection = try MimicCLI.run(["disasm", Self.fixture("xdp_parse.o"), "--section", "xdp"])
        #expect(bySection.status == 0, "\(bySection)")
        #expect(bySection.stdout.contains("<xdp_filter>"))
    }

    @Test func badObjectsAndSelectionsFailClearly() throws {
        expectFailure(
            try MimicCLI.run(["disasm", Self.fixture("xdp_parse.o"), "--program", "nope"]),
            status: 1, mentioning: ["no program named 'nope'", "xdp_filter"])
        expectFailure(
            try MimicCLI.run(["disasm", Self.fixture("xdp_parse.o"), "--section", "tc"]),
            status: 1, mentioning: ["no program in section 'tc'"])

        let directory = try TemporaryDirectory()
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: Self.fixture("xdp_parse.o"))))
        let truncated = try directory.file("truncated.o", bytes: Array(bytes.prefix(300)))
        expectFailure(
            try MimicCLI.run(["inspect", truncated]), status: 1, mentioning: ["truncated.o", "section header"])
        expectFailure(try MimicCLI.run(["disasm", truncated]), status: 1, mentioning: ["truncated.o"])

        let text = try directory.file("notelf.o", "mov %r0, 0\nexit\n")
        expectFailure(try MimicCLI.run(["inspect", text]), status: 1, mentioning: ["not an ELF object"])
        expectFailure(try MimicCLI.run(["inspect", directory.path("missing.o")]), status: 1, mentioning: ["missing.o"])

        let bytecode = try directory.file("prog.bin", bytes: [0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
        expectFailure(try MimicCLI.run(["disasm", bytecode, "--program", "x"]), status: 2, mentioning: ["ELF objects"])
    }
}
