import Glibc
import MimicCore
import MimicMemory

/// Time, randomness and CPU: `HelperID.ktimeGetNs`, `HelperID.ktimeGetBootNs`,
/// `HelperID.ktimeGetCoarseNs`, `HelperID.getPrandomU32`, `HelperID.getSmpProcessorId`,
/// `HelperID.getNumaNodeId`.
///
/// The clock is the process's `TaskEnvironment.clock`: the host's clocks, or a manual clock for
/// reproducible runs. Random values come from the emulator's per-vCPU streams
/// (`RandomStreams`, which continue across processes), unless the process's
/// `TaskEnvironment.randomSeed` (a context's `prandom_seed`) asks for a stream of its own.
enum TimeHelpers {
    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let streams = emulator.randomStreams
        let tick = 1_000_000_000 / TracingHelpers.hz(emulator)
        return [
            LinuxHelper.make(.ktimeGetNs, direct: DirectHelper(directMonotonic)) { call throws(HelperFailure) in
                now(call, CLOCK_MONOTONIC)
            },
            LinuxHelper.make(.ktimeGetBootNs, direct: DirectHelper(directBoot)) { call throws(HelperFailure) in
                now(call, CLOCK_BOOTTIME)
            },
            LinuxHelper.make(.ktimeGetCoarseNs) { call throws(HelperFailure) in
                let time = now(call, CLOCK_MONOTONIC_COARSE)
                // The virtual clock's coarse reading is the last tick's, as the kernel's is.
                guard case .virtual = call.state?.environment.clock else { return time }
                return time - time % tick
            },
            LinuxHelper.make(
                .getPrandomU32,
                direct: DirectHelper(directRandom, data: UnsafeRawPointer(Unmanaged.passUnretained(streams).toOpaque()))
            ) { call throws(HelperFailure) in
                random(call.state, streams, vCPU: call.process.vCPU)
            },
            LinuxHelper.make(.getSmpProcessorId, direct: DirectHelper(directProcessorID), inline: .processorID) {
                call throws(HelperFailure) in
                UInt64(UInt32(truncatingIfNeeded: call.process.vCPU))
            },
            LinuxHelper.make(.getNumaNodeId, direct: DirectHelper(directNumaNode)) { call throws(HelperFailure) in
                UInt64(call.state?.environment.numaNode ?? 0)
            },
        ]
    }

    static func now(_ call: HelperCall, _ clock: clockid_t) -> UInt64 { now(call.state, clock) }

    static func now(_ state: LinuxProcessState?, _ clock: clockid_t) -> UInt64 {
        guard let state else { return systemClock(clock) }
        defer { state.clockReads &+= 1 }
        switch state.environment.clock {
        case .system: return systemClock(clock)
        case .manual(let start, let step): return start &+ step &* state.clockReads
        case .virtual: return state.virtualClock?.reading(clock) ?? 0
        }
    }

    static func systemClock(_ clock: clockid_t) -> UInt64 {
        var time = timespec()
        guard clock_gettime(clock, &time) == 0 else { return 0 }
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// `bpf_get_prandom_u32`: the emulator's stream of the vCPU, or the process's own stream
    /// when its environment sets a seed (restarted by every context that sets it).
    static func random(_ state: LinuxProcessState?, _ streams: RandomStreams, vCPU: Int) -> UInt64 {
        guard let state, let seed = state.environment.randomSeed else { return UInt64(streams.next(cpu: vCPU)) }
        let start =
            state.randomState
            ?? RandomStreams.mix(seed ^ (UInt64(truncatingIfNeeded: vCPU) &* 0xD1B5_4A32_D192_ED03))
        let x = start &+ RandomStreams.gamma
        state.randomState = x
        return RandomStreams.mix(x) >> 32
    }

    // The C-ABI entries (`DirectHelper`) of the helpers above: the same code without the closure.

    private static let directMonotonic: DirectHelper.Function = { _, _, _, _, _, call in
        LinuxHelper.direct(call) { _, state in now(state, CLOCK_MONOTONIC) }
    }

    private static let directBoot: DirectHelper.Function = { _, _, _, _, _, call in
        LinuxHelper.direct(call) { _, state in now(state, CLOCK_BOOTTIME) }
    }

    /// Data: the emulator's `RandomStreams`, unretained (the emulator keeps it).
    private static let directRandom: DirectHelper.Function = { _, _, _, _, _, call in
        LinuxHelper.direct(call) { process, state in
            Unmanaged<RandomStreams>.fromOpaque(DirectHelperCall.at(call).pointee.data.unsafelyUnwrapped)
                ._withUnsafeGuaranteedRef {
                    random(state, $0, vCPU: process.vCPU)
                }
        }
    }

    /// Compiled code computes this one inline (`InlineHelper.processorID`); the interpreter calls
    /// it. A replayed capture sets `inlineHelpersBypassed`: no emulator-state lookup is needed.
    private static let directProcessorID: DirectHelper.Function = { _, _, _, _, _, call in
        let entry = DirectHelperCall.at(call)
        return entry.pointee.process._withUnsafeGuaranteedRef { process in
            guard !process.inlineHelpersBypassed else {
                entry.pointee.decline()
                return 0
            }
            return UInt64(UInt32(truncatingIfNeeded: process.vCPU))
        }
    }

    private static let directNumaNode: DirectHelper.Function = { _, _, _, _, _, call in
        LinuxHelper.direct(call) { _, state in UInt64(state?.environment.numaNode ?? 0) }
    }
}

