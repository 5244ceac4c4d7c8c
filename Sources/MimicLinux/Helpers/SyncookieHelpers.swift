import MimicCore

/// The SYN cookie helpers, with the kernel's checks in the kernel's order (`net/core/filter.c` of
/// Linux 6.18) and its cookie (`Syncookie`: SipHash under `Network.syncookieSecret`, the minute
/// counter from the jiffies `bpf_jiffies64` reads).
///
/// `bpf_tcp_gen_syncookie` / `bpf_tcp_check_syncookie` work on a listener from a socket lookup,
/// with `Network.tcpSyncookies` as `net.ipv4.tcp_syncookies`: a cookie is issued when syncookies
/// are always on (2), or on (1) and the listener's SYN queue overflowed recently
/// (`Network.Socket.synOverflow`); a check needs such an overflow too, else `-ENOENT`
/// (generating a cookie does not count as one: Linux 6.18 answers `-ENOENT` to a check right
/// after `bpf_tcp_gen_syncookie` on a listener that never overflowed).
/// `bpf_tcp_raw_gen_syncookie_ipv4` / `_ipv6` and `bpf_tcp_raw_check_syncookie_ipv4` / `_ipv6`
/// (XDP, tc) need no socket: `-EINVAL` for a TCP header length below 20 or other than `doff` * 4,
/// `-EACCES` for a cookie that is not valid. Every generator returns `cookie | mss << 32`, the
/// MSS (the SYN's last non-zero MSS option, else 536 for IPv4 and 1220 for IPv6) rounded down
/// to the kernel's table.
enum SyncookieHelpers {
    /// `EPROTONOSUPPORT`.
    static let protocolNotSupported = Errno(rawValue: 93)
    /// TCP flags in byte 13 of the header.
    static let fin: UInt8 = 1, syn: UInt8 = 2, rst: UInt8 = 4, ack: UInt8 = 16

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let network = emulator.networkState
        let hz = TracingHelpers.hz(emulator)
        let secret = network.network.syncookieSecret
        @Sendable func count(_ call: HelperCall) -> UInt32 {
            Syncookie.count(jiffies: TracingHelpers.jiffies64(call, hz: hz), hz: hz)
        }
        @Sendable func generate(_ call: HelperCall, iph: [UInt8], isIPv6: Bool, th: [UInt8]) -> UInt64 {
            let flow = Syncookie.Flow(ipHeader: iph, isIPv6: isIPv6, tcpHeader: th)
            let option = Syncookie.mssOption(th)
            let mss = option != 0 ? option : isIPv6 ? Syncookie.ipv6DefaultMSS : Syncookie.ipv4DefaultMSS
            let (cookie, index) = Syncookie.generate(
                flow, mss: mss, sequence: Syncookie.be32(th, 4), count: count(call), secret: secret)
            return UInt64(cookie) | UInt64(Syncookie.table(flow)[index]) << 32
        }
        @Sendable func valid(_ call: HelperCall, iph: [UInt8], isIPv6: Bool, th: [UInt8]) -> Bool {
            let flow = Syncookie.Flow(ipHeader: iph, isIPv6: isIPv6, tcpHeader: th)
            return Syncookie.mss(ofACK: flow, tcpHeader: th, count: count(call), secret: secret) > 0
        }
        // s64 bpf_tcp_raw_gen_syncookie_ipv4/6(struct iphdr *iph, struct tcphdr *th, u32 th_len)
        func rawGenerate(_ id: HelperID, isIPv6: Bool) -> Helper {
            LinuxHelper.make(id) { call throws(HelperFailure) in
                let iph = try call.read(call.arg(1), count: isIPv6 ? 40 : 20)
                let thLength = try call.size(3, limit: 1 << 16)
                guard thLength >= 20 else { return Errno.invalid.r0 }
                let th = try call.read(call.arg(2), count: thLength)
                guard thLength == Int(th[12] >> 4) * 4 else { return Errno.invalid.r0 }
                return generate(call, iph: iph, isIPv6: isIPv6, th: th)
            }
        }
        // long bpf_tcp_raw_check_syncookie_ipv4/6(struct iphdr *iph, struct tcphdr *th)
        func rawCheck(_ id: HelperID, isIPv6: Bool) -> Helper {
            LinuxHelper.make(id) { call throws(HelperFailure) in
                let iph = try call.read(call.arg(1), count: isIPv6 ? 40 : 20)
                let th = try call.read(call.arg(2), count: 20)
                return valid(call, iph: iph, isIPv6: isIPv6, th: th) ? 0 : Errno.accessDenied.r0
            }
        }
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
                return generate(call, iph: iph, isIPv6: iph.count == 40, th: th)
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
                return valid(call, iph: iph, isIPv6: iph.count == 40, th: th) ? 0 : Errno.accessDenied.r0
            },
            rawGenerate(.tcpRawGenSyncookieIpv4, isIPv6: false), rawGenerate(.tcpRawGenSyncookieIpv6, isIPv6: true),
            rawCheck(.tcpRawCheckSyncookieIpv4, isIPv6: false), rawCheck(.tcpRawCheckSyncookieIpv6, isIPv6: true),
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
}
