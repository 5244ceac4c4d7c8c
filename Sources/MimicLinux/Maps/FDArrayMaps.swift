import MimicCore
import Synchronization

/// The kernel's "fd array" semantics shared by prog arrays, perf event arrays and arrays of
/// maps (`bpf_fd_array_map_update_elem` / `fd_array_map_delete_elem`): only `BPF_ANY` updates
/// (`-EINVAL` otherwise), an index past the end is `-E2BIG`, deleting an empty slot `-ENOENT`.
/// Only the set slots are stored, so a `max_entries` of 2^32 - 1 costs nothing until used.
struct FDSlots<Element: Sendable>: Sendable {
    /// The number of slots (`max_entries`).
    let count: Int
    private var set: [Int: Element] = [:]

    init(count: Int) { self.count = max(0, count) }

    /// The element at `index` (nil when empty or past the end).
    subscript(index: Int) -> Element? {
        get { set[index] }
        set { if index >= 0, index < count { set[index] = newValue } }
    }

    func index(of key: [UInt8]) -> Int? {
        guard key.count == 4 else { return nil }
        let index = Int(littleEndianUInt32(key))
        return index < count ? index : nil
    }

    mutating func set(_ element: Element?, key: [UInt8], flags: MapUpdateFlags) -> Errno? {
        guard key.count == 4, flags == .any else { return .invalid }
        guard let index = index(of: key) else { return .tooBig }
        self[index] = element
        return nil
    }

    mutating func delete(key: [UInt8]) -> Errno? {
        guard key.count == 4 else { return .invalid }
        guard let index = index(of: key) else { return .tooBig }
        guard set.removeValue(forKey: index) != nil else { return .noEntry }
        return nil
    }

    /// `array_map_get_next_key`: every index, set or not.
    func nextKey(after key: [UInt8]?) -> [UInt8]? {
        guard let key, key.count == 4 else { return count == 0 ? nil : littleEndianBytes(0) }
        let index = Int(littleEndianUInt32(key))
        if index >= count { return littleEndianBytes(0) }
        return index + 1 < count ? littleEndianBytes(UInt32(index + 1)) : nil
    }
}

/// `BPF_MAP_TYPE_PROG_ARRAY`: programs by index, the targets of `bpf_tail_call`.
///
/// Mimic has no program file descriptors, so host code fills it with `setProgram(_:at:)`.
/// Slots hold programs detached from their VM (`Program.DetachedProgram`): the VM owns this map,
/// so a strong reference back would keep a dropped VM alive forever;
/// `update` with bytes is refused (`-EINVAL`). Programs cannot look it up (the verifier refuses
/// that), so `lookupAddress` is nil.
public final class ProgramArrayMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    private let slots: Mutex<FDSlots<Program.DetachedProgram>>
    /// The map's share of the VM's memory budget.
    private let memory: MapMemory

    init(attributes: MapAttributes, id: Int, memory: MapMemory) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        self.memory = memory
        slots = Mutex(FDSlots(count: attributes.maxEntries))
    }

    /// Puts `program` at `index` (nil empties the slot); `-E2BIG` past the end.
    @discardableResult
    public func setProgram(_ program: Program?, at index: Int) -> Errno? {
        guard index >= 0, index < attributes.maxEntries else { return .tooBig }
        slots.withLock { $0[index] = program?.detached }
        return nil
    }

    /// The program at `index`, if any (nil too once the program's VM is gone).
    public func program(at index: Int) -> Program? {
        guard index >= 0, index < attributes.maxEntries else { return nil }
        return slots.withLock { $0[index] }?.program
    }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { nil }
    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? { .invalid }
    public func delete(key: [UInt8]) -> Errno? { slots.withLock { $0.delete(key: key) } }
    public func nextKey(after key: [UInt8]?) -> [UInt8]? { slots.withLock { $0.nextKey(after: key) } }
    /// Nil: a program has no byte value (use `program(at:)`).
    public func value(forKey key: [UInt8]) -> [UInt8]? { nil }
}

/// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`: per-CPU record buffers written by `bpf_perf_event_output`
/// and read by the host.
///
/// Each index holds a perf event bound to a CPU. A new map has none, as in the kernel, so
/// `bpf_perf_event_output` returns `-ENOENT` until host code attaches a reader:
/// `attachReaders()` binds index *i* to CPU *i* for every CPU (what libbpf's `perf_buffer__new`
/// sets up; `mimic run` and the plugin do it), `update` with a 4-byte CPU number binds one
/// index, `delete` closes it. As in the kernel's `__bpf_perf_event_output`:
/// an index past `max_entries` is `-E2BIG`, an empty index `-ENOENT`, an event bound to another
/// CPU than the writer's `-EOPNOTSUPP`, and a full buffer loses the record (`-ENOSPC`, counted
/// in `lostRecords`).
public final class PerfEventArrayMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    public let cpuCount: Int
    /// Bytes each CPU's buffer holds before records are lost; a record takes its data rounded
    /// up with its 4-byte size to 8 bytes, plus the 8-byte perf event header. Default 64 pages.
    public let bufferSize: Int
    private let state: Mutex<State>
    /// The map's share of the VM's memory budget.
    private let memory: MapMemory

    /// A record and the CPU whose buffer holds it.
    public struct Record: Sendable, Equatable {
        public var cpu: Int
        public var data: [UInt8]

        public init(cpu: Int, data: [UInt8]) {
            self.cpu = cpu
            self.data = data
        }
    }

    private struct State {
        var events: FDSlots<Int>
        var buffers: [[[UInt8]]]
        var used: [Int]
        var lost: [Int]
    }

    init(attributes: MapAttributes, id: Int, cpuCount: Int, memory: MapMemory, bufferSize: Int = 64 * linuxPageSize) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        self.memory = memory
        self.cpuCount = cpuCount
        self.bufferSize = bufferSize
        let events = FDSlots<Int>(count: attributes.maxEntries)
        state = Mutex(
            State(
                events: events, buffers: Array(repeating: [], count: cpuCount),
                used: Array(repeating: 0, count: cpuCount), lost: Array(repeating: 0, count: cpuCount)))
    }

    static func recordCost(_ size: Int) -> Int { roundUp8(size + 4) + 8 }

    /// Binds index *i* to CPU *i* for every CPU the map has an index for, as libbpf's
    /// `perf_buffer__new` opens a `PERF_COUNT_SW_BPF_OUTPUT` event per CPU: from then on the
    /// program's records are kept for `drainRecords`.
    public func attachReaders() {
        state.withLock { state in
            for cpu in 0..<min(cpuCount, attributes.maxEntries) { state.events[cpu] = cpu }
        }
    }

    /// `bpf_perf_event_output` from `cpu` to `index` (`BPF_F_CURRENT_CPU`, 0xFFFFFFFF, is `cpu`).
    public func output(_ data: [UInt8], index: UInt64, cpu: Int) -> Errno? {
        let resolved = index == 0xFFFF_FFFF ? UInt64(cpu) : index
        guard resolved < UInt64(attributes.maxEntries) else { return .tooBig }
        return state.withLock { state in
            guard let eventCPU = state.events[Int(resolved)] else { return .noEntry }
            guard eventCPU == cpu, cpu >= 0, cpu < cpuCount else { return .notSupported }
            let cost = Self.recordCost(data.count)
            guard state.used[cpu] + cost <= bufferSize else {
                state.lost[cpu] += 1
                return .noSpace
            }
            state.used[cpu] += cost
            state.buffers[cpu].append(data)
            return nil
        }
    }

    /// The CPU the event at `index` is bound to, nil for an empty index.
    public func eventCPU(index: Int) -> Int? {
        guard index >= 0, index < attributes.maxEntries else { return nil }
        return state.withLock { $0.events[index] }
    }

    /// Takes the records of `cpu`'s buffer, oldest first.
    public func drainRecords(cpu: Int) -> [[UInt8]] {
        guard cpu >= 0, cpu < cpuCount else { return [] }
        return state.withLock { state in
            defer {
                state.buffers[cpu] = []
                state.used[cpu] = 0
            }
            return state.buffers[cpu]
        }
    }

    /// Takes every buffered record, CPU by CPU, oldest first within a CPU.
    public func drainRecords() -> [Record] {
        (0..<cpuCount).flatMap { cpu in drainRecords(cpu: cpu).map { Record(cpu: cpu, data: $0) } }
    }

    /// Records lost on `cpu` because its buffer was full.
    public func lostRecords(cpu: Int) -> Int {
        guard cpu >= 0, cpu < cpuCount else { return 0 }
        return state.withLock { $0.lost[cpu] }
    }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { nil }

    /// Binds index `key` to the CPU in `value` (4 bytes), in place of a perf event fd.
    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? {
        guard value.count == 4 else { return .invalid }
        let eventCPU = Int(littleEndianUInt32(value))
        guard eventCPU < cpuCount else { return .invalid }
        return state.withLock { $0.events.set(eventCPU, key: key, flags: flags) }
    }

    public func delete(key: [UInt8]) -> Errno? { state.withLock { $0.events.delete(key: key) } }
    public func nextKey(after key: [UInt8]?) -> [UInt8]? { state.withLock { $0.events.nextKey(after: key) } }
    /// The CPU an index is bound to, as 4 bytes.
    public func value(forKey key: [UInt8]) -> [UInt8]? {
        state.withLock { state in
            state.events.index(of: key).flatMap { state.events[$0] }.map { littleEndianBytes(UInt32($0)) }
        }
    }
}

