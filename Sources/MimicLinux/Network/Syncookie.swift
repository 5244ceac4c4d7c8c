/// The secrets the kernel hashes SYN cookies with: `syncookie_secret` (IPv4,
/// `net/ipv4/syncookies.c`) and `syncookie6_secret` (IPv6, `net/ipv6/syncookies.c`), each two
/// SipHash keys (`siphash_key_t[2]`, 32 bytes as they lie in memory). The kernel fills them with
/// random bytes on first use, so its cookies can be reproduced only by giving its secrets here
/// (`Network.syncookieSecret`, the description's `syncookieSecret`).
public struct SyncookieSecret: Sendable, Equatable {
    /// `syncookie_secret[0]` then `[1]`: 32 bytes.
    public var ipv4: [UInt8]
    /// `syncookie6_secret[0]` then `[1]`: 32 bytes.
    public var ipv6: [UInt8]

    public init(ipv4: [UInt8], ipv6: [UInt8]) {
        self.ipv4 = ipv4
        self.ipv6 = ipv6
    }

    /// All zeros: the emulated network's secret unless a description gives one.
    public static let zero = SyncookieSecret(
        ipv4: [UInt8](repeating: 0, count: 32), ipv6: [UInt8](repeating: 0, count: 32))
    /// The size of each secret.
    public static let size = 32
}

/// The kernel's SYN cookie (`secure_tcp_syn_cookie` / `check_tcp_syn_cookie` of
/// `net/ipv4/syncookies.c` and `net/ipv6/syncookies.c`, Linux 6.18), shared by
/// `bpf_tcp_gen_syncookie`, `bpf_tcp_check_syncookie` and the `bpf_tcp_raw_*_syncookie_*`
/// helpers:
///
///     cookie = H0(addresses, ports) + seq + (count << 24) + ((H1(addresses, ports, count) + mssind) & 0xFFFFFF)
///
/// with `H0` / `H1` SipHash-2-4 under the secret's two keys (truncated to 32 bits), `seq` the
/// SYN's sequence number, `count` the minute counter (`tcp_cookie_time()`: jiffies / (60 HZ))
/// and `mssind` the index of the MSS in the family's table. A check strips `H0` and the sequence
/// number, takes the count from the top 8 bits (a cookie is valid for counts 0 and 1 minute
/// old: `MAX_SYNCOOKIE_AGE` 2), strips `H1` and gives the index, valid below 4.
enum Syncookie {
    /// `COOKIEBITS`, `COOKIEMASK` and `MAX_SYNCOOKIE_AGE`.
    static let cookieBits: UInt32 = 24
    static let cookieMask: UInt32 = 1 << 24 - 1
    static let maxAge: UInt32 = 2
    /// `msstab` of `net/ipv4/syncookies.c` and of `net/ipv6/syncookies.c`.
    static let ipv4MSS: [UInt32] = [536, 1300, 1440, 1460]
    static let ipv6MSS: [UInt32] = [1220, 1420, 1440, 8940]
    /// The MSS without an option: `TCP_MSS_DEFAULT` (IPv4), `IPV6_MIN_MTU` - 60 (IPv6).
    static let ipv4DefaultMSS: UInt32 = 536
    static let ipv6DefaultMSS: UInt32 = 1220
    /// `TCP_SYNCOOKIE_PERIOD` in seconds.
    static let period: UInt64 = 60

    /// One connection as the cookie sees it: the IP header's source and destination (4 or 16
    /// bytes each) and the TCP header's ports and sequence number, all from the packet.
    struct Flow {
        var source: [UInt8]
        var destination: [UInt8]
        /// `th->source` and `th->dest` as their bytes lie in the header.
        var ports: [UInt8]
        var isIPv4: Bool { source.count == 4 }

        /// The flow of an IP header (at least 20 bytes IPv4, 40 IPv6; its version field is not
        /// read) and a TCP header (at least 4 bytes).
        init(ipHeader iph: [UInt8], isIPv6: Bool, tcpHeader th: [UInt8]) {
            if isIPv6 {
                source = Array(iph[8..<24])
                destination = Array(iph[24..<40])
            } else {
                source = Array(iph[12..<16])
                destination = Array(iph[16..<20])
            }
            ports = Array(th[0..<4])
        }
    }

    static func table(_ flow: Flow) -> [UInt32] { flow.isIPv4 ? ipv4MSS : ipv6MSS }

    /// `__cookie_v4_init_sequence` / `__cookie_v6_init_sequence`: the MSS's index (the last
    /// entry not above it, else 0) and the cookie.
    static func generate(_ flow: Flow, mss: UInt32, sequence: UInt32, count: UInt32, secret: SyncookieSecret)
        -> (cookie: UInt32, mssIndex: Int)
    {
        let table = table(flow)
        let index = (1..<table.count).last { mss >= table[$0] } ?? 0
        let key = flow.isIPv4 ? secret.ipv4 : secret.ipv6
        let cookie =
            hash(flow, count: 0, key: key, 0) &+ sequence &+ count << cookieBits
            &+ ((hash(flow, count: count, key: key, 1) &+ UInt32(index)) & cookieMask)
        return (cookie, index)
    }

