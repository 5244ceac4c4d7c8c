import MimicCore
import MimicMemory
import Synchronization
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Linux's page size for the maps whose sizes are counted in pages (ring buffers).
let linuxPageSize = 4096

/// `KMALLOC_MAX_SIZE` on x86-64 (4 KiB pages, `MAX_PAGE_ORDER` 10): the kernel's limit on one
/// allocation, which bounds value sizes.
let kmallocMaxSize = 4 << 20

/// `PCPU_MIN_UNIT_SIZE`: the largest value of a per-CPU map.
let perCPUValueLimit = 32 << 10

/// `MAX_BPF_STACK`: the largest hash map key (programs pass keys on their stack).
let maxBPFStack = 512

/// Rounds `value` up to a multiple of 8, as the kernel lays out map values.
@inline(__always) func roundUp8(_ value: Int) -> Int { (value + 7) & ~7 }

/// A map's values in VM memory: `slots` elements of `cpuCount` values each, every value padded
/// to 8 bytes (`round_up(value_size, 8)`, as the kernel lays out arrays and per-CPU values).
/// A per-CPU map keeps each CPU's values together, in an area of its own that starts on a
/// 128-byte boundary (`ValueLayout.cpuAreaAlignment`), as the kernel keeps them in each CPU's
/// per-CPU area: processes running as different vCPUs on different threads (`mimic run --pcap
/// --workers N`, `MimicPool`) then never write the same cache line when each updates its own
/// CPU's value.
///
/// The storage is allocated once, when the map is created, mapped into the VM's shared memory,
/// and never moves, so the addresses `address(slot:cpu:)` returns stay valid for the map's life.
/// Its pages take host memory only once written (`RegionStorage` uses `calloc`), so a map the
/// kernel does not preallocate costs what its elements use. The map's memory budget
/// reservation (`LinuxEmulator.createMap`) lives as long as the storage.
/// Writes from host code skip the value's spin lock word, as the kernel's `copy_map_value` does.
final class ValueStorage: @unchecked Sendable {
    let storage: RegionStorage
    /// The map's share of the VM's memory budget (nil for adopted global data, charged by the loader).
    let reservation: MemoryReservation?
    /// The VM address of the first value.
    let base: UInt64
    let valueSize: Int
    /// Bytes from one slot's value to the next.
    let valueStride: Int
    /// Bytes from one CPU's area (all its values) to the next.
    let cpuStride: Int
    let cpuCount: Int
    let slots: Int
    let spinLockOffset: Int?

    init(attributes: MapAttributes, slots: Int, cpuCount: Int, vm: VM, reservation: MemoryReservation?) throws(MapError)
    {
        self.reservation = reservation
        valueSize = attributes.valueSize
        valueStride = roundUp8(max(attributes.valueSize, 1))
        self.cpuCount = cpuCount
        self.slots = slots
        spinLockOffset = attributes.spinLockOffset
        let (perCPU, overflow1) = valueStride.multipliedReportingOverflow(by: slots)
        // (Aligned only when it fits a region: the product below is checked in any case.)
        cpuStride = cpuCount == 1 || overflow1 || perCPU > AddressSpace.regionLimit
            ? perCPU : ValueLayout.alignedCPUArea(perCPU)
        let (size, overflow2) = cpuStride.multipliedReportingOverflow(by: cpuCount)
        guard !overflow1, !overflow2, size <= AddressSpace.regionLimit else {
            throw MapError(
                map: attributes.name,
                "\(slots) elements of \(valueStride) bytes for each of \(cpuCount) CPUs exceed Mimic's 4 GiB region limit",
                errno: .tooBig)
        }
        storage = RegionStorage(count: size)
        do {
            base = try vm.mapShared(storage, name: "map:\(attributes.name)")
        } catch {
            throw MapError(map: attributes.name, "cannot map the values into VM memory: \(error)", errno: .noMemory)
        }
    }

    /// Values over memory that is already mapped at `base` (global data sections, which the
    /// loader maps before the emulator sees them): one value per slot, no per-CPU copies.
    init(adopting storage: RegionStorage, base: UInt64, valueSize: Int, slots: Int) {
        self.storage = storage
        self.base = base
        self.valueSize = valueSize
        valueStride = roundUp8(max(valueSize, 1))
        cpuStride = valueStride * slots
        cpuCount = 1
        self.slots = slots
        spinLockOffset = nil
        reservation = nil
    }

    @inline(__always) func offset(slot: Int, cpu: Int) -> Int { layout.offset(slot: slot, cpu: cpu) }

