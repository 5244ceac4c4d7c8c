import MimicCore

/// Precision tracking (`mark_chain_precision`, `backtrack_insn`, `propagate_precision`).
///
/// A stored state covers a later one when every register and stack slot that mattered on the
/// stored state's paths is covered. For scalars, "mattered" is decided lazily, as the kernel
/// decides it: a scalar is *precise* in a stored state when some instruction after it needed
/// its value (a pointer plus the scalar, a helper's argument, a branch its bounds decided, the
/// program's return value, a stack slot written as zero, an array key). Then the scalar's
/// history is walked back through the path — a copy hands the need to its source, a fill from
/// the stack to the slot, a spill to the register spilled — and each stored state it passes
/// marks what it reaches. A scalar no instruction needed covers any scalar (`regsafe`).
///
/// Where the walk meets what it does not follow (a BPF-to-BPF call or return, a callback, an
/// atomic operation on a tracked value, `LD_ABS`), every scalar of every state on the path
/// becomes precise, as the kernel's `mark_all_scalars_precise` does: less pruning, never wrong.
/// Programs with iterator or `may_goto` loops, whose loop states are compared before their
/// paths end, and unprivileged loaders keep every scalar precise.
struct PreciseMarks: Equatable {
    /// Registers R0–R9, one bit each.
    var registers: UInt16 = 0
    /// The 64 eight-byte stack slots, one bit each (slot i covers bytes 8i ..< 8i+8 of `Stack`).
    var slots: UInt64 = 0

    static let all = PreciseMarks(registers: 0x3ff, slots: .max)
    var isEmpty: Bool { registers == 0 && slots == 0 }
}

/// A register or an 8-byte stack slot of a frame.
struct Location: Equatable {
    var frame: Int
    var index: Int
    var isSlot: Bool
}

/// One instruction a path went through, for walking the path back (`bpf_jmp_history_entry`).
struct HistoryEntry {
    var pc: Int32
    /// The stack slot a spill wrote or a fill read, -1 for none (`INSN_F_STACK_ACCESS`).
    var stackFrame: Int8 = -1
    var stackSlot: Int8 = -1
    /// A conditional jump's linked scalars: every register and slot sharing an id with an
    /// operand, refined together (`linked_regs`); nil for none.
    var linked: [Location]? = nil
}

/// What a walk back still needs, per frame.
struct Needs {
    var marks: [PreciseMarks]

    init(frames: Int) { marks = [PreciseMarks](repeating: PreciseMarks(), count: max(frames, 1)) }

    var isEmpty: Bool { marks.allSatisfy(\.isEmpty) }

    func has(_ l: Location) -> Bool {
        guard l.frame < marks.count else { return false }
        return l.isSlot
            ? marks[l.frame].slots & (1 << UInt64(l.index)) != 0
            : marks[l.frame].registers & (1 << UInt16(l.index)) != 0
    }

    mutating func set(_ l: Location, _ on: Bool = true) {
        guard l.frame < marks.count, l.index >= 0 else { return }
        if l.isSlot {
            guard l.index < 64 else { return }
            if on {
                marks[l.frame].slots |= 1 << UInt64(l.index)
            } else {
                marks[l.frame].slots &= ~(1 << UInt64(l.index))
            }
        } else {
            guard l.index < 10 else { return }
            if on {
                marks[l.frame].registers |= 1 << UInt16(l.index)
            } else {
                marks[l.frame].registers &= ~(1 << UInt16(l.index))
            }
        }
    }
}

extension Analysis {
    /// Marks registers `registers` of the current frame precise on the current path (the
    /// instruction being checked needs their values).
    func markPrecise(_ s: VerifierState, registers: [Int]) {
        guard tracksPrecision else { return }
        var needs = Needs(frames: s.frames.count)
        let f = s.frames.count - 1
        for r in registers where s.frames[f].registers[r].type == .scalar {
            needs.set(Location(frame: f, index: r, isSlot: false))
        }
        walkBack(needs, frame: f)
    }

    /// Marks stack slot `slot` of frame `frame` precise on the current path.
    func markPrecise(_ s: VerifierState, frame: Int, slot: Int) {
        guard tracksPrecision else { return }
        var needs = Needs(frames: s.frames.count)
        needs.set(Location(frame: frame, index: slot, isSlot: true))
        walkBack(needs, frame: s.frames.count - 1)
    }

