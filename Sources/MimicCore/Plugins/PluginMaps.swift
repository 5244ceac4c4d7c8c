import CMimicPlugin
import MimicMemory

// A plugin as the VM's map provider (ABI 1.1): the `MapProvider` requirements `VM.load(object:)`
// and the loader use, and a generic view of the plugin's maps for host code.

/// A plugin that creates maps (ABI 1.1 `create_map`) as an emulator: its helpers, and the VM's
/// maps, global data and `lddw` map references, all kept in the VM's plugin instance.
/// `PluginLibrary.emulator` and `makeEmulator(options:)` return one for such a plugin.
public final class PluginMapEmulator: PluginEmulator, MapProvider, @unchecked Sendable {}

extension PluginEmulator {
    /// The instance serving `vm` for a load-time request, or the reason it cannot be had.
    fileprivate func loadInstance(_ vm: VM, for what: String) throws(LoadError.Reason) -> PluginInstance {
        do {
            guard let instance = try instances.instance(for: vm) else {
                throw LoadError.Reason.unresolvedReference(
                    "\(what) needs the plugin's instance_create; \(name) has none")
            }
            return instance
        } catch let error as PluginError {
            throw .unsupported(error.description)
        } catch let error as LoadError.Reason {
            throw error
        } catch {
            throw .unsupported("\(error)")
        }
    }
}

extension PluginMapEmulator {
    public func resolveLoadImm64(kind: LoadImm64Kind, imm: Int32, nextImm: Int32, in vm: VM) throws(LoadError.Reason)
        -> UInt64
    {
        guard let resolve = library.resolveLoadImm64 else {
            throw .unresolvedReference(
                "\(kind.cName) (imm \(imm)) needs an emulator that provides maps; \(name) does not")
        }
        let instance = try loadInstance(vm, for: "\(kind.cName) (imm \(imm))")
        var value: UInt64 = 0
        let (status, message) = PluginText.withError {
            resolve(instance.data, UInt32(kind.rawValue), imm, nextImm, &value, $0, $1)
        }
        guard status == 0 else {
            throw .unresolvedReference(message.isEmpty ? "\(kind.cName) (imm \(imm)): \(Errno.text(status))" : message)
        }
        return value
    }

    public func createMap(_ spec: MapSpec, in vm: VM) throws(LoadError.Reason) -> UInt64 {
        guard let create = library.createMap else {
            throw .unresolvedReference(
                "map \(spec.name) (\(spec.attributes.type)) needs an emulator that provides maps; \(name) does not")
        }
        let instance = try loadInstance(vm, for: "map \(spec.name)")
        var handle: UInt64 = 0
        let result = PluginEmulator.withMapSpec(spec) { cSpec in
            PluginText.withError { create(instance.data, cSpec, &handle, $0, $1) }
        }
        guard let (status, message) = result else {
            throw .unsupported("map \(spec.name): key_size, value_size and max_entries must fit in 32 bits")
        }
        guard status == 0 else {
            var text = message.isEmpty ? "map \(spec.name): \(name) cannot create it (\(Errno.text(status)))" : message
            if !library.mapTypes.isEmpty,
                !library.mapTypes.contains(where: { $0.type == spec.attributes.type.rawValue })
            {
                text += " (\(name) creates: \(library.mapTypes.map(\.name).joined(separator: ", ")))"
            }
            throw .unsupported(text)
        }
        return handle
    }

    public func adoptGlobalData(_ spec: GlobalDataSpec, storage: RegionStorage, address: UInt64, in vm: VM)
        throws(LoadError.Reason)
    {
        guard let adopt = library.adoptGlobalData else { return }
        let instance = try loadInstance(vm, for: "global data \(spec.name)")
        let (status, message) = spec.name.withCString { name in
            var data = mimic_global_data(
                size: UInt32(MemoryLayout<mimic_global_data>.size),
                flags: spec.isReadOnly ? MIMIC_REGION_READ_ONLY.rawValue : 0, name: name,
                pointer: storage.pointer, length: UInt64(storage.count), address: address)
            return PluginText.withError { adopt(instance.data, &data, $0, $1) }
        }
        guard status == 0 else {
            throw .unsupported(message.isEmpty ? "global data \(spec.name): \(Errno.text(status))" : message)
        }
    }

