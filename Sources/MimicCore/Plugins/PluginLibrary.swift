import CMimicPlugin
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One helper a plugin describes, as read from its `struct mimic_helper`.
public struct PluginHelperInfo: Sendable, Equatable {
    /// The id programs call.
    public var id: Int32
    /// The helper's name.
    public var name: String

    public init(id: Int32, name: String) {
        self.id = id
        self.name = name
    }
}

/// One map type a plugin creates (ABI 1.1; informational, listed in messages and `mimic plugins`).
public struct PluginMapTypeInfo: Sendable, Equatable {
    /// The `BPF_MAP_TYPE_*` number.
    public var type: UInt32
    public var name: String

    public init(type: UInt32, name: String) {
        self.type = type
        self.name = name
    }
}

/// One custom instruction a plugin provides (ABI 1.2): an opcode byte the instruction set
/// leaves undefined, and its name.
public struct PluginCustomInstructionInfo: Sendable, Equatable {
    public var opcode: UInt8
    public var name: String

    public init(opcode: UInt8, name: String) {
        self.opcode = opcode
        self.name = name
    }
}

/// An emulator plugin: a shared library speaking the C ABI of `mimic_plugin.h`, opened with
/// `dlopen`.
///
/// ```swift
/// let plugin = try PluginLibrary.load(path: "libkvstore.so")
/// let emulator = try CompositeEmulator([LinuxEmulator(), plugin.emulator])
/// let vm = VM(emulator: emulator)
/// ```
///
/// Loading checks the file, the entry symbol, the ABI major version and every descriptor, so a
/// bad library is refused with a `PluginError` rather than crashing later. Loading the same
/// library twice returns the same `PluginLibrary` (its entry runs once). Libraries are never
/// closed: a library containing Swift code cannot be safely unloaded, and helpers may still be
/// bound into loaded programs.
public final class PluginLibrary: Sendable {
    /// The ABI this host speaks (`MIMIC_PLUGIN_ABI_MAJOR` / `_MINOR` of its header).
    public static let hostABI = PluginABIVersion(
        major: UInt32(MIMIC_PLUGIN_ABI_MAJOR), minor: UInt32(MIMIC_PLUGIN_ABI_MINOR))
    /// The symbol every plugin exports.
    public static let entrySymbol = MIMIC_PLUGIN_ENTRY_SYMBOL

    /// The path the library was loaded from.
    public let path: String
    /// The plugin's name (`struct mimic_plugin.name`).
    public let name: String
    /// The plugin's version text, if it gave one.
    public let version: String?
    /// The plugin's one-line description, if it gave one.
    public let summary: String?
    /// The ABI the plugin was built against.
    public let abiVersion: PluginABIVersion
    /// The helpers, in the order the plugin lists them.
    public let helpers: [PluginHelperInfo]
    /// Map types the plugin creates (ABI 1.1; informational).
    public let mapTypes: [PluginMapTypeInfo]
    /// Custom instructions the plugin provides (ABI 1.2), in the order it lists them.
    public let customInstructions: [PluginCustomInstructionInfo]
    /// The emulator that provides this plugin's helpers (and, for a plugin with `create_map`,
    /// maps and contexts: then it is a `PluginMapEmulator`, a `MapProvider`) to VMs, with no
    /// instance options; the same object every time.
    /// Combine it with others in a `CompositeEmulator`. Each VM using it gets its own plugin
    /// instance (ABI 1.1 `instance_create`).
    public var emulator: PluginEmulator {
        _emulator.withLock { emulator in
            if let emulator { return emulator }
            let created = PluginEmulator.make(library: self, options: "")
            emulator = created
            return created
        }
    }

    /// A new emulator for this plugin whose instances are created with `options` (text the
    /// plugin defines, e.g. `cpus=4,seed=1` for MimicLinux; passed to `instance_create`).
    public func makeEmulator(options: String) -> PluginEmulator {
        PluginEmulator.make(library: self, options: options)
    }

    /// Whether the plugin provides maps, global data and contexts (ABI 1.1 `create_map`): it can
    /// be a VM's whole environment, as MimicLinux is when linked statically. Its emulators are
    /// then `PluginMapEmulator`s.
    public var providesMaps: Bool { createMap != nil }

    /// The library's row in every process's emulator state table (its `PluginProcessState`);
    /// also `mimic_call.host_library`.
    let stateKey = EmulatorStateKey<PluginProcessState>()
    /// The description the entry returned (static data of the library, valid forever).
    nonisolated(unsafe) let descriptor: UnsafePointer<mimic_plugin>
    private let _emulator = Mutex<PluginEmulator?>(nil)