/// The current task: `HelperID.getCurrentPidTgid`, `HelperID.getCurrentUidGid`,
/// `HelperID.getCurrentComm`, from the process's `TaskEnvironment` unless a captured context
/// replays them.
enum TaskHelpers {
    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            LinuxHelper.make(.getCurrentPidTgid, direct: DirectHelper(directPidTgid)) { call throws(HelperFailure) in
                pidTgid(call.state)
            },
            LinuxHelper.make(.getCurrentUidGid, direct: DirectHelper(directUidGid)) { call throws(HelperFailure) in
                uidGid(call.state)
            },
            LinuxHelper.make(.getCurrentComm) { call throws(HelperFailure) in
                // strscpy_pad: at most size-1 bytes of comm, a NUL, zeros up to size.
                let size = try call.size(2)
                guard size > 0 else { return Errno.invalid.r0 }
                let comm = (call.state?.environment ?? TaskEnvironment()).commBytes.prefix(while: { $0 != 0 })
                // Zeroing first checks the destination before anything of `size` is allocated.
                try call.zero(call.arg(1), count: size)
                try call.write(Array(comm.prefix(size - 1)), at: call.arg(1))
                return 0
            },
        ]
    }

    /// `bpf_get_current_pid_tgid` (fields read in place: no copy of the environment).
    static func pidTgid(_ state: LinuxProcessState?) -> UInt64 {
        guard let state else {
            let environment = TaskEnvironment()
            return UInt64(environment.tgid) << 32 | UInt64(environment.pid)
        }
        return UInt64(state.environment.tgid) << 32 | UInt64(state.environment.pid)
    }

    /// `bpf_get_current_uid_gid`.
    static func uidGid(_ state: LinuxProcessState?) -> UInt64 {
        guard let state else {
            let environment = TaskEnvironment()
            return UInt64(environment.gid) << 32 | UInt64(environment.uid)
        }
        return UInt64(state.environment.gid) << 32 | UInt64(state.environment.uid)
    }

    // The C-ABI entries (`DirectHelper`) of the two helpers above.

    private static let directPidTgid: DirectHelper.Function = { _, _, _, _, _, call in
        LinuxHelper.direct(call) { _, state in pidTgid(state) }
    }

    private static let directUidGid: DirectHelper.Function = { _, _, _, _, _, call in
        LinuxHelper.direct(call) { _, state in uidGid(state) }
    }
}