    /// Fills the initial slots of an object's prog arrays (host programs, by the id the instance
    /// gives them) and maps of maps (inner map handles) through the plugin's `set_slot`.
    public func initializeMaps(of object: LoadedObject) throws(LoadError) {
        for spec in object.object.maps where !spec.initialSlots.isEmpty {
            func fail(_ detail: String) -> LoadError {
                LoadError(.unresolvedReference(detail), programName: "map \(spec.name)")
            }
            guard let handle = object.mapHandles[spec.name] else { throw fail("map \(spec.name) was not created") }
            for slot in spec.initialSlots {
                let kind: mimic_slot_kind
                let value: UInt64
                let target: String
                switch slot.target {
                case .program(let programName):
                    let program: Program
                    do {
                        program = try object.program(named: programName)
                    } catch {
                        throw LoadError(
                            error.reason, pc: error.pc, instruction: error.instruction,
                            programName: "\(error.programName) (for \(spec.name)[\(slot.index)])")
                    }
                    guard let instance = instances.existingInstance(for: object.vm) else {
                        throw fail("\(name) has no instance for this VM")
                    }
                    kind = MIMIC_SLOT_PROGRAM
                    value = instance.id(for: program)
                    target = "program \(programName)"
                case .map(let mapName):
                    guard let inner = object.mapHandles[mapName] else {
                        throw fail("\(spec.name)[\(slot.index)] names \(mapName), which is not a map of the object")
                    }
                    kind = MIMIC_SLOT_MAP
                    value = inner
                    target = "map \(mapName)"
                }
                do {
                    try setSlot(map: handle, index: slot.index, kind: kind, value: value, vm: object.vm)
                } catch {
                    throw fail("cannot set \(spec.name)[\(slot.index)] to \(target): \(error.detail)")
                }
            }
        }
    }

}

extension PluginEmulator {
    /// Calls the plugin's `set_slot`.
    func setSlot(map: UInt64, index: Int, kind: mimic_slot_kind, value: UInt64, vm: VM) throws(PluginMapError) {
        let mapName = PluginMap.name(of: map, in: self, vm: vm)
        guard let setSlot = library.setSlot, let instance = instances.existingInstance(for: vm) else {
            throw PluginMapError(
                map: mapName, operation: "set slot", errno: -Errno.notSupported.rawValue,
                detail: "\(name) has no set_slot")
        }
        guard let slotIndex = UInt32(exactly: index) else {
            throw PluginMapError(
                map: mapName, operation: "set slot", errno: -Errno.invalid.rawValue,
                detail: "index \(index) is out of range")
        }
        let (status, message) = PluginText.withError {
            setSlot(instance.data, map, slotIndex, kind.rawValue, value, $0, $1)
        }
        guard status == 0 else {
            throw PluginMapError(
                map: mapName, operation: "set slot", errno: status,
                detail: message.isEmpty ? Errno.text(status) : message)
        }
    }

    /// Runs `body` with the C form of `spec` (names and inner template valid during the call);
    /// nil, without running it, when a size or `max_entries` (of the inner template too) does not
    /// fit the C struct's `uint32_t`.
    static func withMapSpec<R>(_ spec: MapSpec, _ body: (UnsafePointer<mimic_map_spec>) -> R) -> R? {
        let attributes = spec.attributes
        guard let keySize = UInt32(exactly: attributes.keySize), let valueSize = UInt32(exactly: attributes.valueSize),
            let maxEntries = UInt32(exactly: attributes.maxEntries)
        else { return nil }
        return attributes.name.withCString { name -> R? in
            func make(_ inner: UnsafePointer<mimic_map_spec>?) -> R {
                let cSpec = mimic_map_spec(
                    size: UInt32(MemoryLayout<mimic_map_spec>.size), type: attributes.type.rawValue, key_size: keySize,
                    value_size: valueSize, max_entries: maxEntries, flags: attributes.flags, numa_node: spec.numaNode,
                    pinning: spec.pinning, map_extra: spec.mapExtra, name: name,
                    spin_lock_offset: attributes.spinLockOffset.map { Int32(clamping: $0) } ?? -1, reserved: 0,
                    inner: inner)
                return withUnsafePointer(to: cSpec) { body($0) }
            }
            if let inner = spec.innerMap { return withMapSpec(inner) { make($0) } }
            return make(nil)
        }
    }