    func address(slot: Int, cpu: Int) -> UInt64 { layout.address(slot: slot, cpu: cpu) }

    /// Where the values are, as a value (for lookups that must not touch this object).
    var layout: ValueLayout { ValueLayout(base: base, stride: valueStride, cpuStride: cpuStride, cpuCount: cpuCount) }

    func read(slot: Int, cpu: Int) -> [UInt8] {
        let start = offset(slot: slot, cpu: cpu)
        return storage.bytes(in: start..<start + valueSize)
    }

    /// Every CPU's value of `slot`.
    func readAll(slot: Int) -> [[UInt8]] { (0..<cpuCount).map { read(slot: slot, cpu: $0) } }

    /// Copies `bytes` (exactly `valueSize`) into one CPU's value, leaving the spin lock word.
    func write(_ bytes: [UInt8], slot: Int, cpu: Int) {
        bytes.withUnsafeBytes { write($0, slot: slot, cpu: cpu) }
    }

    /// Copies `bytes` (exactly `valueSize`, e.g. straight from VM memory, which may overlap the
    /// value itself) into one CPU's value, leaving the spin lock word.
    @inline(__always)
    func write(_ bytes: UnsafeRawBufferPointer, slot: Int, cpu: Int) {
        guard let source = bytes.baseAddress, bytes.count == valueSize else { return }
        let target = storage.pointer + offset(slot: slot, cpu: cpu)
        // `copyMemory` is a memmove: overlapping source and target are fine.
        guard let lock = spinLockOffset else {
            if valueSize == 8 {
                // The common counter: one load and one store instead of a `memmove` call.
                target.storeBytes(of: source.loadUnaligned(as: UInt64.self), as: UInt64.self)
            } else {
                target.copyMemory(from: source, byteCount: valueSize)
            }
            return
        }
        target.copyMemory(from: source, byteCount: min(lock, valueSize))
        if lock + 4 < valueSize {
            (target + lock + 4).copyMemory(from: source + lock + 4, byteCount: valueSize - lock - 4)
        }
    }

    /// `BPF_F_LOCK`: copies `bytes` while holding the value's spin lock.
    func writeLocked(_ bytes: [UInt8], slot: Int, cpu: Int) {
        bytes.withUnsafeBytes { writeLocked($0, slot: slot, cpu: cpu) }
    }

    /// `BPF_F_LOCK` from raw bytes (see `write(_:slot:cpu:)`).
    func writeLocked(_ bytes: UnsafeRawBufferPointer, slot: Int, cpu: Int) {
        guard let lock = spinLockOffset else { return write(bytes, slot: slot, cpu: cpu) }
        let word = storage.pointer + offset(slot: slot, cpu: cpu) + lock
        SpinLocks.shared.lock(word)
        write(bytes, slot: slot, cpu: cpu)
        SpinLocks.shared.unlock(word)
    }

    /// Zeroes every CPU's value of `slot` (a new element starts from zeros).
    func clear(slot: Int) {
        for cpu in 0..<cpuCount {
            let start = offset(slot: slot, cpu: cpu)
            // An adopted region may end before the last value's padding.
            let count = min(valueStride, storage.count - start)
            guard count > 0 else { continue }
            (storage.pointer + start).initializeMemory(as: UInt8.self, repeating: 0, count: count)
        }
    }

    /// The slot and CPU a VM address of a value start falls on, if any.
    func slotAndCPU(ofAddress address: UInt64) -> (slot: Int, cpu: Int)? {
        guard address >= base else { return nil }
        let offset = address - base
        guard offset < UInt64(storage.count) else { return nil }
        let (cpu, within) = Int(offset).quotientAndRemainder(dividingBy: max(cpuStride, 1))
        guard within % valueStride == 0, within / valueStride < slots, cpu < cpuCount else { return nil }
        return (within / valueStride, cpu)
    }
}

/// Where a `ValueStorage` puts each value: CPU by CPU, each CPU's values slot by slot, every value
/// `stride` bytes from the next, each CPU's area `cpuStride` bytes from the next.
struct ValueLayout: Sendable {
    /// The VM address of the first value.
    let base: UInt64
    let stride: Int
    let cpuStride: Int
    let cpuCount: Int

    /// Where each CPU's area of a per-CPU map starts (a multiple of this from the first): two
    /// cache lines, as x86-64's adjacent-line prefetcher fetches lines in pairs.
    static let cpuAreaAlignment = 128

