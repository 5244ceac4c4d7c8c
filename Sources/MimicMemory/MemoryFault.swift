/// Whether a faulting access read or wrote memory.
public enum MemoryAccess: Sendable, Equatable, CustomStringConvertible {
    case read
    case write

    public var description: String { self == .read ? "read" : "write" }
}

/// An access the address space refused, with what a user needs to find the bug.
///
/// The interpreter adds the program counter and instruction when it reports the fault.
public struct MemoryFault: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        /// No region is mapped at the address (NULL, a small integer, a freed region).
        case unmapped
        /// The address is in a region but the access runs past its end.
        case outOfBounds
        /// A store to a read-only region.
        case readOnly
        /// An atomic access that is not naturally aligned.
        case misaligned

        public var description: String {
            switch self {
            case .unmapped: "no region mapped"
            case .outOfBounds: "out of bounds"
            case .readOnly: "region is read-only"
            case .misaligned: "misaligned atomic access"
            }
        }
    }

    public var reason: Reason
    public var access: MemoryAccess
    /// The first address the access touched.
    public var address: UInt64
    /// The access width in bytes.
    public var size: Int
    /// The region the address fell in, if any.
    public var region: RegionInfo?

    public init(reason: Reason, access: MemoryAccess, address: UInt64, size: Int, region: RegionInfo?) {
        self.reason = reason
        self.access = access
        self.address = address
        self.size = size
        self.region = region
    }

    public var description: String {
        var text = "\(access) of \(size) byte\(size == 1 ? "" : "s") at \(hex(address)): \(reason)"
        if let region {
            let offset = Int64(bitPattern: address &- region.base)
            text += " (region \(region.name), offset \(offset), size \(region.size))"
        }
        return text
    }
}

/// Errors from mapping and unmapping regions.
public enum AddressSpaceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// All region slots are in use.
    case outOfSlots(limit: Int)
    /// A region larger than a slot can hold (4 GiB, or 256 MiB in the 32-bit window).
    case regionTooLarge(name: String, size: Int, limit: Int)
    /// The 32-bit window already holds a region; only one may live there at a time.
    case lowWindowOccupied(by: String)
    /// No region starts at this address.
    case notMapped(UInt64)
    /// `map(_:name:kind:at:)` was given an address that cannot start a region (not a slot's
    /// first byte, or outside the 32-bit window's range), or whose slot holds another region.
    case addressUnavailable(UInt64, reason: String)

    public var description: String {
        switch self {
        case .outOfSlots(let limit):
            "address space is full: all \(limit) region slots are in use"
        case .regionTooLarge(let name, let size, let limit):
            "region \(name) of \(size) bytes is larger than the \(limit)-byte limit"
        case .lowWindowOccupied(let name):
            "the 32-bit address window is already used by region \(name)"
        case .notMapped(let address):
            "no region starts at \(hex(address))"
        case .addressUnavailable(let address, let reason):
            "cannot map a region at \(hex(address)): \(reason)"
        }
    }
}
