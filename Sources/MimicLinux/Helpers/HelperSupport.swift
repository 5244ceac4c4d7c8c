import MimicCore
import MimicMemory

/// How a helper treats the recorded calls of a captured context.
enum ReplayPolicy {
    /// A recorded call replaces the emulation (its R0 and memory writes are the result).
    case replace
    /// The helper runs (for its side effects, e.g. trace output) and the record's R0 is returned.
    case emulateThenReturnRecorded
}

/// One call of a Linux helper: the process, its Linux state, and argument and memory access
/// whose failures name the helper.
struct HelperCall {
    let process: MimicCore.Process
    let state: LinuxProcessState?
    let id: Int32
    let name: String

    /// Argument `n` (1...5).
    func arg(_ n: Int) -> UInt64 { process.argument(n) }
    /// Argument `n` as the u32 the kernel's prototype declares.
    func arg32(_ n: Int) -> UInt32 { UInt32(truncatingIfNeeded: process.argument(n)) }
    /// Argument `n` as the s32 (`int`) the kernel's prototype declares.
    func argInt(_ n: Int) -> Int32 { Int32(truncatingIfNeeded: process.argument(n)) }

    /// Reads VM memory the program passed; a fault stops the program (the verifier would have
    /// refused the call).
    func read(_ address: UInt64, count: Int) throws(HelperFailure) -> [UInt8] {
        do { return try process.memory.read(address, count: count) } catch { throw .memory(error) }
    }

    /// Writes VM memory the program passed; a fault stops the program.
    func write(_ bytes: some Collection<UInt8>, at address: UInt64) throws(HelperFailure) {
        do { try process.memory.write(bytes, at: address) } catch { throw .memory(error) }
    }

    /// Writes `count` zero bytes. The destination is checked before anything is allocated (a
    /// program-chosen size may be up to 4 GiB): a plain region is cleared in place; rings and
    /// foreign memory are written a page at a time, the first fault ending the call.
    func zero(_ address: UInt64, count: Int) throws(HelperFailure) {
        guard count > 0 else { return }
        if case .success(let pointer) = process.memory.resolve(address, size: count, access: .write) {
            pointer.initializeMemory(as: UInt8.self, repeating: 0, count: count)
            return
        }
        let page = [UInt8](repeating: 0, count: min(count, 4096))
        var done = 0
        while done < count {
            let chunk = min(page.count, count - done)
            try write(page[0..<chunk], at: address &+ UInt64(done))
            done += chunk
        }
    }

    /// A size argument the program passed, refused when it is absurdly large for VM memory.
    func size(_ n: Int, limit: Int = AddressSpace.regionLimit) throws(HelperFailure) -> Int {
        let value = arg(n) & 0xFFFF_FFFF
        guard value <= UInt64(limit) else {
            throw .message("size argument r\(n) = \(value) is larger than \(limit) bytes")
        }
        return Int(value)
    }

    /// The process's Linux state (contexts create it when the VM has no Linux emulator).
    func linuxState() throws(HelperFailure) -> LinuxProcessState {
        guard let state else { throw .message("\(name) needs the Linux emulator's process state") }
        return state
    }

    /// The packet of the attached context, which must be of `kind`.
    func packet(_ kind: PacketBuffer.Kind) throws(HelperFailure) -> PacketBuffer {
        guard let buffer = state?.packet else {
            throw .message("\(name) needs a packet context (\(kind.rawValue)); the process has none")
        }
        guard buffer.kind == kind else {
            throw .message("\(name) works on an \(kind.rawValue) context; the process has \(buffer.kind.rawValue)")
        }
        guard arg(1) == buffer.contextAddress else {
            throw .message(
                "\(name): r1 (0x\(String(arg(1), radix: 16))) is not the context pointer (0x\(String(buffer.contextAddress, radix: 16)))"
            )
        }
        return buffer
    }
}

extension Errno {
    /// The value a helper returns in R0: `-errno`.
    var r0: UInt64 { helperReturnValue }
}

enum LinuxHelper {
    /// A Linux helper that replays captured calls before emulating: while a captured context has
    /// records for it, the n-th call returns the n-th record; afterwards `body` emulates it.
    /// `direct` is the helper's C-ABI entry, if it has one (`DirectHelper`); it must decline
    /// while a capture replays (`direct(_:_:)` does that). `inline` is what compiled code
    /// computes in place of the call (`InlineHelper`), which it does not while a capture
    /// replays (`CapturedContext` sets `Process.inlineHelpersBypassed`).
    static func make(
        _ helper: HelperID, replay: ReplayPolicy = .replace, direct: DirectHelper? = nil, inline: InlineHelper? = nil,
        _ body: @escaping @Sendable (HelperCall) throws(HelperFailure) -> UInt64
    ) -> Helper {
        let id = helper.rawValue
        let name = helper.name
        var made = Helper(helper) { process throws(HelperFailure) in
            let state = LinuxProcessState.of(process)
            let call = HelperCall(process: process, state: state, id: id, name: name)
            if let state, let recorded = state.replay {
                if let record = recorded.next(for: id) {
                    if replay == .emulateThenReturnRecorded { _ = try? body(call) }
                    return .value(try recorded.apply(record, to: process, state: state, helperName: name))
                }
                recorded.noteExhausted(id, name: name, state: state)
            }
            return .value(try body(call))
        }
        made.direct = direct
        made.inline = inline
        return made
    }

    /// The body of a Linux helper's C-ABI entry (`DirectHelper`): `body` with the calling
    /// process and its Linux state, without reference counts. While a captured context
    /// replays recorded calls the entry declines, so the helper's `function` replays them.
    @inline(__always)
    static func direct(
        _ raw: UnsafeMutableRawPointer, _ body: (MimicCore.Process, LinuxProcessState?) -> UInt64
    ) -> UInt64 {
        let call = DirectHelperCall.at(raw)
        return call.pointee.process._withUnsafeGuaranteedRef { process in
            guard let state = process.unretainedEmulatorState(LinuxProcessState.key) else { return body(process, nil) }
            return state._withUnsafeGuaranteedRef { state in
                guard state.replay == nil else {
                    call.pointee.decline()
                    return 0
                }
                return body(process, state)
            }
        }
    }
}
