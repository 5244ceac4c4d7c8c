import MimicCore

extension Analysis {
    func checkCall(_ s: inout VerifierState, _ pc: Int, _ i: RawInstruction) throws -> Outcome {
        switch i.source {
        case 1:
            return try callSubprogram(&s, pc, target: pc + Int(i.imm) + 1, callback: false)
        case 2:
            try callKernelFunction(&s, pc, i)
            return .next(pc + 1)
        default:
            return try callHelper(&s, pc, i)
        }
    }

    // MARK: BPF-to-BPF calls (check_func_call)

    func callSubprogram(_ s: inout VerifierState, _ pc: Int, target: Int, callback: Bool) throws -> Outcome {
        if s.frames.count >= 8 {
            throw Failure(
                kind: .stackDepth, pc: pc, message: "the call stack of \(s.frames.count + 1) frames is too deep !",
                advice:
                    "BPF allows 8 nested function calls; make some functions __always_inline or flatten the recursion")
        }
        if s.lockInstruction >= 0 && !callback {
            throw Failure(
                kind: .lock, pc: pc, message: "function calls are not allowed while holding a lock",
                advice: "release the bpf_spin_lock before calling a function")
        }
        let caller = s.frames.count - 1
        var frame = Frame()
        frame.callSite = pc
        frame.subprogram = subprogramOf[target]
        frame.isCallback = callback
        for r in 1...5 { frame.registers[r] = s.frames[caller].registers[r] }
        var fp = Register.pointer(.stack)
        fp.frame = caller + 1
        frame.registers[10] = fp
        callEdges.insert([s.frames[caller].subprogram, frame.subprogram])
        if !callback {
            for r in 0...5 { s.frames[caller].registers[r] = Register() }
        }
        s.frames.append(frame)
        log("caller:\n frame\(caller): ...\ncallee:\n frame\(caller + 1): \(KernelText.frame(frame, program.maps))")
        return .next(target)
    }

    func checkExit(_ s: inout VerifierState, _ pc: Int) throws -> Outcome {
        // A static sub-program may return without setting R0 (the kernel hands the caller
        // whatever R0 holds, prepare_func_exit): clang does so when it has propagated a constant
        // return value into the callers. A callback's and the program's R0 must be set.
        let returnsToCaller = s.frames.count > 1 && !s.current.isCallback
        let r0 = returnsToCaller ? s.current.registers[0] : try readRegister(s, 0, pc)
        // A return value checked against a range must keep its value.
        if s.frames.count > 1 ? s.current.isCallback : returnRange != nil { markPrecise(s, registers: [0]) }
        if s.frames.count > 1 {
            let callee = s.frames.removeLast()
            let caller = s.frames.count - 1
            if r0.type == .stack, r0.frame == caller + 1 {
                throw Failure(
                    kind: .invalidPointer, pc: pc, message: "cannot return stack pointer to the caller frame",
                    registers: [0])
            }
            if callee.isCallback {
                if r0.type != .scalar || r0.bounds.smin < 0 || r0.bounds.smax > 1 {
                    let value = r0.type == .scalar ? Self.invalidScalar(r0) : " not a known value (\(r0.typeName))"
                    throw Failure(
                        kind: .returnValue, pc: pc,
                        message: "At callback return the register R0 has\(value) should have been in [0, 1]",
                        registers: [0], advice: "a bpf_loop() callback returns 0 to continue or 1 to stop")
                }
                s.frames[caller].registers[0] = .unknownScalar
                for r in 1...5 { s.frames[caller].registers[r] = Register() }
            } else {
                s.frames[caller].registers[0] = r0
            }
            log("returning from callee:\n frame\(caller + 1): ...\nto caller at \(callee.callSite + 1)")
            return .next(callee.callSite + 1)
        }
        if let leaked = s.references.first {
            throw Failure(
                kind: .unreleasedReference, pc: pc,
                message:
                    "Unreleased reference id=\(leaked.id) alloc_insn=\(leaked.instruction)\nBPF_EXIT instruction in main prog would lead to reference leak",
                advice: referenceAdvice(leaked))
        }
        if s.lockInstruction >= 0 {
            throw Failure(
                kind: .lock, pc: pc,
                message: "BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed region",
                advice: "every path that takes the bpf_spin_lock must release it before returning")
        }
        if s.rcuDepth > 0 {
            throw Failure(
                kind: .lock, pc: pc,
                message: "BPF_EXIT instruction in main prog cannot be used inside bpf_rcu_read_lock-ed region")
        }
        try checkReturnCode(r0, pc)
        return .end
    }