    /// `check_tcp_syn_cookie`: the MSS index the cookie carries, or `UInt32.max` when it is older
    /// than `MAX_SYNCOOKIE_AGE` minutes. `sequence` is the SYN's (the ACK's `seq` - 1).
    static func check(_ cookie: UInt32, _ flow: Flow, sequence: UInt32, count: UInt32, secret: SyncookieSecret)
        -> UInt32
    {
        let key = flow.isIPv4 ? secret.ipv4 : secret.ipv6
        let stripped = cookie &- (hash(flow, count: 0, key: key, 0) &+ sequence)
        let diff = (count &- (stripped >> cookieBits)) & (UInt32.max >> cookieBits)
        guard diff < maxAge else { return UInt32.max }
        return (stripped &- hash(flow, count: count &- diff, key: key, 1)) & cookieMask
    }

    /// `__cookie_v4_check` / `__cookie_v6_check` on an ACK: the MSS its cookie (`ack_seq` - 1)
    /// carries, or 0 when the cookie is not valid.
    static func mss(ofACK flow: Flow, tcpHeader th: [UInt8], count: UInt32, secret: SyncookieSecret) -> UInt32 {
        let index = check(be32(th, 8) &- 1, flow, sequence: be32(th, 4) &- 1, count: count, secret: secret)
        let table = table(flow)
        return index < UInt32(table.count) ? table[Int(index)] : 0
    }

    /// `cookie_hash`: SipHash-2-4 under key `c` of the secret. IPv4 hashes
    /// `siphash_4u32(saddr, daddr, sport << 16 | dport, count)`; IPv6 the 40-byte struct of
    /// `saddr`, `daddr`, `count`, `sport`, `dport`. Both as the kernel's little-endian loads see
    /// the bytes.
    static func hash(_ flow: Flow, count: UInt32, key: [UInt8], _ c: Int) -> UInt32 {
        let countBytes = (0..<4).map { UInt8(truncatingIfNeeded: count >> (8 * $0)) }
        let message =
            flow.isIPv4
            ? flow.source + flow.destination + [flow.ports[2], flow.ports[3], flow.ports[0], flow.ports[1]] + countBytes
            : flow.source + flow.destination + countBytes + flow.ports
        return UInt32(truncatingIfNeeded: sipHash24(message, key: Array(key[16 * c..<16 * c + 16])))
    }

    /// `tcp_cookie_time()`: jiffies64 / `TCP_SYNCOOKIE_PERIOD` (60 HZ).
    static func count(jiffies: UInt64, hz: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: jiffies / (period * hz))
    }

    /// `tcp_parse_mss_option(th, 0)`: the last non-zero MSS option (kind 2, length 4) among the
    /// header's options (`doff` words), or 0. Parsing stops at EOL or a malformed option.
    static func mssOption(_ th: [UInt8]) -> UInt32 {
        guard th.count >= 20 else { return 0 }
        var i = 20
        var length = min(Int(th[12] >> 4) * 4, th.count) - 20
        var mss: UInt32 = 0
        while length > 0 {
            let kind = th[i]
            i += 1
            switch kind {
            case 0: return mss
            case 1: length -= 1
            default:
                guard length >= 2 else { return mss }
                let size = Int(th[i])
                i += 1
                guard size >= 2, size <= length else { return mss }
                if kind == 2, size == 4 {
                    let value = UInt32(th[i]) << 8 | UInt32(th[i + 1])
                    if value != 0 { mss = value }
                }
                i += size - 2
                length -= size
            }
        }
        return mss
    }

    static func be32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(bytes[offset + $1]) }
    }

    /// SipHash-2-4 of `message` under a 16-byte key (`lib/siphash.c`: the key's two
    /// little-endian words, the message in little-endian 8-byte words, the length in the last
    /// byte).
    static func sipHash24(_ message: [UInt8], key: [UInt8]) -> UInt64 {
        func word(_ bytes: ArraySlice<UInt8>) -> UInt64 {
            bytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
        let k0 = word(key[0..<8])
        let k1 = word(key[8..<16])
        var v0: UInt64 = 0x736f_6d65_7073_6575 ^ k0
        var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ k1
        var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ k0
        var v3: UInt64 = 0x7465_6462_7974_6573 ^ k1
        func round() {
            v0 &+= v1
            v1 = v1.rotated(13) ^ v0
            v0 = v0.rotated(32)
            v2 &+= v3
            v3 = v3.rotated(16) ^ v2
            v0 &+= v3
            v3 = v3.rotated(21) ^ v0
            v2 &+= v1
            v1 = v1.rotated(17) ^ v2
            v2 = v2.rotated(32)
        }
        func absorb(_ m: UInt64) {
            v3 ^= m
            round()
            round()
            v0 ^= m
        }
        let whole = message.count / 8 * 8
        for start in stride(from: 0, to: whole, by: 8) { absorb(word(message[start..<start + 8])) }
        absorb(UInt64(message.count & 0xFF) << 56 | word(message[whole...]))
        v2 ^= 0xFF
        for _ in 0..<4 { round() }
        return v0 ^ v1 ^ v2 ^ v3
    }
}

extension UInt64 {
    fileprivate func rotated(_ n: UInt64) -> UInt64 { self << n | self >> (64 - n) }
}
