import MimicCore
import MimicMemory

/// `BPF_MAP_TYPE_SK_STORAGE`: a value per socket, which `bpf_sk_storage_get` creates and
/// returns and `bpf_sk_storage_delete` removes (`net/core/bpf_sk_storage.c`).
///
/// Sockets are known by their cookie (`SocketInfo.cookie`: the same description is the same
/// socket), so storage persists from run to run for the same socket. The kernel's user-space
/// keys are socket file descriptors, which Mimic does not have: host updates and deletes by
/// key are `-EOPNOTSUPP`, lookups find nothing; `value(forCookie:)` reads a socket's storage.
/// The kernel's checks: `key_size` 4, `max_entries` 0, `BPF_F_NO_PREALLOC` set, a value.
public final class SocketStorageMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    /// The values, by 8-byte socket cookie.
    let storage: HashTableMap
    /// The most sockets with storage at once.
    public static let capacity = 4096

    init(attributes: MapAttributes, id: Int, vm: VM, memory: MapMemory) throws(MapError) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        var inner = attributes
        inner.type = .hash
        inner.keySize = 8
        inner.maxEntries = Self.capacity
        storage = try HashTableMap(attributes: inner, id: id, cpuCount: 1, vm: vm, memory: memory)
    }

    static func key(_ cookie: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: cookie >> (8 * $0)) } }

    /// The address of the socket's storage; with `create`, made from `initial` (zeros when nil)
    /// if missing. Nil when there is none (or no room).
    func storageAddress(cookie: UInt64, create: Bool, initial: [UInt8]?) -> UInt64? {
        let key = Self.key(cookie)
        if let address = storage.lookupAddress(key: key, cpu: 0) { return address }
        guard create else { return nil }
        let value = initial ?? [UInt8](repeating: 0, count: attributes.valueSize)
        guard storage.update(key: key, value: value, flags: .noExist, cpu: 0) == nil else { return nil }
        return storage.lookupAddress(key: key, cpu: 0)
    }

    /// Removes the socket's storage; false when it had none.
    func removeStorage(cookie: UInt64) -> Bool { storage.delete(key: Self.key(cookie)) == nil }

    /// A copy of the storage of the socket with `cookie`, or nil.
    public func value(forCookie cookie: UInt64) -> [UInt8]? { storage.value(forKey: Self.key(cookie)) }

    /// The cookies of the sockets that have storage.
    public var cookies: [UInt64] {
        storage.keys.map { key in key.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) } }
    }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { nil }
    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? { .notSupported }
    public func delete(key: [UInt8]) -> Errno? { .notSupported }
    public func nextKey(after key: [UInt8]?) -> [UInt8]? { nil }
    public func value(forKey key: [UInt8]) -> [UInt8]? { nil }
    public var keys: [[UInt8]] { [] }
}
