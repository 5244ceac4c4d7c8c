/// How compiled code searches a plain hash map (not per-CPU, not LRU) with 4- or 8-byte keys
/// itself, as the kernel's `htab_map_gen_lookup` inlines `__htab_map_lookup_elem`'s call: the
/// map's lock-free search (MimicLinux's `SlotTable.concurrentSlot(for:)`) written out in machine
/// code, with no call, no Swift frame and no register saved but the four it works in.
///
/// The table it reads, through `header`, four words (`UInt`, each read with one plain load, an
/// acquire load on x86-64):
///
/// 0. the sequence: odd while a writer changes the table; a search counts only if it reads the
///    same even value before and after (otherwise the helper takes the lookup, under the map's
///    lock);
/// 1. the entry table, `[entry count (a power of two)][entries]`, or 0 before the first insert;
///    an entry is `hash << 32 | (slot + 1)`, 0 empty, `tombstone` a removed key; linear probing
///    from `hash & (count - 1)`, at most `count` entries;
/// 2. the key store, `[slot count][keySize bytes per slot]`;
/// 3. the key size.
///
/// The hash of a key (read as a little-endian `UInt32` or `UInt64`) is `hash(_:seed:)`, the one
/// the map places its keys with. A found slot's value is at `valueBase + slot × valueStride`
/// (VM address, what the helper returns).
public struct InlineHashProbe: @unchecked Sendable {
    /// The table's header words (see the type's comment), unretained: lives as long as the map.
    public let header: UnsafeRawPointer
    /// The map's random seed.
    public let seed: UInt64
    /// 4 or 8.
    public let keySize: UInt32
    /// The VM address of slot 0's value, and the bytes from one slot's value to the next.
    public let valueBase: UInt64
    public let valueStride: UInt32

    /// An empty entry is 0; a removed one this.
    public static let tombstone: UInt64 = 0xFFFF_FFFF

    /// Nil unless the key size is 4 or 8 and the stride fits an `imul` immediate.
    public init?(header: UnsafeRawPointer, seed: UInt64, keySize: UInt32, valueBase: UInt64, valueStride: UInt32) {
        guard keySize == 4 || keySize == 8, valueStride <= UInt32(Int32.max) else { return nil }
        self.header = header
        self.seed = seed
        self.keySize = keySize
        self.valueBase = valueBase
        self.valueStride = valueStride
    }

    /// The multipliers of `hash(_:seed:)`.
    static let multipliers: (UInt64, UInt64) = (0x9E37_79B9_7F4A_7C15, 0xD6E8_FEB8_6659_FD93)

    /// A key's hash: `(key ^ seed)` multiplied, its high half folded into the low one, multiplied
    /// again, the high 32 bits (every key bit reaches every hash bit). Cheap (≈ 8 instructions,
    /// against ≈ 50 for jhash) and written out the same way by the code generator.
    @inline(__always)
    public static func hash(_ key: UInt64, seed: UInt64) -> UInt32 {
        var x = (key ^ seed) &* multipliers.0
        x ^= x >> 32
        x = x &* multipliers.1
        return UInt32(truncatingIfNeeded: x >> 32)
    }
}
