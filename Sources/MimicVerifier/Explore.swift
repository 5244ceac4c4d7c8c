import MimicCore

/// Where a path goes after an instruction.
enum Outcome {
    case next(Int)
    /// Continue at `pc`; explore `other` at `otherPC` later (the taken branch, as the kernel does).
    case branch(pc: Int, other: VerifierState, otherPC: Int)
    case end
}

extension Analysis {
    struct Pending {
        var state: VerifierState
        var pc: Int
        var parent: Checkpoint?
        var from: Int
        /// The path's instructions since `parent`, the branch included.
        var history: [HistoryEntry]
    }

    func initialState() -> VerifierState {
        var s = VerifierState()
        s[register: 1] = Register.pointer(.context)
        var fp = Register.pointer(.stack)
        fp.frame = 0
        s[register: 10] = fp
        return s
    }

    func explore() throws {
        var state = initialState()
        var pc = 0
        var pending: [Pending] = []
        pathParent = nil
        pathHistory = []
        log("func#0 @0")
        while true {
            var ended = false
            currentPC = pc
            if prunePoint[pc], try visit(&state, pc) {
                log("\(pc): safe")
                ended = true
            }
            if !ended {
                processed += 1
                if processed > options.complexityLimit {
                    throw Failure(
                        kind: .complexity, pc: pc,
                        message: "BPF program is too large. Processed \(processed) insn",
                        advice:
                            "the verifier walks every path and gives up after \(options.complexityLimit) instructions; bound loops with small constants, use bpf_loop() or bpf_for(), or split the program with tail calls"
                    )
                }
                currentState = state
                let cls = insns[pc].opcode & 7
                if cls == 0x05 || cls == 0x06 { jumpsProcessed += 1 }
                if options.log { log("\(pc): \(KernelText.instruction(insns, at: pc, maps: program.maps))") }
                stepStackSlot = nil
                stepLinked = nil
                let outcome = try step(&state, pc)
                if tracksPrecision {
                    var entry = HistoryEntry(pc: Int32(pc), linked: stepLinked)
                    if let access = stepStackSlot {
                        entry.stackFrame = Int8(access.frame)
                        entry.stackSlot = Int8(access.slot)
                    }
                    pathHistory.append(entry)
                }
                switch outcome {
                case .next(let n):
                    pc = n
                case .branch(let n, let other, let otherPC):
                    pathParent?.branches += 1
                    pending.append(
                        Pending(state: other, pc: otherPC, parent: pathParent, from: pc, history: pathHistory))
                    if pending.count > 8192 {
                        throw Failure(
                            kind: .complexity, pc: pc, message: "The sequence of \(pending.count) jumps is too complex."
                        )
                    }
                    pc = n
                case .end:
                    ended = true
                }
            }
            if ended {
                finishPath(pathParent)
                guard let next = pending.popLast() else { return }
                state = next.state
                pc = next.pc
                pathParent = next.parent
                pathHistory = next.history
                if options.log { log("from \(next.from) to \(pc): \(KernelText.state(state, program.maps))") }
            }
        }
    }

    func finishPath(_ parent: Checkpoint?) {
        var c = parent
        while let checkpoint = c {
            checkpoint.branches -= 1
            if checkpoint.branches > 0 { break }
            c = checkpoint.parent
        }
    }