    private init(
        path: String, descriptor: UnsafePointer<mimic_plugin>, name: String, version: String?,
        summary: String?, abi: PluginABIVersion, helpers: [PluginHelperInfo], mapTypes: [PluginMapTypeInfo],
        customInstructions: [PluginCustomInstructionInfo]
    ) {
        self.path = path
        self.descriptor = descriptor
        self.name = name
        self.version = version
        self.summary = summary
        self.abiVersion = abi
        self.helpers = helpers
        self.mapTypes = mapTypes
        self.customInstructions = customInstructions
    }

    /// Libraries loaded so far, by `dlopen` handle; guards loading too.
    private static let loaded = Mutex<[UInt: PluginLibrary]>([:])

    /// Opens the plugin at `path` (`dlopen` with `RTLD_NOW | RTLD_LOCAL`), runs its entry with
    /// the host-service table, and checks what it describes.
    ///
    /// - Throws: `PluginError` naming `path`: missing file, not a shared library (a file that is
    ///   not ELF, truncated, an eBPF object, or the loader's message), missing entry symbol, refused entry, ABI major mismatch, duplicate
    ///   helper ids, malformed descriptors.
    public static func load(path: String) throws(PluginError) -> PluginLibrary {
        var status = stat()
        guard stat(path, &status) == 0 else { throw .fileNotFound(path: path) }
        // A truncated library would crash the loader (SIGBUS): check its headers first.
        if let problem = SharedLibraryFile.problem(path: path) {
            throw .notASharedLibrary(path: path, reason: problem)
        }
        // dlopen searches the library path for names without a slash; a plugin path is a file.
        let openPath = path.contains("/") ? path : "./" + path

        return try loaded.withLock { (libraries) throws(PluginError) -> PluginLibrary in
            _ = dlerror()
            guard let handle = dlopen(openPath, RTLD_NOW | RTLD_LOCAL) else {
                let reason = dlerror().map { String(cString: $0) } ?? "dlopen failed"
                throw .notASharedLibrary(path: path, reason: reason)
            }
            // Never dlclose: see the type's documentation. A refused library stays mapped too.
            let key = UInt(bitPattern: handle)
            if let known = libraries[key] { return known }
            guard let symbol = dlsym(handle, entrySymbol) else {
                throw .missingEntrySymbol(path: path, symbol: entrySymbol)
            }
            let entry = unsafeBitCast(symbol, to: mimic_plugin_entry_fn.self)
            PluginLog.loading.withLock { $0 = path }
            let returned = entry(HostServices.table)
            PluginLog.loading.withLock { $0 = nil }
            guard let descriptor = returned else { throw .entryRefused(path: path) }
            let library = try validate(descriptor, path: path)
            libraries[key] = library
            return library
        }
    }

    /// Reads and checks the plugin's description.
    private static func validate(_ descriptor: UnsafePointer<mimic_plugin>, path: String) throws(PluginError)
        -> PluginLibrary
    {
        let plugin = descriptor.pointee
        let abi = PluginABIVersion(major: plugin.abi_major, minor: plugin.abi_minor)
        guard abi.major == hostABI.major else { throw .incompatibleABI(path: path, plugin: abi, host: hostABI) }
        // Fields up to `map_types` exist since 1.0; later ones are read only if `size` covers them.
        let minimumSize = MemoryLayout<mimic_plugin>.offset(of: \mimic_plugin.process_start) ?? 0
        guard Int(plugin.size) >= minimumSize else {
            throw .invalidDescriptor(
                path: path,
                detail:
                    "size \(plugin.size) is smaller than the \(minimumSize) bytes of an ABI \(abi.major).0 description")
        }
        guard let namePointer = plugin.name else {
            throw .invalidDescriptor(path: path, detail: "the plugin name is NULL")
        }
        let name = String(cString: namePointer)
        guard !name.isEmpty else { throw .invalidDescriptor(path: path, detail: "the plugin name is empty") }

        let limit = Int(MIMIC_PLUGIN_MAX_HELPERS)
        guard Int(plugin.helper_count) <= limit else {
            throw .invalidDescriptor(path: path, detail: "\(plugin.helper_count) helpers (the limit is \(limit))")
        }
        if plugin.helper_count > 0, plugin.helpers == nil {
            throw .invalidDescriptor(path: path, detail: "\(plugin.helper_count) helpers but the helper array is NULL")
        }
        var helpers: [PluginHelperInfo] = []
        var namesByID: [Int32: [String]] = [:]
        for i in 0..<Int(plugin.helper_count) {
            guard let entry = plugin.helpers?[i] else { break }
            guard let helperName = entry.name else {
                throw .invalidDescriptor(path: path, detail: "helper \(i) (id \(entry.id)) has a NULL name")
            }
            let text = String(cString: helperName)
            guard !text.isEmpty else {
                throw .invalidDescriptor(path: path, detail: "helper \(i) (id \(entry.id)) has an empty name")
            }
            guard entry.id >= 0 else {
                throw .invalidDescriptor(path: path, detail: "helper \(text) has a negative id \(entry.id)")
            }
            guard entry.function != nil else {
                throw .invalidDescriptor(path: path, detail: "helper \(text) (id \(entry.id)) has a NULL function")
            }
            helpers.append(PluginHelperInfo(id: entry.id, name: text))
            namesByID[entry.id, default: []].append(text)
        }
        if let (id, names) = namesByID.filter({ $0.value.count > 1 }).min(by: { $0.key < $1.key }) {
            throw .duplicateHelperID(path: path, id: id, names: names)
        }

        guard Int(plugin.map_type_count) <= limit else {
            throw .invalidDescriptor(path: path, detail: "\(plugin.map_type_count) map types (the limit is \(limit))")
        }
        if plugin.map_type_count > 0, plugin.map_types == nil {
            throw .invalidDescriptor(
                path: path, detail: "\(plugin.map_type_count) map types but the map type array is NULL")
        }
        var mapTypes: [PluginMapTypeInfo] = []
        for i in 0..<Int(plugin.map_type_count) {
            guard let entry = plugin.map_types?[i] else { break }
            guard let typeName = entry.name else {
                throw .invalidDescriptor(path: path, detail: "map type \(i) (\(entry.type)) has a NULL name")
            }
            mapTypes.append(PluginMapTypeInfo(type: entry.type, name: String(cString: typeName)))
        }

        let customInstructions = try validateCustomInstructions(descriptor, path: path)

        return PluginLibrary(
            path: path, descriptor: descriptor, name: name,
            version: plugin.version.map { String(cString: $0) },
            summary: plugin.description.map { String(cString: $0) },
            abi: abi, helpers: helpers, mapTypes: mapTypes, customInstructions: customInstructions)
    }