    /// After pruning the current path against `old`: what was precise in `old` and is live
    /// here is needed on the current path too, whose continuation `old`'s paths proved
    /// (`propagate_precision`).
    func propagatePrecision(from old: Checkpoint, _ cur: VerifierState, _ pc: Int) {
        guard tracksPrecision else { return }
        var needs = Needs(frames: cur.frames.count)
        for f in old.state.frames.indices where f < cur.frames.count && f < old.marks.count {
            let live = liveRegisters(cur, frame: f, pc: pc)
            for r in 0..<10 where old.marks[f].registers & (1 << UInt16(r)) != 0 && live & (1 << UInt16(r)) != 0 {
                if old.state.frames[f].registers[r].type == .scalar {
                    needs.set(Location(frame: f, index: r, isSlot: false))
                }
            }
            let liveSlots = cur.frames.count == 1 && pc < liveStack.count ? liveStack[pc] : .max
            for slot in 0..<64
            where old.marks[f].slots & (1 << UInt64(slot)) != 0 && liveSlots & (1 << UInt64(slot)) != 0 {
                if isSpilledScalar(old.state.frames[f].stack, slot) {
                    needs.set(Location(frame: f, index: slot, isSlot: true))
                }
            }
        }
        if !needs.isEmpty { walkBack(needs, frame: cur.frames.count - 1) }
    }

    func isSpilledScalar(_ stack: Stack, _ slot: Int) -> Bool {
        stack.spilled[slot].type == .scalar && (slot * 8..<slot * 8 + 8).contains { stack.bytes[$0] == .spill }
    }

    /// Walks the current path back from the instruction being checked, handing `needs` from
    /// register to register and slot, and marks them in each stored state it reaches
    /// (`__mark_chain_precision`). `frame` is the frame the path's instructions run in.
    private func walkBack(_ start: Needs, frame: Int) {
        var needs = start
        var segment = pathHistory
        var checkpoint = pathParent
        // The instruction after the one being walked back over (`subseq_idx`).
        var next = currentPC
        while true {
            for entry in segment.reversed() {
                guard backtrack(entry, next: next, frame: frame, &needs) else {
                    markAllPrecise()
                    return
                }
                next = Int(entry.pc)
                if needs.isEmpty { return }
            }
            guard let stored = checkpoint else { return }
            for f in needs.marks.indices {
                guard f < stored.state.frames.count, f < stored.marks.count else {
                    needs.marks[f] = PreciseMarks()
                    continue
                }
                for r in 0..<10 where needs.marks[f].registers & (1 << UInt16(r)) != 0 {
                    let here = Location(frame: f, index: r, isSlot: false)
                    // Marked already: the walk that marked it went on from there.
                    if stored.state.frames[f].registers[r].type != .scalar
                        || stored.marks[f].registers & (1 << UInt16(r)) != 0
                    {
                        needs.set(here, false)
                    } else {
                        stored.marks[f].registers |= 1 << UInt16(r)
                    }
                }
                for slot in 0..<64 where needs.marks[f].slots & (1 << UInt64(slot)) != 0 {
                    let here = Location(frame: f, index: slot, isSlot: true)
                    if !isSpilledScalar(stored.state.frames[f].stack, slot)
                        || stored.marks[f].slots & (1 << UInt64(slot)) != 0
                    {
                        needs.set(here, false)
                    } else {
                        stored.marks[f].slots |= 1 << UInt64(slot)
                    }
                }
            }
            if needs.isEmpty { return }
            next = stored.pc
            segment = stored.history
            checkpoint = stored.parent
        }
    }

    /// Every scalar of every stored state on the current path becomes precise
    /// (`mark_all_scalars_precise`).
    func markAllPrecise() {
        var checkpoint = pathParent
        while let stored = checkpoint, !stored.allPrecise {
            for f in stored.marks.indices { stored.marks[f] = .all }
            stored.allPrecise = true // and so, by the time this loop ends, are its ancestors
            checkpoint = stored.parent
        }
    }

