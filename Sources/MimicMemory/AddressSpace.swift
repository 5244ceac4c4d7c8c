/// One row of the translation table: where a slot's region lives and how far it may be accessed.
///
/// `readLimit` / `writeLimit` are the region's length, or 0 where that kind of access must take
/// the slow path (read-only regions have `writeLimit == 0`; rings and empty slots have both 0).
@frozen
public struct SlotEntry: @unchecked Sendable {
    /// The VM address of the region's first byte, generation tag included.
    public var base: UInt64
    public var readLimit: UInt64
    public var writeLimit: UInt64
    public var pointer: UnsafeMutableRawPointer?

    static var empty: SlotEntry { SlotEntry(base: .max, readLimit: 0, writeLimit: 0, pointer: nil) }
}

/// The hot-path view of an address space: a pointer to the slot table and its index mask.
///
/// Translation is O(1): the slot index is taken from bits 32... of the address, the generation
/// tag is checked as part of `address - base`, and the bounds check is two unsigned compares.
/// Copy it into a local for a run of accesses; take a fresh copy after anything that may map or
/// unmap a region (helper calls), because mapping may move the table.
@frozen
public struct TranslationTable: @unchecked Sendable {
    @usableFromInline let entries: UnsafeMutablePointer<SlotEntry>
    @usableFromInline let mask: UInt64

    /// The first entry and the index mask, for code generated to do the same two compares.
    public var entryBase: UnsafeMutablePointer<SlotEntry> { entries }
    public var indexMask: UInt64 { mask }

    @inlinable
    init(entries: UnsafeMutablePointer<SlotEntry>, mask: UInt64) {
        self.entries = entries
        self.mask = mask
    }

    /// The host pointer for reading `size` bytes at `address`, or nil if the fast path refuses.
    @inlinable @inline(__always)
    public func pointer(forReading address: UInt64, size: UInt64) -> UnsafeMutableRawPointer? {
        let entry = entries[Int(truncatingIfNeeded: (address &>> 32) & mask)]
        let offset = address &- entry.base
        guard offset < entry.readLimit, size <= entry.readLimit &- offset else { return nil }
        return entry.pointer.unsafelyUnwrapped + Int(truncatingIfNeeded: offset)
    }

    /// The host pointer for writing `size` bytes at `address`, or nil if the fast path refuses.
    @inlinable @inline(__always)
    public func pointer(forWriting address: UInt64, size: UInt64) -> UnsafeMutableRawPointer? {
        let entry = entries[Int(truncatingIfNeeded: (address &>> 32) & mask)]
        let offset = address &- entry.base
        guard offset < entry.writeLimit, size <= entry.writeLimit &- offset else { return nil }
        return entry.pointer.unsafelyUnwrapped + Int(truncatingIfNeeded: offset)
    }
}

/// Where a new region goes in the VM address space.
public enum Placement: Sendable, Equatable {
    /// Any free slot; the address has bits above 32 set.
    case anywhere
    /// The 32-bit window: the region's addresses fit in 32 bits, so a program can read them from
    /// 32-bit context fields (`xdp_md.data`, `__sk_buff.data_end`) and use them as pointers, as
    /// clang-compiled programs do. One region at a time; it must be at most 256 MiB.
    case low32
}

/// A VM address space: 64-bit VM addresses mapped to host memory regions, every access checked.
///
/// Address layout: bits 48–63 hold a generation tag, bits 32–47 the slot index, bits 0–31 the
/// offset in the region. Slot 0 is the 32-bit window, whose one region sits at a rotating base
/// between 0x1000_0000 and 0xF000_0000. Addresses below 0x1000_0000 (NULL, small integers) are
/// never mapped. When a region is unmapped its slot's generation (or, in the window, its base)
/// changes, so stale addresses of a freed region fault instead of reaching its successor; a
/// stale address becomes valid again only after 65,536 reuses of the same slot. In the window
/// the base advances past each freed region (in 1 MiB steps) and wraps once fewer than 256 MiB
/// remain, so it repeats after 3,328 regions of up to 1 MiB (packets), or fewer when regions are
/// larger (17 of 200 MiB).
///
/// An address space belongs to one process at a time and is not safe for concurrent mapping.
/// Region *storage* may be shared by several address spaces (maps used by many processes).
public final class AddressSpace {
    /// The most slots (regions) an address space can hold, including the window slot.
    public static let slotLimit = 1 << 16
    /// The largest region the 32-bit window holds.
    @inlinable public static var lowWindowLimit: Int { 256 << 20 }
    /// The largest region of any other slot.
    public static let regionLimit = 1 << 32

    // Constants as inlinable getters: read in `renew`'s inlined path without a global's accessor.
    @inlinable static var windowStart: UInt64 { 0x1000_0000 }
    @inlinable static var windowEnd: UInt64 { 0xF000_0000 }
    @inlinable static var windowStep: UInt64 { 1 << 20 }

    /// What a slot holds: nothing (`empty`), a mapped region, or — while retired
    /// (`retireAll(except:)`) — the region it held, with its storage, until `map` or `mapAgain`
    /// renews it in place or `releaseRetired` frees the slot (and lets the storage go).
    ///
    /// Not optional, in a plain buffer: a field is written in place (a store, and for `storage`
    /// the reference count), with no optional projection copying the record per write.
    @usableFromInline
    struct Slot {
        /// The region mapped here, or while retired the region retired from here (its base and
        /// size are those it had then); meaningless while empty.
        @usableFromInline var info: RegionInfo
        /// The region's storage; nil while the slot is empty. Kept while retired, so that mapping
        /// it again changes no reference count (a process reset per packet pays for each).
        var storage: RegionStorage?
        /// Whether the region is retired: every query treats the slot as empty (`mapped(_:)`),
        /// and its table row is empty, so its addresses fault.
        var isRetired: Bool

