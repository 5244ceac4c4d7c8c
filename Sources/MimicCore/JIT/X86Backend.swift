/// The x86-64 code generator: one pass over the pre-decoded program, eBPF registers pinned to
/// host registers, every memory access checked inline against the translation table.
///
/// Register assignment (as the Linux kernel's x86 JIT): R0 rax, R1 rdi, R2 rsi, R3 rdx, R4 rcx,
/// R5 r8, R6 rbx, R7 r13, R8 r14, R9 r15, R10 rbp. `r12` points to the context words
/// (`JITSlot`); `r10` holds the instruction count (`JITSlot.count` is only written when the code
/// leaves or calls out: `spill`/`reload`); `r9` and `r11` are scratch (`r9` carries a status
/// after a call out). Code that calls out directly must preserve `r10` or go through
/// `spill`/`reload`. The code is entered through its entry function
/// `(context, native address) -> status` (System V ABI), which saves the callee-saved registers,
/// loads R0–R10 and the count and jumps to the address; every way out stores them back.
///
/// Instruction counting matches the interpreter exactly (`Program.runLength`): where a
/// straight-line run starts (the entry, a taken jump, a call target, after a helper call, a
/// return) the code compares the count with the checkpoint, leaves for the driver when it is
/// reached, and otherwise adds the whole run's length; a taken conditional jump first takes
/// back the instructions of its run it skips. Faults and early exits are settled by the Swift
/// side the same way (`Process.settleCount`).
enum X86Backend: JITBackend {
    static let registerMap: [X86Register] = [.rax, .rdi, .rsi, .rdx, .rcx, .r8, .rbx, .r13, .r14, .r15, .rbp]

    static func compile(_ program: Program, environment: JITEnvironment) -> MachineCode? {
        var generator = X86Generator(program: program, environment: environment)
        return generator.generate()
    }
}

private struct X86Generator {
    let code: UnsafeMutableBufferPointer<DecodedInstruction>
    /// The program's helper table, indexed by the `imm` of pre-decoded helper calls.
    let helpers: [Helper]
    let env: JITEnvironment
    var a = X86Emitter()

    /// Per slot: the label of its code, and of its run-start check (for slots where runs start).
    var body: [X86Label] = []
    var check: [X86Label?] = []
    var isSecondHalf: [Bool] = []

    // Shared routines.
    var epilogue = X86Label(id: -1)
    var callSwift = X86Label(id: -1)
    var dynamicEnter = X86Label(id: -1)
    var dynamicFromContext = X86Label(id: -1)
    var exited = X86Label(id: -1)
    /// Native frames (`nativeFrames`): the outermost return address (an exit at the exit depth,
    /// r11 = the pc after it), the return address of frames pushed before the code was entered,
    /// and the routine that copies native frames into `Process.frames`.
    var exitedAtR11 = X86Label(id: -1)
    /// An `exit` at the exit depth with no native frame left (`rsp` at the machine-stack word,
    /// r11 = the pc after it): jumped to, not returned to (see `.exit`).
    var exitedAtTop = X86Label(id: -1)
    var olderReturn = X86Label(id: -1)
    var syncFrames = X86Label(id: -1)

    /// Slots whose dynamic entry (`bodyOffsets`, for a run resumed there) is not their inline
    /// code: a stub before it (`conditionalJump`'s compare left out), or the checked copy of an
    /// access group in cold code (`emitGroup`).
    var entryStubs: [(pc: Int, label: X86Label)] = []

    /// Cold paths, emitted after the program: each binds its label and returns.
    var cold: [(X86Label, (inout X86Generator) -> Void)] = []

    /// The last slot of the last access group emitted (-1: none yet).
    var lastGroupEnd = -1

    /// Whether BPF-to-BPF calls keep their frames on the machine stack (`call`/`ret`, the
    /// caller's R6–R10 pushed; `Process.frames` and the depth word are written from them only
    /// when the code leaves or calls host code): with a call depth small enough that the native
    /// frames (48 bytes each) cannot strain the thread's stack. Otherwise calls use
    /// `Process.frames` and the depth word directly and return through the pc table.
    let nativeFrames: Bool

    /// Per function (a `callLocal` target): which of R6–R9 (bit k: R6 + k) it, or a function it
    /// calls, may write. A call saves only those (`NativeFrame`); the others keep the caller's
    /// values through the call.
    var calleeSavedWrites: [Int: UInt8] = [:]

    /// The eBPF registers the code keeps in host registers (`spill`/`reload`, the entry and every
    /// exit): see `keptRegisters(of:)`.
    let kept: [Int]
    /// The kept registers the code may write (`writtenRegisters(of:)`): `spill` and every exit
    /// store only these. The others hold what the entry (or the last `reload`) loaded from
    /// `Process.registers`, which still holds the same.
    let stored: [Int]

    /// The callee-saved host registers the entry saves and every way out restores: all six, or,
    /// when the code keeps none of R6–R9 (so never writes rbx, r13–r15: no BPF-to-BPF call, no
    /// `callx`, none of them named), only `rbp` (R10) and `r12` (the context) — an even count
    /// either way, so `rsp` keeps its alignment. Without them, the routines that keep a value
    /// across a call keep it on the stack instead of in `rbx`.
    var savedHostRegisters: [X86Register] {
        savesCalleeRegisters ? [.rbx, .rbp, .r12, .r13, .r14, .r15] : [.rbp, .r12]
    }
    var savesCalleeRegisters: Bool { kept.contains { $0 >= 6 && $0 <= 9 } }

    /// Whether the program has a BPF-to-BPF call or a `callx` (what native frames come from).
    let makesCalls: Bool

    init(program: Program, environment: JITEnvironment) {
        code = program.code
        helpers = program.helpers
        env = environment
        nativeFrames = environment.maxCallDepth <= 64
        kept = Self.keptRegisters(of: program.code)
        makesCalls = program.code.contains {
            let shape = InstructionSet.form(of: $0.operation).shape
            return shape == .callLocal || shape == .callRegister
        }
        let written = Self.writtenRegisters(of: program.code)
        stored = kept.filter { written[$0] }
    }

    /// Per register, whether an instruction can write it in a host register: R0 (calls, packet
    /// loads, atomics), the destination of ALU, load and `lddw` forms, the source of atomics
    /// (fetch forms write it back); every register with a BPF-to-BPF call or `callx` (frames
    /// change R6–R10). Stores, jumps and helper calls write none of R1–R10: the inline and
    /// direct calls keep R1–R5, and a call through Swift reloads them from `Process.registers`.
    static func writtenRegisters(of code: UnsafeMutableBufferPointer<DecodedInstruction>) -> [Bool] {
        var written = [Bool](repeating: false, count: Registers.count)
        written[0] = true
        for i in code {
            let d = Int(i.destination)
            let s = Int(i.source)
            switch InstructionSet.form(of: i.operation).shape {
            case .callLocal, .callRegister:
                return [Bool](repeating: true, count: Registers.count)
            case .aluImm, .aluReg, .unary, .load, .loadImm64:
                guard d < Registers.count else { return [Bool](repeating: true, count: Registers.count) }
                written[d] = true
            case .atomic:
                guard s < Registers.count else { return [Bool](repeating: true, count: Registers.count) }
                written[s] = true
            case .storeImm, .storeReg, .packetAbsolute, .packetIndirect, .jump, .jump32, .jumpImm, .jumpReg,
                .callHelper, .none:
                break
            }
        }
        return written
    }

    /// The registers the code may read or write: R0 (exits, calls) and R10, those an instruction
    /// names (its destination and source fields, whether or not its form uses them), R1–R5 with
    /// a helper call (the inline and direct calls read their arguments from host registers),
    /// R0–R6 with `ld_abs`/`ld_ind`; all of them with a BPF-to-BPF call or a `callx` (frames
    /// save and restore R6–R10). The others the code never touches: `Process.registers` holds
    /// them throughout, so the entry does not load them and no exit stores them.
    static func keptRegisters(of code: UnsafeMutableBufferPointer<DecodedInstruction>) -> [Int] {
        var used = [Bool](repeating: false, count: Registers.count)
        used[0] = true
        used[10] = true
        func mark(_ range: ClosedRange<Int>) { for r in range { used[r] = true } }
        for i in code {
            switch InstructionSet.form(of: i.operation).shape {
            case .callLocal, .callRegister: return Array(0..<Registers.count)
            case .callHelper: mark(1...5)
            default: break
            }
            switch i.operation {
            case .loadPacketAbsolute32, .loadPacketAbsolute16, .loadPacketAbsolute8,
                .loadPacketIndirect32, .loadPacketIndirect16, .loadPacketIndirect8:
                mark(0...6)
            default: break
            }
            let d = Int(i.destination)
            let s = Int(i.source)
            if d < Registers.count { used[d] = true } else { return Array(0..<Registers.count) }
            if s < Registers.count { used[s] = true } else { return Array(0..<Registers.count) }
        }
        return used.indices.filter { used[$0] }
    }

    func x(_ register: UInt8) -> X86Register { X86Backend.registerMap[Int(register)] }

    func runLength(_ pc: Int) -> Int { Int(Program.runLength(UnsafePointer(code.baseAddress!), pc)) }

    func context(_ slot: Int) -> Int32 { Int32(slot * 8) }

    mutating func generate() -> MachineCode? {
        let n = code.count
        guard n > 0, env.slotEntryStride == 32, env.stackSize < Int(Int32.max) else { return nil }
        isSecondHalf = [Bool](repeating: false, count: n)
        var pc = 0
        while pc < n {
            if code[pc].operation == .loadImm64, pc + 1 < n {
                isSecondHalf[pc + 1] = true
                pc += 2
            } else {
                pc += 1
            }
        }
        // Where runs start by a static edge: jump and call targets, and after helper calls.
        var runStart = [Bool](repeating: false, count: n)
        for pc in 0..<n where !isSecondHalf[pc] {
            let i = code[pc]
            switch InstructionSet.form(of: i.operation).shape {
            case .jump, .jump32, .jumpImm, .jumpReg, .callLocal:
                let target = Int(i.offset)
                guard target >= 0, target < n, !isSecondHalf[target] else { return nil }
                runStart[target] = true
                if nativeFrames, i.operation == .callLocal {
                    // The return lands at the call site and falls into this check.
                    guard pc + 1 < n else { return nil }
                    runStart[pc + 1] = true
                }
            case .callHelper, .callRegister:
                guard pc + 1 < n else { return nil }
                runStart[pc + 1] = true
            default: break
            }
        }
        if nativeFrames {
            guard n < NativeFrame.maxPC else { return nil }
            calleeSavedWrites = findCalleeSavedWrites()
        }
        body = (0..<n).map { _ in a.newLabel() }
        check = (0..<n).map { runStart[$0] ? a.newLabel() : nil }
        epilogue = a.newLabel()
        callSwift = a.newLabel()
        dynamicEnter = a.newLabel()
        dynamicFromContext = a.newLabel()
        exited = a.newLabel()
        exitedAtR11 = a.newLabel()
        exitedAtTop = a.newLabel()
        olderReturn = a.newLabel()
        syncFrames = a.newLabel()

        let entryOffset = a.offset
        emitPrologue()
        emitSharedRoutines()

        var bodyOffsets = [Int](repeating: -1, count: n)
        var groupEnd = -1 // the last slot of the access group being emitted
        for pc in 0..<n where !isSecondHalf[pc] && pc > groupEnd {
            if let label = check[pc] {
                if pc > 0, fallsThroughMidRun(previous(pc)) {
                    a.jump(body[pc])
                } else if pc > 0, callsOut(previous(pc)) {
                    emitFramePointerCheck(pc)
                }
                a.bind(label)
                emitRunStartCheck(pc)
            }
            a.bind(body[pc])
            bodyOffsets[pc] = a.offset
            if let group = accessGroup(at: pc) {
                emitGroup(group)
                groupEnd = group.last
                lastGroupEnd = group.last
                continue
            }
            guard emit(pc) else { return nil }
        }
        var index = 0
        while index < cold.count {
            let (label, emitter) = cold[index]
            a.bind(label)
            emitter(&self)
            index += 1
        }
        let quickEntryOffset = a.offset
        emitQuickEntry(slot0: entryStubs.first { $0.pc == 0 }?.label ?? body[0])
        for (pc, label) in entryStubs { bodyOffsets[pc] = a.offset(of: label) ?? -1 }
        guard a.resolveLabels() else { return nil }
        return MachineCode(
            bytes: a.bytes, bodyOffsets: bodyOffsets, entryOffset: entryOffset, quickEntryOffset: quickEntryOffset)
    }

    func previous(_ pc: Int) -> Int { pc >= 2 && isSecondHalf[pc - 1] ? pc - 2 : pc - 1 }

    /// Whether control reaches the next slot from `pc` without starting a new run.
    func fallsThroughMidRun(_ pc: Int) -> Bool {
        switch InstructionSet.form(of: code[pc].operation).shape {
        case .jump, .jump32, .none, .callLocal, .callHelper, .callRegister: return false
        default: return true
        }
    }