    /// `bytes` (at most a region's size) rounded up to `cpuAreaAlignment`.
    static func alignedCPUArea(_ bytes: Int) -> Int {
        (bytes + cpuAreaAlignment - 1) / cpuAreaAlignment * cpuAreaAlignment
    }

    /// (Wrapping: a slot is below `slots` and a CPU below `cpuCount`, whose values fit the region.)
    @inline(__always) func offset(slot: Int, cpu: Int) -> Int { cpu &* cpuStride &+ slot &* stride }

    @inline(__always) func address(slot: Int, cpu: Int) -> UInt64 {
        base &+ UInt64(truncatingIfNeeded: offset(slot: slot, cpu: cpu))
    }
}

/// The kernel's Jenkins hash (include/linux/jhash.h), as `htab_map_hash` in
/// kernel/bpf/hashtab.c applies it to a hash map's key: `jhash2` over the key's 32-bit words when
/// its size is a multiple of 4, `jhash` over its bytes otherwise, with the map's random seed.
/// Words are read in host (little-endian) order, as the kernel reads them on x86-64.
enum JenkinsHash {
    @inline(__always) private static func rotate(_ word: UInt32, _ shift: UInt32) -> UInt32 {
        (word << shift) | (word >> (32 - shift))
    }

    @inline(__always) private static func mix(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32) {
        a &-= c
        a ^= rotate(c, 4)
        c &+= b
        b &-= a
        b ^= rotate(a, 6)
        a &+= c
        c &-= b
        c ^= rotate(b, 8)
        b &+= a
        a &-= c
        a ^= rotate(c, 16)
        c &+= b
        b &-= a
        b ^= rotate(a, 19)
        a &+= c
        c &-= b
        c ^= rotate(b, 4)
        b &+= a
    }

    @inline(__always) private static func final(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32) {
        c ^= b
        c &-= rotate(b, 14)
        a ^= c
        a &-= rotate(c, 11)
        b ^= a
        b &-= rotate(a, 25)
        c ^= b
        c &-= rotate(b, 16)
        a ^= c
        a &-= rotate(c, 4)
        b ^= a
        b &-= rotate(a, 14)
        c ^= b
        c &-= rotate(b, 24)
    }

