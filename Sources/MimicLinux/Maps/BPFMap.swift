import MimicCore
import MimicMemory

/// Update flags of `bpf_map_update_elem` (`BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`, `BPF_F_LOCK`).
public struct MapUpdateFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// `BPF_ANY` (0): create or update.
    public static let any: MapUpdateFlags = []
    /// `BPF_NOEXIST` (1): create only; `-EEXIST` if the key exists.
    public static let noExist = MapUpdateFlags(rawValue: 1)
    /// `BPF_EXIST` (2): update only; `-ENOENT` if the key does not exist.
    public static let exist = MapUpdateFlags(rawValue: 2)
    /// `BPF_F_LOCK` (4): update the value under its `bpf_spin_lock`.
    public static let lock = MapUpdateFlags(rawValue: 4)
}

/// What a map is: the attributes `BPF_MAP_CREATE` takes.
public struct MapDefinition: Sendable, Hashable {
    public var name: String
    public var type: MapType
    public var keySize: Int
    public var valueSize: Int
    public var maxEntries: Int
    public var flags: UInt32
    /// For array/hash of maps: the definition every inner map must match.
    public var innerMap: Box<MapDefinition>?

    public init(name: String, type: MapType, keySize: Int, valueSize: Int, maxEntries: Int, flags: UInt32 = 0,
                innerMap: MapDefinition? = nil) {
        self.name = name
        self.type = type
        self.keySize = keySize
        self.valueSize = valueSize
        self.maxEntries = maxEntries
        self.flags = flags
        self.innerMap = innerMap.map(Box.init)
    }
}

/// An immutable box, so a value type can contain itself (a map definition's inner map).
public final class Box<Value: Sendable & Hashable>: Sendable, Hashable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
    public static func == (a: Box, b: Box) -> Bool { a.value == b.value }
    public func hash(into hasher: inout Hasher) { hasher.combine(value) }
}

/// Why a map could not be created.
public struct MapError: Error, Sendable, Equatable, CustomStringConvertible {
    public var map: String
    public var message: String

    public init(map: String, _ message: String) {
        self.map = map
        self.message = message
    }

    public var description: String { "map \(map): \(message)" }
}

/// A BPF map: storage shared by every process of a VM, used by programs through helpers and by
/// host code through the same operations.
///
/// Values live in VM memory (`RegionStorage` mapped into the VM's shared regions), so a lookup
/// returns a VM address into the map's own storage and writes through it change the map, as in
/// the kernel. Operations are safe to call from several threads at once.
///
/// Keys and values cross this interface as byte arrays of exactly `keySize` / `valueSize` bytes
/// (per-CPU maps: one value per CPU where noted). Operations a map type does not support return
/// `.invalid` (`-EINVAL`), as the kernel does.
public protocol BPFMap: AnyObject, Sendable {
    var definition: MapDefinition { get }
    /// The value a program holds for this map (from `lddw`), also its id in the emulator.
    var handle: UInt64 { get }

    /// The VM address of the value for `key` as seen from `cpu`, or nil if there is none.
    func lookupAddress(key: [UInt8], cpu: Int) -> UInt64?
    /// Creates or updates an element (`value` is one CPU's value for per-CPU maps from programs).
    func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno?
    /// Deletes an element.
    func delete(key: [UInt8]) -> Errno?
    /// The key after `key` in iteration order (the first key when `key` is nil), as
    /// `BPF_MAP_GET_NEXT_KEY` does; nil at the end.
    func nextKey(after key: [UInt8]?) -> [UInt8]?

    // Queue / stack operations; other map types return `.invalid`.
    func push(value: [UInt8], flags: MapUpdateFlags) -> Errno?
    func pop() -> Result<[UInt8], Errno>
    func peek() -> Result<[UInt8], Errno>

    // Host API.
    /// A copy of the value for `key` (per-CPU maps: CPU 0's; see `perCPUValues`).
    func value(forKey key: [UInt8]) -> [UInt8]?
    /// Every CPU's value for `key`, for per-CPU maps; one element for other maps.
    func perCPUValues(forKey key: [UInt8]) -> [[UInt8]]?
    /// All keys, in iteration order.
    var keys: [[UInt8]] { get }
}

extension BPFMap {
    public func push(value: [UInt8], flags: MapUpdateFlags) -> Errno? { .invalid }
    public func pop() -> Result<[UInt8], Errno> { .failure(.invalid) }
    public func peek() -> Result<[UInt8], Errno> { .failure(.invalid) }

    public func perCPUValues(forKey key: [UInt8]) -> [[UInt8]]? { value(forKey: key).map { [$0] } }

    public var keys: [[UInt8]] {
        var result: [[UInt8]] = []
        var cursor = nextKey(after: nil)
        while let key = cursor, result.count <= definition.maxEntries {
            result.append(key)
            cursor = nextKey(after: key)
        }
        return result
    }

    public var name: String { definition.name }
}

/// Map handles: what `lddw` of a map puts in a register. Never a mapped address.
public enum MapHandle {
    /// Handles are `tag | id`.
    public static let tag: UInt64 = 0xFFFF_FFFD_0000_0000

    public static func make(id: Int) -> UInt64 { tag | UInt64(id) }

    /// The map id in a handle, or nil if the value is not a map handle.
    public static func id(of handle: UInt64) -> Int? {
        handle & ~UInt64(0xFFFF_FFFF) == tag ? Int(handle & 0xFFFF_FFFF) : nil
    }
}