    /// The custom instructions of an ABI 1.2 description (none when its `size` does not cover
    /// them): each on an opcode byte no instruction form uses, once, with a name and a function.
    private static func validateCustomInstructions(
        _ descriptor: UnsafePointer<mimic_plugin>,
        path: String
    ) throws(PluginError) -> [PluginCustomInstructionInfo] {
        let plugin = descriptor.pointee
        guard let end = MemoryLayout<mimic_plugin>.offset(of: \mimic_plugin.custom_instructions),
            Int(plugin.size) >= end + MemoryLayout<UnsafeRawPointer>.size
        else { return [] }
        guard plugin.custom_instruction_count <= 256 else {
            throw .invalidDescriptor(
                path: path,
                detail: "\(plugin.custom_instruction_count) custom instructions (at most 256, one per opcode)")
        }
        if plugin.custom_instruction_count > 0, plugin.custom_instructions == nil {
            throw .invalidDescriptor(
                path: path, detail: "\(plugin.custom_instruction_count) custom instructions but the array is NULL")
        }
        var result: [PluginCustomInstructionInfo] = []
        for i in 0..<Int(plugin.custom_instruction_count) {
            guard let entry = plugin.custom_instructions?[i] else { break }
            let opcode = "0x" + String(entry.opcode, radix: 16)
            guard let namePointer = entry.name, case let name = String(cString: namePointer), !name.isEmpty else {
                throw .invalidDescriptor(path: path, detail: "custom instruction \(i) (opcode \(opcode)) has no name")
            }
            guard entry.function != nil else {
                throw .invalidDescriptor(path: path, detail: "custom instruction \(name) has a NULL function")
            }
            if let form = InstructionSet.forms.first(where: { $0.opcode == entry.opcode }) {
                throw .invalidDescriptor(
                    path: path,
                    detail:
                        "custom instruction \(name): opcode \(opcode) is '\(form.mnemonic)' (only opcodes the instruction set leaves undefined can be custom)"
                )
            }
            if let other = result.first(where: { $0.opcode == entry.opcode }) {
                throw .invalidDescriptor(
                    path: path, detail: "custom instructions \(other.name) and \(name) share opcode \(opcode)")
            }
            result.append(PluginCustomInstructionInfo(opcode: entry.opcode, name: name))
        }
        return result
    }

    /// The plugin's `process_start` callback, if its description has one.
    var processStart: (@convention(c) (UnsafePointer<mimic_host>?, UInt64, UInt32) -> UnsafeMutableRawPointer?)? {
        covers(\.process_start) ? descriptor.pointee.process_start : nil
    }

    /// The plugin's `process_end` callback, if its description has one.
    var processEnd: (@convention(c) (UnsafePointer<mimic_host>?, UInt64, UnsafeMutableRawPointer?) -> Void)? {
        covers(\.process_end) ? descriptor.pointee.process_end : nil
    }

    // ABI 1.1 callbacks: nil when the plugin's description is older or leaves them NULL.

