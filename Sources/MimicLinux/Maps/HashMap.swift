import MimicCore
import MimicMemory
import Synchronization

/// `BPF_MAP_TYPE_HASH`, `PERCPU_HASH`, `LRU_HASH` and `LRU_PERCPU_HASH`: elements by key, up to
/// `max_entries` of them, values preallocated in VM memory.
///
/// - Update flags as in the kernel's `htab_map_update_elem`: unknown flags `-EINVAL`,
///   `BPF_NOEXIST` on an existing key `-EEXIST`, `BPF_EXIST` on a missing key `-ENOENT`, a new
///   key in a full map `-E2BIG` — except LRU maps, which evict their least recently used
///   element instead. `BPF_F_LOCK` needs a spin lock in the value (plain hash maps only).
/// - Per-CPU maps keep one value per CPU; programs see and update their vCPU's value, and a
///   new element created by a program starts with zeros on the other CPUs.
/// - LRU maps count a program's lookup or update as a use. (The kernel's LRU is approximate,
///   with per-CPU free lists; Mimic evicts the exact least recently used element.)
/// - An update writes the existing element's value in place (the kernel swaps in a new element
///   for plain hash maps; a program holding a pointer to the old value sees the new one here).
public final class HashTableMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    public let isPerCPU: Bool
    public let isLRU: Bool
    let values: ValueStorage
    private let index: Mutex<SlotIndex>
    /// The index's table, which lookups of plain and per-CPU hash maps search without the lock
    /// (`SlotTable.concurrentSlot(for:)`, a sequence lock; LRU lookups take the lock, as they
    /// reorder the elements). Unmanaged: `index` keeps it for the map's life, and a strong (or
    /// even `unowned(unsafe)`) reference is retained and released around every lookup; used
    /// through `_withUnsafeGuaranteedRef`, it is not.
    private let table: Unmanaged<SlotTable>
    /// Where `values` puts each value, copied so that a lookup computes the address without
    /// touching (and reference-counting) `values`.
    private let layout: ValueLayout

    init(attributes: MapAttributes, id: Int, cpuCount: Int, vm: VM, memory: MapMemory) throws(MapError) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        isPerCPU = attributes.type == .perCPUHash || attributes.type == .lruPerCPUHash
        isLRU = attributes.type == .lruHash || attributes.type == .lruPerCPUHash
        values = try ValueStorage(
            attributes: attributes, slots: attributes.maxEntries,
            cpuCount: isPerCPU ? cpuCount : 1, vm: vm, reservation: memory.reservation)
        layout = values.layout
        let slots = memory.slotIndex(capacity: attributes.maxEntries)
        table = Unmanaged.passUnretained(slots.table)
        index = Mutex(slots)
    }

    /// The number of elements.
    public var count: Int { index.withLock { $0.count } }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? {
        key.withUnsafeBytes { lookupAddress(key: $0, cpu: cpu) }
    }

    /// `lookupAddress(key:cpu:)` with the key read in place (from VM memory, by the lookup
    /// helper): no copy, no allocation (`SlotIndex` hashes the bytes where they are).
    @inline(__always)
    func lookupAddress(key: UnsafeRawBufferPointer, cpu: Int) -> UInt64? {
        guard key.count == attributes.keySize, cpu >= 0, cpu < layout.cpuCount || !isPerCPU else { return nil }
        let cpu = isPerCPU ? cpu : 0
        if !isLRU, let found = table._withUnsafeGuaranteedRef({ $0.concurrentSlot(for: key) }) {
            return found.map { layout.address(slot: $0, cpu: cpu) }
        }
        return lockedLookup(key: key).map { layout.address(slot: $0, cpu: cpu) }
    }

    /// The slot of `key` found under the lock (LRU maps, whose lookups reorder the elements, and
    /// any lookup that met a writer), counted as a use for LRU maps.
    @inline(never)
    private func lockedLookup(key: UnsafeRawBufferPointer) -> Int? {
        index.withLock { index in
            guard let slot = index.slot(for: key) else { return nil }
            if isLRU { index.touch(slot) }
            return slot
        }
    }

    /// How compiled code looks up this map without the helper's dispatch (`InlineHashLookup`,
    /// the kernel's `htab_map_gen_lookup`): `lookupAddress(key:cpu:)` as a C-ABI function of the
    /// map (unretained: the emulator keeps its maps for its life, which the compiled code's
    /// program does not outlive). Nil for keys of no bytes or more than `MAX_BPF_STACK`.
    var inlineLookup: InlineHashLookup? {
        guard let keySize = UInt32(exactly: attributes.keySize), keySize > 0, keySize <= UInt32(maxBPFStack) else {
            return nil
        }
        let function: InlineHashLookup.Function
        let plain = !isPerCPU && !isLRU
        switch keySize {
        case 4: function = plain ? Self.compiledPlainLookup4 : Self.compiledLookup4
        case 8: function = plain ? Self.compiledPlainLookup8 : Self.compiledLookup8
        default: function = Self.compiledLookup
        }
        // A plain map's table is searched by the code itself (`InlineHashProbe`).
        let probe = plain ? table._withUnsafeGuaranteedRef { $0.probe(keySize: Int(keySize), layout: layout) } : nil
        return InlineHashLookup(
            keySize: keySize, function: function, map: UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()),
            probe: probe)
    }

    /// `InlineHashLookup.function`: the value's address for `keySize` bytes at `key`, or 0.
    private static let compiledLookup: InlineHashLookup.Function = { compiledLookup($0, $1, $2, keySize: nil) }
    /// `compiledLookup` for 4-byte keys: with the size a constant, the hash and the key compare
    /// need no dispatch and the search no call (no registers spilled).
    private static let compiledLookup4: InlineHashLookup.Function = { compiledLookup($0, $1, $2, keySize: 4) }
    /// `compiledLookup` for 8-byte keys.
    private static let compiledLookup8: InlineHashLookup.Function = { compiledLookup($0, $1, $2, keySize: 8) }

    /// `compiledLookup4` for a plain hash map (not per-CPU, not LRU), whose key size is 4: no
    /// key-size, CPU or LRU test, the lock-free search straight away (the key size is the map's,
    /// checked when the function was chosen; the vCPU does not matter).
    private static let compiledPlainLookup4: InlineHashLookup.Function = { map, key, _ in
        Unmanaged<HashTableMap>.fromOpaque(map)._withUnsafeGuaranteedRef { $0.plainLookup(key, keySize: 4) }
    }
    /// `compiledPlainLookup4` for 8-byte keys.
    private static let compiledPlainLookup8: InlineHashLookup.Function = { map, key, _ in
        Unmanaged<HashTableMap>.fromOpaque(map)._withUnsafeGuaranteedRef { $0.plainLookup(key, keySize: 8) }
    }

    /// `lookupAddress(key:cpu:)` of a plain hash map for a key of its own size, or 0.
    @inline(__always)
    private func plainLookup(_ key: UnsafeRawPointer, keySize: Int) -> UInt64 {
        let bytes = UnsafeRawBufferPointer(start: key, count: keySize)
        let found = table._withUnsafeGuaranteedRef { $0.concurrentSlot(for: bytes) } ?? lockedLookup(key: bytes)
        guard let found else { return 0 }
        return layout.address(slot: found, cpu: 0)
    }

    @inline(__always)
    private static func compiledLookup(_ map: UnsafeRawPointer, _ key: UnsafeRawPointer, _ cpu: UInt64, keySize: Int?)
        -> UInt64
    {
        Unmanaged<HashTableMap>.fromOpaque(map)._withUnsafeGuaranteedRef { map in
            let count = keySize ?? map.attributes.keySize
            return map.lookupAddress(
                key: UnsafeRawBufferPointer(start: key, count: count), cpu: Int(truncatingIfNeeded: cpu))
                ?? 0
        }
    }

    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? {
        key.withUnsafeBytes { key in
            value.withUnsafeBytes { value in update(key: key, value: value, flags: flags, cpu: cpu) }
        }
    }

    /// `update(key:value:flags:cpu:)` with key and value read in place (from VM memory, by the
    /// update helper); only a new element's key is copied.
    func update(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: MapUpdateFlags, cpu: Int) -> Errno? {
        guard value.count == attributes.valueSize else { return .invalid }
        // A constant size for 4-byte keys lets the hash and the compare skip their dispatch.
        let claimed =
            key.count == 4
            ? claim(key: UnsafeRawBufferPointer(start: key.baseAddress, count: 4), flags: flags)
            : claim(key: key, flags: flags)
        switch claimed {
        case .failure(let error): return error
        case .success(let slot):
            if isPerCPU {
                values.write(value, slot: slot, cpu: min(max(cpu, 0), values.cpuCount - 1))
            } else if flags.contains(.lock) {
                values.writeLocked(value, slot: slot, cpu: 0)
            } else {
                values.write(value, slot: slot, cpu: 0)
            }
            return nil
        }
    }

    /// Host API for per-CPU maps: creates or updates `key` with one value per CPU, as
    /// `BPF_MAP_UPDATE_ELEM` does from user space. For other maps, `values` holds one value.
    public func update(key: [UInt8], perCPUValues newValues: [[UInt8]], flags: MapUpdateFlags = .any) -> Errno? {
        guard newValues.count == values.cpuCount, newValues.allSatisfy({ $0.count == attributes.valueSize }) else {
            return .invalid
        }
        switch key.withUnsafeBytes({ claim(key: $0, flags: flags) }) {
        case .failure(let error): return error
        case .success(let slot):
            for (cpu, value) in newValues.enumerated() {
                if flags.contains(.lock) {
                    values.writeLocked(value, slot: slot, cpu: cpu)
                } else {
                    values.write(value, slot: slot, cpu: cpu)
                }
            }
            return nil
        }
    }

    /// The slot an update of `key` with `flags` writes (a new element's values zeroed), or why
    /// the update fails.
    @inline(__always)
    private func claim(key: UnsafeRawBufferPointer, flags: MapUpdateFlags) -> Result<Int, Errno> {
        guard key.count == attributes.keySize else { return .failure(.invalid) }
        // Plain hash maps accept BPF_F_LOCK; LRU and per-CPU maps only BPF_ANY/NOEXIST/EXIST.
        let allowsLock = !isPerCPU && !isLRU
        let mode = allowsLock ? flags.rawValue & ~MapUpdateFlags.lock.rawValue : flags.rawValue
        guard mode <= MapUpdateFlags.exist.rawValue else { return .failure(.invalid) }
        if flags.contains(.lock), allowsLock, values.spinLockOffset == nil { return .failure(.invalid) }
        return index.withLock { index in
            let existing = index.slot(for: key)
            if existing != nil, mode == MapUpdateFlags.noExist.rawValue { return .failure(.exists) }
            if existing == nil, mode == MapUpdateFlags.exist.rawValue { return .failure(.noEntry) }
            if let existing {
                if isLRU { index.touch(existing) }
                return .success(existing)
            }
            if index.isFull {
                guard isLRU, let oldest = index.firstKey else { return .failure(.tooBig) }
                index.remove(oldest)
            }
            let inserted = index.insert(Array(key))
            if case .success(let slot) = inserted { values.clear(slot: slot) }
            return inserted
        }
    }

    public func delete(key: [UInt8]) -> Errno? {
        key.withUnsafeBytes { delete(key: $0) }
    }

    /// `delete(key:)` with the key read in place (from VM memory, by the delete helper).
    func delete(key: UnsafeRawBufferPointer) -> Errno? {
        guard key.count == attributes.keySize else { return .invalid }
        return index.withLock { $0.remove(key) } == nil ? .noEntry : nil
    }

    public func nextKey(after key: [UInt8]?) -> [UInt8]? { index.withLock { $0.key(after: key) } }

    public func value(forKey key: [UInt8]) -> [UInt8]? {
        guard key.count == attributes.keySize else { return nil }
        guard let slot = index.withLock({ $0.slot(for: key) }) else { return nil }
        return values.read(slot: slot, cpu: 0)
    }

    public func perCPUValues(forKey key: [UInt8]) -> [[UInt8]]? {
        guard key.count == attributes.keySize else { return nil }
        guard let slot = index.withLock({ $0.slot(for: key) }) else { return nil }
        return values.readAll(slot: slot)
    }

    public var keys: [[UInt8]] { index.withLock { $0.elements.map(\.key) } }

    /// Keys and the address of `cpu`'s value, in iteration order (`bpf_for_each_map_elem`).
    func elements(cpu: Int) -> [(key: [UInt8], address: UInt64)] {
        index.withLock { $0.elements }.map { ($0.key, values.address(slot: $0.slot, cpu: isPerCPU ? cpu : 0)) }
    }

    /// Whether `key` still names the element at `address` (an element deleted during
    /// `bpf_for_each_map_elem` is skipped).
    func contains(key: [UInt8]) -> Bool { index.withLock { $0.slot(for: key) != nil } }
}