    @inline(__always) private static func word(_ bytes: UnsafeRawPointer, _ offset: Int) -> UInt32 {
        UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// `htab_map_hash(key, key_len, seed)` (a key of no bytes may have no address).
    @inline(__always)
    static func mapHash(_ key: UnsafeRawPointer?, count: Int, seed: UInt32) -> UInt32 {
        guard let key, count > 0 else { return 0xdead_beef &+ seed }
        if count == 4 { return jhash1Word(word(key, 0), seed: seed) }
        return count & 3 == 0 ? jhash2(key, words: count >> 2, seed: seed) : jhash(key, count: count, seed: seed)
    }

    /// `jhash_1word(a, initval)`: `jhash2` of one word (4-byte keys, the common case), inline.
    @inline(__always)
    static func jhash1Word(_ word: UInt32, seed: UInt32) -> UInt32 {
        var b = 0xdead_beef &+ (1 << 2) &+ seed
        var a = b &+ word
        var c = b
        final(&a, &b, &c)
        return c
    }

    /// `jhash2(k, length, initval)`: `words` 32-bit words at `key`.
    static func jhash2(_ key: UnsafeRawPointer, words: Int, seed: UInt32) -> UInt32 {
        var a = 0xdead_beef &+ (UInt32(truncatingIfNeeded: words) << 2) &+ seed
        var b = a
        var c = a
        var length = words
        var offset = 0
        while length > 3 {
            a &+= word(key, offset)
            b &+= word(key, offset + 4)
            c &+= word(key, offset + 8)
            mix(&a, &b, &c)
            length -= 3
            offset += 12
        }
        switch length {
        case 3:
            c &+= word(key, offset + 8)
            b &+= word(key, offset + 4)
            a &+= word(key, offset)
        case 2:
            b &+= word(key, offset + 4)
            a &+= word(key, offset)
        case 1: a &+= word(key, offset)
        default: return c
        }
        final(&a, &b, &c)
        return c
    }

    /// `jhash(key, length, initval)`: `count` bytes at `key`.
    static func jhash(_ key: UnsafeRawPointer, count: Int, seed: UInt32) -> UInt32 {
        var a = 0xdead_beef &+ UInt32(truncatingIfNeeded: count) &+ seed
        var b = a
        var c = a
        var length = count
        var offset = 0
        while length > 12 {
            a &+= word(key, offset)
            b &+= word(key, offset + 4)
            c &+= word(key, offset + 8)
            mix(&a, &b, &c)
            length -= 12
            offset += 12
        }
        guard length > 0 else { return c }
        // The kernel's fall-through switch: byte i of the last 1...12 goes to a, b or c at
        // bit 8 * (i % 4).
        for i in 0..<length {
            let byte = UInt32(key.load(fromByteOffset: offset + i, as: UInt8.self)) << (8 * UInt32(i & 3))
            switch i >> 2 {
            case 0: a &+= byte
            case 1: b &+= byte
            default: c &+= byte
            }
        }
        final(&a, &b, &c)
        return c
    }
}

/// The keys of a hash-like map: which slot of `ValueStorage` each key owns, the free slots,
/// and an order over the elements (insertion order; for LRU maps, least recently used first).
///
/// Keys are found as the kernel's `htab` finds them: by a hash of the key (`SlotTable.hash`: the
/// kernel's `htab_map_hash`, or a cheaper mix for keys of 4 and 8 bytes; with a random seed per
/// map like the kernel's `hashrnd`) into an open-addressing table (linear
/// probing, at most 3/4 full) whose entries hold the hash and the slot; a candidate's key bytes
/// are compared in place with the slot's copy in one flat key store. A lookup allocates nothing.
/// Every key of one index has the same size (the first key inserted sets it; the maps check
/// key sizes before they get here). The table and the key store live in a `SlotTable`, which
/// readers may also search without the map's lock (`SlotTable.concurrentSlot(for:)`).
///
/// Slots are made as elements arrive (slot *n* is made when *n* slots are in use and none is
/// free), so the index costs what the map holds, not its `max_entries`. With a reservation, each
/// new slot first takes `elementCost` bytes from the VM's memory budget: the charge of maps the
/// kernel does not preallocate.
///
/// Not thread-safe by itself: maps keep it inside their `Mutex` (`table` is shared, not copied:
/// an index is not to be copied and changed as two values).
struct SlotIndex: Sendable {
    /// The open-addressing table and the key bytes (shared with lock-free readers).
    let table = SlotTable()
    /// Entries in the table that are not empty (live ones and tombstones).
    private var occupied = 0
    /// The size of every key; -1 before the first insert.
    private var keySize = -1
    private(set) var keyBySlot: [[UInt8]?] = []
    private var free: [Int] = []
    private var previous: [Int] = []
    private var next: [Int] = []
    private(set) var head = -1
    private var tail = -1
    /// The number of keys.
    private(set) var count = 0
    /// The most slots (`max_entries`).
    let capacity: Int
    private let reservation: MemoryReservation?
    private let elementCost: Int

    init(capacity: Int, charging reservation: MemoryReservation? = nil, elementCost: Int = 0) {
        self.capacity = max(0, capacity)
        self.reservation = reservation
        self.elementCost = elementCost
    }

    var isFull: Bool { free.isEmpty && keyBySlot.count >= capacity }

    func slot(for key: [UInt8]) -> Int? { key.withUnsafeBytes { slot(for: $0) } }

    /// The slot of `key` (e.g. read in place from VM memory), or nil.
    @inline(__always)
    func slot(for key: UnsafeRawBufferPointer) -> Int? {
        guard count > 0, key.count == keySize else { return nil }
        return table.find(key.baseAddress, count: key.count)?.slot
    }

    /// Puts `slot` (whose key bytes are in the store) into the table; the table has room.
    private mutating func place(slot: Int) {
        let size = keySize
        let hash = UInt64(table.hash(size > 0 ? table.key(slot: slot) : nil, count: size))
        let mask = table.bucketCount - 1
        var index = Int(truncatingIfNeeded: hash) & mask
        while table.entry(index) != 0 && table.entry(index) != SlotTable.tombstone { index = (index + 1) & mask }
        if table.entry(index) == 0 { occupied += 1 }
        table.setEntry(index, hash << 32 | UInt64(slot + 1))
    }

    /// Makes room for one more entry: a table at most 3/4 full, rebuilt (without tombstones) at
    /// twice the keys when it would be fuller (never smaller than it was: see `SlotTable`).
    private mutating func reserveEntry() {
        guard (occupied + 1) * 4 > table.bucketCount * 3 else { return }
        var size = 16
        while size < (count + 1) * 2 { size <<= 1 }
        table.clearBuckets(count: max(size, table.bucketCount))
        occupied = 0
        for slot in keyBySlot.indices where keyBySlot[slot] != nil { place(slot: slot) }
    }