    /// Whether the instruction at `pc` runs host code that could write R10 on every way through
    /// it (`callx`). A helper call checks R10 on its general path only (`helperCall`): inline
    /// code and C-ABI entries cannot move it.
    func callsOut(_ pc: Int) -> Bool {
        InstructionSet.form(of: code[pc].operation).shape == .callRegister
    }

    // MARK: Entry, exit and shared routines

    /// Stores R0–R10 (those the code may have changed: `stored`) in `Process.registers` and the
    /// count (`r10`) in its context word;
    /// `scratch` (r9 or r11) is overwritten.
    mutating func spill(via scratch: X86Register) {
        a.store(.r10, .r12, context(JITSlot.count))
        a.load(0x8B, scratch, .r12, context(JITSlot.registers))
        for index in stored { a.store(X86Backend.registerMap[index], scratch, Int32(index * 8)) }
    }

    /// Loads R0–R10 from `Process.registers` and the count into `r10`; `scratch` is overwritten.
    mutating func reload(via scratch: X86Register) {
        a.load(0x8B, scratch, .r12, context(JITSlot.registers))
        for index in kept { a.load(0x8B, X86Backend.registerMap[index], scratch, Int32(index * 8)) }
        a.load(0x8B, .r10, .r12, context(JITSlot.count))
    }

    /// The entry function `(context, native address) -> status`. With native frames, the
    /// outermost return address is `exitedAtR11`, and the frames between the exit depth and the
    /// depth at entry (pushed by `step()` or before the driver re-entered after a budget check)
    /// become native frames returning to `olderReturn`, so every `exit` is a `ret`.
    mutating func emitPrologue() {
        emitEntryFrame()
        if nativeFrames {
            let loop = a.newLabel()
            let done = a.newLabel()
            a.load(0x8B, .rax, .r12, context(JITSlot.exitDepth))
            a.bind(loop)
            a.load(0x3B, .rax, .r12, context(JITSlot.depth))
            a.jump(.aboveEqual, done)
            a.push(.rax) // an older frame: its depth and `olderReturn` (`NativeFrame`)
            a.leaAddress(.r11, of: olderReturn)
            a.push(.r11)
            a.alu(ext: 0, .rax, imm: 1, w: true)
            a.jump(loop)
            a.bind(done)
        }
        a.mov(.r9, .rsi)
        reload(via: .r11)
        a.jump(register: .r9)
    }

    /// What both entry functions start with: the callee-saved registers pushed, `r12` = the
    /// context (`rdi`), the outermost return address (or a pad) and the machine-stack word.
    mutating func emitEntryFrame() {
        for register in savedHostRegisters { a.push(register) }
        a.mov(.r12, .rdi)
        if nativeFrames {
            a.leaAddress(.r11, of: exitedAtR11) // in place of `sub rsp, 8`: 16-byte alignment
            a.push(.r11)
        } else {
            a.alu(ext: 5, .rsp, imm: 8, w: true) // 16-byte alignment for calls
        }
        a.store(.rsp, .r12, context(JITSlot.machineStack))
    }

    /// The quick entry function `(context) -> status` (`Process.enterArmed`): a run from slot 0
    /// at depth 0 with exit depth 0 (a reset process), so no frame to push; the count is slot
    /// 0's run length (the context's count word is not read), and the jump to slot 0's code
    /// (`slot0`, its pc-table address) is direct.
    mutating func emitQuickEntry(slot0: X86Label) {
        emitEntryFrame()
        a.load(0x8B, .r11, .r12, context(JITSlot.registers))
        for index in kept { a.load(0x8B, X86Backend.registerMap[index], .r11, Int32(index * 8)) }
        a.mov(.r10, imm: UInt64(runLength(0)))
        a.jump(slot0)
    }

    mutating func emitSharedRoutines() {
        // epilogue: r9 = status.
        a.bind(epilogue)
        spill(via: .r11)
        if nativeFrames {
            // `syncFrames`' common case inline: no native frames, the depth is the exit depth.
            let walk = a.newLabel()
            let synced = a.newLabel()
            a.load(0x3B, .rsp, .r12, context(JITSlot.machineStack))
            a.jump(.below, walk)
            a.load(0x8B, .r11, .r12, context(JITSlot.exitDepth))
            a.store(.r11, .r12, context(JITSlot.depth))
            a.bind(synced)
            cold.append(
                (
                    walk,
                    { g in
                        g.a.mov(.rdx, .rsp)
                        g.keepAcrossSyncFrames(.r9) // the status
                        g.a.jump(synced)
                    }
                ))
        }
        a.mov(.rax, .r9)
        a.load(0x8B, .rsp, .r12, context(JITSlot.machineStack)) // drops native frames of BPF calls
        a.alu(ext: 0, .rsp, imm: 8, w: true)
        for register in savedHostRegisters.reversed() { a.pop(register) }
        a.ret()

        if nativeFrames {
            a.bind(exitedAtTop)
            a.alu(ext: 0, .rsp, imm: 8, w: true) // the outermost return address, not returned through
        }
        a.bind(exitedAtR11)
        a.store(.r11, .r12, context(JITSlot.pc))
        if nativeFrames {
            // The common exit, an `exit` at the exit depth returning here: `rsp` is just above the
            // outermost return address (the machine-stack word + 8), no native frame is left and
            // the depth is the exit depth: the epilogue without its checks.
            spill(via: .r11)
            a.load(0x8B, .r11, .r12, context(JITSlot.exitDepth))
            a.store(.r11, .r12, context(JITSlot.depth))
            a.mov(.rax, imm: JITStatus.exited)
            for register in savedHostRegisters.reversed() { a.pop(register) }
            a.ret()
        }
        a.bind(exited)
        a.mov(.r9, imm: JITStatus.exited)
        a.jump(epilogue)

        // callSwift: r11 = C-ABI entry; registers spilled around the call; r9 = its status.
        a.bind(callSwift)
        a.alu(ext: 5, .rsp, imm: 8, w: true)
        spill(via: .r9)
        a.store(.rbp, .r12, context(JITSlot.hostCallR10))
        if nativeFrames {
            a.lea(.rdx, .rsp, 16) // the code's `rsp`: above this routine's return address and pad
            keepAcrossSyncFrames(.r11) // the entry
        }
        a.mov(.rdi, .r12)
        a.call(register: .r11)
        a.mov(.r9, .rax)
        reload(via: .r11)
        a.alu(ext: 0, .rsp, imm: 8, w: true)
        a.ret()

        // dynamicEnter: r11 = the pc where a run starts (a return, a `callx` target).
        let slow = a.newLabel()
        a.bind(dynamicFromContext)
        a.load(0x8B, .r11, .r12, context(JITSlot.pc))
        a.bind(dynamicEnter)
        a.load(0x3B, .r10, .r12, context(JITSlot.checkpoint))
        a.jump(.aboveEqual, slow)
        a.shift(ext: 4, .r11, imm: 4, w: true)
        a.load(0x03, .r11, .r12, context(JITSlot.pcTable))
        a.load(0x03, .r10, .r11, 8)
        a.jump(memory: .r11, 0)
        a.bind(slow)
        a.store(.r11, .r12, context(JITSlot.pc))
        a.mov(.r9, imm: JITStatus.check)
        a.jump(epilogue)

        if nativeFrames { emitNativeFrameRoutines() }
    }

    /// `call syncFrames` with `value` (r9 or r11) kept across it: in `rbx` when the entry saved
    /// it (R6 is stored at this point, and `rbx` reloaded or restored after), else on the stack
    /// (16 bytes: `rsp` keeps its alignment).
    mutating func keepAcrossSyncFrames(_ value: X86Register) {
        if savesCalleeRegisters {
            a.mov(.rbx, value)
            a.call(syncFrames)
            a.mov(value, .rbx)
        } else {
            a.push(value)
            a.alu(ext: 5, .rsp, imm: 8, w: true)
            a.call(syncFrames)
            a.alu(ext: 0, .rsp, imm: 8, w: true)
            a.pop(value)
        }
    }

    /// `syncFrames` (rdx = the code's `rsp`): writes the native frames into `Process.frames` and
    /// the depth into its word, as the interpreter would have them: nothing to copy when there
    /// are none (the depth is the exit depth), else `x86SyncFrames`. Overwrites the registers
    /// the System V ABI lets a call overwrite.
    ///
    /// `olderReturn`: an `exit` into a frame pushed before the code was entered (`NativeFrame`:
    /// the return address, then the frame's depth): R6–R10 and the pc from `Process.frames`,
    /// then the dynamic entry. If that R10 is not the top of the stack minus `depth` frames
    /// (host code moved it before the frame was pushed), the run goes back to the driver, which
    /// interprets the rest.
    mutating func emitNativeFrameRoutines() {
        a.bind(syncFrames)
        let walk = a.newLabel()
        a.load(0x3B, .rdx, .r12, context(JITSlot.machineStack))
        a.jump(.below, walk)
        a.load(0x8B, .r9, .r12, context(JITSlot.exitDepth))
        a.store(.r9, .r12, context(JITSlot.depth))
        a.ret()
        a.bind(walk)
        a.alu(ext: 5, .rsp, imm: 8, w: true) // 16-byte alignment for the call
        a.mov(.rdi, .r12)
        a.mov(.rsi, .rdx)
        a.leaAddress(.rdx, of: olderReturn)
        a.mov(.rax, imm: UInt64(UInt(bitPattern: unsafeBitCast(x86SyncFrames, to: UnsafeRawPointer.self))))
        a.call(register: .rax)
        a.alu(ext: 0, .rsp, imm: 8, w: true)
        a.ret()

        a.bind(olderReturn)
        a.pop(.r9) // the depth
        a.imul(.r11, .r9, imm: Int32(env.frameStride), w: true)
        a.load(0x03, .r11, .r12, context(JITSlot.frames))
        if savesCalleeRegisters {
            for (index, register) in [X86Register.rbx, .r13, .r14, .r15, .rbp].enumerated() {
                a.load(0x8B, register, .r11, Int32(env.frameSaved + 8 * index))
            }
        } else {
            // R6–R9 are not kept in host registers (and the entry did not save rbx, r13–r15):
            // restored into `Process.registers`, which holds them. (Not reached in practice: with
            // no BPF-to-BPF call, no frame lies between the exit depth and the depth at entry.)
            a.push(.r10)
            a.push(.r9)
            a.load(0x8B, .r10, .r12, context(JITSlot.registers))
            for index in 0..<4 {
                a.load(0x8B, .r9, .r11, Int32(env.frameSaved + 8 * index))
                a.store(.r9, .r10, Int32((6 + index) * 8))
            }
            a.pop(.r9)
            a.pop(.r10)
            a.load(0x8B, .rbp, .r11, Int32(env.frameSaved + 32))
        }
        a.load(0x8B, .r11, .r11, Int32(env.frameReturnPC))
        a.imul(.r9, .r9, imm: Int32(env.stackFrameSize), w: true)
        a.alu(0x01, .r9, .rbp, w: true)
        a.load(0x2B, .r9, .r12, context(JITSlot.stackBase))
        a.alu(ext: 7, .r9, imm: Int32(env.stackSize), w: true)
        a.jump(.equal, dynamicEnter)
        a.store(.r11, .r12, context(JITSlot.pc))
        a.mov(.r9, imm: JITStatus.check)
        a.jump(epilogue)
    }

    /// The limit check where a run starts at `pc` (reached by a static edge).
    mutating func emitRunStartCheck(_ pc: Int) {
        let slow = a.newLabel()
        a.load(0x3B, .r10, .r12, context(JITSlot.checkpoint))
        a.jump(.aboveEqual, slow)
        a.alu(ext: 0, .r10, imm: Int32(runLength(pc)), w: true)
        returnToDriver(from: slow, at: pc)
    }

    /// After host code ran (a helper, `callx`) and before the run at `pc`: R10 must still be the
    /// top of the stack minus `depth` frames (`R10 + depth × frameSize - stackBase == stackSize`),
    /// which R10-relative accesses within a frame rely on instead of a check. Host code that moved
    /// it sends the run back to the driver, which interprets the rest (`executeCompiled`).
    ///
    /// The relation held before the host code ran and the depth is the same after it, so it holds
    /// if R10 is what `callSwift` saw (`JITSlot.hostCallR10`).
    mutating func emitFramePointerCheck(_ pc: Int) {
        let moved = a.newLabel()
        a.load(0x3B, .rbp, .r12, context(JITSlot.hostCallR10))
        a.jump(.notEqual, moved)
        returnToDriver(from: moved, at: pc)
    }

    /// Cold code at `label`: leave with `JITStatus.check` and `pc`, so the driver checks the
    /// budget (or R10) there and enters again or interprets the rest.
    private mutating func returnToDriver(from label: X86Label, at pc: Int) {
        cold.append(
            (
                label,
                { g in
                    g.a.store(imm: Int32(pc), .r12, g.context(JITSlot.pc))
                    g.a.mov(.r9, imm: JITStatus.check)
                    g.a.jump(g.epilogue)
                }
            ))
    }

