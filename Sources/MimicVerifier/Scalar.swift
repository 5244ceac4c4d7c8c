/// The bounds the kernel keeps for a scalar (and for the variable part of a pointer's offset):
/// known bits, signed and unsigned 64-bit ranges and signed and unsigned 32-bit ranges of the
/// low half (`struct bpf_reg_state`'s `var_off`, `smin_value` ... `u32_max_value`).
public struct Scalar: Hashable, Sendable {
    public var varOff: Tnum
    public var smin: Int64
    public var smax: Int64
    public var umin: UInt64
    public var umax: UInt64
    public var s32min: Int32
    public var s32max: Int32
    public var u32min: UInt32
    public var u32max: UInt32

    /// Any 64-bit value.
    public static let unknown = Scalar(
        varOff: .unknown, smin: .min, smax: .max, umin: 0, umax: .max, s32min: .min, s32max: .max,
        u32min: 0, u32max: .max)

    /// Exactly `value`.
    public static func constant(_ value: UInt64) -> Scalar {
        Scalar(
            varOff: .constant(value), smin: Int64(bitPattern: value), smax: Int64(bitPattern: value),
            umin: value, umax: value, s32min: Int32(truncatingIfNeeded: value),
            s32max: Int32(truncatingIfNeeded: value),
            u32min: UInt32(truncatingIfNeeded: value), u32max: UInt32(truncatingIfNeeded: value))
    }

    /// Any value of `[0, max]` (a zero-extended load of `bytes` bytes when `max` is all ones).
    public static func unsigned(max: UInt64) -> Scalar {
        var s = Scalar.unknown
        s.umin = 0
        s.umax = max
        s.varOff = .range(0, max)
        s.sync()
        return s
    }

    public var isConstant: Bool { varOff.isConstant }
    public var constantValue: UInt64? { varOff.isConstant ? varOff.value : nil }
    public var isSubregConstant: Bool { varOff.subreg.isConstant }
    public var isUnbounded: Bool { self == .unknown }

    // MARK: Bounds synchronisation (reg_bounds_sync)

    mutating func update32() {
        let v = varOff.subreg
        s32min = max(s32min, Int32(bitPattern: UInt32(truncatingIfNeeded: v.value | (v.mask & 0x8000_0000))))
        s32max = min(s32max, Int32(bitPattern: UInt32(truncatingIfNeeded: v.value | (v.mask & 0x7fff_ffff))))
        u32min = max(u32min, UInt32(truncatingIfNeeded: v.value))
        u32max = min(u32max, UInt32(truncatingIfNeeded: v.value | v.mask))
    }

    mutating func update64() {
        let v = varOff
        smin = max(smin, Int64(bitPattern: v.value | (v.mask & 0x8000_0000_0000_0000)))
        smax = min(smax, Int64(bitPattern: v.value | (v.mask & 0x7fff_ffff_ffff_ffff)))
        umin = max(umin, v.value)
        umax = min(umax, v.value | v.mask)
    }

    mutating func deduce32() {
        if umin >> 32 == umax >> 32 {
            u32min = max(u32min, UInt32(truncatingIfNeeded: umin))
            u32max = min(u32max, UInt32(truncatingIfNeeded: umax))
            if Int32(truncatingIfNeeded: umin) <= Int32(truncatingIfNeeded: umax) {
                s32min = max(s32min, Int32(truncatingIfNeeded: umin))
                s32max = min(s32max, Int32(truncatingIfNeeded: umax))
            }
        }
        if smin >> 32 == smax >> 32 {
            u32min = max(u32min, UInt32(truncatingIfNeeded: smin))
            u32max = min(u32max, UInt32(truncatingIfNeeded: smax))
            if Int32(truncatingIfNeeded: smin) <= Int32(truncatingIfNeeded: smax) {
                s32min = max(s32min, Int32(truncatingIfNeeded: smin))
                s32max = min(s32max, Int32(truncatingIfNeeded: smax))
            }
        }
        if UInt32(truncatingIfNeeded: umin >> 32) &+ 1 == UInt32(truncatingIfNeeded: umax >> 32),
            Int32(truncatingIfNeeded: umin) < 0, Int32(truncatingIfNeeded: umax) >= 0
        {
            s32min = max(s32min, Int32(truncatingIfNeeded: umin))
            s32max = min(s32max, Int32(truncatingIfNeeded: umax))
        }
        if UInt32(truncatingIfNeeded: smin >> 32) &+ 1 == UInt32(truncatingIfNeeded: smax >> 32),
            Int32(truncatingIfNeeded: smin) < 0, Int32(truncatingIfNeeded: smax) >= 0
        {
            s32min = max(s32min, Int32(truncatingIfNeeded: smin))
            s32max = min(s32max, Int32(truncatingIfNeeded: smax))
        }
        if Int32(bitPattern: u32min) <= Int32(bitPattern: u32max) {
            s32min = max(s32min, Int32(bitPattern: u32min))
            s32max = min(s32max, Int32(bitPattern: u32max))
        }
        if UInt32(bitPattern: s32min) <= UInt32(bitPattern: s32max) {
            u32min = max(u32min, UInt32(bitPattern: s32min))
            u32max = min(u32max, UInt32(bitPattern: s32max))
        }
    }

