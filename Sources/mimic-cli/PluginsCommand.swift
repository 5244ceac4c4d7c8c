import MimicCore

/// `mimic plugins PATH...`: what emulator plugin libraries provide.
enum PluginsCommand: Command {
    static let info = CommandInfo(
        name: "plugins",
        summary: "Show what emulator plugin libraries provide (name, ABI version, helpers).",
        synopsis: "plugins PATH... [--json]",
        discussion: """
            Each PATH is a shared library speaking Mimic's plugin ABI (Sources/CMimicPlugin/include/
            mimic_plugin.h): it is opened with dlopen, its entry point runs, and its description is
            checked as `run-raw --plugin` would. Prints the plugin's name, version, ABI version and
            its helpers with their ids. A library that is not a valid plugin is an error naming why.
            See Docs/Plugins.md for writing plugins.
            """,
        options: [
            .flag(
                "json", "Print one JSON object per library: name, version, abi, path, helpers [{id, name}], map_types.")
        ],
        examples: [
            ("List the helpers of the C sample plugin", "mimic plugins Examples/Plugins/c-kvstore/libkvstore.so"),
            ("The Linux emulator as a plugin", "mimic plugins .build/debug/libMimicLinuxPlugin.so --json"),
        ])

    static func run(_ arguments: ParsedArguments) throws {
        guard !arguments.positionals.isEmpty else {
            throw UsageError(message: "missing argument PATH for 'plugins'", command: info.name)
        }
        let json = arguments.has("json")
        for (index, path) in arguments.positionals.enumerated() {
            let library: PluginLibrary
            do {
                library = try PluginLibrary.load(path: path)
            } catch {
                throw RuntimeError(error.description)
            }
            Console.out(json ? describeJSON(library) : (index > 0 ? "\n" : "") + describe(library))
        }
    }

    /// The human-readable description.
    static func describe(_ library: PluginLibrary) -> String {
        var text = "plugin \(library.name)"
        if let version = library.version { text += " \(version)" }
        text += " (ABI \(library.abiVersion))\n"
        if let summary = library.summary { text += "  \(summary)\n" }
        text += "  path: \(library.path)\n"
        text += "helpers (\(library.helpers.count)):\n"
        let width = library.helpers.map { String($0.id).count }.max() ?? 0
        for helper in library.helpers {
            let id = String(helper.id)
            text += "  \(String(repeating: " ", count: width - id.count))\(id)  \(helper.name)\n"
        }
        if library.mapTypes.isEmpty {
            text += "map types: none\n"
        } else {
            text +=
                "map types (\(library.mapTypes.count)\(library.providesMaps ? "" : ", listed only: the plugin has no create_map")):\n"
            for type in library.mapTypes { text += "  \(type.type)  \(type.name)\n" }
        }
        if !library.customInstructions.isEmpty {
            text += "custom instructions (\(library.customInstructions.count)):\n"
            for instruction in library.customInstructions {
                text += "  0x\(String(instruction.opcode, radix: 16))  \(instruction.name)\n"
            }
        }
        return text
    }

    /// One line of JSON.
    static func describeJSON(_ library: PluginLibrary) -> String {
        let string = JSONOutput.quote
        let helpers = library.helpers.map { "{\"id\": \($0.id), \"name\": \(string($0.name))}" }.joined(separator: ", ")
        let mapTypes = library.mapTypes.map { "{\"type\": \($0.type), \"name\": \(string($0.name))}" }.joined(
            separator: ", ")
        let custom = library.customInstructions.map { "{\"opcode\": \($0.opcode), \"name\": \(string($0.name))}" }
            .joined(separator: ", ")
        return "{\"name\": \(string(library.name)), \"version\": \(library.version.map(string) ?? "null"), "
            + "\"abi\": \(string(library.abiVersion.description)), \"path\": \(string(library.path)), "
            + "\"helpers\": [\(helpers)], \"map_types\": [\(mapTypes)], \"custom_instructions\": [\(custom)]}\n"
    }
}
