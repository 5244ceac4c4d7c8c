import Glibc
import Synchronization

/// The `bpf_get_prandom_u32` generators of one emulator: a SplitMix64 stream per vCPU, as the
/// kernel keeps a `prandom` state per CPU.
///
/// A stream continues across processes (every packet of a capture, every pool job draws the next
/// values), so sampling programs see a random sequence, not the same one per run. The seed is
/// `LinuxConfiguration.randomSeed` when given (the same seed, vCPU and call order give the same
/// values), else the clock.
///
/// The helper path takes no lock: each stream is a counter advanced with one relaxed atomic add
/// (SplitMix64 mixes the counter's value), so processes that share a vCPU on different threads
/// still draw distinct values. Each counter sits on its own cache line.
final class RandomStreams: Sendable {
    /// The seed the streams started from (the configured one, or the clock's reading).
    let seed: UInt64
    private let counters: [Counter]

    /// One vCPU's counter, padded to a cache line of its own.
    private final class Counter: Sendable {
        let value: Atomic<UInt64>
        private let padding: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)
        init(_ start: UInt64) { value = Atomic(start) }
    }

    init(cpuCount: Int, seed: UInt64?) {
        let seed = seed ?? Self.clockSeed()
        self.seed = seed
        counters = (0..<max(1, cpuCount)).map { cpu in
            Counter(Self.mix(seed ^ (UInt64(truncatingIfNeeded: cpu) &* 0xD1B5_4A32_D192_ED03)))
        }
    }

    /// The next value of `cpu`'s stream (a vCPU outside the emulator's CPUs uses stream
    /// `cpu mod count`; `prepare` refuses such processes, plugins' shadow processes may not).
    @inline(__always)
    func next(cpu: Int) -> UInt32 {
        let index = cpu >= 0 && cpu < counters.count ? cpu : abs(cpu % counters.count)
        let x = counters[index].value.wrappingAdd(Self.gamma, ordering: .relaxed).newValue
        return UInt32(truncatingIfNeeded: Self.mix(x) >> 32)
    }

    /// The SplitMix64 increment.
    static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// SplitMix64's output function: a well-mixed 64-bit value from a counter.
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed from the realtime clock (nanoseconds), mixed so that close readings differ widely.
    static func clockSeed() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return mix(UInt64(truncatingIfNeeded: time.tv_sec) &* 1_000_000_000 &+ UInt64(truncatingIfNeeded: time.tv_nsec))
    }
}
