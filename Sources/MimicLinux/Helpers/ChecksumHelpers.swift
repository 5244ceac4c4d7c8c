import MimicCore
import MimicMemory

/// The kernel's Internet checksum arithmetic (`include/net/checksum.h`, `csum_partial`), on
/// values as they sit in memory (loaded little-endian, as on x86): ones' complement sums are
/// byte-order independent, so results match the kernel's byte for byte.
public enum Checksum {
    /// `csum_add`: 32-bit ones' complement addition.
    public static func add(_ a: UInt32, _ b: UInt32) -> UInt32 {
        let sum = a &+ b
        return sum &+ (sum < b ? 1 : 0)
    }

    /// `csum_sub`.
    public static func sub(_ a: UInt32, _ b: UInt32) -> UInt32 { add(a, ~b) }

    /// `csum_fold`: a 32-bit partial sum folded to 16 bits and complemented.
    public static func fold(_ csum: UInt32) -> UInt16 {
        var sum = (csum & 0xFFFF) + (csum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16)
        return ~UInt16(truncatingIfNeeded: sum)
    }

    /// `csum16_add`.
    static func add16(_ a: UInt16, _ b: UInt16) -> UInt16 {
        let sum = a &+ b
        return sum &+ (sum < b ? 1 : 0)
    }

    /// `csum_partial` over 32-bit words (as loaded from memory) plus `seed`, folded to 32 bits
    /// with end-around carries (x86-64's result).
    public static func partial(words: [UInt32], seed: UInt32) -> UInt32 {
        var total = UInt64(seed)
        for word in words { total &+= UInt64(word) }
        while total > 0xFFFF_FFFF { total = (total & 0xFFFF_FFFF) + (total >> 32) }
        return UInt32(total)
    }

    /// `csum_replace_by_diff`: applies a 32-bit difference to a checksum field.
    public static func replaceByDiff(_ sum: UInt16, diff: UInt32) -> UInt16 {
        fold(add(diff, ~UInt32(sum)))
    }

    /// `csum_replace2`: the field changed from 16-bit `old` to `new` (RFC 1624).
    public static func replace2(_ sum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        ~add16(add16(~sum, ~old), new)
    }

    /// `csum_replace4`: the field changed from 32-bit `old` to `new`.
    public static func replace4(_ sum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        fold(add(sub(~UInt32(sum), old), new))
    }

    /// `inet_proto_csum_replace4` for an sk_buff without checksum offload (`CHECKSUM_NONE`):
    /// `csum_fold(csum_partial({~from, to}, ~sum))`.
    public static func protoReplace4(_ sum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        fold(partial(words: [~old, new], seed: ~UInt32(sum)))
    }
}

/// `HelperID.csumDiff`, `HelperID.l3CsumReplace`, `HelperID.l4CsumReplace`.
///
/// The sk_buff is modelled without checksum offload (`CHECKSUM_NONE`), the state of a packet a
/// tc program gets from `BPF_PROG_TEST_RUN`: `BPF_F_PSEUDO_HDR` then only matters for
/// `skb->csum`, which programs cannot see, so the checksum field is updated the same way with or
/// without it.
enum ChecksumHelpers {
    static let fieldSizeMask: UInt64 = 0xF
    static let pseudoHeader: UInt64 = 1 << 4
    static let markMangled0: UInt64 = 1 << 5
    static let markEnforce: UInt64 = 1 << 6
    static let ipv6: UInt64 = 1 << 7
    /// `CSUM_MANGLED_0`: how a zero UDP checksum is written.
    static let mangled0: UInt16 = 0xFFFF

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            LinuxHelper.make(.csumDiff) { call throws(HelperFailure) in
                let fromSize = call.arg32(2)
                let toSize = call.arg32(4)
                // Sizes must be multiples of 4 and fit the 512-byte scratch buffer.
                guard (fromSize | toSize) & 3 == 0, UInt64(fromSize) + UInt64(toSize) <= 512 else {
                    return Errno.invalid.r0
                }
                let from = fromSize == 0 ? [] : try call.read(call.arg(1), count: Int(fromSize))
                let to = toSize == 0 ? [] : try call.read(call.arg(3), count: Int(toSize))
                let words =
                    stride(from: 0, to: from.count, by: 4).map { ~get32(from, $0) }
                    + stride(from: 0, to: to.count, by: 4).map { get32(to, $0) }
                return UInt64(Checksum.partial(words: words, seed: call.arg32(5)))
            },
            LinuxHelper.make(.l3CsumReplace) { call throws(HelperFailure) in
                let flags = call.arg(5)
                guard flags & ~fieldSizeMask == 0 else { return Errno.invalid.r0 }
                return try replace(call, flags: flags) { sum, from, to in
                    switch flags & fieldSizeMask {
                    case 0: from == 0 ? Checksum.replaceByDiff(sum, diff: UInt32(truncatingIfNeeded: to)) : nil
                    case 2:
                        Checksum.replace2(
                            sum, old: UInt16(truncatingIfNeeded: from), new: UInt16(truncatingIfNeeded: to))
                    case 4:
                        Checksum.replace4(
                            sum, old: UInt32(truncatingIfNeeded: from), new: UInt32(truncatingIfNeeded: to))
                    default: nil
                    }
                }
            },
            LinuxHelper.make(.l4CsumReplace) { call throws(HelperFailure) in
                let flags = call.arg(5)
                guard flags & ~(markMangled0 | markEnforce | pseudoHeader | ipv6 | fieldSizeMask) == 0 else {
                    return Errno.invalid.r0
                }
                return try replace(call, flags: flags) { sum, from, to in
                    let mangled = flags & markMangled0 != 0
                    if mangled, flags & markEnforce == 0, sum == 0 { return 0 } // a zero UDP checksum stays
                    let new: UInt16
                    switch flags & fieldSizeMask {
                    case 0:
                        guard from == 0 else { return nil }
                        new = Checksum.replaceByDiff(sum, diff: UInt32(truncatingIfNeeded: to))
                    case 2:
                        new = Checksum.protoReplace4(
                            sum, old: UInt32(UInt16(truncatingIfNeeded: from)),
                            new: UInt32(UInt16(truncatingIfNeeded: to)))
                    case 4:
                        new = Checksum.protoReplace4(
                            sum, old: UInt32(truncatingIfNeeded: from), new: UInt32(truncatingIfNeeded: to))
                    default:
                        return nil
                    }
                    return mangled && new == 0 ? mangled0 : new
                }
            },
        ]
    }

    /// Reads the checksum at `offset` (r2) of the sk_buff, lets `update` compute the new value from
    /// (sum, from r3, to r4) — nil means `-EINVAL` — and stores it.
    static func replace(
        _ call: HelperCall, flags: UInt64,
        _ update: (UInt16, UInt64, UInt64) -> UInt16?
    ) throws(HelperFailure) -> UInt64 {
        let buffer = try call.packet(.skb)
        let offset = call.arg32(2)
        guard offset <= 0xFFFF, offset & 1 == 0 else { return Errno.fault.r0 }
        guard Int(offset) + 2 <= buffer.length else { return Errno.fault.r0 }
        let position = buffer.dataOffset + Int(offset)
        let bytes = buffer.storage.bytes(in: position..<position + 2)
        let sum = UInt16(bytes[0]) | UInt16(bytes[1]) << 8
        guard let new = update(sum, call.arg(3), call.arg(4)) else { return Errno.invalid.r0 }
        buffer.storage.write([UInt8(truncatingIfNeeded: new), UInt8(truncatingIfNeeded: new >> 8)], at: position)
        return 0
    }
}