    mutating func deduce64() {
        if Int64(bitPattern: umin) <= Int64(bitPattern: umax) {
            smin = max(smin, Int64(bitPattern: umin))
            smax = min(smax, Int64(bitPattern: umax))
        }
        if UInt64(bitPattern: smin) <= UInt64(bitPattern: smax) {
            umin = max(umin, UInt64(bitPattern: smin))
            umax = min(umax, UInt64(bitPattern: smax))
        }
    }

    mutating func deduceMixed() {
        let newUmin = (umin & ~0xffff_ffff) | UInt64(u32min)
        let newUmax = (umax & ~0xffff_ffff) | UInt64(u32max)
        umin = max(umin, newUmin)
        umax = min(umax, newUmax)
        let newSmin = Int64(bitPattern: (UInt64(bitPattern: smin) & ~0xffff_ffff) | UInt64(u32min))
        let newSmax = Int64(bitPattern: (UInt64(bitPattern: smax) & ~0xffff_ffff) | UInt64(u32max))
        smin = max(smin, newSmin)
        smax = min(smax, newSmax)
        if s32min >= 0, smin >= Int64(Int32.min), smax <= Int64(Int32.max) {
            smin = Int64(s32min)
            smax = Int64(s32max)
            umin = UInt64(s32min)
            umax = UInt64(s32max)
            varOff = varOff.intersect(.range(umin, umax))
        }
    }

    mutating func boundOffset() {
        let v64 = varOff.intersect(.range(umin, umax))
        let v32 = v64.subreg.intersect(.range(UInt64(u32min), UInt64(u32max)))
        varOff = v64.clearingSubreg | v32
    }

    /// Brings the ranges and the known bits into agreement (`reg_bounds_sync`).
    public mutating func sync() {
        update32()
        update64()
        deduce32()
        deduce64()
        deduceMixed()
        deduce64()
        boundOffset()
        update32()
        update64()
    }

    /// The bounds contradict each other: a path the program cannot take.
    public var isInconsistent: Bool {
        smin > smax || umin > umax || s32min > s32max || u32min > u32max
            || varOff.value & varOff.mask != 0
    }

    /// Keeps the low 32 bits, zero-extended (`zext_32_to_64`).
    mutating func zeroExtend32() {
        varOff = varOff.subreg
        umin = UInt64(u32min)
        umax = UInt64(u32max)
        smin = Int64(u32min)
        smax = Int64(u32max)
        // The 32-bit signed range stays as it is.
    }

    /// Forgets the 64-bit bounds, keeping the 32-bit ones (`__mark_reg64_unbounded`).
    mutating func mark64Unbounded() {
        smin = .min
        smax = .max
        umin = 0
        umax = .max
    }

    mutating func mark32Unbounded() {
        s32min = .min
        s32max = .max
        u32min = 0
        u32max = .max
    }

