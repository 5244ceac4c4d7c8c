import MimicCore

/// Comparison operators of conditional jumps (`BPF_JEQ` ...), as their opcode bits.
enum JumpOp: UInt8 {
    case eq = 0x10, gt = 0x20, ge = 0x30, set = 0x40, ne = 0x50, sgt = 0x60, sge = 0x70
    case lt = 0xa0, le = 0xb0, slt = 0xc0, sle = 0xd0

    /// The condition of the other branch (`rev_opcode`); JSET has none (nil).
    var negated: JumpOp? {
        switch self {
        case .eq: .ne
        case .ne: .eq
        case .gt: .le
        case .le: .gt
        case .ge: .lt
        case .lt: .ge
        case .sgt: .sle
        case .sle: .sgt
        case .sge: .slt
        case .slt: .sge
        case .set: nil
        }
    }

    /// The same condition with the operands swapped (`flip_opcode`).
    var flipped: JumpOp {
        switch self {
        case .gt: .lt
        case .lt: .gt
        case .ge: .le
        case .le: .ge
        case .sgt: .slt
        case .slt: .sgt
        case .sge: .sle
        case .sle: .sge
        default: self
        }
    }
}

/// The ranges of a scalar as compared by a 32- or 64-bit jump.
private struct View {
    var umin: UInt64, umax: UInt64, smin: Int64, smax: Int64
    var tnum: Tnum
    init(_ s: Scalar, _ is32: Bool) {
        if is32 {
            umin = UInt64(s.u32min)
            umax = UInt64(s.u32max)
            smin = Int64(s.s32min)
            smax = Int64(s.s32max)
            tnum = s.varOff.subreg
        } else {
            umin = s.umin
            umax = s.umax
            smin = s.smin
            smax = s.smax
            tnum = s.varOff
        }
    }
}

extension Analysis {
    /// 1 taken, 0 not taken, -1 unknown (`is_scalar_branch_taken`).
    func branchTaken(_ a: Scalar, _ b: Scalar, _ op: JumpOp, is32: Bool) -> Int {
        let x = View(a, is32)
        let y = View(b, is32)
        switch op {
        case .eq, .ne:
            var differs = false
            var same = false
            if x.tnum.isConstant && y.tnum.isConstant {
                same = x.tnum.value == y.tnum.value
                differs = !same
            } else if x.umin > y.umax || x.umax < y.umin || x.smin > y.smax || x.smax < y.smin {
                differs = true
            } else if !is32
                && (a.u32min > b.u32max || a.u32max < b.u32min || a.s32min > b.s32max || a.s32max < b.s32min)
            {
                differs = true
            } else if (x.tnum.value ^ y.tnum.value) & ~(x.tnum.mask | y.tnum.mask) != 0 {
                differs = true
            }
            if same { return op == .eq ? 1 : 0 }
            if differs { return op == .eq ? 0 : 1 }
            return -1
        case .set:
            var t1 = x.tnum
            var t2 = y.tnum
            if !t2.isConstant { swap(&t1, &t2) }
            if !t2.isConstant { return -1 }
            if t1.value & t2.value != 0 { return 1 }
            if (t1.mask | t1.value) & t2.value == 0 { return 0 }
            return -1
        case .gt:
            if x.umin > y.umax { return 1 }
            if x.umax <= y.umin { return 0 }
        case .sgt:
            if x.smin > y.smax { return 1 }
            if x.smax <= y.smin { return 0 }
        case .lt:
            if x.umax < y.umin { return 1 }
            if x.umin >= y.umax { return 0 }
        case .slt:
            if x.smax < y.smin { return 1 }
            if x.smin >= y.smax { return 0 }
        case .ge:
            if x.umin >= y.umax { return 1 }
            if x.umax < y.umin { return 0 }
        case .sge:
            if x.smin >= y.smax { return 1 }
            if x.smax < y.smin { return 0 }
        case .le:
            if x.umax <= y.umin { return 1 }
            if x.umin > y.umax { return 0 }
        case .sle:
            if x.smax <= y.smin { return 1 }
            if x.smin > y.smax { return 0 }
        }
        return -1
    }

