import MimicCore

/// Which 8-byte stack slots of the main program's frame a later instruction may read, from a
/// static pass: the kernel ignores slots without read marks when it compares states
/// (`stacksafe`), so states that differ only in slots that are overwritten before any read prune.
extension Analysis {
    /// What a register may hold, statically: not a stack pointer, `fp + c`, or unknown.
    enum FramePointer: Equatable {
        case unreached
        case notStack
        case fp(Int64)
        case maybe

        func join(_ other: FramePointer) -> FramePointer {
            if self == .unreached { return other }
            if other == .unreached || self == other { return self }
            return .maybe
        }
    }

    /// Slots 0..<64 (slot `i` covers `fp - 512 + 8i ..< fp - 512 + 8i + 8`) read from `pc` on,
    /// for states with one frame; filled by `computeStackLiveness`.
    func computeStackLiveness(_ isSecondSlot: [Bool]) {
        let n = insns.count
        // Forward: which registers may point into the main frame's stack before each instruction.
        var before = [[FramePointer]](repeating: [FramePointer](repeating: .unreached, count: 11), count: n)
        guard n > 0 else { return }
        var entry = [FramePointer](repeating: .notStack, count: 11)
        entry[10] = .fp(0)
        before[0] = entry
        let succ: [[Int]] = insns.indices.map { isSecondSlot[$0] ? [] : successors($0).filter { $0 < n } }
        var work = [0]
        var queued = [Bool](repeating: false, count: n)
        queued[0] = true
        while let pc = work.popLast() {
            queued[pc] = false
            let after = transfer(before[pc], insns[pc])
            for t in succ[pc] {
                var joined = before[t]
                for r in 0..<11 { joined[r] = joined[r].join(after[r]) }
                if joined != before[t] {
                    before[t] = joined
                    if !queued[t] {
                        queued[t] = true
                        work.append(t)
                    }
                }
            }
        }
        // Backward: slots read before they are overwritten whole.
        let effects: [(use: UInt64, kill: UInt64)] = insns.indices.map { pc in
            isSecondSlot[pc] || before[pc][10] == .unreached ? (0, 0) : slotEffects(before[pc], insns[pc])
        }
        liveStack = [UInt64](repeating: 0, count: n)
        var changed = true
        while changed {
            changed = false
            for pc in stride(from: n - 1, through: 0, by: -1) where !isSecondSlot[pc] {
                var out: UInt64 = 0
                for t in succ[pc] { out |= liveStack[t] }
                let value = effects[pc].use | (out & ~effects[pc].kill)
                if value != liveStack[pc] {
                    liveStack[pc] = value
                    changed = true
                }
            }
        }
    }

    private func transfer(_ regs: [FramePointer], _ i: RawInstruction) -> [FramePointer] {
        var r = regs
        let d = Int(i.destination & 0xf)
        let s = Int(i.source & 0xf)
        guard d <= 10, s <= 10 else { return r }
        switch i.opcode & 7 {
        case 0x07: // ALU64
            let op = i.opcode & 0xf0
            let fromRegister = i.opcode & 0x08 != 0
            if op == 0xb0 {
                r[d] = fromRegister ? regs[s] : .notStack
            } else if op == 0x00 || op == 0x10, !fromRegister, case .fp(let c) = regs[d] {
                r[d] = .fp(op == 0x00 ? c + Int64(i.imm) : c - Int64(i.imm))
            } else if regs[d] == .notStack, !(fromRegister && regs[s] != .notStack) {
                r[d] = .notStack
            } else {
                r[d] = .maybe
            }
        case 0x04: // ALU32: never a pointer
            r[d] = .notStack
        case 0x01: // LDX: a fill from the stack may give back a stack pointer
            r[d] = regs[s] == .notStack ? .notStack : .maybe
        case 0x03: // atomics that fetch
            if i.opcode & 0xe0 == 0xc0 {
                let loaded: FramePointer = regs[d] == .notStack ? .notStack : .maybe
                if i.imm == 0xf1 { r[0] = loaded } else if i.imm & 1 != 0 { r[s] = loaded }
            }
        case 0x00:
            if isLoadImm64(i) { r[d] = .notStack } else { for k in 0...5 { r[k] = .notStack } }
        case 0x05, 0x06:
            if isCall(i) { for k in 0...5 { r[k] = .notStack } }
        default:
            break
        }
        return r
    }

    /// Slots an instruction may read (`use`) and slots it overwrites whole (`kill`).
    private func slotEffects(_ regs: [FramePointer], _ i: RawInstruction) -> (use: UInt64, kill: UInt64) {
        let all = UInt64.max
        /// Slots from `fp + c` up to the top of the frame.
        func fromOffset(_ c: Int64) -> UInt64 {
            let first = (Int64(Stack.size) + c) / 8
            guard first < 64 else { return 0 }
            guard first > 0 else { return all }
            return all << UInt64(first)
        }
        func slots(_ base: FramePointer, _ off: Int64, _ size: Int) -> UInt64 {
            switch base {
            case .unreached, .notStack: return 0
            case .maybe: return all
            case .fp(let c):
                let low = Int64(Stack.size) + c + off
                let high = low + Int64(size)
                guard low >= 0, high <= Int64(Stack.size), size > 0 else { return all }
                var mask: UInt64 = 0
                for slot in (low / 8)...((high - 1) / 8) { mask |= 1 << UInt64(slot) }
                return mask
            }
        }
        let d = Int(i.destination & 0xf)
        let s = Int(i.source & 0xf)
        guard d <= 10, s <= 10 else { return (all, 0) }
        let size = accessSize(i.opcode)
        switch i.opcode & 7 {
        case 0x01:
            return (slots(regs[s], Int64(i.offset), size), 0)
        case 0x02, 0x03:
            if i.opcode & 0xe0 == 0xc0 { return (slots(regs[d], Int64(i.offset), size), 0) }
            if size == 8, case .fp(let c) = regs[d], (c + Int64(i.offset)) % 8 == 0 {
                return (0, slots(regs[d], Int64(i.offset), 8))
            }
            return (0, 0)
        case 0x05, 0x06:
            guard isCall(i) else { return (0, 0) }
            // A sub-program may read the caller's stack through any pointer.
            if i.source == 1 { return (all, 0) }
            var use: UInt64 = 0
            for k in 1...5 {
                switch regs[k] {
                case .fp(let c): use |= fromOffset(c)
                case .maybe: use = all
                default: break
                }
            }
            return (use, 0)
        default:
            return (0, 0)
        }
    }
}
