import MimicCore

/// `bpf_tcp_gen_syncookie` and `bpf_tcp_check_syncookie` on a listener from a socket lookup, with
/// the kernel's checks in the kernel's order (`net/core/filter.c` of Linux 6.18) and
/// `Network.tcpSyncookies` as `net.ipv4.tcp_syncookies`.
///
/// A cookie is issued when syncookies are always on (2), or on (1) and the listener's SYN queue
/// overflowed recently (`Network.Socket.synOverflow`); a check needs such an overflow too, else
/// `-ENOENT` (generating a cookie does not count as one: Linux 6.18 answers `-ENOENT` to a check
/// right after `bpf_tcp_gen_syncookie` on a listener that never overflowed). The MSS is
/// the SYN's MSS option (else 536 for IPv4, 1220 for IPv6) rounded down to the kernel's MSS
/// tables, and the helper returns `cookie | mss << 32`. The cookie itself cannot be the kernel's
/// (it hashes with a secret chosen at boot): Mimic's is an FNV-1a hash of the addresses, ports and
/// sequence number carrying the MSS index in its low bits, and `bpf_tcp_check_syncookie` accepts
/// exactly the cookies Mimic generates (`0`), refusing others with `-EACCES`.
enum SyncookieHelpers {
    /// `msstab` of `net/ipv4/syncookies.c` and `net/ipv6/syncookies.c`.
    static let ipv4Table: [UInt32] = [536, 1300, 1440, 1460]
    static let ipv6Table: [UInt32] = [1220, 1420, 1440, 8940]
    /// `EPROTONOSUPPORT`.
    static let protocolNotSupported = Errno(rawValue: 93)
    /// TCP flags in byte 13 of the header.
    static let fin: UInt8 = 1, syn: UInt8 = 2, rst: UInt8 = 4, ack: UInt8 = 16

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let network = emulator.networkState
        return [
            // s64 bpf_tcp_gen_syncookie(void *sk, void *iph, u32 iph_len, struct tcphdr *th, u32 th_len)
            LinuxHelper.make(.tcpGenSyncookie) { call throws(HelperFailure) in
                let thLength = try call.size(5, limit: 1 << 16)
                guard call.arg(1) != 0, thLength >= 20 else { return Errno.invalid.r0 }
                let th = try call.read(call.arg(4), count: thLength)
                guard thLength == Int(th[12] >> 4) * 4 else { return Errno.invalid.r0 }
                let (state, index, socket) = try listener(call, network)
                guard socket[12] == 6, state == 10 else { return Errno.invalid.r0 } // IPPROTO_TCP, TCP_LISTEN
                guard network.network.tcpSyncookies != 0 else { return Errno.noEntry.r0 }
                let flags = th[13]
                guard flags & syn != 0, flags & (ack | fin | rst) == 0 else { return Errno.invalid.r0 }
                let (iph, errno) = try header(call, socket: socket, index: index, network)
                guard let iph else { return errno!.r0 }
                guard network.network.tcpSyncookies == 2 || overflowed(call, index, network) else {
                    return Errno.noEntry.r0
                }
                let isIPv4 = iph.count == 20
                let table = isIPv4 ? ipv4Table : ipv6Table
                let mss = mssOption(th) ?? (isIPv4 ? 536 : 1220)
                let mssIndex = (0..<table.count).last { mss >= table[$0] } ?? 0
                let cookie = value(iph, th, sequence: be32(th, 4), mssIndex: mssIndex)
                return UInt64(cookie) | UInt64(table[mssIndex]) << 32
            },
            // long bpf_tcp_check_syncookie(void *sk, void *iph, u32 iph_len, struct tcphdr *th, u32 th_len)
            LinuxHelper.make(.tcpCheckSyncookie) { call throws(HelperFailure) in
                let thLength = try call.size(5, limit: 1 << 16)
                guard call.arg(1) != 0, thLength >= 20 else { return Errno.invalid.r0 }
                let th = try call.read(call.arg(4), count: 20)
                let (state, index, socket) = try listener(call, network)
                guard socket[12] == 6, state == 10 else { return Errno.invalid.r0 }
                guard network.network.tcpSyncookies != 0 else { return Errno.invalid.r0 }
                let flags = th[13]
                guard flags & ack != 0, flags & (rst | syn) == 0 else { return Errno.noEntry.r0 }
                guard call.arg32(3) >= 20 else { return Errno.invalid.r0 }
                guard overflowed(call, index, network) else { return Errno.noEntry.r0 }
                let (iph, errno) = try header(call, socket: socket, index: index, network)
                guard let iph else { return errno!.r0 }
                let cookie = be32(th, 8) &- 1
                let sequence = be32(th, 4) &- 1
                let valid = (0..<4).contains { value(iph, th, sequence: sequence, mssIndex: $0) == cookie }
                return valid ? 0 : Errno.accessDenied.r0
            },
        ]
    }

    /// The socket's state, its index among the network's sockets (nil for the context's own),
    /// and its `struct bpf_sock` bytes.
    static func listener(_ call: HelperCall, _ network: NetworkState) throws(HelperFailure) -> (UInt32, Int?, [UInt8]) {
        let (state, index) = try SocketHelpers.describe(call, network)
        let bytes = try call.read(call.arg(1), count: 80)
        return (state, index, bytes)
    }

    static func overflowed(_ call: HelperCall, _ index: Int?, _ network: NetworkState) -> Bool {
        guard let index else { return false }
        return network.network.sockets[index].synOverflow
    }

    /// The IP header (20 bytes IPv4, 40 IPv6) by its version, or the error the kernel returns.
    static func header(_ call: HelperCall, socket: [UInt8], index: Int?, _ network: NetworkState) throws(HelperFailure)
        -> ([UInt8]?, Errno?)
    {
        let length = call.arg32(3)
        guard length >= 20 else { return (nil, .invalid) }
        let family = get32(socket, 4)
        let v6only = index.map { network.network.sockets[$0].v6only } ?? false
        let first = try call.read(call.arg(2), count: 1)[0]
        switch first >> 4 {
        case 4:
            if family == 10, v6only { return (nil, .invalid) }
            return (try call.read(call.arg(2), count: 20), nil)
        case 6:
            guard length >= 40 else { return (nil, .invalid) }
            guard family == 10 else { return (nil, .invalid) }
            return (try call.read(call.arg(2), count: 40), nil)
        default:
            return (nil, protocolNotSupported)
        }
    }

    /// The MSS option of a TCP header's options, if any.
    static func mssOption(_ th: [UInt8]) -> UInt32? {
        var i = 20
        while i < th.count {
            switch th[i] {
            case 0: return nil
            case 1: i += 1
            default:
                guard i + 1 < th.count, th[i + 1] >= 2 else { return nil }
                if th[i] == 2, th[i + 1] == 4, i + 3 < th.count { return UInt32(th[i + 2]) << 8 | UInt32(th[i + 3]) }
                i += Int(th[i + 1])
            }
        }
        return nil
    }

    static func be32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(bytes[offset + $1]) }
    }

    /// Mimic's cookie: FNV-1a of the addresses, ports and sequence number, the MSS index in the
    /// low two bits.
    static func value(_ iph: [UInt8], _ th: [UInt8], sequence: UInt32, mssIndex: Int) -> UInt32 {
        let addresses = iph.count == 20 ? Array(iph[12..<20]) : Array(iph[8..<40])
        var hash: UInt32 = 0x811C_9DC5
        for byte in addresses + Array(th[0..<4]) + [
            UInt8(sequence >> 24), UInt8(sequence >> 16 & 0xFF), UInt8(sequence >> 8 & 0xFF), UInt8(sequence & 0xFF),
        ] {
            hash = (hash ^ UInt32(byte)) &* 0x0100_0193
        }
        return hash & ~3 | UInt32(mssIndex)
    }
}