/// `BPF_MAP_TYPE_ARRAY_OF_MAPS` and `HASH_OF_MAPS`: maps of maps. Values are inner maps, which
/// must match the inner map attributes the outer map was created with (type, key and value
/// sizes, flags, and `max_entries` unless those have `BPF_F_INNER_MAP`), else
/// `-EINVAL`, as the kernel's `bpf_map_meta_equal`.
///
/// A program's lookup returns the inner map's handle; host code reads and writes the inner
/// map's 4-byte id (`setInnerMap` is the direct way). The array form follows the kernel's fd
/// array rules (only `BPF_ANY`, `-E2BIG` past the end), the hash form the hash map's
/// (`-EEXIST`, `-ENOENT`, `-E2BIG` when full).
public final class MapOfMaps: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    public let isHash: Bool
    private weak var emulator: LinuxEmulator?
    private let state: Mutex<State>

    private struct State {
        var array: FDSlots<Int>
        var hash: SlotIndex
        var hashIDs: [Int: Int]
    }

    init(attributes: MapAttributes, id: Int, emulator: LinuxEmulator, memory: MapMemory) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        isHash = attributes.type == .hashOfMaps
        self.emulator = emulator
        state = Mutex(
            State(
                array: FDSlots(count: isHash ? 0 : attributes.maxEntries),
                hash: memory.slotIndex(capacity: isHash ? attributes.maxEntries : 0),
                hashIDs: [:]))
    }

    /// Whether `map` may be stored in this outer map.
    public func accepts(_ map: any BPFMap) -> Bool {
        guard let inner = attributes.innerMap else { return emulator?.acceptsWithoutInnerDefinition(map) ?? false }
        let candidate = map.attributes
        return candidate.type == inner.type && candidate.keySize == inner.keySize
            && candidate.valueSize == inner.valueSize && candidate.flags == inner.flags
            && (MapFlags(rawValue: inner.flags).contains(.innerMap) || candidate.maxEntries == inner.maxEntries)
    }

    /// Stores `map` under `key`, or removes the entry when `map` is nil.
    public func setInnerMap(_ map: (any BPFMap)?, forKey key: [UInt8], flags: MapUpdateFlags = .any) -> Errno? {
        guard let map else { return delete(key: key) }
        guard accepts(map), let id = MapHandle.id(of: map.handle) else { return .invalid }
        return store(id: id, key: key, flags: flags)
    }

    /// The inner map stored under `key`.
    public func innerMap(forKey key: [UInt8]) -> (any BPFMap)? {
        guard let id = innerID(forKey: key) else { return nil }
        return emulator?.map(handle: MapHandle.make(id: id))
    }

    private func innerID(forKey key: [UInt8]) -> Int? {
        state.withLock { state in
            if isHash { return state.hash.slot(for: key).flatMap { state.hashIDs[$0] } }
            return state.array.index(of: key).flatMap { state.array[$0] }
        }
    }

    private func store(id: Int, key: [UInt8], flags: MapUpdateFlags) -> Errno? {
        guard key.count == attributes.keySize else { return .invalid }
        return state.withLock { state in
            guard isHash else { return state.array.set(id, key: key, flags: flags) }
            guard flags.rawValue <= MapUpdateFlags.exist.rawValue else { return .invalid }
            if let slot = state.hash.slot(for: key) {
                if flags == .noExist { return .exists }
                state.hashIDs[slot] = id
                return nil
            }
            if flags == .exist { return .noEntry }
            switch state.hash.insert(key) {
            case .failure(let error): return error
            case .success(let slot): state.hashIDs[slot] = id
            }
            return nil
        }
    }

    /// The inner map's handle (not an address: programs pass it on to map helpers).
    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? {
        innerID(forKey: key).map { MapHandle.make(id: $0) }
    }

    /// Stores the inner map whose id is the 4-byte `value`.
    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? {
        guard value.count == 4, let map = emulator?.map(handle: MapHandle.make(id: Int(littleEndianUInt32(value))))
        else {
            return .invalid
        }
        return setInnerMap(map, forKey: key, flags: flags)
    }

    public func delete(key: [UInt8]) -> Errno? {
        guard key.count == attributes.keySize else { return .invalid }
        return state.withLock { state in
            guard isHash else { return state.array.delete(key: key) }
            guard let slot = state.hash.remove(key) else { return .noEntry }
            state.hashIDs[slot] = nil
            return nil
        }
    }

    public func nextKey(after key: [UInt8]?) -> [UInt8]? {
        state.withLock { isHash ? $0.hash.key(after: key) : $0.array.nextKey(after: key) }
    }

    /// The inner map's id, 4 bytes.
    public func value(forKey key: [UInt8]) -> [UInt8]? { innerID(forKey: key).map { littleEndianBytes(UInt32($0)) } }
}