    func referenceAdvice(_ r: Reference) -> String {
        let line = program.lineInfo.line(at: r.instruction).map { " at line \($0.line)" } ?? ""
        switch r.kind {
        case "ringbuf record":
            return
                "the ring-buffer record reserved at instruction \(r.instruction)\(line) is neither submitted nor discarded on this path; call bpf_ringbuf_submit() or bpf_ringbuf_discard() on every path"
        case "socket":
            return
                "the socket looked up at instruction \(r.instruction)\(line) is not released on this path; call bpf_sk_release() on every path once the lookup succeeded"
        case "iterator":
            return
                "the iterator created at instruction \(r.instruction)\(line) is not destroyed on this path; call its _destroy function"
        default:
            return "the reference acquired at instruction \(r.instruction)\(line) is not released on this path"
        }
    }

    /// How the kernel describes a return value out of range (`verbose_invalid_scalar`): the
    /// signed bounds that are not the type's extremes (" smin=5 smax=5").
    static func invalidScalar(_ r: Register) -> String {
        var text = ""
        if r.bounds.smin > Int64.min { text += " smin=\(r.bounds.smin)" }
        if r.bounds.smax < Int64.max { text += " smax=\(r.bounds.smax)" }
        return text.isEmpty ? " unknown scalar value" : text
    }

    /// The range a program of this type must return in, nil for none (`check_return_code`).
    var returnRange: (low: Int64, high: Int64)? {
        switch type {
        case .cgroupSkb:
            return program.attachType == AttachType(rawValue: 1) ? (0, 3) : (0, 1)
        case .cgroupSock, .sockOps, .cgroupDevice, .cgroupSysctl, .cgroupSockopt, .cgroupSockAddr, .skLookup:
            return (0, 1)
        case .netfilter:
            return (0, 1) // NF_DROP, NF_ACCEPT
        default:
            return nil
        }
    }

    /// The program's return value against its type's range (`check_return_code`).
    func checkReturnCode(_ r0: Register, _ pc: Int) throws {
        guard let (low, high) = returnRange else { return }
        if r0.type != .scalar {
            throw Failure(
                kind: .returnValue, pc: pc,
                message: "At program exit the register R0 is not a known value (\(r0.typeName))", registers: [0])
        }
        if r0.bounds.smin < low || r0.bounds.smax > high {
            throw Failure(
                kind: .returnValue, pc: pc,
                message:
                    "At program exit the register R0 has\(Self.invalidScalar(r0)) should have been in [\(low), \(high)]",
                registers: [0], advice: "a \(type) program must return a value in [\(low), \(high)]")
        }
    }

    // MARK: Helpers (check_helper_call)

    /// The constant key a lookup in an array passes (`get_constant_map_key`): a privileged
    /// loader's key on the stack at a constant offset whose bytes up to their slot's end are
    /// zeros, or which is exactly a spilled constant scalar of the key's size; nil otherwise.
    func constantMapKey(_ s: VerifierState, _ key: Register, map: VerifierMap) -> UInt64? {
        guard options.privileged, [.array, .perCPUArray].contains(map.type), key.type == .stack,
            let variable = key.bounds.constantValue, key.frame < s.frames.count
        else { return nil }
        let start = Stack.index(Int(key.offset + Int64(bitPattern: variable)))
        guard start >= 0, start < Stack.size else { return nil }
        let stack = s.frames[key.frame].stack
        let slot = start / 8
        let slotBytes = start..<(slot * 8 + 8)
        if (slotBytes.firstIndex { stack.bytes[$0] != .zero } ?? slotBytes.upperBound) - start >= map.keySize {
            return 0
        }
        let spilled = stack.spilled[slot]
        guard stack.bytes[slot * 8] == .spill, spilled.type == .scalar else { return nil }
        let spillSize = (slotBytes.firstIndex { stack.bytes[$0] != .spill } ?? slotBytes.upperBound) - start
        guard spillSize == map.keySize, let value = spilled.bounds.constantValue else { return nil }
        markPrecise(s, frame: key.frame, slot: slot)
        return value
    }

