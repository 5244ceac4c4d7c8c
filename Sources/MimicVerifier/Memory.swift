import MimicCore

extension Analysis {
    /// Checks a load or store through `ptr` (register `r`) at `offset` (`check_mem_access`); a
    /// load returns the value read.
    func access(
        _ s: inout VerifierState, _ pc: Int, register r: Int, _ ptr: Register, offset: Int64, size: Int, write: Bool,
        value: Register = Register(), valueIsRegister: Bool = false, storesImmediate: Bool = false,
        valueRegister: Int = -1, strictAlignment: Bool = false
    ) throws -> Register {
        try checkAlignment(pc, r, ptr, offset: offset, size: size, strict: strictAlignment || ptr.type == .stack)
        if ptr.maybeNull || ptr.type == .scalar || ptr.type == .mapPointer || ptr.type == .packetEnd
            || ptr.type == .function
        {
            let nullable = ptr.maybeNull
            throw Failure(
                kind: nullable ? .nullPointer : .invalidPointer, pc: pc,
                message: "R\(r) invalid mem access '\(ptr.typeName)'", registers: [r],
                advice: nullable
                    ? "R\(r) may be NULL here (\(ptr.typeName)): check the pointer a helper returned (`if (!p) return ...;`) before reading or writing through it"
                    : ptr.type == .scalar
                        ? "R\(r) is a number, not a pointer the verifier knows (\(KernelText.register(ptr, program.maps))); a pointer loses its type when it is stored as an integer, or after a helper call released it"
                        : "R\(r) is a \(ptr.typeName) and cannot be dereferenced")
        }
        let off = offset + ptr.offset
        switch ptr.type {
        case .context:
            return try contextAccess(s, pc, r, ptr, off: off, size: size, write: write)
        case .stack:
            return try stackAccess(
                &s, pc, r, ptr, off: off, size: size, write: write, value: value,
                valueIsRegister: valueIsRegister, storesImmediate: storesImmediate, valueRegister: valueRegister)
        case .packet, .packetMeta:
            if write && !packetWritable {
                throw Failure(kind: .packetBounds, pc: pc, message: "cannot write into packet", registers: [r])
            }
            try packetAccess(s, pc, r, ptr, off: off, size: size)
            return .scalar(.unknown)
        case .mapValue:
            let map = program.maps[ptr.map]
            if write && map.isReadOnly {
                throw Failure(
                    kind: .readOnly, pc: pc,
                    message: "write into map forbidden, value_size=\(map.valueSize) off=\(off) size=\(size)",
                    registers: [r],
                    advice:
                        "\(map.name) is read-only to the program (const data); write to a writable map or global instead"
                )
            }
            try boundedAccess(pc, r, ptr, off: off, size: size, limit: Int64(map.valueSize), what: .map(map))
            if !write, map.isReadOnly, ptr.bounds.isConstant, [1, 2, 4, 8].contains(size) {
                let start = Int(off + Int64(bitPattern: ptr.bounds.varOff.value))
                if start >= 0, start + size <= map.contents.count {
                    var v: UInt64 = 0
                    for k in 0..<size { v |= UInt64(map.contents[start + k]) << UInt64(8 * k) }
                    return .constant(v)
                }
            }
            return .scalar(.unknown)
        case .memory:
            if write && ptr.readOnly {
                throw Failure(
                    kind: .readOnly, pc: pc, message: "R\(r) cannot write into \(ptr.typeName)", registers: [r])
            }
            // Memory behind a kernel struct's non-struct pointer: reads are not bounded (the
            // kernel's probe loads catch faults).
            if ptr.btfFlags.contains(.untrusted) { return .scalar(.unknown) }
            try boundedAccess(pc, r, ptr, off: off, size: size, limit: ptr.range, what: .memory)
            return .scalar(.unknown)
        case .buffer:
            return try bufferAccess(pc, r, ptr, off: off, size: size, write: write)
        case .socket, .socketCommon, .tcpSocket:
            let limit: Int64 = ptr.type == .tcpSocket ? 112 : 80
            if write || off < 0 || off + Int64(size) > limit || off % Int64(size) != 0 || !ptr.bounds.isConstant {
                throw Failure(
                    kind: .invalidPointer, pc: pc,
                    message: "R\(r) invalid \(ptr.type.kernelName) access off=\(off) size=\(size)", registers: [r])
            }
            return .scalar(.unknown)
        case .flowKeys:
            // `check_flow_keys_access`: inside `struct bpf_flow_keys`, read or written.
            if off < 0 || off + Int64(size) > ContextRules.flowKeysSize {
                throw Failure(
                    kind: .invalidPointer, pc: pc, message: "invalid access to flow keys off=\(off) size=\(size)",
                    registers: [r], advice: "struct bpf_flow_keys has \(ContextRules.flowKeysSize) bytes")
            }
            return .scalar(.unknown)
        case .btfObject:
            return try kernelObjectAccess(s, pc, r, ptr, off: off, size: size, write: write)
        case .mapKey:
            let keySize = ptr.map >= 0 && ptr.map < program.maps.count ? program.maps[ptr.map].keySize : 0
            try boundedAccess(pc, r, ptr, off: off, size: size, limit: Int64(keySize), what: .memory)
            return .scalar(.unknown)
        default:
            throw Failure(
                kind: .invalidPointer, pc: pc, message: "R\(r) invalid mem access '\(ptr.typeName)'", registers: [r])
        }
    }