    /// Calls a C-ABI entry for the instruction at `pc`; a status other than `proceed` leaves.
    mutating func callEntry(_ entry: UInt64, pc: Int) {
        a.store(imm: Int32(pc), .r12, context(JITSlot.pc))
        a.mov(.r11, imm: entry)
        a.call(callSwift)
        let proceed = a.newLabel()
        a.alu(0x85, .r9, .r9, w: true)
        a.jump(.equal, proceed)
        a.jump(epilogue)
        a.bind(proceed)
    }

    // MARK: Instructions

    mutating func emit(_ pc: Int) -> Bool {
        let i = code[pc]
        let d = x(i.destination)
        let s = x(i.source)
        let imm32 = Int32(truncatingIfNeeded: i.imm)
        switch i.operation {
        case .add64Imm: a.alu(ext: 0, d, imm: imm32, w: true)
        case .add64Reg: a.alu(0x01, d, s, w: true)
        case .sub64Imm: a.alu(ext: 5, d, imm: imm32, w: true)
        case .sub64Reg: a.alu(0x29, d, s, w: true)
        case .or64Imm: a.alu(ext: 1, d, imm: imm32, w: true)
        case .or64Reg: a.alu(0x09, d, s, w: true)
        case .and64Imm: a.alu(ext: 4, d, imm: imm32, w: true)
        case .and64Reg: a.alu(0x21, d, s, w: true)
        case .xor64Imm: a.alu(ext: 6, d, imm: imm32, w: true)
        case .xor64Reg: a.alu(0x31, d, s, w: true)
        case .mov64Imm: a.mov(d, imm: i.imm)
        case .mov64Reg: a.mov(d, s)
        case .mul64Imm: a.imul(d, d, imm: imm32, w: true)
        case .mul64Reg: a.imul(d, s, w: true)
        case .neg64: a.unary(ext: 3, d, w: true)
        case .lsh64Imm: a.shift(ext: 4, d, imm: UInt8(i.imm & 63), w: true)
        case .rsh64Imm: a.shift(ext: 5, d, imm: UInt8(i.imm & 63), w: true)
        case .arsh64Imm: a.shift(ext: 7, d, imm: UInt8(i.imm & 63), w: true)
        case .lsh64Reg: shiftByRegister(ext: 4, d, s, w: true)
        case .rsh64Reg: shiftByRegister(ext: 5, d, s, w: true)
        case .arsh64Reg: shiftByRegister(ext: 7, d, s, w: true)
        case .div64Imm, .div64Reg, .sdiv64Imm, .sdiv64Reg, .mod64Imm, .mod64Reg, .smod64Imm, .smod64Reg,
            .div32Imm, .div32Reg, .sdiv32Imm, .sdiv32Reg, .mod32Imm, .mod32Reg, .smod32Imm, .smod32Reg:
            divide(i)

        case .add32Imm: a.alu(ext: 0, d, imm: imm32, w: false)
        case .add32Reg: a.alu(0x01, d, s, w: false)
        case .sub32Imm: a.alu(ext: 5, d, imm: imm32, w: false)
        case .sub32Reg: a.alu(0x29, d, s, w: false)
        case .or32Imm: a.alu(ext: 1, d, imm: imm32, w: false)
        case .or32Reg: a.alu(0x09, d, s, w: false)
        case .and32Imm: a.alu(ext: 4, d, imm: imm32, w: false)
        case .and32Reg: a.alu(0x21, d, s, w: false)
        case .xor32Imm: a.alu(ext: 6, d, imm: imm32, w: false)
        case .xor32Reg: a.alu(0x31, d, s, w: false)
        case .mov32Imm: a.mov(d, imm: UInt64(UInt32(bitPattern: imm32)))
        case .mov32Reg: a.mov(d, s, w: false)
        case .mul32Imm: a.imul(d, d, imm: imm32, w: false)
        case .mul32Reg: a.imul(d, s, w: false)
        case .neg32: a.unary(ext: 3, d, w: false)
        case .lsh32Imm, .rsh32Imm, .arsh32Imm:
            let ext: UInt8 = i.operation == .lsh32Imm ? 4 : i.operation == .rsh32Imm ? 5 : 7
            a.shift(ext: ext, d, imm: UInt8(i.imm & 31), w: false)
            // A zero count leaves the upper half: clear it as the VM does (any other count
            // writes the 32-bit register, which clears it).
            if i.imm & 31 == 0 { a.mov(d, d, w: false) }
        case .lsh32Reg: shiftByRegister(ext: 4, d, s, w: false)
        case .rsh32Reg: shiftByRegister(ext: 5, d, s, w: false)
        case .arsh32Reg: shiftByRegister(ext: 7, d, s, w: false)

        case .movsx8to64: a.extend([0x0F, 0xBE], d, s, w: true)
        case .movsx16to64: a.extend([0x0F, 0xBF], d, s, w: true)
        case .movsx32to64: a.extend([0x63], d, s, w: true)
        case .movsx8to32: a.extend([0x0F, 0xBE], d, s, w: false)
        case .movsx16to32: a.extend([0x0F, 0xBF], d, s, w: false)

        case .le16: a.extend([0x0F, 0xB7], d, d, w: false)
        case .le32: a.mov(d, d, w: false)
        case .le64: break
        case .be16, .bswap16:
            a.shift(ext: 0, d, imm: 8, w: false, prefix: 0x66) // rol r16, 8
            a.extend([0x0F, 0xB7], d, d, w: false)
        case .be32, .bswap32: a.bswap(d, w: false)
        case .be64, .bswap64: a.bswap(d, w: true)

        case .loadImm64: a.mov(d, imm: i.imm)

        case .load64, .load32, .load16, .load8, .loadSigned32, .loadSigned16, .loadSigned8:
            memoryAccess(pc, i, base: s, write: false)
        case .store64Imm, .store32Imm, .store16Imm, .store8Imm, .store64Reg, .store32Reg, .store16Reg, .store8Reg:
            memoryAccess(pc, i, base: d, write: true)

        case .atomicAdd64, .atomicOr64, .atomicAnd64, .atomicXor64, .atomicFetchAdd64, .atomicExchange64,
            .atomicCompareExchange64, .atomicAdd32, .atomicOr32, .atomicAnd32, .atomicXor32, .atomicFetchAdd32,
            .atomicExchange32, .atomicCompareExchange32:
            memoryAccess(pc, i, base: d, write: true)
        case .atomicFetchOr64, .atomicFetchAnd64, .atomicFetchXor64, .atomicFetchOr32, .atomicFetchAnd32,
            .atomicFetchXor32, .loadPacketAbsolute32, .loadPacketAbsolute16, .loadPacketAbsolute8,
            .loadPacketIndirect32, .loadPacketIndirect16, .loadPacketIndirect8:
            callEntry(env.slowEntry, pc: pc)

        case .jump, .jump32:
            guard let target = check[Int(i.offset)] else { return false }
            a.jump(target)
        case .jumpEqual64Imm, .jumpEqual64Reg, .jumpGreater64Imm, .jumpGreater64Reg, .jumpGreaterEqual64Imm,
            .jumpGreaterEqual64Reg, .jumpSet64Imm, .jumpSet64Reg, .jumpNotEqual64Imm, .jumpNotEqual64Reg,
            .jumpSignedGreater64Imm, .jumpSignedGreater64Reg, .jumpSignedGreaterEqual64Imm,
            .jumpSignedGreaterEqual64Reg, .jumpLess64Imm, .jumpLess64Reg, .jumpLessEqual64Imm, .jumpLessEqual64Reg,
            .jumpSignedLess64Imm, .jumpSignedLess64Reg, .jumpSignedLessEqual64Imm, .jumpSignedLessEqual64Reg,
            .jumpEqual32Imm, .jumpEqual32Reg, .jumpGreater32Imm, .jumpGreater32Reg, .jumpGreaterEqual32Imm,
            .jumpGreaterEqual32Reg, .jumpSet32Imm, .jumpSet32Reg, .jumpNotEqual32Imm, .jumpNotEqual32Reg,
            .jumpSignedGreater32Imm, .jumpSignedGreater32Reg, .jumpSignedGreaterEqual32Imm,
            .jumpSignedGreaterEqual32Reg, .jumpLess32Imm, .jumpLess32Reg, .jumpLessEqual32Imm, .jumpLessEqual32Reg,
            .jumpSignedLess32Imm, .jumpSignedLess32Reg, .jumpSignedLessEqual32Imm, .jumpSignedLessEqual32Reg:
            return conditionalJump(pc, i)

        case .callLocal:
            guard let target = check[Int(i.offset)] else { return false }
            let depthFault = a.newLabel()
            if nativeFrames {
                // depth + 1 >= maxCallDepth, with R10 = top of the stack - depth × frame size.
                a.load(0x3B, .rbp, .r12, context(JITSlot.callFloor))
                a.jump(.belowEqual, depthFault)
                let saved = calleeSavedWrites[Int(i.offset)] ?? 0xF
                pushNativeFrame(saving: saved, callerR10: nil)
                a.alu(ext: 5, .rbp, imm: Int32(env.stackFrameSize), w: true)
                a.call(target)
                popNativeFrame(saving: saved, returnPC: pc + 1) // then the run-start check of pc + 1
            } else {
                a.load(0x8B, .r11, .r12, context(JITSlot.depth))
                a.alu(ext: 7, .r11, imm: Int32(env.maxCallDepth - 1), w: true)
                a.jump(.aboveEqual, depthFault)
                pushFrame(returnPC: pc + 1)
                a.jump(target)
            }
            cold.append(
                (
                    depthFault,
                    { g in
                        g.a.store(imm: Int32(pc), .r12, g.context(JITSlot.pc))
                        g.a.mov(.r9, imm: JITStatus.callDepth)
                        g.a.jump(g.epilogue)
                    }
                ))
        case .callHelper, .callKernelFunction:
            helperCall(pc, i) // falls into the run-start check of pc + 1
        case .callRegister:
            a.store(imm: Int32(pc), .r12, context(JITSlot.pc))
            a.mov(.r11, imm: env.slowEntry)
            a.call(callSwift)
            let proceed = a.newLabel()
            a.alu(ext: 7, .r9, imm: Int32(JITStatus.enterDynamic), w: true)
            if nativeFrames {
                // The entry pushed the function's frame in `Process.frames` and moved R10: enter
                // it with a native frame, as `call` (its R10 check is the callee's own).
                guard let next = check[pc + 1] else { return false }
                let notFunction = a.newLabel()
                a.jump(.notEqual, notFunction)
                pushNativeFrame(saving: 0xF, callerR10: Int32(env.stackFrameSize))
                a.call(dynamicFromContext)
                popNativeFrame(saving: 0xF, returnPC: pc + 1)
                a.jump(next)
                a.bind(notFunction)
            } else {
                a.jump(.equal, dynamicFromContext)
            }
            a.alu(0x85, .r9, .r9, w: true)
            a.jump(.equal, proceed)
            a.jump(epilogue)
            a.bind(proceed)
        case .exit where nativeFrames:
            // Every frame is a native one, the outermost returning to `exitedAtR11`. With none
            // left (`rsp` at the machine-stack word: the exit at the exit depth, the common exit)
            // the code jumps to `exitedAtTop` instead: a `ret` to the address the entry pushed
            // has no matching `call`, so the processor's return predictions would miss there and
            // again on the entry function's own `ret` (two mispredicted returns a run).
            a.mov(.r11, imm: UInt64(pc + 1)) // the interpreter's pc after an exit
            if makesCalls {
                a.load(0x3B, .rsp, .r12, context(JITSlot.machineStack))
                a.jump(.equal, exitedAtTop)
                a.ret()
            } else {
                // No BPF-to-BPF call or `callx`: no native frame is ever pushed (the entry pushes
                // frames only for a depth above the exit depth, which takes such a call).
                a.jump(exitedAtTop)
            }
        case .exit:
            let exitsRun = a.newLabel()
            a.load(0x8B, .r11, .r12, context(JITSlot.depth))
            a.load(0x3B, .r11, .r12, context(JITSlot.exitDepth))
            a.jump(.equal, exitsRun)
            cold.append(
                (
                    exitsRun,
                    { g in
                        g.a.store(imm: Int32(pc + 1), .r12, g.context(JITSlot.pc)) // the interpreter's pc after an exit
                        g.a.jump(g.exited)
                    }
                ))
            a.alu(ext: 5, .r11, imm: 1, w: true)
            a.store(.r11, .r12, context(JITSlot.depth))
            a.imul(.r9, .r11, imm: Int32(env.frameStride), w: true)
            a.load(0x03, .r9, .r12, context(JITSlot.frames))
            for (index, register) in [X86Register.rbx, .r13, .r14, .r15, .rbp].enumerated() {
                a.load(0x8B, register, .r9, Int32(env.frameSaved + 8 * index))
            }
            a.load(0x8B, .r11, .r9, Int32(env.frameReturnPC))
            a.jump(dynamicEnter)
        }
        return true
    }

