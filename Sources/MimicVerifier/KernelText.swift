import MimicCore

/// The kernel verifier's notation: instructions as `print_bpf_insn` writes them and register
/// states as `print_verifier_state` does.
enum KernelText {
    static func aluOperator(_ op: ALUOp) -> String {
        switch op {
        case .add: "+="
        case .sub: "-="
        case .mul: "*="
        case .div: "/="
        case .or: "|="
        case .and: "&="
        case .lsh: "<<="
        case .rsh: ">>="
        case .neg: "neg"
        case .mod: "%="
        case .xor: "^="
        case .mov: "="
        case .arsh: "s>>="
        case .end: "endian"
        }
    }

    static func jumpOperator(_ op: UInt8) -> String {
        switch op {
        case 0x10: "=="
        case 0x20: ">"
        case 0x30: ">="
        case 0x40: "&"
        case 0x50: "!="
        case 0x60: "s>"
        case 0x70: "s>="
        case 0xa0: "<"
        case 0xb0: "<="
        case 0xc0: "s<"
        case 0xd0: "s<="
        default: "?"
        }
    }

    static func sizeName(_ opcode: UInt8) -> String {
        switch opcode & 0x18 {
        case 0x00: "u32"
        case 0x08: "u16"
        case 0x10: "u8"
        default: "u64"
        }
    }

    static func hex(_ v: Int64) -> String {
        v < 0 ? "-0x" + String(UInt64(-(v + 1)) + 1, radix: 16) : "0x" + String(v, radix: 16)
    }

    static func signedOffset(_ off: Int16) -> String { off < 0 ? "\(off)" : "+\(off)" }

    /// One instruction, e.g. `(61) r2 = *(u32 *)(r1 +76)`.
    static func instruction(_ insns: [RawInstruction], at pc: Int, maps: [VerifierMap]) -> String {
        let i = insns[pc]
        let code = "(" + (i.opcode < 16 ? "0" : "") + String(i.opcode, radix: 16) + ") "
        let cls = i.opcode & 7
        let d = i.destination
        let s = i.source
        switch cls {
        case 0x04, 0x07:
            let p = cls == 0x07 ? "r" : "w"
            let op = ALUOp(rawValue: i.opcode & 0xf0) ?? .mov
            let srcText = i.opcode & 0x08 != 0 ? "\(p)\(s)" : "\(i.imm)"
            switch op {
            case .neg: return code + "\(p)\(d) = -\(p)\(d)"
            case .end:
                let kind = cls == 0x07 ? "bswap" : (i.opcode & 0x08 != 0 ? "be" : "le")
                return code + "r\(d) = \(kind)\(i.imm) r\(d)"
            case .mov where i.offset != 0 && i.opcode & 0x08 != 0:
                return code + "\(p)\(d) = (s\(i.offset))\(p)\(s)"
            default:
                let name = aluOperator(op)
                let sdiv = (op == .div || op == .mod) && i.offset == 1 ? "s" : ""
                return code + "\(p)\(d) \(sdiv)\(name) \(srcText)"
            }
        case 0x01:
            let sign = i.opcode & 0xe0 == 0x80 ? "s" : "u"
            let size = sizeName(i.opcode).dropFirst()
            return code + "r\(d) = *(\(sign)\(size) *)(r\(s) \(signedOffset(i.offset)))"
        case 0x02:
            return code + "*(\(sizeName(i.opcode)) *)(r\(d) \(signedOffset(i.offset))) = \(i.imm)"
        case 0x03:
            if i.opcode & 0xe0 == 0xc0 {
                let w = i.opcode & 0x18 == 0x18 ? "64" : "32"
                let target = "(\(sizeName(i.opcode)) *)(r\(d) \(signedOffset(i.offset)))"
                switch i.imm {
                case 0x00, 0x40, 0x50, 0xa0:
                    let op = aluOperator(ALUOp(rawValue: UInt8(i.imm)) ?? .add)
                    return code + "lock *\(target) \(op) r\(s)"
                case 0xe1: return code + "r\(s) = atomic\(w)_xchg(\(target), r\(s))"
                case 0xf1: return code + "r0 = atomic\(w)_cmpxchg(\(target), r0, r\(s))"
                default:
                    let names: [Int32: String] = [0x01: "add", 0x41: "or", 0x51: "and", 0xa1: "xor"]
                    return code + "r\(s) = atomic\(w)_fetch_\(names[i.imm] ?? "op")(\(target), r\(s))"
                }
            }
            return code + "*(\(sizeName(i.opcode)) *)(r\(d) \(signedOffset(i.offset))) = r\(s)"
        case 0x00:
            if i.opcode == 0x18, pc + 1 < insns.count {
                let next = insns[pc + 1]
                switch s {
                case 1, 5:
                    let name = Int(i.imm) < maps.count && i.imm >= 0 ? maps[Int(i.imm)].name : "\(i.imm)"
                    return code + "r\(d) = map[id:\(name)]"
                case 2, 6:
                    let name = Int(i.imm) < maps.count && i.imm >= 0 ? maps[Int(i.imm)].name : "\(i.imm)"
                    return code + "r\(d) = map[id:\(name)][0]+\(next.imm)"
                case 4:
                    return code + "r\(d) = func pc\(signedOffset(Int16(truncatingIfNeeded: i.imm)))"
                default:
                    let v = UInt64(UInt32(bitPattern: i.imm)) | (UInt64(UInt32(bitPattern: next.imm)) << 32)
                    return code + "r\(d) = 0x" + String(v, radix: 16)
                }
            }
            let size = sizeName(i.opcode)
            if i.opcode & 0xe0 == 0x40 { return code + "r0 = *(\(size) *)skb[r\(s) + \(i.imm)]" }
            return code + "r0 = *(\(size) *)skb[\(i.imm)]"
        default:
            let p = cls == 0x05 ? "r" : "w"
            switch i.opcode {
            case 0x95: return code + "exit"
            case 0x85:
                if s == 1 { return code + "call pc\(signedOffset(Int16(truncatingIfNeeded: i.imm)))" }
                if s == 2 { return code + "call kernel-function#\(i.imm)" }
                let name = HelperID(rawValue: i.imm).kernelName ?? "unknown"
                return code + "call \(name)#\(i.imm)"
            case 0x05: return code + "goto pc\(signedOffset(i.offset))"
            case 0x06: return code + "gotol pc\(i.imm >= 0 ? "+" : "")\(i.imm)"
            case 0xe5: return code + "may_goto pc\(signedOffset(i.offset))"
            default:
                let op = jumpOperator(i.opcode & 0xf0)
                let rhs = i.opcode & 0x08 != 0 ? "\(p)\(s)" : hex(Int64(i.imm))
                return code + "if \(p)\(d) \(op) \(rhs) goto pc\(signedOffset(i.offset))"
            }
        }
    }