    /// An access of more than a byte must be aligned to its size, counting the pointer's fixed
    /// and variable offset (`check_ptr_alignment`, `check_generic_ptr_alignment`). The kernel
    /// holds stack accesses to it always (its spill tracking relies on aligned slots) and
    /// atomic operations (`strict`); other accesses only on hosts without efficient unaligned
    /// access, which x86-64 and arm64 are not. Packet pointers (aligned against `NET_IP_ALIGN`)
    /// are never strict here: atomics on packets are refused anyway.
    func checkAlignment(_ pc: Int, _ r: Int, _ ptr: Register, offset: Int64, size: Int, strict: Bool) throws {
        guard strict, size > 1, !ptr.type.isPacket else { return }
        let at = ptr.bounds.varOff + Tnum.constant(UInt64(bitPattern: ptr.offset &+ offset))
        guard (at.value | at.mask) & UInt64(size - 1) != 0 else { return }
        let what: String
        switch ptr.type {
        case .flowKeys: what = "flow keys "
        case .mapKey: what = "key "
        case .mapValue: what = "value "
        case .context: what = "context "
        case .stack: what = "stack "
        case .socket: what = "sock "
        case .socketCommon: what = "sock_common "
        case .tcpSocket: what = "tcp_sock "
        default: what = ""
        }
        throw Failure(
            kind: ptr.type == .stack ? .stackAccess : .invalidPointer, pc: pc,
            message: "misaligned \(what)access off \(ptr.bounds.varOff)+\(ptr.offset)+\(offset) size \(size)",
            registers: [r],
            advice:
                "a \(size)-byte access must start at a multiple of \(size) bytes\(ptr.type == .stack ? " on the stack (the verifier tracks stack slots 8 bytes at a time)" : " for an atomic operation"); align the offset, or read the bytes one at a time"
        )
    }

    /// One instruction loads or stores through one kind of pointer on every path: the kernel
    /// rewrites context, socket and kernel-struct accesses for their pointer type, so such a
    /// pointer must not share the instruction with another kind (`save_aux_ptr_type`). Loads
    /// through kernel structs of different trust are allowed.
    func checkSamePointerKind(_ pc: Int, _ ptr: Register, load: Bool) throws {
        guard let first = accessPointers[pc] else {
            accessPointers[pc] = ptr
            return
        }
        func rewritten(_ type: RegisterType) -> Bool {
            [.context, .socket, .socketCommon, .tcpSocket, .btfObject].contains(type)
        }
        guard rewritten(first.type) || rewritten(ptr.type) else { return }
        if first.type == ptr.type, first.btfFlags == ptr.btfFlags || load { return }
        throw Failure(
            kind: .invalidPointer, pc: pc, message: "same insn cannot be used with different pointers",
            advice:
                "this instruction reads or writes through a \(first.typeName) on one path and a \(ptr.typeName) on another; the kernel rewrites accesses to the context, sockets and kernel structs for their pointer type, so give each kind of pointer its own access (e.g. copy the value into a local first)"
        )
    }