    /// A native frame's pushes (`NativeFrame`): a pad if an odd number of registers is saved, the
    /// saved ones of R6–R9, and the caller's R10 (`rbp`, or `rbp + callerR10` when R10 was
    /// already moved to the callee's frame); the `call` adds the return address.
    mutating func pushNativeFrame(saving saved: UInt8, callerR10: Int32?) {
        if saved.nonzeroBitCount % 2 == 1 { a.push(.rbp) }
        for (index, register) in [X86Register.rbx, .r13, .r14, .r15].enumerated() where saved & (1 << index) != 0 {
            a.push(register)
        }
        if let callerR10 {
            a.lea(.r11, .rbp, callerR10)
            a.push(.r11)
        } else {
            a.push(.rbp)
        }
    }

    /// Where a native frame's callee returns: a `nop` carrying the pc the frame returns to and
    /// which registers it saved (read by `x86SyncFrames`), then the pops.
    mutating func popNativeFrame(saving saved: UInt8, returnPC: Int) {
        a.nop(carrying: Int32(bitPattern: NativeFrame.tag(returnPC: returnPC, saved: saved)))
        a.pop(.rbp)
        for (index, register) in [X86Register.rbx, .r13, .r14, .r15].enumerated().reversed()
        where saved & (1 << index) != 0 {
            a.pop(register)
        }
        if saved.nonzeroBitCount % 2 == 1 { a.pop(.r11) }
    }

    /// `frames[depth] = (returnPC, R6–R10)`, `depth += 1`, `R10 -= frame size` (r11 = depth).
    mutating func pushFrame(returnPC: Int) {
        a.imul(.r9, .r11, imm: Int32(env.frameStride), w: true)
        a.load(0x03, .r9, .r12, context(JITSlot.frames))
        a.store(imm: Int32(returnPC), .r9, Int32(env.frameReturnPC))
        for (index, register) in [X86Register.rbx, .r13, .r14, .r15, .rbp].enumerated() {
            a.store(register, .r9, Int32(env.frameSaved + 8 * index))
        }
        a.alu(ext: 0, .r11, imm: 1, w: true)
        a.store(.r11, .r12, context(JITSlot.depth))
        a.alu(ext: 5, .rbp, imm: Int32(env.stackFrameSize), w: true)
    }

    /// `calleeSavedWrites`: per function, the registers of R6–R9 its instructions write (any
    /// instruction with a destination but a store, a jump or an exit; both registers of an
    /// atomic), all four if it calls a helper or `callx` (host code may write any register),
    /// and those of the functions it calls, to a fixed point.
    func findCalleeSavedWrites() -> [Int: UInt8] {
        let n = code.count
        var functions = Set<Int>()
        for pc in 0..<n where !isSecondHalf[pc] && code[pc].operation == .callLocal {
            functions.insert(Int(code[pc].offset))
        }
        func bit(_ register: UInt8) -> UInt8 { register >= 6 && register <= 9 ? 1 << (register - 6) : 0 }
        var writes: [Int: UInt8] = [:]
        var callees: [Int: Set<Int>] = [:]
        for entry in functions {
            var mask: UInt8 = 0
            var calls = Set<Int>()
            var seen = Set<Int>()
            var work = [entry]
            while let pc = work.popLast() {
                guard pc >= 0, pc < n, !isSecondHalf[pc] else {
                    mask = 0xF
                    continue
                }
                guard seen.insert(pc).inserted else { continue }
                let i = code[pc]
                let next = pc + (i.operation == .loadImm64 ? 2 : 1)
                switch InstructionSet.form(of: i.operation).shape {
                case .jump, .jump32: work.append(Int(i.offset))
                case .jumpImm, .jumpReg: work += [Int(i.offset), next]
                case .none: break
                case .callLocal:
                    calls.insert(Int(i.offset))
                    work.append(next)
                case .callHelper, .callRegister:
                    mask = 0xF
                    work.append(next)
                case .storeImm, .storeReg:
                    work.append(next)
                case .atomic:
                    mask |= bit(i.destination) | bit(i.source)
                    work.append(next)
                case .aluImm, .aluReg, .unary, .load, .loadImm64, .packetAbsolute, .packetIndirect:
                    mask |= bit(i.destination)
                    work.append(next)
                }
            }
            writes[entry] = mask
            callees[entry] = calls
        }
        var changed = true
        while changed {
            changed = false
            for (entry, calls) in callees {
                var mask = writes[entry] ?? 0xF
                for callee in calls { mask |= writes[callee] ?? 0xF }
                if mask != writes[entry] {
                    writes[entry] = mask
                    changed = true
                }
            }
        }
        return writes
    }

    /// `dst op= src` shifted by a register: the count goes through `cl` (R4's rcx is saved in r11).
    mutating func shiftByRegister(ext: UInt8, _ d: X86Register, _ s: X86Register, w: Bool) {
        a.mov(.r11, .rcx)
        if s != .rcx { a.mov(.rcx, s) }
        if d == .rcx {
            a.shiftByCL(ext: ext, .r11, w: w)
            a.mov(.rcx, .r11, w: w)
        } else {
            a.shiftByCL(ext: ext, d, w: w)
            if !w { a.mov(d, d, w: false) }
            a.mov(.rcx, .r11)
        }
    }

    /// Division and modulo with the VM's semantics: by zero gives 0 (div) or the dividend (mod);
    /// signed `MIN / -1` wraps and `MIN % -1` is 0 (no #DE).
    mutating func divide(_ i: DecodedInstruction) {
        let op = i.operation
        let w: Bool
        let signed: Bool
        let modulo: Bool
        let immediate: Bool
        switch op {
        case .div64Imm: (w, signed, modulo, immediate) = (true, false, false, true)
        case .div64Reg: (w, signed, modulo, immediate) = (true, false, false, false)
        case .sdiv64Imm: (w, signed, modulo, immediate) = (true, true, false, true)
        case .sdiv64Reg: (w, signed, modulo, immediate) = (true, true, false, false)
        case .mod64Imm: (w, signed, modulo, immediate) = (true, false, true, true)
        case .mod64Reg: (w, signed, modulo, immediate) = (true, false, true, false)
        case .smod64Imm: (w, signed, modulo, immediate) = (true, true, true, true)
        case .smod64Reg: (w, signed, modulo, immediate) = (true, true, true, false)
        case .div32Imm: (w, signed, modulo, immediate) = (false, false, false, true)
        case .div32Reg: (w, signed, modulo, immediate) = (false, false, false, false)
        case .sdiv32Imm: (w, signed, modulo, immediate) = (false, true, false, true)
        case .sdiv32Reg: (w, signed, modulo, immediate) = (false, true, false, false)
        case .mod32Imm: (w, signed, modulo, immediate) = (false, false, true, true)
        case .mod32Reg: (w, signed, modulo, immediate) = (false, false, true, false)
        case .smod32Imm: (w, signed, modulo, immediate) = (false, true, true, true)
        default: (w, signed, modulo, immediate) = (false, true, true, false) // smod32Reg
        }
        let d = x(i.destination)
        if immediate {
            a.mov(.r11, imm: w ? i.imm : UInt64(UInt32(truncatingIfNeeded: i.imm)))
        } else {
            a.mov(.r11, x(i.source))
        }
        a.mov(.r9, .rax)
        a.push(.rdx) // r10 holds the count
        a.mov(.rax, d)
        let zero = a.newLabel()
        let minusOne = a.newLabel()
        let done = a.newLabel()
        a.alu(0x85, .r11, .r11, w: w)
        a.jump(.equal, zero)
        if signed {
            a.alu(ext: 7, .r11, imm: -1, w: w)
            a.jump(.equal, minusOne)
            a.signExtendAccumulator(w: w)
            a.unary(ext: 7, .r11, w: w)
        } else {
            a.alu(0x31, .rdx, .rdx, w: false)
            a.unary(ext: 6, .r11, w: w)
        }
        a.mov(.r11, modulo ? .rdx : .rax, w: w)
        a.jump(done)
        a.bind(zero)
        if modulo { a.mov(.r11, .rax, w: w) } else { a.alu(0x31, .r11, .r11, w: false) }
        if signed {
            a.jump(done)
            a.bind(minusOne)
            if modulo {
                a.alu(0x31, .r11, .r11, w: false)
            } else {
                a.unary(ext: 3, .rax, w: w)
                a.mov(.r11, .rax, w: w)
            }
        }
        a.bind(done)
        a.mov(.rax, .r9)
        a.pop(.rdx)
        a.mov(d, .r11)
    }

    mutating func conditionalJump(_ pc: Int, _ i: DecodedInstruction) -> Bool {
        let target = Int(i.offset)
        guard let checkLabel = check[target] else { return false }
        let form = InstructionSet.form(of: i.operation)
        let w = form.instructionClass == .jump64
        let register = form.shape == .jumpReg
        let d = x(i.destination)
        let condition: X86Condition
        let isSet =
            i.operation == .jumpSet64Imm || i.operation == .jumpSet64Reg || i.operation == .jumpSet32Imm
            || i.operation == .jumpSet32Reg
        switch i.operation {
        case .jumpEqual64Imm, .jumpEqual64Reg, .jumpEqual32Imm, .jumpEqual32Reg: condition = .equal
        case .jumpNotEqual64Imm, .jumpNotEqual64Reg, .jumpNotEqual32Imm, .jumpNotEqual32Reg: condition = .notEqual
        case .jumpGreater64Imm, .jumpGreater64Reg, .jumpGreater32Imm, .jumpGreater32Reg: condition = .above
        case .jumpGreaterEqual64Imm, .jumpGreaterEqual64Reg, .jumpGreaterEqual32Imm, .jumpGreaterEqual32Reg:
            condition = .aboveEqual
        case .jumpLess64Imm, .jumpLess64Reg, .jumpLess32Imm, .jumpLess32Reg: condition = .below
        case .jumpLessEqual64Imm, .jumpLessEqual64Reg, .jumpLessEqual32Imm, .jumpLessEqual32Reg: condition = .belowEqual
        case .jumpSignedGreater64Imm, .jumpSignedGreater64Reg, .jumpSignedGreater32Imm, .jumpSignedGreater32Reg:
            condition = .greater
        case .jumpSignedGreaterEqual64Imm, .jumpSignedGreaterEqual64Reg, .jumpSignedGreaterEqual32Imm,
            .jumpSignedGreaterEqual32Reg:
            condition = .greaterEqual
        case .jumpSignedLess64Imm, .jumpSignedLess64Reg, .jumpSignedLess32Imm, .jumpSignedLess32Reg:
            condition = .less
        case .jumpSignedLessEqual64Imm, .jumpSignedLessEqual64Reg, .jumpSignedLessEqual32Imm,
            .jumpSignedLessEqual32Reg:
            condition = .lessEqual
        default: condition = .notEqual // jset
        }
        if !isSet, !register, i.imm == 0, condition == .equal || condition == .notEqual,
            setsZeroFlag(of: i.destination, w: w, before: pc)
        {
            // The instruction before set ZF from this register: no compare on the way through.
            // A run resumed at this slot (after `step()`) enters through a stub that compares.
            let stub = a.newLabel()
            let jump = a.newLabel()
            a.bind(jump)
            entryStubs.append((pc, stub))
            let w = w
            cold.append(
                (
                    stub,
                    { g in
                        g.a.alu(0x85, d, d, w: w) // test d, d
                        g.a.jump(jump)
                    }
                ))
        } else if isSet {
            if register {
                a.alu(0x85, d, x(i.source), w: w)
            } else {
                a.test(d, imm: Int32(truncatingIfNeeded: i.imm), w: w)
            }
        } else {
            if register {
                a.alu(0x39, d, x(i.source), w: w)
            } else {
                a.alu(ext: 7, d, imm: Int32(truncatingIfNeeded: i.imm), w: w)
            }
        }
        let skipped = runLength(pc) - 1 // the instructions of this run the jump skips
        if skipped == 0 {
            a.jump(condition, checkLabel)
        } else {
            let notTaken = a.newLabel()
            a.jump(condition.inverted, fallThroughJump(after: pc) ?? notTaken)
            a.alu(ext: 5, .r10, imm: Int32(skipped), w: true)
            a.jump(checkLabel)
            a.bind(notTaken)
        }
        return true
    }

    /// Where the code falling through from the conditional jump at `pc` only jumps on, for its
    /// not-taken branch to go there at once: the run-start check of an unconditional jump's
    /// target (the next slot is that jump, whose run is the conditional jump's), or the next
    /// slot's code past its run-start check (a run starts there, which the fall-through skips
    /// with a jump). Nil otherwise.
    func fallThroughJump(after pc: Int) -> X86Label? {
        let next = pc + 1
        guard next < code.count, !isSecondHalf[next] else { return nil }
        switch code[next].operation {
        case .jump, .jump32:
            let target = Int(code[next].offset)
            return target >= 0 && target < check.count ? check[target] : nil
        default:
            return check[next] != nil ? body[next] : nil
        }
    }

