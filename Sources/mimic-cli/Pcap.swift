/// A minimal reader of classic pcap capture files (libpcap format, not pcapng), for commands
/// that replay captured packets.
///
/// Supports both byte orders, microsecond (`a1b2c3d4`) and nanosecond (`a1b23c4d`) timestamps,
/// and the Ethernet link type (1), which is what XDP and tc programs see. Every malformation
/// is a `PcapError` naming the file, the record and the byte offset.
struct PcapFile {
    /// One captured packet.
    struct Packet: Equatable {
        /// Seconds and nanoseconds since the epoch.
        var seconds: UInt32
        var nanoseconds: UInt32
        /// The captured bytes (`incl_len`; may be shorter than the packet on the wire).
        var data: [UInt8]
        /// The packet's length on the wire (`orig_len`).
        var originalLength: UInt32
    }

    /// The link-layer type of the capture (`LINKTYPE_ETHERNET` is 1).
    var linkType: UInt32
    var snapLength: UInt32
    var packets: [Packet]

    static let ethernet: UInt32 = 1
    /// Records larger than this are refused as malformed (the libpcap maximum snap length).
    static let maxRecord = 262_144

    /// Parses `bytes`; `name` is used in error messages.
    init(bytes: [UInt8], name: String, requireEthernet: Bool = true) throws(PcapError) {
        guard bytes.count >= 24 else {
            throw PcapError(file: name, "\(bytes.count) bytes is too short for a pcap file header (24 bytes)")
        }
        let magic = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        let bigEndian: Bool
        let nanosecond: Bool
        switch magic {
        case 0xA1B2_C3D4: (bigEndian, nanosecond) = (false, false)
        case 0xD4C3_B2A1: (bigEndian, nanosecond) = (true, false)
        case 0xA1B2_3C4D: (bigEndian, nanosecond) = (false, true)
        case 0x4D3C_B2A1: (bigEndian, nanosecond) = (true, true)
        case 0x0A0D_0D0A:
            throw PcapError(file: name, "this is a pcapng file; convert it to classic pcap (editcap -F pcap IN.pcapng OUT.pcap)")
        default:
            throw PcapError(file: name, "not a pcap file: magic number 0x\(String(magic, radix: 16)) at offset 0")
        }
        func u32(_ offset: Int) -> UInt32 {
            let b = bytes[offset..<offset + 4].map(UInt32.init)
            return bigEndian ? b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3] : b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24
        }
        snapLength = u32(16)
        linkType = u32(20) & 0x0FFF_FFFF  // the upper bits may carry FCS information
        if requireEthernet, linkType != Self.ethernet {
            throw PcapError(file: name, "link type \(linkType) is not Ethernet (1); only Ethernet captures can be replayed")
        }
        packets = []
        var offset = 24
        while offset < bytes.count {
            let record = packets.count + 1
            guard bytes.count - offset >= 16 else {
                throw PcapError(file: name, "record \(record) at offset \(offset): the 16-byte record header is cut short (\(bytes.count - offset) bytes left)")
            }
            let included = Int(u32(offset + 8))
            guard included <= Self.maxRecord else {
                throw PcapError(file: name, "record \(record) at offset \(offset): captured length \(included) exceeds \(Self.maxRecord) bytes")
            }
            let start = offset + 16
            guard bytes.count - start >= included else {
                throw PcapError(file: name, "record \(record) at offset \(offset): \(included) captured bytes announced, \(bytes.count - start) left in the file")
            }
            let fraction = u32(offset + 4)
            packets.append(Packet(seconds: u32(offset), nanoseconds: nanosecond ? fraction : fraction &* 1000,
                                  data: Array(bytes[start..<start + included]), originalLength: u32(offset + 12)))
            offset = start + included
        }
    }

    /// A classic little-endian, microsecond, Ethernet pcap file holding `packets` (for tests
    /// and for writing captures).
    static func encode(_ packets: [[UInt8]], linkType: UInt32 = ethernet) -> [UInt8] {
        func le(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        var bytes = le(0xA1B2_C3D4) + [2, 0, 4, 0] + le(0) + le(0) + le(65535) + le(linkType)
        for (index, packet) in packets.enumerated() {
            bytes += le(UInt32(index)) + le(0) + le(UInt32(packet.count)) + le(UInt32(packet.count)) + packet
        }
        return bytes
    }
}

/// A malformed or unsupported pcap file.
struct PcapError: Error, Equatable, CustomStringConvertible {
    var file: String
    var message: String

    init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }

    var description: String { "\(file): \(message)" }
}
