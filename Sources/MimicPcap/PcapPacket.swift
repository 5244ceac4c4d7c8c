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