    /// Whether the instruction before `pc` falls through to it within the run and ends with an
    /// `and`, `or`, `xor`, `add` or `sub` of `register` (32-bit for a 32-bit jump), so ZF tells
    /// whether the register (its low half for a 32-bit jump) is zero.
    func setsZeroFlag(of register: UInt8, w: Bool, before pc: Int) -> Bool {
        guard pc > 0, check[pc] == nil, !isSecondHalf[pc - 1] else { return false }
        let previous = code[pc - 1]
        guard previous.destination == register else { return false }
        switch previous.operation {
        case .add32Imm, .add32Reg, .sub32Imm, .sub32Reg, .or32Imm, .or32Reg, .and32Imm, .and32Reg, .xor32Imm,
            .xor32Reg:
            return true // the 64-bit value is the zero-extended 32-bit result
        case .add64Imm, .add64Reg, .sub64Imm, .sub64Reg, .or64Imm, .or64Reg, .and64Imm, .and64Reg, .xor64Imm,
            .xor64Reg:
            return w
        default:
            return false
        }
    }

    /// A load, store or inline atomic: the address in r11, its translation-table entry in r9,
    /// `offset = address - base` checked against the entry's limit (`offset + size` must not
    /// carry and must be `<= limit`: the interpreter's `offset < limit`, `offset + size <= limit`),
    /// then the access at `pointer + offset`. Anything the fast path refuses goes to the
    /// interpreter's own slow path (`jitSlowEntry`), which faults or handles rings and foreign
    /// memory exactly as the interpreter does.
    ///
    /// R10-relative accesses within one frame (`-frameSize <= offset <= -size`) need no check:
    /// R10 is always `stackTop - depth × frameSize` in compiled code (see `emitFramePointerCheck`),
    /// so the access lies in the process's stack region and goes straight to its host memory.
    mutating func memoryAccess(_ pc: Int, _ i: DecodedInstruction, base: X86Register, write: Bool) {
        let size: Int32
        var alignment: Int32 = 0
        switch i.operation {
        case .load64, .store64Imm, .store64Reg: size = 8
        case .load32, .loadSigned32, .store32Imm, .store32Reg: size = 4
        case .load16, .loadSigned16, .store16Imm, .store16Reg: size = 2
        case .load8, .loadSigned8, .store8Imm, .store8Reg: size = 1
        case .atomicAdd64, .atomicOr64, .atomicAnd64, .atomicXor64, .atomicFetchAdd64, .atomicExchange64,
            .atomicCompareExchange64:
            size = 8
            alignment = 7
        default:
            size = 4
            alignment = 3
        }
        let offset = Int32(i.offset)
        if base == .rbp, alignment == 0, offset >= -Int32(env.stackFrameSize), offset <= -size,
            env.stackSize >= env.stackFrameSize
        {
            a.load(0x8B, .r11, .r12, context(JITSlot.stackDelta))
            emitAccess(i, at: offset, size: size, index: .rbp)
            return
        }
        let slow = a.newLabel()
        let resume = a.newLabel()
        a.lea(.r11, base, offset)
        let at: Int32
        if base == .rbp, alignment == 0, env.stackSize >= Int(size) {
            // R10-relative outside the frame: one range check against the process's stack region,
            // which is mapped for the process's whole life; anything else takes the slow path.
            a.mov(.r9, .r11)
            a.load(0x2B, .r9, .r12, context(JITSlot.stackBase))
            a.alu(ext: 7, .r9, imm: Int32(env.stackSize) - size, w: true)
            a.jump(.above, slow)
            a.load(0x03, .r11, .r12, context(JITSlot.stackDelta))
            at = 0
        } else {
            translate(size: size, alignment: alignment, write: write, slow: slow)
            at = -size
        }
        emitAccess(i, at: at, size: size)
        a.bind(resume)
        let entry = env.slowEntry
        cold.append(
            (
                slow,
                { g in
                    g.callEntry(entry, pc: pc)
                    g.a.jump(resume)
                }
            ))
    }

    /// Loads and stores through one base register in straight-line code, checked once
    /// (`emitGroup`): the slots `first...last`, of which `members` access memory through `base`.
    struct AccessGroup {
        let base: UInt8
        let first: Int
        let last: Int
        let members: Set<Int>
        /// The bytes `[base + low, base + high)` the members access.
        let low: Int64
        let high: Int64
        let reads: Bool
        let writes: Bool
    }

    /// A plain load or store at `pc` through a register other than R10 (the stack has its own
    /// checks): its base register, offset and size, and whether it writes.
    func checkedAccess(_ pc: Int) -> (base: UInt8, offset: Int64, size: Int64, write: Bool)? {
        let i = code[pc]
        let size: Int64
        let write: Bool
        switch i.operation {
        case .load64: (size, write) = (8, false)
        case .load32, .loadSigned32: (size, write) = (4, false)
        case .load16, .loadSigned16: (size, write) = (2, false)
        case .load8, .loadSigned8: (size, write) = (1, false)
        case .store64Imm, .store64Reg: (size, write) = (8, true)
        case .store32Imm, .store32Reg: (size, write) = (4, true)
        case .store16Imm, .store16Reg: (size, write) = (2, true)
        case .store8Imm, .store8Reg: (size, write) = (1, true)
        default: return nil
        }
        let base = write ? i.destination : i.source
        guard base != 10 else { return nil }
        return (base, Int64(i.offset), size, write)
    }

    /// Whether the instruction at `pc` may sit between the members of an access group: it does
    /// not branch, call out or use `r9` (which holds the group's host delta), and does not write
    /// `base` (a load into `base` may be the group's last member).
    func fitsInGroup(_ pc: Int, base: UInt8) -> Bool {
        let i = code[pc]
        switch InstructionSet.form(of: i.operation).shape {
        case .jump, .jump32, .jumpImm, .jumpReg, .none, .callLocal, .callHelper, .callRegister: return false
        default: break
        }
        switch i.operation {
        case .div64Imm, .div64Reg, .sdiv64Imm, .sdiv64Reg, .mod64Imm, .mod64Reg, .smod64Imm, .smod64Reg,
            .div32Imm, .div32Reg, .sdiv32Imm, .sdiv32Reg, .mod32Imm, .mod32Reg, .smod32Imm, .smod32Reg:
            return false // uses r9
        case .load64, .load32, .load16, .load8, .loadSigned32, .loadSigned16, .loadSigned8, .store64Imm,
            .store32Imm, .store16Imm, .store8Imm, .store64Reg, .store32Reg, .store16Reg, .store8Reg:
            // Only R10-relative accesses within the frame (no check: r11 only).
            let offset = Int32(i.offset)
            let size = Int32(checkedSize(i.operation))
            let isStore = !isLoad(i.operation)
            guard (isStore ? i.destination : i.source) == 10, offset >= -Int32(env.stackFrameSize), offset <= -size,
                env.stackSize >= env.stackFrameSize
            else { return false }
            return isStore || i.destination != base
        case .loadImm64, .mov64Imm, .mov64Reg, .mov32Imm, .mov32Reg, .add64Imm, .add64Reg, .sub64Imm, .sub64Reg,
            .or64Imm, .or64Reg, .and64Imm, .and64Reg, .xor64Imm, .xor64Reg, .mul64Imm, .mul64Reg, .neg64,
            .lsh64Imm, .rsh64Imm, .arsh64Imm, .lsh64Reg, .rsh64Reg, .arsh64Reg, .add32Imm, .add32Reg, .sub32Imm,
            .sub32Reg, .or32Imm, .or32Reg, .and32Imm, .and32Reg, .xor32Imm, .xor32Reg, .mul32Imm, .mul32Reg,
            .neg32, .lsh32Imm, .rsh32Imm, .arsh32Imm, .lsh32Reg, .rsh32Reg, .arsh32Reg, .movsx8to64, .movsx16to64,
            .movsx32to64, .movsx8to32, .movsx16to32, .le16, .le32, .le64, .be16, .be32, .be64, .bswap16, .bswap32,
            .bswap64:
            return i.destination != base
        default: return false // atomics, ld_abs/ld_ind: their own paths
        }
    }

    func isLoad(_ operation: Operation) -> Bool {
        switch operation {
        case .load64, .load32, .load16, .load8, .loadSigned32, .loadSigned16, .loadSigned8: true
        default: false
        }
    }

    func checkedSize(_ operation: Operation) -> Int {
        switch operation {
        case .load64, .store64Imm, .store64Reg: 8
        case .load32, .loadSigned32, .store32Imm, .store32Reg: 4
        case .load16, .loadSigned16, .store16Imm, .store16Reg: 2
        default: 1
        }
    }

    /// The access group starting at `pc`, if the access there has a second one through the same
    /// register before anything breaks the straight line (a run start, a branch, a call, a write
    /// of the register, an instruction using `r9`).
    func accessGroup(at pc: Int) -> AccessGroup? {
        guard let first = checkedAccess(pc) else { return nil }
        var members: Set<Int> = [pc]
        var last = pc
        var low = first.offset
        var high = first.offset + first.size
        var reads = !first.write
        var writes = first.write
        var at = pc
        // A load into the base register ends the group (after it, the register holds another value).
        var open = first.write || code[pc].destination != first.base
        while open {
            at += code[at].operation == .loadImm64 ? 2 : 1
            guard at < code.count, check[at] == nil else { break }
            if let access = checkedAccess(at), access.base == first.base {
                members.insert(at)
                last = at
                low = min(low, access.offset)
                high = max(high, access.offset + access.size)
                reads = reads || !access.write
                writes = writes || access.write
                open = access.write || code[at].destination != first.base
            } else if !fitsInGroup(at, base: first.base) {
                break
            }
        }
        guard members.count > 1 else { return nil }
        return AccessGroup(
            base: first.base, first: pc, last: last, members: members, low: low, high: high, reads: reads,
            writes: writes)
    }

    /// `r9` = `r11 >> 27` (the slot index times the entry size, before the mask): `rorx` with
    /// BMI2 (the rotated-in bits lie above any mask: slots are indexed by bits 32–47).
    mutating func slotIndex() {
        if env.hasBMI2 {
            a.rorx(.r9, .r11, imm: 27)
        } else {
            a.mov(.r9, .r11)
            a.shift(ext: 5, .r9, imm: 27, w: true)
        }
    }

    /// Whether no slot of `group` other than its members uses `r11` (stack accesses load the
    /// stack delta into it, shifts by a register keep `rcx` in it).
    func keepsR11(_ group: AccessGroup) -> Bool {
        var at = group.first
        while at <= group.last {
            if !group.members.contains(at) {
                switch code[at].operation {
                case .load64, .load32, .load16, .load8, .loadSigned32, .loadSigned16, .loadSigned8, .store64Imm,
                    .store32Imm, .store16Imm, .store8Imm, .store64Reg, .store32Reg, .store16Reg, .store8Reg,
                    .lsh64Reg, .rsh64Reg, .arsh64Reg, .lsh32Reg, .rsh32Reg, .arsh32Reg:
                    return false
                default: break
                }
            }
            at += code[at].operation == .loadImm64 ? 2 : 1
        }
        return true
    }

    /// An access group (`accessGroup(at:)`) checked once: the bytes `[base + low, base + high)`
    /// against the translation table as one access (`translate`'s check: if the first and the
    /// last byte lie in one region's limits, so does every byte between, and every region lies
    /// within its slot), then every member at `base + offset + delta` (r9 = the region's host
    /// pointer minus its VM base). Where the span check fails, the slots run as they would alone,
    /// each access with its own check, so a fault has the same pc, address and region as the
    /// interpreter's: the first member that fails faults, after the ones before it ran.
    /// Entering in the middle of the group (after `step()`) lands in that checked copy, which is
    /// cold code after the program.
    mutating func emitGroup(_ group: AccessGroup) {
        let checked = a.newLabel()
        let join = a.newLabel()
        let base = x(group.base)
        // The span check: r11 = the first byte's address, r9 = its entry.
        a.lea(.r11, base, Int32(group.low)) // offsets are 16-bit
        slotIndex()
        a.load(0x23, .r9, .r12, context(JITSlot.mask))
        a.load(0x03, .r9, .r12, context(JITSlot.entries))
        a.load(0x2B, .r11, .r9, Int32(env.slotBase))
        a.alu(ext: 0, .r11, imm: Int32(group.high - group.low), w: true)
        a.jump(.below, checked)
        if group.reads, !group.writes {
            // (A group that also writes needs only the write limit: a region writable at all is
            // readable over the same length, as `translate` relies on for atomics.)
            a.load(0x3B, .r11, .r9, Int32(env.slotReadLimit))
            a.jump(.above, checked)
        }
        if group.writes {
            a.load(0x3B, .r11, .r9, Int32(env.slotWriteLimit))
            a.jump(.above, checked)
        }
        a.load(0x8B, .r11, .r9, Int32(env.slotPointer))
        a.load(0x2B, .r11, .r9, Int32(env.slotBase))
        // The members' index: r11 itself unless a slot between uses it (a stack access, a shift
        // by a register), then r9.
        let index = keepsR11(group) ? X86Register.r11 : .r9
        if index == .r9 { a.mov(.r9, .r11) }
        var at = group.first
        while at <= group.last {
            if group.members.contains(at) {
                let i = code[at]
                emitAccess(i, at: Int32(i.offset), size: Int32(checkedSize(i.operation)), base: base, index: index)
            } else {
                _ = emit(at) // fits: no branch, no call, no failure
            }
            at += code[at].operation == .loadImm64 ? 2 : 1
        }
        a.bind(join)
        // The span failed: each slot as alone, in cold code (the fast path falls through).
        var slots: [Int] = []
        at = group.first
        while at <= group.last {
            slots.append(at)
            if at != group.first { entryStubs.append((at, body[at])) }
            at += code[at].operation == .loadImm64 ? 2 : 1
        }
        cold.append(
            (
                checked,
                { g in
                    for at in slots {
                        if at != slots[0] { g.a.bind(g.body[at]) }
                        _ = g.emit(at) // fits: no branch, no call, no failure
                    }
                    g.a.jump(join)
                }
            ))
    }

