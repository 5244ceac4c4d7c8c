import Foundation
import MimicJSON
import Testing

/// `--set`, `--map-size`, `--type`, `--prog-array`, `--map-of-maps` and `--ctx` on `mimic run`
/// (Mimic only; `ConfiguredObjectKernelTests` checks the same against the kernel).
@Suite("mimic run: configure before load, context fields in and out")
struct ConfigureCommandTests {
    static func fixture(_ name: String) -> String {
        MimicCLI.packageRoot.appendingPathComponent("Tests/MimicCLITests/Fixtures/\(name)").path
    }

    static func linuxFixture(_ name: String) -> String {
        MimicCLI.packageRoot.appendingPathComponent("Tests/MimicLinuxTests/Fixtures/\(name)").path
    }

    /// IPv4/UDP from port 12345 to port 53.
    static let udp53 =
        "020000000000020000000001080045000024000100004011f9c10a0000010a000002303900350010000068656c6c6f212121"

    static let configured = ["run", fixture("configured.o"), "--packet", udp53, "--map-size", "hits=16"]

    @Test("a max_entries 0 map without a size is an error naming --map-size")
    func unsizedMap() throws {
        let result = try MimicCLI.run(["run", Self.fixture("configured.o"), "--packet", Self.udp53])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("--map-size hits=N"), "\(result)")
    }

    @Test(".rodata constants set by name change what the program does")
    func rodata() throws {
        let unset = try MimicCLI.run(Self.configured + ["--json"])
        #expect(unset.status == 0, "\(unset)")
        #expect(try JSONValue.parse(unset.stdout)["verdict"] == .string("XDP_PASS"))
        let set = try MimicCLI.run(
            Self.configured + [
                "--set", "blocked_port=53", "--set", "enabled=true", "--set", "mode=MODE_DROP",
                "--set", #"limits={"low": 10, "flags": [0, 3]}"#, "--json",
            ])
        #expect(set.status == 0, "\(set)")
        let json = try JSONValue.parse(set.stdout)
        #expect(json["verdict"] == .string("XDP_DROP"), "\(set)")
        #expect(set.stdout.contains("\"map\": \"hits\""), "the sized map took the entry: \(set)")
        // A string constant: tag "all" matches every port.
        let tag = try MimicCLI.run(
            Self.configured + ["--set", "blocked_port=1", "--set", "enabled=1", "--set", "mode=3", "--set", "tag=all"])
        #expect(tag.stdout.contains("XDP_TX"), "\(tag)")
    }

    @Test(
        "bad --set values are clear errors",
        arguments: [
            ("blocked_prt=1", "did you mean blocked_port"), ("blocked_port=70000", "out of range (0...65535)"),
            ("mode=MODE_X", "MODE_TX"), ("tag=much too long", "longer than 8"),
            (#"limits={"lo": 1}"#, "did you mean low"),
            ("limits=[1]", "expected an object"), ("enabled=2", "expected true or false"),
        ])
    func badValues(argument: String, expected: String) throws {
        let result = try MimicCLI.run(Self.configured + ["--set", argument])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains(expected), "\(result)")
    }

    @Test(
        "usage mistakes in the options exit 2",
        arguments: [
            ["--set", "noequals"], ["--map-size", "hits=0"], ["--map-size", "hits=x"], ["--type", "nonsense"],
            ["--prog-array", "jump=1"], ["--map-of-maps", "outer=a:b"], ["--ctx", "mark"], ["--ctx", "mark=x"],
        ])
    func usage(arguments: [String]) throws {
        let result = try MimicCLI.run(["run", Self.fixture("configured.o"), "--packet", Self.udp53] + arguments)
        #expect(result.status == 2, "\(result)")
    }

    @Test("a program in a legacy section runs with --type")
    func legacySection() throws {
        let without = try MimicCLI.run(["run", Self.fixture("legacy_section.o"), "--packet", Self.udp53])
        #expect(without.status == 1)
        #expect(without.stderr.contains("--type"), "\(without)")
        let with = try MimicCLI.run(["run", Self.fixture("legacy_section.o"), "--packet", Self.udp53, "--type", "xdp"])
        #expect(with.status == 0, "\(with)")
        #expect(
            with.stdout.contains("(xdp)") && with.stdout.contains("XDP_PASS") && with.stdout.contains("untagged = 1"),
            "\(with)")
    }

    @Test("--ctx sets sk_buff fields; the context the program left is shown in text and JSON")
    func skbContext() throws {
        let result = try MimicCLI.run([
            "run", Self.fixture("tc_mark.o"), "--packet", Self.udp53, "--ctx", "mark=5,cb[0]=3,priority=2", "--json",
        ])
        #expect(result.status == 0, "\(result)")
        let json = try JSONValue.parse(result.stdout)
        #expect(json["verdict"] == .string("TC_ACT_OK"))
        let out = try #require(json["context_out"])
        #expect(
            out["mark"] == .number("85") && out["cb[1]"] == .number("6") && out["priority"] == .number("9"), "\(result)"
        )
        #expect(out["tc_classid"] == .number("65538"), "\(result)")
        let text = try MimicCLI.run(["run", Self.fixture("tc_mark.o"), "--packet", Self.udp53, "--ctx", "mark=6"])
        #expect(text.stdout.contains("mark=262 (was 6)") && text.stdout.contains("TC_ACT_SHOT"), "\(text)")
    }

    @Test(
        "--ctx follows the kernel's rules for ctx_in",
        arguments: [
            ("tc_index=1", "does not accept __sk_buff.tc_index"), ("wire_len=3", "wire_len"),
            ("gso_segs=70000", "GSO_MAX_SEGS"),
            ("nonsense=1", "no settable field"),
        ])
    func ctxRules(fields: String, expected: String) throws {
        let result = try MimicCLI.run(["run", Self.fixture("tc_mark.o"), "--packet", Self.udp53, "--ctx", fields])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains(expected), "\(result)")
    }

    @Test("a context file gives the same fields by their C names")
    func contextFile() throws {
        let directory = try TemporaryDirectory()
        let path = directory.url.appendingPathComponent("ctx.json").path
        let packet = Base64.encode(Hex.bytes(Self.udp53))
        let json = #"{"type": "sk_buff", "ctx": {"packet": "\#(packet)", "mark": 5, "cb": [4], "priority": 1}}"#
        #expect(FileManager.default.createFile(atPath: path, contents: Data(json.utf8)))
        let result = try MimicCLI.run(["run", Self.fixture("tc_mark.o"), "--context", path, "--json"])
        #expect(result.status == 0, "\(result)")
        let out = try #require(try JSONValue.parse(result.stdout)["context_out"])
        #expect(
            out["mark"] == .number("85") && out["cb[1]"] == .number("8") && out["priority"] == .number("8"), "\(result)"
        )
        let bad = #"{"type": "sk_buff", "ctx": {"packet": "\#(packet)", "tc_index": 5}}"#
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bad.utf8)))
        let refused = try MimicCLI.run(["run", Self.fixture("tc_mark.o"), "--context", path])
        #expect(refused.status == 1 && refused.stderr.contains("ctx.tc_index"), "\(refused)")
    }

    @Test("--prog-array and --map-of-maps fill slots by name; --ctx sets xdp_md fields")
    func progArray() throws {
        let object = Self.linuxFixture("tail_calls.o")
        let base = ["run", object, "--program", "dispatch", "--packet", Self.udp53, "--ctx", "rx_queue_index=2"]
        let empty = try MimicCLI.run(base)
        #expect(empty.status == 0 && empty.stdout.contains("XDP_DROP"), "slot 2 is empty: \(empty)")
        let filled = try MimicCLI.run(base + ["--prog-array", "jump_table=2:stage_pass"])
        #expect(
            filled.status == 0 && filled.stdout.contains("XDP_PASS") && filled.stdout.contains("hops = 1"), "\(filled)")
        let badMap = try MimicCLI.run(base + ["--prog-array", "nosuchmap=0:stage_pass"])
        #expect(badMap.status == 1 && badMap.stderr.contains("unknown map 'nosuchmap'"), "\(badMap)")
        let badProgram = try MimicCLI.run(base + ["--prog-array", "jump_table=2:stage_pas"])
        #expect(badProgram.status == 1 && badProgram.stderr.contains("did you mean stage_pass"), "\(badProgram)")
        let outside = try MimicCLI.run(base + ["--prog-array", "jump_table=4:stage_pass"])
        #expect(outside.status == 1 && outside.stderr.contains("outside map jump_table"), "\(outside)")
        let mapOfMaps = ["run", Self.linuxFixture("map_in_map.o"), "--packet", Self.udp53]
        let emptySlot = try MimicCLI.run(mapOfMaps)
        #expect(emptySlot.stdout.contains("XDP_ABORTED"), "outer[0] is empty: \(emptySlot)")
        let filledSlot = try MimicCLI.run(mapOfMaps + ["--map-of-maps", "outer=0:inner_a"])
        #expect(
            filledSlot.stdout.contains("XDP_PASS") && filledSlot.stdout.contains("inner_a (array)"), "\(filledSlot)")
        let notMapOfMaps = try MimicCLI.run(base + ["--map-of-maps", "jump_table=0:jump_table"])
        #expect(notMapOfMaps.status == 1 && notMapOfMaps.stderr.contains("not a map of maps"), "\(notMapOfMaps)")
    }
}

private enum Hex {
    static func bytes(_ text: String) -> [UInt8] {
        var result: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex, let next = text.index(index, offsetBy: 2, limitedBy: text.endIndex) {
            if let byte = UInt8(text[index..<next], radix: 16) { result.append(byte) }
            index = next
        }
        return result
    }
}
