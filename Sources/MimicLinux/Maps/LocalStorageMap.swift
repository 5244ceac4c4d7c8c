import MimicCore
import Synchronization

/// `BPF_MAP_TYPE_TASK_STORAGE`, `INODE_STORAGE` and `CGRP_STORAGE`: one value per kernel object
/// (task, inode, cgroup), made by `bpf_*_storage_get` with `BPF_LOCAL_STORAGE_GET_F_CREATE` and
/// removed by `bpf_*_storage_delete`, as `kernel/bpf/bpf_local_storage.c` keeps them.
///
/// The kernel keys them by the object (from the syscall side, by a file descriptor naming it);
/// Mimic keys them by the object's address, the pointer programs pass: host code reads them with
/// 8-byte keys (the address, little-endian). The kernel's creation rules apply (4-byte key,
/// `max_entries` 0, `BPF_F_NO_PREALLOC`); Mimic holds at most `capacity` objects' values
/// (creating more fails, as an allocation failure does: `get` returns NULL).
public final class LocalStorageMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    /// How many objects can have a value at once.
    public static let capacity = 1 << 16
    private let values: ValueStorage
    private struct State {
        var slots: [UInt64: Int] = [:]
        var free: [Int] = []
        var used = 0
    }
    private let state = Mutex(State())

    init(attributes: MapAttributes, id: Int, vm: VM) throws(MapError) {
        guard attributes.keySize == 4, attributes.maxEntries == 0, attributes.valueSize > 0,
            MapFlags(rawValue: attributes.flags).contains(.noPrealloc)
        else {
            throw MapError(
                map: attributes.name,
                "\(attributes.type.cName) needs key_size 4, max_entries 0, a value and BPF_F_NO_PREALLOC")
        }
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        values = try ValueStorage(attributes: attributes, slots: Self.capacity, cpuCount: 1, vm: vm, reservation: nil)
    }

    /// The value of `owner` (an object's address), made from `initial` (zeros when nil) if
    /// `create` and there is none (`overwrite`: an existing value too); nil when there is none,
    /// or no room.
    func value(owner: UInt64, create: Bool, initial: [UInt8]?, overwrite: Bool = false) -> UInt64? {
        state.withLock { state in
            if let slot = state.slots[owner] {
                if let initial, overwrite { values.write(initial, slot: slot, cpu: 0) }
                return values.address(slot: slot, cpu: 0)
            }
            guard create else { return nil }
            let slot: Int
            if let reused = state.free.popLast() {
                slot = reused
            } else {
                guard state.used < Self.capacity else { return nil }
                slot = state.used
                state.used += 1
            }
            values.clear(slot: slot)
            state.slots[owner] = slot
            if let initial { values.write(initial, slot: slot, cpu: 0) }
            return values.address(slot: slot, cpu: 0)
        }
    }

    /// Removes `owner`'s value: `-ENOENT` if it has none.
    func remove(owner: UInt64) -> Errno? {
        state.withLock { state in
            guard let slot = state.slots.removeValue(forKey: owner) else { return .noEntry }
            state.free.append(slot)
            return nil
        }
    }

    private static func owner(_ key: [UInt8]) -> UInt64? { key.count == 8 ? get64(key, 0) : nil }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? {
        Self.owner(key).flatMap { value(owner: $0, create: false, initial: nil) }
    }

    public func update(key: [UInt8], value newValue: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? {
        guard let owner = Self.owner(key), newValue.count == attributes.valueSize else { return .invalid }
        let exists = lookupAddress(key: key, cpu: 0) != nil
        if flags.contains(.noExist) && exists { return .exists }
        if flags.contains(.exist) && !exists { return .noEntry }
        guard value(owner: owner, create: true, initial: newValue, overwrite: true) != nil else { return .noMemory }
        return nil
    }

    public func delete(key: [UInt8]) -> Errno? {
        guard let owner = Self.owner(key) else { return .invalid }
        return remove(owner: owner)
    }

    public func nextKey(after key: [UInt8]?) -> [UInt8]? {
        let owners = state.withLock { $0.slots.keys.sorted() }
        let next = key.flatMap(Self.owner).map { current in owners.first { $0 > current } } ?? owners.first
        return next.map { withUnsafeBytes(of: $0.littleEndian, Array.init) }
    }

    public func value(forKey key: [UInt8]) -> [UInt8]? {
        guard let owner = Self.owner(key) else { return nil }
        return state.withLock { state in state.slots[owner].map { values.read(slot: $0, cpu: 0) } }
    }
}