    /// The translation-table check of the address in r11 (`SlotEntry`): r9 = the entry (the
    /// context's mask is the index mask times the entry size, so `(address >> 27) & mask` is the
    /// entry's byte offset), r11 = host address + `size`.
    mutating func translate(size: Int32, alignment: Int32, write: Bool, slow: X86Label) {
        if alignment != 0 {
            a.test(.r11, imm: alignment, w: false)
            a.jump(.notEqual, slow)
        }
        slotIndex()
        a.load(0x23, .r9, .r12, context(JITSlot.mask))
        a.load(0x03, .r9, .r12, context(JITSlot.entries))
        a.load(0x2B, .r11, .r9, Int32(env.slotBase))
        a.alu(ext: 0, .r11, imm: size, w: true)
        a.jump(.below, slow) // carried: the offset was within `size` below 2^64
        a.load(0x3B, .r11, .r9, Int32(write ? env.slotWriteLimit : env.slotReadLimit))
        a.jump(.above, slow)
        a.load(0x03, .r11, .r9, Int32(env.slotPointer))
    }

    /// The access itself, at `[base + index + at]` (by default `[r11 + at]`; r9 is free unless it
    /// is the index).
    mutating func emitAccess(
        _ i: DecodedInstruction, at: Int32, size: Int32, base: X86Register = .r11, index: X86Register? = nil
    ) {
        let d = x(i.destination).rawValue
        let s = x(i.source).rawValue
        let imm = Int32(truncatingIfNeeded: i.imm)
        switch i.operation {
        case .load64: a.memory([0x8B], w: true, reg: d, base: base, index: index, disp: at)
        case .load32: a.memory([0x8B], w: false, reg: d, base: base, index: index, disp: at)
        case .load16: a.memory([0x0F, 0xB7], w: false, reg: d, base: base, index: index, disp: at)
        case .load8: a.memory([0x0F, 0xB6], w: false, reg: d, base: base, index: index, disp: at)
        case .loadSigned32: a.memory([0x63], w: true, reg: d, base: base, index: index, disp: at)
        case .loadSigned16: a.memory([0x0F, 0xBF], w: true, reg: d, base: base, index: index, disp: at)
        case .loadSigned8: a.memory([0x0F, 0xBE], w: true, reg: d, base: base, index: index, disp: at)
        case .store64Reg: a.memory([0x89], w: true, reg: s, base: base, index: index, disp: at)
        case .store32Reg: a.memory([0x89], w: false, reg: s, base: base, index: index, disp: at)
        case .store16Reg: a.memory([0x89], w: false, reg: s, base: base, index: index, disp: at, prefix: 0x66)
        case .store8Reg: a.memory([0x88], w: false, reg: s, base: base, index: index, disp: at, byteRegister: true)
        case .store64Imm:
            a.memory([0xC7], w: true, reg: 0, base: base, index: index, disp: at)
            a.int32(imm)
        case .store32Imm:
            a.memory([0xC7], w: false, reg: 0, base: base, index: index, disp: at)
            a.int32(imm)
        case .store16Imm:
            a.memory([0xC7], w: false, reg: 0, base: base, index: index, disp: at, prefix: 0x66)
            a.byte(UInt8(truncatingIfNeeded: imm))
            a.byte(UInt8(truncatingIfNeeded: imm >> 8))
        case .store8Imm:
            a.memory([0xC6], w: false, reg: 0, base: base, index: index, disp: at)
            a.byte(UInt8(truncatingIfNeeded: imm))
        case .atomicAdd64, .atomicAdd32:
            a.memory([0x01], w: size == 8, reg: s, base: base, index: index, disp: at, prefix: 0xF0)
        case .atomicOr64, .atomicOr32:
            a.memory([0x09], w: size == 8, reg: s, base: base, index: index, disp: at, prefix: 0xF0)
        case .atomicAnd64, .atomicAnd32:
            a.memory([0x21], w: size == 8, reg: s, base: base, index: index, disp: at, prefix: 0xF0)
        case .atomicXor64, .atomicXor32:
            a.memory([0x31], w: size == 8, reg: s, base: base, index: index, disp: at, prefix: 0xF0)
        case .atomicFetchAdd64, .atomicFetchAdd32:
            a.mov(.r9, x(i.source))
            a.memory(
                [0x0F, 0xC1], w: size == 8, reg: X86Register.r9.rawValue, base: base, index: index, disp: at,
                prefix: 0xF0)
            a.mov(x(i.source), .r9, w: size == 8)
        case .atomicExchange64, .atomicExchange32:
            a.mov(.r9, x(i.source))
            a.memory([0x87], w: size == 8, reg: X86Register.r9.rawValue, base: base, index: index, disp: at)
            a.mov(x(i.source), .r9, w: size == 8)
        case .atomicCompareExchange64:
            a.memory([0x0F, 0xB1], w: true, reg: s, base: base, index: index, disp: at, prefix: 0xF0)
        default: // atomicCompareExchange32: R0 = the old value, zero-extended
            a.memory([0x0F, 0xB1], w: false, reg: s, base: base, index: index, disp: at, prefix: 0xF0)
            a.mov(.rax, .rax, w: false)
        }
    }
}

// MARK: Helper calls

extension X86Generator {
    /// A helper call at `pc`. In order of preference: the helper's result inline (`InlineHelper`),
    /// an array-map lookup inline (`InlineArrayLookup`, as the kernel's `array_map_gen_lookup`),
    /// the helper's C-ABI entry (`DirectHelper`), and — whenever those do not apply or decline —
    /// the helper itself through `jitHelperEntry`, exactly as the interpreter runs it. Every way
    /// leaves R0 set and R1–R10 as they were (the general path checks that R10 is, see
    /// `emitFramePointerCheck`), and ends where the run-start check of `pc + 1` follows.
    ///
    /// A map lookup whose arguments the instructions before it prove (`ProvenArguments`: the
    /// handle an `lddw` put in R1, a key at `R10 + k` within the frame) leaves out the handle
    /// compare and the key's translation. A run resumed between those instructions and the call
    /// (after `step()`: the host may have changed R1 or R2 meanwhile) enters a cold copy of the
    /// slots with the call fully checked (`entryStubs`), as a run resumed inside an access group
    /// does.
    mutating func helperCall(_ pc: Int, _ i: DecodedInstruction) {
        let index = Int(truncatingIfNeeded: i.imm)
        let helper = index >= 0 && index < helpers.count ? helpers[index] : nil
        guard helper?.inline == nil, helper?.inlineArrayLookup != nil || helper?.inlineHashLookup != nil,
            let proven = provenArguments(before: pc, keyValue: helper?.inlineArrayLookup != nil),
            proven.from > lastGroupEnd
        else {
            helperCall(pc, i, proven: ProvenArguments())
            return
        }
        let checked = helperCall(pc, i, proven: proven)
        let join = a.newLabel()
        a.bind(join)
        var slots: [Int] = []
        var at = proven.from + (code[proven.from].operation == .loadImm64 ? 2 : 1)
        while at <= pc {
            slots.append(at)
            at += code[at].operation == .loadImm64 ? 2 : 1
        }
        let labels = slots.map { _ in a.newLabel() }
        for (slot, label) in zip(slots, labels) { entryStubs.append((slot, label)) }
        cold.append(
            (
                labels[0],
                { g in
                    for (slot, label) in zip(slots, labels) {
                        if slot != slots[0] { g.a.bind(label) }
                        if slot != pc {
                            _ = g.emit(slot) // no branch or call: the slots fall through to the call
                        } else if let checked {
                            g.a.jump(checked) // the direct entry, then the helper: R1, R2 as they are
                            return
                        } else {
                            g.helperCall(pc, i, proven: ProvenArguments())
                        }
                    }
                    g.a.jump(join)
                }
            ))
    }

    /// `helperCall` with what `proven` says about R1 and R2 (nothing: every check). Returns,
    /// for an inline map lookup, where its misses go: the helper's direct entry, then the helper,
    /// which take R1 and R2 as they are and come back after the call.
    @discardableResult
    mutating func helperCall(_ pc: Int, _ i: DecodedInstruction, proven: ProvenArguments) -> X86Label? {
        var checked: X86Label?
        let index = Int(truncatingIfNeeded: i.imm)
        let helper = index >= 0 && index < helpers.count ? helpers[index] : nil
        let done = a.newLabel()
        let general = a.newLabel()
        if let helper, let inline = helper.inline {
            let call = a.newLabel()
            a.memory([0x80], w: false, reg: 7, base: .r12, disp: context(JITSlot.inlineBypass)) // cmp byte [..], 0
            a.byte(0)
            a.jump(.notEqual, call)
            switch inline {
            case .processorID: a.load(0x8B, .rax, .r12, context(JITSlot.vCPU), w: false)
            }
            coldHelperCall(at: call, helper.direct, general: general, done: done)
        } else if let helper, let describe = helper.inlineArrayLookup, let handle = mapHandleInR1(before: pc),
            let layout = describe(handle)
        {
            let proven =
                proven.handle == handle
                ? proven : ProvenArguments(stackKey: proven.stackKey, keyValue: proven.keyValue)
            if let direct = helper.direct {
                let miss = a.newLabel()
                inlineArrayLookup(layout, handle: handle, proven: proven, miss: miss, done: done)
                coldHelperCall(at: miss, direct, general: general, done: done)
                checked = miss
            } else {
                inlineArrayLookup(layout, handle: handle, proven: proven, miss: general, done: done)
                checked = general
            }
        } else if let helper, let describe = helper.inlineHashLookup, let handle = mapHandleInR1(before: pc),
            let lookup = describe(handle)
        {
            let proven = proven.handle == handle ? proven : ProvenArguments(stackKey: proven.stackKey)
            let miss = a.newLabel()
            if let probe = lookup.probe {
                inlineHashProbe(probe, handle: handle, proven: proven, miss: miss)
            } else {
                inlineHashLookup(lookup, handle: handle, proven: proven, miss: miss)
            }
            coldHelperCall(at: miss, helper.direct, general: general, done: done)
            checked = miss
        } else if let direct = helper?.direct {
            directCall(direct, declined: general)
        } else {
            a.bind(general)
            generalHelperCall(pc, index: index)
            a.bind(done)
            return nil
        }
        a.bind(done)
        cold.append(
            (
                general,
                { g in
                    g.generalHelperCall(pc, index: index)
                    g.a.jump(done)
                }
            ))
        return checked
    }

    /// The helper through `jitHelperEntry` (`Process.compiledHelperCall`), with every register
    /// stored and reloaded: faults, tail calls, callbacks and `.exit` as in the interpreter. The
    /// helper may have moved R10 (it is a register of `Process.registers`): checked after.
    mutating func generalHelperCall(_ pc: Int, index: Int) {
        a.store(imm: Int32(truncatingIfNeeded: index), .r12, context(JITSlot.helperIndex))
        callEntry(env.helperEntry, pc: pc)
        emitFramePointerCheck(pc + 1)
    }