        static var empty: Slot {
            Slot(info: RegionInfo(name: "", kind: .plain, base: .max, size: 0), storage: nil, isRetired: false)
        }
    }

    /// A region as queries see it: a slot that is mapped, not retired.
    struct Mapped {
        let info: RegionInfo
        let storage: RegionStorage
    }

    // `@exclusivity(unchecked)`: an address space is used by one thread at a time (see above),
    // and none of these is lent out `inout` across a call that could reach it again, so the
    // dynamic checks (a thread-local access set per access: ~10% of a packet's reset + run in
    // `mimic run --pcap`) buy nothing.
    @usableFromInline @exclusivity(unchecked) private(set) var entries: UnsafeMutablePointer<SlotEntry>
    @usableFromInline @exclusivity(unchecked) private(set) var capacity: Int
    /// Per slot (`capacity` of them, like `entries`, all initialized; the first `slotCount` in
    /// use): its record. A buffer rather than an array, so a revival and `retireAll` write a
    /// record in place with no uniqueness check or bounds check.
    @usableFromInline @exclusivity(unchecked) private(set) var slots: UnsafeMutablePointer<Slot>
    @exclusivity(unchecked) private var slotCount = 1 // slot 0: the 32-bit window
    /// Per slot (`capacity` of them, like `entries`): the generation tag of its next or current
    /// region. A buffer rather than an array, as `retired`: no uniqueness check per write.
    @usableFromInline @exclusivity(unchecked) private(set) var generations: UnsafeMutablePointer<UInt16>
    @exclusivity(unchecked) private var freeSlots: [Int] = []
    @exclusivity(unchecked) private var freeHead = 0
    @usableFromInline @exclusivity(unchecked) var windowBase: UInt64 = AddressSpace.windowStart
    /// The slots `retireAll(except:)` retired, in order, in the first `retiredCount` elements;
    /// one revived or released since is left in the list (the slot's record says whether it is
    /// still retired, `Slot.isRetired`), so the rest are freed in the same order. A buffer of
    /// `capacity` elements (a slot is retired at most once between two `releaseRetired()`),
    /// reused: nothing is built or emptied per reset, and no array uniqueness check is made per
    /// write.
    @exclusivity(unchecked) private var retired: UnsafeMutablePointer<Int>
    @usableFromInline @exclusivity(unchecked) var retiredCount = 0
    /// How many of them are still retired (neither revived nor released).
    @usableFromInline @exclusivity(unchecked) var retiredLive = 0
    /// Changed by everything that changes what is mapped where (`mappingEpoch`). Usable from
    /// inlinable code: `mappingEpoch` is read across modules for every packet's reset, and a
    /// stored property of a class read from another module is a call.
    @usableFromInline @exclusivity(unchecked) var epoch: UInt64 = 0
    /// Regions mapped now, not counting retired ones (`regionCount`).
    @exclusivity(unchecked) private var liveCount = 0
    /// The pair of regions the last `renew` moved, and the epoch it left (see `Renewal`).
    @usableFromInline @exclusivity(unchecked) var lastRenewal = Renewal()

    /// What `renew(_:at:count:_:at:)` proved and did last, for a pair whose first region is the
    /// window's (a packet) and second another slot's: the two storages (by identity), the second's
    /// slot, the bases it gave them, and the epoch after it (`UInt64.max`: nothing to trust).
    /// While the epoch is unchanged nothing was mapped, unmapped or moved since, so those slots
    /// still hold those storages at those bases, and the next renewal of the same pair at the
    /// same bases needs none of the slot and row checks (a process reset per packet renews the
    /// same pair: `Process.reset(context:)`'s quick path). Setting a `broker` clears it.
    @usableFromInline
    struct Renewal {
        @usableFromInline var epoch = UInt64.max
        @usableFromInline var first: UnsafeMutableRawPointer?
        @usableFromInline var second: UnsafeMutableRawPointer?
        @usableFromInline var firstBase = UInt64.max
        @usableFromInline var secondBase = UInt64.max
        @usableFromInline var secondSlot = 0
        /// Whether the first region's row allows reads and writes (its kind), for its new size.
        @usableFromInline var firstReadable = false
        @usableFromInline var firstWritable = false

        @usableFromInline init() {}
    }

    /// Memory outside this address space that `read` and `write` (and so `load`, `store` and
    /// `readCString`) fall back to for addresses whose slot holds no region of this space.
    ///
    /// A plugin's view of its host's VM memory: the Linux emulator built as a plugin runs its
    /// helpers on a process of its own whose address space forwards every access to the host's
    /// bounds-checked memory services. `resolve`, `storage(containing:)` and the interpreter's
    /// translation table never consult it: foreign memory is reachable only by copying.
    @exclusivity(unchecked) public var foreign: (any ForeignMemory)?

    /// Decides where `map` puts new regions, and hears of `unmap`: with a broker, `map` asks it
    /// for the address, then maps the storage there (`map(_:name:kind:at:)`), and `unmap` tells
    /// it after removing the region.
    ///
    /// A plugin's mirror of its host's memory: the Linux emulator built as a plugin maps context
    /// and packet buffers into the host process through the broker, then at the same address in
    /// its own process, so pointers are the same on both sides. Nil (the default) for every
    /// address space that owns its layout.
    @exclusivity(unchecked) public var broker: (any RegionBroker)? {
        didSet { lastRenewal.epoch = .max } // a broker must hear of every move: `renew` declines
    }