    /// Takes a free slot for `key` (which must be absent) and puts it last: `E2BIG` when the
    /// map is full, `ENOMEM` when a new slot does not fit in the memory budget, `EINVAL` for a
    /// key whose size differs from the keys before it.
    mutating func insert(_ key: [UInt8]) -> Result<Int, Errno> {
        guard keySize < 0 || key.count == keySize else { return .failure(.invalid) }
        table.beginWrite()
        defer { table.endWrite() }
        if keySize < 0 {
            keySize = key.count
            table.setKeySize(key.count)
        }
        let slot: Int
        if let reused = free.popLast() {
            slot = reused
        } else {
            guard keyBySlot.count < capacity else { return .failure(.tooBig) }
            if let reservation, !reservation.grow(by: elementCost) { return .failure(.noMemory) }
            slot = keyBySlot.count
            keyBySlot.append(nil)
            previous.append(-1)
            next.append(-1)
            table.reserveKeys(slots: slot + 1)
        }
        reserveEntry() // before the new key is live: a rebuild places the live keys
        keyBySlot[slot] = key
        key.withUnsafeBytes { source in
            if let bytes = source.baseAddress { table.key(slot: slot).copyMemory(from: bytes, byteCount: keySize) }
        }
        place(slot: slot)
        count += 1
        append(slot)
        return .success(slot)
    }

    /// Frees the slot of `key`; returns it, or nil if `key` is absent.
    @discardableResult
    mutating func remove(_ key: [UInt8]) -> Int? { key.withUnsafeBytes { remove($0) } }

    /// Frees the slot of `key` (e.g. read in place from VM memory); returns it, or nil if `key`
    /// is absent.
    @discardableResult
    mutating func remove(_ key: UnsafeRawBufferPointer) -> Int? {
        guard count > 0, key.count == keySize, let (index, slot) = table.find(key.baseAddress, count: key.count) else {
            return nil
        }
        table.beginWrite()
        table.setEntry(index, SlotTable.tombstone)
        table.endWrite()
        count -= 1
        keyBySlot[slot] = nil
        unlink(slot)
        free.append(slot)
        return slot
    }

    /// Moves `slot` to the end of the order (most recently used).
    mutating func touch(_ slot: Int) {
        guard tail != slot else { return }
        unlink(slot)
        append(slot)
    }

    /// The key of the first element in order (the least recently used for LRU maps).
    var firstKey: [UInt8]? { head >= 0 ? keyBySlot[head] : nil }

    /// The key after `key` in order; the first key when `key` is nil or absent, as
    /// `BPF_MAP_GET_NEXT_KEY` does for hash maps; nil after the last.
    func key(after key: [UInt8]?) -> [UInt8]? {
        guard let key, let slot = slot(for: key) else { return firstKey }
        let following = next[slot]
        return following >= 0 ? keyBySlot[following] : nil
    }

    /// Every key with its slot, in order.
    var elements: [(key: [UInt8], slot: Int)] {
        var result: [(key: [UInt8], slot: Int)] = []
        result.reserveCapacity(count)
        var cursor = head
        while cursor >= 0, let key = keyBySlot[cursor] {
            result.append((key, cursor))
            cursor = next[cursor]
        }
        return result
    }

    private mutating func append(_ slot: Int) {
        previous[slot] = tail
        next[slot] = -1
        if tail >= 0 { next[tail] = slot } else { head = slot }
        tail = slot
    }

