#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How a region may be accessed.
public enum RegionKind: Sendable, Equatable, CustomStringConvertible {
    /// Owned bytes, readable and writable.
    case plain
    /// Readable only; stores fault (e.g. `.rodata`, a program's context when it must not change).
    case readOnly
    /// A ring: offsets past the end wrap around to the start, as in the Go mimic's ring memory.
    /// Accesses take the slow path, so keep rings off the hottest data.
    case ring

    public var description: String {
        switch self {
        case .plain: "plain"
        case .readOnly: "read-only"
        case .ring: "ring"
        }
    }
}

/// Bytes that back one or more VM regions.
///
/// Storage is reference counted so that a map's values can be mapped into the address space
/// of every process that uses the map while being owned once. The bytes are zero-filled on
/// allocation, 16-byte aligned, and never move: VM pointers into them stay valid while the
/// storage lives. They come from `calloc`, so the pages of a large storage (a big array map)
/// take host memory only once they are written.
public final class RegionStorage: @unchecked Sendable {
    /// The first byte. Never reallocated.
    public let pointer: UnsafeMutableRawPointer
    /// Usable length in bytes (the region's size when mapped). Changes only through
    /// `reuse(count:)`.
    ///
    /// A computed property over `storedCount`: other modules reading a stored property of this
    /// class make a dynamic exclusivity check (`swift_beginAccess`, ~100 instructions) each time,
    /// because `@exclusivity(unchecked)` does not reach them; this inlinable getter is a load in
    /// the caller (SwiftPM builds without library evolution, so the layout is fixed).
    @inlinable
    public var count: Int { storedCount }
    @usableFromInline @exclusivity(unchecked) var storedCount: Int
    /// Whether an address space has handed this storage to code that may keep a reference to it
    /// (`AddressSpace.storage(containing:)`, `AddressSpace.init(copying:)`, a `RegionBroker`):
    /// set for good. Until then the only references are its owner's and those of the address
    /// spaces that map it, which keep it while its region is retired (`retireAll(except:)`), so
    /// an owner that holds it alone but for those (a packet buffer, `PacketBuffer.refill`) may
    /// reuse it in place even though `isKnownUniquelyReferenced` would say it is shared.
    ///
    /// A call (not a stored property) for other modules, as `count`.
    public var isLent: Bool { lent }
    @usableFromInline @exclusivity(unchecked) var lent = false
    /// Bytes allocated: `count` can be changed up to this by `reuse(count:)`.
    public let capacity: Int
    /// Whether the storage allocated its bytes (and frees them), or borrows someone else's.
    public let ownsMemory: Bool
    /// What keeps borrowed bytes alive, if anything (see `init(borrowing:count:owner:)`).
    private let owner: AnyObject?
    /// The memory budget bytes this storage holds, given back when it goes away.
    private let reservation: MemoryReservation?

    /// Allocates `count` zeroed bytes (at least one byte of backing so the pointer is valid).
    public convenience init(count: Int) {
        self.init(count: count, capacity: count)
    }

    /// Allocates `capacity` zeroed bytes of which the first `count` are usable, so that
    /// `reuse(count:)` can later give the storage any size up to `capacity` (e.g. a packet
    /// buffer reused for packets of different lengths).
    public convenience init(count: Int, capacity: Int) {
        self.init(count: count, capacity: capacity, reservation: nil)
    }

    /// Allocates `capacity` zeroed bytes (`count` usable) after taking them from `budget` for
    /// `purpose` (e.g. "map 'counters'"); the storage gives them back when it goes away.
    ///
    /// - Throws: `MemoryBudgetError` before allocating anything when the budget has no room.
    public convenience init(
        count: Int, capacity: Int? = nil, charging budget: MemoryBudget,
        for purpose: String
    ) throws(MemoryBudgetError) {
        let reservation = try budget.reserve(max(count, capacity ?? count), for: purpose)
        self.init(count: count, capacity: capacity ?? count, reservation: reservation)
    }

    private init(count: Int, capacity: Int, reservation: MemoryReservation?) {
        precondition(count >= 0, "RegionStorage count must not be negative")
        storedCount = count
        let capacity = max(count, capacity, 1)
        self.capacity = capacity
        // calloc: zeroed pages, untouched (and so not resident) until written. glibc and Darwin
        // align to 16 bytes on 64-bit hosts.
        guard let bytes = calloc(capacity, 1) else {
            fatalError("RegionStorage: the host cannot allocate \(capacity) bytes")
        }
        pointer = bytes
        ownsMemory = true
        owner = nil
        self.reservation = reservation
    }