    // MARK: Host access

    /// The maps the plugin holds for `vm` (created from objects and adopted global data), in the
    /// plugin's order; empty when the VM has no instance or the plugin lists no maps.
    public func maps(in vm: VM) -> [PluginMap] {
        guard let count = library.mapCount, let info = library.mapInfo,
            let instance = instances.existingInstance(for: vm)
        else {
            return []
        }
        var maps: [PluginMap] = []
        for index in 0..<count(instance.data) {
            var entry = mimic_map_info()
            entry.size = UInt32(MemoryLayout<mimic_map_info>.size)
            guard info(instance.data, index, &entry) == 0 else { continue }
            maps.append(PluginMap(emulator: self, instance: instance, vm: vm, info: entry))
        }
        return maps
    }

    /// The plugin's map named `name` in `vm`.
    public func map(named name: String, in vm: VM) -> PluginMap? {
        maps(in: vm).first { $0.name == name }
    }
}

/// Why an operation on a plugin's map failed: the map, the operation, and the negative errno the
/// plugin returned (as `bpf(2)` would fail).
public struct PluginMapError: Error, Sendable, Equatable, CustomStringConvertible {
    public var map: String
    public var operation: String
    /// The negative errno (`-1` for `EPERM`, `-2` for `ENOENT`, ...).
    public var errno: Int32
    /// What went wrong, in words.
    public var detail: String

    public init(map: String, operation: String, errno: Int32, detail: String) {
        self.map = map
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    public var description: String { "map \(map): \(operation) failed: \(detail)" }
}

extension Errno {
    /// `-EPERM (1)` style text for a status a map callback returned.
    static func text(_ status: Int32) -> String {
        (cNames[Int32(truncatingIfNeeded: status.magnitude)].map { "-\($0)" } ?? "error") + " (\(status))"
    }
}

/// A record taken out of a ring buffer, perf event array, queue or stack map.
public struct PluginMapRecord: Sendable, Equatable {
    /// The CPU that wrote it (perf event arrays), nil otherwise.
    public var cpu: Int?
    public var data: [UInt8]

    public init(cpu: Int?, data: [UInt8]) {
        self.cpu = cpu
        self.data = data
    }
}

/// A map a plugin holds for one VM, through the plugin's map callbacks (ABI 1.1): what host
/// applications and tools use to read and change maps without linking the plugin's own types.
///
/// Keys and values are byte arrays of exactly `keySize` / `valueSize` bytes (per-CPU values:
/// `valueCount` of them); other lengths are refused before the plugin is asked. Failures are
/// `PluginMapError`s carrying the plugin's negative errno.
public final class PluginMap: @unchecked Sendable {
    public let name: String
    /// The `BPF_MAP_TYPE_*`.
    public let type: MapType
    public let keySize: Int
    public let valueSize: Int
    public let maxEntries: Int
    /// `map_flags`.
    public let flags: UInt32
    /// Values per key in per-CPU operations: the CPU count for per-CPU maps, 1 for others.
    public let valueCount: Int
    /// The map's handle: what an `lddw` of the map yields and map helpers accept.
    public let handle: UInt64

    private let emulator: PluginEmulator
    private let instance: PluginInstance
    private weak var vm: VM?

    init(emulator: PluginEmulator, instance: PluginInstance, vm: VM, info: mimic_map_info) {
        self.emulator = emulator
        self.instance = instance
        self.vm = vm
        name = info.name.map { String(cString: $0) } ?? "map \(info.handle)"
        type = MapType(rawValue: info.type)
        keySize = Int(info.key_size)
        valueSize = Int(info.value_size)
        maxEntries = Int(info.max_entries)
        flags = info.flags
        valueCount = max(1, Int(info.value_count))
        handle = info.handle
    }

    /// The name of the map with `handle`, for messages.
    static func name(of handle: UInt64, in emulator: PluginEmulator, vm: VM) -> String {
        emulator.maps(in: vm).first { $0.handle == handle }?.name ?? "0x" + String(handle, radix: 16)
    }