    /// Narrows both operands to the values for which `a op b` holds (`regs_refine_cond_op`).
    func refine(_ a: inout Scalar, _ b: inout Scalar, _ op: JumpOp, is32: Bool) {
        switch op {
        case .eq:
            if is32 {
                let umin = max(a.u32min, b.u32min)
                let umax = min(a.u32max, b.u32max)
                let smin = max(a.s32min, b.s32min)
                let smax = min(a.s32max, b.s32max)
                let t = a.varOff.subreg.intersect(b.varOff.subreg)
                a.u32min = umin
                a.u32max = umax
                a.s32min = smin
                a.s32max = smax
                b.u32min = umin
                b.u32max = umax
                b.s32min = smin
                b.s32max = smax
                a.varOff = a.varOff.withSubreg(t)
                b.varOff = b.varOff.withSubreg(t)
            } else {
                let umin = max(a.umin, b.umin)
                let umax = min(a.umax, b.umax)
                let smin = max(a.smin, b.smin)
                let smax = min(a.smax, b.smax)
                let t = a.varOff.intersect(b.varOff)
                a.umin = umin
                a.umax = umax
                a.smin = smin
                a.smax = smax
                a.varOff = t
                b.umin = umin
                b.umax = umax
                b.smin = smin
                b.smax = smax
                b.varOff = t
            }
        case .ne:
            func edge(_ x: inout Scalar, _ v: UInt64) {
                if is32 {
                    let v32 = UInt32(truncatingIfNeeded: v)
                    if x.u32min == v32 { x.u32min &+= 1 }
                    if x.u32max == v32 { x.u32max &-= 1 }
                    if x.s32min == Int32(bitPattern: v32) { x.s32min &+= 1 }
                    if x.s32max == Int32(bitPattern: v32) { x.s32max &-= 1 }
                } else {
                    if x.umin == v { x.umin &+= 1 }
                    if x.umax == v { x.umax &-= 1 }
                    if x.smin == Int64(bitPattern: v) { x.smin &+= 1 }
                    if x.smax == Int64(bitPattern: v) { x.smax &-= 1 }
                }
            }
            let bConst = is32 ? b.isSubregConstant : b.isConstant
            let aConst = is32 ? a.isSubregConstant : a.isConstant
            if bConst {
                edge(&a, is32 ? b.varOff.subreg.value : b.varOff.value)
            } else if aConst {
                edge(&b, is32 ? a.varOff.subreg.value : a.varOff.value)
            }
        case .set:
            break
        case .ge:
            if is32 {
                a.u32min = max(a.u32min, b.u32min)
                b.u32max = min(b.u32max, a.u32max)
            } else {
                a.umin = max(a.umin, b.umin)
                b.umax = min(b.umax, a.umax)
            }
        case .gt:
            if is32 {
                a.u32min = max(a.u32min, b.u32min &+ 1)
                b.u32max = min(b.u32max, a.u32max &- 1)
            } else {
                a.umin = max(a.umin, b.umin &+ 1)
                b.umax = min(b.umax, a.umax &- 1)
            }
        case .sge:
            if is32 {
                a.s32min = max(a.s32min, b.s32min)
                b.s32max = min(b.s32max, a.s32max)
            } else {
                a.smin = max(a.smin, b.smin)
                b.smax = min(b.smax, a.smax)
            }
        case .sgt:
            if is32 {
                a.s32min = max(a.s32min, b.s32min &+ 1)
                b.s32max = min(b.s32max, a.s32max &- 1)
            } else {
                a.smin = max(a.smin, b.smin &+ 1)
                b.smax = min(b.smax, a.smax &- 1)
            }
        case .le, .lt, .sle, .slt:
            refine(&b, &a, op.flipped, is32: is32)
            return
        }
        a.sync()
        b.sync()
    }

    /// The false branch of `JSET`: the tested bits are clear.
    func refineSetFalse(_ a: inout Scalar, _ b: Scalar, is32: Bool) {
        guard let v = is32 ? (b.isSubregConstant ? b.varOff.subreg.value : nil) : b.constantValue else { return }
        if is32 {
            a.varOff = a.varOff.withSubreg(a.varOff.subreg & .constant(~v & 0xffff_ffff))
        } else {
            a.varOff = a.varOff & .constant(~v)
        }
        a.sync()
    }