    private mutating func unlink(_ slot: Int) {
        let before = previous[slot]
        let after = next[slot]
        if before >= 0 { next[before] = after } else { head = after }
        if after >= 0 { previous[after] = before } else { tail = before }
        previous[slot] = -1
        next[slot] = -1
    }
}

/// The open-addressing table and key bytes of a `SlotIndex`, in memory that readers may search
/// without the map's lock while a writer (holding it) changes them: the kernel's hash maps take
/// no lock to look up (RCU), and neither do `HashTableMap` lookups from `MimicPool` workers.
///
/// **A sequence lock** (`sequence`): a writer makes it odd before it changes anything a reader
/// reads (the table, the key store, the key size) and even again after (`beginWrite` /
/// `endWrite`, always under the map's lock, so writers never overlap). A reader
/// (`concurrentSlot(for:)`) loads it (acquire) before it searches and again after (an acquire
/// fence, then the load); the search counts only if both loads gave the same even value.
/// Why that is enough (Boehm, "Can seqlocks get along with programming language memory
/// models?", 2012): the writer's odd store is followed by a release fence and then its data
/// stores, so a reader that read any of them (then passed its acquire fence) sees at least the
/// odd value in its second load, and fails; a reader whose first load (acquire) saw the even value
/// a writer stored (release) at its end sees everything that writer did. The table's words are
/// read and written with relaxed atomics; key bytes are compared with plain loads, which can at
/// worst see bytes being copied — a comparison the sequence check then throws away.
///
/// **Memory stays valid** for a reader holding stale pointers: a table or key store that is
/// replaced (grown) is kept until the `SlotTable` goes (`retired`), and tables never shrink, so
/// what is kept is less than what is in use (sizes double). Each buffer carries its own size
/// (the table its entry count, the key store its slot count) in its first word, and a reader
/// stays within the buffer it loaded whatever the entries it reads say, so even an inconsistent
/// read touches only memory the table owns. A failed check sends the reader to the locked path
/// (once: no retry loop, no starvation).
final class SlotTable: @unchecked Sendable {
    /// An entry: `hash << 32 | (slot + 1)`; 0 is empty, `tombstone` a removed entry.
    static let tombstone: UInt64 = 0xFFFF_FFFF

    /// Four words that readers (and compiled code, `InlineHashProbe`) load, each an atomic:
    /// 0, the sequence, odd while a writer changes the table (see the type's comment); 1, the
    /// table, `[entry count][entries...]` (an `Atomic<UInt64>` each), or 0 before the first;
    /// 2, the key store, `[slot count][keySize bytes per slot]`, or 0 before the first; 3, the
    /// size of every key (as a bit pattern), -1 before the first insert. Allocated apart, so
    /// that their address can be handed out.
    private let header: UnsafeMutablePointer<Atomic<UInt>> = {
        let words = UnsafeMutablePointer<Atomic<UInt>>.allocate(capacity: 4)
        for index in 0..<3 { (words + index).initialize(to: Atomic<UInt>(0)) }
        (words + 3).initialize(to: Atomic<UInt>(UInt(bitPattern: -1)))
        return words
    }()
    private var sequence: UnsafeMutablePointer<Atomic<UInt>> { header }
    private var buckets: UnsafeMutablePointer<Atomic<UInt>> { header + 1 }
    private var keys: UnsafeMutablePointer<Atomic<UInt>> { header + 2 }
    private var keyWidth: Int { Int(bitPattern: header[3].load(ordering: .relaxed)) }
    /// The seed of `JenkinsHash.mapHash` (the kernel's per-map `hashrnd`), for keys of other
    /// sizes than 4 and 8 bytes.
    let seed = UInt32.random(in: .min ... .max)
    /// The seed of `InlineHashProbe.hash` (keys of 4 and 8 bytes).
    private let wideSeed = UInt64.random(in: .min ... .max)

    /// The hash of a `count`-byte key, which places it in the table: for keys of 4 and 8 bytes
    /// (IPv4 addresses, indices, pointers: the common keys) `InlineHashProbe.hash`, a
    /// multiply–xorshift–multiply of the key and a random seed, which compiled code computes too (≈ 8 host instructions, against ≈ 50 for jhash), for others the
    /// kernel's `htab_map_hash` (`JenkinsHash.mapHash`). Nothing outside the table sees it: the
    /// order of the elements (`bpf_map_get_next_key`, dumps) is the `SlotIndex`'s own, and the
    /// seed is random per map, as the kernel's `hashrnd`.
    @inline(__always)
    func hash(_ key: UnsafeRawPointer?, count: Int) -> UInt32 {
        switch count {
        case 4: return InlineHashProbe.hash(UInt64(key.unsafelyUnwrapped.loadUnaligned(as: UInt32.self)), seed: wideSeed)
        case 8: return InlineHashProbe.hash(key.unsafelyUnwrapped.loadUnaligned(as: UInt64.self), seed: wideSeed)
        default: return JenkinsHash.mapHash(key, count: count, seed: seed)
        }
    }
    /// Replaced tables and key stores, freed with the table (the writer's, under the map's lock).
    private var retired: [UnsafeMutableRawPointer] = []

    deinit {
        for buffer in retired { buffer.deallocate() }
        if let table = UnsafeMutableRawPointer(bitPattern: buckets.pointee.load(ordering: .relaxed)) { table.deallocate() }
        if let store = UnsafeMutableRawPointer(bitPattern: keys.pointee.load(ordering: .relaxed)) { store.deallocate() }
        header.deinitialize(count: 4)
        header.deallocate()
    }