    func callHelper(_ s: inout VerifierState, _ pc: Int, _ i: RawInstruction) throws -> Outcome {
        let id = HelperID(rawValue: i.imm)
        guard i.imm > 0, id.kernelName != nil else {
            throw Failure(
                kind: .unknownHelper, pc: pc, message: "invalid func unknown#\(i.imm)",
                advice: "helper \(i.imm) does not exist in this kernel")
        }
        let name = id.kernelName ?? "unknown"
        if s.lockInstruction >= 0, name != "bpf_spin_unlock" {
            throw Failure(
                kind: .lock, pc: pc, message: "function calls are not allowed while holding a lock",
                advice: "release the bpf_spin_lock before calling \(name)")
        }
        guard let proto = HelperPrototypes.prototype(i.imm, for: type) else {
            // A helper Mimic has no prototype for: check nothing about it.
            for r in 1...5 { s[register: r] = Register() }
            s[register: 0] = .unknownScalar
            return .next(pc + 1)
        }
        if !HelperPrototypes.allows(proto.group, in: type) {
            throw Failure(
                kind: .unknownHelper, pc: pc, message: "program of this type cannot use helper \(name)#\(i.imm)",
                advice: proto.group == .never
                    ? "\(name) needs a kernel built with CONFIG_BPF_KPROBE_OVERRIDE, which Mimic's model (and this machine's kernel) lacks"
                    : "\(name) is not available to \(type) programs")
        }
        if !HelperPrototypes.allowedInProbe(proto.name, attachType: program.attachType) {
            throw Failure(
                kind: .unknownHelper, pc: pc, message: "helper call is not allowed in probe",
                advice: "\(name) is refused where this program attaches (the kernel's allow-list for it)")
        }
        if proto.gplOnly && !isGPLCompatible(program.license) {
            throw Failure(
                kind: .unknownHelper, pc: pc,
                message: "cannot call GPL-restricted function from non-GPL compatible program",
                advice:
                    "\(name) is GPL-only: declare a GPL-compatible license (char LICENSE[] SEC(\"license\") = \"GPL\";)"
            )
        }
        // Sizes, flags, indexes, keys: a helper's scalar arguments are taken as precise (the
        // kernel marks those its checks read; marking all of them prunes less, never wrongly).
        markPrecise(s, registers: Array(1...5))
        var mapIndex = -1
        /// The key of an array lookup when the stack holds it as a constant (`meta.const_map_key`).
        var constantKey: UInt64?
        var memSize: UInt64 = 0
        var released: UInt32 = 0
        var callbackTarget = -1
        for (k, kind) in proto.arguments.enumerated() {
            let r = k + 1
            let reg = try readRegister(s, UInt8(r), pc)
            func mismatch(_ expected: String, _ kind: VerificationErrorKind = .helperArgument) -> Failure {
                Failure(
                    kind: reg.maybeNull ? .nullPointer : kind, pc: pc,
                    message: "R\(r) type=\(reg.typeName) expected=\(expected)", registers: [r],
                    advice: reg.maybeNull
                        ? "argument \(r) of \(name) may be NULL; check it first"
                        : "argument \(r) of \(name) must be a \(expected), and R\(r) is \(reg.typeName)")
            }
            switch kind {
            case .anything:
                break
            case .map:
                guard reg.type == .mapPointer else { throw mismatch("map_ptr") }
                mapIndex = reg.map
                try checkMapCompatibility(program.maps[reg.map], name, i.imm, pc)
            case .mapKey:
                guard mapIndex >= 0 else {
                    throw Failure(kind: .helperArgument, pc: pc, message: "invalid map_ptr to access map->key")
                }
                try helperMemory(
                    &s, pc, r, reg, size: Int64(program.maps[mapIndex].keySize), uninit: false, zeroAllowed: false,
                    nullable: false)
                if id == .mapLookupElem { constantKey = constantMapKey(s, reg, map: program.maps[mapIndex]) }
            case .mapValue(let uninit):
                guard mapIndex >= 0 else {
                    throw Failure(kind: .helperArgument, pc: pc, message: "invalid map_ptr to access map->value")
                }
                if [.sockMap, .sockHash].contains(program.maps[mapIndex].type) {
                    // resolve_map_arg_type: a sockmap's or sockhash's value is a socket
                    // (ARG_PTR_TO_BTF_ID_SOCK_COMMON), e.g. bpf_map_update_elem(&sockmap, &key, sk, 0).
                    guard !uninit else {
                        throw Failure(
                            kind: .helperArgument, pc: pc, message: "invalid arg_type for sockmap/sockhash")
                    }
                    guard [.socket, .socketCommon, .tcpSocket].contains(reg.type), !reg.maybeNull else {
                        throw mismatch("sock_common, sock, tcp_sock, xdp_sock, ptr_")
                    }
                    continue
                }
                try helperMemory(
                    &s, pc, r, reg, size: Int64(program.maps[mapIndex].valueSize), uninit: uninit, zeroAllowed: false,
                    nullable: false)
            case .memory(let uninit, let nullable):
                let sizeReg = try readRegister(s, UInt8(r + 1), pc)
                var zeroAllowed = false
                if k + 1 < proto.arguments.count, case .size(let z) = proto.arguments[k + 1] { zeroAllowed = z }
                try checkSizeArgument(sizeReg, r + 1, pc, zeroAllowed: zeroAllowed)
                if !reg.isPointer && !(nullable && reg.isNullConstant) {
                    throw mismatch("fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_")
                }
                try helperMemory(
                    &s, pc, r, reg, size: Int64(sizeReg.bounds.umax), uninit: uninit, zeroAllowed: zeroAllowed,
                    nullable: nullable)
            case .fixedMemory(let size, let uninit):
                try helperMemory(&s, pc, r, reg, size: Int64(size), uninit: uninit, zeroAllowed: false, nullable: false)
            case .size:
                break
            case .allocSize:
                guard reg.type == .scalar, let c = reg.bounds.constantValue else {
                    throw Failure(
                        kind: .helperArgument, pc: pc, message: "R\(r) is not a known constant'", registers: [r],
                        advice:
                            "the size (of a ring-buffer reservation, a dynptr slice) must be a compile-time constant")
                }
                memSize = c
            case .context:
                guard reg.type == .context, !reg.maybeNull else { throw mismatch("ctx") }
                if reg.offset != 0 {
                    throw Failure(
                        kind: .contextAccess, pc: pc,
                        message: "dereference of modified ctx ptr R\(r) off=\(reg.offset) disallowed", registers: [r])
                }
            case .ringbufRecord:
                guard reg.type == .memory, !reg.maybeNull, reg.referenceID != 0 else {
                    throw mismatch("ringbuf_mem", .invalidRelease)
                }
                if reg.offset != 0 || !reg.bounds.isConstant || reg.bounds.constantValue != 0 {
                    throw Failure(
                        kind: .invalidRelease, pc: pc,
                        message: "R\(r) must have zero offset when passed to release func or trusted arg to kfunc",
                        registers: [r], advice: "pass the pointer bpf_ringbuf_reserve() returned, unmoved")
                }
                released = reg.referenceID
            case .releasedSocket:
                guard [.socket, .socketCommon, .tcpSocket].contains(reg.type), !reg.maybeNull else {
                    throw mismatch("sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_", .invalidRelease)
                }
                guard reg.referenceID != 0 else {
                    throw Failure(
                        kind: .invalidRelease, pc: pc,
                        message: "R\(r) must be referenced when passed to release function",
                        registers: [r],
                        advice: "only a socket from bpf_sk_lookup_*() / bpf_skc_lookup_tcp() is released")
                }
                released = reg.referenceID
            case .socketCommon:
                guard [.socket, .socketCommon, .tcpSocket].contains(reg.type), !reg.maybeNull else {
                    throw mismatch("sock_common, sock, tcp_sock, xdp_sock, ptr_")
                }
            case .kernelSocket:
                guard [.socket, .socketCommon, .tcpSocket, .btfObject].contains(reg.type), !reg.maybeNull else {
                    throw mismatch("sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_")
                }
                // A kernel pointer must lead to a struct sock_common (a struct sock begins with one).
                try checkKernelStruct(reg, r, pc, "sock_common", helper: name)
            case .kernelObject(let structName):
                guard reg.type == .btfObject, !reg.maybeNull else { throw mismatch("ptr_, trusted_ptr_") }
                try checkKernelStruct(reg, r, pc, structName, helper: name)
            case .function:
                guard reg.type == .function else { throw mismatch("func") }
                callbackTarget = subprogramStarts[reg.subprogram]
            case .stackOrNull:
                guard reg.type == .stack || reg.isNullConstant else { throw mismatch("fp") }
            case .constString:
                guard reg.type == .mapValue, program.maps[reg.map].isReadOnly else {
                    throw Failure(
                        kind: .helperArgument, pc: pc, message: "R\(r) does not point to a readonly map'",
                        registers: [r], advice: "pass a string literal (it lives in .rodata)")
                }
                guard reg.bounds.isConstant else {
                    throw Failure(
                        kind: .helperArgument, pc: pc, message: "R\(r) is not a constant address'", registers: [r])
                }
                let map = program.maps[reg.map]
                let start = Int(reg.offset)
                if !map.contents.isEmpty, start < map.contents.count, !map.contents[start...].contains(0) {
                    throw Failure(
                        kind: .helperArgument, pc: pc, message: "string is not zero-terminated", registers: [r])
                }
            case .spinLock:
                guard reg.type == .mapValue, !reg.maybeNull else { throw mismatch("map_value") }
                let map = program.maps[reg.map]
                guard let lockOffset = map.spinLockOffset else {
                    throw Failure(
                        kind: .lock, pc: pc, message: "map '\(map.name)' has no valid bpf_spin_lock", registers: [r])
                }
                guard reg.bounds.isConstant, reg.offset == Int64(lockOffset) else {
                    throw Failure(
                        kind: .lock, pc: pc,
                        message: "off \(reg.offset) doesn't point to 'struct bpf_spin_lock' that is at \(lockOffset)",
                        registers: [r])
                }
                if name == "bpf_spin_lock" {
                    if s.lockInstruction >= 0 {
                        throw Failure(kind: .lock, pc: pc, message: "Locking two bpf_spin_locks are not allowed")
                    }
                    s.lockInstruction = pc
                } else {
                    if s.lockInstruction < 0 {
                        throw Failure(kind: .lock, pc: pc, message: "bpf_spin_unlock without taking a lock")
                    }
                    s.lockInstruction = -1
                }
            case .perCPUVariable:
                guard reg.type == .btfObject else { throw mismatch("percpu_ptr_") }
            }
        }
        if name == "bpf_tail_call", !s.references.isEmpty {
            let leaked = s.references[0]
            throw Failure(
                kind: .unreleasedReference, pc: pc,
                message:
                    "Unreleased reference id=\(leaked.id) alloc_insn=\(leaked.instruction)\ntail_call would lead to reference leak",
                advice: "release every reference (sockets, ring-buffer records) before bpf_tail_call()")
        }
        if released != 0 { release(&s, released) }
        // Callbacks run as a frame of their own, returning to this call.
        if callbackTarget >= 0, proto.callbackArguments != nil {
            var args: [Register] = []
            if name == "bpf_loop" {
                args = [.scalar(.unsigned(max: 0xffff_ffff)), s[register: 3]]
            } else {
                var map = Register.pointer(.mapPointer)
                map.map = mapIndex
                var key = Register.pointer(.mapKey)
                key.map = mapIndex
                var value = Register.pointer(.mapValue)
                value.map = mapIndex
                args = [map, key, value, s[register: 3]]
            }
            for r in 1...5 { s[register: r] = r - 1 < args.count ? args[r - 1] : Register() }
            return try callSubprogram(&s, pc, target: callbackTarget, callback: true)
        }
        for r in 1...5 { s[register: r] = Register() }
        var r0 = Register()
        switch proto.returns {
        case .integer:
            r0 = .unknownScalar
        case .void:
            r0 = Register()
        case .mapValueOrNull where mapIndex >= 0 && [.sockMap, .sockHash].contains(program.maps[mapIndex].type):
            // A socket map's lookup gives a socket reference (`RET_PTR_TO_SOCKET_OR_NULL`).
            r0 = .pointer(.socket)
            r0.maybeNull = true
            r0.id = newID()
            r0.referenceID = r0.id
            s.references.append(Reference(id: r0.id, instruction: pc, kind: "socket"))
        case .mapValueOrNull where mapIndex >= 0 && program.maps[mapIndex].innerMap != nil:
            r0 = .pointer(.mapPointer)
            r0.map = program.maps[mapIndex].innerMap ?? -1
            r0.maybeNull = true
            r0.id = newID()
        case .mapValueOrNull:
            r0 = .pointer(.mapValue)
            r0.map = mapIndex
            if let key = constantKey, key < UInt64(program.maps[mapIndex].maxEntries) {
                // An array's element at a constant index within it exists: not NULL (the kernel
                // elides the check since 6.14); a value with a spin lock still gets an id.
                if program.maps[mapIndex].spinLockOffset != nil { r0.id = newID() }
            } else {
                r0.maybeNull = true
                r0.id = newID()
            }
            if mapIndex >= 0, program.maps[mapIndex].isReadOnly { r0.readOnly = true }
        case .mapValue:
            r0 = .pointer(.mapValue)
            r0.map = mapIndex
        case .memoryOrNull(_, let acquires):
            r0 = .pointer(.memory)
            r0.maybeNull = true
            r0.range = Int64(memSize)
            r0.id = newID()
            if acquires {
                r0.ringBuffer = true
                r0.referenceID = r0.id
                s.references.append(Reference(id: r0.id, instruction: pc, kind: "ringbuf record"))
            }
        case .socketOrNull(let acquires), .socketCommonOrNull(let acquires):
            if case .socketOrNull = proto.returns { r0 = .pointer(.socket) } else { r0 = .pointer(.socketCommon) }
            r0.maybeNull = true
            r0.id = newID()
            if acquires {
                r0.ringBuffer = true
                r0.referenceID = r0.id
                s.references.append(Reference(id: r0.id, instruction: pc, kind: "socket"))
            }
        case .tcpSocketOrNull:
            r0 = .pointer(.tcpSocket)
            r0.maybeNull = true
            r0.id = newID()
        case .btfObject(let name):
            r0 = trustedPointer(to: name)
        case .btfObjectOrNull(let name):
            r0 = trustedPointer(to: name)
            r0.btfFlags = []
            r0.maybeNull = true
            r0.id = newID()
        case .perCPUPointer(let maybeNull):
            r0 = .pointer(.btfObject)
            r0.btfName = "percpu"
            r0.maybeNull = maybeNull
            if maybeNull { r0.id = newID() }
        }
        s[register: 0] = r0
        return .next(pc + 1)
    }