    func checkConditionalJump(_ s: inout VerifierState, _ pc: Int, _ i: RawInstruction) throws -> Outcome {
        guard let op = JumpOp(rawValue: i.opcode & 0xf0) else {
            throw Failure(kind: .invalidInstruction, pc: pc, message: "invalid BPF_JMP/JMP32 opcode \(i.opcode)")
        }
        let is32 = i.opcode & 7 == 0x06
        let srcIsReg = i.opcode & 0x08 != 0
        let d = Int(i.destination)
        let dst = try readRegister(s, i.destination, pc)
        let src: Register
        if srcIsReg {
            src = try readRegister(s, i.source, pc)
        } else {
            src = .constant(is32 ? UInt64(UInt32(bitPattern: i.imm)) : UInt64(bitPattern: Int64(i.imm)))
        }
        let target = jumpTarget(pc)
        // Which way the branch goes, when known.
        var pred = -1
        if dst.type == .scalar && src.type == .scalar {
            pred = branchTaken(dst.bounds, src.bounds, op, is32: is32)
        } else if dst.isPointer != src.isPointer && !(dst.type.isPacket || src.type.isPacket) {
            let ptr = dst.isPointer ? dst : src
            let other = dst.isPointer ? src : dst
            let notNull: Set<RegisterType> = [
                .socket, .tcpSocket, .mapValue, .mapKey, .socketCommon, .memory, .mapPointer,
            ]
            if !ptr.maybeNull, notNull.contains(ptr.type), other.type == .scalar,
                (is32
                    ? (other.bounds.isSubregConstant ? other.bounds.varOff.subreg.value : nil)
                    : other.bounds.constantValue) == 0
            {
                if op == .eq { pred = 0 } else if op == .ne { pred = 1 }
            }
        }
        // A branch the bounds decide relies on the scalars' values (`check_cond_jmp_op`).
        var scalarOperands = dst.type == .scalar ? [d] : []
        if srcIsReg, src.type == .scalar { scalarOperands.append(Int(i.source)) }
        if pred == 1 || pred == 0 { markPrecise(s, registers: scalarOperands) }
        if pred == 1 { return .next(target) }
        if pred == 0 { return .next(pc + 1) }
        stepLinked = linkedLocations(s, ids: scalarOperands.map { s[register: $0].baseID })

        var taken = s
        var fall = s
        if dst.type == .scalar && src.type == .scalar {
            var a1 = dst.bounds
            var b1 = src.bounds
            var a2 = dst.bounds
            var b2 = src.bounds
            refine(&a1, &b1, op, is32: is32)
            if let neg = op.negated {
                refine(&a2, &b2, neg, is32: is32)
            } else {
                refineSetFalse(&a2, b2, is32: is32)
            }
            if a1.isInconsistent || b1.isInconsistent || a2.isInconsistent || b2.isInconsistent {
                markPrecise(s, registers: scalarOperands)
                stepLinked = nil
                return .next(a1.isInconsistent || b1.isInconsistent ? pc + 1 : target)
            }
            setScalar(&taken, d, dst, a1)
            setScalar(&fall, d, dst, a2)
            if srcIsReg {
                setScalar(&taken, Int(i.source), src, b1)
                setScalar(&fall, Int(i.source), src, b2)
            }
        } else if op == .eq || op == .ne {
            // Null checks: `if (p == 0)` / `if (p != 0)` on a pointer that may be NULL.
            let ptrIsDst = dst.maybeNull && src.isNullConstant
            let ptrIsSrc = src.maybeNull && dst.isNullConstant
            if ptrIsDst || ptrIsSrc {
                let ptr = ptrIsDst ? dst : src
                if op == .eq {
                    markNull(&taken, ptr, isNull: true)
                    markNull(&fall, ptr, isNull: false)
                } else {
                    markNull(&taken, ptr, isNull: false)
                    markNull(&fall, ptr, isNull: true)
                }
            }
        } else if !is32 {
            matchPacketPointers(&taken, &fall, dst, src, op, pc)
        }
        s = fall
        return .branch(pc: pc + 1, other: taken, otherPC: target)
    }