    /// Prunes the path when an explored state covers it; stores it otherwise (`is_state_visited`).
    func visit(_ state: inout VerifierState, _ pc: Int) throws -> Bool {
        let loopHead = isMayGoto(insns[pc]) || (isCall(insns[pc]) && insns[pc].source == 2)
        // The kernel stores a state only after 2 jumps and 8 instructions (or at loop heads).
        let addNew =
            loopHead || (jumpsProcessed - jumpsAtLastState >= 2 && processed - processedAtLastState >= 8)
        var current = state
        var keep: [Checkpoint] = []
        keep.reserveCapacity(explored[pc].count)
        var pruned = false
        var failure: Failure?
        for old in explored[pc] {
            if pruned || failure != nil || !sameCallSites(old.state, current) {
                keep.append(old)
                continue
            }
            if old.branches > 0 {
                if loopHead {
                    if subsumes(old, current, pc, allPrecise: true) {
                        old.hits += 1
                        pruned = true
                        keep.append(old)
                        continue
                    }
                    // Loops of iterators and may_goto converge: forget what changed.
                    widen(&current, from: old.state)
                } else if exactlyEqual(old.state, current, pc) {
                    failure = Failure(
                        kind: .loop, pc: pc, message: "infinite loop detected at insn \(pc)",
                        advice:
                            "the program comes back to this instruction in the same state, so this loop never ends; make the loop condition depend on a counter that changes every iteration"
                    )
                    keep.append(old)
                    continue
                }
            } else if subsumes(old, current, pc) {
                old.hits += 1
                pruned = true
                // The current path goes on as `old`'s did: what those paths needed, it needs.
                propagatePrecision(from: old, current, pc)
                keep.append(old)
                continue
            }
            old.misses += 1
            // A state that keeps missing is dropped from the list (`miss_cnt > hit_cnt * n + n`).
            let n = loopHead && old.branches > 0 ? 64 : 3
            if old.misses > old.hits * n + n { continue }
            keep.append(old)
        }
        explored[pc] = keep
        if let failure { throw failure }
        if pruned { return true }
        guard addNew else { return false }
        clearSingularIDs(&current)
        state = current
        let checkpoint = Checkpoint(
            state: current, pc: pc, parent: pathParent, history: pathHistory, allPrecise: !tracksPrecision)
        explored[pc].append(checkpoint)
        storedStates += 1
        jumpsAtLastState = jumpsProcessed
        processedAtLastState = processed
        pathParent = checkpoint
        pathHistory = []
        return false
    }

    /// Drops the ids of scalars that no other register or spilled slot shares: such an id links
    /// nothing, and would only keep states apart (`clear_singular_ids`, when a state is stored).
    func clearSingularIDs(_ s: inout VerifierState) {
        var counts: [UInt32: Int] = [:]
        s.updateAll { reg in
            if reg.type == .scalar, reg.id != 0 { counts[reg.baseID, default: 0] += 1 }
        }
        guard counts.values.contains(1) else { return }
        s.updateAll { reg in
            if reg.type == .scalar, reg.id != 0, counts[reg.baseID] == 1 { reg.unlink() }
        }
    }

    func sameCallSites(_ a: VerifierState, _ b: VerifierState) -> Bool {
        guard a.frames.count == b.frames.count else { return false }
        for i in a.frames.indices where a.frames[i].callSite != b.frames[i].callSite { return false }
        return true
    }

    /// Registers live in frame `f` of a state stopped at `pc`.
    func liveRegisters(_ s: VerifierState, frame f: Int, pc: Int) -> UInt16 {
        if f == s.frames.count - 1 { return liveIn[pc] }
        let site = s.frames[f + 1].callSite
        guard site + 1 < insns.count else { return 0x3ff }
        // After the call returns (or the callback's helper does), R0-R5 are new: R6-R9 remain.
        return liveIn[site + 1] & 0x3c0
    }

    // MARK: State comparison (states_equal)

    /// The ids of the old state matched one to one with the current state's (`struct bpf_idmap`).
    final class IDMap {
        var map: [UInt32: UInt32] = [:]
        var reverse: [UInt32: UInt32] = [:]
        /// Stand-ins for a scalar's id 0, counting down from the top so that they never meet an
        /// id the verifier gave (`tmp_id_gen`).
        private var temporary = UInt32.max

        /// Pointers: both ids 0, or both set and consistently paired (`check_ids`).
        func check(_ old: UInt32, _ cur: UInt32) -> Bool {
            if old == 0 && cur == 0 { return true }
            if old == 0 || cur == 0 { return false }
            if let m = map[old] { return m == cur }
            if reverse[cur] != nil { return false }
            map[old] = cur
            reverse[cur] = old
            return true
        }

