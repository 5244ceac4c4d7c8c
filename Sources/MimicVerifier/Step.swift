import MimicCore

/// BPF_MAX_VAR_OFF: the largest offset a pointer may carry.
let maxVariableOffset: Int64 = 1 << 29

extension Analysis {
    /// Abstractly executes the instruction at `pc` (`do_check`'s loop body).
    func step(_ s: inout VerifierState, _ pc: Int) throws -> Outcome {
        let i = insns[pc]
        switch i.opcode & 7 {
        case 0x04, 0x07:
            try checkALU(&s, pc, i)
            return .next(pc + 1)
        case 0x01:
            try checkLoad(&s, pc, i)
            return .next(pc + 1)
        case 0x02, 0x03:
            if i.opcode & 0xe0 == 0xc0 {
                try checkAtomic(&s, pc, i)
            } else {
                try checkStore(&s, pc, i)
            }
            return .next(pc + 1)
        case 0x00:
            if isLoadImm64(i) {
                try checkLoadImm64(&s, pc, i)
                return .next(pc + 2)
            }
            try checkLegacyPacketLoad(&s, pc, i)
            return .next(pc + 1)
        default:
            if isExit(i) { return try checkExit(&s, pc) }
            if isCall(i) { return try checkCall(&s, pc, i) }
            if isUnconditionalJump(i) { return .next(jumpTarget(pc)) }
            if isMayGoto(i) {
                var other = s
                other.mayGotoDepth += 1
                s.mayGotoDepth += 1
                // The kernel explores the fall-through (loop) first and the goto (exit) later.
                return .branch(pc: pc + 1, other: other, otherPC: jumpTarget(pc))
            }
            return try checkConditionalJump(&s, pc, i)
        }
    }

    // MARK: Registers

    func readRegister(_ s: VerifierState, _ r: UInt8, _ pc: Int) throws -> Register {
        let reg = s[register: Int(r)]
        if !reg.isInitialized {
            throw Failure(
                kind: .uninitializedRegister, pc: pc, message: "R\(r) !read_ok", registers: [Int(r)],
                advice: r == 0
                    ? "R0 is read before anything set it: a function or the program returns without a return value on this path"
                    : "R\(r) is read before anything was written to it on this path (a helper call clobbers R1-R5); initialise the variable on every path"
            )
        }
        return reg
    }

    func checkWritable(_ r: UInt8, _ pc: Int) throws {
        if r == 10 {
            throw Failure(kind: .invalidInstruction, pc: pc, message: "frame pointer is read only")
        }
    }

    // MARK: ALU (check_alu_op)

