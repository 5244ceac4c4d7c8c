import MimicCore
import MimicMemory
import Synchronization

/// `BPF_MAP_TYPE_LPM_TRIE`: longest prefix match. A key is a 4-byte host-order prefix length
/// followed by `key_size - 4` bytes of data (e.g. an IPv4 address, most significant byte first).
///
/// As in the kernel's `lpm_trie.c`:
/// - a lookup finds the element with the longest prefix that matches the key's first
///   `prefixlen` bits (elements with a longer prefix than the key never match); a key whose
///   prefix length exceeds `8 * (key_size - 4)` finds nothing;
/// - update and delete name an element exactly: same prefix length, same first `prefixlen`
///   bits (bits past the prefix are ignored); a too-long prefix is `-EINVAL`;
/// - `BPF_NOEXIST` on an existing prefix is `-EEXIST`, `BPF_EXIST` on a missing one `-ENOENT`
///   (kernels since 6.14); a new prefix in a full trie is `-ENOSPC`; deleting a missing
///   prefix is `-ENOENT`;
/// - iteration (`nextKey`) runs in the trie's post-order: more specific prefixes before the
///   prefixes that contain them.
public final class LPMTrieMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    /// The data bytes of a key (`key_size - 4`); the longest prefix is 8 times this.
    public let dataSize: Int
    public var maxPrefixLength: Int { dataSize * 8 }
    let values: ValueStorage
    private let state: Mutex<State>

    private struct State {
        var index: SlotIndex
        /// The key as last written, by slot, for iteration (the index holds canonical keys).
        var storedKeys: [Int: [UInt8]]
    }

    init(attributes: MapAttributes, id: Int, vm: VM, memory: MapMemory) throws(MapError) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        dataSize = attributes.keySize - 4
        values = try ValueStorage(
            attributes: attributes, slots: attributes.maxEntries, cpuCount: 1, vm: vm,
            reservation: memory.reservation)
        state = Mutex(State(index: memory.slotIndex(capacity: attributes.maxEntries), storedKeys: [:]))
    }

    /// The prefix length of a key (host byte order, as `struct bpf_lpm_trie_key` holds it).
    private func prefixLength(of key: [UInt8]) -> Int { Int(littleEndianUInt32(key)) }

    /// The identity of a prefix: its length and its data with the bits past the length cleared.
    private func canonical(_ data: ArraySlice<UInt8>, length: Int) -> [UInt8] {
        var result = littleEndianBytes(UInt32(length))
        result.reserveCapacity(4 + dataSize)
        for (i, byte) in data.enumerated() {
            let bits = length - i * 8
            if bits >= 8 {
                result.append(byte)
            } else if bits <= 0 {
                result.append(0)
            } else {
                result.append(byte & UInt8(truncatingIfNeeded: 0xFF << (8 - bits)))
            }
        }
        return result
    }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? {
        matchingSlot(for: key).map { values.address(slot: $0, cpu: 0) }
    }

    /// The slot of the longest prefix matching `key`.
    private func matchingSlot(for key: [UInt8]) -> Int? {
        guard key.count == attributes.keySize else { return nil }
        let length = prefixLength(of: key)
        guard length <= maxPrefixLength else { return nil }
        let data = key[4...]
        let slot: Int? = state.withLock { state in
            guard state.index.count > 0 else { return nil }
            for candidate in stride(from: length, through: 0, by: -1) {
                if let slot = state.index.slot(for: canonical(data, length: candidate)) { return slot }
            }
            return nil
        }
        return slot
    }

    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? {
        guard key.count == attributes.keySize, value.count == attributes.valueSize else { return .invalid }
        guard flags.rawValue <= MapUpdateFlags.exist.rawValue else { return .invalid }
        let length = prefixLength(of: key)
        guard length <= maxPrefixLength else { return .invalid }
        let identity = canonical(key[4...], length: length)
        let result: Result<Int, Errno> = state.withLock { state in
            if let existing = state.index.slot(for: identity) {
                if flags == .noExist { return .failure(.exists) }
                state.storedKeys[existing] = key
                return .success(existing)
            }
            if flags == .exist { return .failure(.noEntry) }
            let inserted = state.index.insert(identity)
            guard case .success(let slot) = inserted else {
                return inserted.mapError { $0 == .tooBig ? .noSpace : $0 }
            }
            state.storedKeys[slot] = key
            values.clear(slot: slot)
            return .success(slot)
        }
        switch result {
        case .failure(let error): return error
        case .success(let slot):
            values.write(value, slot: slot, cpu: 0)
            return nil
        }
    }

    public func delete(key: [UInt8]) -> Errno? {
        guard key.count == attributes.keySize else { return .invalid }
        let length = prefixLength(of: key)
        guard length <= maxPrefixLength else { return .invalid }
        let identity = canonical(key[4...], length: length)
        return state.withLock { state in
            guard let slot = state.index.remove(identity) else { return .noEntry }
            state.storedKeys[slot] = nil
            return nil
        }
    }

    /// Keys in post-order: of two prefixes, the one whose first differing bit is 0 comes
    /// first; a prefix comes after every longer prefix it contains.
    private func sortedKeys() -> [(key: [UInt8], slot: Int)] {
        let entries: [(key: [UInt8], identity: [UInt8], slot: Int)] = state.withLock { state in
            state.index.elements.compactMap { element in
                state.storedKeys[element.slot].map { ($0, element.key, element.slot) }
            }
        }
        return entries.sorted { a, b in
            let lengthA = prefixLength(of: a.identity)
            let lengthB = prefixLength(of: b.identity)
            let common = min(lengthA, lengthB)
            for bit in 0..<common {
                let byteA = a.identity[4 + bit / 8]
                let byteB = b.identity[4 + bit / 8]
                let bitA = (byteA >> (7 - UInt8(bit % 8))) & 1
                let bitB = (byteB >> (7 - UInt8(bit % 8))) & 1
                if bitA != bitB { return bitA < bitB }
            }
            return lengthA > lengthB
        }.map { ($0.key, $0.slot) }
    }

    public func nextKey(after key: [UInt8]?) -> [UInt8]? {
        let ordered = sortedKeys()
        guard let key, key.count == attributes.keySize, prefixLength(of: key) <= maxPrefixLength else {
            return ordered.first?.key
        }
        let identity = canonical(key[4...], length: prefixLength(of: key))
        guard
            let position = ordered.firstIndex(where: {
                canonical($0.key[4...], length: prefixLength(of: $0.key)) == identity
            })
        else {
            return ordered.first?.key
        }
        return position + 1 < ordered.count ? ordered[position + 1].key : nil
    }

    /// The value of the longest prefix matching `key`, as `BPF_MAP_LOOKUP_ELEM` returns it.
    public func value(forKey key: [UInt8]) -> [UInt8]? {
        matchingSlot(for: key).map { values.read(slot: $0, cpu: 0) }
    }

    public var keys: [[UInt8]] { sortedKeys().map(\.key) }
}
