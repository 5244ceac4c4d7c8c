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
/// - Maps, global data and `lddw` map references: `mapProvider`, the first emulator that is a
///   `MapProvider` (the Linux emulator), whose map helpers then see the maps they created. The
///   composite is not a `MapProvider` itself: the VM asks for its `mapProvider`. With none,
///   programs that use maps fail to load, as with a single helper-only emulator.
/// - `kfunc(named:)`: the first emulator that provides the kfunc.
/// - `prepare(process)`: every emulator, in order (the Linux emulator's per-process state,
///   plugins' `process_start`). Contexts are independent of emulators and attach as usual.
/// - `helperName(id:)` (for messages about helpers nobody implements): the first that knows it.
public final class CompositeEmulator: Emulator {
    /// The combined emulators, in the order given.
    public let emulators: [any Emulator]
    /// The emulator maps and map references are delegated to: the first member that is a
    /// `MapProvider` (looking into nested composites), if any.
    public let mapProvider: (any MapProvider)?
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
                    throw .conflictingHelperID(
                        id: id, first: "\(owner.name) (\(existing.name))",
                        second: "\(emulator.name) (\(helper.name))")
                }
                helpers[id] = helper
                owners[id] = emulator
            }
        }
        self.emulators = emulators
        self.helpers = helpers
        mapProvider = emulators.lazy.compactMap(CompositeEmulator.mapProvider(of:)).first
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

    public func kfunc(named name: String) -> Helper? {
        for emulator in emulators {
            if let kfunc = emulator.kfunc(named: name) { return kfunc }
        }
        return nil
    }

    /// The first member's custom instruction for `opcode`.
    public func customInstruction(opcode: UInt8) -> CustomInstruction? {
        for emulator in emulators {
            if let instruction = emulator.customInstruction(opcode: opcode) { return instruction }
        }
        return nil
    }

    public func prepare(_ process: Process) throws(SetupError) {
        for emulator in emulators { try emulator.prepare(process) }
    }

    /// The map provider behind `emulator`: itself if it is one, a composite's `mapProvider`.
    public static func mapProvider(of emulator: any Emulator) -> (any MapProvider)? {
        if let composite = emulator as? CompositeEmulator { return composite.mapProvider }
        return emulator as? any MapProvider
    }
}
