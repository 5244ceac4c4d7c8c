/// A helper's C-ABI entry: the fast way to run the common calls of a hot helper (map lookup,
/// update, delete, the clock, the CPU id, random numbers).
///
/// `function` takes R1–R5 as its first five arguments — the registers the System V ABI passes
/// them in, where the JIT keeps R1–R5 (`rdi`, `rsi`, `rdx`, `rcx`, `r8`) — and the address of
/// a `DirectHelperCall` as the sixth (`DirectHelperCall.at(_:)`), and returns R0. Compiled code calls it with a plain `call`:
/// no Swift existential, closure context, reference count or `String` on the way. The
/// interpreter calls it too, before the helper's `function`, so both engines run the same code.
///
/// An entry handles what it can and **declines** the rest (`DirectHelperCall.decline()`): a key
/// the translation table does not reach directly, a map of another kind, a replayed capture.
/// The helper's `function` then runs as if there were no entry, so it must find everything as
/// it was: an entry that declines has changed nothing. An entry never faults, never runs
/// program callbacks, never maps or unmaps memory and never reads the process's `pc`,
/// instruction count or registers (compiled code has not stored them); anything that needs one
/// of these declines.
public struct DirectHelper: @unchecked Sendable {
    /// `(r1, r2, r3, r4, r5, call) -> r0`; `call` is a `DirectHelperCall` (`DirectHelperCall.at`).
    public typealias Function =
        @convention(c) (UInt64, UInt64, UInt64, UInt64, UInt64, UnsafeMutableRawPointer) -> UInt64

    public let function: Function
    /// Handed to `function` as `DirectHelperCall.data`: whatever the entry needs besides the
    /// process (e.g. the emulator's map table, unretained). The helper's owner keeps it alive
    /// as long as the helper.
    public let data: UnsafeRawPointer?

    public init(_ function: Function, data: UnsafeRawPointer? = nil) {
        self.function = function
        self.data = data
    }
}

/// The sixth argument of a `DirectHelper` entry. Compiled code keeps one in its context words
/// (`JITSlot.directCall`); the interpreter makes one per call.
public struct DirectHelperCall {
    /// The process running the helper, unretained (the caller holds it for the call).
    public let process: Unmanaged<Process>
    /// `DirectHelper.data` of the helper being called.
    public let data: UnsafeRawPointer?
    /// Set by `decline()`.
    public private(set) var declined: Bool

    init(process: Unmanaged<Process>, data: UnsafeRawPointer?) {
        self.process = process
        self.data = data
        declined = false
    }

    /// The call a `DirectHelper.Function` was given.
    @inline(__always)
    public static func at(_ call: UnsafeMutableRawPointer) -> UnsafeMutablePointer<DirectHelperCall> {
        call.assumingMemoryBound(to: DirectHelperCall.self)
    }

    /// Leaves this call to the helper's `function`: the entry's result is ignored. Call it
    /// before changing anything.
    public mutating func decline() { declined = true }
}

/// A helper whose result compiled code computes in place of the call, as the kernel's verifier
/// inlines some helpers on x86-64 (`bpf_get_smp_processor_id` became a per-CPU load in 6.10).
///
/// The inline result must be what the helper's `direct` entry (or `function`) returns. While
/// the process's `inlineHelpersBypassed` is set — an emulator answers the helper otherwise,
/// e.g. from a replayed capture — compiled code calls the helper instead. The interpreter
/// always calls it.
public enum InlineHelper: Sendable, Equatable {
    /// R0 = the process's vCPU (`Process.vCPU`) as a 32-bit number, zero-extended.
    case processorID
}

/// What compiled code needs to look up an array map inline, as the kernel's
/// `array_map_gen_lookup` and `percpu_array_map_gen_lookup` do:
/// `index < maxEntries ? base + index * valueStride + cpu * cpuStride : NULL`, `cpu` being the
/// process's vCPU for per-CPU arrays (`cpuCount` > 1) and 0 for plain ones.
///
/// `base` is the VM address of element 0's value (the map's values are mapped into the VM's
/// shared memory and never move), so the code returns the same guest address the helper does.
/// The vCPU is read from the running process (compiled code is shared by processes on different
/// vCPUs); a vCPU at or past `cpuCount` takes the helper, which clamps it.
public struct InlineArrayLookup: @unchecked Sendable, Equatable {
    /// The VM address of element 0's value (CPU 0's, for per-CPU arrays).
    public let base: UInt64
    /// `max_entries`.
    public let maxEntries: UInt32
    /// Bytes from one element's value to the next (the value size rounded up to 8).
    public let valueStride: UInt32
    /// 1 for a plain array, the CPU count for a per-CPU array.
    public let cpuCount: UInt32
    /// Bytes from one CPU's values to the next CPU's (per-CPU arrays keep each CPU's values
    /// together, in an area of its own); unused for a plain array.
    public let cpuStride: UInt32
    /// A byte that, while non-zero, sends lookups through the helper (the map records the
    /// indices it hands out, `ArrayMap.trackTouches`). Lives as long as the map.
    public let bypass: UnsafePointer<UInt8>

    /// Nil when a stride is more than `Int32.max` bytes: the code multiplies by 32-bit
    /// immediates.
    public init?(
        base: UInt64, maxEntries: UInt32, valueStride: UInt32, cpuCount: UInt32 = 1, cpuStride: UInt32 = 0,
        bypass: UnsafePointer<UInt8>
    ) {
        guard cpuCount > 0, valueStride <= UInt32(Int32.max), cpuStride <= UInt32(Int32.max) else { return nil }
        self.base = base
        self.maxEntries = maxEntries
        self.valueStride = valueStride
        self.cpuCount = cpuCount
        self.cpuStride = cpuStride
        self.bypass = bypass
    }
}

/// What compiled code needs to look up a hash map without the helper's dispatch, as the kernel's
/// `htab_map_gen_lookup` calls the map's own lookup in place of the helper: the code checks the
/// map handle, translates the key's `keySize` bytes at R2 inline (as any load), and calls
/// `function(map, key, vCPU)`.
///
/// `function` returns the guest address of the key's value (the process's vCPU's, for per-CPU
/// maps), or 0 when the key is absent — what the lookup helper returns. It never declines,
/// faults, runs callbacks or reads the process, so the call needs nothing but R1–R5 and the
/// instruction count saved around it.
public struct InlineHashLookup: @unchecked Sendable {
    /// `(map, host address of the key, vCPU) -> guest address of the value, or 0`.
    public typealias Function = @convention(c) (UnsafeRawPointer, UnsafeRawPointer, UInt64) -> UInt64

    /// `key_size` (1...512): the bytes at R2 the code translates for reading.
    public let keySize: UInt32
    public let function: Function
    /// The map, unretained: lives as long as the map (its emulator's life).
    public let map: UnsafeRawPointer
    /// For a plain map with 4- or 8-byte keys: its table, which the code searches itself (the
    /// function is then the fallback of nothing: the helper takes what the search cannot).
    public let probe: InlineHashProbe?

    public init(keySize: UInt32, function: Function, map: UnsafeRawPointer, probe: InlineHashProbe? = nil) {
        self.keySize = keySize
        self.function = function
        self.map = map
        self.probe = probe
    }
}