    func checkALU(_ s: inout VerifierState, _ pc: Int, _ i: RawInstruction) throws {
        let is64 = i.opcode & 7 == 0x07
        let bits = is64 ? 64 : 32
        let op = ALUOp(rawValue: i.opcode & 0xf0) ?? .mov
        let srcIsReg = i.opcode & 0x08 != 0
        let d = Int(i.destination)
        switch op {
        case .neg, .end:
            var dst = try readRegister(s, i.destination, pc)
            try checkWritable(i.destination, pc)
            if dst.isPointer {
                throw Failure(
                    kind: .pointerArithmetic, pc: pc, message: "R\(d) pointer arithmetic prohibited", registers: [d])
            }
            if op == .neg {
                dst.bounds = Scalar.constant(0).applying(.sub, dst.bounds, bits: bits)
                if !is64 { dst.bounds = dst.bounds.applying(.and, .constant(0xffff_ffff), bits: 64) }
            } else {
                dst.bounds = byteSwap(dst.bounds, i)
            }
            dst.unlink()
            s[register: d] = dst
            return
        case .mov:
            try checkWritable(i.destination, pc)
            if srcIsReg {
                var src = try readRegister(s, i.source, pc)
                if src.isPointer {
                    // A sign-extending or 32-bit copy of a pointer is a number.
                    s[register: d] =
                        is64 && i.offset == 0 ? src : is64 ? .unknownScalar : .scalar(.unsigned(max: 0xffff_ffff))
                    return
                }
                // The copy is linked to its source (one id) when it has the same value: always
                // for a plain 64-bit move, when no sign bit is extended, when a 32-bit move
                // leaves the value whole (`check_alu_op`'s BPF_MOV).
                let width = i.offset != 0 ? Int(i.offset) : is64 ? 64 : 32
                let sameValue =
                    width == 64 || src.bounds.umax < (UInt64(1) << UInt64(i.offset != 0 ? width - 1 : width))
                if sameValue {
                    assignIDBeforeMove(&src)
                    s[register: Int(i.source)] = src
                }
                var copy = src
                if !sameValue { copy.unlink() }
                if i.offset != 0 {
                    if is64 {
                        copy.bounds.signExtend(bytes: Int(i.offset) / 8)
                    } else {
                        copy.bounds.signExtend32(bytes: Int(i.offset) / 8)
                    }
                } else if !is64 {
                    copy.bounds.coerce(bytes: 4)
                }
                s[register: d] = copy
            } else {
                let value = is64 ? UInt64(bitPattern: Int64(i.imm)) : UInt64(UInt32(bitPattern: i.imm))
                s[register: d] = .constant(value)
            }
            return
        default:
            break
        }
        let dst = try readRegister(s, i.destination, pc)
        let src: Register
        if srcIsReg {
            src = try readRegister(s, i.source, pc)
        } else {
            if (op == .div || op == .mod) && i.imm == 0 {
                throw Failure(kind: .invalidInstruction, pc: pc, message: "div by zero")
            }
            if (op == .lsh || op == .rsh || op == .arsh) && (i.imm < 0 || Int(i.imm) >= bits) {
                throw Failure(kind: .invalidInstruction, pc: pc, message: "invalid shift \(i.imm)")
            }
            src = .constant(is64 ? UInt64(bitPattern: Int64(i.imm)) : UInt64(UInt32(bitPattern: i.imm)))
        }
        try checkWritable(i.destination, pc)
        if dst.isPointer || src.isPointer {
            // The scalar moves the pointer: its value matters.
            if srcIsReg, dst.isPointer != src.isPointer {
                markPrecise(s, registers: [dst.isPointer ? Int(i.source) : d])
            }
            s[register: d] = try pointerArithmetic(s, pc, i, dst: dst, src: src, op: op, is64: is64)
            return
        }
        var result = dst
        result.bounds = dst.bounds.applying(op, src.bounds, bits: bits)
        linkAfterArithmetic(&result, dst, op: op, src: src, is64: is64)
        s[register: d] = result
    }

    /// Before `rX = rY`: a source linked with a constant added loses that link (one constant per
    /// link), and an unknown source gets an id for the copy to share
    /// (`assign_scalar_id_before_mov`).
    func assignIDBeforeMove(_ src: inout Register) {
        guard src.type == .scalar else { return }
        if src.id & Register.addConst != 0 { src.unlink() }
        if src.id == 0, !src.bounds.isConstant { src.id = newID() }
    }

    /// After scalar arithmetic: `rX += k` or `rX -= k` on a copy keeps it linked, with the
    /// constant as its delta (once: a second constant unlinks it); anything else unlinks
    /// (`adjust_reg_min_max_vals`, privileged loaders only).
    func linkAfterArithmetic(_ result: inout Register, _ dst: Register, op: ALUOp, src: Register, is64: Bool) {
        let constant =
            is64
            ? src.bounds.constantValue
            : src.bounds.varOff.subreg.isConstant ? src.bounds.varOff.value & 0xffff_ffff : nil
        guard options.privileged, op == .add || op == .sub, dst.id != 0, let value = constant,
            dst.id & Register.addConst == 0
        else {
            result.unlink()
            return
        }
        var delta: Int64
        if is64 {
            let signed = Int64(bitPattern: value)
            guard signed >= Int64(Int32.min), signed <= Int64(Int32.max) else {
                result.unlink()
                return
            }
            delta = signed
        } else {
            guard dst.bounds.umax <= UInt64(UInt32.max) else {
                result.unlink()
                return
            }
            delta = Int64(Int32(truncatingIfNeeded: value))
        }
        if op == .sub {
            guard delta != Int64(Int32.min) else {
                result.unlink()
                return
            }
            delta = -delta
        }
        result.id = dst.id | (is64 ? Register.addConst64 : Register.addConst32)
        result.linkDelta = delta
    }

