import MimicCore
import Synchronization

/// `BPF_MAP_TYPE_QUEUE` (first in, first out) and `BPF_MAP_TYPE_STACK` (last in, first out):
/// keyless maps of up to `max_entries` values, used through push, pop and peek.
///
/// As in the kernel's `queue_stack_maps.c`: push accepts `BPF_ANY` or `BPF_EXIST` (any other
/// flag is `-EINVAL`); a push to a full map is `-E2BIG`, unless `BPF_EXIST` is given, which
/// drops the oldest value to make room. Pop and peek on an empty map are `-ENOENT`. Lookup,
/// update, delete and key iteration are not supported (NULL / `-EINVAL`).
public final class QueueStackMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64
    /// True for a stack (pop takes the newest value), false for a queue (the oldest).
    public let isStack: Bool
    /// Oldest first.
    private let elements: Mutex<[[UInt8]]>

    /// The map's share of the VM's memory budget (charged in full: the kernel preallocates).
    private let memory: MapMemory

    init(attributes: MapAttributes, id: Int, memory: MapMemory) {
        self.memory = memory
        self.attributes = attributes
        handle = MapHandle.make(id: id)
        isStack = attributes.type == .stack
        elements = Mutex([])
    }

    /// The number of values held.
    public var count: Int { elements.withLock { $0.count } }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { nil }
    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? { .invalid }
    public func delete(key: [UInt8]) -> Errno? { .invalid }
    public func nextKey(after key: [UInt8]?) -> [UInt8]? { nil }
    public func value(forKey key: [UInt8]) -> [UInt8]? { nil }
    public var keys: [[UInt8]] { [] }

    public func push(value: [UInt8], flags: MapUpdateFlags) -> Errno? {
        guard value.count == attributes.valueSize else { return .invalid }
        guard !flags.contains(.noExist), flags.rawValue <= MapUpdateFlags.exist.rawValue else { return .invalid }
        return elements.withLock { elements in
            if elements.count >= attributes.maxEntries {
                guard flags.contains(.exist) else { return .tooBig }
                elements.removeFirst()
            }
            elements.append(value)
            return nil
        }
    }

    public func pop() -> Result<[UInt8], Errno> {
        elements.withLock { elements in
            guard !elements.isEmpty else { return .failure(.noEntry) }
            return .success(isStack ? elements.removeLast() : elements.removeFirst())
        }
    }

    public func peek() -> Result<[UInt8], Errno> {
        elements.withLock { elements in
            guard let value = isStack ? elements.last : elements.first else { return .failure(.noEntry) }
            return .success(value)
        }
    }

    /// Every value, in the order pop would return them.
    public var values: [[UInt8]] { elements.withLock { isStack ? $0.reversed() : $0 } }
}
