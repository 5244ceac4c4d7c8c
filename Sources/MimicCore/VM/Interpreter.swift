import CMimicAtomics
import MimicMemory

/// How often the interpreter loop checks its instruction limit, fixed at compile time.
protocol ExecutionMode {
    /// Before every instruction (stepping) or where a straight-line run starts (running: the
    /// whole run is checked at once, `Program.runLength`; a run that could cross the limit
    /// stops before it with `limitInsideRun` and is finished by stepping). Both are exact.
    static var checksEveryInstruction: Bool { get }
}

enum RunningMode: ExecutionMode { static var checksEveryInstruction: Bool { false } }
enum SteppingMode: ExecutionMode { static var checksEveryInstruction: Bool { true } }

/// Why the interpreter loop returned.
enum Stop {
    case exited
    /// The instruction limit was reached; the process can continue.
    case paused
    /// Running mode only: fewer instructions are left before the limit than the straight-line
    /// run at `pc` may execute; `executeExactly` finishes them by stepping.
    case limitInsideRun
    /// Boxed: `Stop` is returned from every run, and an inline `Kind` (a few hundred bytes)
    /// was copied through memory each time; failures are rare enough to allocate.
    indirect case failed(ExecutionError.Kind)
}

/// How many instructions may pass between two looks at the cancellation flag and the deadline.
let cancellationInterval: UInt64 = 4096