    /// Truncates to `size` bytes, zero-extended (`coerce_reg_to_size`).
    mutating func coerce(bytes size: Int) {
        guard size < 8 else { return }
        varOff = varOff.cast(bytes: size)
        let mask = (UInt64(1) << UInt64(size * 8)) &- 1
        if umin & ~mask == umax & ~mask {
            umin &= mask
            umax &= mask
        } else {
            umin = 0
            umax = mask
        }
        smin = Int64(bitPattern: umin)
        smax = Int64(bitPattern: umax)
        if size < 4 {
            u32min = UInt32(umin)
            u32max = UInt32(umax)
            s32min = Int32(bitPattern: u32min)
            s32max = Int32(bitPattern: u32max)
        } else {
            mark32Unbounded()
        }
        sync()
    }

    /// Sign-extends the low `size` bytes to 64 bits (`coerce_reg_to_size_sx`).
    mutating func signExtend(bytes size: Int) {
        if let c = constantValue {
            let shift = UInt64(64 - size * 8)
            self = .constant(UInt64(bitPattern: Int64(bitPattern: c << shift) >> Int64(shift)))
            return
        }
        let bits = size * 8
        let lowMax = (Int64(1) << Int64(bits - 1)) - 1
        let lowMin = -(Int64(1) << Int64(bits - 1))
        // Values already within the signed range of `size` keep their signed bounds.
        if smin >= lowMin, smax <= lowMax {
            var s = Scalar.unknown
            s.smin = smin
            s.smax = smax
            s.sync()
            self = s
            return
        }
        var s = Scalar.unknown
        s.smin = lowMin
        s.smax = lowMax
        s.sync()
        self = s
    }

    /// Sign-extends the low `size` bytes to 32 bits and zero-extends that to 64.
    mutating func signExtend32(bytes size: Int) {
        signExtend(bytes: size)
        var low = self
        low.coerce(bytes: 4)
        // Keep the 32-bit signed view of the sign-extended value.
        low.s32min = Int32(clamping: smin)
        low.s32max = Int32(clamping: smax)
        low.sync()
        self = low
    }
}

// MARK: ALU on bounds (adjust_scalar_min_max_vals)

/// The ALU operations the bounds tracking models.
enum ALUOp: UInt8 {
    case add = 0x00, sub = 0x10, mul = 0x20, div = 0x30, or = 0x40, and = 0x50, lsh = 0x60, rsh = 0x70
    case neg = 0x80, mod = 0x90, xor = 0xa0, mov = 0xb0, arsh = 0xc0, end = 0xd0
}

extension Scalar {
    /// `self op src` on `bits` (32 or 64) bits, as the kernel computes the result's bounds.
    func applying(_ op: ALUOp, _ src: Scalar, bits: Int) -> Scalar {
        let is32 = bits == 32
        let srcConst = is32 ? src.isSubregConstant : src.isConstant
        let srcShiftMax = is32 ? UInt64(src.u32max) : src.umax
        switch op {
        case .add, .sub, .mul, .and, .or, .xor, .neg: break
        case .lsh, .rsh, .arsh:
            guard srcConst, srcShiftMax < UInt64(bits) else { return Scalar.unknownOf(bits: bits) }
        default: return Scalar.unknownOf(bits: bits)
        }
        if src.isInconsistent { return Scalar.unknownOf(bits: bits) }
        var d = self
        if is32 {
            d.alu32(op, src)
            d.zeroExtend32()
        } else {
            d.alu64(op, src)
            if op == .lsh || op == .rsh || op == .arsh {
                // The low half of a 64-bit shift comes from the known bits alone.
                d.mark32Unbounded()
            } else {
                var low = self
                low.alu32(op, src)
                d.s32min = low.s32min
                d.s32max = low.s32max
                d.u32min = low.u32min
                d.u32max = low.u32max
            }
        }
        d.sync()
        return d
    }

    static func unknownOf(bits: Int) -> Scalar {
        bits == 32 ? .unsigned(max: 0xffff_ffff) : .unknown
    }