    var packetWritable: Bool {
        [.xdp, .schedCls, .schedAct, .lwtXmit, .skSkb, .skMsg, .lwtSeg6Local].contains(type)
    }

    // MARK: Context

    func contextAccess(
        _ s: VerifierState, _ pc: Int, _ r: Int, _ ptr: Register, off: Int64, size: Int, write: Bool
    ) throws -> Register {
        if ptr.offset != 0 {
            throw Failure(
                kind: .contextAccess, pc: pc,
                message: "dereference of modified ctx ptr R\(r) off=\(ptr.offset) disallowed", registers: [r],
                advice:
                    "the context pointer was moved before this access; read context fields straight from the pointer the program got (ctx->field)"
            )
        }
        if !ptr.bounds.isConstant || ptr.bounds.varOff.value != 0 {
            throw Failure(
                kind: .contextAccess, pc: pc,
                message: "variable ctx access var_off=\(ptr.bounds.varOff) disallowed", registers: [r])
        }
        guard
            let field = ContextRules.access(
                type, offset: Int(off), size: size, write: write, attachType: program.attachType)
        else {
            throw Failure(
                kind: .contextAccess, pc: pc, message: "invalid bpf_context access off=\(off) size=\(size)",
                registers: [r],
                advice:
                    "a \(type) program may not \(write ? "write" : "read") \(size) byte\(size == 1 ? "" : "s") at offset \(off) of its context; check the field and its size for this program type (packet pointers are 4-byte reads; many fields are read-only)"
            )
        }
        if write { return Register() }
        switch field {
        case .scalar:
            if let context = btfContext, let types = kernelTypes {
                return try typedContextRead(types, context, pc, r, off: off, size: size)
            }
            return .scalar(.unknown)
        case .packet:
            return Register.pointer(.packet)
        case .packetMeta:
            return Register.pointer(.packetMeta)
        case .packetEnd:
            return Register.pointer(.packetEnd)
        case .socket:
            return Register.pointer(.socket)
        case .flowKeys:
            return Register.pointer(.flowKeys)
        case .btfObject(let name):
            return trustedPointer(to: name)
        case .socketCommonOrNull:
            var p = Register.pointer(.socketCommon)
            p.maybeNull = true
            p.id = newID()
            return p
        }
    }

    // MARK: Packet

    func packetAccess(_ s: VerifierState, _ pc: Int, _ r: Int, _ ptr: Register, off: Int64, size: Int) throws {
        if ptr.bounds.smin < 0 {
            throw Failure(
                kind: .packetBounds, pc: pc,
                message:
                    "R\(r) min value is negative, either use unsigned index or do a if (index >=0) check.",
                registers: [r])
        }
        let accessOff = off
        if accessOff >= 0, accessOff + Int64(size) <= ptr.range { return }
        throw Failure(
            kind: .packetBounds, pc: pc,
            message:
                "invalid access to packet, off=\(accessOff) size=\(size), R\(r)(id=\(ptr.id),off=\(ptr.offset),r=\(ptr.range))\nR\(r) offset is outside of the packet",
            registers: [r], advice: packetAdvice(s, pc, r, ptr, off: accessOff, size: size))
    }

    func packetAdvice(_ s: VerifierState, _ pc: Int, _ r: Int, _ ptr: Register, off: Int64, size: Int) -> String {
        let end = off + Int64(size)
        let base = ptr.type == .packetMeta ? "data_meta" : "data"
        let variable = !ptr.bounds.isConstant ? " plus a variable offset" : ""
        if ptr.range == 0 {
            var text =
                "R\(r) points to \(base)\(variable) + \(ptr.offset) and nothing was compared with data_end on this path; read bytes \(off)..\(end - 1) only after a check such as `if ((void *)p + \(end) > data_end) return ...;`"
            if !ptr.bounds.isConstant {
                text += " (after adding a variable offset the check must be made again on the new pointer)"
            }
            return text
        }
        var where_ = ""
        if s.lastPacketCheck >= 0, let line = program.lineInfo.line(at: s.lastPacketCheck) {
            where_ = " at line \(line.line)"
        }
        return
            "`\(base) + \(ptr.range)` was compared with data_end\(where_), but this reads bytes \(off)..\(end - 1) of R\(r)\(variable); add a bounds check that covers \(end) bytes before reading"
    }

