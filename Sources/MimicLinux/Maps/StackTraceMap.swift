import MimicCore
import Synchronization

/// `BPF_MAP_TYPE_STACK_TRACE`: stack traces by id, as `kernel/bpf/stackmap.c` keeps them.
///
/// `bpf_get_stackid` hashes the trace's return addresses with `jhash2` (seed 0) into one of
/// `roundup_pow_of_two(max_entries)` buckets: the bucket index is the stack id. A bucket holding
/// another trace is `-EEXIST` unless `BPF_F_REUSE_STACKID` replaces it; at most `max_entries`
/// traces are held (`-ENOMEM` past that). Keys are 4-byte ids; a value is `value_size / 8`
/// addresses, the trace's followed by zeros. Programs cannot look values up (the kernel's verifier
/// allows only `bpf_get_stackid` on this map); host code reads and deletes them.
public final class StackTraceMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    /// The number of buckets, a power of two.
    public let bucketCount: Int
    private let memory: MapMemory
    private struct Bucket {
        var hash: UInt32
        var addresses: [UInt64]
    }
    private let buckets = Mutex<[Int: Bucket]>([:])

    /// `sysctl_perf_event_max_stack`'s default: the deepest trace the kernel records.
    public static let maxDepth = 127

    init(attributes: MapAttributes, id: Int, memory: MapMemory) throws(MapError) {
        guard attributes.keySize == 4, attributes.valueSize >= 8, attributes.valueSize % 8 == 0,
            attributes.maxEntries > 0
        else {
            throw MapError(
                map: attributes.name,
                "BPF_MAP_TYPE_STACK_TRACE needs a 4-byte key, a value that is a multiple of 8 bytes and max_entries > 0"
            )
        }
        guard attributes.valueSize / 8 <= Self.maxDepth else {
            throw MapError(
                map: attributes.name, "a value of \(attributes.valueSize / 8) addresses is deeper than \(Self.maxDepth)"
            )
        }
        guard attributes.maxEntries <= 1 << 30 else {
            throw MapError(map: attributes.name, "max_entries \(attributes.maxEntries) is too large", errno: .tooBig)
        }
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        self.memory = memory
        var count = 1
        while count < attributes.maxEntries { count <<= 1 }
        bucketCount = count
    }

    /// The addresses a value holds.
    var depth: Int { attributes.valueSize / 8 }

    /// `BPF_F_FAST_STACK_CMP` and `BPF_F_REUSE_STACKID`.
    static let fastCompare: UInt64 = 1 << 9
    static let reuseID: UInt64 = 1 << 10

    /// `__bpf_get_stackid` for a trace already cut to its skip and depth: the id, or an errno.
    func stackID(for trace: [UInt64], flags: UInt64) -> Result<UInt64, Errno> {
        let words = trace.flatMap { [UInt32(truncatingIfNeeded: $0), UInt32(truncatingIfNeeded: $0 >> 32)] }
        // An empty trace hashes to jhash2's initial value (no word is read).
        let hash = words.withUnsafeBytes { bytes in
            bytes.baseAddress.map { JenkinsHash.jhash2($0, words: words.count, seed: 0) } ?? 0xdead_beef
        }
        let id = Int(hash) & (bucketCount - 1)
        return buckets.withLock { buckets in
            let bucket = buckets[id]
            let hashMatches = bucket?.hash == hash
            if hashMatches && flags & Self.fastCompare != 0 { return .success(UInt64(id)) }
            if hashMatches && bucket?.addresses == trace { return .success(UInt64(id)) }
            if bucket != nil && flags & Self.reuseID == 0 { return .failure(.exists) }
            if bucket == nil && buckets.count >= attributes.maxEntries { return .failure(.noMemory) }
            buckets[id] = Bucket(hash: hash, addresses: trace)
            return .success(UInt64(id))
        }
    }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { nil }
    /// Updates are refused, as by the kernel (`stack_map_update_elem`).
    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? { .invalid }

    public func delete(key: [UInt8]) -> Errno? {
        guard let id = Self.id(key), id < bucketCount else { return .invalid }
        return buckets.withLock { $0.removeValue(forKey: id) == nil ? .noEntry : nil }
    }

    public func nextKey(after key: [UInt8]?) -> [UInt8]? {
        let start = key.flatMap(Self.id).map { $0 + 1 } ?? 0
        return buckets.withLock { buckets in
            buckets.keys.filter { $0 >= start }.min().map { littleEndianBytes(UInt32($0)) }
        }
    }

    public func value(forKey key: [UInt8]) -> [UInt8]? {
        guard let id = Self.id(key) else { return nil }
        return buckets.withLock { buckets in
            guard let bucket = buckets[id] else { return nil }
            let padded = bucket.addresses + [UInt64](repeating: 0, count: max(0, depth - bucket.addresses.count))
            return padded.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }
        }
    }

    private static func id(_ key: [UInt8]) -> Int? { key.count == 4 ? Int(littleEndianUInt32(key)) : nil }
}