    /// Storage over `count` bytes at `pointer` that someone else owns: they are neither copied
    /// nor freed. The bytes must stay valid and unmoved while any address space maps this
    /// storage; `owner`, if given, is retained for as long as the storage lives.
    ///
    /// A plugin's map values and packet buffers are mapped into the host VM this way (the
    /// plugin owns them), and the host's global data into the plugin (the host owns it).
    /// Callers check `count` (it comes from outside): a negative count is a programming error.
    public init(borrowing pointer: UnsafeMutableRawPointer, count: Int, owner: AnyObject? = nil) {
        precondition(count >= 0, "RegionStorage count must not be negative")
        self.pointer = pointer
        storedCount = count
        capacity = count
        ownsMemory = false
        self.owner = owner
        reservation = nil
    }

    /// Allocates storage holding a copy of `bytes`.
    public convenience init(bytes: some Collection<UInt8>) {
        self.init(count: bytes.count)
        // Contiguous input (an array, the common case: every context buffer) is one copy; the
        // element loop below runs unspecialised across the module boundary at ~15 ns a byte.
        let copied: Bool? = bytes.withContiguousStorageIfAvailable { buffer in
            if let base = buffer.baseAddress { pointer.copyMemory(from: base, byteCount: buffer.count) }
            return true
        }
        if copied != nil { return }
        var offset = 0
        for byte in bytes {
            pointer.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self)
            offset += 1
        }
    }

    deinit { if ownsMemory { free(pointer) } }

    /// Gives storage that owns its bytes a new `count` (0...`capacity`), to back a new region
    /// with the same allocation; the bytes keep their contents (the caller clears what it must).
    /// Returns false, changing nothing, for borrowed storage or a count that does not fit.
    ///
    /// Only for storage mapped nowhere (or only in retired slots) and used by nobody else (an
    /// address space records a region's size when it maps it): check `isKnownUniquelyReferenced`
    /// first, or `isLent` for an owner that knows it holds the storage alone otherwise.
    public func reuse(count newCount: Int) -> Bool {
        guard ownsMemory, newCount >= 0, newCount <= capacity else { return false }
        storedCount = newCount
        return true
    }

    /// A copy of the bytes in `range`; the range must lie inside the storage.
    public func bytes(in range: Range<Int>) -> [UInt8] {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "range outside storage")
        return Array(UnsafeRawBufferPointer(start: pointer + range.lowerBound, count: range.count))
    }

    /// All bytes, copied.
    public var bytes: [UInt8] { bytes(in: 0..<count) }

    /// Overwrites bytes starting at `offset`; the span must lie inside the storage.
    public func write(_ bytes: some Collection<UInt8>, at offset: Int) {
        precondition(offset >= 0 && offset + bytes.count <= count, "write outside storage")
        // Contiguous input is one copy (see `init(bytes:)`): packets are written here per run.
        let copied: Bool? = bytes.withContiguousStorageIfAvailable { buffer in
            if let base = buffer.baseAddress { (pointer + offset).copyMemory(from: base, byteCount: buffer.count) }
            return true
        }
        if copied != nil { return }
        var index = offset
        for byte in bytes {
            pointer.storeBytes(of: byte, toByteOffset: index, as: UInt8.self)
            index += 1
        }
    }
}

/// A description of one mapped region, for faults, debuggers and host code.
public struct RegionInfo: Sendable, Equatable, CustomStringConvertible {
    /// The region's name, e.g. `stack`, `packet`, `map:counters`.
    public var name: String
    public var kind: RegionKind
    /// The VM address of the region's first byte.
    public var base: UInt64
    /// The region's length in bytes.
    public var size: Int

    public init(name: String, kind: RegionKind, base: UInt64, size: Int) {
        self.name = name
        self.kind = kind
        self.base = base
        self.size = size
    }

    /// Whether `address` lies inside the region.
    public func contains(_ address: UInt64) -> Bool {
        address >= base && address - base < UInt64(size)
    }

    public var description: String {
        "\(name) [\(hex(base))..\(hex(base &+ UInt64(size)))) \(kind), \(size) bytes"
    }
}

/// `0x`-prefixed lowercase hexadecimal.
@usableFromInline
func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