    private var library: PluginLibrary { emulator.library }

    private func error(_ operation: String, _ status: Int32, _ detail: String? = nil) -> PluginMapError {
        PluginMapError(map: name, operation: operation, errno: status, detail: detail ?? Errno.text(status))
    }

    private func check(_ key: [UInt8], _ operation: String) throws(PluginMapError) {
        guard key.count == keySize else {
            throw error(operation, -Errno.invalid.rawValue, "the key has \(key.count) bytes, the map's keys \(keySize)")
        }
    }

    private func callback<T>(_ function: T?, _ operation: String) throws(PluginMapError) -> T {
        guard let function else {
            throw error(operation, -Errno.notSupported.rawValue, "plugin \(library.name) has no callback for it")
        }
        return function
    }

    /// A copy of the value for `key` as CPU `cpu` sees it; nil when there is none.
    public func value(forKey key: [UInt8], cpu: Int = 0) throws(PluginMapError) -> [UInt8]? {
        try lookup(key, cpu: Int32(clamping: cpu), count: 1).map { $0[0] }
    }

    /// Every CPU's value for `key` (`valueCount` values); nil when there is none.
    public func perCPUValues(forKey key: [UInt8]) throws(PluginMapError) -> [[UInt8]]? {
        try lookup(key, cpu: MIMIC_ALL_CPUS, count: valueCount)
    }

    private func lookup(_ key: [UInt8], cpu: Int32, count: Int) throws(PluginMapError) -> [[UInt8]]? {
        let function = try callback(library.mapLookup, "lookup")
        try check(key, "lookup")
        var buffer = [UInt8](repeating: 0, count: max(1, valueSize * count))
        let status = buffer.withUnsafeMutableBytes { out in
            key.withUnsafeBytes { function(instance.data, handle, $0.baseAddress, cpu, out.baseAddress) }
        }
        if status == -Errno.noEntry.rawValue { return nil }
        guard status == 0 else { throw error("lookup", status) }
        return (0..<count).map { Array(buffer[$0 * valueSize..<($0 + 1) * valueSize]) }
    }

    /// Creates or updates the element `key` with one value (for CPU `cpu` of a per-CPU map).
    /// `flags`: 0 `BPF_ANY`, 1 `BPF_NOEXIST`, 2 `BPF_EXIST`, 4 `BPF_F_LOCK`.
    public func update(key: [UInt8], value: [UInt8], flags: UInt64 = 0, cpu: Int = 0) throws(PluginMapError) {
        guard value.count == valueSize else {
            throw error(
                "update", -Errno.invalid.rawValue, "the value has \(value.count) bytes, the map's values \(valueSize)")
        }
        try update(key, value, flags: flags, cpu: Int32(clamping: cpu))
    }

    /// Creates or updates the element `key` with every CPU's value (`valueCount` values).
    public func update(key: [UInt8], perCPUValues values: [[UInt8]], flags: UInt64 = 0) throws(PluginMapError) {
        guard values.count == valueCount, values.allSatisfy({ $0.count == valueSize }) else {
            throw error("update", -Errno.invalid.rawValue, "expected \(valueCount) values of \(valueSize) bytes")
        }
        try update(key, values.flatMap { $0 }, flags: flags, cpu: MIMIC_ALL_CPUS)
    }

    private func update(_ key: [UInt8], _ value: [UInt8], flags: UInt64, cpu: Int32) throws(PluginMapError) {
        let function = try callback(library.mapUpdate, "update")
        try check(key, "update")
        let status = key.withUnsafeBytes { k in
            value.withUnsafeBytes { function(instance.data, handle, k.baseAddress, $0.baseAddress, cpu, flags) }
        }
        guard status == 0 else { throw error("update", status) }
    }

    /// Deletes the element `key`.
    public func delete(key: [UInt8]) throws(PluginMapError) {
        let function = try callback(library.mapDelete, "delete")
        try check(key, "delete")
        let status = key.withUnsafeBytes { function(instance.data, handle, $0.baseAddress) }
        guard status == 0 else { throw error("delete", status) }
    }

