import MimicCore
import Synchronization

/// `BPF_MAP_TYPE_USER_RINGBUF`: samples user space produces and programs consume with
/// `bpf_user_ringbuf_drain`. Host code produces with `submit(_:)`; a sample takes its size
/// rounded up to 8 plus an 8-byte header of the ring's `max_entries` bytes, as in the kernel's
/// ring, and submitting one that does not fit fails with `-ENOSPC` (libbpf's
/// `user_ring_buffer__reserve` fails alike).
public final class UserRingBufferMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    private let memory: MapMemory
    private struct State {
        var samples: [[UInt8]] = []
        var used = 0
        var busy = false
    }
    private let state = Mutex(State())

    init(attributes: MapAttributes, id: Int, memory: MapMemory) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        self.memory = memory
    }

    static func cost(_ size: Int) -> Int { roundUp8(size) + 8 }

    /// Produces a sample for programs to drain.
    public func submit(_ sample: [UInt8]) -> Errno? {
        state.withLock { state in
            guard state.used + Self.cost(sample.count) <= attributes.maxEntries else { return .noSpace }
            state.used += Self.cost(sample.count)
            state.samples.append(sample)
            return nil
        }
    }

    /// Samples not yet drained.
    public var pendingSamples: Int { state.withLock { $0.samples.count } }

    /// Marks the ring busy for one drain (false: another drain is running: `-EBUSY`).
    func beginDrain() -> Bool {
        state.withLock { state in
            if state.busy { return false }
            state.busy = true
            return true
        }
    }

    func endDrain() { state.withLock { $0.busy = false } }

    /// The oldest sample, removed.
    func take() -> [UInt8]? {
        state.withLock { state in
            guard !state.samples.isEmpty else { return nil }
            let sample = state.samples.removeFirst()
            state.used -= Self.cost(sample.count)
            return sample
        }
    }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { nil }
    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? { .notSupported }
    public func delete(key: [UInt8]) -> Errno? { .notSupported }
    public func nextKey(after key: [UInt8]?) -> [UInt8]? { nil }
    public func value(forKey key: [UInt8]) -> [UInt8]? { nil }
}