    /// A kernel pointer argument's struct (`btf_struct_ids_match`): the named struct, or one
    /// that begins with it where the pointer points. Unchecked without the kernel's BTF.
    func checkKernelStruct(_ reg: Register, _ r: Int, _ pc: Int, _ structName: String, helper: String) throws {
        guard reg.type == .btfObject, reg.btfID != 0, let types = kernelTypes,
            !types.points(into: reg.btfID, offset: Int(reg.offset), toStructNamed: structName)
        else { return }
        throw Failure(
            kind: .helperArgument, pc: pc,
            message: "R\(r) is of type \(types.name(reg.btfID)) but \(structName) is expected", registers: [r],
            advice: "\(helper) takes a pointer to a struct \(structName) here")
    }

    func isGPLCompatible(_ license: String) -> Bool {
        ["GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL"].contains(license)
    }

    /// `check_mem_size_reg`.
    func checkSizeArgument(_ reg: Register, _ r: Int, _ pc: Int, zeroAllowed: Bool) throws {
        guard reg.type == .scalar else {
            throw Failure(
                kind: .helperArgument, pc: pc, message: "R\(r) type=\(reg.typeName) expected=scalar",
                registers: [r])
        }
        if reg.bounds.smin < 0 {
            throw Failure(
                kind: .helperArgument, pc: pc,
                message: "R\(r) min value is negative, either use unsigned or 'var &= const'", registers: [r],
                advice: "the size passed in R\(r) may be negative; use an unsigned type or mask it")
        }
        if reg.bounds.umin == 0 && !zeroAllowed {
            throw Failure(
                kind: .helperArgument, pc: pc,
                message: "R\(r) invalid zero-sized read: u64=[\(reg.bounds.umin),\(reg.bounds.umax)]", registers: [r],
                advice: "the size passed in R\(r) may be 0, which this helper refuses; check `if (len == 0) ...` first")
        }
        if reg.bounds.umax >= 1 << 29 {
            throw Failure(
                kind: .helperArgument, pc: pc,
                message: "R\(r) unbounded memory access, use 'var &= const' or 'if (var < const)'", registers: [r],
                advice:
                    "the size passed in R\(r) has no upper bound; clamp it (`len &= 0xff` or `if (len > sizeof(buf)) return ...;`)"
            )
        }
    }