    private mutating func alu32(_ op: ALUOp, _ src: Scalar) {
        let dOff = varOff.subreg
        let sOff = src.varOff.subreg
        switch op {
        case .add:
            let (smn, o1) = s32min.addingReportingOverflow(src.s32min)
            let (smx, o2) = s32max.addingReportingOverflow(src.s32max)
            if o1 || o2 {
                s32min = .min
                s32max = .max
            } else {
                s32min = smn
                s32max = smx
            }
            let (umn, o3) = u32min.addingReportingOverflow(src.u32min)
            let (umx, o4) = u32max.addingReportingOverflow(src.u32max)
            if o3 || o4 {
                u32min = 0
                u32max = .max
            } else {
                u32min = umn
                u32max = umx
            }
            varOff = varOff.withSubreg(dOff + sOff)
        case .sub, .neg:
            let s = op == .neg ? self : src
            var d = op == .neg ? Scalar.constant(0) : self
            let (smn, o1) = d.s32min.subtractingReportingOverflow(s.s32max)
            let (smx, o2) = d.s32max.subtractingReportingOverflow(s.s32min)
            if o1 || o2 {
                d.s32min = .min
                d.s32max = .max
            } else {
                d.s32min = smn
                d.s32max = smx
            }
            if d.u32min < s.u32max {
                d.u32min = 0
                d.u32max = .max
            } else {
                d.u32min = d.u32min - s.u32max
                d.u32max = d.u32max - s.u32min
            }
            let t = d.varOff.subreg - s.varOff.subreg
            s32min = d.s32min
            s32max = d.s32max
            u32min = d.u32min
            u32max = d.u32max
            varOff = varOff.withSubreg(t)
        case .mul:
            let (umn, o1) = u32min.multipliedReportingOverflow(by: src.u32min)
            let (umx, o2) = u32max.multipliedReportingOverflow(by: src.u32max)
            if o1 || o2 {
                u32min = 0
                u32max = .max
            } else {
                u32min = umn
                u32max = umx
            }
            let products = [
                Int64(s32min) * Int64(src.s32min), Int64(s32min) * Int64(src.s32max),
                Int64(s32max) * Int64(src.s32min), Int64(s32max) * Int64(src.s32max),
            ]
            if let lo = products.min(), let hi = products.max(), lo >= Int64(Int32.min), hi <= Int64(Int32.max) {
                s32min = Int32(lo)
                s32max = Int32(hi)
            } else {
                s32min = .min
                s32max = .max
            }
            varOff = varOff.withSubreg(dOff * sOff)
        case .and:
            let t = dOff & sOff
            varOff = varOff.withSubreg(t)
            u32min = UInt32(truncatingIfNeeded: t.value)
            u32max = min(u32max, src.u32max)
            if s32min < 0 || src.s32min < 0 {
                s32min = .min
                s32max = .max
            } else {
                s32min = Int32(bitPattern: u32min)
                s32max = Int32(bitPattern: u32max)
            }
        case .or:
            let t = dOff | sOff
            varOff = varOff.withSubreg(t)
            u32min = max(u32min, src.u32min)
            u32max = UInt32(truncatingIfNeeded: t.value | t.mask)
            if s32min < 0 || src.s32min < 0 {
                s32min = .min
                s32max = .max
            } else {
                s32min = Int32(bitPattern: u32min)
                s32max = Int32(bitPattern: u32max)
            }
        case .xor:
            let t = dOff ^ sOff
            varOff = varOff.withSubreg(t)
            u32min = UInt32(truncatingIfNeeded: t.value)
            u32max = UInt32(truncatingIfNeeded: t.value | t.mask)
            if s32min >= 0, src.s32min >= 0 {
                s32min = Int32(bitPattern: u32min)
                s32max = Int32(bitPattern: u32max)
            } else {
                s32min = .min
                s32max = .max
            }
        case .lsh:
            let s = UInt32(src.u32min)
            s32min = .min
            s32max = .max
            if u32max > (UInt32(1) << (31 - s)) {
                u32min = 0
                u32max = .max
            } else {
                u32min <<= s
                u32max <<= s
            }
            varOff = varOff.withSubreg(dOff << UInt64(s))
        case .rsh:
            let s = UInt32(src.u32min)
            s32min = .min
            s32max = .max
            u32min >>= s
            u32max >>= s
            varOff = varOff.withSubreg(dOff >> UInt64(s))
        case .arsh:
            let s = Int32(src.u32min)
            s32min >>= s
            s32max >>= s
            u32min = 0
            u32max = .max
            varOff = varOff.withSubreg(dOff.arithmeticShiftRight(UInt64(s), bits: 32))
        default:
            break
        }
    }