/// `HelperID.probeRead`, `.probeReadUser`, `.probeReadKernel` and the string forms
/// `.probeReadStr`, `.probeReadUserStr`, `.probeReadKernelStr`. They read VM memory (a captured context's
/// records come first); the user forms read the current task's user memory when an emulated
/// system gives it one (`TaskEnvironment.userMemory`), and the legacy ones try it first; an unreadable source gives `-EFAULT` with the destination zeroed, as the
/// kernel does.
enum ProbeHelpers {
    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [HelperID.probeRead, .probeReadUser, .probeReadKernel].map { id in
            LinuxHelper.make(id) { call throws(HelperFailure) in
                let destination = call.arg(1)
                let size = try call.size(2)
                // A task's user memory (an emulated system's) holds user addresses.
                if id != .probeReadKernel, let memory = call.state?.environment.userMemory,
                    let bytes = memory.read(call.arg(3), count: size)
                {
                    try call.write(bytes, at: destination)
                    return 0
                }
                if id == .probeReadUser, call.state?.environment.userMemory != nil {
                    try call.zero(destination, count: size)
                    return Errno.fault.r0
                }
                do {
                    let bytes = try call.process.memory.read(call.arg(3), count: size)
                    try call.write(bytes, at: destination)
                    return 0
                } catch let failure as HelperFailure {
                    throw failure
                } catch {
                    try call.zero(destination, count: size)
                    return Errno.fault.r0
                }
            }
        }
            + [HelperID.probeReadStr, .probeReadUserStr, .probeReadKernelStr].map { id in
                LinuxHelper.make(id) { call throws(HelperFailure) in
                    let destination = call.arg(1)
                    let size = try call.size(2)
                    guard size > 0 else { return 0 }
                    if id != .probeReadKernelStr, let memory = call.state?.environment.userMemory {
                        if let string = memory.readString(call.arg(3), limit: size - 1) {
                            try call.write(string + [0], at: destination)
                            return UInt64(string.count + 1)
                        }
                        if id == .probeReadUserStr {
                            try call.zero(destination, count: size)
                            return Errno.fault.r0
                        }
                    }
                    var bytes: [UInt8] = []
                    var cursor = call.arg(3)
                    while bytes.count < size - 1 {
                        guard let byte = try? call.process.memory.read(cursor, count: 1)[0] else {
                            try call.zero(destination, count: size)
                            return Errno.fault.r0
                        }
                        if byte == 0 { break }
                        bytes.append(byte)
                        cursor &+= 1
                    }
                    try call.write(bytes + [0], at: destination)
                    return UInt64(bytes.count + 1)
                }
            }
    }
}