    func byteSwap(_ b: Scalar, _ i: RawInstruction) -> Scalar {
        let size = Int(i.imm) / 8
        let toBig = i.opcode & 0x08 != 0 || i.opcode & 7 == 0x07
        if !toBig {
            var r = b
            r.coerce(bytes: size)
            return r
        }
        if let c = b.constantValue {
            var v: UInt64
            switch size {
            case 2: v = UInt64(UInt16(truncatingIfNeeded: c).byteSwapped)
            case 4: v = UInt64(UInt32(truncatingIfNeeded: c).byteSwapped)
            default: v = c.byteSwapped
            }
            return .constant(v)
        }
        return size >= 8 ? .unknown : .unsigned(max: (UInt64(1) << UInt64(size * 8)) - 1)
    }

    func checkSaneOffset(_ reg: Register, _ ptrType: String, _ pc: Int, _ r: Int) throws {
        if let c = reg.bounds.constantValue, reg.type == .scalar {
            let v = Int64(bitPattern: c)
            if v >= maxVariableOffset || v <= -maxVariableOffset {
                throw Failure(
                    kind: .pointerArithmetic, pc: pc,
                    message: "math between \(ptrType) pointer and \(v) is not allowed",
                    registers: [r])
            }
            return
        }
        if reg.offset >= maxVariableOffset || reg.offset <= -maxVariableOffset {
            throw Failure(
                kind: .pointerArithmetic, pc: pc, message: "\(ptrType) pointer offset \(reg.offset) is not allowed",
                registers: [r])
        }
        if reg.bounds.smin == .min {
            throw Failure(
                kind: .pointerArithmetic, pc: pc,
                message: "math between \(ptrType) pointer and register with unbounded min value is not allowed",
                registers: [r],
                advice:
                    "R\(r) is added to a \(ptrType) pointer but could be any value; bound it first, e.g. `if (idx >= MAX) return ...;` or `idx &= MASK`, so the verifier knows the range"
            )
        }
        if reg.bounds.smin >= maxVariableOffset || reg.bounds.smin <= -maxVariableOffset {
            throw Failure(
                kind: .pointerArithmetic, pc: pc,
                message: "value \(reg.bounds.smin) makes \(ptrType) pointer be out of bounds", registers: [r])
        }
    }

    /// Pointer plus or minus a scalar, or pointer minus pointer (`adjust_ptr_min_max_vals`).
    func pointerArithmetic(
        _ s: VerifierState, _ pc: Int, _ i: RawInstruction, dst: Register, src: Register, op: ALUOp, is64: Bool
    ) throws -> Register {
        let d = Int(i.destination)
        let sr = Int(i.source)
        let opName = KernelText.aluOperator(op)
        if dst.isPointer && src.isPointer {
            if op == .sub, options.privileged { return .unknownScalar }
            throw Failure(
                kind: .pointerArithmetic, pc: pc, message: "R\(d) pointer \(opName) pointer prohibited",
                registers: [d, sr])
        }
        if !is64 {
            throw Failure(
                kind: .pointerArithmetic, pc: pc, message: "R\(d) 32-bit pointer arithmetic prohibited", registers: [d])
        }
        let ptr = dst.isPointer ? dst : src
        let off = dst.isPointer ? src : dst
        let ptrRegister = dst.isPointer ? d : sr
        let offRegister = dst.isPointer ? sr : d
        if !dst.isPointer, op == .sub {
            throw Failure(
                kind: .pointerArithmetic, pc: pc, message: "R\(d) tried to subtract pointer from scalar",
                registers: [d, sr])
        }
        if ptr.maybeNull {
            throw Failure(
                kind: .nullPointer, pc: pc,
                message: "R\(ptrRegister) pointer arithmetic on \(ptr.typeName) prohibited, null-check it first",
                registers: [ptrRegister],
                advice:
                    "R\(ptrRegister) may be NULL here (\(ptr.typeName)); compare it with NULL and return before using or moving it"
            )
        }
        switch ptr.type {
        case .packetEnd, .socket, .socketCommon, .tcpSocket, .function:
            throw Failure(
                kind: .pointerArithmetic, pc: pc,
                message: "R\(d) pointer arithmetic on \(ptr.typeName) prohibited", registers: [ptrRegister])
        case .mapPointer:
            if !(off.bounds.constantValue == 0 && op == .add) {
                throw Failure(
                    kind: .pointerArithmetic, pc: pc,
                    message: "R\(d) pointer arithmetic on \(ptr.typeName) prohibited", registers: [ptrRegister])
            }
        case .flowKeys:
            // Only a known offset moves a flow-keys pointer.
            if !off.bounds.isConstant {
                throw Failure(
                    kind: .pointerArithmetic, pc: pc,
                    message: "R\(d) pointer arithmetic on \(ptr.typeName) prohibited", registers: [ptrRegister])
            }
        default: break
        }
        if op != .add && op != .sub {
            let message =
                op == .and || op == .or || op == .xor
                ? "R\(d) bitwise operator \(opName) on pointer prohibited"
                : "R\(d) pointer arithmetic with \(opName) operator prohibited"
            throw Failure(kind: .pointerArithmetic, pc: pc, message: message, registers: [d])
        }
        if off.bounds.isInconsistent { return .unknownScalar }
        try checkSaneOffset(off, ptr.type.kernelName, pc, offRegister)
        try checkSaneOffset(ptr, ptr.type.kernelName, pc, ptrRegister)
        var result = ptr
        if let c = off.bounds.constantValue {
            let v = Int64(bitPattern: c)
            result.offset = op == .add ? ptr.offset + v : ptr.offset - v
        } else {
            result.bounds = ptr.bounds.applying(op, off.bounds, bits: 64)
            if ptr.type.isPacket {
                result.id = newID()
                result.range = 0
            }
        }
        if result.offset >= maxVariableOffset || result.offset <= -maxVariableOffset {
            throw Failure(
                kind: .pointerArithmetic, pc: pc,
                message: "\(ptr.type.kernelName) pointer offset \(result.offset) is not allowed", registers: [d])
        }
        return result
    }

