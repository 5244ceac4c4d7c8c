import MimicCore

/// The kernel functions (kfuncs) `LinuxEmulator` provides, by BTF name (`LinuxEmulator.kfunc(named:)`;
/// more with `LinuxEmulator.register(kfunc:)`). A call of a kfunc nobody provides is a load error
/// naming it.
///
/// - `bpf_rcu_read_lock` / `bpf_rcu_read_unlock`: the kernel's verifier checks that a program
///   pairs them; at run time they only keep RCU-protected objects alive, which one emulated
///   process running at a time needs nothing for: they return without effect.
/// - `bpf_iter_num_new` / `_next` / `_destroy`: the open-coded numeric iterator behind
///   `bpf_for` and `bpf_repeat`, as `kernel/bpf/bpf_iter.c` implements it; its state is the
///   8-byte `struct bpf_iter_num` on the program's stack (`int cur, end`).
enum LinuxKfuncs {
    /// The kernel's `BPF_MAX_LOOPS`: the most iterations `bpf_iter_num_new` accepts.
    static let maxLoops: Int64 = 1 << 23

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            make("bpf_rcu_read_lock") { _ throws(HelperFailure) in 0 },
            make("bpf_rcu_read_unlock") { _ throws(HelperFailure) in 0 },
            make("bpf_iter_num_new") { call throws(HelperFailure) in
                let iterator = call.arg(1)
                let start = Int64(call.argInt(2))
                let end = Int64(call.argInt(3))
                if start > end {
                    try writeIterator(call, at: iterator, current: 0, end: 0)
                    return Errno.invalid.r0
                }
                if end - start > maxLoops {
                    try writeIterator(call, at: iterator, current: 0, end: 0)
                    return Errno.tooBig.r0
                }
                // bpf_iter_num_next comes first and moves cur to exactly start.
                try writeIterator(
                    call, at: iterator, current: Int32(truncatingIfNeeded: start) &- 1,
                    end: Int32(truncatingIfNeeded: end))
                return 0
            },
            make("bpf_iter_num_next") { call throws(HelperFailure) in
                let iterator = call.arg(1)
                let bytes = try call.read(iterator, count: 8)
                let current = Int32(bitPattern: littleEndianUInt32(Array(bytes[0..<4])))
                let end = Int32(bitPattern: littleEndianUInt32(Array(bytes[4..<8])))
                if Int64(current &+ 1) >= Int64(end) {
                    try writeIterator(call, at: iterator, current: 0, end: 0)
                    return 0 // NULL: done, or never initialised
                }
                try writeIterator(call, at: iterator, current: current &+ 1, end: end)
                return iterator // &s->cur, the iterator's first field
            },
            make("bpf_iter_num_destroy") { call throws(HelperFailure) in
                try writeIterator(call, at: call.arg(1), current: 0, end: 0)
                return 0
            },
        ] + Dynptrs.kfuncs() + ObjectKfuncs.all(for: emulator) + XDPMetadataKfuncs.all(for: emulator)
            + ConntrackKfuncs.all(for: emulator) + SystemHelpers.kfuncs(for: emulator)
    }

    /// Writes `struct bpf_iter_num_kern { int cur; int end; }`.
    static func writeIterator(_ call: HelperCall, at address: UInt64, current: Int32, end: Int32) throws(HelperFailure)
    {
        try call.write(
            littleEndianBytes(UInt32(bitPattern: current)) + littleEndianBytes(UInt32(bitPattern: end)), at: address)
    }

    /// A kfunc: its arguments in R1–R5 as for a helper, its result in R0. A kfunc has no helper
    /// id; -1 stands in for one in messages.
    static func make(_ name: String, _ body: @escaping @Sendable (HelperCall) throws(HelperFailure) -> UInt64) -> Helper
    {
        Helper(id: -1, name: name) { process throws(HelperFailure) in
            .value(try body(HelperCall(process: process, state: LinuxProcessState.of(process), id: -1, name: name)))
        }
    }
}
