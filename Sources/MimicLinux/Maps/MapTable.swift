import MimicCore
import Synchronization

/// The emulator's maps by id for the map helpers: found without a lock, a weak reference or a
/// dictionary, so `bpf_map_lookup_elem` and `bpf_map_update_elem` cost little more than the map
/// operation itself.
///
/// Maps are created at any time (at load, and by host code later, e.g. inner maps) and never
/// removed, so the table only grows: each id below `capacity` has one atomic word, 0 until its
/// map is registered, then the address of an `Entry` the table keeps alive for its own life.
/// Registration stores the word with release ordering after the entry is built; a helper loads
/// it with acquire ordering, so a thread that sees the word sees the whole entry. Ids past
/// `capacity` (more maps than a program has) are not in the table: callers fall back to the
/// emulator's locked dictionary. (`@unchecked Sendable`: `words` is only touched atomically.)
final class MapTable: @unchecked Sendable {
    /// A registered map, with its concrete type worked out once for the helpers' fast paths.
    final class Entry: @unchecked Sendable {
        let map: any BPFMap
        /// The map as a hash map (hash, per-CPU hash, LRU), or nil. Unmanaged: `map` keeps it,
        /// and a strong or even `unowned(unsafe)` reference is retained and released around
        /// every helper call; `_withUnsafeGuaranteedRef` borrows it without a count.
        let hash: Unmanaged<HashTableMap>?
        /// The map as an array (array, per-CPU array, global data), or nil (unmanaged, as `hash`).
        let array: Unmanaged<ArrayMap>?

        init(_ map: any BPFMap) {
            self.map = map
            hash = (map as? HashTableMap).map { Unmanaged.passUnretained($0) }
            array = (map as? ArrayMap).map { Unmanaged.passUnretained($0) }
        }
    }

    /// Ids below this are in the table.
    static let capacity = 1024

    /// One word per id: 0, or an unretained `Entry` pointer (kept alive by `entries`).
    private let words: UnsafeMutablePointer<Atomic<UInt>>
    /// Every entry stored in `words`, kept alive here; also serialises `insert`.
    private let entries = Mutex<[Entry]>([])

    init() {
        words = .allocate(capacity: Self.capacity)
        for id in 0..<Self.capacity { (words + id).initialize(to: Atomic<UInt>(0)) }
    }

    deinit {
        words.deinitialize(count: Self.capacity)
        words.deallocate()
    }

    /// Adds `map` under `id`; a map whose id is past `capacity` is left out. Each id is
    /// registered once (ids are never reused).
    func insert(_ map: any BPFMap, id: Int) {
        guard id >= 0, id < Self.capacity else { return }
        let entry = Entry(map)
        entries.withLock { entries in
            entries.append(entry)
            words[id].store(UInt(bitPattern: Unmanaged.passUnretained(entry).toOpaque()), ordering: .releasing)
        }
    }

    /// The entry of the map `handle` refers to, or nil when the handle is not a map handle, its
    /// id is past `capacity` or no map has that id (yet).
    @inline(__always)
    func entry(handle: UInt64) -> Entry? {
        unretainedEntry(handle: handle)?.takeUnretainedValue()
    }

    /// `entry(handle:)` without a reference count (the table keeps every entry alive).
    @inline(__always)
    func unretainedEntry(handle: UInt64) -> Unmanaged<Entry>? {
        guard let id = MapHandle.id(of: handle), id < Self.capacity else { return nil }
        let word = words[id].load(ordering: .acquiring)
        guard let pointer = UnsafeRawPointer(bitPattern: word) else { return nil }
        return Unmanaged<Entry>.fromOpaque(pointer)
    }

    /// The table as a `DirectHelper`'s data (unretained: the emulator keeps it).
    var opaque: UnsafeRawPointer { UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()) }

    /// For a map helper's C-ABI entry whose data is a `MapTable`: `body` with the entry of the
    /// map `handle` names and the calling process, without reference counts. Declines the call
    /// when no map has that handle or `body` returns nil.
    @inline(__always)
    static func withEntry(
        of raw: UnsafeMutableRawPointer, handle: UInt64,
        _ body: (Entry, MimicCore.Process) -> UInt64?
    ) -> UInt64? {
        let call = DirectHelperCall.at(raw)
        let table = Unmanaged<MapTable>.fromOpaque(call.pointee.data.unsafelyUnwrapped)
        let result = table._withUnsafeGuaranteedRef { table in
            table.unretainedEntry(handle: handle)?._withUnsafeGuaranteedRef { entry in
                call.pointee.process._withUnsafeGuaranteedRef { process in body(entry, process) }
            }
        }
        if result == nil { call.pointee.decline() }
        return result
    }
}