    typealias Callback<T> = KeyPath<mimic_plugin, T?>

    /// An ABI 1.1 callback of the description, if its `size` covers it.
    func callback<T>(_ field: Callback<T>) -> T? { covers(field) ? descriptor.pointee[keyPath: field] : nil }

    var instanceCreate:
        (
            @convention(c) (
                UnsafePointer<mimic_host>?, UInt64, UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int
            )
                -> UnsafeMutableRawPointer?
        )?
    { callback(\.instance_create) }
    var instanceDestroy: (@convention(c) (UnsafePointer<mimic_host>?, UnsafeMutableRawPointer?) -> Void)? {
        callback(\.instance_destroy)
    }
    var processReset: (@convention(c) (UnsafePointer<mimic_host>?, UnsafeMutablePointer<mimic_call>?) -> Void)? {
        callback(\.process_reset)
    }
    var createMap:
        (
            @convention(c) (
                UnsafeMutableRawPointer?, UnsafePointer<mimic_map_spec>?, UnsafeMutablePointer<UInt64>?,
                UnsafeMutablePointer<CChar>?, Int
            ) -> Int32
        )?
    { callback(\.create_map) }
    var resolveLoadImm64:
        (
            @convention(c) (
                UnsafeMutableRawPointer?, UInt32, Int32, Int32, UnsafeMutablePointer<UInt64>?,
                UnsafeMutablePointer<CChar>?, Int
            ) -> Int32
        )?
    { callback(\.resolve_ld_imm64) }
    var adoptGlobalData:
        (
            @convention(c) (
                UnsafeMutableRawPointer?, UnsafePointer<mimic_global_data>?,
                UnsafeMutablePointer<CChar>?, Int
            ) -> Int32
        )?
    { callback(\.adopt_global_data) }
    var setSlot:
        (
            @convention(c) (UnsafeMutableRawPointer?, UInt64, UInt32, UInt32, UInt64, UnsafeMutablePointer<CChar>?, Int)
                -> Int32
        )?
    { callback(\.set_slot) }
    var mapCount: (@convention(c) (UnsafeMutableRawPointer?) -> UInt32)? { callback(\.map_count) }
    var mapInfo: (@convention(c) (UnsafeMutableRawPointer?, UInt32, UnsafeMutablePointer<mimic_map_info>?) -> Int32)? {
        callback(\.map_info)
    }
    var mapLookup:
        (
            @convention(c) (UnsafeMutableRawPointer?, UInt64, UnsafeRawPointer?, Int32, UnsafeMutableRawPointer?) ->
                Int32
        )?
    {
        callback(\.map_lookup)
    }
    var mapUpdate:
        (
            @convention(c) (UnsafeMutableRawPointer?, UInt64, UnsafeRawPointer?, UnsafeRawPointer?, Int32, UInt64) ->
                Int32
        )?
    {
        callback(\.map_update)
    }
    var mapDelete: (@convention(c) (UnsafeMutableRawPointer?, UInt64, UnsafeRawPointer?) -> Int32)? {
        callback(\.map_delete)
    }
    var mapNextKey:
        (@convention(c) (UnsafeMutableRawPointer?, UInt64, UnsafeRawPointer?, UnsafeMutableRawPointer?) -> Int32)?
    {
        callback(\.map_next_key)
    }
    var mapLookupAddress:
        (
            @convention(c) (UnsafeMutableRawPointer?, UInt64, UnsafeRawPointer?, Int32, UnsafeMutablePointer<UInt64>?)
                -> Int32
        )?
    { callback(\.map_lookup_address) }
    var mapPopRecord:
        (
            @convention(c) (
                UnsafeMutableRawPointer?, UInt64, UnsafeMutableRawPointer?, UInt64, UnsafeMutablePointer<Int32>?
            )
                -> Int64
        )?
    { callback(\.map_pop_record) }
    var attachContext:
        (
            @convention(c) (
                UnsafePointer<mimic_host>?, UnsafeMutablePointer<mimic_call>?, UnsafePointer<CChar>?, Int,
                UnsafeMutablePointer<CChar>?, Int
            ) -> Int32
        )?
    { callback(\.attach_context) }
    var contextResult:
        (
            @convention(c) (
                UnsafePointer<mimic_host>?, UnsafeMutablePointer<mimic_call>?, UInt64,
                UnsafeMutablePointer<CChar>?, Int
            ) -> Int64
        )?
    { callback(\.context_result) }

    /// Whether the plugin's `size` covers the pointer-sized field `field` (appended fields).
    private func covers<T>(_ field: KeyPath<mimic_plugin, T>) -> Bool {
        guard let offset = MemoryLayout<mimic_plugin>.offset(of: field) else { return false }
        return Int(descriptor.pointee.size) >= offset + MemoryLayout<UnsafeRawPointer>.size
    }
}