    private mutating func alu64(_ op: ALUOp, _ src: Scalar) {
        switch op {
        case .add:
            let (smn, o1) = smin.addingReportingOverflow(src.smin)
            let (smx, o2) = smax.addingReportingOverflow(src.smax)
            if o1 || o2 {
                smin = .min
                smax = .max
            } else {
                smin = smn
                smax = smx
            }
            let (umn, o3) = umin.addingReportingOverflow(src.umin)
            let (umx, o4) = umax.addingReportingOverflow(src.umax)
            if o3 || o4 {
                umin = 0
                umax = .max
            } else {
                umin = umn
                umax = umx
            }
            varOff = varOff + src.varOff
        case .sub, .neg:
            let s = op == .neg ? self : src
            var d = op == .neg ? Scalar.constant(0) : self
            let (smn, o1) = d.smin.subtractingReportingOverflow(s.smax)
            let (smx, o2) = d.smax.subtractingReportingOverflow(s.smin)
            if o1 || o2 {
                d.smin = .min
                d.smax = .max
            } else {
                d.smin = smn
                d.smax = smx
            }
            if d.umin < s.umax {
                d.umin = 0
                d.umax = .max
            } else {
                d.umin = d.umin - s.umax
                d.umax = d.umax - s.umin
            }
            smin = d.smin
            smax = d.smax
            umin = d.umin
            umax = d.umax
            varOff = d.varOff - s.varOff
        case .mul:
            let (umn, o1) = umin.multipliedReportingOverflow(by: src.umin)
            let (umx, o2) = umax.multipliedReportingOverflow(by: src.umax)
            if o1 || o2 {
                umin = 0
                umax = .max
            } else {
                umin = umn
                umax = umx
            }
            let p = [
                smin.multipliedReportingOverflow(by: src.smin), smin.multipliedReportingOverflow(by: src.smax),
                smax.multipliedReportingOverflow(by: src.smin), smax.multipliedReportingOverflow(by: src.smax),
            ]
            if p.allSatisfy({ !$0.overflow }), let lo = p.map(\.partialValue).min(),
                let hi = p.map(\.partialValue).max()
            {
                smin = lo
                smax = hi
            } else {
                smin = .min
                smax = .max
            }
            varOff = varOff * src.varOff
        case .and:
            varOff = varOff & src.varOff
            umin = varOff.value
            umax = min(umax, src.umax)
            if smin < 0 || src.smin < 0 {
                smin = .min
                smax = .max
            } else {
                smin = Int64(bitPattern: umin)
                smax = Int64(bitPattern: umax)
            }
        case .or:
            varOff = varOff | src.varOff
            umin = max(umin, src.umin)
            umax = varOff.value | varOff.mask
            if smin < 0 || src.smin < 0 {
                smin = .min
                smax = .max
            } else {
                smin = Int64(bitPattern: umin)
                smax = Int64(bitPattern: umax)
            }
        case .xor:
            varOff = varOff ^ src.varOff
            umin = varOff.value
            umax = varOff.value | varOff.mask
            if smin >= 0, src.smin >= 0 {
                smin = Int64(bitPattern: umin)
                smax = Int64(bitPattern: umax)
            } else {
                smin = .min
                smax = .max
            }
        case .lsh:
            let s = src.umin
            smin = .min
            smax = .max
            if umax > (UInt64(1) << (63 - s)) {
                umin = 0
                umax = .max
            } else {
                umin <<= s
                umax <<= s
            }
            varOff = varOff << s
        case .rsh:
            let s = src.umin
            smin = .min
            smax = .max
            umin >>= s
            umax >>= s
            varOff = varOff >> s
        case .arsh:
            let s = Int64(src.umin)
            smin >>= s
            smax >>= s
            umin = 0
            umax = .max
            varOff = varOff.arithmeticShiftRight(UInt64(s), bits: 64)
        default:
            break
        }
    }
}
