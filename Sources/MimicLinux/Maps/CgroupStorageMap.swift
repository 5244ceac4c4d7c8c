import MimicCore
import MimicMemory

/// `BPF_MAP_TYPE_CGROUP_STORAGE` and `BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE`: one value per
/// (cgroup, attach type) a program runs in, which `bpf_get_local_storage` returns
/// (`kernel/bpf/local_storage.c`).
///
/// Mimic has one cgroup, the root (id 1, `NetworkDevices.rootCgroupID`), so the map holds one
/// value per attach type, created zeroed the first time a program of that type asks for it (the
/// kernel creates it when the program is attached) and kept from run to run, as for an attached
/// program. The kernel's `BPF_PROG_TEST_RUN` gives each run a fresh storage instead.
///
/// Keys are `struct bpf_cgroup_storage_key` (16 bytes: `cgroup_inode_id`, `attach_type`) or
/// the cgroup id alone (8 bytes; one storage for all attach types). `max_entries` must be 0.
/// From the host, lookups and updates of an existing storage work; an update of one that does
/// not exist is `-ENOENT`, `BPF_NOEXIST` is `-EINVAL`, and deletes are `-EINVAL`, as in the
/// kernel.
public final class CgroupStorageMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    public let isPerCPU: Bool
    /// The storages, by key (a hash map of at most `slots` entries).
    let storage: HashTableMap
    /// Distinct attach types a storage can exist for.
    static let slots = 64

    init(attributes: MapAttributes, id: Int, cpuCount: Int, vm: VM, memory: MapMemory) throws(MapError) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        isPerCPU = attributes.type == .perCPUCgroupStorage
        var inner = attributes
        inner.type = isPerCPU ? .perCPUHash : .hash
        inner.maxEntries = Self.slots
        storage = try HashTableMap(attributes: inner, id: id, cpuCount: cpuCount, vm: vm, memory: memory)
    }

    /// The key of the storage a program attached as `attachType` uses.
    public func key(attachType: AttachType) -> [UInt8] {
        var key = [UInt8](repeating: 0, count: attributes.keySize)
        put64(&key, 0, NetworkDevices.rootCgroupID)
        if attributes.keySize == 16 { put32(&key, 8, attachType.rawValue) }
        return key
    }

    /// `bpf_get_local_storage`: the address of the storage for `attachType` as `cpu` sees it,
    /// created zeroed when it does not exist yet.
    func localStorage(attachType: AttachType, cpu: Int) -> UInt64? {
        let key = key(attachType: attachType)
        if let address = storage.lookupAddress(key: key, cpu: cpu) { return address }
        let zero = [UInt8](repeating: 0, count: attributes.valueSize)
        if isPerCPU {
            _ = storage.update(
                key: key, perCPUValues: Array(repeating: zero, count: storage.values.cpuCount), flags: .noExist)
        } else {
            _ = storage.update(key: key, value: zero, flags: .noExist, cpu: cpu)
        }
        return storage.lookupAddress(key: key, cpu: cpu)
    }

    /// Drops every storage, as if the program were attached anew (the kernel's test run starts
    /// each run with fresh storage; `ObjectComparison` calls this before Mimic's run).
    public func removeAllStorage() {
        for key in storage.keys { _ = storage.delete(key: key) }
    }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { storage.lookupAddress(key: key, cpu: cpu) }

    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? {
        if flags == .noExist { return .invalid }
        guard storage.value(forKey: key) != nil else { return .noEntry }
        return storage.update(key: key, value: value, flags: .exist, cpu: cpu)
    }

    public func delete(key: [UInt8]) -> Errno? { .invalid }
    public func nextKey(after key: [UInt8]?) -> [UInt8]? { storage.nextKey(after: key) }
    public func value(forKey key: [UInt8]) -> [UInt8]? { storage.value(forKey: key) }
    public func perCPUValues(forKey key: [UInt8]) -> [[UInt8]]? { storage.perCPUValues(forKey: key) }
    public var keys: [[UInt8]] { storage.keys }
}