        /// Scalars: an id 0 is unique, so it pairs with an id the other state gives only this
        /// register (`check_scalar_ids`). Scalars that share an id were copied from one another
        /// and a comparison on one bounded them all, so registers linked in the old state must be
        /// linked in the current one.
        func checkScalar(_ old: UInt32, _ cur: UInt32) -> Bool {
            check(old != 0 ? old : nextTemporary(), cur != 0 ? cur : nextTemporary())
        }

        private func nextTemporary() -> UInt32 {
            temporary -= 1
            return temporary
        }
    }

    func rangeWithin(_ old: Scalar, _ cur: Scalar) -> Bool {
        old.umin <= cur.umin && old.umax >= cur.umax && old.smin <= cur.smin && old.smax >= cur.smax
            && old.u32min <= cur.u32min && old.u32max >= cur.u32max && old.s32min <= cur.s32min
            && old.s32max >= cur.s32max
    }

    /// Whether `old`, a register of a stored state, covers `cur` (`regsafe`). A scalar that is
    /// not `precise` covers any scalar.
    func regSafe(_ old: Register, _ cur: Register, _ ids: IDMap, precise: Bool = true) -> Bool {
        if old.type == .notInit { return true }
        if cur.type == .notInit { return false }
        if old.type != cur.type || old.maybeNull != cur.maybeNull { return false }
        switch old.type {
        case .scalar:
            if !precise { return true }
            // A copy with a constant added is linked differently from a plain copy.
            if old.id & Register.addConst != cur.id & Register.addConst { return false }
            if old.id & Register.addConst != 0, old.linkDelta != cur.linkDelta { return false }
            return rangeWithin(old.bounds, cur.bounds) && old.bounds.varOff.contains(cur.bounds.varOff)
                && ids.checkScalar(old.id, cur.id)
        case .packet, .packetMeta:
            return old.range <= cur.range && old.offset == cur.offset && ids.check(old.id, cur.id)
                && rangeWithin(old.bounds, cur.bounds) && old.bounds.varOff.contains(cur.bounds.varOff)
        case .stack:
            // Only the same pointer (`regs_exact`): a write through an old pointer with a wider
            // variable offset turned more spilled slots into unknown bytes than the current
            // pointer's would, so the old path's proof does not carry over.
            return old.offset == cur.offset && old.frame == cur.frame && old.bounds == cur.bounds
                && ids.check(old.id, cur.id) && ids.check(old.referenceID, cur.referenceID)
        case .mapValue, .memory, .mapKey:
            return old.offset == cur.offset && old.map == cur.map && old.frame == cur.frame
                && old.range == cur.range && old.readOnly == cur.readOnly && old.btfFlags == cur.btfFlags
                && ids.check(old.id, cur.id) && ids.check(old.referenceID, cur.referenceID)
                && rangeWithin(old.bounds, cur.bounds) && old.bounds.varOff.contains(cur.bounds.varOff)
        default:
            return old.offset == cur.offset && old.map == cur.map && old.subprogram == cur.subprogram
                && old.btfID == cur.btfID && old.btfFlags == cur.btfFlags && old.readOnly == cur.readOnly
                && old.bounds == cur.bounds && ids.check(old.id, cur.id)
                && ids.check(old.referenceID, cur.referenceID)
        }
    }

    /// `live`: the 8-byte slots a later instruction may read (the others are not compared);
    /// `precise`: the slots whose spilled scalars are compared.
    func stackSafe(_ old: Stack, _ cur: Stack, _ ids: IDMap, live: UInt64 = .max, precise: UInt64 = .max) -> Bool {
        let lowest = Stack.size - old.depth
        var i = lowest
        while i < Stack.size {
            if live & (1 << UInt64(i / 8)) == 0, old.bytes[i] != .iterator, cur.bytes[i] != .iterator {
                i += 1
                continue
            }
            let o = old.bytes[i]
            let c = cur.bytes[i]
            // Root may read uninitialized stack as unknown bytes, so old unknown bytes cover
            // anything, a spilled pointer too (`allow_uninit_stack`).
            if o == .invalid || (o == .misc && options.privileged) || (o == .misc && c == .zero)
                || (o == .misc && c == .misc)
            {
                i += 1
                continue
            }
            if o == .misc, c == .spill, cur.spilled[i / 8].type == .scalar {
                i += 1
                continue
            }
            if o != c { return false }
            // The spilled register is compared once, at its slot's first byte; the slot's other
            // bytes are still compared one by one (a 4-byte spill does not cover an 8-byte one).
            if o == .spill || o == .iterator, i % 8 == 0 || i == lowest {
                let exact = precise & (1 << UInt64(i / 8)) != 0
                if !regSafe(old.spilled[i / 8], cur.spilled[i / 8], ids, precise: exact) { return false }
            }
            i += 1
        }
        return true
    }