    /// The key after `key` (the first key for nil), or nil after the last.
    public func nextKey(after key: [UInt8]?) throws(PluginMapError) -> [UInt8]? {
        let function = try callback(library.mapNextKey, "next key")
        if let key { try check(key, "next key") }
        var next = [UInt8](repeating: 0, count: max(1, keySize))
        let status = next.withUnsafeMutableBytes { out in
            if let key {
                return key.withUnsafeBytes { function(instance.data, handle, $0.baseAddress, out.baseAddress) }
            }
            return function(instance.data, handle, nil, out.baseAddress)
        }
        if status == -Errno.noEntry.rawValue { return nil }
        guard status == 0 else { throw error("next key", status) }
        return Array(next.prefix(keySize))
    }

    /// Every key, in the plugin's iteration order (at most `maxEntries`).
    public func keys() throws(PluginMapError) -> [[UInt8]] {
        var result: [[UInt8]] = []
        var cursor = try nextKey(after: nil)
        while let key = cursor, result.count < max(maxEntries, 1) {
            result.append(key)
            cursor = try nextKey(after: key)
        }
        return result
    }

    /// The VM address of the value for `key` as CPU `cpu` sees it (what `bpf_map_lookup_elem`
    /// returns a program); nil when there is none.
    public func lookupAddress(key: [UInt8], cpu: Int = 0) throws(PluginMapError) -> UInt64? {
        let function = try callback(library.mapLookupAddress, "lookup address")
        try check(key, "lookup address")
        var address: UInt64 = 0
        let status = key.withUnsafeBytes {
            function(instance.data, handle, $0.baseAddress, Int32(clamping: cpu), &address)
        }
        if status == -Errno.noEntry.rawValue { return nil }
        guard status == 0 else { throw error("lookup address", status) }
        return address
    }

    /// Takes every record out of a ring buffer, perf event array, queue or stack map, oldest
    /// first (a stack: newest first).
    public func drainRecords() throws(PluginMapError) -> [PluginMapRecord] {
        let function = try callback(library.mapPopRecord, "drain")
        var records: [PluginMapRecord] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var cpu: Int32 = -1
            let length = buffer.withUnsafeMutableBytes {
                function(instance.data, handle, $0.baseAddress, UInt64($0.count), &cpu)
            }
            if length == Int64(-Errno.noEntry.rawValue) { return records }
            guard length >= 0 else { throw error("drain", Int32(clamping: length)) }
            guard length <= Int64(AddressSpace.regionLimit) else {
                throw error("drain", -Errno.invalid.rawValue, "the plugin reported a record of \(length) bytes")
            }
            if Int(length) > buffer.count {
                buffer = [UInt8](repeating: 0, count: Int(length))
                continue
            }
            records.append(PluginMapRecord(cpu: cpu >= 0 ? Int(cpu) : nil, data: Array(buffer[0..<Int(length)])))
        }
    }

    /// Sets slot `index` of a prog array to `program` (nil empties it): a tail call through the
    /// slot runs `program`, which must be loaded into the same VM.
    public func setProgram(_ program: Program?, at index: Int) throws(PluginMapError) {
        guard let vm else { throw error("set slot", -Errno.invalid.rawValue, "the VM is gone") }
        guard let program else {
            return try emulator.setSlot(map: handle, index: index, kind: MIMIC_SLOT_CLEAR, value: 0, vm: vm)
        }
        guard program.vm === vm else {
            throw error("set slot", -Errno.invalid.rawValue, "program \(program.name) was loaded into another VM")
        }
        try emulator.setSlot(
            map: handle, index: index, kind: MIMIC_SLOT_PROGRAM, value: instance.id(for: program), vm: vm)
    }

    /// Sets slot `index` of a map of maps to `map` (nil empties it).
    public func setInnerMap(_ map: PluginMap?, at index: Int) throws(PluginMapError) {
        guard let vm else { throw error("set slot", -Errno.invalid.rawValue, "the VM is gone") }
        try emulator.setSlot(
            map: handle, index: index, kind: map == nil ? MIMIC_SLOT_CLEAR : MIMIC_SLOT_MAP,
            value: map?.handle ?? 0, vm: vm)
    }
}
