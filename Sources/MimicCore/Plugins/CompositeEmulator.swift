import MimicMemory

/// Several emulators as one: e.g. the Linux emulator plus a plugin adding helpers in a free id
/// range.
///
/// ```swift
/// let emulator = try CompositeEmulator([LinuxEmulator(), try PluginLibrary.load(path: path).emulator])
/// ```
///
/// - Helpers: the union of every emulator's `helperIDs`, bound once at creation. Two emulators
///   providing the same id is an error (`PluginError.conflictingHelperID`, naming both) rather
///   than a silent override: order should not decide which helper a program gets.
/// - Maps, global data and `lddw` map references: delegated to the first emulator whose
///   `providesMaps` is true (the Linux emulator), whose map helpers then see the maps they
///   created. With none, programs that use maps fail to load, as with a single helper-only
///   emulator.
/// - `prepare(process)`: every emulator, in order (the Linux emulator's per-process state,
///   plugins' `process_start`). Contexts are independent of emulators and attach as usual.
/// - `helperName(id:)` (for messages about helpers nobody implements): the first that knows it.
public final class CompositeEmulator: Emulator {
    /// The combined emulators, in the order given.
    public let emulators: [any Emulator]
    /// The emulator maps and map references are delegated to, if any.
    public let mapProvider: (any Emulator)?
    private let helpers: [Int32: Helper]

    /// Combines `emulators`.
    ///
    /// - Throws: `PluginError.conflictingHelperID` when two of them provide the same helper id.
    public init(_ emulators: [any Emulator]) throws(PluginError) {
        var helpers: [Int32: Helper] = [:]
        var owners: [Int32: any Emulator] = [:]
        for emulator in emulators {
            for id in emulator.helperIDs {
                guard let helper = emulator.helper(id: id) else { continue }
                if let owner = owners[id], let existing = helpers[id] {
                    throw .conflictingHelperID(id: id, first: "\(owner.name) (\(existing.name))",
                                               second: "\(emulator.name) (\(helper.name))")
                }
                helpers[id] = helper
                owners[id] = emulator
            }
        }
        self.emulators = emulators
        self.helpers = helpers
        mapProvider = emulators.first { $0.providesMaps }
    }

    /// The names of the combined emulators, joined with `+` (`linux+kvstore`).
    public var name: String { emulators.map(\.name).joined(separator: "+") }

    public func helper(id: Int32) -> Helper? { helpers[id] }

    public func helperName(id: Int32) -> String? {
        for emulator in emulators {
            if let name = emulator.helperName(id: id) { return name }
        }
        return nil
    }

    public var helperIDs: [Int32] { helpers.keys.sorted() }

    public var providesMaps: Bool { mapProvider != nil }

    public func prepare(_ process: Process) throws(SetupError) {
        for emulator in emulators { try emulator.prepare(process) }
    }

    private var noMaps: String { "needs an emulator that provides maps; none of \(name) does" }

    public func resolveLoadImm64(kind: LoadImm64Kind, imm: Int32, nextImm: Int32, in vm: VM) throws(LoadError.Reason) -> UInt64 {
        guard let mapProvider else { throw .unresolvedReference("\(kind.cName) (imm \(imm)) \(noMaps)") }
        return try mapProvider.resolveLoadImm64(kind: kind, imm: imm, nextImm: nextImm, in: vm)
    }

    public func createMap(_ spec: MapSpec, in vm: VM) throws(LoadError.Reason) -> UInt64 {
        guard let mapProvider else { throw .unresolvedReference("map \(spec.name) (\(spec.attributes.type)) \(noMaps)") }
        return try mapProvider.createMap(spec, in: vm)
    }

    public func adoptGlobalData(_ spec: GlobalDataSpec, storage: RegionStorage, address: UInt64, in vm: VM) throws(LoadError.Reason) {
        try mapProvider?.adoptGlobalData(spec, storage: storage, address: address, in: vm)
    }

    public func initializeMaps(of object: LoadedObject) throws(LoadError) {
        guard let mapProvider else {
            let names = object.object.maps.filter { !$0.initialSlots.isEmpty }.map(\.name)
            throw LoadError(.unsupported("initial values of \(names.joined(separator: ", ")) \(noMaps)"), programName: "object")
        }
        try mapProvider.initializeMaps(of: object)
    }
}
