import MimicCore
import Synchronization

/// A socket a socket map holds (the kernel's `struct sock *` slot): one of the network's
/// sockets (`Network.sockets`, found by its cookie) or a program context's own socket (a
/// `sock_ops` program's, added with `bpf_sock_map_update`).
public struct MappedSocket: Sendable, Equatable, CustomStringConvertible {
    /// `SO_COOKIE`: the network socket's `cookie`, or the cookie Mimic gives a context's socket
    /// (`bpf_get_socket_cookie` of that context).
    public var cookie: UInt64
    /// The socket's index in the network's `sockets`; nil for a context's own socket.
    public var networkIndex: Int?
    /// `SO_REUSEPORT` (network sockets only).
    public var reuseport: Bool
    /// Its `struct bpf_sock` (80 bytes), as programs see it.
    var sock: [UInt8]

    init(cookie: UInt64, networkIndex: Int?, reuseport: Bool, sock: [UInt8]) {
        self.cookie = cookie
        self.networkIndex = networkIndex
        self.reuseport = reuseport
        self.sock = sock
    }

    /// The network's socket `index`.
    init(network socket: Network.Socket, index: Int) {
        self.init(
            cookie: socket.cookie, networkIndex: index, reuseport: socket.reuseport,
            sock: SocketHelpers.sockBytes(socket))
    }

    var family: UInt32 { get32(sock, 4) }
    var type: UInt32 { get32(sock, 8) }
    var `protocol`: UInt32 { get32(sock, 12) }
    var state: UInt32 { get32(sock, 72) }
    /// The bound address (4 bytes for `AF_INET`, 16 for `AF_INET6`), port and device: with
    /// protocol and family, what names a reuseport group.
    var localEndpoint: [UInt8] {
        let address = family == SocketContextJSON.inet ? Array(sock[24..<28]) : Array(sock[28..<44])
        return address + Array(sock[44..<48]) + Array(sock[0..<4])
    }

    /// `sk_fullsock`: not a time-wait (6) or request (12) socket.
    var isFull: Bool { state != 6 && state != 12 }
    /// `sock_map_sk_is_suitable`: a protocol with `psock_update_sk_prot` (TCP, UDP, unix).
    var suitsSocketMaps: Bool { self.protocol == 6 || self.protocol == 17 || family == 1 }
    /// `sock_map_sk_state_allowed`: TCP sockets only when established or listening.
    var stateAllowsSocketMaps: Bool { self.protocol != 6 || state == 1 || state == 10 }
    /// `sock_map_redirect_allowed`: TCP unless listening; others only when connected.
    var acceptsRedirects: Bool { self.protocol == 6 ? state != 10 : state == 1 }
    /// `SOCK_RCU_FREE`, hashed and in a reuseport group: a TCP listener or a bound UDP socket
    /// with `SO_REUSEPORT` (what `REUSEPORT_SOCKARRAY` and `bpf_sk_select_reuseport` demand).
    var inReuseportGroup: Bool { reuseport && (self.protocol == 6 ? state == 10 : self.protocol == 17) }

    public var description: String {
        let endpoint: String
        if let networkIndex {
            endpoint = "network socket \(networkIndex)"
        } else {
            endpoint = "context socket"
        }
        return "\(endpoint) (cookie \(cookie))"
    }
}

/// Which sockets sit in socket maps and reuseport arrays, shared by an emulator's maps: the
/// kernel keeps it in `sk->sk_user_data`, which a sockmap's psock and a reuseport array's slot
/// each claim, so a socket in one kind cannot join the other (`-EBUSY`).
final class SocketMapMembership: Sendable {
    private let state = Mutex<(socketMaps: [UInt64: Int], reuseport: Set<UInt64>)>(([:], []))

    /// Whether a reuseport array holds the socket.
    func inReuseportArray(_ cookie: UInt64) -> Bool { state.withLock { $0.reuseport.contains(cookie) } }
    /// Whether a sockmap or sockhash holds the socket.
    func inSocketMap(_ cookie: UInt64) -> Bool { state.withLock { ($0.socketMaps[cookie] ?? 0) > 0 } }