    /// Map types a helper accepts (`check_map_func_compatibility`, both directions, in part).
    func checkMapCompatibility(_ map: VerifierMap, _ helper: String, _ id: Int32, _ pc: Int) throws {
        let t = map.type
        var ok = true
        switch helper {
        case "bpf_ringbuf_output", "bpf_ringbuf_reserve", "bpf_ringbuf_query": ok = t == .ringBuffer
        case "bpf_tail_call": ok = t == .progArray
        case "bpf_perf_event_output", "bpf_perf_event_read": ok = t == .perfEventArray
        case "bpf_get_stackid": ok = t == .stackTrace
        case "bpf_get_local_storage": ok = t == .cgroupStorage || t == .perCPUCgroupStorage
        case "bpf_sk_storage_get", "bpf_sk_storage_delete": ok = t == .skStorage
        case "bpf_task_storage_get": ok = t == .taskStorage
        case "bpf_cgrp_storage_get": ok = t == .cgrpStorage
        case "bpf_redirect_map": ok = [.devMap, .devMapHash, .cpuMap, .xskMap].contains(t)
        case "bpf_map_push_elem", "bpf_map_pop_elem", "bpf_map_peek_elem":
            ok = [.queue, .stack, .bloomFilter].contains(t) && !(t == .bloomFilter && helper == "bpf_map_pop_elem")
        case "bpf_map_lookup_elem", "bpf_map_update_elem", "bpf_map_delete_elem":
            ok =
                ![.ringBuffer, .perfEventArray, .queue, .stack, .bloomFilter, .stackTrace].contains(t)
                && !(t == .progArray && helper != "bpf_map_delete_elem" && helper != "bpf_map_update_elem")
        default: ok = true
        }
        if !ok {
            throw Failure(
                kind: .helperArgument, pc: pc, message: "cannot pass map_type \(t.rawValue) into func \(helper)#\(id)",
                advice: "\(helper) does not work on a \(t) map (\(map.name))")
        }
    }