    @inline(__always) static func slot(of entry: UInt64) -> Int {
        Int(truncatingIfNeeded: UInt32(truncatingIfNeeded: entry)) - 1
    }

    /// Whether `count` bytes at `a` and `b` are equal (keys of 4 and 8 bytes in one compare).
    @inline(__always)
    static func equal(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
        switch count {
        case 4: return a.loadUnaligned(as: UInt32.self) == b.loadUnaligned(as: UInt32.self)
        case 8: return a.loadUnaligned(as: UInt64.self) == b.loadUnaligned(as: UInt64.self)
        default: return memcmp(a, b, count) == 0
        }
    }

    // MARK: Writer (under the map's lock)

    /// Starts a change readers must not trust (the sequence becomes odd).
    @inline(__always)
    func beginWrite() {
        sequence.pointee.store(sequence.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
    }

    /// Ends the change (the sequence becomes even).
    @inline(__always)
    func endWrite() {
        sequence.pointee.store(sequence.pointee.load(ordering: .relaxed) &+ 1, ordering: .releasing)
    }

    private var table: UnsafeMutablePointer<Atomic<UInt64>>? {
        UnsafeMutablePointer(bitPattern: buckets.pointee.load(ordering: .relaxed))
    }

    /// The number of entries (0 before the first table).
    var bucketCount: Int { table.map { Int(truncatingIfNeeded: $0[0].load(ordering: .relaxed)) } ?? 0 }

    @inline(__always) func entry(_ index: Int) -> UInt64 { table.unsafelyUnwrapped[index + 1].load(ordering: .relaxed) }

    @inline(__always) func setEntry(_ index: Int, _ value: UInt64) {
        table.unsafelyUnwrapped[index + 1].store(value, ordering: .relaxed)
    }

    /// Empties the table, giving it `count` entries (a power of two, at least the current count):
    /// a new buffer when it grows (the old one is retired), else cleared in place.
    func clearBuckets(count: Int) {
        if let current = table, bucketCount == count {
            for index in 1...count { current[index].store(0, ordering: .relaxed) }
            return
        }
        let fresh = UnsafeMutablePointer<Atomic<UInt64>>.allocate(capacity: count + 1)
        fresh.initialize(to: Atomic<UInt64>(UInt64(count)))
        for index in 1...count { (fresh + index).initialize(to: Atomic<UInt64>(0)) }
        if let old = table { retired.append(UnsafeMutableRawPointer(old)) }
        buckets.pointee.store(UInt(bitPattern: fresh), ordering: .relaxed)
    }

    func setKeySize(_ size: Int) { header[3].store(UInt(bitPattern: size), ordering: .relaxed) }

    /// What compiled code needs to search this table (`InlineHashProbe`) for keys of `keySize`
    /// (4 or 8) bytes whose values `layout` places (one CPU), or nil.
    func probe(keySize: Int, layout: ValueLayout) -> InlineHashProbe? {
        guard let size = UInt32(exactly: keySize), let stride = UInt32(exactly: layout.stride) else { return nil }
        return InlineHashProbe(
            header: UnsafeRawPointer(header), seed: wideSeed, keySize: size, valueBase: layout.base, valueStride: stride)
    }

    /// The key bytes of `slot` (within the store's slot count).
    @inline(__always)
    func key(slot: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: keys.pointee.load(ordering: .relaxed)).unsafelyUnwrapped + 8
            + slot * keyWidth
    }

    /// Makes room for the keys of `slots` slots (the store doubles; the old one is retired).
    func reserveKeys(slots: Int) {
        let width = max(keyWidth, 0)
        let current = UnsafeMutableRawPointer(bitPattern: keys.pointee.load(ordering: .relaxed))
        let held = current.map { Int(truncatingIfNeeded: $0.load(as: UInt64.self)) } ?? 0
        guard slots > held else { return }
        let grown = max(slots, held * 2, 4)
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: 8 + grown * width, alignment: 8)
        fresh.initializeMemory(as: UInt8.self, repeating: 0, count: 8 + grown * width)
        if let current {
            (fresh + 8).copyMemory(from: current + 8, byteCount: held * width)
            retired.append(current)
        }
        fresh.storeBytes(of: UInt64(grown), as: UInt64.self)
        keys.pointee.store(UInt(bitPattern: fresh), ordering: .relaxed)
    }

    // MARK: Reader (no lock)

