import MimicCore
import MimicMemory

/// Where a socket program sent its data or connection: the socket the run's last successful
/// `bpf_sk_redirect_map` / `_hash`, `bpf_msg_redirect_map` / `_hash` or
/// `bpf_sk_select_reuseport` picked (`LinuxProcessState.socketRedirect`).
public struct SocketRedirect: Sendable, Equatable, CustomStringConvertible {
    /// The helper's C name.
    public var helper: String
    /// The map the socket came from, and its key there.
    public var map: String
    public var key: [UInt8]
    /// The socket's cookie (`Network.Socket.cookie` for the network's sockets).
    public var cookie: UInt64
    /// `BPF_F_INGRESS`: into the socket's receive queue rather than out of it.
    public var ingress: Bool

    public var description: String {
        let hex = key.map { String($0, radix: 16).count == 1 ? "0\(String($0, radix: 16))" : String($0, radix: 16) }
        return "socket cookie \(cookie) (map \(map), key \(hex.joined()))\(ingress ? ", ingress" : "")"
    }
}

/// The helpers of socket maps, reuseport arrays and cgroup arrays, and the socket and cgroup
/// identity helpers, with the kernel's checks and return values (`net/core/sock_map.c`,
/// `net/core/filter.c`, `kernel/bpf/helpers.c`, `kernel/bpf/cgroup.c`):
///
/// - `bpf_sk_redirect_map` / `_hash` (sk_skb), `bpf_msg_redirect_map` / `_hash` (sk_msg): a flag
///   other than `BPF_F_INGRESS`, an empty key or a socket that takes no redirects (a TCP
///   listener; anything else not connected) give `SK_DROP` (0); otherwise the socket is
///   recorded (`LinuxProcessState.socketRedirect`, `socketEffects`) and `SK_PASS` (1) returned.
/// - `bpf_sock_map_update` / `bpf_sock_hash_update` (sock_ops): the context's socket, only from
///   the established and listen callbacks (`-EOPNOTSUPP` otherwise), then the map's update checks.
/// - `bpf_sk_select_reuseport` (sk_reuseport): from a reuseport array, sockmap or sockhash;
///   `-ENOENT` for an empty key, `-EINVAL` (`-ENOENT` from a reuseport array) for a socket in
///   no reuseport group, `-EPROTOTYPE` / `-EAFNOSUPPORT` / `-EBADFD` for another group.
/// - `bpf_skb_under_cgroup`, `bpf_current_task_under_cgroup`: `-ENOENT` (no full socket),
///   `-E2BIG`, `-EAGAIN` (empty slot), else whether the socket's / task's cgroup is the slot's
///   or below it.
/// - `bpf_get_socket_uid` (65534, the overflow uid, without a full socket), `bpf_sk_cgroup_id`,
///   `bpf_sk_ancestor_cgroup_id`, `bpf_skb_cgroup_classid`, `bpf_get_cgroup_classid`: from the
///   socket's `uid`, `cgroup` and `classid` in the network; a context's own socket has uid 0,
///   the root cgroup and class id 0.
/// - `bpf_sock_from_file`: NULL for every file of the emulated system that is not a socket.
/// - `bpf_get_retval` / `bpf_set_retval` (cgroup hooks): the hook's return value.
enum SocketMapHelpers {
    static let skPass: UInt64 = 1, skDrop: UInt64 = 0
    /// `BPF_F_INGRESS`.
    static let ingress: UInt64 = 1
    /// The overflow uid `from_kuid_munged` gives when there is no socket.
    static let overflowUID: UInt64 = 65534
    static let protocolTypeError = Errno(rawValue: 91) // EPROTOTYPE
    static let familyNotSupported = Errno(rawValue: 97) // EAFNOSUPPORT
    static let badFileDescriptorState = Errno(rawValue: 77) // EBADFD

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let network = emulator.networkState
        let system = emulator.configuration.system ?? EmulatedSystem()
        return [
            // long bpf_sk_redirect_map(struct sk_buff *skb, struct bpf_map *map, u32 key, u64 flags)
            LinuxHelper.make(.skRedirectMap) { [weak emulator] call throws(HelperFailure) in
                try redirect(call, emulator, hash: false, message: false)
            },
            LinuxHelper.make(.skRedirectHash) { [weak emulator] call throws(HelperFailure) in
                try redirect(call, emulator, hash: true, message: false)
            },
            LinuxHelper.make(.msgRedirectMap) { [weak emulator] call throws(HelperFailure) in
                try redirect(call, emulator, hash: false, message: true)
            },
            LinuxHelper.make(.msgRedirectHash) { [weak emulator] call throws(HelperFailure) in
                try redirect(call, emulator, hash: true, message: true)
            },
            // long bpf_sock_map_update(struct bpf_sock_ops *skops, struct bpf_map *map, void *key, u64 flags)
            LinuxHelper.make(.sockMapUpdate) { [weak emulator] call throws(HelperFailure) in
                try sockOpsUpdate(call, emulator, hash: false)
            },
            LinuxHelper.make(.sockHashUpdate) { [weak emulator] call throws(HelperFailure) in
                try sockOpsUpdate(call, emulator, hash: true)
            },
            // long bpf_sk_select_reuseport(struct sk_reuseport_md *reuse, struct bpf_map *map, void *key, u64 flags)
            LinuxHelper.make(.skSelectReuseport) { [weak emulator] call throws(HelperFailure) in
                try selectReuseport(call, emulator)
            },
            // long bpf_skb_under_cgroup(struct sk_buff *skb, struct bpf_map *map, u32 index)
            LinuxHelper.make(.skbUnderCgroup) { [weak emulator] call throws(HelperFailure) in
                let socket = try fullSocket(try skbSocket(call, network), network)
                let map = try MapHelpers.map(
                    emulator, call.process, argument: 2, as: CgroupArrayMap.self, "a cgroup array")
                guard let socket else { return Errno.noEntry.r0 }
                return try underCgroup(call, map, ancestry: try ancestry(of: socket, network, system, call))
            },
            // long bpf_current_task_under_cgroup(struct bpf_map *map, u32 index)
            LinuxHelper.make(.currentTaskUnderCgroup) { [weak emulator] call throws(HelperFailure) in
                let map = try MapHelpers.map(
                    emulator, call.process, argument: 1, as: CgroupArrayMap.self, "a cgroup array")
                let ancestry = (call.state?.environment ?? TaskEnvironment()).cgroupAncestry
                return try underCgroup(call, map, index: call.arg32(2), ancestry: ancestry)
            },
            // u32 bpf_get_cgroup_classid(struct sk_buff *skb): the current task's net_cls class
            // id (the kernel's test run is in process context); the emulated system has cgroup
            // v2 only, where net_cls (a v1 controller) leaves every task's class id 0.
            LinuxHelper.make(.getCgroupClassid) { call throws(HelperFailure) in
                _ = try call.packet(.skb)
                return 0
            },
            // u64 bpf_skb_cgroup_classid(struct sk_buff *skb)
            LinuxHelper.make(.skbCgroupClassid) { call throws(HelperFailure) in
                guard let socket = try fullSocket(try skbSocket(call, network), network) else { return 0 }
                return UInt64(owner(of: socket, network).classid)
            },
            // u32 bpf_get_socket_uid(struct sk_buff *skb)
            LinuxHelper.make(.getSocketUid) { call throws(HelperFailure) in
                guard let socket = try fullSocket(try skbSocket(call, network), network) else { return overflowUID }
                return UInt64(owner(of: socket, network).uid)
            },
            // u64 bpf_sk_cgroup_id(void *sk)
            LinuxHelper.make(.skCgroupId) { call throws(HelperFailure) in
                guard let socket = try fullSocket(try socket(at: call.arg(1), call, network), network) else { return 0 }
                return try ancestry(of: socket, network, system, call).last ?? 0
            },
            // u64 bpf_sk_ancestor_cgroup_id(void *sk, int ancestor_level)
            LinuxHelper.make(.skAncestorCgroupId) { call throws(HelperFailure) in
                guard let socket = try fullSocket(try socket(at: call.arg(1), call, network), network) else { return 0 }
                let ancestry = try ancestry(of: socket, network, system, call)
                let level = Int64(call.argInt(2))
                guard level >= 0, level < Int64(ancestry.count) else { return 0 }
                return ancestry[Int(level)]
            },
            // struct socket *bpf_sock_from_file(struct file *file)
            LinuxHelper.make(.sockFromFile) { [weak emulator] call throws(HelperFailure) in
                try sockFromFile(call, emulator)
            },
            // int bpf_get_retval(void)
            LinuxHelper.make(.getRetval) { call throws(HelperFailure) in
                let state = try cgroupHook(call)
                return UInt64(bitPattern: Int64(state.cgroupRetval))
            },
            // int bpf_set_retval(int retval)
            LinuxHelper.make(.setRetval) { call throws(HelperFailure) in
                let state = try cgroupHook(call)
                state.cgroupRetval = call.argInt(1)
                return SocketProgramHelpers.recorded(call, "\(call.argInt(1))", 0)
            },
        ]
    }

    // MARK: Sockets behind pointers

    /// The socket at `address`, a `struct bpf_sock` the program holds: a network socket a lookup
    /// gave (or its `bpf_tcp_sock`), a socket a socket map gave, or any other socket struct (the
    /// context's own), known by its cookie. Nil for NULL.
    static func socket(at address: UInt64, _ call: HelperCall, _ network: NetworkState) throws(HelperFailure)
        -> MappedSocket?
    {
        guard address != 0 else { return nil }
        let references = call.state?.sockets
        let owner = references?.tcpOwner[address] ?? address
        if let index = references?.socketAt[owner] {
            return MappedSocket(network: network.network.sockets[index], index: index)
        }
        if let member = references?.mapped[owner] { return member }
        let bytes = try call.read(owner, count: 80)
        return MappedSocket(cookie: SocketProgramHelpers.cookie(of: bytes), networkIndex: nil, reuseport: false, sock: bytes)
    }

    /// The socket of the sk_buff in R1 (`__sk_buff.sk`), or nil.
    static func skbSocket(_ call: HelperCall, _ network: NetworkState) throws(HelperFailure) -> MappedSocket? {
        let buffer = try call.packet(.skb)
        let address = UInt64(buffer.loadU32(at: SKBLayout.sk)) | UInt64(buffer.loadU32(at: SKBLayout.sk + 4)) << 32
        return try socket(at: address, call, network)
    }

    /// `sk_to_full_sk` and `sk_fullsock`: a request socket stands for its listener; a time-wait
    /// socket (or a request socket without a listener) gives nil.
    static func fullSocket(_ socket: MappedSocket?, _ network: NetworkState) throws(HelperFailure) -> MappedSocket? {
        guard var socket else { return nil }
        if socket.state == 12, let index = socket.networkIndex {
            let s = network.network.sockets[index]
            guard
                let listener = SocketTable.listener(
                    network.network.sockets, family: s.family, destination: s.localAddress, port: s.localPort,
                    device: s.boundIfindex == 0 ? 1 : s.boundIfindex)
            else { return nil }
            socket = MappedSocket(network: network.network.sockets[listener], index: listener)
        }
        return socket.isFull ? socket : nil
    }

    /// A socket's owner uid, cgroup path and net_cls class id: the network's description, or
    /// for a context's own socket uid 0, the root cgroup and class id 0.
    static func owner(of socket: MappedSocket, _ network: NetworkState) -> (uid: UInt32, cgroup: String, classid: UInt32) {
        guard let index = socket.networkIndex else { return (0, "/", 0) }
        let s = network.network.sockets[index]
        return (s.uid, s.cgroup, s.classid)
    }

    /// The ids of the socket's cgroup and its ancestors, the root first.
    static func ancestry(
        of socket: MappedSocket, _ network: NetworkState, _ system: EmulatedSystem, _ call: HelperCall
    ) throws(HelperFailure) -> [UInt64] {
        let path = owner(of: socket, network).cgroup
        guard system.cgroup(path: path) != nil else {
            throw .message(
                "\(call.name): socket cookie \(socket.cookie) is in cgroup \(path), which the emulated system's cgroups do not list (LinuxConfiguration.system, --system)"
            )
        }
        return system.cgroupAncestry(of: path)
    }

    /// `bpf_skb_under_cgroup` / `bpf_current_task_under_cgroup` once the subject is known.
    static func underCgroup(_ call: HelperCall, _ map: CgroupArrayMap, index: UInt32? = nil, ancestry: [UInt64])
        throws(HelperFailure) -> UInt64
    {
        let index = Int(index ?? call.arg32(3))
        guard index < map.attributes.maxEntries else { return Errno.tooBig.r0 }
        guard let cgroup = map.cgroup(at: index) else { return Errno.tryAgain.r0 }
        return ancestry.contains(cgroup.id) ? 1 : 0
    }

    // MARK: Redirects and updates

    /// The socket map in argument `n`, which must be a sockhash when `hash` is set, else a
    /// sockmap (the verifier pairs each helper with one map type).
    static func socketMap(_ call: HelperCall, _ emulator: LinuxEmulator?, argument n: Int, hash: Bool)
        throws(HelperFailure) -> SocketMap
    {
        let map = try MapHelpers.map(
            emulator, call.process, argument: n, as: SocketMap.self, hash ? "a sockhash" : "a sockmap")
        guard map.isHash == hash else {
            throw .message(
                "\(call.name) takes a \(hash ? "sockhash" : "sockmap"); map \(map.name) is a \(map.attributes.type.cName) (the kernel's verifier refuses the call)"
            )
        }
        return map
    }

    /// The key a helper names: a u32 index in R3 for a sockmap, a pointer to the key for a sockhash.
    static func key(_ call: HelperCall, _ map: SocketMap, byValue: Bool) throws(HelperFailure) -> [UInt8] {
        byValue ? littleEndianBytes(call.arg32(3)) : try call.read(call.arg(3), count: map.attributes.keySize)
    }

    static func redirect(_ call: HelperCall, _ emulator: LinuxEmulator?, hash: Bool, message: Bool)
        throws(HelperFailure) -> UInt64
    {
        if message {
            _ = try SocketProgramHelpers.context(call, kinds: [.skMsg])
        } else {
            _ = try call.packet(.skb)
            if let (type, _) = call.state?.skbWriteCheck, type != .skSkb {
                throw .message("\(call.name) is a helper of sk_skb programs; this is a \(type) program")
            }
        }
        let map = try socketMap(call, emulator, argument: 2, hash: hash)
        let key = try key(call, map, byValue: !hash)
        let flags = call.arg(4)
        let detail = "map \(map.name), key \(key.map(String.init).joined(separator: " ")), flags \(flags)"
        guard flags & ~ingress == 0, let socket = map.socket(forKey: key), socket.acceptsRedirects else {
            return SocketProgramHelpers.recorded(call, detail, Int64(skDrop))
        }
        call.state?.socketRedirect = SocketRedirect(
            helper: call.name, map: map.name, key: key, cookie: socket.cookie, ingress: flags & ingress != 0)
        return SocketProgramHelpers.recorded(call, detail + " → socket cookie \(socket.cookie)", Int64(skPass))
    }

    /// `bpf_sock_map_update` / `bpf_sock_hash_update`: the sock_ops context's socket, from the
    /// `ACTIVE_ESTABLISHED` (4), `PASSIVE_ESTABLISHED` (5) and `TCP_LISTEN` (11) callbacks.
    static func sockOpsUpdate(_ call: HelperCall, _ emulator: LinuxEmulator?, hash: Bool) throws(HelperFailure)
        -> UInt64
    {
        let (program, record) = try SocketProgramHelpers.context(call, kinds: [.sockOps])
        let map = try socketMap(call, emulator, argument: 2, hash: hash)
        let key = try call.read(call.arg(3), count: map.attributes.keySize)
        let flags = MapUpdateFlags(rawValue: call.arg(4))
        let info = program.socket ?? SocketInfo()
        let socket = MappedSocket(cookie: info.cookie, networkIndex: nil, reuseport: false, sock: info.bytes)
        let operation = record.load32(SocketProgramHelpers.sockOpsOp)
        let detail = "map \(map.name), key \(key.map(String.init).joined(separator: " ")), socket cookie \(socket.cookie)"
        guard socket.suitsSocketMaps, [4, 5, 11].contains(operation) else {
            return SocketProgramHelpers.recorded(call, detail, -Int64(Errno.notSupported.rawValue))
        }
        let errno = map.insert(socket, key: key, flags: flags)
        return SocketProgramHelpers.recorded(call, detail, errno.map { -Int64($0.rawValue) } ?? 0)
    }

    /// `sk_select_reuseport`.
    static func selectReuseport(_ call: HelperCall, _ emulator: LinuxEmulator?) throws(HelperFailure) -> UInt64 {
        let (program, _) = try SocketProgramHelpers.context(call, kinds: [.skReuseport])
        let map = try MapHelpers.map(emulator, call.process, argument: 2)
        let key: [UInt8]
        let selected: MappedSocket?
        let isArray: Bool
        switch map {
        case let array as ReuseportSocketArray:
            key = try call.read(call.arg(3), count: 4)
            selected = array.socket(at: Int(littleEndianUInt32(key)))
            isArray = true
        case let sockets as SocketMap:
            key = try call.read(call.arg(3), count: sockets.attributes.keySize)
            selected = sockets.socket(forKey: key)
            isArray = false
        default:
            throw .message(
                "bpf_sk_select_reuseport takes a reuseport array, sockmap or sockhash; map \(map.name) is a \(map.attributes.type.cName)"
            )
        }
        let detail = "map \(map.name), key \(key.map(String.init).joined(separator: " "))"
        func fail(_ errno: Errno) -> UInt64 { SocketProgramHelpers.recorded(call, detail, -Int64(errno.rawValue)) }
        guard let selected else { return fail(.noEntry) }
        guard selected.inReuseportGroup else { return fail(isArray ? .noEntry : .invalid) }
        let info = program.socket ?? SocketInfo()
        let context = MappedSocket(cookie: info.cookie, networkIndex: nil, reuseport: true, sock: info.bytes)
        if selected.protocol != context.protocol { return fail(protocolTypeError) }
        if selected.family != context.family { return fail(familyNotSupported) }
        if selected.localEndpoint != context.localEndpoint { return fail(badFileDescriptorState) }
        program.selectedCookie = selected.cookie
        call.state?.socketRedirect = SocketRedirect(
            helper: call.name, map: map.name, key: key, cookie: selected.cookie, ingress: false)
        return SocketProgramHelpers.recorded(call, detail + " → socket cookie \(selected.cookie)", 0)
    }

    // MARK: Program map operations

    /// `bpf_map_lookup_elem`, `_update_elem` and `_delete_elem` on the maps of this file, as the
    /// kernel lets programs use them: a socket map lookup takes a socket reference, an update
    /// takes a socket pointer, a delete removes; cgroup and reuseport arrays refuse all three
    /// (the verifier allows them only in their helpers). Nil for other maps.
    static func programOperation(
        _ map: any BPFMap, _ process: MimicCore.Process, _ id: HelperID, emulator: LinuxEmulator?
    ) throws(HelperFailure) -> UInt64? {
        switch map {
        case let sockets as SocketMap:
            guard let emulator else { return nil }
            let call = HelperCall(process: process, state: LinuxProcessState.of(process), id: id.rawValue, name: id.name)
            let key = try call.read(call.arg(2), count: sockets.attributes.keySize)
            switch id {
            case .mapLookupElem:
                guard let member = sockets.socket(forKey: key) else { return 0 }
                return try reference(to: member, call, emulator.networkState)
            case .mapUpdateElem:
                guard let socket = try socket(at: call.arg(3), call, emulator.networkState) else {
                    return Errno.invalid.r0
                }
                let errno = sockets.update(key: key, socket: socket, flags: MapUpdateFlags(rawValue: call.arg(4)))
                return errno.map { $0.r0 } ?? 0
            default:
                return sockets.delete(key: key).map { $0.r0 } ?? 0
            }
        case is ReuseportSocketArray, is CgroupArrayMap:
            let helpers =
                map is CgroupArrayMap ? "bpf_skb_under_cgroup and bpf_current_task_under_cgroup" : "bpf_sk_select_reuseport"
            throw .message(
                "map \(map.name) is a \(map.attributes.type.cName): programs pass it only to \(helpers) (the kernel's verifier refuses \(id.name) on it)"
            )
        default:
            return nil
        }
    }

    /// A socket map member as a `struct bpf_sock` reference the program holds (and must release).
    static func reference(to member: MappedSocket, _ call: HelperCall, _ network: NetworkState) throws(HelperFailure)
        -> UInt64
    {
        let references = try SocketHelpers.references(call, network)
        let address: UInt64
        if let index = member.networkIndex {
            address = try SocketHelpers.sockAddress(call, network, index, references)
        } else if let known = references.mapped.first(where: { $0.value.cookie == member.cookie })?.key {
            address = known
        } else {
            do {
                address = try call.process.memory.map(
                    RegionStorage(bytes: member.sock), name: "bpf_sock (cookie \(member.cookie))", kind: .readOnly)
            } catch {
                throw .message("cannot map a socket's struct bpf_sock: \(error)")
            }
            references.mapped[address] = member
        }
        references.held[address, default: 0] += 1
        return address
    }

    // MARK: Files and cgroup hooks

    /// `bpf_sock_from_file`: the file must be one of the emulated system's (a `struct file` of a
    /// task's open files). A socket's file is named `socket:[N]`, as `d_path` shows it: for it
    /// the answer is a `struct socket` — whose layout Mimic does not emulate: an empty region
    /// named after it, which a program can test for NULL — for any other file NULL.
    static func sockFromFile(_ call: HelperCall, _ emulator: LinuxEmulator?) throws(HelperFailure) -> UInt64 {
        let state = try SystemHelpers.systemState(emulator, call)
        guard let paths = state?.kernel?.filePaths, let path = paths[call.arg(1)] else {
            throw .message(
                "bpf_sock_from_file: r1 (0x\(String(call.arg(1), radix: 16))) is not a struct file of the emulated system (a task's open file)"
            )
        }
        guard path.hasPrefix("socket:[") else { return 0 }
        do {
            return try call.process.memory.map(
                RegionStorage(count: 0), name: "struct socket of \(path) (the kernel's layout is not emulated)",
                kind: .readOnly)
        } catch {
            throw .message("cannot map a struct socket stand-in: \(error)")
        }
    }

    /// The process state of a cgroup hook that offers `bpf_get_retval` / `bpf_set_retval`
    /// (`cgroup_common_func_proto`): cgroup sock, sock_addr (not recvmsg, getpeername,
    /// getsockname) and sysctl programs.
    static func cgroupHook(_ call: HelperCall) throws(HelperFailure) -> LinuxProcessState {
        let state = try call.linuxState()
        let refused: Set<AttachType> = [
            .cgroupInetIngress, .cgroupInetEgress, .cgroupSockOps, .cgroupUdp4Recvmsg, .cgroupUdp6Recvmsg,
            .cgroupUnixRecvmsg, .cgroupInet4Getpeername, .cgroupInet6Getpeername, .cgroupUnixGetpeername,
            .cgroupInet4Getsockname, .cgroupInet6Getsockname, .cgroupUnixGetsockname,
        ]
        if let program = state.socketProgram, program.kind == .sockAddr || program.kind == .sock {
            if let attach = program.attachType, refused.contains(attach) {
                throw .message("\(call.name) is not offered to \(attach) programs (the kernel's verifier refuses it)")
            }
            return state
        }
        if state.sysctl != nil { return state }
        throw .message(
            "\(call.name) is a helper of cgroup hooks (sock_create / post_bind, bind / connect / sendmsg, sysctl, sockopt, device); this context is none of them"
        )
    }
}