    /// Drops a reference and invalidates every pointer that holds it (`release_reference`).
    func release(_ s: inout VerifierState, _ id: UInt32) {
        s.references.removeAll { $0.id == id }
        s.updateAll { reg in
            if reg.referenceID == id { reg = .unknownScalar }
        }
    }

    // MARK: kfuncs

    func callKernelFunction(_ s: inout VerifierState, _ pc: Int, _ i: RawInstruction) throws {
        let name = program.externs[pc] ?? "kfunc#\(i.imm)"
        switch name {
        case let name where name.hasPrefix("bpf_xdp_metadata_"):
            // check_kfunc_call: the rx metadata kfuncs are resolved per device at load, so the
            // kernel refuses them unless the program is device-bound (prog_ifindex with
            // BPF_F_XDP_DEV_BOUND_ONLY), which a program checked here never is.
            throw Failure(kind: .unknownHelper, pc: pc, message: "metadata kfuncs require device-bound program")
        case "bpf_iter_num_new":
            let it = try readRegister(s, 1, pc)
            _ = try readRegister(s, 2, pc)
            _ = try readRegister(s, 3, pc)
            guard it.type == .stack, it.bounds.isConstant else {
                throw Failure(
                    kind: .helperArgument, pc: pc, message: "arg#0 expected pointer to an iterator on stack",
                    registers: [1])
            }
            let start = Stack.index(Int(it.offset))
            guard start >= 0, start + 8 <= Stack.size, start % 8 == 0 else {
                throw Failure(
                    kind: .stackAccess, pc: pc, message: "arg#0 expected pointer to an iterator on stack",
                    registers: [1])
            }
            let id = newID()
            var marker = Register.unknownScalar
            marker.referenceID = id
            for b in start..<(start + 8) { s.frames[it.frame].stack.bytes[b] = .iterator }
            s.frames[it.frame].stack.spilled[start / 8] = marker
            let depth = -Int(it.offset)
            if depth > stackDepth[s.frames[it.frame].subprogram] { stackDepth[s.frames[it.frame].subprogram] = depth }
            if depth > s.frames[it.frame].stack.depth { s.frames[it.frame].stack.depth = depth }
            s.references.append(Reference(id: id, instruction: pc, kind: "iterator"))
            for r in 1...5 { s[register: r] = Register() }
            s[register: 0] = .unknownScalar
        case "bpf_iter_num_next", "bpf_iter_num_destroy":
            let it = try readRegister(s, 1, pc)
            let start = it.type == .stack && it.offset >= -512 && it.offset <= -8 ? Stack.index(Int(it.offset)) : -1
            guard start >= 0, start % 8 == 0, s.frames[it.frame].stack.bytes[start] == .iterator else {
                throw Failure(
                    kind: .helperArgument, pc: pc,
                    message: "expected an initialized iter_num as arg #0", registers: [1],
                    advice: "call bpf_iter_num_new() on this iterator first")
            }
            for r in 1...5 { s[register: r] = Register() }
            if name == "bpf_iter_num_next" {
                var r0 = Register.pointer(.memory)
                r0.range = 4
                r0.readOnly = true
                r0.maybeNull = true
                r0.id = newID()
                s[register: 0] = r0
            } else {
                let id = s.frames[it.frame].stack.spilled[start / 8].referenceID
                s.references.removeAll { $0.id == id }
                for b in start..<(start + 8) { s.frames[it.frame].stack.bytes[b] = .invalid }
                s.frames[it.frame].stack.spilled[start / 8] = Register()
                s[register: 0] = Register()
            }
        case "bpf_dynptr_slice", "bpf_dynptr_slice_rdwr":
            // `void *bpf_dynptr_slice(p, offset, buffer__opt, buffer__szk)`: PTR_TO_MEM of the
            // constant size `buffer__szk`, or NULL (KF_RET_NULL); read-only for bpf_dynptr_slice.
            for r in 1...4 { _ = try readRegister(s, UInt8(r), pc) }
            let size = s[register: 4]
            guard size.type == .scalar, let length = size.bounds.constantValue else {
                throw Failure(
                    kind: .helperArgument, pc: pc, message: "R4 must be a known constant", registers: [4],
                    advice: "the length of a dynptr slice must be a compile-time constant")
            }
            for r in 1...5 { s[register: r] = Register() }
            var r0 = Register.pointer(.memory)
            r0.range = Int64(length)
            r0.readOnly = name == "bpf_dynptr_slice"
            r0.maybeNull = true
            r0.id = newID()
            s[register: 0] = r0
        case "bpf_rcu_read_lock":
            s.rcuDepth += 1
            for r in 1...5 { s[register: r] = Register() }
            s[register: 0] = Register()
        case "bpf_rcu_read_unlock":
            if s.rcuDepth == 0 {
                throw Failure(kind: .lock, pc: pc, message: "unmatched rcu read unlock")
            }
            s.rcuDepth -= 1
            for r in 1...5 { s[register: r] = Register() }
            s[register: 0] = Register()
        default:
            // Without the kernel's BTF the argument types of other kfuncs are unknown.
            for r in 1...5 { s[register: r] = Register() }
            s[register: 0] = .unknownScalar
        }
    }
}