    func joinSocketMap(_ cookie: UInt64) { state.withLock { $0.socketMaps[cookie, default: 0] += 1 } }
    func leaveSocketMap(_ cookie: UInt64) {
        state.withLock { s in
            let count = (s.socketMaps[cookie] ?? 1) - 1
            s.socketMaps[cookie] = count > 0 ? count : nil
        }
    }
    func joinReuseportArray(_ cookie: UInt64) { _ = state.withLock { $0.reuseport.insert(cookie) } }
    func leaveReuseportArray(_ cookie: UInt64) { _ = state.withLock { $0.reuseport.remove(cookie) } }
}

extension NetworkState {
    /// The network's socket with `cookie`, as a map member; nil when none has it.
    func mappedSocket(cookie: UInt64) -> MappedSocket? {
        guard let index = network.sockets.firstIndex(where: { $0.cookie == cookie }) else { return nil }
        return MappedSocket(network: network.sockets[index], index: index)
    }
}

/// The cookie a host update names: the value's 4 or 8 little-endian bytes (where the kernel
/// takes a socket file descriptor, Mimic takes the network socket's cookie).
private func cookie(of value: [UInt8]) -> UInt64 {
    value.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
}

private func bytes(_ value: UInt64, _ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
}

/// `BPF_MAP_TYPE_SOCKMAP` (sockets by index) and `BPF_MAP_TYPE_SOCKHASH` (sockets by key), as
/// `net/core/sock_map.c` keeps them.
///
/// Host code fills it with the network's sockets: `update` takes the socket's cookie as the
/// 4- or 8-byte value (where `BPF_MAP_UPDATE_ELEM` takes a socket's fd): an unknown cookie is
/// `-EBADF`, a TCP socket neither established nor listening `-EOPNOTSUPP`, a socket in a
/// reuseport array `-EBUSY`; flags above `BPF_EXIST` `-EINVAL`, a sockmap index past the end
/// `-E2BIG`, a full sockhash `-E2BIG`. The host reads back the cookie (`value(forKey:)`, only
/// with 8-byte values: the kernel answers `-ENOSPC` for 4). Deleting a missing element is
/// `-EINVAL` in a sockmap, `-ENOENT` in a sockhash. A sockmap's keys are every index, set or
/// not, as the kernel iterates them.
///
/// Programs use it through `MapHelpers` (a lookup gives a `struct bpf_sock` reference the
/// program must release; an update takes a socket pointer; delete) and the redirect and update
/// helpers (`SocketMapHelpers`).
public final class SocketMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    let network: NetworkState
    let membership: SocketMapMembership
    private let memory: MapMemory
    /// Members by key, and the sockhash's keys in insertion order.
    private let state = Mutex<(members: [[UInt8]: MappedSocket], order: [[UInt8]])>(([:], []))

    init(attributes: MapAttributes, id: Int, network: NetworkState, membership: SocketMapMembership, memory: MapMemory) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        self.network = network
        self.membership = membership
        self.memory = memory
    }

    var isHash: Bool { attributes.type == .sockHash }

    /// The socket at `key`, if any.
    public func socket(forKey key: [UInt8]) -> MappedSocket? {
        guard key.count == attributes.keySize else { return nil }
        return state.withLock { $0.members[key] }
    }

    /// Adds `socket` at `key` after the checks common to every path (`sock_map_update_common`,
    /// `sock_hash_update_common`).
    func insert(_ socket: MappedSocket, key: [UInt8], flags: MapUpdateFlags) -> Errno? {
        guard key.count == attributes.keySize else { return .invalid }
        guard flags.rawValue <= MapUpdateFlags.exist.rawValue else { return .invalid }
        if !isHash, Int(littleEndianUInt32(key)) >= attributes.maxEntries { return .tooBig }
        // sock_map_link: the socket's sk_user_data must be free for a psock.
        if membership.inReuseportArray(socket.cookie) { return .busy }
        return state.withLock { s -> Errno? in
            let old = s.members[key]
            if old != nil, flags == .noExist { return .exists }
            if old == nil, flags == .exist { return .noEntry }
            if isHash, old == nil, s.members.count >= attributes.maxEntries { return .tooBig }
            s.members[key] = socket
            if old == nil {
                s.order.append(key)
            }
            membership.joinSocketMap(socket.cookie)
            if let old { membership.leaveSocketMap(old.cookie) }
            return nil
        }
    }

    /// A program's update (`sock_map_update_elem`): the socket must be full, suitable and, for
    /// TCP, established or listening.
    func update(key: [UInt8], socket: MappedSocket, flags: MapUpdateFlags) -> Errno? {
        guard socket.isFull else { return .invalid }
        guard socket.suitsSocketMaps, socket.stateAllowsSocketMaps else { return .notSupported }
        return insert(socket, key: key, flags: flags)
    }

    /// Host update: the value is the cookie of one of the network's sockets.
    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? {
        guard key.count == attributes.keySize, value.count == attributes.valueSize else { return .invalid }
        guard let socket = network.mappedSocket(cookie: cookie(of: value)) else { return .badFileDescriptor }
        guard socket.suitsSocketMaps, socket.stateAllowsSocketMaps else { return .notSupported }
        return insert(socket, key: key, flags: flags)
    }

    /// Puts the network's socket with `cookie` at `key` (the host's update, by cookie).
    @discardableResult
    public func setSocket(cookie: UInt64, forKey key: [UInt8], flags: MapUpdateFlags = .any) -> Errno? {
        update(key: key, value: bytes(cookie, attributes.valueSize), flags: flags, cpu: 0)
    }

    /// No address: a program's lookup takes a socket reference (`SocketMapHelpers.lookup`).
    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { nil }

    public func delete(key: [UInt8]) -> Errno? {
        guard key.count == attributes.keySize else { return .invalid }
        if !isHash, Int(littleEndianUInt32(key)) >= attributes.maxEntries { return .invalid }
        return state.withLock { s -> Errno? in
            guard let old = s.members.removeValue(forKey: key) else { return isHash ? .noEntry : .invalid }
            s.order.removeAll { $0 == key }
            membership.leaveSocketMap(old.cookie)
            return nil
        }
    }

    public func nextKey(after key: [UInt8]?) -> [UInt8]? {
        if !isHash {
            let count = attributes.maxEntries
            guard let key, key.count == 4 else { return count == 0 ? nil : littleEndianBytes(0) }
            let index = Int(littleEndianUInt32(key))
            if index >= count { return littleEndianBytes(0) }
            return index + 1 < count ? littleEndianBytes(UInt32(index + 1)) : nil
        }
        return state.withLock { s in
            guard let key, let position = s.order.firstIndex(of: key) else { return s.order.first }
            return position + 1 < s.order.count ? s.order[position + 1] : nil
        }
    }

    /// What `BPF_MAP_LOOKUP_ELEM` returns (`sock_map_lookup_sys`): the socket's cookie;
    /// `-ENOSPC` unless the value is 8 bytes, `-ENOENT` for an empty key.
    public func hostLookup(key: [UInt8]) -> Result<UInt64, Errno> {
        guard attributes.valueSize == 8 else { return .failure(.noSpace) }
        guard let socket = socket(forKey: key) else { return .failure(.noEntry) }
        return .success(socket.cookie)
    }

    /// The socket's cookie (8-byte values only, as `hostLookup`).
    public func value(forKey key: [UInt8]) -> [UInt8]? {
        guard case .success(let cookie) = hostLookup(key: key) else { return nil }
        return bytes(cookie, 8)
    }

    /// The keys that hold a socket, in iteration order.
    public var keys: [[UInt8]] {
        state.withLock { s in
            isHash ? s.order : s.members.keys.sorted { littleEndianUInt32($0) < littleEndianUInt32($1) }
        }
    }
}

