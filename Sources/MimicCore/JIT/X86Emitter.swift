/// x86-64 general-purpose registers, by their encoding number.
enum X86Register: UInt8 {
    case rax = 0, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15

    var low: UInt8 { rawValue & 7 }
    var isExtended: Bool { rawValue >= 8 }
}

/// Condition codes for `jcc` (the low nibble of `0F 80+cc`).
enum X86Condition: UInt8 {
    case overflow = 0x0, below = 0x2, aboveEqual = 0x3, equal = 0x4, notEqual = 0x5
    case belowEqual = 0x6, above = 0x7, less = 0xC, greaterEqual = 0xD, lessEqual = 0xE, greater = 0xF

    var inverted: X86Condition { X86Condition(rawValue: rawValue ^ 1)! }
}

/// A label in emitted code: bound once, referenced by 32-bit relative jumps before or after.
struct X86Label: Hashable {
    let id: Int
}

/// Encodes x86-64 instructions into a byte buffer: the few forms the JIT needs, each written out
/// once. Memory operands are always `[base + disp8/disp32]` (never `mod = 00`, so `rbp`/`r13`
/// need no special case; `rsp`/`r12` get their SIB byte).
struct X86Emitter {
    private(set) var bytes: [UInt8] = []
    private var labelOffsets: [Int?] = []
    private var fixups: [(at: Int, label: Int)] = []

    var offset: Int { bytes.count }

    mutating func newLabel() -> X86Label {
        labelOffsets.append(nil)
        return X86Label(id: labelOffsets.count - 1)
    }

    mutating func bind(_ label: X86Label) { labelOffsets[label.id] = bytes.count }

    func offset(of label: X86Label) -> Int? { labelOffsets[label.id] }

    /// Patches every relative reference; false if a referenced label was never bound.
    mutating func resolveLabels() -> Bool {
        for fixup in fixups {
            guard let target = labelOffsets[fixup.label] else { return false }
            let relative = Int32(truncatingIfNeeded: target - (fixup.at + 4))
            withUnsafeBytes(of: relative.littleEndian) { raw in
                for (i, byte) in raw.enumerated() { bytes[fixup.at + i] = byte }
            }
        }
        return true
    }

    // MARK: Raw bytes

    mutating func byte(_ value: UInt8) { bytes.append(value) }