    // MARK: Loads and stores

    func accessSize(_ opcode: UInt8) -> Int {
        switch opcode & 0x18 {
        case 0x00: 4
        case 0x08: 2
        case 0x10: 1
        default: 8
        }
    }

    func checkLoad(_ s: inout VerifierState, _ pc: Int, _ i: RawInstruction) throws {
        let ptr = try readRegister(s, i.source, pc)
        try checkWritable(i.destination, pc)
        let size = accessSize(i.opcode)
        let signed = i.opcode & 0xe0 == 0x80
        var value = try access(&s, pc, register: Int(i.source), ptr, offset: Int64(i.offset), size: size, write: false)
        try checkSamePointerKind(pc, ptr, load: true)
        if value.type == .scalar {
            if signed {
                value.bounds.signExtend(bytes: size)
            } else if size < 8 {
                value.bounds.coerce(bytes: size)
            }
        }
        s[register: Int(i.destination)] = value
    }

    func checkStore(_ s: inout VerifierState, _ pc: Int, _ i: RawInstruction) throws {
        let ptr = try readRegister(s, i.destination, pc)
        let size = accessSize(i.opcode)
        var value: Register
        if i.opcode & 7 == 0x03 {
            value = try readRegister(s, i.source, pc)
        } else {
            value = .constant(UInt64(bitPattern: Int64(i.imm)))
            if ptr.type == .context {
                throw Failure(
                    kind: .contextAccess, pc: pc, message: "BPF_ST stores into R\(i.destination) ctx is not allowed",
                    registers: [Int(i.destination)])
            }
        }
        if value.type == .scalar, size < 8 { value.bounds.coerce(bytes: size) }
        _ = try access(
            &s, pc, register: Int(i.destination), ptr, offset: Int64(i.offset), size: size, write: true,
            value: value, valueIsRegister: i.opcode & 7 == 0x03, storesImmediate: i.opcode & 7 == 0x02,
            valueRegister: i.opcode & 7 == 0x03 ? Int(i.source) : -1)
        try checkSamePointerKind(pc, ptr, load: false)
    }