    /// A call of `direct.function(R1, …, R5, &directCall)`: R1–R5 are already in the System V
    /// argument registers; they and the instruction count (`r10`) are pushed around the call, R0
    /// comes back in `rax`. R6–R10 and `r12` are callee-saved. A declined call clears the flag,
    /// restores R0 (pushed twice before the others: eight pushes keep `rsp` 16-byte aligned) and
    /// goes to `declined` (the general path), so a helper that then fails leaves R0 as the
    /// interpreter does.
    mutating func directCall(_ direct: DirectHelper, declined: X86Label) {
        if let data = direct.data {
            a.mov(.r11, imm: UInt64(UInt(bitPattern: data)))
            a.store(.r11, .r12, env.directCallData)
        } else {
            a.store(imm: 0, .r12, env.directCallData)
        }
        // R1–R5 and the instruction count (`r10`) are caller-saved in the System V ABI; R0 is
        // kept for a decline.
        for register in [X86Register.rax, .rax, .rdi, .rsi, .rdx, .rcx, .r8, .r10] { a.push(register) }
        a.lea(.r9, .r12, context(JITSlot.directCall))
        a.mov(.r11, imm: UInt64(UInt(bitPattern: unsafeBitCast(direct.function, to: UnsafeRawPointer.self))))
        a.call(register: .r11)
        for register in [X86Register.r10, .r8, .rcx, .rdx, .rsi, .rdi] { a.pop(register) }
        let wasDeclined = a.newLabel()
        a.memory([0x80], w: false, reg: 7, base: .r12, disp: env.directCallDeclined) // cmp byte [..], 0
        a.byte(0)
        a.jump(.notEqual, wasDeclined)
        a.lea(.rsp, .rsp, 16) // drop the saved R0
        let flag = env.directCallDeclined
        cold.append(
            (
                wasDeclined,
                { g in
                    g.a.memory([0xC6], w: false, reg: 0, base: .r12, disp: flag) // mov byte [..], 0
                    g.a.byte(0)
                    g.a.pop(.rax)
                    g.a.pop(.rax)
                    g.a.jump(declined)
                }
            ))
    }

    /// `bpf_map_lookup_elem` of an array map, inline (the kernel's `array_map_gen_lookup`, and
    /// `percpu_array_map_gen_lookup` for per-CPU arrays):
    ///
    ///     R1 == handle, bypass byte clear       else miss
    ///     index = u32 at R2 (translated)        else miss (a constant stored just before
    ///                                           the call: the next two steps done here)
    ///     index >= maxEntries                   → R0 = 0
    ///     offset = index * valueStride
    ///     per-CPU: cpu = the context's vCPU, cpu < cpuCount else miss; offset += cpu * cpuStride
    ///     R0 = base + offset
    ///
    /// `base` is the VM address of the map's values, so R0 is the guest address the helper
    /// returns; the vCPU comes from the context (the code is shared by processes on different
    /// vCPUs). Any miss (another map in R1, a key the translation refuses, a map recording
    /// touches, a vCPU past the map's CPUs, which the helper clamps) goes to the helper, which
    /// returns the same or faults as the interpreter does.
    mutating func inlineArrayLookup(
        _ layout: InlineArrayLookup, handle: UInt64, proven: ProvenArguments, miss: X86Label, done: X86Label
    ) {
        if proven.handle == nil {
            a.mov(.r11, imm: handle)
            a.alu(0x39, .rdi, .r11, w: true) // cmp rdi, r11
            a.jump(.notEqual, miss)
        }
        a.mov(.r11, imm: UInt64(UInt(bitPattern: layout.bypass)))
        a.memory([0x80], w: false, reg: 7, base: .r11, disp: 0) // cmp byte [r11], 0
        a.byte(0)
        a.jump(.notEqual, miss)
        if stackKey(proven, size: 4) != nil, let index = proven.keyValue {
            // A constant key (stored just before the call): its bounds check and offset are
            // worked out here.
            guard index < layout.maxEntries else {
                a.alu(0x31, .rax, .rax, w: false) // R0 = NULL
                return
            }
            let value = layout.base &+ UInt64(index) &* UInt64(layout.valueStride)
            if layout.cpuCount > 1 {
                a.load(0x8B, .r11, .r12, context(JITSlot.vCPU), w: false) // r11 = the vCPU (zero-extended)
                a.alu(ext: 7, .r11, imm: Int32(bitPattern: layout.cpuCount), w: false)
                a.jump(.aboveEqual, miss)
                multiply(.r11, by: layout.cpuStride)
                a.mov(.rax, imm: value)
                a.alu(0x01, .rax, .r11, w: true)
            } else {
                a.mov(.rax, imm: value)
            }
            return
        }
        if let key = stackKey(proven, size: 4) {
            // R2 = R10 + key within the frame: the stack's host memory, no check (as an
            // R10-relative load).
            a.load(0x8B, .r11, .r12, context(JITSlot.stackDelta))
            a.memory([0x8B], w: false, reg: X86Register.r9.rawValue, base: .r11, index: .rbp, disp: key)
        } else {
            a.mov(.r11, .rsi)
            translate(size: 4, alignment: 0, write: false, slow: miss) // r11 = host address + 4
            // r9 (the translation entry) is free now; r10 holds the instruction count.
            a.load(0x8B, .r9, .r11, -4, w: false) // mov r9d, [r11 - 4]: the index
        }
        let null = a.newLabel()
        a.alu(ext: 7, .r9, imm: Int32(bitPattern: layout.maxEntries), w: false)
        a.jump(.aboveEqual, null)
        multiply(.r9, by: layout.valueStride)
        if layout.cpuCount > 1 {
            a.load(0x8B, .r11, .r12, context(JITSlot.vCPU), w: false) // r11 = the vCPU (zero-extended)
            a.alu(ext: 7, .r11, imm: Int32(bitPattern: layout.cpuCount), w: false)
            a.jump(.aboveEqual, miss)
            multiply(.r11, by: layout.cpuStride)
            a.alu(0x01, .r9, .r11, w: true) // add r9, r11
        }
        a.mov(.rax, imm: layout.base)
        a.alu(0x01, .rax, .r9, w: true)
        a.jump(done)
        a.bind(null)
        a.alu(0x31, .rax, .rax, w: false)
    }

    /// `register *= factor` (64 bits; `factor` at most `Int32.max`): a shift for a power of two.
    mutating func multiply(_ register: X86Register, by factor: UInt32) {
        if factor.nonzeroBitCount == 1 {
            a.shift(ext: 4, register, imm: UInt8(factor.trailingZeroBitCount), w: true)
        } else {
            a.imul(register, register, imm: Int32(truncatingIfNeeded: factor), w: true)
        }
    }

    /// Cold code at `label` for a call the inline fast path did not take: the helper's direct
    /// entry (the general path if it declines), or the general path when it has none; then
    /// back to `done`.
    mutating func coldHelperCall(at label: X86Label, _ direct: DirectHelper?, general: X86Label, done: X86Label) {
        cold.append(
            (
                label,
                { g in
                    if let direct { g.directCall(direct, declined: general) } else { g.a.jump(general) }
                    g.a.jump(done)
                }
            ))
    }

    /// `bpf_map_lookup_elem` of a hash map by a direct call of its search (`InlineHashLookup`,
    /// as the kernel's `htab_map_gen_lookup` calls `__htab_map_lookup_elem`):
    ///
    ///     R1 == handle                          else miss
    ///     key = R2 translated for keySize bytes else miss
    ///     R0 = function(map, key, vCPU)         (R1–R5 and r10 saved around the call)
    ///
    /// The search needs no `DirectHelperCall`, map table or process. A miss (another map in
    /// R1, a key the translation refuses) goes to the helper, which returns the same or faults
    /// as the interpreter does.
    mutating func inlineHashLookup(
        _ lookup: InlineHashLookup, handle: UInt64, proven: ProvenArguments, miss: X86Label
    ) {
        let keySize = Int32(lookup.keySize)
        if proven.handle == nil {
            a.mov(.r11, imm: handle)
            a.alu(0x39, .rdi, .r11, w: true) // cmp rdi, r11
            a.jump(.notEqual, miss)
        }
        let key = stackKey(proven, size: keySize)
        if key != nil {
            a.load(0x8B, .r11, .r12, context(JITSlot.stackDelta)) // the key: [r11 + rbp + key]
        } else {
            a.mov(.r11, .rsi)
            translate(size: keySize, alignment: 0, write: false, slow: miss) // r11 = host address + keySize
        }
        // R1–R5 and the instruction count (`r10`) are caller-saved (six pushes: `rsp` stays aligned).
        for register in [X86Register.rdi, .rsi, .rdx, .rcx, .r8, .r10] { a.push(register) }
        a.mov(.rdi, imm: UInt64(UInt(bitPattern: lookup.map)))
        if let key {
            a.memory([0x8D], w: true, reg: X86Register.rsi.rawValue, base: .r11, index: .rbp, disp: key)
        } else {
            a.lea(.rsi, .r11, -keySize)
        }
        a.load(0x8B, .rdx, .r12, context(JITSlot.vCPU), w: false)
        a.mov(.r11, imm: UInt64(UInt(bitPattern: unsafeBitCast(lookup.function, to: UnsafeRawPointer.self))))
        a.call(register: .r11)
        for register in [X86Register.r10, .r8, .rcx, .rdx, .rsi, .rdi] { a.pop(register) }
    }

    /// `bpf_map_lookup_elem` of a plain hash map with 4- or 8-byte keys, searched inline
    /// (`InlineHashProbe`: the map's lock-free search in machine code):
    ///
    ///     R1 == handle                          else miss
    ///     key = the 4 or 8 bytes at R2 (translated, or in the frame) else miss
    ///     sequence odd                          → miss (a writer: the helper, locked)
    ///     R0 = the key's value address, or 0 (no table yet, an empty entry, `count` entries
    ///          looked at, a slot past the key store)
    ///     sequence changed                      → miss
    ///
    /// R1–R5 are kept (rdx, rcx, rsi, rdi, r8 pushed and popped around the search; r9 holds the
    /// key, r11 the byte mask), as around a call; R1 and R2 proven to hold the handle and a
    /// stack key are set to them again instead of pushed and popped. A miss goes to the helper's direct entry, then
    /// the helper, which answer as the interpreter does.
    mutating func inlineHashProbe(_ probe: InlineHashProbe, handle: UInt64, proven: ProvenArguments, miss: X86Label) {
        let size = Int32(probe.keySize)
        let wide = size == 8
        if proven.handle == nil {
            a.mov(.r11, imm: handle)
            a.alu(0x39, .rdi, .r11, w: true) // cmp rdi, r11
            a.jump(.notEqual, miss)
        }
        if let key = stackKey(proven, size: size) {
            a.load(0x8B, .r11, .r12, context(JITSlot.stackDelta))
            a.memory([0x8B], w: wide, reg: X86Register.r9.rawValue, base: .r11, index: .rbp, disp: key)
        } else {
            a.mov(.r11, .rsi)
            translate(size: size, alignment: 0, write: false, slow: miss) // r11 = host address + size
            a.load(0x8B, .r9, .r11, -size, w: wide) // the key (r9, the translation entry, is free)
        }
        // R1 and R2 proven (the handle, R10 + key): made again after the search instead of saved.
        let rebuiltKey = proven.handle == handle ? stackKey(proven, size: size) : nil
        let saved: [X86Register] = rebuiltKey != nil ? [.rdx, .rcx, .r8] : [.rdx, .rcx, .rsi, .rdi, .r8]
        for register in saved { a.push(register) }
        let header = UInt64(UInt(bitPattern: probe.header))
        let busy = a.newLabel()
        let loop = a.newLabel()
        let next = a.newLabel()
        let live = a.newLabel()
        let absent = a.newLabel()
        let check = a.newLabel()
        a.mov(.rdx, imm: header)
        a.load(0x8B, .rcx, .rdx, 0) // the sequence
        a.test(.rcx, imm: 1, w: false)
        a.jump(.notEqual, busy)
        a.push(.rcx)
        a.load(0x8B, .rsi, .rdx, 8) // the entry table
        // rax = hash(key, seed)
        a.mov(.rax, imm: probe.seed)
        a.alu(0x31, .rax, .r9, w: true)
        a.mov(.r11, imm: InlineHashProbe.multipliers.0)
        a.imul(.rax, .r11, w: true)
        a.mov(.r11, .rax)
        a.shift(ext: 5, .r11, imm: 32, w: true)
        a.alu(0x31, .rax, .r11, w: true)
        a.mov(.r11, imm: InlineHashProbe.multipliers.1)
        a.imul(.rax, .r11, w: true)
        a.shift(ext: 5, .rax, imm: 32, w: true)
        a.alu(0x85, .rsi, .rsi, w: true)
        a.jump(.equal, absent) // no table yet
        a.load(0x8B, .rdx, .rsi, 0) // the entry count: entries left to look at
        a.lea(.r11, .rdx, -1)
        a.shift(ext: 4, .r11, imm: 3, w: true) // the byte mask
        a.mov(.rdi, .rax)
        a.shift(ext: 4, .rdi, imm: 3, w: true)
        a.alu(0x21, .rdi, .r11, w: true) // the first entry's byte offset
        a.bind(loop)
        a.memory([0x8B], w: true, reg: X86Register.r8.rawValue, base: .rsi, index: .rdi, disp: 8) // the entry
        a.alu(0x85, .r8, .r8, w: true)
        a.jump(.equal, absent)
        a.memory([0x3B], w: false, reg: X86Register.rax.rawValue, base: .rsi, index: .rdi, disp: 12) // its hash
        a.jump(.notEqual, next)
        a.alu(ext: 7, .r8, imm: -1, w: false) // slot + 1 == 0xFFFFFFFF with hash 0: the tombstone
        a.jump(.notEqual, live)
        a.alu(0x85, .rax, .rax, w: false)
        a.jump(.equal, next)
        a.bind(live)
        a.mov(.r8, .r8, w: false)
        a.alu(ext: 5, .r8, imm: 1, w: true) // the slot (a 0 wraps past any store)
        a.mov(.rcx, imm: header)
        a.load(0x8B, .rcx, .rcx, 16) // the key store
        a.alu(0x85, .rcx, .rcx, w: true)
        a.jump(.equal, absent)
        a.load(0x3B, .r8, .rcx, 0) // slot < slot count, else inconsistent: absent (the check decides)
        a.jump(.aboveEqual, absent)
        let scale: UInt8 = wide ? 3 : 2
        a.shift(ext: 4, .r8, imm: scale, w: true)
        a.memory([0x3B], w: wide, reg: X86Register.r9.rawValue, base: .rcx, index: .r8, disp: 8) // the key
        a.jump(.notEqual, next)
        if probe.valueStride % (1 << scale) == 0 {
            // slot × stride from the key store's byte offset (slot << scale) at once.
            let factor = probe.valueStride >> scale
            if factor != 1 { a.imul(.r8, .r8, imm: Int32(factor), w: true) }
        } else {
            a.shift(ext: 5, .r8, imm: scale, w: true)
            a.imul(.r8, .r8, imm: Int32(probe.valueStride), w: true)
        }
        a.mov(.rax, imm: probe.valueBase)
        a.alu(0x01, .rax, .r8, w: true) // R0: the value's VM address
        a.jump(check)
        a.bind(next)
        a.alu(ext: 0, .rdi, imm: 8, w: true)
        a.alu(0x21, .rdi, .r11, w: true)
        a.alu(ext: 5, .rdx, imm: 1, w: true)
        a.jump(.notEqual, loop)
        a.bind(absent)
        a.alu(0x31, .rax, .rax, w: false)
        a.bind(check)
        a.pop(.rcx)
        a.mov(.r11, imm: header)
        a.load(0x3B, .rcx, .r11, 0) // the sequence again
        a.jump(.notEqual, busy)
        for register in saved.reversed() { a.pop(register) }
        if let rebuiltKey { rebuildArguments(handle: handle, key: rebuiltKey) }
        cold.append(
            (
                busy,
                { g in
                    for register in saved.reversed() { g.a.pop(register) }
                    if let rebuiltKey { g.rebuildArguments(handle: handle, key: rebuiltKey) }
                    g.a.jump(miss)
                }
            ))
    }