    // MARK: Map values and helper memory

    enum Region {
        case map(VerifierMap)
        case memory
    }

    /// Bounds of a map value or helper memory with a variable offset (`check_map_access`).
    func boundedAccess(_ pc: Int, _ r: Int, _ ptr: Register, off: Int64, size: Int, limit: Int64, what: Region) throws {
        let kind: VerificationErrorKind
        let outside: (Int64) -> String
        switch what {
        case .map(let map):
            kind = .mapValueBounds
            outside = { "invalid access to map value, value_size=\(map.valueSize) off=\($0) size=\(size)" }
        case .memory:
            kind = .memoryBounds
            outside = { "invalid access to memory, mem_size=\(limit) off=\($0) size=\(size)" }
        }
        let smin = ptr.bounds.smin
        if smin < 0, smin == .min || smin + off < 0 || Int64(Int32(truncatingIfNeeded: off + smin)) != off + smin {
            throw Failure(
                kind: kind, pc: pc,
                message: "R\(r) min value is negative, either use unsigned index or do a if (index >=0) check.",
                registers: [r],
                advice:
                    "the index added to R\(r) may be negative; use an unsigned type for it or check `index >= 0` before the access"
            )
        }
        let low = smin + off
        if !(low >= 0 && low + Int64(size) <= limit) {
            let message = outside(low) + "\nR\(r) min value is outside of the allowed memory range"
            throw Failure(
                kind: kind, pc: pc, message: message, registers: [r],
                advice: boundsAdvice(what, off: low, size: size, limit: limit))
        }
        if ptr.bounds.umax >= UInt64(maxVariableOffset) {
            throw Failure(
                kind: kind, pc: pc,
                message: "R\(r) unbounded memory access, make sure to bounds check any such access", registers: [r],
                advice:
                    "the offset added to R\(r) has no upper bound; check it against the size (`if (i >= N) return ...;`) before using it as an index"
            )
        }
        let high = Int64(ptr.bounds.umax) + off
        if !(high >= 0 && high + Int64(size) <= limit) {
            let message = outside(high) + "\nR\(r) max value is outside of the allowed memory range"
            throw Failure(
                kind: kind, pc: pc, message: message, registers: [r],
                advice: boundsAdvice(what, off: high, size: size, limit: limit))
        }
    }

    func boundsAdvice(_ what: Region, off: Int64, size: Int, limit: Int64) -> String {
        switch what {
        case .map(let map):
            return
                "the access reaches byte \(off + Int64(size) - 1) of a \(map.valueSize)-byte value of map \(map.name); keep index * element size + size within the value (check the index against the array length)"
        case .memory:
            return
                "the access reaches byte \(off + Int64(size) - 1) of \(limit) bytes the helper gave; stay within the reserved size"
        }
    }

    // MARK: Stack