/// `BPF_MAP_TYPE_ARRAY` and `PERCPU_ARRAY`: `max_entries` zero-initialised values indexed by a
/// 4-byte key.
///
/// As in the kernel: every index exists, so `BPF_NOEXIST` fails with `-EEXIST`; an index past
/// the end fails updates with `-E2BIG` and lookups with NULL; elements cannot be deleted
/// (`-EINVAL`). Per-CPU arrays keep one value per CPU (each padded to 8 bytes).
///
/// After `trackTouches()` the map records every index a program or host code may have changed
/// (`touchedIndices`), so a comparison reads only those instead of all `max_entries`.
public final class ArrayMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    public let isPerCPU: Bool
    let values: ValueStorage
    private let touches = TouchedIndices()

    init(attributes: MapAttributes, id: Int, cpuCount: Int, vm: VM, memory: MapMemory) throws(MapError) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        isPerCPU = attributes.type == .perCPUArray
        isFrozen = false
        values = try ValueStorage(
            attributes: attributes, slots: attributes.maxEntries,
            cpuCount: isPerCPU ? cpuCount : 1, vm: vm, reservation: memory.reservation)
    }

    /// Global data: a single-element array whose value is a section the loader already mapped.
    /// A read-only section (`.rodata`) is frozen, as libbpf freezes it: updates fail with `-EPERM`.
    init(globalData attributes: MapAttributes, id: Int, storage: RegionStorage, address: UInt64, readOnly: Bool) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        isPerCPU = false
        isFrozen = readOnly
        values = ValueStorage(adopting: storage, base: address, valueSize: attributes.valueSize, slots: 1)
    }

    /// The VM address of the first element's value (global data sections live in arrays).
    public var baseAddress: UInt64 { values.base }

    /// Whether updates are refused (`BPF_MAP_FREEZE`; libbpf freezes `.rodata`).
    public let isFrozen: Bool

    private func index(of key: [UInt8]) -> Int? {
        guard key.count == 4 else { return nil }
        let index = Int(littleEndianUInt32(key))
        return index < attributes.maxEntries ? index : nil
    }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? {
        guard let index = index(of: key) else { return nil }
        return lookupAddress(index: index, cpu: cpu)
    }

    /// The VM address of element `index`'s value as seen from `cpu` (the lookup helper reads
    /// the 4-byte key in place); nil past the end.
    func lookupAddress(index: Int, cpu: Int) -> UInt64? {
        guard index >= 0, index < attributes.maxEntries else { return nil }
        // The caller gets a pointer into the value and may write through it.
        touches.record(index)
        return values.address(slot: index, cpu: isPerCPU ? min(max(cpu, 0), values.cpuCount - 1) : 0)
    }

    private func check(key: [UInt8], flags: MapUpdateFlags) -> Result<Int, Errno> {
        check(key: key.count == 4 ? littleEndianUInt32(key) : nil, flags: flags)
    }

    /// The element an update of `key` (nil: a key that is not 4 bytes) writes, or why it fails.
    private func check(key: UInt32?, flags: MapUpdateFlags) -> Result<Int, Errno> {
        guard !isFrozen else { return .failure(.notPermitted) }
        guard let key else { return .failure(.invalid) }
        let mode = isPerCPU ? flags.rawValue : flags.rawValue & ~MapUpdateFlags.lock.rawValue
        guard mode <= MapUpdateFlags.exist.rawValue else { return .failure(.invalid) }
        guard Int(key) < attributes.maxEntries else { return .failure(.tooBig) }
        let index = Int(key)
        if flags.contains(.noExist) { return .failure(.exists) }
        if flags.contains(.lock), values.spinLockOffset == nil { return .failure(.invalid) }
        return .success(index)
    }

    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? {
        value.withUnsafeBytes { value in
            update(index: key.count == 4 ? littleEndianUInt32(key) : nil, value: value, flags: flags, cpu: cpu)
        }
    }

    /// `update(key:value:flags:cpu:)` with the 4-byte key as a number (nil: a key of another
    /// size) and the value read in place (from VM memory, by the update helper).
    func update(index key: UInt32?, value: UnsafeRawBufferPointer, flags: MapUpdateFlags, cpu: Int) -> Errno? {
        guard value.count == attributes.valueSize else { return .invalid }
        switch check(key: key, flags: flags) {
        case .failure(let error): return error
        case .success(let index):
            touches.record(index)
            let cpu = isPerCPU ? min(max(cpu, 0), values.cpuCount - 1) : 0
            if flags.contains(.lock) {
                values.writeLocked(value, slot: index, cpu: cpu)
            } else {
                values.write(value, slot: index, cpu: cpu)
            }
            return nil
        }
    }

    /// Host API: sets every CPU's value of `key` (per-CPU arrays), as `BPF_MAP_UPDATE_ELEM` does
    /// from user space. For plain arrays, `values` holds one value.
    public func update(key: [UInt8], perCPUValues newValues: [[UInt8]], flags: MapUpdateFlags = .any) -> Errno? {
        guard newValues.count == values.cpuCount, newValues.allSatisfy({ $0.count == attributes.valueSize }) else {
            return .invalid
        }
        switch check(key: key, flags: flags) {
        case .failure(let error): return error
        case .success(let index):
            touches.record(index)
            for (cpu, value) in newValues.enumerated() { values.write(value, slot: index, cpu: cpu) }
            return nil
        }
    }

    public func delete(key: [UInt8]) -> Errno? { .invalid }

    public func nextKey(after key: [UInt8]?) -> [UInt8]? {
        guard let key, key.count == 4 else { return attributes.maxEntries > 0 ? littleEndianBytes(0) : nil }
        let index = Int(littleEndianUInt32(key))
        if index >= attributes.maxEntries { return littleEndianBytes(0) }
        return index + 1 < attributes.maxEntries ? littleEndianBytes(UInt32(index + 1)) : nil
    }

    public func value(forKey key: [UInt8]) -> [UInt8]? {
        index(of: key).map { values.read(slot: $0, cpu: 0) }
    }

    public func perCPUValues(forKey key: [UInt8]) -> [[UInt8]]? {
        index(of: key).map { values.readAll(slot: $0) }
    }

    public var keys: [[UInt8]] { (0..<attributes.maxEntries).map { littleEndianBytes(UInt32($0)) } }

    /// Starts recording the indices whose values may change: every index a lookup hands a
    /// pointer for (a program may write through it; `bpf_for_each_map_elem` looks up each index
    /// it visits) and every index updated. Recording costs one relaxed atomic load per lookup
    /// until this is called.
    public func trackTouches() { touches.enable() }

    /// The indices recorded since `trackTouches()`, in increasing order. Element 0 is not in it
    /// unless touched through a lookup or update: a program's direct value address
    /// (`BPF_PSEUDO_MAP_VALUE`, which the kernel allows for element 0 only) is not recorded.
    public var touchedIndices: [Int] { touches.sorted }

    /// How compiled code looks up this array inline (`InlineArrayLookup`, the kernel's
    /// `array_map_gen_lookup` and `percpu_array_map_gen_lookup`): the values' VM address,
    /// `max_entries`, the value stride, the CPU count and the stride from one CPU's values to the
    /// next (per-CPU arrays), as `lookupAddress(index:cpu:)` computes them (`ValueLayout`). Nil
    /// for keys that are not 4 bytes.
    var inlineLookup: InlineArrayLookup? {
        guard attributes.keySize == 4, attributes.valueSize > 0,
            let maxEntries = UInt32(exactly: attributes.maxEntries),
            let stride = UInt32(exactly: values.valueStride),
            let cpuCount = UInt32(exactly: values.cpuCount),
            let cpuStride = UInt32(exactly: values.cpuCount == 1 ? 0 : values.cpuStride)
        else { return nil }
        return InlineArrayLookup(
            base: values.base, maxEntries: maxEntries, valueStride: stride, cpuCount: cpuCount, cpuStride: cpuStride,
            bypass: touches.flag)
    }
}

/// The indices of an array map that may have changed since recording began (`ArrayMap.trackTouches`).
/// (`@unchecked Sendable`: `enabled` is only touched atomically.)
private final class TouchedIndices: @unchecked Sendable {
    /// 1 while recording. At a fixed address: compiled code's inline lookups read it
    /// (`InlineArrayLookup.bypass`) and leave recording lookups to the helper.
    private let enabled: UnsafeMutablePointer<Atomic<UInt8>>
    private let indices = Mutex<Set<Int>>([])

    init() {
        enabled = .allocate(capacity: 1)
        enabled.initialize(to: Atomic<UInt8>(0))
    }

    deinit {
        enabled.deinitialize(count: 1)
        enabled.deallocate()
    }

    func enable() { enabled[0].store(1, ordering: .releasing) }

    /// The byte that is non-zero while recording.
    var flag: UnsafePointer<UInt8> { UnsafeRawPointer(enabled).assumingMemoryBound(to: UInt8.self) }

    @inline(__always) func record(_ index: Int) {
        guard enabled[0].load(ordering: .relaxed) != 0 else { return }
        indices.withLock { _ = $0.insert(index) }
    }

    var sorted: [Int] { indices.withLock { $0.sorted() } }
}