    /// R1 = `handle`, R2 = R10 + `key`: what the instructions before the call proved they hold.
    mutating func rebuildArguments(handle: UInt64, key: Int32) {
        a.mov(.rdi, imm: handle)
        a.lea(.rsi, .rbp, key)
    }

    /// The R10 offset of a proven stack key of `size` bytes that lies within the frame (where
    /// R10-relative accesses need no check), or nil.
    func stackKey(_ proven: ProvenArguments, size: Int32) -> Int32? {
        guard let key = proven.stackKey, key >= -Int32(env.stackFrameSize), key <= -size,
            env.stackSize >= env.stackFrameSize
        else { return nil }
        return key
    }

    /// What the instructions before the helper call at `pc` prove about R1 and R2 whenever the
    /// call is reached from them: the run reaches the call by falling through from `from` (no run
    /// starts after `from`, no branch or call between), and between `from` and the call
    ///
    /// - `handle`: the last write of R1 is an `lddw` of it;
    /// - `stackKey`: the last writes of R2 are `mov r2, r10; add r2, k`, and nothing writes R10
    ///   after them.
    ///
    /// Only stores and register-writing ALU, load and `lddw` instructions may lie between (an
    /// atomic or a packet load ends the search). Nil if nothing is proven. A run resumed after
    /// `from` may find other values (the host may change the registers after `step()`).
    func provenArguments(before pc: Int, keyValue: Bool = false) -> ProvenArguments? {
        guard check[pc] == nil else { return nil } // a jump lands on the call: nothing is known
        var proven = ProvenArguments()
        var r1Known = false
        var r2Known = false
        var addend: Int64? // `add r2, k`, the last write of R2, waiting for its `mov r2, r10`
        var from = pc
        var at = pc
        for _ in 0..<64 {
            guard at > 0, !(r1Known && r2Known) else { break }
            let p = previous(at)
            guard fallsThroughMidRun(p) else { break }
            let i = code[p]
            let written: UInt8?
            switch InstructionSet.form(of: i.operation).shape {
            case .storeImm, .storeReg: written = nil
            case .aluImm, .aluReg, .unary, .load, .loadImm64: written = i.destination
            default: return finish(proven, from: from) // atomics, packet loads: stop here
            }
            if written == 1, !r1Known {
                r1Known = true
                if i.operation == .loadImm64 {
                    proven.handle = i.imm
                    from = min(from, p)
                }
            }
            if written == 10, !r2Known { r2Known = true } // R10 moved after R2 was set: no key
            if written == 2, !r2Known {
                if let k = addend {
                    r2Known = true
                    if i.operation == .mov64Reg, i.source == 10, let key = Int32(exactly: k) {
                        proven.stackKey = key
                        from = min(from, p)
                    }
                } else if i.operation == .add64Imm {
                    addend = i.imm == 0 ? nil : Int64(Int32(truncatingIfNeeded: i.imm))
                    r2Known = addend == nil
                } else {
                    r2Known = true
                }
            }
            at = p
            if check[at] != nil { break } // a run starts here: what came before is not known
        }
        return finish(proven, from: from)

        func finish(_ proven: ProvenArguments, from: Int) -> ProvenArguments? {
            guard proven.handle != nil || proven.stackKey != nil else { return nil }
            var proven = proven
            proven.from = from
            // The key's value: only if the slots it rests on lie after the last access group
            // (the caller's condition for the cold copies of the slots after `from`).
            if keyValue, let key = proven.stackKey, let stored = constantStackWord(at: key, before: pc),
                stored.from > lastGroupEnd
            {
                proven.keyValue = stored.value
                proven.from = min(proven.from, stored.from)
            }
            return proven
        }
    }

    /// The 4-byte value at `R10 + key` whenever the call at `pc` is reached by falling through
    /// from the slot returned (`from`): the last write of those bytes is a 4-byte R10-relative
    /// store of an immediate, or of a register whose last write is a `mov` of an immediate; no
    /// run starts after `from`, nothing writes R10 after the store, and every other instruction
    /// between is a register-writing ALU, load or `lddw` form or an R10-relative store to other
    /// bytes (a store through another register might reach the stack: nil). A run resumed after
    /// `from` may find other bytes (the host may write the stack after `step()`).
    func constantStackWord(at key: Int32, before pc: Int) -> (value: UInt32, from: Int)? {
        let low = Int64(key)
        var at = pc
        var source: UInt8? // the stored register, once the store is found
        for _ in 0..<64 {
            guard at > 0 else { return nil }
            let p = previous(at)
            guard fallsThroughMidRun(p) else { return nil }
            let i = code[p]
            switch InstructionSet.form(of: i.operation).shape {
            case .aluImm, .aluReg, .unary, .load, .loadImm64:
                if let source {
                    if i.destination == source {
                        switch i.operation {
                        case .mov32Imm, .mov64Imm: return (UInt32(truncatingIfNeeded: i.imm), p)
                        default: return nil
                        }
                    }
                } else if i.destination == 10 {
                    return nil // R10 moved after the store
                }
            case .storeImm, .storeReg:
                guard source == nil else { break } // the store is found: only registers matter now
                guard i.destination == 10 else { return nil }
                let offset = Int64(i.offset)
                let size: Int64
                switch i.operation {
                case .store64Imm, .store64Reg: size = 8
                case .store32Imm, .store32Reg: size = 4
                case .store16Imm, .store16Reg: size = 2
                default: size = 1
                }
                if offset == low, size == 4 {
                    if i.operation == .store32Imm { return (UInt32(truncatingIfNeeded: i.imm), p) }
                    source = i.source
                } else if offset < low + 4, offset + size > low {
                    return nil // part of the key written otherwise
                }
            default:
                return nil // atomics, packet loads
            }
            at = p
            if check[at] != nil { return nil } // a run starts here: what came before is not known
        }
        return nil
    }

    /// The value an `lddw` put in R1 before the call at `pc`, looking back through the
    /// instructions that fall through to it; nil if something else writes R1 first. A guess:
    /// the call site may be reached with another R1 (a jump to it, a resumed run), so the
    /// inline code compares R1 with it.
    func mapHandleInR1(before pc: Int) -> UInt64? {
        var at = pc
        for _ in 0..<64 {
            guard at > 0 else { return nil }
            at = previous(at)
            let i = code[at]
            if !fallsThroughMidRun(at), InstructionSet.form(of: i.operation).shape != .callHelper { return nil }
            if i.destination == 1 { return i.operation == .loadImm64 ? i.imm : nil }
        }
        return nil
    }
}

/// What the instructions before a helper call prove about its arguments
/// (`X86Generator.provenArguments`): the map handle in R1, a key at `R10 + stackKey` in R2 (and,
/// for array lookups, its value when a constant was stored there), and the first slot those
/// facts rest on (`from`).
struct ProvenArguments {
    var handle: UInt64?
    var stackKey: Int32?
    /// The 4-byte key's value, when the instructions before the call store a constant there
    /// (`constantStackWord`).
    var keyValue: UInt32?
    var from = 0
}

/// The machine-stack frames of BPF-to-BPF calls in `X86Backend`'s code, innermost (lowest
/// address) first, between the code's `rsp` and `JITSlot.machineStack`:
///
/// - a call's frame: the return address (the call site's `nop`, whose 32-bit displacement is the
///   frame's `tag`: the pc it returns to, and which of R6–R9 the call saved), the caller's R10,
///   the saved registers (R9 … R6, those the callee may write), and an 8-byte pad if their count
///   is odd: 16 to 48 bytes, so `rsp` keeps its 16-byte alignment;
/// - a frame pushed before the code was entered (by `step()`, or before the driver re-entered
///   after a budget check): the address of `olderReturn`, then the frame's depth (16 bytes).
///   `Process.frames` holds the rest of it, as it does for every frame outside it.
enum NativeFrame {
    /// The pc field's bound (28 bits); the saved-register mask takes the top 4 bits.
    static let maxPC = 1 << 28

    static func tag(returnPC: Int, saved: UInt8) -> UInt32 { UInt32(returnPC) | UInt32(saved) << 28 }

    /// The frame's size in bytes.
    static func size(saved: UInt8) -> Int {
        let count = saved.nonzeroBitCount
        return 16 + 8 * (count + count % 2)
    }
}

/// `syncFrames`' copy of the native frames (`NativeFrame`) into `Process.frames`, and the depth
/// into its word: `stack` is the code's `rsp`, `olderReturn` the address that marks frames
/// pushed before the code was entered. R6–R9 a call did not save are the ones its callee kept:
/// their values at the next inner level (the registers, stored in `Process.registers`, for the
/// innermost frame).
let x86SyncFrames: @convention(c) (UnsafeMutablePointer<UInt64>, UnsafeRawPointer, UnsafeRawPointer) -> Void = {
    context, stack, olderReturn in
    let base = UInt(context[JITSlot.machineStack])
    var calls = 0
    var outer = Int(truncatingIfNeeded: context[JITSlot.exitDepth])
    var at = stack
    while UInt(bitPattern: at) < base {
        let returnAddress = at.load(as: UnsafeRawPointer.self)
        if returnAddress == olderReturn {
            outer = Int(truncatingIfNeeded: at.load(fromByteOffset: 8, as: UInt64.self)) + 1
            break
        }
        at += NativeFrame.size(saved: UInt8((returnAddress + 3).loadUnaligned(as: UInt32.self) >> 28))
        calls += 1
    }
    let depth = outer + calls
    context[JITSlot.depth] = UInt64(depth)
    let frames = UnsafeMutablePointer<CallFrame>(bitPattern: UInt(context[JITSlot.frames]))!
    let registers = UnsafePointer<UInt64>(bitPattern: UInt(context[JITSlot.registers]))!
    var current = (registers[6], registers[7], registers[8], registers[9])
    at = stack
    for level in stride(from: depth - 1, through: outer, by: -1) {
        let tag = (at.load(as: UnsafeRawPointer.self) + 3).loadUnaligned(as: UInt32.self)
        let saved = UInt8(tag >> 28)
        let callerR10 = at.load(fromByteOffset: 8, as: UInt64.self)
        var offset = 16
        func restored(_ index: Int, _ kept: UInt64) -> UInt64 {
            guard saved & (1 << index) != 0 else { return kept }
            defer { offset += 8 }
            return at.load(fromByteOffset: offset, as: UInt64.self)
        }
        let r9 = restored(3, current.3)
        let r8 = restored(2, current.2)
        let r7 = restored(1, current.1)
        let r6 = restored(0, current.0)
        current = (r6, r7, r8, r9)
        frames[level] = CallFrame(returnPC: Int(tag & 0x0FFF_FFFF), savedRegisters: (r6, r7, r8, r9, callerR10))
        at += NativeFrame.size(saved: saved)
    }
}