/// `BPF_MAP_TYPE_REUSEPORT_SOCKARRAY` (`kernel/bpf/reuseport_array.c`): sockets of reuseport
/// groups by index, for `bpf_sk_select_reuseport`.
///
/// Host code fills it with the network's sockets by cookie (the 4- or 8-byte value, where the
/// kernel takes an fd), with the kernel's checks in its order: flags above `BPF_EXIST`
/// `-EINVAL`, an index past the end `-E2BIG`, an unknown cookie `-EBADF`, `BPF_NOEXIST` on a
/// set slot `-EEXIST`, `BPF_EXIST` on an empty one `-ENOENT`, a protocol other than TCP / UDP
/// `-ENOTSUPP` (524), a socket that is not a listening TCP or bound UDP socket with
/// `SO_REUSEPORT` (`reuseport` in the network) `-EINVAL`, one already in a reuseport array or a
/// sockmap `-EBUSY`. The host reads back cookies (8-byte values; `-ENOSPC` for 4) and deletes
/// (`-E2BIG`, `-ENOENT`). Programs may only pass it to `bpf_sk_select_reuseport`.
public final class ReuseportSocketArray: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    let network: NetworkState
    let membership: SocketMapMembership
    private let memory: MapMemory
    private let slots = Mutex<[Int: MappedSocket]>([:])

    init(attributes: MapAttributes, id: Int, network: NetworkState, membership: SocketMapMembership, memory: MapMemory) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        self.network = network
        self.membership = membership
        self.memory = memory
    }

    /// The socket at `index`, if any.
    public func socket(at index: Int) -> MappedSocket? {
        guard index >= 0, index < attributes.maxEntries else { return nil }
        return slots.withLock { $0[index] }
    }

    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? {
        guard key.count == 4, value.count == attributes.valueSize else { return .invalid }
        guard flags.rawValue <= MapUpdateFlags.exist.rawValue else { return .invalid }
        let index = Int(littleEndianUInt32(key))
        guard index < attributes.maxEntries else { return .tooBig }
        guard let socket = network.mappedSocket(cookie: cookie(of: value)) else { return .badFileDescriptor }
        return slots.withLock { slots -> Errno? in
            let old = slots[index]
            if old != nil, flags == .noExist { return .exists }
            if old == nil, flags == .exist { return .noEntry }
            guard socket.protocol == 6 || socket.protocol == 17, socket.family == 2 || socket.family == 10 else {
                return .kernelNotSupported
            }
            guard socket.inReuseportGroup else { return .invalid }
            // sk_user_data is taken (also when this very slot holds the socket already).
            if membership.inReuseportArray(socket.cookie) || membership.inSocketMap(socket.cookie) { return .busy }
            if let old { membership.leaveReuseportArray(old.cookie) }
            slots[index] = socket
            membership.joinReuseportArray(socket.cookie)
            return nil
        }
    }

    /// Puts the network's socket with `cookie` at `index`.
    @discardableResult
    public func setSocket(cookie: UInt64, at index: Int, flags: MapUpdateFlags = .any) -> Errno? {
        guard index >= 0, index <= Int(UInt32.max) else { return .tooBig }
        return update(key: littleEndianBytes(UInt32(index)), value: bytes(cookie, attributes.valueSize), flags: flags, cpu: 0)
    }

    /// Programs cannot look it up (the verifier allows only `bpf_sk_select_reuseport`).
    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { nil }

    public func delete(key: [UInt8]) -> Errno? {
        guard key.count == 4 else { return .invalid }
        let index = Int(littleEndianUInt32(key))
        guard index < attributes.maxEntries else { return .tooBig }
        return slots.withLock { slots -> Errno? in
            guard let old = slots.removeValue(forKey: index) else { return .noEntry }
            membership.leaveReuseportArray(old.cookie)
            return nil
        }
    }

    public func nextKey(after key: [UInt8]?) -> [UInt8]? {
        let count = attributes.maxEntries
        guard let key, key.count == 4 else { return count == 0 ? nil : littleEndianBytes(0) }
        let index = Int(littleEndianUInt32(key))
        if index >= count { return littleEndianBytes(0) }
        return index + 1 < count ? littleEndianBytes(UInt32(index + 1)) : nil
    }

    /// `bpf_fd_reuseport_array_lookup_elem`: the cookie; `-ENOSPC` unless values are 8 bytes.
    public func hostLookup(key: [UInt8]) -> Result<UInt64, Errno> {
        guard attributes.valueSize == 8 else { return .failure(.noSpace) }
        guard key.count == 4, let socket = socket(at: Int(littleEndianUInt32(key))) else {
            return .failure(.noEntry)
        }
        return .success(socket.cookie)
    }

    public func value(forKey key: [UInt8]) -> [UInt8]? {
        guard case .success(let cookie) = hostLookup(key: key) else { return nil }
        return bytes(cookie, 8)
    }

    /// The indexes that hold a socket.
    public var keys: [[UInt8]] { slots.withLock { $0.keys.sorted().map { littleEndianBytes(UInt32($0)) } } }
}