/// `HelperID.strtol` and `HelperID.strtoul`, as the kernel's `__bpf_strtoull`: leading white
/// space, an optional `-`, base 0 (auto: `0x` hex, `0` octal, else decimal), 8, 10 or 16 in the
/// low 5 bits of `flags`; at most 63 characters are looked at. Returns the characters consumed,
/// `-EINVAL` (no digits, bad base or flags, `-` for strtoul) or `-ERANGE` (overflow).
enum StringHelpers {
    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            LinuxHelper.make(.strtol) { call throws(HelperFailure) in
                switch try parse(call) {
                case .failure(let errno): return errno.r0
                case .success(let (value, negative, consumed)):
                    let result: Int64
                    if negative {
                        guard Int64(bitPattern: 0 &- value) <= 0 else { return Errno.outOfRange.r0 }
                        result = Int64(bitPattern: 0 &- value)
                    } else {
                        guard Int64(bitPattern: value) >= 0 else { return Errno.outOfRange.r0 }
                        result = Int64(bitPattern: value)
                    }
                    try call.write(withUnsafeBytes(of: result.littleEndian, Array.init), at: call.arg(4))
                    return UInt64(consumed)
                }
            },
            LinuxHelper.make(.strtoul) { call throws(HelperFailure) in
                switch try parse(call) {
                case .failure(let errno): return errno.r0
                case .success(let (value, negative, consumed)):
                    guard !negative else { return Errno.invalid.r0 }
                    try call.write(withUnsafeBytes(of: value.littleEndian, Array.init), at: call.arg(4))
                    return UInt64(consumed)
                }
            },
        ]
    }

    static func parse(_ call: HelperCall) throws(HelperFailure) -> Result<(UInt64, Bool, Int), Errno> {
        let length = call.arg(2)
        let flags = call.arg(3)
        guard length > 0 else { return .failure(.invalid) }
        guard length <= 1 << 20 else { throw .message("buf_len \(length) is too large") }
        let buffer = try call.read(call.arg(1), count: Int(length))
        return parse(buffer, flags: flags)
    }

    /// The kernel's `__bpf_strtoull` over `buffer`.
    static func parse(_ buffer: [UInt8], flags: UInt64) -> Result<(UInt64, Bool, Int), Errno> {
        var base = Int(flags & 0x1F)
        guard [0, 8, 10, 16].contains(base), flags & ~0x1F == 0, !buffer.isEmpty else { return .failure(.invalid) }
        var i = 0
        while i < buffer.count, buffer[i] == 0x20 || (0x09...0x0D).contains(buffer[i]) { i += 1 }
        let negative = i < buffer.count && buffer[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        guard i < buffer.count else { return .failure(.invalid) }
        let consumedPrefix = i
        // Copy at most 63 characters into a NUL-terminated string.
        let text = Array(buffer[i..<min(buffer.count, i + 63)]) + [0]
        var j = 0
        func lower(_ c: UInt8) -> UInt8 { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c) ? c + 32 : c }
        func digit(_ c: UInt8) -> Int? {
            switch lower(c) {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(lower(c) - UInt8(ascii: "a")) + 10
            default: nil
            }
        }
        if base == 0 {
            if text[0] == UInt8(ascii: "0") {
                base = lower(text[1]) == UInt8(ascii: "x") && digit(text[2]).map({ $0 < 16 }) == true ? 16 : 8
            } else {
                base = 10
            }
        }
        if base == 16, text[0] == UInt8(ascii: "0"), lower(text[1]) == UInt8(ascii: "x") { j = 2 }
        var value: UInt64 = 0
        var overflow = false
        let start = j
        while let d = digit(text[j]), d < base {
            let (product, o1) = value.multipliedReportingOverflow(by: UInt64(base))
            let (sum, o2) = product.addingReportingOverflow(UInt64(d))
            if o1 || o2 { overflow = true }
            value = sum
            j += 1
        }
        if overflow { return .failure(.outOfRange) }
        guard j > start else { return .failure(.invalid) }
        return .success((value, negative, consumedPrefix + j))
    }
}

/// `HelperID.loop`: calls a program-local callback `nr_loops` times (at most 2^23) with the
/// index and the context pointer; a callback returning non-zero stops the loop. Returns the number
/// of iterations, `-EINVAL` for non-zero flags, `-E2BIG` for too many loops.
enum LoopHelpers {
    /// The kernel's `BPF_MAX_LOOPS`.
    static let maxLoops: UInt64 = 1 << 23

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            LinuxHelper.make(.loop) { call throws(HelperFailure) in
                let count = UInt64(call.arg32(1))
                let callback = call.arg(2)
                let context = call.arg(3)
                guard call.arg(4) == 0 else { return Errno.invalid.r0 }
                guard count <= maxLoops else { return Errno.tooBig.r0 }
                guard count > 0 else { return 0 }
                guard callback & ~UInt64(0xFFFF_FFFF) == Program.functionAddressTag else {
                    throw .message(
                        "r2 (0x\(String(callback, radix: 16))) is not a program function (load it with lddw BPF_PSEUDO_FUNC)"
                    )
                }
                for index in 0..<count {
                    let result: UInt64
                    do throws(ExecutionError) {
                        result = try ProgramCallbacks.call(
                            call.process, at: Int(callback & 0xFFFF_FFFF), arguments: [index, context, 0, 0, 0])
                    } catch {
                        throw .callback(error)
                    }
                    if result != 0 { return index + 1 }
                }
                return count
            }
        ]
    }
}
