import Foundation
import MimicCore
import Testing

/// Libraries that are not (valid) plugins are refused with an error naming the problem.
@Suite(.serialized) struct BadLibraryTests {
    init() { PluginFixtures.quietLogs }

    /// A plugin whose description is `pluginFields` and helpers `helpers` (C initialisers).
    static func plugin(_ name: String, helpers: String, pluginFields: String, entry: String = "return &plugin;") throws
        -> String
    {
        try PluginFixtures.cLibrary(
            name,
            source: """
                #include "mimic_plugin.h"
                static uint64_t f(const struct mimic_host *h, struct mimic_call *c,
                                  uint64_t a, uint64_t b, uint64_t d, uint64_t e, uint64_t g) { return a; }
                static const struct mimic_helper helpers[] = { \(helpers) };
                static const struct mimic_plugin plugin = { \(pluginFields) };
                __attribute__((visibility("default")))
                const struct mimic_plugin *mimic_plugin_entry(const struct mimic_host *host) { \(entry) }
                """)
    }

    static let standard =
        ".abi_major = MIMIC_PLUGIN_ABI_MAJOR, .size = sizeof(struct mimic_plugin), .name = \"bad\", .helpers = helpers"

    func loadError(_ path: String) throws -> PluginError {
        try #require(throws: PluginError.self) { try PluginLibrary.load(path: path) }
    }

    @Test func missingFile() throws {
        let path = PluginFixtures.scratch.appendingPathComponent("libnothing.so").path
        #expect(try loadError(path) == .fileNotFound(path: path))
        #expect(try loadError(path).description == "cannot load plugin \(path): no such file")
    }

    @Test func notASharedLibrary() throws {
        let path = PluginFixtures.scratch.appendingPathComponent("libtext.so").path
        try "this is not an ELF file".write(toFile: path, atomically: true, encoding: .utf8)
        guard case .notASharedLibrary(let reported, let reason) = try loadError(path) else {
            Issue.record("expected notASharedLibrary")
            return
        }
        #expect(reported == path)
        #expect(reason == "it is not an ELF file (it does not start with 0x7f 'ELF')")
    }

    /// A library cut short is refused before `dlopen`, which would map it past its end and
    /// die with SIGBUS when touching it.
    @Test func truncatedLibrariesAreRefusedBeforeTheLoader() throws {
        let whole = try Self.plugin(
            "whole", helpers: "{.id = 1, .name = \"f\", .function = f}", pluginFields: Self.standard)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: whole)))
        for (name, count) in [("header", 40), ("phdrs", 100), ("half", bytes.count / 2)] {
            let path = PluginFixtures.scratch.appendingPathComponent("libcut-\(name).so").path
            try Data(bytes.prefix(count)).write(to: URL(fileURLWithPath: path))
            guard case .notASharedLibrary(_, let reason) = try loadError(path) else {
                Issue.record("expected notASharedLibrary for \(name)")
                continue
            }
            #expect(reason.contains("truncated") && reason.contains("\(count) bytes"), "\(name): \(reason)")
        }
    }

    @Test func anEBPFObjectIsNamedAsSuch() throws {
        let path = PluginFixtures.packageRoot.appendingPathComponent("Examples/xdp_firewall.o").path
        guard case .notASharedLibrary(_, let reason) = try loadError(path) else {
            Issue.record("expected notASharedLibrary")
            return
        }
        #expect(reason.hasPrefix("it is an eBPF object (ELF machine EM_BPF), not a shared library"), "\(reason)")
    }

    @Test func missingEntrySymbol() throws {
        let path = try PluginFixtures.cLibrary("noentry", source: "int some_function(void) { return 1; }\n")
        #expect(try loadError(path) == .missingEntrySymbol(path: path, symbol: "mimic_plugin_entry"))
    }

    @Test func entryRefuses() throws {
        let path = try Self.plugin(
            "refuses", helpers: "{.id = 1, .name = \"f\", .function = f}",
            pluginFields: Self.standard, entry: "return 0;")
        #expect(try loadError(path) == .entryRefused(path: path))
    }

    @Test func wrongABIVersion() throws {
        let path = try Self.plugin(
            "future", helpers: "{.id = 1, .name = \"f\", .function = f}",
            pluginFields: ".abi_major = 99, .abi_minor = 3, .size = sizeof(struct mimic_plugin), .name = \"future\"")
        let error = try loadError(path)
        #expect(
            error
                == .incompatibleABI(
                    path: path, plugin: PluginABIVersion(major: 99, minor: 3), host: PluginLibrary.hostABI))
        #expect(error.description.contains("built for plugin ABI 99.3, this Mimic speaks ABI 1.x"))
    }

    @Test func duplicateHelperIDs() throws {
        let path = try Self.plugin(
            "duplicates",
            helpers: """
                {.id = 7, .name = "first", .function = f}, {.id = 8, .name = "other", .function = f},
                {.id = 7, .name = "second", .function = f}
                """, pluginFields: Self.standard + ", .helper_count = 3")
        #expect(try loadError(path) == .duplicateHelperID(path: path, id: 7, names: ["first", "second"]))
    }

    @Test func badDescriptors() throws {
        let cases: [(String, String, String, String)] = [
            (
                "nullname", "{.id = 1, .name = 0, .function = f}", Self.standard + ", .helper_count = 1",
                "helper 0 (id 1) has a NULL name"
            ),
            (
                "nullfunction", "{.id = 1, .name = \"f\", .function = 0}", Self.standard + ", .helper_count = 1",
                "helper f (id 1) has a NULL function"
            ),
            (
                "negative", "{.id = -5, .name = \"f\", .function = f}", Self.standard + ", .helper_count = 1",
                "helper f has a negative id -5"
            ),
            (
                "absurd", "{.id = 1, .name = \"f\", .function = f}", Self.standard + ", .helper_count = 4000000000u",
                "4000000000 helpers (the limit is 65536)"
            ),
            (
                "nullarray", "{.id = 1, .name = \"f\", .function = f}",
                ".abi_major = MIMIC_PLUGIN_ABI_MAJOR, .size = sizeof(struct mimic_plugin), .name = \"bad\", .helper_count = 2",
                "2 helpers but the helper array is NULL"
            ),
            (
                "noname", "{.id = 1, .name = \"f\", .function = f}",
                ".abi_major = MIMIC_PLUGIN_ABI_MAJOR, .size = sizeof(struct mimic_plugin), .helpers = helpers, .helper_count = 1",
                "the plugin name is NULL"
            ),
            (
                "tiny", "{.id = 1, .name = \"f\", .function = f}",
                ".abi_major = MIMIC_PLUGIN_ABI_MAJOR, .size = 8, .name = \"bad\"",
                "size 8 is smaller than"
            ),
        ]
        for (name, helpers, fields, expected) in cases {
            let path = try Self.plugin(name, helpers: helpers, pluginFields: fields)
            let error = try loadError(path)
            guard case .invalidDescriptor(let reported, let detail) = error else {
                Issue.record("\(name): expected invalidDescriptor, got \(error)")
                continue
            }
            #expect(reported == path)
            #expect(detail.hasPrefix(expected), "\(name): \(detail)")
        }
    }
}