    func stackAccess(
        _ s: inout VerifierState, _ pc: Int, _ r: Int, _ ptr: Register, off: Int64, size: Int, write: Bool,
        value: Register, valueIsRegister: Bool, storesImmediate: Bool = false, valueRegister: Int = -1
    ) throws -> Register {
        let frame = ptr.frame
        let minOff = off + ptr.bounds.smin
        let maxOff = off + ptr.bounds.smax
        let variable = !ptr.bounds.isConstant
        if minOff < -512 || maxOff + Int64(size) > 0 || (variable && ptr.bounds.smin == .min) {
            let what = write ? "write to" : "read from"
            let message =
                variable
                ? "invalid variable-offset \(write ? "write to" : "read from") stack R\(r) var_off=\(ptr.bounds.varOff) off=\(off) size=\(size)"
                : "invalid \(what) stack R\(r) off=\(minOff) size=\(size)"
            throw Failure(
                kind: .stackAccess, pc: pc, message: message, registers: [r],
                advice:
                    "the stack is 512 bytes below the frame pointer (r10-512 .. r10-1); this access falls outside it")
        }
        let lowest = Int(minOff)
        let depth = -lowest
        if depth > s.frames[frame].stack.depth { s.frames[frame].stack.depth = depth }
        let sub = s.frames[frame].subprogram
        if depth > stackDepth[sub] { stackDepth[sub] = depth }
        if variable {
            let start = Stack.index(Int(minOff))
            let end = Stack.index(Int(maxOff)) + size
            if write {
                for b in start..<end { s.frames[frame].stack.bytes[b] = .misc }
                for slot in (start / 8)...((end - 1) / 8) { clearSpill(&s, frame, slot) }
                return Register()
            }
            if !options.privileged {
                for b in start..<end where s.frames[frame].stack.bytes[b] == .invalid {
                    throw Failure(
                        kind: .stackAccess, pc: pc,
                        message:
                            "invalid variable-offset read from stack R\(r) var_off=\(ptr.bounds.varOff) off=\(off) size=\(size)",
                        registers: [r])
                }
            }
            return .scalar(.unknown)
        }
        let start = Stack.index(Int(minOff))
        let slot = start / 8
        if write {
            // A scalar (a register, or a `BPF_ST` immediate) stored at the start of a slot by a
            // privileged loader is spilled with its bounds (`check_stack_write_fixed_off`).
            let spillable =
                (valueIsRegister
                    && (value.isPointer || (value.type == .scalar && start % 8 == 0 && options.privileged)))
                || (storesImmediate && start % 8 == 0 && options.privileged)
            if valueIsRegister, value.isPointer, size != 8 {
                throw Failure(kind: .stackAccess, pc: pc, message: "invalid size of register spill", registers: [r])
            }
            if spillable, start % 8 == 0 {
                stepStackSlot = (frame, slot)
                clearSpill(&s, frame, slot)
                for b in start..<(start + size) { s.frames[frame].stack.bytes[b] = .spill }
                for b in (start + size)..<(slot * 8 + 8) where size < 8 {
                    if s.frames[frame].stack.bytes[b] == .spill { s.frames[frame].stack.bytes[b] = .misc }
                }
                var stored = value
                if size < 8 { stored.bounds.coerce(bytes: size) }
                s.frames[frame].stack.spilled[slot] = stored
                return Register()
            }
            // Bytes: partly overwriting a spilled register turns the rest into plain data.
            for sl in slot...((start + size - 1) / 8) { clearSpill(&s, frame, sl) }
            let zero = value.type == .scalar && value.bounds.constantValue == 0
            // Bytes known to be zero rely on the value stored (`STACK_ZERO`).
            if zero, valueRegister >= 0 { markPrecise(s, registers: [valueRegister]) }
            for b in start..<(start + size) { s.frames[frame].stack.bytes[b] = zero ? .zero : .misc }
            return Register()
        }
        // Read.
        let bytes = s.frames[frame].stack.bytes
        if bytes[start] == .spill || bytes[start + size - 1] == .spill {
            let spilled = s.frames[frame].stack.spilled[slot]
            let spillStart = slot * 8
            var spillSize = 0
            for b in spillStart..<(spillStart + 8) where bytes[b] == .spill { spillSize += 1 }
            if spilled.isPointer {
                if size != 8 || start % 8 != 0 {
                    throw Failure(kind: .stackAccess, pc: pc, message: "invalid size of register fill", registers: [r])
                }
                return spilled
            }
            stepStackSlot = (frame, slot)
            if start == spillStart, size == spillSize || (size == 8 && spillSize == 8) {
                return spilled
            }
            if start == spillStart, size < spillSize {
                var v = spilled
                v.bounds.coerce(bytes: size)
                v.unlink()
                return v
            }
            return .scalar(.unknown)
        }
        var allZero = true
        for b in start..<(start + size) {
            switch bytes[b] {
            case .zero: continue
            case .invalid:
                allZero = false
                if !options.privileged {
                    throw Failure(
                        kind: .stackAccess, pc: pc,
                        message: "invalid read from stack off \(minOff)+\(b - start) size \(size)", registers: [r],
                        advice:
                            "this stack byte was never written on this path; initialise the variable (or the whole struct, e.g. with __builtin_memset) first"
                    )
                }
            case .iterator:
                throw Failure(
                    kind: .stackAccess, pc: pc,
                    message: "invalid read from stack off \(minOff)+\(b - start) size \(size)",
                    registers: [r])
            default: allZero = false
            }
        }
        return allZero ? .constant(0) : .scalar(.unknown)
    }

