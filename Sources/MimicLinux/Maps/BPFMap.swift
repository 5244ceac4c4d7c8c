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

/// Map creation flags (`map_flags` of `BPF_MAP_CREATE`, the `BPF_F_*` values of `linux/bpf.h`).
public struct MapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `BPF_F_NO_PREALLOC`: allocate elements on demand (required by LPM tries).
    public static let noPrealloc = MapFlags(rawValue: 1 << 0)
    /// `BPF_F_NO_COMMON_LRU`: one LRU list per CPU (LRU hash maps).
    public static let noCommonLRU = MapFlags(rawValue: 1 << 1)
    /// `BPF_F_NUMA_NODE`: `numa_node` is set.
    public static let numaNode = MapFlags(rawValue: 1 << 2)
    /// `BPF_F_RDONLY` / `BPF_F_WRONLY`: syscall-side access.
    public static let readOnly = MapFlags(rawValue: 1 << 3)
    public static let writeOnly = MapFlags(rawValue: 1 << 4)
    /// `BPF_F_STACK_BUILD_ID`.
    public static let stackBuildID = MapFlags(rawValue: 1 << 5)
    /// `BPF_F_ZERO_SEED`: hash with a zero seed.
    public static let zeroSeed = MapFlags(rawValue: 1 << 6)
    /// `BPF_F_RDONLY_PROG` / `BPF_F_WRONLY_PROG`: program-side access.
    public static let readOnlyProgram = MapFlags(rawValue: 1 << 7)
    public static let writeOnlyProgram = MapFlags(rawValue: 1 << 8)
    /// `BPF_F_CLONE`.
    public static let clone = MapFlags(rawValue: 1 << 9)
    /// `BPF_F_MMAPABLE`: an array user space can mmap.
    public static let mmapable = MapFlags(rawValue: 1 << 10)
    /// `BPF_F_PRESERVE_ELEMS`: perf event array entries survive the map file's release.
    public static let preserveElements = MapFlags(rawValue: 1 << 11)
    /// `BPF_F_INNER_MAP`: inner maps may differ in `max_entries`.
    public static let innerMap = MapFlags(rawValue: 1 << 12)

    /// `BPF_F_ACCESS_MASK`.
    public static let accessMask: MapFlags = [.readOnly, .writeOnly, .readOnlyProgram, .writeOnlyProgram]
}

/// Why a map could not be created.
public struct MapError: Error, Sendable, Equatable, CustomStringConvertible {
    public var map: String
    public var message: String
    /// The error `BPF_MAP_CREATE` would fail with (`EINVAL` for bad attributes, `E2BIG` for
    /// sizes past the kernel's limits, `EOPNOTSUPP` for map types Mimic does not emulate).
    public var errno: Errno

    public init(map: String, _ message: String, errno: Errno = .invalid) {
        self.map = map
        self.message = message
        self.errno = errno
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
/// (per-CPU maps: one value per CPU where noted); other lengths are refused with `.invalid`.
/// Operations a map type does not support return `.invalid` (`-EINVAL`), as the kernel does.
///
/// Array and hash of maps hold inner maps: their `lookupAddress` returns the inner map's
/// *handle* (what a program passes on to `bpf_map_lookup_elem`), and their host-side values are
/// the inner map's 4-byte id, as `BPF_MAP_LOOKUP_ELEM` returns it.
public protocol BPFMap: AnyObject, Sendable {
    /// What the map is: the attributes it was created with (after `createMap` sized a perf event
    /// array without `max_entries` to the CPUs).
    var attributes: MapAttributes { get }
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
        while let key = cursor, result.count <= attributes.maxEntries {
            result.append(key)
            cursor = nextKey(after: key)
        }
        return result
    }

    public var name: String { attributes.name }
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
