/// One packet of a capture: its bytes and when and how it was captured.
public struct PcapPacket: Sendable, Equatable {
    /// The capture time, in nanoseconds since the Unix epoch.
    public var timestamp: UInt64
    /// The length of the packet on the wire; larger than `data.count` when the capture was
    /// truncated by its snapshot length.
    public var originalLength: UInt32
    /// The captured bytes, starting with the Ethernet header.
    public var data: [UInt8]

    /// A packet captured at `timestamp` (nanoseconds since the epoch); `originalLength`
    /// defaults to the number of captured bytes.
    public init(data: [UInt8], timestamp: UInt64 = 0, originalLength: UInt32? = nil) {
        self.data = data
        self.timestamp = timestamp
        self.originalLength = originalLength ?? UInt32(clamping: data.count)
    }
}

/// Where one packet of a capture lies in the file, without its bytes (`PcapReader.nextRecord()`).
///
/// 24 bytes, the two 4-byte lengths side by side (no padding): `mimic run --pcap` reads a
/// capture's array of records once per packet, a million records being 24 MB rather than 32.
public struct PcapRecord: Sendable, Equatable {
    /// The byte offset in the file of the packet's first captured byte.
    public var dataOffset: Int
    /// The capture time, in nanoseconds since the Unix epoch.
    public var timestamp: UInt64
    /// The number of captured bytes.
    public var length: UInt32
    /// The length of the packet on the wire (at least `length`).
    public var originalLength: UInt32

    public init(dataOffset: Int, length: UInt32, timestamp: UInt64, originalLength: UInt32) {
        self.dataOffset = dataOffset
        self.length = length
        self.timestamp = timestamp
        self.originalLength = originalLength
    }
}

/// The bytes of a capture file, held for a `PcapReader`: a copy it owns, or memory someone else
/// provides (a memory-mapped file) with the function that releases it.
public final class PcapBytes: @unchecked Sendable {
    /// The file's bytes. They never change or move while this object lives.
    public let buffer: UnsafeRawBufferPointer
    private let release: (() -> Void)?

    /// A copy of `bytes`.
    public init(copying bytes: [UInt8]) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        copy.copyBytes(from: bytes)
        buffer = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(copy)[0..<bytes.count])
        release = { copy.deallocate() }
    }

    /// `buffer`, which stays valid and unchanged until `release` is called (when this object
    /// goes away): for example a file mapped with `mmap`, released with `munmap`.
    public init(borrowing buffer: UnsafeRawBufferPointer, release: @escaping () -> Void) {
        self.buffer = buffer
        self.release = release
    }

    deinit { release?() }
}

/// The link-layer header type of a capture (`LINKTYPE_*` of the tcpdump registry).
public struct PcapLinkType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `LINKTYPE_ETHERNET` (1): IEEE 802.3 Ethernet; the only type Mimic's packet contexts take.
    public static let ethernet = PcapLinkType(rawValue: 1)

    public var description: String {
        switch rawValue {
        case 0: return "0 (BSD loopback)"
        case 1: return "1 (Ethernet)"
        case 101: return "101 (raw IP)"
        case 105: return "105 (IEEE 802.11)"
        case 113: return "113 (Linux cooked capture)"
        case 127: return "127 (IEEE 802.11 radiotap)"
        case 276: return "276 (Linux cooked capture v2)"
        default: return "\(rawValue)"
        }
    }
}

/// The container format of a capture file.
public enum PcapFormat: Sendable, Equatable, CustomStringConvertible {
    /// Classic libpcap format: byte order and timestamp resolution from the magic number.
    case classic(bigEndian: Bool, nanosecond: Bool)
    /// pcapng (section header, interface description and packet blocks).
    case pcapng

    public var description: String {
        switch self {
        case .classic(let bigEndian, let nanosecond):
            return
                "pcap (\(bigEndian ? "big" : "little")-endian, \(nanosecond ? "nanosecond" : "microsecond") timestamps)"
        case .pcapng:
            return "pcapng"
        }
    }
}
