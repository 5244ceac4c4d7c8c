import MimicCore
import MimicMemory

/// A sock_ops run's TCP segment (`bpf_sock_ops.skb_data` .. `skb_data_end`) and the header
/// option space the header-option callbacks work with (`remaining_opt_len` of the kernel's
/// `struct bpf_sock_ops_kern`), set up by `SockOpsContext`.
final class TCPHeaderOptionState {
    /// The callback (`op`) the run was started with.
    let op: UInt32
    /// The segment from its TCP header, mapped read-only at `address` (the program reads it
    /// through `skb_data`; `bpf_store_hdr_opt` writes into it).
    let storage: RegionStorage?
    let address: UInt64
    /// Where `skb_data_end` points, as an offset in the segment.
    var end: Int
    /// `remaining_opt_len`: the space left (`BPF_SOCK_OPS_HDR_OPT_LEN_CB`) or reserved and not
    /// yet written (`BPF_SOCK_OPS_WRITE_HDR_OPT_CB`).
    var remaining: UInt32
    let initialRemaining: UInt32
    /// Where the reserved space starts (`first_opt_off`, WRITE_HDR_OPT_CB), as an offset.
    let firstOptionOffset: Int
    /// The SYN's TCP header (`syn_skb` or the saved SYN) that `BPF_LOAD_HDR_OPT_TCP_SYN`
    /// searches; nil: none saved.
    let syn: [UInt8]?

    init(
        op: UInt32, storage: RegionStorage?, address: UInt64, end: Int, remaining: UInt32, firstOptionOffset: Int,
        syn: [UInt8]?
    ) {
        self.op = op
        self.storage = storage
        self.address = address
        self.end = end
        self.remaining = remaining
        self.initialRemaining = remaining
        self.firstOptionOffset = firstOptionOffset
        self.syn = syn
    }

    var bytes: [UInt8] { storage?.bytes ?? [] }
}

