/// Why a plugin library could not be loaded, or emulators could not be combined.
///
/// Every case names the library (its path) or the emulators involved, and says what to fix.
public enum PluginError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No file at `path`.
    case fileNotFound(path: String)
    /// `dlopen` refused the file: not a shared library, wrong architecture, missing dependency.
    case notASharedLibrary(path: String, reason: String)
    /// The library does not export the entry symbol (`mimic_plugin_entry`).
    case missingEntrySymbol(path: String, symbol: String)
    /// The entry returned NULL: the plugin refused to load (its log may say why).
    case entryRefused(path: String)
    /// The plugin was built against an ABI major version this host does not speak.
    case incompatibleABI(path: String, plugin: PluginABIVersion, host: PluginABIVersion)
    /// Two helpers of one plugin have the same id.
    case duplicateHelperID(path: String, id: Int32, names: [String])
    /// The plugin's description is malformed (NULL name, absurd count, negative id, ...).
    case invalidDescriptor(path: String, detail: String)
    /// Two emulators combined in a `CompositeEmulator` both provide helper `id`.
    case conflictingHelperID(id: Int32, first: String, second: String)
    /// The plugin's `instance_create` refused to serve a VM (bad options, out of memory, ...).
    case instanceRefused(plugin: String, reason: String)
    /// The plugin lacks an ABI 1.1 callback this operation needs (it is older, or provides no maps
    /// or contexts).
    case unsupported(plugin: String, what: String)
    /// The plugin answered with something malformed (e.g. context-result text that is not the
    /// JSON object the ABI asks for).
    case invalidAnswer(plugin: String, detail: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            "cannot load plugin \(path): no such file"
        case .notASharedLibrary(let path, let reason):
            "cannot load plugin \(path): not a loadable shared library (\(reason))"
        case .missingEntrySymbol(let path, let symbol):
            "cannot load plugin \(path): it does not export the entry symbol \(symbol) (is it a Mimic plugin? see Docs/Plugins.md)"
        case .entryRefused(let path):
            "cannot load plugin \(path): its entry point returned NULL (the plugin refused to load)"
        case .incompatibleABI(let path, let plugin, let host):
            "cannot load plugin \(path): it was built for plugin ABI \(plugin), this Mimic speaks ABI \(host.major).x (\(host)); rebuild the plugin against this Mimic's mimic_plugin.h"
        case .duplicateHelperID(let path, let id, let names):
            "cannot load plugin \(path): helper id \(id) is described \(names.count) times (\(names.joined(separator: ", ")))"
        case .invalidDescriptor(let path, let detail):
            "cannot load plugin \(path): invalid description: \(detail)"
        case .conflictingHelperID(let id, let first, let second):
            "cannot combine emulators: helper id \(id) is provided by both \(first) and \(second)"
        case .instanceRefused(let plugin, let reason):
            "plugin \(plugin) refused to serve the VM: \(reason)"
        case .unsupported(let plugin, let what):
            "plugin \(plugin) does not support \(what) (it has no ABI 1.1 callback for it)"
        case .invalidAnswer(let plugin, let detail):
            "plugin \(plugin) answered with something invalid: \(detail)"
        }
    }
}

/// A plugin ABI version: major (incompatible changes) and minor (appended fields).
public struct PluginABIVersion: Sendable, Equatable, Comparable, CustomStringConvertible {
    public var major: UInt32
    public var minor: UInt32

    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }

    public static func < (a: PluginABIVersion, b: PluginABIVersion) -> Bool {
        (a.major, a.minor) < (b.major, b.minor)
    }

    public var description: String { "\(major).\(minor)" }
}