    func clearSpill(_ s: inout VerifierState, _ frame: Int, _ slot: Int) {
        guard slot >= 0, slot < 64 else { return }
        for b in (slot * 8)..<(slot * 8 + 8) where s.frames[frame].stack.bytes[b] == .spill {
            s.frames[frame].stack.bytes[b] = .misc
        }
        s.frames[frame].stack.spilled[slot] = Register()
    }

    /// Memory a helper reads or writes through register `r` (`check_helper_mem_access`).
    func helperMemory(
        _ s: inout VerifierState, _ pc: Int, _ r: Int, _ ptr: Register, size: Int64, uninit: Bool, zeroAllowed: Bool,
        nullable: Bool
    ) throws {
        if nullable, ptr.isNullConstant { return }
        if ptr.maybeNull {
            throw Failure(
                kind: .nullPointer, pc: pc,
                message:
                    "R\(r) type=\(ptr.typeName) expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_",
                registers: [r], advice: "R\(r) may be NULL; check it before passing it to the helper")
        }
        if size == 0 && zeroAllowed { return }
        switch ptr.type {
        case .stack:
            let frame = ptr.frame
            let off = ptr.offset + ptr.bounds.smin
            let high = ptr.offset + ptr.bounds.smax + size
            if off < -512 || high > 0 || ptr.bounds.smin == .min {
                throw Failure(
                    kind: .stackAccess, pc: pc,
                    message: "invalid \(uninit ? "write to" : "read from") stack R\(r) off=\(off) size=\(size)",
                    registers: [r],
                    advice: "the helper would access \(size) bytes from r10\(off), past the 512-byte stack frame")
            }
            let depth = Int(-off)
            if depth > s.frames[frame].stack.depth { s.frames[frame].stack.depth = depth }
            let sub = s.frames[frame].subprogram
            if depth > stackDepth[sub] { stackDepth[sub] = depth }
            let start = Stack.index(Int(off))
            let end = Stack.index(Int(high))
            if uninit {
                for b in start..<end { s.frames[frame].stack.bytes[b] = .misc }
                for slot in (start / 8)...((end - 1) / 8) { clearSpill(&s, frame, slot) }
            } else if !options.privileged {
                for b in start..<end where s.frames[frame].stack.bytes[b] == .invalid {
                    throw Failure(
                        kind: .stackAccess, pc: pc,
                        message: "invalid indirect read from stack R\(r) off \(off)+\(b - start) size \(size)",
                        registers: [r])
                }
            }
        case .packet, .packetMeta:
            if uninit && !packetWritable {
                throw Failure(
                    kind: .packetBounds, pc: pc, message: "helper access to the packet is not allowed", registers: [r])
            }
            try packetAccess(s, pc, r, ptr, off: ptr.offset, size: Int(size))
        case .mapValue:
            let map = program.maps[ptr.map]
            if uninit && map.isReadOnly {
                throw Failure(
                    kind: .readOnly, pc: pc,
                    message: "write into map forbidden, value_size=\(map.valueSize) off=\(ptr.offset) size=\(size)",
                    registers: [r])
            }
            try boundedAccess(
                pc, r, ptr, off: ptr.offset, size: Int(size), limit: Int64(map.valueSize), what: .map(map))
        case .memory:
            if uninit && ptr.readOnly {
                throw Failure(
                    kind: .readOnly, pc: pc, message: "R\(r) cannot write into \(ptr.typeName)", registers: [r])
            }
            try boundedAccess(pc, r, ptr, off: ptr.offset, size: Int(size), limit: ptr.range, what: .memory)
        case .mapKey, .btfObject, .buffer:
            return
        default:
            throw Failure(
                kind: .helperArgument, pc: pc,
                message:
                    "R\(r) type=\(ptr.typeName) expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_",
                registers: [r],
                advice: "the helper needs a pointer to memory here (stack, map value, packet); R\(r) is \(ptr.typeName)"
            )
        }
    }
}