    /// A scalar's bounds as the log prints them: `0`, `scalar()`, `scalar(umax=255,var_off=(0x0; 0xff))`.
    static func scalar(_ b: Scalar) -> String {
        if let c = b.constantValue { return "\(Int64(bitPattern: c))" }
        var parts: [String] = []
        if b.smin != .min { parts.append("smin=\(b.smin)") }
        if b.smax != .max { parts.append("smax=\(b.smax)") }
        if b.umin != 0 { parts.append("umin=\(b.umin)") }
        if b.umax != .max { parts.append("umax=\(b.umax)") }
        if b.s32min != .min { parts.append("smin32=\(b.s32min)") }
        if b.s32max != .max { parts.append("smax32=\(b.s32max)") }
        if b.u32min != 0 { parts.append("umin32=\(b.u32min)") }
        if b.u32max != .max { parts.append("umax32=\(b.u32max)") }
        if !b.varOff.isUnknown { parts.append("var_off=\(b.varOff)") }
        return "scalar(" + parts.joined(separator: ",") + ")"
    }

    static func scalarRange(_ b: Scalar) -> String {
        if let c = b.constantValue { return "value \(Int64(bitPattern: c))" }
        return "smin=\(b.smin) smax=\(b.smax)"
    }

    /// A register: `ctx()`, `pkt(off=14,r=34)`, `map_value_or_null(id=1,map=counts,ks=4,vs=8)`.
    static func register(_ r: Register, _ maps: [VerifierMap]) -> String {
        switch r.type {
        case .notInit: return "?"
        case .scalar: return scalar(r.bounds)
        case .stack: return "fp\(r.offset)" + (r.bounds.isConstant ? "" : "(var_off=\(r.bounds.varOff))")
        default:
            var parts: [String] = []
            if r.id != 0 { parts.append("id=\(r.id)") }
            if r.referenceID != 0 { parts.append("ref_obj_id=\(r.referenceID)") }
            if r.offset != 0 { parts.append("off=\(r.offset)") }
            if r.type.isPacket { parts.append("r=\(r.range)") }
            if r.type == .memory { parts.append("sz=\(r.range)") }
            if r.map >= 0, r.map < maps.count {
                let m = maps[r.map]
                parts.append("map=\(m.name)")
                parts.append("ks=\(m.keySize)")
                parts.append("vs=\(m.valueSize)")
            }
            if !r.bounds.isConstant { parts.append("var_off=\(r.bounds.varOff)") }
            // A BTF object is named by its struct: trusted_ptr_task_struct(off=8).
            let name = r.type == .btfObject ? r.typeName + r.btfName : r.typeName
            return name + "(" + parts.joined(separator: ",") + ")"
        }
    }

    static func frame(_ f: Frame, _ maps: [VerifierMap]) -> String {
        var parts: [String] = []
        for (n, r) in f.registers.enumerated() where r.isInitialized {
            parts.append("R\(n)=\(register(r, maps))")
        }
        var slot = 63
        while slot >= 0 {
            let bytes = f.stack.bytes[(slot * 8)..<(slot * 8 + 8)]
            if bytes.contains(where: { $0 != .invalid }) {
                let off = slot * 8 - Stack.size
                if bytes.allSatisfy({ $0 == .spill }) {
                    parts.append("fp\(off)=\(register(f.stack.spilled[slot], maps))")
                } else {
                    parts.append("fp\(off)=" + String(bytes.reversed().map(\.character)))
                }
            }
            slot -= 1
        }
        return parts.joined(separator: " ")
    }

    static func state(_ s: VerifierState, _ maps: [VerifierMap]) -> String {
        if s.frames.count == 1 { return frame(s.frames[0], maps) }
        return s.frames.enumerated().map { "frame\($0.offset): " + frame($0.element, maps) }.joined(separator: " ")
    }

    /// The kernel's message for a malformed instruction.
    static func encodingMessage(_ i: RawInstruction, _ problem: some CustomStringConvertible) -> String {
        let text = "\(problem)"
        if text.contains("unknown") {
            return "unknown opcode " + (i.opcode < 16 ? "0" : "") + String(i.opcode, radix: 16)
        }
        if text.contains("reserved") {
            return "\(i.instructionClass.cName) uses reserved fields"
        }
        if text.contains("register") || text.contains("r1") { return "R\(max(i.destination, i.source)) is invalid" }
        return text
    }
}