extension Process {
    /// The interpreter: executes from `pc` until exit, fault, or `limit` more instructions.
    ///
    /// Performance rules (Docs/Performance.md): all running state lives in locals (code pointer,
    /// register pointer, pc, translation table, counters); no allocation, reference counting or
    /// dynamic dispatch per instruction; faults leave through cold paths.
    /// `Mode` decides how often the limit is checked; everything else is shared, so `step` and
    /// `run` execute every instruction with the same code.
    @inline(__always)
    func execute<Mode: ExecutionMode>(
        _ mode: Mode.Type, limit: UInt64, cancellation: CancellationFlag?,
        limitsCallbacks: Bool = false
    ) -> Stop {
        guard case .ready = state else { return .failed(.notRunnable) }
        var code = UnsafePointer(program.code.baseAddress.unsafelyUnwrapped)
        var helpers = program.helperCalls
        let r = registers.storage
        var table = memory.table
        // The current instruction as a pointer: no index scaling per dispatch; `ip - code` is the pc.
        var ip = code + pc
        let start = instructionsExecuted
        var count = start
        let end = limit > UInt64.max - start ? UInt64.max : start + limit
        // Stepping runs a helper's callbacks to their end within the one step.
        runLimit = Mode.checksEveryInstruction && !limitsCallbacks ? .max : end
        runCancellation = cancellation
        // The count from which run starts take the slow path (`limitReached`), which sets the next:
        // runs that surely fit before the limit, and 4,096 instructions before looking at the flag.
        let longest = Mode.checksEveryInstruction ? 1 : UInt64(program.longestRun)
        var checkpoint = min(
            max(end >= longest ? end - longest : 0, count),
            cancellation == nil && runDeadline == nil ? .max : count &+ cancellationInterval)
        let frameSize = UInt64(vm.configuration.stackFrameSize)
        let maxDepth = vm.configuration.maxCallDepth
        var depth = depth
        let frames = frames
        // `exit` at this depth ends the run: 0, or the callee's depth in a callback (`callFunction`).
        let exitDepth = callbackDepth

        defer {
            self.pc = Self.slot(ip, code)
            self.instructionsExecuted = count
            self.depth = depth
        }

        // The limit and the cancellation flag are checked where a straight-line run starts (the
        // entry, taken jumps, calls and returns: `enter`) and, in stepping mode, before each
        // instruction.
        if let stop = enter(Mode.self, code, ip, count, end, cancellation, &checkpoint) { return stop }
        while true {
            if Mode.checksEveryInstruction, count >= checkpoint,
                let stop = limitReached(count, 1, end, cancellation, &checkpoint, longestRun: 1)
            {
                return stop
            }
            let i = ip.pointee
            let d = Int(truncatingIfNeeded: i.destination)
            let s = Int(truncatingIfNeeded: i.source)
            count &+= 1
            ip += 1

            switch i.operation {
            // MARK: ALU64
            case .add64Imm: r[d] &+= i.imm
            case .add64Reg: r[d] &+= r[s]
            case .sub64Imm: r[d] &-= i.imm
            case .sub64Reg: r[d] &-= r[s]
            case .mul64Imm: r[d] &*= i.imm
            case .mul64Reg: r[d] &*= r[s]
            case .div64Imm: r[d] = Semantics.divide64(r[d], i.imm)
            case .div64Reg: r[d] = Semantics.divide64(r[d], r[s])
            case .sdiv64Imm: r[d] = Semantics.signedDivide64(r[d], i.imm)
            case .sdiv64Reg: r[d] = Semantics.signedDivide64(r[d], r[s])
            case .or64Imm: r[d] |= i.imm
            case .or64Reg: r[d] |= r[s]
            case .and64Imm: r[d] &= i.imm
            case .and64Reg: r[d] &= r[s]
            case .lsh64Imm: r[d] = r[d] &<< i.imm
            case .lsh64Reg: r[d] = r[d] &<< r[s]
            case .rsh64Imm: r[d] = r[d] &>> i.imm
            case .rsh64Reg: r[d] = r[d] &>> r[s]
            case .mod64Imm: r[d] = Semantics.modulo64(r[d], i.imm)
            case .mod64Reg: r[d] = Semantics.modulo64(r[d], r[s])
            case .smod64Imm: r[d] = Semantics.signedModulo64(r[d], i.imm)
            case .smod64Reg: r[d] = Semantics.signedModulo64(r[d], r[s])
            case .xor64Imm: r[d] ^= i.imm
            case .xor64Reg: r[d] ^= r[s]
            case .mov64Imm: r[d] = i.imm
            case .mov64Reg: r[d] = r[s]
            case .arsh64Imm: r[d] = UInt64(bitPattern: Int64(bitPattern: r[d]) &>> i.imm)
            case .arsh64Reg: r[d] = UInt64(bitPattern: Int64(bitPattern: r[d]) &>> r[s])
            case .neg64: r[d] = 0 &- r[d]

            // MARK: ALU32 (results are zero-extended)
            case .add32Imm: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &+ UInt32(truncatingIfNeeded: i.imm))
            case .add32Reg: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &+ UInt32(truncatingIfNeeded: r[s]))
            case .sub32Imm: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &- UInt32(truncatingIfNeeded: i.imm))
            case .sub32Reg: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &- UInt32(truncatingIfNeeded: r[s]))
            case .mul32Imm: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &* UInt32(truncatingIfNeeded: i.imm))
            case .mul32Reg: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &* UInt32(truncatingIfNeeded: r[s]))
            case .div32Imm: r[d] = Semantics.divide32(r[d], i.imm)
            case .div32Reg: r[d] = Semantics.divide32(r[d], r[s])
            case .sdiv32Imm: r[d] = Semantics.signedDivide32(r[d], i.imm)
            case .sdiv32Reg: r[d] = Semantics.signedDivide32(r[d], r[s])
            case .or32Imm: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] | i.imm))
            case .or32Reg: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] | r[s]))
            case .and32Imm: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] & i.imm))
            case .and32Reg: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] & r[s]))
            case .lsh32Imm: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &<< UInt32(truncatingIfNeeded: i.imm))
            case .lsh32Reg: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &<< UInt32(truncatingIfNeeded: r[s]))
            case .rsh32Imm: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &>> UInt32(truncatingIfNeeded: i.imm))
            case .rsh32Reg: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]) &>> UInt32(truncatingIfNeeded: r[s]))
            case .mod32Imm: r[d] = Semantics.modulo32(r[d], i.imm)
            case .mod32Reg: r[d] = Semantics.modulo32(r[d], r[s])
            case .smod32Imm: r[d] = Semantics.signedModulo32(r[d], i.imm)
            case .smod32Reg: r[d] = Semantics.signedModulo32(r[d], r[s])
            case .xor32Imm: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] ^ i.imm))
            case .xor32Reg: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d] ^ r[s]))
            case .mov32Imm: r[d] = UInt64(UInt32(truncatingIfNeeded: i.imm))
            case .mov32Reg: r[d] = UInt64(UInt32(truncatingIfNeeded: r[s]))
            case .arsh32Imm: r[d] = Semantics.arithmeticShift32(r[d], i.imm)
            case .arsh32Reg: r[d] = Semantics.arithmeticShift32(r[d], r[s])
            case .neg32: r[d] = UInt64(0 &- UInt32(truncatingIfNeeded: r[d]))

            // MARK: Sign-extending moves
            case .movsx8to64: r[d] = UInt64(bitPattern: Int64(Int8(truncatingIfNeeded: r[s])))
            case .movsx16to64: r[d] = UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: r[s])))
            case .movsx32to64: r[d] = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: r[s])))
            case .movsx8to32: r[d] = UInt64(UInt32(bitPattern: Int32(Int8(truncatingIfNeeded: r[s]))))
            case .movsx16to32: r[d] = UInt64(UInt32(bitPattern: Int32(Int16(truncatingIfNeeded: r[s]))))

            // MARK: Byte order (the VM is little-endian: `le` truncates, `be` and `bswap` swap)
            case .le16: r[d] = UInt64(UInt16(truncatingIfNeeded: r[d]))
            case .le32: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]))
            case .le64: break
            case .be16, .bswap16: r[d] = UInt64(UInt16(truncatingIfNeeded: r[d]).byteSwapped)
            case .be32, .bswap32: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]).byteSwapped)
            case .be64, .bswap64: r[d] = r[d].byteSwapped

            // MARK: Loads and stores
            case .load64:
                if !load(UInt64.self, i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .load32:
                if !load(UInt32.self, i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .load16:
                if !load(UInt16.self, i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .load8:
                if !load(UInt8.self, i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .loadSigned32:
                if !load(Int32.self, i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .loadSigned16:
                if !load(Int16.self, i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .loadSigned8:
                if !load(Int8.self, i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .store64Imm:
                if !store(UInt64.self, i.imm, i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .store32Imm:
                if !store(UInt32.self, i.imm, i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .store16Imm:
                if !store(UInt16.self, i.imm, i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .store8Imm:
                if !store(UInt8.self, i.imm, i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .store64Reg:
                if !store(UInt64.self, r[s], i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .store32Reg:
                if !store(UInt32.self, r[s], i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .store16Reg:
                if !store(UInt16.self, r[s], i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .store8Reg:
                if !store(UInt8.self, r[s], i, r, table) {
                    ip -= 1
                    return .failed(takeFault())
                }
            case .loadImm64:
                r[d] = i.imm
                ip += 1

            // MARK: Atomics
            case .atomicAdd64, .atomicOr64, .atomicAnd64, .atomicXor64,
                .atomicFetchAdd64, .atomicFetchOr64, .atomicFetchAnd64, .atomicFetchXor64,
                .atomicExchange64, .atomicCompareExchange64:
                let address = r[d] &+ UInt64(bitPattern: Int64(i.offset))
                guard address & 7 == 0, let p = table.pointer(forWriting: address, size: 8) else {
                    ip -= 1
                    return .failed(atomicFault(address, size: 8))
                }
                Semantics.atomic64(i.operation, p, r, source: s)
            case .atomicAdd32, .atomicOr32, .atomicAnd32, .atomicXor32,
                .atomicFetchAdd32, .atomicFetchOr32, .atomicFetchAnd32, .atomicFetchXor32,
                .atomicExchange32, .atomicCompareExchange32:
                let address = r[d] &+ UInt64(bitPattern: Int64(i.offset))
                guard address & 3 == 0, let p = table.pointer(forWriting: address, size: 4) else {
                    ip -= 1
                    return .failed(atomicFault(address, size: 4))
                }
                Semantics.atomic32(i.operation, p, r, source: s)

            // MARK: Legacy packet loads (socket filters): R0 = big-endian packet bytes
            case .loadPacketAbsolute32, .loadPacketAbsolute16, .loadPacketAbsolute8,
                .loadPacketIndirect32, .loadPacketIndirect16, .loadPacketIndirect8:
                switch loadPacket(i, registers: r) {
                case .some(let value): r[0] = value
                case .none where pendingFault == nil:
                    r[0] = 0
                    return .exited // out of bounds: the program returns 0
                case .none:
                    ip -= 1
                    return .failed(takeFault())
                }

            // MARK: Jumps
            case .jump, .jump32:
                ip = code + Int(truncatingIfNeeded: i.offset)
                if let stop = enter(Mode.self, code, ip, count, end, cancellation, &checkpoint) { return stop }
            case .jumpEqual64Imm:
                if r[d] == i.imm, let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpEqual64Reg:
                if r[d] == r[s], let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpNotEqual64Imm:
                if r[d] != i.imm, let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpNotEqual64Reg:
                if r[d] != r[s], let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpGreater64Imm:
                if r[d] > i.imm, let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpGreater64Reg:
                if r[d] > r[s], let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpGreaterEqual64Imm:
                if r[d] >= i.imm, let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpGreaterEqual64Reg:
                if r[d] >= r[s], let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpLess64Imm:
                if r[d] < i.imm, let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpLess64Reg:
                if r[d] < r[s], let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpLessEqual64Imm:
                if r[d] <= i.imm, let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpLessEqual64Reg:
                if r[d] <= r[s], let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpSet64Imm:
                if r[d] & i.imm != 0, let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpSet64Reg:
                if r[d] & r[s] != 0, let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint) {
                    return stop
                }
            case .jumpSignedGreater64Imm:
                if Int64(bitPattern: r[d]) > Int64(bitPattern: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedGreater64Reg:
                if Int64(bitPattern: r[d]) > Int64(bitPattern: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedGreaterEqual64Imm:
                if Int64(bitPattern: r[d]) >= Int64(bitPattern: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedGreaterEqual64Reg:
                if Int64(bitPattern: r[d]) >= Int64(bitPattern: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedLess64Imm:
                if Int64(bitPattern: r[d]) < Int64(bitPattern: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedLess64Reg:
                if Int64(bitPattern: r[d]) < Int64(bitPattern: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedLessEqual64Imm:
                if Int64(bitPattern: r[d]) <= Int64(bitPattern: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedLessEqual64Reg:
                if Int64(bitPattern: r[d]) <= Int64(bitPattern: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpEqual32Imm:
                if UInt32(truncatingIfNeeded: r[d]) == UInt32(truncatingIfNeeded: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpEqual32Reg:
                if UInt32(truncatingIfNeeded: r[d]) == UInt32(truncatingIfNeeded: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpNotEqual32Imm:
                if UInt32(truncatingIfNeeded: r[d]) != UInt32(truncatingIfNeeded: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpNotEqual32Reg:
                if UInt32(truncatingIfNeeded: r[d]) != UInt32(truncatingIfNeeded: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpGreater32Imm:
                if UInt32(truncatingIfNeeded: r[d]) > UInt32(truncatingIfNeeded: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpGreater32Reg:
                if UInt32(truncatingIfNeeded: r[d]) > UInt32(truncatingIfNeeded: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpGreaterEqual32Imm:
                if UInt32(truncatingIfNeeded: r[d]) >= UInt32(truncatingIfNeeded: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpGreaterEqual32Reg:
                if UInt32(truncatingIfNeeded: r[d]) >= UInt32(truncatingIfNeeded: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpLess32Imm:
                if UInt32(truncatingIfNeeded: r[d]) < UInt32(truncatingIfNeeded: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpLess32Reg:
                if UInt32(truncatingIfNeeded: r[d]) < UInt32(truncatingIfNeeded: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpLessEqual32Imm:
                if UInt32(truncatingIfNeeded: r[d]) <= UInt32(truncatingIfNeeded: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpLessEqual32Reg:
                if UInt32(truncatingIfNeeded: r[d]) <= UInt32(truncatingIfNeeded: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSet32Imm:
                if UInt32(truncatingIfNeeded: r[d] & i.imm) != 0,
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSet32Reg:
                if UInt32(truncatingIfNeeded: r[d] & r[s]) != 0,
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedGreater32Imm:
                if Int32(truncatingIfNeeded: r[d]) > Int32(truncatingIfNeeded: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedGreater32Reg:
                if Int32(truncatingIfNeeded: r[d]) > Int32(truncatingIfNeeded: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedGreaterEqual32Imm:
                if Int32(truncatingIfNeeded: r[d]) >= Int32(truncatingIfNeeded: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedGreaterEqual32Reg:
                if Int32(truncatingIfNeeded: r[d]) >= Int32(truncatingIfNeeded: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedLess32Imm:
                if Int32(truncatingIfNeeded: r[d]) < Int32(truncatingIfNeeded: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedLess32Reg:
                if Int32(truncatingIfNeeded: r[d]) < Int32(truncatingIfNeeded: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedLessEqual32Imm:
                if Int32(truncatingIfNeeded: r[d]) <= Int32(truncatingIfNeeded: i.imm),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }
            case .jumpSignedLessEqual32Reg:
                if Int32(truncatingIfNeeded: r[d]) <= Int32(truncatingIfNeeded: r[s]),
                    let stop = take(i, &ip, Mode.self, code, count, end, cancellation, &checkpoint)
                {
                    return stop
                }

            // MARK: Calls
            case .callLocal:
                guard depth &+ 1 < maxDepth else {
                    ip -= 1
                    return .failed(.callDepthExceeded(limit: maxDepth))
                }
                frames[depth] = CallFrame(
                    returnPC: Self.slot(ip, code), savedRegisters: (r[6], r[7], r[8], r[9], r[10]))
                depth &+= 1
                r[10] &-= frameSize
                ip = code + Int(truncatingIfNeeded: i.offset)
                if let stop = enter(Mode.self, code, ip, count, end, cancellation, &checkpoint) { return stop }
            case .callHelper, .callKernelFunction:
                let box = helpers[Int(truncatingIfNeeded: i.imm)]
                // A direct entry first, right here: it never reads pc, count or depth, never maps
                // memory and never runs callbacks (`DirectHelper`), so none of them is stored or
                // reloaded around it.
                if let direct = box._withUnsafeGuaranteedRef({ $0.helper.direct }) {
                    var call = DirectHelperCall(process: Unmanaged.passUnretained(self), data: direct.data)
                    let value = withUnsafeMutablePointer(to: &call) {
                        direct.function(r[1], r[2], r[3], r[4], r[5], UnsafeMutableRawPointer($0))
                    }
                    if !call.declined {
                        r[0] = value
                        if let stop = enter(Mode.self, code, ip, count, end, cancellation, &checkpoint) { return stop }
                        continue
                    }
                }
                self.pc = Self.slot(ip, code)
                self.instructionsExecuted = count
                self.depth = depth
                let result = invokeHelper(box, tryingDirect: false)
                table = memory.table // a helper may have mapped or unmapped regions
                count = instructionsExecuted // and run callbacks (`bpf_loop`)
                switch result {
                case .value(let value): r[0] = value
                case .exit(let value):
                    r[0] = value
                    return .exited
                case .tailCall(let next):
                    guard depth == 0 else {
                        ip -= 1
                        return .failed(.unsupported("tail call from inside a BPF-to-BPF function"))
                    }
                    guard tailCallCount < vm.configuration.tailCallLimit else {
                        ip -= 1
                        return .failed(.tailCallLimit(vm.configuration.tailCallLimit))
                    }
                    tailCallCount += 1
                    program = next
                    code = UnsafePointer(next.code.baseAddress.unsafelyUnwrapped)
                    helpers = next.helperCalls
                    ip = code
                    checkpoint = count // the next program's runs differ: take the slow path
                case .none:
                    ip -= 1
                    return .failed(takeFault())
                }
                if let stop = enter(Mode.self, code, ip, count, end, cancellation, &checkpoint) { return stop }
            case .callRegister:
                self.pc = Self.slot(ip, code)
                self.instructionsExecuted = count
                let target = r[d]
                if target & ~UInt64(0xFFFF_FFFF) == Program.functionAddressTag,
                    program.functionEntries.contains(Int(target & 0xFFFF_FFFF))
                {
                    guard depth + 1 < maxDepth else {
                        ip -= 1
                        return .failed(.callDepthExceeded(limit: maxDepth))
                    }
                    frames[depth] = CallFrame(
                        returnPC: Self.slot(ip, code), savedRegisters: (r[6], r[7], r[8], r[9], r[10]))
                    depth &+= 1
                    r[10] &-= frameSize
                    ip = code + Int(target & 0xFFFF_FFFF)
                } else if let result = callHelper(registerValue: target, depth: depth) {
                    table = memory.table
                    count = instructionsExecuted
                    switch result {
                    case .value(let value): r[0] = value
                    case .exit(let value):
                        r[0] = value
                        return .exited
                    case .tailCall:
                        ip -= 1
                        return .failed(.unsupported("tail call through callx"))
                    case .none:
                        ip -= 1
                        return .failed(takeFault())
                    }
                } else {
                    ip -= 1
                    return .failed(.invalidCallTarget(target))
                }
                if let stop = enter(Mode.self, code, ip, count, end, cancellation, &checkpoint) { return stop }
            case .exit:
                if depth == exitDepth { return .exited }
                depth &-= 1
                let frame = frames[depth]
                ip = code + frame.returnPC
                (r[6], r[7], r[8], r[9], r[10]) = frame.savedRegisters
                if let stop = enter(Mode.self, code, ip, count, end, cancellation, &checkpoint) { return stop }
            }
        }
    }

    // MARK: Cold paths

    /// The check where the straight-line run at `pc` starts (running mode only): one compare,
    /// as long as the longest run of the program fits before the limit.
    @inline(__always)
    func enter<Mode: ExecutionMode>(
        _ mode: Mode.Type, _ code: UnsafePointer<DecodedInstruction>, _ ip: UnsafePointer<DecodedInstruction>,
        _ count: UInt64, _ end: UInt64, _ cancellation: CancellationFlag?, _ checkpoint: inout UInt64
    ) -> Stop? {
        if Mode.checksEveryInstruction { return nil }
        guard count >= checkpoint else { return nil }
        return limitReached(
            count, UInt64(Program.runLength(code, Self.slot(ip, code))), end, cancellation, &checkpoint,
            longestRun: UInt64(program.longestRun))
    }

    /// The pc of the instruction at `ip` (never before `code`): an unsigned division, a shift
    /// (`ip - code` divides with signed rounding: three instructions more on every call).
    @inline(__always)
    static func slot(_ ip: UnsafePointer<DecodedInstruction>, _ code: UnsafePointer<DecodedInstruction>) -> Int {
        Int(
            bitPattern: (UInt(bitPattern: ip) &- UInt(bitPattern: code))
                / UInt(MemoryLayout<DecodedInstruction>.stride))
    }

    /// A taken jump: `pc` moves to the target, where a new run starts.
    @inline(__always)
    func take<Mode: ExecutionMode>(
        _ i: DecodedInstruction, _ ip: inout UnsafePointer<DecodedInstruction>, _ mode: Mode.Type,
        _ code: UnsafePointer<DecodedInstruction>, _ count: UInt64, _ end: UInt64,
        _ cancellation: CancellationFlag?, _ checkpoint: inout UInt64
    ) -> Stop? {
        ip = code + Int(truncatingIfNeeded: i.offset)
        return enter(mode, code, ip, count, end, cancellation, &checkpoint)
    }

    /// The slow path of the limit check, where a run of `length` instructions starts: why to
    /// stop, or nil to go on with the next checkpoint. Until `end - longestRun` every run fits,
    /// so the checkpoint can stay there (or at the next look at the cancellation flag and the
    /// deadline, `runDeadline`: both are looked at here only); closer
    /// to the end every run start comes here and is measured.
    @inline(never)
    func limitReached(
        _ count: UInt64, _ length: UInt64, _ end: UInt64, _ cancellation: CancellationFlag?,
        _ checkpoint: inout UInt64, longestRun: UInt64
    ) -> Stop? {
        if count >= end { return .paused }
        if let cancellation, cancellation.isCancelled { return .failed(.cancelled) }
        if let runDeadline, ContinuousClock.now >= runDeadline.instant {
            return .failed(.deadlineExceeded(executed: count))
        }
        if count &+ length > end { return .limitInsideRun }
        checkpoint = min(
            max(end >= longestRun ? end - longestRun : 0, count),
            cancellation == nil && runDeadline == nil ? .max : count &+ cancellationInterval)
        return nil
    }

    /// Runs with an exact instruction limit: at full speed while whole straight-line runs fit,
    /// then the last few instructions one at a time. `run()` and callbacks use this.
    func executeExactly(limit: UInt64, cancellation: CancellationFlag?) -> Stop {
        let start = instructionsExecuted
        let stop =
            runsCompiledCode
            ? executeCompiled(limit: limit, cancellation: cancellation)
            : execute(RunningMode.self, limit: limit, cancellation: cancellation)
        guard case .limitInsideRun = stop else { return stop }
        return finishByStepping(limit: limit &- (instructionsExecuted &- start), cancellation: cancellation)
    }

    /// The last instructions before an exact limit, one at a time. Out of line: with both loops
    /// in one function the running loop's registers were allocated worse (measured).
    @inline(never)
    func finishByStepping(limit: UInt64, cancellation: CancellationFlag?) -> Stop {
        // A helper's callbacks in these steps count against the same limit.
        execute(SteppingMode.self, limit: limit, cancellation: cancellation, limitsCallbacks: true)
    }

    /// `r[dst] = *(T *)(r[src] + off)`, zero- or sign-extended as `T` is; false after a fault.
    @inline(__always)
    func load<T: FixedWidthInteger>(
        _ type: T.Type, _ i: DecodedInstruction, _ r: UnsafeMutablePointer<UInt64>,
        _ table: TranslationTable
    ) -> Bool {
        let address = r[Int(truncatingIfNeeded: i.source)] &+ UInt64(bitPattern: Int64(i.offset))
        let size = UInt64(MemoryLayout<T>.size)
        if let p = table.pointer(forReading: address, size: size) {
            r[Int(truncatingIfNeeded: i.destination)] = UInt64(
                truncatingIfNeeded: T(littleEndian: p.loadUnaligned(as: T.self)))
            return true
        }
        guard let value = slowLoad(address, size: Int(size)) else { return false }
        r[Int(truncatingIfNeeded: i.destination)] = UInt64(truncatingIfNeeded: T(truncatingIfNeeded: value))
        return true
    }

    /// `*(T *)(r[dst] + off) = value`, truncated to `T`; false after a fault.
    @inline(__always)
    func store<T: FixedWidthInteger>(
        _ type: T.Type, _ value: UInt64, _ i: DecodedInstruction, _ r: UnsafeMutablePointer<UInt64>,
        _ table: TranslationTable
    ) -> Bool {
        let address = r[Int(truncatingIfNeeded: i.destination)] &+ UInt64(bitPattern: Int64(i.offset))
        if let p = table.pointer(forWriting: address, size: UInt64(MemoryLayout<T>.size)) {
            p.storeBytes(of: T(truncatingIfNeeded: value).littleEndian, as: T.self)
            return true
        }
        return slowStore(value, at: address, size: MemoryLayout<T>.size)
    }

    /// The fault a cold path recorded, cleared.
    @inline(never)
    func takeFault() -> ExecutionError.Kind {
        defer { pendingFault = nil }
        return pendingFault ?? .unsupported("internal error: fault without a reason")
    }

    @inline(never)
    func slowLoad(_ address: UInt64, size: Int) -> UInt64? {
        do {
            return try memory.load(address, size: size)
        } catch {
            pendingFault = .memory(error)
            return nil
        }
    }

    @inline(never)
    func slowStore(_ value: UInt64, at address: UInt64, size: Int) -> Bool {
        do {
            try memory.store(value, at: address, size: size)
            return true
        } catch {
            pendingFault = .memory(error)
            return false
        }
    }

    @inline(never)
    func atomicFault(_ address: UInt64, size: Int) -> ExecutionError.Kind {
        if case .failure(let fault) = memory.resolve(address, size: size, access: .write) { return .memory(fault) }
        let region = memory.region(containing: address)
        if region?.kind == .ring {
            return .unsupported("atomic operation on ring region \(region?.name ?? "")")
        }
        return .memory(MemoryFault(reason: .misaligned, access: .write, address: address, size: size, region: region))
    }

    /// Runs a helper of the program's `helperCalls` table; on failure records the fault and
    /// returns nil. The box is read unretained, so the call copies no `Helper`: no `String` copy
    /// and no reference count written (the program's boxes are shared by every core running it).
    @inline(never)
    func invokeHelper(_ box: Unmanaged<HelperBox>, tryingDirect: Bool = true) -> HelperResult? {
        if tryingDirect, let direct = box._withUnsafeGuaranteedRef({ $0.helper.direct }) {
            let r = registers.storage
            var call = DirectHelperCall(process: Unmanaged.passUnretained(self), data: direct.data)
            let value = withUnsafeMutablePointer(to: &call) {
                direct.function(r[1], r[2], r[3], r[4], r[5], UnsafeMutableRawPointer($0))
            }
            if !call.declined { return .value(value) }
        }
        var failure: HelperFailure?
        let result = box._withUnsafeGuaranteedRef { box -> HelperResult? in
            do throws(HelperFailure) {
                return try box.helper.function(self)
            } catch {
                failure = error
                return nil
            }
        }
        if let failure { recordFailure(failure, of: box.takeUnretainedValue().helper) }
        return result
    }

    /// Runs a helper that is not in the program's table (`callx` to an emulator's helper).
    @inline(never)
    func invokeHelper(_ helper: Helper) -> HelperResult? {
        do {
            return try helper.function(self)
        } catch {
            recordFailure(error, of: helper)
            return nil
        }
    }

    /// Records the fault of a failed helper call.
    @inline(never)
    func recordFailure(_ error: HelperFailure, of helper: Helper) {
        if helper.id == CustomInstruction.helperID {
            pendingFault = .customInstructionFailed("\(helper.name): \(error)")
        } else if error.code == .unsupported {
            pendingFault = .unknownHelper(id: helper.id, name: helper.name.hasPrefix("#") ? nil : helper.name)
        } else {
            pendingFault = .helperFailed(id: helper.id, name: helper.name, failure: error)
        }
    }

    /// The result of `callx` with a helper id in the register (uBPF and the conformance vectors
    /// do this) at call depth `depth`, or nil when no helper has that id.
    @inline(never)
    func callHelper(registerValue value: UInt64, depth: Int) -> HelperResult?? {
        guard value <= UInt64(Int32.max) else { return nil }
        self.depth = depth // a helper's callbacks run from here
        let id = Int32(value)
        if let index = program.helperIndexByID[id] { return .some(invokeHelper(program.helperCalls[index])) }
        guard let helper = vm.emulator?.helper(id: id) else { return nil }
        return .some(invokeHelper(helper))
    }

    /// Legacy `ld_abs`/`ld_ind`: the big-endian value, or nil when the offset is outside the
    /// packet (the program then exits with R0 = 0, as the kernel's `bpf_gen_ld_abs` does) or the
    /// load faulted (`pendingFault` is set: no packet, or the packet's memory is gone).
    ///
    /// The offset is computed as the kernel does: `imm` (plus the source register for
    /// `ld_ind`) in 64 bits, passed as a 32-bit `int` to `bpf_skb_load_helper_*`.
    @inline(never)
    func loadPacket(_ i: DecodedInstruction, registers r: UnsafeMutablePointer<UInt64>) -> UInt64? {
        guard let packet else {
            pendingFault = .noPacket
            return nil
        }
        let size: Int
        var sum = i.imm
        switch i.operation {
        case .loadPacketAbsolute32: size = 4
        case .loadPacketAbsolute16: size = 2
        case .loadPacketAbsolute8: size = 1
        case .loadPacketIndirect32:
            size = 4
            sum &+= r[Int(i.source)]
        case .loadPacketIndirect16:
            size = 2
            sum &+= r[Int(i.source)]
        case .loadPacketIndirect8:
            size = 1
            sum &+= r[Int(i.source)]
        default:
            pendingFault = .unsupported("internal error: \(i.operation) is not a packet load")
            return nil
        }
        let offset = Int(Int32(truncatingIfNeeded: sum))
        guard offset >= 0, offset <= packet.length - size else { return nil }
        let address = packet.address &+ UInt64(offset)
        if let p = memory.table.pointer(forReading: address, size: UInt64(size)) {
            switch size {
            case 4: return UInt64(UInt32(bigEndian: p.loadUnaligned(as: UInt32.self)))
            case 2: return UInt64(UInt16(bigEndian: p.loadUnaligned(as: UInt16.self)))
            default: return UInt64(p.load(as: UInt8.self))
            }
        }
        guard let value = slowLoad(address, size: size) else { return nil } // a real fault: reported
        switch size {
        case 4: return UInt64(UInt32(truncatingIfNeeded: value).byteSwapped)
        case 2: return UInt64(UInt16(truncatingIfNeeded: value).byteSwapped)
        default: return value
        }
    }
}

/// The arithmetic that needs more than one Swift operator, shared by every execution mode.
enum Semantics {
    @inline(__always) static func divide64(_ a: UInt64, _ b: UInt64) -> UInt64 { b == 0 ? 0 : a / b }

    @inline(__always) static func divide32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let divisor = UInt32(truncatingIfNeeded: b)
        return divisor == 0 ? 0 : UInt64(UInt32(truncatingIfNeeded: a) / divisor)
    }

    /// Signed division; by zero gives 0, `INT64_MIN / -1` wraps to `INT64_MIN`.
    @inline(__always) static func signedDivide64(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int64(bitPattern: a)
        let y = Int64(bitPattern: b)
        if y == 0 { return 0 }
        if y == -1 { return UInt64(bitPattern: 0 &- x) }
        return UInt64(bitPattern: x / y)
    }

    @inline(__always) static func signedDivide32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int32(truncatingIfNeeded: a)
        let y = Int32(truncatingIfNeeded: b)
        if y == 0 { return 0 }
        if y == -1 { return UInt64(UInt32(bitPattern: 0 &- x)) }
        return UInt64(UInt32(bitPattern: x / y))
    }

    /// Modulo; by zero leaves the dividend.
    @inline(__always) static func modulo64(_ a: UInt64, _ b: UInt64) -> UInt64 { b == 0 ? a : a % b }

    /// 32-bit modulo; by zero leaves the dividend truncated to 32 bits.
    @inline(__always) static func modulo32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let divisor = UInt32(truncatingIfNeeded: b)
        let dividend = UInt32(truncatingIfNeeded: a)
        return UInt64(divisor == 0 ? dividend : dividend % divisor)
    }

    /// Signed modulo (the result takes the dividend's sign); by zero leaves the dividend.
    @inline(__always) static func signedModulo64(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int64(bitPattern: a)
        let y = Int64(bitPattern: b)
        if y == 0 { return a }
        if y == -1 { return 0 }
        return UInt64(bitPattern: x % y)
    }

    @inline(__always) static func signedModulo32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int32(truncatingIfNeeded: a)
        let y = Int32(truncatingIfNeeded: b)
        if y == 0 { return UInt64(UInt32(bitPattern: x)) }
        if y == -1 { return 0 }
        return UInt64(UInt32(bitPattern: x % y))
    }

    @inline(__always) static func arithmeticShift32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        UInt64(UInt32(bitPattern: Int32(truncatingIfNeeded: a) &>> Int32(truncatingIfNeeded: b)))
    }

    /// A 64-bit atomic read-modify-write at `p` with register `source` (and R0 for cmpxchg).
    @inline(__always)
    static func atomic64(
        _ operation: Operation, _ p: UnsafeMutableRawPointer, _ r: UnsafeMutablePointer<UInt64>, source s: Int
    ) {
        let v = r[s]
        switch operation {
        case .atomicAdd64: _ = mimic_atomic_fetch_add_64(p, v)
        case .atomicOr64: _ = mimic_atomic_fetch_or_64(p, v)
        case .atomicAnd64: _ = mimic_atomic_fetch_and_64(p, v)
        case .atomicXor64: _ = mimic_atomic_fetch_xor_64(p, v)
        case .atomicFetchAdd64: r[s] = mimic_atomic_fetch_add_64(p, v)
        case .atomicFetchOr64: r[s] = mimic_atomic_fetch_or_64(p, v)
        case .atomicFetchAnd64: r[s] = mimic_atomic_fetch_and_64(p, v)
        case .atomicFetchXor64: r[s] = mimic_atomic_fetch_xor_64(p, v)
        case .atomicExchange64: r[s] = mimic_atomic_exchange_64(p, v)
        case .atomicCompareExchange64: r[0] = mimic_atomic_compare_exchange_64(p, r[0], v)
        default: assertionFailure("\(operation) is not a 64-bit atomic") // the interpreter passes only those
        }
    }

    /// A 32-bit atomic; fetched values are zero-extended.
    @inline(__always)
    static func atomic32(
        _ operation: Operation, _ p: UnsafeMutableRawPointer, _ r: UnsafeMutablePointer<UInt64>, source s: Int
    ) {
        let v = UInt32(truncatingIfNeeded: r[s])
        switch operation {
        case .atomicAdd32: _ = mimic_atomic_fetch_add_32(p, v)
        case .atomicOr32: _ = mimic_atomic_fetch_or_32(p, v)
        case .atomicAnd32: _ = mimic_atomic_fetch_and_32(p, v)
        case .atomicXor32: _ = mimic_atomic_fetch_xor_32(p, v)
        case .atomicFetchAdd32: r[s] = UInt64(mimic_atomic_fetch_add_32(p, v))
        case .atomicFetchOr32: r[s] = UInt64(mimic_atomic_fetch_or_32(p, v))
        case .atomicFetchAnd32: r[s] = UInt64(mimic_atomic_fetch_and_32(p, v))
        case .atomicFetchXor32: r[s] = UInt64(mimic_atomic_fetch_xor_32(p, v))
        case .atomicExchange32: r[s] = UInt64(mimic_atomic_exchange_32(p, v))
        case .atomicCompareExchange32:
            r[0] = UInt64(mimic_atomic_compare_exchange_32(p, UInt32(truncatingIfNeeded: r[0]), v))
        default: assertionFailure("\(operation) is not a 32-bit atomic") // the interpreter passes only those
        }
    }
}

/// A helper as the interpreter calls it, through `Program.helperCalls`: a `let` in a class
/// instance the program keeps alive, read through an unmanaged reference, needs no retain of
/// the closure's context (a `Helper` copied out of an array or pointer does).
final class HelperBox: Sendable {
    let helper: Helper
    init(_ helper: Helper) { self.helper = helper }
}