    /// The slot of `key` as a consistent state of the table gives it (`.some(nil)`: absent), or
    /// nil when a writer was busy: take the map's lock and ask the `SlotIndex` then.
    @inline(__always)
    func concurrentSlot(for key: UnsafeRawBufferPointer) -> Int?? {
        let start = sequence.pointee.load(ordering: .acquiring)
        guard start & 1 == 0 else { return nil }
        let found = find(key.baseAddress, count: key.count)?.slot
        atomicMemoryFence(ordering: .acquiring)
        guard sequence.pointee.load(ordering: .relaxed) == start else { return nil }
        return .some(found)
    }

    // MARK: Search (readers without the lock, and the writer)

    /// The entry (its index in the table) and slot of the `count`-byte key at `key` (nil only
    /// when `count` is 0), or nil when absent. It stays within the buffers it loads whatever it
    /// reads, so a reader without the lock touches only memory the table owns (see the type's
    /// comment); under the map's lock its answer is exact. Each buffer's address is loaded once.
    @inline(__always)
    func find(_ key: UnsafeRawPointer?, count keyCount: Int) -> (index: Int, slot: Int)? {
        let size = keyWidth
        guard size == keyCount,
            let table = UnsafeMutablePointer<Atomic<UInt64>>(bitPattern: buckets.pointee.load(ordering: .relaxed)),
            let store = UnsafeRawPointer(bitPattern: keys.pointee.load(ordering: .relaxed))
        else { return nil }
        let count = Int(truncatingIfNeeded: table[0].load(ordering: .relaxed))
        let slots = UInt(truncatingIfNeeded: store.load(as: UInt64.self))
        let hash = UInt64(hash(key, count: size))
        let mask = count &- 1
        var index = Int(truncatingIfNeeded: hash) & mask
        var left = count
        // Wrapping arithmetic throughout: every value is bounded by the buffers' own sizes.
        while left > 0 {
            let entry = table[index &+ 1].load(ordering: .relaxed)
            if entry == 0 { return nil }
            if entry >> 32 == hash, entry != Self.tombstone {
                // The entry holds slot + 1: a 0 there wraps to a slot past any store.
                let slot = UInt(truncatingIfNeeded: UInt32(truncatingIfNeeded: entry)) &- 1
                guard slot < slots else { return nil } // inconsistent: the check fails
                let stored = store + 8 + Int(bitPattern: slot) &* size
                if size == 0 || Self.equal(stored, key.unsafelyUnwrapped, size) {
                    return (index, Int(bitPattern: slot))
                }
            }
            index = (index &+ 1) & mask
            left &-= 1
        }
        return nil
    }
}

/// The locks behind `struct bpf_spin_lock`: one per lock word, keyed by the word's host address
/// (unique while the map lives), shared by `bpf_spin_lock` / `bpf_spin_unlock` and `BPF_F_LOCK`.
///
/// Taking a lock spins (yielding the thread) until the holder releases it, as the kernel's
/// spin lock does; the 4-byte word in the value reads 1 while the lock is held, 0 otherwise.
final class SpinLocks: Sendable {
    static let shared = SpinLocks()

    private let held = Mutex<Set<UInt>>([])

    /// Takes the lock at `word`, waiting for its holder.
    func lock(_ word: UnsafeMutableRawPointer) {
        let key = UInt(bitPattern: word)
        while !tryLock(key) {
            #if canImport(Glibc)
                sched_yield()
            #endif
        }
        word.storeBytes(of: 1, as: UInt32.self)
    }

    private func tryLock(_ key: UInt) -> Bool {
        held.withLock { $0.insert(key).inserted }
    }

    /// Releases the lock at `word`; false if it was not held.
    @discardableResult
    func unlock(_ word: UnsafeMutableRawPointer) -> Bool {
        let key = UInt(bitPattern: word)
        return held.withLock { set in
            guard set.remove(key) != nil else { return false }
            word.storeBytes(of: 0, as: UInt32.self)
            return true
        }
    }
}

/// Reads a little-endian `UInt32` from the first four bytes of `bytes` (array map keys).
@inline(__always) func littleEndianUInt32(_ bytes: [UInt8]) -> UInt32 {
    guard bytes.count >= 4 else { return 0 }
    return UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
}

/// The four little-endian bytes of `value`.
@inline(__always) func littleEndianBytes(_ value: UInt32) -> [UInt8] {
    [
        UInt8(truncatingIfNeeded: value), UInt8(truncatingIfNeeded: value >> 8),
        UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 24),
    ]
}
