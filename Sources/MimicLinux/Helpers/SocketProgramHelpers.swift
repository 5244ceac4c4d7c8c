import MimicCore
import MimicMemory

/// Helpers of the socket and cgroup program types, with the kernel's checks and return codes
/// (`net/core/filter.c`); what they do outside the program is recorded in
/// `LinuxProcessState.socketEffects`:
///
/// - `bpf_sk_assign` from an sk_lookup program (`bpf_sk_lookup_assign`): selects a socket or,
///   with NULL, clears the selection; `BPF_SK_LOOKUP_F_REPLACE` / `_F_NO_REUSEPORT`.
/// - `bpf_sock_ops_cb_flags_set`: sets `bpf_sock_ops_cb_flags` (a full socket only), returns
///   the bits it does not know.
/// - `bpf_setsockopt` / `bpf_getsockopt` from sock_ops and sock_addr programs: the options the
///   kernel's `_bpf_setsockopt` accepts (SOL_SOCKET, SOL_TCP, SOL_IP, SOL_IPV6), with its
///   length and protocol checks; values set are kept per socket and read back. Both are
///   `-EOPNOTSUPP` in sock_ops callbacks past `WRITE_HDR_OPT_CB`, where the socket is not locked.
/// - `bpf_get_local_storage`: the cgroup storage of the program's attach type
///   (`CgroupStorageMap`); `bpf_sk_storage_get` / `bpf_sk_storage_delete`: a socket's storage
///   (`SocketStorageMap`; NULL for flags other than `BPF_SK_STORAGE_GET_F_CREATE` or a NULL socket).
/// - `bpf_bind` from `connect4` / `connect6` programs: checks the address length and family,
///   records the address (every address is local to the emulated host).
enum SocketProgramHelpers {
    static let solSocket: Int32 = 1, solIP: Int32 = 0, solIPv6: Int32 = 41, solTCP: Int32 = 6
    static let tcpCongestion: Int32 = 13, tcpSavedSYN: Int32 = 28, tcpBPFSockOpsCBFlags: Int32 = 1008
    /// `BPF_SOCK_OPS_ALL_CB_FLAGS`.
    static let allCallbackFlags: UInt32 = 0x7F
    /// Offsets in `struct bpf_sock_ops`.
    static let sockOpsOp = 0, sockOpsIsFullsock = 72, sockOpsCallbackFlags = 84
    /// `BPF_SOCK_OPS_WRITE_HDR_OPT_CB`: the last callback run with the socket locked, from which
    /// `bpf_setsockopt` may be called.
    static let lastLockedOperation: UInt32 = 15
    static let protocolTypeError = Errno(rawValue: 91) // EPROTOTYPE
    static let socketTypeNotSupported = Errno(rawValue: 94) // ESOCKTNOSUPPORT
    static let familyNotSupported = Errno(rawValue: 97) // EAFNOSUPPORT

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            // void *bpf_get_local_storage(void *map, u64 flags)
            LinuxHelper.make(.getLocalStorage) { [weak emulator] call throws(HelperFailure) in
                let map = try MapHelpers.map(
                    emulator, call.process, argument: 1, as: CgroupStorageMap.self, "a cgroup storage map")
                guard call.arg(2) == 0 else {
                    throw .message(
                        "bpf_get_local_storage: flags must be 0 (the verifier refuses others), got \(call.arg(2))")
                }
                // The storage of the program's attach type: the context's hook, else cgroup_skb ingress.
                let attachType = call.state?.socketProgram?.attachType ?? .cgroupInetIngress
                guard let address = map.localStorage(attachType: attachType, cpu: call.process.vCPU) else {
                    throw .message(
                        "bpf_get_local_storage: map \(map.name) has no room for another attach type's storage")
                }
                return address
            },
            // long bpf_sk_assign(void *ctx, struct bpf_sock *sk, u64 flags)
            LinuxHelper.make(.skAssign) { [network = emulator.networkState] call throws(HelperFailure) in
                try skLookupAssign(call, network: network)
            },
            // void *bpf_sk_storage_get(struct bpf_map *map, void *sk, void *value, u64 flags)
            LinuxHelper.make(.skStorageGet) { [weak emulator] call throws(HelperFailure) in
                let map = try MapHelpers.map(
                    emulator, call.process, argument: 1, as: SocketStorageMap.self, "an sk storage map")
                let create: UInt64 = 1 // BPF_SK_STORAGE_GET_F_CREATE
                guard call.arg(4) & ~create == 0, let cookie = try socketCookie(call, address: call.arg(2)) else {
                    return 0
                }
                let initial = call.arg(3) == 0 ? nil : try call.read(call.arg(3), count: map.attributes.valueSize)
                return map.storageAddress(cookie: cookie, create: call.arg(4) == create, initial: initial) ?? 0
            },
            // long bpf_sk_storage_delete(struct bpf_map *map, void *sk)
            LinuxHelper.make(.skStorageDelete) { [weak emulator] call throws(HelperFailure) in
                let map = try MapHelpers.map(
                    emulator, call.process, argument: 1, as: SocketStorageMap.self, "an sk storage map")
                guard let cookie = try socketCookie(call, address: call.arg(2)) else { return Errno.invalid.r0 }
                return map.removeStorage(cookie: cookie) ? 0 : Errno.noEntry.r0
            },
            // long bpf_sock_ops_cb_flags_set(struct bpf_sock_ops *bpf_sock, int argval)
            LinuxHelper.make(.sockOpsCbFlagsSet) { call throws(HelperFailure) in
                let (program, record) = try context(call, kinds: [.sockOps])
                _ = program
                let argument = call.argInt(2)
                let result: Int64
                if record.load32(sockOpsIsFullsock) == 0 {
                    result = -Int64(Errno.invalid.rawValue)
                } else {
                    record.helperStore32(UInt32(bitPattern: argument) & allCallbackFlags, at: sockOpsCallbackFlags)
                    result = Int64(argument & ~Int32(allCallbackFlags))
                }
                call.state?.socketEffects.append(
                    SocketEffect(
                        helper: call.name, detail: "0x\(String(UInt32(bitPattern: argument), radix: 16))",
                        result: result))
                return UInt64(bitPattern: result)
            },
            // long bpf_setsockopt(void *bpf_socket, int level, int optname, void *optval, int optlen)
            LinuxHelper.make(.setsockopt) { call throws(HelperFailure) in try setsockopt(call) },
            // long bpf_getsockopt(void *bpf_socket, int level, int optname, void *optval, int optlen)
            LinuxHelper.make(.getsockopt) { call throws(HelperFailure) in try getsockopt(call) },
            // long bpf_bind(struct bpf_sock_addr *ctx, struct sockaddr *addr, int addr_len)
            LinuxHelper.make(.bind) { call throws(HelperFailure) in try bind(call) },
            // long bpf_msg_apply_bytes(struct sk_msg_buff *msg, u32 bytes)
            LinuxHelper.make(.msgApplyBytes) { call throws(HelperFailure) in
                let (message, _) = try self.message(call)
                message.applyBytes = call.arg32(2)
                return recorded(call, "\(call.arg32(2))", 0)
            },
            // long bpf_msg_cork_bytes(struct sk_msg_buff *msg, u32 bytes)
            LinuxHelper.make(.msgCorkBytes) { call throws(HelperFailure) in
                let (message, _) = try self.message(call)
                message.corkBytes = call.arg32(2)
                return recorded(call, "\(call.arg32(2))", 0)
            },
            // long bpf_msg_pull_data(struct sk_msg_buff *msg, u32 start, u32 end, u64 flags)
            LinuxHelper.make(.msgPullData) { call throws(HelperFailure) in try pull(call) },
            // long bpf_msg_push_data(struct sk_msg_buff *msg, u32 start, u32 len, u64 flags)
            LinuxHelper.make(.msgPushData) { call throws(HelperFailure) in try push(call) },
            // long bpf_msg_pop_data(struct sk_msg_buff *msg, u32 start, u32 len, u64 flags)
            LinuxHelper.make(.msgPopData) { call throws(HelperFailure) in try pop(call) },
        ]
    }

    /// Records a call in `socketEffects` and returns its R0.
    static func recorded(_ call: HelperCall, _ detail: String, _ result: Int64) -> UInt64 {
        call.state?.socketEffects.append(SocketEffect(helper: call.name, detail: detail, result: result))
        return UInt64(bitPattern: result)
    }

    // MARK: sk_msg

    /// The run's message (with what the program wrote through `data` synced back) and context.
    static func message(_ call: HelperCall) throws(HelperFailure) -> (SKMessage, StructContextRecord) {
        let (program, record) = try context(call, kinds: [.skMsg])
        guard let message = program.message else { throw .message("\(call.name): the sk_msg context has no message") }
        message.syncBack()
        return (message, record)
    }

    static func remap(_ message: SKMessage, _ record: StructContextRecord, _ call: HelperCall) throws(HelperFailure) {
        do { try message.remap(record: record, process: call.process) } catch {
            throw .message("\(call.name): \(error)")
        }
    }

    /// The index of the segment holding byte `offset`, and the segment's first byte.
    static func segment(holding offset: Int, in message: SKMessage) -> (index: Int, start: Int)? {
        var start = 0
        for (index, segment) in message.segments.enumerated() {
            if offset < start + segment.count { return (index, start) }
            start += segment.count
        }
        return nil
    }

    /// `bpf_msg_pull_data`: the range becomes one segment (copied when it spans several).
    static func pull(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        let (message, record) = try message(call)
        let start = Int(call.arg32(2))
        let end = Int(call.arg32(3))
        let detail = "\(start), \(end)"
        guard call.arg(4) == 0, end > start, let (first, firstStart) = segment(holding: start, in: message),
            end <= message.size
        else { return recorded(call, detail, -Int64(Errno.invalid.rawValue)) }
        if end > firstStart + message.segments[first].count {
            // Linearise: the segments from the first through the one holding end - 1 become one.
            let (last, _) = segment(holding: end - 1, in: message) ?? (first, firstStart)
            let merged = message.segments[first...last].flatMap { $0 }
            message.segments.replaceSubrange(first...last, with: [merged])
        }
        message.start = start
        message.end = end
        try remap(message, record, call)
        return recorded(call, detail, 0)
    }

    /// The largest number of bytes `bpf_msg_push_data` inserts (the kernel's page allocation
    /// fails with `-ENOMEM` for much less than the 32-bit `len` allows).
    static let maxPush = 1 << 20

    /// `bpf_msg_push_data`: `len` zero bytes inserted at `start` (its segment grows).
    static func push(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        let (message, record) = try message(call)
        let start = Int(call.arg32(2))
        let length = Int(call.arg32(3))
        let detail = "\(start), \(length)"
        guard call.arg(4) == 0 else { return recorded(call, detail, -Int64(Errno.invalid.rawValue)) }
        guard length > 0 else { return recorded(call, detail, 0) }
        guard start <= message.size else { return recorded(call, detail, -Int64(Errno.invalid.rawValue)) }
        guard length <= maxPush else { return recorded(call, detail, -Int64(Errno.noMemory.rawValue)) }
        let zeros = [UInt8](repeating: 0, count: length)
        if let (index, segmentStart) = segment(holding: start, in: message) {
            message.segments[index].insert(contentsOf: zeros, at: start - segmentStart)
        } else {
            message.segments[message.segments.count - 1] += zeros // at the end
        }
        message.start = 0
        message.end = message.segments[0].count
        try remap(message, record, call)
        return recorded(call, detail, 0)
    }

    /// `bpf_msg_pop_data`: `len` bytes from `start` removed.
    static func pop(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        let (message, record) = try message(call)
        let start = Int(call.arg32(2))
        let length = Int(call.arg32(3))
        let detail = "\(start), \(length)"
        guard call.arg(4) == 0 else { return recorded(call, detail, -Int64(Errno.invalid.rawValue)) }
        guard length > 0 else { return recorded(call, detail, 0) }
        guard start < message.size, start + length <= message.size else {
            return recorded(call, detail, -Int64(Errno.invalid.rawValue))
        }
        var offset = 0
        var segments: [[UInt8]] = []
        for segment in message.segments {
            let low = max(start, offset)
            let high = min(start + length, offset + segment.count)
            var kept = segment
            if low < high { kept.removeSubrange((low - offset)..<(high - offset)) }
            if !kept.isEmpty { segments.append(kept) }
            offset += segment.count
        }
        guard !segments.isEmpty else { return recorded(call, detail, -Int64(Errno.invalid.rawValue)) }
        message.segments = segments
        message.start = 0
        message.end = segments[0].count
        try remap(message, record, call)
        return recorded(call, detail, 0)
    }

    /// The run's socket context of one of `kinds`, or a failure naming what the helper needs.
    static func context(_ call: HelperCall, kinds: [SocketProgramState.Kind]) throws(HelperFailure)
        -> (SocketProgramState, StructContextRecord)
    {
        guard let program = call.state?.socketProgram, kinds.contains(program.kind),
            let record = call.state?.contextRecord
        else {
            let names = kinds.map { kind -> String in
                switch kind {
                case .skLookup: "bpf_sk_lookup"
                case .sockAddr: "bpf_sock_addr"
                case .sockOps: "bpf_sock_ops"
                case .sock: "bpf_sock"
                case .flowDissector: "bpf_flow_dissector"
                case .skMsg: "sk_msg_md"
                case .skReuseport: "sk_reuseport_md"
                case .netfilter: "bpf_nf_ctx"
                }
            }
            throw .message(
                "\(call.name) needs a \(names.joined(separator: " or ")) context (its program types' helper)")
        }
        guard call.arg(1) == record.address else {
            throw .message(
                "\(call.name): the first argument must be the context (R1 at entry), got 0x\(String(call.arg(1), radix: 16))"
            )
        }
        return (program, record)
    }

    /// The cookie of the socket at `address` (a `struct bpf_sock`): the context's socket when it
    /// is that one, else the socket its bytes describe; nil for NULL.
    static func socketCookie(_ call: HelperCall, address: UInt64) throws(HelperFailure) -> UInt64? {
        guard address != 0 else { return nil }
        if let program = call.state?.socketProgram, let socket = program.socket, program.socketAddress == address {
            return socket.cookie
        }
        return cookie(of: try call.read(address, count: 80))
    }

    // MARK: sk_lookup

    /// `bpf_sk_lookup_assign`, its checks in the kernel's order. A network socket (`--net`, also
    /// when a socket map lookup gave it) is known by its `cookie` and refused as the kernel
    /// refuses it: a TCP socket that is not listening is reference-counted (no `SOCK_RCU_FREE`,
    /// `-ESOCKTNOSUPPORT`), a `v6only` socket cannot take an IPv4 lookup (`-EAFNOSUPPORT`).
    /// Another socket is known by the cookie its `struct bpf_sock` bytes give.
    static func skLookupAssign(_ call: HelperCall, network: NetworkState?) throws(HelperFailure) -> UInt64 {
        guard call.state?.socketProgram?.kind == .skLookup else {
            throw .message(
                "bpf_sk_assign from this program type needs the emulated network's sockets; Mimic emulates it for sk_lookup programs"
            )
        }
        let (program, record) = try context(call, kinds: [.skLookup])
        let socketAddress = call.arg(2)
        let flags = call.arg(3)
        let replace: UInt64 = 1
        let noReuseport: UInt64 = 2
        guard flags & ~(replace | noReuseport) == 0 else { return Errno.invalid.r0 }
        if program.selectedSocket != 0, flags & replace == 0 { return Errno.exists.r0 }
        var detail = "NULL"
        var cookie: UInt64 = 0
        if socketAddress != 0 {
            let bytes = try call.read(socketAddress, count: 80)
            let family = get32(bytes, 4)
            let proto = get32(bytes, 12)
            let mapped = try network.flatMap { network throws(HelperFailure) in
                try SocketMapHelpers.socket(at: socketAddress, call, network)
            }
            let known = mapped?.networkIndex.flatMap { index in network?.network.sockets[index] }
            if let known, known.transport == .tcp, known.state != .listen { return socketTypeNotSupported.r0 }
            if proto != record.load32(12) { return protocolTypeError.r0 }
            let v6only = known?.v6only ?? false
            if family != record.load32(8), family == SocketContextJSON.inet || v6only { return familyNotSupported.r0 }
            cookie = mapped?.cookie ?? SocketProgramHelpers.cookie(of: bytes)
            detail = "socket cookie \(cookie)"
        }
        program.selectedSocket = socketAddress
        program.selectedCookie = cookie
        record.store64(socketAddress, at: 0)
        call.state?.socketEffects.append(
            SocketEffect(helper: call.name, detail: "\(detail), flags \(flags)", result: 0))
        return 0
    }

    /// The cookie of a `struct bpf_sock`'s bytes (`SocketInfo.cookie`'s hash).
    static func cookie(of bytes: [UInt8]) -> UInt64 {
        var cookie: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes { cookie = (cookie ^ UInt64(byte)) &* 0x0100_0000_01B3 }
        return cookie == 0 ? 1 : cookie
    }

    // MARK: socket options

    /// Names of the levels, for the record.
    static func levelName(_ level: Int32) -> String {
        switch level {
        case solSocket: "SOL_SOCKET"
        case solTCP: "SOL_TCP"
        case solIP: "SOL_IP"
        case solIPv6: "SOL_IPV6"
        default: "level \(level)"
        }
    }

    /// Integer options `_bpf_setsockopt` accepts, by level (the string ones: `SO_BINDTODEVICE`
    /// 25, `TCP_CONGESTION` 13).
    static let integerOptions: [Int32: Set<Int32>] = [
        // SO_REUSEADDR, SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_PRIORITY, SO_REUSEPORT, SO_RCVLOWAT,
        // SO_MARK, SO_MAX_PACING_RATE, SO_BINDTOIFINDEX, SO_TXREHASH
        solSocket: [2, 7, 8, 9, 12, 15, 18, 36, 47, 62, 74],
        // TCP_NODELAY, TCP_MAXSEG, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_SYNCNT,
        // TCP_WINDOW_CLAMP, TCP_THIN_LINEAR_TIMEOUTS, TCP_USER_TIMEOUT, TCP_NOTSENT_LOWAT,
        // TCP_SAVE_SYN, TCP_BPF_IW, TCP_BPF_SNDCWND_CLAMP, TCP_BPF_DELACK_MAX, TCP_BPF_RTO_MIN,
        // TCP_BPF_SOCK_OPS_CB_FLAGS
        solTCP: [1, 2, 4, 5, 6, 7, 10, 16, 18, 25, 27, 1001, 1002, 1003, 1004, 1008],
        solIP: [1], // IP_TOS
        solIPv6: [67, 70], // IPV6_TCLASS, IPV6_AUTOFLOWLABEL
    ]

    /// `-EOPNOTSUPP` for a sock_ops callback run without the socket locked (past
    /// `BPF_SOCK_OPS_WRITE_HDR_OPT_CB`: the timestamping ones): `is_locked_tcp_sock_ops` refuses
    /// both `bpf_setsockopt` and `bpf_getsockopt` there (kernel 6.15 and later).
    static func unlockedCallback(_ program: SocketProgramState, _ record: StructContextRecord) -> Errno? {
        program.kind == .sockOps && record.load32(sockOpsOp) > lastLockedOperation ? .notSupported : nil
    }

    /// The kernel's checks common to both directions: the socket must be a full socket, the
    /// level must suit its family and protocol, the option known and its length right.
    /// Returns nil when the call may go on, else the errno.
    static func checkOption(
        _ call: HelperCall, program: SocketProgramState, record: StructContextRecord, level: Int32, name: Int32,
        length: Int32, reading: Bool
    ) -> Errno? {
        if program.kind == .sockOps, record.load32(sockOpsIsFullsock) == 0 { return .invalid }
        guard length >= 0 else { return .invalid }
        let socket = program.socket ?? SocketInfo()
        switch level {
        case solSocket:
            if name == 25 { return length > 16 ? .invalid : nil } // SO_BINDTODEVICE: an interface name
        case solTCP:
            guard socket.protocol == 6 else { return .invalid }
            if name == tcpCongestion { return length < 1 ? .invalid : nil }
            if name == tcpSavedSYN { return reading ? nil : .invalid }
        case solIP:
            guard socket.family == SocketContextJSON.inet else { return .invalid }
        case solIPv6:
            guard socket.family == SocketContextJSON.inet6 else { return .invalid }
        default:
            return .invalid
        }
        guard integerOptions[level]?.contains(name) == true else { return .invalid }
        return length == 4 ? nil : .invalid
    }

    static func setsockopt(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        let (program, record) = try context(call, kinds: [.sockOps, .sockAddr])
        let level = call.argInt(2)
        let name = call.argInt(3)
        let length = call.argInt(5)
        var detail = "\(levelName(level)), \(name)"
        let errno =
            unlockedCallback(program, record)
            ?? checkOption(
                call, program: program, record: record, level: level, name: name, length: length, reading: false)
        if errno == nil {
            let value = try call.read(call.arg(4), count: Int(length))
            program.socketOptions[SocketOptionKey(level: level, name: name)] = value
            if level == solTCP, name == tcpBPFSockOpsCBFlags, program.kind == .sockOps {
                record.helperStore32(get32(value, 0) & allCallbackFlags, at: sockOpsCallbackFlags)
            }
            detail +=
                level == solTCP && name == tcpCongestion || level == solSocket && name == 25
                ? ", \"\(String(decoding: value.prefix { $0 != 0 }, as: UTF8.self))\""
                : ", \(Int32(bitPattern: get32(value, 0)))"
        }
        let result = errno.map { -Int64($0.rawValue) } ?? 0
        call.state?.socketEffects.append(SocketEffect(helper: call.name, detail: detail, result: result))
        return UInt64(bitPattern: result)
    }

    static func getsockopt(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        let (program, record) = try context(call, kinds: [.sockOps, .sockAddr])
        let level = call.argInt(2)
        let name = call.argInt(3)
        let length = call.argInt(5)
        let buffer = call.arg(4)
        // Before anything else, and without clearing the buffer, as bpf_sock_ops_getsockopt does.
        if let errno = unlockedCallback(program, record) { return errno.r0 }
        if program.kind == .sockOps, level == solTCP, (tcpBPFSYN...tcpBPFSYNMAC).contains(name) {
            return try savedSYN(call, program, name: name, length: length, buffer: buffer)
        }
        if let errno = checkOption(
            call, program: program, record: record, level: level, name: name, length: length, reading: true)
        {
            if length > 0 { try call.zero(buffer, count: Int(length)) }
            return errno.r0
        }
        var value: [UInt8]
        if let set = program.socketOptions[SocketOptionKey(level: level, name: name)] {
            value = set
        } else if level == solTCP, name == tcpSavedSYN {
            try call.zero(buffer, count: Int(length))
            return Errno.noEntry.r0 // no SYN was saved
        } else if level == solTCP, name == tcpCongestion {
            value = Array("cubic".utf8) // the kernel's default congestion control
        } else {
            let socket = program.socket ?? SocketInfo()
            var number: UInt32 = 0
            if level == solSocket, name == 36 { number = socket.mark }
            if level == solSocket, name == 12 { number = socket.priority }
            if level == solTCP, name == tcpBPFSockOpsCBFlags, program.kind == .sockOps {
                number = record.load32(sockOpsCallbackFlags)
            }
            value = [UInt8](repeating: 0, count: 4)
            put32(&value, 0, number)
        }
        value = Array(value.prefix(Int(length))) + [UInt8](repeating: 0, count: max(0, Int(length) - value.count))
        try call.write(value, at: buffer)
        return 0
    }

    /// `TCP_BPF_SYN`, `TCP_BPF_SYN_IP`, `TCP_BPF_SYN_MAC`.
    static let tcpBPFSYN: Int32 = 1005, tcpBPFSYNMAC: Int32 = 1007

    /// `bpf_getsockopt(SOL_TCP, TCP_BPF_SYN)` of sock_ops (`bpf_sock_ops_get_syn`): the SYN's TCP
    /// header (the context's `syn`), `-ENOSPC` when `optlen` is shorter (its first `optlen` bytes
    /// copied), `-ENOENT` without a saved SYN; the rest of the buffer is zeroed. The SYN's IP and
    /// MAC headers (`TCP_BPF_SYN_IP`, `TCP_BPF_SYN_MAC`) are not part of the context: asking for
    /// them stops the run.
    static func savedSYN(
        _ call: HelperCall, _ program: SocketProgramState, name: Int32, length: Int32, buffer: UInt64
    ) throws(HelperFailure) -> UInt64 {
        let size = Int(max(0, length))
        guard let syn = program.tcpHeader?.syn else {
            try call.zero(buffer, count: size)
            return Errno.noEntry.r0
        }
        guard name == tcpBPFSYN else {
            throw .message(
                "bpf_getsockopt: TCP_BPF_SYN_IP / TCP_BPF_SYN_MAC need the SYN's IP and MAC headers, which a bpf_sock_ops context does not carry (its \"syn\" is the TCP header: TCP_BPF_SYN)"
            )
        }
        let header = Array(syn.prefix(Int(syn[12] >> 4) * 4))
        let copied = min(size, header.count)
        try call.write(header.prefix(copied) + [UInt8](repeating: 0, count: size - copied), at: buffer)
        return copied < header.count ? Errno.noSpace.r0 : UInt64(header.count)
    }

    // MARK: bind

    static func bind(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        let (program, _) = try context(call, kinds: [.sockAddr])
        guard program.attachType == .cgroupInet4Connect || program.attachType == .cgroupInet6Connect else {
            throw .message("bpf_bind is a helper of connect4 / connect6 programs only")
        }
        let length = call.argInt(3)
        let address = call.arg(2)
        func record(_ detail: String, _ result: Int64) -> UInt64 {
            call.state?.socketEffects.append(SocketEffect(helper: call.name, detail: detail, result: result))
            return UInt64(bitPattern: result)
        }
        guard length >= 2 else { return record("length \(length)", -Int64(Errno.invalid.rawValue)) }
        let family = try call.read(address, count: 2)
        switch UInt32(family[0]) | UInt32(family[1]) << 8 {
        case SocketContextJSON.inet:
            guard length >= 16 else { return record("AF_INET, length \(length)", -Int64(Errno.invalid.rawValue)) }
            let bytes = try call.read(address, count: 8)
            let port = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
            let text = bytes[4..<8].map(String.init).joined(separator: ".")
            program.socket?.sourceIPv4 = Array(bytes[4..<8])
            program.socket?.sourcePort = port
            return record("AF_INET \(text):\(port)", 0)
        case SocketContextJSON.inet6:
            guard length >= 24 else { return record("AF_INET6, length \(length)", -Int64(Errno.invalid.rawValue)) }
            let bytes = try call.read(address, count: 24)
            let port = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
            let text = stride(from: 8, to: 24, by: 2).map {
                String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
            }
            .joined(separator: ":")
            program.socket?.sourceIPv6 = Array(bytes[8..<24])
            program.socket?.sourcePort = port
            return record("AF_INET6 [\(text)]:\(port)", 0)
        case let other:
            return record("family \(other)", -Int64(familyNotSupported.rawValue))
        }
    }
}