    /// Whether the stored state `stored` covers `cur` at `pc` (`states_equal`): scalars compared
    /// where `stored` marks them precise, or everywhere with `allPrecise` (`RANGE_WITHIN`).
    func subsumes(_ stored: Checkpoint, _ cur: VerifierState, _ pc: Int, allPrecise: Bool = false) -> Bool {
        let old = stored.state
        guard old.frames.count == cur.frames.count, old.lockInstruction == cur.lockInstruction,
            old.rcuDepth == cur.rcuDepth, old.references.count == cur.references.count
        else { return false }
        let ids = IDMap()
        for f in old.frames.indices {
            let marks = allPrecise || f >= stored.marks.count ? PreciseMarks.all : stored.marks[f]
            let live = liveRegisters(cur, frame: f, pc: pc)
            for r in 0..<10 where live & (1 << UInt16(r)) != 0 {
                let precise = marks.registers & (1 << UInt16(r)) != 0
                if !regSafe(old.frames[f].registers[r], cur.frames[f].registers[r], ids, precise: precise) {
                    return false
                }
            }
            let liveSlots = cur.frames.count == 1 && pc < liveStack.count ? liveStack[pc] : .max
            if !stackSafe(old.frames[f].stack, cur.frames[f].stack, ids, live: liveSlots, precise: marks.slots) {
                return false
            }
        }
        for (a, b) in zip(old.references, cur.references) where !ids.check(a.id, b.id) { return false }
        return true
    }

    func exactlyEqual(_ old: VerifierState, _ cur: VerifierState, _ pc: Int) -> Bool {
        guard old.frames.count == cur.frames.count, old.references.count == cur.references.count,
            old.mayGotoDepth == cur.mayGotoDepth
        else { return false }
        for f in old.frames.indices {
            let live = liveRegisters(cur, frame: f, pc: pc)
            for r in 0..<10 where live & (1 << UInt16(r)) != 0 {
                let a = old.frames[f].registers[r]
                var b = cur.frames[f].registers[r]
                b.id = a.id
                b.referenceID = a.referenceID
                if a != b { return false }
            }
            if old.frames[f].stack.bytes != cur.frames[f].stack.bytes { return false }
            for s in 0..<64 where old.frames[f].stack.bytes[s * 8 + 7] == .spill {
                if old.frames[f].stack.spilled[s].bounds != cur.frames[f].stack.spilled[s].bounds
                    || old.frames[f].stack.spilled[s].type != cur.frames[f].stack.spilled[s].type
                {
                    return false
                }
            }
        }
        return true
    }

    /// Scalars that differ from the loop's earlier state become unknown (`widen_imprecise_scalars`).
    func widen(_ cur: inout VerifierState, from old: VerifierState) {
        for f in cur.frames.indices where f < old.frames.count {
            for r in 0..<10 {
                let a = old.frames[f].registers[r]
                let b = cur.frames[f].registers[r]
                if a.type == .scalar, b.type == .scalar, a.bounds != b.bounds {
                    cur.frames[f].registers[r] = .unknownScalar
                }
            }
            for s in 0..<64 where cur.frames[f].stack.bytes[s * 8 + 7] == .spill {
                let a = old.frames[f].stack.spilled[s]
                let b = cur.frames[f].stack.spilled[s]
                if a.type == .scalar, b.type == .scalar, a.bounds != b.bounds {
                    cur.frames[f].stack.spilled[s] = .unknownScalar
                }
            }
        }
    }
}