    func checkAtomic(_ s: inout VerifierState, _ pc: Int, _ i: RawInstruction) throws {
        let size = i.opcode & 0x18 == 0x18 ? 8 : 4
        let ptr = try readRegister(s, i.destination, pc)
        _ = try readRegister(s, i.source, pc)
        let op = i.imm
        if op == 0xf1 { _ = try readRegister(s, 0, pc) }
        switch ptr.type {
        case .context, .packet, .packetMeta, .socket, .socketCommon, .tcpSocket, .flowKeys:
            throw Failure(
                kind: .invalidPointer, pc: pc,
                message: "BPF_ATOMIC stores into R\(i.destination) \(ptr.typeName) is not allowed",
                registers: [Int(i.destination)])
        default: break
        }
        _ = try access(
            &s, pc, register: Int(i.destination), ptr, offset: Int64(i.offset), size: size, write: false,
            strictAlignment: true)
        // The memory now holds an unknown value (whatever the operation combined).
        _ = try access(
            &s, pc, register: Int(i.destination), ptr, offset: Int64(i.offset), size: size, write: true,
            value: .unknownScalar, valueIsRegister: false, strictAlignment: true)
        let result = Register.scalar(size == 8 ? .unknown : .unsigned(max: 0xffff_ffff))
        if op == 0xf1 {
            s[register: 0] = result
        } else if op & 1 != 0 {
            s[register: Int(i.source)] = result
        }
    }

    func checkLoadImm64(_ s: inout VerifierState, _ pc: Int, _ i: RawInstruction) throws {
        try checkWritable(i.destination, pc)
        let d = Int(i.destination)
        let next = insns[pc + 1]
        switch i.source {
        case 0:
            if let name = program.externs[pc] {
                var r = Register.pointer(.btfObject)
                r.btfName = name
                s[register: d] = r
                return
            }
            let v = UInt64(UInt32(bitPattern: i.imm)) | (UInt64(UInt32(bitPattern: next.imm)) << 32)
            s[register: d] = .constant(v)
        case 1, 5, 2, 6:
            let index = Int(i.imm)
            guard index >= 0, index < program.maps.count else {
                throw Failure(
                    kind: .invalidInstruction, pc: pc, message: "fd \(i.imm) is not pointing to valid bpf_map")
            }
            if i.source == 1 || i.source == 5 {
                var r = Register.pointer(.mapPointer)
                r.map = index
                s[register: d] = r
            } else {
                let off = Int64(UInt32(bitPattern: next.imm))
                let map = program.maps[index]
                guard off < Int64(map.valueSize) else {
                    throw Failure(
                        kind: .invalidInstruction, pc: pc,
                        message: "invalid access to map value pointer, value_size=\(map.valueSize) off=\(off)")
                }
                var r = Register.pointer(.mapValue)
                r.map = index
                r.offset = off
                s[register: d] = r
            }
        case 3:
            var r = Register.pointer(.btfObject)
            r.btfName = program.externs[pc] ?? "ksym"
            s[register: d] = r
        case 4:
            var r = Register.pointer(.function)
            r.subprogram = subprogramOf[pc + Int(i.imm) + 1]
            s[register: d] = r
        default:
            throw Failure(kind: .invalidInstruction, pc: pc, message: "unrecognized bpf_ld_imm64 insn")
        }
    }

    /// `BPF_LD | BPF_ABS / BPF_IND` (`check_ld_abs`).
    func checkLegacyPacketLoad(_ s: inout VerifierState, _ pc: Int, _ i: RawInstruction) throws {
        guard type == .socketFilter || type == .schedCls || type == .schedAct else {
            throw Failure(
                kind: .invalidInstruction, pc: pc,
                message: "BPF_LD_[ABS|IND] instructions not allowed for this program type")
        }
        if !s.references.isEmpty {
            throw Failure(
                kind: .unreleasedReference, pc: pc, message: "BPF_LD_[ABS|IND] would lead to reference leak")
        }
        let r6 = try readRegister(s, 6, pc)
        if i.opcode & 0xe0 == 0x40 { _ = try readRegister(s, i.source, pc) }
        guard r6.type == .context else {
            throw Failure(
                kind: .invalidInstruction, pc: pc, message: "at the time of BPF_LD_ABS|IND R6 != pointer to skb",
                registers: [6])
        }
        for r in 1...5 { s[register: r] = Register() }
        let size = accessSize(i.opcode)
        s[register: 0] = .scalar(.unsigned(max: size == 8 ? .max : (UInt64(1) << UInt64(size * 8)) - 1))
    }
}
