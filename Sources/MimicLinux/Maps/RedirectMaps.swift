import MimicCore
import MimicMemory
import Synchronization

/// `BPF_MAP_TYPE_DEVMAP`, `DEVMAP_HASH`, `CPUMAP` and `XSKMAP`: the targets of
/// `bpf_redirect_map`. Mimic has no network devices, CPUs queues or sockets behind them; the
/// maps hold the values the kernel's user space writes, and a redirect records the chosen
/// entry as the process's `LinuxProcessState.redirect` (`Redirect.map`).
///
/// Values: devmap / devmap_hash `struct bpf_devmap_val` (4-byte ifindex, optionally a 4-byte
/// program fd, which Mimic stores but does not run), cpumap `struct bpf_cpumap_val` (4-byte
/// queue size, optionally a program fd), xskmap a 4-byte socket fd.
///
/// Update and delete follow `devmap.c`, `cpumap.c` and `xskmap.c`: flags past `BPF_EXIST` are
/// `-EINVAL`; for the array forms an index past the end is `-E2BIG` on update (`-EINVAL` on
/// delete) and `BPF_NOEXIST` is `-EEXIST` (devmap, cpumap: every index exists); an ifindex of 0
/// (devmap) or a queue size of 0 (cpumap) empties the entry; a cpumap queue size over 16,384 is
/// `-EOVERFLOW` and a key naming no CPU `-ENODEV`. The hash form refuses ifindex 0 (`-EINVAL`),
/// a new key in a full map (`-E2BIG`) and deleting a missing key (`-ENOENT`). Lookups return
/// the address of the value in VM memory.
public final class RedirectMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    let values: ValueStorage
    private let cpuCount: Int
    private let state: Mutex<State>

    private struct State {
        var present: [Bool]
        var hash: SlotIndex
    }

    private var isHash: Bool { attributes.type == .devMapHash }

    init(attributes: MapAttributes, id: Int, cpuCount: Int, vm: VM, memory: MapMemory) throws(MapError) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        self.cpuCount = cpuCount
        values = try ValueStorage(
            attributes: attributes, slots: attributes.maxEntries, cpuCount: 1, vm: vm,
            reservation: memory.reservation)
        let isHash = attributes.type == .devMapHash
        state = Mutex(
            State(
                present: Array(repeating: false, count: isHash ? 0 : attributes.maxEntries),
                hash: memory.slotIndex(capacity: isHash ? attributes.maxEntries : 0)))
    }

    private func slot(for key: [UInt8]) -> Int? {
        guard key.count == 4 else { return nil }
        return state.withLock { state in
            if isHash { return state.hash.slot(for: key) }
            let index = Int(littleEndianUInt32(key))
            return index < state.present.count && state.present[index] ? index : nil
        }
    }

    /// The value stored under the 4-byte little-endian `key`, if the entry is set.
    public func target(forKey key: UInt32) -> [UInt8]? {
        slot(for: littleEndianBytes(key)).map { values.read(slot: $0, cpu: 0) }
    }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? {
        slot(for: key).map { values.address(slot: $0, cpu: 0) }
    }

    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? {
        guard key.count == 4, value.count == attributes.valueSize else { return .invalid }
        guard flags.rawValue <= MapUpdateFlags.exist.rawValue else { return .invalid }
        let first = littleEndianUInt32(value)
        if isHash {
            guard first != 0 else { return .invalid }
            let result: Result<Int, Errno> = state.withLock { state in
                if let slot = state.hash.slot(for: key) {
                    if flags == .noExist { return .failure(.exists) }
                    return .success(slot)
                }
                return state.hash.insert(key)
            }
            switch result {
            case .failure(let error): return error
            case .success(let slot):
                values.write(value, slot: slot, cpu: 0)
                return nil
            }
        }
        let index = Int(littleEndianUInt32(key))
        guard index < attributes.maxEntries else { return .tooBig }
        let clears: Bool
        switch attributes.type {
        case .xskMap:
            let present = state.withLock { $0.present[index] }
            if present, flags == .noExist { return .exists }
            if !present, flags == .exist { return .noEntry }
            clears = false
        case .cpuMap:
            if flags == .noExist { return .exists }
            if first > 16_384 { return .overflow }
            if index >= cpuCount { return .noDevice }
            clears = first == 0
        default: // devmap
            if flags == .noExist { return .exists }
            clears = first == 0
        }
        state.withLock { $0.present[index] = !clears }
        if clears { values.clear(slot: index) } else { values.write(value, slot: index, cpu: 0) }
        return nil
    }

    public func delete(key: [UInt8]) -> Errno? {
        guard key.count == 4 else { return .invalid }
        return state.withLock { state in
            if isHash { return state.hash.remove(key) == nil ? .noEntry : nil }
            let index = Int(littleEndianUInt32(key))
            guard index < state.present.count else { return .invalid }
            state.present[index] = false
            return nil
        }
    }

    public func nextKey(after key: [UInt8]?) -> [UInt8]? {
        state.withLock { state in
            if isHash { return state.hash.key(after: key) }
            // devmap, cpumap and xskmap step through the indexes; devmap and cpumap skip
            // nothing, as `array_map_get_next_key` style iteration in the kernel does.
            let count = state.present.count
            guard let key, key.count == 4 else { return count > 0 ? littleEndianBytes(0) : nil }
            let index = Int(littleEndianUInt32(key))
            if index >= count { return littleEndianBytes(0) }
            return index + 1 < count ? littleEndianBytes(UInt32(index + 1)) : nil
        }
    }

    public func value(forKey key: [UInt8]) -> [UInt8]? { slot(for: key).map { values.read(slot: $0, cpu: 0) } }

    /// The keys of every set entry, for `BPF_F_BROADCAST` redirects.
    public var setKeys: [UInt32] {
        state.withLock { state in
            if isHash { return state.hash.elements.map { littleEndianUInt32($0.key) } }
            return state.present.indices.filter { state.present[$0] }.map { UInt32($0) }
        }
    }
}
