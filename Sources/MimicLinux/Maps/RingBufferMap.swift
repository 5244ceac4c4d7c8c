import MimicCore
import MimicMemory
import Synchronization

/// `BPF_MAP_TYPE_RINGBUF`: a multi-producer ring of variable-length records that programs
/// write (`bpf_ringbuf_reserve` / `submit` / `discard` / `output`) and the host reads
/// (`drainRecords`).
///
/// The data area (`max_entries` bytes, a power of two and a multiple of the 4 KiB page) lives in
/// VM memory as a ring region, so a reserved record that runs past the end wraps to the start,
/// as the kernel's double mapping of the data pages makes it appear contiguous. Each record
/// takes an 8-byte header (length with the busy and discard bits, page offset) plus its data,
/// rounded up to 8 bytes, written in VM memory as the kernel writes it.
///
/// Semantics of `kernel/bpf/ringbuf.c`: a reservation fails (NULL) when the flags are not 0,
/// the size exceeds `UINT32_MAX / 4` or the ring, or the producer would get more than the ring
/// size ahead of the consumer. The consumer reads records in reservation order and stops at the
/// first one still reserved (busy); discarded records are skipped.
public final class RingBufferMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    let storage: RegionStorage
    /// The VM address of the data area.
    public let dataAddress: UInt64
    private let mask: UInt64
    private let state = Mutex(State())

    static let headerSize: UInt64 = 8
    static let busyBit: UInt32 = 1 << 31
    static let discardBit: UInt32 = 1 << 30
    static let maxRecordSize: UInt64 = UInt64(UInt32.max / 4)

    /// `bpf_ringbuf_query` flags.
    public enum Query: UInt64, Sendable {
        /// `BPF_RB_AVAIL_DATA`: bytes not yet consumed.
        case availableData = 0
        /// `BPF_RB_RING_SIZE`: the data area's size.
        case ringSize = 1
        /// `BPF_RB_CONS_POS` / `BPF_RB_PROD_POS`: the consumer / producer positions.
        case consumerPosition = 2
        case producerPosition = 3
    }

    private struct Record {
        var position: UInt64
        var size: UInt32
        var busy: Bool
        var discarded: Bool
    }

    private struct State {
        var consumer: UInt64 = 0
        var producer: UInt64 = 0
        /// Records between the consumer and the producer, oldest first.
        var records: [Record] = []
    }

    /// The map's share of the VM's memory budget.
    private let memory: MapMemory

    init(attributes: MapAttributes, id: Int, vm: VM, memory: MapMemory) throws(MapError) {
        self.memory = memory
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        storage = RegionStorage(count: attributes.maxEntries)
        mask = UInt64(attributes.maxEntries - 1)
        do {
            dataAddress = try vm.mapShared(storage, name: "ringbuf:\(attributes.name)", kind: .ring)
        } catch {
            throw MapError(map: attributes.name, "cannot map the ring into VM memory: \(error)", errno: .noMemory)
        }
    }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { nil }
    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? { .notSupported }
    public func delete(key: [UInt8]) -> Errno? { .notSupported }
    public func nextKey(after key: [UInt8]?) -> [UInt8]? { nil }
    public func value(forKey key: [UInt8]) -> [UInt8]? { nil }
    public var keys: [[UInt8]] { [] }

    private func storeHeader(at position: UInt64, length: UInt32) {
        let bytes = littleEndianBytes(length) + littleEndianBytes(0)
        for (i, byte) in bytes.enumerated() {
            storage.pointer.storeBytes(of: byte, toByteOffset: Int((position &+ UInt64(i)) & mask), as: UInt8.self)
        }
    }

    /// `bpf_ringbuf_reserve`: the VM address of `size` bytes for a new record, or nil.
    public func reserve(size: UInt64, flags: UInt64 = 0) -> UInt64? {
        guard flags == 0, size <= Self.maxRecordSize else { return nil }
        let length = (size + Self.headerSize + 7) & ~7
        guard length <= mask + 1 else { return nil }
        return state.withLock { state in
            let position = state.producer
            guard position + length - state.consumer <= mask else { return nil }
            state.producer = position + length
            state.records.append(Record(position: position, size: UInt32(size), busy: true, discarded: false))
            storeHeader(at: position, length: UInt32(size) | Self.busyBit)
            return dataAddress + ((position + Self.headerSize) & mask)
        }
    }

    /// `bpf_ringbuf_submit` / `bpf_ringbuf_discard` of the record whose data starts at
    /// `address`; false if `address` is not a reserved record of this ring.
    public func commit(address: UInt64, discard: Bool) -> Bool {
        guard address >= dataAddress, address - dataAddress <= mask else { return false }
        let offset = address - dataAddress
        return state.withLock { state in
            guard
                let index = state.records.firstIndex(where: {
                    $0.busy && ($0.position + Self.headerSize) & mask == offset
                })
            else { return false }
            state.records[index].busy = false
            state.records[index].discarded = discard
            let record = state.records[index]
            storeHeader(at: record.position, length: record.size | (discard ? Self.discardBit : 0))
            return true
        }
    }

    /// `bpf_ringbuf_output`: copies `data` into a new record and submits it.
    public func output(_ data: [UInt8], flags: UInt64 = 0) -> Errno? {
        guard flags & ~UInt64(3) == 0 else { return .invalid } // BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP
        guard let address = reserve(size: UInt64(data.count)) else { return .tryAgain }
        let start = address - dataAddress
        for (i, byte) in data.enumerated() {
            storage.pointer.storeBytes(of: byte, toByteOffset: Int((start &+ UInt64(i)) & mask), as: UInt8.self)
        }
        _ = commit(address: address, discard: false)
        return nil
    }

    /// `bpf_ringbuf_query`; unknown flags give 0, as in the kernel.
    public func query(_ flags: UInt64) -> UInt64 {
        state.withLock { state in
            switch Query(rawValue: flags) {
            case .availableData: state.producer - state.consumer
            case .ringSize: mask + 1
            case .consumerPosition: state.consumer
            case .producerPosition: state.producer
            case nil: 0
            }
        }
    }

    /// Consumes the records submitted so far, in order, skipping discarded ones and stopping at
    /// the first record still reserved; returns their data.
    public func drainRecords() -> [[UInt8]] {
        state.withLock { state in
            var result: [[UInt8]] = []
            while let record = state.records.first, !record.busy {
                state.records.removeFirst()
                if !record.discarded {
                    let start = record.position + Self.headerSize
                    result.append(
                        (0..<UInt64(record.size)).map {
                            storage.pointer.load(fromByteOffset: Int((start + $0) & mask), as: UInt8.self)
                        })
                }
                state.consumer = record.position + ((UInt64(record.size) + Self.headerSize + 7) & ~7)
            }
            return result
        }
    }
}
