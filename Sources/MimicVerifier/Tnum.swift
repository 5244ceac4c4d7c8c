/// A tracked number (the kernel's `struct tnum`, kernel/bpf/tnum.c): the bits of a value that
/// are known. A bit set in `mask` is unknown; the other bits equal those of `value`.
public struct Tnum: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64
    public var mask: UInt64

    public init(value: UInt64, mask: UInt64) {
        self.value = value & ~mask
        self.mask = mask
    }

    public static func constant(_ v: UInt64) -> Tnum { Tnum(value: v, mask: 0) }
    public static let unknown = Tnum(value: 0, mask: .max)

    /// The smallest tnum holding every value of `[min, max]` (`tnum_range`).
    public static func range(_ min: UInt64, _ max: UInt64) -> Tnum {
        let chi = min ^ max
        let bits = chi == 0 ? 0 : 64 - chi.leadingZeroBitCount
        if bits > 63 { return .unknown }
        let delta = (UInt64(1) << UInt64(bits)) &- 1
        return Tnum(value: min & ~delta, mask: delta)
    }

    public var isConstant: Bool { mask == 0 }
    public var isUnknown: Bool { mask == .max }

    public static func << (a: Tnum, s: UInt64) -> Tnum { Tnum(value: a.value << s, mask: a.mask << s) }
    public static func >> (a: Tnum, s: UInt64) -> Tnum { Tnum(value: a.value >> s, mask: a.mask >> s) }

    /// Arithmetic shift right of the value as `bits` wide (32 or 64).
    public func arithmeticShiftRight(_ s: UInt64, bits: Int) -> Tnum {
        if bits == 32 {
            return Tnum(
                value: UInt64(UInt32(bitPattern: Int32(bitPattern: UInt32(truncatingIfNeeded: value)) >> Int32(s))),
                mask: UInt64(UInt32(bitPattern: Int32(bitPattern: UInt32(truncatingIfNeeded: mask)) >> Int32(s))))
        }
        return Tnum(
            value: UInt64(bitPattern: Int64(bitPattern: value) >> Int64(s)),
            mask: UInt64(bitPattern: Int64(bitPattern: mask) >> Int64(s)))
    }

    public static func + (a: Tnum, b: Tnum) -> Tnum {
        let sm = a.mask &+ b.mask
        let sv = a.value &+ b.value
        let sigma = sm &+ sv
        let chi = sigma ^ sv
        let mu = chi | a.mask | b.mask
        return Tnum(value: sv & ~mu, mask: mu)
    }

    public static func - (a: Tnum, b: Tnum) -> Tnum {
        let dv = a.value &- b.value
        let alpha = dv &+ a.mask
        let beta = dv &- b.mask
        let chi = alpha ^ beta
        let mu = chi | a.mask | b.mask
        return Tnum(value: dv & ~mu, mask: mu)
    }

    public static func & (a: Tnum, b: Tnum) -> Tnum {
        let alpha = a.value | a.mask
        let beta = b.value | b.mask
        let v = a.value & b.value
        return Tnum(value: v, mask: alpha & beta & ~v)
    }

    public static func | (a: Tnum, b: Tnum) -> Tnum {
        let v = a.value | b.value
        let mu = a.mask | b.mask
        return Tnum(value: v, mask: mu & ~v)
    }

    public static func ^ (a: Tnum, b: Tnum) -> Tnum {
        let v = a.value ^ b.value
        let mu = a.mask | b.mask
        return Tnum(value: v & ~mu, mask: mu)
    }

    public static func * (a: Tnum, b: Tnum) -> Tnum {
        var a = a
        var b = b
        let accV = a.value &* b.value
        var accM = Tnum(value: 0, mask: 0)
        while a.value != 0 || a.mask != 0 {
            if a.value & 1 != 0 {
                accM = accM + Tnum(value: 0, mask: b.mask)
            } else if a.mask & 1 != 0 {
                accM = accM + Tnum(value: 0, mask: b.value | b.mask)
            }
            a = a >> 1
            b = b << 1
        }
        return Tnum.constant(accV) + accM
    }

    /// `a` and `b` both hold: the values in both (`tnum_intersect`).
    public func intersect(_ b: Tnum) -> Tnum {
        let v = value | b.value
        let mu = mask & b.mask
        return Tnum(value: v & ~mu, mask: mu)
    }

    /// Every value of `b` is a value of `self` (`tnum_in(self, b)`).
    public func contains(_ b: Tnum) -> Bool {
        if b.mask & ~mask != 0 { return false }
        return value == b.value & ~mask
    }

    /// The low `size` bytes (`tnum_cast`).
    public func cast(bytes size: Int) -> Tnum {
        if size >= 8 { return self }
        let m = (UInt64(1) << UInt64(size * 8)) &- 1
        return Tnum(value: value & m, mask: mask & m)
    }

    public var subreg: Tnum { cast(bytes: 4) }
    public var clearingSubreg: Tnum { (self >> 32) << 32 }
    /// The upper 32 bits of `self` with the lower 32 of `sub`.
    public func withSubreg(_ sub: Tnum) -> Tnum { clearingSubreg | sub.subreg }

    public var description: String {
        isConstant ? "\(value)" : "(0x\(String(value, radix: 16)); 0x\(String(mask, radix: 16)))"
    }
}