    mutating func int32(_ value: Int32) {
        let v = UInt32(bitPattern: value)
        bytes.append(contentsOf: [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)])
    }

    mutating func int64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    private mutating func rel32(_ label: X86Label) {
        fixups.append((bytes.count, label.id))
        int32(0)
    }

    /// REX prefix if needed: `w` for 64-bit operands, `force` for byte access to sil/dil/spl/bpl.
    private mutating func rex(w: Bool, reg: UInt8, index: UInt8 = 0, base: UInt8, force: Bool = false) {
        let value: UInt8 = 0x40 | (w ? 8 : 0) | ((reg >> 3) << 2) | ((index >> 3) << 1) | (base >> 3)
        if value != 0x40 || force { bytes.append(value) }
    }

    /// `prefix? REX opcode modrm(reg, [base + index + disp])` (`index` not rsp).
    mutating func memory(
        _ opcode: [UInt8], w: Bool, reg: UInt8, base: X86Register, index: X86Register? = nil, disp: Int32,
        prefix: UInt8? = nil, byteRegister: Bool = false
    ) {
        if let prefix { bytes.append(prefix) }
        rex(
            w: w, reg: reg, index: index?.rawValue ?? 0, base: base.rawValue, force: byteRegister && reg >= 4 && reg < 8
        )
        bytes.append(contentsOf: opcode)
        let small = disp >= -128 && disp <= 127
        if let index {
            bytes.append((small ? 0x40 : 0x80) | ((reg & 7) << 3) | 4) // rm 100: SIB
            bytes.append((index.low << 3) | base.low) // scale 1
        } else {
            bytes.append((small ? 0x40 : 0x80) | ((reg & 7) << 3) | base.low)
            if base.low == 4 { bytes.append(0x24) }
        }
        if small { bytes.append(UInt8(bitPattern: Int8(disp))) } else { int32(disp) }
    }

    /// `prefix? REX opcode modrm(reg, rm)` with a register operand.
    mutating func direct(
        _ opcode: [UInt8], w: Bool, reg: UInt8, rm: UInt8, prefix: UInt8? = nil, byteRegisters: Bool = false
    ) {
        if let prefix { bytes.append(prefix) }
        let force = byteRegisters && ((reg >= 4 && reg < 8) || (rm >= 4 && rm < 8))
        rex(w: w, reg: reg, base: rm, force: force)
        bytes.append(contentsOf: opcode)
        bytes.append(0xC0 | ((reg & 7) << 3) | (rm & 7))
    }

    // MARK: Moves and arithmetic

    /// `mov dst, src` (64-bit, or 32-bit zero-extending).
    mutating func mov(_ dst: X86Register, _ src: X86Register, w: Bool = true) {
        direct([0x89], w: w, reg: src.rawValue, rm: dst.rawValue)
    }

    /// `mov dst, imm`: the shortest form giving exactly `value` in 64 bits.
    mutating func mov(_ dst: X86Register, imm value: UInt64) {
        if value <= UInt64(UInt32.max) {
            rex(w: false, reg: 0, base: dst.rawValue)
            bytes.append(0xB8 + dst.low)
            int32(Int32(bitPattern: UInt32(value)))
        } else if Int64(bitPattern: value) >= Int64(Int32.min) && Int64(bitPattern: value) < 0 {
            direct([0xC7], w: true, reg: 0, rm: dst.rawValue)
            int32(Int32(truncatingIfNeeded: Int64(bitPattern: value)))
        } else {
            rex(w: true, reg: 0, base: dst.rawValue)
            bytes.append(0xB8 + dst.low)
            int64(value)
        }
    }

    /// Two-operand ALU op `op dst, src` (`0x01` add, `0x29` sub, `0x09` or, `0x21` and, `0x31` xor,
    /// `0x39` cmp, `0x85` test, `0x89` mov).
    mutating func alu(_ opcode: UInt8, _ dst: X86Register, _ src: X86Register, w: Bool) {
        direct([opcode], w: w, reg: src.rawValue, rm: dst.rawValue)
    }

    /// ALU op with a sign-extended 32-bit immediate (`81 /ext`; `ext`: 0 add, 1 or, 4 and, 5 sub,
    /// 6 xor, 7 cmp).
    mutating func alu(ext: UInt8, _ dst: X86Register, imm: Int32, w: Bool) {
        if imm >= -128 && imm <= 127 {
            direct([0x83], w: w, reg: ext, rm: dst.rawValue)
            bytes.append(UInt8(bitPattern: Int8(imm)))
        } else {
            direct([0x81], w: w, reg: ext, rm: dst.rawValue)
            int32(imm)
        }
    }

    /// `test dst, imm32` (sign-extended in 64-bit mode).
    mutating func test(_ dst: X86Register, imm: Int32, w: Bool) {
        direct([0xF7], w: w, reg: 0, rm: dst.rawValue)
        int32(imm)
    }

    /// `reg op [base + disp]` for load-op forms (`0x8B` mov, `0x03` add, `0x2B` sub, `0x3B` cmp, `0x23` and).
    mutating func load(_ opcode: UInt8, _ reg: X86Register, _ base: X86Register, _ disp: Int32, w: Bool = true) {
        memory([opcode], w: w, reg: reg.rawValue, base: base, disp: disp)
    }

    /// `mov [base + disp], reg` (64-bit).
    mutating func store(_ reg: X86Register, _ base: X86Register, _ disp: Int32) {
        memory([0x89], w: true, reg: reg.rawValue, base: base, disp: disp)
    }

    /// `mov qword [base + disp], imm32` (sign-extended).
    mutating func store(imm: Int32, _ base: X86Register, _ disp: Int32) {
        memory([0xC7], w: true, reg: 0, base: base, disp: disp)
        int32(imm)
    }

    /// `op qword [base + disp], imm32` (`81 /ext`).
    mutating func memoryALU(ext: UInt8, _ base: X86Register, _ disp: Int32, imm: Int32) {
        memory([0x81], w: true, reg: ext, base: base, disp: disp)
        int32(imm)
    }

    /// `lea dst, [base + disp]`.
    mutating func lea(_ dst: X86Register, _ base: X86Register, _ disp: Int32) {
        memory([0x8D], w: true, reg: dst.rawValue, base: base, disp: disp)
    }

    /// `rorx dst, src, imm` (BMI2, 64-bit): `dst` = `src` rotated right by `imm`; flags unchanged.
    mutating func rorx(_ dst: X86Register, _ src: X86Register, imm: UInt8) {
        let r: UInt8 = dst.rawValue >= 8 ? 0 : 0x80 // VEX.R̄
        let b: UInt8 = src.rawValue >= 8 ? 0 : 0x20 // VEX.B̄
        bytes += [0xC4, r | 0x40 | b | 0x03, 0xFB, 0xF0, 0xC0 | dst.low << 3 | src.low, imm] // 0F3A, W1 F2
    }

    /// Shift by an immediate (`C1 /ext`: 0 rol, 1 ror, 4 shl, 5 shr, 7 sar).
    mutating func shift(ext: UInt8, _ dst: X86Register, imm: UInt8, w: Bool, prefix: UInt8? = nil) {
        direct([0xC1], w: w, reg: ext, rm: dst.rawValue, prefix: prefix)
        bytes.append(imm)
    }

    /// Shift by `cl` (`D3 /ext`).
    mutating func shiftByCL(ext: UInt8, _ dst: X86Register, w: Bool) {
        direct([0xD3], w: w, reg: ext, rm: dst.rawValue)
    }

    /// `F7 /ext dst`: 3 neg, 6 div, 7 idiv.
    mutating func unary(ext: UInt8, _ dst: X86Register, w: Bool) {
        direct([0xF7], w: w, reg: ext, rm: dst.rawValue)
    }

    /// `imul dst, src`.
    mutating func imul(_ dst: X86Register, _ src: X86Register, w: Bool) {
        direct([0x0F, 0xAF], w: w, reg: dst.rawValue, rm: src.rawValue)
    }

    /// `imul dst, src, imm32`.
    mutating func imul(_ dst: X86Register, _ src: X86Register, imm: Int32, w: Bool) {
        direct([0x69], w: w, reg: dst.rawValue, rm: src.rawValue)
        int32(imm)
    }

    /// `bswap reg`.
    mutating func bswap(_ reg: X86Register, w: Bool) {
        rex(w: w, reg: 0, base: reg.rawValue)
        bytes.append(contentsOf: [0x0F, 0xC8 + reg.low])
    }

    /// Register-to-register extension: `movzx`/`movsx` (`0F B6`/`B7`/`BE`/`BF`) or `movsxd` (`63`).
    mutating func extend(_ opcode: [UInt8], _ dst: X86Register, _ src: X86Register, w: Bool) {
        direct(opcode, w: w, reg: dst.rawValue, rm: src.rawValue, byteRegisters: true)
    }

    /// `cqo` (64) or `cdq` (32).
    mutating func signExtendAccumulator(w: Bool) {
        if w { bytes.append(0x48) }
        bytes.append(0x99)
    }

    // MARK: Control flow

    mutating func jump(_ label: X86Label) {
        bytes.append(0xE9)
        rel32(label)
    }

    mutating func jump(_ condition: X86Condition, _ label: X86Label) {
        bytes.append(contentsOf: [0x0F, 0x80 + condition.rawValue])
        rel32(label)
    }

    /// `jmp reg`.
    mutating func jump(register: X86Register) { direct([0xFF], w: false, reg: 4, rm: register.rawValue) }

    /// `jmp [base + disp]`.
    mutating func jump(memory base: X86Register, _ disp: Int32) {
        memory([0xFF], w: false, reg: 4, base: base, disp: disp)
    }

    mutating func call(_ label: X86Label) {
        bytes.append(0xE8)
        rel32(label)
    }

    /// `call reg`.
    mutating func call(register: X86Register) { direct([0xFF], w: false, reg: 2, rm: register.rawValue) }

    /// `lea dst, [rip + label]`: the address of a label.
    mutating func leaAddress(_ dst: X86Register, of label: X86Label) {
        rex(w: true, reg: dst.rawValue, base: 0)
        bytes.append(0x8D)
        bytes.append(0x05 | (dst.low << 3)) // mod 00, rm 101: [rip + disp32]
        rel32(label)
    }

    /// `nop dword [rax + value]` (`0F 1F 80 imm32`): a 7-byte no-op whose bytes 3–6 carry `value`,
    /// for code that reads it back from the instruction's address.
    mutating func nop(carrying value: Int32) {
        bytes.append(contentsOf: [0x0F, 0x1F, 0x80])
        int32(value)
    }

    /// `push qword [base + disp]`.
    mutating func push(_ base: X86Register, _ disp: Int32) {
        memory([0xFF], w: false, reg: 6, base: base, disp: disp)
    }

    mutating func push(_ reg: X86Register) {
        if reg.isExtended { bytes.append(0x41) }
        bytes.append(0x50 + reg.low)
    }

    mutating func pop(_ reg: X86Register) {
        if reg.isExtended { bytes.append(0x41) }
        bytes.append(0x58 + reg.low)
    }

    mutating func ret() { bytes.append(0xC3) }

    mutating func int3() { bytes.append(0xCC) }
}