    /// Hands what the path needs after instruction `entry` to what it needs before it; false
    /// when the walk cannot follow (`backtrack_insn`).
    private func backtrack(_ entry: HistoryEntry, next: Int, frame f: Int, _ needs: inout Needs) -> Bool {
        let pc = Int(entry.pc)
        let i = insns[pc]
        func register(_ r: Int) -> Location { Location(frame: f, index: r, isSlot: false) }
        let dst = register(Int(i.destination))
        let src = register(Int(i.source))
        let slot =
            entry.stackSlot >= 0
            ? Location(frame: Int(entry.stackFrame), index: Int(entry.stackSlot), isSlot: true) : nil
        let srcIsReg = i.opcode & 0x08 != 0
        switch i.opcode & 7 {
        case 0x04, 0x07: // ALU, ALU64
            guard needs.has(dst) else { return true }
            switch i.opcode & 0xf0 {
            case 0xd0, 0x80: return true // byte swap, negation: the same register before
            case 0xb0: // mov: the source before, or a constant
                needs.set(dst, false)
                if srcIsReg { needs.set(src) }
            default:
                if srcIsReg { needs.set(src) }
            }
            return true
        case 0x01: // LDX: a fill from a spilled slot hands the need to the slot
            guard needs.has(dst) else { return true }
            needs.set(dst, false)
            if let slot { needs.set(slot) }
            return true
        case 0x02, 0x03: // ST, STX
            if i.opcode & 0xe0 == 0xc0 {
                // A load-acquire sets its destination from memory: not followed.
                if i.imm == 0x100 { return !needs.has(dst) }
                // Atomics: a fetch (`BPF_FETCH`, which xchg and cmpxchg carry too) writes the
                // source register, cmpxchg R0.
                if needs.has(src) && i.imm & 1 != 0 { return false }
                if needs.has(register(0)) && i.imm == 0xf1 { return false }
                if let slot, needs.has(slot) { return false }
                return true
            }
            if needs.has(dst) { return false } // a scalar used as an address: not expected
            guard let slot, needs.has(slot) else { return true }
            needs.set(slot, false)
            if i.opcode & 7 == 0x03 { needs.set(src) }
            return true
        case 0x00: // LD: lddw sets its register; LD_ABS / LD_IND are not followed
            if i.opcode == 0x18 {
                needs.set(dst, false)
                return true
            }
            return (0...5).allSatisfy { !needs.has(register($0)) }
        default: // JMP, JMP32
            let op = i.opcode & 0xf0
            if i.opcode & 7 == 0x05 && op == 0x80 { // call
                // BPF-to-BPF calls and helpers that ran a callback continue elsewhere.
                if i.source == 1 || next != pc + 1 { return false }
                needs.set(register(0), false)
                return (1...5).allSatisfy { !needs.has(register($0)) }
            }
            if i.opcode & 7 == 0x05 && op == 0x90 { return false } // exit: another frame
            if op == 0x00 { return true } // ja
            if i.opcode == 0xe5 { return false } // may_goto
            syncLinked(entry, &needs)
            if srcIsReg, needs.has(dst) || needs.has(src) {
                needs.set(dst)
                needs.set(src)
            }
            syncLinked(entry, &needs)
            return true
        }
    }

    /// A conditional jump refined its operands' linked scalars together: needing one of them
    /// needs all (`bt_sync_linked_regs`).
    private func syncLinked(_ entry: HistoryEntry, _ needs: inout Needs) {
        guard let linked = entry.linked, linked.contains(where: { needs.has($0) }) else { return }
        for l in linked { needs.set(l) }
    }

    /// The registers and spilled slots sharing an id with `ids`' scalars, for a conditional
    /// jump's history entry.
    func linkedLocations(_ s: VerifierState, ids: [UInt32]) -> [Location]? {
        let wanted = ids.filter { $0 != 0 }
        guard tracksPrecision, !wanted.isEmpty else { return nil }
        var found: [Location] = []
        for f in s.frames.indices {
            for r in 0..<10 {
                let reg = s.frames[f].registers[r]
                if reg.type == .scalar, reg.id != 0, wanted.contains(reg.baseID) {
                    found.append(Location(frame: f, index: r, isSlot: false))
                }
            }
            for slot in 0..<64 where isSpilledScalar(s.frames[f].stack, slot) {
                let reg = s.frames[f].stack.spilled[slot]
                if reg.id != 0, wanted.contains(reg.baseID) {
                    found.append(Location(frame: f, index: slot, isSlot: true))
                }
            }
        }
        return found.count > 1 ? found : nil
    }
}