/// `bpf_load_hdr_opt`, `bpf_store_hdr_opt` and `bpf_reserve_hdr_opt` of sock_ops programs
/// (`bpf_sock_ops_load_hdr_opt` and friends, `net/core/filter.c` of Linux 6.18), and
/// `bpf_tcp_send_ack` (`net/ipv4/bpf_tcp_ca.c`), recorded in `LinuxProcessState.socketEffects`.
///
/// - load: a callback after `BPF_SOCK_OPS_WRITE_HDR_OPT_CB` `-EOPNOTSUPP`; `len` < 2 or a flag
///   other than `BPF_LOAD_HDR_OPT_TCP_SYN` `-EINVAL`; the search option's length above `len`, or
///   its kind NOP / EOL `-EINVAL`; an experimental kind (253, 254) needs a length of 4 or 6 (a
///   2- or 4-byte magic), any other kind a length of 0, else `-EINVAL`. With the flag it searches
///   the SYN's options (`-ENOENT` without one), otherwise the segment's up to `skb_data_end`
///   (`-EPERM` without a segment or in `HDR_OPT_LEN_CB`). Not found (or an EOL first) `-ENOMSG`,
///   a malformed option `-EFAULT`; found, the option is copied and its length returned, or
///   `-ENOSPC` when longer than `len` (its first `len` bytes copied).
/// - store: only in `WRITE_HDR_OPT_CB` (`-EPERM`); `len` < 2 or flags `-EINVAL`; the option's
///   length above `len` or kind NOP / EOL `-EINVAL`; longer than `remaining_opt_len` `-ENOSPC`;
///   an experimental kind shorter than 4 `-EINVAL`; the same kind (and 2-byte magic) already in
///   the header `-EEXIST`; an EOL in the header `-ENOSPC`; else written at `skb_data_end`,
///   which moves past it.
/// - reserve: only in `HDR_OPT_LEN_CB` (`-EPERM`); flags or `len` < 2 `-EINVAL`; more than
///   `remaining_opt_len` `-ENOSPC`; else the space is taken.
enum TCPHeaderOptionHelpers {
    static let parseHeaderOptionCallback: UInt32 = 13, headerOptionLengthCallback: UInt32 = 14
    static let writeHeaderOptionCallback: UInt32 = 15
    /// `BPF_LOAD_HDR_OPT_TCP_SYN`.
    static let loadSYN: UInt64 = 1
    /// Offsets of `skb_data_end` in `struct bpf_sock_ops`.
    static let skbDataEndOffset = 200
    static let noMessage = Errno(rawValue: 42) // ENOMSG
    static let noSpace = Errno.noSpace, exists = Errno.exists, fault = Errno.fault
    static let notPermitted = Errno.notPermitted
    static let notSupported = Errno.notSupported

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            // long bpf_load_hdr_opt(struct bpf_sock_ops *skops, void *searchby_res, u32 len, u64 flags)
            LinuxHelper.make(.loadHdrOpt) { call throws(HelperFailure) in try load(call) },
            // long bpf_store_hdr_opt(struct bpf_sock_ops *skops, const void *from, u32 len, u64 flags)
            LinuxHelper.make(.storeHdrOpt) { call throws(HelperFailure) in try store(call) },
            // long bpf_reserve_hdr_opt(struct bpf_sock_ops *skops, u32 len, u64 flags)
            LinuxHelper.make(.reserveHdrOpt) { call throws(HelperFailure) in try reserve(call) },
            // long bpf_tcp_send_ack(void *tp, u32 rcv_nxt)
            LinuxHelper.make(.tcpSendAck) { call throws(HelperFailure) in
                guard call.arg(1) != 0 else {
                    throw .message(
                        "bpf_tcp_send_ack: the tcp_sock is NULL (the verifier only passes the callback's own)")
                }
                let state = try call.linuxState()
                state.socketEffects.append(
                    SocketEffect(helper: call.name, detail: "rcv_nxt \(call.arg32(2))", result: 0))
                return 0
            },
        ]
    }

    /// The run's header-option state; a failure when the context is not a sock_ops one.
    static func state(_ call: HelperCall) throws(HelperFailure) -> (TCPHeaderOptionState, StructContextRecord) {
        let (program, record) = try SocketProgramHelpers.context(call, kinds: [.sockOps])
        guard let header = program.tcpHeader else {
            throw .message("\(call.name): the bpf_sock_ops context has no header-option state")
        }
        return (header, record)
    }

    static func recorded(_ call: HelperCall, _ detail: String, _ result: Int64) -> UInt64 {
        call.state?.socketEffects.append(SocketEffect(helper: call.name, detail: detail, result: result))
        return UInt64(bitPattern: result)
    }

    static func recorded(_ call: HelperCall, _ detail: String, _ errno: Errno) -> UInt64 {
        recorded(call, detail, -Int64(errno.rawValue))
    }

    /// `kind K, length L, DATA-IN-HEX` of an option to store.
    static func describe(kind: UInt8, length: UInt8, _ option: [UInt8]) -> String {
        "kind \(kind), length \(length)"
            + (option.count > 2
                ? ", " + option[2...].map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() : "")
    }

    static func load(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        let (header, _) = try state(call)
        let length = call.arg32(3)
        let flags = call.arg(4)
        guard header.op <= writeHeaderOptionCallback else { return recorded(call, "op \(header.op)", notSupported) }
        guard length >= 2, flags & ~loadSYN == 0 else { return recorded(call, "len \(length)", Errno.invalid) }
        let size = try call.size(3)
        let search = try call.read(call.arg(2), count: min(size, 6))
        let kind = search[0]
        let searchLength = search[1]
        let detail = "kind \(kind), length \(searchLength)" + (flags == loadSYN ? ", SYN" : "")
        guard UInt32(searchLength) <= length, kind != 1, kind != 0 else { return recorded(call, detail, Errno.invalid) }
        var magic: [UInt8] = []
        if kind == 254 || kind == 253 {
            guard searchLength == 4 || searchLength == 6 else { return recorded(call, detail, Errno.invalid) }
            magic = Array(search[2..<Int(searchLength)])
        } else if searchLength != 0 {
            return recorded(call, detail, Errno.invalid)
        }
        let options: ArraySlice<UInt8>
        if flags == loadSYN {
            guard let syn = header.syn else { return recorded(call, detail, Errno.noEntry) }
            let end = min(syn.count, syn.count >= 20 ? Int(syn[12] >> 4) * 4 : 0)
            options = end > 20 ? syn[20..<end] : []
        } else {
            guard header.storage != nil, header.op != headerOptionLengthCallback else {
                return recorded(call, detail, notPermitted)
            }
            let bytes = header.bytes
            options = header.end > 20 ? bytes[20..<header.end] : []
        }
        let found: ArraySlice<UInt8>
        switch searchOption(options, kind: kind, magic: magic) {
        case .found(let option): found = option
        case .failed(let errno, _): return recorded(call, detail, errno)
        }
        var copy = Array(found)
        var result = Int64(copy.count)
        if copy.count > size {
            result = -Int64(noSpace.rawValue)
            copy = Array(copy.prefix(size))
        }
        try call.write(copy, at: call.arg(2))
        return recorded(call, detail, result)
    }

    static func store(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        let (header, record) = try state(call)
        let length = call.arg32(3)
        guard header.op == writeHeaderOptionCallback else { return recorded(call, "op \(header.op)", notPermitted) }
        guard length >= 2, call.arg(4) == 0 else { return recorded(call, "len \(length)", Errno.invalid) }
        let head = try call.read(call.arg(2), count: 2)
        let kind = head[0]
        let optionLength = head[1]
        guard UInt32(optionLength) <= length, kind != 1, kind != 0 else {
            return recorded(call, "kind \(kind), length \(optionLength)", Errno.invalid)
        }
        let option = try call.read(call.arg(2), count: Int(optionLength))
        let detail = describe(kind: kind, length: optionLength, option)
        guard UInt32(optionLength) <= header.remaining else { return recorded(call, detail, noSpace) }
        var magic: [UInt8] = []
        if kind == 254 || kind == 253 {
            guard optionLength >= 4 else { return recorded(call, detail, Errno.invalid) }
            magic = Array(option[2..<4])
        }
        guard let storage = header.storage else {
            throw .message("bpf_store_hdr_opt: the bpf_sock_ops context has no segment (give \"skb\")")
        }
        let bytes = storage.bytes
        switch searchOption(header.end > 20 ? bytes[20..<header.end] : [], kind: kind, magic: magic) {
        case .found: return recorded(call, detail, exists)
        case .failed(let errno, let endOfList):
            guard errno == noMessage else { return recorded(call, detail, errno) }
            if endOfList { return recorded(call, detail, noSpace) }
        }
        guard header.end + option.count <= storage.count else {
            throw .message("bpf_store_hdr_opt: the segment ends before the reserved option space")
        }
        for (i, byte) in option.enumerated() {
            storage.pointer.storeBytes(of: byte, toByteOffset: header.end + i, as: UInt8.self)
        }
        header.remaining -= UInt32(optionLength)
        header.end += option.count
        record.store64(header.address &+ UInt64(header.end), at: skbDataEndOffset)
        return recorded(call, detail, 0)
    }

    static func reserve(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        let (header, _) = try state(call)
        let length = call.arg32(2)
        let detail = "\(length) bytes"
        guard header.op == headerOptionLengthCallback else { return recorded(call, detail, notPermitted) }
        guard call.arg(3) == 0, length >= 2 else { return recorded(call, detail, Errno.invalid) }
        guard length <= header.remaining else { return recorded(call, detail, noSpace) }
        header.remaining -= length
        return recorded(call, detail, 0)
    }

    enum Search: Equatable {
        case found(ArraySlice<UInt8>)
        /// `-ENOMSG` (with whether an EOL ended the list) or `-EFAULT`.
        case failed(Errno, endOfList: Bool)
    }

    /// `bpf_search_tcp_opt`: the first option of `kind` (and, when `magic` is not empty, whose
    /// bytes after kind and length start with it) in `options`. An EOL ends the search
    /// (`-ENOMSG`, end of list); NOPs are skipped; an option running past the end or shorter
    /// than 2 is `-EFAULT`; an experimental option too short for the magic `-ENOMSG`.
    static func searchOption(_ options: ArraySlice<UInt8>, kind: UInt8, magic: [UInt8]) -> Search {
        var i = options.startIndex
        while i < options.endIndex {
            let current = options[i]
            if current == 0 { return .failed(noMessage, endOfList: true) }
            if current == 1 {
                i += 1
                continue
            }
            let left = options.endIndex - i
            guard left >= 2, left >= Int(options[i + 1]), options[i + 1] >= 2 else {
                return .failed(fault, endOfList: false)
            }
            let length = Int(options[i + 1])
            if current == kind {
                if magic.isEmpty { return .found(options[i..<i + length]) }
                if magic.count > length - 2 { return .failed(noMessage, endOfList: false) }
                if Array(options[i + 2..<i + 2 + magic.count]) == magic { return .found(options[i..<i + length]) }
            }
            i += length
        }
        return .failed(noMessage, endOfList: false)
    }
}
