import MimicCore
import Synchronization

/// `BPF_MAP_TYPE_BLOOM_FILTER`: a keyless set of values that answers "possibly present" or
/// "certainly absent", used through push (add) and peek (test), as `kernel/bpf/bloom_filter.c`:
///
/// - push accepts `BPF_ANY` only (else `-EINVAL`) and never fails for space;
/// - peek returns 0 when every one of the map's hash functions finds its bit set, else `-ENOENT`
///   (a value pushed is always found: no false negatives);
/// - pop and delete are `-EOPNOTSUPP`; lookup, update and key iteration are not supported.
///
/// The bit array is sized as the kernel sizes it (`max_entries * nr_hash_funcs * 7 / 5` bits,
/// rounded up to a power of two, at least 64); `nr_hash_funcs` is the low 4 bits of
/// `map_extra` (5 when 0). The hash functions are Mimic's own (FNV-1a with the function's
/// index as seed), where the kernel uses jhash with a random seed: which absent values give a
/// false positive differs, as it does between two kernel maps.
public final class BloomFilterMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    /// The number of hash functions (bits set per value).
    public let hashCount: Int
    /// The bit array's size in bits, a power of two.
    public let bitCount: Int
    private let bits: Mutex<[UInt64]>
    /// The bit array's share of the VM's memory budget.
    private let memory: MapMemory

    /// The kernel's limit of 2^31 bits, and the hash count when `map_extra` gives none.
    static let maxBits = 1 << 31
    static let defaultHashCount = 5

    /// The bit array size for these attributes (`bloom_map_alloc`).
    static func bitCount(maxEntries: Int, hashCount: Int) -> Int {
        let (product, overflow) = maxEntries.multipliedReportingOverflow(by: hashCount)
        let wanted = overflow ? maxBits : product / 5 * 7
        guard wanted < maxBits else { return maxBits }
        var bits = 64
        while bits < wanted { bits <<= 1 }
        return bits
    }

    /// The hash-function count `map_extra` gives: its low 4 bits, or 5 when they are 0.
    static func hashCount(mapExtra: UInt64) -> Int {
        let count = Int(mapExtra & 0xF)
        return count == 0 ? defaultHashCount : count
    }

    init(attributes: MapAttributes, mapExtra: UInt64, id: Int, memory: MapMemory) {
        self.attributes = attributes
        self.memory = memory
        handle = MapHandle.make(id: id)
        hashCount = Self.hashCount(mapExtra: mapExtra)
        bitCount = Self.bitCount(maxEntries: attributes.maxEntries, hashCount: hashCount)
        bits = Mutex([UInt64](repeating: 0, count: bitCount / 64))
    }

    /// The bit of hash function `index` for `value`.
    private func bit(_ value: [UInt8], _ index: Int) -> Int {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        for byte in value { hash = (hash ^ UInt64(byte)) &* 0x0100_0000_01B3 }
        hash ^= hash >> 29
        return Int(truncatingIfNeeded: hash) & (bitCount - 1)
    }

    public func push(value: [UInt8], flags: MapUpdateFlags) -> Errno? {
        guard value.count == attributes.valueSize else { return .invalid }
        guard flags == .any else { return .invalid }
        bits.withLock { bits in
            for index in 0..<hashCount {
                let bit = bit(value, index)
                bits[bit >> 6] |= 1 << UInt64(bit & 63)
            }
        }
        return nil
    }

    /// Whether `value` may have been pushed (peek's test): false means it certainly was not.
    public func mayContain(_ value: [UInt8]) -> Bool {
        guard value.count == attributes.valueSize else { return false }
        return bits.withLock { bits in
            (0..<hashCount).allSatisfy { index in
                let bit = bit(value, index)
                return bits[bit >> 6] & (1 << UInt64(bit & 63)) != 0
            }
        }
    }

    public func pop() -> Result<[UInt8], Errno> { .failure(.notSupported) }
    /// Peek needs the value to test: use `mayContain(_:)` (the helper does).
    public func peek() -> Result<[UInt8], Errno> { .failure(.invalid) }
    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { nil }
    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? { .invalid }
    public func delete(key: [UInt8]) -> Errno? { .notSupported }
    public func nextKey(after key: [UInt8]?) -> [UInt8]? { nil }
    public func value(forKey key: [UInt8]) -> [UInt8]? { nil }
    public var keys: [[UInt8]] { [] }
}