    /// Sets register `r` to `bounds`, and every register linked to it by id (`sync_linked_regs`):
    /// a copy gets the same bounds, a copy with a different constant added gets them moved by
    /// the difference (and zero-extended when a 32-bit add made the link).
    func setScalar(_ s: inout VerifierState, _ r: Int, _ old: Register, _ bounds: Scalar) {
        s[register: r].bounds = bounds
        guard old.id != 0 else { return }
        let known = old
        s.updateAll { reg in
            guard reg.type == .scalar, reg.id != 0, reg.baseID == known.baseID else { return }
            let linkedWithDelta = (reg.id | known.id) & Register.addConst != 0
            guard linkedWithDelta, reg.linkDelta != known.linkDelta else {
                reg.bounds = bounds
                return
            }
            var moved = bounds.applying(.add, .constant(UInt64(bitPattern: reg.linkDelta &- known.linkDelta)), bits: 64)
            if (reg.id | known.id) & Register.addConst32 != 0 { moved.coerce(bytes: 4) }
            reg.bounds = moved
        }
    }

    /// After a null check: NULL becomes the scalar 0 (and drops its reference), non-NULL keeps its
    /// type (`mark_ptr_or_null_regs`).
    func markNull(_ s: inout VerifierState, _ ptr: Register, isNull: Bool) {
        let id = ptr.id
        guard id != 0 else { return }
        if isNull, ptr.referenceID != 0 {
            let ref = ptr.referenceID
            s.references.removeAll { $0.id == ref }
        }
        s.updateAll { reg in
            guard reg.maybeNull, reg.id == id else { return }
            if isNull {
                reg = .constant(0)
            } else {
                reg.maybeNull = false
                if reg.type != .socket && reg.type != .socketCommon && reg.type != .tcpSocket && reg.referenceID == 0 {
                    reg.id = 0
                }
            }
        }
    }

    /// `data + n` compared with `data_end` gives every pointer with the same id a range
    /// (`try_match_pkt_pointers`, `find_good_pkt_pointers`).
    func matchPacketPointers(
        _ taken: inout VerifierState, _ fall: inout VerifierState, _ dst: Register, _ src: Register, _ op: JumpOp,
        _ pc: Int
    ) {
        // `pkt` is the pointer checked, `end` its limit: packet vs packet_end, or meta vs packet.
        func isPair(_ p: Register, _ e: Register) -> Bool {
            (p.type == .packet && e.type == .packetEnd) || (p.type == .packetMeta && e.type == .packet)
        }
        let dstIsPacket: Bool
        if isPair(dst, src) {
            dstIsPacket = true
        } else if isPair(src, dst) {
            dstIsPacket = false
        } else {
            return
        }
        let pkt = dstIsPacket ? dst : src
        // Normalise to "pkt OP end".
        let o = dstIsPacket ? op : op.flipped
        switch o {
        case .gt: // pkt > end: the fall-through has pkt <= end
            goodPointers(&fall, pkt, rightOpen: false, pc)
        case .lt: // pkt < end: taken has pkt < end
            goodPointers(&taken, pkt, rightOpen: true, pc)
        case .ge: // pkt >= end: fall-through has pkt < end
            goodPointers(&fall, pkt, rightOpen: true, pc)
        case .le: // pkt <= end: taken
            goodPointers(&taken, pkt, rightOpen: false, pc)
        default:
            break
        }
    }

    func goodPointers(_ s: inout VerifierState, _ pkt: Register, rightOpen: Bool, _ pc: Int) {
        if pkt.offset < 0 || (pkt.offset == 0 && rightOpen) { return }
        if pkt.bounds.umax > 0xffff || Int64(pkt.bounds.umax) + pkt.offset > 0xffff { return }
        let newRange = pkt.offset + (rightOpen ? 1 : 0)
        let id = pkt.id
        let type = pkt.type
        s.lastPacketCheck = pc
        s.updateAll { reg in
            if reg.type == type && reg.id == id && !reg.maybeNull { reg.range = max(reg.range, newRange) }
        }
    }
}