    /// Creates an empty address space.
    public init() {
        capacity = 16
        entries = .allocate(capacity: capacity)
        entries.initialize(repeating: .empty, count: capacity)
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: .empty, count: capacity)
        generations = .allocate(capacity: capacity)
        generations.initialize(repeating: 0, count: capacity)
        retired = .allocate(capacity: capacity)
    }

    /// Creates an address space that maps the same regions, at the same addresses, as `other`.
    ///
    /// Used to give each process the shared regions (maps, global data) of its VM.
    public convenience init(copying other: AddressSpace) {
        self.init()
        growTable(to: other.capacity)
        entries.update(from: other.entries, count: other.capacity)
        slots.update(from: other.slots, count: other.slotCount)
        slotCount = other.slotCount
        generations.update(from: other.generations, count: other.capacity)
        freeSlots = other.freeSlots
        freeHead = other.freeHead
        windowBase = other.windowBase
        retired.initialize(from: other.retired, count: other.retiredCount)
        retiredCount = other.retiredCount
        retiredLive = other.retiredLive
        liveCount = other.liveCount
        // Both spaces hold these now: neither may treat one as its owner's alone.
        for slot in 0..<slotCount { slots[slot].storage?.lent = true }
    }

    deinit {
        entries.deinitialize(count: capacity)
        entries.deallocate()
        slots.deinitialize(count: capacity)
        slots.deallocate()
        generations.deallocate()
        retired.deallocate()
    }

    /// The current translation table. Take a new one after mapping or unmapping.
    @inlinable
    public var table: TranslationTable { _table }

    @inlinable
    var _table: TranslationTable { TranslationTable(entries: entries, mask: UInt64(capacity - 1)) }

    // MARK: Mapping

    /// Maps `storage` as a region named `name` and returns its VM base address.
    @discardableResult
    public func map(
        _ storage: RegionStorage, name: String, kind: RegionKind = .plain, placement: Placement = .anywhere
    ) throws(AddressSpaceError) -> UInt64 {
        if let broker {
            storage.lent = true // the broker may keep it
            let address = try broker.place(storage, name: name, kind: kind, placement: placement)
            do {
                return try map(storage, name: name, kind: kind, at: address)
            } catch {
                broker.release(address)
                throw error
            }
        }
        if retiredLive != 0, let base = revive(storage, name: name, kind: kind, placement: placement) {
            return base
        }
        let size = storage.count
        switch placement {
        case .low32:
            guard size <= Self.lowWindowLimit else {
                throw .regionTooLarge(name: name, size: size, limit: Self.lowWindowLimit)
            }
            if retiredLive != 0 { releaseRetired(slot: 0) }
            if let occupant = mapped(0) { throw .lowWindowOccupied(by: occupant.info.name) }
            let base = windowBase
            install(slot: 0, base: base, storage: storage, name: name, kind: kind)
            return base
        case .anywhere:
            guard size <= Self.regionLimit else {
                throw .regionTooLarge(name: name, size: size, limit: Self.regionLimit)
            }
            let slot = try takeSlot()
            let base = UInt64(generations[slot]) << 48 | UInt64(slot) << 32
            install(slot: slot, base: base, storage: storage, name: name, kind: kind)
            return base
        }
    }

    /// Maps `storage` at exactly `address`, which another address space chose (the slot's first
    /// byte with its generation tag, or an address in the 32-bit window's range): the slot must
    /// be free here. Used to mirror a region at the same address in two address spaces.
    @discardableResult
    public func map(
        _ storage: RegionStorage, name: String, kind: RegionKind = .plain,
        at address: UInt64
    ) throws(AddressSpaceError) -> UInt64 {
        let size = storage.count
        let slot = Int(truncatingIfNeeded: (address >> 32) & 0xFFFF)
        if slot == 0 {
            guard address >= Self.windowStart, address < Self.windowEnd else {
                throw .addressUnavailable(address, reason: "outside the 32-bit window")
            }
            guard size <= Self.lowWindowLimit else {
                throw .regionTooLarge(name: name, size: size, limit: Self.lowWindowLimit)
            }
            if retiredLive != 0 { releaseRetired(slot: 0) }
            if let occupant = mapped(0) { throw .lowWindowOccupied(by: occupant.info.name) }
            install(slot: 0, base: address, storage: storage, name: name, kind: kind)
            return address
        }
        guard address & 0xFFFF_FFFF == 0 else {
            throw .addressUnavailable(address, reason: "not the first byte of a region slot")
        }
        guard size <= Self.regionLimit else { throw .regionTooLarge(name: name, size: size, limit: Self.regionLimit) }
        if slot >= capacity { growTable(to: max(capacity * 2, (slot + 1).nextPowerOfTwo)) }
        slotCount = max(slotCount, slot + 1) // new slots are empty, of generation 0
        if retiredLive != 0 { releaseRetired(slot: slot) }
        if let occupant = mapped(slot) {
            throw .addressUnavailable(address, reason: "its slot holds region \(occupant.info.name)")
        }
        generations[slot] = UInt16(truncatingIfNeeded: address >> 48)
        if let index = freeSlots[freeHead...].firstIndex(of: slot) { freeSlots.remove(at: index) }
        install(slot: slot, base: address, storage: storage, name: name, kind: kind)
        return address
    }

    /// Allocates zeroed storage of `size` bytes, maps it, and returns its address and storage.
    public func allocate(
        size: Int, name: String, kind: RegionKind = .plain, placement: Placement = .anywhere
    ) throws(AddressSpaceError) -> (address: UInt64, storage: RegionStorage) {
        guard size >= 0, size <= (placement == .low32 ? Self.lowWindowLimit : Self.regionLimit) else {
            throw .regionTooLarge(
                name: name, size: size, limit: placement == .low32 ? Self.lowWindowLimit : Self.regionLimit)
        }
        let storage = RegionStorage(count: size)
        return (try map(storage, name: name, kind: kind, placement: placement), storage)
    }

    /// Removes the region that starts at `base`. Its addresses fault from now on.
    public func unmap(_ base: UInt64) throws(AddressSpaceError) {
        let slot = Int(truncatingIfNeeded: (base >> 32) & 0xFFFF)
        guard let current = mapped(slot), current.info.base == base else {
            throw .notMapped(base)
        }
        slots[slot] = .empty
        entries[slot] = .empty
        epoch &+= 1
        liveCount -= 1
        defer { broker?.release(base) }
        freed(slot: slot, size: current.info.size)
    }

    /// What unmapping a region of `size` bytes from `slot` does besides emptying it: the window's
    /// base moves past it (so stale packet pointers do not reach the next packet), another slot's
    /// generation is bumped and the slot goes to the free list.
    private func freed(slot: Int, size: Int) {
        if slot == 0 {
            // Wrapping arithmetic: the base stays below 2^32 and a size below 2^32.
            let next = windowBase &+ Self.windowStep &* (UInt64(truncatingIfNeeded: size) &>> 20 &+ 1)
            windowBase = next &+ UInt64(Self.lowWindowLimit) > Self.windowEnd ? Self.windowStart : next
        } else {
            generations[slot] &+= 1
            freeSlots.append(slot)
        }
    }

    /// The regions mapped now, to keep in a later `unmapAll(except:)`.
    public func snapshot() -> RegionSnapshot {
        RegionSnapshot(bases: (0..<slotCount).map { entries[$0].base })
    }

    /// Unmaps every region that is not one of `kept` (e.g. a process's context and packet,
    /// keeping the shared regions and the stack it was created with).
    public func unmapAll(except kept: RegionSnapshot) {
        releaseRetired()
        // Slot by slot against the snapshot's base for that slot: no hashing, and the
        // translation table's bases rather than `slots`, whose reading copies name and storage.
        for slot in 0..<slotCount {
            let base = entries[slot].base
            guard base != SlotEntry.empty.base, slot >= kept.bases.count || kept.bases[slot] != base else { continue }
            try? unmap(base) // the base was just read from the table: it is mapped
        }
    }

    /// Retires every region that is not one of `kept`: from now on it faults and is not listed,
    /// exactly as after `unmapAll(except:)`, but its slot is held back with its storage, so that
    /// mapping the same storage again (a process's next packet refilled into the previous
    /// packet's buffer, `Process.reset`), with `map` or, knowing the old address,
    /// `mapAgain(_:retiredFrom:)`, only renews it in place: a new address in that slot — the
    /// window's base moved on, or the slot's generation bumped — with no reference count changed,
    /// where unmapping and mapping again would pass the slot through the free list. While retired
    /// the storage is still held here (so `isKnownUniquelyReferenced` says it is shared: see
    /// `RegionStorage.isLent`). In the window
    /// the new address is the one unmapping and mapping would give; elsewhere it is the same
    /// slot's next generation. Addresses of a retired region fault either way. Call
    /// `releaseRetired()` when the new regions are in place: it frees the slots no map took back.
    /// With a `broker`, this is `unmapAll(except:)`.
    public func retireAll(except kept: RegionSnapshot) {
        guard broker == nil else {
            unmapAll(except: kept)
            return
        }
        releaseRetired() // the retired list is empty from here
        // Slot by slot against the snapshot's base for that slot, as `unmapAll(except:)`. The
        // buffers, the snapshot and the count are locals: stores through this class's fields
        // would otherwise make the compiler load them again for every slot.
        let entries = entries
        let slots = slots
        let retired = retired
        var count = 0
        kept.bases.withUnsafeBufferPointer { kept in
            for slot in 0..<slotCount {
                let base = entries[slot].base
                guard base != SlotEntry.empty.base, slot >= kept.count || kept[slot] != base else { continue }
                entries[slot] = .empty
                // In place: the slot keeps its record (name, base, size, storage). (A non-empty
                // table row always has its record: `install` and `revive` write both.)
                slots[slot].isRetired = true
                retired[count] = slot
                count &+= 1
            }
        }
        retiredCount = count
        retiredLive = count
        epoch &+= 1
        liveCount -= count
    }

    /// Frees the slots of the regions `retireAll(except:)` retired that no `map` took back, as
    /// unmapping them would have.
    @inlinable
    public func releaseRetired() {
        // Inline: the common call finds nothing retired, or everything revived.
        if retiredLive != 0 {
            releaseRetiredSlots()
        } else {
            retiredCount = 0
        }
    }

    @usableFromInline
    func releaseRetiredSlots() {
        for index in 0..<retiredCount where slots[retired[index]].isRetired { release(retired: retired[index]) }
        retiredCount = 0
        retiredLive = 0
    }

    /// Frees `slot` if it is retired (before something else is mapped there).
    private func releaseRetired(slot: Int) {
        guard slots[slot].isRetired else { return }
        retiredLive -= 1
        release(retired: slot)
    }

    /// Empties the retired `slot` and frees it, as unmapping its region would have.
    private func release(retired slot: Int) {
        let size = slots[slot].info.size
        slots[slot] = .empty
        epoch &+= 1
        freed(slot: slot, size: size)
    }

    /// Maps `storage` again, at a new address, in the slot it was retired from at `base` (see
    /// `retireAll(except:)`): what `map` does for storage it finds retired, for a caller that
    /// knows where its region was — a context refilling its previous buffer — and keeps the
    /// region's name and kind. Only the slot `base` names is looked at, and the name is not
    /// compared. Returns the new base address, or nil (nothing changed) when that slot does not
    /// hold `storage` retired from `base` (with a `broker`, nothing is ever retired), or when
    /// `storage` has grown past what the slot holds: then `map` it.
    public func mapAgain(_ storage: RegionStorage, retiredFrom base: UInt64) -> UInt64? {
        let slot = Int(truncatingIfNeeded: (base >> 32) & 0xFFFF)
        guard retiredLive != 0, slot < slotCount else { return nil }
        let record = slots + slot
        guard record.pointee.isRetired, record.pointee.info.base == base, record.pointee.storage === storage else {
            return nil
        }
        let size = storage.count
        guard size <= (slot == 0 ? Self.lowWindowLimit : Self.regionLimit) else { return nil }
        return revive(slot: slot, storage: storage, size: size)
    }

    /// Maps `storage` again in the retired slot that mapped it, at a new address (see
    /// `retireAll(except:)`); nil when no retired slot of that placement mapped it, or it has
    /// grown past what the slot holds.
    private func revive(
        _ storage: RegionStorage, name: String, kind: RegionKind, placement: Placement
    ) -> UInt64? {
        for index in 0..<retiredCount {
            let slot = retired[index]
            guard slots[slot].isRetired, slots[slot].storage === storage else { continue }
            let size = storage.count
            guard (slot == 0) == (placement == .low32), size <= (slot == 0 ? Self.lowWindowLimit : Self.regionLimit)
            else { return nil }
            // The record is written in place: the name only if it changed (no string copied for
            // the same name).
            if slots[slot].info.name != name { slots[slot].info.name = name }
            slots[slot].info.kind = kind
            return revive(slot: slot, storage: storage, size: size)
        }
        return nil
    }

    /// Renews the retired `slot`, which holds `storage`, at a new address — the window's next
    /// base, as for an unmapped region, or the slot's next generation — with `size` (the
    /// storage's count) and the kind in its record; returns the new base. The slot kept the
    /// storage while retired: no reference count changes.
    @inline(__always)
    private func revive(slot: Int, storage: RegionStorage, size: Int) -> UInt64 {
        // The record through a local pointer: each store through `slots` (a field of this class)
        // would have the compiler load the buffer's address again.
        let record = slots + slot
        retiredLive &-= 1
        liveCount &+= 1
        record.pointee.isRetired = false
        return renew(record: record, slot: slot, storage: storage, size: size, rowIsLive: false)
    }

    /// Gives the region of `slot` (its `record`) a new address — the window's next base, as for
    /// an unmapped region, or the slot's next generation — and `size`, writing the record and the
    /// table row; returns the new base. What a retired region's revival and an in-place renewal
    /// (`renew`) share. `rowIsLive`: the table row is still the region's (an in-place renewal),
    /// so with the size unchanged only its base is written.
    @inline(__always)
    private func renew(
        record: UnsafeMutablePointer<Slot>, slot: Int, storage: RegionStorage, size: Int, rowIsLive: Bool
    ) -> UInt64 {
        epoch &+= 1
        let base: UInt64
        if slot == 0 {
            freed(slot: 0, size: record.pointee.info.size)
            base = windowBase
        } else {
            let generation = generations[slot] &+ 1
            generations[slot] = generation
            base = UInt64(generation) << 48 | UInt64(slot) << 32
        }
        record.pointee.info.base = base
        let row = entries + slot
        if rowIsLive, record.pointee.info.size == size {
            row.pointee.base = base // the row of this storage, size and kind: only the base changes
        } else {
            record.pointee.info.size = size
            row.pointee = Self.entry(base: base, kind: record.pointee.info.kind, pointer: storage.pointer, size: size)
        }
        return base
    }

    /// Moves two mapped regions — `first`'s storage at `firstBase`, given a new count
    /// `firstCount` (`RegionStorage.reuse(count:)`), and `second`'s at `secondBase`, in another
    /// slot — to new addresses in place: exactly the addresses, sizes and table rows that
    /// retiring both (`retireAll(except:)`) and mapping them again (`mapAgain(_:retiredFrom:)`,
    /// `first` then `second`) would give, without passing through the retired state. Addresses
    /// of the old regions fault from now on. Only for storages that are not lent
    /// (`RegionStorage.isLent`): the caller refills them in place for their new regions, which
    /// only an owner that no one else can reach may do. Nil, changing nothing, when either is not
    /// mapped there with that storage, either is lent, `firstCount` does not fit `first`'s
    /// capacity or its slot, or a `broker` places regions (it would have to hear of the move).
    /// Renewing the pair the last call renewed, at the bases it returned, with the mapping epoch
    /// unchanged since, skips the slot and row checks (`Renewal`: the epoch proves them).
    ///
    /// For a process re-armed with its previous context's regions (`Process.reset(context:)`'s
    /// quick path): its packet buffer (refilled with the next packet) and context struct.
    @inlinable
    public func renew(
        _ first: RegionStorage, at firstBase: UInt64, count firstCount: Int, _ second: RegionStorage,
        at secondBase: UInt64
    ) -> (UInt64, UInt64)? {
        // Inline in the caller (a process's reset, another module): the pair renewed last, nothing
        // moved since (`Renewal`). What may change without the epoch is checked: the lent flags
        // and the count.
        let slot = lastRenewal.secondSlot
        let slots = slots
        guard lastRenewal.epoch == epoch, lastRenewal.firstBase == firstBase, lastRenewal.secondBase == secondBase,
            lastRenewal.first == Self.identity(first), lastRenewal.second == Self.identity(second),
            (slots + slot).pointee.info.size == second.count
        else { return renewChecking(first, at: firstBase, count: firstCount, second, at: secondBase) }
        guard !first.lent, !second.lent, first.ownsMemory, firstCount >= 0, firstCount <= first.capacity,
            firstCount <= Self.lowWindowLimit
        else { return nil }
        first.storedCount = firstCount // `reuse(count:)`
        // The window's region (slot 0): its next base, as for an unmapped region (`freed`).
        let entries = entries
        let oldSize = slots.pointee.info.size
        let next = windowBase &+ Self.windowStep &* (UInt64(truncatingIfNeeded: oldSize) &>> 20 &+ 1)
        let newFirst = next &+ UInt64(Self.lowWindowLimit) > Self.windowEnd ? Self.windowStart : next
        windowBase = newFirst
        slots.pointee.info.base = newFirst
        entries.pointee.base = newFirst
        if oldSize != firstCount {
            slots.pointee.info.size = firstCount
            let length = UInt64(truncatingIfNeeded: firstCount)
            entries.pointee.readLimit = lastRenewal.firstReadable ? length : 0
            entries.pointee.writeLimit = lastRenewal.firstWritable ? length : 0
        }
        // The other region: its slot's next generation (its size, its storage's count, unchanged).
        let generation = generations[slot] &+ 1
        generations[slot] = generation
        let newSecond = UInt64(generation) << 48 | UInt64(slot) << 32
        (slots + slot).pointee.info.base = newSecond
        (entries + slot).pointee.base = newSecond
        epoch &+= 2
        lastRenewal.epoch = epoch
        lastRenewal.firstBase = newFirst
        lastRenewal.secondBase = newSecond
        return (newFirst, newSecond)
    }

    /// `renew(_:at:count:_:at:)` with every check, which arms `Renewal` for the next one.
    @usableFromInline
    func renewChecking(
        _ first: RegionStorage, at firstBase: UInt64, count firstCount: Int, _ second: RegionStorage,
        at secondBase: UInt64
    ) -> (UInt64, UInt64)? {
        let firstSlot = Int(truncatingIfNeeded: (firstBase >> 32) & 0xFFFF)
        let secondSlot = Int(truncatingIfNeeded: (secondBase >> 32) & 0xFFFF)
        // The buffers as locals, and the checks cheapest first: the table rows' bases (a load
        // each), then the records' storages by identity (no reference count).
        let slots = slots
        let entries = entries
        guard broker == nil, firstSlot != secondSlot, firstSlot < capacity, secondSlot < capacity,
            entries[firstSlot].base == firstBase, entries[secondSlot].base == secondBase,
            Self.holds(slots + firstSlot, first), Self.holds(slots + secondSlot, second), !first.lent, !second.lent,
            firstCount >= 0, firstCount <= (firstSlot == 0 ? Self.lowWindowLimit : Self.regionLimit),
            first.reuse(count: firstCount)
        else { return nil }
        let renewed = (
            renew(record: slots + firstSlot, slot: firstSlot, storage: first, size: firstCount, rowIsLive: true),
            renew(record: slots + secondSlot, slot: secondSlot, storage: second, size: second.count, rowIsLive: true)
        )
        // Trusted next time only in the shape it handles: a window region and another slot's,
        // whose size is its storage's count.
        if firstSlot == 0, (slots + secondSlot).pointee.info.size == second.count {
            lastRenewal.first = Self.identity(first)
            lastRenewal.second = Self.identity(second)
            lastRenewal.firstBase = renewed.0
            lastRenewal.secondBase = renewed.1
            lastRenewal.secondSlot = secondSlot
            let kind = slots.pointee.info.kind
            lastRenewal.firstReadable = kind != .ring
            lastRenewal.firstWritable = kind == .plain
            lastRenewal.epoch = epoch
        } else {
            lastRenewal.epoch = .max
        }
        return renewed
    }

    /// A storage's identity, for comparisons without reference counting.
    @inlinable @inline(__always)
    static func identity(_ storage: RegionStorage) -> UnsafeMutableRawPointer {
        Unmanaged.passUnretained(storage).toOpaque()
    }

    /// Whether `record` holds `storage` (by identity, read in place: no reference count).
    @inline(__always)
    private static func holds(_ record: UnsafeMutablePointer<Slot>, _ storage: RegionStorage) -> Bool {
        guard let held = record.pointee.storage else { return false }
        return Unmanaged.passUnretained(held).toOpaque() == Unmanaged.passUnretained(storage).toOpaque()
    }

    /// A number that changes whenever what is mapped where changes — a region mapped, unmapped,
    /// retired, renewed or freed from retirement — and never otherwise: two equal readings mean
    /// the same regions at the same addresses in between (bytes written into them aside).
    /// Inlinable: a load, not a call, in the process's reset (another module).
    @inlinable
    public var mappingEpoch: UInt64 { epoch }

    /// How many regions are mapped now (retired ones not counted).
    public var regionCount: Int { liveCount }

    /// The regions currently mapped, in slot order.
    public var regions: [RegionInfo] {
        (0..<slotCount).compactMap { slots[$0].storage == nil || slots[$0].isRetired ? nil : slots[$0].info }
    }

    /// The region containing `address`, if any.
    public func region(containing address: UInt64) -> RegionInfo? {
        slot(containing: address)?.info
    }

    /// The storage behind the region that contains `address`, and the offset of `address` in it.
    ///
    /// For a ring the offset is wrapped, so it always lies inside the storage.
    /// The storage is marked lent (`RegionStorage.isLent`): the caller may keep it.
    public func storage(containing address: UInt64) -> (storage: RegionStorage, offset: Int)? {
        guard let slot = slot(containing: address) else { return nil }
        slot.storage.lent = true
        let offset = Int(address - slot.info.base)
        if slot.info.kind == .ring {
            guard slot.info.size > 0 else { return nil }
            return (slot.storage, offset % slot.info.size)
        }
        return (slot.storage, offset)
    }

    /// The region mapped in slot `index`: nil for an empty or retired slot.
    private func mapped(_ index: Int) -> Mapped? {
        guard index >= 0, index < slotCount, !slots[index].isRetired, let storage = slots[index].storage else {
            return nil
        }
        return Mapped(info: slots[index].info, storage: storage)
    }

    private func slot(containing address: UInt64) -> Mapped? {
        let index = Int(truncatingIfNeeded: (address >> 32) & 0xFFFF)
        guard let slot = mapped(index) else { return nil }
        if slot.info.kind == .ring {
            // A ring spans its whole slot: offsets wrap around its length.
            return address >= slot.info.base && address - slot.info.base < 1 << 32 ? slot : nil
        }
        return slot.info.contains(address) ? slot : nil
    }

    private func takeSlot() throws(AddressSpaceError) -> Int {
        if freeHead < freeSlots.count {
            let slot = freeSlots[freeHead]
            freeHead += 1
            if freeHead > 64, freeHead * 2 > freeSlots.count {
                freeSlots.removeFirst(freeHead)
                freeHead = 0
            }
            return slot
        }
        guard slotCount < Self.slotLimit else { throw .outOfSlots(limit: Self.slotLimit) }
        if slotCount == capacity { growTable(to: capacity * 2) }
        slotCount += 1 // the new slot is empty, of generation 0
        return slotCount - 1
    }

    private func growTable(to newCapacity: Int) {
        guard newCapacity > capacity else { return }
        let grown = UnsafeMutablePointer<SlotEntry>.allocate(capacity: newCapacity)
        grown.initialize(repeating: .empty, count: newCapacity)
        grown.update(from: entries, count: capacity)
        entries.deinitialize(count: capacity)
        entries.deallocate()
        entries = grown
        let grownGenerations = UnsafeMutablePointer<UInt16>.allocate(capacity: newCapacity)
        grownGenerations.initialize(repeating: 0, count: newCapacity)
        grownGenerations.update(from: generations, count: capacity)
        generations.deallocate()
        generations = grownGenerations
        let grownSlots = UnsafeMutablePointer<Slot>.allocate(capacity: newCapacity)
        grownSlots.moveInitialize(from: slots, count: capacity)
        (grownSlots + capacity).initialize(repeating: .empty, count: newCapacity - capacity)
        slots.deallocate()
        slots = grownSlots
        let grownRetired = UnsafeMutablePointer<Int>.allocate(capacity: newCapacity)
        grownRetired.initialize(from: retired, count: retiredCount)
        retired.deallocate()
        retired = grownRetired
        capacity = newCapacity
    }

    private func install(slot: Int, base: UInt64, storage: RegionStorage, name: String, kind: RegionKind) {
        epoch &+= 1
        liveCount += 1
        let info = RegionInfo(name: name, kind: kind, base: base, size: storage.count)
        slots[slot] = Slot(info: info, storage: storage, isRetired: false)
        entries[slot] = Self.entry(base: base, kind: kind, pointer: storage.pointer, size: storage.count)
    }

    /// The table row of a region of `kind` and `size` bytes at `base`, its bytes at `pointer`.
    private static func entry(base: UInt64, kind: RegionKind, pointer: UnsafeMutableRawPointer, size: Int) -> SlotEntry {
        let length = UInt64(size)
        return SlotEntry(
            base: base,
            readLimit: kind == .ring ? 0 : length,
            writeLimit: kind == .plain ? length : 0,
            pointer: pointer
        )
    }

    // MARK: Checked access (slow path, host code, helpers)

    /// Resolves an access to a host pointer, or describes why it faults.
    ///
    /// Rings resolve only when the access does not straddle the wrap point; `read` and `write`
    /// handle that case byte by byte.
    public func resolve(_ address: UInt64, size: Int, access: MemoryAccess) -> Result<
        UnsafeMutableRawPointer, MemoryFault
    > {
        guard let slot = slot(containing: address) else {
            return .failure(
                MemoryFault(
                    reason: slotRegion(address) == nil ? .unmapped : .outOfBounds,
                    access: access, address: address, size: size, region: slotRegion(address)))
        }
        let info = slot.info
        if access == .write, info.kind == .readOnly {
            return .failure(MemoryFault(reason: .readOnly, access: access, address: address, size: size, region: info))
        }
        var offset = Int(address - info.base)
        if info.kind == .ring {
            guard info.size > 0 else {
                return .failure(
                    MemoryFault(reason: .outOfBounds, access: access, address: address, size: size, region: info))
            }
            offset %= info.size
        }
        guard size >= 0, size <= info.size - offset else {
            return .failure(
                MemoryFault(reason: .outOfBounds, access: access, address: address, size: size, region: info))
        }
        return .success(slot.storage.pointer + offset)
    }

    /// The region whose slot `address` selects, even when `address` lies outside it.
    private func slotRegion(_ address: UInt64) -> RegionInfo? {
        // NULL and small integers are never mapped, even while the 32-bit window holds a region.
        guard address >= Self.windowStart else { return nil }
        let index = Int(truncatingIfNeeded: (address >> 32) & 0xFFFF)
        guard let slot = mapped(index) else { return nil }
        // A different generation means the address belongs to a freed region: say "unmapped".
        return (address >> 48) == (slot.info.base >> 48) ? slot.info : nil
    }

    /// Why an access of `size` bytes at `address` would fault, or nil if it would not: `resolve`,
    /// extended to foreign memory (checked by copying, so use it for checks before side effects,
    /// not on hot paths).
    public func fault(at address: UInt64, size: Int, access: MemoryAccess) -> MemoryFault? {
        guard case .failure(let fault) = resolve(address, size: size, access: access) else { return nil }
        if let foreign, size > 0, slotRegion(address) == nil {
            var bytes = [UInt8](repeating: 0, count: size)
            let outcome = bytes.withUnsafeMutableBytes { buffer in
                Result { () throws(MemoryFault) in try foreign.read(address, into: buffer) }
            }
            if case .failure(var readFault) = outcome {
                readFault.access = access
                return readFault
            }
            guard access == .write else { return nil }
            // Writing back what is there checks the write without changing anything.
            let written = bytes.withUnsafeBytes { buffer in
                Result { () throws(MemoryFault) in try foreign.write(address, from: buffer) }
            }
            if case .failure(let writeFault) = written { return writeFault }
            return nil
        }
        if let slot = slot(containing: address), slot.info.kind == .ring, size >= 0, size <= slot.info.size {
            return nil // a ring access straddling the wrap point: `read` / `write` handle it
        }
        return fault
    }

    /// Reads `count` bytes at `address` (rings wrap).
    public func read(_ address: UInt64, count: Int) throws(MemoryFault) -> [UInt8] {
        if count == 0 { return [] }
        switch resolve(address, size: count, access: .read) {
        case .success(let pointer):
            return Array(UnsafeRawBufferPointer(start: pointer, count: count))
        case .failure(let fault):
            if let foreign, count > 0, slotRegion(address) == nil {
                var bytes = [UInt8](repeating: 0, count: count)
                let outcome = bytes.withUnsafeMutableBytes { buffer in
                    Result { () throws(MemoryFault) in try foreign.read(address, into: buffer) }
                }
                try outcome.get()
                return bytes
            }
            // A ring wraps once at most: a read longer than the ring is refused before anything is
            // allocated (the count can be a program's, e.g. `bpf_probe_read`'s size).
            guard let slot = slot(containing: address), slot.info.kind == .ring, count >= 0, count <= slot.info.size
            else { throw fault }
            return (0..<count).map { i in
                slot.storage.pointer.load(
                    fromByteOffset: (Int(address - slot.info.base) + i) % slot.info.size, as: UInt8.self)
            }
        }
    }

    /// Writes `bytes` at `address` (rings wrap).
    public func write(_ bytes: some Collection<UInt8>, at address: UInt64) throws(MemoryFault) {
        if bytes.isEmpty { return }
        switch resolve(address, size: bytes.count, access: .write) {
        case .success(let pointer):
            var i = 0
            for byte in bytes {
                pointer.storeBytes(of: byte, toByteOffset: i, as: UInt8.self)
                i += 1
            }
        case .failure(let fault):
            if let foreign, slotRegion(address) == nil {
                let outcome = Array(bytes).withUnsafeBytes { buffer in
                    Result { () throws(MemoryFault) in try foreign.write(address, from: buffer) }
                }
                try outcome.get()
                return
            }
            guard let slot = slot(containing: address), slot.info.kind == .ring else { throw fault }
            var i = Int(address - slot.info.base)
            for byte in bytes {
                slot.storage.pointer.storeBytes(of: byte, toByteOffset: i % slot.info.size, as: UInt8.self)
                i += 1
            }
        }
    }

    /// Loads a little-endian integer of `size` (1, 2, 4 or 8) bytes.
    public func load(_ address: UInt64, size: Int) throws(MemoryFault) -> UInt64 {
        let bytes = try read(address, count: size)
        var value: UInt64 = 0
        for (i, byte) in bytes.enumerated() { value |= UInt64(byte) << (8 * i) }
        return value
    }

    /// Stores the low `size` (1, 2, 4 or 8) bytes of `value`, little-endian.
    public func store(_ value: UInt64, at address: UInt64, size: Int) throws(MemoryFault) {
        try write((0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }, at: address)
    }

    /// Reads a NUL-terminated string of at most `maxLength` bytes (without the NUL).
    public func readCString(_ address: UInt64, maxLength: Int = 4096) throws(MemoryFault) -> [UInt8] {
        var result: [UInt8] = []
        var cursor = address
        while result.count < maxLength {
            let byte = try read(cursor, count: 1)[0]
            if byte == 0 { return result }
            result.append(byte)
            cursor &+= 1
        }
        return result
    }
}