/// `BPF_MAP_TYPE_CGROUP_ARRAY` (`kernel/bpf/arraymap.c`): cgroups of the emulated system by
/// index, for `bpf_skb_under_cgroup` and `bpf_current_task_under_cgroup`.
///
/// Host code fills it with `setCgroup(path:at:)` or `update` with a cgroup's 4-byte id (where
/// the kernel takes a cgroup directory's fd): a cgroup the emulated system
/// (`LinuxConfiguration.system`) lacks is `-EBADF`; as every fd array, flags other than
/// `BPF_ANY` are `-EINVAL` and an index past the end `-E2BIG`; deleting an empty slot `-ENOENT`.
/// The host cannot read values back (the kernel answers `-ENOTSUPP`): `cgroup(at:)` tells what
/// a slot holds. Programs may only pass it to the two helpers.
public final class CgroupArrayMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    /// The emulated system's cgroups.
    let system: EmulatedSystem
    private let memory: MapMemory
    private let slots: Mutex<FDSlots<EmulatedSystem.Cgroup>>

    init(attributes: MapAttributes, id: Int, system: EmulatedSystem, memory: MapMemory) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        self.system = system
        self.memory = memory
        slots = Mutex(FDSlots(count: attributes.maxEntries))
    }

    /// The cgroup at `index`, if any.
    public func cgroup(at index: Int) -> EmulatedSystem.Cgroup? { slots.withLock { $0[index] } }

    /// Puts the emulated system's cgroup at `path` at `index`; `-EBADF` when there is none.
    @discardableResult
    public func setCgroup(path: String, at index: Int) -> Errno? {
        guard let cgroup = system.cgroup(path: path) else { return .badFileDescriptor }
        guard index >= 0, index < attributes.maxEntries else { return .tooBig }
        slots.withLock { $0[index] = cgroup }
        return nil
    }

    /// Host update: the value is a cgroup's id (4 bytes).
    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? {
        guard key.count == 4, value.count == 4, flags == .any else { return .invalid }
        guard Int(littleEndianUInt32(key)) < attributes.maxEntries else { return .tooBig }
        let id = UInt64(littleEndianUInt32(value))
        guard let cgroup = system.cgroups.first(where: { $0.id == id }) else { return .badFileDescriptor }
        return slots.withLock { $0.set(cgroup, key: key, flags: flags) }
    }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { nil }
    public func delete(key: [UInt8]) -> Errno? { slots.withLock { $0.delete(key: key) } }
    public func nextKey(after key: [UInt8]?) -> [UInt8]? { slots.withLock { $0.nextKey(after: key) } }
    /// Nil: the kernel does not give cgroup array values to user space (`cgroup(at:)` does).
    public func value(forKey key: [UInt8]) -> [UInt8]? { nil }
}