/// Places the regions of an address space that mirrors another one (`AddressSpace.broker`).
public protocol RegionBroker: AnyObject {
    /// Maps `storage` in the other address space and returns the address it got there.
    func place(_ storage: RegionStorage, name: String, kind: RegionKind, placement: Placement) throws(AddressSpaceError)
        -> UInt64
    /// The region at `base` was unmapped here; unmap it there too (ignoring one that is gone).
    func release(_ base: UInt64)
}

extension Int {
    /// The smallest power of two at least `self` (1 for 0 and below).
    var nextPowerOfTwo: Int {
        var value = 1
        while value < self { value <<= 1 }
        return value
    }
}

/// The regions an address space held at one moment (`AddressSpace.snapshot()`): the base
/// address of each slot's region. A region unmapped since, or a new one in a reused slot, has
/// another base (its generation differs), so it is not taken for one of these.
public struct RegionSnapshot: Sendable, Equatable {
    /// By slot: the region's base, or `UInt64.max` for an empty slot.
    let bases: [UInt64]
}

/// Memory an `AddressSpace` does not hold itself but can reach by copying (`AddressSpace.foreign`).
public protocol ForeignMemory: AnyObject {
    /// Copies `buffer.count` bytes at `address` into `buffer`, or throws the fault.
    func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(MemoryFault)
    /// Copies `buffer` to `address`, or throws the fault (nothing is written then).
    func write(_ address: UInt64, from buffer: UnsafeRawBufferPointer) throws(MemoryFault)
}
